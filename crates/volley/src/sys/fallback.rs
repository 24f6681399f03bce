//! The portable backend: one `sendmsg`/`recvmsg` per message, any Unix.

use std::io;
use std::os::fd::RawFd;

use super::{syscall, MsgHdr};

/// `sendmsg` for each message in order until one fails.
pub(super) fn send_msgs(fd: RawFd, msgs: &mut [MsgHdr]) -> io::Result<usize> {
    for (i, m) in msgs.iter_mut().enumerate() {
        // SAFETY: sendmsg(2) with a msghdr whose name, iovec and control
        // pointers are valid for their stated lengths for this call (built by
        // sys::send on its stack frame).
        match syscall!(sendmsg(fd, &m.hdr, 0)) {
            Ok(n) => m.len = n as libc::c_uint,
            Err(e) if i == 0 => return Err(e),
            Err(_) => return Ok(i),
        }
    }
    Ok(msgs.len())
}

/// `recvmsg` into each message until the queue is empty. An error after the
/// first message is handed back beside the count, like `recvmmsg` keeps it
/// for the next call, so it is never lost.
pub(super) fn recv_msgs(fd: RawFd, msgs: &mut [MsgHdr]) -> (usize, Option<io::Error>) {
    for (i, m) in msgs.iter_mut().enumerate() {
        // SAFETY: recvmsg(2) with a msghdr whose name, iovec and control
        // pointers are writable for their stated lengths for this call
        // (built by sys::recv over the batch's buffers).
        match syscall!(recvmsg(fd, &mut m.hdr, 0)) {
            Ok(n) => m.len = n as libc::c_uint,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && i > 0 => return (i, None),
            Err(e) => return (i, Some(e)),
        }
    }
    (msgs.len(), None)
}
