//! The routing table (BEP 5): k-buckets over the XOR distance to our id.
//!
//! Bucket `i` holds the nodes whose distance to us has exactly `i` leading
//! zero bits, except the last bucket, which holds every node at least as
//! close (it is the one that contains our own id). Only that last bucket
//! splits when it is full, so the table keeps up to k nodes at each distance
//! scale and knows our neighbourhood best: a lookup converges in O(log n)
//! steps.
//!
//! A node is *good* if it answered one of our queries in the last 15
//! minutes, or answered once and queried us in the last 15 minutes;
//! *questionable* after 15 minutes of silence; *bad* after
//! [`FAILURES_BAD`] queries in a row without an answer. A full bucket
//! takes a new node only in place of a bad one; otherwise the newcomer
//! waits in the bucket's replacement cache and the table asks the driver
//! to ping the stalest questionable node: if it fails it turns bad and the
//! newest replacement takes its place.
//!
//! Invariants (`check_invariants`): every node sits in the bucket its
//! distance maps to; no bucket holds more than k nodes or k replacements;
//! no id appears twice; our own id is never in the table.

use swarm_wire::krpc::{NodeId, NodeInfo};

use crate::time::{Duration, Instant, Rng};

/// Nodes per bucket (BEP 5's k).
pub const K: usize = 8;
/// Silence after which a good node becomes questionable.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// Unanswered queries in a row that make a node bad.
pub const FAILURES_BAD: u8 = 2;
/// Most buckets: one per bit of the id space.
pub const BUCKETS_MAX: usize = 160;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub info: NodeInfo,
    /// When it last answered a query of ours.
    pub last_response: Option<Instant>,
    /// When it last queried us.
    pub last_query: Option<Instant>,
    /// Unanswered queries in a row.
    pub failures: u8,
    /// A liveness ping is in flight (so only one is sent).
    pub pinging: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Good,
    Questionable,
    Bad,
}

impl Node {
    fn new(info: NodeInfo) -> Self {
        Node {
            info,
            last_response: None,
            last_query: None,
            failures: 0,
            pinging: false,
        }
    }

    pub fn state(&self, now: Instant) -> NodeState {
        if self.failures >= FAILURES_BAD {
            return NodeState::Bad;
        }
        let fresh = |t: Option<Instant>| t.is_some_and(|t| now.since(t) < GOOD_FOR);
        if fresh(self.last_response) || (self.last_response.is_some() && fresh(self.last_query)) {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }

    fn last_seen(&self) -> Instant {
        self.last_response
            .max(self.last_query)
            .unwrap_or(Instant(0))
    }
}

#[derive(Clone, Debug)]
pub struct Bucket {
    pub nodes: Vec<Node>,
    pub replacements: Vec<Node>,
    /// When a node was last added or answered (for the 15-minute refresh).
    pub last_changed: Instant,
}

/// How a node was heard from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contact {
    /// It answered our query.
    Response,
    /// It sent us a query.
    Query,
}

/// What [`RoutingTable::heard_from`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Already in the table (its times updated).
    Updated,
    Added,
    /// The bucket is full: the node waits as a replacement, and this node
    /// (the stalest questionable one) should be pinged.
    Waiting {
        ping: Option<NodeInfo>,
    },
    /// Our own id, or a node claiming another's id from another address.
    Refused,
}

#[derive(Clone, Debug)]
pub struct RoutingTable {
    own: NodeId,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    pub fn new(own: NodeId, now: Instant) -> Self {
        RoutingTable {
            own,
            buckets: vec![Bucket {
                nodes: Vec::new(),
                replacements: Vec::new(),
                last_changed: now,
            }],
        }
    }

