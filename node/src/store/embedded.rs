//! The embedded store: one redb file (copy-on-write B-trees with a checksummed,
//! double-buffered commit slot, and an fsync on every commit: `Durability::Immediate`,
//! redb's default). A commit is atomic: a process killed at any instant leaves the file as
//! of the last commit that returned, never half of one.
//!
//! A file that is not a redb database, a redb database that is not a dktp store, or a store
//! of a newer format is refused with an error naming the file; nothing here ever resets or
//! rewrites a file it did not create.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use dktp::generation::Generations;
use dktp::kex::PeerKeys;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    Backend, Entry, KeyId, PeerMeta, decode_keys, decode_record, encode_keys, encode_record,
    same_keys,
};

/// What the meta table holds under [`FORMAT_KEY`]: the store's format and version.
pub(super) const FORMAT: &[u8] = b"dktp-store/1";
const FORMAT_KEY: &str = "format";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Local key id → `len u32 LE || local key (.dskey bytes) || remote key (.dpkey bytes)`.
const KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("keys");
/// Local key id → the record of the secrets ([`encode_record`]).
const SECRETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("secrets");
/// Local key id → how the peer was provisioned ([`PeerMeta`], JSON).
const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peers");

/// A store file. One process at a time may hold it (redb locks it).
pub struct Embedded {
    db: Database,
    path: PathBuf,
}

impl Embedded {
    /// Opens the store at `path`, creating it (and its parent folder, mode 0700) if there is
    /// no file there.
    pub fn open(path: &Path) -> Result<Embedded> {
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
        let store = Embedded {
            db,
            path: path.to_path_buf(),
        };
        if fresh {
            store.init()?;
        } else {
            store.check_format()?;
        }
        Ok(store)
    }

    fn init(&self) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(FORMAT_KEY, FORMAT).map_err(|e| self.err(e))?;
            tx.open_table(KEYS).map_err(|e| self.err(e))?;
            tx.open_table(SECRETS).map_err(|e| self.err(e))?;
            tx.open_table(PEERS).map_err(|e| self.err(e))?;
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

    fn err(&self, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("store {}: {e}", self.path.display())
    }

    fn not_a_store(&self) -> anyhow::Error {
        anyhow!(
            "{} is a redb database but not a dktp store; refusing to touch it",
            self.path.display()
        )
    }

    fn corrupt(&self, keyid: &KeyId, e: anyhow::Error) -> anyhow::Error {
        anyhow!(
            "store {}: the entry for key id {} is damaged ({e}); refusing to use it",
            self.path.display(),
            hex::encode(keyid)
        )
    }

    fn read_meta(&self, tx: &redb::ReadTransaction, keyid: &KeyId) -> Result<PeerMeta> {
        // Stores made before the table existed have no provisioning records.
        let Ok(peers) = tx.open_table(PEERS) else {
            return Ok(PeerMeta::default());
        };
        match peers.get(&keyid[..]).map_err(|e| self.err(e))? {
            Some(v) => serde_json::from_slice(v.value()).map_err(|e| self.corrupt(keyid, e.into())),
            None => Ok(PeerMeta::default()),
        }
    }
}

impl Backend for Embedded {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn import(&self, peers: &[(PeerKeys, PeerMeta)]) -> Result<Vec<Generations>> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut records = Vec::with_capacity(peers.len());
        {
            let mut table = tx.open_table(KEYS).map_err(|e| self.err(e))?;
            let mut secrets = tx.open_table(SECRETS).map_err(|e| self.err(e))?;
            let mut metas = tx.open_table(PEERS).map_err(|e| self.err(e))?;
            for (keys, meta) in peers {
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
                let current: Option<PeerMeta> = metas
                    .get(&keyid[..])
                    .map_err(|e| self.err(e))?
                    .and_then(|v| serde_json::from_slice(v.value()).ok());
                if let Some(m) = meta.merged_onto(current.as_ref()) {
                    metas
                        .insert(&keyid[..], &serde_json::to_vec(&m)?[..])
                        .map_err(|e| self.err(e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(records)
    }

    fn save_if(
        &self,
        keyid: &KeyId,
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
                if !current.is_some_and(|c| super::still_current(&c, expected, record)) {
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

    fn get(&self, keyid: &KeyId) -> Result<Option<Entry>> {
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
        let meta = self.read_meta(&tx, keyid)?;
        Ok(Some(Entry {
            keys,
            secrets,
            meta,
        }))
    }

    fn entries(&self) -> Result<Vec<Entry>> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
        let mut ids = Vec::new();
        for item in keys.iter().map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            let id: KeyId = k.value().try_into().map_err(|_| {
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

    fn remove(&self, keyid: &KeyId) -> Result<bool> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let existed = {
            let mut keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
            let mut secrets = tx.open_table(SECRETS).map_err(|e| self.err(e))?;
            let mut metas = tx.open_table(PEERS).map_err(|e| self.err(e))?;
            let existed = keys.remove(&keyid[..]).map_err(|e| self.err(e))?.is_some();
            secrets.remove(&keyid[..]).map_err(|e| self.err(e))?;
            metas.remove(&keyid[..]).map_err(|e| self.err(e))?;
            existed
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(existed)
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
