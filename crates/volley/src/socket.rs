//! [`Socket`]: the non-blocking, batched UDP socket, a [`mio::event::Source`].

use std::io;
use std::net::{IpAddr, SocketAddr};
#[cfg(unix)]
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

#[cfg(unix)]
use crate::os::AsFd;
use crate::os::{BorrowedFd, Handle, OwnedFd};
use crate::sys;
#[cfg(windows)]
use crate::sys::winsock as libc;
use crate::{Capabilities, Config, Error, MulticastInterface, RecvBatch, Sent, Transmit};
use crate::{Datapath, SocketRef};

/// A non-blocking UDP socket that receives with `recvmmsg` + GRO and sends
/// with `sendmmsg` + GSO, reporting per-datagram metadata.
///
/// Register it with a [`mio::Poll`] and call [`Socket::try_recv_batch`] /
/// [`Socket::try_send_batch`] on readiness; both return `WouldBlock`
/// ([`Error::is_would_block`]) when the kernel has nothing to give or no
/// room. All methods take `&self`: one socket may be shared between a
/// receiving and a sending thread.
///
/// ```
/// use mio::{Events, Interest, Poll, Token};
/// use volley::{RecvBatch, Socket, Transmit};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut rx = Socket::bind("127.0.0.1:0".parse()?)?;
/// let tx = Socket::bind("127.0.0.1:0".parse()?)?;
/// let mut poll = Poll::new()?;
/// poll.registry().register(&mut rx, Token(0), Interest::READABLE)?;
///
/// tx.try_send_batch(&[Transmit::new(rx.local_addr()?, b"hello")])?;
///
/// let mut events = Events::with_capacity(8);
/// let mut batch = RecvBatch::new();
/// 'outer: loop {
///     poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))?;
///     loop {
///         match rx.try_recv_batch(&mut batch) {
///             Ok(_) => break 'outer,
///             Err(e) if e.is_would_block() => break,
///             Err(e) => return Err(e.into()),
///         }
///     }
/// }
/// assert_eq!(batch.iter().next().unwrap().1, b"hello");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Socket {
    inner: Handle,
    dp: Datapath,
}

/// A buffer size as requested and as the kernel granted it (Linux doubles
/// the request for bookkeeping and clamps it to `net.core.rmem_max` /
/// `wmem_max` unless the process may force it).
///
/// ```
/// let sock = volley::Config::new().recv_buffer_size(1 << 20).bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// let b = sock.recv_buffer_size();
/// assert_eq!(b.requested, Some(1 << 20));
/// assert!(b.granted > 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BufferSize {
    /// What the configuration asked for, if anything.
    pub requested: Option<usize>,
    /// What `getsockopt` reported right after bind.
    pub granted: usize,
}

impl Socket {
    /// Binds a socket with the default [`Config`].
    ///
    /// ```
    /// let sock = volley::Socket::bind("[::]:0".parse().unwrap()).unwrap();
    /// assert!(sock.local_addr().unwrap().is_ipv6());
    /// ```
    ///
    /// # Errors
    /// [`Error::Bind`] naming the address and the reason.
    pub fn bind(addr: SocketAddr) -> Result<Self, Error> {
        Config::new().bind(addr)
    }

    pub(crate) fn with_config(addr: SocketAddr, config: &Config) -> Result<Self, Error> {
        let (sock, state) = sys::open(addr, config)?;
        let dp = Datapath::with_state(&sock, state, config);
        Ok(Self { inner: Handle::new(sock), dp })
    }

    pub(crate) fn adopt(fd: OwnedFd, config: &Config) -> Result<Self, Error> {
        let sock = socket2::Socket::from(fd);
        let state = sys::adopt(&sock, config)?;
        let setup = |e| Error::Adopt { reason: crate::AdoptError::Other, source: Some(e) };
        // Windows: mio needs a non-blocking socket, so `blocking` is not
        // applied there (the blocking helpers poll instead).
        let blocking = config.blocking && cfg!(unix);
        sock.set_nonblocking(!blocking).map_err(setup)?;
        state.blocking.store(blocking, std::sync::atomic::Ordering::Relaxed);
        // Windows sockets are created non-inheritable (std and socket2 pass
        // WSA_FLAG_NO_HANDLE_INHERIT); there is no exec to close them on.
        #[cfg(unix)]
        sock.set_cloexec(true).map_err(setup)?;
        let dp = Datapath::with_state(&sock, state, config);
        Ok(Self { inner: Handle::new(sock), dp })
    }

