//! What the kernel gave this socket: probed once at bind, updated when a
//! feature is turned off at run time (GSO after `EIO`, mmsg after `ENOSYS`,
//! TOS control messages after the kernel refuses one).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::Backend;

/// A snapshot of the features a socket uses. Print it to see what your
/// kernel offers:
///
/// ```
/// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// let caps = sock.capabilities();
/// println!("{caps}");
/// if cfg!(target_os = "linux") && caps.backend == volley::Backend::Auto {
///     assert!(caps.mmsg);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The datapath in use.
    pub backend: Backend,
    /// Batched syscalls (`recvmmsg`/`sendmmsg`) in use. Turns false at run
    /// time if a seccomp filter answers `ENOSYS`/`EPERM`.
    pub mmsg: bool,
    /// Most datagrams one GSO send may carry; `1` means GSO is off (not
    /// supported, disabled, or turned off after an `EIO`/`EINVAL`).
    pub max_gso_segments: usize,
    /// Receive offload (`UDP_GRO`) on.
    pub gro: bool,
    /// Destination address and interface (`IP_PKTINFO`/`IPV6_RECVPKTINFO`)
    /// reported on receive, source address selectable on send.
    pub pktinfo: bool,
    /// The TOS / traffic class (ECN and DSCP) reported on receive.
    pub ecn: bool,
    /// The ECN codepoint of a [`crate::Transmit`] reaches the wire. True
    /// on Unix (a TOS / traffic-class control message); on Windows only if
    /// a loopback self-test at the first bind saw an `IP_ECN` message's
    /// codepoint arrive (Wine 8 accepts the message and drops the mark).
    /// When false the datagram still leaves, unmarked, and no ECN message
    /// is sent.
    pub ecn_send: bool,
    /// The source address and interface of a [`crate::Transmit`]
    /// (`src_ip`, `src_ifindex`: pktinfo on send) are applied. True on
    /// Unix; on Windows only if a loopback self-test at the first bind saw
    /// the chosen source arrive (Wine 8 ignores it). When false a transmit
    /// naming a source is refused
    /// ([`crate::InvalidTransmit::SourceUnsupported`]), never sent from
    /// another address.
    pub src_send: bool,
    /// ECN and DSCP set per datagram on send (`IP_TOS` / `IPV6_TCLASS`
    /// control messages, from [`crate::Transmit::ecn`] and
    /// [`crate::Transmit::dscp`]). True until the kernel refuses such a
    /// control message (`EINVAL` on Android before 8.0; `EIO` beside
    /// `UDP_SEGMENT` on some kernels): then the datagram is resent without
    /// it and it stays off for the socket. While off, every datagram
    /// carries the socket-level TOS ([`crate::Socket::set_tos`]) instead:
    /// per-datagram ECN marks are not sent.
    ///
    /// ```
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// if !sock.capabilities().tos_cmsg {
    ///     // Tell the transport not to count on ECN (QUIC's ECN validation
    ///     // would find out too, as no ECT marks arrive).
    /// }
    /// ```
    pub tos_cmsg: bool,
    /// A [`crate::Transmit::dscp`] other than the socket's own reaches the
    /// wire, per datagram. True on Unix while [`Capabilities::tos_cmsg`]
    /// holds (it rides the same control message). False on Windows, where
    /// DSCP is marked per qWAVE flow ([`Capabilities::qwave`]), not per
    /// datagram: a transmit naming another DSCP is refused
    /// ([`crate::InvalidTransmit::DscpUnsupported`]), never sent unmarked.
    ///
    /// ```
    /// use volley::{Dscp, Transmit};
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let to = sock.local_addr().unwrap();
    /// let t = Transmit::new(to, b"voice");
    /// // Mark per datagram where the platform can; else leave it to the socket.
    /// let t = if sock.capabilities().dscp_send { t.with_dscp(Dscp::EF) } else { t };
    /// let _ = sock.try_send_batch(&[t]).unwrap();
    /// ```
    pub dscp_send: bool,
    /// TTL / hop limit reported on receive.
    pub ttl: bool,
    /// Kernel receive timestamps (`SO_TIMESTAMPNS`) on.
    pub timestamps: bool,
    /// `SO_TXTIME` on: transmits may carry a departure time.
    pub txtime: bool,
    /// The kernel drop counter (`SO_RXQ_OVFL`) reported on receive.
    pub drop_counter: bool,
    /// The ICMP error queue (`IP_RECVERR`/`IPV6_RECVERR`) enabled.
    pub recv_errors: bool,
    /// The kernel supports multicast on this socket's family.
    pub multicast: bool,
    /// `SO_BROADCAST` on: the socket may send to broadcast addresses
    /// ([`crate::Config::broadcast`]).
    pub broadcast: bool,
    /// `IP_FREEBIND` / `IPV6_FREEBIND` on ([`crate::Config::freebind`]).
    pub freebind: bool,
    /// `IP_TRANSPARENT` / `IPV6_TRANSPARENT` on
    /// ([`crate::Config::transparent`]).
    pub transparent: bool,
    /// The socket's `SO_MARK`, if not 0 ([`crate::Config::mark`]). `None`
    /// off Linux.
    pub mark: Option<u32>,
    /// Each datagram's original destination reported
    /// ([`crate::RecvMeta::orig_dst`], [`crate::Config::orig_dst`]).
    pub orig_dst: bool,
    /// Windows: qWAVE answers in this process (`qwave.dll` loaded and
    /// `QOSCreateHandle` succeeded, tested once at the first bind), so
    /// [`crate::Socket::set_tos`] can mark a *connected* socket's DSCP as a
    /// qWAVE flow to its peer: DSCP 8, 40 and 56 without privilege, any
    /// other only for a member of Administrators or Network Configuration
    /// Operators (learned when it is set: a typed
    /// [`crate::Error::SocketOption`] if refused). When false (no
    /// `qwave.dll`, the service unavailable, Wine), a DSCP other than 0 is
    /// refused with [`crate::OptionError::Unsupported`]. Always false off
    /// Windows, where `set_tos` is a plain `IP_TOS` / `IPV6_TCLASS` and
    /// needs no qWAVE.
    ///
    /// ```
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// if cfg!(unix) {
    ///     assert!(!sock.capabilities().qwave);
    /// }
    /// ```
    pub qwave: bool,
}

