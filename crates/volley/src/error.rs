//! Typed errors. Every error names what was wrong; none is a panic.
//!
//! [`Error`] converts into [`std::io::Error`] (keeping itself as the inner
//! error) so `?` works in functions returning `io::Result`, and
//! [`Error::kind`] gives the matching [`io::ErrorKind`].

#[cfg(windows)]
use crate::sys::winsock as libc;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Which field of a [`crate::Transmit`] was rejected and why.
///
/// ```
/// use volley::{Error, InvalidTransmit, Socket, Transmit};
/// let sock = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// let t = Transmit::new(sock.local_addr().unwrap(), b"abc").with_segment_size(0);
/// match sock.try_send_batch(&[t]) {
///     Err(Error::InvalidTransmit(InvalidTransmit::SegmentSizeZero)) => {}
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTransmit {
    /// `segment_size` was `Some(0)`.
    SegmentSizeZero,
    /// `segment_size` split `contents` into more datagrams than the socket
    /// can send in one GSO call.
    TooManySegments {
        /// Datagrams the transmit would become.
        segments: usize,
        /// The most the socket allows (see [`crate::Capabilities::max_gso_segments`]).
        max: usize,
    },
    /// A single datagram (the whole `contents`, or one GSO segment) is
    /// larger than UDP over this IP version can carry.
    DatagramTooLarge {
        /// Which field made it too large: `"contents"` (a single datagram)
        /// or `"segment_size"` (each GSO segment).
        field: &'static str,
        /// The datagram's payload size.
        size: usize,
        /// The protocol limit: 65,507 bytes over IPv4, 65,527 over IPv6.
        max: usize,
    },
    /// The GSO train as a whole (`contents`) exceeds what one UDP send can
    /// carry.
    ContentsTooLarge {
        /// `contents.len()`.
        size: usize,
        /// The protocol limit for one send.
        max: usize,
    },
    /// The destination's address family cannot be reached from this socket
    /// (an IPv6 destination on an IPv4 socket, or an IPv4 destination on an
    /// IPv6-only socket).
    AddressFamily {
        /// The offending destination.
        destination: SocketAddr,
    },
    /// `src_ip` is of a family that cannot be used for this destination.
    SourceFamily {
        /// The offending source address.
        src_ip: std::net::IpAddr,
    },
    /// The destination port is 0, which no UDP socket can be reached on.
    PortZero {
        /// The offending destination.
        destination: SocketAddr,
    },
    /// `txtime` was set but the socket was not configured with
    /// [`crate::Config::txtime`].
    TxtimeNotEnabled,
    /// `src_ifindex` is above the largest interface index the kernel's
    /// pktinfo can carry (`i32::MAX`, for IPv4 and IPv6 alike).
    SrcIfindexOutOfRange {
        /// The rejected interface index.
        src_ifindex: u32,
    },
    /// A DSCP other than the socket's on a platform that cannot mark it per
    /// datagram: Windows ignores a program's per-datagram DSCP, and qWAVE
    /// marks a whole flow, the socket's ([`crate::Socket::set_tos`] on a
    /// connected socket). A transmit may name the DSCP the socket already
    /// marks (0 without a flow); ECN (`Transmit::ecn`) is carried per
    /// datagram.
    DscpUnsupported {
        /// The rejected DSCP.
        dscp: crate::Dscp,
    },
    /// `src_ip` or `src_ifindex` on a socket whose stack does not apply a
    /// per-datagram source ([`crate::Capabilities::src_send`] is false).
    SourceUnsupported,
    /// `src_ifindex` (not 0) on a transmit to an IPv4 destination, on a
    /// platform that cannot choose the outgoing interface of an IPv4
    /// datagram: FreeBSD (and other Unixes without `IP_PKTINFO`), whose
    /// `IP_SENDSRCADDR` carries only a source address. Use `src_ip`, or a
    /// socket bound to the interface's address. IPv6 destinations take the
    /// index everywhere.
    SrcIfindexUnsupported {
        /// The interface index that could not be applied.
        src_ifindex: u32,
    },
}

