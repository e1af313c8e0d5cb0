//! The VPN side by side with WireGuard: iperf3 between the same two network namespaces
//! through `dktp up` and through wireguard-go (Debian's `wireguard-go` and
//! `wireguard-tools`), one TCP stream, 8 streams and UDP at 1400 bytes, with the CPU time
//! each side's VPN process spent per Gbit carried; and the RCS-512 bound that `dktp speed`
//! measures in the same run. Both interfaces have MTU 1420 (wg-quick's default).
//!
//! ```text
//! cargo bench -p dktp-node --bench vpn            # 10 s per transfer
//! cargo bench -p dktp-node --bench vpn -- --quick # 2 s per transfer
//! ```
//! Needs root, TUN, iproute2, iperf3 and wireguard-go; prints why not and stops otherwise.

use std::process::Stdio;
use std::time::Duration;

#[path = "../tests/e2e/support.rs"]
mod support;
#[path = "../tests/e2e/vpn_support.rs"]
mod vpn_support;

use support::Dir;
use vpn_support::{Host, checked, interface, iperf, must, vpn_keys};

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(host: &Host, pid: &str) -> f64 {
    let stat = host.run(&["cat", &format!("/proc/{pid}/stat")]);
    let text = String::from_utf8_lossy(&stat.stdout).into_owned();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The pids of the processes named `comm` in the namespace.
fn pids_named(host: &Host, comm: &str) -> Vec<String> {
    let o = must(&["ip", "netns", "pids", &host.ns]);
    o.split_whitespace()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .map(str::to_string)
        .collect()
}

struct Run {
    mbits: f64,
    /// CPU seconds per Gbit carried, at the sender's and the receiver's VPN process.
    cpu_tx: f64,
    cpu_rx: f64,
}

/// One iperf3 transfer from b to a (`args`), with the CPU the VPN processes spent.
fn transfer(a: &Host, b: &Host, addr: &str, args: &[&str], comm: &str) -> Run {
    let (pa, pb) = (pids_named(a, comm), pids_named(b, comm));
    let cpu = |h: &Host, p: &[String]| p.iter().map(|p| cpu_seconds(h, p)).sum::<f64>();
    let (a0, b0) = (cpu(a, &pa), cpu(b, &pb));
    let v = iperf(a, b, addr, args);
    let (a1, b1) = (cpu(a, &pa), cpu(b, &pb));
    let udp = args.contains(&"-u");
    let end = &v["end"];
    let (bytes, secs) = if udp {
        let s = &end["sum"];
        let lost = s["lost_percent"].as_f64().unwrap_or(0.0);
        (
            s["bytes"].as_f64().unwrap_or(0.0) * (1.0 - lost / 100.0),
            s["seconds"].as_f64().unwrap_or(1.0),
        )
    } else {
        let s = &end["sum_received"];
        (
            s["bytes"].as_f64().unwrap_or(0.0),
            s["seconds"].as_f64().unwrap_or(1.0),
        )
    };
    let gbit = bytes * 8.0 / 1e9;
    Run {
        mbits: bytes * 8.0 / secs / 1e6,
        cpu_tx: (b1 - b0) / gbit.max(1e-9),
        cpu_rx: (a1 - a0) / gbit.max(1e-9),
    }
}

fn hosts(tag: &str, net: &str) -> (Host, Host) {
    let a = Host::new(&format!("{tag}a"));
    let b = Host::new(&format!("{tag}b"));
    a.link(
        &b,
        "ua",
        "ub",
        &format!("{net}.1/24"),
        &format!("{net}.2/24"),
    );
    (a, b)
}

fn dktp_side(dir: &Dir) -> (Host, Host) {
    vpn_keys(dir, "a", "b", "dilithium-s1_kyber-s1_sha3_rcs");
    let (a, b) = hosts("d", "10.210.0");
    let conf = |name: &str, text: String| std::fs::write(dir.path(name), text).expect("conf");
    conf(
        "bva.conf",
        interface(
            "Address = 10.79.0.1/24\nMTU = 1420\nListenPort = 31118\nStore = a.redb",
            &[("a_b", "b_a", "10.79.0.2/32", None)],
        ),
    );
    conf(
        "bvb.conf",
        interface(
            "Address = 10.79.0.2/24\nMTU = 1420\nStore = b.redb",
            &[("b_a", "a_b", "10.79.0.0/24", Some("10.210.0.1"))],
        ),
    );
    let up = |h: &Host, c: &str| checked(&h.dktp(dir, &["-q", "up", c]), c);
    up(&a, "bva.conf");
    up(&b, "bvb.conf");
    assert!(
        b.ping_within("10.79.0.1", Duration::from_secs(20)),
        "dktp VPN up"
    );
    (a, b)
}

fn wireguard_side(dir: &Dir) -> (Host, Host) {
    let (a, b) = hosts("w", "10.211.0");
    let key = |name: &str| {
        let k = must(&["wg", "genkey"]);
        std::fs::write(dir.path(name), &k).expect("key");
        let mut p = std::process::Command::new("wg")
            .arg("pubkey")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("wg pubkey");
        std::io::Write::write_all(p.stdin.as_mut().expect("stdin"), k.as_bytes()).expect("write");
        let out = p.wait_with_output().expect("pubkey");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (pa, pb) = (key("wa.key"), key("wb.key"));
    let path = |n: &str| dir.path(n).to_string_lossy().into_owned();
    for (h, dev, addr, priv_key, args) in [
        (
            &a,
            "wga",
            "10.80.0.1/24",
            path("wa.key"),
            vec![
                "listen-port",
                "51820",
                "peer",
                pb.as_str(),
                "allowed-ips",
                "10.80.0.2/32",
            ],
        ),
        (
            &b,
            "wgb",
            "10.80.0.2/24",
            path("wb.key"),
            vec![
                "peer",
                pa.as_str(),
                "endpoint",
                "10.211.0.1:51820",
                "allowed-ips",
                "10.80.0.0/24",
            ],
        ),
    ] {
        // Debian's wireguard-go refuses to start where the kernel has WireGuard unless told.
        let o = h
            .cmd(&["wireguard-go", dev])
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .output()
            .expect("wireguard-go");
        assert!(
            o.status.success(),
            "wireguard-go: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut set = vec!["wg", "set", dev, "private-key", priv_key.as_str()];
        set.extend(args.iter().copied());
        h.must(&set);
        h.must(&["ip", "address", "add", addr, "dev", dev]);
        h.must(&["ip", "link", "set", "mtu", "1420", "up", "dev", dev]);
    }
    assert!(
        b.ping_within("10.80.0.1", Duration::from_secs(20)),
        "WireGuard up"
    );
    (a, b)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with("--"))
        && !"vpn".contains(filter.as_str())
    {
        return;
    }
    if !vpn_support::vpn_possible(&["wireguard-go", "wg"]) {
        println!("vpn: skipped (needs root, TUN, iperf3, wireguard-go; see above)");
        return;
    }
    let secs = if quick { "2" } else { "10" };
    let dir = Dir::new("bench-vpn");
    let cases: [(&str, Vec<&str>); 3] = [
        ("tcp_1_stream", vec!["-t", secs]),
        ("tcp_8_streams", vec!["-t", secs, "-P", "8"]),
        ("udp_1400", vec!["-t", secs, "-u", "-b", "0", "-l", "1400"]),
    ];
    let mut rows = Vec::new();
    {
        let (a, b) = dktp_side(&dir);
        for (name, args) in &cases {
            rows.push(("dktp", *name, transfer(&a, &b, "10.79.0.1", args, "dktp")));
        }
        let _ = a.dktp(&dir, &["down", "bva.conf"]);
        let _ = b.dktp(&dir, &["down", "bvb.conf"]);
    }
    {
        let (a, b) = wireguard_side(&dir);
        for (name, args) in &cases {
            rows.push((
                "wireguard-go",
                *name,
                transfer(&a, &b, "10.80.0.1", args, "wireguard-go"),
            ));
        }
    }
    let (backend, seal) = support::seal_rate(&dir);
    let bound_mbits = seal * 8.0;
    for (imp, name, r) in &rows {
        println!(
            "vpn/{imp}/{name}: {:.0} Mbit/s; CPU s per Gbit: sender {:.2}, receiver {:.2}",
            r.mbits, r.cpu_tx, r.cpu_rx
        );
    }
    let mut json = serde_json::Map::new();
    for (name, _) in &cases {
        let get = |imp: &str| {
            rows.iter()
                .find(|(i, n, _)| *i == imp && n == name)
                .map_or(0.0, |(_, _, r)| r.mbits)
        };
        let (d, w) = (get("dktp"), get("wireguard-go"));
        println!(
            "ratio/vpn/{name}: dktp / wireguard-go {:.2}; dktp / RCS-512 bound {:.2}",
            d / w.max(1e-9),
            d / bound_mbits
        );
        json.insert(
            (*name).to_string(),
            serde_json::json!({"dktp_mbits": d, "wireguard_go_mbits": w, "vs_wireguard_go": d / w.max(1e-9), "vs_rcs512_bound": d / bound_mbits}),
        );
    }
    println!(
        "dktp speed rcs512_seal_mbps[{backend}][16384]: {seal:.0} MB/s = {bound_mbits:.0} Mbit/s per direction per core"
    );
    json.insert("rcs512_bound_mbits".into(), bound_mbits.into());
    println!("{}", serde_json::Value::Object(json));
}
