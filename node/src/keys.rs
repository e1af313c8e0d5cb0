//! Key files: `dktp keygen`, `dktp link`, `dktp show`, and loading a linked pair.
//!
//! The files are the reference's byte images: `NAME.dskey` (the local key: signing key and
//! own pre-shared secret; mode 0600) and `NAME.dpkey` (the remote key handed to the peer:
//! verification key and the same pre-shared secret; it is secret too, since it carries the
//! pre-shared secret, and is written 0600 as well: copy it to the peer over a channel you
//! trust). After the first session the store holds the current secrets and the files keep
//! generation 0.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use dktp::config::Config;
use dktp::kex::PeerKeys;
use dktp::peer_key::{self, KEY_LIFETIME, KEYID_SIZE, LocalPeerKey, RemotePeerKey};
use dktp::pq::{Entropy, OsEntropy, SigAlg};

use crate::store::Store;
use crate::util::{now, utc_date};

/// What `dktp keygen` makes.
pub struct Keygen {
    /// Configuration (default: the reference's default).
    pub config: Config,
    /// Key id (default: 16 random bytes).
    pub keyid: Option<[u8; KEYID_SIZE]>,
    /// Days until the keys expire.
    pub days: u64,
    /// Output path without extension.
    pub out: PathBuf,
    /// Overwrite existing files.
    pub force: bool,
}

/// `dktp keygen`: writes `OUT.dskey` and `OUT.dpkey`; returns their paths.
pub fn keygen(k: &Keygen) -> Result<(PathBuf, PathBuf)> {
    let local_path = with_ext(&k.out, "dskey");
    let remote_path = with_ext(&k.out, "dpkey");
    if !k.force {
        for p in [&local_path, &remote_path] {
            if p.exists() {
                bail!("{} exists; pass --force to replace it", p.display());
            }
        }
    }
    let keyid = match k.keyid {
        Some(id) => id,
        None => {
            let mut id = [0u8; KEYID_SIZE];
            OsEntropy
                .fill(&mut id)
                .map_err(|e| anyhow!("random key id: {e}"))?;
            id
        }
    };
    if k.days == 0 || k.days > 100 * 365 {
        bail!("--days must be between 1 and 36500");
    }
    // The engine dates keys `now + 365 days`, as the reference does; shift `now` for
    // another lifetime.
    let when = now()
        .saturating_add(k.days * 86_400)
        .saturating_sub(KEY_LIFETIME);
    let (local, remote) = with_progress(k.config, || {
        peer_key::generate(k.config, keyid, when, &mut OsEntropy)
            .map_err(|e| anyhow!("key generation: {e}"))
    })?;
    write_secret(&local_path, &local.to_bytes(), k.force)?;
    write_secret(&remote_path, &remote.to_bytes(), k.force)?;
    Ok((local_path, remote_path))
}

/// Runs `f`, showing a progress line on a terminal for the slow configurations (SPHINCS+
/// key generation takes seconds; McEliece configurations are shown too, though only their
/// ephemeral keys, made per session, are McEliece keys).
fn with_progress<T>(config: Config, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let slow = matches!(
        config.sig(),
        SigAlg::Sphincs128s | SigAlg::Sphincs192s | SigAlg::Sphincs256s
    ) || config.kem().is_mceliece();
    if !slow || !std::io::stderr().is_terminal() {
        return f();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            let spin = ['|', '/', '-', '\\'];
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                eprint!(
                    "\rgenerating {config} keys {} {:.1} s",
                    spin[i % 4],
                    start.elapsed().as_secs_f64()
                );
                i += 1;
                std::thread::sleep(Duration::from_millis(150));
            }
            eprintln!(
                "\rgenerated {config} keys in {:.1} s   ",
                start.elapsed().as_secs_f64()
            );
        });
        let r = f();
        done.store(true, Ordering::Relaxed);
        r
    })
}

/// `dktp link LOCAL REMOTE`: sets the local key's peer id to the remote key's key id.
pub fn link(local_path: &Path, remote_path: &Path) -> Result<()> {
    let mut local = read_local(local_path)?;
    let remote = read_remote(remote_path)?;
    if local.config() != remote.config() {
        bail!(
            "{} is {} but {} is {}: a pair must share its configuration",
            local_path.display(),
            local.config(),
            remote_path.display(),
            remote.config()
        );
    }
    if local.keyid() == remote.keyid() {
        bail!(
            "{} and {} have the same key id: link your local key to the peer's remote key",
            local_path.display(),
            remote_path.display()
        );
    }
    peer_key::link(&mut local, &remote);
    write_secret(local_path, &local.to_bytes(), true)
}

