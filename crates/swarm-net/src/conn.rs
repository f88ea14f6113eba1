//! Peer connections (BEP 3 handshake, BEP 6 and BEP 10 reserved bits) and the
//! two tasks that move a connection's bytes.
//!
//! - [`connect`] / [`accept`]: TCP connect with a timeout, then the 68-byte
//!   handshake with an info-hash check. The dialler sends first; the
//!   acceptor reads the peer's handshake first, so it can refuse a torrent it
//!   does not serve without revealing its peer id.
//! - [`read_loop`]: one task per connection. Reads into a large buffer,
//!   decodes every whole message with the bounded [`MessageDecoder`] and
//!   forwards them as one batch per read to the session (blocks are slices of
//!   the read buffer: no copy). A protocol violation closes the connection
//!   with the reason.
//! - [`write_loop`]: one task per connection. Takes every message queued for
//!   the peer and writes them with one vectored write: small messages and
//!   piece headers encoded into one buffer, blocks sent as they are.
//!
//! Neither task decides anything: the session owns the protocol state.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use swarm_engine::{InfoHash, PeerId, PeerKey};
use swarm_wire::peer::{
    HANDSHAKE_LEN, Handshake, Message, MessageDecoder, encode_piece_header, take_rider,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::ratelimit::RateLimiter;

/// How long a TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the peer has to send its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Room the reader asks for before each read: large reads, few syscalls.
pub const READ_BUF_LEN: usize = 256 * 1024;
/// The writer flushes once its buffer holds this much, even if more is queued.
pub const WRITE_BATCH_MAX: usize = 512 * 1024;
/// Bytes queued for one peer's writer past which the session asks the core
/// for no more disk reads for that peer (libtorrent's send-buffer watermark):
/// a deep request queue then costs its requests, not its data.
pub const SEND_BUFFER_HIGH_BYTES: usize = 1024 * 1024;
/// When the queued bytes fall below this, the writer reports
/// [`PeerInput::Drained`] and reads resume. Half of the high mark: room for
/// the next reads to arrive before the socket runs dry.
pub const SEND_BUFFER_LOW_BYTES: usize = SEND_BUFFER_HIGH_BYTES / 2;

/// A connection whose handshake completed.
#[derive(Debug)]
pub struct Handshaken {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    pub remote: Handshake,
    /// Bytes the peer sent after its handshake, read along with it.
    pub leftover: BytesMut,
    pub outgoing: bool,
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("handshake timed out")]
    HandshakeTimeout,
    #[error("closed during the handshake")]
    ClosedDuringHandshake,
    #[error("handshake for another torrent")]
    WrongInfoHash,
    #[error("connected to ourselves")]
    SelfConnection,
    #[error("{0}")]
    Wire(#[from] swarm_wire::peer::WireError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Our handshake: BEP 10 extension protocol, BEP 6 fast extension and the
/// BEP 5 DHT bit (a `port` message from a peer is ignored when our DHT is off).
pub fn our_handshake(info_hash: InfoHash, peer_id: PeerId) -> Handshake {
    Handshake::new(info_hash, peer_id).with_extensions(true, true, true)
}

/// The address to dial `to` from, given where we listen: the listening IP
/// when it is a specific one (`--listen 127.0.0.7:0` listens there and
/// dials from there, so a peer on loopback has an IP of its own and the
/// per-IP rules hold in tests), else `None` (the kernel chooses). A
/// loopback listener dialling a non-loopback address, or another address
/// family, gets `None` too: that bind could not reach it.
pub fn dial_source(listen: SocketAddr, to: SocketAddr) -> Option<IpAddr> {
    let ip = listen.ip();
    let usable = !ip.is_unspecified()
        && ip.is_ipv4() == to.ip().is_ipv4()
        && (!ip.is_loopback() || to.ip().is_loopback());
    usable.then_some(ip)
}

/// TCP connect to `addr`, from `local` (port chosen by the kernel) if given,
/// within [`CONNECT_TIMEOUT`].
pub async fn tcp_connect(local: Option<IpAddr>, addr: SocketAddr) -> Result<TcpStream, ConnError> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = local {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| ConnError::ConnectTimeout)?
        .map_err(ConnError::Io)
}

/// Dials `addr` and exchanges handshakes.
pub async fn connect(
    addr: SocketAddr,
    info_hash: InfoHash,
    peer_id: PeerId,
) -> Result<Handshaken, ConnError> {
    connect_from(None, addr, info_hash, peer_id).await
}

/// [`connect`] from the local IP `local` (see [`dial_source`]).
pub async fn connect_from(
    local: Option<IpAddr>,
    addr: SocketAddr,
    info_hash: InfoHash,
    peer_id: PeerId,
) -> Result<Handshaken, ConnError> {
    let mut stream = tcp_connect(local, addr).await?;
    stream.set_nodelay(true)?;
    stream
        .write_all(&our_handshake(info_hash, peer_id).to_bytes())
        .await?;
    let (remote, leftover) = read_handshake(&mut stream).await?;
    if remote.info_hash != info_hash {
        return Err(ConnError::WrongInfoHash);
    }
    if remote.peer_id == peer_id {
        return Err(ConnError::SelfConnection);
    }
    Ok(Handshaken {
        stream,
        addr,
        remote,
        leftover,
        outgoing: true,
    })
}

/// Reads an incoming peer's handshake; answers with ours if it asks for our torrent.
pub async fn accept(
    mut stream: TcpStream,
    addr: SocketAddr,
    info_hash: InfoHash,
    peer_id: PeerId,
) -> Result<Handshaken, ConnError> {
    stream.set_nodelay(true)?;
    let (remote, leftover) = read_handshake(&mut stream).await?;
    if remote.info_hash != info_hash {
        return Err(ConnError::WrongInfoHash);
    }
    stream
        .write_all(&our_handshake(info_hash, peer_id).to_bytes())
        .await?;
    if remote.peer_id == peer_id {
        // Answered anyway, so the dialling side (us) sees its own id and
        // stops dialling that address.
        return Err(ConnError::SelfConnection);
    }
    Ok(Handshaken {
        stream,
        addr,
        remote,
        leftover,
        outgoing: false,
    })
}

/// The acceptor's first half: reads the peer's handshake (within
/// [`HANDSHAKE_TIMEOUT`]) without answering, so the endpoint can refuse a
/// torrent we do not serve without revealing our peer id.
pub async fn read_incoming(
    mut stream: TcpStream,
) -> Result<(TcpStream, Handshake, BytesMut), ConnError> {
    stream.set_nodelay(true)?;
    let (remote, leftover) = read_handshake(&mut stream).await?;
    Ok((stream, remote, leftover))
}

/// The acceptor's second half: answers with our handshake.
pub async fn answer(
    stream: &mut TcpStream,
    info_hash: InfoHash,
    peer_id: PeerId,
) -> Result<(), ConnError> {
    stream
        .write_all(&our_handshake(info_hash, peer_id).to_bytes())
        .await?;
    Ok(())
}

async fn read_handshake(stream: &mut TcpStream) -> Result<(Handshake, BytesMut), ConnError> {
    let read = async {
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            if let Some(hs) = Handshake::decode(&mut buf)? {
                return Ok((hs, buf));
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(ConnError::ClosedDuringHandshake);
            }
            if buf.len() > HANDSHAKE_LEN {
                // Decode takes the handshake as soon as 68 bytes are in.
                continue;
            }
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, read)
        .await
        .map_err(|_| ConnError::HandshakeTimeout)?
}

/// What a connection's tasks tell the session.
#[derive(Debug)]
pub enum PeerInput {
    /// Whole messages, in the order received.
    Messages(PeerKey, Vec<Message>),
    /// The connection ended; the reason is for the log.
    Closed(PeerKey, String),
    /// The writer's queue fell below [`SEND_BUFFER_LOW_BYTES`].
    Drained(PeerKey),
}

/// Reads and decodes messages until the connection ends or the session
/// stops listening. `buf` holds bytes already read after the handshake.
pub async fn read_loop(
    key: PeerKey,
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    mut decoder: MessageDecoder,
    tx: mpsc::Sender<PeerInput>,
    limits: Vec<Arc<RateLimiter>>,
) {
    let reason = loop {
        let mut batch = Vec::new();
        let violation = loop {
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => batch.push(own_block(msg)),
                Ok(None) => break None,
                Err(e) => break Some(format!("protocol violation: {e}")),
            }
        };
        if !batch.is_empty() && tx.send(PeerInput::Messages(key, batch)).await.is_err() {
            return; // the session is gone
        }
        if let Some(reason) = violation {
            break reason;
        }
        if buf.capacity() - buf.len() < READ_BUF_LEN / 4 {
            // The blocks of the last reads were copied out (`own_block`),
            // so the buffer is this reader's alone and `reserve` moves the
            // few bytes left of a message to its front instead of
            // allocating: one buffer for the whole connection.
            buf.reserve(READ_BUF_LEN.saturating_sub(buf.len()).max(READ_BUF_LEN / 4));
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => break "closed by the peer".to_string(),
            Ok(n) => {
                for limit in &limits {
                    limit.take(n).await;
                }
            }
            Err(e) => break format!("read: {e}"),
        }
    };
    let _ = tx.send(PeerInput::Closed(key, reason)).await;
}

