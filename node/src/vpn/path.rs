//! The VPN's data path: IP packets between the TUN interface and the peers' tunnels.
//!
//! Out (TUN → peer): each packet read from the interface goes to the peer whose AllowedIPs
//! hold its destination (longest prefix, [`Table`]), into that peer's bounded queue, framed
//! with a two-byte length. The tunnel's local side ([`Outbound`], an `AsyncRead`) takes a
//! packet as soon as one is queued and adds whatever else is already waiting to the same
//! read, so one DKTP message carries one packet on a quiet link and many on a busy one
//! (never waiting for more). A full queue drops the packet, as a router does: the sender's
//! TCP sees a loss and slows down, instead of a queue growing behind the tunnel's own TCP
//! (the TCP-over-TCP trap).
//!
//! In (peer → TUN): the tunnel's plaintext ([`Inbound`], an `AsyncWrite`) is cut back into
//! packets; each must be a well-formed IPv4 or IPv6 packet whose length matches its frame,
//! no longer than the interface's MTU, and from a source address that the table routes to
//! the same peer (WireGuard's cryptokey routing: a peer speaks only for its own subnets).
//! Anything else is dropped and counted, with a log line; the packet never reaches the
//! interface.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use ipnet::IpNet;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::tunnel::Local;

/// Packets a peer's queue holds before packets to it are dropped.
pub const PEER_QUEUE: usize = 256;

/// The source and destination of an IP packet whose header is consistent with its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    /// Source.
    pub src: IpAddr,
    /// Destination.
    pub dst: IpAddr,
}

/// Reads `p` as one whole IPv4 or IPv6 packet: `None` unless its header is complete and its
/// length field says exactly `p.len()`.
pub fn addrs(p: &[u8]) -> Option<Addrs> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
            if ihl < 20 || p.len() < ihl || total != p.len() {
                return None;
            }
            let a = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
            Some(Addrs {
                src: a(12).into(),
                dst: a(16).into(),
            })
        }
        6 => {
            if p.len() < 40 {
                return None;
            }
            let payload = usize::from(u16::from_be_bytes([p[4], p[5]]));
            if 40 + payload != p.len() {
                return None;
            }
            let a = |i: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&p[i..i + 16]);
                Ipv6Addr::from(b)
            };
            Some(Addrs {
                src: a(8).into(),
                dst: a(24).into(),
            })
        }
        _ => None,
    }
}

/// Longest-prefix lookup from addresses to peers: per prefix length (longest first), a hash
/// of the masked networks.
#[derive(Default)]
pub struct Table {
    v4: Vec<(u8, HashMap<u32, usize>)>,
    v6: Vec<(u8, HashMap<u128, usize>)>,
}

impl Table {
    /// The table for `peers`' AllowedIPs (indexed as given).
    pub fn new<'a>(peers: impl IntoIterator<Item = &'a [IpNet]>) -> Table {
        let mut t = Table::default();
        for (i, nets) in peers.into_iter().enumerate() {
            for net in nets {
                match net.trunc() {
                    IpNet::V4(n) => insert(&mut t.v4, n.prefix_len(), n.network().to_bits(), i),
                    IpNet::V6(n) => insert(&mut t.v6, n.prefix_len(), n.network().to_bits(), i),
                }
            }
        }
        t.v4.sort_by_key(|l| std::cmp::Reverse(l.0));
        t.v6.sort_by_key(|l| std::cmp::Reverse(l.0));
        t
    }

    /// The peer `ip` is routed to.
    pub fn lookup(&self, ip: IpAddr) -> Option<usize> {
        match ip {
            IpAddr::V4(a) => {
                let bits = a.to_bits();
                self.v4.iter().find_map(|(len, m)| {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                    m.get(&(bits & mask)).copied()
                })
            }
            IpAddr::V6(a) => {
                let bits = a.to_bits();
                self.v6.iter().find_map(|(len, m)| {
                    let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                    m.get(&(bits & mask)).copied()
                })
            }
        }
    }
}

