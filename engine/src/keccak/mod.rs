//! The Keccak family (owned by the keccak work; see FACTS §1).
