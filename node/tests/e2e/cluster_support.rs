#![allow(dead_code)] // shared with the cluster bench, which uses a part
//! Real etcd members and a real HAProxy for the cluster tests: processes started by the
//! test on free loopback ports, killed on drop.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{Dir, dktp};

/// Whether the cluster tests can run here; they print why not and pass, unless
/// `DKTP_CI=1` (CI installs etcd and HAProxy), where a missing tool fails them.
pub fn tools_present(what: &[&str]) -> bool {
    let missing: Vec<&str> = what
        .iter()
        .copied()
        .filter(|t| {
            Command::new(t)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("DKTP_CI").as_deref() != Ok("1"),
        "DKTP_CI=1 and {missing:?} not installed (Debian: etcd-server, haproxy)"
    );
    eprintln!("skipped: {missing:?} not installed (Debian packages etcd-server and haproxy)");
    false
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A process killed on drop, its output in a log file.
pub struct Guarded {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub args: Vec<String>,
    pub program: String,
}

impl Guarded {
    pub fn start(dir: &Dir, name: &str, program: &str, args: &[String]) -> Guarded {
        let log = dir.path(&format!("{name}.log"));
        let mut g = Guarded {
            child: None,
            log,
            args: args.to_vec(),
            program: program.to_string(),
        };
        g.restart();
        g
    }

    /// Starts the process again (same arguments, same data).
    pub fn restart(&mut self) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let err = file.try_clone().expect("log file");
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.program));
        self.child = Some(child);
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A three-member etcd cluster on loopback.
pub struct Etcd {
    pub members: Vec<Guarded>,
    pub clients: Vec<SocketAddr>,
}

impl Etcd {
    pub fn start(dir: &Dir, n: usize) -> Etcd {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let data = dir.path(&format!("etcd-m{i}"));
            let args: Vec<String> = [
                "--name",
                &format!("m{i}"),
                "--data-dir",
                &data.to_string_lossy(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "dktp-test",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            members.push(Guarded::start(dir, &format!("etcd-m{i}"), "etcd", &args));
        }
        let clients = ports
            .iter()
            .map(|(c, _)| SocketAddr::from(([127, 0, 0, 1], *c)))
            .collect();
        let e = Etcd { members, clients };
        e.wait_ready(dir);
        e
    }

    /// `etcd://A,B,C/PREFIX`.
    pub fn store(&self, prefix: &str) -> String {
        let hosts: Vec<String> = self.clients.iter().map(ToString::to_string).collect();
        format!("etcd://{}/{prefix}", hosts.join(","))
    }

    /// Waits until the cluster answers a linearizable request (a quorum).
    pub fn wait_ready(&self, dir: &Dir) {
        let start = Instant::now();
        let store = self.store("ready");
        loop {
            let out = Command::new(super::support::BIN)
                .args(["peer", "list", "--store", &store])
                .current_dir(&dir.0)
                .output()
                .expect("dktp peer list");
            if out.status.success() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "etcd never answered: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.members
                    .iter()
                    .map(Guarded::log_text)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// HAProxy in TCP mode, round robin over `servers`, on a free port.
pub struct Haproxy {
    pub proc: Guarded,
    pub addr: SocketAddr,
}

impl Haproxy {
    pub fn start(dir: &Dir, servers: &[SocketAddr]) -> Haproxy {
        let port = free_port();
        let mut cfg = format!(
            "global\n  maxconn 8192\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  \
             timeout client 1h\n  timeout server 1h\n  retries 2\n  option redispatch\n\n\
             listen dktp\n  bind 127.0.0.1:{port}\n  balance roundrobin\n"
        );
        for (i, s) in servers.iter().enumerate() {
            cfg.push_str(&format!(
                "  server n{i} {s} check inter 200ms fall 2 rise 1\n"
            ));
        }
        let path = dir.path("haproxy.cfg");
        std::fs::write(&path, cfg).expect("haproxy.cfg");
        let args = vec![
            "-db".to_string(),
            "-f".into(),
            path.to_string_lossy().into(),
        ];
        let proc = Guarded::start(dir, "haproxy", "haproxy", &args);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "haproxy did not listen:\n{}",
                proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Haproxy { proc, addr }
    }
}

/// The configuration of the cluster tests' and bench's pairs (the cheapest handshake).
pub const CONFIG: &str = "dilithium-s1_kyber-s1_sha3_rcs";

/// `pairs` pairs made by `dktp loadgen setup` in `fleet` (in [`CONFIG`]), provisioned into
/// `store`.
pub fn provision(dir: &Dir, store: &str, pairs: &str) {
    dktp(
        dir,
        &["loadgen", "setup", "fleet", "-n", pairs, "--config", CONFIG],
    );
    dktp(
        dir,
        &["peer", "import", "fleet/serve.toml", "--store", store],
    );
}
