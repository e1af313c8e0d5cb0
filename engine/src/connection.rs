//! One DKTP connection over a byte stream behind a single sans-IO API ([`Connection`]), and
//! a thin callback adapter over it ([`Tunnel`]) shaped like the reference's integration API.
//!
//! A [`Connection`] is the handshake, then the [`Session`]. Feed it bytes as the transport
//! delivers them, in any chunking ([`Connection::handle_bytes`], then
//! [`Connection::handle_end_of_stream`]); it deframes them itself (holding at most one
//! packet of the configuration: up to 1.39 MB in a McEliece handshake, 0x10000 + 21 bytes
//! after it) and refuses a declared length above what the current state accepts before a
//! byte of it is buffered. Then drain [`Connection::poll_output`] in order: whole packets to
//! write (one write each: the reference drops a connection whose header arrives in pieces)
//! and [`Event`]s. Arm a timer for [`Connection::poll_timeout`] and call
//! [`Connection::handle_timeout`] when it fires: a handshake that misses its deadline and a
//! session idle for its idle timeout are closed ([`Settings::with_handshake_timeout`],
//! [`Settings::with_idle_timeout`]).
//!
//! **Errors.** Every method that takes input returns the [`Error`] that ended the
//! connection, and has already queued what the reference would send for it: the plaintext
//! error packet during the handshake, the encrypted one with the failure's code in a
//! session, then an [`Event::Closed`]. So after an error, keep draining
//! [`poll_output`](Connection::poll_output) and write what it hands out before closing the
//! socket.
//!
//! **Secrets.** [`Event::Secrets`] carries the whole new record of the peer's pre-shared
//! secrets ([`crate::generation`]): store it, durably, before acting on the next output.
//! The packet after it is the one that commits to it.
//!
//! A server accepts its connections from a [`Listener`] (many peers by key id, one replay
//! gate for all of them); a client makes one with [`Connection::connect`] or, with a stored
//! record, [`Connection::connect_with`].
//!
//! # Example: a blocking TCP client and server
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use dktp::connection::Connection;
//! use dktp::kex::{PeerKeys, Settings};
//! use dktp::listener::Listener;
//! use dktp::pq::OsEntropy;
//! use dktp::session::{Event, Output};
//!
//! fn now() -> u64 {
//!     SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
//! }
//!
//! /// Writes what the connection hands out; returns the messages that arrived.
//! fn drain(conn: &mut Connection, socket: &mut TcpStream) -> std::io::Result<Vec<Vec<u8>>> {
//!     let mut messages = Vec::new();
//!     while let Some(out) = conn.poll_output() {
//!         match out {
//!             Output::Transmit(packet) => socket.write_all(&packet)?,
//!             Output::Event(Event::Message(m)) => messages.push(m.into_vec()),
//!             Output::Event(Event::Secrets(_update)) => { /* store _update.record here */ }
//!             Output::Event(_) => {}
//!         }
//!     }
//!     Ok(messages)
//! }
//!
//! /// Reads once; returns the messages that arrived (empty at the end of the stream).
//! fn receive(conn: &mut Connection, socket: &mut TcpStream) -> std::io::Result<Vec<Vec<u8>>> {
//!     let mut buf = vec![0u8; 64 * 1024];
//!     let n = socket.read(&mut buf)?;
//!     let _ = if n == 0 {
//!         conn.handle_end_of_stream(now(), &mut OsEntropy)
//!     } else {
//!         conn.handle_bytes(&buf[..n], now(), &mut OsEntropy)
//!     };
//!     drain(conn, socket) // after an error this writes the error packet
//! }
//!
//! fn server(keys: PeerKeys, tcp: TcpListener) -> Result<(), Box<dyn std::error::Error>> {
//!     let listener = Listener::new(Settings::default());
//!     listener.add(keys);
//!     let (mut socket, _) = tcp.accept()?;
//!     let mut conn = listener.accept(now());
//!     while !conn.is_closed() {
//!         for m in receive(&mut conn, &mut socket)? {
//!             conn.send(&m, now())?; // echo
//!         }
//!         drain(&mut conn, &mut socket)?;
//!     }
//!     Ok(())
//! }
//!
//! fn client(keys: PeerKeys, addr: &str) -> Result<(), Box<dyn std::error::Error>> {
//!     let mut socket = TcpStream::connect(addr)?;
//!     let mut conn = Connection::connect(keys, Settings::default(), now(), &mut OsEntropy)?;
//!     drain(&mut conn, &mut socket)?; // the connect request
//!     while !conn.is_established() {
//!         receive(&mut conn, &mut socket)?;
//!         if conn.is_closed() {
//!             return Err("handshake failed".into());
//!         }
//!     }
//!     conn.send(b"hello", now())?;
//!     drain(&mut conn, &mut socket)?;
//!     let mut echo = Vec::new();
//!     while echo.is_empty() && !conn.is_closed() {
//!         echo = receive(&mut conn, &mut socket)?;
//!     }
//!     assert_eq!(echo, vec![b"hello".to_vec()]);
//!     conn.close(now())?;
//!     drain(&mut conn, &mut socket)?;
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! (`engine/tests/tcp_example.rs` runs this code on loopback.)
//!
//! # The callback adapter
//!
//! [`Tunnel`] is the integration guide's callback style (§2.2): it takes a
//! `send: FnMut(&[u8])` that must write one packet whole and a `receive: FnMut(&[u8])` that
//! gets each decrypted message, and is fed raw bytes from the transport as they arrive
//! ([`Tunnel::feed`]). An optional event callback sees every [`Event`] before any packet
//! queued after it is sent, which is where the record of the secrets is stored.
//!
//! | integration guide (§2.2, §3) | dktp |
//! |---|---|
//! | `dktp_generate_keypair(enckey, deckey, keyid)` | [`peer_key::generate`](crate::peer_key::generate)`(config, keyid, now, rng)` then [`peer_key::link`](crate::peer_key::link) |
//! | `dktp_client_connect_ipv4/ipv6(lpk, rpk, address, port, send_func, receive_callback)` | [`Tunnel::connect`]`(keys, settings, now, rng, send, receive)`; the caller opens the socket and feeds it with [`Tunnel::feed`] |
//! | `dktp_client_listen_ipv4/ipv6(lpk, rpk, send_func, receive_callback)` | [`Tunnel::listen`]`(keys, settings, now, send, receive)`; many peers: a [`Listener`] and [`Tunnel::accept`] |
//! | `dktp_send_asymmetric_ratchet_request(cns)` | [`Tunnel::send_ratchet_request`]`(now, rng)` / [`Connection::start_ratchet`] |
//! | `dktp_packet_encrypt(cns, packetout, message, msglen)` | [`Tunnel::send`]`(message, now)` / [`Session::seal`], [`Session::seal_into`] |
//! | `dktp_packet_decrypt(cns, message, msglen, packetin)` | [`Tunnel::feed`] (calls `receive`) / [`Session::open_in_place`] |
//! | `dktp_connection_close(cns, err, notify)` | [`Tunnel::close`]`(now)` / [`Connection::close`], [`Session::close_with`] |
//! | `dktp_local_peer_key_serialize / deserialize` | [`LocalPeerKey::to_bytes`](crate::peer_key::LocalPeerKey::to_bytes) / [`LocalPeerKey::from_bytes`](crate::peer_key::LocalPeerKey::from_bytes) (remote: [`RemotePeerKey`](crate::peer_key::RemotePeerKey)) |
//! | `dktp_local_peer_key_erase` | [`LocalPeerKey::erase`](crate::peer_key::LocalPeerKey::erase) |
//! | `send_func(cns)` | the `send` closure: write the packet to the transport |
//! | `receive_callback(cns, data, len)` | the `receive` closure: one decrypted message |
//! | `DKTP_DOMAIN_IDENTITY_STRING` | [`Settings::with_ratchet_domain`] |
//! | (pss stored after the session) | the event callback's [`Event::Secrets`]; [`Tunnel::keys`] |

