//! Per-datagram metadata: what a receive reports ([`RecvMeta`]) and what a
//! send asks for ([`Transmit`]). Plain data, no `unsafe`, no OS types.

#[cfg(windows)]
use crate::sys::winsock as libc;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The largest UDP payload over IPv4: 65,535 - 20 (IP header) - 8 (UDP header).
///
/// ```
/// assert_eq!(volley::MAX_PAYLOAD_V4, 65_507);
/// ```
pub const MAX_PAYLOAD_V4: usize = 65_507;

/// The largest UDP payload over IPv6 (without jumbograms): 65,535 - 8.
///
/// ```
/// assert_eq!(volley::MAX_PAYLOAD_V6, 65_527);
/// ```
pub const MAX_PAYLOAD_V6: usize = 65_527;

/// The address policy in one place: an IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`) is the IPv4 address it maps; any other is itself
/// (flow info and scope id kept).
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// The two-bit Explicit Congestion Notification field of the IP header
/// (RFC 3168): the low two bits of the IPv4 TOS byte / IPv6 traffic class.
///
/// ```
/// use volley::Ecn;
/// assert_eq!(Ecn::from_bits(0b11), Ecn::Ce);
/// assert_eq!(Ecn::Ect0.bits(), 0b10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ecn {
    /// Not ECN-capable transport (`0b00`).
    #[default]
    NotEct,
    /// ECN-capable transport, codepoint 1 (`0b01`).
    Ect1,
    /// ECN-capable transport, codepoint 0 (`0b10`).
    Ect0,
    /// Congestion experienced (`0b11`), set by a router.
    Ce,
}

impl Ecn {
    /// The codepoint from the low two bits of `bits` (higher bits are ignored).
    ///
    /// ```
    /// assert_eq!(volley::Ecn::from_bits(0xb9), volley::Ecn::Ect1);
    /// ```
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => Self::NotEct,
            0b01 => Self::Ect1,
            0b10 => Self::Ect0,
            _ => Self::Ce,
        }
    }

    /// The two-bit value of this codepoint.
    ///
    /// ```
    /// assert_eq!(volley::Ecn::Ce.bits(), 3);
    /// ```
    pub const fn bits(self) -> u8 {
        match self {
            Self::NotEct => 0b00,
            Self::Ect1 => 0b01,
            Self::Ect0 => 0b10,
            Self::Ce => 0b11,
        }
    }
}

impl fmt::Display for Ecn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::NotEct => "not-ect",
            Self::Ect1 => "ect1",
            Self::Ect0 => "ect0",
            Self::Ce => "ce",
        })
    }
}

/// A Differentiated Services codepoint (RFC 2474): the upper six bits of the
/// IPv4 TOS byte / IPv6 traffic class, so a value in `0..=63`.
///
/// ```
/// use volley::Dscp;
/// assert_eq!(Dscp::EF.value(), 46);
/// assert_eq!(Dscp::new(46).unwrap(), Dscp::EF);
/// assert!(Dscp::new(64).is_err());
/// // Combined with ECN into the TOS byte:
/// assert_eq!(Dscp::EF.tos(volley::Ecn::Ect0), 0xba);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Dscp(u8);

impl Dscp {
    /// Default forwarding / best effort (0).
    pub const DEFAULT: Self = Self(0);
    /// Class selector 1, "lower effort" (8).
    pub const CS1: Self = Self(8);
    /// Assured forwarding class 11 (10).
    pub const AF11: Self = Self(10);
    /// Assured forwarding class 21 (18).
    pub const AF21: Self = Self(18);
    /// Assured forwarding class 31 (26).
    pub const AF31: Self = Self(26);
    /// Assured forwarding class 41 (34), e.g. interactive video.
    pub const AF41: Self = Self(34);
    /// Class selector 5 (40), e.g. signalling.
    pub const CS5: Self = Self(40);
    /// Expedited forwarding (46), e.g. voice.
    pub const EF: Self = Self(46);
    /// Class selector 6 (48), network control.
    pub const CS6: Self = Self(48);

    /// A codepoint from its six-bit value.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDscp`] if `value > 63`.
    ///
    /// ```
    /// assert_eq!(volley::Dscp::new(34).unwrap(), volley::Dscp::AF41);
    /// ```
    pub fn new(value: u8) -> Result<Self, crate::Error> {
        if value > 63 {
            return Err(crate::Error::InvalidDscp { value });
        }
        Ok(Self(value))
    }

    /// The codepoint in the upper six bits of a TOS / traffic-class byte.
    ///
    /// ```
    /// assert_eq!(volley::Dscp::from_tos(0xb8), volley::Dscp::EF);
    /// ```
    pub const fn from_tos(tos: u8) -> Self {
        Self(tos >> 2)
    }

    /// The six-bit value.
    ///
    /// ```
    /// assert_eq!(volley::Dscp::CS1.value(), 8);
    /// ```
    pub const fn value(self) -> u8 {
        self.0
    }

