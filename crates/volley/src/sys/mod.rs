//! Everything that touches libc. Nothing outside `sys/` is `unsafe`.
//!
//! # What a backend provides
//!
//! A backend is a pair of functions over an array of message headers
//! ([`MsgHdr`], laid out like Linux's `struct mmsghdr`):
//!
//! - `send_msgs(fd, &mut [MsgHdr]) -> io::Result<usize>`: send the messages
//!   in order; `Ok(n)` means the first `n` left; `Err` means the first one
//!   failed and none left.
//! - `recv_msgs(fd, &mut [MsgHdr]) -> io::Result<usize>`: fill up to all of
//!   them; `Ok(n)` with `n >= 1`; `Err(WouldBlock)` when nothing is queued.
//!
//! Two backends exist, chosen per call from the socket's live capabilities:
//!
//! - [`linux`]: one `sendmmsg`/`recvmmsg` per array (Linux, Android);
//! - [`fallback`]: one `sendmsg`/`recvmsg` per message (any Unix). Used when
//!   [`crate::Backend::Portable`] is configured, off Linux, and at run time
//!   when a seccomp filter refuses the `mmsg` calls.
//!
//! Everything else here is shared: socket set-up and probing ([`open`]),
//! building headers from [`Transmit`]s and decoding received ones
//! ([`send`], [`recv`]), and socket options.

// msghdr/cmsghdr length fields are size_t on glibc Linux and socklen_t
// elsewhere: the `as usize` casts are needed off glibc.
#![allow(clippy::unnecessary_cast)]

pub(crate) mod cmsg;
mod fallback;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::capabilities::Live;
use crate::error::icmp_errno;
use crate::errqueue::ErrorRing;
use crate::{Backend, Capabilities, Config, Dscp, Error, InvalidTransmit, RecvBatch, RecvMeta, Transmit};
use cmsg::{Encoder, SendControl, SendOptions};

/// `-1` to `io::Error` (mio's `syscall!`).
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
pub(crate) use syscall;

/// Messages per `sendmmsg` call. Stack arrays of this many headers,
/// addresses and control buffers are built per call (about 15 KiB).
const SEND_CHUNK: usize = 64;

/// Largest UDP payload: IPv4 (65535 - 20 - 8) and IPv6 (65535 - 8).
pub(crate) use crate::meta::{MAX_PAYLOAD_V4, MAX_PAYLOAD_V6};
/// Most segments one GSO send may carry on every kernel with GSO
/// (`UDP_MAX_SEGMENTS` until Linux 6.8; newer kernels allow 128, which
/// `linux::gso_max_segments` probes). 64 KiB of payload caps a train too.
const GSO_MAX_SEGMENTS: usize = 64;

/// A message header laid out like Linux's `struct mmsghdr`, so one array
/// serves both `sendmmsg` and a loop of `sendmsg`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct MsgHdr {
    pub(crate) hdr: libc::msghdr,
    pub(crate) len: libc::c_uint,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const _: () = assert!(size_of::<MsgHdr>() == size_of::<libc::mmsghdr>());

/// Storage for one socket address, big enough for IPv4 and IPv6.
#[repr(C)]
#[derive(Clone, Copy)]
union SockAddrBuf {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

// SAFETY: a union of two Zeroable structs: all-zero is valid for either.
unsafe impl cmsg::Zeroable for SockAddrBuf {}
// SAFETY: MsgHdr is msghdr (Zeroable) plus a c_uint; zero is valid for both.
unsafe impl cmsg::Zeroable for MsgHdr {}

impl SockAddrBuf {
    fn new() -> Self {
        cmsg::zeroed()
    }

    /// Writes `addr`, returning its length.
    fn write(&mut self, addr: SocketAddr) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                let mut sin: libc::sockaddr_in = cmsg::zeroed();
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                self.v4 = sin;
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                let mut sin6: libc::sockaddr_in6 = cmsg::zeroed();
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_scope_id = a.scope_id();
                self.v6 = sin6;
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    /// Reads the address the kernel wrote (`len` bytes), IPv4-mapped
    /// addresses folded to IPv4.
    fn read(&self, len: libc::socklen_t) -> Option<SocketAddr> {
        // SAFETY: both union variants are plain C structs; the buffer was
        // zeroed before the kernel wrote `len` bytes, so whichever variant we
        // read is initialised. The family field sits at the same offset in
        // both, and we check it (and the length) before trusting the rest.
        let family = unsafe { self.v4.sin_family } as libc::c_int;
        match family {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: family says the kernel wrote a sockaddr_in.
                let sin = unsafe { self.v4 };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: family says the kernel wrote a sockaddr_in6.
                let sin6 = unsafe { self.v6 };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let port = u16::from_be(sin6.sin6_port);
                let a = SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id);
                Some(crate::meta::canonical(SocketAddr::V6(a)))
            }
            _ => None,
        }
    }
}

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

fn iovec(ptr: *const u8, len: usize) -> libc::iovec {
    libc::iovec { iov_base: ptr.cast_mut().cast(), iov_len: len }
}

/// Sets a socket option whose value is a `T` (an `int`, or the C struct the
/// option expects): the one `setsockopt` call of the crate.
pub(crate) fn set_opt<T>(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: setsockopt(2) reads size_of::<T>() bytes from `value`, a live
    // reference for the whole call; callers pass the type the option
    // expects (c_int, group_req, group_source_req, ip_mreqn, sock_txtime,
    // sock_fprog).
    syscall!(setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), size_of::<T>() as libc::socklen_t))
        .map(drop)
}

/// Sets an `int` socket option.
pub(crate) fn set_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    set_opt(fd, level, name, &value)
}

/// Reads an `int` socket option.
pub(crate) fn get_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is live; value/len point at writable locals of the sizes
    // given, as getsockopt(2) requires.
    syscall!(getsockopt(fd.as_raw_fd(), level, name, (&mut value as *mut libc::c_int).cast(), &mut len))?;
    Ok(value)
}

/// Waits until `fd` is readable (`events = POLLIN`) or writable (`POLLOUT`),
/// or `timeout` passes (`None`: no limit). Returns whether it became ready.
///
/// `poll` also wakes for `POLLERR` while the ICMP error queue holds an
/// entry, which does not make the socket readable or writable: then it
/// naps 1 ms between polls instead of spinning.
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

/// Which IP versions a socket carries: an IPv4 socket `v4` only, an
/// IPv6-only socket `v6` only, a dual-stack `[::]` socket both. Options
/// with a per-family flavour (TOS, PMTUD, multicast) are set on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Families {
    pub(crate) v4: bool,
    pub(crate) v6: bool,
}

