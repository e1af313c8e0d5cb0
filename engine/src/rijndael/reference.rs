//! Test-only, deliberately naive Rijndael-256 (table S-box, byte loops): the independent
//! reference the constant-time portable backend is checked against. Not constant time.
//!
//! Self-contained (std only), so that the property tests (`proptests/tests/
//! rijndael_backends.rs`) compile this same file and check every backend, portable
//! included, against it.

/// The AES S-box, computed (once) from its definition: multiplicative inverse in GF(2^8)
/// modulo x^8 + x^4 + x^3 + x + 1 (0 maps to 0), then the affine map
/// `b ^ rotl(b,1) ^ rotl(b,2) ^ rotl(b,3) ^ rotl(b,4) ^ 0x63`.
pub(crate) fn sbox() -> [u8; 256] {
    static SBOX: std::sync::OnceLock<[u8; 256]> = std::sync::OnceLock::new();
    *SBOX.get_or_init(sbox_from_definition)
}

fn sbox_from_definition() -> [u8; 256] {
    let mut s = [0u8; 256];
    for (x, out) in s.iter_mut().enumerate() {
        let x = x as u8;
        // inverse by exhaustive search (x * y == 1)
        let inv = if x == 0 {
            0
        } else {
            (1..=255u8).find(|&y| gmul(x, y) == 1).unwrap_or(0)
        };
        *out = inv
            ^ inv.rotate_left(1)
            ^ inv.rotate_left(2)
            ^ inv.rotate_left(3)
            ^ inv.rotate_left(4)
            ^ 0x63;
    }
    s
}

/// GF(2^8) multiplication, shift-and-add.
pub(crate) fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

pub(crate) fn sub_bytes(s: &mut [u8; 32]) {
    let t = sbox();
    for b in s.iter_mut() {
        *b = t[*b as usize];
    }
}

/// Row `r` rotated left by `(0, 1, 3, 4)[r]` of 8 columns.
pub(crate) fn shift_rows(s: &mut [u8; 32]) {
    let old = *s;
    for r in 0..4 {
        let off = [0usize, 1, 3, 4][r];
        for c in 0..8 {
            s[4 * c + r] = old[4 * ((c + off) % 8) + r];
        }
    }
}

fn mix_column(a: [u8; 4]) -> [u8; 4] {
    let m = |x: u8, k: u8| gmul(x, k);
    [
        m(a[0], 2) ^ m(a[1], 3) ^ a[2] ^ a[3],
        a[0] ^ m(a[1], 2) ^ m(a[2], 3) ^ a[3],
        a[0] ^ a[1] ^ m(a[2], 2) ^ m(a[3], 3),
        m(a[0], 3) ^ a[1] ^ a[2] ^ m(a[3], 2),
    ]
}

pub(crate) fn mix_columns(s: &mut [u8; 32]) {
    for c in 0..8 {
        let col = mix_column([s[4 * c], s[4 * c + 1], s[4 * c + 2], s[4 * c + 3]]);
        s[4 * c..4 * c + 4].copy_from_slice(&col);
    }
}

fn add_round_key(s: &mut [u8; 32], rk: &[u8]) {
    for (b, k) in s.iter_mut().zip(rk) {
        *b ^= k;
    }
}

/// Rijndael-256 encryption with the given expanded key (`32 * (rounds + 1)` bytes).
pub(crate) fn encrypt(block: &[u8; 32], rk: &[u8], rounds: usize) -> [u8; 32] {
    assert_eq!(rk.len(), 32 * (rounds + 1));
    let mut s = *block;
    add_round_key(&mut s, &rk[..32]);
    for r in 1..rounds {
        sub_bytes(&mut s);
        shift_rows(&mut s);
        mix_columns(&mut s);
        add_round_key(&mut s, &rk[32 * r..32 * r + 32]);
    }
    sub_bytes(&mut s);
    shift_rows(&mut s);
    add_round_key(&mut s, &rk[32 * rounds..]);
    s
}

/// CTR keystream XOR: block `i` of `data` is XORed with `encrypt(nonce + i)`, the nonce being
/// a 256-bit little-endian integer (computed here with a byte-wise carry loop).
pub(crate) fn ctr_xor(nonce: &mut [u8; 32], data: &mut [u8], rk: &[u8], rounds: usize) {
    for chunk in data.chunks_mut(32) {
        let ks = encrypt(nonce, rk, rounds);
        for (d, k) in chunk.iter_mut().zip(ks) {
            *d ^= k;
        }
        for b in nonce.iter_mut() {
            *b = b.wrapping_add(1);
            if *b != 0 {
                break;
            }
        }
    }
}

/// One AES (128-bit block) round without the key: ShiftRows (offsets 0,1,2,3 of 4 columns),
/// SubBytes, MixColumns. Emulates AESENC with a zero key.
pub(crate) fn aes128_round_no_key(y: &[u8; 16]) -> [u8; 16] {
    let t = sbox();
    let mut s = [0u8; 16];
    for r in 0..4 {
        for c in 0..4 {
            s[4 * c + r] = t[y[4 * ((c + r) % 4) + r] as usize];
        }
    }
    let mut out = [0u8; 16];
    for c in 0..4 {
        let col = mix_column([s[4 * c], s[4 * c + 1], s[4 * c + 2], s[4 * c + 3]]);
        out[4 * c..4 * c + 4].copy_from_slice(&col);
    }
    out
}

#[test]
fn sbox_known_values() {
    let s = sbox();
    assert_eq!(s[0x00], 0x63);
    assert_eq!(s[0x01], 0x7c);
    assert_eq!(s[0x53], 0xed);
    assert_eq!(s[0xff], 0x16);
    let mut seen = [false; 256];
    for &v in &s {
        seen[v as usize] = true;
    }
    assert!(seen.iter().all(|&b| b));
}
