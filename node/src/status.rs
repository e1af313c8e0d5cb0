//! `dktp status`: a running server's sessions, per peer, in the manner of `wg show`, read
//! from its metrics endpoint (`dktp serve --metrics ADDR`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use prometheus_parse::{Scrape, Value};

use crate::config::{DEFAULT_METRICS_PORT, parse_metrics_addr};
use crate::store::{NodeInfo, SessionInfo};
use crate::util::{now, utc_date};

/// `dktp status`'s options.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The server's metrics address (IP:PORT, or a port on 127.0.0.1).
    #[arg(default_value_t = format!("127.0.0.1:{DEFAULT_METRICS_PORT}"))]
    metrics: String,
    /// Peers with no live session too.
    #[arg(short, long)]
    all: bool,
    /// Every node of a cluster and its sessions, from the cluster's store instead.
    #[arg(long, requires = "store")]
    cluster: bool,
    /// The cluster's store (etcd://HOST:PORT,.../PREFIX), with --cluster.
    #[arg(short, long)]
    store: Option<String>,
}

/// One peer's row.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PeerRow {
    /// The name from the server's configuration (may be empty).
    pub name: String,
    /// Live sessions: (address, established at, Unix seconds).
    pub sessions: Vec<(String, u64)>,
    /// When the last handshake completed (Unix seconds).
    pub last_handshake: Option<u64>,
    /// The generation of the secrets last stored.
    pub generation: Option<u64>,
    /// Plaintext bytes received from the peer.
    pub rx: u64,
    /// Plaintext bytes sent to the peer.
    pub tx: u64,
}

/// What `dktp status` shows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Status {
    /// Established sessions.
    pub sessions: u64,
    /// Handshakes in progress.
    pub handshaking: u64,
    /// Handshakes by result.
    pub handshakes: BTreeMap<String, u64>,
    /// Refusals by reason.
    pub refused: BTreeMap<String, u64>,
    /// Peers by key id (hex).
    pub peers: BTreeMap<String, PeerRow>,
}

/// Reads a scrape of a server's metrics.
pub fn parse(text: &str) -> Result<Status> {
    let scrape =
        Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).context("parsing the metrics")?;
    let mut st = Status::default();
    for s in scrape.samples {
        let v = match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => continue,
        };
        let n = if v.is_finite() && v > 0.0 {
            v as u64
        } else {
            0
        };
        let label = |k: &str| s.labels.get(k).unwrap_or("").to_string();
        let metric = s.metric.as_str();
        if let Some(field) = metric.strip_prefix("dktp_peer_") {
            let p = st.peers.entry(label("keyid")).or_default();
            match field {
                "rx_bytes_total" => {
                    p.rx = n;
                    p.name = label("name");
                }
                "tx_bytes_total" => p.tx = n,
                "last_handshake_seconds" => p.last_handshake = Some(n),
                "generation" => p.generation = Some(n),
                "session_since_seconds" => p.sessions.push((label("address"), n)),
                _ => {}
            }
            continue;
        }
        match metric {
            "dktp_sessions" => st.sessions = n,
            "dktp_handshakes_in_progress" => st.handshaking = n,
            "dktp_handshakes_total" => *st.handshakes.entry(label("result")).or_default() += n,
            "dktp_refused_total" => *st.refused.entry(label("reason")).or_default() += n,
            _ => {}
        }
    }
    for p in st.peers.values_mut() {
        p.sessions.sort_by_key(|(_, since)| *since);
    }
    Ok(st)
}