impl fmt::Display for InvalidTransmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SegmentSizeZero => f.write_str("segment_size is 0; use None for a single datagram"),
            Self::TooManySegments { segments, max } => write!(
                f,
                "segment_size splits contents into {segments} datagrams, more than the {max} one GSO send allows"
            ),
            Self::DatagramTooLarge { field, size, max } => write!(
                f,
                "{field} = {size} bytes makes a datagram over the UDP maximum of {max} bytes for this IP version"
            ),
            Self::ContentsTooLarge { size, max } => {
                write!(f, "contents of {size} bytes exceed the {max} bytes one UDP send can carry")
            }
            Self::AddressFamily { destination } => {
                write!(f, "destination {destination} is of an address family this socket cannot send to")
            }
            Self::SourceFamily { src_ip } => {
                write!(f, "src_ip {src_ip} cannot be used as source for this destination")
            }
            Self::PortZero { destination } => write!(f, "destination {destination} has port 0"),
            Self::TxtimeNotEnabled => f.write_str("txtime set on a socket not configured with Config::txtime(true)"),
            Self::SourceUnsupported => f.write_str(
                "src_ip/src_ifindex: this socket's stack does not apply a per-datagram source \
                 (Capabilities::src_send is false)",
            ),
            Self::DscpUnsupported { dscp } => write!(
                f,
                "dscp {dscp}: this platform cannot mark a DSCP per datagram, only the socket's (Windows: a qWAVE \
                 flow, Socket::set_tos on a connected socket); leave Transmit::dscp unset"
            ),
            Self::SrcIfindexOutOfRange { src_ifindex } => {
                write!(f, "src_ifindex {src_ifindex} is out of range: interface indexes go up to {}", i32::MAX)
            }
            Self::SrcIfindexUnsupported { src_ifindex } => write!(
                f,
                "src_ifindex {src_ifindex} cannot be applied to an IPv4 destination on this platform \
                 (no IP_PKTINFO: IP_SENDSRCADDR carries only an address); use src_ip instead"
            ),
        }
    }
}

/// The error type of volley's socket operations.
///
/// ```
/// use volley::{Error, Socket};
/// let sock = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// let err = sock.try_recv(&mut [], &mut []).unwrap_err();
/// assert!(matches!(err, Error::EmptyBatch));
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// // Converts into io::Error for `?` in io code:
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A [`crate::Transmit`] was rejected before any syscall; nothing of it
    /// was sent.
    InvalidTransmit(InvalidTransmit),
    /// A receive was given no buffers or no metadata entries to fill (the
    /// kernel would have nowhere to put a datagram). An empty *send* batch is
    /// not an error: it sends nothing.
    EmptyBatch,
    /// A DSCP value outside `0..=63`.
    InvalidDscp {
        /// The rejected value.
        value: u8,
    },
    /// A datagram was larger than the path allows (`EMSGSIZE`), e.g. with
    /// path-MTU discovery in `Do`/`Probe` mode.
    MessageTooLong {
        /// The payload size of the datagram that failed.
        size: usize,
        /// The path MTU the kernel knows for the destination, if any.
        mtu: Option<u32>,
    },
    /// The kernel had no buffer space (`ENOBUFS`): transient back-pressure
    /// from a full device queue, distinct from `WouldBlock` (a full socket
    /// buffer). The transmit was not sent; retry later or drop it.
    NoBufferSpace,
    /// The socket uses GRO, and the [`crate::RecvBatch`]'s slots are
    /// smaller than a coalesced train can be: the kernel would discard the
    /// part of each train that does not fit. Use slots of `needed` bytes
    /// ([`crate::RecvBatch::new`]), or a socket with `Config::gro(false)`.
    BatchTooSmallForGro {
        /// The batch's slot size.
        slot_len: usize,
        /// The slot size GRO needs.
        needed: usize,
    },
    /// Binding failed; says why and where.
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// What went wrong.
        reason: BindError,
        /// The OS error.
        source: io::Error,
    },
    /// A multicast membership or option was refused.
    Multicast {
        /// The group concerned.
        group: std::net::IpAddr,
        /// Why.
        reason: crate::MulticastError,
        /// The OS error, when the kernel refused.
        source: Option<io::Error>,
    },
    /// A socket handed to [`crate::Config::adopt`] cannot be used as asked.
    Adopt {
        /// What does not fit.
        reason: AdoptError,
        /// The OS error, when a call on the socket failed.
        source: Option<io::Error>,
    },
    /// A socket option the [`crate::Config`] asks for was refused, at bind
    /// or when adopting a socket ([`crate::Config::adopt`]), or, on
    /// Windows, a socket-level DSCP by [`crate::Socket::set_tos`]
    /// ([`SocketOption::Dscp`]): the process lacks the privilege it needs,
    /// the platform lacks the option, or the socket is not connected.
    SocketOption {
        /// The option.
        option: SocketOption,
        /// Why it was refused.
        reason: OptionError,
        /// The OS error (kind `Unsupported` when the platform lacks it).
        source: io::Error,
    },
    /// A send to an IPv4 address was refused with `EACCES` while the socket
    /// does not have `SO_BROADCAST`: how the kernel refuses a datagram to
    /// `255.255.255.255` or to a subnet's directed broadcast address. Turn
    /// broadcast on with [`crate::Config::broadcast`]. (A `prohibit` route
    /// refuses with the same errno; with broadcast on, such an `EACCES` is
    /// reported as [`Error::Io`].) Nothing was sent.
    BroadcastNotEnabled {
        /// The destination of the refused datagram.
        destination: SocketAddr,
    },
    /// Any other I/O error from the OS, including `WouldBlock`.
    Io(io::Error),
}

