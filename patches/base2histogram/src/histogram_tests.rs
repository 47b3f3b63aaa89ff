use super::*;

/// Values around every power of two, plus the first few thousand.
fn probes() -> Vec<u64> {
    let mut v: Vec<u64> = (0..5000).collect();
    for e in 0..64 {
        let p = 1u64 << e;
        v.extend([p - 1, p, p + 1, p | (p >> 1), p | (p >> 2)]);
    }
    v.push(u64::MAX - 1);
    v.push(u64::MAX);
    v
}

#[test]
fn buckets_tile_the_whole_u64_range_in_order() {
    assert_eq!(BUCKETS, 252);
    assert_eq!(bucket_bounds(0).0, 0);
    assert_eq!(bucket_bounds(BUCKETS - 1).1, u64::MAX);
    for i in 0..BUCKETS - 1 {
        let (low, high) = bucket_bounds(i);
        assert!(low <= high, "bucket {i}: [{low}, {high}]");
        assert_eq!(high + 1, bucket_bounds(i + 1).0, "gap after bucket {i}");
    }
}

#[test]
fn every_value_lands_in_the_bucket_that_holds_it() {
    for v in probes() {
        let i = bucket_of(v);
        assert!(i < BUCKETS, "{v} -> {i}");
        let (low, high) = bucket_bounds(i);
        assert!(low <= v && v <= high, "{v} in bucket {i} = [{low}, {high}]");
    }
}

#[test]
fn small_values_are_exact_and_larger_buckets_at_most_a_quarter_wide() {
    for v in 0..8 {
        assert_eq!(bucket_bounds(bucket_of(v)), (v, v));
    }
    for i in 8..BUCKETS {
        let (low, high) = bucket_bounds(i);
        assert!(high - low < low / 4 + 1, "bucket {i}: [{low}, {high}]");
    }
}

#[test]
fn an_empty_histogram_reports_zeros() {
    let h = Histogram::<()>::new();
    assert_eq!(h.total(), 0);
    assert_eq!(h.percentile(0.5), 0);
    assert_eq!(h.percentile_stats(), PercentileStats::default());
    assert_eq!(h, Histogram::default());
}

#[test]
fn one_value_is_every_percentile() {
    let mut h = Histogram::<()>::new();
    h.record(1_000_003);
    for p in [0.0, 0.001, 0.5, 0.99, 1.0] {
        assert_eq!(h.percentile(p), 1_000_003, "p={p}");
    }
}

#[test]
fn small_values_give_exact_percentiles() {
    let mut h = Histogram::<()>::new();
    for v in 1..=7 {
        h.record(v);
    }
    assert_eq!(h.total(), 7);
    assert_eq!(h.percentile(0.5), 4);
    assert_eq!(h.percentile(0.0), 1);
    assert_eq!(h.percentile(1.0), 7);
}

#[test]
fn the_ends_are_the_smallest_and_largest_values() {
    let mut h = Histogram::<()>::new();
    h.record_n(5, 10);
    h.record(123_456);
    h.record(987_654_321);
    assert_eq!(h.percentile(0.0), 5);
    assert_eq!(h.percentile(1.0), 987_654_321);
}

#[test]
fn estimates_stay_in_the_bucket_of_the_true_value() {
    // A skewed set: squares, so buckets hold uneven counts.
    let mut values: Vec<u64> = (1..=3000u64).map(|i| i * i).collect();
    let mut h = Histogram::<()>::new();
    for &v in &values {
        h.record(v);
    }
    values.sort_unstable();
    for p in [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999] {
        let rank = (p * values.len() as f64).ceil() as usize;
        let exact = values[rank - 1];
        let estimate = h.percentile(p);
        assert_eq!(
            bucket_of(estimate),
            bucket_of(exact),
            "p={p}: estimate {estimate}, exact {exact}"
        );
    }
}

#[test]
fn uniform_values_are_estimated_within_one_percent() {
    let mut h = Histogram::<()>::new();
    for v in 1..=100_000 {
        h.record(v);
    }
    for p in [0.01, 0.1, 0.5, 0.9, 0.99, 0.999] {
        let exact = p * 100_000.0;
        let estimate = h.percentile(p) as f64;
        assert!(
            (estimate - exact).abs() <= exact / 100.0,
            "p={p}: estimate {estimate}, exact {exact}"
        );
    }
}

