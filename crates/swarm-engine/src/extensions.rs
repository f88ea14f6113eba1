//! The extension protocol of one torrent (BEP 10) and what runs over it:
//! metadata exchange (BEP 9, [`crate::metadata`]), peer exchange (BEP 11,
//! [`crate::pex`]) and the DHT port message (BEP 5). Sans-IO, beside the
//! torrent's [`crate::TorrentCore`] (which ignores `Extended` and `Port`
//! messages): the driver gives both every message of a connection.
//!
//! # Driving it
//! - [`Extensions::peer_connected`] after the BitTorrent handshake, *after*
//!   the core's first message (the bitfield must come first): it queues our
//!   extension handshake and, to DHT peers, our `port`.
//! - [`Extensions::handle_message`] with every message (others than
//!   `Extended`/`Port` are ignored, except that before the metadata is known
//!   a peer's bitfield, have-all/none and haves are kept for
//!   [`Extensions::take_early_messages`]: a magnet's core does not exist yet).
//! - [`Extensions::peer_disconnected`], [`Extensions::handle_timeout`] at
//!   [`Extensions::poll_timeout`].
//! - Drain [`Extensions::poll_event`] (peers for the endpoint, the core's
//!   extension info, the metadata, DHT nodes, disconnects) then
//!   [`Extensions::poll_transmit`].
//!
//! Private torrents (BEP 27): no `ut_pex` in our handshake, no PEX at all,
//! no `port` message and `port` messages ignored.
//!
//! # Memory
//! Per connection about 100 bytes, plus before the metadata at most
//! [`EARLY_MESSAGES_MAX`] early messages (a bitfield is bounded by the frame
//! decoder). The fetcher and PEX state state their own bounds.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use swarm_wire::peer::{
    EXTENDED_HANDSHAKE_ID, ExtendedHandshake, Message, MetadataMessage, PexMessage, UT_METADATA,
    UT_PEX,
};

use crate::event::ExtensionInfo;
use crate::ids::{InfoHash, PeerKey};
use crate::metadata::{MetadataEvent, MetadataFetcher, metadata_pieces, serve_metadata};
use crate::pex::Pex;
use crate::time::Instant;

/// The id we receive `ut_pex` under (libtorrent's choice too).
pub const UT_PEX_ID: u8 = 1;
/// The id we receive `ut_metadata` under.
pub const UT_METADATA_ID: u8 = 2;
/// Messages kept per peer while the metadata is unknown (one bitfield or
/// have-all, then haves); later ones are dropped.
pub const EARLY_MESSAGES_MAX: usize = 1024;
/// Metadata pieces served to one connection beyond two full copies (so a
/// peer cannot make us send the same megabytes for ever): the rest are
/// rejected.
pub const METADATA_SERVE_SLACK: u32 = 16;

/// What the extensions are set up with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtensionsConfig {
    /// A private torrent (BEP 27): no PEX, no DHT.
    pub private: bool,
    /// Our TCP listen port, for `p`.
    pub listen_port: Option<u16>,
    /// Our DHT node's UDP port, sent in `port` (BEP 5) to peers that set the
    /// DHT bit; `None` without a DHT (`--no-dht`).
    pub dht_port: Option<u16>,
    /// `v`: client name and version.
    pub client: Option<String>,
    /// `reqq`: requests we queue per peer.
    pub reqq: Option<u32>,
}

/// What the BitTorrent handshake told us about a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHello {
    pub addr: SocketAddr,
    /// We dialled it (so `addr` is where it listens).
    pub outgoing: bool,
    /// It set the BEP 10 bit.
    pub extension_protocol: bool,
    /// It set the BEP 5 DHT bit.
    pub dht: bool,
}

/// What the extensions tell the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtensionEvent {
    /// Addresses learnt by PEX: the endpoint's `handle_peers(.., Pex, ..)`.
    Peers(Vec<SocketAddr>),
    /// The peer's extension handshake: for the core's `peer_extension_handshake`.
    PeerExtensions { peer: PeerKey, info: ExtensionInfo },
    /// The info dictionary, checked against the info-hash: parse it, save
    /// it, start the download (once).
    MetadataComplete(Bytes),
    /// A peer's DHT node (its IP, the port of its `port` message): ping it.
    DhtNode(SocketAddr),
    /// Close this connection; the extensions have forgotten the peer.
    Disconnect {
        peer: PeerKey,
        reason: String,
        ban: bool,
    },
}

struct ExtPeer {
    addr: SocketAddr,
    /// Ids the peer receives these under (from its handshake).
    ut_metadata: Option<u8>,
    ut_pex: Option<u8>,
    port_seen: bool,
    served: u32,
    early: Vec<Message>,
}

/// One torrent's extension protocol. See the module docs.
pub struct Extensions {
    config: ExtensionsConfig,
    info: Option<Bytes>,
    fetcher: Option<MetadataFetcher>,
    pex: Pex,
    peers: BTreeMap<PeerKey, ExtPeer>,
    transmit: VecDeque<(PeerKey, Message)>,
    events: VecDeque<ExtensionEvent>,
    /// Malformed extension messages ignored.
    ignored_malformed: u64,
}

