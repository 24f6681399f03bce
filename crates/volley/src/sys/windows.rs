//! Windows: `WSASendMsg` / `WSARecvMsg`, one datagram per call, with the
//! shared message headers ([`super::MsgHdr`] over `WSAMSG`, see
//! [`super::winsock`]) and the shared control-message codec.
//!
//! - receive: `IP_PKTINFO` / `IPV6_PKTINFO` (local address, interface),
//!   the TOS / traffic class (`IP_RECVTOS` / `IPV6_RECVTCLASS`: ECN and
//!   DSCP) or, where the stack lacks those, ECN alone (`IP_RECVECN` /
//!   `IPV6_RECVECN`), the TTL / hop limit (`IP_HOPLIMIT` /
//!   `IPV6_HOPLIMIT`); URO (`UDP_RECV_MAX_COALESCED_SIZE`, the stride in a
//!   `UDP_COALESCED_INFO` message), probed at bind;
//! - send: ECN per datagram (`IP_ECN` / `IPV6_ECN` messages), source
//!   address and interface (`IP_PKTINFO` / `IPV6_PKTINFO`), each used only
//!   if a loopback self-test at the first bind saw the stack apply it
//!   (`Capabilities::ecn_send`, `src_send`: Wine 8 accepts both messages
//!   and applies neither); USO (`UDP_SEND_MSG_SIZE` message), probed at
//!   bind; without it trains are sent one datagram per segment, as on any
//!   platform without GSO;
//! - DSCP: Windows ignores `IP_TOS` / `IPV6_TCLASS` set by a program
//!   unless a QoS policy allows it. A socket-level DSCP goes through qWAVE
//!   as a flow to the connected peer (`qwave.rs`, probed at the first bind:
//!   `Capabilities::qwave`); a per-datagram DSCP other than the socket's
//!   is an [`crate::InvalidTransmit::DscpUnsupported`], never silently
//!   dropped;
//! - ICMP port unreachable: Windows reports it as `WSAECONNRESET` on the
//!   next receive of an *unconnected* UDP socket, which Linux does not (it
//!   needs the error queue). volley turns that off at bind
//!   (`SIO_UDP_CONNRESET` = FALSE, as quinn-udp and Go do), so a peer that
//!   has gone does not fail the receive loop of a server;
//! - no batching syscall (`mmsg` is false), no error queue, no receive
//!   timestamps or `SO_TXTIME` (`Unsupported` if asked), no drop counter,
//!   no reuse-port (`SO_REUSEADDR` on Windows lets another socket take
//!   over the port: refused with `Unsupported`), no device binding.

use std::io;
use std::ptr;
use std::sync::OnceLock;
use std::time::Duration;

use windows_sys::Win32::Networking::WinSock as ws;

use super::addr::SockAddrBuf;
use super::cmsg::{self, Encoder, RecvControl, SendControl};
use super::sockopt::{get_int, set_both, set_int, set_opt};
use super::winsock as libc;
use super::{iovec, MsgHdr};
// The Linux-only options (freebind, transparent, mark, orig_dst): refused
// as `Unsupported` when asked for.
pub(super) use super::sockopt::{apply_ip_options, ip_options};
use crate::os::{AsRawFd, BorrowedFd, RawFd};
use crate::validate::Families;
use crate::{Capabilities, Config};

/// Most datagrams volley puts in one USO send: what Linux allowed until
/// 6.8, so a transmit valid on one platform is valid on the other (the
/// 64 KiB payload limit bounds a train too).
const USO_MAX_SEGMENTS: usize = 64;

/// The largest coalesced receive volley asks URO for: one 64 KiB slot.
const URO_MAX_COALESCED: u32 = u16::MAX as u32;

pub(super) fn unsupported(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("{what} is not available on Windows"))
}

