//! `dktp serve`'s configuration: a TOML file, overridden by flags. Every default is written
//! here once.
//!
//! ```toml
//! listen = ["0.0.0.0:31118", "[::]:31118"]   # TCP (default: both, port 31118)
//! ws = ["127.0.0.1:31119"]                  # WebSocket, one DKTP packet per binary frame
//! store = "/var/lib/dktp/store.redb"
//! forward = "127.0.0.1:8583"                # or "unix:/run/app.sock", or "echo"
//! ratchet_every = "1h"                      # an asymmetric ratchet per session this often
//! handshake_timeout = "30s"                 # default: 30 s, 120 s with SPHINCS+ / McEliece
//! idle_timeout = "12h"                      # "off" keeps idle sessions forever
//! max_sessions = 50000                      # established sessions at most
//! max_handshakes = 1024                     # handshakes in progress at most
//! source_rate = 20                          # handshakes/s per source address ("off")
//! handshake_rate = "off"                    # handshakes/s for the whole server
//! buffer = 1048576                          # bytes each direction of a tunnel may queue
//! max_message = 65472                       # plaintext bytes per DKTP message at most
//! batch = "auto"                            # batched data path: auto, always, off
//! metrics = "127.0.0.1:9318"                # Prometheus text format at /metrics
//! key_pool = 16                             # ephemeral KEM key pairs kept ready (McEliece)
//! handshake_threads = 2                     # threads for handshake work (0: in place)
//!
//! [[peer]]
//! name = "terminal-17"                      # for the logs
//! key = "gw-terminal-17.dskey"              # this server's local key for the peer
//! peer = "terminal-17.dpkey"                # the peer's remote key
//! forward = "127.0.0.1:8584"                # overrides the default target
//! ```
//!
//! Relative paths are relative to the file's folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::batcher::Mode;
use crate::limits::LimitSettings;
use crate::util::parse_duration;

/// The reference's port.
pub const DEFAULT_PORT: u16 = 31118;
/// The default store file.
pub const DEFAULT_STORE: &str = "dktp-store.redb";
/// The default address of the metrics endpoint when `--metrics` names only a port.
pub const DEFAULT_METRICS_PORT: u16 = 9318;
/// Ephemeral key pairs a server keeps ready by default.
pub const DEFAULT_KEY_POOL: usize = 16;

/// Where a peer's plaintext goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Back to the peer.
    Echo,
    /// A TCP address (`host:port`), resolved at each connection.
    Tcp(String),
    /// A unix socket.
    Unix(PathBuf),
}

