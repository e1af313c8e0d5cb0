#![allow(dead_code)] // shared with the tunnel bench, which uses a part
//! Real `dktp` processes for the end-to-end tests: a guard that kills on drop, logs in
//! files the test can wait on, key pairs made with `dktp keygen` and `dktp link`, a TCP echo
//! server to forward to.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_dktp");

/// A folder of its own per test, removed when the test passes.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Dir {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "dktp-e2e-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("test dir");
        Dir(d)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `dktp ARGS` to completion; returns its standard output, panics with all of its
/// output unless it succeeds.
pub fn dktp(dir: &Dir, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(&dir.0)
        .output()
        .expect("run dktp");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dktp {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A server's and a client's key files, made and linked with the CLI:
/// `srv.dskey`/`srv.dpkey` and `cli.dskey`/`cli.dpkey` in `dir`.
pub fn keys(dir: &Dir, config: &str) {
    dktp(dir, &["keygen", "srv", "--config", config]);
    dktp(dir, &["keygen", "cli", "--config", config]);
    dktp(dir, &["link", "srv.dskey", "cli.dpkey"]);
    dktp(dir, &["link", "cli.dskey", "srv.dpkey"]);
}

/// `dktp serve` for the pair [`keys`] made, with `extra` flags.
pub fn serving<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["serve", "-s", "srv.redb", "-p", "srv.dskey:cli.dpkey"];
    v.extend_from_slice(extra);
    v
}

/// `dktp connect SERVER` for the pair [`keys`] made, with `extra` flags.
pub fn connecting<'a>(server: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "connect",
        server,
        "-k",
        "cli.dskey",
        "-p",
        "srv.dpkey",
        "-s",
        "cli.redb",
    ];
    v.extend_from_slice(extra);
    v
}

/// A running `dktp` process, killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    /// Starts `dktp ARGS` in `dir`, stderr to `NAME.log`.
    pub fn start(dir: &Dir, name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::start_with_stdin(dir, name, args, env, Stdio::null())
    }

    pub fn start_with_stdin(
        dir: &Dir,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Stdio,
    ) -> Proc {
        let log = dir.path(&format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(&dir.0)
            .env("DKTP_LOG", "debug")
            .env_remove("DKTP_TEST_CRASH_AT")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn dktp");
        Proc {
            child,
            log,
            name: name.to_string(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `needle`; returns that line.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.log_text().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // One last look: the line may have landed as it exited.
                if let Some(line) = self.log_text().lines().find(|l| l.contains(needle)) {
                    return line.to_string();
                }
                panic!(
                    "{} exited ({status}) before logging {needle:?}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "{} did not log {needle:?} in {timeout:?}:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `n` log lines contain `needle`.
    pub fn wait_count(&self, needle: &str, n: usize) {
        let start = Instant::now();
        while self.count_log(needle) < n {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{}: expected {n} log lines with {needle:?}:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `addr=` of the first `n` log lines containing `needle`, once there are `n`.
    pub fn addrs(&self, needle: &str, n: usize) -> Vec<SocketAddr> {
        self.wait_count(needle, n);
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
            .map(|a| a.parse().expect("address"))
            .collect()
    }

    /// How many log lines contain `needle`.
    pub fn count_log(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The address in the first log line containing `needle` (`addr=...`).
    pub fn wait_addr(&mut self, needle: &str) -> SocketAddr {
        let line = self.wait_log(needle, Duration::from_secs(60));
        let a = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap_or_else(|| panic!("no addr= in {line:?}"));
        a.parse()
            .unwrap_or_else(|_| panic!("bad address in {line:?}"))
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP echo server on `addr` (port 0 for any), in a thread per connection.
pub fn echo_server(addr: &str) -> SocketAddr {
    let l = TcpListener::bind(addr).expect("echo bind");
    let a = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let Ok(mut w) = s.try_clone() else { return };
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if w.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    a
}

/// `len` bytes that differ from run to run.
pub fn random_bytes(len: usize) -> Vec<u8> {
    use dktp::pq::Entropy;
    let mut seed = [0u8; 8];
    dktp::pq::OsEntropy.fill(&mut seed).expect("random");
    let mut x = u64::from_le_bytes(seed) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn digest(bytes: &[u8]) -> String {
    hex::encode(dktp::keccak::sha3_256(bytes))
}

/// Sends `data` through `addr` and reads as many bytes back (concurrently, so neither
/// direction waits on the other); returns what came back.
pub fn echo_through(addr: SocketAddr, data: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = connect_retry(addr, timeout);
    s.set_read_timeout(Some(timeout)).expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let send = data.to_vec();
    let writer = std::thread::spawn(move || w.write_all(&send).map(|()| w));
    let mut back = vec![0u8; data.len()];
    let r = s.read_exact(&mut back);
    let w = writer.join().expect("writer thread");
    assert!(w.is_ok(), "write through the tunnel: {:?}", w.err());
    assert!(
        r.is_ok(),
        "read through the tunnel: {r:?} ({} bytes wanted)",
        data.len()
    );
    back
}

pub fn connect_retry(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) => {
                assert!(start.elapsed() < timeout, "connect {addr}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

pub fn sha3_file(p: &Path) -> String {
    digest(&std::fs::read(p).expect("read file"))
}

/// The single-stream RCS-512 seal rate at 16 KiB on the best backend, as `dktp speed`
/// measures it now (the benches' baseline): the backend's name and MB/s.
pub fn seal_rate(dir: &Dir) -> (String, f64) {
    let speed = dktp(dir, &["speed", "--json", "--no-pq", "--seconds", "0.5"]);
    let v: serde_json::Value = serde_json::from_str(&speed).expect("speed json");
    let backend = v["backend_selected"].as_str().expect("backend").to_string();
    let seal = v["rcs512_seal_mbps"][&backend]["16384"]
        .as_f64()
        .expect("rcs512_seal_mbps");
    (backend, seal)
}
