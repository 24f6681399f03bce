//! One socket per core on tokio: a reuse-port group, one pinned thread per
//! member, each running its own current-thread runtime with its own
//! `UdpSocket`, `RecvBatch` and reply buffer. No multi-threaded scheduler,
//! no work stealing, nothing shared on the datapath: the only cross-thread
//! state is a stop flag read once per receive timeout.
//!
//! ```sh
//! cargo run --release -p volley-tokio --example per_core_tokio
//! cargo run --release -p volley-tokio --example per_core_tokio -- --threads 2 --seconds 5 --clients 64
//! ```
//!
//! Each server echoes what it receives; with `--clients N` (default 64) a
//! plain std load thread sends from N sockets for `--seconds` (default 3),
//! then every server prints its socket's statistics. See
//! `crates/volley/examples/per_core.rs` for the mio and blocking versions,
//! and docs/guide.md ("One socket per core") for why steering by CPU on
//! loopback lands on the sender's core.

use std::net::{SocketAddr, UdpSocket as StdSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use volley::{Config, RecvBatch, Stats, Steering, Transmit};
use volley_tokio::UdpSocket;

/// How long a receive waits at most before the stop flag is read.
const TICK: Duration = Duration::from_millis(100);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    let (mut threads, mut seconds, mut clients) = (cpus, 3u64, 64usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v: usize = it.next().ok_or(format!("{flag} needs a value"))?.parse()?;
        match flag.as_str() {
            "--threads" => threads = v.max(1),
            "--seconds" => seconds = v as u64,
            "--clients" => clients = v,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let steering = if cfg!(any(target_os = "linux", target_os = "android")) { Steering::Cpu } else { Steering::Hash };
    let group =
        Config::new().recv_buffer_size(4 << 20).bind_reuse_port_group("127.0.0.1:0".parse()?, threads, steering)?;
    let addr = group[0].local_addr()?;
    println!("{} sockets on {addr}, steering {steering:?}, one current-thread runtime each", group.len());

    let stop = AtomicBool::new(false);
    let results = thread::scope(|s| {
        let servers: Vec<_> = group
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let stop = &stop;
                thread::Builder::new().name(format!("udp-{i}")).spawn_scoped(s, move || {
                    let pinned = pin_to(i % cpus);
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    let stats = rt.block_on(serve(socket, stop))?;
                    Ok::<_, std::io::Error>((pinned, stats))
                })
            })
            .collect();
        load(addr, clients, Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        servers.into_iter().map(|h| h.map(|h| h.join())).collect::<Vec<_>>()
    });

    println!("socket  cpu  received   sent       recv syscalls/1000  kernel drops");
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(Ok(Ok((pinned, s)))) => println!(
                "{i:<7} {:<4} {:<10} {:<10} {:<19.1} {}",
                pinned.map_or_else(|e| format!("- ({e})"), |()| (i % cpus).to_string()),
                s.datagrams_received,
                s.datagrams_sent,
                s.recv_syscalls_per_1000().unwrap_or(0.0),
                s.kernel_drops
            ),
            Ok(Ok(Err(e))) => println!("{i:<7} error: {e}"),
            Ok(Err(_)) => println!("{i:<7} thread panicked"),
            Err(e) => println!("{i:<7} thread not started: {e}"),
        }
    }
    Ok(())
}

/// One thread's server: echoes every message (a GRO train as a GSO train)
/// until the stop flag is set; returns the socket's statistics.
async fn serve(socket: volley::Socket, stop: &AtomicBool) -> std::io::Result<Stats> {
    let socket = UdpSocket::new(socket)?;
    let mut batch = RecvBatch::new();
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(TICK, socket.recv_batch(&mut batch)).await {
            Err(_elapsed) => continue,
            Ok(Ok(_)) => {}
            Ok(Err(e)) if is_icmp(&e) => continue, // about an earlier reply
            Ok(Err(e)) => return Err(e),
        }
        const SLOTS: usize = 64;
        let mut replies = [Transmit::new(SocketAddr::from(([0, 0, 0, 0], 0)), &[]); SLOTS];
        let mut n = 0;
        for (meta, message) in batch.messages().take(SLOTS) {
            let reply = Transmit::new(meta.src, message);
            replies[n] =
                if message.len() > meta.segment_size { reply.with_segment_size(meta.segment_size) } else { reply };
            n += 1;
        }
        // A full send buffer drops replies rather than stalling the receive loop.
        let _ = socket.try_send_batch(&replies[..n]);
    }
    Ok(socket.stats())
}

/// An ICMP error about an earlier datagram, as volley types it.
fn is_icmp(e: &std::io::Error) -> bool {
    e.get_ref().and_then(|inner| inner.downcast_ref::<volley::Error>()).is_some_and(volley::Error::is_icmp)
}

/// `clients` plain std sockets, one datagram each per round, replies
/// drained, for `run` (or just a wait with 0 clients).
fn load(to: SocketAddr, clients: usize, run: Duration) {
    let socks: Vec<StdSocket> = (0..clients)
        .filter_map(|_| StdSocket::bind("127.0.0.1:0").ok())
        .filter(|s| s.set_nonblocking(true).is_ok())
        .collect();
    let (payload, mut sink) = ([0x42u8; 1200], [0u8; 2048]);
    let (start, mut sent) = (Instant::now(), 0u64);
    while start.elapsed() < run {
        if socks.is_empty() {
            thread::sleep(TICK);
        }
        for s in &socks {
            sent += u64::from(s.send_to(&payload, to).is_ok());
            while s.recv(&mut sink).is_ok() {}
        }
    }
    println!("load: {sent} datagrams from {} sockets in {run:?}", socks.len());
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