use std::collections::VecDeque;

use crate::error::{Error, ErrorCode, Malformed, Misuse};
use crate::generation::{Generations, SecretsChange, SecretsUpdate};
use crate::kex::{client, error_reply, server};
use crate::listener::Listener;
use crate::packet::{self, Frame, HEADER_LEN, MAX_MESSAGE, msglen};
use crate::peer_key::PeerKeys;
use crate::pq::Entropy;
use crate::session::{Event, Output, Session};
use crate::settings::Settings;

enum State {
    ClientConnect(client::AwaitConnectResponse),
    ClientExchange(client::AwaitExchangeResponse),
    ClientEstablish(client::AwaitEstablishResponse),
    /// A server connection awaiting its connect request; the listener checks it.
    ServerConnect,
    ServerExchange(server::AwaitExchangeRequest),
    ServerEstablish(server::AwaitEstablishRequest),
    Established(Session),
    /// The handshake failed or timed out.
    Failed,
}

/// A connection: the handshake, then the session (see the module docs).
pub struct Connection {
    state: State,
    outbox: VecDeque<Output>,
    settings: Settings,
    /// Bytes of the packet being received (at most one packet).
    inbuf: Vec<u8>,
    /// A server connection's listener.
    listener: Option<Listener>,
    /// When the handshake must be complete (Unix seconds).
    deadline: u64,
    /// When a packet last went either way (Unix seconds).
    last_activity: u64,
    /// Whether the close event was queued.
    closed: bool,
    /// The key id a server connection's connect request named, refused or not.
    requested: Option<[u8; crate::peer_key::KEYID_SIZE]>,
    /// The record of the secrets the handshake started from.
    base: Option<Generations>,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = match &self.state {
            State::ClientConnect(_) => "client: awaiting connect response",
            State::ClientExchange(_) => "client: awaiting exchange response",
            State::ClientEstablish(_) => "client: awaiting establish response",
            State::ServerConnect => "server: awaiting connect request",
            State::ServerExchange(_) => "server: awaiting exchange request",
            State::ServerEstablish(_) => "server: awaiting establish request",
            State::Established(s) if s.is_open() => "established",
            State::Established(_) => "ended",
            State::Failed => "handshake failed",
        };
        f.debug_struct("Connection")
            .field("state", &state)
            .field("queued_outputs", &self.outbox.len())
            .field("buffered", &self.inbuf.len())
            .finish()
    }
}

