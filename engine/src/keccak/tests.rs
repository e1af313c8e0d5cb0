//! Known answers (every case of `vectors/data/keccak.json`) and the streaming-KMAC semantics.

use super::*;
use serde_json::Value;

const KECCAK_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../vectors/data/keccak.json"
));

fn hex_field(case: &Value, key: &str) -> Vec<u8> {
    hex::decode(
        case[key]
            .as_str()
            .unwrap_or_else(|| panic!("missing {key}")),
    )
    .unwrap()
}

fn ascii_field(case: &Value, key: &str) -> Vec<u8> {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing {key}"))
        .as_bytes()
        .to_vec()
}

/// Computes one case with the function its `alg` names; `None` for an unknown algorithm.
fn compute(case: &Value) -> Option<Vec<u8>> {
    let alg = case["alg"].as_str()?;
    let msg = hex_field(case, "msg");
    assert_eq!(Some(msg.len() as u64), case["msg_len"].as_u64(), "msg_len");
    let out_len = case["out_len"].as_u64().map(|l| l as usize);
    let mut out = vec![0u8; out_len.unwrap_or(0)];
    match alg {
        "SHA3-256" => return Some(sha3_256(&msg).to_vec()),
        "SHA3-512" => return Some(sha3_512(&msg).to_vec()),
        "SHA3-512-incremental-2-updates" => {
            // The case does not record the split; the digest must not depend on it, so try
            // every split point (two updates each) and require one answer.
            let one = sha3_512(&msg);
            for cut in 0..=msg.len() {
                let mut h = Sha3_512::new();
                h.update(&msg[..cut]);
                h.update(&msg[cut..]);
                assert_eq!(h.finalize(), one, "split at {cut}");
            }
            return Some(one.to_vec());
        }
        "SHAKE-128" => shake128(&msg, &mut out),
        "SHAKE-256" => shake256(&msg, &mut out),
        "QSC-SHAKE-512" => shake512(&msg, &mut out),
        "cSHAKE-256" => cshake256(
            &msg,
            &ascii_field(case, "N"),
            &ascii_field(case, "S"),
            &mut out,
        ),
        "QSC-cSHAKE-512" => cshake512(
            &msg,
            &ascii_field(case, "N"),
            &ascii_field(case, "S"),
            &mut out,
        ),
        "KMAC-256" => kmac256(
            &hex_field(case, "key"),
            &msg,
            &ascii_field(case, "S"),
            &mut out,
        ),
        "QSC-KMAC-512" => kmac512(
            &hex_field(case, "key"),
            &msg,
            &ascii_field(case, "S"),
            &mut out,
        ),
        _ => return None,
    }
    Some(out)
}

#[test]
fn every_keccak_json_case() {
    let v: Value = serde_json::from_str(KECCAK_JSON).unwrap();
    let cases = v["vectors"].as_array().unwrap();
    assert_eq!(cases.len(), 252);
    let mut failures = Vec::new();
    let mut per_alg = std::collections::BTreeMap::<String, usize>::new();
    for case in cases {
        let alg = case["alg"].as_str().unwrap().to_string();
        let got = compute(case).unwrap_or_else(|| panic!("unknown alg {alg}"));
        if got != hex_field(case, "out") {
            failures.push(format!("{alg} msg_len={}", case["msg_len"]));
        }
        *per_alg.entry(alg).or_default() += 1;
    }
    assert!(failures.is_empty(), "failed: {failures:?}");
    assert_eq!(per_alg.len(), 10, "{per_alg:?}");
}

/// The incremental interfaces agree with the one-shot ones, whatever the chunking.
#[test]
fn incremental_equals_one_shot() {
    let msg: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let mut want = [0u8; 500];
    shake128(&msg, &mut want);
    for chunk in [1, 7, 71, 72, 73, 167, 168, 169, 1000] {
        let mut x = Shake128::new();
        for c in msg.chunks(chunk) {
            x.update(c);
        }
        let mut got = [0u8; 500];
        for o in got.chunks_mut(chunk.min(33)) {
            x.squeeze(o);
        }
        assert_eq!(got, want, "chunk {chunk}");

        let mut h = Sha3_256::new();
        for c in msg.chunks(chunk) {
            h.update(c);
        }
        assert_eq!(h.finalize(), sha3_256(&msg));

        let mut want512 = [0u8; 200];
        cshake512(&msg, b"N", b"S", &mut want512);
        let mut c512 = Cshake512::new(b"N", b"S");
        for c in msg.chunks(chunk) {
            c512.update(c);
        }
        let mut got512 = [0u8; 200];
        for o in got512.chunks_mut(chunk) {
            c512.squeeze(o);
        }
        assert_eq!(got512, want512);
    }
}