impl Capabilities {
    /// True if GSO is in use (`max_gso_segments > 1`).
    ///
    /// ```
    /// let sock = volley::Config::new().gso(false).bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(!sock.capabilities().gso());
    /// ```
    pub fn gso(&self) -> bool {
        self.max_gso_segments > 1
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        let gso = if self.gso() { format!("yes, up to {} segments", self.max_gso_segments) } else { "no".into() };
        let tos_send = if self.tos_cmsg { "per datagram" } else { "socket-level only (control message refused)" };
        let mark = self.mark.map_or_else(|| "none".into(), |m| format!("{m:#x}"));
        let rows: [(&str, &str); 22] = [
            ("backend", if self.backend == Backend::Portable { "portable" } else { "auto" }),
            ("recvmmsg/sendmmsg", yn(self.mmsg)),
            ("GSO (UDP_SEGMENT)", &gso),
            ("GRO (UDP_GRO)", yn(self.gro)),
            ("pktinfo", yn(self.pktinfo)),
            ("ECN/DSCP on receive", yn(self.ecn)),
            ("ECN/DSCP on send", tos_send),
            ("ECN on send", yn(self.ecn_send)),
            ("DSCP per datagram", yn(self.dscp_send)),
            ("source on send", yn(self.src_send)),
            ("TTL/hop limit", yn(self.ttl)),
            ("rx timestamps", yn(self.timestamps)),
            ("SO_TXTIME", yn(self.txtime)),
            ("drop counter", yn(self.drop_counter)),
            ("ICMP error queue", yn(self.recv_errors)),
            ("multicast", yn(self.multicast)),
            ("SO_BROADCAST", yn(self.broadcast)),
            ("IP_FREEBIND", yn(self.freebind)),
            ("IP_TRANSPARENT", yn(self.transparent)),
            ("SO_MARK", &mark),
            ("original dst", yn(self.orig_dst)),
            ("qWAVE socket DSCP", yn(self.qwave)),
        ];
        for (i, (name, value)) in rows.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{name:<20} {value}")?;
        }
        Ok(())
    }
}

