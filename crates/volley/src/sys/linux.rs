//! Linux and Android: `sendmmsg`/`recvmmsg`, the offload probes
//! (`UDP_SEGMENT`, `UDP_GRO`, `SO_RXQ_OVFL`, `SO_TIMESTAMPNS`,
//! `SO_TXTIME`), pktinfo / TOS / TTL on receive, the ICMP error queue
//! (`IP_RECVERR`), path-MTU discovery modes, reuse-port CPU steering.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use super::addr::SockAddrBuf;
use super::sockopt::{get_int, set_both, set_int, IpOptions};
use super::{cmsg, iovec, MsgHdr, Wait};
use crate::validate::Families;
use crate::{Capabilities, Config, SocketOption};

/// Most segments one GSO send may carry on every kernel with GSO
/// (`UDP_MAX_SEGMENTS` until Linux 6.8; newer kernels allow 128, which
/// [`gso_max_segments`] probes). 64 KiB of payload caps a train too.
const GSO_MAX_SEGMENTS: usize = 64;

/// One `sendmmsg` over `msgs`.
pub(super) fn send_mmsg(fd: RawFd, msgs: &mut [MsgHdr]) -> io::Result<usize> {
    let vlen = libc::c_uint::try_from(msgs.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: sendmmsg(2): "msgvec is a pointer to an array of mmsghdr
    // structures. The size of this array is specified in vlen." MsgHdr has
    // mmsghdr's layout (asserted at compile time in sys/mod.rs) and `msgs`
    // holds `vlen` of them. Each msg_hdr points at a sockaddr of msg_namelen
    // bytes, one iovec, and msg_controllen bytes of control data, all owned
    // by the caller's stack frame and live for this call. MSG_DONTWAIT:
    // never block, whatever the descriptor's mode.
    let n = syscall!(sendmmsg(fd, msgs.as_mut_ptr().cast::<libc::mmsghdr>(), vlen, libc::MSG_DONTWAIT))?;
    Ok(n as usize)
}

/// One `recvmmsg` into `msgs`; `wait` as in [`Wait::mmsg_flags`].
pub(super) fn recv_mmsg(fd: RawFd, msgs: &mut [MsgHdr], wait: Wait) -> io::Result<usize> {
    let vlen = libc::c_uint::try_from(msgs.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: recvmmsg(2): "msgvec is a pointer to an array of mmsghdr
    // structures. The size of this array is specified in vlen." Each entry
    // points at a writable sockaddr buffer of msg_namelen bytes, one iovec
    // over a writable slot of the batch, and msg_controllen bytes of
    // writable, cmsghdr-aligned control space, all live for this call. The
    // kernel writes msg_len, msg_namelen, msg_controllen and msg_flags.
    // timeout = NULL: the flags say whether to wait for the first message
    // (SO_RCVTIMEO bounds that wait), never for more.
    let flags = wait.mmsg_flags();
    let n = syscall!(recvmmsg(fd, msgs.as_mut_ptr().cast::<libc::mmsghdr>(), vlen, flags, std::ptr::null_mut()))?;
    Ok(n as usize)
}

/// Whether the `mmsg` syscalls themselves are refused (a seccomp filter),
/// as opposed to this one call (`EPERM` also comes from a netfilter drop):
/// a zero-length call reaches no packet path, so it fails only if the
/// syscall is blocked.
pub(super) fn mmsg_blocked(fd: RawFd, send: bool) -> bool {
    let res = if send {
        // SAFETY: vlen 0: the kernel reads no mmsghdr, so a null pointer is fine.
        syscall!(sendmmsg(fd, std::ptr::null_mut(), 0, 0))
    } else {
        // SAFETY: vlen 0 and no timeout: nothing is read or written.
        syscall!(recvmmsg(fd, std::ptr::null_mut(), 0, libc::MSG_DONTWAIT, std::ptr::null_mut()))
    };
    matches!(res, Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)))
}

/// The kernel's `UDP_MAX_SEGMENTS` (64 in older kernels, 128 in newer),
/// probed once per process by a 128-segment GSO send of 1-byte datagrams
/// from a loopback socket to itself. If the probe cannot run (no loopback
/// in this network namespace, say), 64, which every GSO kernel accepts.
fn gso_max_segments() -> usize {
    static PROBED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PROBED.get_or_init(|| probe_gso_limit(2 * GSO_MAX_SEGMENTS).unwrap_or(GSO_MAX_SEGMENTS))
}

