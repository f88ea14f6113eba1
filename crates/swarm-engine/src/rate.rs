//! Rolling transfer-rate estimator: bytes per second over a sliding window.
//!
//! The torrent core keeps one per peer and direction; the request pipeline
//! sizes itself from the download rate and the choker (BEP 3 tit-for-tat)
//! ranks peers by it. Time is the engine's [`Instant`]; nothing reads a clock.

use crate::time::{Duration, Instant};

/// Width of one bucket of the window.
pub const RATE_BUCKET: Duration = Duration::from_secs(1);
/// Number of buckets: the window is `RATE_BUCKETS × RATE_BUCKET` = 20 s, the
/// span over which tit-for-tat compares peers.
pub const RATE_BUCKETS: usize = 20;

/// Bytes per second over the last 20 s, in 1 s buckets.
///
/// `repr(C)`, the running sums first: `rate` within the newest bucket reads
/// only those 40 bytes (one cache line), not the buckets.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct RateEstimator {
    /// When the first byte was recorded: a young estimator divides by its age,
    /// not by the whole window, so it is not 20× too low for its first seconds.
    started: Option<Instant>,
    /// Index (time / bucket width) of the newest bucket written.
    head: u64,
    /// Sum of `buckets`: `rate` subtracts the few buckets `now` has aged
    /// out instead of summing twenty (it runs for every block and every
    /// peer at every rechoke: the simulator's profile put it first).
    window: u64,
    total: u64,
    buckets: [u64; RATE_BUCKETS],
}

impl Default for RateEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl RateEstimator {
    pub fn new() -> Self {
        RateEstimator {
            buckets: [0; RATE_BUCKETS],
            head: 0,
            started: None,
            total: 0,
            window: 0,
        }
    }

    fn advance(&mut self, now: Instant) {
        let idx = now.0 / RATE_BUCKET.0;
        if idx <= self.head {
            return;
        }
        let gap = (idx - self.head).min(RATE_BUCKETS as u64);
        for k in 1..=gap {
            let b = &mut self.buckets[((self.head + k) % RATE_BUCKETS as u64) as usize];
            self.window -= *b;
            *b = 0;
        }
        self.head = idx;
    }

    /// Records `bytes` transferred at `now`. `now` may go backwards by less
    /// than a bucket (callers pass the time of the event); older samples are
    /// added to the newest bucket.
    pub fn record(&mut self, now: Instant, bytes: u64) {
        self.advance(now);
        if self.started.is_none() {
            self.started = Some(now);
        }
        self.buckets[(self.head % RATE_BUCKETS as u64) as usize] += bytes;
        self.window += bytes;
        self.total += bytes;
    }

    /// Total bytes ever recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes per second over the window ending at `now`.
    pub fn rate(&self, now: Instant) -> f64 {
        let Some(started) = self.started else {
            return 0.0;
        };
        let idx = now.0 / RATE_BUCKET.0;
        let window = RATE_BUCKET.0 * RATE_BUCKETS as u64;
        let n = RATE_BUCKETS as u64;
        // The stored buckets are those of (head - 20, head]; the window
        // ending at `now` is (idx - 20, idx]. Subtract the stored buckets
        // outside it: the oldest ones if `now` moved on, the newest ones if
        // `now` is behind the head.
        let (outside, newest_first) = if idx >= self.head {
            (idx - self.head, false)
        } else {
            (self.head - idx, true)
        };
        let sum = if outside >= n {
            0
        } else {
            let h = self.head % n;
            let mut sum = self.window;
            for j in 0..outside {
                // Age of the bucket below the head: oldest first, or newest first.
                let age = if newest_first { j } else { n - 1 - j };
                // (h + n - age) mod n, without a division: it is in [1, 2n).
                let mut i = h + n - age;
                if i >= n {
                    i -= n;
                }
                sum -= self.buckets[i as usize];
            }
            sum
        };
        // Divide by the span covered: the window, or the age of the estimator
        // (at least one bucket, so one early block does not read as a flood).
        let age = now.saturating_since(started).0.max(RATE_BUCKET.0);
        let span = age.min(window);
        sum as f64 * 1e6 / span as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The windowed sum the estimator keeps gives what summing the
    /// buckets gives, whatever the order of records and reads.
    #[test]
    fn window_sum_matches_a_plain_sum() {
        let mut rng = crate::rng::Rng::new(7);
        let mut r = RateEstimator::new();
        let mut log: Vec<(u64, u64)> = Vec::new();
        let mut t = 0u64;
        for _ in 0..2000 {
            t += rng.below(700_000) as u64;
            let bytes = rng.below(50_000) as u64;
            r.record(Instant(t), bytes);
            // Records go to the newest bucket (the head), as `record` says.
            log.push((r.head, bytes));
            let back = rng.below(900_000) as u64;
            for at in [t + rng.below(25_000_000) as u64, t.saturating_sub(back)] {
                let idx = at / RATE_BUCKET.0;
                let plain: u64 = log
                    .iter()
                    .filter(|(b, _)| *b <= idx && *b + 20 > idx && *b + 20 > r.head)
                    .map(|(_, x)| x)
                    .sum();
                let age = Instant(at)
                    .saturating_since(r.started.unwrap())
                    .0
                    .clamp(RATE_BUCKET.0, RATE_BUCKET.0 * 20);
                let want = plain as f64 * 1e6 / age as f64;
                assert!((r.rate(Instant(at)) - want).abs() < 1e-6, "at {at}");
            }
        }
    }

    fn s(secs: u64) -> Instant {
        Instant(secs * 1_000_000)
    }

    #[test]
    fn steady_rate_is_measured() {
        let mut r = RateEstimator::new();
        for t in 0..40 {
            r.record(s(t), 1000);
        }
        let rate = r.rate(s(40));
        assert!((950.0..=1050.0).contains(&rate), "{rate}");
        assert_eq!(r.total(), 40_000);
    }

    #[test]
    fn young_estimator_is_not_diluted() {
        let mut r = RateEstimator::new();
        r.record(s(0), 5000);
        r.record(Instant(1_500_000), 5000);
        let rate = r.rate(s(2));
        assert!((4000.0..=6000.0).contains(&rate), "{rate}");
    }

    #[test]
    fn rate_decays_to_zero_after_window() {
        let mut r = RateEstimator::new();
        for t in 0..5 {
            r.record(s(t), 1000);
        }
        assert!(r.rate(s(10)) > 0.0);
        assert_eq!(r.rate(s(30)), 0.0);
        r.record(s(100), 2000);
        let rate = r.rate(s(101));
        assert!((50.0..=150.0).contains(&rate), "{rate}");
    }
}
