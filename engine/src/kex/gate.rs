//! The server's handshake DoS gate: verified connect requests are remembered for as long
//! as their time stamp keeps them acceptable, so a replayed one is refused before the
//! server generates a KEM key or signs anything.
//!
//! A connect request passes the time check while `|now − utctime| <= 60` (FACTS §4), so an
//! entry can be dropped once `now > utctime + 60`. Memory is bounded by the capacity; when
//! every slot holds a live entry, further handshakes are refused with 0x0B (hosts
//! exceeded) until entries age out: a rate limit of `capacity` handshakes per two minutes.
//!
//! The gate is keyed by `hm1`, the signed hash, which covers the packet's header (time and
//! sequence), key id and configuration. ML-DSA signing is deterministic, so a legitimate
//! client that reconnects within the same second sends an identical request and is refused
//! once; it succeeds a second later.

use std::collections::{HashMap, VecDeque};

use crate::error::{Error, PeerMisbehaved};
use crate::packet::TIME_WINDOW;
use crate::transcript::Hash;

/// Default number of remembered connect requests.
pub const DEFAULT_CAPACITY: usize = 16_384;

/// Remembers verified connect-request hashes for the time window (time is an argument).
#[derive(Debug, Clone)]
pub struct ReplayGate {
    /// hm1 → last second at which a replay would still pass the time check.
    live: HashMap<Hash, u64>,
    /// Insertion order, for cheap expiry from the front.
    order: VecDeque<(Hash, u64)>,
    capacity: usize,
}

impl Default for ReplayGate {
    fn default() -> ReplayGate {
        ReplayGate::with_capacity(DEFAULT_CAPACITY)
    }
}

impl ReplayGate {
    /// A gate remembering at most `capacity` requests (at least one).
    pub fn with_capacity(capacity: usize) -> ReplayGate {
        ReplayGate {
            live: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Entries currently remembered.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Refuses a request whose hash was already accepted and can still be replayed.
    pub fn check(&mut self, hm1: &Hash, now: u64) -> Result<(), Error> {
        self.expire(now);
        match self.live.get(hm1) {
            Some(&until) if now <= until => Err(PeerMisbehaved::Replayed.into()),
            _ => Ok(()),
        }
    }

    /// Remembers a verified request sent at `utctime`; refuses (0x0B) when full of live
    /// entries.
    pub fn record(&mut self, hm1: &Hash, utctime: u64, now: u64) -> Result<(), Error> {
        self.expire(now);
        if self.live.len() >= self.capacity {
            // The front may be younger than entries behind it when clocks jump; sweep all.
            self.order.retain(|(_, until)| now <= *until);
            self.live.retain(|_, until| now <= *until);
            if self.live.len() >= self.capacity {
                return Err(Error::Overloaded);
            }
        }
        let until = utctime.saturating_add(TIME_WINDOW);
        self.live.insert(*hm1, until);
        self.order.push_back((*hm1, until));
        Ok(())
    }

    fn expire(&mut self, now: u64) {
        while let Some((hash, until)) = self.order.front() {
            if now <= *until {
                break;
            }
            if self.live.get(hash) == Some(until) {
                self.live.remove(hash);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const T: u64 = 1_767_225_600;

    #[test]
    fn replay_refused_until_window_passes() {
        let mut g = ReplayGate::default();
        let h = [7u8; 64];
        assert!(g.check(&h, T).is_ok());
        g.record(&h, T, T).unwrap();
        let e = g.check(&h, T + 60).unwrap_err();
        assert_eq!(e.wire_code(), ErrorCode::PacketUnsequenced);
        assert!(g.check(&h, T + 61).is_ok());
        assert!(g.is_empty());
    }

    #[test]
    fn bounded_and_refuses_when_full() {
        let mut g = ReplayGate::with_capacity(2);
        g.record(&[1; 64], T, T).unwrap();
        g.record(&[2; 64], T + 1, T + 1).unwrap();
        assert_eq!(g.record(&[3; 64], T + 2, T + 2), Err(Error::Overloaded));
        assert_eq!(g.len(), 2);
        // The first entry ages out at T + 61.
        g.record(&[3; 64], T + 61, T + 61).unwrap();
        assert_eq!(g.len(), 2);
        assert!(g.check(&[1; 64], T + 61).is_ok());
        assert!(g.check(&[2; 64], T + 61).is_err());
    }

    #[test]
    fn clock_jumps_keep_memory_bounded() {
        let mut g = ReplayGate::with_capacity(3);
        g.record(&[1; 64], T + 100, T + 100).unwrap();
        g.record(&[2; 64], T, T).unwrap();
        g.record(&[3; 64], T, T).unwrap();
        // Full; at T + 70 entries 2 and 3 are dead although 1 is in front.
        g.record(&[4; 64], T + 70, T + 70).unwrap();
        assert_eq!(g.len(), 2);
        assert!(g.order.len() <= 3);
    }
}