/// `Some(segments)` if a GSO send of `segments` went through, `Some(64)` if
/// the kernel refused it (`EINVAL`), `None` if the probe itself failed.
fn probe_gso_limit(segments: usize) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).ok()?;
    let lo: std::net::SocketAddr = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    sock.bind(&lo.into()).ok()?;
    let me = sock.local_addr().ok()?;
    sock.connect(&me).ok()?;
    let payload = vec![0u8; segments];
    let mut ctrl = cmsg::SendControl::new();
    let mut enc = cmsg::Encoder::new(&mut ctrl.0);
    enc.push(libc::SOL_UDP, libc::UDP_SEGMENT, 1u16).ok()?;
    let ctrl_len = enc.len();
    let mut iov = libc::iovec { iov_base: payload.as_ptr().cast_mut().cast(), iov_len: payload.len() };
    let mut hdr: libc::msghdr = cmsg::zeroed();
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = ctrl.0.as_mut_ptr().cast();
    hdr.msg_controllen = ctrl_len as _;
    // On Linux the raw syscall, not libc's wrapper: this is a question to
    // the kernel, not traffic, so LD_PRELOAD interposers (fault-injection
    // shims) see only the application's own sends.
    // SAFETY: sendmsg(2) on a live, connected socket with one iovec over
    // `payload` and `ctrl_len` bytes of cmsghdr-aligned control data, all
    // locals that outlive the call.
    #[cfg(not(android))]
    let sent = syscall!(syscall(libc::SYS_sendmsg, sock.as_raw_fd(), &hdr as *const libc::msghdr, 0));
    // On Android only libc's wrapper: 32-bit x86 bionic reaches sockets
    // through socketcall(2), and the app seccomp filter kills a process
    // that makes a raw socket syscall it does not allow (SIGSYS).
    // SAFETY: as above.
    #[cfg(android)]
    let sent = syscall!(sendmsg(sock.as_raw_fd(), &hdr, 0));
    match sent {
        Ok(_) => Some(segments),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Some(GSO_MAX_SEGMENTS),
        Err(_) => None,
    }
}

/// Probes and enables what the kernel offers on a fresh socket.
pub(super) fn probe(
    fd: BorrowedFd<'_>,
    config: &Config,
    families: Families,
    portable: bool,
    caps: &mut Capabilities,
) -> io::Result<()> {
    caps.pktinfo = set_both(fd, families, libc::IP_PKTINFO, libc::IPV6_RECVPKTINFO);
    caps.ecn = set_both(fd, families, libc::IP_RECVTOS, libc::IPV6_RECVTCLASS);
    caps.ttl = set_both(fd, families, libc::IP_RECVTTL, libc::IPV6_RECVHOPLIMIT);
    caps.recv_errors = config.recv_errors && set_both(fd, families, libc::IP_RECVERR, libc::IPV6_RECVERR);
    caps.drop_counter = set_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1).is_ok();
    if config.timestamps {
        set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        caps.timestamps = true;
    }
    if config.txtime {
        #[cfg(has_txtime)]
        {
            let txtime = libc::sock_txtime { clockid: libc::CLOCK_MONOTONIC, flags: 0 };
            super::sockopt::set_opt(fd, libc::SOL_SOCKET, libc::SO_TXTIME, &txtime)?;
            caps.txtime = true;
        }
        #[cfg(not(has_txtime))]
        return Err(io::Error::new(io::ErrorKind::Unsupported, "SO_TXTIME: not in the libc bindings for this target"));
    }
    if portable {
        return Ok(());
    }
    caps.mmsg = true;
    // GSO: the kernel knows UDP_SEGMENT if it can be read back.
    if config.gso != Some(false) && get_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT).is_ok() {
        caps.max_gso_segments = gso_max_segments();
    }
    if config.gro != Some(false) {
        caps.gro = set_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1).is_ok();
    }
    Ok(())
}

