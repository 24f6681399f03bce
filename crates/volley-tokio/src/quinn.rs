//! quinn on volley: [`QuinnSocket`] implements [`quinn::AsyncUdpSocket`],
//! so a [`quinn::Endpoint`] sends and receives through volley (feature
//! `quinn`).
//!
//! # Mapping
//!
//! | quinn                          | volley                                   |
//! |--------------------------------|------------------------------------------|
//! | `Transmit::destination`        | [`Transmit::destination`]                |
//! | `Transmit::contents`           | [`Transmit::contents`]                   |
//! | `Transmit::segment_size`       | [`Transmit::segment_size`] (GSO)         |
//! | `Transmit::ecn` (`None` = not) | [`Transmit::ecn`] (`NotEct`)             |
//! | `Transmit::src_ip`             | [`Transmit::src_ip`] (dropped where [`Capabilities::src_send`] is false: Wine) |
//! | `RecvMeta::addr`               | [`RecvMeta::src`](volley::RecvMeta::src) |
//! | `RecvMeta::len` / `stride`     | message `len` / `segment_size` (GRO)     |
//! | `RecvMeta::ecn`                | `ecn` (`NotEct` becomes `None`)          |
//! | `RecvMeta::dst_ip`             | `dst_ip`                                 |
//! | `max_transmit_segments`        | [`Capabilities::max_gso_segments`]       |
//! | `max_receive_segments`         | 64 with GRO, else 1                      |
//! | `may_fragment`                 | `volley::Socket::may_fragment` (`false` when bound here: `Pmtud::Probe`) |
//!
//! # Receive path
//!
//! quinn hands `poll_recv` its own buffers, and the kernel writes straight
//! into them: one `recvmmsg` per call, one buffer per message (a datagram,
//! or a GRO train with its stride), no copy, no second batch
//! ([`UdpSocket::poll_recv`]). A receive that empties the kernel's queue
//! clears tokio's readiness, so the next poll waits for the next datagram
//! instead of spending a syscall to learn the queue is empty.
//!
//! quinn sizes each buffer for `max_receive_segments` datagrams (64 with
//! GRO: more than the 64 KiB a GRO train can fill). A caller that passes
//! smaller buffers on a GRO socket gets a copying path instead (a
//! [`RecvBatch`] allocated on first use; messages that do not fit one call's
//! buffers wait there for the next), never an error.
//!
//! # ICMP errors
//!
//! quinn's endpoint driver stops on any receive error but
//! `ConnectionReset`, so `poll_recv` never returns an error the kernel
//! derived from ICMP about an earlier datagram ([`volley::is_icmp_error`]:
//! unreachables, packet too big, time exceeded, parameter problem,
//! administratively prohibited, ...): each is logged at debug and skipped.
//! With [`Config::recv_errors`] on (to learn path MTUs), the core keeps
//! them, with details, for [`volley::Socket::try_recv_error`]
//! (`socket.get_ref().get_ref().try_recv_error()`), and the receive path
//! also wakes when only errors arrive, so they never fill the receive
//! buffer of an idle endpoint.
//!
//! # Send errors
//!
//! Like quinn's own socket, `try_send` reports only `WouldBlock`. A datagram
//! the path refuses (`EMSGSIZE`, as an MTU probe expects) is dropped
//! silently, any other failure is dropped with a rate-limited warning: QUIC
//! recovers from loss, and an error here would close the connection.
//!
//! [`Capabilities::max_gso_segments`]: volley::Capabilities::max_gso_segments
//! [`Capabilities::src_send`]: volley::Capabilities::src_send

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use quinn::udp::{EcnCodepoint, RecvMeta as QuinnRecvMeta, Transmit as QuinnTransmit};
use volley::{Config, Ecn, Pmtud, RecvBatch, Transmit};

use crate::socket::ErrorWatch;
use crate::UdpSocket;

/// Segments per GRO train the kernel builds at most (`UDP_GRO_CNT_MAX`).
const GRO_SEGMENTS: usize = 64;
/// One warning per this interval for dropped sends.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// A [`UdpSocket`] as quinn's socket abstraction.
///
/// Hand it to [`quinn::Endpoint::new_with_abstract_socket`] in an `Arc`:
///
/// ```
/// use std::sync::Arc;
/// use volley_tokio::quinn::QuinnSocket;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let socket = QuinnSocket::bind("127.0.0.1:0".parse().unwrap())?;
/// let endpoint = quinn::Endpoint::new_with_abstract_socket(
///     quinn::EndpointConfig::default(),
///     None, // a client; pass a ServerConfig to accept connections
///     Arc::new(socket),
///     Arc::new(quinn::TokioRuntime),
/// )?;
/// assert_ne!(endpoint.local_addr()?.port(), 0);
/// # Ok(()) }
/// ```
pub struct QuinnSocket {
    socket: UdpSocket,
    recv: Mutex<RecvState>,
    may_fragment: bool,
    last_warning: Mutex<Option<Instant>>,
}

