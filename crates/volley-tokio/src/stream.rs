//! [`DatagramStream`]: received datagrams as owned [`Bytes`], one at a time.
//!
//! # Buffers
//!
//! ```text
//!  slots: one BytesMut per message, 64 KiB of spare capacity each (GRO)
//!  +-------------------+  +-------------------+
//!  | seg|seg|seg|tail  |  | one datagram      |  ... `active` of them (4, doubling
//!  +-------------------+  +-------------------+      while receives come back full)
//!     ^ the kernel writes here (recvmmsg into spare capacity: no copy, no zeroing)
//!     split().freeze(): one Bytes per message;
//!     Datagram.payload = Bytes::split_to(stride) per GRO segment (a refcount
//!     bump), the last segment takes the rest
//! ```
//!
//! The kernel writes each message straight into a pooled [`BytesMut`]'s
//! unused capacity (`volley::SocketRef::try_recv_bytes`); the stream freezes
//! it into one [`Bytes`] and hands out every datagram as a slice of it, cut
//! when it is asked for (a receive queues nothing per datagram: each is
//! written once, into what the poll returns). Before the next receive, [`BytesMut::try_reclaim`] takes a slot's
//! allocation back if every `Bytes` cut from it has been dropped; only if
//! some are still held is a new one allocated. So a consumer that drops its
//! datagrams before asking for the next receive costs no heap allocation in
//! steady state, and holding a datagram pins only its own message's slot.
//!
//! Memory: nothing until the first receive; then 4 slots (256 KiB with the
//! default 64 KiB slots), doubling up to the batch's slot count (32: 2 MiB)
//! only while receives come back full, i.e. while the traffic needs them.

use std::borrow::Borrow;
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
/// Each receive takes up to a batch of messages from the kernel (one
/// `recvmmsg`, GRO on), written straight into pooled buffers, and yields
/// the datagrams one by one as [`Bytes`] slices of them: no copy; see the
/// module docs for the buffer layout. The stream never ends: a receive error is yielded
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
    /// One buffer per message slot (made on demand).
    slots: Vec<BytesMut>,
    /// The core's record of each message of the last receive.
    meta: Vec<RecvMeta>,
    /// Spare capacity each slot needs before a receive.
    slot_len: usize,
    /// Slots offered per receive now.
    active: usize,
    /// Messages the last receive filled (`slots[..filled]`, `meta[..filled]`).
    filled: usize,
    /// The next of those to start cutting into datagrams.
    next: usize,
    /// What is left of the message being cut (frozen from its slot): the
    /// one started last, so its metadata is `meta[next - 1]`.
    current: Bytes,
    /// Bytes of that message already handed out.
    at: usize,
    errors: ErrorWatch,
}

