//! The ratchet store: per peer, its keys and the record of its pre-shared secrets (the
//! confirmed generation and at most one pending one, `dktp::generation`), in one embedded
//! transactional file.
//!
//! Built on redb: copy-on-write B-trees with a checksummed, double-buffered commit slot, and
//! an fsync on every commit (`Durability::Immediate`, redb's default). A commit is atomic: a
//! process killed at any instant leaves the file as of the last commit that returned, never
//! half of one. A save returns only once the record is on disk, and the node sends the
//! packet that commits to it only after that, so what the peer can have seen is always in
//! the file.
//!
//! A file that is not a redb database, a redb database that is not a dktp store, or a store
//! of a newer format is refused with an error naming the file; nothing here ever resets or
//! rewrites a file it did not create.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use dktp::generation::{Generation, Generations};
use dktp::kex::PeerKeys;
use dktp::peer_key::{KEYID_SIZE, LocalPeerKey, PSS_SIZE, RemotePeerKey};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use zeroize::Zeroizing;

/// What the meta table holds under [`FORMAT_KEY`]: the store's format and version.
const FORMAT: &[u8] = b"dktp-store/1";
const FORMAT_KEY: &str = "format";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Local key id → `len u32 LE || local key (.dskey bytes) || remote key (.dpkey bytes)`.
const KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("keys");
/// Local key id → the record of the secrets ([`encode_record`]).
const SECRETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("secrets");

/// A peer as the store holds it.
pub struct Entry {
    /// The linked keys (their own pre-shared secrets are those of generation 0).
    pub keys: PeerKeys,
    /// The record of the secrets.
    pub secrets: Generations,
}

/// An open store. Cheap to clone; one process at a time may hold a store file (redb locks
/// it).
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

impl Store {
    /// Opens the store at `path`, creating it (and its parent folder, mode 0700) if there is
    /// no file there.
    pub fn open(path: &Path) -> Result<Store> {
        let fresh = match std::fs::metadata(path) {
            Ok(m) => m.len() == 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(e).with_context(|| format!("store {}", path.display())),
        };
        if fresh && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let db = Database::create(path).map_err(|e| refused(path, &e))?;
        restrict_mode(path)?;
        let store = Store {
            db: Arc::new(db),
            path: Arc::new(path.to_path_buf()),
        };
        if fresh {
            store.init()?;
        } else {
            store.check_format()?;
        }
        Ok(store)
    }

    /// Opens an existing store (refuses to create one).
    pub fn open_existing(path: &Path) -> Result<Store> {
        if !path.exists() {
            bail!("store {}: no such file", path.display());
        }
        Store::open(path)
    }

