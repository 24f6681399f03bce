//! The one control-message codec: an [`Encoder`] that checks space and
//! alignment for every `push`, and [`decode`], a bounds-checked walk over
//! received control bytes with a single `match (level, type)` table.
//!
//! Both work on plain byte slices, never on pointers into a `msghdr`, so the
//! decoder can be fed arbitrary bytes (fuzzing, property tests) safely. The
//! only `unsafe` here copies plain-old-data structs (`cmsghdr`,
//! `in_pktinfo`, ...) in and out of bytes, and evaluates libc's `CMSG_*`
//! arithmetic.

// cmsg_len is size_t on glibc Linux and socklen_t elsewhere.
#![allow(clippy::unnecessary_cast)]

use std::mem::{align_of, size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

#[cfg(windows)]
use super::winsock as libc;

/// `CMSG_ALIGN`: control messages start at multiples of this.
const ALIGN: usize = {
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic on their argument.
    unsafe { libc::CMSG_SPACE(1) as usize - libc::CMSG_LEN(0) as usize }
};
/// `CMSG_LEN(0)`: the aligned header size.
const HDR: usize = {
    // SAFETY: pure arithmetic.
    unsafe { libc::CMSG_LEN(0) as usize }
};

const fn space(payload: usize) -> usize {
    HDR + payload.div_ceil(ALIGN) * ALIGN
}

/// Receive control space per message: every option we may enable, once
/// each (IPv4 and IPv6 flavours, since a dual-stack socket may get either).
pub(crate) const RECV_SPACE: usize = space(size_of::<libc::in6_pktinfo>())
    + space(PKTINFO_V4) // IP_PKTINFO, or FreeBSD's IP_RECVDSTADDR + IP_RECVIF
    + 2 * space(size_of::<libc::c_int>()) // TOS / TCLASS
    + 2 * space(size_of::<libc::c_int>()) // TTL / HOPLIMIT
    + space(size_of::<libc::c_int>()) // UDP_GRO
    + space(size_of::<libc::timespec>()) // SO_TIMESTAMPNS
    + space(size_of::<u32>()) // SO_RXQ_OVFL
    + space(size_of::<libc::sockaddr_in6>()) // IP_ORIGDSTADDR / IPV6_ORIGDSTADDR
    + 64; // headroom for anything the kernel adds that we ignore

/// Receive space of the IPv4 destination-address messages.
#[cfg(any(has_pktinfo_v4, windows))]
const PKTINFO_V4: usize = size_of::<libc::in_pktinfo>();
#[cfg(not(any(has_pktinfo_v4, windows)))]
const PKTINFO_V4: usize = size_of::<libc::in_addr>() + HDR + size_of::<libc::sockaddr_storage>();

/// Send control space per message: TOS, pktinfo, UDP_SEGMENT, SCM_TXTIME.
pub(crate) const SEND_SPACE: usize = space(size_of::<libc::c_int>())
    + space(size_of::<libc::in6_pktinfo>())
    + space(size_of::<u16>())
    + space(size_of::<u64>());

/// Control-message storage aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub(crate) struct Aligned<const N: usize>(pub(crate) [u8; N]);

impl<const N: usize> std::fmt::Debug for Aligned<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aligned<{N}>")
    }
}

/// Per-message receive control buffer.
pub(crate) type RecvControl = Aligned<RECV_SPACE>;
/// Per-message send control buffer.
pub(crate) type SendControl = Aligned<SEND_SPACE>;

impl<const N: usize> Aligned<N> {
    pub(crate) const fn new() -> Self {
        Self([0; N])
    }
}

/// Types for which all-zero bytes is a valid value.
///
/// # Safety
/// Implement only for C structs, unions and integers whose every field
/// accepts all-zero bytes (integers, arrays of them, raw pointers: null).
pub(crate) unsafe trait Zeroable: Copy {}

/// Plain data that can be read from and written as raw bytes.
///
/// # Safety
/// Implement only for types that are [`Zeroable`], for which *every* bit
/// pattern is a valid value, and which have no padding bytes (so viewing a
/// value as bytes never reads uninitialised memory).
pub(crate) unsafe trait Pod: Zeroable {}

macro_rules! unsafe_impl {
    ($tr:ident: $($t:ty),* $(,)?) => { $(
        // SAFETY: checked for each type listed at the invocations below:
        // C integer structs without pointers to non-null data; for Pod, no
        // padding on the Linux targets volley builds for.
        unsafe impl $tr for $t {}
    )* };
}
unsafe_impl!(Zeroable: u8, u16, u32, u64, libc::c_int, libc::cmsghdr, libc::in_addr, libc::in6_pktinfo,
    libc::timespec, libc::sockaddr_in, libc::sockaddr_in6, libc::sockaddr, libc::sockaddr_storage, libc::msghdr);
#[cfg(any(linux_like, apple, freebsd))]
unsafe_impl!(Zeroable: libc::ip_mreqn);
unsafe_impl!(Pod: u8, u16, u32, u64, libc::c_int, libc::cmsghdr, libc::in_addr, libc::in6_pktinfo,
    libc::timespec, libc::sockaddr_in, libc::sockaddr_in6);
#[cfg(any(has_pktinfo_v4, windows))]
unsafe_impl!(Zeroable: libc::in_pktinfo);
#[cfg(any(has_pktinfo_v4, windows))]
unsafe_impl!(Pod: libc::in_pktinfo);
#[cfg(linux_like)]
unsafe_impl!(Zeroable: libc::sock_extended_err);
#[cfg(linux_like)]
unsafe_impl!(Pod: libc::sock_extended_err);

/// Reads a `T` from the start of `bytes`, if it is long enough.
fn read_pod<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    let mut out = MaybeUninit::<T>::uninit();
    // SAFETY: `bytes` holds at least size_of::<T>() bytes (checked above);
    // the destination is a distinct local of exactly that size; T: Pod, so
    // every bit pattern is a valid T.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), size_of::<T>());
        Some(out.assume_init())
    }
}