/// Slots a stream starts with (256 KiB at 64 KiB each).
const INITIAL_SLOTS: usize = 4;

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
        Self::with_capacity(socket, volley::DEFAULT_SLOTS, volley::DEFAULT_SLOT_LEN)
    }

    /// A stream shaped like `batch` (its slot count and slot length; the
    /// batch itself is not kept): see [`DatagramStream::with_capacity`].
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
        Self::with_capacity(socket, batch.slots(), batch.slot_len())
    }

    /// A stream offering up to `slots` messages per receive (clamped to
    /// `1..=64`), each slot of `slot_len` bytes (clamped to `1..=1 MiB`; a
    /// GRO socket needs 64 KiB). It starts with 4 slots and doubles while
    /// receives come back full.
    ///
    /// ```
    /// use volley_tokio::{volley::Config, DatagramStream, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind_with(&Config::new().gro(false), "127.0.0.1:0".parse().unwrap())?;
    /// let stream = DatagramStream::with_capacity(&sock, 64, 2048);
    /// # let _ = stream;
    /// # Ok(()) }
    /// ```
    pub fn with_capacity(socket: S, slots: usize, slot_len: usize) -> Self {
        let max = slots.clamp(1, volley::MAX_SLOTS);
        Self {
            socket,
            slots: Vec::with_capacity(max),
            meta: vec![RecvMeta::default(); max],
            slot_len: slot_len.clamp(1, volley::MAX_SLOT_LEN),
            active: INITIAL_SLOTS.min(max),
            filled: 0,
            next: 0,
            current: Bytes::new(),
            at: 0,
            errors: ErrorWatch::default(),
        }
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
        let current = if self.current.is_empty() {
            0
        } else {
            datagrams_in(self.current.len(), self.meta[self.next - 1].segment_size)
        };
        let queued: usize = self.meta[self.next..self.filled].iter().map(|m| datagrams_in(m.len, m.segment_size)).sum();
        current + queued
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
            if let Some(d) = self.next_datagram() {
                return Ok(d);
            }
            self.prepare();
            let socket = self.socket.borrow();
            let (slots, meta, errors) =
                (&mut self.slots[..self.active], &mut self.meta[..self.active], &mut self.errors);
            // The async form waits with its own waiter, so streams in
            // several tasks may share one socket; beside it, the error
            // watch drains ICMP errors that arrive alone.
            let got = {
                let mut readable = std::pin::pin!(socket.readable_now());
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(r) = readable.as_mut().poll(cx) {
                        return Poll::Ready(Some(r.and_then(|()| socket.try_recv_bytes(slots, meta))));
                    }
                    ready!(socket.poll_drain_errors(cx, errors));
                    Poll::Ready(None) // drained: receive again
                })
                .await
            };
            match got {
                None => {}
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Some(Ok(n)) => self.fill(n),
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
            if let Some(d) = self.next_datagram() {
                return Poll::Ready(Ok(d));
            }
            if skipped >= ICMP_SKIPS {
                // A flood of ICMP errors: let other tasks run, come back.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.prepare();
            let socket = self.socket.borrow();
            match socket.poll_recv_bytes(cx, &mut self.slots[..self.active], &mut self.meta[..self.active]) {
                Poll::Ready(Ok(n)) => self.fill(n),
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
            if let Some(d) = self.next_datagram() {
                return Ok(d);
            }
            self.prepare();
            match self.socket.borrow().try_recv_bytes(&mut self.slots[..self.active], &mut self.meta[..self.active]) {
                Ok(n) => self.fill(n),
                Err(e) if volley::is_icmp_error(&e) && skipped < ICMP_SKIPS => {
                    skipped += 1;
                    skip_icmp(&e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives each active slot `slot_len` bytes of spare capacity: its old
    /// allocation back if every datagram cut from it was dropped, else a
    /// new one. The only allocations in this path.
    fn prepare(&mut self) {
        while self.slots.len() < self.active {
            self.slots.push(BytesMut::new());
        }
        for slot in &mut self.slots[..self.active] {
            if slot.capacity() - slot.len() < self.slot_len && !slot.try_reclaim(self.slot_len) {
                *slot = BytesMut::with_capacity(self.slot_len);
            }
        }
    }

    /// Records that the last receive filled `n` messages; widens the next
    /// receive when every slot was used. The datagrams are cut from them one
    /// at a time, as they are asked for ([`DatagramStream::next_datagram`]),
    /// so a received datagram is written once: into what the poll returns.
    fn fill(&mut self, n: usize) {
        self.filled = n;
        self.next = 0;
        if n == self.active && self.active < self.meta.len() {
            // Every slot was used: the traffic may need more.
            self.active = (self.active * 2).min(self.meta.len());
        }
    }

    /// The next datagram of the last receive, if any is left: the next
    /// segment of the message being cut, else the first of the next message
    /// (frozen into one `Bytes`; each datagram is split off its front, the
    /// last takes what remains, so no `Bytes` of the stream's own holds a
    /// slot once its datagrams are out: the slot is reclaimed as soon as
    /// the application drops them).
    fn next_datagram(&mut self) -> Option<Datagram> {
        if self.current.is_empty() {
            if self.next >= self.filled {
                return None;
            }
            let i = self.next;
            self.next += 1;
            let mut message = self.slots[i].split().freeze();
            message.truncate(self.meta[i].len);
            if message.is_empty() {
                // An empty datagram: one, with no bytes.
                let mut meta = self.meta[i];
                meta.len = 0;
                return Some(Datagram { meta, payload: message });
            }
            self.current = message;
            self.at = 0;
        }
        let m = &self.meta[self.next - 1];
        let payload = if m.segment_size == 0 || self.current.len() <= m.segment_size {
            std::mem::take(&mut self.current)
        } else {
            self.current.split_to(m.segment_size)
        };
        self.at += payload.len();
        let mut meta = *m;
        meta.len = payload.len();
        // Only the datagram that reaches the end of a cut-short message
        // lost bytes.
        meta.truncated = m.truncated && self.at == m.len;
        Some(Datagram { meta, payload })
    }
}

/// Datagrams in a message of `len` bytes cut at `stride` (0: not
/// coalesced); an empty message is one empty datagram.
fn datagrams_in(len: usize, stride: usize) -> usize {
    if stride == 0 {
        1
    } else {
        len.div_ceil(stride).max(1)
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
