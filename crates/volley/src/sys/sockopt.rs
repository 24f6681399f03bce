//! Socket options off the data path: the one `setsockopt`/`getsockopt`
//! pair, TOS, multicast membership and interface, buffer sizes.

use crate::os::{AsFd, AsRawFd, BorrowedFd};
use std::io;
use std::mem::size_of;
use std::net::IpAddr;

use super::addr::storage;
use super::platform;
use super::SocketState;
use crate::validate::Families;
use crate::Error;

#[cfg(any(generic_unix, windows))]
use super::platform::set_multicast_if_index_v4;
#[cfg(windows)]
use super::winsock as libc;

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

/// Sets an `int` option on each family the socket carries (`v4` at
/// `IPPROTO_IP`, `v6` at `IPPROTO_IPV6`); true if every one took it.
pub(crate) fn set_both(fd: BorrowedFd<'_>, families: Families, v4: libc::c_int, v6: libc::c_int) -> bool {
    let a = !families.v4 || set_int(fd, libc::IPPROTO_IP, v4, 1).is_ok();
    let b = !families.v6 || set_int(fd, libc::IPPROTO_IPV6, v6, 1).is_ok();
    a && b
}

/// Requests a buffer size; where the platform has a privileged override
/// (Linux's `*FORCE`: root may exceed `net.core.*mem_max`) retries with it,
/// and warns once if the grant falls short.
pub(crate) fn set_buffer(sock: &socket2::Socket, size: usize, recv: bool) {
    let _ = if recv { sock.set_recv_buffer_size(size) } else { sock.set_send_buffer_size(size) };
    let granted = || if recv { sock.recv_buffer_size() } else { sock.send_buffer_size() }.unwrap_or(0);
    if granted() < size {
        platform::force_buffer(sock.as_fd(), size, recv);
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

/// The Linux-only options of a socket as read back: `IP_FREEBIND`,
/// `IP_TRANSPARENT`, `SO_MARK`, `IP_RECVORIGDSTADDR` (all off elsewhere).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IpOptions {
    pub(crate) freebind: bool,
    pub(crate) transparent: bool,
    pub(crate) mark: Option<u32>,
    pub(crate) orig_dst: bool,
}

/// A platform without the Linux-only options: the first one `config` asks
/// for is refused as `Unsupported`; asking for none is fine.
#[cfg(not(linux_like))]
pub(crate) fn apply_ip_options(
    _sock: &socket2::Socket,
    _families: Families,
    config: &crate::Config,
) -> Result<(), (crate::SocketOption, io::Error)> {
    use crate::SocketOption as O;
    let asked = [
        (config.freebind, O::Freebind),
        (config.transparent, O::Transparent),
        (config.mark.is_some(), O::Mark),
        (config.orig_dst, O::OrigDst),
    ];
    match asked.into_iter().find(|(on, _)| *on) {
        Some((_, option)) => Err((
            option,
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{option} is not available on {}", std::env::consts::OS),
            ),
        )),
        None => Ok(()),
    }
}

/// A platform without the Linux-only options: all off.
#[cfg(not(linux_like))]
pub(crate) fn ip_options(_sock: &socket2::Socket, _families: Families) -> IpOptions {
    IpOptions::default()
}

/// Whether an `errno` from a send or connect to `destination` is the
/// kernel refusing a broadcast: `EACCES` for an IPv4 destination on a
/// socket without `SO_BROADCAST` (read now: it may have been set on the
/// descriptor directly). Called on the error path only.
pub(crate) fn broadcast_refused(fd: BorrowedFd<'_>, destination: std::net::SocketAddr, errno: Option<i32>) -> bool {
    errno == Some(libc::EACCES)
        && destination.ip().to_canonical().is_ipv4()
        && get_int(fd, libc::SOL_SOCKET, libc::SO_BROADCAST).is_ok_and(|on| on == 0)
}

