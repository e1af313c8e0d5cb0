//! One tunnel: an engine [`Connection`] on a transport, and the plaintext stream it carries.
//!
//! The engine decides, this carries bytes (quinn's endpoint driver around quinn-proto): one
//! task feeds what the transport delivers into the connection, writes the packets it hands
//! out, stores each new record of the secrets before the packet after it leaves, arms the
//! timer it asks for, and moves plaintext between the session and the local stream (a
//! forwarded socket, stdio, or the peer itself for `--echo`).
//!
//! Where the work runs ([`Work`]): the handshake's signing and key encapsulation on the
//! handshake pool ([`HandshakePool`]), off the runtime; the data packets' sealing and
//! opening either in place or, with other tunnels' packets, through the batcher
//! ([`Batcher`], `dktp::batch`).
//!
//! Back-pressure: each direction has a bounded queue ([`Work::queue_limit`]). The tunnel
//! is read only while the local stream keeps up, and the local stream only while the tunnel
//! does, so a slow reader slows its own sender and nothing else. Reading the tunnel never
//! waits on the tunnel's own writes (except in echo mode, where what is read is written
//! back), so two peers cannot deadlock writing to each other. An idle tunnel holds no read
//! buffer: each read takes a fresh one, which becomes the message it carries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use dktp::connection::Connection;
use dktp::generation::{Generations, SecretsChange, SecretsUpdate};
use dktp::listener::Listener;
use dktp::pq::OsEntropy;
use dktp::session::{Direction, Event, Output};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::batcher::{Batcher, Mode, Opened, Sealed, Turn};
use crate::hspool::{HandshakePool, Priority};
use crate::metrics::{Metrics, PeerStats, Refusal};
use crate::store::Store;
use crate::transport::{Chunk, OutQueue, Rx, Tx};
use crate::util::{code_hex, now};

/// Bytes a direction may hold before its source is no longer read (the default).
pub const QUEUE_LIMIT: usize = 1 << 20;

/// Handshake packets up to this length are handled in place, not on the handshake pool.
const CHEAP_STEP: u32 = 1024;

/// The largest plaintext one data packet carries (0x10000 less the 64-byte tag).
pub const MAX_PAYLOAD: usize = 0x10000 - 64;

/// The plaintext side of a tunnel.
pub enum Local {
    /// A byte stream: a forwarded socket, a `-L` connection, stdio.
    Stream {
        /// What to send through the tunnel.
        rd: Box<dyn AsyncRead + Unpin + Send>,
        /// Where received plaintext goes.
        wr: Box<dyn AsyncWrite + Unpin + Send>,
    },
    /// Every message goes back to the peer (`dktp serve --echo`).
    Echo,
}

/// How a tunnel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// An orderly close (0x1B), by this side or the peer.
    Closed {
        /// Whether the peer closed.
        by_peer: bool,
    },
    /// The connection failed with this DKTP code (sent or received).
    Failed {
        /// The code.
        code: u8,
        /// Whether the peer reported it.
        by_peer: bool,
        /// Why, as the engine or the transport put it.
        reason: String,
        /// The peer sent an all-zero McEliece public key (FACTS §11.5): a defect of the
        /// reference's key generation that the next connection most likely does not hit.
        zero_key: bool,
    },
    /// The transport ended or failed without a DKTP close.
    Transport(String),
}

/// Where a tunnel's work runs, and what it reports to.
#[derive(Clone)]
pub struct Work {
    /// Seals and opens data packets (with [`Mode::Off`], every tunnel in place).
    pub batcher: Batcher,
    /// Runs handshake steps off the runtime (`None`: in place).
    pub pool: Option<HandshakePool>,
    /// Counts what happens.
    pub metrics: Option<Arc<Metrics>>,
    /// Bytes each direction may hold.
    pub queue_limit: usize,
    /// Plaintext bytes per message at most, both ways: local reads are sealed in pieces of
    /// this size, and a peer that sends a longer message is refused (0x16).
    pub max_message: usize,
}

