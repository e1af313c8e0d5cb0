#![no_main]
//! Fuzzed client messages into each server handshake state.

use dktp_fuzz::{Packet, feed_handshake};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, Packet, i8)| {
    let (step, packet, skew) = input;
    // Messages 1, 3 and 5 (steps 0, 2, 4) are the client's.
    feed_handshake(2 * usize::from(step % 3), &packet, skew);
});
