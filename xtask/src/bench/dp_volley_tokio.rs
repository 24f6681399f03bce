//! `volley-tokio`: the tokio adapter `crates/volley-tokio`, configured as
//! its users would: `UdpSocket::bind_with(&Config::new()...)` (GSO and GRO
//! on, the shared buffer sizes), a current-thread runtime per side (one
//! thread per side, like every other datapath), as `dp_tokio.rs`.
//!
//! - Send: the volley core datapath's plan: trains of
//!   `min(capabilities().max_gso_segments, what fits in 64 KiB)` datagrams,
//!   up to [`BATCH`] consecutive trains from one socket per `send_batch`
//!   (one `sendmmsg`).
//! - Receive: one [`DatagramStream`] per socket (the async `Stream`: one
//!   `recvmmsg` into up to 32 pooled 64 KiB `BytesMut` slots, no copy,
//!   datagrams yielded as `Bytes` split off each message), polled with
//!   `StreamExt::next` by one task per socket.
//!
//! Syscall counting, as in `dp_tokio.rs`:
//! - sends are written as `sock.async_io(WRITABLE, |s| s.try_send_batch(..))`,
//!   which is exactly `UdpSocket::send_batch`'s body, so the closure counts
//!   each `sendmmsg` (including those answered `EAGAIN`);
//! - the stream reaches its socket through [`Counted`], whose `Borrow` impl
//!   counts one `recvmmsg` per borrow: `DatagramStream::poll_recv` borrows
//!   the socket once per `poll_recv_batch`, which makes exactly one
//!   `try_recv_batch` when the socket is marked readable (data, or the
//!   `EAGAIN` that clears readiness). It overcounts by one when a poll finds
//!   no readiness at all (a task's first poll, or tokio's cooperative
//!   budget running out), which is rare; `--strace` cross-checks it;
//! - `epoll_wait`s with `on_thread_park` (one per park); the runtime's
//!   periodic non-blocking driver poll is not counted, as in `dp_tokio.rs`.
//!
//! Allocations: a stream allocates twice on its first receive (its pool
//! chunk, and the shared header when the chunk is first split), then never
//! again while datagrams are dropped before the next receive. In fan-out the
//! 256 first receives (each touching a fresh 2 MiB `RecvBatch` and a 2 MiB
//! chunk) can outlast the warm-up, so a few show in the window.

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::io::Interest;
use tokio::task::LocalSet;
use volley::{Config, Transmit};
use volley_tokio::{DatagramStream, UdpSocket};

use super::endpoint::{self, fit_segments, seq_of, SockOpts, Train, BATCH};
use super::rt::{bump, watch, Probe, Side};
use super::scenario::{self, CellConfig, Pair, Scenario, Timing, ECHO_INTERVAL, ECHO_SIZE, ECHO_TIMEOUT, POISON};
use super::stats::{Ctl, Meter, Pacer, SideResult, MEASURE, STOP};

/// Bytes per send slot (one train), as in `dp_volley.rs`.
const SLOT: usize = 1 << 16;

pub(crate) fn run(sc: Scenario, t: &Timing, opts: &SockOpts) -> io::Result<Pair> {
    let (ntx, nrx) = sc.sockets();
    let config =
        Config::new().gso(true).gro(true).recv_buffer_size(opts.recv_buffer).send_buffer_size(opts.send_buffer);
    // The runtimes are built here so the sockets can be bound inside them
    // (`bind_with` registers with the current runtime), then each moves to
    // its side's thread. Declared before the sockets: dropped after them.
    let rx_side = Side::new()?;
    let tx_side = Side::new()?;
    let mut rx = bind(&rx_side, nrx, &config)?;
    let tx = bind(&tx_side, ntx, &config)?;
    let rx_addrs: Vec<SocketAddr> = rx.iter().map(UdpSocket::local_addr).collect::<io::Result<_>>()?;
    let (recv_buffer, send_buffer) = endpoint::granted(&rx[0]);
    let size = sc.size();
    let c = tx[0].capabilities();
    let train_segments = c.max_gso_segments.clamp(1, fit_segments(size));
    let config = CellConfig {
        describe: format!(
            "send_batch x{BATCH} transmits (mmsg {}, GSO segs {}), DatagramStream per socket (recv_batch 32 x 64 KiB, GRO {}, pooled Bytes), current_thread runtime per side, task per socket",
            c.mmsg, c.max_gso_segments, c.gro
        ),
        train_segments,
        recv_buffer,
        send_buffer,
    };
    let timing = *t;
    let (txr, rxr, system) = if sc == Scenario::Echo {
        let server = rx_addrs[0];
        let sock = rx.remove(0);
        let samples = scenario::samples_capacity(t);
        scenario::run_pair(
            move |c| rx_side.run(|p| echo_server(sock, &timing, c, p)),
            move |c| tx_side.run(|p| echo_client(tx, server, samples, c, p)),
            t,
        )
    } else {
        let trains = endpoint::trains(&sc.plan(&rx_addrs), train_segments);
        scenario::run_pair(
            move |c| rx_side.run(|p| recv_side(rx, c, p)),
            move |c| tx_side.run(|p| send_side(tx, &trains, size, c, p)),
            t,
        )
    };
    let sent = txr.total;
    let received = if sc == Scenario::Echo { txr.total.saturating_sub(txr.lost) } else { rxr.total };
    Ok((txr, rxr, sent, received, config, system))
}

