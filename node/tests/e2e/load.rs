//! The concentrator under load and attack, with real processes: `dktp serve` and
//! `dktp loadgen` (and, for the attack, raw sockets from this test), its metrics endpoint
//! parsed as Prometheus text, and `dktp status` against it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dktp::connection::Connection;
use dktp::kex::{PeerKeys, Settings};
use dktp::peer_key::{LocalPeerKey, RemotePeerKey};
use dktp::pq::OsEntropy;
use dktp::session::Output;

use super::support::{Dir, Proc, connecting, dktp, keys, serving};

const T: Duration = Duration::from_secs(120);

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `GET /metrics` (HTTP/1.0, by hand: the test checks the server, not an HTTP client).
fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("metrics connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// The sum of the samples of `metric` whose labels include every pair of `labels`.
fn value(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// A strict reading of the text format (0.0.4): every line is `# HELP`, `# TYPE` or a
/// sample `name{label="value",...} number`, every sample's family has a TYPE line before
/// it, and the parser found a sample for every sample line (histogram lines fold into
/// one sample per label set).
fn check_text_format(text: &str) {
    let mut typed: std::collections::HashMap<String, String> = Default::default();
    let mut samples = 0usize;
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(valid_name(rest.split(' ').next().unwrap_or("")), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split(' ');
            let (name, kind) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            assert!(valid_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, number) = line.rsplit_once(' ').expect("sample line");
        assert!(
            number.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&number),
            "{line}"
        );
        let name = series.split('{').next().unwrap_or("");
        assert!(valid_name(name), "{line}");
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split("\",") {
                let (k, v) = pair.split_once("=\"").expect("label pair");
                assert!(valid_name(k), "{line}");
                assert!(!v.trim_end_matches('"').contains('"'), "{line}");
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "no TYPE before {line}");
        samples += 1;
    }
    assert!(samples > 20, "only {samples} samples");
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the Prometheus parser reads it");
    // The parser folds a histogram's buckets into one sample; `_sum` and `_count` stay
    // samples of their own.
    let bucket_lines = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            name.strip_suffix("_bucket")
                .is_some_and(|f| typed.get(f).is_some_and(|k| k == "histogram"))
        })
        .count();
    let histograms = parsed
        .samples
        .iter()
        .filter(|s| matches!(s.value, prometheus_parse::Value::Histogram(_)))
        .count();
    assert_eq!(
        parsed.samples.len() - histograms,
        samples - bucket_lines,
        "the parser skipped sample lines"
    );
    assert!(histograms >= 2, "the two latency histograms");
}

fn json_report(out: &str) -> serde_json::Value {
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON report in {out:?}"));
    serde_json::from_str(line).expect("report JSON")
}

/// Runs `dktp loadgen run ...` to its end; returns its report.
fn loadgen(dir: &Dir, name: &str, args: &[&str]) -> (serde_json::Value, Proc) {
    let mut all = vec!["loadgen", "run"];
    all.extend_from_slice(args);
    all.push("--json");
    let mut p = Proc::start(dir, name, &all, &[("DKTP_LOG", "warn")]);
    let status = p.wait_exit(Duration::from_secs(600)).expect("loadgen ends");
    let mut out = String::new();
    if let Some(o) = p.child.stdout.as_mut() {
        o.read_to_string(&mut out).expect("stdout");
    }
    assert!(status.success(), "loadgen failed:\n{out}\n{}", p.log_text());
    (json_report(&out), p)
}

