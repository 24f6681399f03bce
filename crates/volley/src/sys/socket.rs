//! The socket's life off the data path: creating, configuring and binding
//! it ([`open`], with the platform's probes), waiting for readiness, and
//! dissolving a connection.

#[cfg(unix)]
use crate::os::AsRawFd;
use crate::os::{AsFd, BorrowedFd};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use super::sockopt::{set_buffer, set_tos};
#[cfg(windows)]
use super::windows::{is_blocking, reuse_port, set_reuse_port, wait};
#[cfg(windows)]
use super::winsock as libc;
use super::{platform, Wait};
use crate::capabilities::Live;
use crate::errqueue::ErrorRing;
use crate::validate::Families;
use crate::{Backend, Capabilities, Config, Dscp, Error, OptionError, SocketOption};

/// Per-socket facts the data path needs.
#[derive(Debug)]
pub(crate) struct SocketState {
    pub(crate) live: Live,
    /// The IP versions the socket carries, as the kernel says after bind.
    pub(crate) families: Families,
    /// The DSCP of the socket-level TOS, kept under per-datagram ECN
    /// (on Windows: the DSCP of the socket's qWAVE flow).
    pub(crate) socket_dscp: AtomicU8,
    /// The qWAVE flow that marks the socket's DSCP (`qwave.rs`).
    #[cfg(windows)]
    pub(crate) qos: super::qwave::FlowSlot,
    /// An error the portable receive loop met after it had datagrams to
    /// return; reported by the next receive.
    pub(crate) pending_error: std::sync::Mutex<Option<io::Error>>,
    /// ICMP errors drained from the kernel (or left pending by an earlier
    /// datagram), kept for [`crate::Socket::try_recv_error`].
    pub(crate) errors: std::sync::Mutex<ErrorRing>,
    /// Whether the descriptor was in blocking mode when last seen (at set
    /// up): the blocking helpers then wait in the kernel. A guess only for
    /// speed: a wrong one costs a syscall, never correctness.
    pub(crate) blocking: AtomicBool,
    /// The `SO_RCVTIMEO` last set, in microseconds (`NO_TIMEOUT_SET`: never
    /// set by volley; 0: none, wait without limit).
    pub(crate) rcvtimeo_us: AtomicU64,
    /// What the datapath did ([`crate::Stats`]).
    pub(crate) stats: crate::stats::Counters,
}

/// [`SocketState::rcvtimeo_us`] before volley set it.
pub(crate) const NO_TIMEOUT_SET: u64 = u64::MAX;

impl SocketState {
    pub(crate) fn socket_dscp(&self) -> Dscp {
        Dscp::from_tos(self.socket_dscp.load(Ordering::Relaxed) << 2)
    }

    /// The ring of ICMP errors (a poisoned lock still holds valid entries).
    pub(crate) fn errors(&self) -> std::sync::MutexGuard<'_, ErrorRing> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The statistics snapshot.
    pub(crate) fn stats(&self) -> crate::Stats {
        let when = |ns: &AtomicU64| ns.load(Ordering::Relaxed);
        let live = &self.live;
        self.stats.snapshot(when(&live.gso_off_ns), when(&live.mmsg_off_ns), when(&live.tos_cmsg_off_ns))
    }
}

/// Creates, configures and binds a socket; probes what the kernel offers.
pub(crate) fn open(addr: SocketAddr, config: &Config) -> Result<(socket2::Socket, SocketState), Error> {
    let bind_err = |reason, source: io::Error| Error::Bind { addr, reason, source };
    let other = |e: io::Error| bind_err(crate::BindError::Other, e);
    let domain = socket2::Domain::for_address(addr);
    // Non-blocking and close-on-exec from the start where socket(2) takes
    // the flags; elsewhere (Apple) socket2 sets FD_CLOEXEC and
    // O_NONBLOCK follows at once.
    #[cfg(has_sock_flags)]
    let ty = socket2::Type::DGRAM.nonblocking().cloexec();
    #[cfg(not(has_sock_flags))]
    let ty = socket2::Type::DGRAM;
    let sock = socket2::Socket::new(domain, ty, Some(socket2::Protocol::UDP)).map_err(other)?;
    #[cfg(not(has_sock_flags))]
    sock.set_nonblocking(true).map_err(other)?;
    if config.blocking {
        sock.set_nonblocking(false).map_err(other)?;
    }
    let v6 = addr.is_ipv6();
    let dual_stack = v6 && !config.ipv6_only.unwrap_or(false);
    if v6 {
        sock.set_only_v6(!dual_stack).map_err(other)?;
    }
    if config.reuse_addr {
        sock.set_reuse_address(true).map_err(other)?;
    }
    if config.reuse_port {
        set_reuse_port(&sock).map_err(other)?;
    }
    if let Some(dev) = &config.bind_device {
        platform::bind_device(&sock, dev).map_err(other)?;
    }
    // Before bind: FREEBIND and TRANSPARENT decide what it may bind to.
    apply_options(&sock, Families { v4: !v6 || dual_stack, v6 }, config)?;
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
    apply_tos(sock.as_fd(), &state, config, other)?;
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
    #[cfg(linux_like)]
    if sock.protocol().map_err(io(Why::NotUdp))? != Some(socket2::Protocol::UDP) {
        return Err(refuse(Why::NotUdp));
    }
    if config.reuse_addr && !sock.reuse_address().map_err(io(Why::Other))? {
        return Err(refuse(Why::ReuseAddr));
    }
    if config.reuse_port && !reuse_port(sock).map_err(io(Why::Other))? {
        return Err(refuse(Why::ReusePort));
    }
    let v6 = sock.local_addr().ok().and_then(|a| a.as_socket()).is_some_and(|a| a.is_ipv6());
    if let (true, Some(only)) = (v6, config.ipv6_only) {
        if sock.only_v6().map_err(io(Why::Other))? != only {
            return Err(refuse(Why::Ipv6Only));
        }
    }
    if let Some(dev) = &config.bind_device {
        if platform::bound_device(sock).map_err(io(Why::Other))?.as_deref() != Some(dev.as_bytes()) {
            return Err(refuse(Why::BindDevice));
        }
    }
    let dual_stack = v6 && !sock.only_v6().map_err(io(Why::Other))?;
    apply_options(sock, Families { v4: !v6 || dual_stack, v6 }, config)?;
    if let Some(size) = config.recv_buffer_size {
        set_buffer(sock, size, true);
    }
    if let Some(size) = config.send_buffer_size {
        set_buffer(sock, size, false);
    }
    let state = configure(sock, config).map_err(io(Why::Other))?;
    apply_tos(sock.as_fd(), &state, config, io(Why::Other))?;
    Ok(state)
}

