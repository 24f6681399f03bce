//! Shared helpers for the integration tests.
//!
//! Linux only (network namespaces, the error queue, the fault shim): on
//! other targets this crate is empty, so crates that use it as a
//! dev-dependency still type-check there.
#![cfg(target_os = "linux")]
pub mod driver;
pub mod icmp;
pub mod netlab;
