//! One DKTP connection behind a single sans-IO API ([`Connection`]), and a thin callback
//! adapter over it ([`Tunnel`]) shaped like the reference's integration API.
//!
//! [`Connection`] wraps the handshake states and then the [`Session`]: feed it whole
//! received packets with [`Connection::handle_packet`] (a server's first packet with
//! [`Connection::handle_connect_request`]), then drain [`Connection::poll_output`] in order:
//! packets to write and [`Event`]s. On a failure the connection queues the error packet the
//! reference would send (a plaintext one during the handshake, an encrypted one carrying
//! the failure's code in a session) and ends.
//!
//! [`Tunnel`] is the integration guide's callback style (§2.2) without sockets: it takes a
//! `send: FnMut(&[u8])` that must write one packet whole and a `receive: FnMut(&[u8])` that
//! gets each decrypted message, and is fed raw bytes from the transport as they arrive
//! ([`Tunnel::feed`]), framing packets itself. An optional event callback sees every
//! [`Event`] before any packet queued after it is sent, which is where advanced pre-shared
//! secrets are persisted.
//!
//! | integration guide (§2.2, §3) | dktp |
//! |---|---|
//! | `dktp_generate_keypair(enckey, deckey, keyid)` | [`peer_key::generate`](crate::peer_key::generate)`(config, keyid, now, rng)` then [`peer_key::link`](crate::peer_key::link) |
//! | `dktp_client_connect_ipv4/ipv6(lpk, rpk, address, port, send_func, receive_callback)` | [`Tunnel::connect`]`(keys, settings, now, rng, send, receive)`; the caller opens the socket and feeds it with [`Tunnel::feed`] |
//! | `dktp_client_listen_ipv4/ipv6(lpk, rpk, send_func, receive_callback)` | [`Tunnel::listen`]`(keys, settings, send, receive)`; many peers: [`Connection::listen`] + a [`PeerLookup`] |
//! | `dktp_send_asymmetric_ratchet_request(cns)` | [`Tunnel::send_ratchet_request`]`(now, rng)` / [`Session::start_ratchet`] |
//! | `dktp_packet_encrypt(cns, packetout, message, msglen)` | [`Tunnel::send`]`(message, now)` / [`Session::seal`], [`Session::seal_into`] |
//! | `dktp_packet_decrypt(cns, message, msglen, packetin)` | [`Tunnel::feed`] (calls `receive`) / [`Session::open_in_place`] |
//! | `dktp_connection_close(cns, err, notify)` | [`Tunnel::close`]`(now)` / [`Session::close`], [`Session::close_with`] |
//! | `dktp_local_peer_key_serialize / deserialize` | [`LocalPeerKey::to_bytes`](crate::peer_key::LocalPeerKey::to_bytes) / [`LocalPeerKey::from_bytes`](crate::peer_key::LocalPeerKey::from_bytes) (remote: [`RemotePeerKey`](crate::peer_key::RemotePeerKey)) |
//! | `dktp_local_peer_key_erase` | [`LocalPeerKey::erase`](crate::peer_key::LocalPeerKey::erase) |
//! | `send_func(cns)` | the `send` closure: write the packet to the transport |
//! | `receive_callback(cns, data, len)` | the `receive` closure: one decrypted message |
//! | `DKTP_DOMAIN_IDENTITY_STRING` | [`Settings::with_ratchet_domain`] |
//! | (pss stored after the session) | the event callback's [`Event::PssUpdated`]; [`Tunnel::keys`] |

use std::collections::VecDeque;

use crate::error::{Error, Misuse};
use crate::kex::{
    self, PeerKeys, PeerLookup, ReplayGate, Settings, SinglePeer, client, error_reply, server,
};
use crate::packet::{self, Frame, MAX_MESSAGE};
use crate::pq::Entropy;
use crate::session::{Event, Output, Session};

