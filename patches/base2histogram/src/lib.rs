//! Base-2 logarithmic histograms of `u64` values, written for wren to stand in
//! for the registry crate `base2histogram` 0.2.3 (wired by `[patch.crates-io]`
//! in the root `Cargo.toml`).
//!
//! Why it exists: openraft 0.10.0-alpha.37 keeps its runtime statistics in
//! `base2histogram::Histogram`s, and the first `Histogram::new()` of the
//! registry crate forces a global table of bucket lookups for every bucket
//! width from 1 to 16, although only the default width is ever used. Every
//! wren server paid about 26 MiB of anonymous memory for those tables. Here a
//! histogram is one fixed array of 252 counters (2 KiB) and the bucket of a
//! value is computed from its leading zeros: no global state at all. Remove
//! this crate (and the patch entry) once upstream builds its tables lazily,
//! per width.
//!
//! What it provides is what openraft, chunked-wal and raft-log use, with the
//! same meaning: [`Histogram`] (`new`, `record`, `record_n`, `total`,
//! `percentile`, `percentile_stats`, `Clone`, `Debug`, `Default`,
//! `PartialEq`, `Eq`), [`PercentileStats`] with its public fields, and
//! [`AsciiChart`] (`new`, `add`, `detailed`) that draws stacked bars.
//!
//! What it deliberately does not implement: the registry crate's sliding
//! windows (`with_slots`, `advance`, the slot metadata `T`, which is kept only
//! as a type parameter so that `Histogram::<()>::new()` compiles), other bucket
//! widths (`with_log_scale`, `rescale`), `merge`, bucket iterators and
//! interpolators, and its compact chart. Percentiles are interpolated linearly
//! inside a bucket and clamped to the smallest and largest value recorded,
//! rather than by the registry crate's trapezoidal scheme, so estimates can
//! differ from it in the last digits; both stay inside the bucket of the true
//! value.
//!
//! ```
//! use base2histogram::Histogram;
//!
//! let mut h = Histogram::<()>::new();
//! h.record(5);
//! h.record(8);
//! h.record(13);
//! h.record_n(21, 3);
//! assert_eq!(h.total(), 6);
//! assert_eq!(h.percentile(0.5), 13);
//! assert_eq!(h.percentile_stats().p99, 21);
//! ```

#![forbid(unsafe_code)]

mod chart;
mod histogram;

pub use chart::{AsciiChart, Detailed};
pub use histogram::{Histogram, PercentileStats};
