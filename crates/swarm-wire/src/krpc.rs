//! KRPC (BEP 5): the messages of the Mainline DHT, one bencoded dictionary
//! per UDP datagram, with the extensions swarm speaks: IPv6 nodes (BEP 32),
//! the requester's external address (BEP 42 `ip`), read-only nodes (BEP 43
//! `ro`) and the key-value store's `get`/`put` (BEP 44).
//!
//! A message is a query (`y` = `q`, a method name in `q` and arguments in
//! `a`), a response (`y` = `r`, values in `r`) or an error (`y` = `e`, a code
//! and a text in `e`); all carry the transaction id `t` the answer echoes.
//! Responses do not name their method: the asker matches them by `t` and
//! reads the fields its query called for, so [`Response`] has every field a
//! response may carry, all optional but the responder's id.
//!
//! Decoding is bounded before anything is allocated: a datagram longer than
//! [`MESSAGE_LEN_MAX`] is refused without parsing it, so the bencode tree,
//! the node and peer lists are all bounded by that length. Fields have exact
//! lengths (ids 20 bytes, keys 32, signatures 64, compact nodes 26 or 38
//! bytes each) and bounded ones (transaction ids, tokens, salts); anything
//! else is an error. Dictionaries may come with unsorted keys (the lenient
//! bencode mode): the DHT is full of clients we do not control, and the
//! order carries no meaning here (a BEP 44 value `v` is kept as the raw bytes
//! received, never re-encoded, since its signature covers those bytes).
//!
//! When a malformed datagram was a query with a readable transaction id, the
//! error says so ([`DecodeError::query_tid`]), so a node can answer with
//! error 203 as BEP 5 asks. Unknown query methods decode (as
//! [`QueryKind::Unknown`]) so that the node can answer 204.
//!
//! Encoding is canonical (keys sorted), and `decode(encode(m)) == m`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::bencode::{self, Value, put_bytes, put_int};
use crate::metainfo::InfoHash;

/// Longest datagram decoded. A BEP 44 `put` of a 1000-byte value with a
/// 64-byte salt, key, signature and token is about 1,300 bytes; libtorrent
/// refuses to send more than 1,500. Longer datagrams are refused unparsed.
pub const MESSAGE_LEN_MAX: usize = 2048;
/// Longest transaction id accepted. Real clients use 2 (libtorrent) to 4 bytes.
pub const TID_LEN_MAX: usize = 16;
/// Longest write token accepted. libtorrent's are 4 bytes, others 8 or 20.
pub const TOKEN_LEN_MAX: usize = 64;
/// Longest BEP 44 salt (the BEP's own limit).
pub const SALT_LEN_MAX: usize = 64;
/// Longest BEP 44 value `v`, bencoded (the BEP's own limit). The codec
/// accepts longer ones (bounded by the datagram) so that a node can answer
/// error 205 as the BEP asks; nodes refuse to store them.
pub const VALUE_LEN_MAX: usize = 1000;
/// Nodes kept per family from one response; BEP 5 responses carry k = 8.
/// Extras are ignored (the datagram bound limits them anyway).
pub const NODES_MAX: usize = 16;
/// Peers kept from one `get_peers` response (`values`).
pub const PEERS_MAX: usize = 100;
/// Longest error text kept, in bytes (cut at a character boundary).
pub const ERROR_TEXT_LEN_MAX: usize = 256;
/// Bytes of one compact IPv4 node: id, address, port.
pub const COMPACT_NODE_V4_LEN: usize = 26;
/// Bytes of one compact IPv6 node (BEP 32).
pub const COMPACT_NODE_V6_LEN: usize = 38;

/// BEP 5 error codes.
pub mod code {
    pub const GENERIC: i64 = 201;
    pub const SERVER: i64 = 202;
    pub const PROTOCOL: i64 = 203;
    pub const METHOD_UNKNOWN: i64 = 204;
    /// BEP 44: `v` longer than 1000 bytes.
    pub const MESSAGE_TOO_BIG: i64 = 205;
    /// BEP 44: the signature does not verify.
    pub const INVALID_SIGNATURE: i64 = 206;
    /// BEP 44: salt longer than 64 bytes.
    pub const SALT_TOO_BIG: i64 = 207;
    /// BEP 44: `cas` does not match the stored sequence number.
    pub const CAS_MISMATCH: i64 = 301;
    /// BEP 44: the sequence number is lower than the stored one.
    pub const SEQ_TOO_LOW: i64 = 302;
}