#[test]
fn percentiles_never_decrease_with_p() {
    let mut h = Histogram::<()>::new();
    for (i, v) in probes().into_iter().enumerate() {
        h.record_n(v, i as u64 % 7 + 1);
    }
    let mut last = 0;
    for step in 0..=1000 {
        let q = h.percentile(f64::from(step) / 1000.0);
        assert!(q >= last, "p={}: {q} < {last}", f64::from(step) / 1000.0);
        last = q;
    }
    assert_eq!(last, u64::MAX);
}

#[test]
fn out_of_range_p_is_clamped() {
    let mut h = Histogram::<()>::new();
    h.record_n(40, 3);
    h.record(9000);
    assert_eq!(h.percentile(-1.0), 40);
    assert_eq!(h.percentile(f64::NAN), 40);
    assert_eq!(h.percentile(7.0), 9000);
    assert_eq!(h.percentile(f64::INFINITY), 9000);
}

#[test]
fn record_n_is_n_records() {
    let mut a = Histogram::<()>::new();
    let mut b = Histogram::<()>::new();
    for v in [3, 17, 17, 250, 1 << 40] {
        a.record_n(v, 4);
        for _ in 0..4 {
            b.record(v);
        }
    }
    a.record_n(99, 0);
    assert_eq!(a, b);
    assert_eq!(a.total(), 20);
    assert_eq!(a.percentile_stats(), b.percentile_stats());
}

#[test]
fn counters_saturate_instead_of_wrapping() {
    let mut h = Histogram::<()>::new();
    h.record_n(u64::MAX, u64::MAX);
    h.record_n(u64::MAX, u64::MAX);
    h.record(1);
    assert_eq!(h.total(), u64::MAX);
    assert_eq!(h.percentile(1.0), u64::MAX);
    assert_eq!(h.percentile(0.0), 1);
    let s = h.percentile_stats();
    assert_eq!(s.samples, u64::MAX);
    assert_eq!(bucket_of(s.p50), BUCKETS - 1, "p50 {}", s.p50);
}

#[test]
fn percentile_stats_are_the_percentiles() {
    let mut h = Histogram::<()>::new();
    for v in 0..10_000 {
        h.record(v * 37 % 10_007);
    }
    let s = h.percentile_stats();
    assert_eq!(s.samples, 10_000);
    let want = [0.001, 0.01, 0.05, 0.1, 0.5, 0.9, 0.99, 0.999].map(|p| h.percentile(p));
    assert_eq!(
        [s.p0_1, s.p1, s.p5, s.p10, s.p50, s.p90, s.p99, s.p99_9],
        want
    );
    assert_eq!(
        s.to_string(),
        format!(
            "n=10000 p0.1={} p1={} p5={} p10={} p50={} p90={} p99={} p99.9={}",
            want[0], want[1], want[2], want[3], want[4], want[5], want[6], want[7]
        )
    );
}

#[test]
fn clones_are_equal_and_independent() {
    let mut a = Histogram::<()>::new();
    a.record_n(12, 2);
    let b = a.clone();
    assert_eq!(a, b);
    a.record(12);
    assert_ne!(a, b);
    assert_eq!(b.total(), 2);
}

#[test]
fn debug_lists_only_non_empty_buckets() {
    let mut h = Histogram::<()>::new();
    h.record_n(100, 2);
    h.record(3);
    assert_eq!(
        format!("{h:?}"),
        r#"Histogram { total: 3, min: 3, max: 100, buckets: {"[3, 3]": 1, "[96, 111]": 2} }"#
    );
    assert_eq!(
        format!("{:?}", Histogram::<()>::new()),
        "Histogram { total: 0, buckets: {} }"
    );
}

#[test]
fn shareable_across_threads() {
    // openraft keeps one behind Arc<Mutex<_>> shared by its tasks.
    fn send_sync<S: Send + Sync>() {}
    send_sync::<Histogram>();
    send_sync::<Histogram<std::rc::Rc<()>>>();
}