/// Per-socket facts the data path needs.
#[derive(Debug)]
pub(crate) struct SocketState {
    pub(crate) live: Live,
    /// The IP versions the socket carries, as the kernel says after bind.
    pub(crate) families: Families,
    /// The DSCP of the socket-level TOS, kept under per-datagram ECN.
    pub(crate) socket_dscp: AtomicU8,
    /// An error the portable receive loop met after it had datagrams to
    /// return; reported by the next receive.
    pub(crate) pending_error: std::sync::Mutex<Option<io::Error>>,
    /// ICMP errors drained from the kernel (or left pending by an earlier
    /// datagram), kept for [`crate::Socket::try_recv_error`].
    pub(crate) errors: std::sync::Mutex<ErrorRing>,
}

impl SocketState {
    pub(crate) fn socket_dscp(&self) -> Dscp {
        Dscp::from_tos(self.socket_dscp.load(Ordering::Relaxed) << 2)
    }

    /// The ring of ICMP errors (a poisoned lock still holds valid entries).
    pub(crate) fn errors(&self) -> std::sync::MutexGuard<'_, ErrorRing> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates, configures and binds a socket; probes what the kernel offers.
pub(crate) fn open(addr: SocketAddr, config: &Config) -> Result<(socket2::Socket, SocketState), Error> {
    let bind_err = |reason, source: io::Error| Error::Bind { addr, reason, source };
    let other = |e: io::Error| bind_err(crate::BindError::Other, e);
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM.nonblocking().cloexec(), Some(socket2::Protocol::UDP))
        .map_err(other)?;
    let v6 = addr.is_ipv6();
    let dual_stack = v6 && !config.ipv6_only.unwrap_or(false);
    if v6 {
        sock.set_only_v6(!dual_stack).map_err(other)?;
    }
    if config.reuse_addr {
        sock.set_reuse_address(true).map_err(other)?;
    }
    if config.reuse_port {
        sock.set_reuse_port(true).map_err(other)?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(dev) = &config.bind_device {
        sock.bind_device(Some(dev.as_bytes())).map_err(other)?;
    }
    if let Some(size) = config.recv_buffer_size {
        set_buffer(&sock, size, true);
    }
    if let Some(size) = config.send_buffer_size {
        set_buffer(&sock, size, false);
    }
    sock.bind(&addr.into()).map_err(|e| {
        let reason = match e.raw_os_error() {
            Some(libc::EADDRINUSE) => crate::BindError::AddressInUse,
            Some(libc::EADDRNOTAVAIL) => crate::BindError::AddressNotAvailable,
            Some(libc::EACCES) => crate::BindError::PermissionDenied,
            _ => crate::BindError::Other,
        };
        bind_err(reason, e)
    })?;

    let state = configure(&sock, config).map_err(other)?;
    Ok((sock, state))
}

/// Takes over a UDP socket created (and usually bound) elsewhere: an
/// inherited descriptor (systemd socket activation, a supervisor), or one
/// bound before dropping privileges. Checks that it is UDP and that the
/// bind-time options the `config` asks for are set on it (they can no
/// longer be set), then applies and probes the rest as [`open`] does.
pub(crate) fn adopt(sock: &socket2::Socket, config: &Config) -> Result<SocketState, Error> {
    use crate::AdoptError as Why;
    let io = |reason: Why| move |e: io::Error| Error::Adopt { reason, source: Some(e) };
    let refuse = |reason: Why| Error::Adopt { reason, source: None };
    if sock.r#type().map_err(io(Why::NotUdp))? != socket2::Type::DGRAM {
        return Err(refuse(Why::NotUdp));
    }
    match sock.local_addr().map_err(io(Why::NotUdp))?.as_socket() {
        Some(_) => {}
        None => return Err(refuse(Why::NotUdp)),
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if sock.protocol().map_err(io(Why::NotUdp))? != Some(socket2::Protocol::UDP) {
        return Err(refuse(Why::NotUdp));
    }
    if config.reuse_addr && !sock.reuse_address().map_err(io(Why::Other))? {
        return Err(refuse(Why::ReuseAddr));
    }
    if config.reuse_port && !sock.reuse_port().map_err(io(Why::Other))? {
        return Err(refuse(Why::ReusePort));
    }
    let v6 = sock.local_addr().ok().and_then(|a| a.as_socket()).is_some_and(|a| a.is_ipv6());
    if let (true, Some(only)) = (v6, config.ipv6_only) {
        if sock.only_v6().map_err(io(Why::Other))? != only {
            return Err(refuse(Why::Ipv6Only));
        }
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(dev) = &config.bind_device {
        if sock.device().map_err(io(Why::Other))?.as_deref() != Some(dev.as_bytes()) {
            return Err(refuse(Why::BindDevice));
        }
    }
    if let Some(size) = config.recv_buffer_size {
        set_buffer(sock, size, true);
    }
    if let Some(size) = config.send_buffer_size {
        set_buffer(sock, size, false);
    }
    configure(sock, config).map_err(io(Why::Other))
}

/// Applies the options that work on a bound socket and probes what the
/// kernel offers; the family comes from the bound address.
fn configure(sock: &socket2::Socket, config: &Config) -> io::Result<SocketState> {
    let v6 = sock.local_addr()?.as_socket().is_some_and(|a| a.is_ipv6());
    // Binding a specific IPv6 address makes the kernel set IPV6_V6ONLY
    // (only `[::]` can carry IPv4): read back what the socket really is.
    let dual_stack = v6 && !sock.only_v6()?;
    let fd = {
        use std::os::fd::AsFd;
        sock.as_fd()
    };
    let families = Families { v4: !v6 || dual_stack, v6 };
    let try_both = |v4: (libc::c_int, libc::c_int), v6o: (libc::c_int, libc::c_int)| -> bool {
        let a = !families.v4 || set_int(fd, libc::IPPROTO_IP, v4.0, v4.1).is_ok();
        let b = !families.v6 || set_int(fd, libc::IPPROTO_IPV6, v6o.0, v6o.1).is_ok();
        a && b
    };
    let pktinfo = try_both((libc::IP_PKTINFO, 1), (libc::IPV6_RECVPKTINFO, 1));
    let ecn = try_both((libc::IP_RECVTOS, 1), (libc::IPV6_RECVTCLASS, 1));
    let ttl = try_both((libc::IP_RECVTTL, 1), (libc::IPV6_RECVHOPLIMIT, 1));
    if let Some(tos) = config.tos {
        set_tos(fd, families, tos)?;
    }
    if let Some(mode) = config.pmtud {
        set_pmtud(fd, families, mode)?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let recv_errors = config.recv_errors && try_both((libc::IP_RECVERR, 1), (libc::IPV6_RECVERR, 1));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let recv_errors = false;

    let portable = config.effective_backend() == Backend::Portable;
    let mut caps = Capabilities {
        backend: if portable { Backend::Portable } else { Backend::Auto },
        mmsg: false,
        max_gso_segments: 1,
        gro: false,
        pktinfo,
        ecn,
        ttl,
        timestamps: false,
        txtime: false,
        drop_counter: false,
        recv_errors,
        multicast: if v6 {
            get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS).is_ok()
        } else {
            get_int(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL).is_ok()
        },
    };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    linux::probe(fd, config, portable, &mut caps)?;
    let socket_dscp = AtomicU8::new(config.tos.unwrap_or(0) >> 2);
    Ok(SocketState {
        live: Live::new(caps),
        families,
        socket_dscp,
        pending_error: Default::default(),
        errors: Default::default(),
    })
}

/// Requests a buffer size; on Linux retries with the `*FORCE` option (root
/// may exceed `net.core.*mem_max`) and warns once if the grant falls short.
fn set_buffer(sock: &socket2::Socket, size: usize, recv: bool) {
    let _ = if recv { sock.set_recv_buffer_size(size) } else { sock.set_send_buffer_size(size) };
    let granted = || if recv { sock.recv_buffer_size() } else { sock.send_buffer_size() }.unwrap_or(0);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if granted() < size {
        use std::os::fd::AsFd;
        let opt = if recv { libc::SO_RCVBUFFORCE } else { libc::SO_SNDBUFFORCE };
        let _ = set_int(sock.as_fd(), libc::SOL_SOCKET, opt, libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX));
    }
    let got = granted();
    if got < size {
        tracing::warn!(
            requested = size,
            granted = got,
            "socket {} buffer smaller than requested; raise sysctl net.core.{}",
            if recv { "receive" } else { "send" },
            if recv { "rmem_max" } else { "wmem_max" }
        );
    }
}

/// Sets the socket-level TOS / traffic class on every family the socket
/// carries.
pub(crate) fn set_tos(fd: BorrowedFd<'_>, families: Families, tos: u8) -> io::Result<()> {
    if families.v4 {
        set_int(fd, libc::IPPROTO_IP, libc::IP_TOS, libc::c_int::from(tos))?;
    }
    if families.v6 {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, libc::c_int::from(tos))?;
    }
    Ok(())
}