/// A socket option that [`crate::Config`] sets on request and that can be
/// refused ([`Error::SocketOption`]).
///
/// ```
/// assert_eq!(volley::SocketOption::Mark.to_string(), "SO_MARK");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketOption {
    /// `SO_BROADCAST` ([`crate::Config::broadcast`]).
    Broadcast,
    /// `IP_FREEBIND` / `IPV6_FREEBIND` ([`crate::Config::freebind`]).
    Freebind,
    /// `IP_TRANSPARENT` / `IPV6_TRANSPARENT` ([`crate::Config::transparent`]).
    Transparent,
    /// `SO_MARK` ([`crate::Config::mark`]).
    Mark,
    /// `IP_RECVORIGDSTADDR` / `IPV6_RECVORIGDSTADDR` ([`crate::Config::orig_dst`]).
    OrigDst,
    /// The socket-level DSCP on Windows ([`crate::Config::tos`],
    /// [`crate::Socket::set_tos`]): a qWAVE flow to the connected peer, as
    /// Windows ignores a program's `IP_TOS`. Elsewhere a refused `IP_TOS` is
    /// [`Error::Io`].
    Dscp,
}

impl fmt::Display for SocketOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Broadcast => "SO_BROADCAST",
            Self::Freebind => "IP_FREEBIND",
            Self::Transparent => "IP_TRANSPARENT",
            Self::Mark => "SO_MARK",
            Self::OrigDst => "IP_RECVORIGDSTADDR",
            Self::Dscp => "DSCP (qWAVE flow)",
        })
    }
}

/// Why a socket option was refused ([`Error::SocketOption`]).
///
/// ```
/// use volley::{Config, Error, OptionError, SocketOption};
/// // SO_MARK needs CAP_NET_ADMIN (or CAP_NET_RAW) on Linux and does not
/// // exist on other platforms: either way the refusal is typed.
/// match Config::new().mark(7).bind("127.0.0.1:0".parse().unwrap()) {
///     Ok(sock) => assert_eq!(sock.capabilities().mark, Some(7)), // privileged Linux
///     Err(Error::SocketOption { option: SocketOption::Mark, reason, .. }) => {
///         assert!(matches!(reason, OptionError::PermissionDenied | OptionError::Unsupported));
///     }
///     Err(other) => panic!("{other}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionError {
    /// `EPERM` / `EACCES`: the process lacks the capability the option
    /// needs (`CAP_NET_ADMIN`, or `CAP_NET_RAW`, for `IP_TRANSPARENT` and
    /// `SO_MARK`). On Windows, qWAVE refused a DSCP other than 8, 40 and 56
    /// (`ERROR_ACCESS_DENIED`: it needs Administrators or Network
    /// Configuration Operators).
    PermissionDenied,
    /// The platform has no such option (only Linux and Android have
    /// `IP_FREEBIND`, `IP_TRANSPARENT`, `SO_MARK` and the original
    /// destination). On Windows: qWAVE is unavailable for a socket-level
    /// DSCP (no `qwave.dll`, or `QOSCreateHandle` failed: see the source
    /// and [`crate::Capabilities::qwave`]), or the TOS carried ECN bits,
    /// which Windows takes per datagram only.
    Unsupported,
    /// The option applies to a connected socket only, and the socket is
    /// not connected: a socket-level DSCP on Windows is a qWAVE flow to
    /// the socket's peer (connect, then [`crate::Socket::set_tos`]).
    NotConnected,
    /// The kernel refused it for another reason (see the source).
    Other,
}