/// `n` sockets on `127.0.0.1:0`, registered with `side`'s runtime.
fn bind(side: &Side, n: usize, config: &Config) -> io::Result<Vec<UdpSocket>> {
    let _guard = side.runtime().enter();
    (0..n).map(|_| UdpSocket::bind_with(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).collect()
}

/// How a [`DatagramStream`] holds its socket here: an `Arc<UdpSocket>` (the
/// stream's default) that counts one receive syscall each time the stream
/// borrows it to poll a receive (see the module docs).
struct Counted {
    sock: Arc<UdpSocket>,
    calls: Rc<Cell<u64>>,
}

impl Borrow<UdpSocket> for Counted {
    fn borrow(&self) -> &UdpSocket {
        bump(&self.calls);
        &self.sock
    }
}

fn stream(sock: Arc<UdpSocket>, p: &Probe) -> DatagramStream<Counted> {
    DatagramStream::new(Counted { sock, calls: Rc::clone(&p.calls) })
}

fn send_side(socks: Vec<UdpSocket>, trains: &[Train], size: usize, ctl: &Ctl, p: &Probe) -> io::Result<SideResult> {
    p.rt.block_on(async {
        let unset = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let mut meter = Meter::new();
        let mut buf = vec![0u8; BATCH * SLOT];
        let mut seq = 0u64;
        let mut pacer = Pacer::new(ctl);
        'run: loop {
            if meter.observe(ctl.phase(), seq, seq * size as u64, p.syscalls()) {
                break;
            }
            pacer.wait(seq);
            let mut next = 0;
            while next < trains.len() {
                // The longest run of trains from one socket, at most BATCH.
                let from = trains[next].from;
                let end = (next..trains.len())
                    .take(BATCH)
                    .take_while(|&k| trains[k].from == from)
                    .last()
                    .map_or(next + 1, |k| k + 1);
                let run = &trains[next..end];
                // Stamp each train in its slot, in sequence order.
                let mut s = seq;
                for (k, t) in run.iter().enumerate() {
                    endpoint::stamp(&mut buf[k * SLOT..k * SLOT + t.segments * size], size, s);
                    s += t.segments as u64;
                }
                let mut txs = [Transmit::new(unset, &[]); BATCH];
                for (k, t) in run.iter().enumerate() {
                    let tx = Transmit::new(t.to, &buf[k * SLOT..k * SLOT + t.segments * size]);
                    txs[k] = if t.segments > 1 { tx.with_segment_size(size) } else { tx };
                }
                let txs = &txs[..run.len()];
                // `send_batch(txs).await`, with the syscall counted.
                let sent = socks[from]
                    .async_io(Interest::WRITABLE, |s| {
                        bump(&p.calls);
                        s.try_send_batch(txs)
                    })
                    .await?;
                let done = super::dp_volley::whole_trains(sent)?;
                // Unsent trains are re-stamped (same numbers) next time.
                seq += run[..done].iter().map(|t| t.segments as u64).sum::<u64>();
                next += done;
                if ctl.stopping() {
                    continue 'run;
                }
            }
        }
        Ok(SideResult { window: meter.window(), total: seq, total_syscalls: p.syscalls(), ..SideResult::default() })
    })
}

