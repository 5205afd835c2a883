//! Compatibility proof: the official AWS SDK for Rust driving a logwell server (see `tests/`).