impl OptionError {
    /// Classifies the error of a `setsockopt`.
    pub(crate) fn of(e: &io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Self::PermissionDenied,
            Some(libc::ENOPROTOOPT) => Self::Unsupported,
            _ if e.kind() == io::ErrorKind::Unsupported => Self::Unsupported,
            _ => Self::Other,
        }
    }
}

/// Why a socket could not be adopted ([`crate::Config::adopt`]).
///
/// ```
/// use volley::{AdoptError, Config, Error};
/// let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// // SO_REUSEPORT only matters at bind: too late to ask for it now.
/// match Config::new().reuse_port(true).adopt(plain) {
///     Err(Error::Adopt { reason: AdoptError::ReusePort, .. }) => {}
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdoptError {
    /// Not a UDP socket bound to an IPv4 or IPv6 address (a TCP or Unix
    /// socket, a closed descriptor, ...).
    NotUdp,
    /// The configuration asks for `SO_REUSEADDR`, which the socket lacks
    /// and which only takes effect at bind.
    ReuseAddr,
    /// The configuration asks for `SO_REUSEPORT`, which the socket lacks
    /// and which only takes effect at bind.
    ReusePort,
    /// The configuration's `ipv6_only` differs from the socket's, which
    /// only takes effect at bind.
    Ipv6Only,
    /// The configuration's `bind_device` differs from the socket's.
    BindDevice,
    /// Setting an option or probing the socket failed (see the source).
    Other,
}

impl AdoptError {
    fn describe(self) -> &'static str {
        match self {
            Self::NotUdp => "not a bound UDP socket",
            Self::ReuseAddr => "Config asks for reuse_addr, the socket was bound without SO_REUSEADDR",
            Self::ReusePort => "Config asks for reuse_port, the socket was bound without SO_REUSEPORT",
            Self::Ipv6Only => "Config's ipv6_only differs from the socket's IPV6_V6ONLY, fixed at bind",
            Self::BindDevice => "Config's bind_device differs from the socket's SO_BINDTODEVICE",
            Self::Other => "setting up the socket failed",
        }
    }
}

/// Why a bind failed.
///
/// ```
/// use volley::{BindError, Error, Socket};
/// let a = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// match Socket::bind(a.local_addr().unwrap()) {
///     Err(Error::Bind { reason: BindError::AddressInUse, .. }) => {}
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindError {
    /// `EADDRINUSE`: another socket owns this address and port.
    AddressInUse,
    /// `EADDRNOTAVAIL`: no local interface has this address.
    AddressNotAvailable,
    /// `EACCES`: the port is privileged.
    PermissionDenied,
    /// Any other failure while creating, configuring or binding the socket.
    Other,
}