/// One `WSASendMsg` per message, in order, until one fails.
pub(super) fn send_msgs(fd: RawFd, msgs: &mut [MsgHdr]) -> io::Result<usize> {
    for (i, m) in msgs.iter_mut().enumerate() {
        let mut sent: u32 = 0;
        // SAFETY: WSASendMsg with a WSAMSG (msghdr has its layout, checked
        // in winsock.rs) whose name, one WSABUF and control buffer are valid
        // for their stated lengths for this call (built by sys::send on its
        // stack frame); no overlapped I/O (null overlapped and completion
        // routine): the call completes or fails at once on this
        // non-blocking socket and writes only `sent`.
        let res = unsafe {
            ws::WSASendMsg(
                fd,
                (&m.hdr as *const libc::msghdr).cast::<ws::WSAMSG>(),
                0,
                &mut sent,
                ptr::null_mut(),
                None,
            )
        };
        if res == ws::SOCKET_ERROR {
            let e = io::Error::last_os_error();
            return if i == 0 { Err(e) } else { Ok(i) };
        }
        m.len = sent;
    }
    Ok(msgs.len())
}

/// `WSARecvMsg` lives behind a function pointer the provider hands out
/// (`WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER)`); fetched once.
type RecvMsgFn = unsafe extern "system" fn(
    ws::SOCKET,
    *mut ws::WSAMSG,
    *mut u32,
    *mut windows_sys::Win32::System::IO::OVERLAPPED,
    ws::LPWSAOVERLAPPED_COMPLETION_ROUTINE,
) -> i32;

fn wsa_recv_msg(fd: RawFd) -> io::Result<RecvMsgFn> {
    static PTR: OnceLock<RecvMsgFn> = OnceLock::new();
    if let Some(f) = PTR.get() {
        return Ok(*f);
    }
    let guid = ws::WSAID_WSARECVMSG;
    let mut f: ws::LPFN_WSARECVMSG = None;
    let mut bytes: u32 = 0;
    // SAFETY: WSAIoctl with SIO_GET_EXTENSION_FUNCTION_POINTER reads the
    // GUID (a local of the stated size) and writes one function pointer
    // into `f` (an Option of a fn pointer: the same size, null is None) and
    // the byte count into `bytes`; no overlapped I/O.
    let res = unsafe {
        ws::WSAIoctl(
            fd,
            ws::SIO_GET_EXTENSION_FUNCTION_POINTER,
            (&guid as *const windows_sys::core::GUID).cast(),
            size_of::<windows_sys::core::GUID>() as u32,
            (&mut f as *mut ws::LPFN_WSARECVMSG).cast(),
            size_of::<ws::LPFN_WSARECVMSG>() as u32,
            &mut bytes,
            ptr::null_mut(),
            None,
        )
    };
    if res == ws::SOCKET_ERROR {
        return Err(io::Error::last_os_error());
    }
    let f = f.ok_or_else(|| unsupported("WSARecvMsg"))?;
    Ok(*PTR.get_or_init(|| f))
}

/// One `WSARecvMsg` per message until the queue is empty; an error after
/// the first message is handed back beside the count (as `unix::recv_msgs`).
///
/// A datagram larger than its buffer fails the call with `WSAEMSGSIZE`
/// after filling the buffer (the rest is discarded): that is a truncated
/// datagram, reported as POSIX does, with `MSG_TRUNC` and the buffer full.
/// (`_wait` is not used: a Windows socket stays non-blocking, mio's
/// requirement, so the blocking helpers wait with `WSAPoll` instead.)
pub(super) fn recv_msgs(fd: RawFd, msgs: &mut [MsgHdr], _wait: super::Wait) -> (usize, Option<io::Error>) {
    let recv = match wsa_recv_msg(fd) {
        Ok(f) => f,
        Err(e) => return (0, Some(e)),
    };
    for (i, m) in msgs.iter_mut().enumerate() {
        let mut got: u32 = 0;
        // SAFETY: WSARecvMsg (the provider's pointer) with a WSAMSG whose
        // name, one WSABUF and control buffer are writable for their stated
        // lengths for this call (built by sys::recv over the batch's
        // buffers); it writes namelen, the control length and dwFlags in
        // the header and the byte count in `got`; no overlapped I/O.
        let res = unsafe {
            recv(fd, (&mut m.hdr as *mut libc::msghdr).cast::<ws::WSAMSG>(), &mut got, ptr::null_mut(), None)
        };
        if res == ws::SOCKET_ERROR {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(ws::WSAEMSGSIZE) {
                // SAFETY: msg_iov points at the one WSABUF of this message.
                let room = unsafe { (*m.hdr.msg_iov).iov_len };
                m.hdr.msg_flags |= libc::MSG_TRUNC;
                m.len = room;
                continue;
            }
            return match e.kind() {
                io::ErrorKind::WouldBlock if i > 0 => (i, None),
                _ => (i, Some(e)),
            };
        }
        m.len = got;
    }
    (msgs.len(), None)
}