impl Extensions {
    /// For a torrent whose info dictionary (raw bytes) we have: we serve it.
    pub fn with_metadata(info: Bytes, config: ExtensionsConfig) -> Self {
        Self::new(Some(info), None, config)
    }

    /// For a torrent whose info dictionary is not at hand (a spec built
    /// without one): metadata requests are rejected, nothing is fetched.
    pub fn without_metadata(config: ExtensionsConfig) -> Self {
        Self::new(None, None, config)
    }

    /// For a magnet link: the metadata is fetched from peers.
    pub fn for_magnet(info_hash: InfoHash, config: ExtensionsConfig) -> Self {
        Self::new(None, Some(MetadataFetcher::new(info_hash)), config)
    }

    fn new(
        info: Option<Bytes>,
        fetcher: Option<MetadataFetcher>,
        config: ExtensionsConfig,
    ) -> Self {
        Extensions {
            pex: Pex::new(config.private),
            config,
            info,
            fetcher,
            peers: BTreeMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            ignored_malformed: 0,
        }
    }

    /// The info dictionary, once known.
    pub fn metadata(&self) -> Option<&Bytes> {
        self.info.as_ref()
    }

    /// The metadata fetch: pieces received, pieces in all, sources.
    pub fn metadata_progress(&self) -> Option<(u32, u32, usize)> {
        self.fetcher.as_ref().filter(|f| !f.is_complete()).map(|f| {
            let (got, all) = f.progress();
            (got, all, f.sources())
        })
    }

    /// Malformed extension messages ignored so far.
    pub fn ignored_malformed(&self) -> u64 {
        self.ignored_malformed
    }

    /// Our BEP 10 handshake for a peer at `addr`.
    pub fn handshake(&self, addr: SocketAddr) -> ExtendedHandshake {
        let mut m = BTreeMap::from([(UT_METADATA.to_owned(), UT_METADATA_ID)]);
        if !self.config.private {
            m.insert(UT_PEX.to_owned(), UT_PEX_ID);
        }
        ExtendedHandshake {
            m,
            v: self.config.client.clone(),
            reqq: self.config.reqq,
            p: self.config.listen_port,
            yourip: Some(addr.ip()),
            metadata_size: self.info.as_ref().map(|i| i.len() as u64),
        }
    }

    pub fn peer_connected(&mut self, _now: Instant, peer: PeerKey, hello: PeerHello) {
        self.peers.insert(
            peer,
            ExtPeer {
                addr: hello.addr,
                ut_metadata: None,
                ut_pex: None,
                port_seen: false,
                served: 0,
                early: Vec::new(),
            },
        );
        self.pex
            .peer_connected(peer, hello.outgoing.then_some(hello.addr), hello.outgoing);
        if hello.extension_protocol {
            let payload = Bytes::from(self.handshake(hello.addr).encode());
            self.transmit.push_back((
                peer,
                Message::Extended {
                    id: EXTENDED_HANDSHAKE_ID,
                    payload,
                },
            ));
        }
        if hello.dht
            && !self.config.private
            && let Some(port) = self.config.dht_port
        {
            self.transmit.push_back((peer, Message::Port(port)));
        }
    }

    pub fn peer_disconnected(&mut self, now: Instant, peer: PeerKey) {
        self.peers.remove(&peer);
        self.pex.peer_disconnected(peer);
        if let Some(f) = &mut self.fetcher {
            f.remove_peer(now, peer);
        }
        self.transmit.retain(|(p, _)| *p != peer);
        self.pump();
    }

    /// The messages a peer sent before the metadata was known (bitfield,
    /// have-all/none, haves), in order, for the new core.
    pub fn take_early_messages(&mut self, peer: PeerKey) -> Vec<Message> {
        self.peers
            .get_mut(&peer)
            .map(|p| std::mem::take(&mut p.early))
            .unwrap_or_default()
    }

