//! Handshake and session properties.
//!
//! - Hostile input (random bytes, or an honest packet with bytes flipped, cut, extended or
//!   its header rewritten) into every handshake state and into an established session
//!   never panics, always ends in a typed error with a wire code (and the reply the
//!   reference would send), and never makes the engine allocate a size the input declared
//!   rather than carried: a tracking allocator measures the largest single allocation.
//! - Honest peers of every configuration complete the handshake, exchange data, ratchet
//!   from both sides and crossing (where the configuration can ratchet), close, and
//!   reconnect with the pre-shared secrets the session advanced. McEliece configurations
//!   other than the smallest are `#[ignore]`d (key generation is slow); run them with
//!   `cargo test --release -p dktp-proptests --test session -- --ignored`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use dktp::config::Config;
use dktp::connection::{Connection, Tunnel};
use dktp::error::Misuse;
use dktp::kex::{PeerKeys, error_reply};
use dktp::listener::Listener;
use dktp::packet::{HEADER_LEN, Header};
use dktp::session::{Event, Opened, Output};
use dktp::testing::{NOW, TestRng, big_stack, connected, drain, honest, pair, settings};
use dktp::{Error, ErrorCode};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// The largest single allocation made by this thread.

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

struct Tracking;

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[allow(unsafe_code)]
// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is
// recording the requested size in a thread-local `Cell` that never allocates.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns the largest single allocation it made.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    let r = f();
    (r, LARGEST.with(Cell::get))
}

// ---------------------------------------------------------------------------------------
// Hostile input

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        mask: u8,
    },
    Truncate(usize),
    Extend(Vec<u8>),
    Header {
        flag: Option<u8>,
        msglen: Option<u32>,
        sequence: Option<u64>,
        skew: Option<i64>,
    },
    Random(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
        3 => (
            proptest::option::of(any::<u8>()),
            proptest::option::of(prop_oneof![any::<u32>(), 0u32..200, 0x10000u32..0x10002]),
            proptest::option::of(prop_oneof![any::<u64>(), 0u64..8]),
            proptest::option::of(prop_oneof![-200i64..200, any::<i64>()]),
        )
            .prop_map(|(flag, msglen, sequence, skew)| Mutation::Header {
                flag,
                msglen,
                sequence,
                skew
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Mutation::Random),
    ]
}

fn apply(m: &Mutation, honest: &[u8]) -> Vec<u8> {
    let mut p = honest.to_vec();
    match m {
        Mutation::Flip { at, mask } => {
            let i = at % p.len();
            p[i] ^= mask;
        }
        Mutation::Truncate(n) => p.truncate(n % p.len()),
        Mutation::Extend(tail) => p.extend_from_slice(tail),
        Mutation::Header {
            flag,
            msglen,
            sequence,
            skew,
        } => {
            let mut h = Header::decode(&p).unwrap();
            h.flag = flag.unwrap_or(h.flag);
            h.msglen = msglen.unwrap_or(h.msglen);
            h.sequence = sequence.unwrap_or(h.sequence);
            h.utctime = skew.map_or(h.utctime, |s| h.utctime.wrapping_add_signed(s));
            p[..HEADER_LEN].copy_from_slice(&h.encode());
        }
        Mutation::Random(bytes) => p = bytes.clone(),
    }
    p
}

/// The engine allocates for the input it holds and for the configuration's own sizes,
/// never for a length the input merely declares.
const ALLOCATION_BOUND: usize = 64 * 1024;

