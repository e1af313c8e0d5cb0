//! The etcd store: the ratchet store of a cluster of concentrators
//! (`--store etcd://HOST:PORT,HOST:PORT/PREFIX`).
//!
//! Layout under the prefix (default `/dktp`):
//!
//! ```text
//! PREFIX/format                  dktp-store/1
//! PREFIX/keys/KEYID              the linked keys (as the embedded store holds them)
//! PREFIX/peers/KEYID             how the peer was provisioned (JSON)
//! PREFIX/secrets/KEYID           the record of its secrets
//! PREFIX/nodes/NODE              a serving node (JSON), under the node's lease
//! PREFIX/sessions/NODE/ID        a live session (JSON), under the node's lease
//! ```
//!
//! Every change of a record is one etcd transaction conditioned on what the node read:
//! the stored record must still be the one the session started from, and the peer must
//! still exist. etcd linearizes transactions, so when two nodes race to advance one peer
//! exactly one commits; the other is told so and drops its handshake before it commits to
//! anything. Records only move forward (generation numbers grow), so comparing the stored
//! value is the revision check without carrying revisions around.
//!
//! Each node holds a lease (a TTL it keeps alive) under which it registers itself and its
//! live sessions: a node that dies drops out of `dktp status --cluster` when its lease
//! expires. A watch on the prefix tells every node when a peer is added, removed (revoked:
//! its live sessions close) or advanced by another node.
//!
//! The client runs on a runtime of its own, so that keep-alives and watches are never
//! starved by a busy data path, and so that the blocking [`Backend`] calls work from any
//! thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use dktp::generation::Generations;
use dktp::kex::PeerKeys;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{
    Backend, Change, Entry, KeyId, NodeInfo, PeerMeta, Registration, SessionInfo, decode_keys,
    decode_record, encode_keys, encode_record, same_keys,
};

/// How long one request may take before the store counts as unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The TTL of a node's lease, and how often it is kept alive.
const LEASE_TTL: i64 = 5;
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(1);

/// The etcd store.
pub struct Etcd {
    /// Always `Some` until dropped.
    rt: Option<tokio::runtime::Runtime>,
    client: Client,
    endpoints: String,
    prefix: String,
    /// Whether the last requests and keep-alives got answers (a quorum).
    healthy: Arc<AtomicBool>,
    registry: Mutex<Option<Arc<Registry>>>,
}

/// What a node keeps registered under its lease.
struct Registry {
    node: NodeInfo,
    sessions: Mutex<HashMap<u64, SessionInfo>>,
    next: AtomicU64,
    /// Tells the keeper a session came or went.
    changed: tokio::sync::Notify,
}

/// A registered session; unregistered on drop.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.sessions.lock().remove(&self.id);
        self.registry.changed.notify_one();
    }
}

