//! Any Unix: one `sendmsg`/`recvmsg` per message (the portable backend,
//! used on every platform when mmsg is off), and the platform functions of
//! a Unix without a file of its own (`cfg(generic_unix)`), which offers
//! only what POSIX and RFC 3542 promise.

use std::io;
use std::os::fd::RawFd;

use super::{MsgHdr, MsgLen, Wait};

/// `sendmsg` for each message in order until one fails.
pub(super) fn send_msgs(fd: RawFd, msgs: &mut [MsgHdr]) -> io::Result<usize> {
    for (i, m) in msgs.iter_mut().enumerate() {
        // SAFETY: sendmsg(2) with a msghdr whose name, iovec and control
        // pointers are valid for their stated lengths for this call (built by
        // sys::send on its stack frame). MSG_DONTWAIT: never block.
        match syscall!(sendmsg(fd, &m.hdr, libc::MSG_DONTWAIT)) {
            Ok(n) => m.len = n as MsgLen,
            Err(e) if i == 0 => return Err(e),
            Err(_) => return Ok(i),
        }
    }
    Ok(msgs.len())
}

/// `recvmsg` into each message until the queue is empty (the first may
/// wait, as `wait` says; the others never do). An error after the first
/// message is handed back beside the count, like `recvmmsg` keeps it for
/// the next call, so it is never lost.
pub(super) fn recv_msgs(fd: RawFd, msgs: &mut [MsgHdr], wait: Wait) -> (usize, Option<io::Error>) {
    for (i, m) in msgs.iter_mut().enumerate() {
        let flags = if i == 0 && wait == Wait::ForFirst { 0 } else { libc::MSG_DONTWAIT };
        // SAFETY: recvmsg(2) with a msghdr whose name, iovec and control
        // pointers are writable for their stated lengths for this call
        // (built by sys::recv over the batch's buffers).
        match syscall!(recvmsg(fd, &mut m.hdr, flags)) {
            Ok(n) => m.len = n as MsgLen,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && i > 0 => return (i, None),
            Err(e) => return (i, Some(e)),
        }
    }
    (msgs.len(), None)
}

#[cfg(generic_unix)]
pub(super) use super::sockopt::{apply_ip_options, ip_options};
#[cfg(generic_unix)]
pub(super) use generic::*;

/// A Unix volley has no file for: the RFC 3542 IPv6 receive options, no
/// IPv4 per-datagram metadata (its constants differ between BSDs), and
/// `Unsupported` for the rest.
#[cfg(generic_unix)]
mod generic {
    use std::io;
    use std::os::fd::BorrowedFd;

    use super::super::sockopt::set_both;
    use crate::validate::Families;
    use crate::{Capabilities, Config};

    fn unsupported(what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, format!("{what} is not available on this platform"))
    }

    /// IPv6 pktinfo, traffic class and hop limit (RFC 3542) on an IPv6-only
    /// socket; nothing else is probed.
    pub(crate) fn probe(
        fd: BorrowedFd<'_>,
        _config: &Config,
        families: Families,
        _portable: bool,
        caps: &mut Capabilities,
    ) -> io::Result<()> {
        if !families.v4 {
            caps.pktinfo = set_both(fd, families, 0, libc::IPV6_RECVPKTINFO);
            caps.ecn = set_both(fd, families, 0, libc::IPV6_RECVTCLASS);
            caps.ttl = set_both(fd, families, 0, libc::IPV6_RECVHOPLIMIT);
        }
        Ok(())
    }

    pub(crate) fn bind_device(_sock: &socket2::Socket, _dev: &str) -> io::Result<()> {
        Err(unsupported("binding to a device"))
    }

    pub(crate) fn bound_device(_sock: &socket2::Socket) -> io::Result<Option<Vec<u8>>> {
        Err(unsupported("binding to a device"))
    }

    pub(crate) fn force_buffer(_fd: BorrowedFd<'_>, _size: usize, _recv: bool) {}

    pub(crate) fn set_multicast_if_index_v4(_fd: BorrowedFd<'_>, index: u32) -> io::Result<()> {
        if index == 0 {
            return Ok(());
        }
        Err(unsupported("an IPv4 multicast interface by index"))
    }

    pub(crate) fn set_pmtud(_fd: BorrowedFd<'_>, _families: Families, _mode: crate::Pmtud) -> io::Result<()> {
        Err(unsupported("path-MTU discovery modes"))
    }

    /// The mode cannot be read: assume fragmentation is possible.
    pub(crate) fn may_fragment(_fd: BorrowedFd<'_>, _families: Families) -> bool {
        true
    }

    pub(crate) fn path_mtu(_fd: BorrowedFd<'_>, _v6_path: bool) -> io::Result<u32> {
        Err(unsupported("reading the path MTU"))
    }

    pub(crate) fn attach_cpu_steering(_fd: BorrowedFd<'_>, _n: usize) -> io::Result<()> {
        Err(unsupported("CPU steering"))
    }

    /// No error queue: always empty.
    pub(crate) fn read_error_entry(_fd: BorrowedFd<'_>) -> io::Result<Option<Option<crate::IcmpError>>> {
        Ok(None)
    }

    /// Only Linux delivers other sockets' groups: nothing to turn off.
    pub(crate) fn disable_multicast_all(_fd: BorrowedFd<'_>, _v4: bool) -> io::Result<()> {
        Ok(())
    }
}
