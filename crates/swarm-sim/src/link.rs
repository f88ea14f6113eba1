//! One direction of a peer's access link: it serves the blocks handed to
//! it one at a time, in the order they came, at its full rate.
//!
//! The simulator puts at most one block per connection on a sender's
//! uplink at a time (a connection's next block follows when the last one
//! is through, like TCP's in-order stream), so a FIFO uplink serves its
//! connections round robin, one 16 KiB block each: processor sharing at
//! block granularity, the fluid model of TCP flows through one bottleneck.
//! Unlike an exact processor-sharing clock, a block's completion is known
//! when it enters the link, so each block costs one event per link and
//! none is ever rescheduled. A block of a connection that closes while it
//! is on the link still takes its time (the bytes were in the socket's
//! send buffer).

use swarm_engine::Instant;

/// A link of `rate` bytes per second.
#[derive(Clone, Debug)]
pub struct Link {
    rate: f64,
    /// When the last block handed to the link is through, in µs (kept in
    /// f64 so that rounding does not add up over millions of blocks).
    free_at_us: f64,
}

impl Link {
    /// `rate` in bytes/s; `f64::INFINITY` passes blocks at once, `0.0` never.
    pub fn new(rate: f64) -> Self {
        assert!(rate >= 0.0, "negative link rate");
        Link {
            rate,
            free_at_us: 0.0,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// A block of `len` bytes reaches the link at `at` (never before an
    /// earlier block's `at`): when it is through, `None` if never (rate 0).
    pub fn pass(&mut self, at: Instant, len: u32) -> Option<Instant> {
        if self.rate == 0.0 {
            return None;
        }
        if self.rate.is_infinite() {
            return Some(at);
        }
        let start = self.free_at_us.max(at.0 as f64);
        self.free_at_us = start + f64::from(len) * 1e6 / self.rate;
        Some(Instant(self.free_at_us.ceil() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(us: u64) -> Instant {
        Instant(us)
    }

    #[test]
    fn blocks_queue_in_order_at_full_rate() {
        // 1 MB/s: a 1,000-byte block takes 1 ms; a second one at the same
        // time waits for the first.
        let mut l = Link::new(1e6);
        assert_eq!(l.pass(at(0), 1000), Some(at(1000)));
        assert_eq!(l.pass(at(0), 1000), Some(at(2000)));
        // An idle link starts a late block at once.
        assert_eq!(l.pass(at(5000), 500), Some(at(5500)));
    }

    #[test]
    fn infinite_and_zero_rates() {
        let mut l = Link::new(f64::INFINITY);
        assert_eq!(l.pass(at(7), 1000), Some(at(7)));
        let mut z = Link::new(0.0);
        assert_eq!(z.pass(at(0), 1000), None);
    }
}