impl Etcd {
    /// Connects to `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]` and checks (or writes) the
    /// store's format.
    pub fn connect(spec: &str) -> Result<Etcd> {
        let rest = spec
            .strip_prefix("etcd://")
            .ok_or_else(|| anyhow!("{spec}: expected etcd://HOST:PORT[,HOST:PORT]/PREFIX"))?;
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = match prefix.trim_matches('/') {
            "" => "/dktp".to_string(),
            p => format!("/{p}"),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            bail!("{spec}: no etcd endpoint");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dktp-etcd")
            .enable_all()
            .build()
            .context("starting the etcd client's runtime")?;
        let options = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        // Not `block_on`: this may run inside another runtime (the server's).
        let eps = endpoints.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let r =
                tokio::time::timeout(REQUEST_TIMEOUT, Client::connect(eps, Some(options))).await;
            let _ = tx.send(r);
        });
        let client = rx
            .recv()
            .context("the etcd client's runtime stopped")?
            .map_err(|_| anyhow!("timed out"))
            .and_then(|r| r.map_err(anyhow::Error::from))
            .with_context(|| format!("connecting to etcd at {}", endpoints.join(",")))?;
        let store = Etcd {
            rt: Some(rt),
            client,
            endpoints: endpoints.join(","),
            prefix,
            healthy: Arc::new(AtomicBool::new(true)),
            registry: Mutex::new(None),
        };
        store.check_format()?;
        Ok(store)
    }

    fn key(&self, kind: &str, keyid: &KeyId) -> String {
        format!("{}/{kind}/{}", self.prefix, hex::encode(keyid))
    }

    fn err(&self, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "store etcd://{}{}: {e} (is a quorum of etcd members up?)",
            self.endpoints
                .trim_start_matches("http://")
                .replace(",http://", ","),
            self.prefix
        )
    }

    /// Runs the request `op` makes on the store's runtime and waits for it (from any
    /// thread): again after a transport error (a member that went away; the client moves
    /// to another), until the request timeout. Keeps the health flag.
    fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>> + Send,
    {
        let client = self.client.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.spawn(async move {
            let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
            let r = loop {
                match tokio::time::timeout_at(deadline, op(client.clone())).await {
                    Err(_) => break Err(None),
                    Ok(Ok(v)) => break Ok(v),
                    Ok(Err(e)) if transient(&e) => {
                        debug!("etcd: {e}; trying again");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(Err(e)) => break Err(Some(e)),
                }
            };
            let _ = tx.send(r);
        });
        let r = rx
            .recv()
            .map_err(|_| self.err("the etcd client stopped"))?
            .map_err(|e| match e {
                None => self.err("timed out"),
                Some(e) => self.err(e),
            });
        self.healthy.store(r.is_ok(), Ordering::Relaxed);
        r
    }

    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(rt) = &self.rt {
            rt.spawn(f);
        }
    }

    fn check_format(&self) -> Result<()> {
        let key = format!("{}/format", self.prefix);
        let format = super::embedded::FORMAT.to_vec();
        let (k, f) = (key.clone(), format.clone());
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k.clone(), f, None)])
            .or_else([TxnOp::get(k, None)]);
        let r = self.run(move |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        if r.succeeded() {
            info!(store = %self.location(), "a new dktp store in etcd");
            return Ok(());
        }
        let stored = first_value(&r.op_responses(), 0).unwrap_or_default();
        if stored != format {
            bail!(
                "store {}: format {:?}, this dktp reads {:?}; refusing to touch it",
                self.location(),
                String::from_utf8_lossy(&stored),
                String::from_utf8_lossy(&format)
            );
        }
        Ok(())
    }

    /// Registers this node under a lease kept alive from now on; sessions registered with
    /// [`Backend::register`] live under the same lease.
    fn join_cluster(&self, node: NodeInfo) {
        let registry = Arc::new(Registry {
            node,
            sessions: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        });
        *self.registry.lock() = Some(registry.clone());
        let client = self.client.clone();
        let prefix = self.prefix.clone();
        let healthy = self.healthy.clone();
        self.spawn(keep_registered(client, prefix, registry, healthy));
    }

    /// Every node and its sessions, as registered.
    fn nodes(&self) -> Result<Vec<(NodeInfo, Vec<SessionInfo>)>> {
        let nodes_key = format!("{}/nodes/", self.prefix);
        let sessions_key = format!("{}/sessions/", self.prefix);
        let (prefixes, sk) = ((nodes_key, sessions_key.clone()), sessions_key.clone());
        let (nodes, sessions) = self.run(move |c| {
            let (nodes_key, sessions_key) = prefixes.clone();
            async move {
                let (nodes, rev) = range_all(c.clone(), nodes_key, 0).await?;
                let (sessions, _) = range_all(c, sessions_key, rev).await?;
                Ok((nodes, sessions))
            }
        })?;
        let mut out: Vec<(NodeInfo, Vec<SessionInfo>)> = nodes
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice::<NodeInfo>(v).ok())
            .map(|n| (n, Vec::new()))
            .collect();
        for (key, value) in &sessions {
            let node = key
                .strip_prefix(&sk)
                .and_then(|r| r.split('/').next())
                .unwrap_or("");
            if let (Ok(s), Some(slot)) = (
                serde_json::from_slice::<SessionInfo>(value),
                out.iter_mut().find(|(n, _)| n.node == node),
            ) {
                slot.1.push(s);
            }
        }
        out.sort_by(|a, b| a.0.node.cmp(&b.0.node));
        Ok(out)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Dropping a runtime blocks; this may run inside another runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Whether a request failed on its way (a member down, a connection reset), not in
