#![no_main]
//! A `Listener` and its connections fed arbitrary bytes in arbitrary chunks: honest client
//! packets (edited or not), raw bytes, ends of stream and timeouts, on up to three
//! connections. Nothing may panic, and a connection that reports an error is closed.

use arbitrary::Arbitrary;
use dktp::listener::Listener;
use dktp_fuzz::{NOW, Packet, TestRng, honest, settings};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    /// Honest client packet `which % 3` (connect, exchange, establish request), edited,
    /// delivered in chunks of these sizes (cycled; 0 counts as 1).
    Honest {
        conn: u8,
        which: u8,
        packet: Packet,
        chunks: Vec<u8>,
    },
    /// Raw bytes.
    Raw { conn: u8, bytes: Vec<u8> },
    /// The transport ends.
    End { conn: u8 },
    /// Time passes.
    Timeout { conn: u8, after: u16 },
}

fuzz_target!(|ops: Vec<Op>| {
    let h = honest();
    let listener = Listener::new(settings());
    listener.add(h.keys.1.clone());
    let mut conns: Vec<_> = (0..3)
        .map(|_| (listener.accept(NOW), TestRng::new("s")))
        .collect();
    let mut now = NOW;
    for op in ops.iter().take(64) {
        let (i, r) = match op {
            Op::Honest {
                conn,
                which,
                packet,
                chunks,
            } => {
                let i = usize::from(*conn) % conns.len();
                let bytes = packet.bytes(&h.packets[usize::from(which % 3) * 2]);
                let (c, rng) = &mut conns[i];
                let mut rest = &bytes[..];
                let mut k = 0;
                let mut r = Ok(());
                while !rest.is_empty() && r.is_ok() {
                    let n = chunks
                        .get(k % chunks.len().max(1))
                        .map_or(rest.len(), |&n| usize::from(n).max(1))
                        .min(rest.len());
                    let (head, tail) = rest.split_at(n);
                    r = c.handle_bytes(head, now, rng);
                    rest = tail;
                    k += 1;
                }
                (i, r)
            }
            Op::Raw { conn, bytes } => {
                let i = usize::from(*conn) % conns.len();
                let (c, rng) = &mut conns[i];
                (i, c.handle_bytes(bytes, now, rng))
            }
            Op::End { conn } => {
                let i = usize::from(*conn) % conns.len();
                let (c, rng) = &mut conns[i];
                (i, c.handle_end_of_stream(now, rng))
            }
            Op::Timeout { conn, after } => {
                let i = usize::from(*conn) % conns.len();
                now = now.saturating_add(u64::from(*after));
                (i, conns[i].0.handle_timeout(now))
            }
        };
        let c = &mut conns[i].0;
        while c.poll_output().is_some() {}
        if r.is_err() {
            assert!(c.is_closed(), "an error left the connection open: {r:?}");
        }
    }
});