    /// The TOS / traffic-class byte carrying this codepoint and `ecn`.
    ///
    /// ```
    /// use volley::{Dscp, Ecn};
    /// assert_eq!(Dscp::AF41.tos(Ecn::Ce), (34 << 2) | 3);
    /// ```
    pub const fn tos(self, ecn: Ecn) -> u8 {
        (self.0 << 2) | ecn.bits()
    }
}

/// The name of every codepoint the RFCs name, lower case: `default`
/// (RFC 2474), `cs1`..`cs7` (class selectors, RFC 2474), `af11`..`af43`
/// (RFC 2597), `ef` (RFC 3246), `va` (voice-admit, RFC 5865), `le` (lower
/// effort, RFC 8622); any other value as its number. The one name table:
/// the `volley` command prints and parses these.
impl fmt::Display for Dscp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CS: [&str; 8] = ["default", "cs1", "cs2", "cs3", "cs4", "cs5", "cs6", "cs7"];
        const AF: [[&str; 3]; 4] =
            [["af11", "af12", "af13"], ["af21", "af22", "af23"], ["af31", "af32", "af33"], ["af41", "af42", "af43"]];
        let (class, low) = (usize::from(self.0 >> 3), self.0 & 7);
        let name = match self.0 {
            1 => "le",
            44 => "va",
            46 => "ef",
            _ if low == 0 => CS[class],
            _ if (1..=4).contains(&class) && matches!(low, 2 | 4 | 6) => AF[class - 1][usize::from(low / 2) - 1],
            _ => return f.pad(&self.0.to_string()),
        };
        f.pad(name)
    }
}

/// What the kernel told us about one received datagram.
///
/// One `RecvMeta` describes one datagram after GRO splitting: a coalesced
/// receive of `n` segments yields `n` records that share `src`, `dst_ip`,
/// `ifindex`, `ecn`, `dscp`, `ttl`, `timestamp`, `drops` and
/// `orig_dst_port`.
///
/// Fields that depend on a kernel feature are `Option`s and are `None` when
/// the feature is unavailable (see [`crate::Capabilities`]).
///
/// ```
/// use volley::{RecvBatch, Socket};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rx = Socket::bind("127.0.0.1:0".parse()?)?;
/// let tx = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// tx.send_to(b"hi", rx.local_addr()?)?;
/// let mut batch = RecvBatch::new();
/// rx.recv_batch_blocking(&mut batch, std::time::Duration::from_secs(5))?;
/// let (meta, payload) = batch.iter().next().unwrap();
/// assert_eq!(payload, b"hi");
/// assert_eq!(meta.src, tx.local_addr()?);
/// assert_eq!(meta.len, 2);
/// assert!(!meta.truncated);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecvMeta {
    /// The sender's address. IPv4-mapped IPv6 addresses are reported as
    /// plain IPv4 (see the crate docs' address policy).
    pub src: SocketAddr,
    /// The local address the datagram was sent to (`IP_PKTINFO` /
    /// `IPV6_PKTINFO`); `None` if the kernel did not report it.
    pub dst_ip: Option<IpAddr>,
    /// The index of the interface the datagram arrived on (from pktinfo).
    pub ifindex: Option<u32>,
    /// The ECN codepoint of the IP header (`NotEct` if not reported).
    pub ecn: Ecn,
    /// The DSCP of the IP header, if the TOS / traffic class was reported.
    pub dscp: Option<Dscp>,
    /// The IPv4 TTL / IPv6 hop limit the datagram arrived with.
    pub ttl: Option<u8>,
    /// Payload bytes of this datagram present in the buffer.
    pub len: usize,
    /// The GRO stride: the size of every segment but possibly the last of
    /// the receive this datagram came from. Equals `len` when the receive was
    /// not coalesced.
    pub segment_size: usize,
    /// The kernel had more bytes than the buffer could hold (`MSG_TRUNC`):
    /// this datagram's payload is cut short. Never silent.
    pub truncated: bool,
    /// The kernel had more control messages than fit (`MSG_CTRUNC`): some
    /// of the metadata fields above may be missing.
    pub control_truncated: bool,
    /// Kernel receive timestamp (`SO_TIMESTAMPNS`, `CLOCK_REALTIME` since the
    /// Unix epoch), when enabled in [`crate::Config::timestamps`].
    pub timestamp: Option<Duration>,
    /// The socket's cumulative count of packets the kernel dropped because
    /// the receive buffer was full (`SO_RXQ_OVFL`), as of this receive.
    /// Without GRO each drop is one datagram. With GRO the kernel counts a
    /// dropped coalesced train once, however many datagrams it held, so the
    /// datagrams lost lie between `drops` and `drops` x the train length.
    pub drops: Option<u32>,
    /// The destination port the datagram was sent to
    /// (`IP_ORIGDSTADDR` / `IPV6_ORIGDSTADDR`), when
    /// [`crate::Config::orig_dst`] is on (Linux, Android). Behind a TPROXY
    /// rule it is the port the sender addressed, not the socket's. Read it
    /// with the address as [`RecvMeta::orig_dst`]; only the port is stored,
    /// since the kernel's original destination address is the IP header's
    /// destination, which is already [`RecvMeta::dst_ip`] (this keeps
    /// `RecvMeta` 32 bytes smaller than an `Option<SocketAddr>` would).
    pub orig_dst_port: Option<u16>,
}

