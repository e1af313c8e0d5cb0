//! One stream through real processes on loopback: a local writer → `dktp connect -L` →
//! `dktp serve` → a local sink, against the single-stream RCS-512 seal rate that
//! `dktp speed` measures in the same run (the machine is shared, so only the ratio means
//! anything).
//!
//! ```text
//! cargo bench -p dktp-node --bench tunnel            # 1 GiB, about 10 s
//! cargo bench -p dktp-node --bench tunnel -- --quick # 128 MiB
//! ```
//! Prints both rates, the ratio, and one JSON line.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../tests/e2e/support.rs"]
mod support;

use support::{Dir, Proc, connecting, keys, seal_rate, serving};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `cargo bench` passes `--bench`; a filter that is not ours means another bench was
    // asked for.
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with("--"))
        && !"tunnel".contains(filter.as_str())
    {
        return;
    }
    let total: usize = if quick { 128 << 20 } else { 1 << 30 };
    let dir = Dir::new("bench-tunnel");
    keys(&dir, "dilithium-s5_kyber-s5_sha3_rcs");

    // The sink: counts bytes, reports when `total` arrived.
    let sink = TcpListener::bind("127.0.0.1:0").expect("sink");
    let sink_addr = sink.local_addr().expect("addr").to_string();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = sink.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0usize;
        let mut first = None;
        while got < total {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    first.get_or_insert_with(Instant::now);
                    got += n;
                }
            }
        }
        let _ = done_tx.send((got, first.map(|f| f.elapsed())));
    });

    let mut server = Proc::start(
        &dir,
        "server",
        &serving(&["-l", "127.0.0.1:0", "-f", &sink_addr]),
        &[],
    );
    let server_addr = server.wait_addr("listening (TCP)").to_string();
    let mut client = Proc::start(
        &dir,
        "client",
        &connecting(&server_addr, &["-L", "127.0.0.1:0"]),
        &[],
    );
    let local = client.wait_addr("forwarding local connections");

    let mut s = TcpStream::connect(local).expect("connect -L");
    let block = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut sent = 0;
    while sent < total {
        s.write_all(&block).expect("write");
        sent += block.len();
    }
    let (got, elapsed) = done_rx
        .recv_timeout(Duration::from_secs(600))
        .expect("the sink finished");
    assert_eq!(got, total, "the sink got {got} of {total} bytes");
    let elapsed = elapsed.unwrap_or_else(|| start.elapsed()).as_secs_f64();
    let tunnel_mbps = total as f64 / elapsed / 1e6;

    // The baseline, measured now on the same machine.
    let (backend, seal) = seal_rate(&dir);
    let ratio = tunnel_mbps / seal;
    println!(
        "tunnel/one_stream: {} MiB through connect -L → serve → sink: {tunnel_mbps:.0} MB/s",
        total >> 20
    );
    println!("dktp speed rcs512_seal_mbps[{backend}][16384]: {seal:.0} MB/s");
    println!(
        "ratio: {:.0}% of the single-stream seal rate",
        ratio * 100.0
    );
    println!(
        "{}",
        serde_json::json!({
            "tunnel_one_stream_mbps": tunnel_mbps,
            "rcs512_seal_mbps_16384": seal,
            "backend": backend,
            "ratio": ratio,
            "bytes": total,
        })
    );
    drop((client, server));
}
