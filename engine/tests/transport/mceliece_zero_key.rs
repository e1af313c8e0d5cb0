//! Issue 17 (FACTS §11.5): the reference's McEliece key generation sometimes hands out an
//! all-zero public key. A dktp peer refuses one before encapsulating, wherever it arrives:
//!
//! 1. the server's ephemeral key in the connect response (0x02), refused by the client;
//! 2. the client's ephemeral key in the exchange request (0x05), refused by the server;
//! 3. a ratchet request's key: unreachable over the wire in McEliece configurations (the
//!    request exceeds 0x10000 bytes, FACTS §11.2, and is refused by its header before it
//!    is decrypted), so it is a unit test in `engine/src/session/mod.rs`
//!    (`zero_key_tests`).
//!
//! Both handshake packets are signed, so zeroing the key in a genuine packet would only
//! fail the signature check. The test holds both sides' key pairs and plays the faulty
//! peer: it takes the genuine packet, zeroes the key and signs `H(sph ‖ ...)` again with
//! that peer's signing key, exactly as `kex/server.rs` and `kex/client.rs` build them.
//!
//! Each configuration checks, at both points: the typed error and its wire code (0x06),
//! the 22-byte plaintext error packet and `Event::Closed` on the refusing side, the
//! peer's `PeerReported { code: 0x06 }` and close on the other, no `Event::Secrets` from
//! either, the listener's record of the secrets unchanged, and then a fresh connection
//! with the same keys (and a good ephemeral key) that establishes.

use dktp::config::Config;
use dktp::connection::Connection;
use dktp::error::{CryptoFailure, Error, ErrorCode};
use dktp::kex::{PeerKeys, Settings};
use dktp::listener::Listener;
use dktp::packet::{self, Flag, HEADER_LEN, Header, PLAIN_ERROR_LEN};
use dktp::pq::OsEntropy;
use dktp::session::{Event, Output};
use dktp::transcript::message_hash;

use dktp::testing::{NOW, big_stack, pump, tagged_pair};

/// The wire code of the refusal.
const CODE: u8 = 0x06;

/// What a connection handed out.
#[derive(Default)]
struct Drained {
    packets: Vec<Vec<u8>>,
    secrets: usize,
    established: bool,
    closed: Vec<(u8, bool)>,
}

fn drain(conn: &mut Connection) -> Drained {
    let mut d = Drained::default();
    while let Some(out) = conn.poll_output() {
        match out {
            Output::Transmit(p) => d.packets.push(p),
            Output::Event(Event::Secrets(_)) => d.secrets += 1,
            Output::Event(Event::Established) => d.established = true,
            Output::Event(Event::Closed { code, by_peer }) => d.closed.push((code, by_peer)),
            Output::Event(_) => {}
        }
    }
    d
}

/// The one packet a connection queued (and nothing else).
fn one_packet(conn: &mut Connection) -> Vec<u8> {
    let mut d = drain(conn);
    assert_eq!(d.packets.len(), 1);
    assert_eq!((d.secrets, d.closed.len()), (0, 0));
    d.packets.remove(0)
}

/// `packet` with the KEM public key at `range` of the message zeroed and re-signed by
/// `signer` the way the sender builds it: `Sign(H(sph ‖ parts))` where `parts` are the
/// message fields around the signature.
fn zero_key_resigned(config: Config, signer: &PeerKeys, packet: &[u8], layout: Layout) -> Vec<u8> {
    let kem = config.kem().sizes();
    let signed_len = config.signed_hash_size();
    let (sph, message) = packet.split_at(HEADER_LEN);
    let zero_key = vec![0u8; kem.public_key];
    let fields: Vec<&[u8]> = match layout {
        // 0x02: Sign(hm2) ‖ ek_S, hm2 = H(sph ‖ ek_S).
        Layout::ConnectResponse => vec![&zero_key],
        // 0x05: ct_C ‖ ek_C ‖ Sign(hm3), hm3 = H(sph ‖ ct_C ‖ ek_C).
        Layout::ExchangeRequest => vec![&message[..kem.ciphertext], &zero_key],
    };
    let hash = message_hash(sph, &fields);
    let signed = config
        .sig()
        .sign(signer.local.signing_key(), &hash, &mut OsEntropy)
        .unwrap();
    assert_eq!(signed.len(), signed_len);
    let mut out = sph.to_vec();
    match layout {
        Layout::ConnectResponse => {
            out.extend_from_slice(&signed);
            out.extend_from_slice(&zero_key);
        }
        Layout::ExchangeRequest => {
            out.extend_from_slice(&message[..kem.ciphertext]);
            out.extend_from_slice(&zero_key);
            out.extend_from_slice(&signed);
        }
    }
    assert_eq!(out.len(), packet.len());
    // The genuine packet's key was not zero: the forgery changed it.
    assert_ne!(out, packet);
    out
}

