//! DKTP for browser and edge clients: a thin shim over the `dktp` engine.
//!
//! The wasm-bindgen surface arrives with the wasm client issue; today this crate proves the
//! engine builds for `wasm32-unknown-unknown` and re-exports it.
#![forbid(unsafe_code)]

pub use dktp;