/// Gives a block its own allocation of exactly its length, so that nothing
/// downstream keeps the reader's buffer alive. A block sliced out of the read
/// buffer pinned all of it (256 KiB) until the block was on disk; the reader
/// then needed a new buffer every read, and glibc's arenas kept the freed
/// ones: peak RSS 26-28 MiB for one peer, where the blocks themselves are
/// about 10. The copy costs one memcpy of the payload in the reader's task,
/// into a recycled buffer ([`crate::blocks`]).
fn own_block(msg: Message) -> Message {
    match msg {
        Message::Piece {
            piece,
            offset,
            data,
        } => Message::Piece {
            piece,
            offset,
            data: crate::blocks::copy_of(&data),
        },
        other => other,
    }
}

/// Writes what the session queues for one peer, batching queued messages
/// into one vectored write, and subtracts what it wrote from `queued` (the
/// session adds each message's length when it queues it); says
/// [`PeerInput::Drained`] each time that falls below
/// [`SEND_BUFFER_LOW_BYTES`]. Ends when the session drops the sender (then
/// shuts the socket down after flushing) or on a write error.
///
/// Messages about our downloads ([`Message::rides_ahead`]: requests,
/// cancels, interest) overtake what is queued before them and do not wait
/// for the upload limit: under `--max-upload-rate` a request queued behind
/// half a MiB of blocks waited seconds for tokens, and our download from
/// that peer fell to the few requests that got through (a leecher capped
/// at 256 KiB/s up downloaded at 0.3 MB/s from peers offering 4). Nothing
/// overtakes the messages a connection opens with ([`Message::opens`]);
/// everything else keeps its order and pays the limit. Transmission
/// likewise limits only piece data.
pub async fn write_loop(
    key: PeerKey,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Message>,
    queued: Arc<AtomicUsize>,
    events: mpsc::Sender<PeerInput>,
    limits: Vec<Arc<RateLimiter>>,
) {
    // What was taken from `rx` and not written yet, in queue order. The
    // session bounds it: blocks by its send-buffer mark, the rest are a
    // few bytes each (as in the channel before).
    let mut pending: std::collections::VecDeque<Message> = std::collections::VecDeque::new();
    let mut open = true;
    let mut batch = WriteBatch::default();
    loop {
        if pending.is_empty() && open {
            match rx.recv().await {
                Some(msg) => pending.push_back(msg),
                None => open = false,
            }
        }
        while open {
            match rx.try_recv() {
                Ok(msg) => pending.push_back(msg),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        // Empty only when the session dropped the sender.
        if pending.is_empty() {
            break;
        }
        // Messages that ride ahead: now, without the limit.
        take_riders(&mut pending, &mut batch);
        if batch.len > 0 && !write_accounted(key, &mut wr, &mut batch, &queued, &events).await {
            return;
        }
        // Then a batch from the front, paid for before it is written;
        // riders queued meanwhile go out while it waits.
        // Whether an opener is queued (in this batch or after it): riders
        // then wait for it.
        let mut held = pending.iter().any(Message::opens);
        while batch.len < WRITE_BATCH_MAX {
            match pending.pop_front() {
                Some(msg) => batch.push(msg),
                None => break,
            }
        }
        if batch.len == 0 {
            continue;
        }
        let bytes = batch.len;
        let pay = async {
            for limit in &limits {
                limit.take(bytes).await;
            }
        };
        tokio::pin!(pay);
        let mut riders = WriteBatch::default();
        loop {
            tokio::select! {
                biased;
                () = &mut pay => break,
                msg = rx.recv(), if open => match msg {
                    Some(msg) if msg.rides_ahead() && !held => {
                        riders.push(msg);
                        if !write_accounted(key, &mut wr, &mut riders, &queued, &events).await {
                            return;
                        }
                    }
                    Some(msg) => {
                        held |= msg.opens();
                        pending.push_back(msg);
                    }
                    None => open = false,
                },
            }
        }
        if !write_accounted(key, &mut wr, &mut batch, &queued, &events).await {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// Moves into `batch`, in order, the messages of `pending` that ride ahead
/// (see [`take_rider`]).
fn take_riders(pending: &mut std::collections::VecDeque<Message>, batch: &mut WriteBatch) {
    let mut from = 0;
    while let Some(msg) = take_rider(pending, &mut from, Message::rides_ahead, Message::opens) {
        batch.push(msg);
    }
}

/// Writes `batch`, subtracts it from `queued` and says
/// [`PeerInput::Drained`] when that crosses the low mark; false when the
/// connection or the session is gone (the session was told of a failed
/// write).
async fn write_accounted(
    key: PeerKey,
    wr: &mut OwnedWriteHalf,
    batch: &mut WriteBatch,
    queued: &AtomicUsize,
    events: &mpsc::Sender<PeerInput>,
) -> bool {
    if let Err(e) = batch.write_to(wr).await {
        let _ = events
            .send(PeerInput::Closed(key, format!("write: {e}")))
            .await;
        return false;
    }
    let len = batch.len;
    batch.clear();
    let before = queued.fetch_sub(len, Ordering::Relaxed);
    !(before >= SEND_BUFFER_LOW_BYTES
        && before - len < SEND_BUFFER_LOW_BYTES
        && events.send(PeerInput::Drained(key)).await.is_err())
}

/// Messages encoded for one vectored write: small messages and piece headers
/// are encoded into a shared buffer, blocks go out as they are (no copy).
#[derive(Default)]
struct WriteBatch {
    head: BytesMut,
    chunks: Vec<bytes::Bytes>,
    /// Bytes in the batch.
    len: usize,
}

impl WriteBatch {
    fn push(&mut self, msg: Message) {
        self.len += msg.encoded_len();
        match msg {
            Message::Piece {
                piece,
                offset,
                data,
            } => {
                encode_piece_header(piece, offset, data.len(), &mut self.head);
                self.chunks.push(self.head.split().freeze());
                self.chunks.push(data);
            }
            other => other.encode_into(&mut self.head),
        }
    }

    async fn write_to(&mut self, wr: &mut OwnedWriteHalf) -> std::io::Result<()> {
        if !self.head.is_empty() {
            self.chunks.push(self.head.split().freeze());
        }
        let mut slices: Vec<IoSlice<'_>> = self.chunks.iter().map(|c| IoSlice::new(c)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = rest.len().min(IOV_MAX);
            let written = wr.write_vectored(&rest[..n]).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, written);
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
        if self.head.capacity() > 4 * WRITE_BATCH_MAX {
            self.head = BytesMut::new();
        }
    }
}

/// Slices handed to one vectored write at most (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn handshake_checks_the_info_hash_and_refuses_ourselves() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut results = Vec::new();
            for _ in 0..3 {
                let (s, a) = l.accept().await.unwrap();
                results
                    .push(accept(s, a, InfoHash([1; 20]), PeerId(*b"-SW0001-server......")).await);
            }
            results
        });
        let ok = connect(addr, InfoHash([1; 20]), PeerId(*b"-SW0001-client......"))
            .await
            .unwrap();
        assert!(
            ok.outgoing && ok.remote.supports_fast() && ok.remote.supports_extension_protocol()
        );
        assert!(matches!(
            connect(addr, InfoHash([2; 20]), PeerId(*b"-SW0001-client......")).await,
            Err(ConnError::ClosedDuringHandshake | ConnError::Io(_))
        ));
        assert!(matches!(
            connect(addr, InfoHash([1; 20]), PeerId(*b"-SW0001-server......")).await,
            Err(ConnError::SelfConnection)
        ));
        let results = server.await.unwrap();
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(ConnError::WrongInfoHash)));
        assert!(matches!(results[2], Err(ConnError::SelfConnection)));
    }

    #[test]
    fn the_dial_source_is_the_listen_ip_when_it_can_reach() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            dial_source(a("127.0.0.7:0"), a("127.0.0.9:1")),
            ip("127.0.0.7")
        );
        assert_eq!(
            dial_source(a("10.0.0.2:6881"), a("192.0.2.1:1")),
            ip("10.0.0.2")
        );
        // Unspecified: the kernel chooses; loopback cannot reach out; v4 ≠ v6.
        assert_eq!(dial_source(a("0.0.0.0:6881"), a("127.0.0.9:1")), None);
        assert_eq!(dial_source(a("127.0.0.7:0"), a("192.0.2.1:1")), None);
        assert_eq!(dial_source(a("127.0.0.7:0"), a("[::1]:1")), None);
    }

    #[tokio::test]
    async fn a_dial_from_a_loopback_ip_comes_from_it() {
        let listener = TcpListener::bind("127.0.0.9:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        let (dialled, accepted) = tokio::join!(
            tcp_connect(Some("127.0.0.8".parse().unwrap()), to),
            listener.accept()
        );
        let (_stream, from) = accepted.unwrap();
        assert_eq!(from.ip(), "127.0.0.8".parse::<IpAddr>().unwrap());
        assert_eq!(dialled.unwrap().local_addr().unwrap(), from);
    }

    #[tokio::test]
    async fn an_oversized_message_closes_with_the_reason() {
        let (mut a, b) = pair().await;
        let (rd, _wr) = b.into_split();
        let (tx, mut rx) = mpsc::channel(8);
        let reader = tokio::spawn(read_loop(
            PeerKey(7),
            rd,
            BytesMut::new(),
            MessageDecoder::new(2),
            tx,
            Vec::new(),
        ));
        // An unchoke, then a "piece" claiming 1 MiB.
        a.write_all(&Message::Unchoke.to_bytes()).await.unwrap();
        a.write_all(&[0, 0x10, 0, 0, 7]).await.unwrap();
        let mut got = Vec::new();
        let collect = async {
            while let Some(input) = rx.recv().await {
                got.push(input);
            }
        };
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), collect).await;
        assert!(ended.is_ok(), "the reader ends on the violation");
        reader.await.unwrap();
        assert!(
            matches!(&got[0], PeerInput::Messages(PeerKey(7), m) if m == &vec![Message::Unchoke])
        );
        assert!(
            matches!(&got[1], PeerInput::Closed(PeerKey(7), why) if why.contains("protocol violation")),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn the_writer_sends_messages_in_order_with_blocks_whole() {
        let (a, mut b) = pair().await;
        let (_rd, wr) = a.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let (events, _events_rx) = mpsc::channel(8);
        let queued = Arc::new(AtomicUsize::new(0));
        let block = bytes::Bytes::from(vec![9u8; 16 * 1024]);
        let msgs = vec![
            Message::Unchoke,
            Message::Piece {
                piece: 1,
                offset: 0,
                data: block.clone(),
            },
            Message::Have { piece: 3 },
            Message::Piece {
                piece: 2,
                offset: 16384,
                data: block,
            },
        ];
        let mut expected = Vec::new();
        for m in &msgs {
            expected.extend_from_slice(&m.to_bytes());
            queued.fetch_add(m.encoded_len(), Ordering::Relaxed);
            tx.send(m.clone()).unwrap();
        }
        drop(tx);
        write_loop(PeerKey(1), wr, rx, queued.clone(), events, Vec::new()).await;
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert!(got == expected);
        assert_eq!(queued.load(Ordering::Relaxed), 0);
    }

    /// The far end of a test connection, decoding what arrives.
    struct Reader {
        stream: TcpStream,
        dec: MessageDecoder,
        buf: BytesMut,
    }

    impl Reader {
        fn new(stream: TcpStream) -> Self {
            Reader {
                stream,
                dec: MessageDecoder::new(1 << 16),
                buf: BytesMut::new(),
            }
        }

        /// The next `n` whole messages (each read bounded by 10 s).
        async fn next(&mut self, n: usize) -> Vec<Message> {
            let mut out = Vec::new();
            loop {
                while out.len() < n
                    && let Some(m) = self.dec.decode(&mut self.buf).unwrap()
                {
                    out.push(m);
                }
                if out.len() >= n {
                    return out;
                }
                let read = tokio::time::timeout(
                    Duration::from_secs(10),
                    self.stream.read_buf(&mut self.buf),
                )
                .await;
                assert!(
                    matches!(read, Ok(Ok(k)) if k > 0),
                    "message {} of {n} within 10 s; got {out:?}",
                    out.len()
                );
            }
        }
    }

    /// A writer to a connection whose far end `far` decodes, paying into a
    /// bucket of `rate` bytes/s, with `first` queued before it starts (so
    /// it takes them in one go); `send` queues more. Dropped, it stops.
    struct LimitedWriter {
        far: Reader,
        tx: mpsc::UnboundedSender<Message>,
        queued: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
        _rd: OwnedReadHalf,
        _events: mpsc::Receiver<PeerInput>,
    }

    impl LimitedWriter {
        async fn start(rate: u64, first: Vec<Message>) -> Self {
            let (a, b) = pair().await;
            let (rd, wr) = a.into_split();
            let (tx, rx) = mpsc::unbounded_channel();
            let (events, events_rx) = mpsc::channel(8);
            let queued = Arc::new(AtomicUsize::new(0));
            for m in first {
                queued.fetch_add(m.encoded_len(), Ordering::Relaxed);
                tx.send(m).unwrap();
            }
            let limit = Arc::new(RateLimiter::new(rate));
            let task = tokio::spawn(write_loop(
                PeerKey(1),
                wr,
                rx,
                queued.clone(),
                events,
                vec![limit],
            ));
            LimitedWriter {
                far: Reader::new(b),
                tx,
                queued,
                task,
                _rd: rd,
                _events: events_rx,
            }
        }

        fn send(&self, m: Message) {
            self.queued.fetch_add(m.encoded_len(), Ordering::Relaxed);
            self.tx.send(m).unwrap();
        }
    }

    impl Drop for LimitedWriter {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn block_msg(piece: u32) -> Message {
        Message::Piece {
            piece,
            offset: 0,
            data: bytes::Bytes::from(vec![7u8; 16 * 1024]),
        }
    }

    /// Under an upload limit, requests and cancels queued behind blocks and
    /// a have go out before them, at once, and so does one queued while the
    /// blocks wait. 1 KiB/s after a 64 KiB burst: the eight blocks (128 KiB) owe a
    /// minute of tokens, so the riders can arrive within the read timeout
    /// only ahead of them (the old writer sent them a minute later).
    #[tokio::test]
    async fn requests_overtake_blocks_waiting_for_the_upload_limit() {
        let request = Message::Request {
            piece: 9,
            offset: 0,
            length: 16384,
        };
        let cancel = Message::Cancel {
            piece: 8,
            offset: 0,
            length: 16384,
        };
        let mut first: Vec<Message> = (0..4).map(block_msg).collect();
        first.push(Message::Have { piece: 4 });
        first.extend((4..8).map(block_msg));
        first.push(request.clone());
        first.push(cancel.clone());
        let mut w = LimitedWriter::start(1024, first).await;
        // The riders first: the first batch is the blocks and the have,
        // paid before it is written, so none of it has come yet.
        let got = w.far.next(2).await;
        assert_eq!(got, vec![request, cancel]);
        // One queued while the blocks wait for tokens still overtakes them.
        w.send(Message::Interested);
        let got = w.far.next(1).await;
        assert_eq!(got, vec![Message::Interested]);
    }

    /// Nothing overtakes the bitfield, and haves and unchokes keep their
    /// order with the blocks.
    #[tokio::test]
    async fn nothing_overtakes_the_bitfield_and_haves_keep_their_place() {
        // 64 KiB/s, burst 64 KiB: the eight blocks owe about a second.
        let bitfield = Message::Bitfield(bytes::Bytes::from_static(&[0x80]));
        let first = vec![bitfield.clone(), Message::Interested];
        let mut w = LimitedWriter::start(64 * 1024, first).await;
        let got = w.far.next(2).await;
        assert_eq!(got, vec![bitfield, Message::Interested]);
        // Blocks around an unchoke, then a have while they wait for tokens
        // (or, if the writer has not taken them yet, behind them in its
        // queue): either way it follows the unchoke.
        (0..4).for_each(|i| w.send(block_msg(i)));
        w.send(Message::Unchoke);
        (4..8).for_each(|i| w.send(block_msg(i)));
        w.send(Message::Have { piece: 2 });
        let got = w.far.next(10).await;
        let have_at = got.iter().position(|m| *m == Message::Have { piece: 2 });
        let unchoke_at = got.iter().position(|m| *m == Message::Unchoke);
        assert!(
            have_at.zip(unchoke_at).is_some_and(|(h, u)| h > u),
            "the have follows the unchoke: {got:?}"
        );
    }
}