/// An ended connection with nothing queued: a placeholder, e.g. where a connection lent to
/// a batch on another thread stood (`std::mem::take`).
impl Default for Connection {
    fn default() -> Connection {
        let mut conn = Connection::new(State::Failed, Settings::default(), 0);
        conn.closed = true;
        conn
    }
}

/// The codes with which a server refuses an establish request whose keys it does not hold
/// (FACTS §5: a stale secret fails with 0x07 or 0x09).
const REFUSED_ESTABLISH: [u8; 2] = [ErrorCode::Decryption as u8, ErrorCode::Exchange as u8];

impl Connection {
    /// A client connection whose keys' secrets are its only generation: queues the
    /// connect request.
    pub fn connect(
        keys: PeerKeys,
        settings: Settings,
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<Connection, Error> {
        let secrets = Generations::of_keys(&keys);
        Connection::connect_with(keys, secrets, settings, now, rng)
    }

    /// A client connection for a stored peer record: tries the pending generation if there
    /// is one, else the confirmed one ([`crate::generation`]). Queues the connect request.
    pub fn connect_with(
        keys: PeerKeys,
        secrets: Generations,
        settings: Settings,
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<Connection, Error> {
        let deadline = now.saturating_add(settings.handshake_timeout(keys.config()));
        let base = secrets.clone();
        let flight = client::start_with(keys, secrets, settings.clone(), now, rng)?;
        let mut conn = Connection::new(State::ClientConnect(flight.next), settings, now);
        conn.deadline = deadline;
        conn.base = Some(base);
        conn.outbox.push_back(Output::Transmit(flight.packet));
        Ok(conn)
    }

    fn accepted(listener: Listener, now: u64) -> Connection {
        let settings = listener.settings().clone();
        let mut conn = Connection::new(State::ServerConnect, settings, now);
        conn.listener = Some(listener);
        conn
    }

    fn new(state: State, settings: Settings, now: u64) -> Connection {
        Connection {
            state,
            outbox: VecDeque::new(),
            deadline: now.saturating_add(settings.handshake_timeout(Default::default())),
            settings,
            inbuf: Vec::new(),
            listener: None,
            last_activity: now,
            closed: false,
            requested: None,
            base: None,
        }
    }

    /// Feeds bytes received from the transport, in any chunking; whole packets are handled
    /// as they complete. A declared length above what the current state accepts is refused
    /// before its bytes are buffered.
    ///
    /// # Errors
    /// The error that ended the connection; its error packet (if the reference would send
    /// one) and [`Event::Closed`] are already queued in [`poll_output`](Self::poll_output).
    /// Bytes after the failing packet are dropped.
    pub fn handle_bytes(
        &mut self,
        bytes: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(), Error> {
        self.take_bytes(bytes, now, rng, None)
    }

    /// [`handle_bytes`](Self::handle_bytes) for a caller that opens its sessions' packets in
    /// a [`Batch`](crate::batch::Batch) with those of other connections: the handshake is
    /// handled here as usual, but once the session is established each whole packet is
    /// appended to `packets`, in order and unopened. Open them in a batch on
    /// [`batch_session`](Self::batch_session); then hand this connection, in order, each
    /// [`Outcome::Control`](crate::batch::Outcome::Control) packet and every packet after it
    /// ([`Outcome::Deferred`](crate::batch::Outcome::Deferred)) through
    /// [`handle_packet`](Self::handle_packet), and a failed open's error through
    /// [`fail`](Self::fail), which queues the reply the reference sends.
    ///
    /// # Errors
    /// As [`handle_bytes`](Self::handle_bytes).
    pub fn handle_bytes_batched(
        &mut self,
        bytes: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
        packets: &mut Vec<Vec<u8>>,
    ) -> Result<(), Error> {
        self.take_bytes(bytes, now, rng, Some(packets))
    }

    fn take_bytes(
        &mut self,
        mut bytes: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
        mut deferred: Option<&mut Vec<Vec<u8>>>,
    ) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Misuse::NotEstablished.into());
        }
        if !bytes.is_empty() {
            self.last_activity = now;
        }
        while !bytes.is_empty() && !self.is_closed() {
            let packet = if self.inbuf.is_empty() {
                let framed = packet::frame(bytes, self.max_msglen());
                match self.framed(framed, now)? {
                    Some(len) => {
                        let (packet, rest) = bytes.split_at(len.min(bytes.len()));
                        bytes = rest;
                        packet.to_vec()
                    }
                    None => {
                        self.inbuf.extend_from_slice(bytes);
                        return Ok(());
                    }
                }
            } else {
                // Complete the header first, then exactly the packet: never more than one
                // packet is buffered.
                let want = if self.inbuf.len() < HEADER_LEN {
                    HEADER_LEN
                } else {
                    let framed = packet::frame(&self.inbuf, self.max_msglen());
                    match self.framed(framed, now)? {
                        Some(len) => len,
                        None => self.packet_len_buffered(),
                    }
                };
                let take = want.saturating_sub(self.inbuf.len()).min(bytes.len());
                let (head, rest) = bytes.split_at(take);
                self.inbuf.extend_from_slice(head);
                bytes = rest;
                if self.inbuf.len() < HEADER_LEN {
                    continue;
                }
                let framed = packet::frame(&self.inbuf, self.max_msglen());
                match self.framed(framed, now)? {
                    Some(_) => core::mem::take(&mut self.inbuf),
                    None => continue,
                }
            };
            match deferred.as_deref_mut() {
                Some(out) if self.is_established() => out.push(packet),
                _ => self.handle_packet(packet, now, rng)?,
            }
        }
        Ok(())
    }

