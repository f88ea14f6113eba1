//! Peer exchange (BEP 11), sans-IO: which addresses we tell each connected
//! peer, and which we take from them.
//!
//! Every connected peer that enabled `ut_pex` gets, at most once every
//! [`PEX_INTERVAL`], the difference between the listen addresses of our
//! other connections now and what we told it before: at most
//! [`PEX_ADDED_MAX`] added and [`PEX_DROPPED_MAX`] dropped per message (the
//! rest follows in the next). The first message goes out
//! [`PEX_FIRST_DELAY`] after the peer's extension handshake. A peer's
//! address is shared only when we know where it listens: the address we
//! dialled, or for an incoming connection its IP with the `p` of its
//! extension handshake.
//!
//! Received messages give candidate addresses (for the endpoint's
//! `handle_peers(.., PeerSource::Pex, ..)`), minus the ones we are connected
//! to; a peer's messages closer together than [`PEX_RECEIVE_INTERVAL_MIN`]
//! are ignored (and counted).
//!
//! A private torrent (BEP 27) never exchanges peers: [`Pex::new`] with
//! `private` makes every input a no-op and sends nothing.
//!
//! # Invariants ([`Pex::check_invariants`])
//! - Private: no peer is tracked, nothing queued.
//! - What we told a peer never holds its own address, and at most
//!   [`PEX_PEERS_MAX`] addresses.
//!
//! # Memory
//! At most [`PEX_PEERS_MAX`] connections tracked (~120 bytes each), and per
//! peer the set of addresses it was told (at most [`PEX_PEERS_MAX`], ~40
//! bytes each): with the default 50 connections a torrent, about 100 KB at
//! worst.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use swarm_wire::peer::{PEX_ADDED_MAX, PEX_DROPPED_MAX, PexFlags, PexMessage};

use crate::ids::PeerKey;
use crate::time::{Duration, Instant};

/// Least time between two messages to one peer (BEP 11: once a minute).
pub const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// From a peer's extension handshake to our first message to it.
pub const PEX_FIRST_DELAY: Duration = Duration::from_secs(3);
/// A peer's messages closer together than this are ignored (a well-behaved
/// peer sends one a minute; some send their first two quickly).
pub const PEX_RECEIVE_INTERVAL_MIN: Duration = Duration::from_secs(20);
/// Connections tracked per torrent (and so addresses told to one peer).
pub const PEX_PEERS_MAX: usize = 200;

struct PexPeer {
    /// Where it accepts connections, if known.
    listen: Option<SocketAddr>,
    /// We dialled it.
    outgoing: bool,
    /// It enabled `ut_pex`: it is told, and may tell us.
    enabled: bool,
    told: BTreeSet<SocketAddr>,
    next_send: Option<Instant>,
    last_received: Option<Instant>,
}

/// One torrent's peer exchange. See the module docs.
pub struct Pex {
    private: bool,
    peers: BTreeMap<PeerKey, PexPeer>,
    transmit: VecDeque<(PeerKey, PexMessage)>,
    ignored_too_frequent: u64,
}

impl Pex {
    /// `private`: the torrent is private (BEP 27); exchange nothing.
    pub fn new(private: bool) -> Self {
        Pex {
            private,
            peers: BTreeMap::new(),
            transmit: VecDeque::new(),
            ignored_too_frequent: 0,
        }
    }

    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Received messages ignored because they came too soon.
    pub fn ignored_too_frequent(&self) -> u64 {
        self.ignored_too_frequent
    }

    /// A connection of this torrent is established. `listen`: the address we
    /// dialled, or `None` for an incoming one until [`Self::set_listen`].
    pub fn peer_connected(&mut self, peer: PeerKey, listen: Option<SocketAddr>, outgoing: bool) {
        if self.private || self.peers.len() >= PEX_PEERS_MAX {
            return;
        }
        self.peers.insert(
            peer,
            PexPeer {
                listen,
                outgoing,
                enabled: false,
                told: BTreeSet::new(),
                next_send: None,
                last_received: None,
            },
        );
    }

