//! The way out: [`Transmit`]s, checked ([`crate::validate`]) and cut into
//! pieces ([`crate::plan`]), become message headers with their control
//! messages; the backend sends them, and the kernel's errors are handled
//! where they are understood (GSO refused, a stale ICMP error, a full
//! buffer).

use crate::os::{AsRawFd, BorrowedFd};
use std::io;
use std::mem::MaybeUninit;

use super::addr::SockAddrBuf;
use super::cmsg::{self, Encoder, SendControl, SendOptions};
use super::recv::{absorb_pending, drain_errors};
use super::sockopt::broadcast_refused;
#[cfg(windows)]
use super::winsock as libc;
use super::{iovec, platform, send_msgs, MsgHdr, SocketState};
use crate::error::icmp_errno;
use crate::plan::{self, Piece, Progress};
use crate::stats::Tally;
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

/// Sends `transmits` in order; returns how far it got, and counts the call
/// in the socket's statistics.
///
/// `Err` only when nothing was sent.
pub(crate) fn send(fd: BorrowedFd<'_>, state: &SocketState, transmits: &[Transmit<'_>]) -> Result<Sent, Error> {
    let mut tally = Tally::default();
    let res = send_counted(fd, state, transmits, &mut tally);
    let would_block = matches!(&res, Err(e) if e.is_would_block());
    state.stats.sent(&tally, would_block, res.is_err() && !would_block);
    res
}

/// What the kernel took of `sent` (pieces, in order), into `tally`.
fn count(tally: &mut Tally, sent: &[Piece]) {
    for p in sent {
        let bytes = (p.end - p.start) as u64;
        tally.bytes += bytes;
        match p.gso {
            Some(stride) if bytes > stride as u64 => {
                let segments = bytes.div_ceil(stride as u64);
                tally.datagrams += segments;
                tally.trains += 1;
                tally.train_segments += segments;
            }
            _ => tally.datagrams += 1,
        }
    }
}