    fn init(&self) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(FORMAT_KEY, FORMAT).map_err(|e| self.err(e))?;
            tx.open_table(KEYS).map_err(|e| self.err(e))?;
            tx.open_table(SECRETS).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn check_format(&self) -> Result<()> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = tx.open_table(META).map_err(|_| self.not_a_store())?;
        let format = meta
            .get(FORMAT_KEY)
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.not_a_store())?;
        let format = format.value();
        if format != FORMAT {
            bail!(
                "store {}: format {:?}, this dktp reads {:?}; refusing to touch it",
                self.path.display(),
                String::from_utf8_lossy(format),
                String::from_utf8_lossy(FORMAT)
            );
        }
        Ok(())
    }

    /// Records `keys` as a peer if the store does not know its local key id yet (with
    /// generation 0: the keys' own secrets) and returns the peer's record. A peer the store
    /// already knows keeps its record; keys that differ from the stored ones in anything but
    /// the secrets are refused (a key file regenerated under an old key id).
    pub fn import(&self, keys: &PeerKeys) -> Result<Generations> {
        let mut records = self.import_all(std::slice::from_ref(keys))?;
        records
            .pop()
            .ok_or_else(|| anyhow!("store {}: import", self.path.display()))
    }

    /// [`import`](Self::import) for many pairs in one transaction (one fsync).
    pub fn import_all(&self, pairs: &[PeerKeys]) -> Result<Vec<Generations>> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut records = Vec::with_capacity(pairs.len());
        {
            let mut table = tx.open_table(KEYS).map_err(|e| self.err(e))?;
            let mut secrets = tx.open_table(SECRETS).map_err(|e| self.err(e))?;
            for keys in pairs {
                let keyid = *keys.local.keyid();
                let stored = table
                    .get(&keyid[..])
                    .map_err(|e| self.err(e))?
                    .map(|v| decode_keys(v.value()))
                    .transpose()
                    .map_err(|e| self.corrupt(&keyid, e))?;
                match stored {
                    Some(stored) => {
                        if !same_keys(&stored, keys) {
                            bail!(
                                "store {}: it holds other keys for key id {}; the key files \
                                 were regenerated or belong to another pair (use a new key \
                                 id, or another store)",
                                self.path.display(),
                                hex::encode(keyid)
                            );
                        }
                        let record = secrets
                            .get(&keyid[..])
                            .map_err(|e| self.err(e))?
                            .ok_or_else(|| self.corrupt(&keyid, anyhow!("keys without secrets")))?;
                        records.push(
                            decode_record(record.value()).map_err(|e| self.corrupt(&keyid, e))?,
                        );
                    }
                    None => {
                        let record = Generations::of_keys(keys);
                        table
                            .insert(&keyid[..], &encode_keys(keys)[..])
                            .map_err(|e| self.err(e))?;
                        secrets
                            .insert(&keyid[..], &encode_record(&record)[..])
                            .map_err(|e| self.err(e))?;
                        records.push(record);
                    }
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(records)
    }

    /// Stores `record` as the peer's record of its secrets, durably (fsync) before it
    /// returns. Blocking: call it from a blocking thread in async code.
    #[cfg(test)]
    pub fn save(&self, keyid: &[u8; KEYID_SIZE], record: &Generations) -> Result<()> {
        self.save_if(keyid, None, record).map(drop)
    }

    /// Stores `record` only if the stored record is `expected` (any record when `None`);
    /// returns whether it stored. Two sessions of one pair that both try to advance the
    /// secrets from the same generation cannot both succeed: the second is refused and its
    /// connection dropped before it commits to anything.
    pub fn save_if(
        &self,
        keyid: &[u8; KEYID_SIZE],
        expected: Option<&Generations>,
        record: &Generations,
    ) -> Result<bool> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
            if keys.get(&keyid[..]).map_err(|e| self.err(e))?.is_none() {
                bail!(
                    "store {}: no peer with key id {}",
                    self.path.display(),
                    hex::encode(keyid)
                );
            }
            let mut secrets = tx.open_table(SECRETS).map_err(|e| self.err(e))?;
            if let Some(expected) = expected {
                let current = secrets
                    .get(&keyid[..])
                    .map_err(|e| self.err(e))?
                    .map(|v| decode_record(v.value()))
                    .transpose()
                    .map_err(|e| self.corrupt(keyid, e))?;
                if current.as_ref() != Some(expected) {
                    return Ok(false);
                }
            }
            secrets
                .insert(&keyid[..], &encode_record(record)[..])
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// The peer with local key id `keyid`.
    pub fn get(&self, keyid: &[u8; KEYID_SIZE]) -> Result<Option<Entry>> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
        let secrets = tx.open_table(SECRETS).map_err(|e| self.err(e))?;
        let Some(k) = keys.get(&keyid[..]).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let keys = decode_keys(k.value()).map_err(|e| self.corrupt(keyid, e))?;
        let s = secrets
            .get(&keyid[..])
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.corrupt(keyid, anyhow!("keys without secrets")))?;
        let secrets = decode_record(s.value()).map_err(|e| self.corrupt(keyid, e))?;
        Ok(Some(Entry { keys, secrets }))
    }

    /// Every peer, in key id order.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
        let mut ids = Vec::new();
        for item in keys.iter().map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            let id: [u8; KEYID_SIZE] = k.value().try_into().map_err(|_| {
                anyhow!("store {}: a key id of the wrong size", self.path.display())
            })?;
            ids.push(id);
        }
        drop(keys);
        drop(tx);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.get(&id)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn err(&self, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("store {}: {e}", self.path.display())
    }

    fn not_a_store(&self) -> anyhow::Error {
        anyhow!(
            "{} is a redb database but not a dktp store; refusing to touch it",
            self.path.display()
        )
    }

    fn corrupt(&self, keyid: &[u8; KEYID_SIZE], e: anyhow::Error) -> anyhow::Error {
        anyhow!(
            "store {}: the entry for key id {} is damaged ({e}); refusing to use it",
            self.path.display(),
            hex::encode(keyid)
        )
    }
}

