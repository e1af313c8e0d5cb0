#![no_main]
//! Peer-key files: parsing arbitrary bytes never panics, and what parses re-serializes to
//! the same bytes.

use dktp::peer_key::{LocalPeerKey, RemotePeerKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(k) = LocalPeerKey::from_bytes(bytes) {
        assert_eq!(&k.to_bytes()[..], bytes);
    }
    if let Ok(k) = RemotePeerKey::from_bytes(bytes) {
        assert_eq!(&k.to_bytes()[..], bytes);
    }
});
