//! What macOS/iOS and FreeBSD share: path-MTU control through
//! `IP_DONTFRAG` / `IPV6_DONTFRAG`, and the Linux-only features both lack
//! (the error queue, `IP_MTU`, reuse-port CPU steering, binding to a device
//! by name, forced buffer sizes, `IP_MULTICAST_ALL`).

use std::io;
use std::os::fd::BorrowedFd;

pub(crate) use super::sockopt::{apply_ip_options, ip_options};
use super::sockopt::{may_fragment_dontfrag, set_dontfrag};
use crate::validate::Families;

fn unsupported(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("{what} is not available on {}", std::env::consts::OS))
}

/// `IP_DONTFRAG` / `IPV6_DONTFRAG`.
pub(crate) fn set_pmtud(fd: BorrowedFd<'_>, families: Families, mode: crate::Pmtud) -> io::Result<()> {
    set_dontfrag(fd, families, mode)
}

/// From `IP_DONTFRAG` / `IPV6_DONTFRAG`.
pub(crate) fn may_fragment(fd: BorrowedFd<'_>, families: Families) -> bool {
    may_fragment_dontfrag(fd, families)
}

pub(crate) fn path_mtu(_fd: BorrowedFd<'_>, _v6_path: bool) -> io::Result<u32> {
    Err(unsupported("reading the path MTU (IP_MTU)"))
}

pub(crate) fn attach_cpu_steering(_fd: BorrowedFd<'_>, _n: usize) -> io::Result<()> {
    Err(unsupported("CPU steering (reuse-port BPF)"))
}

/// No error queue: always empty.
pub(crate) fn read_error_entry(_fd: BorrowedFd<'_>) -> io::Result<Option<Option<crate::IcmpError>>> {
    Ok(None)
}

/// Only Linux delivers other sockets' groups: nothing to turn off.
pub(crate) fn disable_multicast_all(_fd: BorrowedFd<'_>, _v4: bool) -> io::Result<()> {
    Ok(())
}

pub(crate) fn bind_device(_sock: &socket2::Socket, _dev: &str) -> io::Result<()> {
    Err(unsupported("binding to a device by name"))
}

pub(crate) fn bound_device(_sock: &socket2::Socket) -> io::Result<Option<Vec<u8>>> {
    Err(unsupported("binding to a device by name"))
}

/// No privileged override of the buffer limits.
pub(crate) fn force_buffer(_fd: BorrowedFd<'_>, _size: usize, _recv: bool) {}
