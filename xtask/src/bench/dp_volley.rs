//! `volley`, `volley-mmsg` and `volley-blocking`: the volley core,
//! configured as its own users would: `Config::new().gso(on).gro(on)` with
//! the shared buffer sizes; `volley-blocking` is `volley` with
//! `Config::blocking(true)` on a side of one socket, whose receiver sleeps
//! in `recv_batch_blocking` (one `recvmmsg` with `MSG_WAITFORONE` per
//! wake-up, no epoll): the thread-per-socket server.
//!
//! - Send: trains of `min(capabilities().max_gso_segments, what fits in 64
//!   KiB)` datagrams (1 with GSO off); up to [`BATCH`] consecutive trains
//!   from the same socket go into one `try_send_batch` (one `sendmmsg`).
//! - Receive: one `RecvBatch::new()` (32 x 64 KiB) per side, one
//!   `try_recv_batch` (one `recvmmsg`) per call, datagrams from `messages()`
//!   + `RecvMeta::segments` (metadata by reference, once per message).
//! - Readiness: the socket is a `mio::event::Source`; edge-triggered epoll.
//!
//! Syscall counting assumes one `try_send_batch` / `try_recv_batch` call is
//! one syscall (true on the mmsg path when the call returns without
//! internal retries); `--strace` cross-checks it.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use volley::{Config, RecvBatch, Socket, Transmit};

use super::endpoint::{self, fit_segments, Burst, Endpoint, Ready, Role, SockOpts, Train, BATCH};

/// Bytes per send slot (one train).
const SLOT: usize = 1 << 16;

pub(crate) struct VolleyEndpoint<const OFFLOAD: bool, const BLOCKING: bool = false> {
    socks: Vec<Socket>,
    ready: Ready,
    send_buf: Box<[u8]>,
    batch: RecvBatch,
    trains: Vec<Train>,
    syscalls: u64,
}

impl<const OFFLOAD: bool, const BLOCKING: bool> std::fmt::Debug for VolleyEndpoint<OFFLOAD, BLOCKING> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolleyEndpoint").field("offload", &OFFLOAD).field("blocking", &BLOCKING).finish_non_exhaustive()
    }
}

fn io_err(e: volley::Error) -> io::Error {
    io::Error::from(e)
}

impl<const OFFLOAD: bool, const BLOCKING: bool> VolleyEndpoint<OFFLOAD, BLOCKING> {
    /// An endpoint over sockets bound elsewhere (the per-core scenario's
    /// reuse-port group), each registered for `role`'s readiness.
    pub(crate) fn from_sockets(socks: Vec<Socket>, role: Role) -> io::Result<Self> {
        let ready = Ready::new(socks.len())?;
        for (i, s) in socks.iter().enumerate() {
            ready.register(i, s, role)?;
        }
        Ok(Self {
            socks,
            ready,
            send_buf: vec![0; BATCH * SLOT].into_boxed_slice(),
            batch: RecvBatch::new(),
            trains: Vec::new(),
            syscalls: 0,
        })
    }
}

impl<const OFFLOAD: bool, const BLOCKING: bool> Endpoint for VolleyEndpoint<OFFLOAD, BLOCKING> {
    fn bind(n: usize, role: Role, opts: &SockOpts) -> io::Result<Self> {
        let config = Config::new()
            .gso(OFFLOAD)
            .gro(OFFLOAD)
            .blocking(BLOCKING && n == 1)
            .recv_buffer_size(opts.recv_buffer)
            .send_buffer_size(opts.send_buffer);
        let mut socks = Vec::with_capacity(n);
        for _ in 0..n {
            socks.push(config.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(io_err)?);
        }
        Self::from_sockets(socks, role)
    }

    fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.socks.iter().map(Socket::local_addr).collect()
    }

    fn buffer_sizes(&self) -> (usize, usize) {
        endpoint::granted(&self.socks[0])
    }

    fn train_segments(&self, size: usize) -> usize {
        self.socks[0].capabilities().max_gso_segments.clamp(1, fit_segments(size))
    }

    fn describe(&self) -> String {
        let c = self.socks[0].capabilities();
        let recv = if self.blocking_recv() { "recv_batch_blocking" } else { "try_recv_batch" };
        format!(
            "try_send_batch x{BATCH} transmits (mmsg {}, GSO segs {}), {recv} {} slots x {} B (GRO {})",
            c.mmsg,
            c.max_gso_segments,
            self.batch.slots(),
            self.batch.slot_len(),
            c.gro
        )
    }

    fn prepare(&mut self, plan: &[Burst], size: usize) {
        self.trains = endpoint::trains(plan, self.train_segments(size));
    }

    fn send_plan(&mut self, size: usize, seq: &mut u64, stop: &dyn Fn() -> bool) -> io::Result<u64> {
        let unset = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let mut sent = 0;
        let mut next = 0;
        while next < self.trains.len() {
            // The longest run of trains from one socket, at most BATCH.
            let from = self.trains[next].from;
            let end = (next..self.trains.len())
                .take(BATCH)
                .take_while(|&k| self.trains[k].from == from)
                .last()
                .map_or(next + 1, |k| k + 1);
            let run = &self.trains[next..end];
            // Stamp each train in its slot, in sequence order.
            let mut s = *seq;
            for (k, t) in run.iter().enumerate() {
                endpoint::stamp(&mut self.send_buf[k * SLOT..k * SLOT + t.segments * size], size, s);
                s += t.segments as u64;
            }
            let mut txs = [Transmit::new(unset, &[]); BATCH];
            for (k, t) in run.iter().enumerate() {
                let tx = Transmit::new(t.to, &self.send_buf[k * SLOT..k * SLOT + t.segments * size]);
                txs[k] = if t.segments > 1 { tx.with_segment_size(size) } else { tx };
            }
            self.syscalls += 1;
            match self.socks[from].try_send_batch(&txs[..run.len()]) {
                Ok(progress) => {
                    let done = whole_trains(progress)?;
                    let n: u64 = run[..done].iter().map(|t| t.segments as u64).sum();
                    *seq += n;
                    sent += n;
                    // Unsent trains are re-stamped (same numbers) next time.
                    next += done;
                    if done == 0 {
                        if stop() {
                            return Ok(sent);
                        }
                        self.ready.wait()?;
                    }
                }
                Err(e) if e.is_would_block() => {
                    if stop() {
                        return Ok(sent);
                    }
                    self.ready.wait()?;
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(sent)
    }

    fn send_one(&mut self, from: usize, to: SocketAddr, payload: &[u8]) -> io::Result<()> {
        loop {
            self.syscalls += 1;
            match self.socks[from].try_send_batch(&[Transmit::new(to, payload)]) {
                Ok(sent) if sent.transmits == 1 => return Ok(()),
                Ok(_) => self.ready.wait()?,
                Err(e) if e.is_would_block() => self.ready.wait()?,
                Err(e) => return Err(io_err(e)),
            }
        }
    }

    fn recv<F: FnMut(usize, SocketAddr, &[u8])>(&mut self, mut on: F) -> io::Result<usize> {
        let i = if self.blocking_recv() {
            // One socket, in blocking mode: sleep in recvmmsg
            // (MSG_WAITFORONE), at most POLL, no epoll.
            self.syscalls += 1;
            match self.socks[0].recv_batch_blocking(&mut self.batch, endpoint::POLL) {
                Ok(_) => 0,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(0),
                Err(e) => return Err(io_err(e)),
            }
        } else {
            let Some(i) = self.ready.next()? else { return Ok(0) };
            self.syscalls += 1;
            match self.socks[i].try_recv_batch(&mut self.batch) {
                Ok(_) if self.batch.message_count() == self.batch.slots() => self.ready.requeue(i),
                Ok(_) => {}
                Err(e) if e.is_would_block() => return Ok(0),
                Err(e) => return Err(io_err(e)),
            }
            i
        };
        // Per message, metadata by reference, then its datagrams: the fast
        // way through a batch (as quinn-udp's users walk `stride`).
        let mut delivered = 0;
        for (meta, message) in self.batch.messages() {
            for payload in meta.segments(message) {
                on(i, meta.src, payload);
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    fn syscalls(&self) -> u64 {
        self.syscalls + self.ready.waits
    }
}

impl<const OFFLOAD: bool, const BLOCKING: bool> VolleyEndpoint<OFFLOAD, BLOCKING> {
    /// Whether receives wait in the kernel: `volley-blocking` on a side
    /// with one socket (a thread per socket; with several sockets one
    /// thread must multiplex them, so it uses epoll as `volley` does).
    fn blocking_recv(&self) -> bool {
        BLOCKING && self.socks.len() == 1
    }
}

/// The trains a send took whole. The datapaths here send GSO trains, which
/// the kernel takes whole or not at all; a train cut mid-way (segments sent
/// one by one: GSO turned off at run time) would be re-stamped and resent
/// in part, so it stops the run instead of skewing the counts.
pub(crate) fn whole_trains(sent: volley::Sent) -> io::Result<usize> {
    if sent.is_partial() {
        return Err(io::Error::other(format!("a train was sent in part ({sent:?}): GSO is off on this socket")));
    }
    Ok(sent.transmits)
}