/// An empty record (source `0.0.0.0:0`, length 0), to fill the `meta`
/// array of [`crate::Socket::try_recv`].
///
/// ```
/// let meta = [volley::RecvMeta::default(); 32];
/// assert_eq!(meta[0].len, 0);
/// ```
impl Default for RecvMeta {
    fn default() -> Self {
        Self::new(SocketAddr::from(([0, 0, 0, 0], 0)), 0)
    }
}

impl RecvMeta {
    /// The datagrams of the message this record describes, received into
    /// `buf` ([`crate::Socket::try_recv`]): `buf[..len]` cut every
    /// `segment_size` bytes (a GRO train), or whole. A zero-length datagram
    /// is one empty datagram.
    ///
    /// ```
    /// let mut meta = volley::RecvMeta::default();
    /// meta.len = 2500;
    /// meta.segment_size = 1200;
    /// let buf = [0u8; 4096];
    /// let sizes: Vec<usize> = meta.segments(&buf).map(|d| d.len()).collect();
    /// assert_eq!(sizes, [1200, 1200, 100]);
    /// ```
    #[inline]
    pub fn segments<'a>(&self, buf: &'a [u8]) -> Segments<'a> {
        let data = &buf[..self.len.min(buf.len())];
        let stride = if self.segment_size == 0 { data.len().max(1) } else { self.segment_size };
        // `chunks` yields nothing for an empty message: it is one empty
        // datagram, handed out once at the end.
        Segments { chunks: data.chunks(stride), empty: data.is_empty().then_some(data) }
    }

    /// The original destination of the datagram, address and port: where
    /// its sender sent it. For a transparent proxy (a TPROXY rule diverts
    /// datagrams to a socket with [`crate::Config::transparent`]) it is the
    /// remote address the client wanted, to forward to and to answer from.
    /// `None` unless [`crate::Config::orig_dst`] is on and the kernel
    /// reported it (Linux, Android). An IPv6 link-local address carries the
    /// receiving interface as scope, as the kernel reports it.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// let mut meta = volley::RecvMeta::default();
    /// assert_eq!(meta.orig_dst(), None);
    /// meta.dst_ip = Some("10.0.0.7".parse().unwrap());
    /// meta.orig_dst_port = Some(53);
    /// assert_eq!(meta.orig_dst(), Some("10.0.0.7:53".parse::<SocketAddr>().unwrap()));
    /// ```
    pub fn orig_dst(&self) -> Option<SocketAddr> {
        let port = self.orig_dst_port?;
        Some(match self.dst_ip? {
            IpAddr::V6(ip) if ip.is_unicast_link_local() => {
                std::net::SocketAddrV6::new(ip, port, 0, self.ifindex.unwrap_or(0)).into()
            }
            ip => SocketAddr::new(ip, port),
        })
    }

    /// A record with only the source address and length known.
    pub(crate) fn new(src: SocketAddr, len: usize) -> Self {
        Self {
            src,
            dst_ip: None,
            ifindex: None,
            ecn: Ecn::NotEct,
            dscp: None,
            ttl: None,
            len,
            segment_size: len,
            truncated: false,
            control_truncated: false,
            timestamp: None,
            drops: None,
            orig_dst_port: None,
        }
    }
}

/// The datagrams of one received message; see [`RecvMeta::segments`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    chunks: std::slice::Chunks<'a, u8>,
    empty: Option<&'a [u8]>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        self.chunks.next().or_else(|| self.empty.take())
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.chunks.len() + usize::from(self.empty.is_some());
        (n, Some(n))
    }
}

impl ExactSizeIterator for Segments<'_> {}

impl std::iter::FusedIterator for Segments<'_> {}

