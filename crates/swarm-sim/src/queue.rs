//! The event queue: events in virtual time, ties broken by insertion order,
//! so a run replays exactly from its seed.
//!
//! Two lanes, one order: a binary heap, and a FIFO for events scheduled a
//! fixed delay ahead (a control message's arrival is `now` plus the same
//! latency every time, so those come in time order already: a push and a
//! pop cost O(1) instead of O(log n), and the heap stays small). `pop`
//! takes the earlier head of the two by (time, insertion number), so the
//! order is exactly that of one heap.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use swarm_engine::Instant;

struct Entry<E> {
    at: Instant,
    seq: u64,
    ev: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Entry<E> {
    // Reversed: BinaryHeap is a max-heap, we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Events ordered by time, then by the order they were scheduled.
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    /// Entries in (time, insertion) order: see [`EventQueue::push_in_order`].
    fifo: VecDeque<Entry<E>>,
    seq: u64,
    popped: u64,
    peak: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            fifo: VecDeque::new(),
            seq: 0,
            popped: 0,
            peak: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, at: Instant, ev: E) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            ev,
        });
        self.peak = self.peak.max(self.len());
    }

    /// Like [`EventQueue::push`], cheaper for an event due no earlier than
    /// the last one pushed this way (a fixed delay from a clock that never
    /// goes back): it joins the FIFO lane. An earlier one goes to the heap,
    /// so the order is the same either way.
    pub fn push_in_order(&mut self, at: Instant, ev: E) {
        if self.fifo.back().is_some_and(|b| b.at > at) {
            self.push(at, ev);
            return;
        }
        self.seq += 1;
        self.fifo.push_back(Entry {
            at,
            seq: self.seq,
            ev,
        });
        self.peak = self.peak.max(self.len());
    }

    pub fn pop(&mut self) -> Option<(Instant, E)> {
        let from_fifo = match (self.fifo.front(), self.heap.peek()) {
            (Some(f), Some(h)) => (f.at, f.seq) < (h.at, h.seq),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let e = if from_fifo {
            self.fifo.pop_front()?
        } else {
            self.heap.pop()?
        };
        self.popped += 1;
        Some((e.at, e.ev))
    }

    pub fn peek_time(&self) -> Option<Instant> {
        let f = self.fifo.front().map(|e| e.at);
        let h = self.heap.peek().map(|e| e.at);
        match (f, h) {
            (Some(f), Some(h)) => Some(f.min(h)),
            (f, h) => f.or(h),
        }
    }

    /// Events handled so far.
    pub fn popped(&self) -> u64 {
        self.popped
    }

    /// The most events ever waiting at once (a memory figure).
    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn len(&self) -> usize {
        self.heap.len() + self.fifo.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.fifo.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_fifo() {
        let mut q = EventQueue::default();
        q.push(Instant(5), 'a');
        q.push(Instant(1), 'b');
        q.push(Instant(5), 'c');
        q.push(Instant(1), 'd');
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec!['b', 'd', 'a', 'c']);
        assert_eq!(q.popped(), 4);
    }

    #[test]
    fn the_fifo_lane_keeps_one_order() {
        // The same pushes through both lanes, or through the heap alone,
        // pop in the same order: by time, then by insertion.
        let pushes: [(u64, bool); 9] = [
            (5, true),
            (3, false),
            (5, false),
            (7, true),
            (7, true),
            (6, true), // earlier than the lane's last: goes to the heap
            (1, false),
            (7, false),
            (9, true),
        ];
        let mut both = EventQueue::default();
        let mut heap = EventQueue::default();
        for (i, &(t, lane)) in pushes.iter().enumerate() {
            if lane {
                both.push_in_order(Instant(t), i);
            } else {
                both.push(Instant(t), i);
            }
            heap.push(Instant(t), i);
        }
        assert_eq!(both.len(), pushes.len());
        assert_eq!(both.peek_time(), Some(Instant(1)));
        let a: Vec<_> = std::iter::from_fn(|| both.pop()).collect();
        let b: Vec<_> = std::iter::from_fn(|| heap.pop()).collect();
        assert_eq!(a, b);
        assert_eq!(
            a.iter().map(|&(_, i)| i).collect::<Vec<_>>(),
            vec![6, 1, 0, 2, 5, 3, 4, 7, 8]
        );
        assert!(both.is_empty());
    }
}