#[test]
fn cshake_with_empty_n_and_s_is_shake() {
    let msg = [0xA5u8; 300];
    let (mut a, mut b) = ([0u8; 150], [0u8; 150]);
    cshake512(&msg, b"", b"", &mut a);
    shake512(&msg, &mut b);
    assert_eq!(a, b);
    cshake256(&msg, b"", b"", &mut a);
    shake256(&msg, &mut b);
    assert_eq!(a, b);
    cshake256(&msg, b"", b"x", &mut a);
    assert_ne!(a, b);
}

/// An independent, deliberately plain model of the reference's streaming KMAC (FACTS §1, §2):
/// the prefix is built as one byte string, every block goes through a fresh XOR loop, and the
/// finalize follows the quirk's prose step by step.
struct StreamModel {
    rate: usize,
    state: [u64; 25],
    buf: Vec<u8>,
}

impl StreamModel {
    fn left_encode(x: u128) -> Vec<u8> {
        let mut v: Vec<u8> = x
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        if v.is_empty() {
            v.push(0);
        }
        let mut out = vec![v.len() as u8];
        out.extend(v);
        out
    }

    fn right_encode(x: u128) -> Vec<u8> {
        let mut v = Self::left_encode(x);
        let n = v.remove(0);
        v.push(n);
        v
    }

    fn bytepad(x: &[u8], w: usize) -> Vec<u8> {
        let mut z = Self::left_encode(w as u128);
        z.extend_from_slice(x);
        while !z.len().is_multiple_of(w) {
            z.push(0);
        }
        z
    }

    fn encode_string(s: &[u8]) -> Vec<u8> {
        let mut z = Self::left_encode(8 * s.len() as u128);
        z.extend_from_slice(s);
        z
    }

    fn xor_block(&mut self, block: &[u8]) {
        let mut padded = block.to_vec();
        padded.resize(200, 0);
        for i in 0..25 {
            let mut w = 0u64;
            for k in 0..8 {
                w |= u64::from(padded[8 * i + k]) << (8 * k);
            }
            self.state[i] ^= w;
        }
    }

    fn new(rate: usize, key: &[u8], custom: &[u8]) -> Self {
        let mut m = StreamModel {
            rate,
            state: [0; 25],
            buf: Vec::new(),
        };
        let mut pre = Self::encode_string(b"KMAC");
        pre.extend(Self::encode_string(custom));
        let mut pre = Self::bytepad(&pre, rate);
        pre.extend(Self::bytepad(&Self::encode_string(key), rate));
        for block in pre.chunks(rate) {
            m.xor_block(block);
            f1600(&mut m.state);
        }
        m
    }

    fn update(&mut self, msg: &[u8]) {
        self.buf.extend_from_slice(msg);
        while self.buf.len() >= self.rate {
            let block: Vec<u8> = self.buf.drain(..self.rate).collect();
            self.xor_block(&block);
            f1600(&mut self.state);
        }
    }

    fn finalize(&mut self, out_len: usize) -> Vec<u8> {
        let r = self.rate;
        let e = Self::right_encode(8 * out_len as u128);
        let t = std::mem::take(&mut self.buf);
        let mut scratch = t.clone();
        scratch.resize(r, 0);
        let mut pos = t.len();
        if pos + e.len() >= r {
            self.xor_block(&t);
            f1600(&mut self.state);
            pos = 0;
        }
        scratch[pos..pos + e.len()].copy_from_slice(&e);
        scratch[pos + e.len()] = 0x04;
        scratch[r - 1] |= 0x80;
        self.xor_block(&scratch);
        let mut out = Vec::new();
        while out.len() < out_len {
            f1600(&mut self.state);
            for i in 0..r {
                out.push((self.state[i / 8] >> (8 * (i % 8))) as u8);
            }
        }
        out.truncate(out_len);
        out
    }
}