/// [`Config::tos`], once the socket's state exists (Windows keeps the
/// qWAVE flow there). A typed refusal (Windows) is returned as it is; an
/// OS error becomes the caller's (`Bind`, `Adopt`).
fn apply_tos(
    fd: BorrowedFd<'_>,
    state: &SocketState,
    config: &Config,
    wrap: impl FnOnce(io::Error) -> Error,
) -> Result<(), Error> {
    let Some(tos) = config.tos else {
        return Ok(());
    };
    set_tos(fd, state, tos).map_err(|e| match e {
        Error::Io(e) => wrap(e),
        typed => typed,
    })
}

/// `SO_REUSEPORT`. Windows has none: its `SO_REUSEADDR` lets any later
/// socket take the port over, which is not load balancing; refused.
#[cfg(unix)]
fn set_reuse_port(sock: &socket2::Socket) -> io::Result<()> {
    sock.set_reuse_port(true)
}

/// Whether `SO_REUSEPORT` is set (never, on Windows).
#[cfg(unix)]
fn reuse_port(sock: &socket2::Socket) -> io::Result<bool> {
    sock.reuse_port()
}

/// The options a [`Config`] asks for that can be refused for want of a
/// privilege or of the platform: `SO_BROADCAST` (everywhere), and the
/// Linux-only ones (`platform::apply_ip_options`). A refusal is a typed
/// [`Error::SocketOption`], at bind and at adoption alike.
fn apply_options(sock: &socket2::Socket, families: Families, config: &Config) -> Result<(), Error> {
    let refused = |option, source: io::Error| Error::SocketOption { option, reason: OptionError::of(&source), source };
    if config.broadcast && !sock.broadcast().unwrap_or(false) {
        sock.set_broadcast(true).map_err(|e| refused(SocketOption::Broadcast, e))?;
    }
    platform::apply_ip_options(sock, families, config).map_err(|(option, e)| refused(option, e))
}

/// Applies the options that work on a bound socket and probes what the
/// kernel offers; the family comes from the bound address.
fn configure(sock: &socket2::Socket, config: &Config) -> io::Result<SocketState> {
    let v6 = sock.local_addr()?.as_socket().is_some_and(|a| a.is_ipv6());
    // Binding a specific IPv6 address makes the kernel set IPV6_V6ONLY
    // (only `[::]` can carry IPv4): read back what the socket really is.
    let dual_stack = v6 && !sock.only_v6()?;
    let fd = sock.as_fd();
    let families = Families { v4: !v6 || dual_stack, v6 };
    if let Some(mode) = config.pmtud {
        platform::set_pmtud(fd, families, mode)?;
    }

    let portable = config.effective_backend() == Backend::Portable;
    // Everything off until the platform's probe turns it on.
    let mut caps = Capabilities {
        backend: if portable { Backend::Portable } else { Backend::Auto },
        mmsg: false,
        max_gso_segments: 1,
        gro: false,
        pktinfo: false,
        ecn: false,
        // Unix carries it in the TOS message; Windows' probe tests it.
        ecn_send: true,
        src_send: true,
        tos_cmsg: true,
        // Windows marks DSCP per qWAVE flow, not per datagram.
        dscp_send: crate::validate::Limits::DSCP_PER_DATAGRAM,
        ttl: false,
        timestamps: false,
        txtime: false,
        drop_counter: false,
        recv_errors: false,
        multicast: if v6 { sock.multicast_hops_v6().is_ok() } else { sock.multicast_ttl_v4().is_ok() },
        broadcast: false,
        freebind: false,
        transparent: false,
        mark: None,
        orig_dst: false,
        qwave: false,
    };
    platform::probe(fd, config, families, portable, &mut caps)?;
    let ip = platform::ip_options(sock, families);
    caps.broadcast = sock.broadcast().unwrap_or(false);
    (caps.freebind, caps.transparent, caps.mark, caps.orig_dst) = (ip.freebind, ip.transparent, ip.mark, ip.orig_dst);
    Ok(SocketState {
        live: Live::new(caps),
        families,
        // Config::tos is applied once the state exists (apply_tos).
        socket_dscp: AtomicU8::new(0),
        #[cfg(windows)]
        qos: Default::default(),
        pending_error: Default::default(),
        errors: Default::default(),
        blocking: AtomicBool::new(is_blocking(sock)),
        rcvtimeo_us: AtomicU64::new(NO_TIMEOUT_SET),
        stats: Default::default(),
    })
}

