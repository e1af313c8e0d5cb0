//! Clusters of concentrators on etcd, with real processes: a three-member etcd cluster,
//! HAProxy in TCP mode (round robin, no stickiness), `dktp serve` nodes on the same store,
//! and `dktp loadgen` clients (the race test plays a client with the engine in process).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use dktp::connection::Connection;
use dktp::generation::{Generations, SecretsChange};
use dktp::kex::{PeerKeys, Settings};
use dktp::peer_key::{LocalPeerKey, RemotePeerKey};
use dktp::pq::OsEntropy;
use dktp::session::{Event, Output};

use super::cluster_support::{Etcd, Haproxy, free_port, provision, tools_present};
use super::support::{Dir, Proc, dktp};

/// A `dktp serve` node on the cluster's store, on a port chosen in advance (HAProxy's
/// configuration names it).
fn node(dir: &Dir, name: &str, store: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "serve",
        "--store",
        store,
        "--node",
        name,
        "--echo",
        "-l",
        &listen,
        "--source-rate",
        "off",
    ];
    args.extend_from_slice(extra);
    let mut p = Proc::start(dir, name, &args, &[("DKTP_LOG", "info")]);
    let addr = p.wait_addr("listening (TCP)");
    (p, addr)
}

/// `dktp loadgen run ...`, to its end; its JSON report.
fn loadgen(dir: &Dir, name: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["loadgen", "run"];
    all.extend_from_slice(args);
    all.push("--json");
    let mut p = Proc::start(dir, name, &all, &[("DKTP_LOG", "warn")]);
    p.wait_exit(Duration::from_secs(600)).expect("loadgen ends");
    let mut out = String::new();
    if let Some(o) = p.child.stdout.as_mut() {
        o.read_to_string(&mut out).expect("stdout");
    }
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no report from {name}:\n{out}\n{}", p.log_text()));
    serde_json::from_str(line).expect("report")
}

#[test]
fn a_node_killed_under_load_costs_its_clients_one_reconnect() {
    if !tools_present(&["etcd", "haproxy"]) {
        return;
    }
    let dir = Dir::new("cluster-kill");
    let etcd = Etcd::start(&dir, 3);
    let store = etcd.store("kill");
    provision(&dir, &store, "60");
    let (n0, a0) = node(&dir, "n0", &store, &[]);
    let (mut n1, a1) = node(&dir, "n1", &store, &[]);
    let (n2, a2) = node(&dir, "n2", &store, &[]);
    let lb = Haproxy::start(&dir, &[a0, a1, a2]);
    let lb_addr = lb.addr.to_string();

    // 60 clients reconnect over and over through HAProxy; n1 dies in the middle.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        let _ = n1.child.kill();
        let _ = n1.child.wait();
        n1
    });
    let r = loadgen(
        &dir,
        "reconnects",
        &[
            &lb_addr,
            "--dir",
            "fleet",
            "--handshakes",
            "12",
            "--attempts",
            "20",
        ],
    );
    let n1 = killer.join().expect("killer");
    assert_eq!(r["errors"], 0, "{r}");
    let reconnects = r["handshakes"].as_u64().expect("handshakes");
    assert!(reconnects >= 200, "{reconnects} reconnects");
    // No desync: every pair connects again, through either survivor, on its newest
    // secrets.
    let check = loadgen(
        &dir,
        "after",
        &[&lb_addr, "--dir", "fleet", "--messages", "2"],
    );
    assert_eq!(check["errors"], 0, "{check}");
    for (p, a) in [(&n0, a0), (&n2, a2)] {
        let direct = loadgen(
            &dir,
            &format!("direct-{}", a.port()),
            &[
                &a.to_string(),
                "--dir",
                "fleet",
                "-n",
                "10",
                "--messages",
                "1",
            ],
        );
        assert_eq!(direct["errors"], 0, "{direct}\n{}", p.log_text());
    }
    // n1's lease lapses: the cluster's status lists the two survivors only.
    let start = Instant::now();
    loop {
        let out = dktp(&dir, &["status", "--cluster", "--store", &store]);
        if out.contains("nodes: 2") {
            assert!(
                out.contains("node: n0") && out.contains("node: n2"),
                "{out}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{out}");
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "cluster: {reconnects} reconnects through HAProxy with n1 killed after 5 s, 0 errors"
    );
    drop((n0, n1, n2, lb, etcd));
}