/// Loads the pair `local` + `remote` and checks that it is linked and unexpired.
pub fn load_pair(local_path: &Path, remote_path: &Path) -> Result<PeerKeys> {
    let local = read_local(local_path)?;
    let remote = read_remote(remote_path)?;
    let keys = PeerKeys { local, remote };
    if keys.check_link().is_err() {
        bail!(
            "{} is not linked to {} (its peer id is {}, the remote key's id is {}); run \
             `dktp link {} {}`",
            local_path.display(),
            remote_path.display(),
            hex::encode(keys.local.peerid()),
            hex::encode(keys.remote.keyid()),
            local_path.display(),
            remote_path.display()
        );
    }
    for (path, expired) in [
        (local_path, keys.local.is_expired(now())),
        (remote_path, keys.remote.is_expired(now())),
    ] {
        if expired {
            bail!("{} has expired; make new keys", path.display());
        }
    }
    Ok(keys)
}

/// Reads a `.dskey` file.
pub fn read_local(path: &Path) -> Result<LocalPeerKey> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    );
    LocalPeerKey::from_bytes(&bytes)
        .map_err(|e| anyhow!("{} is not a local peer key (.dskey): {e:?}", path.display()))
}

/// Reads a `.dpkey` file.
pub fn read_remote(path: &Path) -> Result<RemotePeerKey> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    );
    RemotePeerKey::from_bytes(&bytes).map_err(|e| {
        anyhow!(
            "{} is not a remote peer key (.dpkey): {e:?}",
            path.display()
        )
    })
}

/// `dktp show FILE`: what a key file or a store holds, never a secret.
pub fn show(path: &Path, out: &mut dyn Write) -> Result<()> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    );
    if let Ok(local) = LocalPeerKey::from_bytes(&bytes) {
        writeln!(out, "{}: local peer key (.dskey)", path.display())?;
        writeln!(out, "  configuration  {}", local.config())?;
        writeln!(out, "  key id         {}", hex::encode(local.keyid()))?;
        let peer = if local.peerid() == &[0u8; KEYID_SIZE] {
            "(not linked: run `dktp link`)".to_string()
        } else {
            hex::encode(local.peerid())
        };
        writeln!(out, "  peer id        {peer}")?;
        writeln!(out, "  expires        {}", expiry(local.expiration()))?;
        writeln!(
            out,
            "  fingerprint    {}",
            fingerprint(local.verification_key())
        )?;
        return Ok(());
    }
    if let Ok(remote) = RemotePeerKey::from_bytes(&bytes) {
        writeln!(out, "{}: remote peer key (.dpkey)", path.display())?;
        writeln!(out, "  configuration  {}", remote.config())?;
        writeln!(out, "  key id         {}", hex::encode(remote.keyid()))?;
        writeln!(out, "  expires        {}", expiry(remote.expiration()))?;
        writeln!(
            out,
            "  fingerprint    {}",
            fingerprint(remote.verification_key())
        )?;
        return Ok(());
    }
    drop(bytes);
    let store = Store::open_existing(path).map_err(|e| {
        anyhow!(
            "{} is neither a key file nor a dktp store: {e:#}",
            path.display()
        )
    })?;
    let entries = store.entries()?;
    writeln!(
        out,
        "{}: dktp store, {} peer(s)",
        path.display(),
        entries.len()
    )?;
    for e in entries {
        let pending = match &e.secrets.pending {
            Some(p) => format!(", pending {}", p.number()),
            None => String::new(),
        };
        writeln!(
            out,
            "  key id {}  peer {}  {}  generation {}{}  expires {}",
            hex::encode(e.keys.local.keyid()),
            hex::encode(e.keys.remote.keyid()),
            e.keys.config(),
            e.secrets.confirmed.number(),
            pending,
            expiry(e.keys.local.expiration().min(e.keys.remote.expiration()))
        )?;
    }
    Ok(())
}

fn expiry(at: u64) -> String {
    let now = now();
    if at <= now {
        format!("{} (expired)", utc_date(at))
    } else {
        format!("{} (in {} days)", utc_date(at), (at - now) / 86_400)
    }
}

/// The first 16 bytes of SHA3-256 of the verification key, for comparing keys out of band.
pub fn fingerprint(verkey: &[u8]) -> String {
    let h = dktp::keccak::sha3_256(verkey);
    h[..16]
        .chunks(2)
        .map(hex::encode)
        .collect::<Vec<_>>()
        .join(":")
}

fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Writes `bytes` to `path` with mode 0600: to a temporary file beside it, fsynced, then
/// renamed over it, so a crash leaves the old file or the new one.
pub fn write_secret(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    if !replace && path.exists() {
        bail!("{} exists", path.display());
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map_or("key".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Parses a key id: 32 hex digits.
pub fn parse_keyid(s: &str) -> Result<[u8; KEYID_SIZE]> {
    let v = hex::decode(s).map_err(|e| anyhow!("key id {s:?}: {e}"))?;
    v.try_into()
        .map_err(|_| anyhow!("key id {s:?}: need {} hex digits", 2 * KEYID_SIZE))
}