/// The bytes of a value.
fn pod_bytes<T: Pod>(value: &T) -> &[u8] {
    // SAFETY: `value` is a live, initialised T borrowed for the returned
    // lifetime, and T: Pod has no padding, so all size_of::<T>() bytes are
    // initialised.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

/// An all-zero value.
pub(crate) fn zeroed<T: Zeroable>() -> T {
    // SAFETY: T: Zeroable: all-zero bytes is a valid T.
    unsafe { std::mem::zeroed() }
}

/// Writes control messages into an aligned buffer.
#[derive(Debug)]
pub(crate) struct Encoder<'a> {
    buf: &'a mut [u8],
    len: usize,
}

/// The buffer had no room for a control message: a sizing bug, reported
/// rather than written past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoSpace;

impl<'a> Encoder<'a> {
    /// `buf` must start at a `cmsghdr`-aligned address (it comes from an
    /// [`Aligned`]).
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        debug_assert_eq!(buf.as_ptr() as usize % align_of::<libc::cmsghdr>(), 0);
        Self { buf, len: 0 }
    }

    /// Appends one control message carrying `value`.
    pub(crate) fn push<T: Pod>(&mut self, level: libc::c_int, ty: libc::c_int, value: T) -> Result<(), NoSpace> {
        let need = space(size_of::<T>());
        let end = self.len.checked_add(need).ok_or(NoSpace)?;
        if end > self.buf.len() {
            return Err(NoSpace);
        }
        let mut hdr: libc::cmsghdr = zeroed();
        hdr.cmsg_level = level;
        hdr.cmsg_type = ty;
        // cmsg_len's type differs between libcs (size_t, socklen_t): `as _`.
        hdr.cmsg_len = (HDR + size_of::<T>()) as _;
        let slot = &mut self.buf[self.len..end];
        slot.fill(0);
        slot[..size_of::<libc::cmsghdr>()].copy_from_slice(pod_bytes(&hdr));
        slot[HDR..HDR + size_of::<T>()].copy_from_slice(pod_bytes(&value));
        self.len = end;
        Ok(())
    }

    /// Bytes written: the `msg_controllen` to use.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// What the control messages of one received message said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) dst_ip: Option<IpAddr>,
    pub(crate) ifindex: Option<u32>,
    pub(crate) tos: Option<u8>,
    /// The ECN codepoint alone, where the stack reports only that
    /// (Windows' `IP_ECN` / `IPV6_ECN`): no DSCP is known then.
    pub(crate) ecn: Option<u8>,
    pub(crate) ttl: Option<u8>,
    pub(crate) gro_segment_size: Option<usize>,
    pub(crate) timestamp: Option<Duration>,
    pub(crate) drops: Option<u32>,
    /// From the error queue: (`sock_extended_err` fields, offender address).
    pub(crate) ext_err: Option<ExtErr>,
    /// `in_pktinfo.ipi_spec_dst`: on receive the local address routing
    /// would use; on send the chosen source.
    pub(crate) spec_dst: Option<Ipv4Addr>,
    /// `UDP_SEGMENT` (send side).
    #[cfg_attr(not(linux_like), allow(dead_code))]
    pub(crate) segment_size: Option<u16>,
    /// `SCM_TXTIME` (send side).
    #[cfg_attr(not(has_txtime), allow(dead_code))]
    pub(crate) txtime: Option<u64>,
    /// `IP_ORIGDSTADDR` / `IPV6_ORIGDSTADDR`: the header's destination
    /// address and the UDP destination port.
    pub(crate) orig_dst: Option<SocketAddr>,
}

/// The fields of a `struct sock_extended_err` and its offender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExtErr {
    pub(crate) errno: u32,
    pub(crate) origin: u8,
    pub(crate) icmp_type: u8,
    pub(crate) code: u8,
    pub(crate) info: u32,
    pub(crate) offender: Option<IpAddr>,
}

/// An integer option: the kernel sends `int`, some options (IPv4 `IP_TOS`
/// on receive) a single byte.
fn int_or_byte(data: &[u8]) -> Option<i64> {
    match data.len() {
        0 => None,
        1..=3 => Some(i64::from(data[0])),
        _ => read_pod::<libc::c_int>(data).map(i64::from),
    }
}