/// A DHT node id, or any 160-bit key of the DHT's space (a target, an item's key).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The XOR distance to `other` (compare as big-endian 160-bit numbers).
    pub fn distance(&self, other: &NodeId) -> NodeId {
        let mut d = [0u8; 20];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        NodeId(d)
    }

    /// Leading zero bits (160 for zero): the length of the prefix shared
    /// with the other end of a [`NodeId::distance`].
    pub fn leading_zeros(&self) -> u32 {
        let mut n = 0;
        for b in self.0 {
            if b != 0 {
                return n + b.leading_zeros();
            }
            n += 8;
        }
        n
    }

    /// Parses 40 hex digits.
    pub fn from_hex(s: &str) -> Option<NodeId> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(NodeId(out))
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> Self {
        NodeId(h.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// A node's id and UDP address (compact node info).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeInfo {
    pub id: NodeId,
    pub addr: SocketAddr,
}

/// A short byte string kept inline (transaction ids, client versions).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ShortBytes {
    len: u8,
    bytes: [u8; TID_LEN_MAX],
}

impl ShortBytes {
    /// `None` if longer than [`TID_LEN_MAX`].
    pub fn new(b: &[u8]) -> Option<Self> {
        if b.len() > TID_LEN_MAX {
            return None;
        }
        let mut bytes = [0u8; TID_LEN_MAX];
        bytes[..b.len()].copy_from_slice(b);
        Some(ShortBytes {
            len: b.len() as u8,
            bytes,
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for ShortBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.as_slice().escape_ascii())
    }
}

/// A transaction id: chosen by the asker, echoed by the answer.
pub type Tid = ShortBytes;

/// One KRPC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub tid: Tid,
    /// The sender's client and version (`v`), when short enough to keep.
    pub version: Option<ShortBytes>,
    /// BEP 42: in a response, the address the responder saw the query come from.
    pub ip: Option<SocketAddr>,
    /// BEP 43: the sender does not answer queries; do not add it to a table.
    pub read_only: bool,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Query(Query),
    Response(Response),
    Error(ErrorBody),
}

/// A query: the asker's id, what it asks, and (BEP 32 `want`) which address
/// families of nodes it wants back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: NodeId,
    pub kind: QueryKind,
    pub want: Want,
}

/// BEP 32 `want`: `n4`, `n6`, both, or (`None` in both) the family of the
/// socket the query came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Want {
    pub v4: bool,
    pub v6: bool,
}

