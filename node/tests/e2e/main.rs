//! End-to-end tests with the built `dktp` binary: real processes, real sockets, real
//! stores, on loopback.

mod bad_input;
mod crash;
mod load;
mod support;
mod tunnel;