/// The Linux-only options `config` asks for, each set only if the socket
/// lacks it (so a socket a privileged parent made transparent or marked is
/// adopted without the privilege): `IP_FREEBIND` / `IPV6_FREEBIND` and
/// `IP_TRANSPARENT` / `IPV6_TRANSPARENT` (one flag per socket, set at the
/// socket's own level), `SO_MARK`, and `IP_RECVORIGDSTADDR` /
/// `IPV6_RECVORIGDSTADDR` on each family the socket carries.
pub(super) fn apply_ip_options(
    sock: &socket2::Socket,
    families: Families,
    config: &Config,
) -> Result<(), (SocketOption, io::Error)> {
    let v6 = families.v6;
    let now = ip_options(sock, families);
    if config.freebind && !now.freebind {
        let set = if v6 { sock.set_freebind_v6(true) } else { sock.set_freebind_v4(true) };
        set.map_err(|e| (SocketOption::Freebind, e))?;
    }
    if config.transparent && !now.transparent {
        let set = if v6 { sock.set_ip_transparent_v6(true) } else { sock.set_ip_transparent_v4(true) };
        set.map_err(|e| (SocketOption::Transparent, e))?;
    }
    if let Some(mark) = config.mark.filter(|&m| now.mark.unwrap_or(0) != m) {
        sock.set_mark(mark).map_err(|e| (SocketOption::Mark, e))?;
    }
    if config.orig_dst && !now.orig_dst {
        let fd = sock.as_fd();
        let orig = |e| (SocketOption::OrigDst, e);
        if families.v4 {
            set_int(fd, libc::IPPROTO_IP, libc::IP_RECVORIGDSTADDR, 1).map_err(orig)?;
        }
        if families.v6 {
            set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVORIGDSTADDR, 1).map_err(orig)?;
        }
    }
    Ok(())
}

/// The Linux-only options as the socket has them (a failed read is "off").
pub(super) fn ip_options(sock: &socket2::Socket, families: Families) -> IpOptions {
    let v6 = families.v6;
    let fd = sock.as_fd();
    let on = |level, name| get_int(fd, level, name).is_ok_and(|v| v != 0);
    IpOptions {
        freebind: if v6 { sock.freebind_v6() } else { sock.freebind_v4() }.unwrap_or(false),
        transparent: if v6 { sock.ip_transparent_v6() } else { sock.ip_transparent_v4() }.unwrap_or(false),
        mark: sock.mark().ok().filter(|&m| m != 0),
        orig_dst: (!families.v4 || on(libc::IPPROTO_IP, libc::IP_RECVORIGDSTADDR))
            && (!families.v6 || on(libc::IPPROTO_IPV6, libc::IPV6_RECVORIGDSTADDR)),
    }
}

/// Attaches `A = cpu; A %= n; return A` as the group's reuse-port program:
/// the kernel picks the socket at that index (in bind order). Unsupported
/// where the target's libc bindings lack the BPF constants (Android),
/// though the kernel has reuse-port CBPF.
pub(crate) fn attach_cpu_steering(fd: BorrowedFd<'_>, n: usize) -> io::Result<()> {
    #[cfg(not(has_reuseport_cbpf))]
    {
        let _ = (fd, n);
        Err(io::Error::new(io::ErrorKind::Unsupported, "CPU steering: no BPF constants in this target's libc bindings"))
    }
    #[cfg(has_reuseport_cbpf)]
    {
        let n = u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "group too large"))?;
        let insn = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
        let prog = [
            // A = the CPU this packet is processed on (an ancillary load).
            insn(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32),
            insn(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, n),
            insn(libc::BPF_RET | libc::BPF_A, 0),
        ];
        let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr().cast_mut() };
        // The kernel copies the program during the call; `prog` outlives it.
        super::sockopt::set_opt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_REUSEPORT_CBPF, &fprog)
    }
}

/// Binds the socket to a device (`SO_BINDTODEVICE`).
pub(super) fn bind_device(sock: &socket2::Socket, dev: &str) -> io::Result<()> {
    sock.bind_device(Some(dev.as_bytes()))
}

/// The device the socket is bound to (`SO_BINDTODEVICE`), if any.
pub(super) fn bound_device(sock: &socket2::Socket) -> io::Result<Option<Vec<u8>>> {
    sock.device()
}