impl Want {
    pub fn given(&self) -> bool {
        self.v4 || self.v6
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryKind {
    Ping,
    FindNode {
        target: NodeId,
    },
    GetPeers {
        info_hash: InfoHash,
    },
    AnnouncePeer {
        info_hash: InfoHash,
        port: u16,
        /// Use the UDP source port instead of `port` (BEP 5, for NATed peers).
        implied_port: bool,
        token: Vec<u8>,
    },
    /// BEP 44 `get`: `seq` asks to omit `v` if the stored item is not newer.
    Get {
        target: NodeId,
        seq: Option<i64>,
    },
    Put(Put),
    /// A method swarm does not know (answered with error 204).
    Unknown {
        method: ShortBytes,
    },
}

impl QueryKind {
    /// The method name on the wire.
    pub fn method(&self) -> &[u8] {
        match self {
            QueryKind::Ping => b"ping",
            QueryKind::FindNode { .. } => b"find_node",
            QueryKind::GetPeers { .. } => b"get_peers",
            QueryKind::AnnouncePeer { .. } => b"announce_peer",
            QueryKind::Get { .. } => b"get",
            QueryKind::Put(_) => b"put",
            QueryKind::Unknown { method } => method.as_slice(),
        }
    }
}

/// BEP 44 `put`: an immutable item (just `v`) or a mutable one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    pub token: Vec<u8>,
    /// The value, bencoded, as received.
    pub value: Vec<u8>,
    pub mutable: Option<MutablePut>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutablePut {
    /// The ed25519 public key.
    pub key: [u8; 32],
    pub sig: [u8; 64],
    /// Empty when absent.
    pub salt: Vec<u8>,
    pub seq: i64,
    /// Compare-and-swap: store only if the stored sequence number is this.
    pub cas: Option<i64>,
}

/// A response: every field any method's response may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub id: NodeId,
    /// Closer nodes: IPv4 ones go in `nodes`, IPv6 ones in `nodes6` on the
    /// wire; decoded IPv4 first.
    pub nodes: Vec<NodeInfo>,
    /// `get_peers`: peers of the torrent.
    pub values: Vec<SocketAddr>,
    /// `get_peers` and `get`: the write token for a later announce or put.
    pub token: Option<Vec<u8>>,
    /// BEP 44 `get`: the value, bencoded, as received.
    pub value: Option<Vec<u8>>,
    pub key: Option<[u8; 32]>,
    pub sig: Option<[u8; 64]>,
    pub seq: Option<i64>,
}

impl Response {
    /// A response with only the responder's id (a `ping` or `put` answer).
    pub fn new(id: NodeId) -> Self {
        Response {
            id,
            nodes: Vec::new(),
            values: Vec::new(),
            token: None,
            value: None,
            key: None,
            sig: None,
            seq: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: i64,
    pub message: String,
}

/// Why a datagram is not a KRPC message swarm accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    #[error("krpc: datagram of {0} bytes is longer than {MESSAGE_LEN_MAX}")]
    TooLong(usize),
    #[error("krpc: {0}")]
    Bencode(#[from] bencode::DecodeError),
    #[error("krpc: not a dictionary")]
    NotADictionary,
    #[error("krpc: missing `{0}`")]
    Missing(&'static str),
    #[error("krpc: `{0}` has the wrong type or length")]
    Invalid(&'static str),
    #[error("krpc: unknown message type `y`")]
    UnknownType,
}

/// A refused datagram; `query_tid` is set when it was a query whose
/// transaction id could be read, so that the sender can be told (error 203).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct DecodeError {
    pub error: KrpcError,
    pub query_tid: Option<Tid>,
}

impl Message {
    /// A query message.
    pub fn query(tid: Tid, id: NodeId, kind: QueryKind) -> Self {
        Message {
            tid,
            version: None,
            ip: None,
            read_only: false,
            body: Body::Query(Query {
                id,
                kind,
                want: Want::default(),
            }),
        }
    }

    /// A response message.
    pub fn response(tid: Tid, response: Response) -> Self {
        Message {
            tid,
            version: None,
            ip: None,
            read_only: false,
            body: Body::Response(response),
        }
    }

    /// An error message.
    pub fn error(tid: Tid, code: i64, message: &str) -> Self {
        Message {
            tid,
            version: None,
            ip: None,
            read_only: false,
            body: Body::Error(ErrorBody {
                code,
                message: message.to_owned(),
            }),
        }
    }

    /// Decodes one datagram.
    pub fn decode(datagram: &[u8]) -> Result<Message, DecodeError> {
        let fail = |error| DecodeError {
            error,
            query_tid: None,
        };
        if datagram.len() > MESSAGE_LEN_MAX {
            return Err(fail(KrpcError::TooLong(datagram.len())));
        }
        let root = bencode::decode_lenient(datagram).map_err(|e| fail(e.into()))?;
        if root.as_dict().is_none() {
            return Err(fail(KrpcError::NotADictionary));
        }
        let tid = root
            .get(b"t")
            .ok_or(KrpcError::Missing("t"))
            .and_then(|t| t.as_bytes().ok_or(KrpcError::Invalid("t")))
            .and_then(|t| ShortBytes::new(t).ok_or(KrpcError::Invalid("t")))
            .map_err(fail)?;
        let y = root
            .get(b"y")
            .and_then(Value::as_bytes)
            .ok_or_else(|| fail(KrpcError::Missing("y")))?;
        let in_query = |error| DecodeError {
            error,
            query_tid: (y == b"q").then_some(tid),
        };
        let version = root
            .get(b"v")
            .and_then(Value::as_bytes)
            .and_then(ShortBytes::new);
        let ip = match root.get(b"ip") {
            None => None,
            Some(v) => Some(
                v.as_bytes()
                    .and_then(compact_addr)
                    .ok_or_else(|| in_query(KrpcError::Invalid("ip")))?,
            ),
        };
        let read_only = root.get(b"ro").and_then(Value::as_int) == Some(1);
        let body = match y {
            b"q" => Body::Query(decode_query(&root).map_err(in_query)?),
            b"r" => Body::Response(decode_response(&root).map_err(fail)?),
            b"e" => Body::Error(decode_error(&root).map_err(fail)?),
            _ => return Err(fail(KrpcError::UnknownType)),
        };
        Ok(Message {
            tid,
            version,
            ip,
            read_only,
            body,
        })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Dict::default();
        match &self.body {
            Body::Query(q) => {
                d.raw(b"a", encode_args(q));
                d.bytes(b"q", q.kind.method());
                d.bytes(b"y", b"q");
            }
            Body::Response(r) => {
                d.raw(b"r", encode_response(r));
                d.bytes(b"y", b"r");
            }
            Body::Error(e) => {
                let mut l = vec![b'l'];
                put_int(&mut l, e.code);
                put_bytes(&mut l, e.message.as_bytes());
                l.push(b'e');
                d.raw(b"e", l);
                d.bytes(b"y", b"e");
            }
        }
        if let Some(ip) = self.ip {
            d.bytes(b"ip", &compact_addr_bytes(ip));
        }
        if self.read_only {
            d.int(b"ro", 1);
        }
        d.bytes(b"t", self.tid.as_slice());
        if let Some(v) = self.version {
            d.bytes(b"v", v.as_slice());
        }
        d.finish()
    }
}

/// A dictionary under construction: entries in any order, written sorted.
#[derive(Default)]
struct Dict {
    entries: Vec<(&'static [u8], Vec<u8>)>,
}

impl Dict {
    fn raw(&mut self, key: &'static [u8], encoded: Vec<u8>) {
        self.entries.push((key, encoded));
    }
    fn bytes(&mut self, key: &'static [u8], b: &[u8]) {
        let mut out = Vec::with_capacity(b.len() + 4);
        put_bytes(&mut out, b);
        self.raw(key, out);
    }
    fn int(&mut self, key: &'static [u8], n: i64) {
        let mut out = Vec::new();
        put_int(&mut out, n);
        self.raw(key, out);
    }
    fn finish(mut self) -> Vec<u8> {
        self.entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = vec![b'd'];
        for (k, v) in &self.entries {
            put_bytes(&mut out, k);
            out.extend_from_slice(v);
        }
        out.push(b'e');
        out
    }
}

fn encode_args(q: &Query) -> Vec<u8> {
    let mut d = Dict::default();
    d.bytes(b"id", &q.id.0);
    match &q.kind {
        QueryKind::Ping | QueryKind::Unknown { .. } => {}
        QueryKind::FindNode { target } => d.bytes(b"target", &target.0),
        QueryKind::GetPeers { info_hash } => d.bytes(b"info_hash", &info_hash.0),
        QueryKind::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
        } => {
            d.bytes(b"info_hash", &info_hash.0);
            d.int(b"port", i64::from(*port));
            if *implied_port {
                d.int(b"implied_port", 1);
            }
            d.bytes(b"token", token);
        }
        QueryKind::Get { target, seq } => {
            d.bytes(b"target", &target.0);
            if let Some(seq) = seq {
                d.int(b"seq", *seq);
            }
        }
        QueryKind::Put(p) => {
            d.bytes(b"token", &p.token);
            d.raw(b"v", p.value.clone());
            if let Some(m) = &p.mutable {
                d.bytes(b"k", &m.key);
                d.bytes(b"sig", &m.sig);
                d.int(b"seq", m.seq);
                if !m.salt.is_empty() {
                    d.bytes(b"salt", &m.salt);
                }
                if let Some(cas) = m.cas {
                    d.int(b"cas", cas);
                }
            }
        }
    }
    if q.want.given() {
        let mut l = vec![b'l'];
        if q.want.v4 {
            put_bytes(&mut l, b"n4");
        }
        if q.want.v6 {
            put_bytes(&mut l, b"n6");
        }
        l.push(b'e');
        d.raw(b"want", l);
    }
    d.finish()
}

fn encode_response(r: &Response) -> Vec<u8> {
    let mut d = Dict::default();
    d.bytes(b"id", &r.id.0);
    let (mut n4, mut n6) = (Vec::new(), Vec::new());
    for n in &r.nodes {
        match n.addr {
            SocketAddr::V4(_) => {
                n4.extend_from_slice(&n.id.0);
                n4.extend_from_slice(&compact_addr_bytes(n.addr));
            }
            SocketAddr::V6(_) => {
                n6.extend_from_slice(&n.id.0);
                n6.extend_from_slice(&compact_addr_bytes(n.addr));
            }
        }
    }
    if !n4.is_empty() {
        d.bytes(b"nodes", &n4);
    }
    if !n6.is_empty() {
        d.bytes(b"nodes6", &n6);
    }
    if !r.values.is_empty() {
        let mut l = vec![b'l'];
        for p in &r.values {
            put_bytes(&mut l, &compact_addr_bytes(*p));
        }
        l.push(b'e');
        d.raw(b"values", l);
    }
    if let Some(t) = &r.token {
        d.bytes(b"token", t);
    }
    if let Some(v) = &r.value {
        d.raw(b"v", v.clone());
    }
    if let Some(k) = &r.key {
        d.bytes(b"k", k);
    }
    if let Some(s) = &r.sig {
        d.bytes(b"sig", s);
    }
    if let Some(s) = r.seq {
        d.int(b"seq", s);
    }
    d.finish()
}

/// The 6- or 18-byte compact form of an address (BEP 5 / BEP 32).
pub fn compact_addr_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    match addr {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

/// An address from its 6- or 18-byte compact form.
pub fn compact_addr(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        6 => Some(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(b[0], b[1], b[2], b[3]),
            u16::from_be_bytes([b[4], b[5]]),
        ))),
        18 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[..16]);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(o),
                u16::from_be_bytes([b[16], b[17]]),
                0,
                0,
            )))
        }
        _ => None,
    }
}

