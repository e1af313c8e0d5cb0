//! The batch engine equals N sequential scalar runs.
//!
//! Random mixes of 1–300 sessions, message sizes 0..=65536 (mostly small, some large),
//! random clocks and sequence numbers, every available backend, 1–3 threads and lane widths
//! 1/4/8, with failing opens in the middle (tampered bytes, wrong sequence, stale time,
//! truncated, wrong length, too short), peer closes (sealed 0x12) and control packets
//! (0x0E, which defer the rest of that session). Three paths run the same jobs:
//!
//! - the batch ([`Batch`]), jobs interleaved across sessions as generated;
//! - [`DataSession::seal`] / [`DataSession::open`] one job at a time;
//! - `Model`, FACTS §7 written out here on the bare [`RcsChannel`] and packet functions.
//!
//! Every outcome, every sealed byte, every failing packet's buffer (unchanged), and every
//! session's state after the batch (sequence numbers, status, nonces, counters, and the next
//! packet each way, which exposes the MAC states) must agree.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use dktp::Backend;
use dktp::batch::{Batch, DataSession, MAX_PAYLOAD, Outcome, Received, SessionId, Status};
use dktp::error::{CryptoFailure, Malformed, Misuse};
use dktp::keccak::lanes::LaneBackend;
use dktp::packet::{self, Flag, HEADER_LEN, Header};
use dktp::rcs::Rcs512Channel;
use dktp::{Error, keccak};
use proptest::prelude::*;

/// FACTS §7 on the bare RCS channels: the sequential reference.
struct Model {
    tx: Rcs512Channel,
    rx: Rcs512Channel,
    txseq: u64,
    rxseq: u64,
    status: Status,
}

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Sealed(Vec<u8>),
    Opened(Vec<u8>),
    Control,
    Deferred,
    Failed(Error),
}

impl Model {
    fn seal(&mut self, pt: &[u8], now: u64) -> Result<Vec<u8>, Error> {
        if self.status != Status::Open {
            return Err(Misuse::NotEstablished.into());
        }
        if pt.is_empty() {
            return Err(Misuse::EmptyMessage.into());
        }
        if pt.len() > MAX_PAYLOAD {
            return Err(Misuse::MessageTooLong {
                len: pt.len(),
                max: MAX_PAYLOAD,
            }
            .into());
        }
        let seq = self
            .txseq
            .checked_add(1)
            .ok_or(Error::Misuse(Misuse::SequenceExhausted))?;
        let header = Header::new(Flag::EncryptedMessage, pt.len() as u32 + 64, seq, now).encode();
        let mut out = header.to_vec();
        self.tx.seal(&header, pt, &mut out).expect("RCS seal");
        self.txseq = seq;
        Ok(out)
    }

    /// `Ok(None)`: a control packet (not 0x04), left alone.
    fn open(&mut self, packet: &[u8], now: u64) -> Result<Option<Vec<u8>>, Error> {
        if self.status != Status::Open {
            return Err(Misuse::NotEstablished.into());
        }
        let r = self.open_inner(packet, now);
        if r.is_err() {
            self.status = Status::Failed;
        }
        r
    }

    fn open_inner(&mut self, packet: &[u8], now: u64) -> Result<Option<Vec<u8>>, Error> {
        let header = Header::decode(packet)?;
        if header.flag != 0x04 {
            return Ok(None);
        }
        let (header, message) = packet::split_packet(packet)?;
        if header.msglen > packet::MAX_MESSAGE {
            return Err(Malformed::TooLong {
                msglen: header.msglen,
                max: packet::MAX_MESSAGE,
            }
            .into());
        }
        packet::check_data_header(&header, self.rxseq, true, now)?;
        let mut pt = Vec::new();
        self.rx
            .open(&packet[..HEADER_LEN], message, &mut pt)
            .map_err(|_| Error::Crypto(CryptoFailure::Authentication))?;
        self.rxseq = header.sequence;
        Ok(Some(pt))
    }
}

