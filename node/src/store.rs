//! The ratchet store: per peer, its keys, how it was provisioned, and the record of its
//! pre-shared secrets (the confirmed generation and at most one pending one,
//! `dktp::generation`), behind one interface ([`Backend`]) with two implementations: an
//! embedded file ([`embedded`], redb, the default: nothing to install or start) and, for
//! clusters of concentrators, etcd ([`etcd`], feature `etcd`).
//!
//! Every change of a record is a compare-and-swap on the record the caller read
//! ([`Store::save_if`]): two sessions of one pair (on one node or on two) that both try to
//! advance the secrets from the same generation cannot both succeed. What the swap compares
//! is how far the pair's secret chain has gone ([`still_current`]): a session still closing
//! that confirms or discards its pending generation does not advance it, so a new session
//! that read the record just before that stores its own. A save returns only
//! once the record is durable (an fsync; a quorum's), and the node sends the packet that
//! commits to it only after that, so what the peer can have seen is always stored.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use dktp::generation::Generations;
use dktp::kex::PeerKeys;
use dktp::peer_key::{KEYID_SIZE, LocalPeerKey, RemotePeerKey};
use zeroize::Zeroizing;

pub mod embedded;
#[cfg(feature = "etcd")]
pub mod etcd;

/// Whether a session that read `expected` may replace the stored `current` with `record`,
/// which it derived: the record is unchanged, or nobody advanced the pair past what the
/// session read and its record goes further than the stored one. A newer generation
/// (another session's handshake or ratchet) is an advance; the confirmation or the
/// discarding of the pending generation the session read (by the session before it, still
/// closing) is not.
pub fn still_current(current: &Generations, expected: &Generations, record: &Generations) -> bool {
    current == expected
        || (current.latest().number() <= expected.latest().number()
            && record.latest().number() > current.latest().number())
}

/// A local key id: how the store names a peer.
pub type KeyId = [u8; KEYID_SIZE];

/// A peer as the store holds it.
pub struct Entry {
    /// The linked keys (their own pre-shared secrets are those of generation 0).
    pub keys: PeerKeys,
    /// The record of the secrets.
    pub secrets: Generations,
    /// How it was provisioned.
    pub meta: PeerMeta,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys' secrets or the record's.
        f.debug_struct("Entry")
            .field("keyid", &hex::encode(self.keys.local.keyid()))
            .field("generation", &self.secrets.latest().number())
            .field("meta", &self.meta)
            .finish()
    }
}

/// How a peer was provisioned: a server's `[[peer]]` table (served while the file lists
/// it), or `dktp peer add` (served by every server on the store until `dktp peer remove`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerMeta {
    /// A name for the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where its plaintext goes (`HOST:PORT`, `unix:PATH`, `echo`), else the server's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<String>,
    /// Added with `dktp peer add`.
    #[serde(default)]
    pub added: bool,
}

impl PeerMeta {
    /// What to store for a peer imported with this meta over `current` (`None`: keep it):
    /// `dktp peer add` replaces anything; a config file's import leaves an added peer's
    /// record alone.
    fn merged_onto(&self, current: Option<&PeerMeta>) -> Option<PeerMeta> {
        match current {
            Some(c) if c == self => None,
            Some(c) if c.added && !self.added => None,
            _ => Some(self.clone()),
        }
    }
}

/// What a ratchet store offers. Every method may block (on a disk's fsync or a quorum's
/// answer): call them from a blocking thread in async code.
pub trait Backend: Send + Sync {
    /// Where it is, for messages.
    fn location(&self) -> String;
    /// Records each peer the store does not know yet (its record: generation 0, the keys'
    /// own secrets) and returns every peer's record; a known peer keeps its record, and
    /// keys that differ from the stored ones in anything but the secrets are refused (key
    /// files regenerated under an old key id).
    fn import(&self, peers: &[(PeerKeys, PeerMeta)]) -> Result<Vec<Generations>>;
    /// Stores `record` only if the stored record is [`still_current`] against `expected`,
    /// the record the caller read (any record when `None`), and only while the peer
    /// exists; returns whether it stored. Atomic against every other save of the peer.
    fn save_if(
        &self,
        keyid: &KeyId,
        expected: Option<&Generations>,
        record: &Generations,
    ) -> Result<bool>;
    /// The peer with local key id `keyid`.
    fn get(&self, keyid: &KeyId) -> Result<Option<Entry>>;
    /// Every peer, in key id order.
    fn entries(&self) -> Result<Vec<Entry>>;
    /// Forgets a peer (keys, record, provisioning); returns whether it was there.
    fn remove(&self, keyid: &KeyId) -> Result<bool>;