#[test]
fn a_thousand_clients_echo_through_one_server() {
    let dir = Dir::new("thousand");
    dktp(&dir, &["loadgen", "setup", "fleet", "-n", "1000"]);
    let mut server = Proc::start(
        &dir,
        "server",
        &[
            "serve",
            "--config",
            "fleet/serve.toml",
            "--echo",
            "-l",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--source-rate",
            "off",
        ],
        &[("DKTP_LOG", "warn,dktp=info")],
    );
    let addr = server.wait_addr("listening (TCP)").to_string();
    let metrics = server.wait_addr("metrics at");
    let pid = server.child.id();
    std::thread::sleep(Duration::from_millis(500));
    let (base, _) = rss_kib(pid);

    // 1000 sessions, idle: the server's memory per session.
    let watcher = std::thread::spawn({
        let log = dir.path("idle.log");
        move || {
            let start = Instant::now();
            while !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("holding 1000")
            {
                assert!(start.elapsed() < T, "the idle sessions never settled");
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(500));
            let text = scrape(metrics);
            let sessions = value(&text, "dktp_sessions", &[]);
            (rss_kib(pid).0, sessions)
        }
    });
    let (idle, _) = loadgen(
        &dir,
        "idle",
        &[&addr, "--dir", "fleet", "--messages", "0", "--hold", "3"],
    );
    let (rss_idle, sessions) = watcher.join().expect("watcher");
    assert_eq!(idle["errors"], 0, "{idle}");
    assert_eq!(sessions, 1000.0, "sessions while idle");
    let per_session = (rss_idle.saturating_sub(base)) as f64 / 1000.0;

    // 1000 clients × 100 messages of 1 B to 16 KiB, every echo checked by the load
    // generator.
    let (busy, _) = loadgen(
        &dir,
        "busy",
        &[
            &addr,
            "--dir",
            "fleet",
            "--messages",
            "100",
            "--min-size",
            "1",
            "--max-size",
            "16384",
        ],
    );
    let (_, peak) = rss_kib(pid);
    assert_eq!(busy["errors"], 0, "{busy}");
    assert_eq!(busy["messages"], 100_000, "{busy}");
    let text = scrape(metrics);
    assert_eq!(
        value(&text, "dktp_handshakes_total", &[("result", "ok")]),
        2000.0
    );
    assert_eq!(value(&text, "dktp_refused_total", &[]), 0.0, "{text}");
    let bytes = busy["bytes_each_way"].as_f64().expect("bytes");
    assert_eq!(value(&text, "dktp_rx_bytes_total", &[]), bytes);
    assert_eq!(value(&text, "dktp_tx_bytes_total", &[]), bytes);
    eprintln!(
        "1000 clients: base RSS {base} KiB, idle {rss_idle} KiB ({per_session:.1} KiB per idle \
         session), peak {peak} KiB; handshakes {:.0}/s; echo {:.1} MB/s each way, p50 {:.2} ms, \
         p99 {:.2} ms",
        busy["handshakes_per_s"].as_f64().unwrap_or(0.0),
        busy["mb_per_s_each_way"].as_f64().unwrap_or(0.0),
        busy["echo_p50_ms"].as_f64().unwrap_or(0.0),
        busy["echo_p99_ms"].as_f64().unwrap_or(0.0),
    );
    // The budget for an idle session: its connection state and socket, no buffers.
    assert!(per_session < 64.0, "{per_session:.1} KiB per idle session");
    drop(server);
}

#[test]
fn metrics_parse_as_prometheus_text_and_status_shows_each_peer() {
    let dir = Dir::new("status");
    keys(&dir, "dilithium-s1_kyber-s1_sha3_rcs");
    let mut server = Proc::start(
        &dir,
        "server",
        &serving(&["-l", "127.0.0.1:0", "--echo", "--metrics", "127.0.0.1:0"]),
        &[],
    );
    let addr = server.wait_addr("listening (TCP)").to_string();
    let metrics = server.wait_addr("metrics at");
    let mut client = Proc::start(
        &dir,
        "client",
        &connecting(&addr, &["-L", "127.0.0.1:0", "--linger", "0"]),
        &[],
    );
    let local = client.wait_addr("forwarding local connections");
    // A session that stays up while `status` looks.
    let mut s = super::support::connect_retry(local, T);
    s.write_all(b"hello through dktp").expect("write");
    let mut back = [0u8; 18];
    s.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"hello through dktp");
    // Garbage on the listening socket, counted by reason.
    let mut g = TcpStream::connect(&addr).expect("connect");
    g.write_all(&[0xff; 64]).expect("garbage");
    let mut sink = Vec::new();
    let _ = g.read_to_end(&mut sink);

    let text = scrape(metrics);
    check_text_format(&text);
    assert_eq!(value(&text, "dktp_sessions", &[]), 1.0, "{text}");
    assert_eq!(value(&text, "dktp_rx_bytes_total", &[]), 18.0);
    assert_eq!(
        value(&text, "dktp_refused_total", &[("reason", "malformed")]),
        1.0
    );
    assert_eq!(
        value(&text, "dktp_handshakes_total", &[("result", "ok")]),
        1.0
    );

    let keyid = dktp(&dir, &["show", "srv.dskey"])
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("key id")
                .map(|v| v.trim_matches([' ', ':']).to_string())
        })
        .expect("key id line");
    let out = dktp(&dir, &["status", &metrics.to_string()]);
    assert!(out.contains(&format!("peer: {keyid}")), "{out}");
    assert!(out.contains("address: 127.0.0.1:"), "{out}");
    assert!(out.contains("latest handshake: "), "{out}");
    assert!(out.contains("generation: 1"), "{out}");
    assert!(out.contains("transfer: 18 B received, 18 B sent"), "{out}");
    assert!(out.contains("refused: 1 (malformed 1)"), "{out}");
    drop(s);
}