/// etcd's judgement: worth sending again.
fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        // gRPC's CANCELLED (1), UNKNOWN (2) and UNAVAILABLE (14).
        etcd_client::Error::GRpcStatus(s) => matches!(s.code() as i32, 1 | 2 | 14),
        _ => false,
    }
}

/// The value of the first key of the `i`-th get in a transaction's responses.
/// Keys read in one page: a gRPC reply is at most 4 MiB and a peer's linked keys run to
/// 13 KiB with ML-DSA-87 (more with SPHINCS+), so a fleet's keys are read in pages.
const PAGE: i64 = 128;

/// Every key under `prefix` with its value, read in pages of [`PAGE`] keys, all at revision
/// `rev` (0: the newest; the revision read is returned) so that several ranges read one
/// after another agree with each other as one transaction's would.
async fn range_all(
    mut c: Client,
    prefix: String,
    mut rev: i64,
) -> std::result::Result<(Vec<(String, Vec<u8>)>, i64), etcd_client::Error> {
    let mut end = prefix.clone().into_bytes();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let mut from = prefix.into_bytes();
    let mut out = Vec::new();
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if rev > 0 {
            options = options.with_revision(rev);
        }
        let r = c.get(from.clone(), Some(options)).await?;
        if rev == 0 {
            rev = r.header().map_or(0, |h| h.revision());
        }
        for kv in r.kvs() {
            out.push((
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.value().to_vec(),
            ));
        }
        match r.kvs().last() {
            Some(kv) if r.more() => {
                from = kv.key().to_vec();
                from.push(0);
            }
            _ => return Ok((out, rev)),
        }
    }
}

fn first_value(ops: &[TxnOpResponse], i: usize) -> Option<Vec<u8>> {
    match ops.get(i) {
        Some(TxnOpResponse::Get(g)) => g.kvs().first().map(|kv| kv.value().to_vec()),
        _ => None,
    }
}

impl Backend for Etcd {
    fn location(&self) -> String {
        format!(
            "etcd://{}{}",
            self.endpoints.replace("http://", ""),
            self.prefix
        )
    }

