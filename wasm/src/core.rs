//! The client without JavaScript: an engine [`Connection`] made from the bytes of the
//! reference's key files and a stored record, its outputs in order, and its failures as
//! [`Failure`]s with a kind a page can switch on. The JavaScript classes in `lib.rs` wrap
//! this; it is tested natively.

use dktp::connection::Connection;
use dktp::generation::{Generations, SecretsChange};
use dktp::kex::{PeerKeys, Settings};
use dktp::peer_key::{LocalPeerKey, RemotePeerKey};
use dktp::pq::OsEntropy;
use dktp::session::{Direction, Event, Output};
use zeroize::Zeroizing;

/// Why the client stopped or refused, for the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `keys`, `record`, `protocol`, `peer`, `timeout`, `overloaded`, `transport`, `store`,
    /// `closed` or `misuse`.
    pub kind: &'static str,
    /// The DKTP error code sent or received (0 where none applies).
    pub code: u8,
    /// What happened, in words.
    pub message: String,
}

impl Failure {
    /// A failure outside the protocol (transport, store, misuse).
    pub fn new(kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            code: 0,
            message: message.into(),
        }
    }
}

impl From<&dktp::Error> for Failure {
    fn from(e: &dktp::Error) -> Failure {
        use dktp::Error as E;
        let kind = match e {
            E::PeerReported { .. } => "peer",
            E::TimedOut { .. } => "timeout",
            E::Overloaded => "overloaded",
            E::Misuse(_) => "misuse",
            _ => "protocol",
        };
        Failure {
            kind,
            code: e.wire_code().as_u8(),
            message: e.to_string(),
        }
    }
}

/// One output, in the order the page must act on them: a record of the secrets is stored
/// before the next `Transmit` leaves.
#[derive(Debug)]
pub enum Out {
    /// A packet for the server (one WebSocket binary frame).
    Transmit(Vec<u8>),
    /// The handshake completed.
    Established {
        /// The configuration string.
        config: String,
        /// The generation of the secrets the session runs on.
        generation: u64,
    },
    /// The record of the pre-shared secrets changed: store it before the next packet.
    Secrets {
        /// `pending`, `confirmed` or `discarded`.
        change: &'static str,
        /// Its bytes ([`Generations::to_bytes`]), to hand back to the next session.
        record: Zeroizing<Vec<u8>>,
        /// Its newest generation's number.
        generation: u64,
    },
    /// A message from the server.
    Message(Vec<u8>),
    /// An asymmetric ratchet completed: `transmit` (ours) or `receive` (the server's).
    Ratchet(&'static str),
    /// The session ended: `code` 0x1B for an orderly close.
    Closed {
        /// The DKTP code.
        code: u8,
        /// Whether the server sent it.
        by_peer: bool,
    },
}

/// A client session, sans-IO.
pub struct Core {
    conn: Connection,
    /// The failure that ended the connection, if one did.
    failure: Option<Failure>,
    /// Messages waiting for this side's ratchet to complete (no data may be sent between
    /// a ratchet request and its response, FACTS §8).
    queued: std::collections::VecDeque<Vec<u8>>,
    /// The clock at the last call.
    now: u64,
}

/// The longest message: a data packet's 0x10000 bytes less its 64-byte tag.
pub const MAX_MESSAGE: usize = 0x10000 - 64;

impl Core {
    /// A session for the pair in `local_key` (`.dskey` bytes) and `remote_key` (`.dpkey`
    /// bytes), from `record` (a stored record; `None` for a pair that never connected);
    /// the connect request is the first output.
    pub fn connect(
        local_key: &[u8],
        remote_key: &[u8],
        record: Option<&[u8]>,
        handshake_timeout: Option<u64>,
        now: u64,
    ) -> Result<Core, Failure> {
        let local = LocalPeerKey::from_bytes(local_key)
            .map_err(|e| Failure::new("keys", format!("not a local peer key (.dskey): {e}")))?;
        let remote = RemotePeerKey::from_bytes(remote_key)
            .map_err(|e| Failure::new("keys", format!("not a remote peer key (.dpkey): {e}")))?;
        let keys = PeerKeys { local, remote };
        keys.check_link().map_err(|e| {
            Failure::new(
                "keys",
                format!("the local key is not linked to this remote key: {e}"),
            )
        })?;
        if keys.local.is_expired(now) || keys.remote.is_expired(now) {
            return Err(Failure::new("keys", "the keys have expired"));
        }
        let secrets = match record {
            None => Generations::of_keys(&keys),
            Some(r) => Generations::from_bytes(r)
                .ok_or_else(|| Failure::new("record", "not a stored record of the secrets"))?,
        };
        let mut settings = Settings::default();
        if let Some(t) = handshake_timeout {
            settings = settings.with_handshake_timeout(t.max(1));
        }
        let conn = Connection::connect_with(keys, secrets, settings, now, &mut OsEntropy)
            .map_err(|e| Failure::from(&e))?;
        Ok(Core {
            conn,
            failure: None,
            queued: std::collections::VecDeque::new(),
            now,
        })
    }

