//! `dktp serve`: a concentrator. One engine [`Listener`] holds every peer (found by the key
//! id its connect request names) and one replay gate; TCP and WebSocket sockets feed it;
//! each established session's plaintext goes to the peer's forward target.
//!
//! Under load and attack ([`crate::limits`]): a connection is refused before a byte is
//! read when its source address has spent its handshake rate or the server is full; a
//! connect request is refused by the engine's cheap checks, then by the server's global
//! handshake rate, before any signature is verified; handshakes compute on the handshake
//! pool, below the established sessions' priority; established sessions' data goes through
//! the batcher ([`crate::batcher`]). Every refusal is a log line with its reason and a
//! count in `dktp_refused_total{reason}` ([`crate::metrics`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use dktp::kex::{PeerKeys, Settings};
use dktp::listener::Listener;
use dktp::peer_key::KEYID_SIZE;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error, info, warn};

use crate::batcher::Batcher;
use crate::config::{ServeConfig, Target};
use crate::hspool::HandshakePool;
use crate::keys;
use crate::limits::{Limits, Slot};
use crate::metrics::{Metrics, Refusal};
use crate::store::Store;
use crate::transport::{self, Rx, Tx};
use crate::tunnel::{Context as TunnelContext, Driver, End, Local, Work, describe};
use crate::util::{code_hex, now};

/// A peer's name (for the logs) and forward target.
type Route = (Option<String>, Target);

/// The scheduling priority (`nice`) of the handshake threads: below the sessions'.
const HANDSHAKE_NICE: i32 = 10;

/// A running concentrator's shared state.
#[derive(Clone)]
pub struct Server {
    listener: Listener,
    store: Store,
    targets: Arc<HashMap<[u8; KEYID_SIZE], Route>>,
    ratchet_every: Option<std::time::Duration>,
    limits: Limits,
    work: Work,
    metrics: Arc<Metrics>,
}

/// The sockets a server listens on, bound.
pub struct Bound {
    /// TCP listeners.
    pub tcp: Vec<TcpListener>,
    /// WebSocket listeners.
    pub ws: Vec<TcpListener>,
    /// The metrics endpoint.
    pub metrics: Option<TcpListener>,
}

impl Bound {
    /// The addresses actually bound (port 0 resolved).
    pub fn addrs(&self) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let a = |l: &Vec<TcpListener>| l.iter().filter_map(|l| l.local_addr().ok()).collect();
        (a(&self.tcp), a(&self.ws))
    }
}

impl Server {
    /// Loads the peers (their keys, and their records from the store) and the settings.
    pub fn new(cfg: &ServeConfig, store: Store) -> Result<Server> {
        let mut peers = Vec::new();
        for p in &cfg.peers {
            let keys = keys::load_pair(&p.key, &p.peer)?;
            peers.push((keys, p.name.clone(), p.forward.clone()));
        }
        Server::from_peers(cfg, store, peers)
    }

    /// A server for pairs already in memory (the demo), with the default target.
    pub fn with_keys(cfg: &ServeConfig, store: Store, keys: Vec<PeerKeys>) -> Result<Server> {
        Server::from_peers(
            cfg,
            store,
            keys.into_iter().map(|k| (k, None, None)).collect(),
        )
    }

