//! `dktp connect`: a client. The tunnel is offered as a local listening port (`-L`, one
//! tunnel session per accepted connection, like `ssh -L`) or on stdin/stdout (like `nc`).
//!
//! Handshakes of one pair run one at a time: each advances the pair's pre-shared secrets
//! from the stored record, so two at once would fork them. Failed attempts are retried with
//! exponential backoff and jitter; an all-zero McEliece key from the server (a defect of
//! the C reference's key generation, FACTS §11.5) is retried at once.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use dktp::connection::Connection;
use dktp::kex::{PeerKeys, Settings};
use dktp::pq::OsEntropy;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::keys;
use crate::store::Store;
use crate::transport;
use crate::tunnel::{Context as TunnelContext, Driver, End, Local, Work, describe};
use crate::util::{now, random_unit};

/// How long opening the transport (TCP connect, WebSocket upgrade) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Immediate retries after all-zero McEliece keys before the normal backoff applies again
/// (a real defect hits one key generation in tens; a server that always sends them is
/// broken, and must not be hammered).
const ZERO_KEY_RETRIES: u32 = 3;

/// How long a tunnel waits, after the local stream ended, for more from the server before
/// it closes (like `nc -q`): each arrival restarts the wait.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(2);

/// Where the server is.
#[derive(Clone, Debug)]
pub enum ServerAddr {
    /// `host:port` over TCP.
    Tcp(String),
    /// A `ws://` URL.
    Ws(String),
}

impl ServerAddr {
    /// Parses `host[:port]` (port 31118 by default) or `ws://...`.
    pub fn parse(s: &str) -> Result<ServerAddr> {
        if s.starts_with("ws://") || s.starts_with("wss://") {
            if s.starts_with("wss://") {
                bail!(
                    "wss:// needs TLS, which this build does not include; put a TLS terminator in front, or use ws://"
                );
            }
            return Ok(ServerAddr::Ws(s.to_string()));
        }
        let has_port = if s.starts_with('[') {
            s.contains("]:")
        } else {
            s.matches(':').count() == 1
        };
        if has_port {
            Ok(ServerAddr::Tcp(s.to_string()))
        } else if s.contains(':') && !s.starts_with('[') {
            Ok(ServerAddr::Tcp(format!(
                "[{s}]:{}",
                crate::config::DEFAULT_PORT
            )))
        } else {
            Ok(ServerAddr::Tcp(format!(
                "{s}:{}",
                crate::config::DEFAULT_PORT
            )))
        }
    }
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddr::Tcp(a) | ServerAddr::Ws(a) => f.write_str(a),
        }
    }
}

/// Retry policy.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Attempts per tunnel before giving up (`None`: forever).
    pub attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            attempts: None,
        }
    }
}

/// A client for one pair.
#[derive(Clone)]
pub struct Client {
    keys: Arc<PeerKeys>,
    store: Store,
    server: ServerAddr,
    settings: Settings,
    ratchet_every: Option<Duration>,
    backoff: Backoff,
    linger: Duration,
    /// One handshake per pair at a time; the second of the last connect request.
    handshakes: Arc<Mutex<u64>>,
    work: Work,
    /// The local address to connect from (`None`: the system's choice).
    bind: Option<std::net::IpAddr>,
}

impl Client {
    /// A client for the pair in `key` + `peer`, its record kept in `store`.
    pub fn new(keys: PeerKeys, store: Store, server: ServerAddr) -> Result<Client> {
        store.import(&keys)?;
        Ok(Client::imported(keys, store, server))
    }

    /// A client for a pair the store already holds ([`Store::import_all`]).
    pub fn imported(keys: PeerKeys, store: Store, server: ServerAddr) -> Client {
        Client {
            keys: Arc::new(keys),
            store,
            server,
            settings: Settings::default(),
            ratchet_every: None,
            backoff: Backoff::default(),
            linger: DEFAULT_LINGER,
            handshakes: Arc::new(Mutex::new(0)),
            work: Work::inline(),
            bind: None,
        }
    }

    /// Loads the key files.
    pub fn from_files(key: &Path, peer: &Path, store: Store, server: ServerAddr) -> Result<Client> {
        Client::new(keys::load_pair(key, peer)?, store, server)
    }

    /// Engine settings (timeouts).
    pub fn with_settings(mut self, settings: Settings) -> Client {
        self.settings = settings;
        self
    }

    /// A ratchet per session this often.
    pub fn with_ratchet_every(mut self, every: Option<Duration>) -> Client {
        self.ratchet_every = every;
        self
    }

    /// The retry policy.
    pub fn with_backoff(mut self, backoff: Backoff) -> Client {
        self.backoff = backoff;
        self
    }

    /// How long a tunnel stays open for the server's answer after the local side ended
    /// its stream (DKTP has no half-close).
    pub fn with_linger(mut self, linger: Duration) -> Client {
        self.linger = linger;
        self
    }

    /// Connects from this local address (TCP).
    pub fn with_bind(mut self, bind: Option<std::net::IpAddr>) -> Client {
        self.bind = bind;
        self
    }

