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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use dktp::kex::{PeerKeys, Settings};
use dktp::listener::Listener;
use dktp::peer_key::KEYID_SIZE;
use parking_lot::{Mutex, RwLock};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use crate::batcher::Batcher;
use crate::config::{ServeConfig, Target};
use crate::hspool::HandshakePool;
use crate::keys;
use crate::limits::{Limits, Slot};
use crate::metrics::{Metrics, Refusal};
use crate::store::{Change, NodeInfo, PeerMeta, SessionInfo, Store};
use crate::transport::{self, Rx, Tx};
use crate::tunnel::{Context as TunnelContext, Driver, End, Local, Work, describe};
use crate::util::{code_hex, now};
use crate::vpn::path::Path as VpnPath;

/// A peer's name (for the logs) and forward target.
type Route = (Option<String>, Target);

/// A VPN interface's data path, and each peer's place in it by key id.
type VpnPeers = Arc<(Arc<VpnPath>, HashMap<[u8; KEYID_SIZE], usize>)>;

/// The scheduling priority (`nice`) of the handshake threads: below the sessions'.
const HANDSHAKE_NICE: i32 = 10;

/// Live sessions by peer, each with the signal that closes it (a revoked peer's).
type Live = HashMap<[u8; KEYID_SIZE], HashMap<u64, Arc<Notify>>>;

/// A running concentrator's shared state.
#[derive(Clone)]
pub struct Server {
    listener: Listener,
    store: Store,
    /// Where each peer's stream goes (peers come and go with a cluster's store).
    targets: Arc<RwLock<HashMap<[u8; KEYID_SIZE], Route>>>,
    default_target: Target,
    ratchet_every: Option<std::time::Duration>,
    limits: Limits,
    work: Work,
    metrics: Arc<Metrics>,
    live: Arc<Mutex<Live>>,
    node: String,
    /// Sessions carry IP packets of a VPN interface (`dktp up`) instead of streams to the
    /// forward targets: its data path, and each peer's place in it by key id.
    vpn: Option<VpnPeers>,
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
    /// Loads the peers (those of the config file, and those added to the store with
    /// `dktp peer add`) with their records, and the settings.
    pub fn new(cfg: &ServeConfig, store: Store) -> Result<Server> {
        let mut peers = Vec::new();
        for p in &cfg.peers {
            let keys = keys::load_pair(&p.key, &p.peer)?;
            peers.push((keys, p.name.clone(), p.forward.clone()));
        }
        Server::from_peers(cfg, store, peers)
    }

    /// Adds (or updates) a peer the store says this server serves.
    fn serve_peer(&self, keys: PeerKeys, record: dktp::generation::Generations, meta: &PeerMeta) {
        let keyid = *keys.local.keyid();
        let target = meta
            .forward
            .as_deref()
            .and_then(|f| Target::parse(f).ok())
            .unwrap_or_else(|| self.default_target.clone());
        self.metrics.peer(&keyid, meta.name.as_deref());
        self.targets
            .write()
            .insert(keyid, (meta.name.clone(), target));
        self.listener.insert(keys, record);
    }

