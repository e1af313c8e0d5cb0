//! Linked key pairs, a deterministic random source and helpers to move packets.

use dktp::config::Config;
use dktp::connection::Connection;
use dktp::keccak::Shake256;
use dktp::kex::PeerKeys;
use dktp::peer_key;
use dktp::pq::{Entropy, PqError};
use dktp::session::{Event, Output};

pub const NOW: u64 = 1_767_225_600;

/// SHAKE-256(label) as a random source.
pub struct Rng(Shake256);

impl Rng {
    pub fn new(label: &str) -> Rng {
        let mut xof = Shake256::new();
        xof.update(label.as_bytes());
        Rng(xof)
    }
}

impl Entropy for Rng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        self.0.squeeze(dest);
        Ok(())
    }
}

/// Linked keys: (client's, server's), with key ids from `tag`, made at [`NOW`].
pub fn pair(config: Config, tag: u8) -> (PeerKeys, PeerKeys) {
    pair_at(config, tag, NOW)
}

/// Linked keys made at `born` (their expiry is a year later).
pub fn pair_at(config: Config, tag: u8, born: u64) -> (PeerKeys, PeerKeys) {
    let mut rng = Rng::new(&format!("pair {config} {tag} {born}"));
    let (mut cl, cr) = peer_key::generate(config, [0xc0 ^ tag; 16], born, &mut rng).unwrap();
    let (mut sl, sr) = peer_key::generate(config, [0x50 ^ tag; 16], born, &mut rng).unwrap();
    peer_key::link(&mut cl, &sr);
    peer_key::link(&mut sl, &cr);
    (
        PeerKeys {
            local: cl,
            remote: sr,
        },
        PeerKeys {
            local: sl,
            remote: cr,
        },
    )
}

/// Everything a connection queued: packets and events.
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

/// Moves packets both ways until both connections are quiet; returns each side's events.
pub fn pump(
    c: &mut Connection,
    s: &mut Connection,
    crng: &mut dyn Entropy,
    srng: &mut dyn Entropy,
) -> (Vec<Event>, Vec<Event>) {
    let (mut ce, mut se) = (Vec::new(), Vec::new());
    loop {
        let (to_s, e) = drain(c);
        ce.extend(e);
        for p in &to_s {
            let _ = s.handle_bytes(p, NOW, srng);
        }
        let (to_c, e) = drain(s);
        se.extend(e);
        for p in &to_c {
            let _ = c.handle_bytes(p, NOW, crng);
        }
        if to_s.is_empty() && to_c.is_empty() {
            let (_, e) = drain(c);
            ce.extend(e);
            let (_, e) = drain(s);
            se.extend(e);
            return (ce, se);
        }
    }
}