    fn note(&mut self, r: Result<(), dktp::Error>) -> Result<(), Failure> {
        r.map_err(|e| {
            let f = Failure::from(&e);
            self.failure.get_or_insert(f.clone());
            f
        })
    }

    /// Bytes from the server (a WebSocket frame, or any piece of the stream).
    pub fn feed(&mut self, bytes: &[u8], now: u64) -> Result<(), Failure> {
        self.now = now;
        let r = self.conn.handle_bytes(bytes, now, &mut OsEntropy);
        self.note(r)
    }

    /// The transport ended (the server closed the WebSocket).
    pub fn end_of_stream(&mut self, now: u64) -> Result<(), Failure> {
        if self.conn.is_closed() {
            return Ok(());
        }
        let during = !self.conn.is_established();
        let r = self.conn.handle_end_of_stream(now, &mut OsEntropy);
        let f = Failure::new(
            "transport",
            if during {
                "the server closed the connection during the handshake"
            } else {
                "the server closed the connection without a DKTP close"
            },
        );
        self.failure.get_or_insert(f.clone());
        self.note(r)?;
        Err(f)
    }

    /// Seals a message (or queues it while this side's ratchet is outstanding).
    pub fn send(&mut self, message: &[u8], now: u64) -> Result<(), Failure> {
        self.now = now;
        if message.len() > MAX_MESSAGE {
            return Err(Failure::new(
                "misuse",
                format!(
                    "a message of {} bytes (at most {MAX_MESSAGE})",
                    message.len()
                ),
            ));
        }
        if self.ratchet_outstanding() || !self.queued.is_empty() {
            self.queued.push_back(message.to_vec());
            return Ok(());
        }
        let r = self.conn.send(message, now);
        self.note(r)
    }

    fn ratchet_outstanding(&self) -> bool {
        self.conn
            .session()
            .is_some_and(dktp::session::Session::ratchet_outstanding)
    }

    /// Starts an asymmetric ratchet.
    pub fn ratchet(&mut self, now: u64) -> Result<(), Failure> {
        self.now = now;
        let r = self.conn.start_ratchet(now, &mut OsEntropy);
        self.note(r)
    }

    /// Closes in order (0x1B).
    pub fn close(&mut self, now: u64) -> Result<(), Failure> {
        let r = self.conn.close(now);
        self.note(r)
    }

