//! The way out: [`Transmit`]s, checked ([`crate::validate`]) and cut into
//! pieces ([`crate::plan`]), become message headers with their control
//! messages; the backend sends them, and the kernel's errors are handled
//! where they are understood (GSO refused, a stale ICMP error, a full
//! buffer).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::addr::SockAddrBuf;
use super::cmsg::{self, Encoder, SendControl, SendOptions};
use super::recv::{absorb_pending, drain_errors};
use super::sockopt::broadcast_refused;
use super::{iovec, platform, send_msgs, MsgHdr, SocketState};
use crate::error::icmp_errno;
use crate::plan::{self, Piece, Progress};
use crate::validate::{validate, Checked, Limits};
use crate::{Error, Sent, Transmit};

/// Messages per `sendmmsg` call. Stack arrays of this many headers,
/// addresses and control buffers are built per call (about 15 KiB).
const SEND_CHUNK: usize = 64;

/// The first `n` elements of `arr`, as initialised values.
///
/// # Safety
/// Elements `0..n` of `arr` must have been written (and `n <= N`).
unsafe fn init_prefix_mut<T, const N: usize>(arr: &mut [MaybeUninit<T>; N], n: usize) -> &mut [T] {
    debug_assert!(n <= N);
    // SAFETY: the caller guarantees elements 0..n are initialised;
    // MaybeUninit<T> has T's layout, so the prefix is a valid [T].
    unsafe { std::slice::from_raw_parts_mut(arr.as_mut_ptr().cast::<T>(), n) }
}