#[derive(Clone, Copy)]
enum Layout {
    ConnectResponse,
    ExchangeRequest,
}

/// The refusing side: the typed error, its code, the plaintext error packet and the close,
/// and no secrets handed out. Returns the error packet.
fn assert_refused(r: Result<(), Error>, conn: &mut Connection, now: u64) -> Vec<u8> {
    let e = r.unwrap_err();
    assert_eq!(e, Error::Crypto(CryptoFailure::ZeroPublicKey), "{e}");
    assert_eq!(e.wire_code(), ErrorCode::Decapsulation);
    assert_eq!(e.wire_code().as_u8(), CODE);
    assert!(
        e.to_string().contains(
            "the peer sent an all-zero McEliece public key, a known defect of the reference's \
             key generation; connect again"
        ),
        "{e}"
    );
    assert!(conn.is_closed());
    let mut d = drain(conn);
    assert_eq!(d.packets.len(), 1);
    let reply = d.packets.remove(0);
    assert_eq!(reply.len(), PLAIN_ERROR_LEN);
    assert_eq!(reply.len(), 22);
    assert_eq!(reply[0], Flag::ErrorCondition.as_u8());
    assert_eq!(reply[0], 0x12);
    assert_eq!(reply.last(), Some(&CODE));
    assert_eq!(
        reply,
        packet::encode_plain_error(ErrorCode::Decapsulation, now)
    );
    assert_eq!(d.secrets, 0, "no secrets may be handed out");
    assert_eq!(d.closed, vec![(CODE, false)]);
    assert!(!d.established);
    reply
}

/// The other side receives the error packet: the peer's report, a close, no reply, no
/// secrets.
fn assert_told(conn: &mut Connection, reply: &[u8], now: u64) {
    let r = conn.handle_bytes(reply, now, &mut OsEntropy);
    assert_eq!(r, Err(Error::PeerReported { code: CODE }));
    assert!(conn.is_closed());
    let d = drain(conn);
    assert!(d.packets.is_empty(), "no reply to an error packet");
    assert_eq!(d.secrets, 0, "no secrets may be handed out");
    assert_eq!(d.closed, vec![(CODE, true)]);
    assert!(!d.established);
}

/// A client with `ck` connecting at `now`, the server connection `listener` accepted for
/// it, and the server's connect response (not yet delivered).
fn connect_response(
    ck: &PeerKeys,
    listener: &Listener,
    now: u64,
) -> (Connection, Connection, Vec<u8>) {
    let mut client =
        Connection::connect(ck.clone(), Settings::default(), now, &mut OsEntropy).unwrap();
    let mut server = listener.accept(now);
    let request = one_packet(&mut client);
    server.handle_bytes(&request, now, &mut OsEntropy).unwrap();
    let response = one_packet(&mut server);
    (client, server, response)
}

/// Point 1: the server "sends" an all-zero ephemeral key in a correctly signed connect
/// response; the client refuses it.
fn zero_server_key(config: Config, ck: &PeerKeys, sk: &PeerKeys, listener: &Listener, now: u64) {
    let (mut client, mut server, response) = connect_response(ck, listener, now);
    assert_eq!(Header::decode(&response).unwrap().flag, 0x02);
    let forged = zero_key_resigned(config, sk, &response, Layout::ConnectResponse);

    let r = client.handle_bytes(&forged, now, &mut OsEntropy);
    let reply = assert_refused(r, &mut client, now);
    assert_told(&mut server, &reply, now);
}

/// Point 2: the client "sends" an all-zero ephemeral key in a correctly signed exchange
/// request; the server refuses it.
fn zero_client_key(config: Config, ck: &PeerKeys, listener: &Listener, now: u64) {
    let (mut client, mut server, response) = connect_response(ck, listener, now);
    client.handle_bytes(&response, now, &mut OsEntropy).unwrap();
    let exchange = one_packet(&mut client);
    assert_eq!(Header::decode(&exchange).unwrap().flag, 0x05);
    let forged = zero_key_resigned(config, ck, &exchange, Layout::ExchangeRequest);

    let r = server.handle_bytes(&forged, now, &mut OsEntropy);
    let reply = assert_refused(r, &mut server, now);
    assert_told(&mut client, &reply, now);
}