/// The peer of a session: seals what the session opens, malformed packets included.
struct Peer {
    tx: Rcs512Channel,
    txseq: u64,
}

impl Peer {
    fn raw(&mut self, flag: u8, seq: u64, time: u64, pt: &[u8]) -> Vec<u8> {
        let header = Header {
            flag,
            msglen: pt.len() as u32 + 64,
            sequence: seq,
            utctime: time,
        }
        .encode();
        let mut out = header.to_vec();
        self.tx.seal(&header, pt, &mut out).expect("RCS seal");
        out
    }

    fn next(&mut self, flag: u8, time: u64, pt: &[u8]) -> Vec<u8> {
        self.txseq = self.txseq.wrapping_add(1);
        self.raw(flag, self.txseq, time, pt)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Seal(usize),
    Open(Recv),
}

#[derive(Clone, Debug)]
enum Recv {
    Valid(usize),
    /// Flip bit `bit` of byte `at % len`.
    Tamper(usize, usize, u8),
    WrongSeq(usize, u64),
    Stale(usize, bool),
    Truncated(usize),
    WrongLength(usize, bool),
    TooShort(u8),
    Close(u8),
    Control(usize),
}

/// A short form of an outcome for failure messages.
fn show(g: &Got) -> String {
    match g {
        Got::Sealed(p) => format!(
            "Sealed({} bytes, {:02x?}..)",
            p.len(),
            &p[..p.len().min(24)]
        ),
        Got::Opened(p) => format!("Opened({} bytes, {:02x?}..)", p.len(), &p[..p.len().min(8)]),
        other => format!("{other:?}"),
    }
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        40 => 0usize..=200,
        12 => 201usize..=4000,
        2 => 4001usize..=65536,
        1 => Just(65536usize),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let nz = || size().prop_map(|n| n.max(1));
    prop_oneof![
        40 => size().prop_map(Op::Seal),
        40 => nz().prop_map(|n| Op::Open(Recv::Valid(n))),
        3 => (nz(), any::<usize>(), 0u8..8).prop_map(|(n, a, b)| Op::Open(Recv::Tamper(n, a, b))),
        1 => (nz(), 2u64..5).prop_map(|(n, d)| Op::Open(Recv::WrongSeq(n, d))),
        1 => (nz(), any::<bool>()).prop_map(|(n, f)| Op::Open(Recv::Stale(n, f))),
        1 => (0usize..HEADER_LEN).prop_map(|n| Op::Open(Recv::Truncated(n))),
        1 => (nz(), any::<bool>()).prop_map(|(n, f)| Op::Open(Recv::WrongLength(n, f))),
        1 => (0u8..=64).prop_map(|n| Op::Open(Recv::TooShort(n))),
        1 => any::<u8>().prop_map(|c| Op::Open(Recv::Close(c))),
        1 => nz().prop_map(|n| Op::Open(Recv::Control(n))),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    sessions: usize,
    /// (session seed, op), in submission order.
    jobs: Vec<(usize, Op)>,
    key_seed: u64,
    now: u64,
    /// Initial sequence numbers: 3 as after a handshake, random, or near exhaustion.
    seq: u64,
    threads: usize,
    width: usize,
}

fn case() -> impl Strategy<Value = Case> {
    case_of(1usize..=300)
}

/// A case of `sessions` sessions (each with room for a dozen jobs at least).
fn case_of(sessions: impl Strategy<Value = usize>) -> impl Strategy<Value = Case> {
    sessions
        .prop_flat_map(|n| {
            (
                Just(n),
                prop::collection::vec((any::<usize>(), op()), 0..=(2 * n + 12).min(400)),
                any::<u64>(),
                1_700_000_000u64..1_900_000_000,
                prop_oneof![4 => Just(3u64), 1 => any::<u64>(), 1 => (u64::MAX - 3)..=u64::MAX],
                1usize..=3,
                prop_oneof![Just(1usize), Just(4), Just(8)],
            )
        })
        .prop_map(
            |(sessions, jobs, key_seed, now, seq, threads, width)| Case {
                sessions,
                jobs,
                key_seed,
                now,
                seq,
                threads,
                width,
            },
        )
}

fn message(n: usize, salt: usize) -> Vec<u8> {
    (0..n).map(|j| (j.wrapping_mul(131) ^ salt) as u8).collect()
}

/// Keys and nonces of session `i`: (a = our tx, b = our rx).
fn keys(seed: u64, i: usize) -> ([u8; 64], [u8; 32], [u8; 64], [u8; 32]) {
    let mut x = [0u8; 192];
    let mut s = seed.to_le_bytes().to_vec();
    s.extend_from_slice(&(i as u64).to_le_bytes());
    keccak::shake256(&s, &mut x);
    let mut k1 = [0u8; 64];
    let mut n1 = [0u8; 32];
    let mut k2 = [0u8; 64];
    let mut n2 = [0u8; 32];
    k1.copy_from_slice(&x[..64]);
    n1.copy_from_slice(&x[64..96]);
    k2.copy_from_slice(&x[96..160]);
    n2.copy_from_slice(&x[160..192]);
    // Some nonces sit just below a carry across 64-bit limbs.
    if i.is_multiple_of(3) {
        n1[..9].fill(0xff);
        n2[..17].fill(0xff);
    }
    (k1, n1, k2, n2)
}

fn channel(b: Backend, k: &[u8; 64], n: &[u8; 32]) -> Rcs512Channel {
    Rcs512Channel::with_backend(b, k, n, &[]).expect("available backend")
}

/// The jobs one at a time on each session's own state; a control packet defers the rest of
/// its session, as the batch does. Returns the outcomes and which sessions were deferred.
fn one_at_a_time<T>(
    inputs: &[(usize, Op, Vec<u8>)],
    states: &mut [T],
    mut run: impl FnMut(&mut T, &Op, &[u8]) -> Got,
) -> (Vec<Got>, Vec<bool>) {
    let mut deferred = vec![false; states.len()];
    let mut out = Vec::new();
    for (s, op, data) in inputs {
        if deferred[*s] {
            out.push(Got::Deferred);
            continue;
        }
        let got = run(&mut states[*s], op, data);
        deferred[*s] = got == Got::Control;
        out.push(got);
    }
    (out, deferred)
}

fn run_case(c: &Case, backend: Backend) -> Result<(), TestCaseError> {
    let now = c.now;
    let n = c.sessions;
    let mut batch_side = Vec::new();
    let mut scalar_side = Vec::new();
    let mut models = Vec::new();
    let mut peers = Vec::new();
    for i in 0..n {
        let (k1, n1, k2, n2) = keys(c.key_seed, i);
        let seq = c.seq.wrapping_add(i as u64 % 2);
        let mk = || {
            DataSession::new(
                channel(backend, &k1, &n1),
                channel(backend, &k2, &n2),
                seq,
                seq,
            )
        };
        batch_side.push(mk());
        scalar_side.push(mk());
        models.push(Model {
            tx: channel(backend, &k1, &n1),
            rx: channel(backend, &k2, &n2),
            txseq: seq,
            rxseq: seq,
            status: Status::Open,
        });
        peers.push(Peer {
            tx: channel(backend, &k2, &n2),
            txseq: seq,
        });
    }

    // The jobs, with the received packets built by each session's peer in order.
    let mut inputs: Vec<(usize, Op, Vec<u8>)> = Vec::new();
    for (j, (seed, op)) in c.jobs.iter().enumerate() {
        let s = seed % n;
        let peer = &mut peers[s];
        let data = match op {
            Op::Seal(len) => message(*len, j),
            Op::Open(r) => match r {
                Recv::Valid(len) => peer.next(0x04, now, &message(*len, j)),
                Recv::Tamper(len, at, bit) => {
                    let mut p = peer.next(0x04, now, &message(*len, j));
                    let k = at % p.len();
                    p[k] ^= 1 << bit;
                    p
                }
                Recv::WrongSeq(len, d) => {
                    let seq = peer.txseq.wrapping_add(*d);
                    peer.raw(0x04, seq, now, &message(*len, j))
                }
                Recv::Stale(len, future) => {
                    let t = if *future { now + 61 } else { now - 61 };
                    peer.next(0x04, t, &message(*len, j))
                }
                Recv::Truncated(len) => message(*len, j),
                Recv::WrongLength(len, longer) => {
                    let mut p = peer.next(0x04, now, &message(*len, j));
                    if *longer {
                        p.push(0);
                    } else {
                        p.pop();
                    }
                    p
                }
                Recv::TooShort(msglen) => {
                    let mut p = Header {
                        flag: 0x04,
                        msglen: u32::from(*msglen),
                        sequence: peer.txseq.wrapping_add(1),
                        utctime: now,
                    }
                    .encode()
                    .to_vec();
                    p.extend(message(usize::from(*msglen), j));
                    p
                }
                Recv::Close(code) => peer.next(0x12, now, &[*code]),
                Recv::Control(len) => peer.next(0x0E, now, &message(*len, j)),
            },
        };
        inputs.push((s, op.clone(), data));
    }

    // 1. The model, sequentially.
    let (want, _) = one_at_a_time(&inputs, &mut models, |m, op, data| match op {
        Op::Seal(_) => match m.seal(data, now) {
            Ok(p) => Got::Sealed(p),
            Err(e) => Got::Failed(e),
        },
        Op::Open(_) => match m.open(data, now) {
            Ok(Some(pt)) => Got::Opened(pt),
            Ok(None) => Got::Control,
            Err(e) => Got::Failed(e),
        },
    });

    // 2. DataSession, sequentially.
    let (scalar, deferred) = one_at_a_time(&inputs, &mut scalar_side, |d, op, data| match op {
        Op::Seal(_) => {
            let mut out = Vec::new();
            match d.seal(data, now, &mut out) {
                Ok(()) => Got::Sealed(out),
                Err(e) => Got::Failed(e),
            }
        }
        // What the batch hands back as a control packet, the caller would give to the
        // session's own handling; here it just defers the session like the batch does.
        Op::Open(_) if data.len() >= HEADER_LEN && data[0] != 0x04 => {
            if d.status() == Status::Open {
                Got::Control
            } else {
                Got::Failed(Misuse::NotEstablished.into())
            }
        }
        Op::Open(_) => {
            let mut p = data.to_vec();
            match d.open(&mut p, now) {
                Ok(Received::Data(pt)) => Got::Opened(pt.to_vec()),
                Ok(Received::Control(_)) => Got::Control,
                Err(e) => Got::Failed(e),
            }
        }
    });
    for (k, (g, w)) in scalar.iter().zip(&want).enumerate() {
        prop_assert!(
            g == w,
            "DataSession != model at job {} ({:?}): {} vs {}",
            k,
            inputs[k].1,
            show(g),
            show(w)
        );
    }

    // 3. The batch.
    let mut buffers: Vec<Vec<u8>> = inputs.iter().map(|(_, _, d)| d.clone()).collect();
    let lanes = LaneBackend::for_backend(backend);
    let mut batch = Batch::new()
        .with_lanes(lanes)
        .with_threads(c.threads)
        .with_lane_width(c.width);
    let ids: Vec<SessionId> = batch_side.iter_mut().map(|s| batch.add(s)).collect();
    let mut jobs = Vec::new();
    for ((s, op, _), buf) in inputs.iter().zip(buffers.iter_mut()) {
        jobs.push(match op {
            Op::Seal(_) => batch.seal(ids[*s], buf),
            Op::Open(_) => batch.open(ids[*s], buf),
        });
    }
    let done = batch.flush(now);
    let mut outputs = vec![Vec::new(); n];
    for (k, ((s, op, data), job)) in inputs.iter().zip(&jobs).enumerate() {
        let got = match done.outcome(*job) {
            Outcome::Sealed(p) => {
                outputs[*s].extend_from_slice(p);
                Got::Sealed(p.to_vec())
            }
            Outcome::Opened(pt) => Got::Opened(pt.to_vec()),
            Outcome::Control(p) => {
                prop_assert_eq!(p, &data[..], "control packet changed");
                Got::Control
            }
            Outcome::Deferred => Got::Deferred,
            Outcome::Failed(e) => Got::Failed(e.clone()),
            other => panic!("unexpected outcome {other:?}"),
        };
        prop_assert!(
            got == want[k],
            "job {} ({:?}) of session {} on {} lanes {} width {} threads {}: {} vs {}",
            k,
            op,
            s,
            backend,
            lanes,
            c.width,
            c.threads,
            show(&got),
            show(&want[k])
        );
    }
    for (i, id) in ids.iter().enumerate() {
        prop_assert_eq!(done.output(*id), &outputs[i][..], "output of session {}", i);
    }
    drop(done);
    // A packet that failed to open, or was not opened, is released untouched.
    for ((k, (_, op, data)), buf) in inputs.iter().enumerate().zip(&buffers) {
        let failed = matches!(&want[k], Got::Failed(_) | Got::Deferred | Got::Control);
        if matches!(op, Op::Open(_)) && failed {
            prop_assert_eq!(buf, data, "failed open {} changed its buffer", k);
        }
    }

    // 4. States after the batch, then one more packet each way.
    for i in 0..n {
        let (b, d, m) = (&mut batch_side[i], &mut scalar_side[i], &mut models[i]);
        prop_assert_eq!(
            (b.txseq(), b.rxseq(), b.status()),
            (m.txseq, m.rxseq, m.status),
            "session {}",
            i
        );
        prop_assert_eq!(
            (d.txseq(), d.rxseq(), d.status()),
            (m.txseq, m.rxseq, m.status)
        );
        for (x, y) in [
            (b.tx(), &m.tx),
            (b.rx(), &m.rx),
            (d.tx(), &m.tx),
            (d.rx(), &m.rx),
        ] {
            prop_assert_eq!(x.nonce(), y.nonce());
            prop_assert_eq!(x.counter(), y.counter());
            prop_assert_eq!(x.is_dead(), y.is_dead());
        }
        if m.status != Status::Open {
            continue;
        }
        let msg = message(100 + i, 7);
        let want = m.seal(&msg, now);
        let (mut ob, mut od) = (Vec::new(), Vec::new());
        let (rb, rd) = (b.seal(&msg, now, &mut ob), d.seal(&msg, now, &mut od));
        match want {
            Ok(p) => {
                prop_assert!(rb.is_ok() && rd.is_ok());
                prop_assert_eq!(&ob, &p);
                prop_assert_eq!(&od, &p);
            }
            Err(e) => {
                prop_assert_eq!(rb, Err(e.clone()));
                prop_assert_eq!(rd, Err(e));
            }
        }
        if deferred[i] || m.rxseq == u64::MAX {
            continue;
        }
        let p = peers[i].next(0x04, now, &msg);
        let want = m.open(&p, now).map(|o| o.map(Got::Opened));
        let (mut pb, mut pd) = (p.clone(), p.clone());
        let gb = b.open(&mut pb, now).map(|r| match r {
            Received::Data(pt) => Some(Got::Opened(pt.to_vec())),
            Received::Control(_) => None,
        });
        let gd = d.open(&mut pd, now).map(|r| match r {
            Received::Data(pt) => Some(Got::Opened(pt.to_vec())),
            Received::Control(_) => None,
        });
        prop_assert_eq!(&gb, &want, "next packet into session {}", i);
        prop_assert_eq!(&gd, &want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, .. ProptestConfig::default() })]

    #[test]
    fn batch_equals_sequential(c in case()) {
        for backend in Backend::available() {
            run_case(&c, backend)?;
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, max_shrink_iters: 200, .. ProptestConfig::default() })]

