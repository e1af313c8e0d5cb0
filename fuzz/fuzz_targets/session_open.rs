#![no_main]
//! A sequence of fuzzed packets (raw, or honest data/ratchet/close packets edited) into an
//! established session.

use dktp_fuzz::{NOW, Packet, TestRng, honest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Vec<(u8, Packet)>| {
    let (mut client, mut server) = honest().sessions();
    let mut rng = TestRng::new("fuzz");
    for (kind, packet) in input.iter().take(8) {
        let mut honest = Vec::new();
        let made = match kind % 3 {
            0 => client.seal(b"fuzz", NOW, &mut honest),
            1 => client.start_ratchet(NOW, &mut rng).map(|p| honest = p),
            _ => client.close(NOW).map(|p| honest = p),
        };
        if made.is_err() {
            honest = vec![0; 21];
        }
        let mut bytes = packet.bytes(&honest);
        if server.open_in_place(&mut bytes, NOW, &mut rng).is_err() {
            assert!(!server.is_open());
            break;
        }
        while server.poll_output().is_some() {}
    }
});
