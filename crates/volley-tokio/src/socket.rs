//! [`UdpSocket`]: volley's datapath over a tokio socket.
//!
//! # One descriptor, no `unsafe`
//!
//! tokio owns the descriptor (a `tokio::net::UdpSocket`, registered with its
//! reactor); volley keeps its per-socket state beside it
//! ([`volley::Datapath`]) and drives tokio's descriptor through a borrowed
//! [`volley::SocketRef`]. Every syscall is volley's (`recvmmsg`,
//! `sendmmsg`, GSO, control messages); tokio's `try_io` supplies the
//! readiness contract (clear readiness on `WouldBlock`, and only then).
//! tokio 1.54 deprecated the safe `AsyncFd::new` as unsound, and this crate
//! forbids `unsafe`: a tokio socket is the safe way to register.
//!
//! ```text
//!   UdpSocket
//!   +-- io: tokio::net::UdpSocket --- fd 7 ---> one UDP socket (kernel)
//!   +-- dp: volley::Datapath          (capabilities, GSO/mmsg switches,
//!                                      families, DSCP, ICMP error ring)
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
#[cfg(windows)]
use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use std::io::IoSliceMut;
use tokio::io::Interest;

use volley::{Capabilities, Config, RecvBatch, RecvMeta, Sent, Transmit};

/// An asynchronous, batched UDP socket: volley's datapath over a socket
/// registered with the tokio reactor (one descriptor).
///
/// All methods take `&self`, so one socket (in an [`Arc`](std::sync::Arc))
/// can serve a receiving and a sending task at once. Receives fill a
/// [`RecvBatch`] with one `recvmmsg` (GRO trains split back into datagrams);
/// sends take a slice of [`Transmit`]s and use `sendmmsg` + GSO. Each
/// operation comes as tokio's triad: `recv_batch().await` waits,
/// `poll_recv_batch(cx)` is the poll form, `try_recv_batch()` never waits.
///
/// Errors are [`io::Error`]s. The core's typed [`volley::Error`] is kept as
/// the inner error where it is not a plain OS error, so
/// `e.get_ref().and_then(|e| e.downcast_ref::<volley::Error>())` recovers it.
///
/// ```
/// use volley_tokio::{volley::{RecvBatch, Transmit}, UdpSocket};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
/// let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
/// a.send_batch(&[Transmit::new(b.local_addr()?, b"ping")]).await?;
/// let mut batch = RecvBatch::new();
/// b.recv_batch(&mut batch).await?;
/// let (meta, payload) = batch.iter().next().unwrap();
/// assert_eq!((payload, meta.src), (&b"ping"[..], a.local_addr()?));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    /// Readiness only, on a duplicate descriptor; see the module docs.
    io: Arc<tokio::net::UdpSocket>,
    dp: volley::Datapath,
}

