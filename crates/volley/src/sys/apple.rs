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

use super::sockopt::set_both;
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

// What macOS/iOS and FreeBSD share: DF-based path-MTU control and the
// Linux-only features both lack.
pub(crate) use super::bsd::{
    apply_ip_options, attach_cpu_steering, disable_multicast_all, ip_options, may_fragment, path_mtu,
};
pub(super) use super::bsd::{bind_device, bound_device, force_buffer, read_error_entry, set_pmtud};