/// Reads the socket-level TOS / traffic class.
pub(crate) fn tos(fd: BorrowedFd<'_>, v6: bool) -> io::Result<u8> {
    let v = if v6 {
        get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_TCLASS)?
    } else {
        get_int(fd, libc::IPPROTO_IP, libc::IP_TOS)?
    };
    Ok(v as u8)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_pmtud(fd: BorrowedFd<'_>, families: Families, mode: crate::Pmtud) -> io::Result<()> {
    use crate::Pmtud;
    let (v4m, v6m) = match mode {
        Pmtud::Off => (libc::IP_PMTUDISC_DONT, libc::IPV6_PMTUDISC_DONT),
        Pmtud::Do => (libc::IP_PMTUDISC_DO, libc::IPV6_PMTUDISC_DO),
        Pmtud::Probe => (libc::IP_PMTUDISC_PROBE, libc::IPV6_PMTUDISC_PROBE),
    };
    if families.v4 {
        set_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4m)?;
    }
    if families.v6 {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, v6m)?;
    }
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_pmtud(_fd: BorrowedFd<'_>, _families: Families, _mode: crate::Pmtud) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "path-MTU discovery modes need Linux"))
}

/// Whether the IP layer may fragment this socket's datagrams: false only if
/// every family it carries has DF set for good (`DO` or `PROBE`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn may_fragment(fd: BorrowedFd<'_>, families: Families) -> bool {
    let df = |level, name, do_, probe| get_int(fd, level, name).is_ok_and(|m| m == do_ || m == probe);
    let v4_df = df(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO, libc::IP_PMTUDISC_PROBE);
    let v6_df = df(libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DO, libc::IPV6_PMTUDISC_PROBE);
    // DF for good on every family the socket carries.
    let no_frag = (!families.v4 || v4_df) && (!families.v6 || v6_df);
    !no_frag
}

/// Off Linux the mode cannot be read: assume fragmentation is possible.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn may_fragment(_fd: BorrowedFd<'_>, _families: Families) -> bool {
    true
}

/// The kernel's path MTU for a connected socket (`IP_MTU` / `IPV6_MTU`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn path_mtu(fd: BorrowedFd<'_>, v6_path: bool) -> io::Result<u32> {
    let v = if v6_path {
        get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU)?
    } else {
        get_int(fd, libc::IPPROTO_IP, libc::IP_MTU)?
    };
    Ok(v as u32)
}

/// The kernel's path MTU for a connected socket.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn path_mtu(_fd: BorrowedFd<'_>, _v6_path: bool) -> io::Result<u32> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "IP_MTU needs Linux"))
}

/// Steers a reuse-port group by CPU: socket `cpu % n`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn attach_cpu_steering(fd: BorrowedFd<'_>, n: usize) -> io::Result<()> {
    linux::attach_cpu_steering(fd, n)
}

/// CPU steering needs Linux's reuse-port BPF.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn attach_cpu_steering(_fd: BorrowedFd<'_>, _n: usize) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "CPU steering needs Linux (SO_ATTACH_REUSEPORT_CBPF)"))
}

/// A `sockaddr_storage` holding `ip` (port 0), for `group_req`.
fn storage(ip: IpAddr) -> libc::sockaddr_storage {
    let mut buf = SockAddrBuf::new();
    let len = buf.write(SocketAddr::new(ip, 0)) as usize;
    let mut out: libc::sockaddr_storage = cmsg::zeroed();
    // SAFETY: sockaddr_storage is larger than either union variant (`len`
    // bytes, at most sizeof(sockaddr_in6)) and both are plain bytes; the
    // regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&buf as *const SockAddrBuf).cast::<u8>(),
            (&mut out as *mut libc::sockaddr_storage).cast::<u8>(),
            len,
        );
    }
    out
}