    /// The next output.
    pub fn poll(&mut self) -> Option<Out> {
        while !self.queued.is_empty() && !self.ratchet_outstanding() && !self.conn.is_closed() {
            if let Some(m) = self.queued.pop_front() {
                let r = self.conn.send(&m, self.now);
                let _ = self.note(r);
            }
        }
        Some(match self.conn.poll_output()? {
            Output::Transmit(p) => Out::Transmit(p),
            Output::Event(Event::Established) => {
                let (config, generation) = self
                    .conn
                    .session()
                    .map(|s| (s.config().to_string(), s.generations().latest().number()))
                    .unwrap_or_default();
                Out::Established { config, generation }
            }
            Output::Event(Event::Secrets(u)) => Out::Secrets {
                change: match u.change {
                    SecretsChange::Pending => "pending",
                    SecretsChange::Confirmed => "confirmed",
                    SecretsChange::Discarded => "discarded",
                    _ => "changed",
                },
                generation: u.record.latest().number(),
                record: u.record.to_bytes(),
            },
            Output::Event(Event::Message(m)) => Out::Message(m.into_vec()),
            Output::Event(Event::RatchetCompleted(d)) => Out::Ratchet(match d {
                Direction::Transmit => "transmit",
                Direction::Receive => "receive",
            }),
            Output::Event(Event::Closed { code, by_peer }) => Out::Closed { code, by_peer },
            Output::Event(_) => return self.poll(),
        })
    }

    /// When [`timeout`](Self::timeout) is due (seconds since the epoch).
    pub fn deadline(&self) -> Option<u64> {
        self.conn.poll_timeout()
    }

    /// The clock passed the deadline.
    pub fn timeout(&mut self, now: u64) -> Result<(), Failure> {
        self.now = now;
        let r = self.conn.handle_timeout(now);
        self.note(r)
    }

    /// Whether the handshake completed.
    pub fn is_established(&self) -> bool {
        self.conn.is_established()
    }

    /// Whether the session ended.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// The failure that ended the session, if one did.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dktp::config::Config;
    use dktp::listener::Listener;
    use dktp::peer_key::{LocalPeerKey, RemotePeerKey};

    const NOW: u64 = 1_800_000_000;

    /// A linked pair's four key images: (server local, server remote, client local, client
    /// remote), as the key files hold them.
    fn key_files() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let config: Config = "dilithium-s1_kyber-s1_sha3_rcs".parse().expect("config");
        let (mut s_local, s_remote) =
            dktp::peer_key::generate(config, [1; 16], NOW, &mut OsEntropy).expect("srv");
        let (mut c_local, c_remote) =
            dktp::peer_key::generate(config, [2; 16], NOW, &mut OsEntropy).expect("cli");
        dktp::peer_key::link(&mut s_local, &c_remote);
        dktp::peer_key::link(&mut c_local, &s_remote);
        (
            s_local.to_bytes().to_vec(),
            s_remote.to_bytes().to_vec(),
            c_local.to_bytes().to_vec(),
            c_remote.to_bytes().to_vec(),
        )
    }

    fn server(s_local: &[u8], c_remote: &[u8]) -> Listener {
        let keys = PeerKeys {
            local: LocalPeerKey::from_bytes(s_local).expect("local"),
            remote: RemotePeerKey::from_bytes(c_remote).expect("remote"),
        };
        let l = Listener::new(Settings::default());
        let record = Generations::of_keys(&keys);
        l.insert(keys, record);
        l
    }