/// Decodes received control bytes (`msg_control[..msg_controllen]`).
/// Malformed input (short header, length past the end) ends the walk; it
/// never reads out of bounds or panics.
pub(crate) fn decode(control: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    let mut off = 0usize;
    while control.len().saturating_sub(off) >= size_of::<libc::cmsghdr>() {
        let Some(hdr) = read_pod::<libc::cmsghdr>(&control[off..]) else { break };
        let len = hdr.cmsg_len as usize;
        if len < HDR || len > control.len() - off {
            break;
        }
        let data = &control[off + HDR..off + len];
        match (hdr.cmsg_level, hdr.cmsg_type) {
            // One arm for every platform with IPv4 pktinfo (so a mutant
            // deleting it is judged on Linux); the struct differs.
            #[cfg(any(has_pktinfo_v4, windows))]
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                if let Some(pi) = read_pod::<libc::in_pktinfo>(data) {
                    let ip = Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr));
                    out.dst_ip = Some(IpAddr::V4(ip));
                    #[allow(clippy::useless_conversion)] // c_int on Linux, c_uint on Apple and Windows
                    let index = u32::try_from(pi.ipi_ifindex).ok();
                    out.ifindex = index;
                    // Windows' IN_PKTINFO has no spec_dst: the address is
                    // the source on send.
                    #[cfg(has_pktinfo_v4)]
                    let spec_dst = Ipv4Addr::from(u32::from_be(pi.ipi_spec_dst.s_addr));
                    #[cfg(windows)]
                    let spec_dst = ip;
                    out.spec_dst = Some(spec_dst);
                }
            }
            #[cfg(windows)]
            (libc::IPPROTO_IP, libc::IP_ECN) | (libc::IPPROTO_IPV6, libc::IPV6_ECN) => {
                out.ecn = int_or_byte(data).map(|v| v as u8 & 0b11);
            }
            #[cfg(windows)]
            (libc::IPPROTO_IP, libc::IP_HOPLIMIT) => {
                out.ttl = int_or_byte(data).map(|v| v as u8);
            }
            // Windows URO: the stride of a coalesced receive, a DWORD.
            #[cfg(windows)]
            (libc::IPPROTO_UDP, libc::UDP_COALESCED_INFO) => {
                out.gro_segment_size = read_pod::<u32>(data).and_then(|v| usize::try_from(v).ok()).filter(|&v| v > 0);
            }
            #[cfg(windows)]
            (libc::IPPROTO_UDP, libc::UDP_SEND_MSG_SIZE) => {
                out.segment_size = read_pod::<u32>(data).and_then(|v| u16::try_from(v).ok());
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                if let Some(pi) = read_pod::<libc::in6_pktinfo>(data) {
                    out.dst_ip = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
                    #[allow(clippy::useless_conversion)] // u32, but i32 on Android
                    let index = u32::try_from(pi.ipi6_ifindex).ok();
                    out.ifindex = index;
                }
            }
            // FreeBSD: IP_RECVDSTADDR (an in_addr; IP_SENDSRCADDR on send
            // has the same value, so it is the source there too).
            #[cfg(freebsd)]
            (libc::IPPROTO_IP, libc::IP_RECVDSTADDR) => {
                if let Some(a) = read_pod::<libc::in_addr>(data) {
                    let ip = Ipv4Addr::from(u32::from_be(a.s_addr));
                    out.dst_ip = Some(IpAddr::V4(ip));
                    out.spec_dst = Some(ip);
                }
            }
            // FreeBSD: IP_RECVIF, a sockaddr_dl whose sdl_index (a u16 at
            // offset 2, after sdl_len and sdl_family) is the interface.
            #[cfg(freebsd)]
            (libc::IPPROTO_IP, libc::IP_RECVIF) => {
                if let Some(index) = data.get(2..).and_then(read_pod::<u16>) {
                    out.ifindex = Some(u32::from(index));
                }
            }
            (libc::IPPROTO_IP, libc::IP_TOS) | (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
                out.tos = int_or_byte(data).map(|v| v as u8);
            }
            // Apple and FreeBSD name the received TOS and TTL messages after
            // the option that asked for them (a single byte each).
            #[cfg(any(apple, freebsd))]
            (libc::IPPROTO_IP, libc::IP_RECVTOS) => {
                out.tos = int_or_byte(data).map(|v| v as u8);
            }
            #[cfg(any(apple, freebsd))]
            (libc::IPPROTO_IP, libc::IP_RECVTTL) => {
                out.ttl = int_or_byte(data).map(|v| v as u8);
            }
            (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                out.ttl = int_or_byte(data).map(|v| v as u8);
            }
            #[cfg(linux_like)]
            (libc::SOL_UDP, libc::UDP_GRO) => {
                out.gro_segment_size = int_or_byte(data).and_then(|v| usize::try_from(v).ok()).filter(|&v| v > 0);
            }
            #[cfg(linux_like)]
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                if let Some(ts) = read_pod::<libc::timespec>(data) {
                    if let (Ok(s), Ok(ns)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
                        if ns < 1_000_000_000 {
                            out.timestamp = Some(Duration::new(s, ns));
                        }
                    }
                }
            }
            #[cfg(linux_like)]
            (libc::SOL_UDP, libc::UDP_SEGMENT) => {
                out.segment_size = read_pod::<u16>(data);
            }
            #[cfg(has_txtime)]
            (libc::SOL_SOCKET, libc::SCM_TXTIME) => {
                out.txtime = read_pod::<u64>(data);
            }
            #[cfg(linux_like)]
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => {
                out.drops = read_pod::<u32>(data);
            }
            #[cfg(linux_like)]
            (libc::IPPROTO_IP, libc::IP_ORIGDSTADDR) => {
                out.orig_dst = read_pod::<libc::sockaddr_in>(data)
                    .filter(|a| libc::c_int::from(a.sin_family) == libc::AF_INET)
                    .map(|a| {
                        SocketAddr::new(
                            Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)).into(),
                            u16::from_be(a.sin_port),
                        )
                    });
            }
            #[cfg(linux_like)]
            (libc::IPPROTO_IPV6, libc::IPV6_ORIGDSTADDR) => {
                out.orig_dst = read_pod::<libc::sockaddr_in6>(data)
                    .filter(|a| libc::c_int::from(a.sin6_family) == libc::AF_INET6)
                    .map(|a| {
                        let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                        let port = u16::from_be(a.sin6_port);
                        std::net::SocketAddrV6::new(ip, port, a.sin6_flowinfo, a.sin6_scope_id).into()
                    });
            }
            #[cfg(linux_like)]
            (libc::IPPROTO_IP, libc::IP_RECVERR) | (libc::IPPROTO_IPV6, libc::IPV6_RECVERR) => {
                if let Some(ee) = read_pod::<libc::sock_extended_err>(data) {
                    // SO_EE_OFFENDER: a sockaddr right after the struct.
                    let rest = &data[size_of::<libc::sock_extended_err>()..];
                    let offender = read_pod::<libc::sockaddr_in6>(rest)
                        .filter(|a| libc::c_int::from(a.sin6_family) == libc::AF_INET6)
                        .map(|a| IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)))
                        .or_else(|| {
                            read_pod::<libc::sockaddr_in>(rest)
                                .filter(|a| libc::c_int::from(a.sin_family) == libc::AF_INET)
                                .map(|a| IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
                        });
                    out.ext_err = Some(ExtErr {
                        errno: ee.ee_errno,
                        origin: ee.ee_origin,
                        icmp_type: ee.ee_type,
                        code: ee.ee_code,
                        info: ee.ee_info,
                        offender,
                    });
                }
            }
            _ => {}
        }
        // Next header: CMSG_NXTHDR rounds the length up to the alignment.
        match len.checked_add(ALIGN - 1) {
            Some(l) => off += l / ALIGN * ALIGN,
            None => break,
        }
    }
    out
}