    /// Where the tunnels' work runs and what they report to (default: in place, nothing).
    pub fn with_work(mut self, work: Work) -> Client {
        self.work = work;
        self
    }

    /// One attempt: the transport, then the handshake (one per pair at a time).
    pub async fn attempt(&self) -> Result<Driver, End> {
        let timed_out = || End::Transport(format!("connecting to {}: timed out", self.server));
        let (rx, tx) = match &self.server {
            ServerAddr::Tcp(a) => {
                let s = tokio::time::timeout(CONNECT_TIMEOUT, connect_tcp(a, self.bind))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| End::Transport(format!("connecting to {a}: {e}")))?;
                transport::tcp(s)
            }
            ServerAddr::Ws(url) => {
                let (ws, _) = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio_tungstenite::connect_async_with_config(
                        url.as_str(),
                        Some(transport::ws_config()),
                        true,
                    ),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| End::Transport(format!("connecting to {url}: {e}")))?;
                transport::websocket(ws)
            }
        };
        let mut last = self.handshakes.lock().await;
        // The connect request is signed deterministically over its header (time in
        // seconds): a second request in the same second would be identical, and the server's
        // replay gate refuses it. Wait for the next second instead.
        while now() <= *last {
            let into = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            tokio::time::sleep(Duration::from_nanos(u64::from(
                1_000_000_000 - into.min(999_999_999),
            )))
            .await;
        }
        *last = now();
        let keyid = *self.keys.local.keyid();
        let store = self.store.clone();
        let entry = tokio::task::spawn_blocking(move || store.get(&keyid))
            .await
            .map_err(|e| End::Transport(format!("store: {e}")))?
            .map_err(|e| End::Transport(format!("{e:#}")))?
            .ok_or_else(|| End::Transport("the store lost the peer".into()))?;
        let record = entry.secrets;
        // The connect request is signed: on the handshake pool when there is one.
        let (keys, start, settings) = (self.keys.clone(), record.clone(), self.settings.clone());
        let connect = move || {
            Connection::connect_with((*keys).clone(), start, settings, now(), &mut OsEntropy)
        };
        let conn = match &self.work.pool {
            Some(pool) => pool
                .run(crate::hspool::Priority::New, connect)
                .await
                .ok_or_else(|| End::Transport("the handshake pool stopped".into()))?,
            None => connect(),
        }
        .map_err(|e| End::Failed {
            code: e.wire_code().as_u8(),
            by_peer: false,
            reason: e.to_string(),
            zero_key: false,
        })?;
        let cx = TunnelContext {
            store: self.store.clone(),
            peer: self.server.to_string().into(),
            ratchet_every: self.ratchet_every,
            listener: None,
            linger: (!self.linger.is_zero()).then_some(self.linger),
            work: self.work.clone(),
        };
        let mut d = Driver::new(conn, rx, tx, cx).starting_from(record);
        match d.handshake().await {
            Ok(()) => Ok(d),
            Err(end) => {
                d.shutdown().await;
                Err(end)
            }
        }
    }

    /// Attempts until one succeeds or the policy gives up.
    pub async fn establish(&self) -> Result<Driver> {
        let mut wait = self.backoff.initial;
        let mut attempt = 0u32;
        let mut zero_keys = 0u32;
        loop {
            attempt += 1;
            let end = match self.attempt().await {
                Ok(d) => return Ok(d),
                Err(end) => end,
            };
            let zero_key = matches!(end, End::Failed { zero_key: true, .. });
            if self.backoff.attempts.is_some_and(|n| attempt >= n) {
                bail!("giving up after {attempt} attempt(s): {}", describe(&end));
            }
            zero_keys = if zero_key { zero_keys + 1 } else { 0 };
            if zero_key && zero_keys <= ZERO_KEY_RETRIES {
                warn!(server = %self.server, "the server sent an all-zero McEliece public key (a known defect of the C reference's key generation); connecting again at once");
                continue;
            }
            let jittered = wait.mul_f64(0.5 + 0.5 * random_unit());
            warn!(server = %self.server, attempt, "handshake failed ({}); retrying in {:.1} s", describe(&end), jittered.as_secs_f64());
            tokio::time::sleep(jittered).await;
            wait = (wait * 2).min(self.backoff.max);
        }
    }

    /// Runs one tunnel over `local`.
    pub async fn tunnel(&self, local: Local) -> Result<End> {
        let mut d = self.establish().await?;
        let end = d.pump(local).await;
        d.shutdown().await;
        Ok(end)
    }
}

/// Connects to `addr` (`host:port`), from `bind` if given.
async fn connect_tcp(addr: &str, bind: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(ip) = bind else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(ip, 0))?;
        match socket.connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrNotAvailable.into()))
}

/// `-L`: listens on `bind`; every accepted connection gets its own tunnel session.
pub async fn listen(
    client: Client,
    bind: SocketAddr,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let l = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    serve_local(client, l, stop).await
}

