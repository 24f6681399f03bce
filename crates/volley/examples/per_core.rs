//! One socket per core: a reuse-port group, one pinned thread per member,
//! each with its own socket, its own event loop (mio, or the blocking
//! receive mode) and its own buffers. Nothing is shared on the datapath:
//! the only cross-thread state is a stop flag read between polls.
//!
//! ```sh
//! cargo run --release --example per_core                    # mio, one thread per CPU, CPU steering
//! cargo run --release --example per_core -- --blocking      # Config::blocking(true), no event loop
//! cargo run --release --example per_core -- --threads 2 --steering hash --seconds 5 --clients 64
//! cargo run --release --example per_core -- --listen 0.0.0.0:4433 --clients 0 --seconds 60
//! ```
//!
//! Each server echoes what it receives. With `--clients N` (default 64) a
//! load thread in the same process sends from N sockets to the group for
//! `--seconds` (default 3); at the end every server prints its socket's
//! statistics and its thread's CPU time per datagram.
//!
//! On loopback, CPU steering hands every datagram to the socket of the
//! core that *sent* it (loopback delivers in the sender's context), so the
//! in-process load lands mostly on one socket; on a NIC with RSS it is the
//! core whose queue received it. `--steering hash` spreads by flow instead.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use volley::{Config, RecvBatch, Socket, Stats, Steering, Transmit};

/// How long a server sleeps at most before it looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);

struct Args {
    listen: SocketAddr,
    threads: usize,
    seconds: u64,
    clients: usize,
    blocking: bool,
    steering: Steering,
}

fn parse_args() -> Result<Args, String> {
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    let cpu_steering = cfg!(any(target_os = "linux", target_os = "android"));
    let mut a = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        threads: cpus,
        seconds: 3,
        clients: 64,
        blocking: false,
        steering: if cpu_steering { Steering::Cpu } else { Steering::Hash },
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => a.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--threads" => a.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--clients" => a.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--blocking" => a.blocking = true,
            "--steering" => {
                a.steering = match value()?.as_str() {
                    "hash" => Steering::Hash,
                    "cpu" => Steering::Cpu,
                    other => return Err(format!("--steering: `{other}` (hash or cpu)")),
                }
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if a.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    // Every member gets the same options; `blocking` only changes what
    // `recv_batch_blocking` does (the `try_` calls never block).
    let config = Config::new().blocking(args.blocking).recv_buffer_size(4 << 20);
    let group = config.bind_reuse_port_group(args.listen, args.threads, args.steering)?;
    let addr = group[0].local_addr()?;
    println!(
        "{} sockets on {addr}, steering {:?}, {} loop",
        group.len(),
        args.steering,
        if args.blocking { "blocking" } else { "mio" }
    );

    let stop = AtomicBool::new(false);
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    let reports = thread::scope(|s| {
        let servers: Vec<_> = group
            .into_iter()
            .enumerate()
            .map(|(i, mut socket)| {
                let stop = &stop;
                let blocking = args.blocking;
                thread::Builder::new().name(format!("udp-{i}")).spawn_scoped(s, move || {
                    let pinned = pin_to(i % cpus);
                    let served = if blocking { serve_blocking(&socket, stop) } else { serve_mio(&mut socket, stop) };
                    Report { cpu: pinned.map(|()| i % cpus), stats: socket.stats(), cpu_ns: thread_cpu_ns(), served }
                })
            })
            .collect();
        if args.clients > 0 {
            if let Err(e) = load(addr, args.clients, Duration::from_secs(args.seconds)) {
                eprintln!("load: {e}");
            }
        } else {
            thread::sleep(Duration::from_secs(args.seconds));
        }
        stop.store(true, Ordering::Relaxed);
        servers
            .into_iter()
            .map(|h| h.map_err(|e| e.to_string())?.join().map_err(|_| "panicked".to_string()))
            .collect::<Vec<_>>()
    });

    println!("socket  cpu  received   sent       recv syscalls/1000  kernel drops  CPU ns/datagram  result");
    for (i, r) in reports.into_iter().enumerate() {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                println!("{i:<7} thread {e}");
                continue;
            }
        };
        let s = &r.stats;
        let cpu = r.cpu.map_or_else(|e| format!("- ({e})"), |c| c.to_string());
        let per = r
            .cpu_ns
            .filter(|_| s.datagrams_received > 0)
            .map_or(f64::NAN, |ns| ns as f64 / s.datagrams_received as f64);
        println!(
            "{i:<7} {cpu:<4} {:<10} {:<10} {:<19.1} {:<13} {per:<16.0} {}",
            s.datagrams_received,
            s.datagrams_sent,
            s.recv_syscalls_per_1000().unwrap_or(0.0),
            s.kernel_drops,
            r.served.map_or_else(|e| format!("error: {e}"), |()| "ok".into()),
        );
    }
    Ok(())
}