/// Sends `transmits` in order; returns how far it got.
///
/// `Err` only when nothing was sent.
pub(crate) fn send(fd: BorrowedFd<'_>, state: &SocketState, transmits: &[Transmit<'_>]) -> Result<Sent, Error> {
    let raw = fd.as_raw_fd();
    let socket_dscp = state.socket_dscp();
    // Transmits fully sent, and emulated segments of the next one.
    let mut progress = Progress::default();
    // Set after a GSO EINVAL: emulate transmits[progress.transmits] to
    // learn whether GSO itself was the problem.
    let mut emulate_next: Option<i32> = None;
    // An ICMP error about an earlier datagram (port unreachable, too big,
    // ...) leaves its errno pending on the socket (sk_err), and the next send
    // of anything returns it without sending: retry once, past it, before
    // believing it concerns this transmit. `stale` holds it until the retry
    // tells which it was.
    let mut pending_retried = false;
    let mut stale: Option<i32> = None;

    // Per-call scratch, left uninitialised: each chunk writes the entries it
    // uses (zeroing all 64 would cost more than a small send).
    let mut hdrs = [const { MaybeUninit::<MsgHdr>::uninit() }; SEND_CHUNK];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; SEND_CHUNK];
    let mut names = [const { MaybeUninit::<SockAddrBuf>::uninit() }; SEND_CHUNK];
    let mut ctrls = [const { MaybeUninit::<SendControl>::uninit() }; SEND_CHUNK];
    let mut pieces = [Piece::default(); SEND_CHUNK];

    while progress.transmits < transmits.len() {
        let done = progress.transmits;
        // Build one chunk starting at (done, segment).
        let gso_max = state.live.max_gso_segments();
        let limits = Limits { families: state.families, txtime: state.live.fixed.txtime, gso_max };
        let mut k = 0;
        let (mut t_idx, mut seg) = (done, progress.segment);
        let mut invalid = None;
        let mut checked: Option<(usize, Checked)> = None;
        while k < SEND_CHUNK && t_idx < transmits.len() {
            let t = &transmits[t_idx];
            // Validate a transmit once, not once per emulated segment.
            let Checked { wire, v4 } = match checked {
                Some((i, c)) if i == t_idx => c,
                _ => match validate(t, limits) {
                    Ok(c) => {
                        checked = Some((t_idx, c));
                        c
                    }
                    Err(e) => {
                        invalid = Some(e);
                        break;
                    }
                },
            };
            let gso_ok = gso_max > 1 && !(t_idx == done && emulate_next.is_some());
            let piece = plan::cut(t, seg, gso_ok);
            let payload = &t.contents[piece.start..piece.end];
            let opts = SendOptions {
                tos: t.tos(socket_dscp),
                src_ip: t.src_ip.map(|ip| ip.to_canonical()),
                src_ifindex: t.src_ifindex,
                segment_size: piece.gso.map(|s| s as u16),
                txtime: t.txtime,
            };
            let ctrl = ctrls[k].write(SendControl::new());
            let mut enc = Encoder::new(&mut ctrl.0);
            if cmsg::encode_send(&mut enc, &opts, v4).is_err() {
                // SEND_SPACE covers every option once: unreachable unless the
                // sizing is wrong. Report, never write past the buffer.
                return Err(Error::Io(io::Error::other("volley: control-message space exhausted")));
            }
            let ctrl_len = enc.len();
            let ctrl: *mut SendControl = ctrl;
            let name = names[k].write(SockAddrBuf::new());
            let namelen = name.write(wire);
            let name: *mut SockAddrBuf = name;
            let iov: *mut libc::iovec = iovs[k].write(iovec(payload.as_ptr(), payload.len()));
            let mut h = MsgHdr { hdr: cmsg::zeroed(), len: 0 };
            h.hdr.msg_name = name.cast();
            h.hdr.msg_namelen = namelen;
            h.hdr.msg_iov = iov;
            h.hdr.msg_iovlen = 1;
            if ctrl_len > 0 {
                // SAFETY: `ctrl` points at the SendControl written above.
                h.hdr.msg_control = unsafe { (*ctrl).0.as_mut_ptr() }.cast();
                h.hdr.msg_controllen = ctrl_len as _;
            }
            hdrs[k].write(h);
            pieces[k] = piece;
            k += 1;
            if piece.last {
                t_idx += 1;
                seg = 0;
            } else {
                seg += 1;
            }
        }
        if k == 0 {
            // transmits[done] itself is invalid: report it when it is first
            // in line, else return what went out before it.
            return match invalid {
                Some(e) if done == 0 => Err(e.into()),
                _ => Ok(progress.sent()),
            };
        }

        // SAFETY: entries 0..k of `hdrs` were written by this chunk's loop.
        let msgs = unsafe { init_prefix_mut(&mut hdrs, k) };
        match send_msgs(raw, &state.live, msgs) {
            Ok(n) => {
                if let Some(errno) = emulate_next.take() {
                    // The unsegmented resend worked: GSO was the problem.
                    state.live.disable_gso(errno);
                }
                if let Some(errno) = stale.take() {
                    // The retry went through: the error was an earlier
                    // datagram's. Keep it for try_recv_error.
                    absorb_pending(fd, state, errno, "send");
                }
                pending_retried = false;
                progress.advance(&pieces[..n]);
                if n < k {
                    // The kernel stopped early (buffer full, or an error at
                    // message n, which the caller's retry will meet first).
                    // At a transmit boundary, return now rather than spend a
                    // syscall to learn it; mid-train, try to finish it.
                    if progress.segment == 0 {
                        return Ok(progress.sent());
                    }
                    continue;
                }
                if invalid.is_some() {
                    return Ok(progress.sent());
                }
            }
            Err(e) => {
                let first = pieces[0];
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EIO) if first.gso.is_some() => {
                        state.live.disable_gso(libc::EIO);
                        continue;
                    }
                    Some(libc::EINVAL) if first.gso.is_some() && emulate_next.is_none() => {
                        emulate_next = Some(libc::EINVAL);
                        continue;
                    }
                    Some(errno)
                        if icmp_errno(errno)
                            && !pending_retried
                            && (errno != libc::EMSGSIZE
                                || may_be_pending(fd, state, &transmits[progress.transmits], first.datagram)) =>
                    {
                        pending_retried = true;
                        stale = Some(errno);
                        continue;
                    }
                    _ => {}
                }
                if let Some(old) = stale.take() {
                    if e.raw_os_error() == Some(old) {
                        // The retry failed the same way: the error concerns
                        // this transmit (no route, too big). Details of any
                        // ICMP error are in the error queue.
                        drain_errors(fd, state);
                    } else {
                        // Another error this time: the first was stale.
                        absorb_pending(fd, state, old, "send");
                    }
                }
                if progress.transmits > 0 || progress.segment > 0 {
                    // Something went out (mid-way through an emulated train,
                    // say exactly how far: never block in a `try_` call).
                    // The error, if it persists, meets the caller's resend
                    // of the rest first.
                    return Ok(progress.sent());
                }
                return Err(match e.raw_os_error() {
                    Some(libc::EMSGSIZE) => Error::MessageTooLong {
                        size: first.datagram,
                        mtu: transmits.first().and_then(|t| platform::path_mtu(fd, !t.destination.is_ipv4()).ok()),
                    },
                    // EACCES is also an ICMPv6 errno: here it failed twice
                    // (the retry above), so it is not a stale one.
                    errno if broadcast_refused(fd, transmits[0].destination, errno) => {
                        Error::BroadcastNotEnabled { destination: transmits[0].destination }
                    }
                    _ => Error::from(e),
                });
            }
        }
    }
    Ok(progress.sent())
}

/// Whether an `EMSGSIZE` for a datagram of `len` bytes may be a pending
/// socket error left by an ICMP "too big" rather than about this datagram:
/// on a connected socket, when the datagram fits the path MTU; on an
/// unconnected one, only if the error queue is on (else the kernel leaves
/// no pending error), as the path MTU is unknown there. (A genuine
/// `EMSGSIZE` is not retried: the retry would fail the same way and queue
/// a second "too big" for one datagram.)
fn may_be_pending(fd: BorrowedFd<'_>, state: &SocketState, t: &Transmit<'_>, len: usize) -> bool {
    let v4 = t.destination.ip().to_canonical().is_ipv4();
    let headers = if v4 { 28 } else { 48 };
    match platform::path_mtu(fd, !v4) {
        Ok(mtu) => len + headers <= mtu as usize,
        Err(_) => state.live.fixed.recv_errors,
    }
}