/// What the attack threads did.
#[derive(Default)]
struct Attack {
    garbage: AtomicU64,
    truncated: AtomicU64,
    replayed: AtomicU64,
    flood: AtomicU64,
}

fn read_pair(dir: &Dir, i: usize) -> PeerKeys {
    let local = LocalPeerKey::from_bytes(
        &std::fs::read(dir.path(&format!("fleet/keys/cli-{i}.dskey"))).expect("dskey"),
    )
    .expect("local key");
    let remote = RemotePeerKey::from_bytes(
        &std::fs::read(dir.path(&format!("fleet/keys/srv-{i}.dpkey"))).expect("dpkey"),
    )
    .expect("remote key");
    PeerKeys { local, remote }
}

/// A signed connect request of `keys`, as a client would send it now.
fn connect_request(keys: &PeerKeys) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut c = Connection::connect(keys.clone(), Settings::default(), now, &mut OsEntropy)
        .expect("connect request");
    match c.poll_output() {
        Some(Output::Transmit(p)) => p,
        other => panic!("{other:?}"),
    }
}

/// Sends `bytes` from `source` (then ends the stream if `eof`) and waits (briefly) for the
/// server to answer or close.
fn hit(server: SocketAddr, source: [u8; 4], bytes: &[u8], eof: bool) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let _ = socket.bind(&SocketAddr::from((source, 0)).into());
    if socket
        .connect_timeout(&server.into(), Duration::from_secs(2))
        .is_err()
    {
        return;
    }
    let mut s: TcpStream = socket.into();
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(bytes);
    if eof {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut sink = [0u8; 256];
    let _ = s.read(&mut sink);
}

