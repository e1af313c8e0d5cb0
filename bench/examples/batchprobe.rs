//! Interleaved min-of-many timing: scalar (DataSession one by one) vs batch flush, same
//! sessions count and size. Usage: batchprobe SIZE SESSIONS [threads] [open]
use dktp::batch::{Batch, DataSession, Received, Scratch};
use dktp::rcs::Rcs512Channel;
use std::hint::black_box;
use std::time::Instant;

fn fleet(n: usize) -> (Vec<DataSession>, Vec<DataSession>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for i in 0..n {
        let k1 = [i as u8; 64];
        let k2 = [!(i as u8); 64];
        let ch = |k: &[u8; 64]| Rcs512Channel::new(k, &[1; 32], &[]).unwrap();
        a.push(DataSession::new(ch(&k1), ch(&k2), 3, 3));
        b.push(DataSession::new(ch(&k2), ch(&k1), 3, 3));
    }
    (a, b)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(1500);
    let n: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(8);
    let threads: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(1);
    let open = args.get(4).map(|s| s == "open").unwrap_or(false);
    if args.get(4).map(|s| s == "threads").unwrap_or(false) {
        threads_cmp(size, n, 200);
        return;
    }
    let trials = if args.get(5).map(|s| s == "loop_only").unwrap_or(false) { 200000 } else { 400 };
    let payload = vec![0x5au8; size];
    let (mut sc, mut sc_peer) = fleet(n);
    let (mut ba, mut ba_peer) = fleet(n);
    let mut scratch = Some(Scratch::default());
    let mut out = Vec::with_capacity(size + 100);
    let (mut ms, mut mb) = (f64::MAX, f64::MAX);
    let mut mm = f64::MAX;
    let lb = dktp::keccak::lanes::LaneBackend::fastest();
    let cipher = dktp::rijndael::Rijndael256::new(dktp::Backend::best(), &[3u8; 31 * 32]).unwrap();
    let mut bufs = vec![vec![1u8; size]; n];
    let mut w = [[0u64; 4]; 25];
    let steps = (size + 65) / 72 + 1;
    let mut ma = f64::MAX;
    let data = vec![1u8; 1600];
    let batch_only = args.get(5).map(|s| s == "loop_only").unwrap_or(false);
    for _ in 0..trials {
        if batch_only {
            let mut b = Batch::new().with_threads(threads).with_scratch(scratch.take().unwrap());
            for s in ba.iter_mut() { let id = b.add(s); b.seal(id, &payload); }
            let d = b.flush(1);
            scratch = Some(d.into_scratch());
            continue;
        }
        let t = Instant::now();
        for _ in 0..20 { black_box(&data); dktp::keccak::lanes::permute_x4_words(lb, black_box(&mut w)); }
        ma = ma.min(t.elapsed().as_secs_f64() / 20.0);
        let t = Instant::now();
        let mut nonce = [0u8; 32];
        for x in bufs.iter_mut() { cipher.ctr_xor(&mut nonce, x); }
        for _ in 0..(steps * n).div_ceil(4) { dktp::keccak::lanes::permute_x4_words(lb, black_box(&mut w)); }
        mm = mm.min(t.elapsed().as_secs_f64());
        if open {
            let mut pk: Vec<Vec<u8>> = sc_peer.iter_mut().map(|p| { let mut o = Vec::new(); p.seal(&payload, 1, &mut o).unwrap(); o }).collect();
            let mut pb: Vec<Vec<u8>> = ba_peer.iter_mut().map(|p| { let mut o = Vec::new(); p.seal(&payload, 1, &mut o).unwrap(); o }).collect();
            let t = Instant::now();
            for (s, p) in sc.iter_mut().zip(pk.iter_mut()) {
                match s.open(p, 1).unwrap() { Received::Data(d) => { black_box(d); } _ => panic!() }
            }
            ms = ms.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let mut b = Batch::new().with_threads(threads).with_scratch(scratch.take().unwrap());
            for (s, p) in ba.iter_mut().zip(pb.iter_mut()) { let id = b.add(s); b.open(id, p); }
            let d = b.flush(1);
            scratch = Some(d.into_scratch());
            mb = mb.min(t.elapsed().as_secs_f64());
        } else {
            let t = Instant::now();
            for s in sc.iter_mut() { out.clear(); s.seal(&payload, 1, &mut out).unwrap(); black_box(&out); }
            ms = ms.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let mut b = Batch::new().with_threads(threads).with_scratch(scratch.take().unwrap());
            for s in ba.iter_mut() { let id = b.add(s); b.seal(id, &payload); }
            let d = b.flush(1);
            scratch = Some(d.into_scratch());
            let e = t.elapsed().as_secs_f64();
            mb = mb.min(e);
        }
    }
    println!("isolated x4 {:.3} us/block", ma * 1e6);
    println!("{} size {size} sessions {n} threads {threads}: scalar {:.3} us/pkt, batch {:.3} us/pkt, kernels-only {:.3}, ratio {:.2} (kernel bound {:.2})",
        if open { "open" } else { "seal" }, ms * 1e6 / n as f64, mb * 1e6 / n as f64, mm * 1e6 / n as f64, ms / mb, ms / mm);
}


#[allow(dead_code)]
pub fn threads_cmp(size: usize, n: usize, trials: usize) {
    let payload = vec![0x5au8; size];
    let (mut a, _) = fleet(n);
    let (mut b, _) = fleet(n);
    let mut sa = Some(Scratch::default());
    let mut sb = Some(Scratch::default());
    let (mut m1, mut m2) = (f64::MAX, f64::MAX);
    for _ in 0..trials {
        let t = Instant::now();
        let mut x = Batch::new().with_threads(1).with_scratch(sa.take().unwrap());
        for s in a.iter_mut() { let id = x.add(s); x.seal(id, &payload); }
        sa = Some(x.flush(1).into_scratch());
        m1 = m1.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut x = Batch::new().with_threads(2).with_scratch(sb.take().unwrap());
        for s in b.iter_mut() { let id = x.add(s); x.seal(id, &payload); }
        sb = Some(x.flush(1).into_scratch());
        m2 = m2.min(t.elapsed().as_secs_f64());
    }
    println!("seal size {size} sessions {n}: 1 thread {:.3} us/pkt, 2 threads {:.3} us/pkt, speedup {:.2}", m1 * 1e6 / n as f64, m2 * 1e6 / n as f64, m1 / m2);
}
