//! The engine's transport API end to end, in process: the drop matrix of the pre-shared
//! secrets' generations, the many-peer listener, the timers, chunked byte streams and the
//! blocking TCP example of the connection module's docs, and the refusal of all-zero
//! McEliece keys (FACTS §11.5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batched;
mod drop_matrix;
mod listener;
mod mceliece_zero_key;
mod tcp_example;
mod timers;
