//! `tokio`: `tokio::net::UdpSocket` on a current-thread runtime per side
//! (one thread per side, like every other datapath), one `send_to` /
//! `recv_from` per datagram, one task per receiving socket.
//!
//! The I/O calls are written as `sock.async_io(interest, || sock.try_*())`,
//! which is exactly how tokio implements `send_to().await` and
//! `recv_from().await` (`registration().async_io(...)`), so the syscalls and
//! cooperative budgeting are the same; the closure lets us count each
//! syscall. `epoll_wait`s are counted with `on_thread_park` (each park is one
//! `epoll_wait`); the runtime's periodic non-blocking driver poll (every
//! `event_interval` = 61 ticks) is not, and shows up only under `--strace`.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::LocalSet;

use super::endpoint::{self, seq_of, Burst, SockOpts};
use super::rt::{bump, side, watch, Probe};
use super::scenario::{self, CellConfig, Pair, Scenario, Timing, ECHO_INTERVAL, ECHO_SIZE, ECHO_TIMEOUT, POISON};
use super::stats::{Ctl, Meter, Pacer, SideResult, MEASURE, STOP};

pub(crate) fn run(sc: Scenario, t: &Timing, opts: &SockOpts) -> io::Result<Pair> {
    let (ntx, nrx) = sc.sockets();
    let bind = |n: usize| -> io::Result<Vec<std::net::UdpSocket>> {
        (0..n)
            .map(|_| {
                let s: std::net::UdpSocket = endpoint::socket(opts)?.into();
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .collect()
    };
    let mut rx = bind(nrx)?;
    let tx = bind(ntx)?;
    let rx_addrs: Vec<SocketAddr> = rx.iter().map(std::net::UdpSocket::local_addr).collect::<io::Result<_>>()?;
    let (recv_buffer, send_buffer) = endpoint::granted(&rx[0]);
    let config = CellConfig {
        describe: "send_to/recv_from per datagram (async_io), current_thread runtime per side, task per socket".into(),
        train_segments: 1,
        recv_buffer,
        send_buffer,
    };
    let size = sc.size();
    let timing = *t;
    let (txr, rxr, system) = if sc == Scenario::Echo {
        let server = rx_addrs[0];
        let sock = rx.remove(0);
        let samples = scenario::samples_capacity(t);
        scenario::run_pair(
            move |c| side(|p| echo_server(sock, &timing, c, p)),
            move |c| side(|p| echo_client(tx, server, samples, c, p)),
            t,
        )
    } else {
        let plan = sc.plan(&rx_addrs);
        scenario::run_pair(
            move |c| side(|p| recv_side(rx, c, p)),
            move |c| side(|p| send_side(tx, &plan, size, c, p)),
            t,
        )
    };
    let sent = txr.total;
    let received = if sc == Scenario::Echo { txr.total.saturating_sub(txr.lost) } else { rxr.total };
    Ok((txr, rxr, sent, received, config, system))
}

fn send_side(
    socks: Vec<std::net::UdpSocket>,
    plan: &[Burst],
    size: usize,
    ctl: &Ctl,
    p: &Probe,
) -> io::Result<SideResult> {
    p.rt.block_on(async {
        let socks: Vec<UdpSocket> = socks.into_iter().map(UdpSocket::from_std).collect::<io::Result<_>>()?;
        let mut meter = Meter::new();
        let mut buf = vec![0u8; size];
        let mut seq = 0u64;
        let mut pacer = Pacer::new(ctl);
        'run: loop {
            if meter.observe(ctl.phase(), seq, seq * size as u64, p.syscalls()) {
                break;
            }
            pacer.wait(seq);
            for b in plan {
                let s = &socks[b.from];
                for _ in 0..b.count {
                    endpoint::stamp(&mut buf, size, seq);
                    s.async_io(Interest::WRITABLE, || {
                        bump(&p.calls);
                        s.try_send_to(&buf, b.to)
                    })
                    .await?;
                    seq += 1;
                }
                if ctl.stopping() {
                    continue 'run;
                }
            }
        }
        Ok(SideResult { window: meter.window(), total: seq, total_syscalls: p.syscalls(), ..SideResult::default() })
    })
}

fn recv_side(socks: Vec<std::net::UdpSocket>, ctl: &Ctl, p: &Probe) -> io::Result<SideResult> {
    let local = LocalSet::new();
    let sink = Rc::new(Cell::new((0u64, 0u64, 0u64)));
    let result = local.block_on(&p.rt, async {
        for s in socks {
            let sock = UdpSocket::from_std(s)?;
            let sink = Rc::clone(&sink);
            let calls = Rc::clone(&p.calls);
            tokio::task::spawn_local(async move {
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let r = sock
                        .async_io(Interest::READABLE, || {
                            bump(&calls);
                            sock.try_recv_from(&mut buf)
                        })
                        .await;
                    let Ok((n, _)) = r else { return };
                    // The same per-datagram work as `Sink::take`.
                    let (d, b, c) = sink.get();
                    sink.set((d + 1, b + n as u64, c.wrapping_add(seq_of(&buf[..n]))));
                }
            });
        }
        let meter = watch(&sink, ctl, p).await;
        Ok::<_, io::Error>(meter)
    });
    let meter = result?;
    let (n, _, checksum) = sink.get();
    Ok(SideResult { window: meter.window(), total: n, total_syscalls: p.syscalls(), checksum, ..SideResult::default() })
}