    /// Follows a cluster's store: peers added and removed elsewhere, records advanced by
    /// other nodes. A removed peer is revoked: its live sessions here close at once.
    async fn follow(self, mut changes: tokio::sync::mpsc::UnboundedReceiver<Change>) {
        while let Some(change) = changes.recv().await {
            match change {
                Change::Peer(entry) => {
                    let keyid = *entry.keys.local.keyid();
                    if entry.meta.added || self.listener.peer(&keyid).is_some() {
                        info!(keyid = %hex::encode(keyid), name = entry.meta.name.as_deref().unwrap_or(""), "peer added");
                        self.serve_peer(entry.keys, entry.secrets, &entry.meta);
                    }
                }
                Change::Removed(keyid) => {
                    if self.listener.remove(&keyid) {
                        self.targets.write().remove(&keyid);
                        let closing: Vec<Arc<Notify>> = self
                            .live
                            .lock()
                            .get(&keyid)
                            .map(|m| m.values().cloned().collect())
                            .unwrap_or_default();
                        warn!(keyid = %hex::encode(keyid), sessions = closing.len(), "peer removed (revoked): closing its sessions");
                        for n in closing {
                            n.notify_one();
                        }
                    }
                }
                Change::Secrets(keyid, record) => {
                    self.listener.set_secrets(&keyid, record);
                }
            }
        }
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
        // A pool of ephemeral key pairs for the KEM most peers use: by default for
        // McEliece only (key generation up to a second; ML-KEM's takes less than the
        // hand-over to the refill thread).
        let kem = most_common_kem(&peers);
        let depth = cfg.key_pool.unwrap_or(match kem {
            Some(k) if k.is_mceliece() => crate::config::DEFAULT_KEY_POOL,
            _ => 0,
        });
        if depth > 0
            && let Some(kem) = kem
        {
            let pool = Arc::new(
                dktp::pool::KeyPool::new(kem, depth).map_err(|e| anyhow!("key pool: {e}"))?,
            );
            metrics.watch_key_pool(pool.clone());
            settings = settings.with_key_pool(pool);
        }
        let listener = Listener::new(settings);
        let limits = Limits::new(&cfg.limits);
        {
            // The global handshake rate, and a store that can commit (a cluster's store
            // needs a quorum): checked after the engine's cheap checks, before any
            // signature.
            let (limits, store) = (limits.clone(), store.clone());
            listener.set_admission(move |_| store.backend().healthy() && limits.admit());
        }
        let mut targets = HashMap::new();
        let pairs: Vec<(PeerKeys, PeerMeta)> = peers
            .iter()
            .map(|(k, name, forward)| {
                let meta = PeerMeta {
                    name: name.clone(),
                    forward: forward.as_ref().map(ToString::to_string),
                    added: false,
                };
                (k.clone(), meta)
            })
            .collect();
        let records = store.import_peers(&pairs)?;
        drop(pairs);
        let in_config: std::collections::HashSet<[u8; KEYID_SIZE]> =
            peers.iter().map(|p| *p.0.local.keyid()).collect();
        // Peers added to the store with `dktp peer add`.
        let added: Vec<crate::store::Entry> = store
            .entries()?
            .into_iter()
            .filter(|e| e.meta.added && !in_config.contains(e.keys.local.keyid()))
            .collect();
        for e in &added {
            let keyid = *e.keys.local.keyid();
            let target = e
                .meta
                .forward
                .as_deref()
                .map(Target::parse)
                .transpose()?
                .unwrap_or_else(|| cfg.forward.clone());
            metrics.peer(&keyid, e.meta.name.as_deref());
            targets.insert(keyid, (e.meta.name.clone(), target));
            listener.insert(e.keys.clone(), e.secrets.clone());
        }
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
        info!(peers = listener.len(), store = %store.location(), "peers loaded");
        if listener.is_empty() && !cfg.store.starts_with("etcd://") {
            anyhow::bail!(
                "no peers: add [[peer]] tables to the config file, --peer LOCAL.dskey:REMOTE.dpkey, \
                 or `dktp peer add` to the store"
            );
        }
        let batcher = Batcher::new(cfg.batch).context("starting the batcher")?;
        metrics.watch_batcher(batcher.shared_stats());
        let pool = match cfg.handshake_threads {
            Some(0) => None,
            Some(n) => Some(HandshakePool::new(n, HANDSHAKE_NICE)),
            None => Some(HandshakePool::per_core(HANDSHAKE_NICE)),
        }
        .transpose()
        .context("starting handshake threads")?;
        Ok(Server {
            listener,
            store,
            targets: Arc::new(RwLock::new(targets)),
            default_target: cfg.forward.clone(),
            ratchet_every: cfg.ratchet_every,
            limits,
            work: Work {
                batcher,
                pool,
                metrics: Some(metrics.clone()),
                queue_limit: cfg.buffer,
                max_message: cfg.max_message,
            },
            metrics,
            live: Arc::new(Mutex::new(HashMap::new())),
            node: cfg.node.clone(),
            vpn: None,
        })
    }

