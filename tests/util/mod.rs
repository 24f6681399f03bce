//! Shared helpers for the integration tests.
//!
//! Linux only (network namespaces, the error queue, the fault shim): on
//! other targets only the portable [`alloc`] counter is here, so crates
//! that use this as a dev-dependency still type-check there.
pub mod alloc;
#[cfg(target_os = "linux")]
pub mod driver;
#[cfg(target_os = "linux")]
pub mod icmp;
#[cfg(target_os = "linux")]
pub mod netlab;
