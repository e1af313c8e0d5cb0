//! Where the handshake hands over to the session (snow's `into_transport_mode`): the last
//! step of each side, whose result is a [`Session`].
//!
//! The handshake layer ([`crate::kex`]) sits below the session and never names it: its last
//! steps check everything and hand over an [`Established`]. Their public `handle` methods
//! are implemented here, in the layer above, so the session depends on the handshake and
//! never the other way round.

use crate::error::Error;
use crate::kex::{Commit, Established, Role, client, server};
use crate::pq::Entropy;

use super::Session;

impl From<Established> for Session {
    fn from(e: Established) -> Session {
        let current = e.record.latest().number();
        let mut session = Session::new(e.role, e.keys, e.settings, e.tx, e.rx);
        // A server's advanced generation is pending until the client's first packet.
        session.set_generations(e.record, current, e.role == Role::Server);
        session
    }
}

impl client::AwaitEstablishResponse {
    /// Opens the establish response and checks it carries `sch5` (0x07 if it does not
    /// authenticate, 0x08 if it carries another hash); the session is established.
    pub fn handle(self, packet: &[u8], now: u64, _rng: &mut dyn Entropy) -> Result<Session, Error> {
        self.establish(packet, now).map(Session::from)
    }
}

impl server::AwaitEstablishRequest {
    /// Opens the establish request with each candidate generation's receive channel (the
    /// pending one first) and checks it carries `sch4` (0x07 if no candidate authenticates
    /// it, 0x08 if it carries another hash), then returns the established session and the
    /// establish response (0x08, sequence 2): `RCS_tx(sch5)`. Persist [`Commit::record`]
    /// before sending it: the chosen candidate confirmed, its advanced secrets pending.
    pub fn handle(
        self,
        packet: &[u8],
        now: u64,
        _rng: &mut dyn Entropy,
    ) -> Result<Commit<Session>, Error> {
        self.establish(packet, now)
            .map(|commit| commit.map(Session::from))
    }
}