impl Error {
    /// The closest [`io::ErrorKind`].
    ///
    /// ```
    /// let e = volley::Error::NoBufferSpace;
    /// assert_eq!(e.kind(), std::io::ErrorKind::OutOfMemory);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Self::InvalidTransmit(_) | Self::EmptyBatch | Self::InvalidDscp { .. } => io::ErrorKind::InvalidInput,
            Self::MessageTooLong { .. } => io::ErrorKind::InvalidInput,
            Self::NoBufferSpace => io::ErrorKind::OutOfMemory,
            Self::BatchTooSmallForGro { .. } => io::ErrorKind::InvalidInput,
            Self::Multicast { source: Some(e), .. } => e.kind(),
            Self::Multicast { .. } => io::ErrorKind::InvalidInput,
            Self::Bind { source, .. } => source.kind(),
            Self::Adopt { source: Some(e), .. } => e.kind(),
            Self::Adopt { .. } => io::ErrorKind::InvalidInput,
            Self::SocketOption { reason: OptionError::PermissionDenied, .. } => io::ErrorKind::PermissionDenied,
            Self::SocketOption { reason: OptionError::Unsupported, .. } => io::ErrorKind::Unsupported,
            Self::SocketOption { reason: OptionError::NotConnected, .. } => io::ErrorKind::NotConnected,
            Self::SocketOption { source, .. } => source.kind(),
            Self::BroadcastNotEnabled { .. } => io::ErrorKind::PermissionDenied,
            Self::Io(e) => e.kind(),
        }
    }

    /// True for `WouldBlock`: wait for readiness and try again.
    ///
    /// ```
    /// let e = volley::Error::from(std::io::Error::from(std::io::ErrorKind::WouldBlock));
    /// assert!(e.is_would_block());
    /// ```
    pub fn is_would_block(&self) -> bool {
        matches!(self, Self::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// True if this is an error the kernel derives from an ICMP or ICMPv6
    /// message about an *earlier* datagram (see [`is_icmp_error`]): it says
    /// nothing about the socket itself, which keeps working.
    ///
    /// ```
    /// let refused = volley::Error::from(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
    /// assert!(refused.is_icmp());
    /// let bad_fd = volley::Error::from(std::io::Error::from_raw_os_error(libc::EBADF));
    /// assert!(!bad_fd.is_icmp());
    /// assert!(!volley::Error::EmptyBatch.is_icmp());
    /// ```
    pub fn is_icmp(&self) -> bool {
        match self {
            Self::Io(e) => e.raw_os_error().is_some_and(icmp_errno),
            Self::MessageTooLong { .. } => true,
            _ => false,
        }
    }

    /// The raw OS error code, if this came from the OS.
    ///
    /// ```
    /// assert_eq!(volley::Error::EmptyBatch.raw_os_error(), None);
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Io(e)
            | Self::Bind { source: e, .. }
            | Self::Multicast { source: Some(e), .. }
            | Self::Adopt { source: Some(e), .. }
            | Self::SocketOption { source: e, .. } => e.raw_os_error(),
            Self::MessageTooLong { .. } => Some(libc::EMSGSIZE),
            Self::BroadcastNotEnabled { .. } => Some(libc::EACCES),
            Self::NoBufferSpace => Some(libc::ENOBUFS),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTransmit(e) => write!(f, "invalid transmit: {e}"),
            Self::EmptyBatch => f.write_str("empty batch: no buffers to receive into"),
            Self::InvalidDscp { value } => write!(f, "invalid DSCP {value}: must be 0..=63"),
            Self::MessageTooLong { size, mtu: Some(mtu) } => {
                write!(f, "datagram of {size} bytes is too long for the path (path MTU {mtu})")
            }
            Self::MessageTooLong { size, mtu: None } => {
                write!(f, "datagram of {size} bytes is too long for the path")
            }
            Self::NoBufferSpace => {
                f.write_str("no buffer space in the kernel (ENOBUFS): device queue full, retry later")
            }
            Self::BatchTooSmallForGro { slot_len, needed } => write!(
                f,
                "receive slots of {slot_len} bytes are too small for GRO trains (need {needed}): \
                 use RecvBatch::new() or a socket with gro(false)"
            ),
            Self::Bind { addr, reason, source } => {
                let why = match reason {
                    BindError::AddressInUse => "another socket owns this address and port",
                    BindError::AddressNotAvailable => "no local interface has this address",
                    BindError::PermissionDenied => "permission denied (privileged port?)",
                    BindError::Other => "socket set-up failed",
                };
                write!(f, "cannot bind {addr}: {why} ({source})")
            }
            Self::Multicast { group, reason, source: Some(e) } => {
                write!(f, "multicast group {group}: {} ({e})", reason.describe())
            }
            Self::Multicast { group, reason, source: None } => {
                write!(f, "multicast group {group}: {}", reason.describe())
            }
            Self::Adopt { reason, source: Some(e) } => {
                write!(f, "cannot adopt the socket: {} ({e})", reason.describe())
            }
            Self::Adopt { reason, source: None } => write!(f, "cannot adopt the socket: {}", reason.describe()),
            Self::SocketOption { option, reason, source } => {
                let why = match (reason, option) {
                    (OptionError::PermissionDenied, SocketOption::Transparent | SocketOption::Mark) => {
                        "permission denied: needs CAP_NET_ADMIN (or CAP_NET_RAW)"
                    }
                    (OptionError::PermissionDenied, SocketOption::Dscp) => {
                        "permission denied: needs Administrators or Network Configuration Operators"
                    }
                    (OptionError::PermissionDenied, _) => "permission denied",
                    (OptionError::Unsupported, SocketOption::Dscp) => "not available on this host",
                    (OptionError::Unsupported, _) => "not supported on this platform",
                    (OptionError::NotConnected, _) => "the socket is not connected",
                    (OptionError::Other, _) => "refused by the kernel",
                };
                write!(f, "socket option {option}: {why} ({source})")
            }
            Self::BroadcastNotEnabled { destination } => write!(
                f,
                "sending to {destination} refused (EACCES): the socket does not have SO_BROADCAST, which the \
                 kernel requires to send to a broadcast address; turn broadcast on with Config::broadcast(true) \
                 (if {destination} is not a broadcast address, a prohibit route refused it)"
            ),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The OS error is part of the `Display` text of `Io`, `Bind` and
/// `Multicast`, so `source()` does not repeat it (error-chain printers such
/// as anyhow's would print it twice); match the variant to get the
/// `io::Error` itself.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => e.source(),
            _ => None,
        }
    }
}