/// Joins or leaves a multicast group, any-source or source-specific.
pub(crate) fn multicast_membership(
    fd: BorrowedFd<'_>,
    sock: &socket2::Socket,
    group: IpAddr,
    source: Option<IpAddr>,
    interface: crate::MulticastInterface,
    v4: bool,
    join: bool,
) -> io::Result<()> {
    use crate::MulticastInterface as If;
    let level = if v4 { libc::IPPROTO_IP } else { libc::IPPROTO_IPV6 };
    match (group, source, interface) {
        // By IPv4 interface address: the classic v4 calls.
        (IpAddr::V4(g), None, If::V4(a)) => {
            if join {
                sock.join_multicast_v4(&g, &a)
            } else {
                sock.leave_multicast_v4(&g, &a)
            }
        }
        (IpAddr::V4(g), Some(IpAddr::V4(src)), If::V4(a)) => {
            if join {
                sock.join_ssm_v4(&src, &g, &a)
            } else {
                sock.leave_ssm_v4(&src, &g, &a)
            }
        }
        // By index (0 = any): the protocol-independent RFC 3678 calls.
        (_, None, If::Any | If::Index(_)) => {
            let index = if let If::Index(i) = interface { i } else { 0 };
            let req = libc::group_req { gr_interface: index, gr_group: storage(group) };
            let opt = if join { libc::MCAST_JOIN_GROUP } else { libc::MCAST_LEAVE_GROUP };
            set_opt(fd, level, opt, &req)
        }
        (_, Some(src), If::Any | If::Index(_)) => {
            let index = if let If::Index(i) = interface { i } else { 0 };
            let req =
                libc::group_source_req { gsr_interface: index, gsr_group: storage(group), gsr_source: storage(src) };
            let opt = if join { libc::MCAST_JOIN_SOURCE_GROUP } else { libc::MCAST_LEAVE_SOURCE_GROUP };
            set_opt(fd, level, opt, &req)
        }
        // Checked by the caller (InterfaceFamily / SourceFamily).
        _ => Err(io::Error::from(io::ErrorKind::InvalidInput)),
    }
}

/// Sets the outgoing multicast interface.
pub(crate) fn set_multicast_interface(
    sock: &socket2::Socket,
    families: Families,
    interface: crate::MulticastInterface,
) -> io::Result<()> {
    use crate::MulticastInterface as If;
    match interface {
        If::V4(a) => sock.set_multicast_if_v4(&a),
        If::Any | If::Index(_) => {
            let index = if let If::Index(i) = interface { i } else { 0 };
            if families.v4 {
                #[cfg(any(target_os = "linux", target_os = "android"))]
                {
                    let mut mreqn: libc::ip_mreqn = cmsg::zeroed();
                    mreqn.imr_ifindex = libc::c_int::try_from(index).unwrap_or(0);
                    use std::os::fd::AsFd;
                    set_opt(sock.as_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreqn)?;
                }
            }
            if families.v6 {
                sock.set_multicast_if_v6(index)?;
            }
            Ok(())
        }
    }
}

/// Dissolves a connection (`connect` to `AF_UNSPEC`).
pub(crate) fn disconnect(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut addr: libc::sockaddr = cmsg::zeroed();
    addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: a valid sockaddr of the stated length; AF_UNSPEC dissolves the
    // association (connect(2), "UDP ... may dissolve the association").
    match syscall!(connect(fd.as_raw_fd(), &addr, size_of::<libc::sockaddr>() as libc::socklen_t)) {
        Ok(_) => Ok(()),
        // Some kernels answer EAFNOSUPPORT yet dissolve the association.
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => Ok(()),
        Err(e) => Err(e),
    }
}

fn send_msgs(fd: RawFd, live: &Live, msgs: &mut [MsgHdr]) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if live.mmsg() {
        match linux::send_msgs(fd, msgs) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) && linux::mmsg_blocked(fd, true) => {
                live.disable_mmsg(e.raw_os_error().unwrap_or(0));
            }
            other => return other,
        }
    }
    let _ = live;
    fallback::send_msgs(fd, msgs)
}

fn recv_msgs(fd: RawFd, state: &SocketState, msgs: &mut [MsgHdr]) -> io::Result<usize> {
    if let Some(e) = state.pending_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if state.live.mmsg() {
        match linux::recv_msgs(fd, msgs) {
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) && linux::mmsg_blocked(fd, false) =>
            {
                state.live.disable_mmsg(e.raw_os_error().unwrap_or(0));
            }
            other => return other,
        }
    }
    match fallback::recv_msgs(fd, msgs) {
        (0, Some(e)) => Err(e),
        (n, pending) => {
            if let Some(e) = pending {
                *state.pending_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
            Ok(n)
        }
    }
}

/// The receive syscall with volley's ICMP rule: a pending ICMP-derived
/// error (the kernel returns it before any queued datagram) is, with the
/// error queue on, moved into the socket's ring with the queue's entries,
/// and the receive goes on: the queue is drained whenever the kernel
/// signals an error, so its entries never fill the receive buffer. Without
/// the error queue it is returned once, as std does.
fn kernel_recv(fd: BorrowedFd<'_>, state: &SocketState, hdrs: &mut [MsgHdr]) -> io::Result<usize> {
    let mut icmp_passes = 0;
    loop {
        match recv_msgs(fd.as_raw_fd(), state, hdrs) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if state.live.fixed.recv_errors
                    && icmp_passes < RECV_ICMP_RETRIES
                    && e.raw_os_error().is_some_and(icmp_errno) =>
            {
                icmp_passes += 1;
                absorb_pending(fd, state, e.raw_os_error().unwrap_or(0), "receive");
            }
            other => return other,
        }
    }
}

/// Receives into `batch`'s slots, one [`RecvMeta`] per message. Returns
/// the number of datagrams after GRO splitting.
pub(crate) fn recv(fd: BorrowedFd<'_>, state: &SocketState, batch: &mut RecvBatch) -> Result<usize, Error> {
    recv_batch_with(state, batch, |hdrs| kernel_recv(fd, state, hdrs))
}