    fn from_peers(
        cfg: &ServeConfig,
        store: Store,
        peers: Vec<(PeerKeys, Option<String>, Option<Target>)>,
    ) -> Result<Server> {
        let metrics = Arc::new(Metrics::new());
        let mut settings = Settings::default();
        if let Some(t) = cfg.handshake_timeout {
            settings = settings.with_handshake_timeout(t.as_secs().max(1));
        }
        if let Some(idle) = cfg.idle_timeout {
            settings = settings.with_idle_timeout(idle.map(|d| d.as_secs().max(1)));
        }
        // A pool of ephemeral key pairs for the KEM most peers use.
        if cfg.key_pool > 0
            && let Some(kem) = most_common_kem(&peers)
        {
            let pool = Arc::new(
                dktp::pool::KeyPool::new(kem, cfg.key_pool)
                    .map_err(|e| anyhow!("key pool: {e}"))?,
            );
            metrics.watch_key_pool(pool.clone());
            settings = settings.with_key_pool(pool);
        }
        let listener = Listener::new(settings);
        let limits = Limits::new(&cfg.limits);
        {
            let limits = limits.clone();
            listener.set_admission(move |_| limits.admit());
        }
        let mut targets = HashMap::new();
        let pairs: Vec<PeerKeys> = peers.iter().map(|p| p.0.clone()).collect();
        let records = store.import_all(&pairs)?;
        drop(pairs);
        for ((keys, name, forward), record) in peers.into_iter().zip(records) {
            let keyid = *keys.local.keyid();
            debug!(
                keyid = %hex::encode(keyid),
                peer = %hex::encode(keys.remote.keyid()),
                name = name.as_deref().unwrap_or(""),
                config = %keys.config(),
                generation = record.latest().number(),
                "peer loaded"
            );
            let stats = metrics.peer(&keyid, name.as_deref());
            stats.generation.store(
                record.latest().number(),
                std::sync::atomic::Ordering::Relaxed,
            );
            let target = forward.unwrap_or_else(|| cfg.forward.clone());
            if targets.insert(keyid, (name, target)).is_some() {
                return Err(anyhow!("key id {} is listed twice", hex::encode(keyid)));
            }
            listener.insert(keys, record);
        }
        info!(peers = listener.len(), "peers loaded");
        let batcher = Batcher::new(cfg.batch).context("starting the batcher")?;
        metrics.watch_batcher(batcher.shared_stats());
        let pool = HandshakePool::per_core(HANDSHAKE_NICE).context("starting handshake threads")?;
        Ok(Server {
            listener,
            store,
            targets: Arc::new(targets),
            ratchet_every: cfg.ratchet_every,
            limits,
            work: Work {
                batcher,
                pool: Some(pool),
                metrics: Some(metrics.clone()),
                queue_limit: cfg.buffer,
                max_message: cfg.max_message,
            },
            metrics,
        })
    }

    /// The engine's listener (its counters).
    pub fn listener(&self) -> &Listener {
        &self.listener
    }

    /// Binds every configured address.
    pub async fn bind(cfg: &ServeConfig) -> Result<Bound> {
        let mut tcp = Vec::new();
        for addr in &cfg.listen {
            match bind(*addr) {
                Ok(l) => tcp.push(l),
                Err(e) if cfg.default_listen && addr.is_ipv6() => {
                    warn!("not listening on {addr}: {e:#}");
                }
                Err(e) => return Err(e),
            }
        }
        let mut ws = Vec::new();
        for addr in &cfg.ws {
            ws.push(bind(*addr)?);
        }
        let metrics = cfg.metrics.map(bind).transpose()?;
        Ok(Bound { tcp, ws, metrics })
    }