    fn import(&self, peers: &[(PeerKeys, PeerMeta)]) -> Result<Vec<Generations>> {
        let mut records = Vec::with_capacity(peers.len());
        for (keys, meta) in peers {
            let keyid = *keys.local.keyid();
            let (k, p, s) = (
                self.key("keys", &keyid),
                self.key("peers", &keyid),
                self.key("secrets", &keyid),
            );
            let fresh = Generations::of_keys(keys);
            let meta_json = serde_json::to_vec(meta)?;
            // A new peer: its keys, provisioning and generation 0, all at once.
            let txn = Txn::new()
                .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
                .and_then([
                    TxnOp::put(k.clone(), encode_keys(keys).to_vec(), None),
                    TxnOp::put(p.clone(), meta_json, None),
                    TxnOp::put(s.clone(), encode_record(&fresh).to_vec(), None),
                ])
                .or_else([
                    TxnOp::get(k, None),
                    TxnOp::get(p.clone(), None),
                    TxnOp::get(s, None),
                ]);
            let r = self.run(move |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })?;
            if r.succeeded() {
                records.push(fresh);
                continue;
            }
            let ops = r.op_responses();
            let stored = first_value(&ops, 0)
                .map(|v| decode_keys(&v))
                .transpose()?
                .ok_or_else(|| self.err("keys vanished during import"))?;
            if !same_keys(&stored, keys) {
                bail!(
                    "store {}: it holds other keys for key id {}; the key files were \
                     regenerated or belong to another pair (use a new key id)",
                    self.location(),
                    hex::encode(keyid)
                );
            }
            let current: Option<PeerMeta> =
                first_value(&ops, 1).and_then(|v| serde_json::from_slice(&v).ok());
            if let Some(m) = meta.merged_onto(current.as_ref()) {
                let json = serde_json::to_vec(&m)?;
                self.run(move |mut c| {
                    let (p, json) = (p.clone(), json.clone());
                    async move { c.put(p, json, None).await }
                })?;
            }
            let record = first_value(&ops, 2).ok_or_else(|| {
                self.err(format!("keys without secrets for {}", hex::encode(keyid)))
            })?;
            records.push(decode_record(&record)?);
        }
        Ok(records)
    }

    fn save_if(
        &self,
        keyid: &KeyId,
        expected: Option<&Generations>,
        record: &Generations,
    ) -> Result<bool> {
        let (k, s) = (self.key("keys", keyid), self.key("secrets", keyid));
        let put = || TxnOp::put(s.clone(), encode_record(record).to_vec(), None);
        let exists = Compare::create_revision(k.clone(), CompareOp::Greater, 0);
        let Some(expected) = expected else {
            let txn = Txn::new().when([exists]).and_then([put()]);
            let r = self.run(move |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })?;
            if !r.succeeded() {
                bail!(
                    "store {}: no peer with key id {}",
                    self.location(),
                    hex::encode(keyid)
                );
            }
            return Ok(true);
        };
        // Read the record, judge it, and swap it only if it is still the one read (its
        // revision): another save in between sends us round again.
        for _ in 0..16 {
            let key = s.clone();
            let read = self.run(move |mut c| {
                let key = key.clone();
                async move { c.get(key, None).await }
            })?;
            let Some(kv) = read.kvs().first() else {
                return Ok(false);
            };
            if !super::still_current(&decode_record(kv.value())?, expected, record) {
                return Ok(false);
            }
            let txn = Txn::new()
                .when([
                    exists.clone(),
                    Compare::mod_revision(s.clone(), CompareOp::Equal, kv.mod_revision()),
                ])
                .and_then([put()]);
            let r = self.run(move |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })?;
            if r.succeeded() {
                return Ok(true);
            }
        }
        bail!(
            "store {}: the record of {} kept changing while being saved",
            self.location(),
            hex::encode(keyid)
        )
    }

    fn get(&self, keyid: &KeyId) -> Result<Option<Entry>> {
        let txn = Txn::new().and_then([
            TxnOp::get(self.key("keys", keyid), None),
            TxnOp::get(self.key("peers", keyid), None),
            TxnOp::get(self.key("secrets", keyid), None),
        ]);
        let r = self.run(move |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        let ops = r.op_responses();
        let Some(keys) = first_value(&ops, 0) else {
            return Ok(None);
        };
        let keys = decode_keys(&keys)?;
        let meta = first_value(&ops, 1)
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default();
        let secrets = first_value(&ops, 2)
            .ok_or_else(|| self.err(format!("keys without secrets for {}", hex::encode(keyid))))?;
        Ok(Some(Entry {
            keys,
            secrets: decode_record(&secrets)?,
            meta,
        }))
    }

    fn entries(&self) -> Result<Vec<Entry>> {
        let prefix = self.prefix.clone();
        let (keys, metas, secrets) = self.run(move |c| {
            let prefix = prefix.clone();
            async move {
                let (keys, rev) = range_all(c.clone(), format!("{prefix}/keys/"), 0).await?;
                let (metas, _) = range_all(c.clone(), format!("{prefix}/peers/"), rev).await?;
                let (secrets, _) = range_all(c, format!("{prefix}/secrets/"), rev).await?;
                Ok((keys, metas, secrets))
            }
        })?;
        let by_id = |kvs: Vec<(String, Vec<u8>)>| -> HashMap<String, Vec<u8>> {
            kvs.into_iter()
                .filter_map(|(key, value)| Some((key.rsplit('/').next()?.to_string(), value)))
                .collect()
        };
        let (keys, metas, secrets) = (by_id(keys), by_id(metas), by_id(secrets));
        let mut ids: Vec<&String> = keys.keys().collect();
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let (Some(k), Some(s)) = (keys.get(id), secrets.get(id)) else {
                continue;
            };
            out.push(Entry {
                keys: decode_keys(k)?,
                secrets: decode_record(s)?,
                meta: metas
                    .get(id)
                    .and_then(|m| serde_json::from_slice(m).ok())
                    .unwrap_or_default(),
            });
        }
        Ok(out)
    }

    fn remove(&self, keyid: &KeyId) -> Result<bool> {
        let k = self.key("keys", keyid);
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Greater, 0)])
            .and_then([
                TxnOp::delete(k, None),
                TxnOp::delete(self.key("peers", keyid), None),
                TxnOp::delete(self.key("secrets", keyid), None),
            ]);
        let r = self.run(move |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        Ok(r.succeeded())
    }

    /// Whether the last requests got answers: a node refuses new handshakes while the
    /// store cannot commit (a lost quorum), rather than failing them at the last step.
    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn watch(&self, tx: mpsc::UnboundedSender<Change>) -> bool {
        let client = self.client.clone();
        let prefix = self.prefix.clone();
        self.spawn(watch_loop(client, prefix, tx));
        true
    }

    fn join(&self, node: NodeInfo) {
        self.join_cluster(node);
    }

    fn register(&self, session: SessionInfo) -> Option<Registration> {
        let registry = self.registry.lock().clone()?;
        let id = registry.next.fetch_add(1, Ordering::Relaxed);
        registry.sessions.lock().insert(id, session);
        registry.changed.notify_one();
        Some(Registration::new(Registered { registry, id }))
    }

    fn cluster_status(&self) -> Result<Vec<(NodeInfo, Vec<SessionInfo>)>> {
        self.nodes()
    }
}