#[test]
fn losing_the_etcd_quorum_refuses_new_handshakes_and_keeps_sessions() {
    if !tools_present(&["etcd"]) {
        return;
    }
    let dir = Dir::new("cluster-quorum");
    let mut etcd = Etcd::start(&dir, 3);
    let store = etcd.store("quorum");
    provision(&dir, &store, "12");
    let (n0, a0) = node(&dir, "n0", &store, &[]);
    let a0s = a0.to_string();

    // One member down: service goes on.
    etcd.members[2].kill();
    let r = loadgen(
        &dir,
        "one-down",
        &[&a0s, "--dir", "fleet", "-n", "4", "--messages", "3"],
    );
    assert_eq!(r["errors"], 0, "{r}");

    // Sessions established now echo for 12 s while the quorum goes away and comes back.
    let sessions = Proc::start(
        &dir,
        "sessions",
        &[
            "loadgen",
            "run",
            &a0s,
            "--dir",
            "fleet",
            "-n",
            "4",
            "--seconds",
            "12",
            "--max-size",
            "512",
            "--pause",
            "20ms",
            "--json",
        ],
        &[("DKTP_LOG", "warn")],
    );
    std::thread::sleep(Duration::from_secs(3));
    etcd.members[1].kill();
    // The node notices within its keep-alive and refuses new handshakes (0x0b).
    let mut n0 = n0;
    n0.wait_log("refusing new handshakes", Duration::from_secs(20));
    let refused = loadgen(
        &dir,
        "no-quorum",
        &[
            &a0s,
            "--dir",
            "fleet",
            "--first",
            "4",
            "-n",
            "1",
            "--messages",
            "1",
            "--attempts",
            "1",
        ],
    );
    assert_eq!(refused["errors"], 1, "{refused}");
    let why = refused["error_samples"][0].as_str().unwrap_or("");
    assert!(
        why.contains("HostsExceeded") || why.contains("0x0b"),
        "{why}"
    );
    // The quorum comes back; handshakes resume by themselves.
    etcd.members[1].restart();
    etcd.members[2].restart();
    let back = loadgen(
        &dir,
        "quorum-back",
        &[
            &a0s,
            "--dir",
            "fleet",
            "--first",
            "4",
            "-n",
            "4",
            "--messages",
            "1",
            "--attempts",
            "30",
        ],
    );
    assert_eq!(back["errors"], 0, "{back}");
    n0.wait_log("accepting new handshakes", Duration::from_secs(30));
    // The sessions established before the loss lost nothing.
    let mut sessions = sessions;
    let status = sessions
        .wait_exit(Duration::from_secs(120))
        .expect("sessions end");
    let mut out = String::new();
    if let Some(o) = sessions.child.stdout.as_mut() {
        o.read_to_string(&mut out).expect("stdout");
    }
    assert!(status.success(), "{out}\n{}", sessions.log_text());
    let report: serde_json::Value = serde_json::from_str(
        out.lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .expect("report"),
    )
    .expect("json");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["messages"].as_u64().unwrap_or(0) > 100, "{report}");
    drop((n0, etcd));
}