    /// Serves on `bound` until `stop` resolves.
    pub async fn run(
        self,
        bound: Bound,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for l in bound.tcp {
            info!(addr = %l.local_addr()?, "listening (TCP)");
            tasks.spawn(self.clone().accept_loop(l, false));
        }
        for l in bound.ws {
            info!(addr = %l.local_addr()?, "listening (WebSocket)");
            tasks.spawn(self.clone().accept_loop(l, true));
        }
        if let Some(l) = bound.metrics {
            tasks.spawn(crate::metrics::serve(l, self.metrics.clone()));
        }
        let limits = self.limits.clone();
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(Limits::TIDY_EVERY).await;
                limits.tidy();
            }
        });
        tokio::select! {
            () = stop => info!("stopping"),
            Some(r) = tasks.join_next() => {
                if let Ok(Err(e)) = r {
                    return Err(e);
                }
            }
        }
        tasks.abort_all();
        Ok(())
    }

    async fn accept_loop(self, l: TcpListener, ws: bool) -> Result<()> {
        loop {
            let (stream, addr) = match l.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: wait a little rather than spin.
                    warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let slot = match self.limits.accept(addr.ip()) {
                Ok(slot) => slot,
                Err(why) => {
                    let reason = self.metrics.refused(why);
                    // A flood from one source would make this line the flood: debug only.
                    if why == Refusal::SourceRate {
                        debug!(peer = %addr, reason, "refused before the handshake");
                    } else {
                        warn!(peer = %addr, reason, "refused before the handshake");
                        self.refuse_busy(stream, ws).await;
                    }
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move {
                let metrics = server.metrics.clone();
                metrics.connections.inc();
                server.connection(stream, addr, ws, slot).await;
                metrics.connections.dec();
            });
        }
    }

    /// Tells a TCP client that the server is full (0x0B, hosts exceeded) and closes.
    async fn refuse_busy(&self, stream: TcpStream, ws: bool) {
        if ws {
            return;
        }
        let packet = dktp::kex::error_reply(&dktp::Error::Overloaded, now());
        if let Some(p) = packet {
            use tokio::io::AsyncWriteExt;
            let mut s = stream;
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(200), s.write_all(&p)).await;
        }
    }

    async fn connection(self, stream: TcpStream, addr: SocketAddr, ws: bool, slot: Slot) {
        let (rx, tx) = if ws {
            match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                tokio_tungstenite::accept_async_with_config(stream, Some(transport::ws_config())),
            )
            .await
            {
                Ok(Ok(ws)) => transport::websocket(ws),
                Ok(Err(e)) => {
                    self.metrics.refused(Refusal::WebSocket);
                    warn!(peer = %addr, "refused: WebSocket upgrade failed: {e}");
                    return;
                }
                Err(_) => {
                    self.metrics.refused(Refusal::WebSocket);
                    warn!(peer = %addr, "refused: WebSocket upgrade timed out");
                    return;
                }
            }
        } else {
            transport::tcp(stream)
        };
        self.tunnel_with(rx, tx, addr.to_string(), Some(slot)).await;
    }

    /// Runs one accepted connection to its end, outside the limits (tests that play a
    /// faulty server with a real one behind it).
    #[cfg(test)]
    pub async fn tunnel(&self, rx: Rx, tx: Tx, peer: String) {
        self.tunnel_with(rx, tx, peer, None).await;
    }

    async fn tunnel_with(&self, rx: Rx, tx: Tx, peer: String, mut slot: Option<Slot>) {
        let cx = TunnelContext {
            store: self.store.clone(),
            peer: peer.clone().into(),
            ratchet_every: self.ratchet_every,
            listener: Some(self.listener.clone()),
            linger: None,
            work: self.work.clone(),
        };
        let m = &self.metrics;
        let started = Instant::now();
        m.handshaking.inc();
        let mut d = Driver::new(self.listener.accept(now()), rx, tx, cx);
        let r = d.handshake().await;
        m.handshaking.dec();
        if let Some(s) = slot.as_mut() {
            s.handshake_done();
        }
        if let Err(end) = r {
            let keyid = d
                .keyid()
                .or_else(|| d.connection().requested_keyid().copied())
                .map(hex::encode);
            let keyid = keyid.as_deref().unwrap_or("?");
            match &end {
                End::Failed {
                    code,
                    reason,
                    by_peer,
                    zero_key,
                } => {
                    let why = if *by_peer { Refusal::Peer } else { d.refusal() };
                    let result = if why == Refusal::Timeout {
                        "timeout"
                    } else {
                        "failed"
                    };
                    m.handshake(result, Some(*code));
                    let label = m.refused(why);
                    if *zero_key {
                        warn!(peer = %peer, keyid, code = %code_hex(*code), reason = label,
                            "handshake refused: the client sent an all-zero McEliece public key (a known defect of the C reference's key generation); it may connect again");
                    } else {
                        warn!(peer = %peer, keyid, code = %code_hex(*code), by_peer, reason = label,
                            "handshake refused: {reason}");
                    }
                }
                other => {
                    m.handshake("failed", None);
                    let label = m.refused(Refusal::Peer);
                    info!(peer = %peer, keyid, reason = label, "handshake ended: {}", describe(other));
                }
            }
            d.shutdown().await;
            return;
        }
        m.handshake("ok", None);
        m.handshake_seconds.observe(started.elapsed().as_secs_f64());
        let Some(keyid) = d.connection().keys().map(|k| *k.local.keyid()) else {
            return;
        };
        let (name, target) = self
            .targets
            .get(&keyid)
            .cloned()
            .unwrap_or((None, Target::Echo));
        let stats = m.peer(&keyid, name.as_deref());
        stats
            .last_handshake
            .store(now(), std::sync::atomic::Ordering::Relaxed);
        let _live = stats.session(peer.clone(), now());
        d.watch(stats);
        m.sessions.inc();
        let local = match open_target(&target).await {
            Ok(l) => l,
            Err(e) => {
                error!(peer = %peer, keyid = %hex::encode(keyid), target = %target, "cannot reach the forward target: {e:#}");
                let end = d.pump(Local::Echo).await;
                debug!("{end:?}");
                d.shutdown().await;
                m.sessions.dec();
                return;
            }
        };
        debug!(peer = %peer, name = name.as_deref().unwrap_or(""), target = %target, "forwarding");
        let end = d.pump(local).await;
        info!(peer = %peer, keyid = %hex::encode(keyid), "tunnel ended: {}", describe(&end));
        d.shutdown().await;
        m.sessions.dec();
        drop(slot);
    }
}