fn refused(path: &Path, e: &redb::DatabaseError) -> anyhow::Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => anyhow!(
            "store {}: another process has it open (one dktp process per store)",
            path.display()
        ),
        other => anyhow!(
            "store {}: not a dktp store, or damaged ({other}); refusing to touch it",
            path.display()
        ),
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

fn restrict_mode(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", path.display()))?;
    }
    Ok(())
}

fn same_keys(a: &PeerKeys, b: &PeerKeys) -> bool {
    a.local.config() == b.local.config()
        && a.local.keyid() == b.local.keyid()
        && a.local.peerid() == b.local.peerid()
        && a.local.expiration() == b.local.expiration()
        && a.local.verification_key() == b.local.verification_key()
        && a.remote.keyid() == b.remote.keyid()
        && a.remote.expiration() == b.remote.expiration()
        && a.remote.verification_key() == b.remote.verification_key()
}

fn encode_keys(keys: &PeerKeys) -> Zeroizing<Vec<u8>> {
    let local = keys.local.to_bytes();
    let remote = keys.remote.to_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(4 + local.len() + remote.len()));
    out.extend_from_slice(&(local.len() as u32).to_le_bytes());
    out.extend_from_slice(&local);
    out.extend_from_slice(&remote);
    out
}

fn decode_keys(bytes: &[u8]) -> Result<PeerKeys> {
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

const GENERATION_LEN: usize = 8 + 2 * PSS_SIZE;
const RECORD_VERSION: u8 = 1;

/// `version(1) || confirmed || has_pending(1) || [pending]`, a generation being
/// `number u64 LE || local pss || remote pss`.
fn encode_record(record: &Generations) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(2 + 2 * GENERATION_LEN));
    out.push(RECORD_VERSION);
    put_generation(&mut out, &record.confirmed);
    match &record.pending {
        Some(p) => {
            out.push(1);
            put_generation(&mut out, p);
        }
        None => out.push(0),
    }
    out
}

fn put_generation(out: &mut Vec<u8>, g: &Generation) {
    out.extend_from_slice(&g.number().to_le_bytes());
    out.extend_from_slice(g.local());
    out.extend_from_slice(g.remote());
}

fn decode_record(bytes: &[u8]) -> Result<Generations> {
    let (&version, rest) = bytes.split_first().ok_or_else(|| anyhow!("empty record"))?;
    if version != RECORD_VERSION {
        bail!("record version {version}");
    }
    let (confirmed, rest) = take_generation(rest)?;
    let pending = match rest.split_first() {
        Some((0, [])) => None,
        Some((1, rest)) => {
            let (p, rest) = take_generation(rest)?;
            if !rest.is_empty() {
                bail!("trailing bytes");
            }
            Some(p)
        }
        _ => bail!("bad pending flag"),
    };
    Ok(Generations { confirmed, pending })
}

fn take_generation(bytes: &[u8]) -> Result<(Generation, &[u8])> {
    if bytes.len() < GENERATION_LEN {
        bail!("truncated record");
    }
    let (g, rest) = bytes.split_at(GENERATION_LEN);
    let (number, pss) = g.split_at(8);
    let (local, remote) = pss.split_at(PSS_SIZE);
    let number = u64::from_le_bytes(number.try_into().map_err(|_| anyhow!("truncated"))?);
    let mut l = Zeroizing::new([0u8; PSS_SIZE]);
    let mut r = Zeroizing::new([0u8; PSS_SIZE]);
    l.copy_from_slice(local);
    r.copy_from_slice(remote);
    Ok((Generation::new(number, *l, *r), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dktp::config::Config;

    /// The client's side of a fresh linked pair (`n` keeps key ids apart).
    fn pair(n: u32) -> PeerKeys {
        crate::demo::pair(Config::DEFAULT, n).expect("keygen").1
    }

    fn temp(name: &str) -> PathBuf {
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
    fn a_redb_database_of_another_program_is_refused() {
        let path = temp("otherdb");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        {
            let db = Database::create(&path).expect("create");
            let tx = db.begin_write().expect("tx");
            {
                let t: TableDefinition<&str, u64> = TableDefinition::new("theirs");
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
