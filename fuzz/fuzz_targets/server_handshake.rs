#![no_main]
//! Fuzzed client messages into each server handshake state.

use dktp::kex::{ReplayGate, SinglePeer, server};
use dktp_fuzz::{NOW, Packet, Rng, honest, settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, Packet, i8)| {
    let (step, packet, skew) = input;
    let h = honest();
    let now = NOW.wrapping_add_signed(i64::from(skew));
    let mut rng = Rng::new("fuzz");
    let _ = match step % 3 {
        0 => server::AwaitConnectRequest::new(settings())
            .handle(
                &packet.bytes(&h.packets[0]),
                now,
                &mut rng,
                &mut SinglePeer(h.server_keys.clone()),
                &mut ReplayGate::default(),
            )
            .map(drop),
        1 => {
            h.s1.clone()
                .handle(&packet.bytes(&h.packets[2]), now, &mut rng)
                .map(drop)
        }
        _ => match h
            .s1
            .clone()
            .handle(&h.packets[2], NOW, &mut h.srng1.clone())
        {
            Ok(s2) => s2
                .next
                .handle(&packet.bytes(&h.packets[4]), now, &mut rng)
                .map(drop),
            Err(e) => Err(e),
        },
    };
});