/// The live state behind [`Capabilities`]: the fixed probe results plus the
/// two features that can be turned off while the socket runs.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) fixed: Capabilities,
    mmsg: AtomicBool,
    gso_segments: AtomicUsize,
    gso_warned: AtomicBool,
    /// When GSO / mmsg were turned off (ns since the Unix epoch; 0: never).
    pub(crate) gso_off_ns: AtomicU64,
    pub(crate) mmsg_off_ns: AtomicU64,
    pub(crate) tos_cmsg_off_ns: AtomicU64,
    tos_cmsg: AtomicBool,
}

impl Live {
    pub(crate) fn new(fixed: Capabilities) -> Self {
        Self {
            mmsg: AtomicBool::new(fixed.mmsg),
            gso_segments: AtomicUsize::new(fixed.max_gso_segments),
            gso_warned: AtomicBool::new(false),
            gso_off_ns: AtomicU64::new(0),
            mmsg_off_ns: AtomicU64::new(0),
            tos_cmsg_off_ns: AtomicU64::new(0),
            tos_cmsg: AtomicBool::new(fixed.tos_cmsg),
            fixed,
        }
    }

    pub(crate) fn snapshot(&self) -> Capabilities {
        Capabilities {
            mmsg: self.mmsg(),
            max_gso_segments: self.max_gso_segments(),
            tos_cmsg: self.tos_cmsg(),
            dscp_send: self.fixed.dscp_send && self.tos_cmsg(),
            ..self.fixed
        }
    }

    pub(crate) fn tos_cmsg(&self) -> bool {
        self.tos_cmsg.load(Ordering::Relaxed)
    }

    /// The kernel refused a TOS / traffic-class control message with
    /// `errno`: send without them on this socket from now on, warn once.
    pub(crate) fn disable_tos_cmsg(&self, errno: i32) {
        if self.tos_cmsg.swap(false, Ordering::Relaxed) {
            self.tos_cmsg_off_ns.store(crate::stats::now_ns(), Ordering::Relaxed);
            tracing::warn!(
                errno,
                error = %std::io::Error::from_raw_os_error(errno),
                "IP_TOS/IPV6_TCLASS control message refused; per-datagram ECN/DSCP turned off for this socket \
                 (datagrams carry the socket-level TOS), message resent without it"
            );
        }
    }

    pub(crate) fn mmsg(&self) -> bool {
        self.mmsg.load(Ordering::Relaxed)
    }

    pub(crate) fn max_gso_segments(&self) -> usize {
        self.gso_segments.load(Ordering::Relaxed)
    }