    // A cluster's store (etcd) also does the following; a file does not need to.

    /// Whether the store can commit now (a file always can; etcd needs a quorum).
    fn healthy(&self) -> bool {
        true
    }
    /// Reports changes made by other nodes (and `dktp peer`) to `tx`; returns whether it
    /// will (a file has no other writers while a server holds it).
    fn watch(&self, _tx: tokio::sync::mpsc::UnboundedSender<Change>) -> bool {
        false
    }
    /// Registers this node (and from now on its sessions) for `dktp status --cluster`.
    fn join(&self, _node: NodeInfo) {}
    /// Registers a live session of this node; unregistered when the guard drops.
    fn register(&self, _session: SessionInfo) -> Option<Registration> {
        None
    }
    /// Every node of the cluster and its sessions.
    fn cluster_status(&self) -> Result<Vec<(NodeInfo, Vec<SessionInfo>)>> {
        bail!(
            "{} is not a cluster's store (etcd://...): see `dktp status` for one server",
            self.location()
        )
    }
}

/// A change another node (or `dktp peer`) made to a cluster's store.
#[derive(Debug)]
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub enum Change {
    /// A peer was added (or its provisioning changed).
    Peer(Box<Entry>),
    /// A peer was removed: revoked.
    Removed(KeyId),
    /// A peer's record advanced.
    Secrets(KeyId, Generations),
}

/// A node, as it registers itself in a cluster's store.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    /// Its name (`--node`).
    pub node: String,
    /// Where it listens.
    pub listen: Vec<String>,
    /// When it started (Unix seconds).
    pub since: u64,
}

/// A live session, as its node registers it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SessionInfo {
    /// The peer's local key id (hex).
    pub keyid: String,
    /// The peer's name.
    #[serde(default)]
    pub name: String,
    /// The peer's address.
    pub address: String,
    /// When the session was established (Unix seconds).
    pub since: u64,
}

/// A registered session; unregistered on drop.
pub struct Registration(#[allow(dead_code)] Box<dyn Send + Sync>);

#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
impl Registration {
    /// Wraps what unregisters on drop.
    pub fn new(guard: impl Send + Sync + 'static) -> Registration {
        Registration(Box::new(guard))
    }
}

/// An open store: cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.0.location())
    }
}

impl Store {
    /// Opens the embedded store at `path`, creating it (and its parent folder, mode 0700)
    /// if there is no file there.
    pub fn open(path: &Path) -> Result<Store> {
        Ok(Store(Arc::new(embedded::Embedded::open(path)?)))
    }

    /// Opens an existing embedded store (refuses to create one).
    pub fn open_existing(path: &Path) -> Result<Store> {
        if !path.exists() {
            bail!("store {}: no such file", path.display());
        }
        Store::open(path)
    }

    /// Opens what `spec` names: `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`, or a file.
    pub fn at(spec: &str) -> Result<Store> {
        if spec.starts_with("etcd://") {
            #[cfg(feature = "etcd")]
            return Ok(Store(Arc::new(etcd::Etcd::connect(spec)?)));
            #[cfg(not(feature = "etcd"))]
            bail!(
                "{spec}: this dktp was built without the etcd store (cargo build --features \
                 dktp-node/etcd; it needs protoc)"
            );
        }
        Store::open(Path::new(spec))
    }

    /// Where it is.
    pub fn location(&self) -> String {
        self.0.location()
    }

    /// [`Backend::import`] of one pair from a config file or a client's key files.
    pub fn import(&self, keys: &PeerKeys) -> Result<Generations> {
        let mut records = self.import_all(std::slice::from_ref(keys))?;
        records
            .pop()
            .ok_or_else(|| anyhow!("store {}: import", self.location()))
    }

    /// [`Backend::import`] of many pairs in one transaction (one fsync), with no
    /// provisioning record of their own.
    pub fn import_all(&self, pairs: &[PeerKeys]) -> Result<Vec<Generations>> {
        let peers: Vec<(PeerKeys, PeerMeta)> = pairs
            .iter()
            .map(|k| (k.clone(), PeerMeta::default()))
            .collect();
        self.0.import(&peers)
    }

    /// [`Backend::import`].
    pub fn import_peers(&self, peers: &[(PeerKeys, PeerMeta)]) -> Result<Vec<Generations>> {
        self.0.import(peers)
    }

    /// Stores `record` as the peer's record, durably, before it returns.
    #[cfg(test)]
    pub fn save(&self, keyid: &KeyId, record: &Generations) -> Result<()> {
        self.save_if(keyid, None, record).map(drop)
    }

