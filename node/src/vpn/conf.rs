//! The interface file of `dktp up` / `dktp down`, in the manner of `wg-quick`: one file per
//! interface, named after it (`/etc/dktp/dk0.conf` brings up `dk0`), an `[Interface]`
//! section and one `[Peer]` section per peer.
//!
//! ```ini
//! [Interface]
//! Address = 10.77.0.1/24, fd77::1/64   # this host's addresses on the interface
//! MTU = 1500                           # default 1500 (the tunnel runs over TCP)
//! ListenPort = 31118                   # or Listen = 0.0.0.0:31118, [::]:31118
//! Store = /var/lib/dktp/dk0.redb       # the ratchet store (default: next to the file)
//! Metrics = 127.0.0.1:9318             # Prometheus text format at /metrics
//!
//! [Peer]
//! Name = branch-17                     # for the logs
//! LocalKey = gw-branch-17.dskey        # this host's key for the pair
//! RemoteKey = branch-17.dpkey          # the peer's key
//! Endpoint = gw.example.net:31118      # connect to it (absent: it connects to us)
//! AllowedIPs = 10.77.0.17/32, 192.168.17.0/24
//! ```
//!
//! Keys are case-insensitive and `#` starts a comment, as in `wg-quick`. The format is
//! `wg-quick`'s, not TOML (repeated `[Peer]` sections, bare values), so it is read here: a
//! line-oriented parser whose errors name the line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use ipnet::IpNet;

use crate::connect::ServerAddr;

/// The MTU of an interface when the file names none. The tunnel runs over TCP, which
/// never fragments, so the link's own MTU needs no room for an outer header.
pub const DEFAULT_MTU: u16 = 1500;

/// The smallest MTU accepted (IPv6's minimum).
pub const MIN_MTU: u16 = 1280;

/// The largest MTU accepted: a packet and its length prefix fit one DKTP message.
pub const MAX_MTU: u16 = 65_000;

/// One `[Peer]`.
#[derive(Clone, Debug)]
pub struct VpnPeer {
    /// For the logs.
    pub name: String,
    /// This host's `.dskey` for the pair.
    pub local_key: PathBuf,
    /// The peer's `.dpkey`.
    pub remote_key: PathBuf,
    /// Where to connect (`None`: the peer connects to this host).
    pub endpoint: Option<ServerAddr>,
    /// The addresses routed to the peer, and the only sources accepted from it.
    pub allowed: Vec<IpNet>,
}

/// A whole interface file.
#[derive(Clone, Debug)]
pub struct VpnConf {
    /// The interface's name (the file's stem).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// This host's addresses, with their prefixes.
    pub addresses: Vec<IpNet>,
    /// The interface MTU.
    pub mtu: u16,
    /// Where to accept peers (empty: connect only).
    pub listen: Vec<SocketAddr>,
    /// `listen` came from `ListenPort` (both families; a host without IPv6 listens on
    /// IPv4 only).
    pub listen_any: bool,
    /// The ratchet store.
    pub store: PathBuf,
    /// Where to serve metrics.
    pub metrics: Option<SocketAddr>,
    /// The peers.
    pub peers: Vec<VpnPeer>,
}

