//! Test support, written once for the engine's tests, the fuzz targets, the benches and the
//! property tests: linked key pairs, a deterministic random source, whole handshakes in
//! process (state by state, or between two [`Connection`]s) and one honest handshake whose
//! intermediate states hostile input is fed into.
//!
//! Compiled for the engine's own unit tests and with the cargo feature `testing`, which only
//! test, fuzz and measurement crates enable: a build that ships never contains it. Its
//! functions panic where a test should fail.

use std::sync::OnceLock;

use crate::config::Config;
use crate::connection::Connection;
use crate::error::Error;
use crate::keccak::Shake256;
use crate::kex::{
    EphemeralKeys, Flight, PeerKeys, ReplayGate, Settings, SinglePeer, client, server,
};
use crate::listener::Listener;
use crate::peer_key::{self, LocalPeerKey, PeerKeyError, RemotePeerKey};
use crate::pq::{Entropy, PqError};
use crate::session::{Event, Output, Session};

/// The fixed clock of every test (2026-01-01T00:00:00Z).
pub const NOW: u64 = 1_767_225_600;

/// A deterministic random source: SHAKE-256(label), counting the bytes it served.
#[derive(Clone)]
pub struct TestRng {
    xof: Shake256,
    used: usize,
}

impl TestRng {
    /// The stream for `label`.
    pub fn new(label: &str) -> TestRng {
        let mut xof = Shake256::new();
        xof.update(label.as_bytes());
        TestRng { xof, used: 0 }
    }

    /// How many bytes it has served.
    pub fn used(&self) -> usize {
        self.used
    }
}

impl Entropy for TestRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        self.xof.squeeze(dest);
        self.used += dest.len();
        Ok(())
    }
}

/// Settings whose ephemeral keys come from the random source handed to each step, so that
/// a handshake is a function of its random sources.
pub fn settings() -> Settings {
    Settings::default().with_ephemeral_keys(EphemeralKeys::FromRng)
}

/// Two key pairs of `config` made at `born` from `rng` and linked: (client's keys, server's
/// keys). `ids` are the client's and the server's key ids, in that order of generation.
pub fn link(
    config: Config,
    ids: [[u8; 16]; 2],
    born: u64,
    rng: &mut dyn Entropy,
) -> Result<(PeerKeys, PeerKeys), PeerKeyError> {
    let keys = |local: LocalPeerKey, remote: RemotePeerKey| PeerKeys { local, remote };
    let (mut client, client_public) = peer_key::generate(config, ids[0], born, rng)?;
    let (mut server, server_public) = peer_key::generate(config, ids[1], born, rng)?;
    peer_key::link(&mut client, &server_public);
    peer_key::link(&mut server, &client_public);
    Ok((keys(client, server_public), keys(server, client_public)))
}

/// Linked keys made at `born`, the same for the same arguments: [`tagged_pair`] with tag 0.
pub fn pair(config: Config, born: u64) -> (PeerKeys, PeerKeys) {
    tagged_pair(config, 0, born)
}

/// Linked keys made at `born` whose key ids depend on `tag` (`[0xc1 ^ tag; 16]` for the
/// client, `[0x5e ^ tag; 16]` for the server), so that one listener can hold several.
pub fn tagged_pair(config: Config, tag: u8, born: u64) -> (PeerKeys, PeerKeys) {
    let mut rng = TestRng::new(&format!("pair {config} {tag} {born}"));
    link(config, [[0xc1 ^ tag; 16], [0x5e ^ tag; 16]], born, &mut rng).expect("key generation")
}

/// A fresh server holding `sk`, with its own replay gate, handed `request` as a connect
/// request at `now`.
pub fn serve(
    request: &[u8],
    sk: &PeerKeys,
    settings: &Settings,
    now: u64,
    rng: &mut dyn Entropy,
) -> Result<Flight<server::AwaitExchangeRequest>, Error> {
    let mut peers = SinglePeer(sk.clone());
    let mut gate = ReplayGate::default();
    server::AwaitConnectRequest::new(settings.clone())
        .handle(request, now, rng, &mut peers, &mut gate)
}