/// Writes `addr` as the kernel does an `IP_ORIGDSTADDR` (a `sockaddr_in`)
/// or `IPV6_ORIGDSTADDR` (a `sockaddr_in6`) message: for tests, the fuzz
/// corpus and the property tests.
#[cfg(any(test, feature = "fuzzing"))]
#[cfg_attr(not(linux_like), allow(dead_code))] // its callers are Linux tests
pub(crate) fn push_orig_dst(enc: &mut Encoder<'_>, addr: SocketAddr) -> Result<(), NoSpace> {
    #[cfg(linux_like)]
    match addr {
        SocketAddr::V4(a) => {
            let mut sin: libc::sockaddr_in = zeroed();
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            enc.push(libc::IPPROTO_IP, libc::IP_ORIGDSTADDR, sin)
        }
        SocketAddr::V6(a) => {
            let mut sin6: libc::sockaddr_in6 = zeroed();
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            enc.push(libc::IPPROTO_IPV6, libc::IPV6_ORIGDSTADDR, sin6)
        }
    }
    #[cfg(not(linux_like))]
    {
        let _ = (enc, addr);
        Err(NoSpace)
    }
}

/// What one transmit asks the kernel for, per message.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SendOptions {
    pub(crate) tos: Option<u8>,
    /// Source address and whether to encode it as IPv4 (`IP_PKTINFO`).
    pub(crate) src_ip: Option<IpAddr>,
    /// Outgoing interface (pktinfo's interface index).
    pub(crate) src_ifindex: Option<u32>,
    #[cfg_attr(not(any(linux_like, windows)), allow(dead_code))]
    pub(crate) segment_size: Option<u16>,
    #[cfg_attr(not(has_txtime), allow(dead_code))]
    pub(crate) txtime: Option<u64>,
}

/// Encodes `opts` for a message to a destination that is IPv4 (`v4`: plain
/// IPv4, or IPv4-mapped on a dual-stack socket) or IPv6.
pub(crate) fn encode_send(enc: &mut Encoder<'_>, opts: &SendOptions, v4: bool) -> Result<(), NoSpace> {
    // Windows: the ECN codepoint alone (IP_ECN / IPV6_ECN, an int); the
    // stack takes no per-datagram DSCP (validate refuses one).
    #[cfg(windows)]
    if let Some(ecn) = opts.tos.map(|tos| tos & 0b11).filter(|&ecn| ecn != 0 && super::windows::ecn_send()) {
        let (level, ty) = if v4 { (libc::IPPROTO_IP, libc::IP_ECN) } else { (libc::IPPROTO_IPV6, libc::IPV6_ECN) };
        enc.push(level, ty, libc::c_int::from(ecn))?;
    }
    #[cfg(unix)]
    if let Some(tos) = opts.tos {
        if v4 {
            // FreeBSD's udp_output takes a single byte; Linux and Apple an int.
            #[cfg(freebsd)]
            enc.push(libc::IPPROTO_IP, libc::IP_TOS, tos)?;
            #[cfg(not(freebsd))]
            enc.push(libc::IPPROTO_IP, libc::IP_TOS, libc::c_int::from(tos))?;
        } else {
            enc.push(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, libc::c_int::from(tos))?;
        }
    }
    // pktinfo: the source address and/or the outgoing interface; an absent
    // address is the unspecified one of the destination's family.
    let src = match (opts.src_ip, opts.src_ifindex) {
        (Some(ip), _) => Some(ip),
        (None, Some(_)) if v4 => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        (None, Some(_)) => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        (None, None) => None,
    };
    let ifindex = opts.src_ifindex.unwrap_or(0);
    match src {
        #[cfg(has_pktinfo_v4)]
        Some(IpAddr::V4(ip)) => {
            let mut pi: libc::in_pktinfo = zeroed();
            pi.ipi_spec_dst.s_addr = u32::from(ip).to_be();
            #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
            let index = ifindex.try_into().unwrap_or(0);
            pi.ipi_ifindex = index;
            enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, pi)?;
        }
        // FreeBSD: IP_SENDSRCADDR carries the source address only (the
        // socket must be bound to INADDR_ANY); an IPv4 interface cannot be
        // chosen per datagram there, so validate() refuses a src_ifindex
        // (SrcIfindexUnsupported) before it gets here.
        #[cfg(all(unix, not(has_pktinfo_v4)))]
        Some(IpAddr::V4(ip)) if !ip.is_unspecified() => {
            let a = libc::in_addr { s_addr: u32::from(ip).to_be() };
            enc.push(libc::IPPROTO_IP, libc::IP_SENDSRCADDR, a)?;
        }
        #[cfg(all(unix, not(has_pktinfo_v4)))]
        Some(IpAddr::V4(_)) => {}
        // Windows: IN_PKTINFO's address is the source on send.
        #[cfg(windows)]
        Some(IpAddr::V4(ip)) => {
            let pi =
                libc::in_pktinfo { ipi_addr: libc::in_addr { s_addr: u32::from(ip).to_be() }, ipi_ifindex: ifindex };
            enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, pi)?;
        }
        Some(IpAddr::V6(ip)) => {
            let mut pi: libc::in6_pktinfo = zeroed();
            pi.ipi6_addr.s6_addr = ip.octets();
            #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
            let index = ifindex.try_into().unwrap_or(0);
            pi.ipi6_ifindex = index;
            enc.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, pi)?;
        }
        None => {}
    }
    #[cfg(linux_like)]
    if let Some(seg) = opts.segment_size {
        enc.push(libc::SOL_UDP, libc::UDP_SEGMENT, seg)?;
    }
    // Windows USO: the segment size as a DWORD.
    #[cfg(windows)]
    if let Some(seg) = opts.segment_size {
        enc.push(libc::IPPROTO_UDP, libc::UDP_SEND_MSG_SIZE, u32::from(seg))?;
    }
    #[cfg(has_txtime)]
    if let Some(t) = opts.txtime {
        enc.push(libc::SOL_SOCKET, libc::SCM_TXTIME, t)?;
    }
    Ok(())
}

