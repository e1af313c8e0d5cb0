//! End-to-end tests with the built `dktp` binary: real processes, real sockets, real
//! stores, on loopback.

mod bad_input;
mod browser;
#[cfg(feature = "etcd")]
mod cluster;
#[cfg(feature = "etcd")]
mod cluster_support;
mod crash;
mod load;
mod support;
mod tunnel;
mod vpn;
mod vpn_support;