/// One outgoing message: a datagram, or with `segment_size` a train of
/// equal-sized datagrams (the last may be shorter) sent with one GSO call.
///
/// Build it with [`Transmit::new`] and the `with_*` setters:
///
/// ```
/// use volley::{Dscp, Ecn, Transmit};
/// let payload = vec![0u8; 2500];
/// let t = Transmit::new("127.0.0.1:4433".parse().unwrap(), &payload)
///     .with_segment_size(1200) // three datagrams: 1200, 1200, 100
///     .with_ecn(Ecn::Ect0)
///     .with_dscp(Dscp::EF)
///     .with_src_ip("127.0.0.2".parse().unwrap());
/// assert_eq!(t.segments(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit<'a> {
    /// Where to send. On a dual-stack IPv6 socket a plain IPv4 address is
    /// mapped (`::ffff:a.b.c.d`) for you.
    pub destination: SocketAddr,
    /// The payload: one datagram, or the concatenation of a GSO train.
    pub contents: &'a [u8],
    /// GSO stride: split `contents` into datagrams of this size (the last
    /// may be shorter). `None` or a value `>= contents.len()` sends one
    /// datagram.
    pub segment_size: Option<usize>,
    /// ECN codepoint for the IP header.
    pub ecn: Ecn,
    /// DSCP for the IP header; `None` keeps the socket's (see
    /// [`crate::Socket::set_tos`]).
    pub dscp: Option<Dscp>,
    /// Source address to send from (`IP_PKTINFO` / `IPV6_PKTINFO`), for a
    /// socket bound to a wildcard address on a multi-homed host.
    pub src_ip: Option<IpAddr>,
    /// The interface to send from (pktinfo's interface index), e.g. to
    /// answer from a link-local `dst_ip`, which names no interface itself.
    /// Linux, Android, Apple: both families; FreeBSD: IPv6 only (to an
    /// IPv4 destination it is refused,
    /// [`crate::InvalidTransmit::SrcIfindexUnsupported`]).
    pub src_ifindex: Option<u32>,
    /// Earliest departure time (`SO_TXTIME`, `CLOCK_MONOTONIC` nanoseconds),
    /// honoured only under an fq/etf qdisc; needs [`crate::Config::txtime`].
    pub txtime: Option<u64>,
}

impl<'a> Transmit<'a> {
    /// One datagram of `contents` to `destination`, no ECN, socket DSCP.
    ///
    /// ```
    /// let t = volley::Transmit::new("[::1]:443".parse().unwrap(), b"ping");
    /// assert_eq!(t.segments(), 1);
    /// ```
    pub const fn new(destination: SocketAddr, contents: &'a [u8]) -> Self {
        Self {
            destination,
            contents,
            segment_size: None,
            ecn: Ecn::NotEct,
            dscp: None,
            src_ip: None,
            src_ifindex: None,
            txtime: None,
        }
    }

    /// Sets the GSO stride.
    ///
    /// ```
    /// let t = volley::Transmit::new("[::1]:443".parse().unwrap(), &[0; 3000])
    ///     .with_segment_size(1000);
    /// assert_eq!(t.segments(), 3);
    /// ```
    pub const fn with_segment_size(mut self, segment_size: usize) -> Self {
        self.segment_size = Some(segment_size);
        self
    }

    /// Sets the ECN codepoint.
    ///
    /// ```
    /// let t = volley::Transmit::new("[::1]:443".parse().unwrap(), b"x")
    ///     .with_ecn(volley::Ecn::Ect1);
    /// assert_eq!(t.ecn, volley::Ecn::Ect1);
    /// ```
    pub const fn with_ecn(mut self, ecn: Ecn) -> Self {
        self.ecn = ecn;
        self
    }

    /// Sets the DSCP.
    ///
    /// ```
    /// let t = volley::Transmit::new("[::1]:443".parse().unwrap(), b"x")
    ///     .with_dscp(volley::Dscp::AF41);
    /// assert_eq!(t.dscp, Some(volley::Dscp::AF41));
    /// ```
    pub const fn with_dscp(mut self, dscp: Dscp) -> Self {
        self.dscp = Some(dscp);
        self
    }

    /// Sets the source address.
    ///
    /// ```
    /// let t = volley::Transmit::new("127.0.0.1:443".parse().unwrap(), b"x")
    ///     .with_src_ip("127.0.0.2".parse().unwrap());
    /// assert!(t.src_ip.is_some());
    /// ```
    pub const fn with_src_ip(mut self, src_ip: IpAddr) -> Self {
        self.src_ip = Some(src_ip);
        self
    }

    /// What is left of this transmit after its first `segments` datagrams
    /// went out: the one formula behind [`Sent::split`] and [`Sent::rest`],
    /// which resume a train a send cut short.
    ///
    /// ```
    /// let payload = [0u8; 2500];
    /// let t = volley::Transmit::new("127.0.0.1:9".parse().unwrap(), &payload).with_segment_size(1000);
    /// let rest = t.skip_segments(2);
    /// assert_eq!((rest.contents.len(), rest.segment_size), (500, Some(1000)));
    /// assert!(t.skip_segments(9).contents.is_empty());
    /// ```
    pub fn skip_segments(self, segments: usize) -> Self {
        let stride = self.segment_size.unwrap_or(self.contents.len()).max(1);
        let start = segments.saturating_mul(stride).min(self.contents.len());
        Self { contents: &self.contents[start..], ..self }
    }

    /// Sets the interface to send from (an interface index, as in
    /// [`RecvMeta::ifindex`]).
    ///
    /// ```
    /// let t = volley::Transmit::new("[fe80::1]:443".parse().unwrap(), b"x")
    ///     .with_src_ip("fe80::2".parse().unwrap())
    ///     .with_src_ifindex(3);
    /// assert_eq!(t.src_ifindex, Some(3));
    /// ```
    pub const fn with_src_ifindex(mut self, ifindex: u32) -> Self {
        self.src_ifindex = Some(ifindex);
        self
    }