    /// [`Backend::save_if`].
    pub fn save_if(
        &self,
        keyid: &KeyId,
        expected: Option<&Generations>,
        record: &Generations,
    ) -> Result<bool> {
        self.0.save_if(keyid, expected, record)
    }

    /// [`Backend::get`].
    pub fn get(&self, keyid: &KeyId) -> Result<Option<Entry>> {
        self.0.get(keyid)
    }

    /// [`Backend::entries`].
    pub fn entries(&self) -> Result<Vec<Entry>> {
        self.0.entries()
    }

    /// [`Backend::remove`].
    pub fn remove(&self, keyid: &KeyId) -> Result<bool> {
        self.0.remove(keyid)
    }

    /// The store's cluster side ([`Backend::healthy`], [`Backend::watch`],
    /// [`Backend::join`], [`Backend::register`], [`Backend::cluster_status`]).
    pub fn backend(&self) -> &dyn Backend {
        &*self.0
    }
}

pub(crate) fn same_keys(a: &PeerKeys, b: &PeerKeys) -> bool {
    a.local.config() == b.local.config()
        && a.local.keyid() == b.local.keyid()
        && a.local.peerid() == b.local.peerid()
        && a.local.expiration() == b.local.expiration()
        && a.local.verification_key() == b.local.verification_key()
        && a.remote.keyid() == b.remote.keyid()
        && a.remote.expiration() == b.remote.expiration()
        && a.remote.verification_key() == b.remote.verification_key()
}

pub(crate) fn encode_keys(keys: &PeerKeys) -> Zeroizing<Vec<u8>> {
    let local = keys.local.to_bytes();
    let remote = keys.remote.to_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(4 + local.len() + remote.len()));
    out.extend_from_slice(&(local.len() as u32).to_le_bytes());
    out.extend_from_slice(&local);
    out.extend_from_slice(&remote);
    out
}

pub(crate) fn decode_keys(bytes: &[u8]) -> Result<PeerKeys> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| anyhow!("truncated"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > rest.len() {
        bail!("truncated");
    }
    let (local, remote) = rest.split_at(len);
    let local = LocalPeerKey::from_bytes(local).map_err(|e| anyhow!("local key: {e}"))?;
    let remote = RemotePeerKey::from_bytes(remote).map_err(|e| anyhow!("remote key: {e}"))?;
    Ok(PeerKeys { local, remote })
}

/// A record's bytes ([`Generations::to_bytes`]: the engine's form, shared with the browser
/// client).
pub(crate) fn encode_record(record: &Generations) -> Zeroizing<Vec<u8>> {
    record.to_bytes()
}