impl UdpSocket {
    /// Binds a socket with the default [`Config`] and registers it with the
    /// current tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("[::1]:0".parse().unwrap())?;
    /// assert!(sock.local_addr()?.is_ipv6());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`volley::Socket::bind`] (a [`volley::Error::Bind`] inside the
    /// `io::Error`), or as [`UdpSocket::new`].
    ///
    /// # Panics
    /// As [`UdpSocket::new`].
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(&Config::new(), addr)
    }

    /// Binds a socket with `config` and registers it with the current tokio
    /// runtime.
    ///
    /// ```
    /// use volley_tokio::{volley::Config, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind_with(&Config::new().gso(false), "127.0.0.1:0".parse().unwrap())?;
    /// assert!(!sock.capabilities().gso());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Config::bind`], or as [`UdpSocket::new`].
    ///
    /// # Panics
    /// As [`UdpSocket::new`].
    pub fn bind_with(config: &Config, addr: SocketAddr) -> io::Result<Self> {
        Self::new(config.bind(addr)?)
    }

    /// Registers an existing volley socket with the current tokio runtime
    /// (tokio's `from_std`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let core = volley::Socket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let addr = core.local_addr()?;
    /// let sock = volley_tokio::UdpSocket::new(core)?;
    /// assert_eq!(sock.local_addr()?, addr);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// If called outside a tokio runtime, or if the descriptor cannot be
    /// duplicated or registered.
    ///
    /// # Panics
    /// If the runtime was built without I/O ([`enable_io`]), as every tokio
    /// socket does.
    ///
    /// [`enable_io`]: tokio::runtime::Builder::enable_io
    pub fn new(socket: volley::Socket) -> io::Result<Self> {
        if let Err(e) = tokio::runtime::Handle::try_current() {
            return Err(io::Error::other(e));
        }
        let (fd, dp) = socket.into_parts();
        let io = Arc::new(tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd))?);
        Ok(Self { io, dp })
    }

    /// The socket as volley drives it, for everything this adapter does not
    /// wrap (`connect`, `set_tos`, `path_mtu`, multicast, the ICMP error
    /// ring, buffer sizes, ...). Do not call its `try_*` I/O methods
    /// directly: tokio's readiness would go stale. Use [`UdpSocket::try_io`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// sock.get_ref().set_tos(0xb8)?;
    /// assert_eq!(sock.get_ref().tos()?, 0xb8);
    /// assert!(sock.get_ref().try_recv_error()?.is_none());
    /// # Ok(()) }
    /// ```
    pub fn get_ref(&self) -> volley::SocketRef<'_> {
        self.dp.socket(&*self.io)
    }

    /// volley's state for this socket (capabilities, buffer sizes, ...).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// assert!(sock.datapath().recv_buffer_size().granted > 0);
    /// # Ok(()) }
    /// ```
    pub fn datapath(&self) -> &volley::Datapath {
        &self.dp
    }

    /// Deregisters the socket and returns it as a core socket, with its
    /// state.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let addr = sock.local_addr()?;
    /// let core: volley::Socket = sock.into_inner()?;
    /// assert_eq!(core.local_addr()?, addr);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// If tokio cannot deregister the socket, or a receiver's wait for ICMP
    /// errors still holds it (drop the `DatagramStream` / quinn socket
    /// first).
    pub fn into_inner(self) -> io::Result<volley::Socket> {
        let io = Arc::try_unwrap(self.io)
            .map_err(|_| io::Error::other("the socket is still shared by a receiver's error wait"))?;
        let std = io.into_std()?;
        Ok(volley::Socket::from_parts(std.into(), self.dp))
    }

    /// What the kernel gave this socket, now (see
    /// [`volley::Socket::capabilities`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// println!("{}", sock.capabilities());
    /// assert!(sock.capabilities().max_gso_segments >= 1);
    /// # Ok(()) }
    /// ```
    pub fn capabilities(&self) -> Capabilities {
        self.dp.capabilities()
    }

    /// What the datapath has done on this socket (see `volley::Stats`):
    /// the same counters the core keeps, driven by this socket, its
    /// `DatagramStream`, `SendQueue` and quinn socket alike.
    ///
    /// ```
    /// use volley_tokio::{volley::Transmit, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// sock.send_batch_all(&[Transmit::new(sock.local_addr()?, b"x")]).await?;
    /// assert_eq!(sock.stats().datagrams_sent, 1);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> volley::Stats {
        self.dp.stats()
    }

    /// The address the socket is bound to.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// assert_ne!(sock.local_addr()?.port(), 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Only if the OS call fails.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().local_addr()
    }

    /// Waits until the socket is probably readable. It may be a false
    /// positive: the next `try_recv_batch` may still answer `WouldBlock`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use volley_tokio::{volley::Transmit, UdpSocket};
    /// let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// a.send_batch(&[Transmit::new(a.local_addr()?, b"x")]).await?;
    /// a.readable().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is received.
    ///
    /// # Errors
    /// Only if the reactor fails.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Waits until the socket is probably writable.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// sock.writable().await?; // a fresh socket has room
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is sent.
    ///
    /// # Errors
    /// Only if the reactor fails.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// Polls for read readiness. As with every tokio socket, only the last
    /// task to call this is woken: when several tasks wait to receive on one
    /// socket, use [`UdpSocket::readable`] or [`UdpSocket::recv_batch`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let ready = std::future::poll_fn(|cx| std::task::Poll::Ready(sock.poll_recv_ready(cx).is_ready())).await;
    /// assert!(!ready); // nothing sent yet
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Only if the reactor fails.
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_recv_ready(cx)
    }

    /// Polls for write readiness. Only the last task to call this is woken;
    /// see [`UdpSocket::poll_recv_ready`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// std::future::poll_fn(|cx| sock.poll_send_ready(cx)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Only if the reactor fails.
    pub fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_send_ready(cx)
    }

    /// Waits for datagrams and receives as many as `batch` holds with one
    /// `recvmmsg`; returns the number of datagrams in `batch` (GRO trains
    /// split). Read them with [`RecvBatch::iter`].
    ///
    /// ```
    /// use volley_tokio::{volley::{RecvBatch, Transmit}, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let me = sock.local_addr()?;
    /// sock.send_batch_all(&[Transmit::new(me, b"a"), Transmit::new(me, b"b")]).await?;
    /// let mut batch = RecvBatch::new();
    /// let mut got = Vec::new();
    /// while got.len() < 2 {
    ///     sock.recv_batch(&mut batch).await?;
    ///     got.extend(batch.iter().map(|(_, p)| p.to_vec()));
    /// }
    /// assert_eq!(got, [b"a", b"b"]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: datagrams are taken from the kernel only in the poll
    /// that completes, so a cancelled call received nothing.
    ///
    /// # Errors
    /// As [`volley::Socket::try_recv_batch`], except `WouldBlock`, on which
    /// this waits.
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        self.read_with(|| self.try_recv_batch(batch)).await
    }

    /// Polls for datagrams: `Ready(Ok(n))` when `batch` now holds `n`
    /// datagrams, `Pending` after registering `cx` for read readiness.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use volley_tokio::{volley::{RecvBatch, Transmit}, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// sock.send_batch(&[Transmit::new(sock.local_addr()?, b"x")]).await?;
    /// let mut batch = RecvBatch::new();
    /// let n = poll_fn(|cx| sock.poll_recv_batch(cx, &mut batch)).await?;
    /// assert_eq!(n, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`UdpSocket::recv_batch`].
    pub fn poll_recv_batch(&self, cx: &mut Context<'_>, batch: &mut RecvBatch) -> Poll<io::Result<usize>> {
        self.poll_ready_then(cx, Interest::READABLE, || self.try_recv_batch(batch))
    }

    /// Receives what is queued without waiting.
    ///
    /// ```
    /// use volley_tokio::{volley::RecvBatch, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let err = sock.try_recv_batch(&mut RecvBatch::new()).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok(()) }
    /// ```
    ///
    /// A receive that empties the kernel's queue ([`RecvBatch::is_short`])
    /// clears read readiness, as `WouldBlock` does: the next poll waits for
    /// the next datagram instead of spending a syscall to learn the queue is
    /// empty.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is queued (readiness is then cleared);
    /// otherwise as [`volley::Socket::try_recv_batch`].
    pub fn try_recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        self.try_recv_with(|s| {
            let n = s.try_recv_batch(batch)?;
            Ok((n, batch.is_short()))
        })
    }

    /// Waits for datagrams and receives them into buffers the caller owns:
    /// `bufs[i]` gets one kernel message (a datagram, or with GRO a train
    /// cut at `meta[i].segment_size`: walk it with
    /// [`volley::RecvMeta::segments`]) and `meta[i]` describes it; returns
    /// the number of messages (see [`volley::Socket::try_recv`]). The
    /// kernel writes straight into `bufs`.
    ///
    /// ```
    /// use std::io::IoSliceMut;
    /// use volley_tokio::{volley::{Config, RecvMeta, Transmit}, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind_with(&Config::new().gro(false), "127.0.0.1:0".parse().unwrap())?;
    /// sock.send_batch(&[Transmit::new(sock.local_addr()?, b"mine")]).await?;
    /// let mut buf = [0u8; 1500];
    /// let mut meta = [RecvMeta::default()];
    /// let n = sock.recv(&mut [IoSliceMut::new(&mut buf)], &mut meta).await?;
    /// assert_eq!((n, &buf[..meta[0].len]), (1, &b"mine"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: datagrams are taken from the kernel only in the poll
    /// that completes.
    ///
    /// # Errors
    /// As [`volley::Socket::try_recv`], except `WouldBlock`, on which this
    /// waits.
    pub async fn recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        room(bufs.len(), meta.len())?;
        self.read_with(|| self.try_recv(bufs, meta)).await
    }

    /// The poll form of [`UdpSocket::recv`] (it wakes only the last task
    /// that polled for reading).
    ///
    /// # Errors
    /// As [`UdpSocket::recv`].
    pub fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = room(bufs.len(), meta.len()) {
            return Poll::Ready(Err(e));
        }
        self.poll_ready_then(cx, Interest::READABLE, || self.try_recv(bufs, meta))
    }

    /// [`UdpSocket::recv`] without waiting. A short receive (fewer messages
    /// than buffers: the kernel's queue ran out) clears read readiness, as
    /// `WouldBlock` does.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is queued; otherwise as
    /// [`volley::Socket::try_recv`].
    pub fn try_recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        let room = room(bufs.len(), meta.len())?;
        self.try_recv_with(|s| {
            let n = s.try_recv(bufs, meta)?;
            Ok((n, n < room))
        })
    }

    /// Receives into the spare capacity of `bufs` without waiting (see
    /// `volley::SocketRef::try_recv_bytes`); a short receive clears read
    /// readiness.
    pub(crate) fn try_recv_bytes(&self, bufs: &mut [bytes::BytesMut], meta: &mut [RecvMeta]) -> io::Result<usize> {
        let room = room(bufs.len(), meta.len())?;
        self.try_recv_with(|s| {
            let n = s.try_recv_bytes(bufs, meta)?;
            Ok((n, n < room))
        })
    }

    /// The poll form of [`UdpSocket::try_recv_bytes`].
    pub(crate) fn poll_recv_bytes(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [bytes::BytesMut],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.poll_ready_then(cx, Interest::READABLE, || self.try_recv_bytes(bufs, meta))
    }

    /// Waits for read readiness (several tasks may wait at once).
    pub(crate) async fn readable_now(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// One receive under tokio's read readiness. A short receive (the
    /// kernel's queue ran out) is handed back, but tokio is told
    /// `WouldBlock` so it clears the readiness: tokio's readiness tick makes
    /// that race-free (an event that came in during the receive is kept),
    /// and a short receive after an error leaves an event of its own.
    fn try_recv_with<R>(
        &self,
        f: impl FnOnce(volley::SocketRef<'_>) -> Result<(R, bool), volley::Error>,
    ) -> io::Result<R> {
        let mut short = None;
        let result = self.io.try_io(Interest::READABLE, || {
            let (r, is_short) = f(self.get_ref()).map_err(io::Error::from)?;
            if is_short {
                short = Some(r);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(r)
        });
        match result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => short.ok_or(e),
            other => other,
        }
    }

    /// Waits for room and sends `transmits` in order with as few `sendmmsg`
    /// calls as possible (GSO for multi-segment transmits); returns how far
    /// it got ([`Sent`]: something, unless `transmits` is empty). Short of
    /// the whole batch means the socket buffer filled up or the next
    /// transmit has a problem: call again with what [`Sent::rest`] or
    /// [`Sent::split`] leaves, or use [`UdpSocket::send_batch_all`].
    ///
    /// ```
    /// use volley_tokio::{volley::{Ecn, Transmit}, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let to = sock.local_addr()?;
    /// let train = [0u8; 3600];
    /// let t = Transmit::new(to, &train).with_segment_size(1200).with_ecn(Ecn::Ect0);
    /// assert_eq!(sock.send_batch(&[t]).await?.transmits, 1); // three datagrams, one GSO send
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: the send happens within the poll that completes, so a
    /// cancelled call sent nothing.
    ///
    /// # Errors
    /// As [`volley::Socket::try_send_batch`] (an error always concerns
    /// `transmits[0]`, with nothing sent), except `WouldBlock`, on which this
    /// waits.
    pub async fn send_batch(&self, transmits: &[Transmit<'_>]) -> io::Result<Sent> {
        if transmits.is_empty() {
            return Ok(Sent::default()); // nothing to wait for
        }
        self.async_io(Interest::WRITABLE, |s| s.try_send_batch(transmits)).await
    }

    /// Sends all of `transmits`, waiting for room as often as needed.
    ///
    /// A multi-segment transmit that the portable path sent only in part
    /// ([`Sent::segments`]) is completed, not resent.
    ///
    /// ```
    /// use volley_tokio::{volley::Transmit, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let to = peer.local_addr()?;
    /// let msgs: Vec<[u8; 100]> = (0..200u8).map(|i| [i; 100]).collect();
    /// let transmits: Vec<_> = msgs.iter().map(|m| Transmit::new(to, m)).collect();
    /// sock.send_batch_all(&transmits).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Not cancel safe: a cancelled call may have sent a prefix of
    /// `transmits`. Loop over [`UdpSocket::send_batch`] to know how far it got.
    ///
    /// # Errors
    /// The first error that is not `WouldBlock`. It concerns the first
    /// transmit not yet sent; those before it were sent, none after it.
    pub async fn send_batch_all(&self, transmits: &[Transmit<'_>]) -> io::Result<()> {
        // The unsent tail of a train sent in part, then the transmits after it.
        let (mut head, mut rest): (Option<Transmit<'_>>, &[Transmit<'_>]) = (None, transmits);
        while head.is_some() || !rest.is_empty() {
            match head {
                Some(t) => head = self.send_batch(&[t]).await?.split(&[t]).0,
                None => (head, rest) = self.send_batch(rest).await?.split(rest),
            }
        }
        Ok(())
    }

    /// Polls to send `transmits`: `Ready(Ok(sent))` with something sent
    /// (see [`Sent`]), `Pending` after registering `cx` for write readiness.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use volley_tokio::{volley::Transmit, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let t = [Transmit::new(sock.local_addr()?, b"x")];
    /// assert!(poll_fn(|cx| sock.poll_send_batch(cx, &t)).await?.is_complete(&t));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`UdpSocket::send_batch`].
    pub fn poll_send_batch(&self, cx: &mut Context<'_>, transmits: &[Transmit<'_>]) -> Poll<io::Result<Sent>> {
        if transmits.is_empty() {
            return Poll::Ready(Ok(Sent::default()));
        }
        self.poll_ready_then(cx, Interest::WRITABLE, || {
            self.try_io(Interest::WRITABLE, |s| s.try_send_batch(transmits))
        })
    }

    /// Sends what fits now, without waiting.
    ///
    /// ```
    /// use volley_tokio::{volley::Transmit, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// sock.writable().await?;
    /// let sent = sock.try_send_batch(&[Transmit::new(sock.local_addr()?, b"x")])?;
    /// assert_eq!(sent.transmits, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `WouldBlock` when the socket buffer is full (readiness is then
    /// cleared) or not yet known to be writable; otherwise as
    /// [`volley::Socket::try_send_batch`].
    pub fn try_send_batch(&self, transmits: &[Transmit<'_>]) -> io::Result<Sent> {
        self.try_io(Interest::WRITABLE, |s| s.try_send_batch(transmits))
    }

    /// Runs one non-blocking operation on the core socket if it is ready for
    /// `interest`, and clears that readiness if (and only if) the operation
    /// answers `WouldBlock`. The way to reach core calls this adapter does
    /// not wrap.
    ///
    /// `f` must do exactly one kind of I/O, matching `interest`, and must
    /// return `WouldBlock` only from the syscall itself.
    ///
    /// ```
    /// use tokio::io::Interest;
    /// use volley_tokio::{volley::RecvBatch, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut batch = RecvBatch::new();
    /// let r = sock.try_io(Interest::READABLE, |s| s.try_recv_batch(&mut batch));
    /// assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `WouldBlock` if the socket is not ready or `f` said so; otherwise what
    /// `f` returned, converted to [`io::Error`].
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce(volley::SocketRef<'_>) -> Result<R, volley::Error>,
    ) -> io::Result<R> {
        self.io.try_io(interest, || f(self.get_ref()).map_err(io::Error::from))
    }

    /// Waits for `interest` and runs `f` until it answers something other
    /// than `WouldBlock` (clearing readiness on each `WouldBlock`). Several
    /// tasks may wait at once; each is woken.
    ///
    /// ```
    /// use tokio::io::Interest;
    /// use volley_tokio::{volley::{RecvBatch, Transmit}, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// sock.send_batch(&[Transmit::new(sock.local_addr()?, b"x")]).await?;
    /// let mut batch = RecvBatch::new();
    /// let n = sock.async_io(Interest::READABLE, |s| s.try_recv_batch(&mut batch)).await?;
    /// assert_eq!(n, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe if `f` completes its work within one call (as every
    /// volley `try_*` method does).
    ///
    /// # Errors
    /// What `f` returned, other than `WouldBlock`.
    pub async fn async_io<R>(
        &self,
        interest: Interest,
        mut f: impl FnMut(volley::SocketRef<'_>) -> Result<R, volley::Error>,
    ) -> io::Result<R> {
        self.io.async_io(interest, || f(self.get_ref()).map_err(io::Error::from)).await
    }

    /// The one poll-form readiness loop: waits for `interest`, runs `f`
    /// (a `try_*` call that clears readiness on `WouldBlock`), and retries
    /// only on `WouldBlock`, after which the next poll registers `cx`.
    fn poll_ready_then<R>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut f: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            if interest.is_writable() {
                ready!(self.io.poll_send_ready(cx))?;
            } else {
                ready!(self.io.poll_recv_ready(cx))?;
            }
            match f() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return Poll::Ready(other),
            }
        }
    }

    /// The async form of a receive: waits for read readiness with its own
    /// waiter (several tasks may wait at once), runs `f`, retries only on
    /// `WouldBlock`. Not `async_io`: a short receive is handed back while
    /// tokio is told `WouldBlock`, which `async_io` would wait on instead.
    async fn read_with<R>(&self, mut f: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        loop {
            self.io.readable().await?;
            match f() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
        }
    }
}