    /// Sets the earliest departure time (`CLOCK_MONOTONIC` nanoseconds).
    ///
    /// ```
    /// let t = volley::Transmit::new("127.0.0.1:443".parse().unwrap(), b"x")
    ///     .with_txtime(1_000_000);
    /// assert_eq!(t.txtime, Some(1_000_000));
    /// ```
    pub const fn with_txtime(mut self, nanos: u64) -> Self {
        self.txtime = Some(nanos);
        self
    }

    /// How many datagrams this transmit becomes on the wire.
    ///
    /// ```
    /// let t = volley::Transmit::new("127.0.0.1:443".parse().unwrap(), &[]);
    /// assert_eq!(t.segments(), 1); // an empty datagram is still a datagram
    /// ```
    pub const fn segments(&self) -> usize {
        match self.gso_stride() {
            Some(s) => self.contents.len().div_ceil(s),
            None => 1,
        }
    }

    /// The effective stride: `Some` only when the transmit is more than one
    /// datagram.
    pub(crate) const fn gso_stride(&self) -> Option<usize> {
        match self.segment_size {
            Some(s) if s > 0 && self.contents.len() > s => Some(s),
            _ => None,
        }
    }

    /// The TOS byte to attach, if this transmit asks for one. `socket_dscp`
    /// is kept when only ECN is given, so per-datagram ECN never wipes the
    /// socket's DSCP.
    pub(crate) const fn tos(&self, socket_dscp: Dscp) -> Option<u8> {
        match (self.dscp, self.ecn) {
            (None, Ecn::NotEct) => None,
            (Some(d), e) => Some(d.tos(e)),
            (None, e) => Some(socket_dscp.tos(e)),
        }
    }
}

/// How far a send got: the value every batch send returns
/// ([`crate::Socket::try_send_batch`], volley-tokio's `send_batch`).
///
/// `transmits` were sent whole; then, if `segments > 0`, that many datagrams
/// of the next transmit (a multi-segment train the kernel took only in part,
/// which happens when segments are sent one by one and the socket buffer
/// fills mid-way). Progress is always a value and never an error: an `Err`
/// from a send means nothing was sent.
///
/// [`Sent::rest`] (in place) or [`Sent::split`] give what is left to send,
/// the partly sent train cut to its unsent segments, so no caller computes
/// it by hand.
///
/// ```
/// use volley::{Sent, Transmit};
/// let to = "127.0.0.1:9".parse().unwrap();
/// let train = [0u8; 3000];
/// let mut batch = [Transmit::new(to, b"a"), Transmit::new(to, &train).with_segment_size(1000), Transmit::new(to, b"c")];
/// // The kernel took the first transmit and one segment of the train:
/// let sent = Sent { transmits: 1, segments: 1 };
/// let rest = sent.rest(&mut batch);
/// assert_eq!(rest.len(), 2);
/// assert_eq!(rest[0].contents.len(), 2000); // the train's unsent segments
/// assert_eq!(rest[1].contents, b"c");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[must_use = "a send may take only part of a batch: resend the rest (Sent::rest)"]
pub struct Sent {
    /// Transmits sent completely, from the start of the batch.
    pub transmits: usize,
    /// Datagrams (segments) of the next transmit that were sent; 0 unless a
    /// train was cut short.
    pub segments: usize,
}

impl Sent {
    /// Whether a transmit was sent only in part (`segments > 0`).
    ///
    /// ```
    /// assert!(volley::Sent { transmits: 0, segments: 2 }.is_partial());
    /// assert!(!volley::Sent { transmits: 3, segments: 0 }.is_partial());
    /// ```
    pub const fn is_partial(self) -> bool {
        self.segments > 0
    }

