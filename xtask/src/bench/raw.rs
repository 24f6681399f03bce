//! Every `unsafe` in xtask lives here, each block with a `// SAFETY:` line:
//!
//! - `getrusage(RUSAGE_THREAD)` for per-thread CPU time;
//! - the `raw` datapath: plain `sendmsg` with a `UDP_SEGMENT` control message
//!   and `recvmmsg` with `UDP_GRO`, written directly against libc: the
//!   physical limit the other datapaths are measured against.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr;

use socket2::{SockAddr, Socket};

use super::endpoint::{self, fit_segments, is_retry, Burst, Endpoint, Ready, Role, SockOpts, Train, BATCH};

// ---------------------------------------------------------------------------
// CPU time

/// (user, system) CPU time of the calling thread, in nanoseconds
/// (`getrusage(RUSAGE_THREAD)`).
pub(crate) fn thread_cpu_ns() -> (u64, u64) {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    // Cannot fail for the calling thread; zeros if it ever did.
    let Ok(ru) = getrusage(UsageWho::RUSAGE_THREAD) else { return (0, 0) };
    let ns = |t: nix::sys::time::TimeVal| u64::try_from(t.num_nanoseconds()).unwrap_or(0);
    (ns(ru.user_time()), ns(ru.system_time()))
}

/// (voluntary, involuntary) context switches of the calling thread
/// (`getrusage(RUSAGE_THREAD)`): sleeps in the kernel, and preemptions by
/// another runnable thread.
pub(crate) fn thread_context_switches() -> (u64, u64) {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(ru) = getrusage(UsageWho::RUSAGE_THREAD) else { return (0, 0) };
    let n = |v: libc::c_long| u64::try_from(v).unwrap_or(0);
    (n(ru.voluntary_context_switches()), n(ru.involuntary_context_switches()))
}

/// Clock ticks per second of `/proc/stat` (`sysconf(_SC_CLK_TCK)`).
pub(crate) fn clock_ticks() -> u64 {
    let t = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten();
    t.and_then(|t| u64::try_from(t).ok()).filter(|t| *t > 0).unwrap_or(100)
}

// ---------------------------------------------------------------------------
// CPU affinity

/// Pins the calling thread to CPU `cpu` (`sched_setaffinity`).
///
/// # Errors
/// The CPU does not exist or the call is not permitted.
pub(crate) fn pin_thread(cpu: usize) -> io::Result<()> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    set.set(cpu)?;
    // Pid 0: the calling thread.
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The raw datapath

/// Bytes per receive slot: a full GRO train (at most 64 KiB of payload).
const SLOT: usize = 1 << 16;
/// The most segments one GSO send may carry on this kernel: the uapi
/// headers say `UDP_MAX_SEGMENTS = 1 << 6`, newer kernels accept 128. The
/// physical limit is what the running kernel takes, so probe it once.
fn max_segments() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        let probe = || -> io::Result<bool> {
            let s = endpoint::socket(&SockOpts::default())?;
            let me = s.local_addr()?;
            let ok = sendmsg_gso(s.as_raw_fd(), &me, &[0u8; 128], Some(1)).is_ok();
            Ok(ok)
        };
        if probe().unwrap_or(false) {
            128
        } else {
            64
        }
    })
}

/// Control-message space, aligned for `cmsghdr`: enough for one `int`
/// (`UDP_GRO` on receive) or one `u16` (`UDP_SEGMENT` on send).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Ctrl([u8; 64]);

/// One received message: bytes, GRO stride, sender.
#[derive(Debug, Clone, Copy)]
struct Msg {
    len: usize,
    segment: usize,
    src: SocketAddr,
}

/// `UNTIL_EAGAIN`: the receive loop goes back to a socket after every
/// non-empty `recvmmsg` until one answers `EAGAIN` (the loop edge-triggered
/// epoll's documentation teaches: `raw-eagain`); without it, a socket is
/// read again only after a full batch, since a short one means the kernel
/// already stopped at `EAGAIN` (`raw`, the faster loop).
pub(crate) struct RawEndpoint<const UNTIL_EAGAIN: bool = false> {
    socks: Vec<Socket>,
    ready: Ready,
    send_buf: Box<[u8]>,
    data: Box<[u8]>,
    names: Box<[libc::sockaddr_storage]>,
    ctrl: Box<[Ctrl]>,
    msgs: Vec<Msg>,
    dsts: Vec<(SockAddr, Train)>,
    syscalls: u64,
}

impl<const UNTIL_EAGAIN: bool> std::fmt::Debug for RawEndpoint<UNTIL_EAGAIN> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawEndpoint")
            .field("sockets", &self.socks.len())
            .field("until_eagain", &UNTIL_EAGAIN)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Ctrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ctrl")
    }
}

