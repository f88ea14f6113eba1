//! One direction of a peer's access link, shared equally by the blocks
//! crossing it at the same time (processor sharing, the fluid model of TCP
//! flows through one bottleneck).
//!
//! Done with a virtual clock, the textbook way to simulate processor sharing
//! without touching every flow at every change: `served` is the number of
//! bytes each active flow has received since the link was created; it grows
//! at `rate / n` while `n` flows are active. A flow that starts when
//! `served = s` with `len` bytes finishes when `served` reaches `s + len`
//! (its *tag*). A change (a flow starts, ends or is withdrawn) costs one
//! pass over the active flows, which are few: a peer uploads to its
//! unchoked peers (4 + 1) and downloads from the peers that unchoke it.

use swarm_engine::{Duration, Instant};

/// Flows whose tags are within this many bytes of the clock are done
/// (floating-point slack; a block is 16,384 bytes).
const TAG_SLACK: f64 = 1e-6;

struct Flow<T> {
    tag: f64,
    item: T,
}

/// A link of `rate` bytes per second shared by its active flows.
pub struct SharedLink<T> {
    rate: f64,
    served: f64,
    last: Instant,
    flows: Vec<Flow<T>>,
    /// Bumped at every change: a scheduled completion event carries the
    /// generation it was computed for, and is stale if it differs.
    pub generation: u64,
}

impl<T> SharedLink<T> {
    /// `rate` in bytes/s; `f64::INFINITY` passes blocks at once, `0.0` never.
    pub fn new(rate: f64, now: Instant) -> Self {
        assert!(rate >= 0.0, "negative link rate");
        SharedLink {
            rate,
            served: 0.0,
            last: now,
            flows: Vec::new(),
            generation: 0,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn active(&self) -> usize {
        self.flows.len()
    }

    fn advance(&mut self, now: Instant) {
        if !self.flows.is_empty() && self.rate.is_finite() {
            let dt = now.saturating_since(self.last).as_secs_f64();
            self.served += dt * self.rate / self.flows.len() as f64;
        }
        self.last = self.last.max(now);
    }

    /// A block of `len` bytes starts crossing the link.
    pub fn start(&mut self, now: Instant, len: u32, item: T) {
        self.advance(now);
        self.flows.push(Flow {
            tag: self.served + f64::from(len),
            item,
        });
        self.generation += 1;
    }

    /// When the next block finishes, if any ever does.
    pub fn next_completion(&self) -> Option<Instant> {
        let min = self.flows.iter().map(|f| f.tag).reduce(f64::min)?;
        if self.rate.is_infinite() {
            return Some(self.last);
        }
        if self.rate == 0.0 {
            return None;
        }
        let secs = (min - self.served).max(0.0) * self.flows.len() as f64 / self.rate;
        let us = (secs * 1e6).ceil() as u64;
        Some(self.last + Duration::from_micros(us))
    }

    /// Moves the blocks finished by `now` into `out`, in tag order (ties:
    /// start order).
    pub fn take_done(&mut self, now: Instant, out: &mut Vec<T>) {
        self.advance(now);
        let bar = if self.rate.is_infinite() {
            f64::INFINITY
        } else {
            self.served + TAG_SLACK
        };
        let mut done: Vec<Flow<T>> = Vec::new();
        let mut i = 0;
        while i < self.flows.len() {
            if self.flows[i].tag <= bar {
                done.push(self.flows.remove(i));
            } else {
                i += 1;
            }
        }
        if !done.is_empty() {
            self.generation += 1;
        }
        done.sort_by(|a, b| a.tag.total_cmp(&b.tag));
        out.extend(done.into_iter().map(|f| f.item));
    }

    /// Withdraws the blocks `drop` selects (their connection closed).
    pub fn withdraw(&mut self, now: Instant, mut drop: impl FnMut(&T) -> bool) {
        self.advance(now);
        let before = self.flows.len();
        self.flows.retain(|f| !drop(&f.item));
        if self.flows.len() != before {
            self.generation += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(us: u64) -> Instant {
        Instant(us)
    }

    #[test]
    fn two_flows_share_the_rate() {
        // 1 MB/s: one 1,000-byte block alone takes 1 ms; two at once 2 ms.
        let mut l = SharedLink::new(1e6, at(0));
        l.start(at(0), 1000, 'a');
        l.start(at(0), 1000, 'b');
        assert_eq!(l.next_completion(), Some(at(2000)));
        let mut out = Vec::new();
        l.take_done(at(2000), &mut out);
        assert_eq!(out, vec!['a', 'b']);
        assert_eq!(l.next_completion(), None);
    }

    #[test]
    fn a_late_flow_slows_the_first() {
        let mut l = SharedLink::new(1e6, at(0));
        l.start(at(0), 1000, 'a');
        // After 500 µs 'a' has 500 bytes left; then both run at half rate.
        l.start(at(500), 1000, 'b');
        assert_eq!(l.next_completion(), Some(at(1500)));
        let mut out = Vec::new();
        l.take_done(at(1500), &mut out);
        assert_eq!(out, vec!['a']);
        // 'b' got 500 bytes, 500 left alone at full rate.
        assert_eq!(l.next_completion(), Some(at(2000)));
        l.withdraw(at(1800), |&c| c == 'b');
        assert_eq!(l.next_completion(), None);
    }

    #[test]
    fn infinite_and_zero_rates() {
        let mut l = SharedLink::new(f64::INFINITY, at(7));
        l.start(at(7), 1000, 1);
        assert_eq!(l.next_completion(), Some(at(7)));
        let mut z = SharedLink::new(0.0, at(0));
        z.start(at(0), 1000, 1);
        assert_eq!(z.next_completion(), None);
    }
}