fn insert<K: std::hash::Hash + Eq>(
    levels: &mut Vec<(u8, HashMap<K, usize>)>,
    len: u8,
    key: K,
    peer: usize,
) {
    match levels.iter_mut().find(|(l, _)| *l == len) {
        Some((_, m)) => {
            m.entry(key).or_insert(peer);
        }
        None => levels.push((len, HashMap::from([(key, peer)]))),
    }
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// From the interface, to an address no peer's AllowedIPs holds.
    NoRoute,
    /// To a peer with no session up.
    NoSession,
    /// To a peer whose queue is full.
    QueueFull,
    /// From a peer, with a source outside that peer's AllowedIPs.
    Spoofed,
    /// From a peer, longer than the interface's MTU.
    TooBig,
    /// From a peer, not a well-formed IP packet.
    Malformed,
    /// The interface would not take it.
    TunFull,
}

impl Discard {
    /// Every reason, for the counters.
    pub const ALL: [Discard; 7] = [
        Discard::NoRoute,
        Discard::NoSession,
        Discard::QueueFull,
        Discard::Spoofed,
        Discard::TooBig,
        Discard::Malformed,
        Discard::TunFull,
    ];

    /// The reason's label.
    pub fn label(self) -> &'static str {
        match self {
            Discard::NoRoute => "no_route",
            Discard::NoSession => "no_session",
            Discard::QueueFull => "queue_full",
            Discard::Spoofed => "spoofed_source",
            Discard::TooBig => "too_big",
            Discard::Malformed => "malformed",
            Discard::TunFull => "tun_full",
        }
    }
}

/// Where packets from the peers go: the interface (or, in tests, anything that takes a
/// packet without waiting).
pub trait Sink: Send + Sync + 'static {
    /// Delivers one packet; an error drops it.
    fn send(&self, packet: &[u8]) -> io::Result<()>;
}

/// One peer of the interface.
pub struct PeerPath {
    /// For the logs.
    pub name: String,
    /// The queue of the peer's current session, with that session's number.
    link: Mutex<Option<(u64, mpsc::Sender<Vec<u8>>)>>,
    /// Packets and bytes each way, and drops of its packets by reason.
    pub tx_packets: AtomicU64,
    /// Packets received from the peer and delivered.
    pub rx_packets: AtomicU64,
}

/// The data path of one interface.
pub struct Path {
    table: Table,
    peers: Vec<PeerPath>,
    mtu: usize,
    sink: Arc<dyn Sink>,
    drops: [AtomicU64; 7],
    sessions: AtomicU64,
}

impl Path {
    /// A path for `peers` (name, AllowedIPs) delivering to `sink`.
    pub fn new(peers: &[(String, Vec<IpNet>)], mtu: usize, sink: Arc<dyn Sink>) -> Path {
        Path {
            table: Table::new(peers.iter().map(|(_, n)| n.as_slice())),
            peers: peers
                .iter()
                .map(|(name, _)| PeerPath {
                    name: name.clone(),
                    link: Mutex::new(None),
                    tx_packets: AtomicU64::new(0),
                    rx_packets: AtomicU64::new(0),
                })
                .collect(),
            mtu,
            sink,
            drops: Default::default(),
            sessions: AtomicU64::new(0),
        }
    }

    /// Packets dropped for `why` so far.
    pub fn dropped(&self, why: Discard) -> u64 {
        self.drops[why as usize].load(Ordering::Relaxed)
    }

    /// The peers.
    pub fn peers(&self) -> &[PeerPath] {
        &self.peers
    }

    fn drop_packet(&self, why: Discard, peer: Option<usize>, what: impl FnOnce() -> String) {
        let n = self.drops[why as usize].fetch_add(1, Ordering::Relaxed) + 1;
        let name = peer
            .and_then(|i| self.peers.get(i))
            .map_or("", |p| p.name.as_str());
        // The first few of a kind, then every 10,000th: a flood must not become a log flood.
        // What a peer sends wrongly is a warning; what finds no way out is for debugging.
        if n > 16 && !n.is_multiple_of(10_000) {
            return;
        }
        let (reason, line) = (why.label(), what());
        if matches!(why, Discard::Spoofed | Discard::TooBig | Discard::Malformed) {
            warn!(
                peer = name,
                reason,
                dropped = n,
                "dropped a packet from the peer: {line}"
            );
        } else {
            debug!(peer = name, reason, dropped = n, "dropped a packet: {line}");
        }
    }

