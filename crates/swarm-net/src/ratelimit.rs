//! Rate limits (`--max-upload-rate`, `--max-download-rate`): token buckets
//! that connections' reader or writer tasks pay into. A torrent's own limit
//! is one bucket its connections share. A process-wide limit is a
//! [`FairShare`]: one bucket per torrent, whose rates are re-divided every
//! second max-min fairly ([`fair_shares`]): a torrent that needs less than
//! an equal share keeps what it uses (plus room to grow), the rest is split
//! among the others, and the rates always add up to the limit.
//!
//! Tokens are bytes. A task takes the bytes it just moved (or is about to
//! move) and sleeps off any debt, so a burst is at most the bucket size and
//! the long-run rate is the limit. The bucket is IO bookkeeping, not engine
//! state: a short `std::sync::Mutex` around two numbers is enough.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::time::{Duration, Instant};

/// Smallest bucket, in bytes: a few blocks, so 16 KiB messages pass.
pub const BURST_MIN_BYTES: u64 = 64 * 1024;
/// The rate of a bucket that limits nothing (a limit switched off while
/// connections hold the bucket): taking from it costs one atomic load.
pub const UNLIMITED: u64 = u64::MAX;

/// A token bucket of `rate` bytes per second; its rate may change at any
/// time ([`RateLimiter::set_limit`]), the connections holding it keep it.
#[derive(Debug)]
pub struct RateLimiter {
    rate: AtomicU64,
    state: Mutex<(f64, Instant)>,
    /// Bytes taken since [`RateLimiter::take_used`] (for [`FairShare`]).
    used: AtomicU64,
}

impl RateLimiter {
    /// `rate` in bytes per second (at least 1). The bucket holds a quarter
    /// second of traffic, and never less than [`BURST_MIN_BYTES`].
    pub fn new(rate: u64) -> Self {
        let rate = rate.max(1);
        RateLimiter {
            rate: AtomicU64::new(rate),
            state: Mutex::new((burst(rate) as f64, Instant::now())),
            used: AtomicU64::new(0),
        }
    }

    /// A bucket of `limit` bytes/s, or one that limits nothing (`None`).
    pub fn with_limit(limit: Option<u64>) -> Self {
        Self::new(limit.unwrap_or(UNLIMITED))
    }

    /// A new limit from now on (`None`: none); the tokens held are cut to
    /// the new bucket size at the next take.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.set_rate(limit.unwrap_or(UNLIMITED));
    }

    /// The limit, if there is one.
    pub fn limit(&self) -> Option<u64> {
        Some(self.rate()).filter(|&r| r != UNLIMITED)
    }

    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// A new rate from now on (at least 1 byte/s); the bucket keeps its size.
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate.max(1), Ordering::Relaxed);
    }

    /// Bytes taken since the last call.
    pub fn take_used(&self) -> u64 {
        self.used.swap(0, Ordering::Relaxed)
    }

    /// Takes `bytes` tokens; returns how long the caller must wait to pay
    /// back the debt (zero while tokens remain).
    pub fn take_delay(&self, bytes: usize) -> Duration {
        if self.rate() == UNLIMITED {
            self.used.fetch_add(bytes as u64, Ordering::Relaxed);
            return Duration::ZERO;
        }
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.used.fetch_add(bytes as u64, Ordering::Relaxed);
        if self.rate() == UNLIMITED {
            return Duration::ZERO;
        }
        let burst = burst(self.rate()) as f64;
        let rate = self.rate() as f64;
        let now = Instant::now();
        let (tokens, last) = *state;
        let refill = now.saturating_duration_since(last).as_secs_f64() * rate;
        let tokens = (tokens + refill).min(burst) - bytes as f64;
        *state = (tokens, now);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / rate)
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

/// The bucket of a `rate`: a quarter second of traffic, at least
/// [`BURST_MIN_BYTES`].
fn burst(rate: u64) -> u64 {
    (rate / 4).max(BURST_MIN_BYTES)
}

