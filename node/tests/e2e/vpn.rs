//! `dktp up` / `dktp down` between network namespaces the tests make themselves: ping, TCP
//! and UDP through the tunnel, a spoofed source refused, a killed peer coming back on its
//! stored secrets, a concentrator routing between two peers and a subnet, and nothing left
//! behind after `down`. They need root and TUN (CI has both); elsewhere they say SKIPPED.

use std::time::Duration;

use super::support::Dir;
use super::vpn_support::{Host, interface, iperf, up_pid, vpn_keys, vpn_possible};

const CONFIG: &str = "dilithium-s1_kyber-s1_sha3_rcs";

fn write(dir: &Dir, name: &str, text: &str) {
    std::fs::write(dir.path(name), text).expect("write conf");
}

/// The routes of `dev` on `host` (empty once it is gone).
fn routes(host: &Host, dev: &str) -> String {
    let v4 = host.run(&["ip", "-4", "route", "show"]);
    let v6 = host.run(&["ip", "-6", "route", "show"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&v4.stdout),
        String::from_utf8_lossy(&v6.stdout)
    );
    all.lines()
        .filter(|l| l.contains(&format!("dev {dev}")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn two_hosts_ping_tcp_udp_spoofing_reconnect_and_down() {
    if !vpn_possible(&[]) {
        return;
    }
    let dir = Dir::new("vpn2");
    vpn_keys(&dir, "a", "b", CONFIG);
    let a = Host::new("a");
    let b = Host::new("b");
    a.link(&b, "va", "vb", "10.200.0.1/24", "10.200.0.2/24");
    let conf = |name: &str, text: String| write(&dir, name, &text);
    conf(
        "dka.conf",
        interface(
            "Address = 10.77.0.1/24, fd77::1/64\nListenPort = 31118\nStore = a.redb",
            &[("a_b", "b_a", "10.77.0.2/32, fd77::2/128", None)],
        ),
    );
    conf(
        "dkb.conf",
        interface(
            "Address = 10.77.0.2/24, fd77::2/64\nStore = b.redb",
            &[(
                "b_a",
                "a_b",
                "10.77.0.0/24, fd77::/64",
                Some("10.200.0.1:31118"),
            )],
        ),
    );
    a.up(&dir, "dka.conf");
    b.up(&dir, "dkb.conf");
    assert!(a.has_link("dka") && b.has_link("dkb"));
    assert!(
        b.ping_within("10.77.0.1", Duration::from_secs(20)),
        "no IPv4 ping through the tunnel; a's log:\n{}\nb's log:\n{}",
        std::fs::read_to_string(dir.path("dka.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.path("dkb.log")).unwrap_or_default()
    );
    assert!(
        b.ping_within("fd77::1", Duration::from_secs(10)),
        "IPv6 ping"
    );
    assert!(
        a.ping_within("10.77.0.2", Duration::from_secs(10)),
        "ping from the concentrator"
    );

    // TCP and UDP, both ways.
    let tcp = iperf(&a, &b, "10.77.0.1", &["-t", "2"]);
    let got = tcp["end"]["sum_received"]["bytes"]
        .as_f64()
        .expect("tcp bytes");
    assert!(got > 1e6, "TCP through the tunnel carried {got} bytes");
    let back = iperf(&a, &b, "10.77.0.1", &["-t", "1", "-R"]);
    assert!(
        back["end"]["sum_received"]["bytes"]
            .as_f64()
            .expect("bytes")
            > 1e6
    );
    let udp = iperf(
        &a,
        &b,
        "10.77.0.1",
        &["-u", "-b", "20M", "-l", "1400", "-t", "2"],
    );
    let sum = &udp["end"]["sum"];
    let (packets, lost) = (
        sum["packets"].as_f64().expect("packets"),
        sum["lost_packets"].as_f64().expect("lost"),
    );
    // A loaded CI machine may starve a process long enough to fill a queue: UDP has to
    // cross, not to cross without loss.
    assert!(packets > 1000.0 && lost / packets < 0.5, "UDP: {sum}");
    let v6 = iperf(&a, &b, "fd77::1", &["-t", "1"]);
    assert!(v6["end"]["sum_received"]["bytes"].as_f64().expect("bytes") > 1e6);

    // A source outside b's AllowedIPs (at a: 10.77.0.2 only) never reaches a's stack.
    b.must(&["ip", "address", "add", "10.77.0.99/32", "dev", "dkb"]);
    let before = a.stat("dka", "rx_packets");
    let spoofed = b.run(&[
        "ping",
        "-c",
        "5",
        "-i",
        "0.2",
        "-W",
        "1",
        "-I",
        "10.77.0.99",
        "10.77.0.1",
    ]);
    assert!(!spoofed.status.success(), "a spoofed ping was answered");
    assert_eq!(
        a.stat("dka", "rx_packets"),
        before,
        "a spoofed packet reached a's interface"
    );
    let a_log = std::fs::read_to_string(dir.path("dka.log")).expect("a's log");
    assert!(
        a_log.contains("source 10.77.0.99 is outside the peer's AllowedIPs"),
        "a logs the refusal:\n{a_log}"
    );
    // The genuine source still passes (and is counted).
    assert!(b.ping_within("10.77.0.1", Duration::from_secs(5)));
    assert!(a.stat("dka", "rx_packets") > before);

    // Kill b (SIGKILL): its interface goes with it; up again, it connects on the secrets
    // it stored.
    b.must(&["kill", "-9", &up_pid(&dir, "dkb")]);
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        !b.has_link("dkb")
    });
    assert!(gone, "b's interface outlived its process");
    b.up(&dir, "dkb.conf");
    assert!(
        b.ping_within("10.77.0.1", Duration::from_secs(20)),
        "b after a kill -9"
    );
    // Kill the concentrator: b reconnects on its own once a is back.
    a.must(&["kill", "-9", &up_pid(&dir, "dka")]);
    std::thread::sleep(Duration::from_millis(500));
    a.up(&dir, "dka.conf");
    assert!(
        b.ping_within("10.77.0.1", Duration::from_secs(30)),
        "b after the concentrator's kill -9; b's log:\n{}",
        std::fs::read_to_string(dir.path("dkb.log")).unwrap_or_default()
    );
    let b_log = std::fs::read_to_string(dir.path("dkb.log")).expect("b's log");
    assert!(b_log.contains("connecting again"), "b saw its tunnel end");

    // Down: the interfaces and their routes are gone.
    assert!(!routes(&b, "dkb").is_empty());
    for (h, conf, dev) in [(&b, "dkb.conf", "dkb"), (&a, "dka.conf", "dka")] {
        let o = h.dktp(&dir, &["down", conf]);
        assert!(
            o.status.success(),
            "down {conf}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!h.has_link(dev), "{dev} still there after down");
        assert_eq!(routes(h, dev), "", "routes of {dev} left behind");
        assert!(!dir.path(&format!("{dev}.pid")).exists());
    }
    // Down again: it says so and fails.
    assert!(!b.dktp(&dir, &["down", "dkb.conf"]).status.success());
}

#[test]
fn three_hosts_through_a_concentrator_with_a_routed_subnet() {
    if !vpn_possible(&[]) {
        return;
    }
    let dir = Dir::new("vpn3");
    vpn_keys(&dir, "a", "b", CONFIG);
    vpn_keys(&dir, "a", "c", CONFIG);
    let a = Host::new("a");
    let b = Host::new("b");
    let c = Host::new("c");
    a.link(&b, "vab", "vba", "10.201.1.1/24", "10.201.1.2/24");
    a.link(&c, "vac", "vca", "10.201.2.1/24", "10.201.2.2/24");
    // c has a LAN behind it (an address of its own there).
    c.must(&["ip", "address", "add", "192.168.33.1/24", "dev", "lo"]);
    // The concentrator forwards between its peers, as a WireGuard hub does.
    a.must(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    let conf = |name: &str, text: String| write(&dir, name, &text);
    conf(
        "hub.conf",
        interface(
            "Address = 10.78.0.1/24\nListenPort = 31118\nStore = hub.redb",
            &[
                ("a_b", "b_a", "10.78.0.2/32", None),
                ("a_c", "c_a", "10.78.0.3/32, 192.168.33.0/24", None),
            ],
        ),
    );
    conf(
        "spb.conf",
        interface(
            "Address = 10.78.0.2/24\nStore = b.redb",
            &[(
                "b_a",
                "a_b",
                "10.78.0.0/24, 192.168.33.0/24",
                Some("10.201.1.1"),
            )],
        ),
    );
    conf(
        "spc.conf",
        interface(
            "Address = 10.78.0.3/24\nStore = c.redb",
            &[("c_a", "a_c", "10.78.0.0/24", Some("10.201.2.1:31118"))],
        ),
    );
    a.up(&dir, "hub.conf");
    b.up(&dir, "spb.conf");
    c.up(&dir, "spc.conf");
    // The route b was given for c's LAN.
    assert!(
        b.must(&["ip", "route", "show", "192.168.33.0/24"])
            .contains("dev spb")
    );
    for (from, to) in [
        (&b, "10.78.0.1"),
        (&c, "10.78.0.1"),
        (&b, "10.78.0.3"),
        (&c, "10.78.0.2"),
    ] {
        assert!(
            from.ping_within(to, Duration::from_secs(20)),
            "{} cannot reach {to}; hub log:\n{}",
            from.ns,
            std::fs::read_to_string(dir.path("hub.log")).unwrap_or_default()
        );
    }
    assert!(
        b.ping_within("192.168.33.1", Duration::from_secs(10)),
        "c's LAN from b"
    );
    // TCP from b to c's LAN, through the hub.
    let tcp = iperf(&c, &b, "192.168.33.1", &["-t", "2"]);
    assert!(tcp["end"]["sum_received"]["bytes"].as_f64().expect("bytes") > 1e6);
    // UDP from c to b.
    let udp = iperf(
        &b,
        &c,
        "10.78.0.2",
        &["-u", "-b", "10M", "-l", "1200", "-t", "1"],
    );
    assert!(udp["end"]["sum"]["packets"].as_f64().expect("packets") > 500.0);
    for (h, conf, dev) in [
        (&b, "spb.conf", "spb"),
        (&c, "spc.conf", "spc"),
        (&a, "hub.conf", "hub"),
    ] {
        assert!(h.dktp(&dir, &["down", conf]).status.success());
        assert!(!h.has_link(dev));
        assert_eq!(routes(h, dev), "");
    }
}