/// Drives one client connection over a blocking socket to its end: established (with the
/// record it confirmed) or not.
fn drive(mut conn: Connection, addr: SocketAddr) -> Option<Generations> {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    };
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = vec![0u8; 65536];
    let mut confirmed = None;
    loop {
        while let Some(out) = conn.poll_output() {
            match out {
                Output::Transmit(p) if s.write_all(&p).is_err() => return None,
                Output::Transmit(_) => {}
                Output::Event(Event::Secrets(u)) if u.change == SecretsChange::Confirmed => {
                    confirmed = Some(u.record)
                }
                Output::Event(Event::Established) => {
                    let _ = conn.close(now());
                    while let Some(Output::Transmit(p)) = conn.poll_output() {
                        let _ = s.write_all(&p);
                    }
                    return confirmed;
                }
                _ => {}
            }
        }
        if conn.is_closed() {
            return None;
        }
        let n = s.read(&mut buf).unwrap_or(0);
        let r = if n == 0 {
            conn.handle_end_of_stream(now(), &mut OsEntropy)
        } else {
            conn.handle_bytes(&buf[..n], now(), &mut OsEntropy)
        };
        if r.is_err() {
            return None;
        }
    }
}

#[test]
fn one_peer_racing_to_two_nodes_commits_exactly_once() {
    if !tools_present(&["etcd"]) {
        return;
    }
    const RACES: usize = 100;
    let dir = Dir::new("cluster-race");
    let etcd = Etcd::start(&dir, 3);
    let store = etcd.store("race");
    provision(&dir, &store, "1");
    let (na, a) = node(&dir, "na", &store, &[]);
    let (nb, b) = node(&dir, "nb", &store, &[]);
    let keys = PeerKeys {
        local: LocalPeerKey::from_bytes(
            &std::fs::read(dir.path("fleet/keys/cli-0.dskey")).expect("dskey"),
        )
        .expect("local"),
        remote: RemotePeerKey::from_bytes(
            &std::fs::read(dir.path("fleet/keys/srv-0.dpkey")).expect("dpkey"),
        )
        .expect("remote"),
    };
    let mut record = Generations::of_keys(&keys);
    let mut wins = [0usize; 2];
    for race in 0..RACES {
        // Both connect requests carry the same second: each node has its own replay gate.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let start = |r: &Generations| {
            Connection::connect_with(
                keys.clone(),
                r.clone(),
                Settings::default(),
                now,
                &mut OsEntropy,
            )
            .expect("connect")
        };
        let (ca, cb) = (start(&record), start(&record));
        let ta = std::thread::spawn(move || drive(ca, a));
        let tb = std::thread::spawn(move || drive(cb, b));
        let (ra, rb) = (ta.join().expect("a"), tb.join().expect("b"));
        match (ra, rb) {
            (Some(r), None) => {
                wins[0] += 1;
                record = r;
            }
            (None, Some(r)) => {
                wins[1] += 1;
                record = r;
            }
            (x, y) => panic!(
                "race {race}: {} established\n{}\n{}",
                usize::from(x.is_some()) + usize::from(y.is_some()),
                na.log_text(),
                nb.log_text()
            ),
        }
        // Let the other node's watch deliver the new record, and the next second come (a
        // pair signs one connect request a second).
        std::thread::sleep(Duration::from_millis(1000));
    }
    // Both sides hold equal secrets: an ordinary session on each node succeeds.
    for addr in [a, b] {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let c = Connection::connect_with(
            keys.clone(),
            record.clone(),
            Settings::default(),
            now,
            &mut OsEntropy,
        )
        .expect("connect");
        record = drive(c, addr).unwrap_or_else(|| panic!("a session on {addr} after the races"));
        std::thread::sleep(Duration::from_millis(1100));
    }
    // Each race had one loser: most are refused at their commit (the compare-and-swap);
    // a loser whose node already holds the winner's record by the watch fails earlier,
    // at its handshake. Either way it never committed (one established per race, above).
    let refusals =
        na.count_log("cannot store the secrets") + nb.count_log("cannot store the secrets");
    eprintln!(
        "{RACES} races: node a won {}, node b won {}; {refusals} commits refused",
        wins[0], wins[1]
    );
    assert!(
        refusals > 0 && refusals <= RACES,
        "{refusals} refused commits in {RACES} races"
    );
    drop((na, nb, etcd));
}
