//! Shared setup for the fuzz targets: one honest default-configuration handshake, computed
//! once, whose intermediate states the targets clone and feed with fuzzed packets.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use dktp::config::Config;
use dktp::keccak::Shake256;
use dktp::kex::{EphemeralKeys, PeerKeys, ReplayGate, Settings, SinglePeer, client, server};
use dktp::packet::{HEADER_LEN, Header};
use dktp::peer_key;
use dktp::pq::{Entropy, PqError};
use dktp::session::Session;

/// The clock of the honest run.
pub const NOW: u64 = 1_767_225_600;

/// A deterministic random source (SHAKE-256 of a label).
#[derive(Clone)]
pub struct Rng(Shake256);

impl Rng {
    /// The stream for `label`.
    pub fn new(label: &str) -> Rng {
        let mut x = Shake256::new();
        x.update(label.as_bytes());
        Rng(x)
    }
}

impl Entropy for Rng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        self.0.squeeze(dest);
        Ok(())
    }
}

/// Settings whose keys come from the supplied random source.
pub fn settings() -> Settings {
    Settings::default().with_ephemeral_keys(EphemeralKeys::FromRng)
}

/// The honest run: its packets and the states awaiting each.
pub struct Honest {
    /// The server's keys.
    pub server_keys: PeerKeys,
    /// The six handshake packets.
    pub packets: Vec<Vec<u8>>,
    /// Client awaiting message 2.
    pub c1: client::AwaitConnectResponse,
    /// Client awaiting message 4.
    pub c2: client::AwaitExchangeResponse,
    /// Server awaiting message 3.
    pub s1: server::AwaitExchangeRequest,
    /// The server's random source after message 2.
    pub srng1: Rng,
}

/// The honest run, computed once.
#[allow(clippy::unwrap_used)]
pub fn honest() -> &'static Honest {
    static H: OnceLock<Honest> = OnceLock::new();
    H.get_or_init(|| {
        let mut rng = Rng::new("keys");
        let c = Config::DEFAULT;
        let (mut cl, cr) = peer_key::generate(c, [0xc1; 16], NOW, &mut rng).unwrap();
        let (mut sl, sr) = peer_key::generate(c, [0x5e; 16], NOW, &mut rng).unwrap();
        peer_key::link(&mut cl, &sr);
        peer_key::link(&mut sl, &cr);
        let ck = PeerKeys {
            local: cl,
            remote: sr,
        };
        let sk = PeerKeys {
            local: sl,
            remote: cr,
        };
        let (mut crng, mut srng) = (Rng::new("c"), Rng::new("s"));
        let c1 = client::start(ck, settings(), NOW, &mut crng).unwrap();
        let s1 = server::AwaitConnectRequest::new(settings())
            .handle(
                &c1.packet,
                NOW,
                &mut srng,
                &mut SinglePeer(sk.clone()),
                &mut ReplayGate::default(),
            )
            .unwrap();
        let c2 = c1.next.clone().handle(&s1.packet, NOW, &mut crng).unwrap();
        let srng1 = srng.clone();
        let s2 = s1.next.clone().handle(&c2.packet, NOW, &mut srng).unwrap();
        let c3 = c2.next.clone().handle(&s2.packet, NOW, &mut crng).unwrap();
        let s3 = s2.next.handle(&c3.packet, NOW, &mut srng).unwrap();
        Honest {
            server_keys: sk,
            packets: vec![
                c1.packet, s1.packet, c2.packet, s2.packet, c3.packet, s3.packet,
            ],
            c1: c1.next,
            c2: c2.next,
            s1: s1.next,
            srng1,
        }
    })
}

/// A fresh established (client, server) pair, rebuilt from the honest run's states.
#[allow(clippy::unwrap_used)]
pub fn sessions() -> (Session, Session) {
    let h = honest();
    let s2 =
        h.s1.clone()
            .handle(&h.packets[2], NOW, &mut h.srng1.clone())
            .unwrap();
    let c3 =
        h.c2.clone()
            .handle(&s2.packet, NOW, &mut Rng::new("c3"))
            .unwrap();
    let s3 = s2
        .next
        .handle(&c3.packet, NOW, &mut Rng::new("s3"))
        .unwrap();
    let client = c3
        .next
        .handle(&s3.packet, NOW, &mut Rng::new("c4"))
        .unwrap();
    (client, s3.next)
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