fn id20(v: Option<&Value<'_>>, key: &'static str) -> Result<[u8; 20], KrpcError> {
    let b = v
        .ok_or(KrpcError::Missing(key))?
        .as_bytes()
        .ok_or(KrpcError::Invalid(key))?;
    b.try_into().map_err(|_| KrpcError::Invalid(key))
}

fn bounded(v: &Value<'_>, key: &'static str, max: usize) -> Result<Vec<u8>, KrpcError> {
    match v.as_bytes() {
        Some(b) if b.len() <= max => Ok(b.to_vec()),
        _ => Err(KrpcError::Invalid(key)),
    }
}

fn int(v: Option<&Value<'_>>, key: &'static str) -> Result<Option<i64>, KrpcError> {
    v.map(|v| v.as_int().ok_or(KrpcError::Invalid(key)))
        .transpose()
}

fn decode_query(root: &Value<'_>) -> Result<Query, KrpcError> {
    let method = root
        .get(b"q")
        .ok_or(KrpcError::Missing("q"))?
        .as_bytes()
        .ok_or(KrpcError::Invalid("q"))?;
    let a = root.get(b"a").ok_or(KrpcError::Missing("a"))?;
    if a.as_dict().is_none() {
        return Err(KrpcError::Invalid("a"));
    }
    let id = NodeId(id20(a.get(b"id"), "id")?);
    let mut want = Want::default();
    if let Some(w) = a.get(b"want") {
        for item in w.as_list().ok_or(KrpcError::Invalid("want"))? {
            match item.as_bytes() {
                Some(b"n4") => want.v4 = true,
                Some(b"n6") => want.v6 = true,
                _ => {}
            }
        }
    }
    let kind = match method {
        b"ping" => QueryKind::Ping,
        b"find_node" => QueryKind::FindNode {
            target: NodeId(id20(a.get(b"target"), "target")?),
        },
        b"get_peers" => QueryKind::GetPeers {
            info_hash: InfoHash(id20(a.get(b"info_hash"), "info_hash")?),
        },
        b"announce_peer" => {
            let port = int(a.get(b"port"), "port")?.unwrap_or(0);
            let implied_port = int(a.get(b"implied_port"), "implied_port")?.unwrap_or(0) != 0;
            let port = u16::try_from(port).map_err(|_| KrpcError::Invalid("port"))?;
            if port == 0 && !implied_port {
                return Err(KrpcError::Missing("port"));
            }
            QueryKind::AnnouncePeer {
                info_hash: InfoHash(id20(a.get(b"info_hash"), "info_hash")?),
                port,
                implied_port,
                token: bounded(
                    a.get(b"token").ok_or(KrpcError::Missing("token"))?,
                    "token",
                    TOKEN_LEN_MAX,
                )?,
            }
        }
        b"get" => QueryKind::Get {
            target: NodeId(id20(a.get(b"target"), "target")?),
            seq: int(a.get(b"seq"), "seq")?,
        },
        b"put" => {
            let token = bounded(
                a.get(b"token").ok_or(KrpcError::Missing("token"))?,
                "token",
                TOKEN_LEN_MAX,
            )?;
            let value = a.get(b"v").ok_or(KrpcError::Missing("v"))?.raw().to_vec();
            let mutable = match a.get(b"k") {
                None => None,
                Some(k) => {
                    let key: [u8; 32] = k
                        .as_bytes()
                        .and_then(|b| b.try_into().ok())
                        .ok_or(KrpcError::Invalid("k"))?;
                    let sig: [u8; 64] = a
                        .get(b"sig")
                        .ok_or(KrpcError::Missing("sig"))?
                        .as_bytes()
                        .and_then(|b| b.try_into().ok())
                        .ok_or(KrpcError::Invalid("sig"))?;
                    let salt = match a.get(b"salt") {
                        // Over-long salts decode so that the node can answer 207.
                        Some(s) => bounded(s, "salt", MESSAGE_LEN_MAX)?,
                        None => Vec::new(),
                    };
                    Some(MutablePut {
                        key,
                        sig,
                        salt,
                        seq: int(a.get(b"seq"), "seq")?.ok_or(KrpcError::Missing("seq"))?,
                        cas: int(a.get(b"cas"), "cas")?,
                    })
                }
            };
            QueryKind::Put(Put {
                token,
                value,
                mutable,
            })
        }
        other => QueryKind::Unknown {
            method: ShortBytes::new(&other[..other.len().min(TID_LEN_MAX)]).unwrap_or_default(),
        },
    };
    Ok(Query { id, kind, want })
}