    pub fn own_id(&self) -> NodeId {
        self.own
    }

    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// Nodes in the table (not counting replacements).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn index(&self, id: &NodeId) -> usize {
        (self.own.distance(id).leading_zeros() as usize).min(self.buckets.len() - 1)
    }

    /// Records a contact with `info` and admits it if there is room.
    pub fn heard_from(&mut self, now: Instant, info: NodeInfo, contact: Contact) -> Admission {
        if info.id == self.own {
            return Admission::Refused;
        }
        loop {
            let i = self.index(&info.id);
            let count = self.buckets.len();
            let bucket = &mut self.buckets[i];
            if let Some(n) = bucket.nodes.iter_mut().find(|n| n.info.id == info.id) {
                if n.info.addr != info.addr {
                    return Admission::Refused;
                }
                touch(n, now, contact);
                if contact == Contact::Response {
                    bucket.last_changed = now;
                }
                return Admission::Updated;
            }
            if bucket.nodes.len() < K {
                bucket.replacements.retain(|r| r.info.id != info.id);
                let mut n = Node::new(info);
                touch(&mut n, now, contact);
                bucket.nodes.push(n);
                bucket.last_changed = now;
                return Admission::Added;
            }
            if i == count - 1 && count < BUCKETS_MAX {
                self.split();
                continue;
            }
            if let Some(bad) = bucket
                .nodes
                .iter_mut()
                .find(|n| n.state(now) == NodeState::Bad)
            {
                *bad = Node::new(info);
                touch(bad, now, contact);
                bucket.last_changed = now;
                return Admission::Added;
            }
            // Wait as a replacement (newest last, oldest dropped).
            match bucket
                .replacements
                .iter_mut()
                .find(|r| r.info.id == info.id)
            {
                Some(r) => {
                    r.info.addr = info.addr;
                    touch(r, now, contact);
                }
                None => {
                    if bucket.replacements.len() >= K {
                        bucket.replacements.remove(0);
                    }
                    let mut n = Node::new(info);
                    touch(&mut n, now, contact);
                    bucket.replacements.push(n);
                }
            }
            let ping = bucket
                .nodes
                .iter_mut()
                .filter(|n| n.state(now) == NodeState::Questionable && !n.pinging)
                .min_by_key(|n| n.last_seen())
                .map(|n| {
                    n.pinging = true;
                    n.info
                });
            return Admission::Waiting { ping };
        }
    }

    /// A query to `info` went unanswered. A node that turns bad is replaced
    /// by the newest replacement, if any.
    pub fn failed(&mut self, now: Instant, info: &NodeInfo) {
        let i = self.index(&info.id);
        let bucket = &mut self.buckets[i];
        let Some(pos) = bucket
            .nodes
            .iter()
            .position(|n| n.info.id == info.id && n.info.addr == info.addr)
        else {
            bucket.replacements.retain(|r| r.info != *info);
            return;
        };
        let n = &mut bucket.nodes[pos];
        n.failures = n.failures.saturating_add(1);
        n.pinging = false;
        if n.state(now) == NodeState::Bad
            && let Some(r) = bucket.replacements.pop()
        {
            bucket.nodes[pos] = r;
            bucket.last_changed = now;
        }
    }

    /// Splits the last bucket: the nodes closer than its depth move to a new last bucket.
    fn split(&mut self) {
        let depth = self.buckets.len() - 1;
        let own = self.own;
        let last = &mut self.buckets[depth];
        let closer = |n: &Node| own.distance(&n.info.id).leading_zeros() as usize > depth;
        let (near, far): (Vec<Node>, Vec<Node>) = last.nodes.drain(..).partition(closer);
        let (near_r, far_r): (Vec<Node>, Vec<Node>) = last.replacements.drain(..).partition(closer);
        last.nodes = far;
        last.replacements = far_r;
        let changed = last.last_changed;
        self.buckets.push(Bucket {
            nodes: near,
            replacements: near_r,
            last_changed: changed,
        });
    }

    /// Up to `n` nodes closest to `target` that are not bad, closest first.
    pub fn closest(&self, now: Instant, target: &NodeId, n: usize) -> Vec<NodeInfo> {
        let mut all: Vec<(NodeId, NodeInfo)> = self
            .buckets
            .iter()
            .flat_map(|b| &b.nodes)
            .filter(|node| node.state(now) != NodeState::Bad)
            .map(|node| (node.info.id.distance(target), node.info))
            .collect();
        all.sort_unstable_by_key(|(d, _)| *d);
        all.truncate(n);
        all.into_iter().map(|(_, i)| i).collect()
    }

    /// Every node in the table (for saving it).
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.buckets.iter().flat_map(|b| &b.nodes)
    }

    /// Buckets not changed for `GOOD_FOR`, as a random id in each one's range
    /// (a lookup for it refreshes the bucket). Marks them refreshed.
    pub fn take_stale(&mut self, now: Instant, rng: &mut Rng) -> Vec<NodeId> {
        let mut out = Vec::new();
        let last = self.buckets.len() - 1;
        for (i, b) in self.buckets.iter_mut().enumerate() {
            if now.since(b.last_changed) >= GOOD_FOR {
                b.last_changed = now;
                out.push(random_id_at(&self.own, i, i == last, rng));
            }
        }
        out
    }

    /// A random id in each bucket with room, but ours (a lookup for each
    /// fills them after bootstrap: the self-lookup only fills the buckets
    /// near us).
    pub fn sparse(&self, rng: &mut Rng) -> Vec<NodeId> {
        let last = self.buckets.len() - 1;
        (0..last)
            .filter(|&i| self.buckets[i].nodes.len() < K)
            .map(|i| random_id_at(&self.own, i, false, rng))
            .collect()
    }

    /// The questionable node heard from longest ago, marked as being
    /// pinged (the node pings one per table every housekeeping tick, so a
    /// table of n nodes is checked every n ticks and dead nodes turn bad).
    pub fn stalest_questionable(&mut self, now: Instant) -> Option<NodeInfo> {
        let n = self
            .buckets
            .iter_mut()
            .flat_map(|b| b.nodes.iter_mut())
            .filter(|n| n.state(now) == NodeState::Questionable && !n.pinging)
            .min_by_key(|n| n.last_seen())?;
        n.pinging = true;
        Some(n.info)
    }

    /// Counts of good, questionable and bad nodes.
    pub fn states(&self, now: Instant) -> [usize; 3] {
        let mut c = [0; 3];
        for n in self.nodes() {
            c[match n.state(now) {
                NodeState::Good => 0,
                NodeState::Questionable => 1,
                NodeState::Bad => 2,
            }] += 1;
        }
        c
    }

    pub fn check_invariants(&self) {
        assert!(!self.buckets.is_empty() && self.buckets.len() <= BUCKETS_MAX);
        let mut seen = std::collections::BTreeSet::new();
        for (i, b) in self.buckets.iter().enumerate() {
            assert!(b.nodes.len() <= K, "bucket {i} over k");
            assert!(b.replacements.len() <= K, "bucket {i} replacements over k");
            for n in b.nodes.iter().chain(&b.replacements) {
                assert_ne!(n.info.id, self.own, "own id in the table");
                assert_eq!(self.index(&n.info.id), i, "node in the wrong bucket");
            }
            for n in &b.nodes {
                assert!(seen.insert(n.info.id), "id twice in the table");
            }
        }
    }
}

