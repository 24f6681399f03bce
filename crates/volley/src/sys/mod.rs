//! Everything that touches libc. Nothing outside `sys/` is `unsafe`.
//!
//! # What a backend provides
//!
//! A backend moves an array of message headers ([`MsgHdr`], laid out like
//! Linux's `struct mmsghdr`) through the kernel:
//!
//! - `send_msgs(fd, &mut [MsgHdr]) -> io::Result<usize>`: send the messages
//!   in order; `Ok(n)` means the first `n` left; `Err` means the first one
//!   failed and none left.
//! - `recv_msgs(fd, &mut [MsgHdr])`: fill up to all of them, writing each
//!   header's `len`, `msg_namelen`, `msg_controllen` and `msg_flags`.
//!   `recvmmsg` answers `io::Result<usize>` (`Ok(n)` with `n >= 1`,
//!   `Err(WouldBlock)` when nothing is queued); the one-per-call loop
//!   answers `(usize, Option<io::Error>)`, because an error can follow the
//!   datagrams it already has: [`recv_msgs`] here keeps that error for the
//!   next call, as `recvmmsg` does in the kernel.
//!
//! Two backends exist, chosen per call from the socket's live capabilities
//! ([`send_msgs`], [`recv_msgs`] below are the dispatch):
//!
//! - `sendmmsg`/`recvmmsg`, one call per array, where the kernel has them
//!   (`cfg(has_mmsg)`), in the platform file;
//! - `unix`: one `sendmsg`/`recvmsg` per message, any Unix. Used when
//!   [`crate::Backend::Portable`] is configured, where there is no mmsg,
//!   and at run time when a seccomp filter refuses the `mmsg` calls.
//!
//! # What a platform file provides
//!
//! One file per platform, picked once below as `platform`: `linux`
//! (Linux and Android), `apple` (macOS, iOS), `freebsd`, `windows`, and
//! `unix` (any other Unix). On Windows `windows` is also the
//! one-per-call backend (`WSASendMsg` / `WSARecvMsg`), and `winsock`
//! gives the shared files Winsock under libc's names. Each
//! provides the same functions: `probe` (what the kernel offers, on a fresh
//! socket), `set_pmtud`, `may_fragment`, `path_mtu`, `attach_cpu_steering`,
//! `read_error_entry` (the ICMP error queue), `set_multicast_if_index_v4`,
//! `disable_multicast_all`, `force_buffer`, `bind_device`, `bound_device`
//! (Windows also `disconnect`, `send_msgs`, `recv_msgs`, and `qwave` the
//! socket-level DSCP); with `has_mmsg` also
//! `send_mmsg`, `recv_mmsg` and `mmsg_blocked`. What a kernel lacks is an
//! `Unsupported` error or a `false` capability, never a silent no-op.
//!
//! # The shared files
//!
//! - `socket`: creating and binding the socket, readiness, connect state;
//! - `sockopt`: socket options (TOS, multicast, buffers);
//! - `send`: [`Transmit`](crate::Transmit)s to headers (after
//!   [`crate::validate`] and [`crate::plan`]), the kernel's errors handled;
//! - `recv`: headers to [`RecvMeta`](crate::RecvMeta), the error-queue drain;
//! - `addr`: socket addresses in and out of C structs;
//! - `cmsg`: the control-message codec.

// msghdr/cmsghdr length fields are size_t on glibc Linux and socklen_t
// elsewhere: the `as usize` casts are needed off glibc.
#![allow(clippy::unnecessary_cast)]

/// `-1` to `io::Error` (mio's `syscall!`). Defined before the modules
/// below, so each of them sees it without an import.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)? ) ) => {{
        #[allow(unused_unsafe)]
        // SAFETY: every caller passes arguments that satisfy the named
        // syscall's contract; see the SAFETY comment at each call site.
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

mod addr;
pub(crate) mod cmsg;
#[cfg(windows)]
mod qwave;
mod recv;
mod send;
mod socket;
mod sockopt;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) mod winsock;

#[cfg(apple)]
mod apple;
#[cfg(any(apple, freebsd))]
mod bsd;
#[cfg(freebsd)]
mod freebsd;
#[cfg(linux_like)]
mod linux;

#[cfg(apple)]
use apple as platform;
#[cfg(freebsd)]
use freebsd as platform;
#[cfg(linux_like)]
use linux as platform;
#[cfg(generic_unix)]
use unix as platform;
#[cfg(windows)]
use windows as platform;

// One datagram per call: sendmsg/recvmsg on Unix, WSASendMsg/WSARecvMsg on
// Windows.
#[cfg(unix)]
use unix as per_call;
#[cfg(windows)]
use windows as per_call;
#[cfg(windows)]
use winsock as libc;

use std::io;

use crate::os::RawFd;

