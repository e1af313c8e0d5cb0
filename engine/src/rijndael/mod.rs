//! Rijndael-256 (owned by the rijndael work; see FACTS §2).
