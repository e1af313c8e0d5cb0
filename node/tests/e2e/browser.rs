//! The wasm client in a real browser: headless Chromium loads a page from this test's HTTP
//! server on 127.0.0.1, and the page runs the client against a real `dktp serve --ws
//! --echo` (handshake in the default configuration, 100 echoes from 1 B to 60 KiB, a
//! ratchet from each side, a clean close, a reconnect from the record kept in IndexedDB)
//! and against WebSocket servers that send garbage, close mid-handshake or stall (typed
//! errors, no panic). The page reports back; a screenshot of the results is kept in
//! `target/test-artifacts/browser.png`.
//!
//! Needs Chromium (Debian: chromium) and the package `wasm/build-pkg.sh` builds; says
//! SKIPPED without them (`DKTP_CI=1`: fails).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::support::{Dir, Proc, dktp};

const DEFAULT_CONFIG: &str = "dilithium-s5_kyber-s5_sha3_rcs";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo")
        .to_path_buf()
}

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_string)
}

fn prerequisites() -> Option<String> {
    let pkg = repo().join("wasm/pkg/dktp_wasm_bg.wasm");
    let mut missing = Vec::new();
    let browser = chromium();
    if browser.is_none() {
        missing.push("Chromium (Debian: chromium)".to_string());
    }
    if !pkg.exists() {
        missing.push(format!("{} (run wasm/build-pkg.sh)", pkg.display()));
    }
    if missing.is_empty() {
        return browser;
    }
    assert!(
        std::env::var("DKTP_CI").as_deref() != Ok("1"),
        "DKTP_CI=1, and the browser test cannot run: missing {missing:?}"
    );
    eprintln!("SKIPPED: the browser test needs {missing:?}");
    None
}

/// Flags for headless Chromium on a machine with no network and no display.
fn chromium_flags(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// A WebSocket server that misbehaves once per connection, in the way named.
fn bad_server(how: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(mut ws) = tokio_tungstenite::tungstenite::accept(s) else {
                    return;
                };
                // The connect request.
                let _ = ws.read();
                match how {
                    "garbage" => {
                        let junk: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
                        let _ =
                            ws.send(tokio_tungstenite::tungstenite::Message::Binary(junk.into()));
                        std::thread::sleep(Duration::from_secs(10));
                    }
                    "close" => {
                        let _ = ws.close(None);
                        let _ = ws.flush();
                    }
                    _ => std::thread::sleep(Duration::from_secs(30)),
                }
            });
        }
    });
    format!("ws://{addr}/")
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("wasm") => "application/wasm",
        Some("js") => "text/javascript",
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Serves the page, the package, the client's key files and the configuration; a POST to
/// /report is sent on `reports`; /results shows the last report as HTML.
fn http_server(dir: PathBuf, config: String, reports: mpsc::Sender<String>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let (dir, config, reports, last) =
                (dir.clone(), config.clone(), reports.clone(), last.clone());
            std::thread::spawn(move || serve_one(s, &dir, &config, &reports, &last));
        }
    });
    format!("http://{addr}")
}

fn serve_one(
    s: TcpStream,
    dir: &Path,
    config: &str,
    reports: &mpsc::Sender<String>,
    last: &std::sync::Mutex<String>,
) {
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    let _ = r.read_exact(&mut body);
    let page = repo().join("wasm/tests/browser");
    let (status, kind, content): (&str, &str, Vec<u8>) = match (method, path) {
        ("POST", "/report") => {
            let text = String::from_utf8_lossy(&body).into_owned();
            *last.lock().expect("lock") = text.clone();
            let _ = reports.send(text);
            ("200 OK", "text/plain", b"ok".to_vec())
        }
        ("GET", "/") => (
            "200 OK",
            content_type(".html"),
            read(&page.join("index.html")),
        ),
        ("GET", p) if p.ends_with(".js") && !p[1..].contains('/') && !p.contains("..") => {
            ("200 OK", content_type(p), read(&page.join(&p[1..])))
        }
        ("GET", "/config.json") => ("200 OK", content_type(".json"), config.as_bytes().to_vec()),
        ("GET", "/results") => {
            let report = last.lock().expect("lock").clone();
            (
                "200 OK",
                content_type(".html"),
                results_page(&report).into_bytes(),
            )
        }
        ("GET", p) if p.starts_with("/pkg/") && !p.contains("..") => {
            let f = repo().join("wasm").join(&p[1..]);
            ("200 OK", content_type(p), read(&f))
        }
        ("GET", p) if p.starts_with("/keys/") && !p.contains("..") => (
            "200 OK",
            "application/octet-stream",
            read(&dir.join(&p[6..])),
        ),
        _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
    };
    let mut w = s;
    let _ = write!(
        w,
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        content.len()
    );
    let _ = w.write_all(&content);
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_default()
}

