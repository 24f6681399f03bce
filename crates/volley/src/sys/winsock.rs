//! Winsock under the names of the `libc` crate, so the shared files
//! (`addr`, `cmsg`, `send`, `recv`, `sockopt`, `socket`) and the few
//! portable files that name an errno compile unchanged on Windows: each
//! says `#[cfg(windows)] use ...::winsock as libc;` and means Winsock.
//!
//! Same names, Winsock's values and layouts (checked against
//! `windows-sys` at compile time below):
//!
//! - `msghdr` is `WSAMSG` with the POSIX field names (its `Control` buffer
//!   split into `msg_controllen`, `msg_control`, in WSABUF order), `iovec`
//!   is `WSABUF` (length first), `cmsghdr` is `WSACMSGHDR` (a `SIZE_T`
//!   length, like glibc's);
//! - `in_pktinfo` is Windows' `IN_PKTINFO`: the address then the
//!   interface, and no `ipi_spec_dst` (the address is the source on send);
//! - the `E*` constants are the `WSAE*` codes `WSAGetLastError` returns,
//!   which is what `io::Error::raw_os_error` holds for a socket call on
//!   Windows. Winsock has no `EIO`, `EPROTO`, `ENODEV`: those are
//!   [`NO_SUCH_ERROR`], which no call returns, so a `match` arm on them
//!   never fires;
//! - `CMSG_SPACE` / `CMSG_LEN` are `WSA_CMSG_SPACE` / `WSA_CMSG_LEN` of
//!   ws2def.h. On 64-bit Windows the header is 16 bytes and data is aligned
//!   to 8, as on 64-bit Linux; on 32-bit (not a volley target yet) 12 and 4.
//!
//! Nothing here is `unsafe` to call except the re-exported Winsock
//! functions themselves, which the shared files call through `syscall!`
//! (they return `SOCKET_ERROR`, -1, and set the thread's last error, as the
//! POSIX calls do with `errno`).

#![allow(non_camel_case_types, non_snake_case)]

use std::mem::{align_of, offset_of, size_of};

use windows_sys::Win32::Networking::WinSock as ws;

pub(crate) use ws::{getsockopt, setsockopt, WSAPoll as poll};
pub(crate) use ws::{CMSGHDR as cmsghdr, GROUP_REQ as group_req, GROUP_SOURCE_REQ as group_source_req};
pub(crate) use ws::{SOCKADDR as sockaddr, SOCKADDR_STORAGE as sockaddr_storage, WSAPOLLFD as pollfd};

pub(crate) type c_int = i32;
pub(crate) type c_uint = u32;
pub(crate) type c_short = i16;
pub(crate) type socklen_t = i32;
pub(crate) type sa_family_t = u16;

/// `WSABUF`, with `iovec`'s field names: the length comes first.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct iovec {
    pub(crate) iov_len: u32,
    pub(crate) iov_base: *mut std::ffi::c_void,
}

/// `WSAMSG`, with `msghdr`'s field names.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct msghdr {
    pub(crate) msg_name: *mut std::ffi::c_void,
    pub(crate) msg_namelen: i32,
    pub(crate) msg_iov: *mut iovec,
    pub(crate) msg_iovlen: u32,
    // WSAMSG's `Control` is a WSABUF, aligned as a pointer: on 64-bit
    // Windows 4 bytes of padding precede it and follow its length.
    #[cfg(target_pointer_width = "64")]
    _pad0: u32,
    pub(crate) msg_controllen: u32,
    #[cfg(target_pointer_width = "64")]
    _pad1: u32,
    pub(crate) msg_control: *mut std::ffi::c_void,
    pub(crate) msg_flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct in_addr {
    pub(crate) s_addr: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct in6_addr {
    pub(crate) s6_addr: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct sockaddr_in {
    pub(crate) sin_family: sa_family_t,
    pub(crate) sin_port: u16,
    pub(crate) sin_addr: in_addr,
    pub(crate) sin_zero: [u8; 8],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct sockaddr_in6 {
    pub(crate) sin6_family: sa_family_t,
    pub(crate) sin6_port: u16,
    pub(crate) sin6_flowinfo: u32,
    pub(crate) sin6_addr: in6_addr,
    pub(crate) sin6_scope_id: u32,
}

/// `IN_PKTINFO`: the local address (destination on receive, source on
/// send) and the interface index.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct in_pktinfo {
    pub(crate) ipi_addr: in_addr,
    pub(crate) ipi_ifindex: u32,
}

/// `IN6_PKTINFO`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct in6_pktinfo {
    pub(crate) ipi6_addr: in6_addr,
    pub(crate) ipi6_ifindex: u32,
}

/// Windows sends no timestamp control message volley asks for; the type
/// only keeps the shared receive-space sum (`cmsg::RECV_SPACE`) as on Unix.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct timespec {
    pub(crate) tv_sec: i64,
    pub(crate) tv_nsec: i64,
}