fn check_refusal(r: Result<(), Error>, changed: bool) -> Result<(), TestCaseError> {
    match r {
        Ok(()) => prop_assert!(!changed, "a changed packet was accepted"),
        Err(e) => {
            prop_assert!(changed, "the honest packet was refused: {e}");
            let code = e.wire_code();
            prop_assert!(code != ErrorCode::None);
            // A reply exists unless the peer reported an error or the header was cut.
            let _ = error_reply(&e, NOW);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn hostile_packets_into_every_handshake_state(step in 0usize..6, m in mutation()) {
        let h = honest();
        let packet = apply(&m, &h.packets[step]);
        let changed = packet != h.packets[step];
        let mut rng = TestRng::new("hostile");
        let (r, largest) = largest_allocation(|| h.feed(step, &packet, NOW, &mut rng));
        prop_assert!(largest <= ALLOCATION_BOUND + packet.len(), "allocated {largest}");
        check_refusal(r, changed)?;
    }

    #[test]
    fn hostile_packets_into_a_session(kind in 0usize..4, m in mutation()) {
        let (mut client, mut server) = honest().sessions();
        let mut rng = TestRng::new("h");
        let mut honest = Vec::new();
        match kind {
            0 => client.seal(b"an honest message", NOW, &mut honest).unwrap(),
            1 => honest = client.start_ratchet(NOW, &mut rng).unwrap(),
            2 => honest = client.close(NOW).unwrap(),
            _ => {
                // A ratchet response, after the server's request.
                let req = server.start_ratchet(NOW, &mut rng).unwrap();
                client.handle_packet(&req, NOW, &mut rng).unwrap();
                honest = std::iter::from_fn(|| client.poll_output())
                    .find_map(|o| match o { Output::Transmit(p) => Some(p), _ => None })
                    .unwrap();
            }
        }
        let mut packet = apply(&m, &honest);
        let changed = packet != honest;
        let (r, largest) =
            largest_allocation(|| server.open_in_place(&mut packet, NOW, &mut rng).map(drop));
        prop_assert!(largest <= ALLOCATION_BOUND + packet.len(), "allocated {largest}");
        let failed = r.is_err();
        check_refusal(r, changed)?;
        if failed {
            prop_assert!(!server.is_open());
            prop_assert_eq!(
                server.seal(b"x", NOW, &mut Vec::new()),
                Err(Misuse::NotEstablished.into())
            );
        }
    }

    #[test]
    fn declared_lengths_are_never_allocated(
        flag in any::<u8>(),
        msglen in any::<u32>(),
        tail in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut bytes = Header { flag, msglen, sequence: 0, utctime: NOW }.encode().to_vec();
        bytes.extend_from_slice(&tail);
        let (keys, _) = pair(Config::DEFAULT, NOW);
        let mut rng = TestRng::new("t");
        let mut t = Tunnel::connect(keys, settings(), NOW, &mut rng, |_| {}, |_| {}).unwrap();
        let (_, largest) = largest_allocation(|| t.feed(&bytes, NOW, &mut rng));
        prop_assert!(largest <= ALLOCATION_BOUND, "allocated {largest}");
    }

    #[test]
    fn tunnels_over_a_byte_stream_in_random_chunks(
        chunks in proptest::collection::vec(1usize..9000, 1..16),
    ) {
        let (ck, sk) = pair(Config::DEFAULT, NOW);
        let to_server = Rc::new(RefCell::new(Vec::<u8>::new()));
        let to_client = Rc::new(RefCell::new(Vec::<u8>::new()));
        let got_server = Rc::new(RefCell::new(Vec::<Vec<u8>>::new()));
        let got_client = Rc::new(RefCell::new(Vec::<Vec<u8>>::new()));
        let stored = Rc::new(RefCell::new(0usize));
        let (ts, tc, gs, gc, st) =
            (to_server.clone(), to_client.clone(), got_server.clone(), got_client.clone(), stored.clone());
        let (mut crng, mut srng) = (TestRng::new("c"), TestRng::new("s"));
        let mut client = Tunnel::connect(
            ck,
            settings(),
            NOW,
            &mut crng,
            move |p: &[u8]| ts.borrow_mut().extend_from_slice(p),
            move |m: &[u8]| gc.borrow_mut().push(m.to_vec()),
        )
        .unwrap()
        .on_event(move |e: &Event| {
            if matches!(e, Event::Secrets(_)) {
                *st.borrow_mut() += 1;
            }
        });
        let mut server = Tunnel::listen(
            sk,
            settings(),
            NOW,
            move |p: &[u8]| tc.borrow_mut().extend_from_slice(p),
            move |m: &[u8]| gs.borrow_mut().push(m.to_vec()),
        );
        let mut i = 0;
        // Enough rounds for one byte at a time (a handshake is about 20 KB each way); a
        // tunnel that stops consuming still fails the bound.
        let mut pump = |client: &mut dyn Feed, server: &mut dyn Feed| {
            for _ in 0..100_000 {
                move_chunk(&to_server, chunks[i % chunks.len()], server, &mut srng);
                move_chunk(&to_client, chunks[(i + 1) % chunks.len()], client, &mut crng);
                i += 2;
                if to_server.borrow().is_empty() && to_client.borrow().is_empty() {
                    return;
                }
            }
            panic!("the byte streams did not drain");
        };
        pump(&mut client, &mut server);
        prop_assert!(client.connection().is_established());
        prop_assert!(server.connection().is_established());
        // The client's record: pending before the establish request, then confirmed.
        prop_assert_eq!(*stored.borrow(), 2);
        client.send(b"to the server", NOW).unwrap();
        server.send(b"to the client", NOW).unwrap();
        client.send_ratchet_request(NOW, &mut TestRng::new("r")).unwrap();
        pump(&mut client, &mut server);
        // Its own ratchet: the new generation pending.
        prop_assert_eq!(*stored.borrow(), 3);
        client.send(b"after the ratchet", NOW).unwrap();
        client.close(NOW).unwrap();
        pump(&mut client, &mut server);
        prop_assert_eq!(
            got_server.borrow().clone(),
            vec![b"to the server".to_vec(), b"after the ratchet".to_vec()]
        );
        prop_assert_eq!(got_client.borrow().clone(), vec![b"to the client".to_vec()]);
        prop_assert!(server.connection().is_closed());
        prop_assert_eq!(
            client.keys().unwrap().local.pss(),
            server.keys().unwrap().remote.pss()
        );
    }
}

/// Moves up to `n` queued bytes into `peer`.
fn move_chunk(queue: &RefCell<Vec<u8>>, n: usize, peer: &mut dyn Feed, rng: &mut TestRng) {
    let bytes: Vec<u8> = {
        let mut b = queue.borrow_mut();
        let n = n.min(b.len());
        b.drain(..n).collect()
    };
    if !bytes.is_empty() {
        peer.feed_bytes(&bytes, rng);
    }
}

/// A tunnel of any callback types, for the pump.
trait Feed {
    fn feed_bytes(&mut self, bytes: &[u8], rng: &mut TestRng);
}

impl<S: FnMut(&[u8]), R: FnMut(&[u8]), E: FnMut(&Event)> Feed for Tunnel<S, R, E> {
    fn feed_bytes(&mut self, bytes: &[u8], rng: &mut TestRng) {
        self.feed(bytes, NOW, rng).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Honest sessions of every configuration

/// Delivers everything `from` queued to `to`; returns the packets moved.
fn deliver(from: &mut Connection, to: &mut Connection, rng: &mut TestRng) -> usize {
    let (packets, _) = drain(from);
    for p in &packets {
        to.handle_bytes(p, NOW, rng).unwrap();
    }
    packets.len()
}

fn connect(ck: PeerKeys, sk: PeerKeys, seed: &str) -> (Connection, Connection, TestRng, TestRng) {
    let mut crng = TestRng::new(&format!("c{seed}"));
    let mut srng = TestRng::new(&format!("s{seed}"));
    let (c, s) = connected(ck, sk, settings(), settings(), &mut crng, &mut srng);
    (c, s, crng, srng)
}

fn talk(a: &mut Connection, b: &mut Connection, rng: &mut TestRng, text: &[u8]) {
    a.send(text, NOW).unwrap();
    deliver(a, b, rng);
    let got = std::iter::from_fn(|| b.poll_output()).find_map(|o| match o {
        Output::Event(Event::Message(m)) => Some(m),
        _ => None,
    });
    assert_eq!(got.as_deref(), Some(text));
}

fn full_session(config: Config) {
    let (ck, sk) = pair(config, NOW);
    let (mut c, mut s, mut crng, mut srng) = connect(ck, sk, "1");
    talk(&mut c, &mut s, &mut srng, b"client to server");
    talk(&mut s, &mut c, &mut crng, b"server to client");
    if config.asymmetric_ratchet_possible() {
        // From the client, from the server, then crossing.
        c.start_ratchet(NOW, &mut crng).unwrap();
        deliver(&mut c, &mut s, &mut srng);
        deliver(&mut s, &mut c, &mut crng);
        s.start_ratchet(NOW, &mut srng).unwrap();
        deliver(&mut s, &mut c, &mut crng);
        deliver(&mut c, &mut s, &mut srng);
        c.start_ratchet(NOW, &mut crng).unwrap();
        s.start_ratchet(NOW, &mut srng).unwrap();
        while deliver(&mut c, &mut s, &mut srng) + deliver(&mut s, &mut c, &mut crng) > 0 {}
        let (cs, ss) = (c.session().unwrap(), s.session().unwrap());
        assert!(!cs.ratchet_outstanding() && !ss.ratchet_outstanding());
    } else {
        assert_eq!(
            c.start_ratchet(NOW, &mut crng),
            Err(Misuse::RatchetUnavailable.into())
        );
    }
    talk(&mut c, &mut s, &mut srng, b"still talking");
    talk(&mut s, &mut c, &mut crng, b"still listening");
    c.close(NOW).unwrap();
    deliver(&mut c, &mut s, &mut srng);
    assert!(c.is_closed() && s.is_closed());

    // Reconnect with the secrets the session advanced: works. With the stale ones: 0x07.
    let ck2 = c.session().unwrap().keys().clone();
    let sk2 = s.session().unwrap().keys().clone();
    assert_eq!(ck2.local.pss(), sk2.remote.pss());
    assert_eq!(ck2.remote.pss(), sk2.local.pss());
    let (mut c2, mut s2, _, mut srng2) = connect(ck2.clone(), sk2, "2");
    talk(&mut c2, &mut s2, &mut srng2, b"again");
    let (_, stale_server) = pair(config, NOW);
    let mut crng3 = TestRng::new("c3");
    let mut c3 = Connection::connect(ck2, settings(), NOW, &mut crng3).unwrap();
    let listener3 = Listener::new(settings());
    listener3.add(stale_server);
    let mut s3 = listener3.accept(NOW);
    let mut srng3 = TestRng::new("s3");
    deliver(&mut c3, &mut s3, &mut srng3);
    deliver(&mut s3, &mut c3, &mut crng3);
    deliver(&mut c3, &mut s3, &mut srng3);
    deliver(&mut s3, &mut c3, &mut crng3);
    let Some(Output::Transmit(establish)) =
        std::iter::from_fn(|| c3.poll_output()).find(|o| matches!(o, Output::Transmit(_)))
    else {
        panic!()
    };
    let e = s3.handle_bytes(&establish, NOW, &mut srng3).unwrap_err();
    assert_eq!(e.wire_code(), ErrorCode::Decryption);
    // The refusal is queued for the client, which reports it.
    let Some(Output::Transmit(reply)) = s3.poll_output() else {
        panic!()
    };
    assert_eq!(
        c3.handle_bytes(&reply, NOW, &mut crng3),
        Err(Error::PeerReported { code: 0x07 })
    );
}

#[test]
fn dilithium_kyber_sessions() {
    for name in [
        "dilithium-s1_kyber-s1_sha3_rcs",
        "dilithium-s3_kyber-s3_sha3_rcs",
        "dilithium-s5_kyber-s5_sha3_rcs",
        "dilithium-s5_kyber-s6_sha3_rcs",
    ] {
        full_session(name.parse().unwrap());
    }
}

#[test]
fn mceliece_s1_session() {
    big_stack(|| full_session("dilithium-s1_mceliece-s1_sha3_rcs".parse().unwrap()));
}

#[test]
#[ignore = "slow: McEliece key generation and SPHINCS+ signing; run with --ignored --release"]
fn every_other_mceliece_session() {
    big_stack(|| {
        for config in Config::ALL {
            let name = config.to_string();
            if config.kem().is_mceliece() && name != "dilithium-s1_mceliece-s1_sha3_rcs" {
                full_session(config);
            }
        }
    });
}

#[test]
fn opened_messages_are_ranges_of_the_packet() {
    let (mut client, mut server) = honest().sessions();
    let mut p = Vec::new();
    client.seal(b"range", NOW, &mut p).unwrap();
    let mut rng = TestRng::new("o");
    assert_eq!(
        server.open_in_place(&mut p, NOW, &mut rng),
        Ok(Opened::Message(HEADER_LEN..HEADER_LEN + 5))
    );
    assert_eq!(&p[HEADER_LEN..HEADER_LEN + 5], b"range");
}

// ---------------------------------------------------------------------------------------
// Any chunking of a recorded byte stream gives what whole packets give

/// What a connection handed out, comparable: packets as bytes, events as their debug form
/// (secrets print redacted) with message contents.
fn outputs(c: &mut Connection) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| c.poll_output())
        .map(|o| match o {
            Output::Transmit(p) => p,
            Output::Event(Event::Message(m)) => [b"message:".as_slice(), &m].concat(),
            Output::Event(e) => format!("{e:?}").into_bytes(),
        })
        .collect()
}

/// A recorded session: the client's byte stream to the server, packet by packet, and what
/// a server fed those whole packets handed out. The server's random source is fixed, so a
/// fresh server answers the same stream the same way.
struct Recording {
    stream: Vec<Vec<u8>>,
    server_out: Vec<Vec<u8>>,
    server_keys: PeerKeys,
}

fn recording() -> &'static Recording {
    static R: std::sync::OnceLock<Recording> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let (ck, sk) = pair(Config::DEFAULT, NOW);
        let mut crng = TestRng::new("rec c");
        let mut client = Connection::connect(ck, settings(), NOW, &mut crng).unwrap();
        let (mut server, mut srng) = record_server(&sk);
        let mut stream = Vec::new();
        let mut server_out = Vec::new();
        let mut step = 0;
        loop {
            let mut to_server = Vec::new();
            while let Some(o) = client.poll_output() {
                if let Output::Transmit(p) = o {
                    to_server.push(p);
                }
            }
            if to_server.is_empty() {
                // Quiet: data, a ratchet, more data, then the close.
                step += 1;
                match step {
                    1 => client.send(b"one", NOW).unwrap(),
                    2 => client.start_ratchet(NOW, &mut crng).unwrap(),
                    3 => client.send(&[7u8; 3000], NOW).unwrap(),
                    4 => client.close(NOW).unwrap(),
                    _ => break,
                }
                continue;
            }
            for p in to_server {
                server.handle_bytes(&p, NOW, &mut srng).unwrap();
                stream.push(p);
                while let Some(o) = server.poll_output() {
                    server_out.push(match o {
                        Output::Transmit(p) => {
                            client.handle_bytes(&p, NOW, &mut crng).unwrap();
                            p
                        }
                        Output::Event(Event::Message(m)) => [b"message:".as_slice(), &m].concat(),
                        Output::Event(e) => format!("{e:?}").into_bytes(),
                    });
                }
            }
        }
        // Handshake (3), data, ratchet request, data, close.
        assert_eq!(stream.len(), 7);
        Recording {
            stream,
            server_out,
            server_keys: sk,
        }
    })
}

fn record_server(sk: &PeerKeys) -> (Connection, TestRng) {
    let listener = Listener::new(settings());
    listener.add(sk.clone());
    (listener.accept(NOW), TestRng::new("rec s"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_of_a_recorded_stream_gives_the_same_outputs(
        cuts in proptest::collection::vec(1usize..5000, 1..40),
    ) {
        let r = recording();
        let bytes: Vec<u8> = r.stream.concat();
        let (mut server, mut srng) = record_server(&r.server_keys);
        let mut got = Vec::new();
        let mut at = 0;
        let mut k = 0;
        while at < bytes.len() {
            let n = cuts[k % cuts.len()].min(bytes.len() - at);
            server.handle_bytes(&bytes[at..at + n], NOW, &mut srng).unwrap();
            got.extend(outputs(&mut server));
            at += n;
            k += 1;
        }
        prop_assert_eq!(got, r.server_out.clone());
    }
}
