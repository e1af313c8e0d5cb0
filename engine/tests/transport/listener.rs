//! A listener with 10,000 peers: a connect request per peer is accepted; an unknown key id
//! and a replayed request on a second connection are refused before any signature is
//! verified or made (the listener's counters show it).

use dktp::config::Config;
use dktp::connection::Connection;
use dktp::error::ErrorCode;
use dktp::kex::{PeerKeys, Settings};
use dktp::listener::Listener;
use dktp::peer_key::{LocalPeerKey, RemotePeerKey};
use dktp::session::{Event, Output};

use dktp::testing::{NOW, TestRng, drain, pump, tagged_pair};

/// The pair with both key ids replaced (the signing keys are shared, which costs a
/// listener nothing: it looks peers up by key id).
fn renamed(keys: &PeerKeys, id: u32, server: bool) -> PeerKeys {
    // Key files: config[36] expiry[8] keyid[16] (local: peerid[16]) ...
    let mut local = keys.local.to_bytes().to_vec();
    let mut remote = keys.remote.to_bytes().to_vec();
    let mine = id_bytes(id, server);
    let theirs = id_bytes(id, !server);
    local[44..60].copy_from_slice(&mine);
    local[60..76].copy_from_slice(&theirs);
    remote[44..60].copy_from_slice(&theirs);
    PeerKeys {
        local: LocalPeerKey::from_bytes(&local).unwrap(),
        remote: RemotePeerKey::from_bytes(&remote).unwrap(),
    }
}

fn id_bytes(id: u32, server: bool) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = if server { 0x5e } else { 0xc1 };
    b[12..].copy_from_slice(&id.to_le_bytes());
    b
}

fn error_code(packets: &[Vec<u8>]) -> Option<u8> {
    match packets {
        [p] if p.len() == 22 && p[0] == 0x12 => p.last().copied(),
        _ => None,
    }
}

#[test]
fn ten_thousand_peers_and_cheap_refusals() {
    let config: Config = "dilithium-s1_kyber-s1_sha3_rcs".parse().unwrap();
    let (ck, sk) = tagged_pair(config, 9, NOW);
    let listener = Listener::new(Settings::default());
    const PEERS: u32 = 10_000;
    for id in 0..PEERS {
        listener.add(renamed(&sk, id, true));
    }
    assert_eq!(listener.len(), PEERS as usize);
    let mut rng = TestRng::new("listener");
    let mut first_request = None;
    for id in 0..PEERS {
        let mut client =
            Connection::connect(renamed(&ck, id, false), Settings::default(), NOW, &mut rng)
                .unwrap();
        let (request, _) = drain(&mut client);
        let mut server = listener.accept(NOW);
        server.handle_bytes(&request[0], NOW, &mut rng).unwrap();
        let (response, _) = drain(&mut server);
        assert_eq!(response.len(), 1);
        assert_eq!(response[0][0], 0x02, "peer {id}: a connect response");
        if id == 0 {
            first_request = Some(request[0].clone());
        }
    }
    let stats = listener.stats();
    assert_eq!(stats.signed, u64::from(PEERS));
    assert_eq!((stats.refused_early, stats.refused_late), (0, 0));

    // A replay of peer 0's request on a second connection: 0x14, nothing signed.
    let replayed = first_request.unwrap();
    let mut second = listener.accept(NOW);
    let e = second.handle_bytes(&replayed, NOW, &mut rng).unwrap_err();
    assert_eq!(e.wire_code(), ErrorCode::PacketUnsequenced);
    let (packets, events) = drain(&mut second);
    assert_eq!(
        error_code(&packets),
        Some(ErrorCode::PacketUnsequenced.as_u8())
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Closed { by_peer: false, .. }))
    );

    // An unknown key id: 0x0F, nothing signed.
    let (stranger, _) = tagged_pair(config, 10, NOW);
    let mut client = Connection::connect(stranger, Settings::default(), NOW, &mut rng).unwrap();
    let Some(Output::Transmit(request)) = client.poll_output() else {
        panic!("no request")
    };
    let mut third = listener.accept(NOW);
    let e = third.handle_bytes(&request, NOW, &mut rng).unwrap_err();
    assert_eq!(e.wire_code(), ErrorCode::KeyUnrecognized);
    assert_eq!(
        error_code(&drain(&mut third).0),
        Some(ErrorCode::KeyUnrecognized.as_u8())
    );

    let after = listener.stats();
    assert_eq!(
        after.signed,
        u64::from(PEERS),
        "no signature for a refused request"
    );
    assert_eq!(after.refused_early, 2);
    assert_eq!(after.accepted, u64::from(PEERS) + 2);
}

/// A removed peer is refused like an unknown one.
#[test]
fn removed_peers_are_refused() {
    let (ck, sk) = tagged_pair(Config::DEFAULT, 11, NOW);
    let listener = Listener::new(Settings::default());
    listener.add(sk.clone());
    assert!(listener.remove(sk.local.keyid()));
    let mut rng = TestRng::new("removed");
    let mut client = Connection::connect(ck, Settings::default(), NOW, &mut rng).unwrap();
    let (request, _) = drain(&mut client);
    let mut server = listener.accept(NOW);
    let e = server.handle_bytes(&request[0], NOW, &mut rng).unwrap_err();
    assert_eq!(e.wire_code(), ErrorCode::KeyUnrecognized);
    assert_eq!(listener.stats().signed, 0);
}

/// The listener's record follows its connections: pending after the handshake, confirmed
/// by the client's first packet, so the peer's next connection starts from it.
#[test]
fn the_listener_keeps_each_peers_record_current() {
    let (ck, sk) = tagged_pair(Config::DEFAULT, 12, NOW);
    let keyid = *sk.local.keyid();
    let listener = Listener::new(Settings::default());
    listener.add(sk);
    let (mut crng, mut srng) = (TestRng::new("c"), TestRng::new("s"));
    let mut client = Connection::connect(ck, Settings::default(), NOW, &mut crng).unwrap();
    let mut server = listener.accept(NOW);
    pump(&mut client, &mut server, NOW, &mut crng, &mut srng);
    assert!(server.is_established());
    let record = listener.peer(&keyid).unwrap().secrets;
    assert_eq!(record.confirmed.number(), 0);
    assert_eq!(record.pending.as_ref().map(|g| g.number()), Some(1));
    client.send(b"proof", NOW).unwrap();
    pump(&mut client, &mut server, NOW, &mut crng, &mut srng);
    let record = listener.peer(&keyid).unwrap().secrets;
    assert_eq!(
        (record.confirmed.number(), record.pending.is_none()),
        (1, true)
    );
    assert_eq!(&record, server.session().unwrap().generations());
}
