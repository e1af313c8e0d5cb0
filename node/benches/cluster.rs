//! A cluster against one node, real processes on loopback: three `dktp serve` nodes on a
//! three-member etcd cluster behind HAProxy, one node on the same etcd, and one node on the
//! embedded store; handshakes a second through each (every client reconnecting over and
//! over), and the stores' commit latency from the nodes' own histograms.
//!
//! ```text
//! cargo bench -p dktp-node --features etcd --bench cluster            # about a minute
//! cargo bench -p dktp-node --features etcd --bench cluster -- --quick
//! ```
//! On one machine the nodes share its cores, so the cluster's figure is what coordination
//! costs, not what more machines would add.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[path = "../tests/e2e/support.rs"]
mod support;

#[path = "../tests/e2e/cluster_support.rs"]
mod cluster_support;

use cluster_support::{CONFIG, Etcd, Haproxy, free_port, provision, tools_present};
use support::{Dir, Proc, dktp};

fn node(dir: &Dir, name: &str, store: &str) -> (Proc, SocketAddr, SocketAddr) {
    let (port, metrics) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let metrics_addr = format!("127.0.0.1:{metrics}");
    let mut p = Proc::start(
        dir,
        name,
        &[
            "serve",
            "--store",
            store,
            "--node",
            name,
            "--echo",
            "-l",
            &listen,
            "--metrics",
            &metrics_addr,
            "--source-rate",
            "off",
        ],
        &[("DKTP_LOG", "warn,dktp=info")],
    );
    let addr = p.wait_addr("listening (TCP)");
    let m = p.wait_addr("metrics at");
    (p, addr, m)
}

/// Handshakes a second through `addr` from the pairs in `fleet` (the first `pairs` of them,
/// or all).
fn handshakes(
    dir: &Dir,
    name: &str,
    fleet: &str,
    pairs: Option<&str>,
    addr: SocketAddr,
    secs: &str,
) -> f64 {
    let addr = addr.to_string();
    let mut args = vec![
        "loadgen",
        "run",
        &addr,
        "--dir",
        fleet,
        "--handshakes",
        secs,
        "--attempts",
        "50",
        "--json",
    ];
    if let Some(n) = pairs {
        args.extend(["-n", n]);
    }
    let mut p = Proc::start(dir, name, &args, &[("DKTP_LOG", "error")]);
    p.wait_exit(Duration::from_secs(300)).expect("loadgen ends");
    let mut out = String::new();
    if let Some(o) = p.child.stdout.as_mut() {
        let _ = o.read_to_string(&mut out);
    }
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("report");
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    assert_eq!(v["errors"], 0, "{v}");
    v["handshakes_per_s"].as_f64().unwrap_or(0.0)
}

/// The store-commit histogram of a node's metrics: (upper bound, cumulative count).
fn commit_buckets(metrics: SocketAddr) -> Vec<(f64, f64)> {
    let mut s = TcpStream::connect(metrics).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("get");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    text.lines()
        .filter(|l| l.starts_with("dktp_store_commit_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let n = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, n))
        })
        .collect()
}

/// Counts in `a` that are not in `b` (the same buckets, read later and earlier).
fn minus(a: &[(f64, f64)], b: &[(f64, f64)]) -> Vec<(f64, f64)> {
    a.iter().zip(b).map(|(x, y)| (x.0, x.1 - y.1)).collect()
}

/// A quantile from cumulative buckets (the upper bound of the bucket it falls in).
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map_or(f64::NAN, |(le, _)| *le)
}

fn sum(a: &[(f64, f64)], b: &[(f64, f64)]) -> Vec<(f64, f64)> {
    a.iter().zip(b).map(|(x, y)| (x.0, x.1 + y.1)).collect()
}

