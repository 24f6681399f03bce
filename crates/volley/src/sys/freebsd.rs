//! FreeBSD: `recvmmsg`/`sendmmsg` (FreeBSD 11+) and per-datagram metadata
//! through FreeBSD's own IPv4 options.
//!
//! - receive: `IP_RECVDSTADDR` (local address) + `IP_RECVIF` (interface) /
//!   `IPV6_RECVPKTINFO`, `IP_RECVTOS` / `IPV6_RECVTCLASS` (ECN and DSCP),
//!   `IP_RECVTTL` / `IPV6_RECVHOPLIMIT`;
//! - send: `IP_TOS` (one byte) / `IPV6_TCLASS`, `IP_SENDSRCADDR` (source
//!   address; the socket must be bound to `INADDR_ANY`) / `IPV6_PKTINFO`.
//!   An IPv4 outgoing interface cannot be chosen per datagram: a
//!   transmit's `src_ifindex` to an IPv4 destination is refused before
//!   any syscall (`InvalidTransmit::SrcIfindexUnsupported`, in
//!   `validate.rs`);
//! - PMTUD: `IP_DONTFRAG` / `IPV6_DONTFRAG`;
//! - not here: GSO (emulated), GRO, the error queue, receive timestamps,
//!   `SO_TXTIME`, the drop counter, reuse-port CPU steering, binding to a
//!   device.
//!
//! Compiled and linted in CI for `x86_64-unknown-freebsd`; not run there
//! (see docs/platforms.md).

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

use super::sockopt::{set_both, set_int};
use super::{MsgHdr, Wait};
use crate::validate::Families;
use crate::{Capabilities, Config};

fn unsupported(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("{what} is not available on FreeBSD"))
}

/// Turns on the receive metadata the kernel offers.
pub(super) fn probe(
    fd: BorrowedFd<'_>,
    config: &Config,
    families: Families,
    portable: bool,
    caps: &mut Capabilities,
) -> io::Result<()> {
    caps.pktinfo = set_both(fd, families, libc::IP_RECVDSTADDR, libc::IPV6_RECVPKTINFO)
        && (!families.v4 || set_int(fd, libc::IPPROTO_IP, libc::IP_RECVIF, 1).is_ok());
    caps.ecn = set_both(fd, families, libc::IP_RECVTOS, libc::IPV6_RECVTCLASS);
    caps.ttl = set_both(fd, families, libc::IP_RECVTTL, libc::IPV6_RECVHOPLIMIT);
    if config.timestamps {
        return Err(unsupported("nanosecond receive timestamps (SO_TIMESTAMPNS)"));
    }
    if config.txtime {
        return Err(unsupported("SO_TXTIME"));
    }
    caps.mmsg = !portable;
    Ok(())
}

/// One `sendmmsg` over `msgs`.
pub(super) fn send_mmsg(fd: RawFd, msgs: &mut [MsgHdr]) -> io::Result<usize> {
    // SAFETY: sendmmsg(2) (FreeBSD): "msgvec is a pointer to an array of
    // mmsghdr structures. The size of this array is specified in vlen."
    // MsgHdr has FreeBSD's mmsghdr layout (msg_len an ssize_t; asserted at
    // compile time in sys/mod.rs) and `msgs` holds `msgs.len()` of them,
    // each pointing at a sockaddr, one iovec and its control data, all
    // live for this call. MSG_DONTWAIT: never block, whatever the
    // descriptor's mode.
    let n = syscall!(sendmmsg(fd, msgs.as_mut_ptr().cast::<libc::mmsghdr>(), msgs.len(), libc::MSG_DONTWAIT))?;
    Ok(n as usize)
}

/// One `recvmmsg` into `msgs`; `wait` as in [`Wait::mmsg_flags`].
pub(super) fn recv_mmsg(fd: RawFd, msgs: &mut [MsgHdr], wait: Wait) -> io::Result<usize> {
    // SAFETY: recvmmsg(2) (FreeBSD): the same array contract as sendmmsg;
    // each entry points at writable name, iovec and control buffers of
    // the stated sizes, live for this call. timeout = NULL: the flags say
    // whether to wait for the first message, never for more.
    let flags = wait.mmsg_flags();
    let n = syscall!(recvmmsg(fd, msgs.as_mut_ptr().cast::<libc::mmsghdr>(), msgs.len(), flags, std::ptr::null()))?;
    Ok(n as usize)
}

/// Whether the mmsg calls themselves are refused (FreeBSD 10 and older
/// lack them: `ENOSYS`): a zero-length call reaches no packet path.
pub(super) fn mmsg_blocked(fd: RawFd, send: bool) -> bool {
    let res = if send {
        // SAFETY: vlen 0: the kernel reads no mmsghdr, so a null pointer is fine.
        syscall!(sendmmsg(fd, std::ptr::null_mut(), 0, 0))
    } else {
        // SAFETY: vlen 0 and no timeout: nothing is read or written.
        syscall!(recvmmsg(fd, std::ptr::null_mut(), 0, libc::MSG_DONTWAIT, std::ptr::null()))
    };
    matches!(res, Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)))
}

// What macOS/iOS and FreeBSD share: DF-based path-MTU control and the
// Linux-only features both lack.
pub(crate) use super::bsd::{
    apply_ip_options, attach_cpu_steering, disable_multicast_all, ip_options, may_fragment, path_mtu,
};
pub(super) use super::bsd::{bind_device, bound_device, force_buffer, read_error_entry, set_pmtud};
