//! Linux: `sendmmsg`/`recvmmsg`, and the offload probes (`UDP_SEGMENT`,
//! `UDP_GRO`, `SO_RXQ_OVFL`, `SO_TIMESTAMPNS`, `SO_TXTIME`).

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

use super::{set_int, syscall, MsgHdr, GSO_MAX_SEGMENTS};
use crate::{Capabilities, Config};

/// One `sendmmsg` over `msgs`.
pub(super) fn send_msgs(fd: RawFd, msgs: &mut [MsgHdr]) -> io::Result<usize> {
    let vlen = libc::c_uint::try_from(msgs.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: sendmmsg(2): "msgvec is a pointer to an array of mmsghdr
    // structures. The size of this array is specified in vlen." MsgHdr has
    // mmsghdr's layout (asserted at compile time in sys/mod.rs) and `msgs`
    // holds `vlen` of them. Each msg_hdr points at a sockaddr of msg_namelen
    // bytes, one iovec, and msg_controllen bytes of control data, all owned
    // by the caller's stack frame and live for this call. flags = 0 (the
    // socket is non-blocking).
    let n = syscall!(sendmmsg(fd, msgs.as_mut_ptr().cast::<libc::mmsghdr>(), vlen, 0))?;
    Ok(n as usize)
}

/// One `recvmmsg` into `msgs`.
pub(super) fn recv_msgs(fd: RawFd, msgs: &mut [MsgHdr]) -> io::Result<usize> {
    let vlen = libc::c_uint::try_from(msgs.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: recvmmsg(2): "msgvec is a pointer to an array of mmsghdr
    // structures. The size of this array is specified in vlen." Each entry
    // points at a writable sockaddr buffer of msg_namelen bytes, one iovec
    // over a writable slot of the batch, and msg_controllen bytes of
    // writable, cmsghdr-aligned control space, all live for this call. The
    // kernel writes msg_len, msg_namelen, msg_controllen and msg_flags.
    // timeout = NULL: return what is queued (the socket is non-blocking).
    let n = syscall!(recvmmsg(fd, msgs.as_mut_ptr().cast::<libc::mmsghdr>(), vlen, 0, std::ptr::null_mut()))?;
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
    let mut ctrl = super::cmsg::SendControl::new();
    let mut enc = super::cmsg::Encoder::new(&mut ctrl.0);
    enc.push(libc::SOL_UDP, libc::UDP_SEGMENT, 1u16).ok()?;
    let ctrl_len = enc.len();
    let mut iov = libc::iovec { iov_base: payload.as_ptr().cast_mut().cast(), iov_len: payload.len() };
    let mut hdr: libc::msghdr = super::cmsg::zeroed();
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = ctrl.0.as_mut_ptr().cast();
    hdr.msg_controllen = ctrl_len as _;
    // The raw syscall, not libc's wrapper: this is a question to the kernel,
    // not traffic, so LD_PRELOAD interposers (fault-injection shims) see
    // only the application's own sends.
    // SAFETY: sendmsg(2) on a live, connected socket with one iovec over
    // `payload` and `ctrl_len` bytes of cmsghdr-aligned control data, all
    // locals that outlive the call.
    match syscall!(syscall(libc::SYS_sendmsg, sock.as_raw_fd(), &hdr as *const libc::msghdr, 0)) {
        Ok(_) => Some(segments),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Some(GSO_MAX_SEGMENTS),
        Err(_) => None,
    }
}

/// Probes and enables the Linux-only features on a fresh socket.
pub(super) fn probe(fd: BorrowedFd<'_>, config: &Config, portable: bool, caps: &mut Capabilities) -> io::Result<()> {
    caps.drop_counter = set_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1).is_ok();
    if config.timestamps {
        set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        caps.timestamps = true;
    }
    if config.txtime {
        let txtime = libc::sock_txtime { clockid: libc::CLOCK_MONOTONIC, flags: 0 };
        super::set_opt(fd, libc::SOL_SOCKET, libc::SO_TXTIME, &txtime)?;
        caps.txtime = true;
    }
    if portable {
        return Ok(());
    }
    caps.mmsg = true;
    // GSO: the kernel knows UDP_SEGMENT if it can be read back.
    if config.gso != Some(false) && super::get_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT).is_ok() {
        caps.max_gso_segments = gso_max_segments();
    }
    if config.gro != Some(false) {
        caps.gro = set_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1).is_ok();
    }
    Ok(())
}

/// Attaches `A = cpu; A %= n; return A` as the group's reuse-port program:
/// the kernel picks the socket at that index (in bind order).
pub(super) fn attach_cpu_steering(fd: BorrowedFd<'_>, n: usize) -> io::Result<()> {
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
    super::set_opt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_REUSEPORT_CBPF, &fprog)
}
