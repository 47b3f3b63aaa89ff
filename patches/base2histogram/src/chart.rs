//! Text charts of one or more histograms over the same buckets: one row per
//! bucket that any of them counts something in, one stacked bar per row
//! (one fill character per histogram), then each histogram's percentiles.

use std::fmt;

use crate::histogram::{BUCKETS, Histogram, bucket_bounds};

/// Width, in characters, of the longest bar.
const BAR_WIDTH: u64 = 40;
/// Fill characters, one per series, reused after the last.
const FILLS: [char; 8] = ['#', '=', '+', '*', 'o', '%', '@', '~'];

/// Named histograms drawn together as stacked bars.
#[derive(Debug, Clone)]
pub struct AsciiChart<T = ()> {
    series: Vec<(String, Histogram<T>)>,
}

impl<T> AsciiChart<T> {
    /// A chart with no series.
    pub fn new() -> Self {
        Self { series: Vec::new() }
    }

    /// Adds a series named `name`.
    pub fn add(mut self, name: &str, histogram: Histogram<T>) -> Self {
        self.series.push((name.to_owned(), histogram));
        self
    }

    /// The chart with a legend, one row per non-empty bucket (its value
    /// range, the stacked bar, the row's count) and each series' percentiles.
    pub fn detailed(&self) -> Detailed<'_, T> {
        Detailed(self)
    }

    fn fill(index: usize) -> char {
        FILLS[index % FILLS.len()]
    }
}

impl<T> Default for AsciiChart<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Display for AsciiChart<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.detailed().fmt(f)
    }
}

/// [`AsciiChart::detailed`]'s rendering; drawn when formatted.
#[derive(Debug)]
pub struct Detailed<'a, T>(&'a AsciiChart<T>);

impl<T> fmt::Display for Detailed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let series = &self.0.series;
        // (low, high, per-series counts, row total) of each non-empty bucket.
        let rows: Vec<(u64, u64, Vec<u64>, u64)> = (0..BUCKETS)
            .filter_map(|index| {
                let counts: Vec<u64> = series.iter().map(|(_, h)| h.count_at(index)).collect();
                let total = counts.iter().fold(0u64, |a, &c| a.saturating_add(c));
                (total > 0).then(|| {
                    let (low, high) = bucket_bounds(index);
                    (low, high, counts, total)
                })
            })
            .collect();
        if rows.is_empty() {
            return writeln!(f, "(no samples)");
        }

        for (i, (name, h)) in series.iter().enumerate() {
            writeln!(f, "{} {name} (n={})", AsciiChart::<T>::fill(i), h.total())?;
        }
        let low_width = rows
            .iter()
            .map(|r| r.0.to_string().len())
            .max()
            .unwrap_or(1);
        let high_width = rows
            .iter()
            .map(|r| r.1.to_string().len())
            .max()
            .unwrap_or(1);
        let range_width = low_width + high_width + 4;
        writeln!(f, "{:>range_width$} | count", "range")?;
        let widest = rows.iter().map(|r| r.3).max().unwrap_or(1);
        for (low, high, counts, total) in &rows {
            write!(f, "[{low:>low_width$}, {high:>high_width$}] | ")?;
            for (i, &count) in counts.iter().enumerate() {
                // Rounded up, so that every non-zero count shows.
                let len = (u128::from(count) * u128::from(BAR_WIDTH)).div_ceil(u128::from(widest));
                let fill = AsciiChart::<T>::fill(i);
                for _ in 0..len {
                    write!(f, "{fill}")?;
                }
            }
            writeln!(f, " {total}")?;
        }
        for (name, h) in series {
            let s = h.percentile_stats();
            writeln!(
                f,
                "{name}: n={} p50={} p90={} p99={} p99.9={}",
                s.samples, s.p50, s.p90, s.p99, s.p99_9
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[(u64, u64)]) -> Histogram {
        let mut h = Histogram::new();
        for &(v, n) in values {
            h.record_n(v, n);
        }
        h
    }

    #[test]
    fn an_empty_chart_says_so() {
        let chart = AsciiChart::<()>::new().add("idle", Histogram::new());
        assert_eq!(chart.detailed().to_string(), "(no samples)\n");
        assert_eq!(AsciiChart::<()>::default().to_string(), "(no samples)\n");
    }

    #[test]
    fn rows_are_the_non_empty_buckets_with_stacked_bars() {
        let chart = AsciiChart::new()
            .add("fast", hist(&[(10, 30), (100, 10)]))
            .add("slow", hist(&[(100, 10), (5000, 1)]));
        let text = chart.detailed().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# fast (n=40)");
        assert_eq!(lines[1], "= slow (n=11)");
        assert_eq!(lines[2], "       range | count");
        // 10 is in [10, 11], 100 in [96, 111], 5000 in [4096, 5119]; the
        // widest row (30) gets the full 40 characters.
        assert_eq!(lines[3], format!("[  10,   11] | {} 30", "#".repeat(40)));
        assert_eq!(
            lines[4],
            format!("[  96,  111] | {}{} 20", "#".repeat(14), "=".repeat(14))
        );
        // Rounded up: 1 of 30 is 1.3 characters.
        assert_eq!(lines[5], "[4096, 5119] | == 1");
        for (line, (name, h)) in lines[6..].iter().zip(&chart.series) {
            let s = h.percentile_stats();
            let want = format!(
                "{name}: n={} p50={} p90={} p99={} p99.9={}",
                s.samples, s.p50, s.p90, s.p99, s.p99_9
            );
            assert_eq!(*line, want);
        }
        assert_eq!(lines[7], "slow: n=11 p50=106 p90=111 p99=5000 p99.9=5000");
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn display_is_the_detailed_chart() {
        let chart = AsciiChart::new().add("one", hist(&[(3, 1)]));
        assert_eq!(chart.to_string(), chart.detailed().to_string());
        assert!(chart.to_string().contains("[3, 3] | "));
    }
}
