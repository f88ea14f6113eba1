//! Global rate limits (`--max-upload-rate`, `--max-download-rate`): one token
//! bucket per direction, shared by every connection's reader or writer task.
//!
//! Tokens are bytes. A task takes the bytes it just moved (or is about to
//! move) and sleeps off any debt, so a burst is at most the bucket size and
//! the long-run rate is the limit. The bucket is IO bookkeeping, not engine
//! state: a short `std::sync::Mutex` around two numbers is enough.

use std::sync::Mutex;

use tokio::time::{Duration, Instant};

/// Smallest bucket, in bytes: a few blocks, so 16 KiB messages pass.
pub const BURST_MIN_BYTES: u64 = 64 * 1024;

/// A token bucket of `rate` bytes per second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u64,
    burst: u64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `rate` in bytes per second (at least 1). The bucket holds a quarter
    /// second of traffic, and never less than [`BURST_MIN_BYTES`].
    pub fn new(rate: u64) -> Self {
        let rate = rate.max(1);
        let burst = (rate / 4).max(BURST_MIN_BYTES);
        RateLimiter {
            rate,
            burst,
            state: Mutex::new((burst as f64, Instant::now())),
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Takes `bytes` tokens; returns how long the caller must wait to pay
    /// back the debt (zero while tokens remain).
    pub fn take_delay(&self, bytes: usize) -> Duration {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let (tokens, last) = *state;
        let refill = now.saturating_duration_since(last).as_secs_f64() * self.rate as f64;
        let tokens = (tokens + refill).min(self.burst as f64) - bytes as f64;
        *state = (tokens, now);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.rate as f64)
        }
    }

    /// Takes `bytes` tokens and sleeps off any debt.
    pub async fn take(&self, bytes: usize) {
        let delay = self.take_delay(bytes);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_turns_into_delay_at_the_rate() {
        let r = RateLimiter::new(1_000_000);
        // The bucket starts full (250 kB): no wait within it.
        assert_eq!(r.take_delay(200_000), Duration::ZERO);
        // 250 kB more leaves ~200 kB of debt: ~0.2 s at 1 MB/s.
        let d = r.take_delay(250_000);
        assert!(
            d > Duration::from_millis(150) && d < Duration::from_millis(250),
            "{d:?}"
        );
    }
}