/// Sets the socket-level TOS / traffic class on every family the socket
/// carries, and keeps its DSCP in `state` (the send path keeps it under a
/// per-datagram ECN). An OS refusal is [`Error::Io`]. Windows marks the
/// DSCP through a qWAVE flow instead (`qwave.rs`), refused with a typed
/// [`Error::SocketOption`].
pub(crate) fn set_tos(fd: BorrowedFd<'_>, state: &SocketState, tos: u8) -> Result<(), Error> {
    #[cfg(windows)]
    return super::qwave::set_tos(fd, state, tos);
    #[cfg(unix)]
    {
        if state.families.v4 {
            set_int(fd, libc::IPPROTO_IP, libc::IP_TOS, libc::c_int::from(tos)).map_err(Error::Io)?;
        }
        if state.families.v6 {
            set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, libc::c_int::from(tos)).map_err(Error::Io)?;
        }
        state.socket_dscp.store(tos >> 2, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Reads the socket-level TOS / traffic class. Windows: the DSCP of the
/// socket's qWAVE flow (0 without one), which no socket option reports.
pub(crate) fn tos(fd: BorrowedFd<'_>, state: &SocketState) -> io::Result<u8> {
    #[cfg(windows)]
    {
        let _ = fd;
        Ok(state.socket_dscp().tos(crate::Ecn::NotEct))
    }
    #[cfg(unix)]
    {
        let v = if state.families.v6 {
            get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_TCLASS)?
        } else {
            get_int(fd, libc::IPPROTO_IP, libc::IP_TOS)?
        };
        Ok(v as u8)
    }
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
                set_multicast_if_index_v4(sock.as_fd(), index)?;
            }
            if families.v6 {
                sock.set_multicast_if_v6(index)?;
            }
            Ok(())
        }
    }
}

/// Sets or clears "don't fragment" (`IP_DONTFRAG` / `IPV6_DONTFRAG`) on
/// each family the socket carries: the BSD-derived stacks' PMTUD switch.
#[cfg(any(apple, freebsd))]
pub(crate) fn set_dontfrag(fd: BorrowedFd<'_>, families: Families, mode: crate::Pmtud) -> io::Result<()> {
    let on = libc::c_int::from(mode != crate::Pmtud::Off);
    if families.v4 {
        set_int(fd, libc::IPPROTO_IP, libc::IP_DONTFRAG, on)?;
    }
    if families.v6 {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, on)?;
    }
    Ok(())
}

/// Whether the IP layer may fragment: false only if every family the
/// socket carries has "don't fragment" set.
#[cfg(any(apple, freebsd))]
pub(crate) fn may_fragment_dontfrag(fd: BorrowedFd<'_>, families: Families) -> bool {
    let v4_df = get_int(fd, libc::IPPROTO_IP, libc::IP_DONTFRAG).is_ok_and(|v| v != 0);
    let v6_df = get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG).is_ok_and(|v| v != 0);
    (families.v4 && !v4_df) || (families.v6 && !v6_df)
}

/// Sets the IPv4 outgoing multicast interface by index: `struct ip_mreqn`
/// at `IP_MULTICAST_IF`, which Linux, FreeBSD and Apple accept.
#[cfg(any(linux_like, apple, freebsd))]
pub(crate) fn set_multicast_if_index_v4(fd: BorrowedFd<'_>, index: u32) -> io::Result<()> {
    let mut mreqn: libc::ip_mreqn = super::cmsg::zeroed();
    mreqn.imr_ifindex = libc::c_int::try_from(index).unwrap_or(0);
    set_opt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreqn)
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;
    use crate::capabilities::tests::warnings;

    /// A grant that falls short warns once; one that covers the request
    /// (as root, past `net.core.rmem_max` with `SO_RCVBUFFORCE`) does not.
    #[test]
    #[cfg_attr(miri, ignore = "needs a socket")]
    fn a_short_buffer_grant_warns_and_a_full_one_does_not() {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        // Beyond what any kernel grants (it caps at INT_MAX / 2).
        assert_eq!(warnings(|| set_buffer(&sock, usize::MAX / 2, true)), 1, "an impossible request");
        let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
        if root {
            let rmem_max: usize =
                std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse().unwrap();
            // More than twice rmem_max: only SO_RCVBUFFORCE grants it.
            let size = (4 * rmem_max).max(16 << 20);
            assert_eq!(warnings(|| set_buffer(&sock, size, true)), 0, "root is granted {size}");
            assert!(sock.recv_buffer_size().unwrap() >= size);
        } else {
            println!("SKIPPED the forced grant: needs root (SO_RCVBUFFORCE)");
        }
    }
}
