//! Shared helpers for the integration tests.
//!
//! The send/receive [`driver`] serves Linux and Windows (the suites that
//! run under Wine); the rest is Linux only (network namespaces, the error
//! queue, the fault shim). On other targets only the portable [`alloc`]
//! counter is here, so crates that use this as a dev-dependency still
//! type-check there.
pub mod alloc;
#[cfg(any(target_os = "linux", windows))]
pub mod driver;
#[cfg(target_os = "linux")]
pub mod icmp;
#[cfg(target_os = "linux")]
pub mod netlab;