fn touch(n: &mut Node, now: Instant, contact: Contact) {
    match contact {
        Contact::Response => {
            n.last_response = Some(now);
            n.failures = 0;
            n.pinging = false;
        }
        Contact::Query => n.last_query = Some(now),
    }
}

/// A random id whose distance to `own` has exactly `i` leading zeros (or at
/// least `i`, for the last bucket).
pub fn random_id_at(own: &NodeId, i: usize, last: bool, rng: &mut Rng) -> NodeId {
    let mut d: [u8; 20] = rng.bytes();
    // Clear the first i bits, then set bit i unless this is the last bucket.
    for bit in 0..i.min(160) {
        d[bit / 8] &= !(0x80 >> (bit % 8));
    }
    if !last && i < 160 {
        d[i / 8] |= 0x80 >> (i % 8);
    }
    own.distance(&NodeId(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: NodeId, port: u16) -> NodeInfo {
        NodeInfo {
            id,
            addr: ([127, 0, 0, 1], port).into(),
        }
    }

    #[test]
    fn splits_only_the_bucket_holding_our_id() {
        let own = NodeId([0; 20]);
        let mut t = RoutingTable::new(own, Instant(0));
        let mut rng = Rng::new(1);
        // 8 far nodes (first bit set) fill bucket 0; then near ones force splits.
        for p in 0..8 {
            let mut id: [u8; 20] = rng.bytes();
            id[0] |= 0x80;
            assert_eq!(
                t.heard_from(Instant(0), info(NodeId(id), p), Contact::Response),
                Admission::Added
            );
        }
        assert_eq!(t.buckets().len(), 1);
        let mut near: [u8; 20] = rng.bytes();
        near[0] = 0x01; // 7 leading zeros
        assert_eq!(
            t.heard_from(Instant(0), info(NodeId(near), 100), Contact::Response),
            Admission::Added
        );
        // Splitting went on until the far nodes and the near one parted.
        assert_eq!(t.buckets().len(), 2);
        assert_eq!(t.buckets()[0].nodes.len(), 8);
        // Bucket 0 is full and is not ours: a ninth far node waits.
        let mut far: [u8; 20] = rng.bytes();
        far[0] |= 0x80;
        let a = t.heard_from(Instant(1), info(NodeId(far), 200), Contact::Response);
        assert_eq!(
            a,
            Admission::Waiting { ping: None },
            "all good: none to ping"
        );
        assert_eq!(t.buckets()[0].replacements.len(), 1);
        t.check_invariants();
        for i in 0..20 {
            let id = random_id_at(&own, i, false, &mut rng);
            assert_eq!(own.distance(&id).leading_zeros() as usize, i);
        }
    }

    #[test]
    fn aging_and_replacement() {
        let own = NodeId([0; 20]);
        let mut t = RoutingTable::new(own, Instant(0));
        let mut rng = Rng::new(2);
        let mut olds = Vec::new();
        // Fill bucket 0 (one split away from ours) with far nodes.
        for p in 0..8 {
            let mut id: [u8; 20] = rng.bytes();
            id[0] |= 0x80;
            olds.push(info(NodeId(id), p));
            t.heard_from(Instant(0), olds[p as usize], Contact::Response);
        }
        let mut near = [0u8; 20];
        near[19] = 1;
        t.heard_from(Instant(0), info(NodeId(near), 99), Contact::Response);
        assert_eq!(t.states(Instant(0)), [9, 0, 0]);
        // 15 minutes later all are questionable.
        let later = Instant(0) + GOOD_FOR;
        assert_eq!(t.states(later), [0, 9, 0]);
        // A newcomer waits and names the stalest questionable node to ping.
        let mut id: [u8; 20] = rng.bytes();
        id[0] |= 0x80;
        let newcomer = info(NodeId(id), 500);
        let Admission::Waiting { ping: Some(victim) } =
            t.heard_from(later, newcomer, Contact::Query)
        else {
            panic!("expected a ping request");
        };
        // It fails twice: bad, replaced by the newcomer.
        t.failed(later, &victim);
        assert!(t.nodes().any(|n| n.info == victim));
        t.failed(later, &victim);
        assert!(!t.nodes().any(|n| n.info == victim));
        assert!(t.nodes().any(|n| n.info == newcomer));
        t.check_invariants();
        // A node answering again is good again.
        t.heard_from(later, olds[1], Contact::Response);
        assert_eq!(t.states(later)[0], 1);
        // Claiming a known id from another address is refused.
        let spoof = info(olds[1].id, 4444);
        assert_eq!(
            t.heard_from(later, spoof, Contact::Query),
            Admission::Refused
        );
    }
}