/// Retries a buffer size with the `*FORCE` option (root may exceed
/// `net.core.*mem_max`); best effort, the caller reads back the grant.
pub(super) fn force_buffer(fd: BorrowedFd<'_>, size: usize, recv: bool) {
    let opt = if recv { libc::SO_RCVBUFFORCE } else { libc::SO_SNDBUFFORCE };
    let _ = set_int(fd, libc::SOL_SOCKET, opt, libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX));
}

/// Path-MTU discovery mode (`IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`).
pub(super) fn set_pmtud(fd: BorrowedFd<'_>, families: Families, mode: crate::Pmtud) -> io::Result<()> {
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

/// Whether the IP layer may fragment this socket's datagrams: false only if
/// every family it carries has DF set for good (`DO` or `PROBE`).
pub(crate) fn may_fragment(fd: BorrowedFd<'_>, families: Families) -> bool {
    let df = |level, name, do_, probe| get_int(fd, level, name).is_ok_and(|m| m == do_ || m == probe);
    let v4_df = df(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO, libc::IP_PMTUDISC_PROBE);
    let v6_df = df(libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DO, libc::IPV6_PMTUDISC_PROBE);
    // DF for good on every family the socket carries.
    let no_frag = (!families.v4 || v4_df) && (!families.v6 || v6_df);
    !no_frag
}

/// The kernel's path MTU for a connected socket (`IP_MTU` / `IPV6_MTU`).
pub(crate) fn path_mtu(fd: BorrowedFd<'_>, v6_path: bool) -> io::Result<u32> {
    let v = if v6_path {
        get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU)?
    } else {
        get_int(fd, libc::IPPROTO_IP, libc::IP_MTU)?
    };
    Ok(v as u32)
}

/// Reads one entry of the socket's error queue (`MSG_ERRQUEUE`): `None`
/// when the queue is empty, `Some(None)` for an entry that carries no
/// extended error (consumed and skipped).
pub(super) fn read_error_entry(fd: BorrowedFd<'_>) -> io::Result<Option<Option<crate::IcmpError>>> {
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

/// Linux delivers every group *any* socket of the host joined to each
/// wildcard-bound socket on the port (`IP_MULTICAST_ALL`, on by default):
/// turned off before a join so a socket hears exactly its groups. Android
/// runs the same kernel, so the same there (socket2 offers these options on
/// Linux only: set directly). Kernels before 4.20 lack the IPv6 option.
pub(crate) fn disable_multicast_all(fd: BorrowedFd<'_>, v4: bool) -> io::Result<()> {
    if v4 {
        set_int(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_ALL, 0)
    } else {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_ALL, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `UDP_MAX_SEGMENTS` probe: 128 one-byte segments go through on a
    /// kernel whose limit is 128 and are refused (`EINVAL`, read as 64) on
    /// one whose limit is 64; 1,000 are refused everywhere.
    #[test]
    #[cfg_attr(miri, ignore = "needs a socket")]
    fn the_gso_probe_reads_the_kernels_limit() {
        let limit = probe_gso_limit(2 * GSO_MAX_SEGMENTS);
        assert!(matches!(limit, Some(64 | 128)), "{limit:?}");
        assert_eq!(probe_gso_limit(1000), Some(GSO_MAX_SEGMENTS), "past every kernel's limit");
        assert_eq!(gso_max_segments(), limit.unwrap());
    }

    /// A join turns `IP_MULTICAST_ALL` / `IPV6_MULTICAST_ALL` off (on by
    /// default), so the socket hears exactly the groups it joined.
    #[test]
    #[cfg_attr(miri, ignore = "needs a socket")]
    fn a_join_turns_multicast_all_off() {
        use crate::os::AsFd;
        for (at, group, level, name) in [
            ("0.0.0.0:0", "239.1.2.3", libc::IPPROTO_IP, libc::IP_MULTICAST_ALL),
            ("[::]:0", "ff15::1:2:3", libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_ALL),
        ] {
            let sock = crate::Socket::bind(at.parse().unwrap()).unwrap();
            let all = || get_int(sock.as_fd(), level, name).unwrap();
            assert_eq!(all(), 1, "{at}: the kernel's default");
            sock.join_multicast(group.parse().unwrap(), crate::MulticastInterface::Any).unwrap();
            assert_eq!(all(), 0, "{at} after joining {group}");
        }
    }
}
