#![no_main]
//! The packet codec on arbitrary bytes: header decode, framing, splitting, error packets.

use dktp::packet::{self, Header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, u32, bool)| {
    let (bytes, max, established) = input;
    if let Ok(h) = Header::decode(&bytes) {
        assert_eq!(&h.encode()[..], &bytes[..packet::HEADER_LEN]);
    }
    if let Ok(packet::Frame::Complete { len, .. }) = packet::frame(&bytes, max) {
        assert!(len <= bytes.len());
    }
    let _ = packet::split_packet(&bytes);
    let _ = packet::parse_error_packet(&bytes, established);
});
