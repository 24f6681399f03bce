//! [`SendQueue`]: a bounded queue of outgoing datagrams that leaves in as
//! few syscalls as the kernel allows.
//!
//! # How a flush plans a batch
//!
//! ```text
//!  queue (in push order)          groups (one Transmit each)        sendmmsg
//!  0: A 1200 ----------------+--> g0: A, stride 1200: 0,2,3 (GSO) --+
//!  1: B  300 ------------+   |                                      |
//!  2: A 1200 ------------|---+    g1: B, one datagram: 1 ------------+--> one call,
//!  3: A  800 (shorter:   |   +                                      |   up to 64
//!     closes g0) --------|---+    g2: A, stride 1200: 4 ------------+   transmits
//!  4: A 1200 ------------|------>                                   |
//!                        +-----> (B continues in g1 if more come)
//! ```
//!
//! Each destination has at most one open group, its latest. A datagram
//! joins it if it has the group's ECN, DSCP and source address and the
//! group's size; a shorter one joins as the last segment and closes the
//! group; anything else closes it and starts a new one. A group also closes at [`Capabilities::max_gso_segments`]
//! datagrams or when the next one would take the train past what one UDP
//! send may carry (65,507 bytes over IPv4, 65,527 over IPv6). Groups leave
//! in the order they were opened, so datagrams to one destination keep their
//! order; different destinations may interleave differently than pushed.
//!
//! A GSO train must be contiguous, so the datagrams of a multi-datagram
//! group are copied into one reusable staging buffer; a group of one is sent
//! straight from its `Bytes`. After warm-up a flush allocates nothing.
//!
//! [`Capabilities::max_gso_segments`]: volley::Capabilities::max_gso_segments

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use volley::{Dscp, Ecn, Transmit};

use crate::UdpSocket;

/// Transmits per send call: one `sendmmsg` chunk of the core.
const MAX_BATCH: usize = 64;
/// Default queue bound, in datagrams.
const DEFAULT_CAPACITY: usize = 1024;

/// One datagram waiting in a [`SendQueue`]: where it goes, what it
/// carries, and its per-datagram IP options.
///
/// ```
/// use bytes::Bytes;
/// use volley_tokio::{volley::Ecn, Outgoing};
/// let d = Outgoing::new("127.0.0.1:4433".parse().unwrap(), Bytes::from_static(b"hello"))
///     .with_ecn(Ecn::Ect0)
///     .with_src_ip("127.0.0.2".parse().unwrap());
/// assert_eq!(d.payload.len(), 5);
/// // Or from a pair:
/// let d: Outgoing = ("127.0.0.1:4433".parse().unwrap(), Bytes::from_static(b"x")).into();
/// assert_eq!(d.ecn, Ecn::NotEct);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outgoing {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram.
    pub payload: Bytes,
    /// ECN codepoint for the IP header.
    pub ecn: Ecn,
    /// DSCP for the IP header; `None` keeps the socket's.
    pub dscp: Option<Dscp>,
    /// Source address to send from (for a wildcard-bound socket).
    pub src_ip: Option<IpAddr>,
}

impl Outgoing {
    /// `payload` to `destination`, no ECN, the socket's DSCP and source.
    ///
    /// ```
    /// let d = volley_tokio::Outgoing::new("[::1]:443".parse().unwrap(), vec![1, 2, 3]);
    /// assert_eq!(&d.payload[..], &[1, 2, 3]);
    /// ```
    pub fn new(destination: SocketAddr, payload: impl Into<Bytes>) -> Self {
        Self { destination, payload: payload.into(), ecn: Ecn::NotEct, dscp: None, src_ip: None }
    }

    /// Sets the ECN codepoint.
    ///
    /// ```
    /// let d = volley_tokio::Outgoing::new("[::1]:443".parse().unwrap(), vec![0])
    ///     .with_ecn(volley::Ecn::Ect1);
    /// assert_eq!(d.ecn, volley::Ecn::Ect1);
    /// ```
    pub fn with_ecn(mut self, ecn: Ecn) -> Self {
        self.ecn = ecn;
        self
    }

    /// Sets the DSCP.
    ///
    /// ```
    /// let d = volley_tokio::Outgoing::new("[::1]:443".parse().unwrap(), vec![0])
    ///     .with_dscp(volley::Dscp::EF);
    /// assert_eq!(d.dscp, Some(volley::Dscp::EF));
    /// ```
    pub fn with_dscp(mut self, dscp: Dscp) -> Self {
        self.dscp = Some(dscp);
        self
    }