/// A whole handshake: its six packets and the two sessions it established.
pub struct Handshake {
    /// The packets in the order they were sent (client's first).
    pub packets: Vec<Vec<u8>>,
    /// The client's session.
    pub client: Session,
    /// The server's session.
    pub server: Session,
}

/// Runs the six messages of a handshake between `ck` and `sk` in process. Panics if the
/// two sides disagree on the new pre-shared secrets.
pub fn handshake(
    ck: PeerKeys,
    sk: PeerKeys,
    settings: &Settings,
    now: u64,
    crng: &mut dyn Entropy,
    srng: &mut dyn Entropy,
) -> Result<Handshake, Error> {
    let c1 = client::start(ck, settings.clone(), now, crng)?;
    let s1 = serve(&c1.packet, &sk, settings, now, srng)?;
    let c2 = c1.next.handle(&s1.packet, now, crng)?;
    let s2 = s1.next.handle(&c2.packet, now, srng)?;
    let c3 = c2.next.handle(&s2.packet, now, crng)?;
    let s3 = s2.next.handle(&c3.packet, now, srng)?;
    let client = c3.next.handle(&s3.packet, now, crng)?;
    assert_eq!(c3.pss.local.as_bytes(), s3.pss.remote.as_bytes());
    assert_eq!(c3.pss.remote.as_bytes(), s3.pss.local.as_bytes());
    let packets = [
        c1.packet, s1.packet, c2.packet, s2.packet, c3.packet, s3.packet,
    ];
    Ok(Handshake {
        packets: packets.into(),
        client,
        server: s3.next,
    })
}

/// A deterministic handshake of `config` at [`NOW`] with [`pair`] keys and [`settings`].
pub fn established(config: Config) -> Handshake {
    let (ck, sk) = pair(config, NOW);
    let (mut crng, mut srng) = (TestRng::new("c"), TestRng::new("s"));
    handshake(ck, sk, &settings(), NOW, &mut crng, &mut srng).expect("handshake")
}

/// The honest default-configuration handshake, computed once: its six packets and the
/// states awaiting each, which [`Honest::feed`] clones to take a hostile packet.
pub struct Honest {
    /// The client's and the server's keys.
    pub keys: (PeerKeys, PeerKeys),
    /// The six handshake packets.
    pub packets: Vec<Vec<u8>>,
    /// The client awaiting message 2 (the connect response).
    pub c1: client::AwaitConnectResponse,
    /// The client awaiting message 4 (the exchange response).
    pub c2: client::AwaitExchangeResponse,
    /// The server awaiting message 3 (the exchange request).
    pub s1: server::AwaitExchangeRequest,
    /// The server's random source where the honest run left it after message 2.
    pub srng1: TestRng,
}

/// The honest run.
pub fn honest() -> &'static Honest {
    static HONEST: OnceLock<Honest> = OnceLock::new();
    HONEST.get_or_init(|| {
        let (ck, sk) = pair(Config::DEFAULT, NOW);
        let (mut crng, mut srng) = (TestRng::new("c"), TestRng::new("s"));
        let settings = settings();
        let c1 = client::start(ck.clone(), settings.clone(), NOW, &mut crng);
        let c1 = c1.expect("connect request");
        let s1 = serve(&c1.packet, &sk, &settings, NOW, &mut srng).expect("connect response");
        let c2 = c1.next.clone().handle(&s1.packet, NOW, &mut crng);
        let c2 = c2.expect("exchange request");
        let srng1 = srng.clone();
        let s2 = s1.next.clone().handle(&c2.packet, NOW, &mut srng);
        let s2 = s2.expect("exchange response");
        let c3 = c2.next.clone().handle(&s2.packet, NOW, &mut crng);
        let c3 = c3.expect("establish request");
        let s3 = s2.next.handle(&c3.packet, NOW, &mut srng);
        let s3 = s3.expect("establish response");
        let client = c3.next.handle(&s3.packet, NOW, &mut crng);
        client.expect("established");
        let packets = [
            c1.packet, s1.packet, c2.packet, s2.packet, c3.packet, s3.packet,
        ];
        Honest {
            keys: (ck, sk),
            packets: packets.into(),
            c1: c1.next,
            c2: c2.next,
            s1: s1.next,
            srng1,
        }
    })
}