#[cfg(windows)]
pub(crate) use qwave::end_flow;
#[cfg(feature = "bytes")]
pub(crate) use recv::recv_bytes;
pub(crate) use recv::recv_into;
pub(crate) use recv::{drain_errors, recv, recv_error};
pub(crate) use send::send;
#[cfg(unix)]
pub(crate) use socket::disconnect;
#[cfg(unix)]
pub(crate) use socket::wait;
pub(crate) use socket::{adopt, open, recv_waiting, SocketState};
pub(crate) use sockopt::{broadcast_refused, multicast_membership, set_multicast_interface, set_tos, tos};
#[cfg(windows)]
pub(crate) use windows::disconnect;
#[cfg(windows)]
pub(crate) use windows::wait;

pub(crate) use platform::{attach_cpu_steering, disable_multicast_all, may_fragment, path_mtu};

/// A message header laid out like Linux's `struct mmsghdr`, so one array
/// serves both `sendmmsg` and a loop of `sendmsg`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct MsgHdr {
    pub(crate) hdr: libc::msghdr,
    pub(crate) len: MsgLen,
}

/// `mmsghdr.msg_len`: an `unsigned int` on Linux, an `ssize_t` on FreeBSD.
#[cfg(not(freebsd))]
pub(crate) type MsgLen = libc::c_uint;
#[cfg(freebsd)]
pub(crate) type MsgLen = libc::ssize_t;

#[cfg(has_mmsg)]
const _: () = assert!(size_of::<MsgHdr>() == size_of::<libc::mmsghdr>());

// SAFETY: MsgHdr is msghdr (Zeroable) plus a c_uint; zero is valid for both.
unsafe impl cmsg::Zeroable for MsgHdr {}

fn iovec(ptr: *const u8, len: usize) -> libc::iovec {
    // Winsock's WSABUF length is a u32: callers pass at most a 64 KiB slot.
    libc::iovec { iov_base: ptr.cast_mut().cast(), iov_len: len as _ }
}

/// The send backend for this call: `sendmmsg` while the socket has mmsg,
/// else one `sendmsg` per message. A seccomp refusal of `sendmmsg` turns
/// mmsg off for the socket and the same messages go the portable way.
fn send_msgs(fd: RawFd, state: &SocketState, msgs: &mut [MsgHdr]) -> io::Result<usize> {
    #[cfg(has_mmsg)]
    if state.live.mmsg() {
        state.stats.send_syscalls(1);
        match platform::send_mmsg(fd, msgs) {
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) && platform::mmsg_blocked(fd, true) =>
            {
                state.live.disable_mmsg(e.raw_os_error().unwrap_or(0));
            }
            other => return other,
        }
    }
    let res = per_call::send_msgs(fd, msgs);
    // One sendmsg per message sent, plus the one that failed, if any.
    let calls = match &res {
        Ok(n) => n + usize::from(*n < msgs.len()),
        Err(_) => 1,
    };
    state.stats.send_syscalls(calls as u64);
    res
}

/// Whether a receive may wait in the kernel for its first datagram. Every
/// send and every other receive passes `MSG_DONTWAIT`, so a `try_` call
/// never blocks, even on a descriptor in blocking mode (an adopted or
/// borrowed socket, or [`crate::Config::blocking`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Return what is queued, or `WouldBlock`.
    No,
    /// On a blocking descriptor, wait (up to `SO_RCVTIMEO`) for the first
    /// datagram, then take what else is queued without waiting. On a
    /// non-blocking one the kernel answers as for `No`.
    ForFirst,
}

impl Wait {
    /// The `recvmmsg` flags: `MSG_DONTWAIT`, or `MSG_WAITFORONE` (block for
    /// the first message only).
    #[cfg(has_mmsg)]
    fn mmsg_flags(self) -> libc::c_int {
        match self {
            Self::No => libc::MSG_DONTWAIT,
            Self::ForFirst => libc::MSG_WAITFORONE,
        }
    }
}

/// The receive backend for this call, as [`send_msgs`]; an error the
/// portable loop met after it had datagrams is returned by the next call.
fn recv_msgs(fd: RawFd, state: &SocketState, msgs: &mut [MsgHdr], wait: Wait) -> io::Result<usize> {
    if let Some(e) = state.pending_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    #[cfg(has_mmsg)]
    if state.live.mmsg() {
        state.stats.recv_syscalls(1);
        match platform::recv_mmsg(fd, msgs, wait) {
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
                    && platform::mmsg_blocked(fd, false) =>
            {
                state.live.disable_mmsg(e.raw_os_error().unwrap_or(0));
            }
            other => return other,
        }
    }
    let (n, pending) = per_call::recv_msgs(fd, msgs, wait);
    // One recvmsg per message, plus the one that ended the loop (EAGAIN or
    // an error), unless every message was filled.
    state.stats.recv_syscalls((n + usize::from(n < msgs.len() || pending.is_some())) as u64);
    match (n, pending) {
        (0, Some(e)) => Err(e),
        (n, pending) => {
            if let Some(e) = pending {
                *state.pending_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
            Ok(n)
        }
    }
}