    /// The length of the packet whose header `inbuf` holds (after a successful frame).
    fn packet_len_buffered(&self) -> usize {
        packet::Header::decode(&self.inbuf)
            .ok()
            .and_then(|h| h.packet_len())
            .unwrap_or(HEADER_LEN)
    }

    /// A framing result: `Some(len)` when a whole packet is there; a refused length ends
    /// the connection.
    fn framed(&mut self, framed: Result<Frame, Error>, now: u64) -> Result<Option<usize>, Error> {
        match framed {
            Ok(Frame::Complete { len, .. }) => Ok(Some(len)),
            Ok(Frame::Incomplete { .. }) => Ok(None),
            Err(e) => {
                self.inbuf.clear();
                Err(self.fail(e, now))
            }
        }
    }

    /// The transport reached its end. A reference peer closing before establishment sends
    /// an error packet whose header declares 65 bytes but carries one and then shuts the
    /// socket (FACTS §4): that partial packet is handled here and reported as the peer's
    /// error. Any other leftover is a truncated packet. The connection is closed afterwards
    /// (an [`Event::Closed`] is queued if none was).
    ///
    /// # Errors
    /// As [`handle_bytes`](Self::handle_bytes).
    pub fn handle_end_of_stream(&mut self, now: u64, rng: &mut dyn Entropy) -> Result<(), Error> {
        let rest = core::mem::take(&mut self.inbuf);
        let r = if rest.is_empty() || self.is_closed() {
            Ok(())
        } else if rest.first() == Some(&packet::Flag::ErrorCondition.as_u8())
            && self.session().is_none()
        {
            self.handle_packet(rest, now, rng)
        } else {
            Err(self.fail(
                Malformed::Truncated {
                    needed: HEADER_LEN,
                    got: rest.len(),
                }
                .into(),
                now,
            ))
        };
        if !self.is_closed() {
            // The peer went away without a word: nothing is proven, nothing is discarded.
            if let State::Established(s) = &mut self.state {
                s.abort();
            } else {
                self.state = State::Failed;
            }
        }
        self.queue_closed(ErrorCode::Connection.as_u8(), true);
        r
    }