/// Receive scratch: the core's metadata per message, and a fallback batch
/// for callers whose buffers are too small for a GRO train.
struct RecvState {
    /// One core record per buffer quinn passes (allocated once).
    meta: Vec<volley::RecvMeta>,
    /// Only for buffers under 64 KiB on a GRO socket (quinn's own are
    /// larger): received here and copied out. Allocated on first use.
    batch: Option<RecvBatch>,
    /// Next message of `batch` to hand out.
    next: usize,
    /// Bytes of message `next` already handed out.
    offset: usize,
    /// Wakes the receive when only ICMP errors arrive (error queue on).
    errors: ErrorWatch,
}

impl QuinnSocket {
    /// Binds a volley socket for quinn: the default [`Config`] with
    /// [`Pmtud::Probe`] (don't fragment, ignore the kernel's path-MTU cache),
    /// which quinn's path-MTU discovery needs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use quinn::AsyncUdpSocket;
    /// let s = volley_tokio::quinn::QuinnSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// assert!(!s.may_fragment());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`UdpSocket::bind_with`].
    ///
    /// # Panics
    /// As [`UdpSocket::new`].
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(&Config::new(), addr)
    }

    /// Binds with `config`, setting [`Pmtud::Probe`] over whatever it says
    /// about path-MTU discovery.
    ///
    /// ```
    /// use volley_tokio::{quinn::QuinnSocket, volley::Config};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let config = Config::new().recv_buffer_size(4 << 20).send_buffer_size(4 << 20);
    /// let s = QuinnSocket::bind_with(&config, "127.0.0.1:0".parse().unwrap())?;
    /// assert!(s.get_ref().get_ref().recv_buffer_size().granted > 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`UdpSocket::bind_with`].
    ///
    /// # Panics
    /// As [`UdpSocket::new`].
    ///
    /// A stack without path-MTU modes (Windows before 10 1703, Wine)
    /// refuses [`Pmtud::Probe`] as `Unsupported`: the socket is then bound
    /// as `config` says, and [`quinn::AsyncUdpSocket::may_fragment`] reads
    /// true, so quinn keeps to its minimum MTU instead of probing.
    pub fn bind_with(config: &Config, addr: SocketAddr) -> io::Result<Self> {
        let socket = match UdpSocket::bind_with(&config.clone().pmtud(Pmtud::Probe), addr) {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                tracing::info!(error = %e, "path-MTU discovery mode refused; bound without it (may_fragment)");
                UdpSocket::bind_with(config, addr)?
            }
            other => other?,
        };
        Ok(Self::new(socket))
    }

    /// Wraps a socket bound elsewhere. quinn learns whether it may fragment
    /// from the socket itself ([`volley::Socket::may_fragment`]): bind with
    /// [`Pmtud::Do`] or [`Pmtud::Probe`] for quinn to run path-MTU discovery.
    ///
    /// ```
    /// use quinn::AsyncUdpSocket;
    /// use volley_tokio::{quinn::QuinnSocket, volley::{Config, Pmtud}, UdpSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let plain = QuinnSocket::new(UdpSocket::bind("127.0.0.1:0".parse().unwrap())?);
    /// assert!(plain.may_fragment());
    /// let probe = UdpSocket::bind_with(&Config::new().pmtud(Pmtud::Probe), "127.0.0.1:0".parse().unwrap())?;
    /// assert!(!QuinnSocket::new(probe).may_fragment());
    /// # Ok(()) }
    /// ```
    pub fn new(socket: UdpSocket) -> Self {
        let may_fragment = socket.get_ref().may_fragment();
        Self {
            socket,
            recv: Mutex::new(RecvState {
                meta: vec![volley::RecvMeta::default(); volley::MAX_SLOTS],
                batch: None,
                next: 0,
                offset: 0,
                errors: ErrorWatch::default(),
            }),
            may_fragment,
            last_warning: Mutex::new(None),
        }
    }

    /// The adapter socket.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let s = volley_tokio::quinn::QuinnSocket::bind("127.0.0.1:0".parse().unwrap())?;
    /// println!("{}", s.get_ref().capabilities());
    /// # Ok(()) }
    /// ```
    pub fn get_ref(&self) -> &UdpSocket {
        &self.socket
    }

    fn recv_state(&self) -> MutexGuard<'_, RecvState> {
        self.recv.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Logs a dropped send at most once per [`WARN_INTERVAL`].
    fn warn_dropped(&self, err: &io::Error, t: &QuinnTransmit<'_>) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_none_or(|at| now.duration_since(at) >= WARN_INTERVAL) {
            *last = Some(now);
            tracing::warn!(
                error = %err,
                destination = %t.destination,
                len = t.contents.len(),
                segment_size = ?t.segment_size,
                "volley: dropped a QUIC transmit (further drops logged at most once a minute)"
            );
        }
    }
}

