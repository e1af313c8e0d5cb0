//! Real processes on loopback: `dktp serve` forwarding to a TCP echo server, `dktp connect
//! -L` per transport (TCP and WebSocket, IPv4 and IPv6), 1 MiB each way, a ratchet from
//! each side where the configuration allows one, and a reconnect (each new client process
//! starts from the secrets the last one left in the store).

use std::time::Duration;

use super::support::{Dir, Proc, connecting, digest, echo_server, keys, random_bytes, serving};

const MIB: usize = 1 << 20;
const T: Duration = Duration::from_secs(120);

fn suite(config: &str) {
    let ratchets = !config.contains("mceliece");
    let dir = Dir::new(config);
    keys(&dir, config);
    let echo = echo_server("127.0.0.1:0").to_string();
    let mut args = serving(&[
        "-l",
        "127.0.0.1:0",
        "-l",
        "[::1]:0",
        "--ws",
        "127.0.0.1:0",
        "--ws",
        "[::1]:0",
        "-f",
        &echo,
    ]);
    if ratchets {
        args.extend(["--ratchet-every", "700ms"]);
    }
    let server = Proc::start(&dir, "server", &args, &[]);
    let tcp = server.addrs("listening (TCP)", 2);
    let ws = server.addrs("listening (WebSocket)", 2);
    let mut targets: Vec<String> = tcp.iter().map(|a| a.to_string()).collect();
    targets.extend(ws.iter().map(|a| format!("ws://{a}/")));
    assert_eq!(targets.len(), 4);
    assert!(
        targets.iter().any(|t| t.contains("[::1]"))
            && targets.iter().any(|t| t.contains("127.0.0.1"))
    );

    for (i, target) in targets.iter().enumerate() {
        let mut cargs = connecting(
            target,
            &["-L", "127.0.0.1:0", "--linger", "0", "--attempts", "5"],
        );
        if ratchets {
            cargs.extend(["--ratchet-every", "500ms"]);
        }
        let mut client = Proc::start(&dir, &format!("client{i}"), &cargs, &[]);
        let local = client.wait_addr("forwarding local connections");

        // 1 MiB each way through -L, the tunnel and the server's forward.
        let data = random_bytes(MIB);
        let mut s = super::support::connect_retry(local, T);
        s.set_read_timeout(Some(T)).expect("timeout");
        let back = exchange(&mut s, &data);
        assert_eq!(
            digest(&back),
            digest(&data),
            "{config} via {target}: 1 MiB came back altered"
        );
        client.wait_log("tunnel established", T);

        if ratchets {
            // Both timers fire while the session is up: each side requests a ratchet and
            // answers the other's; the session carries data after them.
            client.wait_log(r#"channel="transmit""#, T);
            client.wait_log(r#"channel="receive""#, T);
            let more = random_bytes(100_000);
            let back = exchange(&mut s, &more);
            assert_eq!(
                digest(&back),
                digest(&more),
                "{config} via {target}: data after the ratchets"
            );
        }
        let ended_before = server.count_log("tunnel ended");
        drop(s);
        server.wait_count("tunnel ended", ended_before + 1);
        assert!(
            server.log_text().contains("closed by the peer"),
            "{}",
            server.log_text()
        );
        // Stop the client; the next one (another transport) connects with what is stored.
        drop(client);
    }

    // The generations both stores reached agree (the server's is read after it stops).
    let sessions = 4u64;
    drop(server);
    let shown = super::support::dktp(&dir, &["show", "cli.redb", "srv.redb"]);
    let generations: Vec<u64> = shown
        .lines()
        .filter_map(|l| l.split("generation ").nth(1))
        .filter_map(|g| g.split_whitespace().next())
        .filter_map(|g| g.trim_end_matches(',').parse().ok())
        .collect();
    assert_eq!(generations.len(), 2, "{shown}");
    assert!(generations.iter().all(|&g| g >= sessions), "{shown}");
    assert!(
        !shown.contains("pss") && !shown.to_lowercase().contains("secret"),
        "{shown}"
    );
}

/// Writes `data` and reads as much back, concurrently.
fn exchange(s: &mut std::net::TcpStream, data: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut w = s.try_clone().expect("clone");
    let send = data.to_vec();
    let writer = std::thread::spawn(move || w.write_all(&send));
    let mut back = vec![0u8; data.len()];
    let r = s.read_exact(&mut back);
    assert!(writer.join().expect("writer").is_ok(), "write failed");
    assert!(r.is_ok(), "read failed: {r:?}");
    back
}

#[test]
fn default_configuration_over_tcp_and_websocket_ipv4_and_ipv6() {
    suite("dilithium-s5_kyber-s5_sha3_rcs");
}

#[test]
fn dilithium1_kyber1() {
    suite("dilithium-s1_kyber-s1_sha3_rcs");
}

#[test]
fn dilithium1_mceliece1() {
    suite("dilithium-s1_mceliece-s1_sha3_rcs");
}

#[test]
fn sphincs1s_mceliece1() {
    suite("sphincs-s1s_mceliece-s1_sha3_rcs");
}

#[test]
fn stdio_mode_echoes_and_exits_cleanly() {
    use std::io::{Read, Write};
    let dir = Dir::new("stdio");
    keys(&dir, "dilithium-s1_kyber-s1_sha3_rcs");
    let mut server = Proc::start(
        &dir,
        "server",
        &serving(&["-l", "127.0.0.1:0", "--echo"]),
        &[],
    );
    let addr = server.wait_addr("listening (TCP)").to_string();
    let mut client = Proc::start_with_stdin(
        &dir,
        "client",
        &connecting(&addr, &["--linger", "1s"]),
        &[],
        std::process::Stdio::piped(),
    );
    let mut stdin = client.child.stdin.take().expect("stdin");
    stdin.write_all(b"ping through dktp\n").expect("write");
    drop(stdin);
    let status = client.wait_exit(T).expect("client exits after stdin ends");
    let mut out = String::new();
    client
        .child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert!(status.success(), "{}", client.log_text());
    assert_eq!(out, "ping through dktp\n");
}

#[test]
fn a_config_file_forwards_a_peer_to_a_unix_socket() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    let dir = Dir::new("unix");
    keys(&dir, "dilithium-s1_kyber-s1_sha3_rcs");
    let sock = dir.path("app.sock");
    let l = UnixListener::bind(&sock).expect("unix bind");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    // The service answers in upper case, so an echo cannot pass for it.
                    let up = buf[..n].to_ascii_uppercase();
                    if s.write_all(&up).is_err() {
                        return;
                    }
                }
            });
        }
    });
    std::fs::write(
        dir.path("serve.toml"),
        format!(
            "listen = [\"127.0.0.1:0\"]\nstore = \"srv.redb\"\nforward = \"echo\"\n\n\
             [[peer]]\nname = \"terminal\"\nkey = \"srv.dskey\"\npeer = \"cli.dpkey\"\n\
             forward = \"unix:{}\"\n",
            sock.display()
        ),
    )
    .expect("config");
    let mut server = Proc::start(&dir, "server", &["serve", "--config", "serve.toml"], &[]);
    let addr = server.wait_addr("listening (TCP)").to_string();
    let mut client = Proc::start(
        &dir,
        "client",
        &connecting(&addr, &["-L", "127.0.0.1:0", "--linger", "0"]),
        &[],
    );
    let local = client.wait_addr("forwarding local connections");
    let back = super::support::echo_through(local, b"modbus frame 0x03", T);
    assert_eq!(back, b"MODBUS FRAME 0X03");
    assert!(
        server.log_text().contains("target=unix:"),
        "{}",
        server.log_text()
    );
}
