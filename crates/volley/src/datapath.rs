//! [`Datapath`]: volley's per-socket state apart from owning the socket, and
//! [`SocketRef`]: that state driving a socket someone else owns.
//!
//! ```text
//!   Socket (owns the fd, a mio Source)        tokio::net::UdpSocket (owns the fd)
//!     |-- fd                                    |
//!     `-- Datapath <----- same state ------->  Datapath (volley-tokio holds it beside)
//!           probed capabilities, GSO/mmsg switches, families, socket DSCP,
//!           the ICMP error ring
//!   SocketRef = (borrowed fd, &Datapath): every datapath call
//! ```
//!
//! quinn-udp's `UdpSocketState` has the same shape: probe once, then drive
//! any borrowed socket.

use crate::os::{AsFd, BorrowedFd};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

#[cfg(windows)]
use crate::sys::winsock as libc;
use crate::sys::{self, SocketState};
use crate::{
    BufferSize, Capabilities, Config, Error, IcmpError, MulticastError, MulticastInterface, RecvBatch, RecvMeta, Sent,
    Stats, Transmit,
};

/// What volley knows and keeps about one socket (probed capabilities, the
/// GSO and mmsg switches that can turn off at run time, the IP families it
/// carries, its DSCP, its ring of ICMP errors), apart from owning it.
///
/// [`crate::Socket`] owns a descriptor and a `Datapath`. Use a `Datapath`
/// directly when something else owns the socket (a runtime's socket type,
/// as `volley-tokio` does with tokio's): create it once for that socket,
/// then drive the socket with [`Datapath::socket`]. Always pair a
/// `Datapath` with the socket it was made for: it describes that socket.
///
/// ```
/// use volley::{Config, Datapath, RecvBatch, Transmit};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let owned = std::net::UdpSocket::bind("127.0.0.1:0")?; // you keep owning it
/// owned.set_nonblocking(true)?;
/// let dp = Datapath::new(&owned, &Config::new())?;
/// let me = owned.local_addr()?;
/// dp.socket(&owned).try_send_batch(&[Transmit::new(me, b"hello")])?;
/// let mut batch = RecvBatch::new();
/// std::thread::sleep(std::time::Duration::from_millis(20));
/// dp.socket(&owned).try_recv_batch(&mut batch)?;
/// assert_eq!(batch.iter().next().unwrap().1, b"hello");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Datapath {
    pub(crate) state: SocketState,
    pub(crate) recv_buffer: BufferSize,
    pub(crate) send_buffer: BufferSize,
    /// The address as bound (before any connect narrowed it).
    pub(crate) bound: SocketAddr,
}

impl Datapath {
    /// Configures and probes a bound UDP socket that the caller keeps
    /// owning, as [`Config::adopt`] does (the same checks and options),
    /// except that it leaves the socket's blocking mode alone: volley's
    /// `try_` calls never block either way (each passes `MSG_DONTWAIT`),
    /// and on a blocking descriptor the blocking helpers
    /// ([`SocketRef::recv_batch_blocking`]) wait in the kernel.
    ///
    /// # Errors
    /// [`Error::Adopt`] naming what does not fit.
    pub fn new(socket: impl AsFd, config: &Config) -> Result<Self, Error> {
        let fd = socket.as_fd();
        let sock = socket2::SockRef::from(&fd);
        let state = sys::adopt(&sock, config)?;
        Ok(Self::with_state(&sock, state, config))
    }

    pub(crate) fn with_state(sock: &socket2::Socket, state: SocketState, config: &Config) -> Self {
        let recv_buffer =
            BufferSize { requested: config.recv_buffer_size, granted: sock.recv_buffer_size().unwrap_or(0) };
        let send_buffer =
            BufferSize { requested: config.send_buffer_size, granted: sock.send_buffer_size().unwrap_or(0) };
        let bound = sock.local_addr().ok().and_then(|a| a.as_socket()).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        Self { state, recv_buffer, send_buffer, bound }
    }