impl fmt::Debug for QuinnSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuinnSocket")
            .field("socket", &self.socket)
            .field("may_fragment", &self.may_fragment)
            .finish_non_exhaustive()
    }
}

impl RecvState {
    /// Copies pending messages into `bufs`; returns how many entries of
    /// `bufs` / `meta` were filled.
    fn deliver(&mut self, bufs: &mut [IoSliceMut<'_>], meta: &mut [QuinnRecvMeta]) -> usize {
        let room = bufs.len().min(meta.len());
        let mut filled = 0;
        while filled < room {
            let Some((m, payload)) = self.batch.as_ref().and_then(|b| b.message(self.next)) else { break };
            let buf = &mut bufs[filled];
            let rest = &payload[self.offset..];
            let stride = if m.segment_size == 0 { rest.len().max(1) } else { m.segment_size };
            // (bytes copied, bytes of the message used up)
            let (take, used) = if rest.len() <= buf.len() {
                (rest.len(), rest.len()) // the rest of the message fits
            } else if buf.len() >= stride {
                let whole = buf.len() / stride * stride;
                (whole, whole) // whole segments; the others go in the next buffer
            } else {
                // A buffer smaller than one datagram: deliver what fits (quinn
                // will drop it as corrupt) and skip the segment's tail.
                (buf.len(), stride.min(rest.len()))
            };
            buf[..take].copy_from_slice(&rest[..take]);
            let mut m = *m;
            m.segment_size = stride;
            meta[filled] = to_quinn_meta(&m, take);
            filled += 1;
            self.offset += used;
            if self.offset >= payload.len() {
                self.next += 1;
                self.offset = 0;
            }
        }
        filled
    }

    fn pending(&self) -> bool {
        self.batch.as_ref().is_some_and(|b| self.next < b.message_count())
    }
}

impl quinn::AsyncUdpSocket for QuinnSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn quinn::UdpPoller>> {
        Box::pin(Poller { socket: self, wait: None })
    }