    /// A batch of one session takes its own path through `flush` (no lanes, no threads);
    /// such cases are cheap, so many more of them run.
    #[test]
    fn single_session_batch_equals_sequential(c in case_of(Just(1usize))) {
        for backend in Backend::available() {
            run_case(&c, backend)?;
        }
    }
}

/// Many sessions of equal, then mixed, sizes: every lane busy for whole packets, lanes
/// handed from x8 to x4 to scalar mid-packet, threads splitting the work.
#[test]
fn wide_batches_equal_sequential() {
    for backend in Backend::available() {
        for (sessions, sizes) in [
            (64usize, vec![1500usize]),
            (9, vec![64, 65536, 576, 5]),
            (300, vec![1, 64, 1500]),
        ] {
            for (threads, width) in [(1, 4), (1, 8), (3, 8), (2, 1)] {
                let jobs = (0..sessions * sizes.len())
                    .map(|k| (k % sessions, Op::Seal(sizes[k / sessions])))
                    .chain(
                        (0..sessions * sizes.len())
                            .map(|k| (k % sessions, Op::Open(Recv::Valid(sizes[k / sessions])))),
                    )
                    .collect();
                let c = Case {
                    sessions,
                    jobs,
                    key_seed: 9,
                    now: 1_800_000_000,
                    seq: 3,
                    threads,
                    width,
                };
                run_case(&c, backend).unwrap();
            }
        }
    }
}