/// The messages one receive can take, or the core's `EmptyBatch` at once
/// (not after waiting for a datagram there is nowhere to put).
fn room(bufs: usize, meta: usize) -> io::Result<usize> {
    match bufs.min(meta).min(volley::MAX_SLOTS) {
        0 => Err(volley::Error::EmptyBatch.into()),
        n => Ok(n),
    }
}

/// Waits for the kernel to signal an error condition on a socket with the
/// ICMP error queue on, for receivers that must not go deaf.
///
/// tokio wakes a reader only for readable readiness; an ICMP error raises
/// only `EPOLLERR`. Queued errors are charged to the receive buffer, so on a
/// socket nobody receives from (an idle server) they would pile up until
/// data no longer fits. A receiver polls this beside its receive: when an
/// error condition comes, the error queue is moved into the core's ring.
/// The wait is a boxed future, made once per error event (never per
/// datagram).
#[derive(Default)]
pub(crate) struct ErrorWatch {
    // Mutex only to keep the owner `Sync`: it is reached through `&mut`.
    wait: Mutex<Option<ErrorWait>>,
}

/// The future of one wait for an error condition.
type ErrorWait = Pin<Box<dyn Future<Output = io::Result<tokio::io::Ready>> + Send>>;

impl std::fmt::Debug for ErrorWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorWatch").finish_non_exhaustive()
    }
}