fn echo_server(sock: std::net::UdpSocket, t: &Timing, ctl: &Ctl, p: &Probe) -> io::Result<SideResult> {
    p.rt.block_on(async {
        let sock = UdpSocket::from_std(sock)?;
        let mut meter = Meter::new();
        let mut buf = [0u8; 2048];
        let mut served = 0u64;
        // Registered once: the bound on the whole loop if the poison is lost.
        let guard = tokio::time::sleep(t.warmup + t.duration + Duration::from_secs(2));
        tokio::pin!(guard);
        loop {
            let r = tokio::select! {
                biased;
                r = sock.async_io(Interest::READABLE, || {
                    bump(&p.calls);
                    sock.try_recv_from(&mut buf)
                }) => r,
                () = &mut guard => break,
            };
            let (n, src) = r?;
            if seq_of(&buf[..n]) == POISON {
                break;
            }
            sock.async_io(Interest::WRITABLE, || {
                bump(&p.calls);
                sock.try_send_to(&buf[..n], src)
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
    socks: Vec<std::net::UdpSocket>,
    server: SocketAddr,
    samples: usize,
    ctl: &Ctl,
    p: &Probe,
) -> io::Result<SideResult> {
    p.rt.block_on(async {
        let sock = UdpSocket::from_std(socks.into_iter().next().ok_or_else(|| io::Error::other("no socket"))?)?;
        let mut meter = Meter::new();
        let mut rtts = Vec::with_capacity(samples);
        let mut req = [0u8; ECHO_SIZE];
        let mut buf = [0u8; 2048];
        let (mut seq, mut replies, mut lost) = (0u64, 0u64, 0u64);
        let mut next = tokio::time::Instant::now();
        loop {
            if meter.observe(ctl.phase(), replies, replies * ECHO_SIZE as u64, p.syscalls()) {
                break;
            }
            seq += 1;
            endpoint::stamp(&mut req, ECHO_SIZE, seq);
            let t0 = Instant::now();
            sock.async_io(Interest::WRITABLE, || {
                bump(&p.calls);
                sock.try_send_to(&req, server)
            })
            .await?;
            let deadline = tokio::time::Instant::from_std(t0 + ECHO_TIMEOUT);
            loop {
                let r = tokio::time::timeout_at(
                    deadline,
                    sock.async_io(Interest::READABLE, || {
                        bump(&p.calls);
                        sock.try_recv_from(&mut buf)
                    }),
                )
                .await;
                match r {
                    Ok(Ok((n, _))) if seq_of(&buf[..n]) == seq => {
                        replies += 1;
                        if ctl.phase() == MEASURE && rtts.len() < rtts.capacity() {
                            rtts.push(t0.elapsed().as_nanos() as u64);
                        }
                        break;
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e),
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
        let _ = sock.try_send_to(&req, server);
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