    /// Whether all of `transmits` (the batch this was the answer to) went out.
    ///
    /// ```
    /// let t = [volley::Transmit::new("127.0.0.1:9".parse().unwrap(), b"x")];
    /// assert!(volley::Sent { transmits: 1, segments: 0 }.is_complete(&t));
    /// assert!(!volley::Sent::default().is_complete(&t));
    /// ```
    pub fn is_complete(self, transmits: &[Transmit<'_>]) -> bool {
        self.transmits >= transmits.len()
    }

    /// What is left of `transmits` (the batch this was the answer to): the
    /// unsent part of a partly sent train, if any, then the untouched
    /// transmits after it. For callers that cannot rewrite their batch; see
    /// [`Sent::rest`] for those that can.
    ///
    /// ```
    /// use volley::{Sent, Transmit};
    /// let to = "127.0.0.1:9".parse().unwrap();
    /// let train = [0u8; 2500];
    /// let batch = [Transmit::new(to, &train).with_segment_size(1000), Transmit::new(to, b"b")];
    /// let (head, tail) = Sent { transmits: 0, segments: 2 }.split(&batch);
    /// assert_eq!(head.map(|t| t.contents.len()), Some(500));
    /// assert_eq!(tail.len(), 1);
    /// let (head, tail) = Sent { transmits: 1, segments: 0 }.split(&batch);
    /// assert!(head.is_none() && tail.len() == 1);
    /// ```
    pub fn split<'s, 'a>(self, transmits: &'s [Transmit<'a>]) -> (Option<Transmit<'a>>, &'s [Transmit<'a>]) {
        let done = self.transmits.min(transmits.len());
        match transmits.get(done) {
            // A train with nothing left (a progress past its end) is done.
            Some(t) if self.segments > 0 => match t.skip_segments(self.segments) {
                t if t.contents.is_empty() => (None, &transmits[done + 1..]),
                t => (Some(t), &transmits[done + 1..]),
            },
            _ => (None, &transmits[done..]),
        }
    }

    /// What is left of `transmits` (the batch this was the answer to), in
    /// place: the partly sent train, if any, is cut to its unsent segments,
    /// and the returned slice starts there. Pass it to the next send.
    ///
    /// ```
    /// use volley::{Socket, Transmit};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sock = Socket::bind("127.0.0.1:0".parse()?)?;
    /// let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let to = peer.local_addr()?;
    /// let msgs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100]).collect();
    /// let mut batch: Vec<_> = msgs.iter().map(|m| Transmit::new(to, m)).collect();
    /// let mut rest = &mut batch[..];
    /// while !rest.is_empty() {
    ///     match sock.try_send_batch(rest) {
    ///         Ok(sent) => rest = sent.rest(rest),
    ///         Err(e) if e.is_would_block() => std::thread::yield_now(), // or wait for WRITABLE
    ///         Err(e) => return Err(e.into()), // concerns rest[0]; nothing of it was sent
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn rest<'s, 'a>(self, transmits: &'s mut [Transmit<'a>]) -> &'s mut [Transmit<'a>] {
        let (head, tail) = self.split(transmits);
        let start = transmits.len() - tail.len() - usize::from(head.is_some());
        let rest = &mut transmits[start..];
        if let Some(head) = head {
            rest[0] = head;
        }
        rest
    }
}

/// What an ICMP error said about a datagram this socket sent, read from the
/// error queue with [`crate::Socket::try_recv_error`].
///
/// ```
/// use volley::{IcmpError, IcmpKind};
/// fn on_error(e: IcmpError) {
///     if let IcmpKind::PacketTooBig { mtu } = e.kind {
///         println!("path to {:?} takes at most {mtu} bytes", e.destination);
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IcmpError {
    /// What happened.
    pub kind: IcmpKind,
    /// Where the datagram that caused it was going.
    pub destination: Option<SocketAddr>,
    /// The host that reported it (a router, the peer, or this host).
    pub offender: Option<IpAddr>,
    /// The error number the kernel attached (`EMSGSIZE`, `ECONNREFUSED`,
    /// `EHOSTUNREACH`, ...).
    pub errno: i32,
}

/// The kind of an [`IcmpError`].
///
/// ```
/// let k = volley::IcmpKind::PacketTooBig { mtu: 1280 };
/// assert_eq!(k.to_string(), "packet too big (mtu 1280)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IcmpKind {
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big", or a local
    /// send over the known path MTU: datagrams to this destination must be
    /// at most `mtu` bytes of IP packet.
    PacketTooBig {
        /// The path MTU reported.
        mtu: u32,
    },
    /// Port unreachable: nothing listens at the destination.
    PortUnreachable,
    /// Host, network or protocol unreachable, or administratively
    /// prohibited, with the ICMP code.
    Unreachable {
        /// The ICMP / ICMPv6 code.
        code: u8,
    },
    /// The TTL / hop limit ran out on the way.
    TimeExceeded,
    /// Only the error number is known: the kernel reported an ICMP error
    /// as a pending socket error (`SO_ERROR`, what a connected socket gets
    /// without [`crate::Config::recv_errors`]), or the error queue refused
    /// the entry (its receive buffer was full). `errno` says which error.
    Pending,
    /// Anything else, with the raw origin, type and code (ICMP type 12 /
    /// ICMPv6 type 4 is a parameter problem).
    Other {
        /// `SO_EE_ORIGIN_*`.
        origin: u8,
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
    },
}

impl fmt::Display for IcmpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PacketTooBig { mtu } => write!(f, "packet too big (mtu {mtu})"),
            Self::PortUnreachable => f.write_str("port unreachable"),
            Self::Unreachable { code } => write!(f, "destination unreachable (code {code})"),
            Self::TimeExceeded => f.write_str("time exceeded"),
            Self::Pending => f.write_str("pending socket error"),
            Self::Other { origin, icmp_type, code } => {
                write!(f, "error (origin {origin}, type {icmp_type}, code {code})")
            }
        }
    }
}