/// Turns off (`on` false) or on the `WSAECONNRESET` an ICMP port
/// unreachable raises on the next receive.
fn set_connreset(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let value: u32 = on.into();
    let mut bytes: u32 = 0;
    // SAFETY: WSAIoctl(SIO_UDP_CONNRESET) reads one BOOL (a local u32 of
    // the stated size) and writes nothing but the byte count; no overlapped
    // I/O.
    let res = unsafe {
        ws::WSAIoctl(
            fd.as_raw_fd(),
            ws::SIO_UDP_CONNRESET,
            (&value as *const u32).cast(),
            size_of::<u32>() as u32,
            ptr::null_mut(),
            0,
            &mut bytes,
            ptr::null_mut(),
            None,
        )
    };
    if res == ws::SOCKET_ERROR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How the stack reports ECN on receive: the whole TOS byte, ECN alone,
/// or not at all (decided at bind by [`probe`]).
fn enable_ecn(fd: BorrowedFd<'_>, families: Families) -> bool {
    set_both(fd, families, ws::IP_RECVTOS, ws::IPV6_RECVTCLASS)
        || set_both(fd, families, ws::IP_RECVECN, ws::IPV6_RECVECN)
}

/// Probes and enables what the stack offers on a fresh socket.
pub(super) fn probe(
    fd: BorrowedFd<'_>,
    config: &Config,
    families: Families,
    portable: bool,
    caps: &mut Capabilities,
) -> io::Result<()> {
    if config.timestamps {
        return Err(unsupported("receive timestamps (SO_TIMESTAMPNS)"));
    }
    if config.txtime {
        return Err(unsupported("SO_TXTIME"));
    }
    if let Err(e) = set_connreset(fd, false) {
        // The socket then reports a port unreachable as WSAECONNRESET on
        // a receive, which the core classes as an ICMP error.
        tracing::debug!(error = %e, "SIO_UDP_CONNRESET refused; port-unreachable reports stay on");
    }
    caps.pktinfo = set_both(fd, families, libc::IP_PKTINFO, libc::IPV6_PKTINFO);
    caps.ecn = enable_ecn(fd, families);
    caps.ttl = set_both(fd, families, ws::IP_HOPLIMIT, ws::IPV6_HOPLIMIT);
    caps.qwave = super::qwave::available();
    let works = send_control_works();
    caps.ecn_send = works.ecn;
    caps.src_send = works.src;
    if portable {
        return Ok(());
    }
    // USO: the stack knows UDP_SEND_MSG_SIZE if it can be read back.
    if config.gso != Some(false) && get_int(fd, libc::IPPROTO_UDP, ws::UDP_SEND_MSG_SIZE).is_ok() {
        caps.max_gso_segments = USO_MAX_SEGMENTS;
    }
    if config.gro != Some(false) {
        caps.gro = set_opt(fd, libc::IPPROTO_UDP, ws::UDP_RECV_MAX_COALESCED_SIZE, &URO_MAX_COALESCED).is_ok();
    }
    Ok(())
}

/// What a self-test showed the stack applies of the send-side control
/// messages (both false when it could not run).
#[derive(Debug, Clone, Copy)]
struct SendControlWorks {
    /// The codepoint of an `IP_ECN` message reaches the wire.
    ecn: bool,
    /// The source address of an `IP_PKTINFO` message is used.
    src: bool,
}

/// Tested once per process ([`self_test_send_control`]).
fn send_control_works() -> SendControlWorks {
    static WORKS: OnceLock<SendControlWorks> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let works = self_test_send_control();
        tracing::debug!(?works, "Windows send control messages, as the loopback self-test saw them");
        works
    })
}

/// Whether ECN marks reach the wire; until known true, the encoder sends
/// no ECN message (a stack that refuses the message would otherwise fail
/// every marked send).
pub(super) fn ecn_send() -> bool {
    send_control_works().ecn
}