    /// Carries each session's IP packets through a VPN interface's data path (`dktp up`):
    /// `peers` gives each peer's place in it by key id.
    pub fn with_vpn(
        mut self,
        path: Arc<VpnPath>,
        peers: HashMap<[u8; KEYID_SIZE], usize>,
    ) -> Server {
        self.vpn = Some(Arc::new((path, peers)));
        self
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
        let listening = bound.addrs().0;
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
        // A cluster's store: follow the others, and register this node.
        let (changes, follow) = tokio::sync::mpsc::unbounded_channel();
        if self.store.backend().watch(changes) {
            let me = self.clone();
            tasks.spawn(async move {
                me.follow(follow).await;
                Ok(())
            });
        }
        self.store.backend().join(NodeInfo {
            node: self.node.clone(),
            listen: listening.iter().map(ToString::to_string).collect(),
            since: now(),
        });
        let limits = self.limits.clone();
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(Limits::TIDY_EVERY).await;
                limits.tidy();
            }
        });
        // Says when the store stops and starts answering (a cluster's store needs a
        // quorum): new handshakes are refused meanwhile.
        let store = self.store.clone();
        tasks.spawn(async move {
            let mut was = true;
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                let ok = store.backend().healthy();
                if ok != was {
                    if ok {
                        info!(store = %store.location(), "the store answers again: accepting new handshakes");
                    } else {
                        warn!(store = %store.location(), "the store does not answer (no etcd quorum?): refusing new handshakes (0x0b) until it does; established sessions go on");
                    }
                    was = ok;
                }
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
                    let why = match (*by_peer, d.refusal()) {
                        (true, _) => Refusal::Peer,
                        (false, Refusal::Overloaded) if !self.store.backend().healthy() => {
                            Refusal::StoreUnavailable
                        }
                        (false, why) => why,
                    };
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
            .read()
            .get(&keyid)
            .cloned()
            .unwrap_or((None, self.default_target.clone()));
        let stats = m.peer(&keyid, name.as_deref());
        stats
            .last_handshake
            .store(now(), std::sync::atomic::Ordering::Relaxed);
        let _live = stats.session(peer.clone(), now());
        d.watch(stats);
        // Revocation closes it; a cluster's store lists it.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        self.live
            .lock()
            .entry(keyid)
            .or_default()
            .insert(id, close.clone());
        let _unlive = Unlive {
            live: self.live.clone(),
            keyid,
            id,
        };
        d.close_on(close);
        let _registered = self.store.backend().register(SessionInfo {
            keyid: hex::encode(keyid),
            name: name.clone().unwrap_or_default(),
            address: peer.clone(),
            since: now(),
        });
        m.sessions.inc();
        let local = match &self.vpn {
            Some(vpn) => match vpn.1.get(&keyid) {
                Some(&i) => {
                    info!(peer = %peer, name = name.as_deref().unwrap_or(""), "VPN peer connected");
                    Ok(vpn.0.local(i))
                }
                None => Err(anyhow!("not a peer of this interface")),
            },
            None => open_target(&target).await,
        };
        let local = match local {
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

/// Takes a session off the live table when it ends.
struct Unlive {
    live: Arc<Mutex<Live>>,
    keyid: [u8; KEYID_SIZE],
    id: u64,
}

impl Drop for Unlive {
    fn drop(&mut self) {
        let mut live = self.live.lock();
        if let Some(m) = live.get_mut(&self.keyid) {
            m.remove(&self.id);
            if m.is_empty() {
                live.remove(&self.keyid);
            }
        }
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