    /// GSO failed with `errno`: stop using it on this socket, warn once.
    pub(crate) fn disable_gso(&self, errno: i32) {
        self.gso_segments.store(1, Ordering::Relaxed);
        let _ = self.gso_off_ns.compare_exchange(0, crate::stats::now_ns(), Ordering::Relaxed, Ordering::Relaxed);
        if !self.gso_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                errno,
                error = %std::io::Error::from_raw_os_error(errno),
                "GSO send failed; GSO turned off for this socket, batch resent unsegmented"
            );
        }
    }

    /// `recvmmsg`/`sendmmsg` are blocked: use one datagram per syscall.
    #[cfg_attr(not(has_mmsg), allow(dead_code))]
    pub(crate) fn disable_mmsg(&self, errno: i32) {
        if self.mmsg.swap(false, Ordering::Relaxed) {
            self.mmsg_off_ns.store(crate::stats::now_ns(), Ordering::Relaxed);
            tracing::warn!(
                errno,
                error = %std::io::Error::from_raw_os_error(errno),
                "recvmmsg/sendmmsg unavailable; falling back to recvmsg/sendmsg"
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // The errno a degrade is handed is only logged: POSIX numbers, the
    // same on every platform these tests build for (Windows has no libc).
    const EPERM: i32 = 1;
    const EIO: i32 = 5;
    const EINVAL: i32 = 22;

    /// The three live features on (the tests below only turn them off).
    fn all_on() -> Capabilities {
        let c = plain();
        assert!(c.mmsg && c.max_gso_segments == 64 && c.tos_cmsg && c.dscp_send);
        c
    }

    /// Capabilities as a plain IPv4 Linux socket without offloads reports
    /// them (GSO probed to 64 segments, GRO off): for unit tests that need
    /// a value and no socket (they run under Miri too).
    pub(crate) fn plain() -> Capabilities {
        Capabilities {
            backend: Backend::Auto,
            mmsg: true,
            max_gso_segments: 64,
            gro: false,
            pktinfo: true,
            ecn: true,
            ecn_send: true,
            src_send: true,
            tos_cmsg: true,
            dscp_send: true,
            ttl: true,
            timestamps: false,
            txtime: false,
            drop_counter: true,
            recv_errors: false,
            multicast: true,
            broadcast: false,
            freebind: false,
            transparent: false,
            mark: None,
            orig_dst: true,
            qwave: false,
        }
    }

    /// Each degrade turns its own feature off in what `capabilities()`
    /// reports, stamps when, and leaves the others as they were.
    #[test]
    fn each_degrade_shows_in_the_snapshot_alone() {
        let live = Live::new(all_on());
        let s = live.snapshot();
        assert!(s.mmsg && s.tos_cmsg && s.gso() && s.dscp_send);
        assert_eq!(s.max_gso_segments, 64);
        assert_eq!(live.gso_off_ns.load(Ordering::Relaxed), 0);

        live.disable_gso(EIO);
        let s = live.snapshot();
        assert_eq!((s.max_gso_segments, s.gso(), s.mmsg, s.tos_cmsg), (1, false, true, true));
        assert_ne!(live.gso_off_ns.load(Ordering::Relaxed), 0);

        let live = Live::new(all_on());
        live.disable_tos_cmsg(EINVAL);
        let s = live.snapshot();
        assert_eq!((s.tos_cmsg, s.mmsg, s.max_gso_segments), (false, true, 64));
        assert!(!s.dscp_send, "per-datagram DSCP rides the TOS control message");
        assert!(!live.tos_cmsg());
        assert_ne!(live.tos_cmsg_off_ns.load(Ordering::Relaxed), 0);
        assert_eq!(live.mmsg_off_ns.load(Ordering::Relaxed), 0);

        let live = Live::new(all_on());
        live.disable_mmsg(EPERM);
        let s = live.snapshot();
        assert_eq!((s.mmsg, s.tos_cmsg, s.max_gso_segments), (false, true, 64));
        assert_ne!(live.mmsg_off_ns.load(Ordering::Relaxed), 0);

        // Probed off stays off: the live flags start from the probe.
        let mut off = all_on();
        off.tos_cmsg = false;
        off.mmsg = false;
        let live = Live::new(off);
        assert!(!live.tos_cmsg() && !live.mmsg());
    }

    /// Counts the `tracing` events at WARN level made while `f` runs.
    pub(crate) fn warnings(f: impl FnOnce()) -> usize {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        use tracing_subscriber::layer::{Context, SubscriberExt};

        struct Count(Arc<AtomicUsize>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
            fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
                if *e.metadata().level() == tracing::Level::WARN {
                    self.0.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let n = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(Count(Arc::clone(&n)));
        tracing::subscriber::with_default(subscriber, f);
        n.load(Ordering::Relaxed)
    }

    /// A degrade warns once per socket, however often it is hit: a kernel
    /// refusing GSO on every send must not flood the log.
    #[test]
    fn each_degrade_warns_once() {
        let live = Live::new(all_on());
        assert_eq!(warnings(|| (0..3).for_each(|_| live.disable_gso(EIO))), 1);
        assert_eq!(warnings(|| (0..3).for_each(|_| live.disable_tos_cmsg(EINVAL))), 1);
        assert_eq!(warnings(|| (0..3).for_each(|_| live.disable_mmsg(EPERM))), 1);
        // Already off: nothing more to say.
        assert_eq!(warnings(|| live.disable_gso(EIO)), 0);
    }

    /// The report: one `name value` row per line, no blank line, and the
    /// backend named as configured.
    #[test]
    fn display_is_one_row_per_line_and_names_the_backend() {
        let mut c = all_on();
        c.backend = Backend::Auto;
        let text = c.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 20, "{text}");
        assert!(lines[0].starts_with("backend") && lines[0].ends_with(" auto"), "{text}");
        assert!(lines.iter().all(|l| !l.trim().is_empty()), "{text}");
        assert!(!text.ends_with('\n'));
        assert!(text.contains("GSO (UDP_SEGMENT)    yes, up to 64 segments"), "{text}");
        c.backend = Backend::Portable;
        c.max_gso_segments = 1;
        let text = c.to_string();
        assert!(text.starts_with("backend              portable\n"), "{text}");
        assert!(text.contains("GSO (UDP_SEGMENT)    no"), "{text}");
    }
}
