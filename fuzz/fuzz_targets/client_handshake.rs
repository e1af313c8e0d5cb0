#![no_main]
//! Fuzzed server messages into each client handshake state.

use dktp_fuzz::{Packet, feed_handshake};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, Packet, i8)| {
    let (step, packet, skew) = input;
    // Messages 2, 4 and 6 (steps 1, 3, 5) are the server's.
    feed_handshake(1 + 2 * usize::from(step % 3), &packet, skew);
});
