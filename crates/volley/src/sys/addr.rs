//! Socket addresses in and out of the C structs the kernel reads and
//! writes.

use crate::os::BorrowedFd;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::cmsg;
#[cfg(windows)]
use super::winsock as libc;

/// Storage for one socket address, big enough for IPv4 and IPv6.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) union SockAddrBuf {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

// SAFETY: a union of two Zeroable structs: all-zero is valid for either.
unsafe impl cmsg::Zeroable for SockAddrBuf {}

impl SockAddrBuf {
    pub(super) fn new() -> Self {
        cmsg::zeroed()
    }

    /// Writes `addr`, returning its length.
    pub(super) fn write(&mut self, addr: SocketAddr) -> libc::socklen_t {
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
    pub(super) fn read(&self, len: libc::socklen_t) -> Option<SocketAddr> {
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

/// A `sockaddr_storage` holding `ip` (port 0), for `group_req`.
pub(super) fn storage(ip: IpAddr) -> libc::sockaddr_storage {
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

/// The peer of a connected socket (`getpeername`, through socket2),
/// IPv4-mapped folded.
pub(super) fn peer(fd: BorrowedFd<'_>) -> Option<SocketAddr> {
    let addr = socket2::SockRef::from(&fd).peer_addr().ok()?.as_socket()?;
    Some(crate::meta::canonical(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address reads back only when the kernel wrote all of it: a
    /// shorter length (a truncated or foreign address) reads as none.
    #[test]
    fn addresses_read_back_only_when_whole() {
        for addr in ["192.0.2.7:4433", "[2001:db8::7]:4433", "[::ffff:192.0.2.7]:4433"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut buf = SockAddrBuf::new();
            let len = buf.write(addr);
            assert_eq!(buf.read(len), Some(crate::meta::canonical(addr)), "{addr}");
            assert_eq!(buf.read(len - 1), None, "{addr} one byte short");
            assert_eq!(buf.read(0), None, "{addr} empty");
        }
        assert_eq!(SockAddrBuf::new().read(128), None, "no family");
    }
}
