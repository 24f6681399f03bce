//! What a synchronous datapath provides to the scenario loops: an
//! [`Endpoint`] holds one side's sockets and buffers and counts the syscalls
//! it makes. The tokio datapath is async and has its own loops
//! (`dp_tokio.rs`); everything else goes through this trait.
//!
//! ```text
//!   scenario loop                 Endpoint (per datapath)
//!   send_side ── send(plan) ───▶  trains → sendmsg / sendmmsg / send_to
//!   recv_side ── recv(on)   ───▶  Ready queue → recvmmsg / recvmsg / recv_from
//!                                    └─ epoll_wait when nothing is known readable
//! ```

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

/// The longest any receive or writability wait blocks, so every loop
/// notices a phase change within this time.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// Largest UDP payload of one IPv4 datagram (65535 - 20 - 8): a GSO train
/// can carry at most this many bytes in total.
pub(crate) const MAX_UDP_PAYLOAD: usize = 65_507;

/// Messages per `recvmmsg`/`sendmmsg` call wherever a datapath batches: the
/// same as quinn-udp's `BATCH_SIZE` and volley's default `RecvBatch`.
pub(crate) const BATCH: usize = 32;

/// How many `size`-byte datagrams fit in one GSO train.
pub(crate) fn fit_segments(size: usize) -> usize {
    (MAX_UDP_PAYLOAD / size.max(1)).max(1)
}

/// Socket options every datapath gets, so no baseline is handicapped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SockOpts {
    /// `SO_RCVBUF` requested (the kernel doubles it, capped by `rmem_max`).
    pub(crate) recv_buffer: usize,
    /// `SO_SNDBUF` requested.
    pub(crate) send_buffer: usize,
}

impl Default for SockOpts {
    fn default() -> Self {
        Self { recv_buffer: 4 << 20, send_buffer: 4 << 20 }
    }
}

/// What a side does with its sockets: decides blocking mode and which
/// readiness a datapath waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Only sends (bulk / fan-in / fan-out sender).
    Send,
    /// Only receives.
    Recv,
    /// Both (echo client and server).
    Both,
}

impl Role {
    pub(crate) fn interest(self) -> Interest {
        match self {
            Self::Send => Interest::WRITABLE,
            Self::Recv => Interest::READABLE,
            Self::Both => Interest::READABLE | Interest::WRITABLE,
        }
    }
}

/// `count` datagrams from local socket `from` to `to`: one entry of a send plan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Burst {
    pub(crate) from: usize,
    pub(crate) to: SocketAddr,
    pub(crate) count: usize,
}

/// A run of `segments` datagrams from one socket to one peer that a datapath
/// hands to the kernel as one unit (a GSO train, or one datagram).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Train {
    pub(crate) from: usize,
    pub(crate) to: SocketAddr,
    pub(crate) segments: usize,
}

/// Cuts a plan into trains of at most `max_segments` datagrams.
pub(crate) fn trains(plan: &[Burst], max_segments: usize) -> Vec<Train> {
    let max = max_segments.max(1);
    let mut out = Vec::new();
    for b in plan {
        let mut left = b.count;
        while left > 0 {
            let n = left.min(max);
            out.push(Train { from: b.from, to: b.to, segments: n });
            left -= n;
        }
    }
    out
}

/// Writes sequence numbers `seq, seq+1, ...` into the first 8 bytes of each
/// `size`-byte datagram of `buf`: the per-datagram work every sender does.
#[inline]
pub(crate) fn stamp(buf: &mut [u8], size: usize, seq: u64) {
    for (i, d) in buf.chunks_mut(size).enumerate() {
        let n = d.len().min(8);
        d[..n].copy_from_slice(&(seq + i as u64).to_le_bytes()[..n]);
    }
}

/// The sequence number a datagram carries (0 if it is shorter than 8 bytes).
#[inline]
pub(crate) fn seq_of(payload: &[u8]) -> u64 {
    payload.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// What every synchronous datapath implements. Methods count every syscall
/// they make (including ones answered `EAGAIN` and every `epoll_wait`) in
/// [`Endpoint::syscalls`].
pub(crate) trait Endpoint: Send + Sized {
    /// Binds `n` sockets on `127.0.0.1:0` configured for `role`.
    fn bind(n: usize, role: Role, opts: &SockOpts) -> io::Result<Self>;
    /// The sockets' local addresses, in index order.
    fn local_addrs(&self) -> io::Result<Vec<SocketAddr>>;
    /// Granted `(SO_RCVBUF, SO_SNDBUF)` of socket 0.
    fn buffer_sizes(&self) -> (usize, usize);
    /// Datagrams per GSO train this datapath uses for `size`-byte datagrams
    /// (1 = no GSO).
    fn train_segments(&self, size: usize) -> usize;
    /// One line on how this datapath sends and receives (for the report).
    fn describe(&self) -> String;
    /// Called once before the loop with the plan the sender repeats.
    fn prepare(&mut self, plan: &[Burst], size: usize);
    /// Sends the prepared plan once, stamping datagrams from `*seq` and
    /// advancing it by the datagrams the kernel accepted. Returns early
    /// (possibly with part unsent) once `stop()` is true.
    fn send_plan(&mut self, size: usize, seq: &mut u64, stop: &dyn Fn() -> bool) -> io::Result<u64>;
    /// Sends one datagram (echo).
    fn send_one(&mut self, from: usize, to: SocketAddr, payload: &[u8]) -> io::Result<()>;
    /// Receives what one receive call returns (waiting at most [`POLL`] if
    /// nothing is known to be readable) and calls `on(socket, src, payload)`
    /// per datagram, GRO trains split. Returns the datagrams delivered.
    fn recv<F: FnMut(usize, SocketAddr, &[u8])>(&mut self, on: F) -> io::Result<usize>;
    /// Syscalls made so far.
    fn syscalls(&self) -> u64;
}

/// A UDP socket on `127.0.0.1:0` with the shared buffer sizes, still
/// blocking.
pub(crate) fn socket(opts: &SockOpts) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_recv_buffer_size(opts.recv_buffer)?;
    s.set_send_buffer_size(opts.send_buffer)?;
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    Ok(s)
}