impl IcmpKind {
    /// Classifies a `sock_extended_err` (origin, type, code, info, errno).
    /// Only Linux has the error queue that carries one.
    #[cfg_attr(not(linux_like), allow(dead_code))]
    pub(crate) fn classify(origin: u8, icmp_type: u8, code: u8, info: u32, errno: i32) -> Self {
        const LOCAL: u8 = 1;
        const ICMP: u8 = 2;
        const ICMP6: u8 = 3;
        match (origin, icmp_type, code) {
            (ICMP, 3, 4) | (ICMP6, 2, _) => Self::PacketTooBig { mtu: info },
            (ICMP, 3, 3) | (ICMP6, 1, 4) => Self::PortUnreachable,
            (ICMP, 3, c) | (ICMP6, 1, c) => Self::Unreachable { code: c },
            (ICMP, 11, _) | (ICMP6, 3, _) => Self::TimeExceeded,
            (LOCAL, _, _) if errno == libc::EMSGSIZE => Self::PacketTooBig { mtu: info },
            (o, t, c) => Self::Other { origin: o, icmp_type: t, code: c },
        }
    }
}

#[cfg(test)]
mod segments_tests {
    use super::*;

    fn sizes(len: usize, stride: usize, buf: usize) -> Vec<usize> {
        let m = RecvMeta { len, segment_size: stride, ..RecvMeta::default() };
        m.segments(&vec![0u8; buf]).map(<[u8]>::len).collect()
    }

    #[test]
    fn cuts_at_the_stride_with_a_short_tail() {
        assert_eq!(sizes(2500, 1200, 4096), [1200, 1200, 100]);
        assert_eq!(sizes(2400, 1200, 4096), [1200, 1200]);
        assert_eq!(sizes(1200, 1200, 4096), [1200]);
        assert_eq!(sizes(100, 1200, 4096), [100]);
    }

    #[test]
    fn a_zero_length_datagram_is_one_empty_datagram() {
        assert_eq!(sizes(0, 0, 16), [0]);
        assert_eq!(sizes(0, 1200, 16), [0]);
    }

    #[test]
    fn never_reads_past_the_buffer_or_len() {
        assert_eq!(sizes(5000, 1000, 2500), [1000, 1000, 500], "len beyond the buffer is clamped");
        assert_eq!(sizes(300, 0, 4096), [300], "stride 0: whole");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `RecvMeta` is copied once per datagram (GRO splitting): the original
    /// destination costs it 8 bytes (104 -> 112 on 64-bit targets), where an
    /// `Option<SocketAddr>` would have cost 32.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn recv_meta_stays_compact() {
        println!("size_of::<RecvMeta>() = {}", size_of::<RecvMeta>());
        assert!(size_of::<RecvMeta>() <= 112, "{}", size_of::<RecvMeta>());
    }

    /// The original destination is the destination address with the
    /// reported port; an IPv6 link-local one is scoped to the interface.
    #[test]
    fn orig_dst_combines_dst_ip_and_port() {
        let mut m = RecvMeta { orig_dst_port: Some(4242), ..RecvMeta::default() };
        assert_eq!(m.orig_dst(), None, "no address");
        m.dst_ip = Some("fe80::1".parse().unwrap());
        m.ifindex = Some(3);
        assert_eq!(m.orig_dst(), Some("[fe80::1%3]:4242".parse().unwrap()));
        m.dst_ip = Some("fd00:77:99::7".parse().unwrap());
        assert_eq!(m.orig_dst(), Some("[fd00:77:99::7]:4242".parse().unwrap()));
        m.orig_dst_port = None;
        assert_eq!(m.orig_dst(), None, "no port");
    }

    #[test]
    fn sent_rest_resumes_exactly_where_the_send_stopped() {
        let to: SocketAddr = "10.0.0.1:9".parse().unwrap();
        let train: Vec<u8> = (0..25u8).collect();
        let batch = [Transmit::new(to, b"a"), Transmit::new(to, &train).with_segment_size(10), Transmit::new(to, b"z")];
        let rest = |sent: Sent| {
            let mut b = batch;
            sent.rest(&mut b).iter().map(|t| t.contents.to_vec()).collect::<Vec<_>>()
        };
        assert_eq!(rest(Sent::default()).len(), 3);
        assert_eq!(rest(Sent { transmits: 1, segments: 0 }), [train.clone(), b"z".to_vec()]);
        assert_eq!(rest(Sent { transmits: 1, segments: 1 }), [train[10..].to_vec(), b"z".to_vec()]);
        assert_eq!(rest(Sent { transmits: 1, segments: 2 }), [train[20..].to_vec(), b"z".to_vec()]);
        assert_eq!(rest(Sent { transmits: 3, segments: 0 }), Vec::<Vec<u8>>::new());
        // A progress that does not belong to this batch never panics.
        assert_eq!(rest(Sent { transmits: 7, segments: 3 }), Vec::<Vec<u8>>::new());
        // Nothing is left of a train sent to its end: no empty datagram.
        let (head, tail) = Sent { transmits: 2, segments: 1 }.split(&batch);
        assert!(head.is_none() && tail.is_empty());
        assert_eq!(rest(Sent { transmits: 1, segments: 3 }), [b"z".to_vec()]);
        // The train keeps its stride and marks.
        let (head, _) = Sent { transmits: 1, segments: 1 }.split(&batch);
        assert_eq!(head.unwrap().segment_size, Some(10));
    }

