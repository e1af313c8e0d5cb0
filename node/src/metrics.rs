//! What a concentrator counts, in the Prometheus manner (`--metrics ADDR` serves the text
//! format at `/metrics`; `dktp status` reads it): sessions, handshakes by result and code,
//! bytes and packets each way, ratchets, refusals by reason, the key pool, handshake and
//! store-commit latency, the batcher's turns, and a row per peer.
//!
//! Built on `prometheus-client` (the Prometheus project's own Rust client). The data path
//! touches only atomics: each tunnel holds its peer's [`PeerStats`] and the global
//! counters; the per-peer rows are read from those at scrape time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use dktp::peer_key::KEYID_SIZE;
use dktp::pool::KeyPool;
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tracing::{info, warn};

use crate::batcher::Stats as BatchStats;

/// `result` and `code` of a handshake.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// `ok`, `failed`, `timeout`.
    pub result: &'static str,
    /// The DKTP code sent or received (`0x..`), `none` when it succeeded.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    keyid: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    keyid: String,
    name: String,
    address: String,
}

/// Why a connection or a connect request was refused: the `reason` label of
/// `dktp_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The source address's handshake rate (token bucket) was spent.
    SourceRate,
    /// The server's handshake rate was spent (refused with 0x0B after the cheap checks).
    Overloaded,
    /// `max_handshakes` handshakes were in progress.
    MaxHandshakes,
    /// `max_sessions` sessions were established.
    MaxSessions,
    /// The WebSocket upgrade failed or timed out.
    WebSocket,
    /// The store could not commit (a cluster's store without a quorum): refused with 0x0B.
    StoreUnavailable,
    /// A connect request for a key id the server does not know (0x0F).
    UnknownKey,
    /// A configuration the peer's key is not for (0x18).
    Configuration,
    /// An expired key (0x0E).
    Expired,
    /// A replayed connect request.
    Replay,
    /// A header time outside the window (0x13).
    Time,
    /// Bytes that are no DKTP packet (garbage, a length beyond what the state accepts,
    /// a truncated packet).
    Malformed,
    /// A packet out of turn, sequence or size.
    Protocol,
    /// A signature, hash or authentication tag that did not verify.
    Authentication,
    /// An all-zero McEliece public key (FACTS §11.5).
    ZeroKey,
    /// The handshake missed its deadline (a stalled or slow peer).
    Timeout,
    /// The peer reported an error or closed the stream mid-handshake.
    Peer,
    /// Anything else.
    Other,
}

impl Refusal {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::SourceRate => "source_rate",
            Refusal::Overloaded => "overloaded",
            Refusal::MaxHandshakes => "max_handshakes",
            Refusal::MaxSessions => "max_sessions",
            Refusal::WebSocket => "websocket",
            Refusal::StoreUnavailable => "store_unavailable",
            Refusal::UnknownKey => "unknown_key",
            Refusal::Configuration => "configuration",
            Refusal::Expired => "expired",
            Refusal::Replay => "replay",
            Refusal::Time => "time",
            Refusal::Malformed => "malformed",
            Refusal::Protocol => "protocol",
            Refusal::Authentication => "authentication",
            Refusal::ZeroKey => "zero_key",
            Refusal::Timeout => "timeout",
            Refusal::Peer => "peer",
            Refusal::Other => "other",
        }
    }

    /// The reason for an engine error that ended a handshake.
    pub fn of(e: &dktp::Error) -> Refusal {
        use dktp::Error;
        use dktp::error::{CryptoFailure, PeerIncompatible, PeerMisbehaved};
        match e {
            Error::Overloaded => Refusal::Overloaded,
            Error::TimedOut { .. } => Refusal::Timeout,
            Error::Malformed(_) => Refusal::Malformed,
            Error::PeerIncompatible(PeerIncompatible::KeyUnrecognized) => Refusal::UnknownKey,
            Error::PeerIncompatible(PeerIncompatible::UnknownProtocol) => Refusal::Configuration,
            Error::PeerIncompatible(PeerIncompatible::KeyExpired) => Refusal::Expired,
            Error::PeerMisbehaved(PeerMisbehaved::Replayed) => Refusal::Replay,
            Error::PeerMisbehaved(PeerMisbehaved::StaleTime { .. }) => Refusal::Time,
            Error::PeerMisbehaved(_) => Refusal::Protocol,
            Error::Crypto(CryptoFailure::ZeroPublicKey) => Refusal::ZeroKey,
            Error::Crypto(
                CryptoFailure::Authentication
                | CryptoFailure::Signature
                | CryptoFailure::HashMismatch
                | CryptoFailure::ExchangeHashMismatch
                | CryptoFailure::TranscriptMismatch
                | CryptoFailure::Decryption
                | CryptoFailure::Decapsulation,
            ) => Refusal::Authentication,
            Error::PeerReported { .. } => Refusal::Peer,
            _ => Refusal::Other,
        }
    }
}

