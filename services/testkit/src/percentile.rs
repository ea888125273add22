//! Percentiles. [`Latencies`] summarises what a benchmark measured (an HDR histogram: constant
//! memory, 3 significant digits); [`interpolated`] and [`rank_bounds`] are exact, for tests that
//! check the percentiles a server computes.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies from 1 µs to 1 hour, 3 significant digits.
pub struct Latencies {
    micros: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        Self {
            micros: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds"),
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.micros.saturating_record(d.as_micros().max(1) as u64);
    }

    pub fn record_ms(&mut self, ms: f64) {
        self.record(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }

    pub fn len(&self) -> u64 {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// The `q`-quantile (0.0..=1.0) in milliseconds; NaN when nothing was recorded.
    pub fn ms(&self, q: f64) -> f64 {
        if self.is_empty() {
            return f64::NAN;
        }
        self.micros.value_at_quantile(q) as f64 / 1000.0
    }

    /// The largest value in milliseconds; NaN when nothing was recorded.
    pub fn max_ms(&self) -> f64 {
        if self.is_empty() {
            return f64::NAN;
        }
        self.micros.max() as f64 / 1000.0
    }
}

impl Extend<Duration> for Latencies {
    fn extend<I: IntoIterator<Item = Duration>>(&mut self, iter: I) {
        iter.into_iter().for_each(|d| self.record(d));
    }
}

impl FromIterator<Duration> for Latencies {
    fn from_iter<I: IntoIterator<Item = Duration>>(iter: I) -> Self {
        let mut l = Self::new();
        l.extend(iter);
        l
    }
}

/// The `p`-th percentile (0..=100) by linear interpolation between the closest ranks (what
/// Elasticsearch's t-digest approximates on small sets).
pub fn interpolated(values: &[f64], p: f64) -> f64 {
    let v = sorted(values);
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

/// The values at the ranks around the `p`-th percentile (0..=100): any sensible estimate lies
/// between them.
pub fn rank_bounds(values: &[f64], p: f64) -> (f64, f64) {
    let v = sorted(values);
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let lo = (rank.floor() as usize).saturating_sub(1);
    let hi = (rank.ceil() as usize + 1).min(v.len() - 1);
    (v[lo], v[hi])
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_within_their_precision() {
        let l: Latencies = (1..=1000).map(Duration::from_millis).collect();
        assert_eq!(l.len(), 1000);
        for (q, want) in [(0.5, 500.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = l.ms(q);
            assert!((got - want).abs() <= want * 1e-3, "q {q}: {got} vs {want}");
        }
        assert!((l.max_ms() - 1000.0).abs() <= 1.0);
        assert!(Latencies::new().ms(0.5).is_nan());
    }

    #[test]
    fn exact_percentiles() {
        let v = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(interpolated(&v, 50.0), 3.0);
        assert!((interpolated(&v, 90.0) - 4.6).abs() < 1e-9);
        assert_eq!(rank_bounds(&v, 50.0), (2.0, 4.0));
        assert_eq!(rank_bounds(&v, 100.0), (4.0, 5.0));
    }
}