/// Watches the prefix from now on; after a broken stream, watches again from where it
/// was (etcd keeps the history since its last compaction).
async fn watch_loop(mut client: Client, prefix: String, tx: mpsc::UnboundedSender<Change>) {
    let mut from: i64 = 0;
    loop {
        let mut options = WatchOptions::new().with_prefix();
        if from > 0 {
            options = options.with_start_revision(from);
        }
        let mut stream = match client.watch(format!("{prefix}/"), Some(options)).await {
            Ok(s) => s,
            Err(e) => {
                debug!("etcd watch: {e}; again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let msg = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    debug!("etcd watch: {e}");
                    break;
                }
            };
            if msg.canceled() {
                warn!("etcd watch canceled: {}", msg.cancel_reason());
                from = 0;
                break;
            }
            for ev in msg.events() {
                let Some(kv) = ev.kv() else { continue };
                from = from.max(kv.mod_revision() + 1);
                let key = String::from_utf8_lossy(kv.key()).to_string();
                let Some(rest) = key.strip_prefix(&format!("{prefix}/")) else {
                    continue;
                };
                let Some((kind, id)) = rest.split_once('/') else {
                    continue;
                };
                let Ok(Ok(keyid)) = hex::decode(id).map(<KeyId>::try_from) else {
                    continue;
                };
                let change = match (kind, ev.event_type()) {
                    ("keys", EventType::Delete) => Some(Change::Removed(keyid)),
                    ("secrets", EventType::Put) => decode_record(kv.value())
                        .ok()
                        .map(|r| Change::Secrets(keyid, r)),
                    ("peers", EventType::Put) => {
                        // The keys and secrets were written in the same transaction.
                        let g = Txn::new().and_then([
                            TxnOp::get(format!("{prefix}/keys/{id}"), None),
                            TxnOp::get(format!("{prefix}/secrets/{id}"), None),
                        ]);
                        match client.txn(g).await {
                            Ok(r) => {
                                let ops = r.op_responses();
                                match (first_value(&ops, 0), first_value(&ops, 1)) {
                                    (Some(k), Some(s)) => {
                                        match (decode_keys(&k), decode_record(&s)) {
                                            (Ok(keys), Ok(secrets)) => {
                                                Some(Change::Peer(Box::new(Entry {
                                                    keys,
                                                    secrets,
                                                    meta: serde_json::from_slice(kv.value())
                                                        .unwrap_or_default(),
                                                })))
                                            }
                                            _ => None,
                                        }
                                    }
                                    _ => None,
                                }
                            }
                            Err(e) => {
                                debug!("etcd watch: reading a new peer: {e}");
                                None
                            }
                        }
                    }
                    _ => None,
                };
                if let Some(c) = change
                    && tx.send(c).is_err()
                {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keeps the node and its sessions registered under a lease: grants one, puts the node and
/// every live session under it, keeps it alive, and after a lapse (a lost quorum, a
/// partition) grants a new one and registers everything again.
async fn keep_registered(
    mut client: Client,
    prefix: String,
    registry: Arc<Registry>,
    healthy: Arc<AtomicBool>,
) {
    let node_key = format!("{prefix}/nodes/{}", registry.node.node);
    let sessions_prefix = format!("{prefix}/sessions/{}/", registry.node.node);
    loop {
        let lease = match tokio::time::timeout(REQUEST_TIMEOUT, client.lease_grant(LEASE_TTL, None))
            .await
        {
            Ok(Ok(l)) => l.id(),
            other => {
                healthy.store(false, Ordering::Relaxed);
                debug!("etcd lease: {other:?}");
                tokio::time::sleep(KEEP_ALIVE_EVERY).await;
                continue;
            }
        };
        let (mut keeper, mut answers) = match client.lease_keep_alive(lease).await {
            Ok(k) => k,
            Err(e) => {
                debug!("etcd keep-alive: {e}");
                tokio::time::sleep(KEEP_ALIVE_EVERY).await;
                continue;
            }
        };
        let opts = || Some(PutOptions::new().with_lease(lease));
        let node_json = serde_json::to_vec(&registry.node).unwrap_or_default();
        if client
            .put(node_key.clone(), node_json, opts())
            .await
            .is_err()
        {
            continue;
        }
        // Sessions as registered now; then on every change and every tick.
        let mut registered: HashMap<u64, ()> = HashMap::new();
        loop {
            let live: Vec<(u64, SessionInfo)> = registry
                .sessions
                .lock()
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            let mut failed = false;
            for (id, s) in &live {
                if !registered.contains_key(id) {
                    let json = serde_json::to_vec(s).unwrap_or_default();
                    if client
                        .put(format!("{sessions_prefix}{id}"), json, opts())
                        .await
                        .is_err()
                    {
                        failed = true;
                        break;
                    }
                    registered.insert(*id, ());
                }
            }
            let gone: Vec<u64> = registered
                .keys()
                .filter(|id| !live.iter().any(|(l, _)| l == *id))
                .copied()
                .collect();
            for id in gone {
                let _ = client.delete(format!("{sessions_prefix}{id}"), None).await;
                registered.remove(&id);
            }
            if failed {
                break;
            }
            tokio::select! {
                () = registry.changed.notified() => continue,
                () = tokio::time::sleep(KEEP_ALIVE_EVERY) => {}
            }
            let alive = tokio::time::timeout(REQUEST_TIMEOUT, async {
                keeper.keep_alive().await?;
                answers.message().await
            })
            .await;
            match alive {
                Ok(Ok(Some(a))) if a.ttl() > 0 => healthy.store(true, Ordering::Relaxed),
                other => {
                    healthy.store(false, Ordering::Relaxed);
                    warn!("etcd lease lapsed ({other:?}); registering again");
                    break;
                }
            }
        }
    }
}
