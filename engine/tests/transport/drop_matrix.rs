//! The drop matrix (the transport issue's acceptance): for each of the six handshake
//! messages and the two ratchet messages, and each loss point, with a dktp peer and with a
//! test peer that stores the way the reference does (only after its own side succeeded, one
//! slot, no candidates), in both roles: the pair connects again within two attempts and
//! both sides end on equal secrets.
//!
//! Each side is a store (what survives a crash) and, during an attempt, a connection (what
//! a crash loses). A dktp side stores every record it is handed ([`Event::Secrets`]) the
//! moment it sees it, as the node does before it writes the next packet. A reference-style
//! side keeps one pair of secrets and overwrites it where the reference's own side has
//! succeeded: a client when the establish response checks, a server when the establish
//! request checks (before its response), a ratchet requester when the response checks, a
//! responder at the first packet under its re-keyed receive channel.

use dktp::config::Config;
use dktp::connection::Connection;
use dktp::generation::{Generation, Generations, SecretsChange};
use dktp::kex::PeerKeys;
use dktp::listener::Listener;
use dktp::session::{Direction, Event, Output};

use dktp::testing::{NOW, TestRng, pump, settings, tagged_pair};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dktp,
    Reference,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Point {
    /// The sender dies just before writing it (whatever it stored before stays).
    BeforeSent,
    /// Written, never delivered; both connections drop.
    Lost,
    /// Delivered; the receiver dies before it stores anything the packet gave it.
    DeliveredNotPersisted,
    /// Delivered and stored; the receiver dies before it writes its reply.
    PersistedNoReply,
}

const POINTS: [Point; 4] = [
    Point::BeforeSent,
    Point::Lost,
    Point::DeliveredNotPersisted,
    Point::PersistedNoReply,
];

/// The messages by their place in the protocol: handshake 1..=6, ratchet request 7 and
/// response 8.
fn message_number(flag: u8) -> Option<u8> {
    Some(match flag {
        0x01 => 1,
        0x02 => 2,
        0x05 => 3,
        0x06 => 4,
        0x07 => 5,
        0x08 => 6,
        0x0e => 7,
        0x0f => 8,
        _ => return None,
    })
}

struct Side {
    kind: Kind,
    client: bool,
    /// What survives a crash: the keys and the record (one confirmed slot for a
    /// reference-style side).
    keys: PeerKeys,
    record: Generations,
}

impl Side {
    fn single(&mut self, keys: &PeerKeys) {
        self.record = Generations::new(Generation::of_keys(keys));
    }

    /// Stores what `event` asks this kind of side to store.
    fn persist(&mut self, event: &Event, conn: &Connection) {
        let session_keys = conn.session().map(|s| s.keys().clone());
        match (self.kind, event) {
            (Kind::Dktp, Event::Secrets(u)) => self.record = u.record.clone(),
            (Kind::Reference, Event::Secrets(u)) => {
                let handshake_server = !self.client
                    && u.change == SecretsChange::Pending
                    && conn.session().is_none_or(|s| s.rxseq() == 3);
                if u.change == SecretsChange::Confirmed || handshake_server {
                    self.record = Generations::new(u.record.latest().clone());
                }
            }
            (Kind::Reference, Event::RatchetCompleted(Direction::Transmit)) => {
                if let Some(k) = session_keys {
                    self.single(&k);
                }
            }
            _ => {}
        }
    }

    fn keys_for_attempt(&self) -> PeerKeys {
        let mut keys = self.keys.clone();
        self.record.confirmed.apply_to(&mut keys);
        keys
    }
}