/// Whether `errno` is one the kernel derives from an ICMP or ICMPv6 error
/// (Linux: `icmp_err_convert` and `icmpv6_err_convert`):
///
/// | errno | ICMP (type/code) | ICMPv6 (type/code) |
/// |---|---|---|
/// | `ENETUNREACH` | 3/0 net unreachable, 3/6, 3/9, 3/11 | 1/0 no route |
/// | `EHOSTUNREACH` | 3/1 host unreachable, 3/10, 3/12, 3/13-15, 11 time exceeded | 1/2, 1/3 address unreachable, 3 time exceeded |
/// | `ENOPROTOOPT` | 3/2 protocol unreachable | |
/// | `ECONNREFUSED` | 3/3 port unreachable | 1/4 port unreachable |
/// | `EMSGSIZE` | 3/4 fragmentation needed | 2 packet too big |
/// | `EOPNOTSUPP` | 3/5 source route failed | |
/// | `EHOSTDOWN` | 3/7 host unknown | |
/// | `ENONET` (Linux) | 3/8 host isolated | |
/// | `EACCES` | | 1/1 administratively prohibited, 1/5, 1/6 |
/// | `EPROTO` | 12 parameter problem | 4 parameter problem |
///
/// plus `ECONNRESET` (how Windows reports a port unreachable).
pub(crate) fn icmp_errno(errno: i32) -> bool {
    #[cfg(linux_like)]
    if errno == libc::ENONET {
        return true;
    }
    matches!(
        errno,
        libc::ENETUNREACH
            | libc::EHOSTUNREACH
            | libc::ENOPROTOOPT
            | libc::ECONNREFUSED
            | libc::EMSGSIZE
            | libc::EOPNOTSUPP
            | libc::EHOSTDOWN
            | libc::EACCES
            | libc::EPROTO
            | libc::ECONNRESET
    )
}

/// Whether an error from a receive is one the kernel derived from an ICMP
/// or ICMPv6 message about an earlier datagram (port or host unreachable,
/// packet too big, time exceeded, parameter problem, administratively
/// prohibited, ...), rather than a fault of the socket or the call.
///
/// It is the one test volley's adapters use to keep such errors from ending
/// a receive loop, and the one to use in yours. On a receive these errors
/// never concern the datagrams received: skip them. With
/// [`crate::Config::recv_errors`] the core never returns them from a
/// receive at all: they go to [`crate::Socket::try_recv_error`].
///
/// On a send, [`crate::Socket::try_send_batch`] has already retried once
/// past such an error left pending by an earlier datagram; one that remains
/// concerns the transmit that failed (no route, too big for the path).
///
/// Works on a [`crate::Error`] converted into an `io::Error` too.
///
/// ```
/// use std::io;
/// assert!(volley::is_icmp_error(&io::Error::from_raw_os_error(libc::EHOSTUNREACH)));
/// assert!(volley::is_icmp_error(&io::Error::from(volley::Error::MessageTooLong { size: 1400, mtu: Some(1280) })));
/// assert!(!volley::is_icmp_error(&io::Error::from_raw_os_error(libc::EBADF)));
/// assert!(!volley::is_icmp_error(&io::Error::from(io::ErrorKind::WouldBlock)));
/// ```
pub fn is_icmp_error(e: &io::Error) -> bool {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(v) => v.is_icmp(),
        None => e.raw_os_error().is_some_and(icmp_errno),
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOBUFS) => Self::NoBufferSpace,
            _ => Self::Io(e),
        }
    }
}