/// `setsockopt(fd, SOL_UDP, UDP_GRO, 1)`.
fn enable_gro(fd: BorrowedFd<'_>) -> io::Result<()> {
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::UdpGroSegment, &true)?;
    Ok(())
}

/// One `sendmsg` of `buf` to `dst`; with `segment`, a `UDP_SEGMENT` control
/// message makes the kernel cut `buf` into datagrams of that size (GSO).
fn sendmsg_gso(fd: RawFd, dst: &SockAddr, buf: &[u8], segment: Option<u16>) -> io::Result<usize> {
    let mut iov = libc::iovec { iov_base: buf.as_ptr().cast_mut().cast(), iov_len: buf.len() };
    let mut ctrl = Ctrl([0; 64]);
    // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths).
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    // sendmsg(2): msg_name points to the destination address of msg_namelen bytes.
    hdr.msg_name = dst.as_ptr().cast_mut().cast();
    hdr.msg_namelen = dst.len();
    // msg_iov: one buffer, read only by the kernel (the cast to *mut is the C API's).
    hdr.msg_iov = &raw mut iov;
    hdr.msg_iovlen = 1;
    if let Some(seg) = segment {
        // udp(7): UDP_SEGMENT cmsg at level SOL_UDP carrying a u16 gso_size.
        hdr.msg_control = ctrl.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is a pure size computation.
        hdr.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
        // SAFETY: msg_control points to 64 aligned bytes, more than
        // CMSG_SPACE(2) = 24, so CMSG_FIRSTHDR returns a valid, aligned
        // header inside `ctrl`, and its data area holds the u16.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&raw const hdr);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
            ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
        }
    }
    // SAFETY: `hdr` points to `iov`, `buf`, `dst` and `ctrl`, all alive for
    // the call; sendmsg only reads them.
    let n = unsafe { libc::sendmsg(fd, &raw const hdr, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The sender of a `sockaddr_storage` the kernel filled.
fn decode_addr(ss: &libc::sockaddr_storage) -> SocketAddr {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a `sockaddr_in`;
            // storage is larger and at least as aligned.
            let sin = unsafe { &*ptr::from_ref(ss).cast::<libc::sockaddr_in>() };
            SocketAddr::from((Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for `sockaddr_in6`.
            let sin6 = unsafe { &*ptr::from_ref(ss).cast::<libc::sockaddr_in6>() };
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            ))
        }
        _ => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
    }
}

impl<const UNTIL_EAGAIN: bool> RawEndpoint<UNTIL_EAGAIN> {
    /// One `recvmmsg` of up to [`BATCH`] messages into the slots; fills `msgs`.
    fn recvmmsg_gro(&mut self, i: usize) -> io::Result<usize> {
        let fd = self.socks[i].as_raw_fd();
        // SAFETY: all-zero is a valid `iovec`/`mmsghdr` (null pointers, zero lengths).
        let mut iovs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let base = self.data.as_mut_ptr();
        for (k, (iov, h)) in iovs.iter_mut().zip(hdrs.iter_mut()).enumerate() {
            // Slot k: bytes [k*SLOT, (k+1)*SLOT) of `data` (BATCH*SLOT long).
            iov.iov_base = base.wrapping_add(k * SLOT).cast();
            iov.iov_len = SLOT;
            let m = &mut h.msg_hdr;
            // recvmmsg(2)/recvmsg(2): msg_name receives the source address,
            // msg_namelen is its capacity on entry and its length on return.
            m.msg_name = ptr::from_mut(&mut self.names[k]).cast();
            m.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_iov = ptr::from_mut(iov);
            m.msg_iovlen = 1;
            // msg_control receives cmsgs (UDP_GRO), msg_controllen in/out likewise.
            m.msg_control = self.ctrl[k].0.as_mut_ptr().cast();
            m.msg_controllen = size_of::<Ctrl>();
        }
        // SAFETY: `hdrs` holds BATCH initialised headers, each pointing to
        // its own iovec (in `iovs`), slot (inside `data`), name and control
        // buffer, all alive and unaliased for the call; vlen = BATCH; flags
        // 0; a null timeout means none (the socket is nonblocking).
        let n = unsafe { libc::recvmmsg(fd, hdrs.as_mut_ptr(), BATCH as libc::c_uint, 0, ptr::null_mut()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.msgs.clear();
        for (k, h) in hdrs.iter().enumerate().take(n as usize) {
            let len = h.msg_len as usize;
            let mut segment = len;
            // SAFETY: the kernel filled `msg_control`/`msg_controllen` of this
            // header; CMSG_FIRSTHDR/NXTHDR stay within that length and every
            // header they return is valid for reads.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&raw const h.msg_hdr);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                        let size = ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                        segment = usize::try_from(size).unwrap_or(len);
                    }
                    c = libc::CMSG_NXTHDR(&raw const h.msg_hdr, c);
                }
            }
            self.msgs.push(Msg { len, segment, src: decode_addr(&self.names[k]) });
        }
        Ok(n as usize)
    }
}