/// Starts an attempt: fresh connections from the stores.
fn start(c: &Side, s: &Side, rng: &mut TestRng) -> (Connection, Connection) {
    let client = match c.kind {
        Kind::Dktp => {
            Connection::connect_with(c.keys.clone(), c.record.clone(), settings(), NOW, rng)
        }
        Kind::Reference => Connection::connect(c.keys_for_attempt(), settings(), NOW, rng),
    }
    .unwrap();
    let listener = Listener::new(settings());
    match s.kind {
        Kind::Dktp => listener.insert(s.keys.clone(), s.record.clone()),
        Kind::Reference => listener.add(s.keys_for_attempt()),
    }
    (client, listener.accept(NOW))
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Both established with equal secrets, and what the scenario asked for was done.
    Done,
    /// The fault struck (or the handshake failed).
    Broken,
}

/// Runs one attempt, with an optional fault at message `fault.0` (the first time it is
/// sent) and, once established, a data packet each way and an optional ratchet by the
/// client (`Some(true)`) or the server (`Some(false)`).
fn attempt(
    c: &mut Side,
    s: &mut Side,
    fault: Option<(u8, Point)>,
    ratchet_by_client: Option<bool>,
    rng: &mut TestRng,
) -> Outcome {
    let (cc, sc) = start(c, s, rng);
    let mut conns = [cc, sc];
    let mut data_sent = false;
    let mut ratchet_started = false;
    let mut ratchet_done = false;
    let mut after_ratchet_sent = false;
    loop {
        let mut moved = false;
        for i in 0..2 {
            while let Some(out) = conns[i].poll_output() {
                let (me, _) = if i == 0 {
                    (&mut *c, &mut *s)
                } else {
                    (&mut *s, &mut *c)
                };
                match out {
                    Output::Event(e) => {
                        if matches!(e, Event::RatchetCompleted(Direction::Transmit)) {
                            ratchet_done = true;
                        }
                        me.persist(&e, &conns[i]);
                    }
                    Output::Transmit(p) => {
                        moved = true;
                        let n = p.first().copied().and_then(message_number);
                        let j = 1 - i;
                        if let Some((at, point)) = fault
                            && n == Some(at)
                        {
                            match point {
                                Point::BeforeSent | Point::Lost => return Outcome::Broken,
                                Point::DeliveredNotPersisted => {
                                    let _ = conns[j].handle_bytes(&p, NOW, rng);
                                    return Outcome::Broken;
                                }
                                Point::PersistedNoReply => {
                                    let _ = conns[j].handle_bytes(&p, NOW, rng);
                                    let receiver = if j == 0 { &mut *c } else { &mut *s };
                                    while let Some(o) = conns[j].poll_output() {
                                        match o {
                                            Output::Event(e) => receiver.persist(&e, &conns[j]),
                                            Output::Transmit(_) => break,
                                        }
                                    }
                                    return Outcome::Broken;
                                }
                            }
                        }
                        let _ = conns[j].handle_bytes(&p, NOW, rng);
                    }
                }
            }
        }
        if moved {
            continue;
        }
        // Quiet: what next?
        if !(conns[0].is_established() && conns[1].is_established()) {
            return Outcome::Broken;
        }
        if !data_sent {
            data_sent = true;
            conns[0].send(b"from the client", NOW).unwrap();
            conns[1].send(b"from the server", NOW).unwrap();
            continue;
        }
        if let Some(by_client) = ratchet_by_client {
            let r = usize::from(!by_client);
            if !ratchet_started {
                ratchet_started = true;
                conns[r].start_ratchet(NOW, rng).unwrap();
                continue;
            }
            if !ratchet_done {
                return Outcome::Broken;
            }
            if !after_ratchet_sent {
                after_ratchet_sent = true;
                conns[r].send(b"under the new key", NOW).unwrap();
                continue;
            }
        }
        let (ck, sk) = (
            conns[0].session().map(|x| x.keys().clone()),
            conns[1].session().map(|x| x.keys().clone()),
        );
        let (Some(ck), Some(sk)) = (ck, sk) else {
            return Outcome::Broken;
        };
        let equal = ck.local.pss() == sk.remote.pss() && ck.remote.pss() == sk.local.pss();
        return if equal {
            Outcome::Done
        } else {
            Outcome::Broken
        };
    }
}