/// How often a [`FairShare`] re-divides its rate.
pub const FAIR_SHARE_INTERVAL: Duration = Duration::from_secs(1);
/// A member that used less than this fraction of its rate was not held back
/// by it: it gets what it used plus room to grow, not an equal share.
const SATISFIED_FRACTION: f64 = 0.8;
/// Room to grow given to a satisfied member: a quarter more than it used,
/// and at least this many bytes/s.
const GROWTH_MIN: u64 = 16 * 1024;

/// Max-min fair shares of `total` bytes/s among members that each used
/// `used` bytes/s under a rate of `rate`. A member held back by its rate
/// (it used at least 80% of it) wants all it can get; one that used less
/// wants 25% more than it used (at least 16 KiB/s more). Water-filling:
/// the smallest wants are met first, each at most an equal split of what
/// is left; what nobody wants is split equally, so the shares add up to
/// `total`.
pub fn fair_shares(total: u64, members: &[(u64, u64)]) -> Vec<u64> {
    let n = members.len();
    if n == 0 {
        return Vec::new();
    }
    let want: Vec<u64> = members
        .iter()
        .map(|&(used, rate)| {
            if used as f64 >= SATISFIED_FRACTION * rate as f64 {
                u64::MAX
            } else {
                used.saturating_add((used / 4).max(GROWTH_MIN))
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (want[i], i));
    let mut shares = vec![0u64; n];
    let mut left = total;
    for (k, &i) in order.iter().enumerate() {
        let equal = left / (n - k) as u64;
        shares[i] = want[i].min(equal);
        left -= shares[i];
    }
    let extra = left / n as u64;
    for s in &mut shares {
        *s += extra;
    }
    shares
}

/// A process-wide rate shared max-min fairly by its members (torrents):
/// each member has its own bucket, re-rated every [`FAIR_SHARE_INTERVAL`]
/// by [`FairShare::rebalance`]. Members leave when their last `Arc` drops.
#[derive(Debug)]
pub struct FairShare {
    /// Bytes/s, or [`UNLIMITED`] (the limit switched off).
    total: AtomicU64,
    members: Mutex<Vec<Weak<RateLimiter>>>,
}

impl FairShare {
    pub fn new(total: u64) -> Self {
        Self::with_limit(Some(total))
    }

    /// A share of `limit` bytes/s, or one that limits nothing (`None`)
    /// until [`FairShare::set_limit`].
    pub fn with_limit(limit: Option<u64>) -> Self {
        FairShare {
            total: AtomicU64::new(limit.map_or(UNLIMITED, |t| t.max(1))),
            members: Mutex::new(Vec::new()),
        }
    }

    /// The limit, if there is one.
    pub fn limit(&self) -> Option<u64> {
        Some(self.total.load(Ordering::Relaxed)).filter(|&t| t != UNLIMITED)
    }

    /// A new limit (`None`: none), applied to every member at once: an
    /// equal share each until the next rebalance.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.total
            .store(limit.map_or(UNLIMITED, |t| t.max(1)), Ordering::Relaxed);
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        self.share_equally(&mut members);
    }

    fn share_equally(&self, members: &mut Vec<Weak<RateLimiter>>) {
        members.retain(|m| m.strong_count() > 0);
        let total = self.total.load(Ordering::Relaxed);
        let n = members.len().max(1) as u64;
        let each = if total == UNLIMITED {
            UNLIMITED
        } else {
            total / n
        };
        for m in members.iter().filter_map(Weak::upgrade) {
            m.set_rate(each);
        }
    }

    /// A bucket for a new member; the members are re-rated at once (an
    /// equal share for the newcomer to start with).
    pub fn join(&self) -> Arc<RateLimiter> {
        let limiter = Arc::new(RateLimiter::new(self.total.load(Ordering::Relaxed)));
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.push(Arc::downgrade(&limiter));
        self.share_equally(&mut members);
        limiter
    }

    /// Re-divides the rate by what each member used since the last call
    /// (call every [`FAIR_SHARE_INTERVAL`]); nothing to do without a limit.
    pub fn rebalance(&self, elapsed: Duration) {
        let total = self.total.load(Ordering::Relaxed);
        if total == UNLIMITED {
            return;
        }
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.retain(|m| m.strong_count() > 0);
        let live: Vec<Arc<RateLimiter>> = members.iter().filter_map(Weak::upgrade).collect();
        let secs = elapsed.as_secs_f64().max(1e-3);
        let usage: Vec<(u64, u64)> = live
            .iter()
            .map(|m| ((m.take_used() as f64 / secs) as u64, m.rate()))
            .collect();
        for (m, share) in live.iter().zip(fair_shares(total, &usage)) {
            m.set_rate(share);
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

    #[test]
    fn fair_shares_are_max_min_fair_and_add_up() {
        const M: u64 = 1_000_000;
        // Three held back (each used its whole rate): equal thirds.
        let s = fair_shares(9 * M, &[(3 * M, 3 * M), (3 * M, 3 * M), (3 * M, 3 * M)]);
        assert_eq!(s, vec![3 * M, 3 * M, 3 * M]);
        // One needs little (its peers are slow): it keeps what it uses plus
        // room to grow, the two others split the rest.
        let s = fair_shares(9 * M, &[(M / 2, 3 * M), (3 * M, 3 * M), (3 * M, 3 * M)]);
        assert_eq!(s[0], M / 2 + M / 8);
        assert_eq!(s[1], s[2]);
        assert!(s[1] > 4 * M, "{s:?}");
        assert_eq!(s.iter().sum::<u64>(), 9 * M - (9 * M - s[0]) % 2);
        // A newcomer that used its small start rate is held back: next
        // round it gets an equal share.
        let s = fair_shares(10 * M, &[(16_000, 16_384), (10 * M, 10 * M)]);
        assert_eq!(s, vec![5 * M, 5 * M]);
        // Nobody needs much: the rest is split equally, the total holds.
        let s = fair_shares(10 * M, &[(0, 5 * M), (0, 5 * M)]);
        assert_eq!(s, vec![5 * M, 5 * M]);
        assert!(fair_shares(M, &[]).is_empty());
    }

    #[test]
    fn members_of_a_fair_share_start_equal_and_leave_when_dropped() {
        let f = FairShare::new(1_000_000);
        let a = f.join();
        assert_eq!(a.rate(), 1_000_000);
        let b = f.join();
        assert_eq!((a.rate(), b.rate()), (500_000, 500_000));
        drop(b);
        // `a` used its whole share: held back, it gets everything now.
        let _ = a.take_delay(500_000);
        f.rebalance(Duration::from_secs(1));
        assert_eq!(a.rate(), 1_000_000);
    }
    #[test]
    fn a_limit_switched_on_changed_and_off_acts_on_buckets_already_held() {
        // A torrent's own bucket, held by its connections from the start.
        let own = RateLimiter::with_limit(None);
        assert_eq!(own.limit(), None);
        assert_eq!(
            own.take_delay(10_000_000),
            Duration::ZERO,
            "no limit: no wait"
        );
        own.set_limit(Some(100_000));
        assert_eq!(own.limit(), Some(100_000));
        // The tokens are cut to the new bucket (64 KiB): 1 MB more is ~9.4 s of debt.
        let d = own.take_delay(1_000_000);
        assert!(
            d > Duration::from_secs(9) && d < Duration::from_secs(10),
            "{d:?}"
        );
        own.set_limit(None);
        assert_eq!(own.take_delay(10_000_000), Duration::ZERO);

        // The process's share: two members joined while it was off.
        let share = FairShare::with_limit(None);
        let (a, b) = (share.join(), share.join());
        assert_eq!((a.limit(), b.limit()), (None, None));
        share.rebalance(Duration::from_secs(1));
        assert_eq!(a.limit(), None, "nothing to rebalance without a limit");
        share.set_limit(Some(1_000_000));
        assert_eq!(share.limit(), Some(1_000_000));
        assert_eq!(
            (a.rate(), b.rate()),
            (500_000, 500_000),
            "equal shares at once"
        );
        assert!(a.take_delay(2_000_000) > Duration::from_secs(3));
        share.set_limit(None);
        assert_eq!((a.limit(), b.limit()), (None, None));
        assert_eq!(b.take_delay(50_000_000), Duration::ZERO);
    }
}