    pub fn handle_message(&mut self, now: Instant, peer: PeerKey, msg: &Message) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        match msg {
            Message::Port(port)
                if !self.config.private
                    && self.config.dht_port.is_some()
                    && *port != 0
                    && !p.port_seen =>
            {
                p.port_seen = true;
                self.events
                    .push_back(ExtensionEvent::DhtNode(SocketAddr::new(p.addr.ip(), *port)));
            }
            Message::Extended { id, payload } => match *id {
                EXTENDED_HANDSHAKE_ID => self.on_handshake(now, peer, payload),
                UT_METADATA_ID => match MetadataMessage::decode(payload) {
                    Ok(m) => self.on_metadata(now, peer, m),
                    Err(_) => self.ignored_malformed += 1,
                },
                UT_PEX_ID if !self.config.private => match PexMessage::decode(payload) {
                    Ok(m) => {
                        let addrs = self.pex.handle_message(now, peer, &m);
                        if !addrs.is_empty() {
                            self.events.push_back(ExtensionEvent::Peers(addrs));
                        }
                    }
                    Err(_) => self.ignored_malformed += 1,
                },
                _ => {}
            },
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone | Message::Have { .. }
                if self.fetcher.is_some()
                    && self.info.is_none()
                    && p.early.len() < EARLY_MESSAGES_MAX =>
            {
                p.early.push(msg.clone());
            }
            _ => {}
        }
        self.pump();
    }

    fn on_handshake(&mut self, now: Instant, peer: PeerKey, payload: &[u8]) {
        let Ok(hs) = ExtendedHandshake::decode(payload) else {
            self.ignored_malformed += 1;
            return;
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.ut_metadata = hs.extension_id(UT_METADATA);
        p.ut_pex = hs.extension_id(UT_PEX);
        let addr = p.addr;
        let ut_metadata = p.ut_metadata.is_some();
        if let Some(port) = hs.p {
            // Where it listens: for an outgoing connection we knew already.
            self.pex.set_listen(peer, SocketAddr::new(addr.ip(), port));
        }
        self.pex
            .set_enabled(now, peer, hs.extension_id(UT_PEX).is_some());
        self.events.push_back(ExtensionEvent::PeerExtensions {
            peer,
            info: ExtensionInfo { reqq: hs.reqq },
        });
        if let Some(f) = &mut self.fetcher {
            if ut_metadata {
                f.add_peer(now, peer, hs.metadata_size);
            } else {
                f.remove_peer(now, peer);
            }
        }
    }

    fn on_metadata(&mut self, now: Instant, peer: PeerKey, msg: MetadataMessage) {
        match msg {
            MetadataMessage::Request { piece } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                let Some(id) = p.ut_metadata else { return };
                p.served += 1;
                let answer = match &self.info {
                    Some(info)
                        if p.served
                            <= 2 * metadata_pieces(info.len() as u64) + METADATA_SERVE_SLACK =>
                    {
                        serve_metadata(info, piece)
                    }
                    _ => MetadataMessage::Reject { piece },
                };
                self.transmit.push_back((
                    peer,
                    Message::Extended {
                        id,
                        payload: answer.encode(),
                    },
                ));
            }
            other => {
                if let Some(f) = &mut self.fetcher {
                    f.handle_message(now, peer, other);
                }
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(f) = &mut self.fetcher {
            f.handle_timeout(now);
        }
        self.pex.handle_timeout(now);
        self.pump();
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let f = self.fetcher.as_ref().and_then(|f| f.poll_timeout());
        let p = self.pex.poll_timeout();
        f.into_iter().chain(p).min()
    }

    pub fn poll_event(&mut self) -> Option<ExtensionEvent> {
        self.events.pop_front()
    }

    pub fn poll_transmit(&mut self) -> Option<(PeerKey, Message)> {
        self.transmit.pop_front()
    }

    /// Moves the fetcher's and PEX's outputs into ours.
    fn pump(&mut self) {
        let mut gone = Vec::new();
        if let Some(f) = &mut self.fetcher {
            while let Some((peer, msg)) = f.poll_transmit() {
                if let Some(id) = self.peers.get(&peer).and_then(|p| p.ut_metadata) {
                    self.transmit.push_back((
                        peer,
                        Message::Extended {
                            id,
                            payload: msg.encode(),
                        },
                    ));
                }
            }
            while let Some(ev) = f.poll_event() {
                match ev {
                    MetadataEvent::Complete(info) => {
                        self.info = Some(info.clone());
                        self.events
                            .push_back(ExtensionEvent::MetadataComplete(info));
                    }
                    MetadataEvent::Disconnect { peer, reason, ban } => {
                        gone.push(peer);
                        self.events
                            .push_back(ExtensionEvent::Disconnect { peer, reason, ban });
                    }
                }
            }
        }
        while let Some((peer, msg)) = self.pex.poll_transmit() {
            if let Some(id) = self.peers.get(&peer).and_then(|p| p.ut_pex) {
                self.transmit.push_back((
                    peer,
                    Message::Extended {
                        id,
                        payload: msg.encode(),
                    },
                ));
            }
        }
        for peer in gone {
            self.peers.remove(&peer);
            self.pex.peer_disconnected(peer);
            self.transmit.retain(|(p, _)| *p != peer);
        }
    }

    /// Panics if an invariant does not hold (see the modules' docs).
    pub fn check_invariants(&self) {
        self.pex.check_invariants();
        assert_eq!(self.pex.is_private(), self.config.private);
        if let Some(f) = &self.fetcher {
            f.check_invariants();
            assert_eq!(f.is_complete(), self.info.is_some());
        }
        for p in self.peers.values() {
            assert!(p.early.len() <= EARLY_MESSAGES_MAX);
        }
        if self.config.private {
            assert!(
                !self
                    .transmit
                    .iter()
                    .any(|(_, m)| matches!(m, Message::Port(_))),
                "private torrents send no port message"
            );
        }
    }
}
