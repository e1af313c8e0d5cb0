//! RCS channels: every backend equals portable (ciphertexts, tags, nonces, counters over a
//! stream of packets), and tampering with any byte of header, ciphertext or tag fails the
//! open and releases nothing.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use dktp::Backend;
use dktp::rcs::{Rcs256, Rcs512, RcsChannel, RcsError, Variant};
use proptest::prelude::*;

fn nonce_strategy() -> impl Strategy<Value = [u8; 32]> {
    prop_oneof![
        any::<[u8; 32]>(),
        // Near carry boundaries: low bytes 0xff.., so a packet's blocks carry across words.
        (any::<[u8; 32]>(), 1usize..=32).prop_map(|(mut n, k)| {
            n[..k].iter_mut().for_each(|b| *b = 0xff);
            n
        }),
        Just([0xff; 32]),
    ]
}

fn lengths() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..200, 2 => 200usize..5000, 1 => 5000usize..=65536]
}

fn stream_equal<V: Variant>(key: &[u8], nonce: [u8; 32], packets: &[(Vec<u8>, usize)]) {
    let mut reference = RcsChannel::<V>::with_backend(Backend::Portable, key, &nonce, &[]).unwrap();
    let mut others: Vec<_> = Backend::available()
        .into_iter()
        .filter(|b| *b != Backend::Portable)
        .map(|b| RcsChannel::<V>::with_backend(b, key, &nonce, &[]).unwrap())
        .collect();
    for (i, (ad, len)) in packets.iter().enumerate() {
        let pt: Vec<u8> = (0..*len).map(|j| (j * 31 + i) as u8).collect();
        let mut want = Vec::new();
        reference.seal(ad, &pt, &mut want).unwrap();
        for ch in &mut others {
            let mut got = Vec::new();
            ch.seal(ad, &pt, &mut got).unwrap();
            assert_eq!(got, want, "backend {} packet {i} len {len}", ch.backend());
            assert_eq!(ch.nonce(), reference.nonce());
            assert_eq!(ch.counter(), reference.counter());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn backends_equal_portable_512(key in any::<[u8; 32]>(), nonce in nonce_strategy(),
                                   packets in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..40), lengths()), 1..4)) {
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&key);
        k[32..].copy_from_slice(&key.map(|b| b ^ 0x5c));
        stream_equal::<Rcs512>(&k, nonce, &packets);
    }

    #[test]
    fn backends_equal_portable_256(key in any::<[u8; 32]>(), nonce in nonce_strategy(),
                                   packets in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..40), lengths()), 1..4)) {
        stream_equal::<Rcs256>(&key, nonce, &packets);
    }

    #[test]
    fn tampering_any_byte_fails_and_releases_nothing(
        key in any::<[u8; 64]>(), nonce in nonce_strategy(), header in any::<[u8; 21]>(),
        len in 0usize..600, pick in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        for b in Backend::available() {
            let mut tx = RcsChannel::<Rcs512>::with_backend(b, &key, &nonce, &[]).unwrap();
            let mut rx = RcsChannel::<Rcs512>::with_backend(b, &key, &nonce, &[]).unwrap();
            let pt: Vec<u8> = (0..len).map(|j| j as u8).collect();
            let mut packet = Vec::new();
            tx.seal(&header, &pt, &mut packet).unwrap();
            // Tamper with one byte of header || ciphertext || tag.
            let mut hdr = header;
            let total = hdr.len() + packet.len();
            let at = pick.index(total);
            if at < hdr.len() { hdr[at] ^= flip } else { packet[at - hdr.len()] ^= flip }
            let mut out = Vec::new();
            prop_assert_eq!(rx.open(&hdr, &packet, &mut out), Err(RcsError::Authentication));
            prop_assert!(out.is_empty());
            prop_assert!(rx.is_dead());
            // The channel stays dead, even for a genuine packet.
            let mut genuine = Vec::new();
            let mut tx2 = RcsChannel::<Rcs512>::with_backend(b, &key, &nonce, &[]).unwrap();
            tx2.seal(&header, &pt, &mut genuine).unwrap();
            prop_assert_eq!(rx.open(&header, &genuine, &mut out), Err(RcsError::ChannelDead));
            prop_assert!(out.is_empty());
        }
    }

    #[test]
    fn seal_then_open_round_trips(key in any::<[u8; 64]>(), nonce in nonce_strategy(),
                                  msgs in prop::collection::vec((any::<[u8; 21]>(), lengths()), 1..5)) {
        for b in Backend::available() {
            let mut tx = RcsChannel::<Rcs512>::with_backend(b, &key, &nonce, &[]).unwrap();
            let mut rx = RcsChannel::<Rcs512>::with_backend(b, &key, &nonce, &[]).unwrap();
            for (h, len) in &msgs {
                let pt: Vec<u8> = (0..*len).map(|j| (j ^ 0xa5) as u8).collect();
                let mut p = Vec::new();
                tx.seal(h, &pt, &mut p).unwrap();
                let mut out = Vec::new();
                rx.open(h, &p, &mut out).unwrap();
                prop_assert_eq!(out, pt);
            }
        }
    }
}