impl VpnConf {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<VpnConf> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        VpnConf::parse(path, &text).with_context(|| path.display().to_string())
    }

    /// Parses `text` as the file at `path` (relative key and store paths are relative to
    /// its folder; the interface is named after its stem).
    pub fn parse(path: &Path, text: &str) -> Result<VpnConf> {
        let name = interface_name(path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let rel = |v: &str| {
            let p = PathBuf::from(v);
            if p.is_absolute() { p } else { base.join(p) }
        };
        let mut section = Section::None;
        let mut seen_interface = false;
        let mut addresses = Vec::new();
        let mut mtu = None;
        let mut listen = Vec::new();
        let mut listen_any = false;
        let mut store = None;
        let mut metrics = None;
        let mut peers: Vec<PeerDraft> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                section = match line.to_ascii_lowercase().as_str() {
                    "[interface]" if seen_interface => {
                        bail!("line {n}: a second [Interface] section")
                    }
                    "[interface]" => {
                        seen_interface = true;
                        Section::Interface
                    }
                    "[peer]" => {
                        peers.push(PeerDraft {
                            line: n,
                            ..PeerDraft::default()
                        });
                        Section::Peer
                    }
                    _ => bail!("line {n}: unknown section {line} (expected [Interface] or [Peer])"),
                };
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
                .ok_or_else(|| anyhow!("line {n}: expected Key = Value"))?;
            let at = |e: anyhow::Error| e.context(format!("line {n}"));
            match (section, key.as_str()) {
                (Section::None, _) => bail!("line {n}: {key} outside a section"),
                (Section::Interface, "address") => {
                    for a in list(value) {
                        addresses.push(parse_net(a, false).map_err(at)?);
                    }
                }
                (Section::Interface, "mtu") => {
                    let m: u16 = value
                        .parse()
                        .map_err(|_| anyhow!("line {n}: MTU {value:?} is not a number"))?;
                    if !(MIN_MTU..=MAX_MTU).contains(&m) {
                        bail!("line {n}: MTU {m} outside {MIN_MTU}..={MAX_MTU}");
                    }
                    mtu = Some(m);
                }
                (Section::Interface, "listenport") => {
                    let port: u16 = value
                        .parse()
                        .map_err(|_| anyhow!("line {n}: ListenPort {value:?} is not a port"))?;
                    listen_any = true;
                    listen.push(SocketAddr::from(([0, 0, 0, 0], port)));
                    listen.push(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)));
                }
                (Section::Interface, "listen") => {
                    for a in list(value) {
                        listen.push(crate::config::parse_addr(a).map_err(at)?);
                    }
                }
                (Section::Interface, "store") => store = Some(rel(value)),
                (Section::Interface, "metrics") => {
                    metrics = Some(crate::config::parse_addr(value).map_err(at)?);
                }
                (Section::Peer, k) => {
                    let p = peers.last_mut().ok_or_else(|| anyhow!("line {n}"))?;
                    match k {
                        "name" => p.name = Some(value.to_string()),
                        "localkey" => p.local_key = Some(rel(value)),
                        "remotekey" => p.remote_key = Some(rel(value)),
                        "endpoint" => p.endpoint = Some(ServerAddr::parse(value).map_err(at)?),
                        "allowedips" => {
                            for a in list(value) {
                                p.allowed.push(parse_net(a, true).map_err(at)?);
                            }
                        }
                        other => bail!(
                            "line {n}: unknown [Peer] key {other:?} (Name, LocalKey, RemoteKey, Endpoint, AllowedIPs)"
                        ),
                    }
                }
                (Section::Interface, other) => bail!(
                    "line {n}: unknown [Interface] key {other:?} (Address, MTU, ListenPort, Listen, Store, Metrics)"
                ),
            }
        }
        if !seen_interface {
            bail!("no [Interface] section");
        }
        if addresses.is_empty() {
            bail!("[Interface] needs an Address");
        }
        let mut out = Vec::new();
        for (i, p) in peers.into_iter().enumerate() {
            let line = p.line;
            let name = p.name.unwrap_or_else(|| format!("peer{}", i + 1));
            let local_key = p
                .local_key
                .ok_or_else(|| anyhow!("[Peer] at line {line}: LocalKey is missing"))?;
            let remote_key = p
                .remote_key
                .ok_or_else(|| anyhow!("[Peer] at line {line}: RemoteKey is missing"))?;
            if p.allowed.is_empty() {
                bail!("[Peer] at line {line}: AllowedIPs is missing");
            }
            out.push(VpnPeer {
                name,
                local_key,
                remote_key,
                endpoint: p.endpoint,
                allowed: p.allowed,
            });
        }
        if out.is_empty() {
            bail!("no [Peer] section");
        }
        if listen.is_empty() && out.iter().any(|p| p.endpoint.is_none()) {
            bail!(
                "a [Peer] without an Endpoint waits for the peer to connect, but [Interface] has no ListenPort"
            );
        }
        for (i, a) in out.iter().enumerate() {
            for b in &out[i + 1..] {
                for na in &a.allowed {
                    if b.allowed.contains(na) {
                        bail!(
                            "AllowedIPs {na} is given to two peers ({} and {})",
                            a.name,
                            b.name
                        );
                    }
                }
            }
        }
        Ok(VpnConf {
            store: store.unwrap_or_else(|| base.join(format!("{name}.redb"))),
            name,
            path: path.to_path_buf(),
            addresses,
            mtu: mtu.unwrap_or(DEFAULT_MTU),
            listen,
            listen_any,
            metrics,
            peers: out,
        })
    }
}

#[derive(Clone, Copy)]
enum Section {
    None,
    Interface,
    Peer,
}