enum State {
    ClientConnect(client::AwaitConnectResponse),
    ClientExchange(client::AwaitExchangeResponse),
    ClientEstablish(client::AwaitEstablishResponse),
    ServerConnect(server::AwaitConnectRequest),
    ServerExchange(server::AwaitExchangeRequest),
    ServerEstablish(server::AwaitEstablishRequest),
    Established(Session),
    /// The handshake failed.
    Failed,
}

/// A connection: the handshake, then the session.
pub struct Connection {
    state: State,
    outbox: VecDeque<Output>,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = match &self.state {
            State::ClientConnect(_) => "client: awaiting connect response",
            State::ClientExchange(_) => "client: awaiting exchange response",
            State::ClientEstablish(_) => "client: awaiting establish response",
            State::ServerConnect(_) => "server: awaiting connect request",
            State::ServerExchange(_) => "server: awaiting exchange request",
            State::ServerEstablish(_) => "server: awaiting establish request",
            State::Established(s) if s.is_open() => "established",
            State::Established(_) => "ended",
            State::Failed => "handshake failed",
        };
        f.debug_struct("Connection")
            .field("state", &state)
            .field("queued_outputs", &self.outbox.len())
            .finish()
    }
}

impl Connection {
    /// A client connection: queues the connect request.
    pub fn connect(
        keys: PeerKeys,
        settings: Settings,
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<Connection, Error> {
        let flight = client::start(keys, settings, now, rng)?;
        let mut outbox = VecDeque::new();
        outbox.push_back(Output::Transmit(flight.packet));
        Ok(Connection {
            state: State::ClientConnect(flight.next),
            outbox,
        })
    }

    /// A server connection awaiting its connect request
    /// ([`handle_connect_request`](Self::handle_connect_request)).
    pub fn listen(settings: Settings) -> Connection {
        Connection {
            state: State::ServerConnect(server::AwaitConnectRequest::new(settings)),
            outbox: VecDeque::new(),
        }
    }

    /// Handles a server connection's first packet: the keys come from `keys` by the key id
    /// the client sent, and `gate` (shared by all of the server's handshakes) refuses
    /// replays.
    pub fn handle_connect_request(
        &mut self,
        packet: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
        keys: &mut dyn PeerLookup,
        gate: &mut ReplayGate,
    ) -> Result<(), Error> {
        if !matches!(self.state, State::ServerConnect(_)) {
            return Err(Misuse::WrongState.into());
        }
        let State::ServerConnect(state) = core::mem::replace(&mut self.state, State::Failed) else {
            return Err(Misuse::WrongState.into());
        };
        match state.handle(packet, now, rng, keys, gate) {
            Ok(flight) => {
                self.outbox.push_back(Output::Transmit(flight.packet));
                self.state = State::ServerExchange(flight.next);
                Ok(())
            }
            Err(e) => Err(self.handshake_failed(e, now)),
        }
    }

    /// Handles one whole received packet.
    pub fn handle_packet(
        &mut self,
        packet: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(), Error> {
        if let State::Established(session) = &mut self.state {
            let r = session.handle_packet(packet, now, rng);
            return self.after_session(r, now);
        }
        let r = match core::mem::replace(&mut self.state, State::Failed) {
            State::ClientConnect(s) => s.handle(packet, now, rng).map(|f| {
                self.outbox.push_back(Output::Transmit(f.packet));
                State::ClientExchange(f.next)
            }),
            State::ClientExchange(s) => s.handle(packet, now, rng).map(|c| {
                self.outbox
                    .push_back(Output::Event(Event::PssUpdated(c.pss)));
                self.outbox.push_back(Output::Transmit(c.packet));
                State::ClientEstablish(c.next)
            }),
            State::ClientEstablish(s) => s.handle(packet, now, rng).map(|session| {
                self.outbox.push_back(Output::Event(Event::Established));
                State::Established(session)
            }),
            State::ServerExchange(s) => s.handle(packet, now, rng).map(|f| {
                self.outbox.push_back(Output::Transmit(f.packet));
                State::ServerEstablish(f.next)
            }),
            State::ServerEstablish(s) => s.handle(packet, now, rng).map(|c| {
                self.outbox
                    .push_back(Output::Event(Event::PssUpdated(c.pss)));
                self.outbox.push_back(Output::Transmit(c.packet));
                self.outbox.push_back(Output::Event(Event::Established));
                State::Established(c.next)
            }),
            other @ State::ServerConnect(_) => {
                self.state = other;
                return Err(Misuse::WrongState.into());
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

    /// Ends the connection because of a transport-level problem found outside the engine
    /// (e.g. [`packet::frame`] refused a length), queueing the reply the reference sends.
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
        self.outbox.pop_front()
    }

    /// Seals an application message (queued as a packet to send).
    pub fn send(&mut self, message: &[u8], now: u64) -> Result<(), Error> {
        let session = self
            .session_mut()
            .ok_or(Error::Misuse(Misuse::NotEstablished))?;
        let mut packet = Vec::with_capacity(packet::HEADER_LEN + message.len() + packet::TAG_LEN);
        session.seal(message, now, &mut packet)?;
        self.outbox.push_back(Output::Transmit(packet));
        Ok(())
    }

    /// Starts an asymmetric ratchet of our transmit direction.
    pub fn start_ratchet(&mut self, now: u64, rng: &mut dyn Entropy) -> Result<(), Error> {
        let session = self
            .session_mut()
            .ok_or(Error::Misuse(Misuse::NotEstablished))?;
        let packet = session.start_ratchet(now, rng)?;
        self.outbox.push_back(Output::Transmit(packet));
        Ok(())
    }

    /// Closes the session with the orderly close packet (0x1B).
    pub fn close(&mut self, now: u64) -> Result<(), Error> {
        let session = self
            .session_mut()
            .ok_or(Error::Misuse(Misuse::NotEstablished))?;
        let packet = session.close(now)?;
        self.outbox.push_back(Output::Transmit(packet));
        Ok(())
    }

    /// The session, once established (it stays readable after it ends, e.g. for its keys).
    pub fn session(&self) -> Option<&Session> {
        match &self.state {
            State::Established(s) => Some(s),
            _ => None,
        }
    }

    /// The session, mutably.
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

    /// Whether the connection has ended (handshake failure, close, or session failure).
    pub fn is_closed(&self) -> bool {
        match &self.state {
            State::Failed => true,
            State::Established(s) => !s.is_open(),
            _ => false,
        }
    }

    /// The largest message length the next packet may declare, for
    /// [`packet::frame`]: the exact handshake size (up to 1.4 MB with McEliece) or 0x10000.
    pub fn max_msglen(&self) -> u32 {
        let n = match &self.state {
            State::ClientConnect(s) => s.expected_msglen(),
            State::ClientExchange(s) => s.expected_msglen(),
            State::ClientEstablish(s) => s.expected_msglen(),
            State::ServerConnect(s) => s.max_msglen(),
            State::ServerExchange(s) => s.expected_msglen(),
            State::ServerEstablish(s) => s.expected_msglen(),
            State::Established(_) => MAX_MESSAGE as usize,
            // Still frame the peer's parting error packet.
            State::Failed => packet::SEALED_ERROR_MSGLEN as usize,
        };
        kex::msglen(n.max(packet::SEALED_ERROR_MSGLEN as usize))
    }

    fn handshake_failed(&mut self, error: Error, now: u64) -> Error {
        self.state = State::Failed;
        if let Some(reply) = error_reply(&error, now) {
            self.outbox.push_back(Output::Transmit(reply.to_vec()));
        }
        error
    }

    /// Moves the session's outputs over; on a failure the peer caused, queues the encrypted
    /// error packet with its code.
    fn after_session(&mut self, r: Result<(), Error>, now: u64) -> Result<(), Error> {
        let State::Established(session) = &mut self.state else {
            return r;
        };
        while let Some(o) = session.poll_output() {
            self.outbox.push_back(o);
        }
        if let Err(e) = &r {
            session.abort();
            if !matches!(e, Error::PeerReported { .. } | Error::Misuse(_))
                && let Ok(p) = session.close_with(e.wire_code(), now)
            {
                self.outbox.push_back(Output::Transmit(p));
            }
        }
        r
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
    /// Bytes received but not yet a whole packet.
    inbuf: Vec<u8>,
    /// A single-peer listener's keys and replay memory.
    listener: Option<(SinglePeer, ReplayGate)>,
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
        let mut t = Tunnel {
            conn: Connection::connect(keys, settings, now, rng)?,
            send,
            receive,
            event: ignore_event as fn(&Event),
            inbuf: Vec::new(),
            listener: None,
        };
        t.flush();
        Ok(t)
    }

    /// Listens as a server for the one peer of `keys`.
    pub fn listen(keys: PeerKeys, settings: Settings, send: S, receive: R) -> Tunnel<S, R> {
        Tunnel {
            conn: Connection::listen(settings),
            send,
            receive,
            event: ignore_event as fn(&Event),
            inbuf: Vec::new(),
            listener: Some((SinglePeer(keys), ReplayGate::default())),
        }
    }
}

impl<S: FnMut(&[u8]), R: FnMut(&[u8]), E: FnMut(&Event)> Tunnel<S, R, E> {
    /// Adds a callback that sees every event (persist [`Event::PssUpdated`] there) before
    /// any later packet is sent.
    pub fn on_event<F: FnMut(&Event)>(self, event: F) -> Tunnel<S, R, F> {
        Tunnel {
            conn: self.conn,
            send: self.send,
            receive: self.receive,
            event,
            inbuf: self.inbuf,
            listener: self.listener,
        }
    }

    /// Feeds bytes received from the transport; whole packets are handled as they
    /// complete. A declared length above what the current state accepts is refused before
    /// its bytes are buffered.
    pub fn feed(&mut self, bytes: &[u8], now: u64, rng: &mut dyn Entropy) -> Result<(), Error> {
        if self.conn.is_closed() {
            return Err(Misuse::NotEstablished.into());
        }
        self.inbuf.extend_from_slice(bytes);
        let r = self.drain(now, rng);
        self.flush();
        r
    }

    fn drain(&mut self, now: u64, rng: &mut dyn Entropy) -> Result<(), Error> {
        loop {
            let len = match packet::frame(&self.inbuf, self.conn.max_msglen()) {
                Ok(Frame::Incomplete { .. }) => return Ok(()),
                Ok(Frame::Complete { len, .. }) => len,
                Err(e) => {
                    self.inbuf.clear();
                    return Err(self.conn.fail(e, now));
                }
            };
            let packet: Vec<u8> = self.inbuf.drain(..len.min(self.inbuf.len())).collect();
            match &mut self.listener {
                Some((keys, gate)) if matches!(self.conn.state, State::ServerConnect(_)) => {
                    self.conn
                        .handle_connect_request(&packet, now, rng, keys, gate)?;
                }
                _ => self.conn.handle_packet(&packet, now, rng)?,
            }
            self.flush();
            if self.conn.is_closed() {
                return Ok(());
            }
        }
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

    /// Encrypts and sends an application message.
    pub fn send(&mut self, message: &[u8], now: u64) -> Result<(), Error> {
        let r = self.conn.send(message, now);
        self.flush();
        r
    }

    /// Sends an asymmetric ratchet request.
    pub fn send_ratchet_request(&mut self, now: u64, rng: &mut dyn Entropy) -> Result<(), Error> {
        let r = self.conn.start_ratchet(now, rng);
        self.flush();
        r
    }

    /// Sends the orderly close.
    pub fn close(&mut self, now: u64) -> Result<(), Error> {
        let r = self.conn.close(now);
        self.flush();
        r
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