pub(crate) fn decode_record(bytes: &[u8]) -> Result<Generations> {
    Generations::from_bytes(bytes).ok_or_else(|| {
        anyhow!(
            "not a record of the secrets (version 1, {} bytes)",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dktp::config::Config;
    use dktp::generation::Generation;

    /// The client's side of a fresh linked pair (`n` keeps key ids apart).
    fn pair(n: u32) -> PeerKeys {
        crate::demo::pair(Config::DEFAULT, n).expect("keygen").1
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("dktp-store-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("store.redb")
    }

    #[test]
    fn a_record_survives_reopening_and_imports_do_not_reset_it() {
        let path = temp("reopen");
        let client = pair(1);
        let store = Store::open(&path).expect("open");
        let first = store.import(&client).expect("import");
        assert_eq!(first, Generations::of_keys(&client));
        let next = Generations {
            confirmed: Generation::new(3, [7; 32], [8; 32]),
            pending: Some(Generation::new(4, [9; 32], [8; 32])),
        };
        store.save(client.local.keyid(), &next).expect("save");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.import(&client).expect("import again"), next);
        let entries = store.entries().expect("entries");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].keys, client);
        assert_eq!(entries[0].secrets, next);
    }

    /// The swap compares how far the chain has gone: a session still closing that confirms
    /// its pending generation does not stop the next session that read the record before
    /// (the race the 1000-client test met); a rival that derived from the same record does.
    #[test]
    fn only_a_newer_generation_makes_a_save_stale() {
        let path = temp("swap");
        let client = pair(4);
        let id = *client.local.keyid();
        let store = Store::open(&path).expect("open");
        let r0 = store.import(&client).expect("import");
        let g = |n: u64, b: u8| Generation::new(n, [b; 32], [b; 32]);
        let r1 = Generations {
            confirmed: r0.confirmed.clone(),
            pending: Some(g(1, 1)),
        };
        assert!(store.save_if(&id, Some(&r0), &r1).expect("pending"));
        // The next session reads r1 and derives generation 2 from generation 1.
        let r2 = Generations {
            confirmed: g(1, 1),
            pending: Some(g(2, 2)),
        };
        // Meanwhile the first session confirms generation 1.
        assert!(
            store
                .save_if(&id, Some(&r1), &Generations::new(g(1, 1)))
                .expect("confirm")
        );
        // A record that does not go past the changed one (a generation 1 derived again
        // from generation 0): stale.
        let again = Generations {
            confirmed: r0.confirmed.clone(),
            pending: Some(g(1, 7)),
        };
        assert!(!store.save_if(&id, Some(&r1), &again).expect("not further"));
        assert!(store.save_if(&id, Some(&r1), &r2).expect("next session"));
        // A rival that read r1 too and derived its own generation 2: stale.
        let rival = Generations {
            confirmed: g(1, 1),
            pending: Some(g(2, 9)),
        };
        assert!(!store.save_if(&id, Some(&r1), &rival).expect("rival"));
        // A record that does not go past a changed one: stale.
        assert!(
            !store
                .save_if(&id, Some(&r1), &Generations::new(g(2, 2)))
                .expect("no further")
        );
        // And the first session's late confirmation: stale too, nothing changes.
        assert!(
            !store
                .save_if(&id, Some(&r1), &Generations::new(g(1, 1)))
                .expect("late")
        );
        assert_eq!(store.get(&id).expect("get").expect("entry").secrets, r2);
    }

    #[test]
    fn other_keys_under_a_known_key_id_are_refused() {
        let path = temp("other");
        let client = pair(1);
        // Made again under the same key ids: other keys.
        let other = pair(1);
        let store = Store::open(&path).expect("open");
        store.import(&client).expect("import");
        let e = store
            .import(&other)
            .map(drop)
            .expect_err("other keys refused");
        assert!(e.to_string().contains("other keys"), "{e}");
    }

    #[test]
    fn a_foreign_file_is_refused_and_left_alone() {
        let path = temp("foreign");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(&path, b"not a database at all, just some bytes").expect("write");
        let e = Store::open(&path).map(drop).expect_err("refused");
        assert!(e.to_string().contains("refusing"), "{e}");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"not a database at all, just some bytes"
        );
    }

    #[test]
    fn provisioning_records_merge_and_go_with_the_peer() {
        let path = temp("meta");
        let client = pair(2);
        let store = Store::open(&path).expect("open");
        let from_file = PeerMeta {
            name: Some("from the file".into()),
            ..PeerMeta::default()
        };
        store
            .import_peers(&[(client.clone(), from_file.clone())])
            .expect("import");
        let keyid = *client.local.keyid();
        assert_eq!(
            store.get(&keyid).expect("get").expect("peer").meta,
            from_file
        );
        let added = PeerMeta {
            name: Some("t1".into()),
            forward: Some("127.0.0.1:9".into()),
            added: true,
        };
        store
            .import_peers(&[(client.clone(), added.clone())])
            .expect("add");
        // A config import does not undo `dktp peer add`.
        store
            .import_peers(&[(client.clone(), from_file)])
            .expect("import again");
        assert_eq!(store.get(&keyid).expect("get").expect("peer").meta, added);
        assert!(store.remove(&keyid).expect("remove"));
        assert!(store.get(&keyid).expect("get").is_none());
        assert!(!store.remove(&keyid).expect("remove again"));
        let e = store
            .save_if(&keyid, None, &Generations::of_keys(&client))
            .expect_err("a removed peer's record cannot come back");
        assert!(e.to_string().contains("no peer"), "{e}");
    }

    #[test]
    fn a_redb_database_of_another_program_is_refused() {
        let path = temp("otherdb");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        {
            let db = redb::Database::create(&path).expect("create");
            let tx = db.begin_write().expect("tx");
            {
                let t: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("theirs");
                tx.open_table(t)
                    .expect("table")
                    .insert("x", 1)
                    .expect("insert");
            }
            tx.commit().expect("commit");
        }
        let e = Store::open(&path).map(drop).expect_err("refused");
        assert!(e.to_string().contains("not a dktp store"), "{e}");
    }

    #[test]
    fn damaged_records_are_refused_not_reset() {
        for bad in [&[][..], &[2u8][..], &[1u8; 10][..], &[1u8; 74][..]] {
            assert!(decode_record(bad).is_err(), "{bad:?}");
        }
        let record = Generations::new(Generation::new(5, [1; 32], [2; 32]));
        assert_eq!(decode_record(&encode_record(&record)).expect("ok"), record);
    }
}