    /// Routes a packet read from the interface to its peer's queue.
    pub fn outbound(&self, packet: &[u8]) {
        let Some(a) = addrs(packet) else {
            return self.drop_packet(Discard::Malformed, None, || "not an IP packet".into());
        };
        let Some(i) = self.table.lookup(a.dst) else {
            return self.drop_packet(Discard::NoRoute, None, || format!("no peer for {}", a.dst));
        };
        let Ok(len) = u16::try_from(packet.len()) else {
            return self.drop_packet(Discard::TooBig, Some(i), || "longer than 65535".into());
        };
        let link = self.peers[i].link.lock().as_ref().map(|(_, tx)| tx.clone());
        let Some(tx) = link else {
            return self.drop_packet(Discard::NoSession, Some(i), || format!("to {}", a.dst));
        };
        let mut frame = Vec::with_capacity(2 + packet.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(packet);
        match tx.try_send(frame) {
            Ok(()) => {
                self.peers[i].tx_packets.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.drop_packet(Discard::QueueFull, Some(i), || format!("to {}", a.dst));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.drop_packet(Discard::NoSession, Some(i), || format!("to {}", a.dst));
            }
        }
    }

    /// A packet from peer `i`: to the sink if it may pass.
    fn inbound(&self, i: usize, packet: &[u8]) {
        if packet.len() > self.mtu {
            let (len, mtu) = (packet.len(), self.mtu);
            return self.drop_packet(Discard::TooBig, Some(i), || {
                format!(
                    "{len} bytes, over the interface's MTU {mtu} (set the same MTU on both ends)"
                )
            });
        }
        let Some(a) = addrs(packet) else {
            return self.drop_packet(Discard::Malformed, Some(i), || {
                "not a whole IPv4 or IPv6 packet".into()
            });
        };
        if self.table.lookup(a.src) != Some(i) {
            return self.drop_packet(Discard::Spoofed, Some(i), || {
                format!("source {} is outside the peer's AllowedIPs", a.src)
            });
        }
        match self.sink.send(packet) {
            Ok(()) => {
                self.peers[i].rx_packets.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.drop_packet(Discard::TunFull, Some(i), || e.to_string()),
        }
    }

    /// Makes a new session the peer's link, as the session's local side: packets to the
    /// peer are what it reads, what it writes goes to the interface. A session the peer had
    /// before stops receiving packets (its local stream ends).
    pub fn local(self: &Arc<Self>, i: usize) -> Local {
        let (rd, wr) = self.attach(i);
        Local::Stream {
            rd: Box::new(rd),
            wr: Box::new(wr),
        }
    }

    /// [`local`](Self::local)'s two halves.
    pub fn attach(self: &Arc<Self>, i: usize) -> (Outbound, Inbound) {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let id = self.sessions.fetch_add(1, Ordering::Relaxed);
        *self.peers[i].link.lock() = Some((id, tx));
        (
            Outbound {
                rx,
                carry: None,
                detach: Some(Detach {
                    path: self.clone(),
                    peer: i,
                    id,
                }),
            },
            Inbound {
                path: self.clone(),
                peer: i,
                partial: Vec::new(),
            },
        )
    }
}

/// Clears the peer's link when its session ends, unless a newer session replaced it.
struct Detach {
    path: Arc<Path>,
    peer: usize,
    id: u64,
}

impl std::ops::Drop for Detach {
    fn drop(&mut self) {
        let mut link = self.path.peers[self.peer].link.lock();
        if link.as_ref().is_some_and(|(id, _)| *id == self.id) {
            *link = None;
        }
    }
}

/// A session's packets to send, as a byte stream of length-prefixed packets.
pub struct Outbound {
    rx: mpsc::Receiver<Vec<u8>>,
    /// A frame that did not fit the last read, and how much of it went.
    carry: Option<(Vec<u8>, usize)>,
    detach: Option<Detach>,
}

impl Outbound {
    /// Copies as much of `frame` from `at` as fits; keeps the rest for the next read.
    fn put(&mut self, frame: Vec<u8>, at: usize, buf: &mut ReadBuf<'_>) {
        let n = (frame.len() - at).min(buf.remaining());
        buf.put_slice(&frame[at..at + n]);
        if at + n < frame.len() {
            self.carry = Some((frame, at + n));
        }
    }
}

impl AsyncRead for Outbound {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some((frame, at)) = this.carry.take() {
            this.put(frame, at, buf);
        } else {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(frame)) => this.put(frame, 0, buf),
                // Replaced by a newer session of the peer: end this one's stream.
                Poll::Ready(None) => {
                    this.detach.take();
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        // Whatever else is queued already rides in the same message; nothing waits.
        while this.carry.is_none() && buf.remaining() > 0 {
            match this.rx.try_recv() {
                Ok(frame) => this.put(frame, 0, buf),
                Err(_) => break,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// A session's received plaintext, cut back into packets for the interface.
pub struct Inbound {
    path: Arc<Path>,
    peer: usize,
    /// The start of a frame that the last write did not complete (at most 2 + 65535 bytes).
    partial: Vec<u8>,
}

impl Inbound {
    fn take(&mut self, mut data: &[u8]) {
        // First complete a frame begun in an earlier write.
        if !self.partial.is_empty() {
            if self.partial.len() < 2 {
                let n = (2 - self.partial.len()).min(data.len());
                self.partial.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.partial.len() < 2 {
                    return;
                }
            }
            let len = usize::from(u16::from_be_bytes([self.partial[0], self.partial[1]]));
            let need = 2 + len - self.partial.len();
            let n = need.min(data.len());
            self.partial.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.partial.len() < 2 + len {
                return;
            }
            let frame = std::mem::take(&mut self.partial);
            self.path.inbound(self.peer, &frame[2..]);
        }
        while data.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
            let Some(packet) = data.get(2..2 + len) else {
                break;
            };
            self.path.inbound(self.peer, packet);
            data = &data[2 + len..];
        }
        self.partial.extend_from_slice(data);
    }
}

impl AsyncWrite for Inbound {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An IPv4 packet (UDP, no checksum checked here) from `src` to `dst`, `len` bytes.
    pub fn v4(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        for (i, b) in p[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    fn v6(src: u128, dst: u128, payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 40 + payload];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
        p[8..24].copy_from_slice(&src.to_be_bytes());
        p[24..40].copy_from_slice(&dst.to_be_bytes());
        p
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<Vec<u8>>>);

    impl Sink for Collect {
        fn send(&self, packet: &[u8]) -> io::Result<()> {
            self.0.lock().push(packet.to_vec());
            Ok(())
        }
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().expect("net")).collect()
    }

    #[test]
    fn headers_must_match_their_length() {
        let p = v4([10, 0, 0, 1], [10, 0, 0, 2], 60);
        assert_eq!(addrs(&p).map(|a| a.dst), Some(IpAddr::from([10, 0, 0, 2])));
        assert_eq!(addrs(&p[..59]), None, "truncated");
        let mut long = p.clone();
        long.push(0);
        assert_eq!(addrs(&long), None, "trailing bytes");
        let mut bad_ihl = p.clone();
        bad_ihl[0] = 0x44;
        assert_eq!(addrs(&bad_ihl), None, "header shorter than 20");
        assert_eq!(
            addrs(&v6(1, 2, 8)).map(|a| a.src),
            Some(IpAddr::from(Ipv6Addr::from(1u128)))
        );
        assert_eq!(addrs(&v6(1, 2, 8)[..47]), None);
        assert_eq!(addrs(&[]), None);
        assert_eq!(addrs(&[0x70; 40]), None, "version 7");
    }

    #[test]
    fn the_longest_prefix_wins() {
        let t = Table::new([
            nets(&["10.0.0.0/8", "fd00::/16"]).as_slice(),
            nets(&["10.1.0.0/16"]).as_slice(),
            nets(&["10.1.2.3/32", "fd00::5/128", "0.0.0.0/0"]).as_slice(),
        ]);
        let at = |s: &str| t.lookup(s.parse().expect("ip"));
        assert_eq!(at("10.9.9.9"), Some(0));
        assert_eq!(at("10.1.9.9"), Some(1));
        assert_eq!(at("10.1.2.3"), Some(2));
        assert_eq!(at("192.0.2.1"), Some(2), "the default route");
        assert_eq!(at("fd00::6"), Some(0));
        assert_eq!(at("fd00::5"), Some(2));
        assert_eq!(at("fe80::1"), None);
    }

    fn path(sink: Arc<Collect>) -> Arc<Path> {
        Arc::new(Path::new(
            &[
                ("a".into(), nets(&["10.0.0.2/32", "192.168.2.0/24"])),
                ("b".into(), nets(&["10.0.0.3/32"])),
            ],
            1500,
            sink,
        ))
    }

    #[tokio::test]
    async fn packets_cross_in_frames_and_spoofed_ones_are_dropped() {
        let sink = Arc::new(Collect::default());
        let p = path(sink.clone());
        // No session yet: dropped, counted.
        p.outbound(&v4([10, 0, 0, 1], [10, 0, 0, 2], 100));
        assert_eq!(p.dropped(Discard::NoSession), 1);
        let (mut out, mut inb) = p.attach(0);
        // Three queued packets come out of one read, framed, in order.
        let pk: Vec<Vec<u8>> = (0..3)
            .map(|i| v4([10, 0, 0, 1], [192, 168, 2, i], 100 + usize::from(i)))
            .collect();
        for x in &pk {
            p.outbound(x);
        }
        p.outbound(&v4([10, 0, 0, 1], [172, 16, 0, 1], 100));
        assert_eq!(p.dropped(Discard::NoRoute), 1);
        let mut buf = vec![0u8; 65536];
        let n = out.read(&mut buf).await.expect("read");
        assert_eq!(n, 3 * 2 + 100 + 101 + 102);
        // Fed back in uneven pieces, they come out whole.
        let stream = buf[..n].to_vec();
        for piece in stream.chunks(7) {
            inb.write_all(piece).await.expect("write");
        }
        // The packets were addressed *to* 192.168.2.x from 10.0.0.1: from peer a's side
        // their source (10.0.0.1) is not a's, so all three are refused.
        assert_eq!(p.dropped(Discard::Spoofed), 3);
        assert!(sink.0.lock().is_empty());
        // Packets from a's own addresses pass, in order.
        let mine: Vec<Vec<u8>> = (0..3)
            .map(|i| v4([192, 168, 2, i], [10, 0, 0, 1], 60 + usize::from(i)))
            .collect();
        let mut stream = Vec::new();
        for x in &mine {
            stream.extend_from_slice(&(x.len() as u16).to_be_bytes());
            stream.extend_from_slice(x);
        }
        inb.write_all(&stream[..1]).await.expect("write");
        inb.write_all(&stream[1..]).await.expect("write");
        assert_eq!(*sink.0.lock(), mine);
        // b's address from a's session: refused.
        let theirs = v4([10, 0, 0, 3], [10, 0, 0, 1], 60);
        let mut f = (theirs.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(&theirs);
        inb.write_all(&f).await.expect("write");
        assert_eq!(p.dropped(Discard::Spoofed), 4);
        // A frame that is not a packet, and one over the MTU: dropped, the stream stays in
        // step (the good packet after them passes).
        let mut f = vec![0, 3, 1, 2, 3];
        let big = v4([192, 168, 2, 9], [10, 0, 0, 1], 1600);
        f.extend_from_slice(&(big.len() as u16).to_be_bytes());
        f.extend_from_slice(&big);
        f.extend_from_slice(&(mine[0].len() as u16).to_be_bytes());
        f.extend_from_slice(&mine[0]);
        inb.write_all(&f).await.expect("write");
        assert_eq!(p.dropped(Discard::Malformed), 1);
        assert_eq!(p.dropped(Discard::TooBig), 1);
        assert_eq!(sink.0.lock().len(), 4);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_a_new_session_replaces_the_old() {
        let sink = Arc::new(Collect::default());
        let p = path(sink);
        let (mut old, _) = p.attach(1);
        for _ in 0..PEER_QUEUE + 10 {
            p.outbound(&v4([10, 0, 0, 1], [10, 0, 0, 3], 1400));
        }
        assert_eq!(p.dropped(Discard::QueueFull), 10);
        // A read takes what fits a message; a frame cut at the end comes whole next time.
        let mut buf = vec![0u8; 65472];
        let n = old.read(&mut buf).await.expect("read");
        assert_eq!(n, 65472);
        let (mut new, _) = p.attach(1);
        // The old session's stream ends once it has handed out what it held.
        let mut rest = Vec::new();
        old.read_to_end(&mut rest).await.expect("drained");
        assert_eq!((n + rest.len()) % 1402, 0, "whole frames only");
        assert_eq!(n + rest.len(), PEER_QUEUE * 1402);
        // The new one gets the next packet; dropping the old did not detach the new.
        drop(old);
        p.outbound(&v4([10, 0, 0, 1], [10, 0, 0, 3], 100));
        let n = new.read(&mut buf).await.expect("read");
        assert_eq!(n, 102);
        drop(new);
        p.outbound(&v4([10, 0, 0, 1], [10, 0, 0, 3], 100));
        assert_eq!(p.dropped(Discard::NoSession), 1);
    }
}