impl Work {
    /// Everything in place, no metrics, the default queue limit.
    pub fn inline() -> Work {
        Work {
            batcher: Batcher::off(),
            pool: None,
            metrics: None,
            queue_limit: QUEUE_LIMIT,
            max_message: MAX_PAYLOAD,
        }
    }
}

/// What a tunnel needs besides its connection and transport.
#[derive(Clone)]
pub struct Context {
    /// Where records of the secrets are stored (keyed by the local key id).
    pub store: Store,
    /// Who is on the other end, for the logs (an address).
    pub peer: Arc<str>,
    /// Start an asymmetric ratchet this often.
    pub ratchet_every: Option<Duration>,
    /// A server's listener (whose record of the peer the engine keeps current).
    pub listener: Option<Listener>,
    /// After the local stream ends, keep delivering what the peer sends until it has been
    /// quiet this long, then close (`None`: close at once). DKTP has no half-close, so a
    /// client that shuts down its sending side would otherwise lose the answer.
    pub linger: Option<Duration>,
    /// Where the work runs.
    pub work: Work,
}

/// A connection being driven.
pub struct Driver {
    /// The connection (lent to the batcher or the handshake pool during a turn, an ended
    /// placeholder meanwhile).
    conn: Box<Connection>,
    rx: Rx,
    tx: Tx,
    cx: Context,
    /// Packets to write.
    to_peer: OutQueue,
    /// Plaintext for the local side.
    to_local: OutQueue,
    /// Plaintext to seal: waits while our ratchet is outstanding (no data may be sent
    /// between a ratchet request and its response, FACTS §8).
    pending: OutQueue,
    /// Received packets, framed but not opened yet (batched data path).
    inbox: Vec<Vec<u8>>,
    rx_done: bool,
    echo: bool,
    end: Option<End>,
    last_error: Option<String>,
    /// The engine error that ended the connection, if one did.
    failure: Option<dktp::Error>,
    /// The secrets could not be stored: nothing more may be written.
    dead: bool,
    /// The record this connection last stored (or started from).
    record: Option<Generations>,
    /// The engine refused an all-zero McEliece key from the peer.
    zero_key: bool,
    /// The local key id of the pair, once known (a server learns it from the first packet;
    /// the engine forgets the keys when a handshake fails, and the record of that failure
    /// must still be stored).
    keyid: Option<[u8; 16]>,
    /// Messages received so far.
    messages: u64,
    /// The peer's counters, once established and watched.
    stats: Option<Arc<PeerStats>>,
    /// Closes the session when notified (the peer was revoked).
    revoked: Option<Arc<tokio::sync::Notify>>,
}

impl Driver {
    /// Drives `conn` (a fresh client or server connection) over `rx`/`tx`.
    pub fn new(conn: Connection, rx: Rx, tx: Tx, cx: Context) -> Driver {
        let keyid = conn.keys().map(|k| *k.local.keyid());
        Driver {
            keyid,
            conn: Box::new(conn),
            rx,
            tx,
            cx,
            to_peer: OutQueue::default(),
            to_local: OutQueue::default(),
            pending: OutQueue::default(),
            inbox: Vec::new(),
            rx_done: false,
            echo: false,
            end: None,
            last_error: None,
            failure: None,
            dead: false,
            record: None,
            zero_key: false,
            messages: 0,
            stats: None,
            revoked: None,
        }
    }

    /// Sets the record the connection starts from (a client's `connect_with`): the store
    /// must still hold it when the first new record is stored.
    pub fn starting_from(mut self, record: Generations) -> Driver {
        self.record = Some(record);
        self
    }

