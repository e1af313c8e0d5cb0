//! Batch against the sequential calls at the KMAC block and finalize-quirk boundaries, on
//! every lane backend; the wide random mixes are in `proptests/tests/batch.rs`.

use super::*;
use crate::Backend;
use crate::rcs::Rcs512Channel;

const NOW: u64 = 1_767_225_600;

fn pair(backend: Backend, i: u8) -> (DataSession, DataSession) {
    let k1 = [i; 64];
    let k2 = [i ^ 0x5a; 64];
    let n1 = [i.wrapping_mul(3); 32];
    let n2 = [0xff; 32];
    let ch = |k: &[u8; 64], n: &[u8; 32]| Rcs512Channel::with_backend(backend, k, n, &[]).unwrap();
    (
        DataSession::new(ch(&k1, &n1), ch(&k2, &n2), 3, 3),
        DataSession::new(ch(&k2, &n2), ch(&k1, &n1), 3, 3),
    )
}

/// Message lengths whose `|M| = n + 65` lands on every position class mod 72 that matters:
/// block boundaries and the quirk (tail of 69..=71 bytes).
fn lengths() -> Vec<usize> {
    let mut v: Vec<usize> = (1..=20).collect();
    for k in 0..4 {
        for r in [69usize, 70, 71, 0, 1, 7, 8, 14, 15, 16] {
            let total = 72 * (k + 1) + r;
            if total > 65 {
                v.push(total - 65);
            }
        }
    }
    v.extend([1500, 4095, 4896, 16384]);
    v
}

#[test]
fn seal_and_open_equal_sequential_at_boundaries() {
    let mut backends: Vec<(Backend, LaneBackend)> = Backend::available()
        .into_iter()
        .map(|b| (b, LaneBackend::for_backend(b)))
        .collect();
    backends.push((Backend::Portable, LaneBackend::fastest()));
    for (backend, lanes) in backends {
        let lens = lengths();
        let sessions = 6;
        let mut a: Vec<(DataSession, DataSession)> =
            (0..sessions).map(|i| pair(backend, i as u8)).collect();
        let mut b: Vec<(DataSession, DataSession)> =
            (0..sessions).map(|i| pair(backend, i as u8)).collect();
        // Sequential reference: session i seals every length with an offset.
        let msgs: Vec<Vec<Vec<u8>>> = (0..sessions)
            .map(|i| {
                lens.iter()
                    .map(|&n| (0..n).map(|j| (j * 7 + i) as u8).collect())
                    .collect()
            })
            .collect();
        let mut want = Vec::new();
        for (i, (s, _)) in a.iter_mut().enumerate() {
            let mut out = Vec::new();
            for m in &msgs[i] {
                s.seal(m, NOW, &mut out).unwrap();
            }
            want.push(out);
        }
        let mut batch = Batch::new().with_lanes(lanes).with_threads(1);
        let ids: Vec<SessionId> = b.iter_mut().map(|(s, _)| batch.add(s)).collect();
        for (i, id) in ids.iter().enumerate() {
            for m in &msgs[i] {
                batch.seal(*id, m);
            }
        }
        let done = batch.flush(NOW);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(
                done.output(*id),
                &want[i][..],
                "{backend} {lanes} session {i}"
            );
        }
        drop(done);
        for ((sa, _), (sb, _)) in a.iter().zip(&b) {
            assert_eq!(sa.tx().nonce(), sb.tx().nonce());
            assert_eq!(sa.tx().counter(), sb.tx().counter());
            assert_eq!(sa.txseq(), sb.txseq());
        }

        // Open what was sealed, on the peers, in one batch.
        let mut wires = want.clone();
        let mut batch = Batch::new().with_lanes(lanes).with_threads(1);
        let mut opens = Vec::new();
        for ((_, peer), wire) in b.iter_mut().zip(wires.iter_mut()) {
            let id = batch.add(peer);
            let mut rest = &mut wire[..];
            while !rest.is_empty() {
                let Ok(crate::packet::Frame::Complete { len, .. }) =
                    crate::packet::frame(rest, u32::MAX)
                else {
                    panic!("framing")
                };
                let (p, r) = rest.split_at_mut(len);
                opens.push(batch.open(id, p));
                rest = r;
            }
        }
        let done = batch.flush(NOW);
        let mut k = 0;
        for (i, session_msgs) in msgs.iter().enumerate() {
            for m in session_msgs {
                assert_eq!(
                    done.outcome(opens[k]),
                    Outcome::Opened(m),
                    "{backend} {lanes} {i} {}",
                    m.len()
                );
                k += 1;
            }
        }
    }
}

/// A [`Scratch`] carries vectors of borrowing elements across turns only if retyping an
/// empty vector keeps its allocation.
#[test]
fn recycle_keeps_the_allocation() {
    let mut x = 0u64;
    let mut v: Vec<&mut u64> = Vec::with_capacity(100);
    v.push(&mut x);
    let w: Vec<&'static mut ()> = recycle(v);
    assert!(w.is_empty());
    assert!(w.capacity() >= 100, "capacity {}", w.capacity());
    let tasks: Vec<Task<'static>> = recycle(Vec::<Task<'_>>::with_capacity(10));
    assert!(tasks.capacity() >= 10);
}

/// Scratch reuse across turns, through both paths of `flush` (two sessions, then one): same
/// outputs, and the buffers come back.
#[test]
fn scratch_carries_over() {
    let (mut a, mut b) = pair(Backend::Portable, 3);
    let (mut c, mut d) = pair(Backend::Portable, 4);
    let mut scratch = Scratch::default();
    for turn in 0..4u8 {
        let mut batch = Batch::new().with_threads(1).with_scratch(scratch);
        let id = batch.add(&mut a);
        let other = (turn < 2).then(|| batch.add(&mut c));
        // Shrinking messages: the reused buffer still holds the last turn's longer packet.
        let msg = vec![turn; 100 - 30 * usize::from(turn)];
        let job = batch.seal(id, &msg);
        let other_job = other.map(|o| batch.seal(o, &msg));
        let done = batch.flush(NOW);
        let Outcome::Sealed(p) = done.outcome(job) else {
            panic!("seal failed")
        };
        let mut p = p.to_vec();
        assert_eq!(b.open(&mut p, NOW), Ok(Received::Data(&msg[..])));
        if let Some(j) = other_job {
            let Outcome::Sealed(p) = done.outcome(j) else {
                panic!("seal failed")
            };
            let mut p = p.to_vec();
            assert_eq!(d.open(&mut p, NOW), Ok(Received::Data(&msg[..])));
        }
        scratch = done.into_scratch();
        let buffers = scratch.0.as_ref().expect("buffers");
        assert!(buffers.arena.capacity() >= 2 * sealed_len(100));
        assert!(buffers.tasks.capacity() >= 2);
    }
}