    /// This state driving `socket` (the socket it was made for).
    pub fn socket<'a>(&'a self, socket: &'a impl AsFd) -> SocketRef<'a> {
        SocketRef { fd: socket.as_fd(), dp: self }
    }

    /// What the kernel gave the socket, now (GSO and mmsg may have been
    /// turned off since).
    pub fn capabilities(&self) -> Capabilities {
        self.state.live.snapshot()
    }

    /// The receive buffer size requested and granted when configured.
    pub fn recv_buffer_size(&self) -> BufferSize {
        self.recv_buffer
    }

    /// The send buffer size requested and granted when configured.
    pub fn send_buffer_size(&self) -> BufferSize {
        self.send_buffer
    }

    /// ICMP errors dropped from the full ring (see
    /// [`crate::Socket::lost_icmp_errors`]).
    pub fn lost_icmp_errors(&self) -> u64 {
        self.state.errors().lost()
    }

    /// What the datapath has done on this socket (see [`Stats`]).
    ///
    /// ```
    /// let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let dp = volley::Datapath::new(&std_sock, &volley::Config::new()).unwrap();
    /// assert_eq!(dp.stats(), volley::Stats::default());
    /// ```
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }
}

/// A socket volley drives but does not own: a borrowed descriptor and its
/// [`Datapath`] ([`Datapath::socket`]). Its methods are
/// [`crate::Socket`]'s datapath methods, with the same contracts.
#[derive(Debug, Clone, Copy)]
pub struct SocketRef<'a> {
    fd: BorrowedFd<'a>,
    dp: &'a Datapath,
}

impl<'a> SocketRef<'a> {
    pub(crate) fn new(fd: BorrowedFd<'a>, dp: &'a Datapath) -> Self {
        Self { fd, dp }
    }

    /// As [`crate::Socket::try_recv_batch`].
    ///
    /// # Errors
    /// As [`crate::Socket::try_recv_batch`].
    pub fn try_recv_batch(self, batch: &mut RecvBatch) -> Result<usize, Error> {
        sys::recv(self.fd, &self.dp.state, batch, sys::Wait::No)
    }