    /// Counts this tunnel's bytes in its peer's row of the metrics.
    pub fn watch(&mut self, stats: Arc<PeerStats>) {
        if let Some(g) = self
            .conn
            .session()
            .map(|s| s.generations().latest().number())
        {
            stats.generation.store(g, Ordering::Relaxed);
        }
        self.stats = Some(stats);
    }

    /// Closes the session (with 0x0F, key unrecognized) when `revoked` is notified.
    pub fn close_on(&mut self, revoked: Arc<tokio::sync::Notify>) {
        self.revoked = Some(revoked);
    }

    /// The pair's local key id, once known.
    pub fn keyid(&self) -> Option<[u8; 16]> {
        self.keyid
            .or_else(|| self.conn.keys().map(|k| *k.local.keyid()))
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Why a failed handshake failed, for the refusal counters.
    pub fn refusal(&self) -> Refusal {
        match &self.failure {
            Some(e) => Refusal::of(e),
            None => Refusal::Peer,
        }
    }

    /// Runs the handshake to its end: `Ok(())` once established, else how it ended (after
    /// writing what the engine had for the peer: its error packet).
    pub async fn handshake(&mut self) -> Result<(), End> {
        self.drain().await?;
        loop {
            if self.conn.is_established() {
                return Ok(());
            }
            if let Some(end) = self.finished() {
                self.flush_peer().await;
                return Err(end);
            }
            let timer = self.timer();
            let Driver {
                rx, tx, to_peer, ..
            } = self;
            tokio::select! {
                r = tx.write_step(to_peer), if !to_peer.is_empty() => {
                    if let Err(e) = r {
                        return Err(End::Transport(format!("write: {e}")));
                    }
                    continue;
                }
                r = rx.read(), if !self.rx_done => self.handshake_step(r).await,
                () = sleep_until(timer) => {
                    let r = self.conn.handle_timeout(now());
                    self.note(r);
                }
            }
            self.drain().await?;
        }
    }

    /// Feeds what a handshake read brought, on the handshake pool if there is one (work for
    /// a handshake under way goes before new connect requests).
    async fn handshake_step(&mut self, read: std::io::Result<Option<Chunk>>) {
        let bytes = match read {
            Ok(Some(bytes)) => bytes,
            other => {
                self.feed(other);
                return;
            }
        };
        // A step whose packet is small (the establish messages: one RCS open and the key
        // schedule) costs less than the hand-over to the pool.
        let cheap = self.conn.max_msglen() <= CHEAP_STEP;
        let Some(pool) = self.cx.work.pool.clone().filter(|_| !cheap) else {
            self.feed(Ok(Some(bytes)));
            return;
        };
        let priority = if self.conn.keys().is_some() {
            Priority::Urgent
        } else {
            Priority::New
        };
        let mut conn = std::mem::take(&mut self.conn);
        let done = pool
            .run(priority, move || {
                let r = conn.handle_bytes(&bytes, now(), &mut OsEntropy);
                (conn, r)
            })
            .await;
        match done {
            Some((conn, r)) => {
                self.conn = conn;
                self.note(r);
            }
            None => self.last_error = Some("the handshake pool stopped".into()),
        }
    }

    /// Moves data between the session and `local` until either ends; returns how the tunnel
    /// ended. Call after [`handshake`](Self::handshake).
    pub async fn pump(&mut self, local: Local) -> End {
        let r = self.pump_inner(local).await;
        match r {
            Ok(end) | Err(end) => end,
        }
    }

    async fn pump_inner(&mut self, local: Local) -> Result<End, End> {
        let (mut lrd, mut lwr) = match local {
            Local::Stream { rd, wr } => (Some(rd), Some(wr)),
            Local::Echo => {
                self.echo = true;
                (None, None)
            }
        };
        // Echo any message that arrived with the handshake's last packet.
        if self.echo {
            while let Some(m) = self.to_local.pop() {
                self.pending.push(m);
            }
        }
        self.seal().await?;
        let limit = self.cx.work.queue_limit;
        let max_message = self.cx.work.max_message;
        let mut local_done = lrd.is_none();
        let mut ratchet_at = self.cx.ratchet_every.map(|d| Instant::now() + d);
        let mut linger_at: Option<Instant> = None;
        loop {
            if let Some(end) = self.finished() {
                self.flush_peer().await;
                if let Some(w) = lwr.as_mut() {
                    flush_local(&mut self.to_local, w).await;
                }
                return Ok(end);
            }
            let timer = self.timer();
            let echo = self.echo;
            let Driver {
                rx,
                tx,
                to_peer,
                to_local,
                pending,
                rx_done,
                ..
            } = self;
            let read_tunnel = !*rx_done
                && to_local.bytes() < limit
                && (!echo || to_peer.bytes() + pending.bytes() < limit);
            let can_read_local = !local_done && to_peer.bytes() < limit && pending.bytes() < limit;
            tokio::select! {
                r = tx.write_step(to_peer), if !to_peer.is_empty() => {
                    if let Err(e) = r {
                        return Err(End::Transport(format!("write: {e}")));
                    }
                    continue;
                }
                r = write_local(lwr.as_mut(), to_local), if lwr.is_some() && !to_local.is_empty() => {
                    if let Err(e) = r {
                        // The local side went away: close the tunnel in order.
                        debug!(peer = %self.cx.peer, "local write: {e}");
                        lwr = None;
                        local_done = true;
                        let r = self.conn.close(now());
                        self.note(r);
                    }
                    continue;
                }
                r = rx.read(), if read_tunnel => self.feed(r),
                r = read_local(lrd.as_mut(), max_message), if can_read_local => {
                    match r {
                        Ok(Some(m)) => pending.push(m),
                        Ok(None) | Err(_) => {
                            local_done = true;
                            lrd = None;
                            match self.cx.linger {
                                Some(d) if lwr.is_some() => linger_at = Some(Instant::now() + d),
                                _ => {
                                    self.seal().await?;
                                    let r = self.conn.close(now());
                                    self.note(r);
                                }
                            }
                        }
                    }
                }
                () = sleep_until(linger_at), if linger_at.is_some() && to_local.is_empty() => {
                    linger_at = None;
                    self.seal().await?;
                    let r = self.conn.close(now());
                    self.note(r);
                }
                () = sleep_until(ratchet_at), if ratchet_at.is_some() => {
                    ratchet_at = self.cx.ratchet_every.map(|d| Instant::now() + d);
                    self.seal().await?;
                    self.ratchet().await;
                }
                () = sleep_until(timer) => {
                    let r = self.conn.handle_timeout(now());
                    self.note(r);
                }
                () = notified(self.revoked.clone()) => {
                    self.revoked = None;
                    let revoked = dktp::error::PeerIncompatible::KeyUnrecognized.into();
                    let e = self.conn.fail(revoked, now());
                    self.last_error = Some("the peer was revoked (dktp peer remove)".into());
                    self.failure.get_or_insert(e);
                }
            }
            let seen = self.messages;
            self.seal().await?;
            // Lingering: each message from the peer (not its control packets) restarts the
            // wait.
            if let (Some(_), Some(d), true) = (linger_at, self.cx.linger, self.messages != seen) {
                linger_at = Some(Instant::now() + d);
            }
        }
    }

    /// Starts an asymmetric ratchet if the configuration and the session allow one now.
    pub async fn ratchet(&mut self) {
        let Some(s) = self.conn.session() else {
            return;
        };
        if !s.config().asymmetric_ratchet_possible() {
            debug!(peer = %self.cx.peer, "no asymmetric ratchet in {}", s.config());
            return;
        }
        if s.ratchet_outstanding() {
            return;
        }
        if !self.is_current().await {
            info!(peer = %self.cx.peer, "skipping the ratchet: a newer session of this pair holds the secrets");
            return;
        }
        let r = self.conn.start_ratchet(now(), &mut OsEntropy);
        if r.is_ok() {
            debug!(peer = %self.cx.peer, "asymmetric ratchet requested");
        }
        self.note(r);
        // The request is written before anything else is sealed.
        if let Err(end) = self.drain().await {
            self.end.get_or_insert(end);
        }
    }

    fn ratchet_outstanding(&self) -> bool {
        self.conn.session().is_some_and(|s| s.ratchet_outstanding())
    }

    /// Hands what the transport read to the connection: bytes (framed only, on the batched
    /// data path), the end of the stream, or (with the transport's reason, which is the one
    /// to report) a failed read.
    fn feed(&mut self, read: std::io::Result<Option<Chunk>>) {
        let now = now();
        match read {
            Ok(Some(bytes)) => {
                let r = if self.cx.work.batcher.mode() == Mode::Off {
                    self.conn.handle_bytes(&bytes, now, &mut OsEntropy)
                } else {
                    self.conn
                        .handle_bytes_batched(&bytes, now, &mut OsEntropy, &mut self.inbox)
                };
                self.note(r);
            }
            Ok(None) => {
                self.rx_done = true;
                let r = self.conn.handle_end_of_stream(now, &mut OsEntropy);
                self.note(r);
            }
            Err(e) => {
                self.rx_done = true;
                let _ = self.conn.handle_end_of_stream(now, &mut OsEntropy);
                self.last_error = Some(format!("read: {e}"));
            }
        }
    }

    fn note(&mut self, r: Result<(), dktp::Error>) {
        if let Err(e) = r {
            self.zero_key |= matches!(
                e,
                dktp::Error::Crypto(dktp::error::CryptoFailure::ZeroPublicKey)
            );
            self.last_error = Some(e.to_string());
            self.failure.get_or_insert(e);
        }
    }

    fn timer(&self) -> Option<Instant> {
        let at = self.conn.poll_timeout()?;
        let secs = at.saturating_sub(now());
        Some(Instant::now() + Duration::from_secs(secs))
    }

    /// How the connection ended, once it has (and the transport, if the peer left without a
    /// close).
    fn finished(&mut self) -> Option<End> {
        if self.end.is_some() {
            return self.end.clone();
        }
        if self.conn.is_closed() {
            return Some(End::Transport(
                self.last_error.clone().unwrap_or_else(|| "closed".into()),
            ));
        }
        if self.rx_done && self.to_peer.is_empty() && self.inbox.is_empty() {
            return Some(End::Transport(
                self.last_error
                    .clone()
                    .unwrap_or_else(|| "the peer closed the stream".into()),
            ));
        }
        None
    }

    /// The data path's turn: opens what arrived and seals what waits (in place, or with
    /// other tunnels' packets through the batcher), taking the engine's outputs before and
    /// after, until nothing is left to do.
    async fn seal(&mut self) -> Result<(), End> {
        loop {
            self.drain().await?;
            let can_seal = !self.dead
                && self.conn.is_established()
                && !self.ratchet_outstanding()
                && !self.pending.is_empty();
            if self.inbox.is_empty() && !can_seal {
                return Ok(());
            }
            let mut seals = Vec::new();
            if can_seal {
                while let Some(m) = self.pending.pop() {
                    seals.push(m);
                }
            }
            if self.cx.work.batcher.mode() == Mode::Off {
                let now = now();
                for m in seals {
                    let r = self.conn.send(&m, now);
                    if r.is_ok() {
                        self.count_tx(m.len());
                    }
                    self.note(r);
                }
                continue;
            }
            let turn = Turn {
                conn: std::mem::take(&mut self.conn),
                opens: std::mem::take(&mut self.inbox),
                seals,
            };
            let done = self.cx.work.batcher.run(turn).await;
            self.conn = done.conn;
            let whole = self.tx.is_stream();
            if whole && !done.output.is_empty() {
                self.to_peer.push(done.output.clone());
            }
            let mut deferred = Vec::new();
            for (m, outcome) in done.seals {
                match outcome {
                    Sealed::Packet(range) => {
                        self.count_tx(m.len());
                        if !whole && let Some(p) = done.output.get(range) {
                            self.to_peer.push(p.to_vec());
                        }
                    }
                    Sealed::Deferred => deferred.push(m),
                    Sealed::Failed(e) => {
                        warn!(peer = %self.cx.peer, "a message was not sent: {e}");
                    }
                }
            }
            self.pending.push_front_all(deferred);
            let now = now();
            for (mut packet, outcome) in done.opens {
                match outcome {
                    Opened::Message(range) => {
                        let len = range.len();
                        packet.copy_within(range, 0);
                        packet.truncate(len);
                        self.deliver(packet);
                    }
                    Opened::Scalar => {
                        let r = self.conn.handle_packet(packet, now, &mut OsEntropy);
                        self.note(r);
                    }
                    Opened::Failed(e) => {
                        let e = self.conn.fail(e, now);
                        self.note(Err(e));
                        break;
                    }
                }
            }
        }
    }

    fn count_tx(&self, n: usize) {
        if let Some(m) = &self.cx.work.metrics {
            m.tx_bytes.inc_by(n as u64);
            m.tx_packets.inc();
        }
        if let Some(s) = &self.stats {
            s.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// A received message: to the local side, or back to the peer when echoing.
    fn deliver(&mut self, m: Vec<u8>) {
        if m.len() > self.cx.work.max_message {
            let too_long = dktp::error::Malformed::TooLong {
                msglen: u32::try_from(m.len() + 64).unwrap_or(u32::MAX),
                max: u32::try_from(self.cx.work.max_message + 64).unwrap_or(u32::MAX),
            };
            let e = self.conn.fail(too_long.into(), now());
            warn!(peer = %self.cx.peer, "refused a message of {} bytes (max_message {})", m.len(), self.cx.work.max_message);
            self.note(Err(e));
            return;
        }
        self.messages += 1;
        if let Some(mx) = &self.cx.work.metrics {
            mx.rx_bytes.inc_by(m.len() as u64);
            mx.rx_packets.inc();
        }
        if let Some(s) = &self.stats {
            s.rx_bytes.fetch_add(m.len() as u64, Ordering::Relaxed);
        }
        if self.echo {
            self.pending.push(m);
        } else {
            self.to_local.push(m);
        }
    }

    /// Takes what the engine hands out: packets to the peer's queue, messages to the local
    /// queue (or back to the peer when echoing), records of the secrets to the store (before
    /// any later packet is queued).
    async fn drain(&mut self) -> Result<(), End> {
        if self.keyid.is_none() {
            self.keyid = self.conn.keys().map(|k| *k.local.keyid());
        }
        while let Some(out) = self.conn.poll_output() {
            match out {
                Output::Transmit(p) => {
                    let control = p.first().is_some_and(|&flag| flag != 0x04);
                    self.to_peer.push(p);
                    if control && crash_hook_armed() {
                        // Control packets (handshake, ratchet, close) are written at once so
                        // that the crash hook's steps are the protocol's.
                        self.flush_peer().await;
                        crash_step("sent a control packet");
                    }
                }
                Output::Event(Event::Secrets(update)) => self.persist(update).await?,
                Output::Event(Event::Message(m)) => self.deliver(m.into_vec()),
                Output::Event(Event::Established) => {
                    if let Some(s) = self.conn.session() {
                        info!(
                            peer = %self.cx.peer,
                            keyid = %hex::encode(s.keys().local.keyid()),
                            config = %s.config(),
                            generation = s.generations().latest().number(),
                            "tunnel established"
                        );
                    }
                }
                Output::Event(Event::RatchetCompleted(d)) => {
                    let which = match d {
                        Direction::Transmit => "transmit",
                        Direction::Receive => "receive",
                    };
                    if let Some(m) = &self.cx.work.metrics {
                        m.ratchet(which);
                    }
                    info!(peer = %self.cx.peer, channel = which, "asymmetric ratchet completed");
                }
                Output::Event(Event::Closed { code, by_peer }) => {
                    self.end = Some(if code == 0x1b {
                        End::Closed { by_peer }
                    } else {
                        End::Failed {
                            code,
                            by_peer,
                            reason: self.last_error.clone().unwrap_or_else(|| {
                                format!("the peer reported error {}", code_hex(code))
                            }),
                            zero_key: self.zero_key,
                        }
                    });
                }
                Output::Event(_) => {}
            }
        }
        Ok(())
    }

    async fn persist(&mut self, update: SecretsUpdate) -> Result<(), End> {
        let Some(keyid) = self
            .keyid
            .or_else(|| self.conn.keys().map(|k| *k.local.keyid()))
        else {
            return Err(End::Transport(
                "a secrets record before the keys were known".into(),
            ));
        };
        self.keyid = Some(keyid);
        crash_step("about to store a record");
        let store = self.cx.store.clone();
        let record = update.record.clone();
        // The record this session last stored, or the one its handshake started from: the
        // store changes only if it still holds it.
        let expected = self
            .record
            .clone()
            .or_else(|| self.conn.base_record().cloned());
        let started = std::time::Instant::now();
        let saved =
            tokio::task::spawn_blocking(move || store.save_if(&keyid, expected.as_ref(), &record))
                .await
                .map_err(|e| anyhow!("store task: {e}"))
                .and_then(|r| r)
                .and_then(|stored| {
                    if stored {
                        Ok(())
                    } else {
                        Err(anyhow!(
                            "another session of this pair advanced the secrets first (one live \
                     secret chain per pair: this session is stale)"
                        ))
                    }
                });
        if let Some(m) = &self.cx.work.metrics {
            m.store_commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        if let Err(e) = saved {
            self.restore_listener_record(&keyid).await;
            if update.change != SecretsChange::Pending {
                // A confirmation or a discard commits to nothing new: the pair has moved on
                // through a newer session, and this one keeps running on its keys (it can
                // no longer ratchet: its record is not the store's).
                info!(peer = %self.cx.peer, keyid = %hex::encode(keyid), "a newer session of this pair stored newer secrets; this session's record stays unstored: {e:#}");
                return Ok(());
            }
            // Nothing that commits to the new secrets may leave now: drop the connection.
            warn!(peer = %self.cx.peer, keyid = %hex::encode(keyid), "cannot store the secrets, dropping the connection: {e:#}");
            self.dead = true;
            self.to_peer = OutQueue::default();
            return Err(End::Transport(format!("store: {e:#}")));
        }
        crash_step("stored a record");
        let generation = update.record.latest().number();
        if let Some(s) = &self.stats {
            s.generation.store(generation, Ordering::Relaxed);
        }
        self.record = Some(update.record);
        let change = match update.change {
            SecretsChange::Pending => "pending",
            SecretsChange::Confirmed => "confirmed",
            SecretsChange::Discarded => "discarded",
            _ => "changed",
        };
        debug!(
            peer = %self.cx.peer,
            keyid = %hex::encode(keyid),
            change,
            generation,
            "secrets stored"
        );
        Ok(())
    }

    /// After a refused store: the engine already gave the listener (on a server) the
    /// refused record; put the stored one back.
    async fn restore_listener_record(&mut self, keyid: &[u8; 16]) {
        let Some(listener) = self.cx.listener.clone() else {
            return;
        };
        let store = self.cx.store.clone();
        let id = *keyid;
        if let Ok(Ok(Some(entry))) = tokio::task::spawn_blocking(move || store.get(&id)).await {
            listener.set_secrets(keyid, entry.secrets);
        }
    }

    /// Whether the store still holds the record this session last stored: only then may it
    /// start a ratchet (which advances the secrets from this session's generation).
    fn is_current(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let keyid = self.conn.keys().map(|k| *k.local.keyid());
        let mine = self.record.clone();
        let store = self.cx.store.clone();
        async move {
            let (Some(keyid), Some(mine)) = (keyid, mine) else {
                return false;
            };
            matches!(
                tokio::task::spawn_blocking(move || store.get(&keyid)).await,
                Ok(Ok(Some(entry))) if entry.secrets == mine
            )
        }
    }

    async fn flush_peer(&mut self) {
        while !self.dead && !self.to_peer.is_empty() {
            if self.tx.write_step(&mut self.to_peer).await.is_err() {
                break;
            }
        }
    }

    /// Ends the transport: everything queued, then FIN or a close frame.
    pub async fn shutdown(mut self) {
        self.flush_peer().await;
        if !self.dead {
            self.tx.shutdown().await;
        }
    }
}

async fn write_local(
    w: Option<&mut Box<dyn AsyncWrite + Unpin + Send>>,
    q: &mut OutQueue,
) -> std::io::Result<()> {
    let (Some(w), Some(front)) = (w, q.front()) else {
        return Ok(());
    };
    let n = w.write(front).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    q.advance(n);
    if q.is_empty() {
        w.flush().await?;
    }
    Ok(())
}

async fn flush_local(q: &mut OutQueue, w: &mut Box<dyn AsyncWrite + Unpin + Send>) {
    while !q.is_empty() {
        if write_local(Some(w), q).await.is_err() {
            return;
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

/// One read of the local side into a buffer of its own, which becomes the message (so an
/// idle tunnel holds none); `None` at its end. Cancel safe.
async fn read_local(
    r: Option<&mut Box<dyn AsyncRead + Unpin + Send>>,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let Some(r) = r else {
        return std::future::pending().await;
    };
    let mut buf = Vec::with_capacity(max);
    if r.read_buf(&mut buf).await? == 0 {
        return Ok(None);
    }
    if buf.len() < buf.capacity() / 4 {
        // Queued, it must not keep the whole read buffer.
        buf.shrink_to_fit();
    }
    Ok(Some(buf))
}

async fn notified(n: Option<Arc<tokio::sync::Notify>>) {
    match n {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Describes an [`End`] for a log line.
pub fn describe(end: &End) -> String {
    match end {
        End::Closed { by_peer: true } => "closed by the peer".into(),
        End::Closed { by_peer: false } => "closed".into(),
        End::Failed {
            code,
            by_peer: true,
            reason,
            ..
        } => format!("{reason} ({} from the peer)", code_hex(*code)),
        End::Failed { code, reason, .. } => format!("failed with {}: {reason}", code_hex(*code)),
        End::Transport(why) => format!("transport ended: {why}"),
    }
}

/// The test-only crash hook: with `DKTP_TEST_CRASH_AT=N` in the environment the process
/// aborts (no cleanup, like `kill -9`) at the N-th step: each record about to be stored,
/// each record stored, each control packet written. Crash-injection tests use it to stop a
/// peer at every point of a handshake and a ratchet.
pub fn crash_step(what: &str) {
    static STEP: AtomicU64 = AtomicU64::new(0);
    let Some(at) = crash_at() else {
        return;
    };
    let step = STEP.fetch_add(1, Ordering::SeqCst) + 1;
    if step == at {
        eprintln!("dktp: DKTP_TEST_CRASH_AT={at}: aborting at step {step} ({what})");
        std::process::abort();
    }
}

fn crash_at() -> Option<u64> {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *AT.get_or_init(|| {
        std::env::var("DKTP_TEST_CRASH_AT")
            .ok()
            .and_then(|v| v.parse().ok())
    })
}

fn crash_hook_armed() -> bool {
    crash_at().is_some()
}