    /// The peer's listen address became known (incoming: IP + handshake `p`).
    pub fn set_listen(&mut self, peer: PeerKey, listen: SocketAddr) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.listen = Some(listen);
            p.told.remove(&listen);
        }
    }

    /// The peer's extension handshake enabled (or, with a later handshake,
    /// disabled) `ut_pex`.
    pub fn set_enabled(&mut self, now: Instant, peer: PeerKey, enabled: bool) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if enabled && !p.enabled {
                p.next_send = Some(now + PEX_FIRST_DELAY);
            }
            if !enabled {
                p.next_send = None;
            }
            p.enabled = enabled;
        }
    }

    pub fn peer_disconnected(&mut self, peer: PeerKey) {
        self.peers.remove(&peer);
        self.transmit.retain(|(p, _)| *p != peer);
    }

    /// A `ut_pex` message from `peer`: the addresses worth trying (added
    /// ones we are not connected to). Empty when the message is ignored.
    pub fn handle_message(
        &mut self,
        now: Instant,
        peer: PeerKey,
        msg: &PexMessage,
    ) -> Vec<SocketAddr> {
        let Some(p) = self.peers.get_mut(&peer) else {
            return Vec::new();
        };
        if !p.enabled {
            return Vec::new();
        }
        if p.last_received
            .is_some_and(|t| now.saturating_since(t) < PEX_RECEIVE_INTERVAL_MIN)
        {
            self.ignored_too_frequent += 1;
            return Vec::new();
        }
        p.last_received = Some(now);
        let connected: BTreeSet<SocketAddr> =
            self.peers.values().filter_map(|p| p.listen).collect();
        let mut seen = BTreeSet::new();
        msg.added
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| !connected.contains(a) && seen.insert(*a))
            .collect()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.enabled && p.next_send.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        if due.is_empty() {
            return;
        }
        let current: BTreeMap<SocketAddr, PexFlags> = self
            .peers
            .values()
            .filter_map(|p| {
                let flags = if p.outgoing { PexFlags::REACHABLE } else { 0 };
                p.listen.map(|a| (a, PexFlags(flags)))
            })
            .collect();
        for key in due {
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            p.next_send = Some(now + PEX_INTERVAL);
            let own = p.listen;
            let added: Vec<(SocketAddr, PexFlags)> = current
                .iter()
                .filter(|(a, _)| Some(**a) != own && !p.told.contains(a))
                .take(PEX_ADDED_MAX)
                .map(|(a, f)| (*a, *f))
                .collect();
            let dropped: Vec<SocketAddr> = p
                .told
                .iter()
                .filter(|a| !current.contains_key(a))
                .take(PEX_DROPPED_MAX)
                .copied()
                .collect();
            for a in &dropped {
                p.told.remove(a);
            }
            p.told.extend(added.iter().map(|(a, _)| *a));
            let msg = PexMessage { added, dropped };
            if !msg.is_empty() {
                self.transmit.push_back((key, msg));
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter(|p| p.enabled)
            .filter_map(|p| p.next_send)
            .min()
    }

    pub fn poll_transmit(&mut self) -> Option<(PeerKey, PexMessage)> {
        self.transmit.pop_front()
    }

    /// Panics if an invariant of the module docs does not hold.
    pub fn check_invariants(&self) {
        if self.private {
            assert!(self.peers.is_empty() && self.transmit.is_empty());
        }
        assert!(self.peers.len() <= PEX_PEERS_MAX);
        for p in self.peers.values() {
            assert!(p.told.len() <= PEX_PEERS_MAX);
            if let Some(own) = p.listen {
                assert!(
                    !p.told.contains(&own),
                    "a peer is never told its own address"
                );
            }
        }
    }
}