/// A peer's counters, shared by its tunnels.
#[derive(Debug)]
pub struct PeerStats {
    name: String,
    /// Plaintext bytes received from the peer.
    pub rx_bytes: AtomicU64,
    /// Plaintext bytes sent to the peer.
    pub tx_bytes: AtomicU64,
    /// When its last handshake completed (Unix seconds).
    pub last_handshake: AtomicU64,
    /// The generation of its secrets last stored.
    pub generation: AtomicU64,
    /// Its live sessions: id → (address, since).
    sessions: Mutex<HashMap<u64, (String, u64)>>,
}

impl PeerStats {
    /// Marks a session live (until the returned guard drops).
    pub fn session(self: &Arc<Self>, address: String, since: u64) -> LiveSession {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        self.sessions.lock().insert(id, (address, since));
        LiveSession {
            peer: self.clone(),
            id,
        }
    }
}

/// A live session in its peer's row; removed on drop.
#[derive(Debug)]
pub struct LiveSession {
    peer: Arc<PeerStats>,
    id: u64,
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        self.peer.sessions.lock().remove(&self.id);
    }
}

/// The rows of the peer table, and the gauges read at scrape time.
#[derive(Debug, Default)]
struct Live {
    peers: Mutex<HashMap<[u8; KEYID_SIZE], Arc<PeerStats>>>,
    key_pool: Mutex<Option<Arc<KeyPool>>>,
    batch: Mutex<Option<Arc<BatchStats>>>,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let peer = PeerLabelsFamily::default();
        for (keyid, p) in self.peers.lock().iter() {
            let labels = PeerLabels {
                keyid: hex::encode(keyid),
                name: p.name.clone(),
            };
            peer.rx
                .get_or_create(&labels)
                .inc_by(p.rx_bytes.load(Ordering::Relaxed));
            peer.tx
                .get_or_create(&labels)
                .inc_by(p.tx_bytes.load(Ordering::Relaxed));
            let last = p.last_handshake.load(Ordering::Relaxed);
            if last > 0 {
                peer.last_handshake
                    .get_or_create(&labels)
                    .set(i64::try_from(last).unwrap_or(i64::MAX));
            }
            peer.generation
                .get_or_create(&labels)
                .set(i64::try_from(p.generation.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
            for (address, since) in p.sessions.lock().values() {
                let s = SessionLabels {
                    keyid: labels.keyid.clone(),
                    name: labels.name.clone(),
                    address: address.clone(),
                };
                peer.since
                    .get_or_create(&s)
                    .set(i64::try_from(*since).unwrap_or(i64::MAX));
            }
        }
        let families: [(&str, &str, &dyn EncodeMetric); 5] = [
            (
                "dktp_peer_rx_bytes",
                "Plaintext bytes received from the peer",
                &peer.rx,
            ),
            (
                "dktp_peer_tx_bytes",
                "Plaintext bytes sent to the peer",
                &peer.tx,
            ),
            (
                "dktp_peer_last_handshake_seconds",
                "When the peer's last handshake completed (Unix time)",
                &peer.last_handshake,
            ),
            (
                "dktp_peer_generation",
                "The generation of the peer's pre-shared secrets last stored",
                &peer.generation,
            ),
            (
                "dktp_peer_session_since_seconds",
                "A live session of the peer: its address and when it was established (Unix time)",
                &peer.since,
            ),
        ];
        for (name, help, family) in families {
            let m = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(m)?;
        }
        if let Some(pool) = self.key_pool.lock().as_ref() {
            let depth = ConstGauge::new(i64::try_from(pool.len()).unwrap_or(i64::MAX));
            let m = encoder.encode_descriptor(
                "dktp_key_pool_depth",
                "Ephemeral KEM key pairs ready in the pool",
                None,
                depth.metric_type(),
            )?;
            depth.encode(m)?;
        }
        if let Some(b) = self.batch.lock().as_ref() {
            let counters: [(&str, &str, &AtomicU64); 3] = [
                (
                    "dktp_batch_flushes",
                    "Batches the batcher thread ran",
                    &b.flushes,
                ),
                (
                    "dktp_batch_turns",
                    "Tunnels' crypto turns that went through the batcher",
                    &b.turns,
                ),
                (
                    "dktp_batch_in_place_turns",
                    "Tunnels' crypto turns done in place (no other tunnel busy, or batching off)",
                    &b.in_place,
                ),
            ];
            for (name, help, v) in counters {
                let c = ConstCounter::new(v.load(Ordering::Relaxed));
                let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
                c.encode(m)?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct PeerLabelsFamily {
    rx: Family<PeerLabels, Counter>,
    tx: Family<PeerLabels, Counter>,
    last_handshake: Family<PeerLabels, Gauge>,
    generation: Family<PeerLabels, Gauge>,
    since: Family<SessionLabels, Gauge>,
}

/// Everything a node counts.
pub struct Metrics {
    registry: Registry,
    live: Arc<Live>,
    /// Transport connections open (handshaking or established).
    pub connections: Gauge,
    /// Established sessions.
    pub sessions: Gauge,
    /// Handshakes in progress.
    pub handshaking: Gauge,
    /// Handshakes by result and code.
    pub handshakes: Family<HandshakeLabels, Counter>,
    refused: Family<Reason, Counter>,
    /// Plaintext bytes received.
    pub rx_bytes: Counter,
    /// Plaintext bytes sent.
    pub tx_bytes: Counter,
    /// Data packets received.
    pub rx_packets: Counter,
    /// Data packets sent.
    pub tx_packets: Counter,
    ratchets: Family<Direction, Counter>,
    /// Handshake durations (accept to established).
    pub handshake_seconds: Histogram,
    /// Store commit durations.
    pub store_commit_seconds: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            live: Arc::new(Live::default()),
            connections: Gauge::default(),
            sessions: Gauge::default(),
            handshaking: Gauge::default(),
            handshakes: Family::default(),
            refused: Family::default(),
            rx_bytes: Counter::default(),
            tx_bytes: Counter::default(),
            rx_packets: Counter::default(),
            tx_packets: Counter::default(),
            ratchets: Family::default(),
            // 0.5 ms to about 65 s.
            handshake_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 18)),
            // 50 µs to about 1.6 s.
            store_commit_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
        };
        registry.register(
            "dktp_connections",
            "Transport connections open (handshaking or established)",
            m.connections.clone(),
        );
        registry.register("dktp_sessions", "Established sessions", m.sessions.clone());
        registry.register(
            "dktp_handshakes_in_progress",
            "Handshakes in progress",
            m.handshaking.clone(),
        );
        registry.register(
            "dktp_handshakes",
            "Handshakes by result (ok, failed, timeout) and DKTP error code",
            m.handshakes.clone(),
        );
        registry.register(
            "dktp_refused",
            "Connections and connect requests refused, by reason",
            m.refused.clone(),
        );
        registry.register_with_unit(
            "dktp_rx",
            "Plaintext received through tunnels",
            Unit::Bytes,
            m.rx_bytes.clone(),
        );
        registry.register_with_unit(
            "dktp_tx",
            "Plaintext sent through tunnels",
            Unit::Bytes,
            m.tx_bytes.clone(),
        );
        registry.register(
            "dktp_rx_packets",
            "Data packets received",
            m.rx_packets.clone(),
        );
        registry.register("dktp_tx_packets", "Data packets sent", m.tx_packets.clone());
        registry.register(
            "dktp_ratchets",
            "Asymmetric ratchets completed, by the direction re-keyed",
            m.ratchets.clone(),
        );
        registry.register_with_unit(
            "dktp_handshake",
            "Handshake duration, from the first packet to established",
            Unit::Seconds,
            m.handshake_seconds.clone(),
        );
        registry.register_with_unit(
            "dktp_store_commit",
            "Ratchet store commit duration (fsync included)",
            Unit::Seconds,
            m.store_commit_seconds.clone(),
        );
        registry.register_collector(Box::new(m.live.clone()));
        Metrics { registry, ..m }
    }

    /// Counts a refusal and returns its label.
    pub fn refused(&self, why: Refusal) -> &'static str {
        self.refused
            .get_or_create(&Reason {
                reason: why.label(),
            })
            .inc();
        why.label()
    }