#[test]
fn hostile_load_does_not_disturb_well_behaved_sessions() {
    // 100 well-behaved clients (pairs 0..100) and 300 pairs for the attacker's flood of
    // valid connect requests.
    const RATE: u64 = 20;
    let dir = Dir::new("hostile");
    dktp(
        &dir,
        &[
            "loadgen",
            "setup",
            "fleet",
            "-n",
            "400",
            "--config",
            "dilithium-s1_kyber-s1_sha3_rcs",
        ],
    );
    let rate = RATE.to_string();
    let mut server = Proc::start(
        &dir,
        "server",
        &[
            "serve",
            "--config",
            "fleet/serve.toml",
            "--echo",
            "-l",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--source-rate",
            "200",
            "--handshake-rate",
            &rate,
            "--handshake-timeout",
            "5s",
        ],
        &[("DKTP_LOG", "warn,dktp=info")],
    );
    let addr = server.wait_addr("listening (TCP)");
    let metrics = server.wait_addr("metrics at");
    let pid = server.child.id();
    let good = [
        addr.to_string(),
        "--dir".into(),
        "fleet".into(),
        "-n".into(),
        "100".into(),
        "--seconds".into(),
        "8".into(),
        "--min-size".into(),
        "1".into(),
        "--max-size".into(),
        "1500".into(),
        "--pause".into(),
        "10ms".into(),
        "--attempts".into(),
        "30".into(),
    ];
    let good: Vec<&str> = good.iter().map(String::as_str).collect();

    // The same load without the attack: the baseline.
    let (calm, _) = loadgen(&dir, "calm", &good);
    assert_eq!(calm["errors"], 0, "{calm}");
    let (rss_calm, _) = rss_kib(pid);

    // The attack, from other source addresses, while the same load runs again.
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Attack::default());
    let mut threads = Vec::new();
    let started = Arc::new(AtomicBool::new(false));
    {
        // Garbage and truncated packets.
        let (stop, counts, started) = (stop.clone(), counts.clone(), started.clone());
        threads.push(std::thread::spawn(move || {
            let mut header = vec![0x01u8, 0x00, 0x10, 0x00, 0x00];
            header.extend_from_slice(&[0u8; 16]);
            while !stop.load(Ordering::Relaxed) {
                if started.load(Ordering::Relaxed) {
                    hit(addr, [127, 0, 0, 2], &[0xa5; 300], false);
                    counts.garbage.fetch_add(1, Ordering::Relaxed);
                    // A connect request's header declaring 4 KiB, then only 100 bytes and
                    // the end of the stream.
                    let mut t = header.clone();
                    t.extend_from_slice(&[7u8; 100]);
                    hit(addr, [127, 0, 0, 3], &t, true);
                    counts.truncated.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    for k in 0..4u8 {
        // Clients that send one byte a second (of a real connect request).
        let (stop, started) = (stop.clone(), started.clone());
        let request = connect_request(&read_pair(&dir, 399 - usize::from(k)));
        threads.push(std::thread::spawn(move || {
            while !started.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let Ok(mut s) = TcpStream::connect(addr) else {
                return;
            };
            for b in request {
                if stop.load(Ordering::Relaxed) || s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }));
        let _ = k;
    }
    {
        // Replays of one connect request that the server has seen, and a flood of distinct
        // valid requests at ten times the server's handshake rate.
        let (stop, counts, started) = (stop.clone(), counts.clone(), started.clone());
        let pairs: Vec<PeerKeys> = (100..396).map(|i| read_pair(&dir, i)).collect();
        threads.push(std::thread::spawn(move || {
            while !started.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let seen = connect_request(&pairs[0]);
            hit(addr, [127, 0, 0, 4], &seen, false);
            let interval = Duration::from_secs_f64(1.0 / (10 * RATE) as f64);
            let mut next = Instant::now();
            let mut i = 1usize;
            while !stop.load(Ordering::Relaxed) {
                hit(addr, [127, 0, 0, 4], &seen, false);
                counts.replayed.fetch_add(1, Ordering::Relaxed);
                let p = &pairs[i % pairs.len()];
                i += 1;
                let source = [127, 0, 0, 10 + (i % 8) as u8];
                hit(addr, source, &connect_request(p), false);
                counts.flood.fetch_add(1, Ordering::Relaxed);
                next += interval;
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        }));
    }
    let attack_rss = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut max = 0;
            while !stop.load(Ordering::Relaxed) {
                max = max.max(rss_kib(pid).0);
                std::thread::sleep(Duration::from_millis(100));
            }
            max
        }
    });
    // The attack starts once the good clients are in.
    let waiter = std::thread::spawn({
        let started = started.clone();
        move || {
            let start = Instant::now();
            while value(&scrape(metrics), "dktp_sessions", &[]) < 100.0 {
                assert!(start.elapsed() < T, "the good clients never connected");
                std::thread::sleep(Duration::from_millis(50));
            }
            started.store(true, Ordering::Relaxed);
        }
    });
    let (attacked, _) = loadgen(&dir, "attacked", &good);
    waiter.join().expect("waiter");
    // Long enough for the slow clients to meet the handshake deadline.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("attack thread");
    }
    let rss_attack = attack_rss.join().expect("rss thread");

    // The well-behaved sessions lost nothing; their latency held.
    assert_eq!(attacked["errors"], 0, "{attacked}");
    let p99_calm = calm["echo_p99_ms"].as_f64().expect("p99");
    let p99_attacked = attacked["echo_p99_ms"].as_f64().expect("p99");
    let text = scrape(metrics);
    let refused = |r: &str| value(&text, "dktp_refused_total", &[("reason", r)]) + 0.0;
    eprintln!(
        "hostile load: p99 {p99_calm:.2} ms calm, {p99_attacked:.2} ms under attack; RSS \
         {rss_calm} KiB calm, at most {rss_attack} KiB under attack; sent: {} garbage, {} \
         truncated, {} replays, {} flood requests; refused: malformed {}, replay {}, \
         overloaded {}, timeout {}, source_rate {}",
        counts.garbage.load(Ordering::Relaxed),
        counts.truncated.load(Ordering::Relaxed),
        counts.replayed.load(Ordering::Relaxed),
        counts.flood.load(Ordering::Relaxed),
        refused("malformed"),
        refused("replay"),
        refused("overloaded"),
        refused("timeout"),
        refused("source_rate"),
    );
    // Scheduler noise on a shared two-core machine is a millisecond or two: the baseline
    // counts as at least 2 ms.
    assert!(
        p99_attacked <= 3.0 * p99_calm.max(2.0),
        "p99 {p99_attacked:.2} ms under attack against {p99_calm:.2} ms"
    );
    assert!(
        rss_attack < rss_calm + 64 * 1024,
        "RSS grew from {rss_calm} to {rss_attack} KiB"
    );
    // Every kind of refusal was counted by its reason.
    assert!(
        refused("malformed") >= counts.garbage.load(Ordering::Relaxed) as f64,
        "{text}"
    );
    assert!(refused("replay") > 0.0, "{text}");
    assert!(refused("overloaded") > 0.0, "{text}");
    assert!(refused("timeout") >= 4.0, "{text}");
    drop(server);
}