    /// As [`crate::Socket::try_recv`].
    ///
    /// # Errors
    /// As [`crate::Socket::try_recv`].
    pub fn try_recv(self, bufs: &mut [io::IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Result<usize, Error> {
        sys::recv_into(self.fd, &self.dp.state, bufs, meta, sys::Wait::No)
    }

    /// Receives into the spare capacity of `bufs` (feature `bytes`): message
    /// `i` is appended to `bufs[i]` (a datagram, or a GRO train cut at
    /// `meta[i].segment_size`) and described by `meta[i]`; returns the
    /// number of messages. The kernel writes straight into the buffers'
    /// unused capacity, so nothing is zeroed or copied: `split().freeze()`
    /// then gives owned `Bytes`, and `try_reclaim` recycles the allocation
    /// once they are dropped. On a GRO socket each buffer needs 64 KiB of
    /// spare capacity.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rx = volley::Socket::bind("127.0.0.1:0".parse()?)?;
    /// let tx = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// tx.send_to(b"owned", rx.local_addr()?)?;
    /// rx.wait_readable(std::time::Duration::from_secs(5))?;
    /// let mut bufs = [bytes::BytesMut::with_capacity(64 * 1024)];
    /// let mut meta = [volley::RecvMeta::default()];
    /// let n = rx.as_socket_ref().try_recv_bytes(&mut bufs, &mut meta)?;
    /// assert_eq!((n, &bufs[0][..]), (1, &b"owned"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`crate::Socket::try_recv`].
    #[cfg(feature = "bytes")]
    pub fn try_recv_bytes(self, bufs: &mut [bytes::BytesMut], meta: &mut [RecvMeta]) -> Result<usize, Error> {
        sys::recv_bytes(self.fd, &self.dp.state, bufs, meta, sys::Wait::No)
    }

    /// As [`crate::Socket::recv_batch_blocking`].
    ///
    /// # Errors
    /// As [`crate::Socket::recv_batch_blocking`].
    pub fn recv_batch_blocking(self, batch: &mut RecvBatch, timeout: Duration) -> Result<usize, Error> {
        sys::recv_waiting(self.fd, &self.dp.state, timeout, |wait| sys::recv(self.fd, &self.dp.state, batch, wait))
    }

    /// As [`crate::Socket::recv_blocking`].
    ///
    /// # Errors
    /// As [`crate::Socket::recv_blocking`].
    pub fn recv_blocking(
        self,
        bufs: &mut [io::IoSliceMut<'_>],
        meta: &mut [RecvMeta],
        timeout: Duration,
    ) -> Result<usize, Error> {
        // An empty `bufs` or `meta` is `Error::EmptyBatch` from the first
        // receive attempt, before any wait (sys::recv_into checks it).
        sys::recv_waiting(self.fd, &self.dp.state, timeout, |wait| {
            sys::recv_into(self.fd, &self.dp.state, bufs, meta, wait)
        })
    }

    /// As [`crate::Socket::try_send_batch`].
    ///
    /// # Errors
    /// As [`crate::Socket::try_send_batch`].
    pub fn try_send_batch(self, transmits: &[Transmit<'_>]) -> Result<Sent, Error> {
        sys::send(self.fd, &self.dp.state, transmits)
    }

    /// As [`crate::Socket::try_recv_error`].
    ///
    /// # Errors
    /// As [`crate::Socket::try_recv_error`].
    pub fn try_recv_error(self) -> Result<Option<IcmpError>, Error> {
        sys::recv_error(self.fd, &self.dp.state)
    }

    /// As [`crate::Socket::drain_icmp_errors`].
    pub fn drain_icmp_errors(self) -> usize {
        sys::drain_errors(self.fd, &self.dp.state)
    }

    /// As [`crate::Socket::lost_icmp_errors`].
    pub fn lost_icmp_errors(self) -> u64 {
        self.dp.lost_icmp_errors()
    }

    /// As [`crate::Socket::stats`].
    pub fn stats(self) -> Stats {
        self.dp.stats()
    }

    /// As [`crate::Socket::capabilities`].
    pub fn capabilities(self) -> Capabilities {
        self.dp.capabilities()
    }

    /// As [`crate::Socket::recv_buffer_size`].
    pub fn recv_buffer_size(self) -> BufferSize {
        self.dp.recv_buffer
    }

    /// As [`crate::Socket::send_buffer_size`].
    pub fn send_buffer_size(self) -> BufferSize {
        self.dp.send_buffer
    }

    /// As [`crate::Socket::local_addr`].
    ///
    /// # Errors
    /// Only if the OS call fails.
    pub fn local_addr(self) -> io::Result<SocketAddr> {
        let a = socket2::SockRef::from(&self.fd)
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("socket has no IP address"))?;
        Ok(crate::meta::canonical(a))
    }

    /// As [`crate::Socket::set_tos`].
    ///
    /// # Errors
    /// As `setsockopt(2)`.
    pub fn set_tos(self, tos: u8) -> Result<(), Error> {
        sys::set_tos(self.fd, &self.dp.state, tos)
    }

    /// As [`crate::Socket::tos`].
    ///
    /// # Errors
    /// As `getsockopt(2)`.
    pub fn tos(self) -> Result<u8, Error> {
        sys::tos(self.fd, &self.dp.state).map_err(Error::from)
    }

    /// As [`crate::Socket::may_fragment`].
    pub fn may_fragment(self) -> bool {
        sys::may_fragment(self.fd, self.dp.state.families)
    }

    /// As [`crate::Socket::connect`].
    ///
    /// # Errors
    /// As [`crate::Socket::connect`].
    pub fn connect(self, addr: SocketAddr) -> Result<(), Error> {
        let wire = match addr {
            SocketAddr::V4(a) if self.dp.state.families.v6 => SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port()),
            a => a,
        };
        self.sock().connect(&wire.into()).map_err(|e| {
            if sys::broadcast_refused(self.fd, addr, e.raw_os_error()) {
                Error::BroadcastNotEnabled { destination: addr }
            } else {
                Error::from(e)
            }
        })?;
        // Windows: the socket's qWAVE flow (its DSCP) was tied to the old
        // peer. Elsewhere the socket-level TOS outlives a connect.
        #[cfg(windows)]
        sys::end_flow(&self.dp.state);
        Ok(())
    }

    /// As [`crate::Socket::disconnect`].
    ///
    /// # Errors
    /// As [`crate::Socket::disconnect`].
    pub fn disconnect(self) -> Result<(), Error> {
        sys::disconnect(self.fd)?;
        #[cfg(windows)]
        sys::end_flow(&self.dp.state);
        let now = self.sock().local_addr()?.as_socket().map_or(0, |a| a.port());
        if now == 0 && self.dp.bound.port() != 0 {
            // Rebind the address as bound (a wildcard stays a wildcard).
            self.sock().bind(&self.dp.bound.into()).map_err(|source| Error::Bind {
                addr: self.dp.bound,
                reason: crate::BindError::Other,
                source,
            })?;
        }
        Ok(())
    }

    /// As [`crate::Socket::peer_addr`].
    ///
    /// # Errors
    /// As [`crate::Socket::peer_addr`].
    pub fn peer_addr(self) -> io::Result<SocketAddr> {
        let a = self.sock().peer_addr()?.as_socket().ok_or_else(|| io::Error::other("peer has no IP address"))?;
        Ok(crate::meta::canonical(a))
    }

    /// As [`crate::Socket::path_mtu`].
    ///
    /// # Errors
    /// As [`crate::Socket::path_mtu`].
    pub fn path_mtu(self) -> Result<u32, Error> {
        let v6_path = self.peer_addr()?.is_ipv6();
        sys::path_mtu(self.fd, v6_path).map_err(Error::from)
    }

    fn multicast(
        self,
        group: IpAddr,
        source: Option<IpAddr>,
        interface: MulticastInterface,
        join: bool,
    ) -> Result<(), Error> {
        let v4 =
            crate::multicast::check(group, source, interface, self.dp.state.families.v4, self.dp.state.families.v6)
                .map_err(|reason| Error::Multicast { group, reason, source: None })?;
        if join {
            // A socket hears exactly its groups (Linux and Android deliver
            // every group of the host by default). Best effort: kernels
            // before 4.20 lack the IPv6 option.
            let _ = sys::disable_multicast_all(self.fd, v4);
        }
        sys::multicast_membership(self.fd, &self.sock(), group, source, interface, v4, join).map_err(|e| {
            let reason = match e.raw_os_error() {
                // Leaving: the kernel found no such membership.
                Some(libc::EADDRNOTAVAIL) if !join => MulticastError::NotMember,
                Some(libc::ENODEV | libc::EADDRNOTAVAIL) => MulticastError::NoSuchInterface,
                _ => MulticastError::Refused,
            };
            Error::Multicast { group, reason, source: Some(e) }
        })
    }

    /// As [`crate::Socket::join_multicast`].
    ///
    /// # Errors
    /// As [`crate::Socket::join_multicast`].
    pub fn join_multicast(self, group: IpAddr, interface: MulticastInterface) -> Result<(), Error> {
        self.multicast(group, None, interface, true)
    }

    /// As [`crate::Socket::leave_multicast`].
    ///
    /// # Errors
    /// As [`crate::Socket::leave_multicast`].
    pub fn leave_multicast(self, group: IpAddr, interface: MulticastInterface) -> Result<(), Error> {
        self.multicast(group, None, interface, false)
    }

    /// As [`crate::Socket::join_source_multicast`].
    ///
    /// # Errors
    /// As [`crate::Socket::join_source_multicast`].
    pub fn join_source_multicast(
        self,
        group: IpAddr,
        source: IpAddr,
        interface: MulticastInterface,
    ) -> Result<(), Error> {
        self.multicast(group, Some(source), interface, true)
    }

    /// As [`crate::Socket::leave_source_multicast`].
    ///
    /// # Errors
    /// As [`crate::Socket::leave_source_multicast`].
    pub fn leave_source_multicast(
        self,
        group: IpAddr,
        source: IpAddr,
        interface: MulticastInterface,
    ) -> Result<(), Error> {
        self.multicast(group, Some(source), interface, false)
    }

    /// As [`crate::Socket::set_multicast_interface`].
    ///
    /// # Errors
    /// As [`crate::Socket::set_multicast_interface`].
    pub fn set_multicast_interface(self, interface: MulticastInterface) -> Result<(), Error> {
        let families = self.dp.state.families;
        let group = if families.v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
        if matches!(interface, MulticastInterface::V4(_)) && !families.v4 {
            // An IPv4 address names no interface for IPv6 groups (Linux
            // would take IP_MULTICAST_IF on an IPv6-only socket, to no use).
            return Err(Error::Multicast { group, reason: MulticastError::InterfaceFamily, source: None });
        }
        sys::set_multicast_interface(&self.sock(), families, interface).map_err(|e| {
            let reason = match e.raw_os_error() {
                Some(libc::ENODEV | libc::EADDRNOTAVAIL) => MulticastError::NoSuchInterface,
                _ => MulticastError::Refused,
            };
            Error::Multicast { group, reason, source: Some(e) }
        })
    }

    /// As [`crate::Socket::set_multicast_hops`].
    ///
    /// # Errors
    /// As [`crate::Socket::set_multicast_hops`].
    pub fn set_multicast_hops(self, hops: u8) -> Result<(), Error> {
        if self.dp.state.families.v4 {
            self.sock().set_multicast_ttl_v4(u32::from(hops))?;
        }
        if self.dp.state.families.v6 {
            self.sock().set_multicast_hops_v6(u32::from(hops))?;
        }
        Ok(())
    }

    /// As [`crate::Socket::set_multicast_loop`].
    ///
    /// # Errors
    /// As [`crate::Socket::set_multicast_loop`].
    pub fn set_multicast_loop(self, on: bool) -> Result<(), Error> {
        if self.dp.state.families.v4 {
            self.sock().set_multicast_loop_v4(on)?;
        }
        if self.dp.state.families.v6 {
            self.sock().set_multicast_loop_v6(on)?;
        }
        Ok(())
    }

    pub(crate) fn attach_cpu_steering(self, n: usize) -> Result<(), Error> {
        sys::attach_cpu_steering(self.fd, n).map_err(Error::from)
    }

    /// The socket as `socket2` sees it, for its option calls.
    fn sock(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(&self.fd)
    }
}

impl AsFd for SocketRef<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, IcmpError, IcmpKind};

    /// The ring's overflow count reaches the borrowed-socket API: the
    /// datapath's and a `SocketRef`'s `lost_icmp_errors` (the ring itself
    /// is tested in errqueue.rs).
    #[test]
    #[cfg_attr(miri, ignore = "needs a socket")]
    fn lost_icmp_errors_are_reported_through_the_datapath() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dp = super::Datapath::new(&sock, &Config::new().recv_errors(true)).unwrap();
        assert_eq!(dp.lost_icmp_errors(), 0);
        {
            let mut ring = dp.state.errors();
            for errno in 0..crate::errqueue::CAPACITY as i32 + 3 {
                ring.push(IcmpError { kind: IcmpKind::Pending, destination: None, offender: None, errno });
            }
        }
        assert_eq!(dp.lost_icmp_errors(), 3);
        assert_eq!(dp.socket(&sock).lost_icmp_errors(), 3);
        // Draining what the ring holds loses nothing more.
        let mut n = 0;
        while dp.socket(&sock).try_recv_error().unwrap().is_some() {
            n += 1;
        }
        assert_eq!((n, dp.lost_icmp_errors()), (crate::errqueue::CAPACITY, 3));
    }
}