    fn try_send(&self, transmit: &QuinnTransmit<'_>) -> io::Result<()> {
        let mut t = to_volley_transmit(transmit);
        // quinn names the source it was reached on, a hint: where the stack
        // cannot apply it (src_send false: Wine) the datagram leaves from
        // the default address rather than being refused.
        if !self.socket.capabilities().src_send {
            t.src_ip = None;
        }
        match self.socket.try_send_batch(&[t]) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
            Err(e) => {
                // EMSGSIZE is what an MTU probe past the path expects.
                if !matches!(crate::socket::as_volley(&e), Some(volley::Error::MessageTooLong { .. })) {
                    self.warn_dropped(&e, transmit);
                }
                Ok(())
            }
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [QuinnRecvMeta],
    ) -> Poll<io::Result<usize>> {
        if bufs.is_empty() || meta.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut state = self.recv_state();
        let state = &mut *state;
        let gro = self.socket.capabilities().gro;
        let mut skipped = 0;
        loop {
            if state.pending() {
                // Non-empty `bufs`/`meta` (checked above) and a pending
                // message: at least one entry is filled.
                return Poll::Ready(Ok(state.deliver(bufs, meta)));
            }
            if skipped >= ICMP_SKIPS {
                // A flood of ICMP errors: let other tasks run, come back.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = bufs.len().min(meta.len()).min(state.meta.len());
            // The kernel writes straight into quinn's buffers, unless they
            // are too small for a GRO train (quinn sizes them for
            // `max_receive_segments`, so only another caller gets the
            // copying path).
            let direct = !gro || bufs[..n].iter().all(|b| b.len() >= volley::DEFAULT_SLOT_LEN);
            let polled = if direct {
                self.socket.poll_recv(cx, &mut bufs[..n], &mut state.meta[..n])
            } else {
                let batch = state.batch.get_or_insert_with(|| {
                    RecvBatch::with_capacity(quinn::udp::BATCH_SIZE.max(1), volley::DEFAULT_SLOT_LEN)
                });
                self.socket.poll_recv_batch(cx, batch)
            };
            match polled {
                Poll::Ready(Ok(k)) if direct => {
                    for (out, m) in meta.iter_mut().zip(&state.meta[..k]) {
                        *out = to_quinn_meta(m, m.len);
                    }
                    return Poll::Ready(Ok(k));
                }
                Poll::Ready(Ok(_)) => {
                    state.next = 0;
                    state.offset = 0;
                }
                // An ICMP error about an earlier datagram: says nothing about
                // this socket or other peers, and quinn ends the endpoint on
                // any receive error but ConnectionReset.
                Poll::Ready(Err(e)) if volley::is_icmp_error(&e) => {
                    tracing::debug!(error = %e, "volley: skipping an ICMP error on a QUIC socket (see try_recv_error)");
                    skipped += 1;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    ready!(self.socket.poll_drain_errors(cx, &mut state.errors));
                    skipped += 1; // drained: receive again (bounded too)
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.socket.capabilities().max_gso_segments.max(1)
    }

    fn max_receive_segments(&self) -> usize {
        if self.socket.capabilities().gro {
            GRO_SEGMENTS
        } else {
            1
        }
    }

    fn may_fragment(&self) -> bool {
        self.may_fragment
    }
}

/// Write-readiness for one quinn task: each poller owns its own waiter, so
/// any number of connections can wait on one socket.
struct Poller {
    socket: Arc<QuinnSocket>,
    wait: Option<Pin<Box<dyn Future<Output = io::Result<()>> + Send + Sync>>>,
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller").field("waiting", &self.wait.is_some()).finish_non_exhaustive()
    }
}

impl quinn::UdpPoller for Poller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let wait = this.wait.get_or_insert_with(|| {
            let socket = this.socket.clone();
            Box::pin(async move { socket.socket.writable().await })
        });
        let result = wait.as_mut().poll(cx);
        if result.is_ready() {
            this.wait = None;
        }
        result
    }
}

/// ICMP-derived errors one `poll_recv` skips before it yields.
const ICMP_SKIPS: usize = 64;

fn to_volley_transmit<'a>(t: &QuinnTransmit<'a>) -> Transmit<'a> {
    let mut out = Transmit::new(t.destination, t.contents);
    out.segment_size = t.segment_size;
    // The inverse of `to_quinn_ecn`: both are the two-bit IP field.
    out.ecn = Ecn::from_bits(t.ecn.map_or(0, |e| e as u8));
    out.src_ip = t.src_ip;
    out
}

/// quinn's record for `len` bytes of the message `m` describes.
fn to_quinn_meta(m: &volley::RecvMeta, len: usize) -> QuinnRecvMeta {
    let stride = if m.segment_size == 0 { len } else { m.segment_size };
    QuinnRecvMeta { addr: m.src, len, stride: stride.min(len).max(1), ecn: to_quinn_ecn(m.ecn), dst_ip: m.dst_ip }
}

fn to_quinn_ecn(ecn: Ecn) -> Option<EcnCodepoint> {
    EcnCodepoint::from_bits(ecn.bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecn_maps_both_ways() {
        for (v, q) in [
            (Ecn::Ect0, Some(EcnCodepoint::Ect0)),
            (Ecn::Ect1, Some(EcnCodepoint::Ect1)),
            (Ecn::Ce, Some(EcnCodepoint::Ce)),
            (Ecn::NotEct, None),
        ] {
            assert_eq!(to_quinn_ecn(v), q);
            let t = QuinnTransmit {
                destination: "127.0.0.1:1".parse().unwrap(),
                ecn: q,
                contents: b"x",
                segment_size: None,
                src_ip: None,
            };
            assert_eq!(to_volley_transmit(&t).ecn, v);
        }
    }

    #[test]
    fn transmit_fields_carry_over() {
        let data = [0u8; 3000];
        let t = QuinnTransmit {
            destination: "[::1]:4433".parse().unwrap(),
            ecn: Some(EcnCodepoint::Ect0),
            contents: &data,
            segment_size: Some(1200),
            src_ip: Some("::1".parse().unwrap()),
        };
        let v = to_volley_transmit(&t);
        assert_eq!(v.destination, t.destination);
        assert_eq!(v.contents.len(), 3000);
        assert_eq!(v.segment_size, Some(1200));
        assert_eq!(v.src_ip, t.src_ip);
        assert_eq!(v.segments(), 3);
    }
}
