//! A server that opens its connections' packets in a batch ([`Connection::handle_bytes_batched`],
//! [`Connection::batch_session`]) sees exactly what the scalar path sees: the messages in
//! order, a ratchet (a control packet in the middle of data) handled by the connection,
//! the generation confirmed by the first packet after the commit, and a tampered packet
//! refused with the reference's reply. The listener's admission check refuses a connect
//! request before any signature is made.

use dktp::batch::{Batch, Outcome};
use dktp::config::Config;
use dktp::connection::Connection;
use dktp::error::Error;
use dktp::generation::SecretsChange;
use dktp::kex::{PeerKeys, Settings};
use dktp::listener::Listener;
use dktp::session::{Direction, Event};

use dktp::testing::{NOW, TestRng, drain, pump, tagged_pair};

const CONFIG: &str = "dilithium-s1_kyber-s1_sha3_rcs";

/// What a server turn came to for one connection.
#[derive(Default)]
struct Turn {
    messages: Vec<Vec<u8>>,
    events: Vec<Event>,
    packets: Vec<Vec<u8>>,
}

/// Opens `received` (framed by `handle_bytes_batched`) for each connection in one batch,
/// then hands control packets and what follows them to the connection, as a server loop
/// would.
fn batch_turn(
    conns: &mut [&mut Connection],
    received: Vec<Vec<Vec<u8>>>,
    rng: &mut TestRng,
) -> Vec<Turn> {
    let mut received = received;
    let mut turns: Vec<Turn> = conns.iter().map(|_| Turn::default()).collect();
    let mut results = Vec::new();
    {
        let mut batch = Batch::new();
        let mut jobs = Vec::new();
        for (conn, packets) in conns.iter_mut().zip(received.iter_mut()) {
            let session = conn.batch_session(NOW).expect("established");
            let s = batch.add(session);
            jobs.push(
                packets
                    .iter_mut()
                    .map(|p| batch.open(s, p))
                    .collect::<Vec<_>>(),
            );
        }
        let done = batch.flush(NOW);
        for ids in jobs {
            results.push(
                ids.into_iter()
                    .map(|id| match done.outcome(id) {
                        Outcome::Opened(m) => Ok(Some(m.to_vec())),
                        Outcome::Control(_) | Outcome::Deferred => Ok(None),
                        Outcome::Failed(e) => Err(e.clone()),
                        other => panic!("{other:?}"),
                    })
                    .collect::<Vec<_>>(),
            );
        }
    }
    for (c, (packets, outcomes)) in received.into_iter().zip(results).enumerate() {
        let mut scalar = false;
        for (packet, outcome) in packets.into_iter().zip(outcomes) {
            match outcome {
                Ok(Some(m)) if !scalar => turns[c].messages.push(m),
                Err(e) => {
                    conns[c].fail(e, NOW);
                    break;
                }
                _ => {
                    scalar = true;
                    let _ = conns[c].handle_packet(packet, NOW, rng);
                }
            }
        }
        let (packets, events) = drain(conns[c]);
        for e in events {
            match e {
                Event::Message(m) => turns[c].messages.push(m.into_vec()),
                e => turns[c].events.push(e),
            }
        }
        turns[c].packets = packets;
    }
    turns
}

#[test]
fn a_batched_server_sees_what_the_scalar_path_sees() {
    let config: Config = CONFIG.parse().unwrap();
    let listener = Listener::new(Settings::default());
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    let mut rng = TestRng::new("batched");
    for tag in 0..3u8 {
        let (ck, sk) = tagged_pair(config, tag, NOW);
        listener.add(sk);
        let mut c = Connection::connect(ck, Settings::default(), NOW, &mut rng).unwrap();
        let mut s = listener.accept(NOW);
        let (mut crng, mut srng) = (TestRng::new("c"), TestRng::new("s"));
        let (ce, se) = pump(&mut c, &mut s, NOW, &mut crng, &mut srng);
        assert!(ce.iter().any(|e| matches!(e, Event::Established)));
        assert!(se.iter().any(|e| matches!(e, Event::Established)));
        clients.push(c);
        servers.push(s);
    }

    // Each client: two messages, then (client 1) a ratchet request, then two more messages
    // after the response; the server gets each client's bytes in one chunk.
    let mut wire: Vec<Vec<u8>> = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(format!("{i} first").as_bytes(), NOW).unwrap();
        c.send(format!("{i} second").as_bytes(), NOW).unwrap();
        if i == 1 {
            c.start_ratchet(NOW, &mut rng).unwrap();
        }
        let (packets, _) = drain(c);
        wire.push(packets.concat());
    }
    let mut received = Vec::new();
    for (s, bytes) in servers.iter_mut().zip(&wire) {
        let mut packets = Vec::new();
        s.handle_bytes_batched(bytes, NOW, &mut rng, &mut packets)
            .unwrap();
        received.push(packets);
    }
    assert_eq!(
        received[1].len(),
        3,
        "two data packets and the ratchet request, unopened"
    );
    let mut conns: Vec<&mut Connection> = servers.iter_mut().collect();
    let turns = batch_turn(&mut conns, received, &mut rng);
    for (i, t) in turns.iter().enumerate() {
        assert_eq!(
            t.messages,
            vec![
                format!("{i} first").into_bytes(),
                format!("{i} second").into_bytes()
            ]
        );
        // The first packet after the commit confirms the server's pending generation.
        assert!(t.events.iter().any(|e| matches!(
            e,
            Event::Secrets(u) if u.change == SecretsChange::Confirmed
        )));
    }
    // The ratchet request went to the connection, which answered it.
    assert!(
        turns[1]
            .events
            .iter()
            .any(|e| matches!(e, Event::RatchetCompleted(Direction::Receive)))
    );
    assert_eq!(turns[1].packets.len(), 1);
    clients[1]
        .handle_bytes(&turns[1].packets[0], NOW, &mut rng)
        .unwrap();
    let (_, events) = drain(&mut clients[1]);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::RatchetCompleted(Direction::Transmit)))
    );

    // After the ratchet: more data on the new key; client 2 sends a tampered packet.
    let mut received = Vec::new();
    for (i, (c, s)) in clients.iter_mut().zip(servers.iter_mut()).enumerate() {
        c.send(format!("{i} third").as_bytes(), NOW).unwrap();
        let (mut packets, _) = drain(c);
        if i == 2 {
            let last = packets[0].len() - 1;
            packets[0][last] ^= 1;
        }
        let mut framed = Vec::new();
        s.handle_bytes_batched(&packets.concat(), NOW, &mut rng, &mut framed)
            .unwrap();
        received.push(framed);
    }
    let mut conns: Vec<&mut Connection> = servers.iter_mut().collect();
    let turns = batch_turn(&mut conns, received, &mut rng);
    assert_eq!(turns[0].messages, vec![b"0 third".to_vec()]);
    assert_eq!(turns[1].messages, vec![b"1 third".to_vec()]);
    assert!(turns[2].messages.is_empty());
    // The tampered packet: the encrypted error packet (0x02) and the close.
    assert_eq!(turns[2].packets.len(), 1);
    assert_eq!(turns[2].packets[0][0], 0x12);
    assert!(turns[2].events.iter().any(|e| matches!(
        e,
        Event::Closed {
            code: 0x02,
            by_peer: false
        }
    )));
    assert!(servers[2].is_closed() && !servers[0].is_closed());
    clients[2]
        .handle_bytes(&turns[2].packets[0], NOW, &mut rng)
        .ok();
    assert!(clients[2].is_closed());
}