/// Two datagrams over IPv4 loopback from a wildcard-bound socket: one
/// marked ECT(0) by an `IP_ECN` message, read back with `IP_RECVTOS` (else
/// `IP_RECVECN`); one with `IP_PKTINFO` naming 127.0.0.2 as its source
/// (every 127/8 address is local on Windows and Linux). Wine 8 accepts both
/// messages and applies neither.
fn self_test_send_control() -> SendControlWorks {
    let ecn = match loopback_self_test(Check::Ecn) {
        Ok(ok) => ok,
        Err(e) => {
            tracing::debug!(error = %e, "ECN send self-test could not run; ECN marks off");
            false
        }
    };
    let src = match loopback_self_test(Check::Source) {
        Ok(ok) => ok,
        Err(e) => {
            tracing::debug!(error = %e, "source-address self-test could not run; per-datagram sources refused");
            false
        }
    };
    SendControlWorks { ecn, src }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Ecn,
    Source,
}

fn loopback_self_test(check: Check) -> io::Result<bool> {
    use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
    use std::os::windows::io::AsSocket;
    const ECT0: u8 = 0b10;
    const SRC: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    let rx = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let tx = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    rx.set_read_timeout(Some(Duration::from_secs(1)))?;
    let fams = Families { v4: true, v6: false };
    if check == Check::Ecn
        && !set_both(rx.as_socket(), fams, ws::IP_RECVTOS, 0)
        && !set_both(rx.as_socket(), fams, ws::IP_RECVECN, 0)
    {
        return Ok(false);
    }
    let mut payload = [0u8; 1];
    let mut ctrl = SendControl::new();
    let mut enc = Encoder::new(&mut ctrl.0);
    let pushed = match check {
        Check::Ecn => enc.push(libc::IPPROTO_IP, libc::IP_ECN, libc::c_int::from(ECT0)),
        Check::Source => {
            let pi = libc::in_pktinfo { ipi_addr: libc::in_addr { s_addr: u32::from(SRC).to_be() }, ipi_ifindex: 0 };
            enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, pi)
        }
    };
    pushed.map_err(|_| io::Error::other("control space"))?;
    let ctrl_len = enc.len();
    let mut name = SockAddrBuf::new();
    let mut iov = iovec(payload.as_ptr(), payload.len());
    let mut h = MsgHdr { hdr: cmsg::zeroed(), len: 0 };
    h.hdr.msg_name = (&mut name as *mut SockAddrBuf).cast();
    h.hdr.msg_namelen = name.write(rx.local_addr()?);
    h.hdr.msg_iov = &mut iov;
    h.hdr.msg_iovlen = 1;
    h.hdr.msg_control = ctrl.0.as_mut_ptr().cast();
    h.hdr.msg_controllen = ctrl_len as u32;
    if send_msgs(tx.as_socket().as_raw_fd(), std::slice::from_mut(&mut h)).is_err() {
        // The stack refuses the message itself.
        return Ok(false);
    }
    let mut control = RecvControl::new();
    let mut from = SockAddrBuf::new();
    let mut iov = iovec(payload.as_mut_ptr(), payload.len());
    let mut h = MsgHdr { hdr: cmsg::zeroed(), len: 0 };
    h.hdr.msg_name = (&mut from as *mut SockAddrBuf).cast();
    h.hdr.msg_namelen = size_of::<SockAddrBuf>() as libc::socklen_t;
    h.hdr.msg_iov = &mut iov;
    h.hdr.msg_iovlen = 1;
    h.hdr.msg_control = control.0.as_mut_ptr().cast();
    h.hdr.msg_controllen = cmsg::RECV_SPACE as u32;
    match recv_msgs(rx.as_socket().as_raw_fd(), std::slice::from_mut(&mut h), super::Wait::No) {
        (1, _) => {}
        (_, Some(e)) => return Err(e),
        _ => return Ok(false),
    }
    Ok(match check {
        Check::Ecn => {
            let len = (h.hdr.msg_controllen as usize).min(cmsg::RECV_SPACE);
            let d = cmsg::decode(&control.0[..len]);
            d.tos.map(|t| t & 0b11).or(d.ecn) == Some(ECT0)
        }
        Check::Source => from.read(h.hdr.msg_namelen).map(|a| a.ip()) == Some(SRC.into()),
    })
}

