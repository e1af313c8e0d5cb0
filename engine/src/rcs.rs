//! RCS-256 / RCS-512 authenticated channels (FACTS §2).