    /// The next deadline (Unix seconds) at which [`handle_timeout`](Self::handle_timeout)
    /// must be called: the handshake's, or the idle timeout's; `None` once closed.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.is_closed() {
            return None;
        }
        if self.session().is_some() {
            return self
                .settings
                .idle_timeout()
                .map(|t| self.last_activity.saturating_add(t));
        }
        Some(self.deadline)
    }

    /// Acts on the deadlines: a handshake still incomplete at its deadline sends the error
    /// packet (0x04) and closes; a session idle for its idle timeout sends the orderly close
    /// (0x1B) and closes. Either way the returned error is [`Error::TimedOut`]. Before the
    /// deadline it does nothing.
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), Error> {
        match self.poll_timeout() {
            Some(t) if now >= t => {}
            _ => return Ok(()),
        }
        let handshake = self.session().is_none();
        let error = Error::TimedOut { handshake };
        if handshake {
            return Err(self.handshake_failed(error, now));
        }
        let code = ErrorCode::DisconnectRequest;
        if let State::Established(session) = &mut self.state
            && let Ok(packet) = session.close_with(code, now)
        {
            self.outbox.push_back(Output::Transmit(packet));
        }
        self.drain_session();
        self.queue_closed(code.as_u8(), false);
        Err(error)
    }

    /// Handles one whole packet, as framed by [`handle_bytes_batched`](Self::handle_bytes_batched)
    /// (the scalar path for what a batch hands back).
    ///
    /// # Errors
    /// As [`handle_bytes`](Self::handle_bytes): the reply is already queued.
    pub fn handle_packet(
        &mut self,
        packet: Vec<u8>,
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(), Error> {
        if let State::Established(session) = &mut self.state {
            let r = session.handle_owned(packet, now, rng);
            return self.after_session(r, now);
        }
        let r = match core::mem::replace(&mut self.state, State::Failed) {
            State::ServerConnect => {
                let Some(listener) = self.listener.clone() else {
                    return Err(self.handshake_failed(Misuse::WrongState.into(), now));
                };
                self.requested = packet
                    .get(HEADER_LEN..HEADER_LEN + crate::peer_key::KEYID_SIZE)
                    .filter(|_| packet.first() == Some(&packet::Flag::ConnectRequest.as_u8()))
                    .and_then(|id| id.try_into().ok());
                listener.first_packet(&packet, now, rng).map(|f| {
                    self.base = Some(f.next.secrets().clone());
                    // The configuration is known now: its own deadline.
                    self.deadline = self
                        .deadline
                        .saturating_sub(self.settings.handshake_timeout(Default::default()))
                        .saturating_add(self.settings.handshake_timeout(f.next.keys().config()));
                    self.outbox.push_back(Output::Transmit(f.packet));
                    State::ServerExchange(f.next)
                })
            }
            State::ClientConnect(s) => s.handle(&packet, now, rng).map(|f| {
                self.outbox.push_back(Output::Transmit(f.packet));
                State::ClientExchange(f.next)
            }),
            State::ClientExchange(s) => s.handle(&packet, now, rng).map(|c| {
                self.queue_secrets(SecretsChange::Pending, c.record);
                self.outbox.push_back(Output::Transmit(c.packet));
                State::ClientEstablish(c.next)
            }),
            State::ClientEstablish(s) => {
                let refused = s.refused_record();
                match s.handle(&packet, now, rng) {
                    Ok(session) => {
                        self.queue_secrets(SecretsChange::Confirmed, session.generations().clone());
                        self.outbox.push_back(Output::Event(Event::Established));
                        Ok(State::Established(session))
                    }
                    Err(e) => {
                        if let Error::PeerReported { code } = e
                            && REFUSED_ESTABLISH.contains(&code)
                        {
                            // The peer holds neither our base nor what we derived from it.
                            self.queue_secrets(SecretsChange::Discarded, refused);
                        }
                        Err(e)
                    }
                }
            }
            State::ServerExchange(s) => s.handle(&packet, now, rng).map(|f| {
                self.outbox.push_back(Output::Transmit(f.packet));
                State::ServerEstablish(f.next)
            }),
            State::ServerEstablish(s) => {
                let keyid = *s.keys().local.keyid();
                s.handle(&packet, now, rng).map(|c| {
                    // `self.state` is not the session yet: name the peer for the listener.
                    if let Some(listener) = &self.listener {
                        listener.set_secrets(&keyid, c.record.clone());
                    }
                    self.queue_secrets(SecretsChange::Pending, c.record);
                    self.outbox.push_back(Output::Transmit(c.packet));
                    self.outbox.push_back(Output::Event(Event::Established));
                    State::Established(c.next)
                })
            }
            State::Failed | State::Established(_) => {
                return Err(Misuse::NotEstablished.into());
            }
        };
        match r {
            Ok(state) => {
                self.state = state;
                Ok(())
            }
            Err(e) => Err(self.handshake_failed(e, now)),
        }
    }

    /// Ends the connection because of a transport-level problem found outside the engine,
    /// queueing the reply the reference sends and the close event.
    pub fn fail(&mut self, error: Error, now: u64) -> Error {
        match &mut self.state {
            State::Established(_) => self
                .after_session(Err(error), now)
                .err()
                .unwrap_or(Error::Misuse(Misuse::NotEstablished)),
            _ => self.handshake_failed(error, now),
        }
    }

    /// The next output, in the order to act on it.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.outbox.is_empty()
            && let State::Established(session) = &mut self.state
        {
            // What a batch changed in the session (a generation confirmed) surfaces here.
            let out = session.poll_output();
            self.note(out.as_ref());
            return out;
        }
        self.outbox.pop_front()
    }

    /// Seals an application message (queued as a packet to send).
    ///
    /// # Errors
    /// Misuse (not established, empty or too long, a ratchet outstanding); nothing is
    /// queued and the connection goes on.
    pub fn send(&mut self, message: &[u8], now: u64) -> Result<(), Error> {
        let session = self
            .session_mut()
            .ok_or(Error::Misuse(Misuse::NotEstablished))?;
        let mut packet = Vec::with_capacity(packet::HEADER_LEN + message.len() + packet::TAG_LEN);
        session.seal(message, now, &mut packet)?;
        self.last_activity = now;
        self.outbox.push_back(Output::Transmit(packet));
        Ok(())
    }

    /// Starts an asymmetric ratchet of our transmit direction; queues the request.
    /// [`Event::RatchetCompleted`] follows when the response is checked.
    pub fn start_ratchet(&mut self, now: u64, rng: &mut dyn Entropy) -> Result<(), Error> {
        let session = self
            .session_mut()
            .ok_or(Error::Misuse(Misuse::NotEstablished))?;
        let packet = session.start_ratchet(now, rng)?;
        self.last_activity = now;
        self.outbox.push_back(Output::Transmit(packet));
        Ok(())
    }

    /// Closes the session with the orderly close packet (0x1B); queues it and
    /// [`Event::Closed`].
    pub fn close(&mut self, now: u64) -> Result<(), Error> {
        let session = self
            .session_mut()
            .ok_or(Error::Misuse(Misuse::NotEstablished))?;
        let packet = session.close(now)?;
        self.outbox.push_back(Output::Transmit(packet));
        self.queue_closed(ErrorCode::DisconnectRequest.as_u8(), false);
        Ok(())
    }

    /// The data phase of an open session, for a [`Batch`](crate::batch::Batch) turn at `now`
    /// (it counts as activity for the idle timer). What the batch changes in the session (a
    /// generation confirmed by the first packet after a commit) surfaces in
    /// [`poll_output`](Self::poll_output).
    pub fn batch_session(&mut self, now: u64) -> Option<&mut crate::batch::DataSession> {
        match &mut self.state {
            State::Established(s) if s.is_open() => {
                self.last_activity = now;
                Some(s.data_mut())
            }
            _ => None,
        }
    }

    /// The session, once established (it stays readable after it ends, e.g. for its keys).
    pub fn session(&self) -> Option<&Session> {
        match &self.state {
            State::Established(s) => Some(s),
            _ => None,
        }
    }

    /// The session, mutably (its [`data_mut`](Session::data_mut) is what a batch seals and
    /// opens).
    pub fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.state {
            State::Established(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the session is established and open.
    pub fn is_established(&self) -> bool {
        self.session().is_some_and(Session::is_open)
    }

    /// Whether the connection has ended (handshake failure, close, session failure,
    /// timeout, end of stream).
    pub fn is_closed(&self) -> bool {
        match &self.state {
            State::Failed => true,
            State::Established(s) => !s.is_open(),
            _ => false,
        }
    }

    /// The key id of the peer's remote key, once known (a client knows it from the start;
    /// a server after the connect request).
    pub fn peer_keyid(&self) -> Option<&[u8; crate::peer_key::KEYID_SIZE]> {
        self.keys().map(|k| k.remote.keyid())
    }

    /// On a server: the key id (of this server's key) that the peer's connect request
    /// named, whether or not the listener knew it: for the logs of a refusal. Untrusted.
    pub fn requested_keyid(&self) -> Option<&[u8; crate::peer_key::KEYID_SIZE]> {
        self.requested.as_ref()
    }

    /// The record of the pre-shared secrets this connection's handshake started from (a
    /// client's: the record it connected with; a server's: its listener's record of the
    /// peer when the connect request arrived). A store that several connections (or
    /// several servers) share changes a record only if it still holds this one: two
    /// handshakes from the same record cannot both commit.
    pub fn base_record(&self) -> Option<&Generations> {
        self.base.as_ref()
    }

    /// The keys in use, once known.
    pub fn keys(&self) -> Option<&PeerKeys> {
        match &self.state {
            State::ClientConnect(s) => Some(s.keys()),
            State::ClientExchange(s) => Some(s.keys()),
            State::ClientEstablish(s) => Some(s.keys()),
            State::ServerExchange(s) => Some(s.keys()),
            State::ServerEstablish(s) => Some(s.keys()),
            State::Established(s) => Some(s.keys()),
            State::ServerConnect | State::Failed => None,
        }
    }

    /// The largest message length the next packet may declare: the exact handshake size
    /// (up to 1.4 MB with McEliece) or 0x10000.
    pub fn max_msglen(&self) -> u32 {
        let n = match &self.state {
            State::ClientConnect(s) => s.expected_msglen(),
            State::ClientExchange(s) => s.expected_msglen(),
            State::ClientEstablish(s) => s.expected_msglen(),
            State::ServerConnect => {
                server::AwaitConnectRequest::new(Settings::default()).max_msglen()
            }
            State::ServerExchange(s) => s.expected_msglen(),
            State::ServerEstablish(s) => s.expected_msglen(),
            State::Established(_) => MAX_MESSAGE as usize,
            // Still frame the peer's parting error packet.
            State::Failed => packet::SEALED_ERROR_MSGLEN as usize,
        };
        msglen(n.max(packet::SEALED_ERROR_MSGLEN as usize))
    }

    fn queue_secrets(&mut self, change: SecretsChange, record: Generations) {
        let event = Output::Event(Event::Secrets(SecretsUpdate { change, record }));
        self.note(Some(&event));
        self.outbox.push_back(event);
    }

    /// Keeps the listener's record of a server connection's peer current.
    fn note(&self, out: Option<&Output>) {
        if let (Some(listener), Some(Output::Event(Event::Secrets(u)))) = (&self.listener, out)
            && let Some(keys) = self.keys()
        {
            listener.set_secrets(keys.local.keyid(), u.record.clone());
        }
    }

    fn queue_closed(&mut self, code: u8, by_peer: bool) {
        if !self.closed {
            self.closed = true;
            self.outbox
                .push_back(Output::Event(Event::Closed { code, by_peer }));
        }
    }

    fn handshake_failed(&mut self, error: Error, now: u64) -> Error {
        self.state = State::Failed;
        if let Some(reply) = error_reply(&error, now) {
            self.outbox.push_back(Output::Transmit(reply.to_vec()));
        }
        match &error {
            Error::PeerReported { code } => self.queue_closed(*code, true),
            e => self.queue_closed(e.wire_code().as_u8(), false),
        }
        error
    }

    fn drain_session(&mut self) {
        if let State::Established(session) = &mut self.state {
            let mut outs = Vec::new();
            while let Some(o) = session.poll_output() {
                outs.push(o);
            }
            for o in outs {
                self.note(Some(&o));
                if let Output::Event(Event::Closed { .. }) = o {
                    // The session reports the peer's close; the connection reports it once.
                    self.closed = true;
                }
                self.outbox.push_back(o);
            }
        }
    }

    /// Moves the session's outputs over; on a failure the peer caused, queues the encrypted
    /// error packet with its code.
    fn after_session(&mut self, r: Result<(), Error>, now: u64) -> Result<(), Error> {
        self.drain_session();
        let State::Established(session) = &mut self.state else {
            return r;
        };
        if let Err(e) = &r {
            if let Some(p) = session.reply_for(e, now) {
                self.outbox.push_back(Output::Transmit(p));
            }
            session.abort();
            let (code, by_peer) = match e {
                Error::PeerReported { code } => (*code, true),
                e => (e.wire_code().as_u8(), false),
            };
            self.queue_closed(code, by_peer);
        }
        r
    }
}

impl Listener {
    /// A server connection for a transport just accepted; its first packet is checked
    /// against this listener's peers and gate. `now` starts its handshake deadline.
    ///
    /// (Implemented here, in the connection layer: the listener sits below the connections
    /// it makes.)
    pub fn accept(&self, now: u64) -> Connection {
        self.count_accepted();
        Connection::accepted(self.clone(), now)
    }
}

// ---------------------------------------------------------------------------------------
// Callback adapter

/// The integration guide's callback API over a [`Connection`] (see the module table).
pub struct Tunnel<S, R, E = fn(&Event)>
where
    S: FnMut(&[u8]),
    R: FnMut(&[u8]),
    E: FnMut(&Event),
{
    conn: Connection,
    send: S,
    receive: R,
    event: E,
}

fn ignore_event(_: &Event) {}

impl<S: FnMut(&[u8]), R: FnMut(&[u8])> Tunnel<S, R> {
    /// Connects as a client: `send` is called at once with the connect request.
    pub fn connect(
        keys: PeerKeys,
        settings: Settings,
        now: u64,
        rng: &mut dyn Entropy,
        send: S,
        receive: R,
    ) -> Result<Tunnel<S, R>, Error> {
        let conn = Connection::connect(keys, settings, now, rng)?;
        Ok(Tunnel::over(conn, send, receive))
    }

    /// Listens as a server for the one peer of `keys` (a listener of its own; a server
    /// that accepts again and again makes one [`Listener`] and uses
    /// [`accept`](Self::accept), so replays across connections are caught).
    pub fn listen(
        keys: PeerKeys,
        settings: Settings,
        now: u64,
        send: S,
        receive: R,
    ) -> Tunnel<S, R> {
        let listener = Listener::new(settings);
        listener.add(keys);
        Tunnel::accept(&listener, now, send, receive)
    }

    /// A server connection from `listener`.
    pub fn accept(listener: &Listener, now: u64, send: S, receive: R) -> Tunnel<S, R> {
        Tunnel::over(listener.accept(now), send, receive)
    }

    fn over(conn: Connection, send: S, receive: R) -> Tunnel<S, R> {
        let mut t = Tunnel {
            conn,
            send,
            receive,
            event: ignore_event as fn(&Event),
        };
        t.flush();
        t
    }
}

impl<S: FnMut(&[u8]), R: FnMut(&[u8]), E: FnMut(&Event)> Tunnel<S, R, E> {
    /// Adds a callback that sees every event (store [`Event::Secrets`] there) before any
    /// later packet is sent.
    pub fn on_event<F: FnMut(&Event)>(self, event: F) -> Tunnel<S, R, F> {
        Tunnel {
            conn: self.conn,
            send: self.send,
            receive: self.receive,
            event,
        }
    }

    /// Feeds bytes received from the transport ([`Connection::handle_bytes`]); on an error
    /// the reply has been sent through `send` already.
    pub fn feed(&mut self, bytes: &[u8], now: u64, rng: &mut dyn Entropy) -> Result<(), Error> {
        self.then_flush(|conn| conn.handle_bytes(bytes, now, rng))
    }

    /// Runs `f` on the connection, then hands out what it queued.
    fn then_flush<T>(&mut self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let r = f(&mut self.conn);
        self.flush();
        r
    }

    fn flush(&mut self) {
        while let Some(o) = self.conn.poll_output() {
            match o {
                Output::Transmit(p) => (self.send)(&p),
                Output::Event(Event::Message(m)) => (self.receive)(&m),
                Output::Event(e) => (self.event)(&e),
            }
        }
    }

    /// The transport reached its end ([`Connection::handle_end_of_stream`]).
    pub fn end_of_stream(&mut self, now: u64, rng: &mut dyn Entropy) -> Result<(), Error> {
        self.then_flush(|conn| conn.handle_end_of_stream(now, rng))
    }

    /// Acts on the deadlines ([`Connection::handle_timeout`]).
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), Error> {
        self.then_flush(|conn| conn.handle_timeout(now))
    }

    /// Encrypts and sends an application message.
    pub fn send(&mut self, message: &[u8], now: u64) -> Result<(), Error> {
        self.then_flush(|conn| conn.send(message, now))
    }

    /// Sends an asymmetric ratchet request.
    pub fn send_ratchet_request(&mut self, now: u64, rng: &mut dyn Entropy) -> Result<(), Error> {
        self.then_flush(|conn| conn.start_ratchet(now, rng))
    }

    /// Sends the orderly close.
    pub fn close(&mut self, now: u64) -> Result<(), Error> {
        self.then_flush(|conn| conn.close(now))
    }

    /// The peer keys with the pre-shared secrets as they stand, once established.
    pub fn keys(&self) -> Option<&PeerKeys> {
        self.conn.session().map(Session::keys)
    }

    /// The wrapped connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}