/// The model reproduces the one-shot KMAC vectors, so it can judge the streaming use.
#[test]
fn stream_model_matches_vectors() {
    let v: Value = serde_json::from_str(KECCAK_JSON).unwrap();
    let mut checked = 0;
    for case in v["vectors"].as_array().unwrap() {
        let rate = match case["alg"].as_str().unwrap() {
            "KMAC-256" => 136,
            "QSC-KMAC-512" => 72,
            _ => continue,
        };
        let mut m = StreamModel::new(rate, &hex_field(case, "key"), &ascii_field(case, "S"));
        m.update(&hex_field(case, "msg"));
        let out = m.finalize(case["out_len"].as_u64().unwrap() as usize);
        assert_eq!(out, hex_field(case, "out"));
        checked += 1;
    }
    assert_eq!(checked, 72);
}

fn stream_check<const RATE: usize>(key: &[u8], custom: &[u8], script: &[(usize, usize)]) {
    let mut mac = Kmac::<RATE>::new(key, custom);
    let mut model = StreamModel::new(RATE, key, custom);
    let mut seen = Vec::new();
    for (step, &(msg_len, out_len)) in script.iter().enumerate() {
        let msg: Vec<u8> = (0..msg_len).map(|i| (i * 31 + step * 7) as u8).collect();
        // Feed the MAC in uneven pieces, the model in one go.
        let mut rest = &msg[..];
        let mut piece = 1;
        while !rest.is_empty() {
            let (a, b) = rest.split_at(piece.min(rest.len()));
            mac.update(a);
            rest = b;
            piece = piece * 3 + 1;
        }
        model.update(&msg);
        let mut out = vec![0u8; out_len];
        mac.finalize_into(&mut out);
        assert_eq!(
            out,
            model.finalize(out_len),
            "step {step} ({msg_len}, {out_len})"
        );
        seen.push(out);
    }
    // Identical packets produce different tags: the state carries over.
    for w in seen.windows(2) {
        if w[0].len() == w[1].len() && !w[0].is_empty() {
            assert_ne!(w[0], w[1]);
        }
    }
}

#[test]
fn streaming_kmac_matches_model() {
    let key64: Vec<u8> = (0..64u8).collect();
    let key32: Vec<u8> = (0..32u8).collect();
    // Lengths chosen so tails hit the quirk positions, whole blocks, and multi-block tags.
    let script = [
        (0, 64),
        (69, 64),
        (70, 64),
        (71, 64),
        (72, 64),
        (1, 64),
        (143, 64),
        (0, 0),
        (5, 200),
        (300, 32),
        (0, 64),
        (0, 64),
        (133, 64),
    ];
    stream_check::<72>(&key64, b"", &script);
    stream_check::<72>(&key64, b"custom", &script);
    let script256 = [
        (133, 32),
        (134, 32),
        (135, 32),
        (136, 32),
        (0, 32),
        (0, 32),
        (270, 300),
        (133, 0),
        (7, 32),
    ];
    stream_check::<136>(&key32, b"", &script256);
    stream_check::<136>(&key32, b"RCS", &script256);
}

#[test]
fn finalize_twice_differs_and_pieces_equal_whole() {
    let key = [9u8; 64];
    let msg: Vec<u8> = (0..500u32).map(|i| i as u8).collect();
    let mut a = Kmac512::new(&key, b"");
    a.update(&msg);
    let (mut t1, mut t2) = ([0u8; 64], [0u8; 64]);
    a.finalize_into(&mut t1);
    a.finalize_into(&mut t2);
    assert_ne!(t1, t2);

    let mut one_shot = [0u8; 64];
    kmac512(&key, &msg, b"", &mut one_shot);
    assert_eq!(t1, one_shot);

    for piece in [1, 5, 71, 72, 73, 200] {
        let mut b = Kmac512::new(&key, b"");
        for c in msg.chunks(piece) {
            b.update(c);
        }
        let mut u = [0u8; 64];
        b.finalize_into(&mut u);
        assert_eq!(u, one_shot, "piece {piece}");
    }
}

#[test]
fn secrets_do_not_print() {
    let m = Kmac256::new(b"secret key", b"");
    assert_eq!(format!("{m:?}"), "<redacted>");
    let s: Sponge<72> = Sponge::new();
    assert!(format!("{s:?}").contains("<redacted>"));
}

#[test]
fn squeeze_without_finalize_uses_keccak_padding() {
    let mut a: Sponge<136> = Sponge::new();
    a.absorb(b"abc");
    let mut b = a.clone();
    let (mut x, mut y) = ([0u8; 40], [0u8; 40]);
    a.squeeze(&mut x);
    b.finalize(KECCAK_DOMAIN);
    b.squeeze(&mut y);
    assert_eq!(x, y);
}
