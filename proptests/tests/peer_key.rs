//! Peer-key codecs: parsing never panics, and serialize ∘ deserialize is the identity on
//! every configuration's keys.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use dktp::config::{CONFIG_SIZE, Config};
use dktp::peer_key::{self, LocalPeerKey, RemotePeerKey};
use dktp::pq::Coins;
use proptest::prelude::*;

/// Configurations whose signature keys are cheap to generate (ML-DSA).
fn fast_config() -> impl Strategy<Value = Config> {
    prop::sample::select(
        Config::ALL
            .iter()
            .copied()
            .filter(|c| !c.sig().is_sphincs())
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..9000)) {
        let _ = LocalPeerKey::from_bytes(&bytes);
        let _ = RemotePeerKey::from_bytes(&bytes);
    }

    #[test]
    fn valid_header_with_wrong_length_is_refused(config in fast_config(), extra in 0usize..200, cut in any::<bool>()) {
        let mut bytes = config.to_wire().to_vec();
        let want = config.local_peer_key_size();
        let len = if cut { want.saturating_sub(extra + 1).max(CONFIG_SIZE) } else { want + extra + 1 };
        bytes.resize(len, 0xa5);
        prop_assert!(LocalPeerKey::from_bytes(&bytes).is_err());
    }

    #[test]
    fn generated_keys_round_trip(
        config in fast_config(),
        keyid in any::<[u8; 16]>(),
        now in any::<u32>(),
        coins in prop::collection::vec(any::<u8>(), 64),
    ) {
        let (mut local, remote) = peer_key::generate(config, keyid, u64::from(now), &mut Coins::new(&coins)).unwrap();
        peer_key::link(&mut local, &remote);
        let lb = local.to_bytes();
        let rb = remote.to_bytes();
        prop_assert_eq!(lb.len(), config.local_peer_key_size());
        prop_assert_eq!(rb.len(), config.remote_peer_key_size());
        let local2 = LocalPeerKey::from_bytes(&lb).unwrap();
        let remote2 = RemotePeerKey::from_bytes(&rb).unwrap();
        prop_assert_eq!(&local2.to_bytes()[..], &lb[..]);
        prop_assert_eq!(&remote2.to_bytes()[..], &rb[..]);
        prop_assert!(peer_key::check_link(&local2, &remote2).is_ok());
        // Same coins, same keys.
        let (again, _) = peer_key::generate(config, keyid, u64::from(now), &mut Coins::new(&coins)).unwrap();
        prop_assert_eq!(again.signing_key(), local.signing_key());
    }
}