/// A listener (default settings) holding the server's keys of the `tag` pair: the listener,
/// the client's keys and the server's key id.
fn listening(tag: u8) -> (Listener, PeerKeys, [u8; 16]) {
    let listener = Listener::new(Settings::default());
    let (ck, sk) = tagged_pair(CONFIG.parse().unwrap(), tag, NOW);
    let keyid = *sk.local.keyid();
    listener.add(sk);
    (listener, ck, keyid)
}

#[test]
fn the_admission_check_refuses_before_any_signature() {
    let (listener, ck, refused_id) = listening(9);
    let (ck2, sk2) = tagged_pair(CONFIG.parse().unwrap(), 10, NOW);
    listener.add(sk2);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    assert!(listener.set_admission(move |id| {
        seen2.lock().unwrap().push(*id);
        *id != refused_id
    }));
    assert!(!listener.set_admission(|_| true), "set once");
    let mut rng = TestRng::new("admission");
    let mut c = Connection::connect(ck, Settings::default(), NOW, &mut rng).unwrap();
    let mut s = listener.accept(NOW);
    let (packets, _) = drain(&mut c);
    let r = s.handle_bytes(&packets[0], NOW, &mut rng);
    assert_eq!(r, Err(Error::Overloaded));
    let (reply, events) = drain(&mut s);
    assert_eq!(reply.len(), 1);
    assert_eq!((reply[0][0], reply[0][21]), (0x12, 0x0b));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Closed {
            code: 0x0b,
            by_peer: false
        }
    )));
    assert_eq!(listener.stats().signed, 0);
    // An admitted peer goes through.
    let mut c2 = Connection::connect(ck2, Settings::default(), NOW, &mut rng).unwrap();
    let mut s2 = listener.accept(NOW);
    let (mut crng, mut srng) = (TestRng::new("c2"), TestRng::new("s2"));
    let (ce, _) = pump(&mut c2, &mut s2, NOW, &mut crng, &mut srng);
    assert!(ce.iter().any(|e| matches!(e, Event::Established)));
    assert_eq!(listener.stats().signed, 1);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn a_default_connection_is_an_ended_placeholder() {
    let mut c = Connection::default();
    assert!(c.is_closed() && !c.is_established());
    assert!(c.poll_output().is_none());
    assert!(c.batch_session(NOW).is_none());
    assert!(
        c.handle_bytes(&[1, 2, 3], NOW, &mut TestRng::new("x"))
            .is_err()
    );
}

#[test]
fn a_connection_names_the_record_its_handshake_started_from() {
    let (listener, ck, keyid) = listening(11);
    let mut rng = TestRng::new("base");
    let start = dktp::generation::Generations::of_keys(&ck);
    let mut c =
        Connection::connect_with(ck, start.clone(), Settings::default(), NOW, &mut rng).unwrap();
    assert_eq!(c.base_record(), Some(&start));
    let mut s = listener.accept(NOW);
    assert!(
        s.base_record().is_none(),
        "nothing before the connect request"
    );
    let listed = listener.peer(&keyid).unwrap().secrets;
    let (packets, _) = drain(&mut c);
    s.handle_bytes(&packets[0], NOW, &mut rng).unwrap();
    assert_eq!(s.base_record(), Some(&listed));
    let (mut crng, mut srng) = (TestRng::new("c"), TestRng::new("s"));
    let (ce, se) = pump(&mut c, &mut s, NOW, &mut crng, &mut srng);
    assert!(ce.iter().any(|e| matches!(e, Event::Established)));
    // The listener moved on; the connection still names where it started.
    assert_ne!(listener.peer(&keyid).unwrap().secrets, listed);
    assert_eq!(s.base_record(), Some(&listed));
    assert!(se.iter().any(|e| matches!(e, Event::Secrets(_))));
}