impl<const UNTIL_EAGAIN: bool> Endpoint for RawEndpoint<UNTIL_EAGAIN> {
    fn bind(n: usize, role: Role, opts: &SockOpts) -> io::Result<Self> {
        let ready = Ready::new(n)?;
        let mut socks = Vec::with_capacity(n);
        for i in 0..n {
            let s = endpoint::socket(opts)?;
            s.set_nonblocking(true)?;
            enable_gro(s.as_fd())?;
            ready.register(i, &s, role)?;
            socks.push(s);
        }
        // SAFETY: all-zero is a valid `sockaddr_storage` (AF_UNSPEC).
        let zero_ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        Ok(Self {
            socks,
            ready,
            send_buf: vec![0; SLOT].into_boxed_slice(),
            data: vec![0; BATCH * SLOT].into_boxed_slice(),
            names: vec![zero_ss; BATCH].into_boxed_slice(),
            ctrl: vec![Ctrl([0; 64]); BATCH].into_boxed_slice(),
            msgs: Vec::with_capacity(BATCH),
            dsts: Vec::new(),
            syscalls: 0,
        })
    }

    fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.socks
            .iter()
            .map(|s| s.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an inet socket")))
            .collect()
    }

    fn buffer_sizes(&self) -> (usize, usize) {
        endpoint::granted(&self.socks[0])
    }

    fn train_segments(&self, size: usize) -> usize {
        max_segments().min(fit_segments(size))
    }

    fn describe(&self) -> String {
        format!(
            "libc sendmsg + UDP_SEGMENT (<= {} segs, probed), recvmmsg x{BATCH} + UDP_GRO (64 KiB slots), {}",
            max_segments(),
            if UNTIL_EAGAIN { "each socket read until EAGAIN" } else { "a socket read again only after a full batch" }
        )
    }

    fn prepare(&mut self, plan: &[Burst], size: usize) {
        self.dsts =
            endpoint::trains(plan, self.train_segments(size)).into_iter().map(|t| (SockAddr::from(t.to), t)).collect();
    }

    fn send_plan(&mut self, size: usize, seq: &mut u64, stop: &dyn Fn() -> bool) -> io::Result<u64> {
        let mut sent = 0;
        for (dst, t) in &self.dsts {
            let buf = &mut self.send_buf[..t.segments * size];
            let segment = (t.segments > 1).then_some(size as u16);
            let fd = self.socks[t.from].as_raw_fd();
            let first = *seq;
            let op = || {
                endpoint::stamp(buf, size, first);
                sendmsg_gso(fd, dst, buf, segment)
            };
            if endpoint::retry_send(&mut self.ready, &mut self.syscalls, stop, op)?.is_none() {
                return Ok(sent);
            }
            *seq += t.segments as u64;
            sent += t.segments as u64;
        }
        Ok(sent)
    }

    fn send_one(&mut self, from: usize, to: SocketAddr, payload: &[u8]) -> io::Result<()> {
        let dst = SockAddr::from(to);
        let fd = self.socks[from].as_raw_fd();
        let op = || sendmsg_gso(fd, &dst, payload, None);
        endpoint::retry_send(&mut self.ready, &mut self.syscalls, &|| false, op).map(drop)
    }

    fn recv<F: FnMut(usize, SocketAddr, &[u8])>(&mut self, mut on: F) -> io::Result<usize> {
        let Some(i) = self.ready.next()? else { return Ok(0) };
        self.syscalls += 1;
        match self.recvmmsg_gro(i) {
            Ok(n) if n == BATCH || (UNTIL_EAGAIN && n > 0) => self.ready.requeue(i),
            Ok(_) => {}
            Err(e) if is_retry(&e) => return Ok(0),
            Err(e) => return Err(e),
        }
        let mut delivered = 0;
        for (k, m) in self.msgs.iter().enumerate() {
            let slot = &self.data[k * SLOT..k * SLOT + m.len.min(SLOT)];
            for d in slot.chunks(m.segment.max(1)) {
                on(i, m.src, d);
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    fn syscalls(&self) -> u64 {
        self.syscalls + self.ready.waits
    }
}