fn nodes(
    b: &[u8],
    len: usize,
    out: &mut Vec<NodeInfo>,
    key: &'static str,
) -> Result<(), KrpcError> {
    if !b.len().is_multiple_of(len) {
        return Err(KrpcError::Invalid(key));
    }
    for chunk in b.chunks_exact(len).take(NODES_MAX) {
        let mut id = [0u8; 20];
        id.copy_from_slice(&chunk[..20]);
        let addr = compact_addr(&chunk[20..]).ok_or(KrpcError::Invalid(key))?;
        out.push(NodeInfo {
            id: NodeId(id),
            addr,
        });
    }
    Ok(())
}

fn decode_response(root: &Value<'_>) -> Result<Response, KrpcError> {
    let r = root.get(b"r").ok_or(KrpcError::Missing("r"))?;
    if r.as_dict().is_none() {
        return Err(KrpcError::Invalid("r"));
    }
    let mut resp = Response::new(NodeId(id20(r.get(b"id"), "id")?));
    if let Some(n) = r.get(b"nodes") {
        let b = n.as_bytes().ok_or(KrpcError::Invalid("nodes"))?;
        nodes(b, COMPACT_NODE_V4_LEN, &mut resp.nodes, "nodes")?;
    }
    if let Some(n) = r.get(b"nodes6") {
        let b = n.as_bytes().ok_or(KrpcError::Invalid("nodes6"))?;
        nodes(b, COMPACT_NODE_V6_LEN, &mut resp.nodes, "nodes6")?;
    }
    if let Some(vals) = r.get(b"values") {
        for p in vals
            .as_list()
            .ok_or(KrpcError::Invalid("values"))?
            .iter()
            .take(PEERS_MAX)
        {
            let addr = p
                .as_bytes()
                .and_then(compact_addr)
                .ok_or(KrpcError::Invalid("values"))?;
            resp.values.push(addr);
        }
    }
    if let Some(t) = r.get(b"token") {
        resp.token = Some(bounded(t, "token", TOKEN_LEN_MAX)?);
    }
    resp.value = r.get(b"v").map(|v| v.raw().to_vec());
    if let Some(k) = r.get(b"k") {
        resp.key = Some(
            k.as_bytes()
                .and_then(|b| b.try_into().ok())
                .ok_or(KrpcError::Invalid("k"))?,
        );
    }
    if let Some(s) = r.get(b"sig") {
        resp.sig = Some(
            s.as_bytes()
                .and_then(|b| b.try_into().ok())
                .ok_or(KrpcError::Invalid("sig"))?,
        );
    }
    resp.seq = int(r.get(b"seq"), "seq")?;
    Ok(resp)
}

