//! `kat`: runs known-answer vector files.
fn main() {}