    /// Counts a ratchet (`transmit` on the requester, `receive` on the responder).
    pub fn ratchet(&self, direction: &'static str) {
        self.ratchets.get_or_create(&Direction { direction }).inc();
    }

    /// Counts a handshake's end.
    pub fn handshake(&self, result: &'static str, code: Option<u8>) {
        let code = code.map_or_else(|| "none".to_string(), crate::util::code_hex);
        self.handshakes
            .get_or_create(&HandshakeLabels { result, code })
            .inc();
    }

    /// The counters of the peer whose local key id is `keyid` (made on first use).
    pub fn peer(&self, keyid: &[u8; KEYID_SIZE], name: Option<&str>) -> Arc<PeerStats> {
        self.live
            .peers
            .lock()
            .entry(*keyid)
            .or_insert_with(|| {
                Arc::new(PeerStats {
                    name: name.unwrap_or("").to_string(),
                    rx_bytes: AtomicU64::new(0),
                    tx_bytes: AtomicU64::new(0),
                    last_handshake: AtomicU64::new(0),
                    generation: AtomicU64::new(0),
                    sessions: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// Reports the depth of this key pool.
    pub fn watch_key_pool(&self, pool: Arc<KeyPool>) {
        *self.live.key_pool.lock() = Some(pool);
    }

    /// Reports the batcher's turns.
    pub fn watch_batcher(&self, stats: Arc<BatchStats>) {
        *self.live.batch.lock() = Some(stats);
    }

    /// The Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `GET /metrics` on `addr` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) -> Result<()> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Response, StatusCode};

    info!(addr = %listener.local_addr()?, "metrics at /metrics");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("metrics accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let metrics = metrics.clone();
                async move {
                    if req.uri().path() == "/metrics" {
                        Response::builder()
                            .header(
                                "content-type",
                                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                            )
                            .body(Full::new(Bytes::from(metrics.render())))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"try /metrics\n")))
                    }
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(io, service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "metrics connection: {e}");
            }
        });
    }
}

/// Fetches `http://ADDR/metrics` (for `dktp status`).
pub async fn fetch(addr: SocketAddr) -> Result<String> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;

    let stream = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connecting to {addr}: timed out"))?
    .with_context(|| format!("connecting to {addr} (is `dktp serve --metrics {addr}` running?)"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .uri("/metrics")
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .context("request")?;
    let res = sender.send_request(req).await.context("GET /metrics")?;
    if !res.status().is_success() {
        anyhow::bail!("GET http://{addr}/metrics: {}", res.status());
    }
    let body = res
        .into_body()
        .collect()
        .await
        .context("reading /metrics")?;
    String::from_utf8(body.to_bytes().to_vec()).context("/metrics is not UTF-8")
}