/// Path-MTU discovery mode (`IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`,
/// Windows 10 1703+).
pub(super) fn set_pmtud(fd: BorrowedFd<'_>, families: Families, mode: crate::Pmtud) -> io::Result<()> {
    let m = match mode {
        crate::Pmtud::Off => ws::IP_PMTUDISC_DONT,
        crate::Pmtud::Do => ws::IP_PMTUDISC_DO,
        crate::Pmtud::Probe => ws::IP_PMTUDISC_PROBE,
    };
    // Older stacks (and Wine 8) do not know the option: say so.
    let refused = |e: io::Error| match e.raw_os_error() {
        Some(ws::WSAENOPROTOOPT | ws::WSAEINVAL) => unsupported("IP_MTU_DISCOVER (path-MTU discovery modes)"),
        _ => e,
    };
    if families.v4 {
        set_int(fd, libc::IPPROTO_IP, ws::IP_MTU_DISCOVER, m).map_err(refused)?;
    }
    if families.v6 {
        set_int(fd, libc::IPPROTO_IPV6, ws::IPV6_MTU_DISCOVER, m).map_err(refused)?;
    }
    Ok(())
}

/// False only if every family the socket carries has DF set for good.
pub(crate) fn may_fragment(fd: BorrowedFd<'_>, families: Families) -> bool {
    let df =
        |level, name| get_int(fd, level, name).is_ok_and(|m| m == ws::IP_PMTUDISC_DO || m == ws::IP_PMTUDISC_PROBE);
    let v4_df = df(libc::IPPROTO_IP, ws::IP_MTU_DISCOVER);
    let v6_df = df(libc::IPPROTO_IPV6, ws::IPV6_MTU_DISCOVER);
    (families.v4 && !v4_df) || (families.v6 && !v6_df)
}

/// The stack's path MTU for a connected socket (`IP_MTU` / `IPV6_MTU`).
pub(crate) fn path_mtu(fd: BorrowedFd<'_>, v6_path: bool) -> io::Result<u32> {
    let v = if v6_path {
        get_int(fd, libc::IPPROTO_IPV6, ws::IPV6_MTU)?
    } else {
        get_int(fd, libc::IPPROTO_IP, ws::IP_MTU)?
    };
    Ok(v as u32)
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

/// The IPv4 multicast interface by index: `IP_MULTICAST_IF` takes a DWORD
/// that, inside 0.0.0.0/8, is an interface index in network byte order.
pub(super) fn set_multicast_if_index_v4(fd: BorrowedFd<'_>, index: u32) -> io::Result<()> {
    set_opt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &index.to_be())
}

/// Dissolves a connection: Winsock disconnects a datagram socket that
/// connects to the all-zero address of its family (AF_UNSPEC is refused).
pub(crate) fn disconnect(fd: BorrowedFd<'_>) -> io::Result<()> {
    let v6 = socket2::SockRef::from(&fd).local_addr()?.is_ipv6();
    let any = if v6 {
        std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    socket2::SockRef::from(&fd).connect(&any.into())
}

// The Windows twins of sys/socket.rs's Unix functions.

/// `SO_REUSEPORT`: Windows has none (its `SO_REUSEADDR` lets any later
/// socket take the port over, which is not load balancing): refused.
pub(super) fn set_reuse_port(_sock: &socket2::Socket) -> io::Result<()> {
    Err(unsupported("SO_REUSEPORT"))
}

/// Whether `SO_REUSEPORT` is set: never.
pub(super) fn reuse_port(_sock: &socket2::Socket) -> io::Result<bool> {
    Ok(false)
}

/// Whether the descriptor is in blocking mode: unknowable on Windows, where
/// a volley socket is always non-blocking (mio's requirement).
pub(super) fn is_blocking(_sock: &socket2::Socket) -> bool {
    false
}

/// `sys::wait` on Windows: `WSAPoll` (winsock's `poll`).
pub(crate) fn wait(fd: BorrowedFd<'_>, events: libc::c_short, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        // Round up, so a sub-millisecond wait does not become a busy poll(0).
        let ms =
            left.map_or(-1, |l| libc::c_int::try_from(l.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX));
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
        // SAFETY: one valid pollfd, count 1.
        match syscall!(poll(&mut pfd, 1, ms)) {
            Ok(0) => return Ok(false),
            Ok(_) if pfd.revents & events != 0 => return Ok(true),
            Ok(_) => {
                if left.is_some_and(|l| l.is_zero()) {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(1).min(left.unwrap_or(Duration::MAX)));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
