//! [`DatagramStream`]: received datagrams as owned [`Bytes`], one at a time.
//!
//! # Buffers
//!
//! ```text
//!  RecvBatch (owned by the core)     pool: one BytesMut chunk (default = batch size)
//!  +--------+--------+----+           +-----------------------------+------------+
//!  | msg 0  | msg 1  |... |  --copy-> | msg 0 | msg 1 | ...         | free       |
//!  | seg|seg| one dg |    |  once per +-----------------------------+------------+
//!  +--------+--------+----+  receive    \ split().freeze(): one Bytes /
//!                                        Datagram.payload = Bytes::slice(...)
//!                                        (refcount bump, no allocation)
//! ```
//!
//! The core receives into its own [`RecvBatch`] buffer; this stream copies
//! each receive (every message, GRO trains whole) once into a pooled
//! [`BytesMut`] chunk, freezes it, and hands out every datagram as a
//! [`Bytes::slice`] of that one allocation. When the chunk runs out of room,
//! [`BytesMut::try_reclaim`] takes it back if every `Bytes` cut from it has
//! been dropped; only if some are still held is a new chunk allocated. So a
//! consumer that drops its datagrams before asking for the next receive
//! costs no heap allocation in steady state. Holding a datagram pins its
//! whole chunk: copy out what you keep for long.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use volley::{RecvBatch, RecvMeta};

use crate::socket::ErrorWatch;
use crate::UdpSocket;

/// One received datagram: its metadata and its payload.
///
/// `meta.len == payload.len()`; datagrams of one GRO train share an
/// allocation (their payloads are slices of one [`Bytes`]).
///
/// ```
/// use futures_util::StreamExt;
/// use volley_tokio::{volley::Transmit, DatagramStream, UdpSocket};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let sock = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0".parse().unwrap())?);
/// sock.send_batch(&[Transmit::new(sock.local_addr()?, b"hi")]).await?;
/// let mut stream = DatagramStream::new(sock.clone());
/// let d = stream.next().await.unwrap()?;
/// assert_eq!(&d.payload[..], b"hi");
/// assert_eq!(d.meta.len, 2);
/// assert_eq!(d.meta.src, sock.local_addr()?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Datagram {
    /// What the kernel reported (source, `dst_ip`, ECN, GRO stride, ...).
    pub meta: RecvMeta,
    /// The payload, `meta.len` bytes.
    pub payload: Bytes,
}

/// A [`Stream`](futures_core::Stream) of received [`Datagram`]s over a
/// [`UdpSocket`].
///
/// Each receive takes up to a whole [`RecvBatch`] from the kernel (one
/// `recvmmsg`, GRO on), copies it once into a pooled buffer and yields the
/// datagrams one by one as zero-copy [`Bytes`] slices; see the module docs
/// for the buffer layout. The stream never ends: a receive error is yielded
/// as `Some(Err(e))` and the next poll receives again.
///
/// `S` is how the stream holds the socket: `Arc<UdpSocket>` (the default,
/// to share it with a sending task), `&UdpSocket`, or `UdpSocket`.
///
/// ```
/// use futures_util::StreamExt;
/// use volley_tokio::{volley::Transmit, DatagramStream, UdpSocket};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let rx = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0".parse().unwrap())?);
/// let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
/// // One GSO send of three datagrams.
/// let train = vec![7u8; 3000];
/// tx.send_batch(&[Transmit::new(rx.local_addr()?, &train).with_segment_size(1200)]).await?;
///
/// let mut stream = DatagramStream::new(rx);
/// let mut sizes = Vec::new();
/// while sizes.len() < 3 {
///     let d = stream.next().await.unwrap()?;
///     sizes.push(d.payload.len());
/// }
/// assert_eq!(sizes, [1200, 1200, 600]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DatagramStream<S = Arc<UdpSocket>> {
    socket: S,
    batch: RecvBatch,
    pool: BytesMut,
    chunk: usize,
    ready: VecDeque<Datagram>,
    errors: ErrorWatch,
}

