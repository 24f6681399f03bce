//! macOS and iOS: per-datagram metadata through the options the XNU
//! kernel has, one datagram per syscall.
//!
//! - receive: `IP_PKTINFO` / `IPV6_RECVPKTINFO` (local address and
//!   interface), `IP_RECVTOS` / `IPV6_RECVTCLASS` (ECN and DSCP),
//!   `IP_RECVTTL` / `IPV6_RECVHOPLIMIT`;
//! - send: `IP_TOS` (an `int`) / `IPV6_TCLASS` and `IP_PKTINFO` /
//!   `IPV6_PKTINFO` (source address, interface) as control messages;
//! - PMTUD: `IP_DONTFRAG` / `IPV6_DONTFRAG` (`Pmtud::Do` and `Probe` both
//!   set DF; the kernel keeps no per-socket probe mode);
//! - not here: `recvmmsg`/`sendmmsg` (XNU's `sendmsg_x`/`recvmsg_x` are
//!   private), GSO (emulated: one datagram per segment), GRO, the error
//!   queue, receive timestamps, `SO_TXTIME`, the drop counter, reuse-port
//!   CPU steering, binding to a device by name.
//!
//! Compiled and linted in CI for `x86_64-apple-darwin`,
//! `aarch64-apple-darwin` and `aarch64-apple-ios`; not run there (see
//! docs/platforms.md for what is unverified).

use std::io;
use std::os::fd::BorrowedFd;

use super::sockopt::{may_fragment_dontfrag, set_both, set_dontfrag};
use crate::validate::Families;
use crate::{Capabilities, Config};

fn unsupported(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("{what} is not available on Apple platforms"))
}

/// Turns on the receive metadata the kernel offers.
pub(super) fn probe(
    fd: BorrowedFd<'_>,
    config: &Config,
    families: Families,
    _portable: bool,
    caps: &mut Capabilities,
) -> io::Result<()> {
    caps.pktinfo = set_both(fd, families, libc::IP_PKTINFO, libc::IPV6_RECVPKTINFO);
    caps.ecn = set_both(fd, families, libc::IP_RECVTOS, libc::IPV6_RECVTCLASS);
    caps.ttl = set_both(fd, families, libc::IP_RECVTTL, libc::IPV6_RECVHOPLIMIT);
    if config.timestamps {
        return Err(unsupported("nanosecond receive timestamps (SO_TIMESTAMPNS)"));
    }
    if config.txtime {
        return Err(unsupported("SO_TXTIME"));
    }
    Ok(())
}

/// `IP_DONTFRAG` / `IPV6_DONTFRAG`.
pub(super) fn set_pmtud(fd: BorrowedFd<'_>, families: Families, mode: crate::Pmtud) -> io::Result<()> {
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
pub(super) fn read_error_entry(_fd: BorrowedFd<'_>) -> io::Result<Option<Option<crate::IcmpError>>> {
    Ok(None)
}

/// Only Linux delivers other sockets' groups: nothing to turn off.
pub(crate) fn disable_multicast_all(_fd: BorrowedFd<'_>, _v4: bool) -> io::Result<()> {
    Ok(())
}

pub(super) fn bind_device(_sock: &socket2::Socket, _dev: &str) -> io::Result<()> {
    Err(unsupported("binding to a device by name"))
}

pub(super) fn bound_device(_sock: &socket2::Socket) -> io::Result<Option<Vec<u8>>> {
    Err(unsupported("binding to a device by name"))
}

/// No privileged override of the buffer limits.
pub(super) fn force_buffer(_fd: BorrowedFd<'_>, _size: usize, _recv: bool) {}