/// "5 minutes, 3 seconds ago", as `wg show` says it.
fn ago(t: u64, now: u64) -> String {
    let d = now.saturating_sub(t);
    let parts = [
        (d / 86_400, "day"),
        ((d / 3600) % 24, "hour"),
        ((d / 60) % 60, "minute"),
        (d % 60, "second"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, w)| format!("{n} {w}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    if words.is_empty() {
        "just now".into()
    } else {
        format!("{} ago", words.join(", "))
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Writes the status in the manner of `wg show`.
pub fn show(st: &Status, from: &str, all: bool, now: u64, out: &mut dyn Write) -> Result<()> {
    let hs = |k: &str| st.handshakes.get(k).copied().unwrap_or(0);
    writeln!(out, "server: {from}")?;
    writeln!(
        out,
        "  sessions: {}, handshakes in progress: {}",
        st.sessions, st.handshaking
    )?;
    writeln!(
        out,
        "  handshakes: {} ok, {} failed, {} timed out",
        hs("ok"),
        hs("failed"),
        hs("timeout")
    )?;
    if !st.refused.is_empty() {
        let total: u64 = st.refused.values().sum();
        let by: Vec<String> = st.refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(out, "  refused: {total} ({})", by.join(", "))?;
    }
    // Peers with live sessions first, the most recent handshake first (as `wg show`).
    let mut peers: Vec<(&String, &PeerRow)> = st
        .peers
        .iter()
        .filter(|(_, p)| all || !p.sessions.is_empty())
        .collect();
    peers.sort_by_key(|(_, p)| (p.sessions.is_empty(), std::cmp::Reverse(p.last_handshake)));
    for (keyid, p) in peers {
        writeln!(out)?;
        if p.name.is_empty() {
            writeln!(out, "peer: {keyid}")?;
        } else {
            writeln!(out, "peer: {keyid} ({})", p.name)?;
        }
        if p.sessions.is_empty() {
            writeln!(out, "  address: (no live session)")?;
        }
        for (address, since) in &p.sessions {
            writeln!(out, "  address: {address}")?;
            writeln!(out, "  since: {} ({})", utc_date(*since), ago(*since, now))?;
        }
        if let Some(t) = p.last_handshake {
            writeln!(out, "  latest handshake: {}", ago(t, now))?;
        }
        if let Some(g) = p.generation {
            writeln!(out, "  generation: {g}")?;
        }
        writeln!(
            out,
            "  transfer: {} received, {} sent",
            bytes(p.rx),
            bytes(p.tx)
        )?;
    }
    Ok(())
}

/// Writes a cluster's nodes and their sessions, as the store lists them.
pub fn show_cluster(
    nodes: &[(NodeInfo, Vec<SessionInfo>)],
    from: &str,
    now: u64,
    out: &mut dyn Write,
) -> Result<()> {
    let sessions: usize = nodes.iter().map(|(_, s)| s.len()).sum();
    writeln!(out, "cluster: {from}")?;
    writeln!(out, "  nodes: {}, sessions: {sessions}", nodes.len())?;
    for (n, s) in nodes {
        writeln!(out)?;
        writeln!(out, "node: {}", n.node)?;
        writeln!(out, "  listening: {}", n.listen.join(", "))?;
        writeln!(
            out,
            "  up since: {} ({})",
            utc_date(n.since),
            ago(n.since, now)
        )?;
        writeln!(out, "  sessions: {}", s.len())?;
        for s in s {
            let name = if s.name.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.name)
            };
            writeln!(
                out,
                "    peer {}{name}  address {}  since {}",
                s.keyid,
                s.address,
                ago(s.since, now)
            )?;
        }
    }
    Ok(())
}

/// Runs `dktp status`.
pub async fn run(a: StatusArgs) -> Result<()> {
    if a.cluster {
        let spec = a.store.unwrap_or_default();
        let nodes = tokio::task::spawn_blocking(move || {
            let store = crate::store::Store::at(&spec)?;
            let nodes = store.backend().cluster_status()?;
            Ok::<_, anyhow::Error>((store.location(), nodes))
        })
        .await??;
        let mut out = std::io::stdout().lock();
        return show_cluster(&nodes.1, &nodes.0, now(), &mut out);
    }
    let addr: SocketAddr = parse_metrics_addr(&a.metrics)?;
    let text = crate::metrics::fetch(addr).await?;
    let st = parse(&text)?;
    let mut out = std::io::stdout().lock();
    show(&st, &addr.to_string(), a.all, now(), &mut out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, Refusal};

    #[test]
    fn a_scrape_of_the_metrics_reads_back_and_shows_like_wg() {
        let m = Metrics::new();
        m.sessions.set(1);
        m.handshake("ok", None);
        m.handshake("ok", None);
        m.handshake("failed", Some(0x0f));
        m.refused(Refusal::UnknownKey);
        let p = m.peer(&[7; 16], Some("terminal-17"));
        p.rx_bytes.store(2048, std::sync::atomic::Ordering::Relaxed);
        p.tx_bytes.store(5, std::sync::atomic::Ordering::Relaxed);
        p.last_handshake
            .store(1_767_225_000, std::sync::atomic::Ordering::Relaxed);
        p.generation.store(4, std::sync::atomic::Ordering::Relaxed);
        let _live = p.session("127.0.0.1:40000".into(), 1_767_225_000);
        m.peer(&[8; 16], None);
        let st = parse(&m.render()).expect("parse");
        assert_eq!(st.sessions, 1);
        assert_eq!(st.handshakes.get("ok"), Some(&2));
        assert_eq!(st.refused.get("unknown_key"), Some(&1));
        let row = &st.peers[&hex::encode([7u8; 16])];
        assert_eq!(row.name, "terminal-17");
        assert_eq!((row.rx, row.tx, row.generation), (2048, 5, Some(4)));
        assert_eq!(
            row.sessions,
            vec![("127.0.0.1:40000".to_string(), 1_767_225_000)]
        );
        let mut out = Vec::new();
        show(&st, "test", false, 1_767_225_065, &mut out).expect("show");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("peer: 0707"), "{text}");
        assert!(text.contains("(terminal-17)"), "{text}");
        assert!(
            text.contains("latest handshake: 1 minute, 5 seconds ago"),
            "{text}"
        );
        assert!(
            text.contains("transfer: 2.00 KiB received, 5 B sent"),
            "{text}"
        );
        assert!(
            !text.contains(&hex::encode([8u8; 16])),
            "idle peers only with --all"
        );
        drop(_live);
        let st = parse(&m.render()).expect("parse");
        assert!(st.peers[&hex::encode([7u8; 16])].sessions.is_empty());
    }
}