fn results_page(report: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(report).unwrap_or_default();
    let mut rows = String::new();
    for c in v["checks"].as_array().into_iter().flatten() {
        let ok = c["ok"].as_bool().unwrap_or(false);
        rows += &format!(
            "<li style=\"color:{}\">{} {} {}</li>",
            if ok { "#060" } else { "#b00" },
            if ok { "PASS" } else { "FAIL" },
            html(c["name"].as_str().unwrap_or("")),
            html(c["detail"].as_str().unwrap_or(""))
        );
    }
    format!(
        "<!doctype html><meta charset=utf-8><body style=\"font:14px sans-serif;margin:1.5em\">\
         <h1>dktp-wasm in headless Chromium</h1><ul>{rows}</ul><pre>{}</pre></body>",
        html(&v["figures"].to_string())
    )
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn the_wasm_client_in_headless_chromium() {
    let Some(browser) = prerequisites() else {
        return;
    };
    let dir = Dir::new("browser");
    super::support::keys(&dir, DEFAULT_CONFIG);
    let mut server = Proc::start(
        &dir,
        "server",
        &[
            "serve",
            "-s",
            "srv.redb",
            "-p",
            "srv.dskey:cli.dpkey",
            "--ws",
            "127.0.0.1:0",
            "--echo",
            "--ratchet-every",
            "3s",
        ],
        &[],
    );
    let ws = server.wait_addr("listening (WebSocket)");
    let config = serde_json::json!({
        "ws": format!("ws://{ws}/"),
        "garbage": bad_server("garbage"),
        "close": bad_server("close"),
        "stall": bad_server("stall"),
    })
    .to_string();
    let (tx, rx) = mpsc::channel();
    let url = http_server(dir.0.clone(), config, tx);
    let profile = dir.path("chromium-profile");
    let mut chrome = Command::new(&browser)
        .args(chromium_flags(&profile))
        .arg(format!("{url}/"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("chromium.log")).expect("log"))
        .spawn()
        .expect("start chromium");
    let report = rx.recv_timeout(Duration::from_secs(180));
    let _ = chrome.kill();
    let _ = chrome.wait();
    let report = report.unwrap_or_else(|_| {
        panic!(
            "no report from the page in 3 minutes; chromium said:\n{}",
            std::fs::read_to_string(dir.path("chromium.log")).unwrap_or_default()
        )
    });
    // The screenshot of the results, as the artifact.
    let artifacts = repo().join("target/test-artifacts");
    let _ = std::fs::create_dir_all(&artifacts);
    let shot = artifacts.join("browser.png");
    let _ = std::fs::remove_file(&shot);
    let status = Command::new(&browser)
        .args(chromium_flags(&dir.path("chromium-shot")))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1100,900")
        .arg(format!("{url}/results"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        status.is_ok_and(|s| s.success()) && shot.exists(),
        "no screenshot"
    );

    let v: serde_json::Value = serde_json::from_str(&report).expect("report json");
    let failed: Vec<String> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] != true)
        .map(|c| format!("{} ({})", c["name"], c["detail"]))
        .collect();
    let names = v["checks"].as_array().map_or(0, Vec::len);
    assert!(
        failed.is_empty() && names >= 15 && v["errors"].as_array().is_some_and(Vec::is_empty),
        "the page's checks failed: {failed:?}; errors {}; report {report}; server log:\n{}",
        v["errors"],
        server.log_text()
    );
    // The figures, against the same RCS code natively (the portable backend, which is what
    // wasm32 runs).
    let speed = dktp(
        &dir,
        &[
            "speed",
            "--json",
            "--no-pq",
            "--backend",
            "portable",
            "--seconds",
            "0.3",
        ],
    );
    let native: serde_json::Value = serde_json::from_str(&speed).expect("speed json");
    let native_seal = native["rcs512_seal_mbps"]["portable"]["16384"]
        .as_f64()
        .unwrap_or(0.0);
    let f = &v["figures"];
    let n = |k: &str| f[k].as_f64().unwrap_or(0.0);
    println!(
        "browser (SIMD128 build loaded: {}): handshake {:.1} ms, longest step on the page's thread {:.1} ms; \
         RCS-512 seal 16 KiB {:.1} MB/s; native portable {native_seal:.1} MB/s; browser/native {:.2}",
        f["simd128"],
        n("handshake_ms"),
        n("longest_step_ms"),
        n("seal_16k_mbps"),
        n("seal_16k_mbps") / native_seal.max(1e-9),
    );
    println!(
        "browser without SIMD128: handshake {:.1} ms, longest step {:.1} ms; RCS-512 seal 16 KiB {:.1} MB/s; browser/native {:.2}; screenshot {}",
        n("handshake_ms_nosimd"),
        n("longest_step_ms_nosimd"),
        n("seal_16k_mbps_nosimd"),
        n("seal_16k_mbps_nosimd") / native_seal.max(1e-9),
        shot.display()
    );
    drop(server);
}