    /// Builds a socket from a descriptor and the [`Datapath`] made for it
    /// (what `volley-tokio` hands back from its tokio socket).
    ///
    /// ```
    /// use volley::{Config, Datapath, Socket};
    /// let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// std_sock.set_nonblocking(true).unwrap();
    /// let dp = Datapath::new(&std_sock, &Config::new()).unwrap();
    /// let sock = Socket::from_parts(std_sock.into(), dp);
    /// assert!(sock.local_addr().unwrap().port() != 0);
    /// ```
    pub fn from_parts(fd: OwnedFd, datapath: Datapath) -> Self {
        Self { inner: Handle::from_fd(fd), dp: datapath }
    }

    /// Splits the socket into its descriptor and its [`Datapath`], to hand
    /// the descriptor to another owner (a runtime's socket type) and keep
    /// driving it with the state ([`Datapath::socket`]).
    ///
    /// ```
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let (fd, dp) = sock.into_parts();
    /// let std_sock = std::net::UdpSocket::from(fd);
    /// assert_eq!(dp.socket(&std_sock).local_addr().unwrap(), std_sock.local_addr().unwrap());
    /// ```
    pub fn into_parts(self) -> (OwnedFd, Datapath) {
        (self.inner.into_fd(), self.dp)
    }

    /// This socket as a [`SocketRef`]: a borrowed descriptor and its state.
    pub fn as_socket_ref(&self) -> SocketRef<'_> {
        SocketRef::new(self.inner.as_fd(), &self.dp)
    }

    /// The [`Datapath`] state of this socket.
    pub fn datapath(&self) -> &Datapath {
        &self.dp
    }

    /// Adopts `socket` with the default [`Config`] (see [`Config::adopt`]).
    ///
    /// ```
    /// let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let sock = volley::Socket::from_std(std_sock).unwrap();
    /// assert!(sock.local_addr().unwrap().port() != 0);
    /// ```
    ///
    /// # Errors
    /// As [`Config::adopt`].
    pub fn from_std(socket: std::net::UdpSocket) -> Result<Self, Error> {
        Config::new().adopt(socket)
    }

    /// Gives the socket back as a [`std::net::UdpSocket`] (still
    /// non-blocking, with every option volley set).
    ///
    /// ```
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let addr = sock.local_addr().unwrap();
    /// let std_sock = sock.into_std();
    /// assert_eq!(std_sock.local_addr().unwrap(), addr);
    /// ```
    pub fn into_std(self) -> std::net::UdpSocket {
        self.inner.into_std()
    }

    /// The address the socket is bound to (an IPv4-mapped address as IPv4,
    /// per the address policy).
    ///
    /// # Errors
    /// Only if the OS call fails.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let a =
            self.inner.sock().local_addr()?.as_socket().ok_or_else(|| io::Error::other("socket has no IP address"))?;
        Ok(crate::meta::canonical(a))
    }

    /// What the kernel gave this socket, now (GSO and mmsg may have been
    /// turned off since bind).
    pub fn capabilities(&self) -> Capabilities {
        self.dp.capabilities()
    }

    /// The receive buffer size requested at bind and granted by the kernel.
    pub fn recv_buffer_size(&self) -> BufferSize {
        self.dp.recv_buffer
    }

    /// The send buffer size requested at bind and granted by the kernel.
    pub fn send_buffer_size(&self) -> BufferSize {
        self.dp.send_buffer
    }

    /// Receives as many queued messages as `batch` has slots, in one
    /// `recvmmsg` (one `recvmsg` each in the portable path), and returns the
    /// number of datagrams now in `batch` after GRO splitting.
    ///
    /// # Errors
    /// `WouldBlock` ([`Error::is_would_block`]) when nothing is queued.
    ///
    /// ICMP errors about earlier datagrams: with [`Config::recv_errors`]
    /// never returned here; they are moved to [`Socket::try_recv_error`]
    /// and the receive goes on (unless more than 64 arrive during one call:
    /// then the last one is returned; call again). Without the error queue
    /// the kernel reports them only on a connected socket, as a pending
    /// error (`ECONNREFUSED` after a port unreachable, ...) returned once,
    /// as std does; [`Error::is_icmp`] tells them apart, and the socket
    /// keeps receiving.
    pub fn try_recv_batch(&self, batch: &mut RecvBatch) -> Result<usize, Error> {
        self.inner.io(|| self.as_socket_ref().try_recv_batch(batch))
    }

    /// Receives into buffers the caller owns, the shape QUIC stacks use
    /// (quinn-udp's `recv(bufs, meta)`): `bufs[i]` receives one kernel
    /// message (a datagram, or with GRO a train of datagrams of
    /// `meta[i].segment_size` bytes, the last possibly shorter) and `meta[i]`
    /// describes it, `len` being the bytes written. Walk a train with
    /// [`crate::RecvMeta::segments`]. One `recvmmsg` for up to 64 messages
    /// (one `recvmsg` each in the portable path); no allocation, and the
    /// kernel writes straight into `bufs`.
    ///
    /// Returns the number of messages. Fewer than
    /// `bufs.len().min(meta.len())` is a *short* receive: the kernel's queue
    /// ran out. With edge-triggered readiness (mio, tokio) a loop may stop
    /// there instead of spending a call to learn the queue is empty (if an
    /// error cut the receive short, it raises a readiness event of its own).
    ///
    /// ```
    /// use std::io::IoSliceMut;
    /// use volley::{RecvMeta, Socket, Transmit};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rx = volley::Config::new().gro(false).bind("127.0.0.1:0".parse()?)?;
    /// let tx = Socket::bind("127.0.0.1:0".parse()?)?;
    /// tx.send_batch_blocking(&[Transmit::new(rx.local_addr()?, b"mine")], std::time::Duration::from_secs(5))?;
    /// rx.wait_readable(std::time::Duration::from_secs(5))?;
    ///
    /// let (mut a, mut b) = ([0u8; 1500], [0u8; 1500]);
    /// let mut bufs = [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)];
    /// let mut meta = [RecvMeta::default(); 2];
    /// let n = rx.try_recv(&mut bufs, &mut meta)?;
    /// assert_eq!(n, 1); // short: the queue is empty now
    /// assert_eq!(&bufs[0][..meta[0].len], b"mine");
    /// assert_eq!(meta[0].src, tx.local_addr()?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Socket::try_recv_batch`]; [`Error::EmptyBatch`] if `bufs` or
    /// `meta` is empty; [`Error::BatchTooSmallForGro`] if GRO is on and a
    /// buffer is shorter than 64 KiB (the kernel would discard the part of a
    /// train that does not fit).
    pub fn try_recv(&self, bufs: &mut [io::IoSliceMut<'_>], meta: &mut [crate::RecvMeta]) -> Result<usize, Error> {
        self.inner.io(|| self.as_socket_ref().try_recv(bufs, meta))
    }

    /// Like [`Socket::try_recv_batch`], but first waits up to `timeout` for
    /// a datagram; returns what is queued once one is. For threads that own
    /// a socket, tools and tests; event loops use mio readiness instead.
    ///
    /// How it waits depends on the descriptor's mode: on a blocking one
    /// ([`Config::blocking`](crate::Config::blocking)) in the kernel, one
    /// `recvmmsg` with `MSG_WAITFORONE` per wake-up (`SO_RCVTIMEO` bounds
    /// it, set only when the timeout changes); on a non-blocking one with
    /// `poll` between receives.
    ///
    /// ```
    /// use std::time::Duration;
    /// use volley::{RecvBatch, Socket, Transmit};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rx = Socket::bind("127.0.0.1:0".parse()?)?;
    /// let mut batch = RecvBatch::new();
    /// let e = rx.recv_batch_blocking(&mut batch, Duration::from_millis(5)).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] if nothing arrived in time; otherwise as
    /// [`Socket::try_recv_batch`].
    pub fn recv_batch_blocking(&self, batch: &mut RecvBatch, timeout: Duration) -> Result<usize, Error> {
        self.as_socket_ref().recv_batch_blocking(batch, timeout)
    }

    /// [`Socket::try_recv`] (the caller's buffers) waiting up to `timeout`
    /// for the first datagram, as [`Socket::recv_batch_blocking`] waits.
    ///
    /// ```
    /// use std::{io::IoSliceMut, time::Duration};
    /// use volley::{Config, RecvMeta, Transmit};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rx = Config::new().gro(false).blocking(true).bind("127.0.0.1:0".parse()?)?;
    /// rx.send_batch_blocking(&[Transmit::new(rx.local_addr()?, b"mine")], Duration::from_secs(5))?;
    /// let mut buf = [0u8; 1500];
    /// let mut meta = [RecvMeta::default()];
    /// let n = rx.recv_blocking(&mut [IoSliceMut::new(&mut buf)], &mut meta, Duration::from_secs(5))?;
    /// assert_eq!((n, &buf[..meta[0].len]), (1, &b"mine"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] if nothing arrived in time; otherwise as
    /// [`Socket::try_recv`] ([`Error::EmptyBatch`] at once, without
    /// waiting).
    pub fn recv_blocking(
        &self,
        bufs: &mut [io::IoSliceMut<'_>],
        meta: &mut [crate::RecvMeta],
        timeout: Duration,
    ) -> Result<usize, Error> {
        self.as_socket_ref().recv_blocking(bufs, meta, timeout)
    }

    /// Sends `transmits` in order with as few `sendmmsg` calls as possible
    /// (64 messages each) and returns how far it got ([`Sent`]).
    ///
    /// A [`Sent`] short of the whole batch means the kernel took no more
    /// now (socket buffer full) or the next transmit has a problem: call
    /// again with [`Sent::rest`], which either sends it or reports it. An
    /// `Err` always concerns the first transmit, and means nothing was
    /// sent; nothing is dropped silently. An empty batch sends nothing and
    /// returns `Ok(Sent::default())`.
    ///
    /// Multi-segment transmits use GSO (`UDP_SEGMENT`) when available; when
    /// not, their segments are sent as separate messages. If the socket
    /// buffer fills mid-way through such a train, the call returns at once
    /// with [`Sent::segments`] saying how many of its datagrams went out:
    /// [`Sent::rest`] resends only the others. This method never blocks. If a GSO send
    /// fails with `EIO` (or `EINVAL` that an unsegmented resend cures), GSO
    /// is turned off for this socket, the same transmits are resent at once,
    /// and one warning is logged.
    ///
    /// An ICMP error about an *earlier* datagram (a port unreachable from a
    /// peer that has gone, a "packet too big") stays pending on the socket,
    /// and the kernel returns it from the next send of anything, without
    /// sending. So a send that meets an ICMP-derived error ([`Error::is_icmp`])
    /// is retried once (`EMSGSIZE` only when the datagram fits the known path
    /// MTU): if the retry goes through, the error was stale and
    /// is kept for [`Socket::try_recv_error`]; if it fails the same way, the
    /// error concerns the transmit it is reported for (no route to it, too
    /// big for the path).
    ///
    /// # Errors
    /// [`Error::InvalidTransmit`] naming the field;
    /// `WouldBlock` if the socket buffer is full; [`Error::MessageTooLong`]
    /// (`EMSGSIZE`); [`Error::NoBufferSpace`] (`ENOBUFS`); an ICMP-derived
    /// error that concerns `transmits[0]` (see above). Each concerns the
    /// first transmit, of which nothing was sent.
    ///
    /// ```
    /// use volley::{Socket, Transmit};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sock = Socket::bind("127.0.0.1:0".parse()?)?;
    /// let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let to = peer.local_addr()?;
    /// let msgs: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 100]).collect();
    /// let mut transmits: Vec<_> = msgs.iter().map(|m| Transmit::new(to, m)).collect();
    /// let mut rest = &mut transmits[..];
    /// while !rest.is_empty() {
    ///     match sock.try_send_batch(rest) {
    ///         Ok(sent) => rest = sent.rest(rest),
    ///         Err(e) if e.is_would_block() => std::thread::yield_now(), // or wait for WRITABLE
    ///         Err(e) => { eprintln!("dropping one: {e}"); rest = &mut rest[1..]; }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn try_send_batch(&self, transmits: &[Transmit<'_>]) -> Result<Sent, Error> {
        self.inner.io(|| self.as_socket_ref().try_send_batch(transmits))
    }

    /// Sends all of `transmits`, waiting for buffer space up to `timeout` in
    /// all. For tests, tools and simple programs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use volley::{Socket, Transmit};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sock = Socket::bind("127.0.0.1:0".parse()?)?;
    /// let to = sock.local_addr()?;
    /// sock.send_batch_blocking(&[Transmit::new(to, b"a"), Transmit::new(to, b"b")], Duration::from_secs(5))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The first error that is not `WouldBlock` (it concerns the first
    /// transmit not yet sent: those before it were sent, none after it), or
    /// [`io::ErrorKind::TimedOut`].
    pub fn send_batch_blocking(&self, transmits: &[Transmit<'_>], timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now().checked_add(timeout);
        // The unsent tail of a train sent in part, then the transmits after it.
        let (mut head, mut rest): (Option<Transmit<'_>>, &[Transmit<'_>]) = (None, transmits);
        while head.is_some() || !rest.is_empty() {
            let result = match head {
                Some(t) => self.try_send_batch(&[t]).inspect(|sent| head = sent.split(&[t]).0),
                None => self.try_send_batch(rest).inspect(|sent| (head, rest) = sent.split(rest)),
            };
            match result {
                // The buffer filled mid-train: the next try would answer
                // WouldBlock.
                Ok(sent) if sent.is_partial() => self.wait_for_room(deadline)?,
                Ok(_) => {}
                Err(e) if e.is_would_block() => self.wait_for_room(deadline)?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` until the socket is readable; returns whether
    /// it is. For simple programs and tools; event loops use mio.
    ///
    /// ```
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(!sock.wait_readable(std::time::Duration::from_millis(10)).unwrap());
    /// ```
    ///
    /// # Errors
    /// As `poll(2)`.
    pub fn wait_readable(&self, timeout: Duration) -> Result<bool, Error> {
        Ok(sys::wait(self.inner.as_fd(), libc::POLLIN, Some(timeout))?)
    }

    /// Waits up to `timeout` until the socket has send-buffer room; returns
    /// whether it has.
    ///
    /// ```
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(sock.wait_writable(std::time::Duration::from_millis(10)).unwrap());
    /// ```
    ///
    /// # Errors
    /// As `poll(2)`.
    pub fn wait_writable(&self, timeout: Duration) -> Result<bool, Error> {
        Ok(sys::wait(self.inner.as_fd(), libc::POLLOUT, Some(timeout))?)
    }

    fn wait_for_room(&self, deadline: Option<Instant>) -> Result<(), Error> {
        let left = remaining(deadline);
        if left.is_some_and(|l| l.is_zero()) {
            return Err(Error::Io(io::Error::new(io::ErrorKind::TimedOut, "socket stayed full until the timeout")));
        }
        sys::wait(self.inner.as_fd(), libc::POLLOUT, left)?;
        Ok(())
    }

    /// Connects the socket to `addr`: only datagrams from it are received,
    /// and [`Socket::path_mtu`] becomes available. On Windows it closes the
    /// qWAVE flow of an earlier peer: the socket-level DSCP reads 0 until
    /// [`Socket::set_tos`] sets it for this peer.
    ///
    /// # Errors
    /// As `connect(2)`; connecting to a broadcast address without
    /// [`Config::broadcast`] is [`Error::BroadcastNotEnabled`].
    pub fn connect(&self, addr: SocketAddr) -> Result<(), Error> {
        self.as_socket_ref().connect(addr)
    }

    /// Dissolves a connection made with [`Socket::connect`] (on Windows,
    /// with the qWAVE flow that marked the peer's DSCP).
    ///
    /// # Errors
    /// As `connect(2)` with `AF_UNSPEC`.
    /// Linux drops the local port of a socket that was bound to port 0
    /// when it disconnects (`__udp_disconnect` keeps only explicitly bound
    /// ports); volley binds the address it was bound to again, so the socket
    /// keeps its port (a wildcard stays a wildcard). Between the kernel's
    /// unbind and the rebind, another socket could take the port: then this
    /// fails with [`Error::Bind`].
    pub fn disconnect(&self) -> Result<(), Error> {
        self.as_socket_ref().disconnect()
    }

    /// The peer of a connected socket.
    ///
    /// # Errors
    /// `NotConnected` if the socket is not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.as_socket_ref().peer_addr()
    }

    /// The kernel's path MTU towards the connected peer (`IP_MTU` /
    /// `IPV6_MTU`). Linux only.
    ///
    /// # Errors
    /// `NotConnected` on an unconnected socket.
    pub fn path_mtu(&self) -> Result<u32, Error> {
        self.as_socket_ref().path_mtu()
    }

    /// Sets the socket-level TOS / traffic-class byte (DSCP in the upper six
    /// bits, ECN in the lower two): `IP_TOS` on IPv4, `IPV6_TCLASS` on IPv6,
    /// both on a dual-stack socket. Per-datagram ECN
    /// ([`Transmit::ecn`]) keeps this DSCP.
    ///
    /// ```
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// # if cfg!(unix) {
    /// sock.set_tos(volley::Dscp::AF41.tos(volley::Ecn::NotEct)).unwrap();
    /// assert_eq!(sock.tos().unwrap(), 34 << 2);
    /// # }
    /// ```
    ///
    /// # Windows
    ///
    /// Windows ignores `IP_TOS` from programs without a QoS policy, so the
    /// DSCP goes through qWAVE ([`crate::Capabilities::qwave`]): a flow from
    /// this socket to its peer, which the socket must have (connect first).
    /// DSCP 8, 40 and 56 are qWAVE traffic types (Background, AudioVideo,
    /// Voice) that need no privilege; any other DSCP needs the process in
    /// Administrators or Network Configuration Operators. The ECN bits must
    /// be 0 (ECN is marked per datagram, [`Transmit::ecn`]), and a transmit
    /// may not ask for another DSCP than the flow's
    /// ([`crate::InvalidTransmit::DscpUnsupported`]): qWAVE marks a flow,
    /// not a datagram. The flow belongs to the peer: [`Socket::connect`]
    /// and [`Socket::disconnect`] close it ([`Socket::tos`] reads 0 again).
    /// A refused change leaves the socket unmarked. `0` closes the flow.
    ///
    /// ```
    /// use volley::{Dscp, Ecn, Error, OptionError, SocketOption};
    /// let peer = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// sock.connect(peer.local_addr().unwrap()).unwrap();
    /// let cs5 = Dscp::new(40).unwrap().tos(Ecn::NotEct); // no privilege needed on Windows
    /// match sock.set_tos(cs5) {
    ///     Ok(()) => assert_eq!(sock.tos().unwrap(), cs5),
    ///     // Windows without qWAVE (no qwave.dll, its service unavailable):
    ///     Err(Error::SocketOption { option: SocketOption::Dscp, reason: OptionError::Unsupported, .. }) => {
    ///         assert!(!sock.capabilities().qwave);
    ///         assert_eq!(sock.tos().unwrap(), 0);
    ///     }
    ///     Err(e) => panic!("{e}"),
    /// }
    /// ```
    ///
    /// # Errors
    /// As `setsockopt(2)` ([`Error::Io`]). On Windows
    /// [`Error::SocketOption`] with [`crate::SocketOption::Dscp`] and the
    /// reason: [`crate::OptionError::NotConnected`] (no peer),
    /// `Unsupported` (qWAVE unavailable, or ECN bits set),
    /// `PermissionDenied` (the DSCP needs Administrators or Network
    /// Configuration Operators), `Other` (qWAVE refused the flow; the
    /// source names the step).
    pub fn set_tos(&self, tos: u8) -> Result<(), Error> {
        self.as_socket_ref().set_tos(tos)
    }

    /// Reads one ICMP error about a datagram this socket sent: "packet too
    /// big (mtu)", "port unreachable" and so on, with the destination it
    /// concerns and the host that reported it, oldest first.
    ///
    /// With [`Config::recv_errors`] the kernel queues each ICMP error with
    /// its details, and those entries count against the socket's receive
    /// buffer: a queue nobody reads would crowd out data. So volley's
    /// receive and send paths move the queue into a ring on the socket
    /// whenever the kernel signals an error (a receive never fails because
    /// of one); this reads the ring first, then the kernel's queue. The ring
    /// keeps the newest 64 errors; older ones are dropped and counted by
    /// [`Socket::lost_icmp_errors`]. Without the error queue, a send that
    /// met an error left pending by an earlier datagram (what a connected
    /// socket gets) records it here as [`crate::IcmpKind::Pending`].
    ///
    /// Reading never consumes datagrams. Returns `Ok(None)` when there is
    /// nothing to report.
    ///
    /// ```
    /// let sock = volley::Config::new().recv_errors(true).bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(sock.try_recv_error().unwrap().is_none());
    /// ```
    ///
    /// # Errors
    /// As `recvmsg(2)` with `MSG_ERRQUEUE`.
    pub fn try_recv_error(&self) -> Result<Option<crate::IcmpError>, Error> {
        self.as_socket_ref().try_recv_error()
    }

    /// ICMP errors dropped because the socket's ring of 64 was full when
    /// newer ones came (see [`Socket::try_recv_error`]). The kernel itself
    /// refuses to queue an error while the receive buffer is full, and
    /// counts that nowhere.
    ///
    /// ```
    /// let sock = volley::Config::new().recv_errors(true).bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert_eq!(sock.lost_icmp_errors(), 0);
    /// ```
    pub fn lost_icmp_errors(&self) -> u64 {
        self.dp.lost_icmp_errors()
    }

    /// What the datapath has done on this socket since it was opened:
    /// datagrams, bytes, syscalls, GSO trains and GRO messages, `WouldBlock`s,
    /// kernel drops, truncations, ICMP errors by kind, and when GSO or mmsg
    /// were turned off. A copy of relaxed atomic counters, updated once per
    /// call (see [`crate::Stats`]).
    ///
    /// ```
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let mut batch = volley::RecvBatch::new();
    /// assert!(sock.try_recv_batch(&mut batch).is_err()); // nothing queued
    /// let s = sock.stats();
    /// assert_eq!((s.recv_syscalls, s.recv_would_block), (1, 1));
    /// ```
    pub fn stats(&self) -> crate::Stats {
        self.dp.stats()
    }

    /// Moves the ICMP errors the kernel has queued (with
    /// [`Config::recv_errors`]) into the socket's ring, and returns how
    /// many. Receives and sends do this whenever the kernel signals an error;
    /// call it when the socket reports an error condition and you will not
    /// receive soon (an idle server), so the queue never holds receive
    /// buffer space for long. With the error queue off, it does nothing.
    ///
    /// ```
    /// let sock = volley::Config::new().recv_errors(true).bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert_eq!(sock.drain_icmp_errors(), 0);
    /// ```
    pub fn drain_icmp_errors(&self) -> usize {
        self.as_socket_ref().drain_icmp_errors()
    }

    /// Whether datagrams sent on this socket may be fragmented by the IP
    /// layer: false only when every family the socket carries has DF set
    /// for good ([`crate::Pmtud::Do`] or [`crate::Pmtud::Probe`]). The
    /// kernel default (`IP_PMTUDISC_WANT`) may fragment. Linux; elsewhere
    /// `true`.
    ///
    /// ```
    /// use volley::{Config, Pmtud};
    /// let probe = Config::new().pmtud(Pmtud::Probe).bind("[::]:0".parse().unwrap()).unwrap();
    /// assert!(!probe.may_fragment());
    /// let plain = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(plain.may_fragment());
    /// ```
    pub fn may_fragment(&self) -> bool {
        self.as_socket_ref().may_fragment()
    }

    /// The socket-level TOS / traffic-class byte. On Windows, the DSCP of
    /// the socket's qWAVE flow (0 without one): see [`Socket::set_tos`].
    ///
    /// # Errors
    /// As `getsockopt(2)`.
    pub fn tos(&self) -> Result<u8, Error> {
        self.as_socket_ref().tos()
    }
}

/// Multicast.
///
/// Receiving: bind the group's port (usually on the wildcard address, with
/// [`Config::reuse_addr`] so several receivers can share it: unlike
/// `reuse_port`, every `reuse_addr` socket that joined gets *every*
/// datagram of the group), then join. A socket hears exactly the groups it
/// joined: volley turns off Linux's `IP_MULTICAST_ALL` default, under which a
/// wildcard-bound socket also hears every group any other socket on the host
/// joined. Received datagrams report the group as
/// [`crate::RecvMeta::dst_ip`] and the arrival interface as `ifindex`, so
/// one wildcard socket can serve several groups.
///
/// ```
/// use volley::{Config, MulticastInterface};
/// let sock = Config::new().reuse_addr(true).bind("0.0.0.0:0".parse().unwrap()).unwrap();
/// let lo = MulticastInterface::V4("127.0.0.1".parse().unwrap());
/// sock.join_multicast("239.1.2.3".parse().unwrap(), lo).unwrap();
/// sock.leave_multicast("239.1.2.3".parse().unwrap(), lo).unwrap();
/// ```
impl Socket {
    /// Joins an any-source multicast group (`IP_ADD_MEMBERSHIP` /
    /// `MCAST_JOIN_GROUP`) on `interface`.
    ///
    /// # Errors
    /// [`Error::Multicast`]: not a multicast address, a family this socket
    /// cannot carry, no such interface.
    pub fn join_multicast(&self, group: IpAddr, interface: MulticastInterface) -> Result<(), Error> {
        self.as_socket_ref().join_multicast(group, interface)
    }

    /// Leaves a group joined with [`Socket::join_multicast`].
    ///
    /// # Errors
    /// [`Error::Multicast`], e.g. if the group was not joined.
    pub fn leave_multicast(&self, group: IpAddr, interface: MulticastInterface) -> Result<(), Error> {
        self.as_socket_ref().leave_multicast(group, interface)
    }

    /// Joins a source-specific group (`IP_ADD_SOURCE_MEMBERSHIP` /
    /// `MCAST_JOIN_SOURCE_GROUP`): only `source`'s datagrams to `group`
    /// are delivered.
    ///
    /// # Errors
    /// [`Error::Multicast`], including [`crate::MulticastError::SourceFamily`] when
    /// `source` and `group` differ in family.
    pub fn join_source_multicast(
        &self,
        group: IpAddr,
        source: IpAddr,
        interface: MulticastInterface,
    ) -> Result<(), Error> {
        self.as_socket_ref().join_source_multicast(group, source, interface)
    }

    /// Leaves a source-specific membership.
    ///
    /// # Errors
    /// [`Error::Multicast`].
    pub fn leave_source_multicast(
        &self,
        group: IpAddr,
        source: IpAddr,
        interface: MulticastInterface,
    ) -> Result<(), Error> {
        self.as_socket_ref().leave_source_multicast(group, source, interface)
    }

    /// The interface multicast datagrams are sent from
    /// (`IP_MULTICAST_IF` / `IPV6_MULTICAST_IF`).
    ///
    /// # Errors
    /// [`Error::Multicast`] with [`crate::MulticastError::NoSuchInterface`] if the
    /// kernel does not know it, [`crate::MulticastError::InterfaceFamily`]
    /// for an interface named by IPv4 address on an IPv6-only socket.
    pub fn set_multicast_interface(&self, interface: MulticastInterface) -> Result<(), Error> {
        self.as_socket_ref().set_multicast_interface(interface)
    }

    /// TTL / hop limit of sent multicast datagrams (`IP_MULTICAST_TTL` /
    /// `IPV6_MULTICAST_HOPS`; the kernel default is 1: this link only).
    ///
    /// # Errors
    /// As `setsockopt(2)`.
    pub fn set_multicast_hops(&self, hops: u8) -> Result<(), Error> {
        self.as_socket_ref().set_multicast_hops(hops)
    }

    /// Whether this host's own sockets receive the multicast datagrams this
    /// socket sends (`IP_MULTICAST_LOOP` / `IPV6_MULTICAST_LOOP`; kernel
    /// default on).
    ///
    /// # Errors
    /// As `setsockopt(2)`.
    pub fn set_multicast_loop(&self, on: bool) -> Result<(), Error> {
        self.as_socket_ref().set_multicast_loop(on)
    }

    pub(crate) fn attach_cpu_steering(&self, n: usize) -> Result<(), Error> {
        self.as_socket_ref().attach_cpu_steering(n)
    }
}

/// Time left until `deadline`; `None` means no deadline.
fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

#[cfg(unix)]
impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for Socket {
    fn as_socket(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for Socket {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        std::os::windows::io::AsRawSocket::as_raw_socket(&self.inner.as_fd())
    }
}

/// Adopts a socket with the default [`Config`] (see [`Config::adopt`]).
impl TryFrom<std::net::UdpSocket> for Socket {
    type Error = Error;

    fn try_from(socket: std::net::UdpSocket) -> Result<Self, Error> {
        Config::new().adopt(socket)
    }
}

/// Adopts a descriptor with the default [`Config`] (see [`Config::adopt`]).
impl TryFrom<OwnedFd> for Socket {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self, Error> {
        Config::new().adopt(fd)
    }
}

impl From<Socket> for OwnedFd {
    fn from(socket: Socket) -> Self {
        socket.inner.into_fd()
    }
}

#[cfg(unix)]
impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_fd().as_raw_fd()
    }
}

impl mio::event::Source for Socket {
    fn register(&mut self, registry: &mio::Registry, token: mio::Token, interests: mio::Interest) -> io::Result<()> {
        mio::event::Source::register(&mut self.inner, registry, token, interests)
    }

    fn reregister(&mut self, registry: &mio::Registry, token: mio::Token, interests: mio::Interest) -> io::Result<()> {
        mio::event::Source::reregister(&mut self.inner, registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        mio::event::Source::deregister(&mut self.inner, registry)
    }
}
