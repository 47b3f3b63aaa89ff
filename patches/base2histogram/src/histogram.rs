//! The histogram: a fixed array of counters over base-2 logarithmic buckets,
//! and percentile estimates from it.
//!
//! Buckets: each value below 8 has a bucket of its own; every power of two
//! from 8 up (`[2^e, 2^(e+1))`, `e` in 3..=63) is split into 4 equal
//! sub-buckets. A bucket is therefore at most a quarter of its lower bound
//! wide, and 8 + 61 * 4 = 252 buckets cover all of `u64`.

use std::fmt;
use std::marker::PhantomData;

/// Sub-buckets per power of two, as a number of bits.
const SUB_BITS: u32 = 2;
/// Sub-buckets per power of two.
const SUBS: usize = 1 << SUB_BITS;
/// Values below this have a bucket each (exact).
const EXACT: u64 = 2 * SUBS as u64;
/// Buckets in a histogram: the exact ones, then `SUBS` for each power of two
/// from `EXACT` to `2^63`.
pub(crate) const BUCKETS: usize = EXACT as usize + (64 - SUB_BITS as usize - 1) * SUBS;

/// The bucket `value` falls in.
pub(crate) fn bucket_of(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    // value >= 8, so exp >= 3 and exp - SUB_BITS >= 1.
    let exp = 63 - value.leading_zeros();
    let sub = (value >> (exp - SUB_BITS)) as usize & (SUBS - 1);
    EXACT as usize + (exp - SUB_BITS - 1) as usize * SUBS + sub
}

/// The smallest and the largest value (both inclusive) of bucket `index`
/// (`index < BUCKETS`).
pub(crate) fn bucket_bounds(index: usize) -> (u64, u64) {
    if index < EXACT as usize {
        return (index as u64, index as u64);
    }
    let rel = index - EXACT as usize;
    let exp = (rel / SUBS) as u32 + SUB_BITS + 1;
    let step = 1u64 << (exp - SUB_BITS);
    let low = (1u64 << exp) + (rel % SUBS) as u64 * step;
    // The last bucket ends exactly at u64::MAX: no overflow.
    (low, low + (step - 1))
}

/// Counts of `u64` values in base-2 logarithmic buckets (see the module doc),
/// with the total, the smallest and the largest value recorded.
///
/// `T` is the registry crate's per-slot label for sliding windows; this
/// histogram has no slots and never holds a `T`.
pub struct Histogram<T = ()> {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    min: u64,
    max: u64,
    label: PhantomData<fn() -> T>,
}

impl<T> Histogram<T> {
    /// An empty histogram (2 KiB of counters on the heap).
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            min: u64::MAX,
            max: 0,
            label: PhantomData,
        }
    }

    /// Counts one occurrence of `value`.
    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Counts `count` occurrences of `value`. Counters saturate at
    /// `u64::MAX` instead of wrapping.
    pub fn record_n(&mut self, value: u64, count: u64) {
        if count == 0 {
            return;
        }
        let slot = &mut self.counts[bucket_of(value)];
        *slot = slot.saturating_add(count);
        self.total = self.total.saturating_add(count);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// How many values were recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The estimated value below or at which a fraction `p` (0.0 to 1.0) of
    /// the recorded values lie; 0 for an empty histogram.
    ///
    /// The first and the last rank give the smallest and the largest value
    /// recorded; otherwise the estimate is in the bucket of the true value:
    /// it places the bucket's values evenly across the part of the bucket
    /// between the smallest and the largest value recorded. `p` outside 0.0..=1.0 is
    /// clamped, and NaN counts as 0.0.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        // The rank (1-based) of the value asked for; `as` saturates.
        let rank = ((p * self.total as f64).ceil() as u64).clamp(1, self.total);
        // The ends are known exactly.
        if rank == 1 {
            return self.min;
        }
        if rank == self.total {
            return self.max;
        }
        let mut below = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            if below.saturating_add(count) >= rank {
                let (low, high) = bucket_bounds(index);
                // min is in the first non-empty bucket and max in the last,
                // so the clamped range is never empty.
                let (low, high) = (low.max(self.min), high.min(self.max));
                // The k-th of `count` values sits in the middle of the k-th
                // of `count` equal slices of [low, high + 1).
                let k = u128::from(rank - below);
                let span = u128::from(high - low) + 1;
                let offset = span * (2 * k - 1) / (2 * u128::from(count));
                // offset < span, so this is at most `high`.
                return low + offset as u64;
            }
            below += count;
        }
        // Only reached when counters saturated and the total and the bucket
        // counts disagree.
        self.max
    }

    /// The usual percentiles in one go.
    pub fn percentile_stats(&self) -> PercentileStats {
        PercentileStats {
            samples: self.total,
            p0_1: self.percentile(0.001),
            p1: self.percentile(0.01),
            p5: self.percentile(0.05),
            p10: self.percentile(0.1),
            p50: self.percentile(0.5),
            p90: self.percentile(0.9),
            p99: self.percentile(0.99),
            p99_9: self.percentile(0.999),
        }
    }

    /// The non-empty buckets: (bucket index, count).
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(index, &count)| (index, count))
    }

    /// The count in bucket `index` (`index < BUCKETS`).
    pub(crate) fn count_at(&self, index: usize) -> u64 {
        self.counts.get(index).copied().unwrap_or(0)
    }
}

impl<T> Default for Histogram<T> {
    fn default() -> Self {
        Self::new()
    }
}

// By hand rather than derived: a derive would ask `T` for the same trait,
// and no `T` is ever stored.
impl<T> Clone for Histogram<T> {
    fn clone(&self) -> Self {
        Self {
            counts: self.counts.clone(),
            total: self.total,
            min: self.min,
            max: self.max,
            label: PhantomData,
        }
    }
}

impl<T> PartialEq for Histogram<T> {
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total
            && self.min == other.min
            && self.max == other.max
            && self.counts == other.counts
    }
}

impl<T> Eq for Histogram<T> {}

impl<T> fmt::Debug for Histogram<T> {
    /// The totals and the non-empty buckets only, as `[low, high]: count`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Buckets<'a, T>(&'a Histogram<T>);
        impl<T> fmt::Debug for Buckets<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.buckets().map(|(index, count)| {
                        let (low, high) = bucket_bounds(index);
                        (format!("[{low}, {high}]"), count)
                    }))
                    .finish()
            }
        }
        let mut s = f.debug_struct("Histogram");
        s.field("total", &self.total);
        if self.total > 0 {
            s.field("min", &self.min).field("max", &self.max);
        }
        s.field("buckets", &Buckets(self)).finish()
    }
}

/// A histogram's sample count and common percentiles (all 0 when empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PercentileStats {
    /// How many values were recorded.
    pub samples: u64,
    /// The 0.1th percentile.
    pub p0_1: u64,
    /// The 1st percentile.
    pub p1: u64,
    /// The 5th percentile.
    pub p5: u64,
    /// The 10th percentile.
    pub p10: u64,
    /// The median.
    pub p50: u64,
    /// The 90th percentile.
    pub p90: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The 99.9th percentile.
    pub p99_9: u64,
}

impl fmt::Display for PercentileStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p0.1={} p1={} p5={} p10={} p50={} p90={} p99={} p99.9={}",
            self.samples,
            self.p0_1,
            self.p1,
            self.p5,
            self.p10,
            self.p50,
            self.p90,
            self.p99,
            self.p99_9
        )
    }
}

#[cfg(test)]
#[path = "histogram_tests.rs"]
mod tests;