/// Entry points for the fuzz targets and property tests (feature
/// `fuzzing`): arbitrary bytes in, invariants checked, never a panic.
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    use super::*;

    /// Decodes arbitrary control bytes.
    pub(crate) fn decode_control(bytes: &[u8]) {
        let _ = decode(bytes);
    }

    /// Receive-side control bytes for one datagram (see the lib.rs wrapper).
    pub(crate) fn sample_recv_control() -> Vec<u8> {
        let mut buf = RecvControl::new();
        let mut enc = Encoder::new(&mut buf.0);
        let pushed = enc.push(libc::IPPROTO_IP, libc::IP_TOS, 0xb8u8).is_ok()
            && enc.push(libc::IPPROTO_IP, libc::IP_TTL, 64 as libc::c_int).is_ok();
        #[cfg(has_pktinfo_v4)]
        let pushed = pushed && {
            let mut pi: libc::in_pktinfo = zeroed();
            pi.ipi_ifindex = 1;
            pi.ipi_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
            enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, pi).is_ok()
        };
        #[cfg(linux_like)]
        let pushed = pushed
            && enc.push(libc::SOL_UDP, libc::UDP_GRO, 1200 as libc::c_int).is_ok()
            && enc.push(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 0u32).is_ok()
            && push_orig_dst(&mut enc, SocketAddr::from((Ipv4Addr::LOCALHOST, 4433))).is_ok();
        let n = if pushed { enc.len() } else { 0 };
        buf.0[..n].to_vec()
    }

    /// Encodes `addr` as the kernel writes an `IP_ORIGDSTADDR` /
    /// `IPV6_ORIGDSTADDR` message (after `prefix`, an `IP_TOS` message when
    /// true), decodes the bytes back and returns what the decoder read.
    /// `None` off Linux, where there is no such message.
    pub(crate) fn orig_dst_round_trip(addr: SocketAddr, prefix: bool) -> Option<SocketAddr> {
        let mut buf = RecvControl::new();
        let mut enc = Encoder::new(&mut buf.0);
        if prefix {
            enc.push(libc::IPPROTO_IP, libc::IP_TOS, 0x2eu8).ok()?;
        }
        push_orig_dst(&mut enc, addr).ok()?;
        let n = enc.len();
        decode(&buf.0[..n]).orig_dst
    }

    /// Encodes one transmit's send options; returns the control length.
    pub(crate) fn encode_send(tos: u8, src_ip: IpAddr, segment_size: u16) -> usize {
        let opts = SendOptions {
            tos: Some(tos),
            src_ip: Some(src_ip),
            src_ifindex: None,
            segment_size: Some(segment_size),
            txtime: None,
        };
        let mut buf = SendControl::new();
        let mut enc = Encoder::new(&mut buf.0);
        match super::encode_send(&mut enc, &opts, src_ip.is_ipv4()) {
            Ok(()) => enc.len(),
            Err(NoSpace) => 0,
        }
    }

    /// Encodes send options and decodes them back; returns whether every
    /// option round-tripped.
    pub(crate) fn round_trip(
        tos: Option<u8>,
        src_ip: Option<IpAddr>,
        segment_size: Option<u16>,
        txtime: Option<u64>,
        v4: bool,
    ) -> bool {
        let src_ip = src_ip.filter(|ip| ip.is_ipv4() == v4);
        let opts = SendOptions { tos, src_ip, src_ifindex: None, segment_size, txtime };
        let mut buf = SendControl::new();
        let mut enc = Encoder::new(&mut buf.0);
        if super::encode_send(&mut enc, &opts, v4).is_err() {
            return false;
        }
        let n = enc.len();
        let d = decode(&buf.0[..n]);
        let src_back = match src_ip {
            Some(IpAddr::V4(_)) => d.spec_dst.map(IpAddr::V4),
            // in6_pktinfo has one address: the source on send.
            Some(IpAddr::V6(_)) => d.dst_ip,
            None => d.spec_dst.map(IpAddr::V4).or(d.dst_ip),
        };
        d.tos == tos && src_back == src_ip && d.segment_size == segment_size && d.txtime == txtime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes receive-side messages the way the kernel lays them out, so the
    /// decoder can be checked without a socket.
    #[cfg(linux_like)]
    #[test]
    fn decode_reads_what_encoder_wrote() {
        let mut buf = RecvControl::new();
        let mut enc = Encoder::new(&mut buf.0);
        let mut pi: libc::in_pktinfo = zeroed();
        pi.ipi_ifindex = 7;
        pi.ipi_addr.s_addr = u32::from(Ipv4Addr::new(127, 0, 0, 2)).to_be();
        enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, pi).unwrap();
        enc.push(libc::IPPROTO_IP, libc::IP_TOS, 0xb9u8).unwrap();
        enc.push(libc::IPPROTO_IP, libc::IP_TTL, 64 as libc::c_int).unwrap();
        enc.push(libc::SOL_UDP, libc::UDP_GRO, 1200 as libc::c_int).unwrap();
        enc.push(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 5u32).unwrap();
        let n = enc.len();
        let d = decode(&buf.0[..n]);
        assert_eq!(d.dst_ip, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(d.ifindex, Some(7));
        assert_eq!(d.tos, Some(0xb9));
        assert_eq!(d.ttl, Some(64));
        assert_eq!(d.gro_segment_size, Some(1200));
        assert_eq!(d.drops, Some(5));
    }

    /// `IP_ORIGDSTADDR` / `IPV6_ORIGDSTADDR`: address and port, in network
    /// order as the kernel writes them, beside pktinfo; a wrong family in
    /// the sockaddr is no address.
    #[cfg(linux_like)]
    #[test]
    fn decode_reads_the_original_destination() {
        for addr in ["10.77.99.7:4242", "[fd00:77:99::7]:4242", "255.255.255.255:1"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut buf = RecvControl::new();
            let mut enc = Encoder::new(&mut buf.0);
            enc.push(libc::IPPROTO_IP, libc::IP_TOS, 0x01u8).unwrap();
            push_orig_dst(&mut enc, addr).unwrap();
            enc.push(libc::IPPROTO_IP, libc::IP_TTL, 3 as libc::c_int).unwrap();
            let n = enc.len();
            let d = decode(&buf.0[..n]);
            assert_eq!((d.orig_dst, d.tos, d.ttl), (Some(addr), Some(1), Some(3)), "{addr}");
        }
        let mut sin6: libc::sockaddr_in6 = zeroed();
        sin6.sin6_family = libc::AF_INET as libc::sa_family_t;
        assert_eq!(decode(&encoded(libc::IPPROTO_IPV6, libc::IPV6_ORIGDSTADDR, sin6)).orig_dst, None);
        let mut sin: libc::sockaddr_in = zeroed();
        sin.sin_family = libc::AF_INET6 as libc::sa_family_t;
        assert_eq!(decode(&encoded(libc::IPPROTO_IP, libc::IP_ORIGDSTADDR, sin)).orig_dst, None);
        // Cut short: no address rather than a read past the message.
        let mut bytes = encoded(libc::IPPROTO_IP, libc::IP_ORIGDSTADDR, sin);
        bytes.truncate(HDR + 4);
        let hdr = raw_header(HDR + 4, libc::IPPROTO_IP, libc::IP_ORIGDSTADDR);
        bytes[..HDR].copy_from_slice(&hdr);
        assert_eq!(decode(&bytes).orig_dst, None);
    }

    #[test]
    fn encoder_refuses_overflow() {
        let mut buf = Aligned::<24>::new();
        let mut enc = Encoder::new(&mut buf.0);
        enc.push(libc::IPPROTO_IP, libc::IP_TOS, 1 as libc::c_int).unwrap();
        assert_eq!(enc.push(libc::IPPROTO_IP, libc::IP_TOS, 1 as libc::c_int), Err(NoSpace));
    }

    #[test]
    fn decode_survives_garbage() {
        let mut seed = 0x1234_5678u32;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as u8
                })
                .collect();
            let _ = decode(&bytes);
        }
        // A header claiming more bytes than present stops the walk.
        let mut hdr: libc::cmsghdr = zeroed();
        hdr.cmsg_len = 1000 as _;
        hdr.cmsg_level = libc::IPPROTO_IP;
        hdr.cmsg_type = libc::IP_TOS;
        assert_eq!(decode(pod_bytes(&hdr)), Decoded::default());
    }

    /// A control header with the given length field, as raw bytes.
    fn raw_header(len: usize, level: libc::c_int, ty: libc::c_int) -> Vec<u8> {
        let mut hdr: libc::cmsghdr = zeroed();
        hdr.cmsg_len = len as _;
        hdr.cmsg_level = level;
        hdr.cmsg_type = ty;
        let mut bytes = pod_bytes(&hdr).to_vec();
        bytes.resize(HDR, 0);
        bytes
    }

    /// Bytes of a message as `Encoder::push` lays it out (header, value,
    /// padding to the alignment).
    fn encoded<T: Pod>(level: libc::c_int, ty: libc::c_int, value: T) -> Vec<u8> {
        let mut buf = Aligned::<128>::new();
        let mut enc = Encoder::new(&mut buf.0);
        enc.push(level, ty, value).unwrap();
        let n = enc.len();
        buf.0[..n].to_vec()
    }

    /// A 32-byte message (a timestamp) followed by TOS and TTL: the walk
    /// must step exactly one aligned length to find the next header.
    #[cfg(linux_like)] // SO_TIMESTAMPNS
    #[test]
    fn decode_steps_past_a_timestamp_to_tos_and_ttl() {
        let mut ts: libc::timespec = zeroed();
        ts.tv_sec = 1_700_000_000;
        ts.tv_nsec = 123_456_789;
        let mut bytes = encoded(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, ts);
        assert_eq!(bytes.len(), HDR + size_of::<libc::timespec>());
        bytes.extend(encoded(libc::IPPROTO_IP, libc::IP_TOS, 0x2eu8));
        bytes.extend(encoded(libc::IPPROTO_IP, libc::IP_TTL, 17 as libc::c_int));
        let d = decode(&bytes);
        assert_eq!(d.timestamp, Some(Duration::new(1_700_000_000, 123_456_789)));
        assert_eq!(d.tos, Some(0x2e));
        assert_eq!(d.ttl, Some(17));
    }

    /// The walk also steps correctly past a message whose length is not a
    /// multiple of the alignment (pktinfo: 12 bytes of payload).
    #[cfg(has_pktinfo_v4)] // IP_PKTINFO
    #[test]
    fn decode_steps_past_an_unaligned_length() {
        let mut pi: libc::in_pktinfo = zeroed();
        pi.ipi_ifindex = 4;
        pi.ipi_addr.s_addr = u32::from(Ipv4Addr::new(10, 0, 0, 1)).to_be();
        let mut bytes = encoded(libc::IPPROTO_IP, libc::IP_PKTINFO, pi);
        bytes.extend(encoded(libc::IPPROTO_IP, libc::IP_TTL, 9 as libc::c_int));
        let d = decode(&bytes);
        assert_eq!(d.dst_ip, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(d.ttl, Some(9));
    }

    /// A header whose `cmsg_len` is below the header size ends the walk
    /// (what came before it is kept); it must not panic.
    #[test]
    fn decode_stops_at_a_length_below_the_header() {
        for short in [1, 8, HDR - 1] {
            let mut bytes = encoded(libc::IPPROTO_IP, libc::IP_TOS, 0x11u8);
            bytes.extend(raw_header(short, libc::IPPROTO_IP, libc::IP_TTL));
            bytes.extend(encoded(libc::IPPROTO_IP, libc::IP_TTL, 5 as libc::c_int));
            let d = decode(&bytes);
            assert_eq!(d.tos, Some(0x11), "cmsg_len {short}");
            assert_eq!(d.ttl, None, "cmsg_len {short}");
        }
    }

    /// A header running past the end of the control bytes ends the walk,
    /// also when it is not the first one.
    #[test]
    fn decode_stops_at_a_header_running_past_the_end() {
        let mut bytes = encoded(libc::IPPROTO_IP, libc::IP_TOS, 0x22u8);
        let rest = bytes.len();
        // Claims 4 bytes of payload, but the control data ends at its header.
        bytes.extend(raw_header(HDR + 4, libc::IPPROTO_IP, libc::IP_TTL));
        assert_eq!(bytes.len(), rest + HDR);
        let d = decode(&bytes);
        assert_eq!(d.tos, Some(0x22));
        assert_eq!(d.ttl, None);
    }

    /// A last message whose length ends exactly at the end of the control
    /// bytes (no trailing padding) is decoded.
    #[test]
    fn decode_reads_a_last_message_without_padding() {
        let mut bytes = encoded(libc::IPPROTO_IP, libc::IP_TOS, 0x33u8);
        bytes.extend(encoded(libc::IPPROTO_IP, libc::IP_TTL, 7 as libc::c_int));
        bytes.truncate(bytes.len() - (space(size_of::<libc::c_int>()) - HDR - size_of::<libc::c_int>()));
        let d = decode(&bytes);
        assert_eq!((d.tos, d.ttl), (Some(0x33), Some(7)));
    }

    /// A zero-length option (`cmsg_len` == header size) is skipped, not the
    /// end of the walk; as the last bytes it clears nothing it cannot read.
    #[test]
    fn decode_steps_over_a_zero_length_option() {
        let mut bytes = raw_header(HDR, libc::IPPROTO_IP, libc::IP_TTL);
        bytes.extend(encoded(libc::IPPROTO_IP, libc::IP_TOS, 0x44u8));
        let d = decode(&bytes);
        assert_eq!((d.tos, d.ttl), (Some(0x44), None));
        // A zero-length TOS after a real one: the walk reaches it, and an
        // empty option reports no value.
        let mut bytes = encoded(libc::IPPROTO_IP, libc::IP_TOS, 0x44u8);
        bytes.extend(raw_header(HDR, libc::IPPROTO_IP, libc::IP_TOS));
        assert_eq!(decode(&bytes).tos, None);
    }

    /// `IP_RECVERR` / `IPV6_RECVERR` payload: the error, then the offender's
    /// `sockaddr` (`SO_EE_OFFENDER`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn recverr(level: libc::c_int, ty: libc::c_int, offender: &[u8]) -> Vec<u8> {
        let mut ee: libc::sock_extended_err = zeroed();
        ee.ee_errno = libc::EHOSTUNREACH as u32;
        ee.ee_origin = 2;
        ee.ee_type = 3;
        ee.ee_code = 1;
        ee.ee_info = 1280;
        let payload = size_of::<libc::sock_extended_err>() + offender.len();
        let mut bytes = raw_header(HDR + payload, level, ty);
        bytes.extend_from_slice(pod_bytes(&ee));
        bytes.extend_from_slice(offender);
        bytes.resize(space(payload), 0);
        bytes
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn decode_reads_the_v4_icmp_offender() {
        let mut sin: libc::sockaddr_in = zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from(Ipv4Addr::new(192, 0, 2, 1)).to_be();
        // As the kernel lays it out, and with room for a sockaddr_in6 after
        // it (the family, not the length, decides).
        for pad in [0, 16] {
            let mut addr = pod_bytes(&sin).to_vec();
            addr.resize(addr.len() + pad, 0);
            let d = decode(&recverr(libc::IPPROTO_IP, libc::IP_RECVERR, &addr));
            let ee = d.ext_err.expect("the error is decoded");
            assert_eq!(ee.offender, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))), "pad {pad}");
            assert_eq!(
                (ee.errno, ee.origin, ee.icmp_type, ee.code, ee.info),
                (libc::EHOSTUNREACH as u32, 2, 3, 1, 1280)
            );
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn decode_reads_the_v6_icmp_offender() {
        let ip: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let mut sin6: libc::sockaddr_in6 = zeroed();
        sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sin6.sin6_addr.s6_addr = ip.octets();
        let d = decode(&recverr(libc::IPPROTO_IPV6, libc::IPV6_RECVERR, pod_bytes(&sin6)));
        assert_eq!(d.ext_err.expect("the error is decoded").offender, Some(IpAddr::V6(ip)));
    }

    /// A local error carries an offender of family `AF_UNSPEC`: no address.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn decode_reports_no_offender_for_an_unspecified_family() {
        let mut sin6: libc::sockaddr_in6 = zeroed();
        sin6.sin6_family = libc::AF_UNSPEC as libc::sa_family_t;
        sin6.sin6_addr.s6_addr = [1; 16];
        let d = decode(&recverr(libc::IPPROTO_IP, libc::IP_RECVERR, pod_bytes(&sin6)));
        assert_eq!(d.ext_err.expect("the error is decoded").offender, None);
    }

    /// Only an interface, no source address: pktinfo of the destination's
    /// family with the unspecified address.
    #[cfg(has_pktinfo_v4)] // IP_PKTINFO
    #[test]
    fn encode_send_ifindex_only_uses_the_destination_family() {
        let opts = SendOptions { src_ifindex: Some(3), ..SendOptions::default() };
        for v4 in [true, false] {
            let mut buf = SendControl::new();
            let mut enc = Encoder::new(&mut buf.0);
            encode_send(&mut enc, &opts, v4).unwrap();
            let n = enc.len();
            let hdr = read_pod::<libc::cmsghdr>(&buf.0[..n]).unwrap();
            let d = decode(&buf.0[..n]);
            assert_eq!(d.ifindex, Some(3), "v4 {v4}");
            if v4 {
                assert_eq!((hdr.cmsg_level, hdr.cmsg_type), (libc::IPPROTO_IP, libc::IP_PKTINFO));
                assert_eq!(d.spec_dst, Some(Ipv4Addr::UNSPECIFIED));
            } else {
                assert_eq!((hdr.cmsg_level, hdr.cmsg_type), (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO));
                assert_eq!(d.dst_ip, Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
                assert_eq!(d.spec_dst, None);
            }
        }
    }

    /// Windows' receive messages, as the stack lays them out: IN_PKTINFO
    /// (address, then interface), the ECN-only IP_ECN, the hop limit as
    /// IP_HOPLIMIT, the URO stride as a DWORD UDP_COALESCED_INFO.
    #[cfg(windows)]
    #[test]
    fn decode_reads_windows_receive_messages() {
        let pi = libc::in_pktinfo {
            ipi_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::new(10, 0, 0, 7)).to_be() },
            ipi_ifindex: 12,
        };
        let mut bytes = encoded(libc::IPPROTO_IP, libc::IP_PKTINFO, pi);
        bytes.extend(encoded(libc::IPPROTO_IP, libc::IP_ECN, 3 as libc::c_int));
        bytes.extend(encoded(libc::IPPROTO_IP, libc::IP_HOPLIMIT, 61 as libc::c_int));
        bytes.extend(encoded(libc::IPPROTO_UDP, libc::UDP_COALESCED_INFO, 1350u32));
        let d = decode(&bytes);
        assert_eq!((d.dst_ip, d.ifindex), (Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))), Some(12)));
        assert_eq!((d.ecn, d.tos, d.ttl), (Some(3), None, Some(61)), "ECN alone: no TOS, so no DSCP");
        assert_eq!(d.gro_segment_size, Some(1350));
        // A zero stride is no stride.
        assert_eq!(decode(&encoded(libc::IPPROTO_UDP, libc::UDP_COALESCED_INFO, 0u32)).gro_segment_size, None);
        let v6 = encoded(libc::IPPROTO_IPV6, libc::IPV6_ECN, 1 as libc::c_int);
        assert_eq!(decode(&v6).ecn, Some(1));
    }

    /// Windows' send messages: the source in IN_PKTINFO's address, the USO
    /// size as a DWORD; ECN only once the self-test saw marks applied.
    #[cfg(windows)]
    #[test]
    fn encode_send_writes_windows_messages() {
        let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5));
        let opts = SendOptions {
            tos: Some(0b10),
            src_ip: Some(src),
            src_ifindex: Some(4),
            segment_size: Some(1200),
            txtime: None,
        };
        let mut buf = SendControl::new();
        let mut enc = Encoder::new(&mut buf.0);
        encode_send(&mut enc, &opts, true).unwrap();
        let n = enc.len();
        let d = decode(&buf.0[..n]);
        assert_eq!((d.dst_ip, d.spec_dst, d.ifindex), (Some(src), Some(Ipv4Addr::new(192, 0, 2, 5)), Some(4)));
        assert_eq!(d.segment_size, Some(1200));
        assert_eq!(d.ecn, super::super::windows::ecn_send().then_some(0b10), "ECN message only where applied");
        assert_eq!(d.tos, None, "no IP_TOS message on Windows");
    }

    /// WSA_CMSG_SPACE / WSA_CMSG_LEN on 64-bit Windows: a 16-byte header,
    /// data aligned to 8, as on 64-bit Linux.
    #[cfg(all(windows, target_pointer_width = "64"))]
    #[test]
    fn windows_control_message_layout() {
        assert_eq!((HDR, ALIGN), (16, 8));
        assert_eq!(space(4), 24);
        assert_eq!(space(size_of::<libc::in6_pktinfo>()), 16 + 24);
    }

    /// A GRO stride of 0 is no stride, and a timestamp's nanoseconds must be
    /// below one second: both decode to `None`, their neighbours do not.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn decode_rejects_a_zero_gro_stride_and_a_nanosecond_overflow() {
        let gro = |v: libc::c_int| decode(&encoded(libc::SOL_UDP, libc::UDP_GRO, v)).gro_segment_size;
        assert_eq!(gro(0), None);
        assert_eq!(gro(1), Some(1));
        let ts = |ns: libc::c_long| {
            let mut t: libc::timespec = zeroed();
            t.tv_sec = 5;
            t.tv_nsec = ns;
            decode(&encoded(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, t)).timestamp
        };
        assert_eq!(ts(999_999_999), Some(Duration::new(5, 999_999_999)));
        assert_eq!(ts(1_000_000_000), None);
        assert_eq!(ts(-1), None);
    }
}