    /// Runs the client against an in-process server until neither has anything to say;
    /// returns what the client handed out besides packets.
    fn pump(c: &mut Core, s: &mut Connection, events: &mut Vec<Out>, now: u64) {
        loop {
            let mut moved = false;
            while let Some(o) = c.poll() {
                match o {
                    Out::Transmit(p) => {
                        moved = true;
                        let _ = s.handle_bytes(&p, now, &mut OsEntropy);
                    }
                    other => events.push(other),
                }
            }
            while let Some(o) = s.poll_output() {
                if let Output::Transmit(p) = o {
                    moved = true;
                    let _ = c.feed(&p, now);
                } else if let Output::Event(Event::Message(m)) = o {
                    // Echo.
                    let _ = s.send(&m, now);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    #[test]
    fn a_session_records_its_generations_and_reconnects_from_them() {
        let (s_local, s_remote, c_local, c_remote) = key_files();
        let l = server(&s_local, &c_remote);
        let mut record: Option<Zeroizing<Vec<u8>>> = None;
        for round in 0..3u64 {
            // A connect request is signed over its time in seconds: one a second at most.
            let now = NOW + round;
            let mut c = Core::connect(
                &c_local,
                &s_remote,
                record.as_deref().map(|r| &r[..]),
                None,
                now,
            )
            .expect("client");
            let mut s = l.accept(now);
            let mut ev = Vec::new();
            pump(&mut c, &mut s, &mut ev, now);
            assert!(c.is_established(), "round {round}");
            c.send(b"hello", now).expect("send");
            pump(&mut c, &mut s, &mut ev, now);
            assert!(
                ev.iter()
                    .any(|e| matches!(e, Out::Message(m) if m == b"hello"))
            );
            // The pending record comes before the confirmation; the last one is stored.
            let changes: Vec<&str> = ev
                .iter()
                .filter_map(|e| match e {
                    Out::Secrets { change, .. } => Some(*change),
                    _ => None,
                })
                .collect();
            assert_eq!(changes, ["pending", "confirmed"], "round {round}");
            for e in ev {
                if let Out::Secrets {
                    record: r,
                    generation,
                    ..
                } = e
                {
                    assert_eq!(
                        generation,
                        2 * round + 1,
                        "a handshake and a ratchet a round"
                    );
                    record = Some(r);
                }
            }
            // A message sent while this side's ratchet is outstanding waits for it, then
            // goes out on the new keys.
            c.ratchet(now).expect("ratchet");
            c.send(b"during the ratchet", now).expect("queued");
            let mut ev = Vec::new();
            pump(&mut c, &mut s, &mut ev, now);
            assert!(
                ev.iter().any(|e| matches!(e, Out::Ratchet("transmit"))),
                "round {round}"
            );
            assert!(
                ev.iter()
                    .any(|e| matches!(e, Out::Message(m) if m == b"during the ratchet"))
            );
            record = ev
                .into_iter()
                .rev()
                .find_map(|e| match e {
                    Out::Secrets { record, .. } => Some(record),
                    _ => None,
                })
                .or(record);
            c.close(now).expect("close");
            let mut ev = Vec::new();
            pump(&mut c, &mut s, &mut ev, now);
            assert!(matches!(
                ev.last(),
                Some(Out::Closed {
                    code: 0x1b,
                    by_peer: false
                })
            ));
        }
    }

    #[test]
    fn bad_keys_records_and_server_bytes_are_typed_failures() {
        let (_, s_remote, c_local, c_remote) = key_files();
        let kind = |r: Result<Core, Failure>| r.err().map(|f| f.kind);
        assert_eq!(
            kind(Core::connect(b"nope", &s_remote, None, None, NOW)),
            Some("keys")
        );
        // The client's own remote key is not the server's: not linked.
        assert_eq!(
            kind(Core::connect(&c_local, &c_remote, None, None, NOW)),
            Some("keys")
        );
        assert_eq!(
            kind(Core::connect(&c_local, &s_remote, Some(&[9, 9]), None, NOW)),
            Some("record")
        );
        // Garbage from the server: a protocol failure with its code, then a close.
        let mut c = Core::connect(&c_local, &s_remote, None, Some(3), NOW).expect("client");
        while c.poll().is_some() {}
        let f = c.feed(&[0xff; 64], NOW).expect_err("garbage");
        assert_eq!(f.kind, "protocol");
        assert_ne!(f.code, 0);
        assert!(c.is_closed());
        // A server that closes during the handshake.
        let mut c = Core::connect(&c_local, &s_remote, None, Some(3), NOW).expect("client");
        assert_eq!(c.end_of_stream(NOW).expect_err("eos").kind, "transport");
        // A server that stalls: the handshake deadline.
        let mut c = Core::connect(&c_local, &s_remote, None, Some(3), NOW).expect("client");
        let at = c.deadline().expect("a deadline");
        assert!(at <= NOW + 3);
        assert_eq!(c.timeout(at).expect_err("timeout").kind, "timeout");
    }
}
