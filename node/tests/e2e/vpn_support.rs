#![allow(dead_code)] // shared with the VPN bench, which uses a part
//! Hosts for the VPN tests: network namespaces that the test makes itself (`ip netns`),
//! linked by veth pairs, removed (with every process left in them) on drop; `dktp up` and
//! `dktp down` run inside them with the built binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::support::{BIN, Dir, dktp};

/// Whether the VPN tests can run here (root, TUN, `ip netns`, ping, iperf3); they print
/// why not and pass, unless `DKTP_CI=1` (CI runs as root and installs the tools), where a
/// missing piece fails them.
pub fn vpn_possible(extra_tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    let uid = Command::new("id").arg("-u").output().ok();
    if uid.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()) != Some("0".into()) {
        missing.push("root (network namespaces and TUN devices need it)".to_string());
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun".into());
    }
    for t in ["ip", "ping", "iperf3"].iter().chain(extra_tools) {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing.push((*t).to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("DKTP_CI").as_deref() != Ok("1"),
        "DKTP_CI=1, and the VPN tests cannot run: missing {missing:?}"
    );
    eprintln!(
        "SKIPPED: the VPN tests need {missing:?} (Debian: iproute2, iputils-ping, iperf3; run as root)"
    );
    false
}

/// Runs a command; its output, whatever its status.
pub fn run(cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// The standard output of a command that had to succeed (else a panic with all it said).
pub fn checked(o: &Output, what: impl std::fmt::Display) -> String {
    assert!(
        o.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a command that must succeed; its standard output.
pub fn must(cmd: &[&str]) -> String {
    checked(&run(cmd), format!("{cmd:?}"))
}

/// An interface file for `dktp up`: the `[Interface]` lines, then a `[Peer]` for each
/// (local key, remote key, AllowedIPs, Endpoint) given as file stems and text.
pub fn interface(lines: &str, peers: &[(&str, &str, &str, Option<&str>)]) -> String {
    let mut s = format!("[Interface]\n{lines}\n");
    for (local, remote, allowed, endpoint) in peers {
        s += &format!(
            "\n[Peer]\nName = {remote}\nLocalKey = {local}.dskey\nRemoteKey = {remote}.dpkey\nAllowedIPs = {allowed}\n"
        );
        if let Some(e) = endpoint {
            s += &format!("Endpoint = {e}\n");
        }
    }
    s
}

/// A network namespace: a host of the test.
pub struct Host {
    pub ns: String,
}

impl Host {
    /// A new namespace, its loopback up.
    pub fn new(tag: &str) -> Host {
        static N: AtomicU32 = AtomicU32::new(0);
        let ns = format!(
            "dktp{}-{}{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        must(&["ip", "netns", "add", &ns]);
        let h = Host { ns };
        h.must(&["ip", "link", "set", "lo", "up"]);
        h
    }

    /// `cmd` inside the namespace.
    pub fn cmd(&self, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).args(cmd);
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, cmd: &[&str]) -> Output {
        self.cmd(cmd)
            .output()
            .unwrap_or_else(|e| panic!("running {cmd:?} in {}: {e}", self.ns))
    }

    pub fn must(&self, cmd: &[&str]) -> String {
        checked(&self.run(cmd), format_args!("{cmd:?} in {}", self.ns))
    }

    /// Links this host and `other` with a veth pair, `mine`/`theirs` given as ADDR/PREFIX.
    pub fn link(&self, other: &Host, dev: &str, other_dev: &str, mine: &str, theirs: &str) {
        must(&[
            "ip", "-n", &self.ns, "link", "add", dev, "type", "veth", "peer", "name", other_dev,
            "netns", &other.ns,
        ]);
        self.must(&["ip", "address", "add", mine, "dev", dev]);
        self.must(&["ip", "link", "set", dev, "up"]);
        other.must(&["ip", "address", "add", theirs, "dev", other_dev]);
        other.must(&["ip", "link", "set", other_dev, "up"]);
    }

    /// `dktp ARGS` in the namespace, in `dir`, with its pid and log files in `dir`.
    pub fn dktp(&self, dir: &Dir, args: &[&str]) -> Output {
        let mut c = self.cmd(&[BIN]);
        c.args(args)
            .current_dir(&dir.0)
            .env("DKTP_RUN_DIR", &dir.0)
            .env("DKTP_LOG", "debug");
        c.output().expect("run dktp")
    }

    /// `dktp up FILE`, which must succeed (it returns once the interface is up).
    pub fn up(&self, dir: &Dir, conf: &str) {
        checked(
            &self.dktp(dir, &["up", conf]),
            format_args!("dktp up {conf} in {}", self.ns),
        );
    }

    /// Whether interface `dev` exists here.
    pub fn has_link(&self, dev: &str) -> bool {
        self.run(&["ip", "link", "show", "dev", dev])
            .status
            .success()
    }

    /// A counter of `/sys/class/net/DEV/statistics`.
    pub fn stat(&self, dev: &str, what: &str) -> u64 {
        self.must(&["cat", &format!("/sys/class/net/{dev}/statistics/{what}")])
            .trim()
            .parse()
            .expect("a counter")
    }

    /// Pings `addr` until a reply comes or `timeout` passes.
    pub fn ping_within(&self, addr: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .run(&["ping", "-c", "1", "-W", "1", addr])
                .status
                .success()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Kills every process in the namespace.
    pub fn kill_all(&self) {
        let pids = run(&["ip", "netns", "pids", &self.ns]);
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = run(&["kill", "-9", pid]);
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill_all();
        let _ = run(&["ip", "netns", "del", &self.ns]);
    }
}

/// A pair's keys for a VPN link: `A_B.dskey` (A's side) and `B_A.dskey` (B's), each
/// linked to the other's remote key.
pub fn vpn_keys(dir: &Dir, a: &str, b: &str, config: &str) {
    let (ab, ba) = (format!("{a}_{b}"), format!("{b}_{a}"));
    dktp(dir, &["keygen", &ab, "--config", config]);
    dktp(dir, &["keygen", &ba, "--config", config]);
    dktp(
        dir,
        &["link", &format!("{ab}.dskey"), &format!("{ba}.dpkey")],
    );
    dktp(
        dir,
        &["link", &format!("{ba}.dskey"), &format!("{ab}.dpkey")],
    );
}

/// The pid `dktp up` recorded for interface `dev`.
pub fn up_pid(dir: &Dir, dev: &str) -> String {
    std::fs::read_to_string(dir.path(&format!("{dev}.pid")))
        .expect("pid file")
        .trim()
        .to_string()
}

/// An iperf3 run from `client` to `server_addr` (a server on `server`): its JSON report.
/// The client retries while the server is not listening yet.
pub fn iperf(server: &Host, client: &Host, server_addr: &str, args: &[&str]) -> serde_json::Value {
    let mut srv = server
        .cmd(&["iperf3", "-s", "-1", "-B", server_addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    let mut cmd = vec!["iperf3", "-c", server_addr, "-J"];
    cmd.extend_from_slice(args);
    let mut attempts = 0;
    let v = loop {
        std::thread::sleep(Duration::from_millis(300));
        attempts += 1;
        let o = client.run(&cmd);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "iperf3 {args:?}: {e}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        let refused = v["error"]
            .as_str()
            .is_some_and(|e| e.contains("unable to connect"));
        if !refused || attempts >= 20 {
            break v;
        }
    };
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(
        v.get("error").is_none(),
        "iperf3 {args:?} failed: {}",
        v["error"]
    );
    v
}