impl From<InvalidTransmit> for Error {
    fn from(e: InvalidTransmit) -> Self {
        Self::InvalidTransmit(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            other => Self::new(other.kind(), other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_errors_are_classified_by_errno_then_kind() {
        let of = |e: io::Error| OptionError::of(&e);
        assert_eq!(of(io::Error::from_raw_os_error(libc::EPERM)), OptionError::PermissionDenied);
        assert_eq!(of(io::Error::from_raw_os_error(libc::EACCES)), OptionError::PermissionDenied);
        assert_eq!(of(io::Error::from_raw_os_error(libc::ENOPROTOOPT)), OptionError::Unsupported);
        // No OS code, but the kind says so (what qWAVE's refusals carry).
        assert_eq!(of(io::Error::from(io::ErrorKind::Unsupported)), OptionError::Unsupported);
        assert_eq!(of(io::Error::from_raw_os_error(libc::EINVAL)), OptionError::Other);
        assert_eq!(of(io::Error::from(io::ErrorKind::InvalidInput)), OptionError::Other);
    }

    #[test]
    fn typed_variants_keep_their_os_code() {
        let too_long = Error::MessageTooLong { size: 1400, mtu: Some(1280) };
        assert_eq!(too_long.raw_os_error(), Some(libc::EMSGSIZE));
        assert_eq!(Error::NoBufferSpace.raw_os_error(), Some(libc::ENOBUFS));
        assert_eq!(Error::EmptyBatch.raw_os_error(), None);
        // ENOBUFS from the kernel becomes the typed variant, and back.
        let from_os = Error::from(io::Error::from_raw_os_error(libc::ENOBUFS));
        assert!(matches!(from_os, Error::NoBufferSpace), "{from_os:?}");
        assert_eq!(io::Error::from(from_os).kind(), io::ErrorKind::OutOfMemory);
        let other = Error::from(io::Error::from_raw_os_error(libc::EINVAL));
        assert!(matches!(&other, Error::Io(e) if e.raw_os_error() == Some(libc::EINVAL)), "{other:?}");
    }

    /// An error with a cause, wrapped in an `io::Error` as an adapter might.
    #[derive(Debug)]
    struct Wrapped(io::Error);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn io_keeps_the_wrapped_errors_cause_and_typed_ones_have_none() {
        use std::error::Error as _;
        let cause = io::Error::from_raw_os_error(libc::EINVAL);
        let e = Error::Io(io::Error::other(Wrapped(io::Error::from_raw_os_error(libc::EINVAL))));
        assert_eq!(e.to_string(), "wrapped");
        let source = e.source().expect("the wrapped error's cause");
        assert_eq!(source.to_string(), cause.to_string());
        assert!(Error::EmptyBatch.source().is_none());
        assert!(Error::Io(cause).source().is_none(), "an OS error has no cause");
    }

    #[test]
    fn adopt_errors_name_what_differs() {
        for (reason, says) in [
            (AdoptError::NotUdp, "not a bound UDP socket"),
            (AdoptError::ReuseAddr, "SO_REUSEADDR"),
            (AdoptError::ReusePort, "SO_REUSEPORT"),
            (AdoptError::Ipv6Only, "IPV6_V6ONLY"),
            (AdoptError::BindDevice, "SO_BINDTODEVICE"),
            (AdoptError::Other, "setting up the socket failed"),
        ] {
            let text = Error::Adopt { reason, source: None }.to_string();
            assert!(text.starts_with("cannot adopt the socket: ") && text.contains(says), "{reason:?}: {text}");
        }
    }
}