impl<S: Borrow<UdpSocket>> DatagramStream<S> {
    /// A stream with a default [`RecvBatch`] (32 messages of 64 KiB, so 32
    /// full GRO trains per receive) and a pool chunk of the same size.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let stream = volley_tokio::DatagramStream::new(&sock);
    /// assert_eq!(stream.buffered_len(), 0);
    /// # Ok(()) }
    /// ```
    pub fn new(socket: S) -> Self {
        Self::with_batch(socket, RecvBatch::new())
    }

    /// A stream receiving into `batch`; the pool allocates chunks of the
    /// batch's size (`slots * slot_len`), enough for one receive.
    ///
    /// ```
    /// use volley_tokio::{volley::{Config, RecvBatch}, DatagramStream, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// // Small datagrams and small slots: 64 x 2 KiB per receive. Slots this
    /// // small need a socket without GRO (a GRO train can be 64 KiB).
    /// let sock = UdpSocket::bind_with(&Config::new().gro(false), "127.0.0.1:0".parse().unwrap())?;
    /// let stream = DatagramStream::with_batch(&sock, RecvBatch::with_capacity(64, 2048));
    /// # let _ = stream;
    /// # Ok(()) }
    /// ```
    pub fn with_batch(socket: S, batch: RecvBatch) -> Self {
        let chunk = batch.slots() * batch.slot_len();
        // Grows (rarely) up to the most datagrams one receive held: up to 64
        // per GRO train.
        let ready = VecDeque::with_capacity(batch.slots() * 8);
        Self { socket, batch, pool: BytesMut::new(), chunk, ready, errors: ErrorWatch::default() }
    }

    /// The socket.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let addr = sock.local_addr()?;
    /// let stream = volley_tokio::DatagramStream::new(sock);
    /// assert_eq!(stream.get_ref().local_addr()?, addr);
    /// # Ok(()) }
    /// ```
    pub fn get_ref(&self) -> &UdpSocket {
        self.socket.borrow()
    }

    /// Gives the socket back; datagrams received but not yet yielded are
    /// dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let sock: volley_tokio::UdpSocket = volley_tokio::DatagramStream::new(sock).into_inner();
    /// # let _ = sock;
    /// # Ok(()) }
    /// ```
    pub fn into_inner(self) -> S {
        self.socket
    }

    /// Datagrams received from the kernel and not yet yielded.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// assert_eq!(volley_tokio::DatagramStream::new(&sock).buffered_len(), 0);
    /// # Ok(()) }
    /// ```
    pub fn buffered_len(&self) -> usize {
        self.ready.len()
    }

