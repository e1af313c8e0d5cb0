//! Bad input on the listening sockets: garbage, truncated packets, an absurd length, a
//! connect request for an unknown key id, a replayed connect request, WebSocket abuse. The
//! server keeps serving the good peer, logs each refusal with its reason, and its store
//! does not change.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::support::{
    Dir, Proc, connecting, dktp, echo_through, keys, random_bytes, serving, sha3_file,
};

const T: Duration = Duration::from_secs(60);

/// A TCP relay to `to` that records what the first client sends.
fn recording_proxy(to: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let Ok(s) = TcpStream::connect(to) else {
                return;
            };
            let (mut c2, mut s2) = (c.try_clone().expect("clone"), s.try_clone().expect("clone"));
            let rec = rec.clone();
            std::thread::spawn(move || {
                let mut c = c;
                let mut s = s;
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    rec.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
                let _ = s.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = s2.read(&mut buf) {
                    if n == 0 || c2.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, seen)
}

/// Sends `bytes` on a fresh connection, then waits for the server to close it.
fn poke(addr: SocketAddr, bytes: &[u8], close_write: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(T)).expect("timeout");
    let _ = s.write_all(bytes);
    if close_write {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    reply
}

#[test]
fn bad_input_is_refused_and_logged_and_the_others_are_served() {
    let dir = Dir::new("bad-input");
    keys(&dir, "dilithium-s1_kyber-s1_sha3_rcs");
    // A pair the server does not know.
    dktp(
        &dir,
        &[
            "keygen",
            "stranger",
            "--config",
            "dilithium-s1_kyber-s1_sha3_rcs",
        ],
    );
    dktp(
        &dir,
        &[
            "keygen",
            "stranger-srv",
            "--config",
            "dilithium-s1_kyber-s1_sha3_rcs",
        ],
    );
    dktp(&dir, &["link", "stranger.dskey", "stranger-srv.dpkey"]);

    let mut server = Proc::start(
        &dir,
        "server",
        &serving(&["-l", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--echo"]),
        &[],
    );
    let tcp = server.wait_addr("listening (TCP)");
    let ws = server.wait_addr("listening (WebSocket)");
    let (proxy, recorded) = recording_proxy(tcp);
    let proxy = proxy.to_string();

    // The good peer, through the recording relay: its connect request is captured.
    let mut client = Proc::start(
        &dir,
        "client",
        &connecting(&proxy, &["-L", "127.0.0.1:0", "--linger", "0"]),
        &[],
    );
    let local = client.wait_addr("forwarding local connections");
    let data = random_bytes(4096);
    assert_eq!(echo_through(local, &data, T), data);
    server.wait_count("tunnel ended", 1);
    let connect_request: Vec<u8> = {
        let r = recorded.lock().expect("lock");
        // The first packet: 21-byte header, its length at bytes 1..5 (LE).
        let len = u32::from_le_bytes([r[1], r[2], r[3], r[4]]) as usize;
        r[..21 + len].to_vec()
    };
    let store_before = sha3_file(&dir.path("srv.redb"));
    let refused = |s: &Proc| s.count_log("handshake refused") + s.count_log("handshake ended");
    let wait_refusals = |s: &Proc, n: usize| {
        let start = Instant::now();
        while refused(s) < n {
            assert!(
                start.elapsed() < T,
                "expected {n} refusals:\n{}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut n = refused(&server);

    // 1. Garbage.
    poke(tcp, &random_bytes(300), true);
    n += 1;
    wait_refusals(&server, n);
    // 2. A truncated connect request (the stream ends inside it).
    poke(tcp, &connect_request[..connect_request.len() / 2], true);
    n += 1;
    wait_refusals(&server, n);
    // 3. A header declaring 4 GiB.
    let mut huge = connect_request[..21].to_vec();
    huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    poke(tcp, &huge, false);
    n += 1;
    wait_refusals(&server, n);
    // 4. A connect request replayed within its time window.
    let reply = poke(tcp, &connect_request, false);
    assert!(!reply.is_empty(), "the replay got no error packet");
    server.wait_count("code=0x14", 1);
    // 5. A connect request for a key id the server does not hold.
    let mut stranger = Proc::start(
        &dir,
        "stranger",
        &[
            "connect",
            &tcp.to_string(),
            "-k",
            "stranger.dskey",
            "-p",
            "stranger-srv.dpkey",
            "-s",
            "stranger.redb",
            "--attempts",
            "1",
        ],
        &[],
    );
    assert!(
        stranger.wait_exit(T).is_some_and(|s| !s.success()),
        "{}",
        stranger.log_text()
    );
    server.wait_count("code=0x0f", 1);
    // 6. Not a WebSocket at all on the WebSocket port, then a text frame after a real
    //    upgrade.
    poke(ws, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true);
    server.wait_count("WebSocket upgrade failed", 1);
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let mut s = TcpStream::connect(ws).expect("ws");
    s.set_read_timeout(Some(T)).expect("timeout");
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("upgrade");
    let mut head = [0u8; 12];
    s.read_exact(&mut head).expect("101");
    assert_eq!(&head, b"HTTP/1.1 101");
    // A masked text frame "hi".
    s.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
        .expect("frame");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    server.wait_count("text frame", 1);

    // Every refusal is in the log with its reason; nothing reached the store.
    let log = server.log_text();
    for line in log.lines().filter(|l| l.contains("handshake refused")) {
        assert!(line.contains("code=0x") && line.contains("peer="), "{line}");
    }
    assert_eq!(
        sha3_file(&dir.path("srv.redb")),
        store_before,
        "the store changed:\n{log}"
    );

    // And the good peer is still served.
    let data = random_bytes(100_000);
    assert_eq!(echo_through(local, &data, T), data);
    drop(client);
    drop(server);
}