// The layouts the kernel sees: the same as windows-sys's definitions.
const _: () = {
    assert!(size_of::<msghdr>() == size_of::<ws::WSAMSG>());
    assert!(offset_of!(msghdr, msg_namelen) == offset_of!(ws::WSAMSG, namelen));
    assert!(offset_of!(msghdr, msg_iov) == offset_of!(ws::WSAMSG, lpBuffers));
    assert!(offset_of!(msghdr, msg_iovlen) == offset_of!(ws::WSAMSG, dwBufferCount));
    assert!(offset_of!(msghdr, msg_controllen) == offset_of!(ws::WSAMSG, Control) + offset_of!(ws::WSABUF, len));
    assert!(offset_of!(msghdr, msg_control) == offset_of!(ws::WSAMSG, Control) + offset_of!(ws::WSABUF, buf));
    assert!(offset_of!(msghdr, msg_flags) == offset_of!(ws::WSAMSG, dwFlags));
    assert!(size_of::<iovec>() == size_of::<ws::WSABUF>());
    assert!(offset_of!(iovec, iov_base) == offset_of!(ws::WSABUF, buf));
    assert!(size_of::<sockaddr_in>() == size_of::<ws::SOCKADDR_IN>());
    assert!(size_of::<sockaddr_in6>() == size_of::<ws::SOCKADDR_IN6>());
    assert!(offset_of!(sockaddr_in6, sin6_scope_id) == 24);
    assert!(size_of::<in_pktinfo>() == size_of::<ws::IN_PKTINFO>());
    assert!(size_of::<in6_pktinfo>() == size_of::<ws::IN6_PKTINFO>());
    // std guarantees IoSliceMut is ABI-compatible with WSABUF on Windows.
    assert!(size_of::<std::io::IoSliceMut<'_>>() == size_of::<iovec>());
};

pub(crate) const AF_INET: c_int = ws::AF_INET as c_int;
pub(crate) const AF_INET6: c_int = ws::AF_INET6 as c_int;

pub(crate) const SOL_SOCKET: c_int = ws::SOL_SOCKET;
pub(crate) const SO_ERROR: c_int = ws::SO_ERROR;
pub(crate) const SO_BROADCAST: c_int = ws::SO_BROADCAST;
pub(crate) const IPPROTO_IP: c_int = ws::IPPROTO_IP;
pub(crate) const IPPROTO_IPV6: c_int = ws::IPPROTO_IPV6;
pub(crate) const IPPROTO_UDP: c_int = ws::IPPROTO_UDP;

pub(crate) const IP_TOS: c_int = ws::IP_TOS;
pub(crate) const IPV6_TCLASS: c_int = ws::IPV6_TCLASS;
pub(crate) const IP_TTL: c_int = ws::IP_TTL;
pub(crate) const IPV6_HOPLIMIT: c_int = ws::IPV6_HOPLIMIT;
pub(crate) const IP_PKTINFO: c_int = ws::IP_PKTINFO;
pub(crate) const IPV6_PKTINFO: c_int = ws::IPV6_PKTINFO;
pub(crate) const IP_MULTICAST_IF: c_int = ws::IP_MULTICAST_IF;
pub(crate) const MCAST_JOIN_GROUP: c_int = ws::MCAST_JOIN_GROUP as c_int;
pub(crate) const MCAST_LEAVE_GROUP: c_int = ws::MCAST_LEAVE_GROUP as c_int;
pub(crate) const MCAST_JOIN_SOURCE_GROUP: c_int = ws::MCAST_JOIN_SOURCE_GROUP as c_int;
pub(crate) const MCAST_LEAVE_SOURCE_GROUP: c_int = ws::MCAST_LEAVE_SOURCE_GROUP as c_int;

pub(crate) const IP_ECN: c_int = ws::IP_ECN;
pub(crate) const IPV6_ECN: c_int = ws::IPV6_ECN;
pub(crate) const IP_HOPLIMIT: c_int = ws::IP_HOPLIMIT;
pub(crate) const UDP_SEND_MSG_SIZE: c_int = ws::UDP_SEND_MSG_SIZE;
pub(crate) const UDP_COALESCED_INFO: c_int = ws::UDP_COALESCED_INFO as c_int;

pub(crate) const MSG_TRUNC: u32 = ws::MSG_TRUNC;
pub(crate) const MSG_CTRUNC: u32 = ws::MSG_CTRUNC;

/// `POLLRDNORM`: `WSAPoll` refuses `POLLPRI`, which POSIX `POLLIN` is not
/// here either; normal data is all a UDP socket has.
pub(crate) const POLLIN: c_short = ws::POLLRDNORM;
pub(crate) const POLLOUT: c_short = ws::POLLWRNORM;

/// The value of an errno Winsock does not have: no call returns it.
pub(crate) const NO_SUCH_ERROR: c_int = c_int::MIN;

pub(crate) const EINTR: c_int = ws::WSAEINTR;
pub(crate) const EINVAL: c_int = ws::WSAEINVAL;
pub(crate) const EACCES: c_int = ws::WSAEACCES;
pub(crate) const EMSGSIZE: c_int = ws::WSAEMSGSIZE;
pub(crate) const ENOBUFS: c_int = ws::WSAENOBUFS;
pub(crate) const ENOPROTOOPT: c_int = ws::WSAENOPROTOOPT;
pub(crate) const EOPNOTSUPP: c_int = ws::WSAEOPNOTSUPP;
pub(crate) const EADDRINUSE: c_int = ws::WSAEADDRINUSE;
pub(crate) const EADDRNOTAVAIL: c_int = ws::WSAEADDRNOTAVAIL;
pub(crate) const ENETUNREACH: c_int = ws::WSAENETUNREACH;
pub(crate) const ECONNRESET: c_int = ws::WSAECONNRESET;
pub(crate) const ECONNREFUSED: c_int = ws::WSAECONNREFUSED;
pub(crate) const EHOSTDOWN: c_int = ws::WSAEHOSTDOWN;
pub(crate) const EHOSTUNREACH: c_int = ws::WSAEHOSTUNREACH;
pub(crate) const EIO: c_int = NO_SUCH_ERROR;
pub(crate) const EPROTO: c_int = NO_SUCH_ERROR;
pub(crate) const ENODEV: c_int = NO_SUCH_ERROR;
/// Winsock reports a refused privilege as `WSAEACCES` (EACCES); no EPERM.
pub(crate) const EPERM: c_int = NO_SUCH_ERROR;

/// `WSA_CMSGDATA_ALIGN`: `MAX_NATURAL_ALIGNMENT`, 8 on 64-bit Windows.
const DATA_ALIGN: usize = if size_of::<usize>() == 8 { 8 } else { 4 };
/// `WSA_CMSGHDR_ALIGN`: the alignment of `WSACMSGHDR` (of its `SIZE_T`).
const HDR_ALIGN: usize = align_of::<cmsghdr>();

const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// `WSA_CMSG_SPACE(len)`.
///
/// # Safety
/// None: pure arithmetic; `unsafe` only to match `libc::CMSG_SPACE`, which
/// the shared codec calls.
pub(crate) const unsafe fn CMSG_SPACE(len: u32) -> u32 {
    round_up(size_of::<cmsghdr>() + round_up(len as usize, HDR_ALIGN), DATA_ALIGN) as u32
}

/// `WSA_CMSG_LEN(len)`.
///
/// # Safety
/// None: pure arithmetic, as [`CMSG_SPACE`].
pub(crate) const unsafe fn CMSG_LEN(len: u32) -> u32 {
    (round_up(size_of::<cmsghdr>(), DATA_ALIGN) + len as usize) as u32
}
