//! `dktp peer add | remove | list`: provisioning a store's peers, in the manner of
//! `swanctl --load-conns` or `wg set wg0 peer ... remove`.
//!
//! A peer added here is served by every `dktp serve` on the store (besides the peers of
//! each server's own config file). With an etcd store the servers of a cluster see an
//! addition through their watch, and a removal closes the peer's live sessions on
//! whichever server holds them; an embedded store is locked by the server that has it
//! open, so provision it while the server is stopped.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::config::{DEFAULT_STORE, Target};
use crate::keys;
use crate::store::{PeerMeta, Store};

/// `dktp peer`'s commands.
#[derive(clap::Subcommand, Debug)]
pub enum PeerCmd {
    /// Add a peer: this server's local key for it and the peer's remote key.
    Add {
        /// This server's local key for the peer (.dskey).
        key: PathBuf,
        /// The peer's remote key (.dpkey).
        peer: PathBuf,
        /// A name for the logs.
        #[arg(long)]
        name: Option<String>,
        /// Where its stream goes (HOST:PORT, unix:PATH, echo; default: the server's).
        #[arg(short, long)]
        forward: Option<String>,
        /// The store: a file, or etcd://HOST:PORT,.../PREFIX.
        #[arg(short, long, default_value = DEFAULT_STORE)]
        store: String,
    },
    /// Add every [[peer]] of a `dktp serve` config file (moving a server's peers into a
    /// cluster's store).
    Import {
        /// The config file.
        config: PathBuf,
        /// The store.
        #[arg(short, long, default_value = DEFAULT_STORE)]
        store: String,
    },
    /// Remove (revoke) a peer, by key id (32 hex digits) or local key file.
    Remove {
        /// The key id of this server's local key for the peer, or that key's file.
        peer: String,
        /// The store.
        #[arg(short, long, default_value = DEFAULT_STORE)]
        store: String,
    },
    /// List a store's peers (never a secret).
    List {
        /// The store.
        #[arg(short, long, default_value = DEFAULT_STORE)]
        store: String,
    },
}

/// Runs `dktp peer`.
pub fn run(cmd: PeerCmd) -> Result<()> {
    match cmd {
        PeerCmd::Add {
            key,
            peer,
            name,
            forward,
            store,
        } => {
            if let Some(f) = &forward {
                Target::parse(f)?;
            }
            let pair = keys::load_pair(&key, &peer)?;
            let keyid = *pair.local.keyid();
            let meta = PeerMeta {
                name,
                forward,
                added: true,
            };
            let store = Store::at(&store)?;
            let records = store.import_peers(&[(pair, meta)])?;
            let generation = records.first().map_or(0, |r| r.latest().number());
            println!(
                "added peer {} to {} (generation {generation})",
                hex::encode(keyid),
                store.location()
            );
            Ok(())
        }
        PeerCmd::Import { config, store } => {
            let cfg = crate::config::ServeConfig::load(crate::config::ServeFlags {
                config: Some(config),
                ..crate::config::ServeFlags::default()
            })?;
            let mut peers = Vec::with_capacity(cfg.peers.len());
            for p in &cfg.peers {
                let meta = PeerMeta {
                    name: p.name.clone(),
                    forward: p.forward.as_ref().map(ToString::to_string),
                    added: true,
                };
                peers.push((keys::load_pair(&p.key, &p.peer)?, meta));
            }
            let store = Store::at(&store)?;
            store.import_peers(&peers)?;
            println!("added {} peer(s) to {}", peers.len(), store.location());
            Ok(())
        }
        PeerCmd::Remove { peer, store } => {
            let keyid = match keys::parse_keyid(&peer) {
                Ok(id) => id,
                Err(_) => *keys::read_local(std::path::Path::new(&peer))?.keyid(),
            };
            let store = Store::at(&store)?;
            if !store.remove(&keyid)? {
                bail!(
                    "{} holds no peer with key id {}",
                    store.location(),
                    hex::encode(keyid)
                );
            }
            println!(
                "removed peer {} from {}",
                hex::encode(keyid),
                store.location()
            );
            Ok(())
        }
        PeerCmd::List { store } => {
            let store = Store::at(&store)?;
            let entries = store.entries()?;
            println!("{}: {} peer(s)", store.location(), entries.len());
            for e in entries {
                let pending = match &e.secrets.pending {
                    Some(p) => format!(", pending {}", p.number()),
                    None => String::new(),
                };
                println!(
                    "  key id {}  peer {}  {}  generation {}{}{}{}{}",
                    hex::encode(e.keys.local.keyid()),
                    hex::encode(e.keys.remote.keyid()),
                    e.keys.config(),
                    e.secrets.confirmed.number(),
                    pending,
                    e.meta
                        .name
                        .as_deref()
                        .map(|n| format!("  name {n}"))
                        .unwrap_or_default(),
                    e.meta
                        .forward
                        .as_deref()
                        .map(|f| format!("  forward {f}"))
                        .unwrap_or_default(),
                    if e.meta.added { "  (added)" } else { "" },
                );
            }
            Ok(())
        }
    }
}