fn recv_side(socks: Vec<UdpSocket>, ctl: &Ctl, p: &Probe) -> io::Result<SideResult> {
    let local = LocalSet::new();
    let sink = Rc::new(Cell::new((0u64, 0u64, 0u64)));
    let error: Rc<RefCell<Option<String>>> = Rc::default();
    let result = local.block_on(&p.rt, async {
        for s in socks {
            let mut datagrams = stream(Arc::new(s), p);
            let sink = Rc::clone(&sink);
            let error = Rc::clone(&error);
            tokio::task::spawn_local(async move {
                while let Some(r) = datagrams.next().await {
                    match r {
                        Ok(d) => {
                            // The same per-datagram work as `Sink::take`.
                            let (n, b, c) = sink.get();
                            sink.set((n + 1, b + d.payload.len() as u64, c.wrapping_add(seq_of(&d.payload))));
                        }
                        Err(e) => {
                            error.borrow_mut().get_or_insert_with(|| format!("recv: {e}"));
                            return;
                        }
                    }
                }
            });
        }
        let meter = watch(&sink, ctl, p).await;
        Ok::<_, io::Error>(meter)
    });
    let meter = result?;
    let (n, _, checksum) = sink.get();
    let error = error.borrow_mut().take();
    Ok(SideResult {
        window: meter.window(),
        total: n,
        total_syscalls: p.syscalls(),
        checksum,
        error,
        ..SideResult::default()
    })
}

fn echo_server(sock: UdpSocket, t: &Timing, ctl: &Ctl, p: &Probe) -> io::Result<SideResult> {
    p.rt.block_on(async {
        // Shared by the stream (receiving) and the replies (sending).
        let sock = Arc::new(sock);
        let mut datagrams = stream(Arc::clone(&sock), p);
        let mut meter = Meter::new();
        let mut served = 0u64;
        // Registered once: the bound on the whole loop if the poison is lost.
        let guard = tokio::time::sleep(t.warmup + t.duration + Duration::from_secs(2));
        tokio::pin!(guard);
        loop {
            let r = tokio::select! {
                biased;
                r = datagrams.next() => r,
                () = &mut guard => break,
            };
            let d = match r {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(e),
                None => break,
            };
            if seq_of(&d.payload) == POISON {
                break;
            }
            let reply = [Transmit::new(d.meta.src, &d.payload)];
            // One datagram: `Ok` means it went out whole.
            let _whole = sock
                .async_io(Interest::WRITABLE, |s| {
                    bump(&p.calls);
                    s.try_send_batch(&reply)
                })
                .await?;
            served += 1;
            meter.observe(ctl.phase(), served, served * ECHO_SIZE as u64, p.syscalls());
        }
        meter.observe(STOP, served, served * ECHO_SIZE as u64, p.syscalls());
        Ok(SideResult { window: meter.window(), total: served, total_syscalls: p.syscalls(), ..SideResult::default() })
    })
}

fn echo_client(
    socks: Vec<UdpSocket>,
    server: SocketAddr,
    samples: usize,
    ctl: &Ctl,
    p: &Probe,
) -> io::Result<SideResult> {
    p.rt.block_on(async {
        let sock = Arc::new(socks.into_iter().next().ok_or_else(|| io::Error::other("no socket"))?);
        let mut datagrams = stream(Arc::clone(&sock), p);
        let mut meter = Meter::new();
        let mut rtts = Vec::with_capacity(samples);
        let mut req = [0u8; ECHO_SIZE];
        let (mut seq, mut replies, mut lost) = (0u64, 0u64, 0u64);
        let mut next = tokio::time::Instant::now();
        loop {
            if meter.observe(ctl.phase(), replies, replies * ECHO_SIZE as u64, p.syscalls()) {
                break;
            }
            seq += 1;
            endpoint::stamp(&mut req, ECHO_SIZE, seq);
            let t0 = Instant::now();
            let request = [Transmit::new(server, &req)];
            // One datagram: `Ok` means it went out whole.
            let _whole = sock
                .async_io(Interest::WRITABLE, |s| {
                    bump(&p.calls);
                    s.try_send_batch(&request)
                })
                .await?;
            let deadline = tokio::time::Instant::from_std(t0 + ECHO_TIMEOUT);
            loop {
                match tokio::time::timeout_at(deadline, datagrams.next()).await {
                    Ok(Some(Ok(d))) if seq_of(&d.payload) == seq => {
                        replies += 1;
                        if ctl.phase() == MEASURE && rtts.len() < rtts.capacity() {
                            rtts.push(t0.elapsed().as_nanos() as u64);
                        }
                        break;
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(e))) => return Err(e),
                    Ok(None) => return Err(io::Error::other("datagram stream ended")),
                    Err(_) => {
                        lost += 1;
                        break;
                    }
                }
            }
            next += ECHO_INTERVAL;
            let now = tokio::time::Instant::now();
            if next > now {
                tokio::time::sleep_until(next).await;
            } else {
                next = now;
            }
        }
        endpoint::stamp(&mut req, ECHO_SIZE, POISON);
        let _ = sock.try_send_batch(&[Transmit::new(server, &req)]);
        Ok(SideResult {
            window: meter.window(),
            total: seq,
            total_syscalls: p.syscalls(),
            rtts_ns: rtts,
            lost,
            ..SideResult::default()
        })
    })
}