impl Target {
    /// Parses `echo`, `unix:PATH`, or `HOST:PORT`.
    pub fn parse(s: &str) -> Result<Target> {
        if s == "echo" {
            Ok(Target::Echo)
        } else if let Some(p) = s.strip_prefix("unix:") {
            Ok(Target::Unix(PathBuf::from(p)))
        } else if s
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        {
            Ok(Target::Tcp(s.to_string()))
        } else {
            bail!("forward target {s:?}: expected HOST:PORT, unix:PATH or echo")
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Echo => f.write_str("echo"),
            Target::Tcp(a) => f.write_str(a),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    listen: Option<Vec<String>>,
    ws: Option<Vec<String>>,
    store: Option<String>,
    node: Option<String>,
    forward: Option<String>,
    ratchet_every: Option<String>,
    handshake_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_sessions: Option<usize>,
    max_handshakes: Option<usize>,
    source_rate: Option<Rate>,
    handshake_rate: Option<Rate>,
    buffer: Option<usize>,
    max_message: Option<usize>,
    batch: Option<Mode>,
    metrics: Option<String>,
    key_pool: Option<usize>,
    handshake_threads: Option<usize>,
    #[serde(default, rename = "peer")]
    peers: Vec<PeerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    name: Option<String>,
    key: PathBuf,
    peer: PathBuf,
    forward: Option<String>,
}

/// What the flags say (each overrides the file).
#[derive(Debug, Default)]
pub struct ServeFlags {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--listen`.
    pub listen: Vec<String>,
    /// `--ws`.
    pub ws: Vec<String>,
    /// `--store`.
    pub store: Option<String>,
    /// `--node`.
    pub node: Option<String>,
    /// `--forward` (or `echo` from `--echo`).
    pub forward: Option<String>,
    /// `--peer KEY:PEER`, added to the file's peers.
    pub peers: Vec<String>,
    /// `--ratchet-every`.
    pub ratchet_every: Option<String>,
    /// `--handshake-timeout`.
    pub handshake_timeout: Option<String>,
    /// `--idle-timeout`.
    pub idle_timeout: Option<String>,
    /// `--max-sessions`.
    pub max_sessions: Option<usize>,
    /// `--max-handshakes`.
    pub max_handshakes: Option<usize>,
    /// `--source-rate` (a number or `off`).
    pub source_rate: Option<String>,
    /// `--handshake-rate` (a number or `off`).
    pub handshake_rate: Option<String>,
    /// `--buffer`.
    pub buffer: Option<usize>,
    /// `--max-message`.
    pub max_message: Option<usize>,
    /// `--batch`.
    pub batch: Option<Mode>,
    /// `--metrics`.
    pub metrics: Option<String>,
    /// `--key-pool`.
    pub key_pool: Option<usize>,
    /// `--handshake-threads`.
    pub handshake_threads: Option<usize>,
}

/// A handshake rate in the file: a number a second, or `"off"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Rate {
    PerSecond(u32),
    Text(String),
}

impl Rate {
    fn text(self) -> String {
        match self {
            Rate::PerSecond(n) => n.to_string(),
            Rate::Text(t) => t,
        }
    }
}

/// Parses a rate: a whole number a second, or `off` / `0` for none.
pub fn parse_rate(s: &str) -> Result<Option<std::num::NonZeroU32>> {
    let t = s.trim().trim_end_matches("/s");
    if t == "off" || t == "0" {
        return Ok(None);
    }
    t.parse::<std::num::NonZeroU32>()
        .map(Some)
        .with_context(|| format!("rate {s:?}: expected handshakes a second (e.g. 20) or off"))
}

/// One peer to serve.
#[derive(Clone, Debug)]
pub struct PeerSpec {
    /// A name for the logs.
    pub name: Option<String>,
    /// This server's `.dskey` for the peer.
    pub key: PathBuf,
    /// The peer's `.dpkey`.
    pub peer: PathBuf,
    /// Where its plaintext goes (else the default).
    pub forward: Option<Target>,
}

/// The effective configuration.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// TCP listen addresses.
    pub listen: Vec<SocketAddr>,
    /// Whether `listen` is the default (both families; a missing IPv6 is not an error).
    pub default_listen: bool,
    /// WebSocket listen addresses.
    pub ws: Vec<SocketAddr>,
    /// The ratchet store: a file, or `etcd://HOST:PORT,.../PREFIX`.
    pub store: String,
    /// This node's name in a cluster.
    pub node: String,
    /// The default target.
    pub forward: Target,
    /// Start an asymmetric ratchet per session this often.
    pub ratchet_every: Option<Duration>,
    /// The handshake deadline (else the engine's by configuration).
    pub handshake_timeout: Option<Duration>,
    /// The idle timeout (`None`: the engine's 12 h; `Some(None)`: off).
    pub idle_timeout: Option<Option<Duration>>,
    /// Sessions, handshakes and handshake rates.
    pub limits: LimitSettings,
    /// Bytes each direction of a tunnel may queue.
    pub buffer: usize,
    /// Plaintext bytes per DKTP message at most.
    pub max_message: usize,
    /// The batched data path.
    pub batch: Mode,
    /// Where to serve metrics.
    pub metrics: Option<SocketAddr>,
    /// Ephemeral key pairs kept ready (`None`: [`DEFAULT_KEY_POOL`] for McEliece, none
    /// for ML-KEM, whose key generation is cheaper than the hand-over to a refill thread).
    pub key_pool: Option<usize>,
    /// Threads for handshake work, below the sessions' priority (`None`: one per core;
    /// 0: on the runtime, in place).
    pub handshake_threads: Option<usize>,
    /// The peers.
    pub peers: Vec<PeerSpec>,
}

impl ServeConfig {
    /// Every default, listening nowhere yet, echoing, with its store at `store` and no
    /// peers (for servers built in code: the demo, the load generator, tests).
    pub fn defaults(store: PathBuf) -> ServeConfig {
        ServeConfig {
            listen: Vec::new(),
            default_listen: false,
            ws: Vec::new(),
            store: store.to_string_lossy().into_owned(),
            node: default_node_name(),
            forward: Target::Echo,
            ratchet_every: None,
            handshake_timeout: None,
            idle_timeout: None,
            limits: LimitSettings::default(),
            buffer: crate::tunnel::QUEUE_LIMIT,
            max_message: crate::tunnel::MAX_PAYLOAD,
            batch: Mode::Auto,
            metrics: None,
            key_pool: None,
            handshake_threads: None,
            peers: Vec::new(),
        }
    }

    /// Reads the file (if any) and applies the flags.
    pub fn load(flags: ServeFlags) -> Result<ServeConfig> {
        let (file, base) = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let file: ServeFile =
                    toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (file, base)
            }
            None => (ServeFile::default(), PathBuf::new()),
        };
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let listen_text = if !flags.listen.is_empty() {
            Some(flags.listen.clone())
        } else {
            file.listen.clone()
        };
        let ws_text = if !flags.ws.is_empty() {
            flags.ws.clone()
        } else {
            file.ws.clone().unwrap_or_default()
        };
        let default_listen = listen_text.is_none() && ws_text.is_empty();
        let listen = match listen_text {
            Some(l) => l.iter().map(|a| parse_addr(a)).collect::<Result<_>>()?,
            None if default_listen => vec![
                SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, DEFAULT_PORT)),
            ],
            None => Vec::new(),
        };
        let ws: Vec<SocketAddr> = ws_text
            .iter()
            .map(|a| parse_addr(a))
            .collect::<Result<_>>()?;
        let store = match flags.store.or(file.store) {
            Some(s) if s.starts_with("etcd://") => s,
            Some(s) => rel(PathBuf::from(s)).to_string_lossy().into_owned(),
            None => DEFAULT_STORE.to_string(),
        };
        let node = flags.node.or(file.node).unwrap_or_else(default_node_name);
        let forward = match flags.forward.or(file.forward) {
            Some(t) => Target::parse(&t)?,
            None => Target::Echo,
        };
        let dur =
            |flag: Option<String>, file: Option<String>, what: &str| -> Result<Option<Duration>> {
                flag.or(file)
                    .map(|s| parse_duration(&s).with_context(|| what.to_string()))
                    .transpose()
            };
        let ratchet_every = dur(flags.ratchet_every, file.ratchet_every, "ratchet_every")?;
        if ratchet_every.is_some_and(|d| d < Duration::from_millis(100)) {
            bail!("ratchet_every must be at least 100ms");
        }
        let handshake_timeout = dur(
            flags.handshake_timeout,
            file.handshake_timeout,
            "handshake_timeout",
        )?;
        let idle_timeout = match flags.idle_timeout.or(file.idle_timeout) {
            None => None,
            Some(s) if s == "off" || s == "0" => Some(None),
            Some(s) => Some(Some(parse_duration(&s).context("idle_timeout")?)),
        };
        let defaults = LimitSettings::default();
        let mut peers = Vec::new();
        for p in file.peers {
            peers.push(PeerSpec {
                name: p.name,
                key: rel(p.key),
                peer: rel(p.peer),
                forward: p.forward.as_deref().map(Target::parse).transpose()?,
            });
        }
        for p in &flags.peers {
            let Some((key, peer)) = p.split_once(':') else {
                bail!("--peer {p:?}: expected LOCAL.dskey:REMOTE.dpkey");
            };
            peers.push(PeerSpec {
                name: None,
                key: key.into(),
                peer: peer.into(),
                forward: None,
            });
        }

        if listen.is_empty() && ws.is_empty() {
            bail!("nothing to listen on");
        }
        Ok(ServeConfig {
            listen,
            default_listen,
            ws,
            store,
            node,
            forward,
            ratchet_every,
            handshake_timeout,
            idle_timeout,
            limits: LimitSettings {
                max_sessions: flags
                    .max_sessions
                    .or(file.max_sessions)
                    .unwrap_or(defaults.max_sessions)
                    .max(1),
                max_handshakes: flags
                    .max_handshakes
                    .or(file.max_handshakes)
                    .unwrap_or(defaults.max_handshakes)
                    .max(1),
                source_rate: match flags.source_rate.or(file.source_rate.map(Rate::text)) {
                    Some(r) => parse_rate(&r).context("source_rate")?,
                    None => defaults.source_rate,
                },
                handshake_rate: match flags.handshake_rate.or(file.handshake_rate.map(Rate::text)) {
                    Some(r) => parse_rate(&r).context("handshake_rate")?,
                    None => defaults.handshake_rate,
                },
            },
            buffer: flags
                .buffer
                .or(file.buffer)
                .unwrap_or(crate::tunnel::QUEUE_LIMIT)
                .max(MIN_BUFFER),
            max_message: match flags.max_message.or(file.max_message) {
                Some(n) if (1..=crate::tunnel::MAX_PAYLOAD).contains(&n) => n,
                Some(n) => bail!(
                    "max_message {n}: between 1 and {} bytes",
                    crate::tunnel::MAX_PAYLOAD
                ),
                None => crate::tunnel::MAX_PAYLOAD,
            },
            batch: flags.batch.or(file.batch).unwrap_or(Mode::Auto),
            metrics: flags
                .metrics
                .or(file.metrics)
                .map(|m| parse_metrics_addr(&m))
                .transpose()?,
            key_pool: flags.key_pool.or(file.key_pool),
            handshake_threads: flags.handshake_threads.or(file.handshake_threads),
            peers,
        })
    }
}