impl UdpSocket {
    /// With [`volley::Config::recv_errors`]: `Ready` after an error
    /// condition came and the error queue was drained (receive again),
    /// `Pending` with `cx` registered for the next one. Without the error
    /// queue, always `Pending` (the kernel queues nothing).
    pub(crate) fn poll_drain_errors(&self, cx: &mut Context<'_>, watch: &mut ErrorWatch) -> Poll<()> {
        if !self.dp.capabilities().recv_errors {
            return Poll::Pending;
        }
        let slot = watch.wait.get_mut().unwrap_or_else(|p| p.into_inner());
        let wait = slot.get_or_insert_with(|| {
            let io = Arc::clone(&self.io);
            Box::pin(async move { io.ready(Interest::ERROR).await })
        });
        if wait.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        *slot = None;
        // Drain inside try_io: tokio clears the error readiness only if no
        // new error event came while we drained.
        let _ = self.io.try_io(Interest::ERROR, || {
            self.get_ref().drain_icmp_errors();
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
        Poll::Ready(())
    }
}

#[cfg(unix)]
impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

#[cfg(unix)]
impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

#[cfg(windows)]
impl AsSocket for UdpSocket {
    fn as_socket(&self) -> BorrowedSocket<'_> {
        self.io.as_socket()
    }
}

#[cfg(windows)]
impl AsRawSocket for UdpSocket {
    fn as_raw_socket(&self) -> RawSocket {
        self.io.as_raw_socket()
    }
}

/// The typed core error inside an `io::Error`, if there is one.
#[cfg_attr(not(feature = "quinn"), allow(dead_code))] // used by the quinn glue and tests
pub(crate) fn as_volley(e: &io::Error) -> Option<&volley::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<volley::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_error_survives_io_conversion() {
        let e = io::Error::from(volley::Error::MessageTooLong { size: 1500, mtu: Some(1280) });
        assert!(matches!(as_volley(&e), Some(volley::Error::MessageTooLong { size: 1500, mtu: Some(1280) })));
    }
}