    /// Sets the source address.
    ///
    /// ```
    /// let d = volley_tokio::Outgoing::new("127.0.0.1:443".parse().unwrap(), vec![0])
    ///     .with_src_ip("127.0.0.3".parse().unwrap());
    /// assert!(d.src_ip.is_some());
    /// ```
    pub fn with_src_ip(mut self, src_ip: IpAddr) -> Self {
        self.src_ip = Some(src_ip);
        self
    }

    /// Same IP options: may share a GSO train.
    fn same_options(&self, other: &Self) -> bool {
        self.ecn == other.ecn && self.dscp == other.dscp && self.src_ip == other.src_ip
    }
}

impl From<(SocketAddr, Bytes)> for Outgoing {
    fn from((destination, payload): (SocketAddr, Bytes)) -> Self {
        Self::new(destination, payload)
    }
}

/// A bounded queue of [`Outgoing`] datagrams that coalesces them into GSO
/// trains (same destination, same size) and sends many trains and
/// destinations with one `sendmmsg`; see the module docs for the plan.
///
/// Push with [`SendQueue::try_push`] / [`SendQueue::push`] (or through the
/// [`Sink`](futures_sink::Sink) implementation), then [`SendQueue::flush`].
/// Nothing is sent until a flush, or until a `push` finds the queue full.
///
/// ```
/// use bytes::Bytes;
/// use volley_tokio::{volley::RecvBatch, Outgoing, SendQueue, UdpSocket};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let tx = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0".parse().unwrap())?);
/// let rx = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
/// let to = rx.local_addr()?;
///
/// let mut queue = SendQueue::new(tx);
/// for i in 0..10u8 {
///     queue.push(Outgoing::new(to, Bytes::from(vec![i; 1200]))).await?;
/// }
/// queue.flush().await?; // one GSO transmit of ten datagrams
///
/// let mut batch = RecvBatch::new();
/// let mut got = 0;
/// while got < 10 {
///     rx.recv_batch(&mut batch).await?;
///     for (_, payload) in batch.iter() {
///         assert_eq!(payload, &[got as u8; 1200][..]);
///         got += 1;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SendQueue<S = Arc<UdpSocket>> {
    socket: S,
    queue: VecDeque<Outgoing>,
    capacity: usize,
    plan: Plan,
    staging: Vec<u8>,
}

/// Datagrams of one transmit.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// Queue index of the first datagram.
    first: usize,
    /// Size of every datagram but the last (the GSO stride).
    stride: usize,
    /// Datagrams.
    count: usize,
    /// Payload bytes.
    bytes: usize,
    /// May take more datagrams.
    open: bool,
    /// Where the train starts in the staging buffer (count > 1).
    staged_at: usize,
}

/// What one flush round sends: groups and, per planned queue entry, its
/// group. Reused between rounds.
#[derive(Debug, Default)]
struct Plan {
    groups: Vec<Group>,
    /// `group_of[i]` for queue entries `0..group_of.len()`.
    group_of: Vec<usize>,
}

impl Plan {
    /// Groups a prefix of `queue` into at most [`MAX_BATCH`] transmits of at
    /// most `max_segments` datagrams each.
    fn build(&mut self, queue: &VecDeque<Outgoing>, max_segments: usize) {
        self.groups.clear();
        self.group_of.clear();
        for (i, d) in queue.iter().enumerate() {
            let len = d.payload.len();
            let limit = if d.destination.ip().to_canonical().is_ipv4() {
                volley::MAX_PAYLOAD_V4
            } else {
                volley::MAX_PAYLOAD_V6
            };
            // The open group of this destination, if any: at most one, the
            // latest, so joining it never passes an earlier datagram.
            let open = self.groups.iter().rposition(|g| g.open && queue[g.first].destination == d.destination);
            if let Some(gi) = open {
                let g = &mut self.groups[gi];
                let fits = len > 0 && len <= g.stride && g.bytes + len <= limit && g.count < max_segments;
                if fits && queue[g.first].same_options(d) {
                    g.count += 1;
                    g.bytes += len;
                    // A shorter datagram ends the train; so does a full one.
                    g.open = len == g.stride && g.count < max_segments && g.bytes + g.stride <= limit;
                    self.group_of.push(gi);
                    continue;
                }
                g.open = false;
            }
            if self.groups.len() == MAX_BATCH {
                break; // the rest waits for the next round, order intact
            }
            let open = max_segments > 1 && len > 0 && 2 * len <= limit;
            self.groups.push(Group { first: i, stride: len, count: 1, bytes: len, open, staged_at: 0 });
            self.group_of.push(self.groups.len() - 1);
        }
    }
}

