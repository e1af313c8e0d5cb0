#![no_main]
//! Fuzzed server messages into each client handshake state.

use dktp_fuzz::{NOW, Packet, Rng, honest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, Packet, i8)| {
    let (step, packet, skew) = input;
    let h = honest();
    let now = NOW.wrapping_add_signed(i64::from(skew));
    let mut rng = Rng::new("fuzz");
    let _ = match step % 3 {
        0 => {
            h.c1.clone()
                .handle(&packet.bytes(&h.packets[1]), now, &mut rng)
                .map(drop)
        }
        1 => {
            h.c2.clone()
                .handle(&packet.bytes(&h.packets[3]), now, &mut rng)
                .map(drop)
        }
        _ => match h.c2.clone().handle(&h.packets[3], NOW, &mut rng) {
            Ok(c3) => c3
                .next
                .handle(&packet.bytes(&h.packets[5]), now, &mut rng)
                .map(drop),
            Err(e) => Err(e),
        },
    };
});
