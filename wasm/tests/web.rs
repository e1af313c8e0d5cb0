//! The client compiled to wasm32, under node and in headless Chromium (wasm-bindgen-test):
//! a handshake, an echo and a ratchet against an in-process server, every output through
//! the JavaScript-facing `Session`, and the seal benchmark.
//!
//! ```text
//! CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//!   cargo test -p dktp-wasm --target wasm32-unknown-unknown --test web            # node
//! WASM_BINDGEN_USE_BROWSER=1 WASM_BINDGEN_TEST_WEBDRIVER_JSON=wasm/webdriver.json \
//!   CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//!   cargo test -p dktp-wasm --target wasm32-unknown-unknown --test web            # Chromium
//! ```
#![cfg(target_arch = "wasm32")]

use dktp::generation::Generations;
use dktp::kex::{PeerKeys, Settings};
use dktp::listener::Listener;
use dktp::pq::OsEntropy;
use dktp::session::Output;
use dktp_wasm::{Session, seal_bench};
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

#[wasm_bindgen_test]
fn a_session_through_the_javascript_surface() {
    let now = (js_sys::Date::now() / 1000.0) as u64;
    let config = "dilithium-s1_kyber-s1_sha3_rcs".parse().expect("config");
    let (mut s_local, s_remote) =
        dktp::peer_key::generate(config, [1; 16], now, &mut OsEntropy).expect("keys");
    let (mut c_local, c_remote) =
        dktp::peer_key::generate(config, [2; 16], now, &mut OsEntropy).expect("keys");
    dktp::peer_key::link(&mut s_local, &c_remote);
    dktp::peer_key::link(&mut c_local, &s_remote);
    let (c_local, s_remote_bytes) = (c_local.to_bytes(), s_remote.to_bytes());
    let keys = PeerKeys {
        local: s_local,
        remote: c_remote,
    };
    let listener = Listener::new(Settings::default());
    let record = Generations::of_keys(&keys);
    listener.insert(keys, record);
    let mut server = listener.accept(now);
    let mut client = Session::new(&c_local, &s_remote_bytes, None, None).expect("session");
    let mut seen: Vec<String> = Vec::new();
    let mut echoed = Vec::new();
    let mut pump = |client: &mut Session, seen: &mut Vec<String>, echoed: &mut Vec<Vec<u8>>| loop {
        let mut moved = false;
        loop {
            let ev = client.poll();
            if ev.is_undefined() {
                break;
            }
            let kind = get(&ev, "type").as_string().unwrap_or_default();
            match kind.as_str() {
                "transmit" => {
                    moved = true;
                    let p = Uint8Array::new(&get(&ev, "bytes")).to_vec();
                    let _ = server.handle_bytes(&p, now, &mut OsEntropy);
                }
                "message" => echoed.push(Uint8Array::new(&get(&ev, "data")).to_vec()),
                _ => {}
            }
            seen.push(kind);
        }
        while let Some(o) = server.poll_output() {
            match o {
                Output::Transmit(p) => {
                    moved = true;
                    client.feed(&p).expect("feed");
                }
                Output::Event(dktp::session::Event::Message(m)) => {
                    moved = true;
                    let _ = server.send(&m, now);
                }
                _ => {}
            }
        }
        if !moved {
            return;
        }
    };
    pump(&mut client, &mut seen, &mut echoed);
    assert!(client.established(), "{seen:?}");
    client.send(b"hello from wasm").expect("send");
    client.ratchet().expect("ratchet");
    client.send(b"after the ratchet").expect("send");
    pump(&mut client, &mut seen, &mut echoed);
    assert_eq!(
        echoed,
        [b"hello from wasm".to_vec(), b"after the ratchet".to_vec()]
    );
    let first_secrets = seen.iter().position(|k| k == "secrets").expect("secrets");
    let established = seen
        .iter()
        .position(|k| k == "established")
        .expect("established");
    assert!(first_secrets < established, "{seen:?}");
    assert!(seen.iter().any(|k| k == "ratchet"), "{seen:?}");
    client.close().expect("close");
    pump(&mut client, &mut seen, &mut echoed);
    assert!(client.closed());
    // Garbage from a server is a typed error, not a panic.
    let mut other = Session::new(&c_local, &s_remote_bytes, None, None).expect("session");
    let e = other.feed(&[0xff; 40]).expect_err("garbage");
    assert_eq!(get(&e, "name").as_string().as_deref(), Some("DktpError"));
    assert_eq!(get(&e, "kind").as_string().as_deref(), Some("protocol"));
}

#[wasm_bindgen_test]
fn the_seal_benchmark_runs() {
    let ms = seal_bench(16384, 50).expect("bench");
    assert!(ms >= 0.0);
}