/// A node's name when none is given: the host's name and the process id.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dktp".into());
    format!("{host}-{}", std::process::id())
}

/// The smallest per-direction buffer: one message must fit.
const MIN_BUFFER: usize = 64 << 10;

/// Parses the metrics address: `IP:PORT`, or a port alone (on 127.0.0.1).
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    parse_addr(s).context("metrics")
}

/// Parses `HOST:PORT` with a numeric host (`0.0.0.0:31118`, `[::1]:31118`), or `:PORT` for
/// all IPv4 interfaces.
pub fn parse_addr(s: &str) -> Result<SocketAddr> {
    let s2 = if let Some(port) = s.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else {
        s.to_string()
    };
    s2.parse().with_context(|| {
        format!("address {s:?}: expected IP:PORT (e.g. 0.0.0.0:31118, [::]:31118)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_read_and_flags_override_it() {
        let dir = std::env::temp_dir().join(format!("dktp-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("serve.toml");
        std::fs::write(
            &path,
            r#"
listen = ["127.0.0.1:4000"]
store = "s.redb"
forward = "unix:/run/x.sock"
ratchet_every = "10m"
idle_timeout = "off"
[[peer]]
key = "a.dskey"
peer = "b.dpkey"
forward = "echo"
"#,
        )
        .expect("write");
        let c = ServeConfig::load(ServeFlags {
            config: Some(path.clone()),
            ..ServeFlags::default()
        })
        .expect("load");
        assert_eq!(c.listen, vec![parse_addr("127.0.0.1:4000").expect("addr")]);
        assert_eq!(c.store, dir.join("s.redb").to_string_lossy());
        assert_eq!(c.forward, Target::Unix("/run/x.sock".into()));
        assert_eq!(c.ratchet_every, Some(Duration::from_secs(600)));
        assert_eq!(c.idle_timeout, Some(None));
        assert_eq!(c.peers[0].key, dir.join("a.dskey"));
        assert_eq!(c.peers[0].forward, Some(Target::Echo));
        let c = ServeConfig::load(ServeFlags {
            config: Some(path.clone()),
            listen: vec!["[::1]:5000".into()],
            forward: Some("127.0.0.1:9".into()),
            peers: vec!["c.dskey:d.dpkey".into()],
            ..ServeFlags::default()
        })
        .expect("load");
        assert_eq!(c.listen, vec![parse_addr("[::1]:5000").expect("addr")]);
        assert_eq!(c.forward, Target::Tcp("127.0.0.1:9".into()));
        assert_eq!(c.peers.len(), 2);
        std::fs::write(&path, "listen = 5\n").expect("write");
        assert!(
            ServeConfig::load(ServeFlags {
                config: Some(path.clone()),
                ..ServeFlags::default()
            })
            .is_err()
        );
        std::fs::write(&path, "lisen = []\n").expect("write");
        let e = ServeConfig::load(ServeFlags {
            config: Some(path),
            ..ServeFlags::default()
        })
        .expect_err("unknown key refused");
        assert!(format!("{e:#}").contains("lisen"), "{e:#}");
    }

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse("echo").ok(), Some(Target::Echo));
        assert_eq!(
            Target::parse("db:5432").ok(),
            Some(Target::Tcp("db:5432".into()))
        );
        assert_eq!(
            Target::parse("[::1]:80").ok(),
            Some(Target::Tcp("[::1]:80".into()))
        );
        assert!(Target::parse("nowhere").is_err());
    }
}