/// Receives into the caller's buffers: message `i` into `bufs[i]`,
/// described by `meta[i]`. Returns the number of messages.
pub(crate) fn recv_into(
    fd: BorrowedFd<'_>,
    state: &SocketState,
    bufs: &mut [io::IoSliceMut<'_>],
    meta: &mut [RecvMeta],
) -> Result<usize, Error> {
    let n = bufs.len().min(meta.len()).min(crate::batch::MAX_SLOTS);
    if n == 0 {
        return Err(Error::EmptyBatch);
    }
    if state.live.fixed.gro {
        if let Some(short) = bufs[..n].iter().map(|b| b.len()).filter(|&l| l < crate::batch::DEFAULT_SLOT_LEN).min() {
            return Err(Error::BatchTooSmallForGro { slot_len: short, needed: crate::batch::DEFAULT_SLOT_LEN });
        }
    }
    // Written by the kernel only, and read only as far as it wrote.
    let mut control = [const { MaybeUninit::<cmsg::RecvControl>::uninit() }; crate::batch::MAX_SLOTS];
    let mut out = meta.iter_mut();
    recv_with(
        state,
        Target::Caller(&mut bufs[..n]),
        &mut control[..n],
        |hdrs| kernel_recv(fd, state, hdrs),
        |m| {
            if let Some(slot) = out.next() {
                *slot = m;
            }
        },
    )
}

/// [`recv`] over any `kernel` that fills message headers the way
/// `recvmmsg` does (unit tests and Miri pass a fake one).
fn recv_batch_with(
    state: &SocketState,
    batch: &mut RecvBatch,
    kernel: impl FnOnce(&mut [MsgHdr]) -> io::Result<usize>,
) -> Result<usize, Error> {
    if state.live.fixed.gro && batch.slot_len() < crate::batch::DEFAULT_SLOT_LEN {
        // The kernel would copy what fits of a coalesced train and discard
        // the rest of it, datagrams and all: refuse rather than lose them.
        return Err(Error::BatchTooSmallForGro { slot_len: batch.slot_len(), needed: crate::batch::DEFAULT_SLOT_LEN });
    }
    let (data, slot_len, control, msgs) = batch.data_mut();
    msgs.clear();
    let mut datagrams = 0;
    recv_with(state, Target::Slots { data, slot_len }, control, kernel, |m| {
        datagrams += crate::batch::segment_count(&m);
        msgs.push(m);
    })?;
    Ok(datagrams)
}

/// Where each message's payload goes.
enum Target<'a, 'b> {
    /// Slot `i` of a batch's buffer: `data[i * slot_len..][..slot_len]`.
    Slots { data: &'a mut [u8], slot_len: usize },
    /// The caller's buffer `i` (`IoSliceMut` is an `iovec` on Unix).
    Caller(&'a mut [io::IoSliceMut<'b>]),
}

/// The receive path over any `kernel`: builds one header per message over
/// `target` and `control` (which bounds the count), lets the kernel fill
/// them, and hands one decoded [`RecvMeta`] per message to `out`, in
/// order. Returns the number of messages.
fn recv_with(
    state: &SocketState,
    target: Target<'_, '_>,
    control: &mut [MaybeUninit<cmsg::RecvControl>],
    kernel: impl FnOnce(&mut [MsgHdr]) -> io::Result<usize>,
    mut out: impl FnMut(RecvMeta),
) -> Result<usize, Error> {
    // Per-call scratch, left uninitialised: only the `n` entries used are
    // written (zeroing all 64 would cost more than a small receive).
    let mut names = [const { MaybeUninit::<SockAddrBuf>::uninit() }; crate::batch::MAX_SLOTS];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; crate::batch::MAX_SLOTS];
    let mut hdrs = [const { MaybeUninit::<MsgHdr>::uninit() }; crate::batch::MAX_SLOTS];
    // One base pointer per array, taken once: the kernel writes through
    // pointers derived from these, so no `&mut` reborrow of the buffers,
    // `control` or `names` may happen until it is done (a reborrow would
    // invalidate the pointers already handed out).
    let ctrl_base = control.as_mut_ptr().cast::<cmsg::RecvControl>();
    let name_base = names.as_mut_ptr().cast::<SockAddrBuf>();
    let hdr_base = hdrs.as_mut_ptr().cast::<MsgHdr>();
    let (n, iov_base) = match target {
        Target::Slots { data, slot_len } => {
            let n = control.len().min(data.len() / slot_len.max(1)).min(crate::batch::MAX_SLOTS);
            let data_base = data.as_mut_ptr();
            let iov_base = iovs.as_mut_ptr().cast::<libc::iovec>();
            for i in 0..n {
                // SAFETY: i < n <= MAX_SLOTS, the length of `iovs`; slot i
                // (i * slot_len .. (i + 1) * slot_len) lies inside `data` as
                // n <= data.len() / slot_len.
                unsafe { iov_base.add(i).write(iovec(data_base.add(i * slot_len), slot_len)) };
            }
            (n, iov_base)
        }
        Target::Caller(bufs) => {
            // std guarantees `IoSliceMut` is ABI-compatible with `iovec` on
            // Unix: the caller's slices are the kernel's iovecs.
            (bufs.len().min(control.len()).min(crate::batch::MAX_SLOTS), bufs.as_mut_ptr().cast::<libc::iovec>())
        }
    };
    for i in 0..n {
        // SAFETY: i < n, and n bounds `names`, `hdrs` (MAX_SLOTS), `control`
        // and the iovecs at `iov_base` (see above): every `add(i)` is in
        // bounds. Writing a MaybeUninit element through its raw pointer
        // initialises it; the control entry is only pointed at.
        unsafe {
            let name = name_base.add(i);
            name.write(SockAddrBuf::new());
            let mut h = MsgHdr { hdr: cmsg::zeroed(), len: 0 };
            h.hdr.msg_name = name.cast();
            h.hdr.msg_namelen = size_of::<SockAddrBuf>() as libc::socklen_t;
            h.hdr.msg_iov = iov_base.add(i);
            h.hdr.msg_iovlen = 1;
            h.hdr.msg_control = ctrl_base.add(i).cast();
            h.hdr.msg_controllen = cmsg::RECV_SPACE as _;
            hdr_base.add(i).write(h);
        }
    }
    // SAFETY: entries 0..n of `hdrs` were written just above; the slice is
    // derived from the same base pointer, so the pointers inside stay valid.
    let hdrs = unsafe { std::slice::from_raw_parts_mut(hdr_base, n) };
    let got = kernel(hdrs)?.min(n);
    for (i, h) in hdrs[..got].iter().enumerate() {
        // SAFETY: entry i < got <= n of `names` and of the iovecs was written
        // above; the kernel is done writing through the pointers, and wrote
        // the first msg_controllen bytes (at most RECV_SPACE) of control
        // entry i, which are all that is read.
        let (name, room, ctrl) = unsafe {
            let ctrl_len = (h.hdr.msg_controllen as usize).min(cmsg::RECV_SPACE);
            (
                &*name_base.add(i),
                (*iov_base.add(i)).iov_len,
                std::slice::from_raw_parts(ctrl_base.add(i).cast::<u8>(), ctrl_len),
            )
        };
        // A UDP socket always gets an IPv4/IPv6 source; keep the message
        // (the caller indexes by message) with an unspecified one otherwise.
        let src = name.read(h.hdr.msg_namelen);
        debug_assert!(src.is_some(), "UDP receive without an IP source address");
        let src = src.unwrap_or(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)));
        let len = (h.len as usize).min(room);
        let d = cmsg::decode(ctrl);
        let mut meta = RecvMeta::new(src, len);
        meta.dst_ip = d.dst_ip.map(|ip| ip.to_canonical());
        meta.ifindex = d.ifindex;
        if let Some(tos) = d.tos {
            meta.ecn = crate::Ecn::from_bits(tos);
            meta.dscp = Some(Dscp::from_tos(tos));
        }
        meta.ttl = d.ttl;
        meta.segment_size = d.gro_segment_size.unwrap_or(len);
        meta.truncated = h.hdr.msg_flags & libc::MSG_TRUNC != 0;
        meta.control_truncated = h.hdr.msg_flags & libc::MSG_CTRUNC != 0;
        meta.timestamp = d.timestamp;
        // The kernel sends no SO_RXQ_OVFL message while the count is 0.
        meta.drops = d.drops.or(state.live.fixed.drop_counter.then_some(0));
        out(meta);
    }
    Ok(got)
}

