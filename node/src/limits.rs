//! A concentrator's limits and defences, checked cheapest first:
//!
//! 1. at accept, before a byte is read: the source address's handshake rate (a token
//!    bucket per address), then `max_handshakes` (handshakes in progress) and
//!    `max_sessions`;
//! 2. in the engine's listener, after the connect request passed its cheap checks (key id
//!    known, configuration, expiry, header, replay) and before the client's signature is
//!    verified: the server's global handshake rate ([`Limits::admit`], refused with 0x0B),
//!    so that it is spent on known peers only;
//! 3. then the signature, and only then key generation and signing, on the handshake pool
//!    (below the established sessions' priority: [`crate::hspool`]).
//!
//! Token buckets: `governor` (GCRA). A bucket allows its rate per second with a burst of
//! the same size.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Refusal;

/// The limits as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitSettings {
    /// Established sessions at most.
    pub max_sessions: usize,
    /// Handshakes in progress at most.
    pub max_handshakes: usize,
    /// Handshakes a second (and burst) per source address; `None`: no limit.
    pub source_rate: Option<NonZeroU32>,
    /// Handshakes a second (and burst) for the whole server; `None`: no limit.
    pub handshake_rate: Option<NonZeroU32>,
}

impl Default for LimitSettings {
    fn default() -> LimitSettings {
        LimitSettings {
            // The reference sizes its connection table for 50,000.
            max_sessions: 50_000,
            max_handshakes: 1024,
            // A device reconnects a few times a minute at worst; a site behind one NAT
            // address still gets 20 handshakes a second.
            source_rate: NonZeroU32::new(20),
            handshake_rate: None,
        }
    }
}

/// The limits at run time. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    sessions: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    per_source: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    global: Option<Arc<DefaultDirectRateLimiter>>,
}

/// A connection's place: a handshake slot until established, and a session slot for as
/// long as it lives (both come back on drop).
pub struct Slot {
    handshake: Option<OwnedSemaphorePermit>,
    _session: OwnedSemaphorePermit,
}

impl Slot {
    /// The handshake is over: its slot is free for the next.
    pub fn handshake_done(&mut self) {
        self.handshake = None;
    }
}

impl Limits {
    /// Limits from settings.
    pub fn new(s: &LimitSettings) -> Limits {
        Limits {
            sessions: Arc::new(Semaphore::new(s.max_sessions.max(1))),
            handshakes: Arc::new(Semaphore::new(s.max_handshakes.max(1))),
            per_source: s
                .source_rate
                .map(|r| Arc::new(RateLimiter::keyed(Quota::per_second(r)))),
            global: s
                .handshake_rate
                .map(|r| Arc::new(RateLimiter::direct(Quota::per_second(r)))),
        }
    }

    /// At accept: the source's rate, then a handshake slot and a session slot (a session
    /// is reserved for the handshake, so a full server refuses before any work).
    pub fn accept(&self, source: IpAddr) -> Result<Slot, Refusal> {
        if let Some(l) = &self.per_source
            && l.check_key(&source).is_err()
        {
            return Err(Refusal::SourceRate);
        }
        let handshake = self
            .handshakes
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::MaxHandshakes)?;
        let session = self
            .sessions
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::MaxSessions)?;
        Ok(Slot {
            handshake: Some(handshake),
            _session: session,
        })
    }

    /// The global handshake rate, asked by the listener for a known peer's request.
    pub fn admit(&self) -> bool {
        self.global.as_ref().is_none_or(|l| l.check().is_ok())
    }

    /// Forgets sources idle for a while (call now and then: the table of sources is what an
    /// attacker with many addresses could grow).
    pub fn tidy(&self) {
        if let Some(l) = &self.per_source {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// How often to [`tidy`](Self::tidy).
    pub const TIDY_EVERY: Duration = Duration::from_secs(10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_limited_apart_and_slots_come_back() {
        let l = Limits::new(&LimitSettings {
            max_sessions: 3,
            max_handshakes: 2,
            source_rate: NonZeroU32::new(2),
            handshake_rate: NonZeroU32::new(1),
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let mut s1 = l.accept(a).expect("first");
        let s2 = l.accept(a).expect("burst of two");
        // The source's bucket is empty; another source is not.
        assert_eq!(l.accept(a).err(), Some(Refusal::SourceRate));
        // Two handshakes in progress: the third waits for a slot (a refused attempt still
        // spends its source's token).
        assert_eq!(l.accept(b).err(), Some(Refusal::MaxHandshakes));
        s1.handshake_done();
        let s3 = l.accept(b).expect("a handshake slot came back");
        drop(s2);
        // Sessions: s1 and s3 hold two of three.
        let s4 = l.accept([10, 0, 0, 4].into()).expect("third session");
        assert_eq!(
            l.accept([10, 0, 0, 3].into()).err(),
            Some(Refusal::MaxHandshakes)
        );
        drop((s3, s4));
        // The global rate admits one a second.
        assert!(l.admit());
        assert!(!l.admit());
        l.tidy();
    }
}