impl Honest {
    /// Feeds `packet` at `now` to the state awaiting handshake message `step` (0..6; even
    /// steps are the server's, odd ones the client's), rebuilt from the honest run: the
    /// messages before it arrive as they did, at [`NOW`].
    pub fn feed(
        &self,
        step: usize,
        packet: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(), Error> {
        match step {
            0 => serve(packet, &self.keys.1, &settings(), now, rng).map(drop),
            1 => self.c1.clone().handle(packet, now, rng).map(drop),
            2 => self.s1.clone().handle(packet, now, rng).map(drop),
            3 => self.c2.clone().handle(packet, now, rng).map(drop),
            4 => {
                let mut srng = self.srng1.clone();
                let s2 = self.s1.clone().handle(&self.packets[2], NOW, &mut srng)?;
                s2.next.handle(packet, now, rng).map(drop)
            }
            _ => {
                let c3 = self.c2.clone().handle(&self.packets[3], NOW, rng)?;
                c3.next.handle(packet, now, rng).map(drop)
            }
        }
    }

    /// A fresh established (client, server) pair, rebuilt from the honest run's states.
    pub fn sessions(&self) -> (Session, Session) {
        let mut srng = self.srng1.clone();
        let s2 = self.s1.clone().handle(&self.packets[2], NOW, &mut srng);
        let s2 = s2.expect("exchange response");
        let c3 = self
            .c2
            .clone()
            .handle(&s2.packet, NOW, &mut TestRng::new("c3"));
        let c3 = c3.expect("establish request");
        let s3 = s2.next.handle(&c3.packet, NOW, &mut TestRng::new("s3"));
        let s3 = s3.expect("establish response");
        let client = c3.next.handle(&s3.packet, NOW, &mut TestRng::new("c4"));
        (client.expect("established"), s3.next)
    }
}

/// Everything a connection queued: its packets and its events.
pub fn drain(c: &mut Connection) -> (Vec<Vec<u8>>, Vec<Event>) {
    let (mut packets, mut events) = (Vec::new(), Vec::new());
    while let Some(o) = c.poll_output() {
        match o {
            Output::Transmit(p) => packets.push(p),
            Output::Event(e) => events.push(e),
        }
    }
    (packets, events)
}

/// Moves packets both ways at `now` until both connections are quiet; returns each side's
/// events. A packet a side refuses is dropped (the refusal shows in its events).
pub fn pump(
    c: &mut Connection,
    s: &mut Connection,
    now: u64,
    crng: &mut dyn Entropy,
    srng: &mut dyn Entropy,
) -> (Vec<Event>, Vec<Event>) {
    let (mut ce, mut se) = (Vec::new(), Vec::new());
    loop {
        let (to_s, e) = drain(c);
        ce.extend(e);
        for p in &to_s {
            let _ = s.handle_bytes(p, now, srng);
        }
        let (to_c, e) = drain(s);
        se.extend(e);
        for p in &to_c {
            let _ = c.handle_bytes(p, now, crng);
        }
        if to_s.is_empty() && to_c.is_empty() {
            return (ce, se);
        }
    }
}

/// A client [`Connection`] with `ck` and a server one from a [`Listener`] holding `sk`, after
/// their handshake at [`NOW`]. Panics unless both are established.
pub fn connected(
    ck: PeerKeys,
    sk: PeerKeys,
    client: Settings,
    server: Settings,
    crng: &mut dyn Entropy,
    srng: &mut dyn Entropy,
) -> (Connection, Connection) {
    let mut c = Connection::connect(ck, client, NOW, crng).expect("connect");
    let listener = Listener::new(server);
    listener.add(sk);
    let mut s = listener.accept(NOW);
    pump(&mut c, &mut s, NOW, crng, srng);
    assert!(c.is_established() && s.is_established());
    (c, s)
}

/// Runs `f` on a thread with a 256 MiB stack: McEliece keeps big matrices on the stack, and
/// SPHINCS+ at 256 bits wants more than a test thread has.
pub fn big_stack(f: impl FnOnce() + Send + 'static) {
    let thread = std::thread::Builder::new().stack_size(256 << 20);
    thread.spawn(f).expect("a thread").join().expect("no panic");
}