    /// `segments()` at the stride boundaries: no stride, a zero stride and a
    /// stride at least the payload are one datagram; one byte over is two.
    #[test]
    fn segments_at_the_stride_boundaries() {
        let to = "127.0.0.1:1".parse().unwrap();
        let payload = [0u8; 1200];
        let t = |len: usize| Transmit::new(to, &payload[..len]);
        assert_eq!(t(1200).segments(), 1);
        assert_eq!(t(1200).with_segment_size(0).segments(), 1);
        assert_eq!(t(0).with_segment_size(100).segments(), 1);
        assert_eq!(t(100).with_segment_size(100).segments(), 1);
        assert_eq!(t(101).with_segment_size(100).segments(), 2);
        assert_eq!(t(1200).with_segment_size(1).segments(), 1200);
        assert_eq!(t(100).with_segment_size(100).gso_stride(), None);
        assert_eq!(t(101).with_segment_size(100).gso_stride(), Some(100));
        assert_eq!(t(101).with_segment_size(0).gso_stride(), None);
    }

    /// A local `EMSGSIZE` (a send over the known path MTU) is a packet too
    /// big with the MTU in `info`; other local errors are not.
    #[test]
    fn classify_local_emsgsize_as_packet_too_big() {
        const LOCAL: u8 = 1;
        assert_eq!(IcmpKind::classify(LOCAL, 0, 0, 1400, libc::EMSGSIZE), IcmpKind::PacketTooBig { mtu: 1400 });
        assert_eq!(
            IcmpKind::classify(LOCAL, 0, 0, 1400, libc::ECONNREFUSED),
            IcmpKind::Other { origin: LOCAL, icmp_type: 0, code: 0 }
        );
        // EMSGSIZE from a non-local origin with an unknown type stays Other.
        assert_eq!(
            IcmpKind::classify(4, 0, 0, 1400, libc::EMSGSIZE),
            IcmpKind::Other { origin: 4, icmp_type: 0, code: 0 }
        );
    }

    /// The ICMP and ICMPv6 table, one row per arm.
    #[test]
    fn classify_icmp_and_icmp6() {
        let c = |origin, ty, code| IcmpKind::classify(origin, ty, code, 1280, 0);
        assert_eq!(c(2, 3, 4), IcmpKind::PacketTooBig { mtu: 1280 });
        assert_eq!(c(3, 2, 0), IcmpKind::PacketTooBig { mtu: 1280 });
        assert_eq!(c(2, 3, 3), IcmpKind::PortUnreachable);
        assert_eq!(c(3, 1, 4), IcmpKind::PortUnreachable);
        assert_eq!(c(2, 3, 1), IcmpKind::Unreachable { code: 1 });
        assert_eq!(c(3, 1, 3), IcmpKind::Unreachable { code: 3 });
        assert_eq!(c(2, 11, 0), IcmpKind::TimeExceeded);
        assert_eq!(c(3, 3, 0), IcmpKind::TimeExceeded);
        assert_eq!(c(2, 5, 1), IcmpKind::Other { origin: 2, icmp_type: 5, code: 1 });
    }

    /// The names `Display` gives ECN codepoints and DSCPs (the CLI prints
    /// them), padded like any `str`.
    #[test]
    fn display_names_ecn_and_dscp() {
        let ecn: Vec<String> = [Ecn::NotEct, Ecn::Ect1, Ecn::Ect0, Ecn::Ce].iter().map(Ecn::to_string).collect();
        assert_eq!(ecn, ["not-ect", "ect1", "ect0", "ce"]);
        assert_eq!(format!("{:>5}|", Ecn::Ce), "   ce|");
        let named = [
            (Dscp::DEFAULT, "default"),
            (Dscp::CS1, "cs1"),
            (Dscp::AF11, "af11"),
            (Dscp::AF21, "af21"),
            (Dscp::AF31, "af31"),
            (Dscp::AF41, "af41"),
            (Dscp::CS5, "cs5"),
            (Dscp::EF, "ef"),
            (Dscp::CS6, "cs6"),
        ];
        for (d, name) in named {
            assert_eq!(d.to_string(), name);
        }
        let more = [(1, "le"), (16, "cs2"), (12, "af12"), (38, "af43"), (44, "va"), (56, "cs7")];
        for (v, name) in more {
            assert_eq!(Dscp(v).to_string(), name);
        }
        // Every name is distinct, and no unnamed value looks like a name.
        let all: std::collections::HashSet<String> = (0..64).map(|v| Dscp(v).to_string()).collect();
        assert_eq!(all.len(), 64);
        assert_eq!(Dscp(63).to_string(), "63");
        assert_eq!(format!("{:<4}|", Dscp::EF), "ef  |");
        assert_eq!(format!("{:<4}|", Dscp(7)), "7   |");
    }
}