/// The KEM of the configuration most peers use (for the key pool).
fn most_common_kem(
    peers: &[(PeerKeys, Option<String>, Option<Target>)],
) -> Option<dktp::pq::KemAlg> {
    let mut counts: HashMap<dktp::pq::KemAlg, usize> = HashMap::new();
    for (k, ..) in peers {
        *counts.entry(k.config().kem()).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(k, _)| k)
}

/// Opens the local side for a target.
pub async fn open_target(t: &Target) -> Result<Local> {
    Ok(match t {
        Target::Echo => Local::Echo,
        Target::Tcp(addr) => {
            let s = TcpStream::connect(addr.as_str())
                .await
                .with_context(|| format!("connecting to {addr}"))?;
            let _ = s.set_nodelay(true);
            let (rd, wr) = s.into_split();
            Local::Stream {
                rd: Box::new(rd),
                wr: Box::new(wr),
            }
        }
        Target::Unix(path) => {
            #[cfg(unix)]
            {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("connecting to {}", path.display()))?;
                let (rd, wr) = s.into_split();
                Local::Stream {
                    rd: Box::new(rd),
                    wr: Box::new(wr),
                }
            }
            #[cfg(not(unix))]
            {
                anyhow::bail!("unix sockets need a unix system: {}", path.display())
            }
        }
    })
}

/// Binds a TCP listener; an IPv6 address is bound IPv6-only so that `0.0.0.0` and `[::]`
/// can be listened on side by side, as nginx and WireGuard do.
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        let s = tokio::net::TcpSocket::new_v6()?;
        set_only_v6(&s)?;
        s
    } else {
        tokio::net::TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?;
    socket
        .listen(1024)
        .with_context(|| format!("listening on {addr}"))
}

fn set_only_v6(s: &tokio::net::TcpSocket) -> Result<()> {
    let sock = socket2::SockRef::from(s);
    sock.set_only_v6(true).context("IPV6_V6ONLY")
}