/// [`send`], adding what went out to `tally`.
fn send_counted(
    fd: BorrowedFd<'_>,
    state: &SocketState,
    transmits: &[Transmit<'_>],
    tally: &mut Tally,
) -> Result<Sent, Error> {
    let raw = fd.as_raw_fd();
    let socket_dscp = state.socket_dscp();
    // Transmits fully sent, and emulated segments of the next one.
    let mut progress = Progress::default();
    // Set after an `EIO`/`EINVAL` for a message carrying a control message
    // the kernel may refuse (TOS, `UDP_SEGMENT`): the next message is sent
    // alone without it, to learn which one the kernel refuses.
    let mut trial: Option<Trial> = None;
    // An ICMP error about an earlier datagram (port unreachable, too big,
    // ...) leaves its errno pending on the socket (sk_err), and the next send
    // of anything returns it without sending: retry once, past it, before
    // believing it concerns this transmit. `stale` holds it until the retry
    // tells which it was.
    let mut pending_retried = false;
    let mut stale: Option<i32> = None;

    // Per-call scratch, left uninitialised: each chunk writes the entries it
    // uses (zeroing all 64 would cost more than a small send: the pieces
    // alone are 3 KiB).
    let mut hdrs = [const { MaybeUninit::<MsgHdr>::uninit() }; SEND_CHUNK];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; SEND_CHUNK];
    let mut names = [const { MaybeUninit::<SockAddrBuf>::uninit() }; SEND_CHUNK];
    let mut ctrls = [const { MaybeUninit::<SendControl>::uninit() }; SEND_CHUNK];
    let mut pieces = [const { MaybeUninit::<Piece>::uninit() }; SEND_CHUNK];

    while progress.transmits < transmits.len() {
        let done = progress.transmits;
        // Build one chunk starting at (done, segment).
        let gso_max = state.live.max_gso_segments();
        let fixed = &state.live.fixed;
        let limits = Limits {
            families: state.families,
            txtime: fixed.txtime,
            src: fixed.src_send,
            gso_max,
            ifindex_v4: Limits::IFINDEX_V4,
            dscp_per_datagram: Limits::DSCP_PER_DATAGRAM,
            socket_dscp,
        };
        let mut k = 0;
        let (mut t_idx, mut seg) = (done, progress.segment);
        let mut invalid = None;
        let mut checked: Option<(usize, Checked)> = None;
        // Whether the chunk's first message carries a TOS control message.
        let mut first_tos = false;
        let tos_cmsg = state.live.tos_cmsg();
        // Under a trial the chunk is its first message alone.
        let chunk = if trial.is_some() { 1 } else { SEND_CHUNK };
        while k < chunk && t_idx < transmits.len() {
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
            let left_out = if k == 0 { trial.unwrap_or_default() } else { Trial::default() };
            let gso_ok = gso_max > 1 && !left_out.without_gso;
            let piece = plan::cut(t, seg, gso_ok);
            let payload = &t.contents[piece.start..piece.end];
            // Without TOS control messages (refused by this kernel) the
            // datagram carries the socket-level TOS: see Capabilities::tos_cmsg.
            let tos = t.tos(socket_dscp).filter(|_| tos_cmsg && !left_out.without_tos);
            if k == 0 {
                first_tos = tos.is_some();
            }
            let opts = SendOptions {
                tos,
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
            pieces[k].write(piece);
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
        // SAFETY: so were entries 0..k of `pieces`, one per header.
        let chunk_pieces: &[Piece] = unsafe { init_prefix_mut(&mut pieces, k) };
        match send_msgs(raw, state, msgs) {
            Ok(n) => {
                if let Some(t) = trial.take() {
                    // The resend without them worked: the kernel refuses
                    // what was left out. Off for the socket from now on.
                    if t.without_tos {
                        state.live.disable_tos_cmsg(t.errno);
                    }
                    if t.without_gso {
                        state.live.disable_gso(t.errno);
                    }
                }
                if let Some(errno) = stale.take() {
                    // The retry went through: the error was an earlier
                    // datagram's. Keep it for try_recv_error.
                    absorb_pending(fd, state, errno, "send");
                }
                pending_retried = false;
                progress.advance(&chunk_pieces[..n]);
                count(tally, &chunk_pieces[..n]);
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
                let first = chunk_pieces[0];
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(errno @ (libc::EIO | libc::EINVAL)) => {
                        // Which control message does the kernel refuse? Try
                        // the next resend that leaves some out; when none is
                        // left, the error is the transmit's own.
                        let carried = trial.map_or((first_tos, first.gso.is_some()), |t| t.carried);
                        trial = Trial::next(trial, carried, errno);
                        if trial.is_some() {
                            continue;
                        }
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

/// A resend of one message with some of its control messages left out, to
/// learn which one the kernel refuses with `EIO` or `EINVAL`. Android
/// before 8.0 refuses `IP_TOS` (`EINVAL`); some kernels refuse TOS sent
/// alongside `UDP_SEGMENT` (`EIO`), others `UDP_SEGMENT` itself (`EIO` on
/// a device without checksum offload before Linux 6.11, `EINVAL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Trial {
    /// The error that started the search (logged when something is turned off).
    errno: i32,
    /// What the original message carried: (a TOS control message, `UDP_SEGMENT`).
    carried: (bool, bool),
    without_tos: bool,
    without_gso: bool,
}

impl Trial {
    /// The resend to try after `prev` (or after the original send, `None`)
    /// failed with `errno`; `None` when every combination was tried. The
    /// order keeps GSO when it can: without TOS, then without GSO, then
    /// without both (when each alone is refused).
    fn next(prev: Option<Self>, carried: (bool, bool), errno: i32) -> Option<Self> {
        let steps: &[(bool, bool)] = match carried {
            (true, true) => &[(true, false), (false, true), (true, true)],
            (true, false) => &[(true, false)],
            (false, true) => &[(false, true)],
            (false, false) => &[],
        };
        let at = match prev {
            None => 0,
            Some(p) => steps.iter().position(|&s| s == (p.without_tos, p.without_gso))? + 1,
        };
        let &(without_tos, without_gso) = steps.get(at)?;
        let errno = prev.map_or(errno, |p| p.errno);
        Some(Self { errno, carried, without_tos, without_gso })
    }
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

#[cfg(test)]
mod tests {
    #[cfg(windows)]
    use super::super::winsock as libc;
    use super::Trial;

    /// The resends tried, in order, for a message carrying `carried`.
    fn steps(carried: (bool, bool)) -> Vec<(bool, bool)> {
        let mut out = Vec::new();
        let mut t = None;
        for _ in 0..8 {
            t = Trial::next(t, carried, libc::EIO);
            let Some(s) = t else { break };
            assert_eq!((s.errno, s.carried), (libc::EIO, carried));
            out.push((s.without_tos, s.without_gso));
        }
        out
    }

    #[test]
    fn trials_leave_out_tos_first_then_gso_then_both() {
        assert_eq!(steps((true, true)), [(true, false), (false, true), (true, true)]);
        assert_eq!(steps((true, false)), [(true, false)]);
        assert_eq!(steps((false, true)), [(false, true)]);
        assert_eq!(steps((false, false)), []);
        // The first error is the one reported when something is turned off.
        let first = Trial::next(None, (true, true), libc::EIO);
        assert_eq!(Trial::next(first, (true, true), libc::EINVAL).map(|t| t.errno), Some(libc::EIO));
    }
}