/// A fresh connection with the same keys and good ephemeral keys: it establishes, each
/// side hands out new secrets, and the client's are not the ones it started from.
fn fresh_connection(ck: &PeerKeys, listener: &Listener, now: u64) {
    let mut client =
        Connection::connect(ck.clone(), Settings::default(), now, &mut OsEntropy).unwrap();
    let mut server = listener.accept(now);
    let (ce, se) = pump(
        &mut client,
        &mut server,
        now,
        &mut OsEntropy,
        &mut OsEntropy,
    );
    for events in [ce, se] {
        let has = |f: fn(&Event) -> bool| events.iter().any(f);
        assert!(
            has(|e| matches!(e, Event::Established)),
            "the fresh connection must establish"
        );
        assert!(has(|e| matches!(e, Event::Secrets(_))), "{events:?}");
        assert!(!has(|e| matches!(e, Event::Closed { .. })), "{events:?}");
    }
    assert!(client.is_established() && server.is_established());
    let keys = client.keys().unwrap();
    assert_ne!(keys.local.pss(), ck.local.pss());
    assert_ne!(keys.remote.pss(), ck.remote.pss());
    // Data flows, and the server's first packet from the client confirms the generation.
    client.send(b"after the refusal", now).unwrap();
    for p in drain(&mut client).packets {
        server.handle_bytes(&p, now, &mut OsEntropy).unwrap();
    }
    let mut got = None;
    while let Some(out) = server.poll_output() {
        if let Output::Event(Event::Message(m)) = out {
            got = Some(m.into_vec());
        }
    }
    assert_eq!(got.as_deref(), Some(&b"after the refusal"[..]));
}

/// Both points, each followed by a connection that succeeds.
fn zero_keys_refused(config: Config) {
    assert!(config.kem().is_mceliece());
    let (ck, sk) = tagged_pair(config, 30, NOW);
    let listener = Listener::new(Settings::default());
    listener.add(sk.clone());
    let keyid = *sk.local.keyid();
    let before = listener.peer(&keyid).unwrap();

    // Each connection gets its own second: ML-DSA signs deterministically, and the replay
    // gate refuses a connect request identical to one it accepted.
    zero_server_key(config, &ck, &sk, &listener, NOW);
    assert_eq!(
        listener.peer(&keyid).unwrap(),
        before,
        "server secrets moved"
    );
    zero_client_key(config, &ck, &listener, NOW + 1);
    assert_eq!(
        listener.peer(&keyid).unwrap(),
        before,
        "server secrets moved"
    );
    // The client's keys are `ck` unchanged: no Event::Secrets was handed out. A connection
    // with them and the listener's record proves both sides still agree.
    fresh_connection(&ck, &listener, NOW + 2);
    assert_ne!(listener.peer(&keyid).unwrap(), before);
}

macro_rules! per_config {
    ($($(#[$attr:meta])* $test:ident => $config:literal,)*) => {
        $(
            #[test]
            $(#[$attr])*
            fn $test() {
                big_stack(|| zero_keys_refused($config.parse().unwrap()));
            }
        )*

        /// The tests above cover every McEliece configuration the engine offers.
        #[test]
        fn every_mceliece_configuration_is_covered() {
            let mut covered: Vec<Config> = vec![$($config.parse().unwrap()),*];
            let mut all: Vec<Config> = Config::ALL
                .into_iter()
                .filter(|c| c.kem().is_mceliece())
                .collect();
            covered.sort_by_key(Config::name);
            all.sort_by_key(Config::name);
            assert_eq!(covered, all);
        }
    };
}

// The ML-DSA configurations cover all five McEliece sets in seconds. The SPHINCS+ ones
// pair the same five sets with SPHINCS+ signing (eleven signatures per test): about
// 2.5 minutes on two cores in the release profile the README's test command uses.
per_config! {
    dilithium_s1_mceliece_s1 => "dilithium-s1_mceliece-s1_sha3_rcs",
    dilithium_s3_mceliece_s3 => "dilithium-s3_mceliece-s3_sha3_rcs",
    dilithium_s5_mceliece_s5 => "dilithium-s5_mceliece-s5_sha3_rcs",
    dilithium_s5_mceliece_s6 => "dilithium-s5_mceliece-s6_sha3_rcs",
    dilithium_s5_mceliece_s7 => "dilithium-s5_mceliece-s7_sha3_rcs",
    sphincs_s1s_mceliece_s1 => "sphincs-s1s_mceliece-s1_sha3_rcs",
    sphincs_3s_mceliece_s3 => "sphincs-3s_mceliece-s3_sha3_rcs",
    sphincs_s5s_mceliece_s5 => "sphincs-s5s_mceliece-s5_sha3_rcs",
    sphincs_s5s_mceliece_s6 => "sphincs-s5s_mceliece-s6_sha3_rcs",
    sphincs_s5s_mceliece_s7 => "sphincs-s5s_mceliece-s7_sha3_rcs",
}