    /// Waits for the next datagram.
    ///
    /// ```
    /// use volley_tokio::{volley::Transmit, DatagramStream, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// sock.send_batch(&[Transmit::new(sock.local_addr()?, b"x")]).await?;
    /// let mut stream = DatagramStream::new(&sock);
    /// assert_eq!(&stream.recv().await?.payload[..], b"x");
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: a datagram is taken from the stream only by the poll
    /// that returns it; what was received but not yet returned stays
    /// buffered in the stream.
    ///
    /// # Errors
    /// As [`UdpSocket::recv_batch`], but never an ICMP error about an
    /// earlier datagram ([`volley::is_icmp_error`]): those are skipped
    /// (logged at debug; with [`volley::Config::recv_errors`] kept for
    /// [`volley::Socket::try_recv_error`]), unless 64 come in a row. The
    /// stream stays usable after any error.
    pub async fn recv(&mut self) -> io::Result<Datagram> {
        let mut skipped = 0;
        loop {
            if let Some(d) = self.ready.pop_front() {
                return Ok(d);
            }
            let socket = self.socket.borrow();
            let (batch, errors) = (&mut self.batch, &mut self.errors);
            // The async form waits with its own waiter, so streams in
            // several tasks may share one socket; beside it, the error
            // watch drains ICMP errors that arrive alone.
            let got = {
                let mut recv = std::pin::pin!(socket.recv_batch(batch));
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(r) = recv.as_mut().poll(cx) {
                        return Poll::Ready(Some(r));
                    }
                    ready!(socket.poll_drain_errors(cx, errors));
                    Poll::Ready(None) // drained: receive again
                })
                .await
            };
            match got {
                None => {}
                Some(Ok(_)) => self.fill(),
                Some(Err(e)) if volley::is_icmp_error(&e) && skipped < ICMP_SKIPS => {
                    skipped += 1;
                    skip_icmp(&e);
                }
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// Polls for the next datagram (the poll form behind
    /// [`Stream::poll_next`](futures_core::Stream::poll_next)). Like every
    /// tokio `poll_*` method, it wakes only the last task that polled the
    /// socket for reading: when several tasks receive on one socket, use
    /// [`DatagramStream::recv`].
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use volley_tokio::{volley::Transmit, DatagramStream, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// sock.send_batch(&[Transmit::new(sock.local_addr()?, b"x")]).await?;
    /// let mut stream = DatagramStream::new(&sock);
    /// let d = poll_fn(|cx| stream.poll_recv(cx)).await?;
    /// assert_eq!(d.meta.len, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`DatagramStream::recv`]; ICMP errors are always skipped here
    /// (a flood of them makes the poll yield, not fail).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Datagram>> {
        let mut skipped = 0;
        loop {
            if let Some(d) = self.ready.pop_front() {
                return Poll::Ready(Ok(d));
            }
            if skipped >= ICMP_SKIPS {
                // A flood of ICMP errors: let other tasks run, come back.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let socket = self.socket.borrow();
            match socket.poll_recv_batch(cx, &mut self.batch) {
                Poll::Ready(Ok(_)) => self.fill(),
                Poll::Ready(Err(e)) if volley::is_icmp_error(&e) => {
                    skipped += 1;
                    skip_icmp(&e);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    ready!(socket.poll_drain_errors(cx, &mut self.errors));
                    skipped += 1; // drained: receive again (bounded too)
                }
            }
        }
    }

    /// The next datagram if one is buffered or queued in the kernel, without
    /// waiting. Handy to drain a burst before flushing replies.
    ///
    /// ```
    /// use volley_tokio::{volley::Transmit, DatagramStream, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut stream = DatagramStream::new(&sock);
    /// assert_eq!(stream.try_recv().unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `WouldBlock` when nothing is there; otherwise as
    /// [`UdpSocket::try_recv_batch`], skipping ICMP errors as
    /// [`DatagramStream::recv`] does.
    pub fn try_recv(&mut self) -> io::Result<Datagram> {
        let mut skipped = 0;
        loop {
            if let Some(d) = self.ready.pop_front() {
                return Ok(d);
            }
            match self.socket.borrow().try_recv_batch(&mut self.batch) {
                Ok(_) => self.fill(),
                Err(e) if volley::is_icmp_error(&e) && skipped < ICMP_SKIPS => {
                    skipped += 1;
                    skip_icmp(&e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Copies the batch just received into the pool and queues one
    /// `Datagram` per datagram, each a slice of the same `Bytes`.
    fn fill(&mut self) {
        let total: usize = self.batch.messages().map(|(m, _)| m.len).sum();
        // Reuse the chunk if nobody holds a slice of it any more; else start
        // a new one. The only allocations in this path.
        if self.pool.capacity() < total && !self.pool.try_reclaim(total) {
            self.pool = BytesMut::with_capacity(self.chunk.max(total));
        }
        for (_, payload) in self.batch.messages() {
            self.pool.extend_from_slice(payload);
        }
        let all = self.pool.split().freeze();
        // `iter` cuts each message at its stride in order, so datagram
        // payloads are consecutive in `all`.
        let mut at = 0;
        for (meta, payload) in self.batch.iter() {
            let end = at + payload.len();
            self.ready.push_back(Datagram { meta, payload: all.slice(at..end) });
            at = end;
        }
        debug_assert_eq!(at, total);
    }
}

/// ICMP-derived errors one call skips before it gives up the CPU (`poll_*`)
/// or returns the error (`recv`, `try_recv`): only a flood of forged ICMP
/// reaches it.
const ICMP_SKIPS: usize = 64;

/// An ICMP error about an earlier datagram: never the end of a stream.
fn skip_icmp(e: &io::Error) {
    tracing::debug!(error = %e, "volley: skipping an ICMP error for an earlier datagram (see try_recv_error)");
}

impl<S: Borrow<UdpSocket> + Unpin> futures_core::Stream for DatagramStream<S> {
    type Item = io::Result<Datagram>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx).map(Some)
    }
}
