//! In-process handshakes and one test per malformed or hostile input: each must give its
//! typed error, the reference's wire code, and the error packet the reference would send.

use super::*;
use crate::config::Config;
use crate::connection::Connection;
use crate::error::{ErrorCode, Misuse, PeerIncompatible, PeerMisbehaved};
use crate::key_schedule::channel;
use crate::packet::{self, ERROR_SEQUENCE, Flag, FlagCheck, HEADER_LEN, Header, assemble, header};
use crate::peer_key::{self, KEY_LIFETIME};
use crate::session::{Direction, Event, Opened, Output, Role, Session};
use crate::testing::{TestRng, connected, established, pump, serve};
use crate::transcript::sign;

use crate::testing::{NOW, pair};

fn code(r: Result<impl Sized, Error>) -> u8 {
    match r {
        Ok(_) => 0,
        Err(e) => e.wire_code().as_u8(),
    }
}

fn set_header(packet: &mut [u8], f: impl FnOnce(&mut Header)) {
    let mut h = Header::decode(packet).unwrap();
    f(&mut h);
    packet[..HEADER_LEN].copy_from_slice(&h.encode());
}

/// The error, its wire code and the plaintext reply the reference would send.
fn assert_refused(r: Result<impl Sized, Error>, want: ErrorCode) -> Error {
    let e = match r {
        Ok(_) => panic!("accepted; expected {want}"),
        Err(e) => e,
    };
    assert_eq!(e.wire_code(), want, "{e:?}");
    let reply = error_reply(&e, NOW).expect("a reply");
    assert_eq!(reply, packet::encode_plain_error(want, NOW));
    assert_eq!(&reply[..13], &[0x12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
    assert_eq!(Header::decode(&reply).unwrap().sequence, ERROR_SEQUENCE);
    e
}

#[test]
fn default_handshake_sizes_sequences_and_data() {
    let mut run = established(Config::DEFAULT);
    let lens: Vec<usize> = run.packets.iter().map(Vec::len).collect();
    assert_eq!(lens, [4764, 6280, 7848, 6280, 149, 149]);
    let seqs: Vec<u64> = run
        .packets
        .iter()
        .map(|p| Header::decode(p).unwrap().sequence)
        .collect();
    assert_eq!(seqs, [0, 0, 1, 1, 2, 2]);
    assert_eq!((run.client.txseq(), run.client.rxseq()), (3, 3));
    assert_eq!((run.server.txseq(), run.server.rxseq()), (3, 3));
    assert_eq!(run.client.role(), Role::Client);

    let mut p = Vec::new();
    run.client.seal(b"hello", NOW, &mut p).unwrap();
    assert_eq!(Header::decode(&p).unwrap().sequence, 4);
    assert_eq!(p.len(), 21 + 5 + 64);
    let mut rng = TestRng::new("x");
    match run.server.open_in_place(&mut p, NOW, &mut rng).unwrap() {
        Opened::Message(r) => assert_eq!(&p[r], b"hello"),
        Opened::Control => panic!(),
    }
    // Into a caller's buffer, and the close.
    let mut buf = [0u8; 200];
    let n = run.server.seal_into(b"back", NOW, &mut buf).unwrap();
    run.client.handle_packet(&buf[..n], NOW, &mut rng).unwrap();
    assert!(
        matches!(run.client.poll_output(), Some(Output::Event(Event::Message(m))) if m == b"back")
    );
    let close = run.client.close(NOW).unwrap();
    assert_eq!(close.len(), 86);
    assert_eq!(close[0], 0x12);
    run.server.handle_packet(&close, NOW, &mut rng).unwrap();
    // The client's first packet confirmed the server's pending generation; then the close.
    assert!(matches!(
        run.server.poll_output(),
        Some(Output::Event(Event::Secrets(u))) if u.change == crate::generation::SecretsChange::Confirmed
    ));
    assert!(matches!(
        run.server.poll_output(),
        Some(Output::Event(Event::Closed { code: 0x1b, .. }))
    ));
    assert!(!run.server.is_open() && !run.client.is_open());
    assert_eq!(
        code(run.client.seal(b"x", NOW, &mut Vec::new())),
        ErrorCode::ChannelDown.as_u8()
    );
}

#[test]
fn seal_refuses_empty_oversized_and_small_buffers() {
    let mut run = established(Config::DEFAULT);
    let mut v = Vec::new();
    assert_eq!(
        run.client.seal(b"", NOW, &mut v),
        Err(Misuse::EmptyMessage.into())
    );
    let big = vec![0u8; Session::MAX_PLAINTEXT + 1];
    assert!(matches!(
        run.client.seal(&big, NOW, &mut v),
        Err(Error::Misuse(Misuse::MessageTooLong { .. }))
    ));
    let mut small = [0u8; 80];
    assert!(matches!(
        run.client.seal_into(b"0123456789", NOW, &mut small),
        Err(Error::Misuse(Misuse::BufferTooSmall { .. }))
    ));
    // Misuse consumed no sequence number and left the session open.
    assert_eq!(run.client.txseq(), 3);
    run.client
        .seal(&vec![7u8; Session::MAX_PLAINTEXT], NOW, &mut v)
        .unwrap();
    let mut rng = TestRng::new("x");
    assert!(matches!(
        run.server.open_in_place(&mut v, NOW, &mut rng),
        Ok(Opened::Message(_))
    ));
}

#[test]
fn batch_hooks_match_seal_and_open() {
    let mut run = established(Config::DEFAULT);
    let header = run.client.prepare_seal(3, NOW).unwrap();
    let hb = header.encode();
    let mut body = *b"abc";
    let mut tag = [0u8; 64];
    run.client
        .tx_channel_mut()
        .seal_in_place(&hb, &mut body, &mut tag)
        .unwrap();
    let packet = [&hb[..], &body, &tag].concat();
    let h = Header::decode(&packet).unwrap();
    run.server.check_data_header(&h, NOW).unwrap();
    let (mut b2, t2) = (body, tag);
    run.server
        .rx_channel_mut()
        .open_in_place(&hb, &mut b2, &t2)
        .unwrap();
    run.server.commit_open();
    assert_eq!(&b2, b"abc");
    assert_eq!(run.server.rxseq(), 4);
    // The same packet again is out of sequence.
    assert_eq!(
        code(run.server.check_data_header(&h, NOW)),
        ErrorCode::PacketUnsequenced.as_u8()
    );
}

// ---------------------------------------------------------------------------------------
// Handshake refusals, one per case

#[test]
fn truncated_packets() {
    let run = established(Config::DEFAULT);
    let (ck, sk) = pair(Config::DEFAULT, NOW);
    let settings = Settings::default();
    let request = |cut: usize| {
        serve(
            &run.packets[0][..cut],
            &sk,
            &settings,
            NOW,
            &mut TestRng::new("s"),
        )
    };
    // Shorter than a header: no reply (the reference drops the connection).
    let e = request(20).unwrap_err();
    assert!(matches!(e, Error::Malformed(Malformed::Truncated { .. })));
    assert_eq!(error_reply(&e, NOW), None);
    // A whole header but a cut message: 0x16.
    for cut in [21, 30, 100, run.packets[0].len() - 1] {
        assert_refused(request(cut), ErrorCode::Receive);
    }
    let c1 = client::start(ck, settings, NOW, &mut TestRng::new("c")).unwrap();
    let r = c1
        .next
        .handle(&run.packets[1][..500], NOW, &mut TestRng::new("c"));
    assert_refused(r, ErrorCode::Receive);
}

/// A client at its connect-response step, and the server's response.
fn at_connect_response() -> (client::AwaitConnectResponse, Vec<u8>) {
    let (c1, s1) = round(pair(Config::DEFAULT, NOW), Settings::default());
    (c1.next, s1.packet)
}

/// The first round trip between `keys` with `settings`, from the "c" and "s" streams: the
/// client awaiting the connect response, and the server's response.
fn round(
    (ck, sk): (PeerKeys, PeerKeys),
    settings: Settings,
) -> (
    Flight<client::AwaitConnectResponse>,
    Flight<server::AwaitExchangeRequest>,
) {
    let c1 = client::start(ck, settings.clone(), NOW, &mut TestRng::new("c")).unwrap();
    let s1 = serve(&c1.packet, &sk, &settings, NOW, &mut TestRng::new("s")).unwrap();
    (c1, s1)
}

/// Four messages into a handshake: the client awaiting the exchange response, the server's
/// exchange response (the server awaiting the establish request), both random sources.
fn exchanged(
    (ck, sk): (PeerKeys, PeerKeys),
) -> (
    Flight<client::AwaitExchangeResponse>,
    Flight<server::AwaitEstablishRequest>,
    TestRng,
    TestRng,
) {
    let (mut crng, mut srng) = (TestRng::new("c"), TestRng::new("s"));
    let settings = Settings::default();
    let c1 = client::start(ck, settings.clone(), NOW, &mut crng).unwrap();
    let s1 = serve(&c1.packet, &sk, &settings, NOW, &mut srng).unwrap();
    let c2 = c1.next.handle(&s1.packet, NOW, &mut crng).unwrap();
    let s2 = s1.next.handle(&c2.packet, NOW, &mut srng).unwrap();
    (c2, s2, crng, srng)
}

#[test]
fn msglen_over_64k_and_wrong_lengths() {
    let (c, mut p) = at_connect_response();
    set_header(&mut p, |h| h.msglen = 0x10001);
    let e = assert_refused(
        c.handle(&p, NOW, &mut TestRng::new("c")),
        ErrorCode::Receive,
    );
    assert!(matches!(
        e,
        Error::PeerMisbehaved(PeerMisbehaved::UnexpectedLength { .. })
    ));
    // Framing refuses it before reading the body.
    assert!(matches!(
        packet::frame(&p, packet::MAX_MESSAGE),
        Err(Error::Malformed(Malformed::TooLong { .. }))
    ));
    // In a session too.
    let mut run = established(Config::DEFAULT);
    let mut d = Vec::new();
    run.client.seal(b"abc", NOW, &mut d).unwrap();
    set_header(&mut d, |h| h.msglen = 0x10001);
    d.resize(HEADER_LEN + 0x10001, 0);
    let e = run
        .server
        .open_in_place(&mut d, NOW, &mut TestRng::new("x"))
        .unwrap_err();
    assert!(matches!(e, Error::Malformed(Malformed::TooLong { .. })));
    assert!(!run.server.is_open());
}

#[test]
fn wrong_and_repeated_sequence() {
    let (c, mut p) = at_connect_response();
    set_header(&mut p, |h| h.sequence = 1);
    assert_refused(
        c.handle(&p, NOW, &mut TestRng::new("c")),
        ErrorCode::PacketUnsequenced,
    );
    let mut run = established(Config::DEFAULT);
    let mut a = Vec::new();
    run.client.seal(b"one", NOW, &mut a).unwrap();
    let again = a.clone();
    let mut rng = TestRng::new("x");
    run.server.handle_packet(&a, NOW, &mut rng).unwrap();
    let e = run.server.handle_packet(&again, NOW, &mut rng).unwrap_err();
    assert_eq!(e.wire_code(), ErrorCode::PacketUnsequenced);
    assert_eq!(run.server.rxseq(), 4);
    assert!(!run.server.is_open());
}

#[test]
fn stale_and_future_time() {
    for skew in [-61i64, 61] {
        let (c, p) = at_connect_response();
        let now = NOW.checked_add_signed(skew).unwrap();
        let e = c.handle(&p, now, &mut TestRng::new("c")).unwrap_err();
        assert_eq!(e.wire_code(), ErrorCode::MessageTimeInvalid);
        assert!(error_reply(&e, now).is_some());
    }
    // 60 s either way is still fine.
    let (c, p) = at_connect_response();
    assert!(c.handle(&p, NOW + 60, &mut TestRng::new("c")).is_ok());
    // The server checks the time before looking anything up.
    let run = established(Config::DEFAULT);
    let r = server::AwaitConnectRequest::new(Settings::default()).handle(
        &run.packets[0],
        NOW + 61,
        &mut TestRng::new("s"),
        &mut |_: &[u8; 16]| -> Option<PeerKeys> { panic!("looked up a stale request") },
        &mut ReplayGate::default(),
    );
    assert_eq!(code(r), ErrorCode::MessageTimeInvalid.as_u8());
    // Sessions: 0x13 too.
    let mut run = established(Config::DEFAULT);
    let mut d = Vec::new();
    run.client.seal(b"t", NOW, &mut d).unwrap();
    let e = run
        .server
        .handle_packet(&d, NOW - 61, &mut TestRng::new("x"))
        .unwrap_err();
    assert_eq!(e.wire_code(), ErrorCode::MessageTimeInvalid);
}

#[test]
fn wrong_flag() {
    let (c, mut p) = at_connect_response();
    set_header(&mut p, |h| h.flag = Flag::ExchangeResponse.as_u8());
    assert_refused(
        c.handle(&p, NOW, &mut TestRng::new("c")),
        ErrorCode::InvalidRequest,
    );
    // The reference's lax mode passes the flag; the hash (which covers the header) fails.
    let settings = Settings::default().with_flag_check(FlagCheck::Reference);
    let (c1, mut s1) = round(pair(Config::DEFAULT, NOW), settings);
    set_header(&mut s1.packet, |h| h.flag = 0x06);
    assert_refused(
        c1.next.handle(&s1.packet, NOW, &mut TestRng::new("c")),
        ErrorCode::Verify,
    );
    // Sessions: an unexpected flag is 0x0D, an unknown one too.
    for flag in [0x01u8, 0x10] {
        let mut run = established(Config::DEFAULT);
        let mut d = Vec::new();
        run.client.seal(b"f", NOW, &mut d).unwrap();
        set_header(&mut d, |h| h.flag = flag);
        let e = run
            .server
            .handle_packet(&d, NOW, &mut TestRng::new("x"))
            .unwrap_err();
        assert_eq!(e.wire_code(), ErrorCode::InvalidRequest);
    }
}

/// The client's connect request with `cfg` replaced and correctly re-signed.
fn resigned_connect_request(keys: &PeerKeys, cfg: &[u8; 36]) -> Vec<u8> {
    let c = Config::DEFAULT;
    let len = c.message_sizes().connect_request;
    let h = header(Flag::ConnectRequest, 0, NOW, len);
    let keyid = *keys.remote.keyid();
    let hm1 = crate::transcript::message_hash(&h, &[&keyid, cfg]);
    let signed = sign(
        c.sig(),
        keys.local.signing_key(),
        &hm1,
        &mut TestRng::new("r"),
    )
    .unwrap();
    assemble(&h, len, &[&keyid, cfg, &signed])
}

#[test]
fn wrong_config_string() {
    let (ck, sk) = pair(Config::DEFAULT, NOW);
    // Same signature scheme, hence the same length: only the string differs.
    let other: Config = "dilithium-s5_kyber-s6_sha3_rcs".parse().unwrap();
    let p = resigned_connect_request(&ck, &other.to_wire());
    let mut rng = TestRng::new("s");
    let r = serve(&p, &sk, &Settings::default(), NOW, &mut rng);
    assert_refused(r, ErrorCode::UnknownProtocol);
    assert_eq!(rng.used(), 0);
    // The original string re-signed the same way is accepted (the helper is sound).
    let p = resigned_connect_request(&ck, &Config::DEFAULT.to_wire());
    assert!(serve(&p, &sk, &Settings::default(), NOW, &mut TestRng::new("s")).is_ok());
}

#[test]
fn expired_keys() {
    let born = NOW - KEY_LIFETIME - 1;
    let (ck, sk) = pair(Config::DEFAULT, born);
    // The client refuses an expired server key before sending anything.
    let e =
        client::start(ck.clone(), Settings::default(), NOW, &mut TestRng::new("c")).unwrap_err();
    assert_eq!(e, PeerIncompatible::KeyExpired.into());
    // The server checks its own key (0x0E), not the client's.
    let c1 = client::start(ck, Settings::default(), born, &mut TestRng::new("c")).unwrap();
    let mut header_now = c1.packet.clone();
    set_header(&mut header_now, |h| h.utctime = NOW);
    let r = serve(
        &header_now,
        &sk,
        &Settings::default(),
        NOW,
        &mut TestRng::new("s"),
    );
    assert_refused(r, ErrorCode::KeyExpired);
}

#[test]
fn mismatched_key_id_and_unlinked_keys() {
    let run = established(Config::DEFAULT);
    let (_, sk) = pair(Config::DEFAULT, NOW);
    let mut p = run.packets[0].clone();
    p[HEADER_LEN] ^= 1;
    let mut rng = TestRng::new("s");
    let r = serve(&p, &sk, &Settings::default(), NOW, &mut rng);
    assert_refused(r, ErrorCode::KeyUnrecognized);
    assert_eq!(rng.used(), 0);
    // A client whose pair is not linked refuses to start (0x1A).
    let (mut ck, _) = pair(Config::DEFAULT, NOW);
    let (_, stranger) =
        peer_key::generate(Config::DEFAULT, [0x77; 16], NOW, &mut TestRng::new("o")).unwrap();
    ck.remote = stranger;
    let r = client::start(ck, Settings::default(), NOW, &mut TestRng::new("c"));
    assert_eq!(code(r), ErrorCode::PeerKeyMismatch.as_u8());
}

#[test]
fn bad_signature_everywhere() {
    // Connect request (server side).
    let run = established(Config::DEFAULT);
    let (_, sk) = pair(Config::DEFAULT, NOW);
    let mut p = run.packets[0].clone();
    p[HEADER_LEN + 60] ^= 1;
    let mut rng = TestRng::new("s");
    let r = serve(&p, &sk, &Settings::default(), NOW, &mut rng);
    assert_refused(r, ErrorCode::Authentication);
    assert_eq!(rng.used(), 0, "no key generated for a bad request");
    // Connect response (client side).
    let (c, mut p) = at_connect_response();
    p[HEADER_LEN + 10] ^= 0x80;
    assert_refused(
        c.handle(&p, NOW, &mut TestRng::new("c")),
        ErrorCode::Authentication,
    );
}

#[test]
fn bad_hash_is_0x19_and_0x0a_at_the_exchange_response() {
    // The header is hashed but signed before it was changed: the signature verifies, the
    // hash does not.
    let (c, mut p) = at_connect_response();
    set_header(&mut p, |h| h.utctime += 1);
    assert_refused(c.handle(&p, NOW, &mut TestRng::new("c")), ErrorCode::Verify);

    let (c2, s2, mut crng, _) = exchanged(pair(Config::DEFAULT, NOW));
    let mut p4 = s2.packet.clone();
    set_header(&mut p4, |h| h.utctime += 1);
    assert_refused(c2.next.handle(&p4, NOW, &mut crng), ErrorCode::HashInvalid);

    // The exchange request at the server: 0x19.
    let (c, s) = round(pair(Config::DEFAULT, NOW), Settings::default());
    let mut p3 = c
        .next
        .handle(&s.packet, NOW, &mut TestRng::new("c"))
        .unwrap()
        .packet;
    set_header(&mut p3, |h| h.utctime -= 1);
    assert_refused(
        s.next.handle(&p3, NOW, &mut TestRng::new("s")),
        ErrorCode::Verify,
    );
}

#[test]
fn tampered_ciphertext() {
    // Establish request: 0x07 (the keys or secrets differ as far as the server can tell).
    let (c2, s2, mut crng, mut srng) = exchanged(pair(Config::DEFAULT, NOW));
    let c3 = c2.next.handle(&s2.packet, NOW, &mut crng).unwrap();
    let mut p = c3.packet.clone();
    p[HEADER_LEN + 3] ^= 1;
    assert_refused(s2.next.handle(&p, NOW, &mut srng), ErrorCode::Decryption);

    // Data and ratchet packets: 0x02, and the session is over.
    let mut run = established(Config::DEFAULT);
    let mut d = Vec::new();
    run.client.seal(b"secret", NOW, &mut d).unwrap();
    let last = d.len() - 1;
    d[last] ^= 1;
    let mut rng = TestRng::new("x");
    let e = run.server.handle_packet(&d, NOW, &mut rng).unwrap_err();
    assert_eq!(e.wire_code(), ErrorCode::Authentication);
    assert!(!run.server.is_open());
    let mut run = established(Config::DEFAULT);
    let mut r = run.client.start_ratchet(NOW, &mut rng).unwrap();
    r[HEADER_LEN + 100] ^= 1;
    let e = run.server.handle_packet(&r, NOW, &mut rng).unwrap_err();
    assert_eq!(e.wire_code(), ErrorCode::Authentication);
}

#[test]
fn establish_response_checked() {
    let (c2, s2, mut crng, mut srng) = exchanged(pair(Config::DEFAULT, NOW));
    let c3 = c2.next.handle(&s2.packet, NOW, &mut crng).unwrap();
    let s3 = s2.next.handle(&c3.packet, NOW, &mut srng).unwrap();
    let mut p = s3.packet.clone();
    p[HEADER_LEN + 70] ^= 1;
    assert_refused(c3.next.handle(&p, NOW, &mut crng), ErrorCode::Decryption);
}

#[test]
fn stale_pss_fails_at_establish() {
    let (mut ck, sk) = pair(Config::DEFAULT, NOW);
    ck.remote.set_pss(&[9; 32]);
    let (c2, s2, mut crng, mut srng) = exchanged((ck, sk));
    let c3 = c2.next.handle(&s2.packet, NOW, &mut crng).unwrap();
    assert_refused(
        s2.next.handle(&c3.packet, NOW, &mut srng),
        ErrorCode::Decryption,
    );
}

#[test]
fn peer_error_packet_ends_handshake_without_reply() {
    let (c, _) = at_connect_response();
    let p = packet::encode_plain_error(ErrorCode::KeyUnrecognized, NOW);
    let e = c.handle(&p, NOW, &mut TestRng::new("c")).unwrap_err();
    assert_eq!(e, Error::PeerReported { code: 0x0f });
    assert_eq!(error_reply(&e, NOW), None);
}

#[test]
fn replay_gate_refuses_before_any_key_generation() {
    let run = established(Config::DEFAULT);
    let (_, sk) = pair(Config::DEFAULT, NOW);
    let mut gate = ReplayGate::default();
    let mut lookup = SinglePeer(sk);
    let mut request = |now: u64, rng: &mut TestRng, gate: &mut ReplayGate| {
        let server = server::AwaitConnectRequest::new(Settings::default());
        server.handle(&run.packets[0], now, rng, &mut lookup, gate)
    };
    assert!(request(NOW, &mut TestRng::new("s"), &mut gate).is_ok());
    let mut rng = TestRng::new("s2");
    let r = request(NOW + 30, &mut rng, &mut gate);
    let e = assert_refused(r, ErrorCode::PacketUnsequenced);
    assert_eq!(e, PeerMisbehaved::Replayed.into());
    assert_eq!(rng.used(), 0);
    // Once the packet is stale the time check refuses it and the gate forgets it.
    let r = request(NOW + 61, &mut rng, &mut gate);
    assert_eq!(code(r), ErrorCode::MessageTimeInvalid.as_u8());
    let full = ReplayGate::with_capacity(1);
    let mut full2 = full.clone();
    full2.record(&[1; 64], NOW, NOW).unwrap();
    let r = request(NOW, &mut rng, &mut full2);
    assert_refused(r, ErrorCode::HostsExceeded);
    assert_eq!(rng.used(), 0);
}

// ---------------------------------------------------------------------------------------
// Ratchets

/// Delivers every packet `from` has queued to `to`, returns how many.
fn deliver(from: &mut Session, to: &mut Session, rng: &mut TestRng) -> usize {
    let mut n = 0;
    while let Some(o) = from.poll_output() {
        if let Output::Transmit(p) = o {
            to.handle_packet(&p, NOW, rng).unwrap();
            n += 1;
        }
    }
    n
}

fn exchange_data(a: &mut Session, b: &mut Session, rng: &mut TestRng) {
    one_way(a, b, rng);
    one_way(b, a, rng);
}

fn one_way(x: &mut Session, y: &mut Session, rng: &mut TestRng) {
    let mut p = Vec::new();
    x.seal(b"ping", NOW, &mut p).unwrap();
    y.handle_packet(&p, NOW, rng).unwrap();
    let got = std::iter::from_fn(|| y.poll_output())
        .find_map(|o| match o {
            Output::Event(Event::Message(m)) => Some(m),
            _ => None,
        })
        .unwrap();
    assert_eq!(got, b"ping");
}

#[test]
fn ratchets_from_both_sides() {
    let mut run = established(Config::DEFAULT);
    let mut rng = TestRng::new("r");
    for client_first in [true, false, true] {
        let (req, resp) = if client_first {
            (&mut run.client, &mut run.server)
        } else {
            (&mut run.server, &mut run.client)
        };
        let before = *req.keys().local.pss();
        let p = req.start_ratchet(NOW, &mut rng).unwrap();
        assert_eq!(
            req.start_ratchet(NOW, &mut rng),
            Err(Misuse::RatchetOutstanding.into())
        );
        assert_eq!(
            req.seal(b"no", NOW, &mut Vec::new()),
            Err(Misuse::RatchetOutstanding.into())
        );
        resp.handle_packet(&p, NOW, &mut rng).unwrap();
        // The pending record, then the response, then RatchetCompleted(Receive).
        let outs: Vec<Output> = std::iter::from_fn(|| resp.poll_output())
            .filter(|o| {
                !matches!(o, Output::Event(Event::Secrets(u)) if u.change == crate::generation::SecretsChange::Confirmed)
            })
            .collect();
        assert!(matches!(
            &outs[0],
            Output::Event(Event::Secrets(u)) if u.change == crate::generation::SecretsChange::Pending
        ));
        assert!(matches!(
            outs[2],
            Output::Event(Event::RatchetCompleted(Direction::Receive))
        ));
        let Output::Transmit(answer) = &outs[1] else {
            panic!()
        };
        req.handle_packet(answer, NOW, &mut rng).unwrap();
        assert!(!req.ratchet_outstanding());
        assert_ne!(req.keys().local.pss(), &before);
        assert_eq!(req.keys().local.pss(), resp.keys().remote.pss());
        exchange_data(&mut run.client, &mut run.server, &mut rng);
    }
}

#[test]
fn crossing_ratchets_both_complete() {
    let mut run = established(Config::DEFAULT);
    let mut rng = TestRng::new("x");
    exchange_data(&mut run.client, &mut run.server, &mut rng);
    let c_req = run.client.start_ratchet(NOW, &mut rng).unwrap();
    let s_req = run.server.start_ratchet(NOW, &mut rng).unwrap();
    let (c0, s0) = (
        *run.client.keys().local.pss(),
        *run.server.keys().local.pss(),
    );
    // Each sees the other's request while its own is outstanding.
    run.server.handle_packet(&c_req, NOW, &mut rng).unwrap();
    run.client.handle_packet(&s_req, NOW, &mut rng).unwrap();
    // The client deferred: nothing to send yet. The server answered at once.
    assert!(run.client.poll_output().is_none());
    assert_eq!(deliver(&mut run.server, &mut run.client, &mut rng), 1);
    // Completing its own ratchet, the client answered the deferred one.
    assert!(!run.client.ratchet_outstanding());
    assert_eq!(deliver(&mut run.client, &mut run.server, &mut rng), 1);
    assert!(!run.server.ratchet_outstanding());
    assert_ne!(run.client.keys().local.pss(), &c0);
    assert_ne!(run.server.keys().local.pss(), &s0);
    assert_eq!(
        run.client.keys().local.pss(),
        run.server.keys().remote.pss()
    );
    assert_eq!(
        run.server.keys().local.pss(),
        run.client.keys().remote.pss()
    );
    exchange_data(&mut run.client, &mut run.server, &mut rng);
    // And a later ratchet still works.
    let p = run.server.start_ratchet(NOW, &mut rng).unwrap();
    run.client.handle_packet(&p, NOW, &mut rng).unwrap();
    deliver(&mut run.client, &mut run.server, &mut rng);
    exchange_data(&mut run.client, &mut run.server, &mut rng);
}

#[test]
fn unsolicited_ratchet_response_is_refused() {
    let mut a = established(Config::DEFAULT);
    let mut rng = TestRng::new("u");
    // A response the server produced for another request, delivered without one.
    let p = a.client.start_ratchet(NOW, &mut rng).unwrap();
    a.server.handle_packet(&p, NOW, &mut rng).unwrap();
    let resp = std::iter::from_fn(|| a.server.poll_output())
        .find_map(|o| match o {
            Output::Transmit(p) => Some(p),
            _ => None,
        })
        .unwrap();
    let mut b = established(Config::DEFAULT);
    let mut forged = resp.clone();
    set_header(&mut forged, |h| h.sequence = 4);
    let e = b.client.handle_packet(&forged, NOW, &mut rng).unwrap_err();
    assert_eq!(e.wire_code(), ErrorCode::InvalidRequest);
}

#[test]
fn ratchet_domain_is_a_setting() {
    let (ck, sk) = pair(Config::DEFAULT, NOW);
    assert!(Settings::default().with_ratchet_domain(b"").is_err());
    let pay = Settings::default()
        .with_ratchet_domain(b"QRCS:PAYMENT:DKTP1A")
        .unwrap();
    let scada = Settings::default()
        .with_ratchet_domain(b"QRCS:SCADA:DKTP1A")
        .unwrap();
    // Peers in one domain ratchet; peers in two different ones cannot.
    for (cs, ss, ok) in [(pay.clone(), pay.clone(), true), (pay, scada, false)] {
        let (mut crng, mut srng) = (TestRng::new("c"), TestRng::new("s"));
        let (mut c, mut s) = connected(ck.clone(), sk.clone(), cs, ss, &mut crng, &mut srng);
        c.start_ratchet(NOW, &mut crng).unwrap();
        let Some(Output::Transmit(req)) = c.poll_output() else {
            panic!()
        };
        s.handle_bytes(&req, NOW, &mut srng).unwrap();
        let resp = std::iter::from_fn(|| s.poll_output())
            .find_map(|o| match o {
                Output::Transmit(p) => Some(p),
                _ => None,
            })
            .unwrap();
        c.handle_bytes(&resp, NOW, &mut crng).unwrap();
        c.send(b"after", NOW).unwrap();
        let data = std::iter::from_fn(|| c.poll_output())
            .find_map(|o| match o {
                Output::Transmit(p) => Some(p),
                _ => None,
            })
            .unwrap();
        assert_eq!(s.handle_bytes(&data, NOW, &mut srng).is_ok(), ok);
        if !ok {
            // The server tells the client why, encrypted.
            let reply = std::iter::from_fn(|| s.poll_output())
                .find_map(|o| match o {
                    Output::Transmit(p) => Some(p),
                    _ => None,
                })
                .unwrap();
            assert_eq!(reply.len(), 86);
            c.handle_bytes(&reply, NOW, &mut crng).unwrap();
            let closed = std::iter::from_fn(|| c.poll_output())
                .find_map(|o| match o {
                    Output::Event(Event::Closed { code, .. }) => Some(code),
                    _ => None,
                })
                .unwrap();
            assert_eq!(closed, ErrorCode::Authentication.as_u8());
        }
    }
}

#[test]
fn mceliece_sessions_refuse_to_ratchet() {
    let config: Config = "dilithium-s1_mceliece-s1_sha3_rcs".parse().unwrap();
    let (ck, _) = pair(config, NOW);
    let k = crate::key_schedule::ratchet(&[1; 32], &[2; 32]);
    let mut s = Session::new(
        Role::Client,
        ck,
        Settings::default(),
        channel(&k.channel).unwrap(),
        channel(&k.channel).unwrap(),
    );
    let mut rng = TestRng::new("m");
    assert_eq!(
        s.start_ratchet(NOW, &mut rng),
        Err(Misuse::RatchetUnavailable.into())
    );
    assert_eq!(rng.used(), 0);
    assert!(s.is_open());
}

#[test]
fn states_sessions_and_connections_are_send() {
    fn send<T: Send>() {}
    send::<client::AwaitConnectResponse>();
    send::<client::AwaitExchangeResponse>();
    send::<client::AwaitEstablishResponse>();
    send::<server::AwaitConnectRequest>();
    send::<server::AwaitExchangeRequest>();
    send::<server::AwaitEstablishRequest>();
    send::<Session>();
    send::<Connection>();
    send::<Settings>();
    send::<ReplayGate>();
}

#[test]
fn key_pool_supplies_ephemeral_keys() {
    use crate::pool::KeyPool;
    use std::sync::Arc;
    let pool = Arc::new(KeyPool::new(crate::pq::KemAlg::MlKem1024, 2).unwrap());
    pool.wait_ready(2).unwrap();
    let settings = Settings::default().with_key_pool(pool.clone());
    assert_eq!(settings, settings.clone());
    assert_ne!(settings, Settings::default());
    let (ck, sk) = pair(Config::DEFAULT, NOW);
    let (mut crng, mut srng) = (TestRng::new("c"), TestRng::new("s"));
    let (mut c, mut s) = connected(ck, sk, settings.clone(), settings, &mut crng, &mut srng);
    c.start_ratchet(NOW, &mut crng).unwrap();
    pump(&mut c, &mut s, NOW, &mut crng, &mut srng);
    assert!(!c.session().unwrap().ratchet_outstanding());
}

#[test]
fn tunnel_end_of_stream_reports_a_partial_reference_close() {
    use crate::connection::Tunnel;
    let (ck, _) = pair(Config::DEFAULT, NOW);
    let mut rng = TestRng::new("t");
    let mut sent = 0usize;
    let mut t = Tunnel::connect(
        ck,
        Settings::default(),
        NOW,
        &mut rng,
        |_| sent += 1,
        |_| {},
    )
    .unwrap();
    // The reference's close before establishment: the header says 65, one byte follows.
    let mut p = Header::new(Flag::ErrorCondition, 65, 0, NOW)
        .encode()
        .to_vec();
    p.push(ErrorCode::KeyUnrecognized.as_u8());
    t.feed(&p, NOW, &mut rng).unwrap();
    assert!(!t.connection().is_closed());
    assert_eq!(
        t.end_of_stream(NOW, &mut rng),
        Err(Error::PeerReported { code: 0x0f })
    );
    assert!(t.connection().is_closed());
    drop(t);
    assert_eq!(sent, 1, "only the connect request was sent");
}
