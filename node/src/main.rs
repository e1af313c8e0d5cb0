//! The `dktp` binary.
fn main() {}