/// The error queue is Linux's; elsewhere it is always empty.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn read_error_entry(_fd: BorrowedFd<'_>) -> io::Result<Option<Option<crate::IcmpError>>> {
    Ok(None)
}

/// Reads one entry of the socket's error queue (`MSG_ERRQUEUE`): `None`
/// when the queue is empty, `Some(None)` for an entry that carries no
/// extended error (consumed and skipped).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn read_error_entry(fd: BorrowedFd<'_>) -> io::Result<Option<Option<crate::IcmpError>>> {
    let mut name = SockAddrBuf::new();
    let mut control = cmsg::RecvControl::new();
    let mut payload = [0u8; 1];
    let mut iov = iovec(payload.as_mut_ptr(), payload.len());
    let mut hdr: libc::msghdr = cmsg::zeroed();
    hdr.msg_name = (&mut name as *mut SockAddrBuf).cast();
    hdr.msg_namelen = size_of::<SockAddrBuf>() as libc::socklen_t;
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.0.as_mut_ptr().cast();
    hdr.msg_controllen = cmsg::RECV_SPACE as _;
    let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
    loop {
        // SAFETY: recvmsg(2) on a live fd with a msghdr whose name, one
        // iovec and control buffer are writable locals of the stated sizes.
        match syscall!(recvmsg(fd.as_raw_fd(), &mut hdr, flags)) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    let ctrl_len = (hdr.msg_controllen as usize).min(cmsg::RECV_SPACE);
    let Some(ee) = cmsg::decode(&control.0[..ctrl_len]).ext_err else { return Ok(Some(None)) };
    let errno = i32::try_from(ee.errno).unwrap_or(0);
    Ok(Some(Some(crate::IcmpError {
        kind: crate::IcmpKind::classify(ee.origin, ee.icmp_type, ee.code, ee.info, errno),
        destination: name.read(hdr.msg_namelen),
        offender: ee.offender.map(|ip| ip.to_canonical()),
        errno,
    })))
}

/// Most error-queue entries one call reads: the kernel bounds the queue by
/// the receive buffer; this bounds the work of one call under a flood.
const DRAIN_MAX: usize = 256;

/// How many times one receive goes past a pending ICMP error before it
/// returns it (each pass drained the error queue): a bound on the work of
/// one call under an ICMP flood.
const RECV_ICMP_RETRIES: usize = 64;

fn log_icmp(e: &crate::IcmpError, during: &'static str) {
    tracing::debug!(
        kind = %e.kind,
        destination = ?e.destination,
        offender = ?e.offender,
        errno = e.errno,
        during,
        "ICMP error for an earlier datagram; kept for try_recv_error"
    );
}

/// Moves the kernel's queued ICMP errors into the socket's ring (with the
/// error queue on); returns how many it moved. Also takes the pending
/// socket error that came with them (`SO_ERROR`), so the next receive does
/// not report it again; recorded bare if the queue held nothing for it
/// (the kernel refuses queue entries while the receive buffer is full).
pub(crate) fn drain_errors(fd: BorrowedFd<'_>, state: &SocketState) -> usize {
    if !state.live.fixed.recv_errors {
        return 0;
    }
    let mut ring = state.errors();
    let mut moved = 0;
    for _ in 0..DRAIN_MAX {
        match read_error_entry(fd) {
            Ok(Some(Some(e))) => {
                log_icmp(&e, "drain");
                ring.push(e);
                moved += 1;
            }
            Ok(Some(None)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if let Ok(errno) = get_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
        if moved == 0 && icmp_errno(errno) {
            let e = crate::IcmpError { kind: crate::IcmpKind::Pending, destination: peer(fd), offender: None, errno };
            log_icmp(&e, "drain");
            ring.push(e);
        }
    }
    moved
}

/// A pending ICMP-derived `errno` met (and so consumed) by a receive or
/// send: drains the error queue, where its details are, or, when that holds
/// nothing (queue off, or the kernel refused the entry), records the bare
/// errno, so the error is never lost unseen.
fn absorb_pending(fd: BorrowedFd<'_>, state: &SocketState, errno: i32, during: &'static str) {
    if drain_errors(fd, state) == 0 {
        let e = crate::IcmpError { kind: crate::IcmpKind::Pending, destination: peer(fd), offender: None, errno };
        log_icmp(&e, during);
        state.errors().push(e);
    }
}

/// One ICMP error: the socket's ring first, then the kernel's queue.
pub(crate) fn recv_error(fd: BorrowedFd<'_>, state: &SocketState) -> Result<Option<crate::IcmpError>, Error> {
    if let Some(e) = state.errors().pop() {
        return Ok(Some(e));
    }
    for _ in 0..DRAIN_MAX {
        match read_error_entry(fd)? {
            Some(Some(e)) => return Ok(Some(e)),
            Some(None) => {}
            None => break,
        }
    }
    Ok(None)
}

/// Checks one transmit against the socket; returns the destination as the
/// socket must see it and whether it is an IPv4 path.
fn validate(t: &Transmit<'_>, state: &SocketState, gso_max: usize) -> Result<(SocketAddr, bool), InvalidTransmit> {
    if t.segment_size == Some(0) {
        return Err(InvalidTransmit::SegmentSizeZero);
    }
    if t.destination.port() == 0 {
        return Err(InvalidTransmit::PortZero { destination: t.destination });
    }
    if t.txtime.is_some() && !state.live.fixed.txtime {
        return Err(InvalidTransmit::TxtimeNotEnabled);
    }
    // Normalise IPv4-mapped destinations to IPv4, then map for the socket.
    let dest = crate::meta::canonical(t.destination);
    let v4_path = dest.is_ipv4();
    let fam = state.families;
    let wire = match dest {
        SocketAddr::V4(_) if !fam.v6 => dest,
        SocketAddr::V6(_) if fam.v6 => dest,
        SocketAddr::V4(a) if fam.v4 => SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0)),
        _ => return Err(InvalidTransmit::AddressFamily { destination: t.destination }),
    };
    if let Some(index) = t.src_ifindex {
        // pktinfo's interface index is a C int for both families.
        if i32::try_from(index).is_err() {
            return Err(InvalidTransmit::SrcIfindexOutOfRange { src_ifindex: index });
        }
    }
    if let Some(src) = t.src_ip {
        if src.to_canonical().is_ipv4() != v4_path {
            return Err(InvalidTransmit::SourceFamily { src_ip: src });
        }
    }
    let max = if v4_path { MAX_PAYLOAD_V4 } else { MAX_PAYLOAD_V6 };
    match t.gso_stride() {
        None if t.contents.len() > max => {
            return Err(InvalidTransmit::DatagramTooLarge { field: "contents", size: t.contents.len(), max });
        }
        Some(s) if s > max => return Err(InvalidTransmit::DatagramTooLarge { field: "segment_size", size: s, max }),
        Some(_) if t.contents.len() > max => {
            return Err(InvalidTransmit::ContentsTooLarge { size: t.contents.len(), max });
        }
        Some(_) if gso_max > 1 && t.segments() > gso_max => {
            return Err(InvalidTransmit::TooManySegments { segments: t.segments(), max: gso_max });
        }
        _ => {}
    }
    Ok((wire, v4_path))
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
    match path_mtu(fd, !v4) {
        Ok(mtu) => len + headers <= mtu as usize,
        Err(_) => state.live.fixed.recv_errors,
    }
}

