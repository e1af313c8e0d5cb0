//! Shared setup for the fuzz targets: the engine's honest default-configuration handshake
//! ([`dktp::testing::honest`]), whose intermediate states the targets clone and feed with
//! fuzzed packets, and the fuzzed packet itself.

use arbitrary::Arbitrary;
use dktp::packet::{HEADER_LEN, Header};

pub use dktp::testing::{NOW, TestRng, honest, settings};

/// Feeds the honest packet of handshake message `step` with the fuzzer's edits, `skew`
/// seconds off the honest clock, to the state awaiting it (`Honest::feed`); any outcome but
/// a panic is fine.
pub fn feed_handshake(step: usize, packet: &Packet, skew: i8) {
    let h = honest();
    let now = NOW.wrapping_add_signed(i64::from(skew));
    let bytes = packet.bytes(&h.packets[step]);
    let _ = h.feed(step, &bytes, now, &mut TestRng::new("fuzz"));
}

/// A fuzzed packet: raw bytes, or an honest one with edits.
#[derive(Debug, Arbitrary)]
pub enum Packet {
    /// Bytes as given.
    Raw(Vec<u8>),
    /// The honest packet with byte edits and header rewrites.
    Edited {
        /// (offset, xor) pairs.
        flips: Vec<(u16, u8)>,
        /// Keep only this many bytes.
        truncate: Option<u16>,
        /// New header fields.
        flag: Option<u8>,
        /// New msglen.
        msglen: Option<u32>,
        /// New sequence.
        sequence: Option<u64>,
        /// Added to the time.
        skew: Option<i16>,
    },
}

impl Packet {
    /// The bytes, starting from `honest` for edits.
    pub fn bytes(&self, honest: &[u8]) -> Vec<u8> {
        match self {
            Packet::Raw(b) => b.clone(),
            Packet::Edited {
                flips,
                truncate,
                flag,
                msglen,
                sequence,
                skew,
            } => {
                let mut p = honest.to_vec();
                if let Ok(mut h) = Header::decode(&p) {
                    h.flag = flag.unwrap_or(h.flag);
                    h.msglen = msglen.unwrap_or(h.msglen);
                    h.sequence = sequence.unwrap_or(h.sequence);
                    h.utctime = h.utctime.wrapping_add_signed(i64::from(skew.unwrap_or(0)));
                    if let Some(head) = p.get_mut(..HEADER_LEN) {
                        head.copy_from_slice(&h.encode());
                    }
                }
                for &(at, x) in flips {
                    let n = p.len().max(1);
                    if let Some(b) = p.get_mut(usize::from(at) % n) {
                        *b ^= x;
                    }
                }
                if let Some(t) = truncate {
                    p.truncate(usize::from(*t));
                }
                p
            }
        }
    }
}