#[derive(Default)]
struct PeerDraft {
    line: usize,
    name: Option<String>,
    local_key: Option<PathBuf>,
    remote_key: Option<PathBuf>,
    endpoint: Option<ServerAddr>,
    allowed: Vec<IpNet>,
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `10.0.0.1/24`, or a bare address (a host route). For AllowedIPs the host bits must be
/// zero (`10.0.0.5/24` is refused: it is most likely a typo).
fn parse_net(s: &str, exact: bool) -> Result<IpNet> {
    let net = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => {
            let ip: std::net::IpAddr = s
                .parse()
                .map_err(|_| anyhow!("{s:?} is not an address or ADDRESS/PREFIX"))?;
            IpNet::from(ip)
        }
    };
    if exact && net.trunc() != net {
        bail!(
            "AllowedIPs {s}: the host bits are set (did you mean {}?)",
            net.trunc()
        );
    }
    Ok(net)
}

/// The interface's name: the file's stem, as `wg-quick` does (at most 15 bytes, letters,
/// digits, `_=+.-`).
pub fn interface_name(path: &Path) -> Result<String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow!("{}: no file name", path.display()))?;
    let ok = !stem.is_empty()
        && stem.len() <= 15
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_=+.-".contains(&b));
    if !ok {
        bail!(
            "{}: the interface is named after the file, and {stem:?} is not a valid interface name (1 to 15 of a-z A-Z 0-9 _=+.-)",
            path.display()
        );
    }
    Ok(stem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
[Interface]
Address = 10.77.0.1/24, fd77::1/64   # both families
mtu = 1420
ListenPort = 31118

[Peer]
Name = b
LocalKey = gw-b.dskey
RemoteKey = /etc/dktp/b.dpkey
AllowedIPs = 10.77.0.2/32, 192.168.2.0/24

[Peer]
LocalKey = gw-c.dskey
RemoteKey = c.dpkey
Endpoint = 10.1.0.3
AllowedIPs = 10.77.0.3
";

    #[test]
    fn a_wg_quick_style_file_reads() {
        let c = VpnConf::parse(Path::new("/etc/dktp/dk0.conf"), GOOD).expect("parses");
        assert_eq!(c.name, "dk0");
        assert_eq!(c.mtu, 1420);
        assert_eq!(c.addresses.len(), 2);
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.store, PathBuf::from("/etc/dktp/dk0.redb"));
        assert_eq!(c.peers[0].name, "b");
        assert_eq!(c.peers[0].local_key, PathBuf::from("/etc/dktp/gw-b.dskey"));
        assert_eq!(c.peers[0].remote_key, PathBuf::from("/etc/dktp/b.dpkey"));
        assert!(c.peers[0].endpoint.is_none());
        assert_eq!(c.peers[1].name, "peer2");
        assert_eq!(
            c.peers[1]
                .endpoint
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("10.1.0.3:31118")
        );
        assert_eq!(
            c.peers[1].allowed,
            vec!["10.77.0.3/32".parse::<IpNet>().expect("net")]
        );
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        let bad = |text: &str, says: &str| {
            let e = VpnConf::parse(Path::new("dk0.conf"), text).expect_err("refused");
            let e = format!("{e:#}");
            assert!(e.contains(says), "{e:?} should say {says:?}");
        };
        bad(
            "[Interface]\nAddress = 10.0.0.1/24\nMTU = 9\n",
            "line 3: MTU 9",
        );
        bad(
            "[Interface]\nAdress = 10.0.0.1/24\n",
            "line 2: unknown [Interface] key",
        );
        bad(
            "[Interface]\nAddress = 10.0.0.1/24\nListenPort = 1\n[Peer]\nLocalKey = a\nRemoteKey = b\nAllowedIPs = 10.0.0.5/24\n",
            "line 7",
        );
        bad(
            "[Interface]\nAddress = 10.0.0.1/24\n[Peer]\nLocalKey = a\nRemoteKey = b\nAllowedIPs = 10.0.0.2/32\n",
            "no ListenPort",
        );
        bad(
            "[Interface]\nAddress = 10.0.0.1/24\nListenPort = 1\n[Peer]\nLocalKey = a\nRemoteKey = b\nAllowedIPs = 10.0.0.2/32\n[Peer]\nLocalKey = c\nRemoteKey = d\nAllowedIPs = 10.0.0.2/32\n",
            "given to two peers",
        );
        bad("[Interface]\nAddress = 10.0.0.1/24\n", "no [Peer]");
        let e = VpnConf::parse(Path::new("much-too-long-name.conf"), GOOD).expect_err("name");
        assert!(format!("{e:#}").contains("not a valid interface name"));
    }
}