/// The peer of a connected socket (`getpeername`), IPv4-mapped folded.
fn peer(fd: BorrowedFd<'_>) -> Option<SocketAddr> {
    let mut addr = SockAddrBuf::new();
    let mut len = size_of::<SockAddrBuf>() as libc::socklen_t;
    // SAFETY: getpeername writes at most `len` bytes into `addr`, a local
    // buffer of that size, and updates `len`.
    syscall!(getpeername(fd.as_raw_fd(), (&mut addr as *mut SockAddrBuf).cast(), &mut len)).ok()?;
    addr.read(len)
}

/// Where a header in the send chunk came from.
#[derive(Clone, Copy, Default)]
struct Origin {
    /// Emulated segment index (0 for a whole transmit).
    segment: usize,
    /// This message completes its transmit.
    last: bool,
    /// This message carries `UDP_SEGMENT`.
    gso: bool,
    /// Bytes of each datagram it becomes: the GSO stride, or `len`.
    datagram: usize,
}

/// Sends `transmits` in order; returns how many were sent completely.
///
/// `Err` only when nothing was sent (or a segmented transmit was cut
/// short, [`Error::PartialTransmit`]).
pub(crate) fn send(fd: BorrowedFd<'_>, state: &SocketState, transmits: &[Transmit<'_>]) -> Result<usize, Error> {
    if transmits.is_empty() {
        return Err(Error::EmptyBatch);
    }
    let raw = fd.as_raw_fd();
    let socket_dscp = state.socket_dscp();
    let mut done = 0usize; // transmits fully sent
                           // Emulated segments of transmits[done] already sent.
    let mut segment = 0usize;
    // Set after a GSO EINVAL: emulate transmits[done] to learn whether GSO
    // itself was the problem.
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
    let mut origins = [Origin::default(); SEND_CHUNK];

    while done < transmits.len() {
        // Build one chunk starting at (done, segment).
        let gso_max = state.live.max_gso_segments();
        let mut k = 0;
        let (mut t_idx, mut seg) = (done, segment);
        let mut invalid = None;
        let mut checked: Option<(usize, SocketAddr, bool)> = None;
        while k < SEND_CHUNK && t_idx < transmits.len() {
            let t = &transmits[t_idx];
            // Validate a transmit once, not once per emulated segment.
            let (wire, v4) = match checked {
                Some((i, wire, v4)) if i == t_idx => (wire, v4),
                _ => match validate(t, state, gso_max) {
                    Ok((wire, v4)) => {
                        checked = Some((t_idx, wire, v4));
                        (wire, v4)
                    }
                    Err(e) => {
                        invalid = Some(e);
                        break;
                    }
                },
            };
            let stride = t.gso_stride();
            let use_gso = stride.is_some() && gso_max > 1 && !(t_idx == done && emulate_next.is_some());
            let (payload, last, this_seg) = match stride {
                Some(s) if !use_gso => {
                    let start = seg * s;
                    let end = (start + s).min(t.contents.len());
                    (&t.contents[start..end], end == t.contents.len(), seg)
                }
                _ => (t.contents, true, 0),
            };
            let opts = SendOptions {
                tos: t.tos(socket_dscp),
                src_ip: t.src_ip.map(|ip| ip.to_canonical()),
                src_ifindex: t.src_ifindex,
                segment_size: if use_gso { stride.map(|s| s as u16) } else { None },
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
            let datagram = if use_gso { stride.unwrap_or(payload.len()) } else { payload.len() };
            origins[k] = Origin { segment: this_seg, last, gso: use_gso, datagram };
            k += 1;
            if last {
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
                _ => Ok(done),
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
                for o in &origins[..n] {
                    if o.last {
                        done += 1;
                        segment = 0;
                    } else {
                        segment = o.segment + 1;
                    }
                }
                if n < k {
                    // The kernel stopped early (buffer full, or an error at
                    // message n, which the caller's retry will meet first).
                    // At a transmit boundary, return now rather than spend a
                    // syscall to learn it; mid-train, try to finish it.
                    if segment == 0 {
                        return Ok(done);
                    }
                    continue;
                }
                if invalid.is_some() {
                    return Ok(done);
                }
            }
            Err(e) => {
                let first = origins[0];
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EIO) if first.gso => {
                        state.live.disable_gso(libc::EIO);
                        continue;
                    }
                    Some(libc::EINVAL) if first.gso && emulate_next.is_none() => {
                        emulate_next = Some(libc::EINVAL);
                        continue;
                    }
                    Some(errno)
                        if icmp_errno(errno)
                            && !pending_retried
                            && (errno != libc::EMSGSIZE
                                || may_be_pending(fd, state, &transmits[done], first.datagram)) =>
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
                if segment > 0 {
                    // Mid-way through an emulated train: never block in a
                    // `try_` call; say exactly how far it got.
                    return Err(Error::PartialTransmit { transmits_sent: done, segments_sent: segment });
                }
                if done > 0 {
                    return Ok(done);
                }
                return Err(match e.raw_os_error() {
                    Some(libc::EMSGSIZE) => Error::MessageTooLong {
                        size: first.datagram,
                        mtu: transmits.first().and_then(|t| path_mtu(fd, !t.destination.is_ipv4()).ok()),
                    },
                    _ => Error::from(e),
                });
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ecn, IcmpKind};

    /// Socket state as a plain IPv4 socket without offloads would have it.
    fn state(recv_errors: bool) -> SocketState {
        let caps = Capabilities {
            backend: Backend::Auto,
            mmsg: true,
            max_gso_segments: 64,
            gro: false,
            pktinfo: true,
            ecn: true,
            ttl: true,
            timestamps: false,
            txtime: false,
            drop_counter: true,
            recv_errors,
            multicast: true,
        };
        SocketState {
            live: Live::new(caps),
            families: Families { v4: true, v6: false },
            socket_dscp: AtomicU8::new(0),
            pending_error: Default::default(),
            errors: Default::default(),
        }
    }

    /// A fake `recvmmsg`: writes a source address, a payload and control
    /// messages through the pointers of each header, as the kernel does.
    /// Under Miri this checks that those pointers are still valid when the
    /// "kernel" writes through them (no reborrow of their arrays between).
    fn fake_kernel(hdrs: &mut [MsgHdr], count: usize) -> io::Result<usize> {
        for (i, h) in hdrs.iter_mut().take(count).enumerate() {
            let payload = [i as u8 + 1; 100];
            // SAFETY: the header's pointers were built by recv_with over live
            // buffers of the stated sizes (one iovec of slot_len >= 100
            // bytes, a SockAddrBuf, RECV_SPACE bytes of control).
            unsafe {
                let iov = &*h.hdr.msg_iov;
                assert!(iov.iov_len >= payload.len());
                std::ptr::copy_nonoverlapping(payload.as_ptr(), iov.iov_base.cast::<u8>(), payload.len());
                let name = &mut *h.hdr.msg_name.cast::<SockAddrBuf>();
                h.hdr.msg_namelen = name.write(SocketAddr::from(([10, 0, 0, 9], 4000 + i as u16)));
                let ctrl =
                    std::slice::from_raw_parts_mut(h.hdr.msg_control.cast::<u8>(), h.hdr.msg_controllen as usize);
                let mut enc = Encoder::new(ctrl);
                let mut pi: libc::in_pktinfo = cmsg::zeroed();
                pi.ipi_ifindex = 3;
                pi.ipi_addr.s_addr = u32::from(Ipv4Addr::new(10, 0, 0, 1)).to_be();
                enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, pi).unwrap();
                enc.push(libc::IPPROTO_IP, libc::IP_TOS, 0xb8u8 | (i as u8 & 3)).unwrap();
                enc.push(libc::IPPROTO_IP, libc::IP_TTL, 60 as libc::c_int).unwrap();
                h.hdr.msg_controllen = enc.len() as _;
            }
            h.len = payload.len() as libc::c_uint;
        }
        Ok(count)
    }

    #[test]
    fn receive_decodes_what_the_kernel_wrote_through_each_header() {
        let st = state(false);
        let mut batch = RecvBatch::with_capacity(4, 2048);
        let got = recv_batch_with(&st, &mut batch, |h| fake_kernel(h, 3)).unwrap();
        assert_eq!(got, 3);
        assert_eq!(batch.message_count(), 3);
        for (i, (meta, payload)) in batch.iter().enumerate() {
            assert_eq!(payload, &[i as u8 + 1; 100][..]);
            assert_eq!(meta.src, SocketAddr::from(([10, 0, 0, 9], 4000 + i as u16)));
            assert_eq!(meta.dst_ip, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
            assert_eq!(meta.ifindex, Some(3));
            assert_eq!(meta.ecn, Ecn::from_bits(i as u8 & 3));
            assert_eq!(meta.dscp, Some(Dscp::EF));
            assert_eq!(meta.ttl, Some(60));
            assert_eq!(meta.drops, Some(0), "drop counter on, no SO_RXQ_OVFL message: 0");
        }
    }

    /// The caller-buffer path: the kernel writes straight into the
    /// caller's `IoSliceMut`s (under Miri: through the pointers handed out).
    #[test]
    fn receive_into_caller_buffers_fills_each_buffer_and_meta() {
        let st = state(false);
        let (mut a, mut b, mut c) = ([0u8; 300], [0u8; 300], [0u8; 300]);
        let mut bufs = [io::IoSliceMut::new(&mut a), io::IoSliceMut::new(&mut b), io::IoSliceMut::new(&mut c)];
        let mut control = [const { MaybeUninit::<cmsg::RecvControl>::uninit() }; 3];
        let mut metas = Vec::new();
        let got =
            recv_with(&st, Target::Caller(&mut bufs), &mut control, |h| fake_kernel(h, 2), |m| metas.push(m)).unwrap();
        assert_eq!(got, 2, "short: two of three");
        for (i, m) in metas.iter().enumerate() {
            assert_eq!(m.len, 100);
            assert_eq!(&bufs[i][..m.len], &[i as u8 + 1; 100][..]);
            assert_eq!(m.src, SocketAddr::from(([10, 0, 0, 9], 4000 + i as u16)));
            assert_eq!(m.ttl, Some(60));
        }
        assert_eq!(&bufs[2][..100], &[0u8; 100][..], "untouched");
    }

    #[test]
    fn receive_error_leaves_an_empty_batch() {
        let st = state(false);
        let mut batch = RecvBatch::with_capacity(2, 2048);
        recv_batch_with(&st, &mut batch, |h| fake_kernel(h, 2)).unwrap();
        let err = recv_batch_with(&st, &mut batch, |_| Err(io::Error::from(io::ErrorKind::WouldBlock))).unwrap_err();
        assert!(err.is_would_block());
        assert_eq!(batch.message_count(), 0, "the old contents are gone");
    }

    #[test]
    #[cfg_attr(miri, ignore = "needs a socket")]
    fn ring_records_a_bare_pending_error_when_the_queue_has_nothing() {
        // The error queue is off, so nothing is drained: the bare errno is
        // what gets recorded.
        let st = state(false);
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsFd;
        absorb_pending(sock.as_fd(), &st, libc::ECONNREFUSED, "test");
        let e = recv_error(sock.as_fd(), &st).unwrap().expect("recorded");
        assert_eq!((e.kind, e.errno, e.destination), (IcmpKind::Pending, libc::ECONNREFUSED, None));
        assert!(recv_error(sock.as_fd(), &st).unwrap().is_none(), "reported once");
    }

    #[test]
    fn src_ifindex_beyond_a_c_int_is_refused_for_both_families() {
        let st4 = state(false);
        let mut st6 = state(false);
        st6.families = Families { v4: true, v6: true };
        let payload = [0u8; 10];
        for (st, to) in [(&st4, "10.0.0.1:9"), (&st6, "[fd00::1]:9"), (&st6, "10.0.0.1:9")] {
            let over = Transmit::new(to.parse().unwrap(), &payload).with_src_ifindex(i32::MAX as u32 + 1);
            assert_eq!(
                validate(&over, st, 64).unwrap_err(),
                InvalidTransmit::SrcIfindexOutOfRange { src_ifindex: i32::MAX as u32 + 1 },
                "{to}"
            );
            let max = Transmit::new(to.parse().unwrap(), &payload).with_src_ifindex(i32::MAX as u32);
            assert!(validate(&max, st, 64).is_ok(), "{to}: i32::MAX is a valid index");
        }
        let over = Transmit::new("10.0.0.1:9".parse().unwrap(), &payload).with_src_ifindex(u32::MAX);
        let e = Error::from(validate(&over, &st4, 64).unwrap_err());
        assert!(e.to_string().contains("src_ifindex 4294967295"), "{e}");
    }
}