impl<S: Borrow<UdpSocket>> SendQueue<S> {
    /// A queue of at most 1024 datagrams.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let q = volley_tokio::SendQueue::new(&sock);
    /// assert_eq!(q.capacity(), 1024);
    /// # Ok(()) }
    /// ```
    pub fn new(socket: S) -> Self {
        Self::with_capacity(socket, DEFAULT_CAPACITY)
    }

    /// A queue of at most `capacity` datagrams (at least 1).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let q = volley_tokio::SendQueue::with_capacity(&sock, 64);
    /// assert_eq!(q.capacity(), 64);
    /// # Ok(()) }
    /// ```
    pub fn with_capacity(socket: S, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            socket,
            queue: VecDeque::with_capacity(capacity),
            capacity,
            plan: Plan {
                groups: Vec::with_capacity(MAX_BATCH),
                group_of: Vec::with_capacity(capacity.min(MAX_BATCH * 64)),
            },
            staging: Vec::new(),
        }
    }

    /// The socket.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let q = volley_tokio::SendQueue::new(&sock);
    /// assert_eq!(q.get_ref().local_addr()?, sock.local_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn get_ref(&self) -> &UdpSocket {
        self.socket.borrow()
    }

    /// Most datagrams the queue holds.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// assert_eq!(volley_tokio::SendQueue::with_capacity(&sock, 0).capacity(), 1);
    /// # Ok(()) }
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Datagrams waiting.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut q = volley_tokio::SendQueue::new(&sock);
    /// q.try_push(volley_tokio::Outgoing::new(sock.local_addr()?, vec![1])).unwrap();
    /// assert_eq!(q.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True if nothing waits.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// assert!(volley_tokio::SendQueue::new(&sock).is_empty());
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues `datagram` if there is room; gives it back if the queue is
    /// full.
    ///
    /// ```
    /// use volley_tokio::{Outgoing, SendQueue, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut q = SendQueue::with_capacity(&sock, 1);
    /// let d = Outgoing::new(sock.local_addr()?, vec![1]);
    /// assert!(q.try_push(d.clone()).is_ok());
    /// assert_eq!(q.try_push(d.clone()), Err(d));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The datagram itself, when the queue is full.
    pub fn try_push(&mut self, datagram: Outgoing) -> Result<(), Outgoing> {
        if self.queue.len() >= self.capacity {
            return Err(datagram);
        }
        self.queue.push_back(datagram);
        Ok(())
    }

    /// Queues `datagram`, first sending queued ones (waiting for the socket
    /// as needed) if the queue is full.
    ///
    /// ```
    /// use volley_tokio::{Outgoing, SendQueue, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let mut q = SendQueue::with_capacity(&sock, 4);
    /// for _ in 0..10 {
    ///     q.push(Outgoing::new(peer.local_addr()?, vec![0; 100])).await?; // flushes as it fills
    /// }
    /// assert!(q.len() <= 4);
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled, `datagram` was not queued (and is dropped)
    /// and every queued datagram was either sent or is still queued.
    ///
    /// # Errors
    /// As [`SendQueue::flush`], when making room fails; `datagram` is then
    /// not queued.
    pub async fn push(&mut self, datagram: Outgoing) -> io::Result<()> {
        while self.queue.len() >= self.capacity {
            self.send_round_waiting().await?;
        }
        self.queue.push_back(datagram);
        Ok(())
    }

    /// Sends everything queued, waiting for the socket as needed.
    ///
    /// ```
    /// use volley_tokio::{Outgoing, SendQueue, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut q = SendQueue::new(&sock);
    /// q.try_push(Outgoing::new(sock.local_addr()?, vec![1; 10])).unwrap();
    /// q.flush().await?;
    /// assert!(q.is_empty());
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: each datagram is either sent (and gone from the queue)
    /// or still queued.
    ///
    /// # Errors
    /// The first send error other than `WouldBlock` (see
    /// [`UdpSocket::try_send_batch`]); it concerns the first transmit not
    /// sent (one GSO train or one datagram), whose datagrams are dropped
    /// from the queue; the rest stay: flush again to go on. An ICMP error
    /// that an earlier datagram left pending on the socket never costs a
    /// queued datagram: the core retries past it (and keeps it for
    /// [`volley::Socket::try_recv_error`]), and this queue retries once more
    /// before it believes an ICMP-derived error ([`volley::is_icmp_error`])
    /// concerns the transmit.
    pub async fn flush(&mut self) -> io::Result<()> {
        while !self.queue.is_empty() {
            self.send_round_waiting().await?;
        }
        Ok(())
    }

    /// One batch, waiting for room with a waiter of its own (so queues in
    /// several tasks may share one socket).
    async fn send_round_waiting(&mut self) -> io::Result<()> {
        loop {
            match self.send_round() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.socket.borrow().writable().await?,
                other => return other,
            }
        }
    }

    /// Polls to send everything queued. Like every tokio `poll_*` method,
    /// it wakes only the last task that polled the socket for writing: when
    /// several tasks send on one socket, use [`SendQueue::flush`].
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use volley_tokio::{Outgoing, SendQueue, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut q = SendQueue::new(&sock);
    /// q.try_push(Outgoing::new(sock.local_addr()?, vec![1; 10])).unwrap();
    /// poll_fn(|cx| q.poll_flush(cx)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`SendQueue::flush`].
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.queue.is_empty() {
            ready!(self.poll_send_round(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Polls until the queue has room for one more datagram.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// let mut q = volley_tokio::SendQueue::new(&sock);
    /// poll_fn(|cx| q.poll_ready(cx)).await?; // empty: room at once
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`SendQueue::flush`].
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.queue.len() >= self.capacity {
            ready!(self.poll_send_round(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// One planned batch: waits for write readiness, sends with one
    /// `try_send_batch`, drops what left. Retries only on `WouldBlock`.
    fn poll_send_round(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.socket.borrow().poll_send_ready(cx))?;
            match self.send_round() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// Plans, stages and sends one batch without waiting; removes what was
    /// sent (and the failing transmit's datagrams on a hard error).
    fn send_round(&mut self) -> io::Result<()> {
        let socket: &UdpSocket = self.socket.borrow();
        let max_segments = socket.capabilities().max_gso_segments.max(1);
        self.plan.build(&self.queue, max_segments);
        let groups = &mut self.plan.groups;

        // Stage multi-datagram groups contiguously.
        let mut staged = 0;
        for g in groups.iter_mut().filter(|g| g.count > 1) {
            g.staged_at = staged;
            staged += g.bytes;
        }
        if self.staging.len() < staged {
            self.staging.resize(staged, 0);
        }
        let mut fill = [0usize; MAX_BATCH];
        for (i, &gi) in self.plan.group_of.iter().enumerate() {
            let g = &groups[gi];
            if g.count > 1 {
                let payload = &self.queue[i].payload;
                let at = g.staged_at + fill[gi];
                self.staging[at..at + payload.len()].copy_from_slice(payload);
                fill[gi] += payload.len();
            }
        }

        let placeholder: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut transmits = [Transmit::new(placeholder, &[]); MAX_BATCH];
        for (t, g) in transmits.iter_mut().zip(groups.iter()) {
            let head = &self.queue[g.first];
            *t = if g.count > 1 {
                Transmit::new(head.destination, &self.staging[g.staged_at..g.staged_at + g.bytes])
                    .with_segment_size(g.stride)
            } else {
                Transmit::new(head.destination, &head.payload)
            };
            t.ecn = head.ecn;
            t.dscp = head.dscp;
            t.src_ip = head.src_ip;
        }
        let transmits = &transmits[..groups.len()];
        let mut result = socket.try_send_batch(transmits);
        if matches!(&result, Err(e) if volley::is_icmp_error(e)) {
            // The core retried once past an error an earlier datagram left
            // pending; another may have come in between (an ICMP flood):
            // once more before the first group is given up.
            result = socket.try_send_batch(transmits);
        }

        // Remove what left: whole groups before `sent`, then `segments` of
        // group `sent`.
        let (sent, segments, error) = match result {
            Ok(sent) => (sent.transmits, sent.segments, None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
            // The error concerns transmits[0], nothing was sent: drop it.
            Err(e) => (0, groups[0].count, Some(e)),
        };
        let group_of = &self.plan.group_of;
        let mut i = 0;
        let mut taken = 0;
        self.queue.retain(|_| {
            let keep = match group_of.get(i) {
                Some(&g) if g < sent => false,
                Some(&g) if g == sent && taken < segments => {
                    taken += 1;
                    false
                }
                _ => true,
            };
            i += 1;
            keep
        });
        error.map_or(Ok(()), Err)
    }
}

impl<S: Borrow<UdpSocket> + Unpin> futures_sink::Sink<Outgoing> for SendQueue<S> {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Outgoing) -> io::Result<()> {
        // poll_ready made room; if the caller skipped it, go over the bound
        // rather than lose the datagram.
        self.get_mut().queue.push_back(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(port: u16, len: usize) -> Outgoing {
        Outgoing::new(SocketAddr::from(([127, 0, 0, 1], port)), vec![0u8; len])
    }

    /// (first, stride, count, bytes) of a group.
    type Shape = (usize, usize, usize, usize);

    /// Each group's shape, and each entry's group.
    fn plan(items: &[Outgoing], max: usize) -> (Vec<Shape>, Vec<usize>) {
        let q: VecDeque<_> = items.iter().cloned().collect();
        let mut p = Plan::default();
        p.build(&q, max);
        (p.groups.iter().map(|g| (g.first, g.stride, g.count, g.bytes)).collect(), p.group_of)
    }

    #[test]
    fn coalesces_equal_sizes_per_destination() {
        let items = [d(1, 1200), d(2, 300), d(1, 1200), d(1, 800), d(1, 1200), d(2, 300)];
        let (groups, of) = plan(&items, 64);
        assert_eq!(groups, [(0, 1200, 3, 3200), (1, 300, 2, 600), (4, 1200, 1, 1200)]);
        assert_eq!(of, [0, 1, 0, 0, 2, 1]);
    }

    #[test]
    fn longer_datagram_starts_a_new_group() {
        let (groups, _) = plan(&[d(1, 500), d(1, 1200), d(1, 1200)], 64);
        assert_eq!(groups, [(0, 500, 1, 500), (1, 1200, 2, 2400)]);
    }

    #[test]
    fn respects_segment_and_byte_limits() {
        let items: Vec<_> = (0..10).map(|_| d(1, 1000)).collect();
        let (groups, _) = plan(&items, 4);
        assert_eq!(groups.iter().map(|g| g.2).collect::<Vec<_>>(), [4, 4, 2]);

        let items: Vec<_> = (0..100).map(|_| d(1, 1400)).collect();
        let (groups, _) = plan(&items, 128);
        assert!(groups.iter().all(|g| g.3 <= volley::MAX_PAYLOAD_V4));
        assert_eq!(groups[0].2, volley::MAX_PAYLOAD_V4 / 1400);
        assert_eq!(groups.iter().map(|g| g.2).sum::<usize>(), 100);
    }

    #[test]
    fn no_gso_means_one_datagram_per_transmit() {
        let (groups, _) = plan(&[d(1, 100), d(1, 100), d(1, 100)], 1);
        assert_eq!(groups.len(), 3);
    }

    #[test]
    fn empty_datagrams_are_never_merged() {
        let (groups, _) = plan(&[d(1, 0), d(1, 0), d(1, 10), d(1, 0)], 64);
        assert_eq!(groups.len(), 4);
    }

    #[test]
    fn different_ecn_is_a_different_train_in_order() {
        let items = [d(1, 100), d(1, 100).with_ecn(Ecn::Ect0), d(1, 100), d(2, 100), d(1, 100)];
        let (groups, of) = plan(&items, 64);
        assert_eq!(groups, [(0, 100, 1, 100), (1, 100, 1, 100), (2, 100, 2, 200), (3, 100, 1, 100)]);
        assert_eq!(of, [0, 1, 2, 3, 2]);
    }

    #[test]
    fn stops_at_max_batch_keeping_order() {
        // 70 destinations: 64 groups this round, the rest unplanned.
        let items: Vec<_> = (0..70).map(|p| d(p + 1, 10)).collect();
        let (groups, of) = plan(&items, 64);
        assert_eq!(groups.len(), MAX_BATCH);
        assert_eq!(of.len(), MAX_BATCH);
    }
}