/// Pairs in the calm runs.
const CALM: &str = "40";

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with("--"))
        && !"cluster".contains(filter.as_str())
    {
        return;
    }
    if !tools_present(&["etcd", "haproxy"]) {
        return;
    }
    let secs = if quick { "3" } else { "8" };
    // A pair signs at most one connect request a second (the replay window), so the pairs
    // outnumber the handshakes a second the servers can make; their keys (over 4 MiB) also
    // take the nodes more than one page of etcd reads to list.
    let pairs = if quick { "1000" } else { "1500" };
    let dir = Dir::new("bench-cluster");
    let etcd = Etcd::start(&dir, 3);
    let store = etcd.store("bench");
    provision(&dir, &store, pairs);

    // Three nodes behind HAProxy.
    let nodes: Vec<_> = (0..3)
        .map(|i| node(&dir, &format!("n{i}"), &store))
        .collect();
    let lb = Haproxy::start(&dir, &nodes.iter().map(|n| n.1).collect::<Vec<_>>());
    let cluster_buckets = || {
        nodes[1..].iter().fold(commit_buckets(nodes[0].2), |b, n| {
            sum(&b, &commit_buckets(n.2))
        })
    };
    // Calm first (40 pairs: at most 40 handshakes a second), for the store's own latency;
    // then every pair, for the handshake rate (and the commit latency at saturation).
    handshakes(&dir, "calm", "fleet", Some(CALM), lb.addr, secs);
    let calm = cluster_buckets();
    let cluster = handshakes(&dir, "through-haproxy", "fleet", None, lb.addr, secs);
    let buckets = minus(&cluster_buckets(), &calm);
    drop(lb);
    drop(nodes);

    // One node on the same etcd.
    let (one, addr, m) = node(&dir, "alone", &store);
    let single = handshakes(&dir, "one-node", "fleet", None, addr, secs);
    let one_buckets = commit_buckets(m);
    drop(one);

    // One node on the embedded store, with pairs of its own (the etcd runs ratcheted the
    // first fleet's secrets past its key files).
    dktp(
        &dir,
        &["loadgen", "setup", "local", "-n", pairs, "--config", CONFIG],
    );
    dktp(
        &dir,
        &[
            "peer",
            "import",
            "local/serve.toml",
            "--store",
            "local.redb",
        ],
    );
    let (local, addr, m) = node(&dir, "local", "local.redb");
    handshakes(&dir, "embedded-calm", "local", Some(CALM), addr, secs);
    let local_calm = commit_buckets(m);
    let embedded = handshakes(&dir, "embedded", "local", None, addr, secs);
    let local_buckets = minus(&commit_buckets(m), &local_calm);
    drop(local);

    let ms = |x: f64| x * 1e3;
    println!(
        "cluster/handshakes: 3 nodes behind HAProxy {cluster:.0}/s, one node on etcd \
         {single:.0}/s, one node on the embedded store {embedded:.0}/s ({CONFIG})"
    );
    println!(
        "cluster/store_commit_calm: {CALM} pairs: etcd (3 nodes) p50 <= {:.2} ms, p99 <= {:.2} \
         ms; embedded p50 <= {:.2} ms, p99 <= {:.2} ms",
        ms(quantile(&calm, 0.5)),
        ms(quantile(&calm, 0.99)),
        ms(quantile(&local_calm, 0.5)),
        ms(quantile(&local_calm, 0.99)),
    );
    println!(
        "cluster/store_commit_saturated: etcd p50 <= {:.2} ms, p99 <= {:.2} ms (3 nodes); one \
         node p50 <= {:.2} ms, p99 <= {:.2} ms; embedded p50 <= {:.2} ms, p99 <= {:.2} ms",
        ms(quantile(&buckets, 0.5)),
        ms(quantile(&buckets, 0.99)),
        ms(quantile(&one_buckets, 0.5)),
        ms(quantile(&one_buckets, 0.99)),
        ms(quantile(&local_buckets, 0.5)),
        ms(quantile(&local_buckets, 0.99)),
    );
    println!(
        "{}",
        serde_json::json!({
            "cluster_handshakes_per_s": cluster,
            "one_node_etcd_handshakes_per_s": single,
            "one_node_embedded_handshakes_per_s": embedded,
            "calm_etcd_commit_p50_s": quantile(&calm, 0.5),
            "calm_etcd_commit_p99_s": quantile(&calm, 0.99),
            "calm_embedded_commit_p50_s": quantile(&local_calm, 0.5),
            "calm_embedded_commit_p99_s": quantile(&local_calm, 0.99),
            "etcd_commit_p50_s": quantile(&buckets, 0.5),
            "etcd_commit_p99_s": quantile(&buckets, 0.99),
            "embedded_commit_p50_s": quantile(&local_buckets, 0.5),
            "embedded_commit_p99_s": quantile(&local_buckets, 0.99),
        })
    );
    drop(etcd);
}