/// What one server thread ends with.
struct Report {
    cpu: Result<usize, String>,
    stats: Stats,
    cpu_ns: Option<u64>,
    served: Result<(), volley::Error>,
}

/// The mio loop of one thread: its own `Poll`, its own `RecvBatch`, echoes
/// each message back (a GRO train as a GSO train) without allocating.
fn serve_mio(socket: &mut Socket, stop: &AtomicBool) -> Result<(), volley::Error> {
    let mut poll = Poll::new()?;
    poll.registry().register(socket, Token(0), Interest::READABLE)?;
    let mut events = Events::with_capacity(8);
    let mut batch = RecvBatch::new();
    while !stop.load(Ordering::Relaxed) {
        match poll.poll(&mut events, Some(TICK)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        loop {
            match socket.try_recv_batch(&mut batch) {
                Ok(_) => {}
                Err(e) if e.is_would_block() => break,
                Err(e) if e.is_icmp() => continue,
                Err(e) => return Err(e),
            }
            echo(socket, &batch);
            if batch.is_short() {
                break; // the queue ran dry: the next datagram raises a new edge
            }
        }
    }
    Ok(())
}

/// The blocking loop: one `recvmmsg` per wake-up, no event loop.
fn serve_blocking(socket: &Socket, stop: &AtomicBool) -> Result<(), volley::Error> {
    let mut batch = RecvBatch::new();
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_batch_blocking(&mut batch, TICK) {
            Ok(_) => echo(socket, &batch),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.is_icmp() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends every message of `batch` back to where it came from, in one
/// `try_send_batch`. A full send buffer drops replies (UDP may): an echo
/// server must not stall its receive loop on a slow client.
fn echo(socket: &Socket, batch: &RecvBatch) {
    const SLOTS: usize = 64;
    let unset = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut replies = [Transmit::new(unset, &[]); SLOTS];
    let mut n = 0;
    for (meta, message) in batch.messages().take(SLOTS) {
        let reply = Transmit::new(meta.src, message);
        replies[n] = if message.len() > meta.segment_size { reply.with_segment_size(meta.segment_size) } else { reply };
        n += 1;
    }
    let _ = socket.try_send_batch(&replies[..n]);
}

/// A plain client load: `clients` std sockets, one datagram each per round,
/// replies drained, for `run`.
fn load(to: SocketAddr, clients: usize, run: Duration) -> std::io::Result<()> {
    let ip = if to.ip().is_unspecified() { "127.0.0.1".parse().unwrap() } else { to.ip() };
    let to = SocketAddr::new(ip, to.port());
    let socks = (0..clients)
        .map(|_| {
            let s = UdpSocket::bind(SocketAddr::new(ip, 0))?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let payload = [0x42u8; 1200];
    let mut sink = [0u8; 2048];
    let (start, mut sent) = (Instant::now(), 0u64);
    while start.elapsed() < run {
        for s in &socks {
            if s.send_to(&payload, to).is_ok() {
                sent += 1;
            }
            while s.recv(&mut sink).is_ok() {}
        }
    }
    println!("load: {sent} datagrams from {clients} sockets in {run:?}");
    Ok(())
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`, through nix).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pin_to(cpu: usize) -> Result<(), String> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|e| e.to_string())?;
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| e.to_string())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pin_to(_cpu: usize) -> Result<(), String> {
    Err("no thread affinity here".into())
}

/// This thread's user + system CPU time (`getrusage(RUSAGE_THREAD)`; nix
/// offers it on Linux only).
#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> Option<u64> {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    let ru = getrusage(UsageWho::RUSAGE_THREAD).ok()?;
    u64::try_from(ru.user_time().num_nanoseconds() + ru.system_time().num_nanoseconds()).ok()
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_ns() -> Option<u64> {
    None
}