fn decode_error(root: &Value<'_>) -> Result<ErrorBody, KrpcError> {
    let e = root
        .get(b"e")
        .ok_or(KrpcError::Missing("e"))?
        .as_list()
        .ok_or(KrpcError::Invalid("e"))?;
    let code = e
        .first()
        .and_then(Value::as_int)
        .ok_or(KrpcError::Invalid("e"))?;
    let text = e.get(1).and_then(Value::as_bytes).unwrap_or_default();
    let mut message = String::from_utf8_lossy(text).into_owned();
    if message.len() > ERROR_TEXT_LEN_MAX {
        let mut cut = ERROR_TEXT_LEN_MAX;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    Ok(ErrorBody { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(b: &[u8]) -> Tid {
        ShortBytes::new(b).unwrap()
    }

    // The examples of BEP 5, byte for byte.
    #[test]
    fn bep5_examples() {
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        let m = Message::decode(ping).unwrap();
        assert_eq!(m.tid, tid(b"aa"));
        let Body::Query(q) = &m.body else { panic!() };
        assert_eq!(q.id, NodeId(*b"abcdefghij0123456789"));
        assert_eq!(q.kind, QueryKind::Ping);
        assert_eq!(m.encode(), ping);

        let pong = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        let m = Message::decode(pong).unwrap();
        assert_eq!(m.encode(), pong);

        let err = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
        let m = Message::decode(err).unwrap();
        assert_eq!(
            m.body,
            Body::Error(ErrorBody {
                code: 201,
                message: "A Generic Error Ocurred".into()
            })
        );
        assert_eq!(m.encode(), err);

        let announce = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
        let m = Message::decode(announce).unwrap();
        let Body::Query(q) = &m.body else { panic!() };
        assert_eq!(
            q.kind,
            QueryKind::AnnouncePeer {
                info_hash: InfoHash(*b"mnopqrstuvwxyz123456"),
                port: 6881,
                implied_port: true,
                token: b"aoeusnth".to_vec()
            }
        );
        assert_eq!(m.encode(), announce);

        let peers = b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
        let m = Message::decode(peers).unwrap();
        let Body::Response(r) = &m.body else { panic!() };
        assert_eq!(r.values.len(), 2);
        assert_eq!(r.values[0], "97.120.106.101:11893".parse().unwrap());
        assert_eq!(m.encode(), peers);
    }

    #[test]
    fn nodes_both_families() {
        let mut r = Response::new(NodeId([1; 20]));
        r.nodes.push(NodeInfo {
            id: NodeId([2; 20]),
            addr: "127.0.0.1:6881".parse().unwrap(),
        });
        r.nodes.push(NodeInfo {
            id: NodeId([3; 20]),
            addr: "[::1]:6882".parse().unwrap(),
        });
        let m = Message::response(tid(b"xy"), r);
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn refusals() {
        let long = vec![b'x'; MESSAGE_LEN_MAX + 1];
        assert_eq!(
            Message::decode(&long).unwrap_err().error,
            KrpcError::TooLong(MESSAGE_LEN_MAX + 1)
        );
        // A query with a short id: the tid is reported for a 203 reply.
        let e = Message::decode(b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe").unwrap_err();
        assert_eq!(e.error, KrpcError::Invalid("id"));
        assert_eq!(e.query_tid, Some(tid(b"aa")));
        // Nodes not a multiple of 26 bytes.
        let e = Message::decode(b"d1:rd2:id20:abcdefghij01234567895:nodes3:abce1:t2:aa1:y1:re")
            .unwrap_err();
        assert_eq!(e.error, KrpcError::Invalid("nodes"));
        assert_eq!(e.query_tid, None);
        // Unknown methods decode (for a 204 reply).
        let m =
            Message::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q5:vote?1:t2:aa1:y1:qe").unwrap();
        let Body::Query(q) = m.body else { panic!() };
        assert_eq!(q.kind.method(), b"vote?");
    }
}
