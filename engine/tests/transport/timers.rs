//! Deadlines: a stalled handshake is closed at its deadline with the error packet; an idle
//! session at its idle timeout with the orderly close.

use dktp::config::Config;
use dktp::connection::Connection;
use dktp::error::{Error, ErrorCode};
use dktp::kex::{HANDSHAKE_TIMEOUT_FAST, HANDSHAKE_TIMEOUT_SLOW, Settings};
use dktp::listener::Listener;
use dktp::session::Event;

use dktp::testing::{NOW, TestRng, connected, drain, tagged_pair};

#[test]
fn a_stalled_handshake_closes_at_its_deadline() {
    let (ck, sk) = tagged_pair(Config::DEFAULT, 20, NOW);
    let mut rng = TestRng::new("stall");
    let mut client = Connection::connect(ck, Settings::default(), NOW, &mut rng).unwrap();
    drain(&mut client); // the connect request goes nowhere: the server stalls
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline, NOW + HANDSHAKE_TIMEOUT_FAST);
    client.handle_timeout(deadline - 1).unwrap();
    assert!(!client.is_closed());
    let e = client.handle_timeout(deadline).unwrap_err();
    assert_eq!(e, Error::TimedOut { handshake: true });
    let (packets, events) = drain(&mut client);
    assert_eq!(packets.len(), 1);
    assert_eq!(packets[0].len(), 22);
    assert_eq!(packets[0][21], ErrorCode::Connection.as_u8());
    assert!(matches!(
        events[..],
        [Event::Closed {
            code: 0x04,
            by_peer: false
        }]
    ));
    assert!(client.is_closed() && client.poll_timeout().is_none());

    // A server connection that never gets its connect request.
    let listener = Listener::new(Settings::default());
    listener.add(sk);
    let mut server = listener.accept(NOW);
    let t = server.poll_timeout().unwrap();
    assert!(server.handle_timeout(t).is_err());
    assert!(server.is_closed());

    // Slow configurations get the slow default; a setting overrides both.
    let sphincs: Config = "sphincs-s1s_mceliece-s1_sha3_rcs".parse().unwrap();
    assert_eq!(
        Settings::default().handshake_timeout(sphincs),
        HANDSHAKE_TIMEOUT_SLOW
    );
    assert_eq!(
        Settings::default()
            .with_handshake_timeout(5)
            .handshake_timeout(sphincs),
        5
    );
}

#[test]
fn an_idle_session_closes_at_its_idle_timeout() {
    let (ck, sk) = tagged_pair(Config::DEFAULT, 21, NOW);
    let settings = Settings::default().with_idle_timeout(Some(300));
    let (mut crng, mut srng) = (TestRng::new("c"), TestRng::new("s"));
    let (mut client, mut server) =
        connected(ck, sk, settings.clone(), settings, &mut crng, &mut srng);
    assert_eq!(client.poll_timeout(), Some(NOW + 300));
    // Traffic at NOW + 100 moves the deadline.
    client.send(b"still here", NOW + 100).unwrap();
    assert_eq!(client.poll_timeout(), Some(NOW + 400));
    client.handle_timeout(NOW + 399).unwrap();
    let e = client.handle_timeout(NOW + 400).unwrap_err();
    assert_eq!(e, Error::TimedOut { handshake: false });
    let (packets, events) = drain(&mut client);
    // The data packet, then the encrypted orderly close.
    assert_eq!(packets.len(), 2);
    assert_eq!(packets[1].len(), 86);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Closed {
            code: 0x1b,
            by_peer: false
        }
    )));
    assert!(client.is_closed());
    // The server reads the data and the close.
    server
        .handle_bytes(&packets[0], NOW + 100, &mut srng)
        .unwrap();
    server
        .handle_bytes(&packets[1], NOW + 400, &mut srng)
        .unwrap();
    let (_, events) = drain(&mut server);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.as_slice() == b"still here"))
    );
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Closed {
            code: 0x1b,
            by_peer: true
        }
    )));
    // Off: no deadline once established.
    let never = Settings::default().with_idle_timeout(None);
    assert_eq!(never.idle_timeout(), None);
}