/// Granted `(SO_RCVBUF, SO_SNDBUF)` of any socket.
pub(crate) fn granted(fd: &impl std::os::fd::AsFd) -> (usize, usize) {
    let s = socket2::SockRef::from(fd);
    (s.recv_buffer_size().unwrap_or(0), s.send_buffer_size().unwrap_or(0))
}

/// Edge-triggered readiness over a side's sockets, with a queue of sockets
/// believed readable. A socket leaves the queue only when a receive on it
/// answered `EAGAIN`, which is what edge triggering requires; it re-enters
/// when epoll reports it. Every socket starts queued, so data that arrived
/// before registration is found.
#[derive(Debug)]
pub(crate) struct Ready {
    poll: Poll,
    events: Events,
    queue: VecDeque<usize>,
    queued: Vec<bool>,
    /// `epoll_wait` calls made.
    pub(crate) waits: u64,
}

impl Ready {
    pub(crate) fn new(n: usize) -> io::Result<Self> {
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(n.clamp(16, 1024)),
            queue: (0..n).collect(),
            queued: vec![true; n],
            waits: 0,
        })
    }

    /// Registers socket `i` (edge-triggered) for `role`'s readiness.
    pub(crate) fn register(&self, i: usize, fd: &impl AsRawFd, role: Role) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        self.poll.registry().register(&mut mio::unix::SourceFd(&raw), Token(i), role.interest())
    }

    /// The next socket to try; blocks in one `epoll_wait` (at most [`POLL`])
    /// when none is queued. `None` if the wait timed out.
    pub(crate) fn next(&mut self) -> io::Result<Option<usize>> {
        if self.queue.is_empty() {
            self.wait()?;
        }
        Ok(self.queue.pop_front().inspect(|&i| self.queued[i] = false))
    }

    /// Socket `i` returned data: it may hold more, try it again later.
    ///
    /// Batched receivers call this only when the batch came back full: a
    /// short `recvmmsg` means the kernel met an empty queue (it stops at
    /// the first `EAGAIN`), and anything that arrives later raises a new
    /// edge. The same rule for every recvmmsg datapath (quinn-udp, volley,
    /// raw) saves the extra `EAGAIN` call per readiness event.
    pub(crate) fn requeue(&mut self, i: usize) {
        if !self.queued[i] {
            self.queued[i] = true;
            self.queue.push_back(i);
        }
    }

    /// One `epoll_wait` of at most [`POLL`]; readable sockets are queued.
    pub(crate) fn wait(&mut self) -> io::Result<()> {
        self.waits += 1;
        match self.poll.poll(&mut self.events, Some(POLL)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for ev in &self.events {
            let i = ev.token().0;
            if (ev.is_readable() || ev.is_error()) && !self.queued[i] {
                self.queued[i] = true;
                self.queue.push_back(i);
            }
        }
        Ok(())
    }
}

/// True for the errors that mean "try again after waiting".
pub(crate) fn is_retry(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// One send as every blocking-free datapath does it: count the syscall, try
/// `op`; on `WouldBlock`/`EINTR` wait for readiness and try again, unless
/// `stop` says the window is over (then `Ok(None)`: not sent).
pub(crate) fn retry_send<T>(
    ready: &mut Ready,
    syscalls: &mut u64,
    stop: &dyn Fn() -> bool,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<Option<T>> {
    loop {
        *syscalls += 1;
        match op() {
            Ok(v) => return Ok(Some(v)),
            Err(e) if is_retry(&e) => {
                if stop() {
                    return Ok(None);
                }
                ready.wait()?;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trains_cut_at_the_cap() {
        let to = "127.0.0.1:9".parse().unwrap();
        let t = trains(&[Burst { from: 0, to, count: 130 }], 54);
        let segs: Vec<_> = t.iter().map(|t| t.segments).collect();
        assert_eq!(segs, [54, 54, 22]);
    }

    #[test]
    fn stamp_then_read_back() {
        let mut buf = vec![0u8; 3 * 100];
        stamp(&mut buf, 100, 7);
        let seqs: Vec<_> = buf.chunks(100).map(seq_of).collect();
        assert_eq!(seqs, [7, 8, 9]);
    }

    #[test]
    fn fit_is_within_64k() {
        assert_eq!(fit_segments(1200), 54);
        assert_eq!(fit_segments(1472), 44);
        assert!(fit_segments(64) * 64 <= MAX_UDP_PAYLOAD);
    }
}