/// A receive that waits up to `timeout` for the first datagram: `recv`
/// runs with [`Wait::ForFirst`] on a blocking descriptor (the kernel
/// sleeps, bounded by `SO_RCVTIMEO`: one syscall per wake-up), else with
/// [`Wait::No`] between `poll`s. `WouldBlock` past the deadline becomes
/// `TimedOut`.
pub(crate) fn recv_waiting(
    fd: BorrowedFd<'_>,
    state: &SocketState,
    timeout: Duration,
    mut recv: impl FnMut(Wait) -> Result<usize, Error>,
) -> Result<usize, Error> {
    // A timeout too large for an Instant means no limit.
    let deadline = std::time::Instant::now().checked_add(timeout);
    let mut bound = Some(timeout);
    loop {
        let mode = match bound {
            Some(t) if t.is_zero() => Wait::No,
            _ if !state.blocking.load(Ordering::Relaxed) => Wait::No,
            // The first pass asks for `timeout` itself, so that a caller
            // with a constant timeout never changes SO_RCVTIMEO.
            _ => {
                set_rcvtimeo(fd, state, deadline.and(bound))?;
                Wait::ForFirst
            }
        };
        match recv(mode) {
            Err(e) if e.is_would_block() => {}
            other => return other,
        }
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Err(Error::Io(io::Error::new(io::ErrorKind::TimedOut, "no datagram before the timeout")));
        }
        // A non-blocking descriptor (whatever the state guessed) answered
        // at once, or the kernel woke early: wait here, never spin.
        wait(fd, libc::POLLIN, left)?;
        bound = left;
    }
}

/// Sets `SO_RCVTIMEO` to `timeout` (`None`: no limit) unless it is set so
/// already; rounded up to a microsecond (0 would mean no limit).
fn set_rcvtimeo(fd: BorrowedFd<'_>, state: &SocketState, timeout: Option<Duration>) -> io::Result<()> {
    let us = timeout.map_or(0, |t| u64::try_from(t.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX - 1).max(1));
    if state.rcvtimeo_us.load(Ordering::Relaxed) == us {
        return Ok(());
    }
    let dur = (us != 0).then(|| Duration::from_micros(us));
    socket2::SockRef::from(&fd).set_read_timeout(dur)?;
    state.rcvtimeo_us.store(us, Ordering::Relaxed);
    Ok(())
}

/// Whether the descriptor is in blocking mode (unknowable on Windows,
/// where a volley socket is always non-blocking: mio's requirement).
#[cfg(unix)]
fn is_blocking(sock: &socket2::Socket) -> bool {
    !sock.nonblocking().unwrap_or(true)
}

/// Waits until `fd` is readable (`events = POLLIN`) or writable (`POLLOUT`),
/// or `timeout` passes (`None`: no limit). Returns whether it became ready.
///
/// `poll` also wakes for `POLLERR` while the ICMP error queue holds an
/// entry, which does not make the socket readable or writable: then it
/// naps 1 ms between polls instead of spinning.
#[cfg(unix)]
pub(crate) fn wait(fd: BorrowedFd<'_>, events: libc::c_short, timeout: Option<Duration>) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let events = PollFlags::from_bits_truncate(events);
    let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        // Round up, so a sub-millisecond wait does not become a busy poll(0).
        let ms = left.map_or(PollTimeout::NONE, |l| {
            PollTimeout::try_from(l.as_nanos().div_ceil(1_000_000)).unwrap_or(PollTimeout::MAX)
        });
        let mut pfd = [PollFd::new(fd, events)];
        match poll(&mut pfd, ms) {
            Ok(0) => return Ok(false),
            Ok(_) if pfd[0].revents().is_some_and(|r| r.intersects(events)) => return Ok(true),
            Ok(_) => {
                if left.is_some_and(|l| l.is_zero()) {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(1).min(left.unwrap_or(Duration::MAX)));
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Dissolves a connection (`connect` to `AF_UNSPEC`).
#[cfg(unix)]
pub(crate) fn disconnect(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut addr: libc::sockaddr = super::cmsg::zeroed();
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
