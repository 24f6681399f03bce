//! Shared helpers for the integration tests.
pub mod driver;
pub mod icmp;
pub mod netlab;