/// `-L` on an already bound listener.
pub async fn serve_local(
    client: Client,
    l: TcpListener,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    info!(addr = %l.local_addr()?, server = %client.server, "forwarding local connections");
    tokio::pin!(stop);
    loop {
        let (s, addr) = tokio::select! {
            () = &mut stop => return Ok(()),
            r = l.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = s.set_nodelay(true);
        let client = client.clone();
        tokio::spawn(async move {
            debug!(local = %addr, "local connection");
            let (rd, wr) = s.into_split();
            let local = Local::Stream {
                rd: Box::new(rd),
                wr: Box::new(wr),
            };
            match client.tunnel(local).await {
                Ok(end) => info!(local = %addr, "tunnel ended: {}", describe(&end)),
                Err(e) => warn!(local = %addr, "no tunnel: {e:#}"),
            }
        });
    }
}

/// stdin/stdout: one tunnel; `Ok` when it closed in order.
pub async fn stdio(client: Client) -> Result<()> {
    let local = Local::Stream {
        rd: Box::new(tokio::io::stdin()),
        wr: Box::new(tokio::io::stdout()),
    };
    match client.tunnel(local).await? {
        End::Closed { .. } => Ok(()),
        other => Err(anyhow!("{}", describe(&other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServeConfig;
    use crate::serve::Server;
    use dktp::config::Config;
    use dktp::packet::HEADER_LEN;
    use dktp::transcript::message_hash;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read_packet(s: &mut TcpStream) -> Vec<u8> {
        let mut p = vec![0u8; HEADER_LEN];
        s.read_exact(&mut p).await.expect("header");
        let len = u32::from_le_bytes([p[1], p[2], p[3], p[4]]) as usize;
        p.resize(HEADER_LEN + len, 0);
        s.read_exact(&mut p[HEADER_LEN..]).await.expect("body");
        p
    }

    /// A server whose first connect response carries an all-zero McEliece key, correctly
    /// signed (what the C reference's key generation sometimes produces); the client must
    /// connect again at once, not after its backoff (a minute here).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_all_zero_mceliece_key_from_the_server_is_retried_at_once() {
        let config: Config = "dilithium-s1_mceliece-s1_sha3_rcs".parse().expect("config");
        let (server_keys, client_keys) = crate::demo::pair(config, 7).expect("keys");
        let dir = std::env::temp_dir().join(format!("dktp-zero-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = ServeConfig::defaults(dir.join("srv.redb"));
        let server = Server::with_keys(
            &cfg,
            Store::open(&dir.join("srv.redb")).expect("store"),
            vec![server_keys.clone()],
        )
        .expect("server");
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let fake = tokio::spawn(async move {
            // The first connection: a genuine response with its key zeroed and re-signed.
            let (mut s, _) = l.accept().await.expect("accept");
            let request = read_packet(&mut s).await;
            let mut conn = server.listener().accept(now());
            conn.handle_bytes(&request, now(), &mut OsEntropy)
                .expect("request");
            let Some(dktp::session::Output::Transmit(response)) = conn.poll_output() else {
                panic!("no connect response");
            };
            let (sph, _) = response.split_at(HEADER_LEN);
            let zero = vec![0u8; config.kem().sizes().public_key];
            let signed = config
                .sig()
                .sign(
                    server_keys.local.signing_key(),
                    &message_hash(sph, &[&zero]),
                    &mut OsEntropy,
                )
                .expect("sign");
            let mut forged = sph.to_vec();
            forged.extend_from_slice(&signed);
            forged.extend_from_slice(&zero);
            assert_eq!(forged.len(), response.len());
            s.write_all(&forged).await.expect("write");
            // The client's refusal: a plaintext error packet carrying 0x06.
            let refusal = read_packet(&mut s).await;
            assert_eq!((refusal[0], refusal.last().copied()), (0x12, Some(0x06)));
            // Then a genuine server for the next connection.
            let (s, a) = l.accept().await.expect("accept again");
            let (rx, tx) = transport::tcp(s);
            server.tunnel(rx, tx, a.to_string()).await;
        });
        let store = Store::open(&dir.join("cli.redb")).expect("store");
        let client = Client::new(client_keys, store, ServerAddr::Tcp(addr.to_string()))
            .expect("client")
            .with_backoff(Backoff {
                initial: Duration::from_secs(60),
                max: Duration::from_secs(60),
                attempts: Some(3),
            })
            .with_linger(Duration::ZERO);
        let start = std::time::Instant::now();
        let mut d = tokio::time::timeout(Duration::from_secs(25), client.establish())
            .await
            .expect("reconnected well before the backoff's 30 s at least")
            .expect("established");
        assert!(start.elapsed() < Duration::from_secs(25));
        let end = d
            .pump(Local::Stream {
                rd: Box::new(tokio::io::empty()),
                wr: Box::new(tokio::io::sink()),
            })
            .await;
        assert_eq!(end, End::Closed { by_peer: false });
        d.shutdown().await;
        fake.await.expect("fake server");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