struct Tally {
    cases: usize,
    failures: Vec<String>,
}

fn case(
    tally: &mut Tally,
    kinds: (Kind, Kind),
    warm: bool,
    message: u8,
    point: Point,
    ratchet_by_client: Option<bool>,
) {
    let config = Config::DEFAULT;
    let (ck, sk) = tagged_pair(config, 1, NOW);
    let mut c = Side {
        kind: kinds.0,
        client: true,
        record: Generations::of_keys(&ck),
        keys: ck,
    };
    let mut s = Side {
        kind: kinds.1,
        client: false,
        record: Generations::of_keys(&sk),
        keys: sk,
    };
    let name = format!(
        "{kinds:?} warm={warm} message {message} {point:?} ratchet_by_client={ratchet_by_client:?}"
    );
    let mut rng = TestRng::new(&name);
    tally.cases += 1;
    if warm {
        // A clean session without data first: the server then holds a pending generation.
        let (mut cc, mut sc) = start(&c, &s, &mut rng);
        let (ce, se) = pump(&mut cc, &mut sc, NOW, &mut rng, &mut TestRng::new("w"));
        for e in &ce {
            c.persist(e, &cc);
        }
        for e in &se {
            s.persist(e, &sc);
        }
        assert!(
            cc.is_established() && sc.is_established(),
            "{name}: warm-up"
        );
    }
    let first = attempt(
        &mut c,
        &mut s,
        Some((message, point)),
        ratchet_by_client,
        &mut rng,
    );
    assert_eq!(first, Outcome::Broken, "{name}: the fault did not strike");
    let recovered = (0..2).any(|_| attempt(&mut c, &mut s, None, None, &mut rng) == Outcome::Done);
    // And the stores agree afterwards: the next connection works at once.
    let next = recovered && attempt(&mut c, &mut s, None, None, &mut rng) == Outcome::Done;
    if !next {
        tally.failures.push(name);
    }
}

#[test]
fn every_loss_point_recovers_within_two_attempts() {
    let mut tally = Tally {
        cases: 0,
        failures: Vec::new(),
    };
    let pairings = [
        (Kind::Dktp, Kind::Dktp),
        (Kind::Dktp, Kind::Reference),
        (Kind::Reference, Kind::Dktp),
    ];
    for kinds in pairings {
        for warm in [false, true] {
            for point in POINTS {
                for message in 1..=6 {
                    case(&mut tally, kinds, warm, message, point, None);
                }
                for message in 7..=8 {
                    for by_client in [true, false] {
                        case(&mut tally, kinds, warm, message, point, Some(by_client));
                    }
                }
            }
        }
    }
    println!(
        "drop matrix: {} cases, {} failures",
        tally.cases,
        tally.failures.len()
    );
    assert_eq!(tally.cases, 3 * 2 * 4 * (6 + 2 * 2));
    assert!(tally.failures.is_empty(), "{:#?}", tally.failures);
}

/// The matrix can fail: a server that does not store what it is handed loses the pair.
#[test]
fn a_side_that_ignores_the_records_desyncs() {
    let (ck, sk) = tagged_pair(Config::DEFAULT, 2, NOW);
    let mut c = Side {
        kind: Kind::Dktp,
        client: true,
        record: Generations::of_keys(&ck),
        keys: ck,
    };
    let mut s = Side {
        kind: Kind::Dktp,
        client: false,
        record: Generations::of_keys(&sk),
        keys: sk,
    };
    let mut rng = TestRng::new("ignore");
    assert_eq!(attempt(&mut c, &mut s, None, None, &mut rng), Outcome::Done);
    assert_eq!(
        c.record.pending, None,
        "the client confirmed its new generation"
    );
    // The server forgets: every later attempt is refused.
    s.record = Generations::of_keys(&s.keys);
    for _ in 0..3 {
        assert_eq!(
            attempt(&mut c, &mut s, None, None, &mut rng),
            Outcome::Broken
        );
    }
}