/// The sequential path's own handling of the peer's close (flag 0x12): authenticated, it ends
/// the session with the code; in any other shape it is a failure.
#[test]
fn data_session_opens_sealed_close() {
    let now = 1_800_000_000;
    // A session and the peer that sends to it, at sequence 3.
    let facing = |backend| {
        let (k1, n1, k2, n2) = keys(5, 1);
        let ours = DataSession::new(channel(backend, &k1, &n1), channel(backend, &k2, &n2), 3, 3);
        let peer = Peer {
            tx: channel(backend, &k2, &n2),
            txseq: 3,
        };
        (ours, peer)
    };
    for backend in Backend::available() {
        let (mut ours, mut peer) = facing(backend);
        let mut p = peer.next(0x04, now, b"hi");
        assert_eq!(ours.open(&mut p, now), Ok(Received::Data(&b"hi"[..])));
        let mut close = peer.next(0x12, now, &[0x1b]);
        assert_eq!(close.len(), packet::SEALED_ERROR_LEN);
        let e = ours.open(&mut close, now).unwrap_err();
        assert!(e.is_disconnect_request(), "{e}");
        assert_eq!(ours.status(), Status::Closed);
        assert_eq!(ours.rxseq(), 5);
        assert_eq!(ours.open(&mut p, now), Err(Misuse::NotEstablished.into()));

        // A close of the wrong shape (two code bytes) ends the session as a failure.
        let (mut ours, mut peer) = facing(backend);
        let mut close = peer.next(0x12, now, &[0x1b, 0]);
        assert!(matches!(
            ours.open(&mut close, now),
            Err(Error::Malformed(_))
        ));
        assert_eq!(ours.status(), Status::Failed);

        // A ratchet packet is not this type's to handle: handed back untouched.
        let (mut ours, mut peer) = facing(backend);
        let mut r = peer.next(0x0e, now, b"ratchet");
        let copy = r.clone();
        assert_eq!(ours.open(&mut r, now), Ok(Received::Control(&copy[..])));
        assert_eq!((ours.status(), ours.rxseq()), (Status::Open, 3));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The word-major permutations the lanes run equal the scalar permutation, on every lane
    /// backend this CPU runs (one it lacks is refused, not replaced).
    #[test]
    fn word_major_permutations_equal_scalar(states in prop::array::uniform8(prop::array::uniform25(any::<u64>()))) {
        let mut want = states;
        for s in want.iter_mut() {
            keccak::f1600_portable(s);
        }
        for b in LaneBackend::available() {
            let mut w8 = [[0u64; 8]; 25];
            let mut w4 = [[0u64; 4]; 25];
            for (i, s) in states.iter().enumerate() {
                for (j, x) in s.iter().enumerate() {
                    w8[j][i] = *x;
                    if i < 4 {
                        w4[j][i] = *x;
                    }
                }
            }
            keccak::lanes::permute_x8_words(b, &mut w8);
            keccak::lanes::permute_x4_words(b, &mut w4);
            for (i, s) in want.iter().enumerate() {
                for (j, x) in s.iter().enumerate() {
                    prop_assert_eq!(w8[j][i], *x, "x8 {} state {} word {}", b, i, j);
                    if i < 4 {
                        prop_assert_eq!(w4[j][i], *x, "x4 {} state {} word {}", b, i, j);
                    }
                }
            }
        }
    }
}

/// The session layer's own `Session`s in a batch (through their batch hooks) end exactly as
/// their `seal` / `open_in_place` calls leave them: data both ways, a tampered packet that
/// ends one session, and an asymmetric ratchet request handed back as a control packet.
mod kex_sessions {
    use super::*;
    use dktp::config::Config;
    use dktp::session::{Opened, Output, Session};
    use dktp::testing::{NOW, TestRng, handshake, pair, settings};

    /// A client and a server session after a deterministic default-configuration handshake.
    fn established(label: &str) -> (Session, Session) {
        let (ck, sk) = pair(Config::DEFAULT, NOW);
        let (mut crng, mut srng) = (TestRng::new(&format!("c {label}")), TestRng::new(label));
        let run = handshake(ck, sk, &settings(), NOW, &mut crng, &mut srng).expect("handshake");
        (run.client, run.server)
    }

    /// What each client sends this round: data, one tampered stream, one ratchet request.
    fn inbound(i: usize, client: &mut Session, rng: &mut TestRng) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for k in 0..3usize {
            let mut p = Vec::new();
            client
                .seal(&message(40 + 700 * k + i, i + k), NOW, &mut p)
                .expect("seal");
            if i == 2 && k == 1 {
                let last = p.len() - 1;
                p[last] ^= 1;
            }
            out.push(p);
        }
        if i == 4 {
            out.push(client.start_ratchet(NOW, rng).expect("ratchet request"));
        }
        out
    }

    #[test]
    fn kex_sessions_batch_equals_session_calls() {
        let pairs = 6;
        let mut batch_side: Vec<(Session, Session)> = (0..pairs)
            .map(|i| established(&format!("pair {i}")))
            .collect();
        let mut call_side: Vec<(Session, Session)> = (0..pairs)
            .map(|i| established(&format!("pair {i}")))
            .collect();
        let mut inbound_b: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut inbound_c: Vec<Vec<Vec<u8>>> = Vec::new();
        for i in 0..pairs {
            let mut rng = TestRng::new(&format!("round {i}"));
            inbound_b.push(inbound(i, &mut batch_side[i].0, &mut rng.clone()));
            inbound_c.push(inbound(i, &mut call_side[i].0, &mut rng));
        }
        assert_eq!(inbound_b, inbound_c, "deterministic clients");
        let replies: Vec<Vec<u8>> = (0..pairs).map(|i| message(300 + 1000 * i, i)).collect();

        // The servers' turn by their own calls, in the order the batch gets the jobs: each
        // server opens what arrived, then seals a reply; a control packet defers the rest.
        let mut want: Vec<Vec<Got>> = Vec::new();
        for (i, ((_, server), packets)) in call_side.iter_mut().zip(&inbound_c).enumerate() {
            let mut got = Vec::new();
            let mut deferred = false;
            for p in packets {
                if deferred {
                    got.push(Got::Deferred);
                    continue;
                }
                if p[0] != 0x04 && server.is_open() {
                    deferred = true;
                    got.push(Got::Control);
                    continue;
                }
                let mut p = p.clone();
                let mut rng = TestRng::new("unused");
                got.push(match server.open_in_place(&mut p, NOW, &mut rng) {
                    Ok(Opened::Message(r)) => Got::Opened(p[r].to_vec()),
                    Ok(Opened::Control) => Got::Control,
                    Err(e) => Got::Failed(e),
                });
            }
            got.push(if deferred {
                Got::Deferred
            } else {
                let mut out = Vec::new();
                match server.seal(&replies[i], NOW, &mut out) {
                    Ok(()) => Got::Sealed(out),
                    Err(e) => Got::Failed(e),
                }
            });
            want.push(got);
        }

        // The same turn as one batch.
        let mut buffers = inbound_b.clone();
        let mut batch = Batch::new().with_threads(2);
        let mut jobs = Vec::new();
        for ((_, server), (packets, reply)) in
            batch_side.iter_mut().zip(buffers.iter_mut().zip(&replies))
        {
            let id = batch.add(server.data_mut());
            let mut js: Vec<_> = packets.iter_mut().map(|p| batch.open(id, p)).collect();
            js.push(batch.seal(id, reply));
            jobs.push(js);
        }
        let done = batch.flush(NOW);
        for (i, js) in jobs.iter().enumerate() {
            for (k, j) in js.iter().enumerate() {
                let got = match done.outcome(*j) {
                    Outcome::Sealed(p) => Got::Sealed(p.to_vec()),
                    Outcome::Opened(p) => Got::Opened(p.to_vec()),
                    Outcome::Control(_) => Got::Control,
                    Outcome::Deferred => Got::Deferred,
                    Outcome::Failed(e) => Got::Failed(e.clone()),
                    other => panic!("{other:?}"),
                };
                assert_eq!(got, want[i][k], "server {i} job {k}");
            }
        }
        drop(done);
        assert!(
            matches!(want[2][1], Got::Failed(_)),
            "the tampered packet fails"
        );
        assert_eq!(want[4][3], Got::Control, "the ratchet request comes back");

        // The control packet goes to the server's own handling on both sides, then every
        // pair talks once more both ways: the states (MACs included) are the same.
        for (side, bufs) in [(&mut batch_side, &inbound_b), (&mut call_side, &inbound_c)] {
            let server = &mut side[4].1;
            let mut p = bufs[4][3].clone();
            let mut rng = TestRng::new("server 4 ratchet");
            assert_eq!(
                server.open_in_place(&mut p, NOW, &mut rng),
                Ok(Opened::Control)
            );
        }
        let drain = |s: &mut Session| {
            let mut v = Vec::new();
            while let Some(o) = s.poll_output() {
                if let Output::Transmit(p) = o {
                    v.push(p);
                }
            }
            v
        };
        assert_eq!(drain(&mut batch_side[4].1), drain(&mut call_side[4].1));
        for i in 0..pairs {
            let (b, c) = (&mut batch_side[i], &mut call_side[i]);
            assert_eq!(b.1.is_open(), c.1.is_open(), "pair {i}");
            assert_eq!(
                (b.1.txseq(), b.1.rxseq()),
                (c.1.txseq(), c.1.rxseq()),
                "pair {i}"
            );
            if !c.1.is_open() {
                continue;
            }
            let msg = message(77 + i, 9);
            let (mut pb, mut pc) = (Vec::new(), Vec::new());
            let rb = b.1.seal(&msg, NOW, &mut pb);
            let rc = c.1.seal(&msg, NOW, &mut pc);
            assert_eq!(rb, rc);
            assert_eq!(pb, pc, "pair {i}: next packet from the server");
        }
    }
}
