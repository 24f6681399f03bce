//! A tour of volley on loopback: the capability report, one GSO + ECN +
//! pktinfo exchange printed as a table of `RecvMeta`, and a quick throughput
//! comparison against a plain `std::net::UdpSocket`.
//!
//! Run it with `cargo run --release --example tour`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use volley::{Dscp, Ecn, RecvBatch, Socket, Transmit};

const WAIT: Duration = Duration::from_secs(5);
const SIZE: usize = 1200;
const RUN: Duration = Duration::from_millis(1500);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A server on the IPv4 wildcard, so pktinfo can tell 127.0.0.1 from 127.0.0.2.
    let server = Socket::bind("0.0.0.0:0".parse()?)?;
    let client = Socket::bind("127.0.0.1:0".parse()?)?;
    let port = server.local_addr()?.port();

    println!("== what this kernel gives a volley socket\n{}\n", server.capabilities());

    // One call, three transmits: a GSO train of 3 x 1200 + 400 to 127.0.0.2
    // marked ECT(0) with DSCP EF, and two single datagrams with other marks.
    let train = vec![0x5a; 3 * SIZE + 400];
    let transmits = [
        Transmit::new(([127, 0, 0, 2], port).into(), &train)
            .with_segment_size(SIZE)
            .with_ecn(Ecn::Ect0)
            .with_dscp(Dscp::EF),
        Transmit::new(([127, 0, 0, 1], port).into(), b"ect1 to 127.0.0.1").with_ecn(Ecn::Ect1),
        Transmit::new(([127, 0, 0, 3], port).into(), b"ce to 127.0.0.3").with_ecn(Ecn::Ce).with_dscp(Dscp::AF41),
    ];
    client.send_batch_blocking(&transmits, WAIT)?;

    println!("== one send call (GSO train + 2 datagrams), as the server saw it");
    println!(
        "{:<17} {:<10} {:>4} {:<7} {:<7} {:>4} {:>5} {:>8} {:>5}",
        "src", "dst_ip", "if", "ecn", "dscp", "ttl", "len", "seg_size", "trunc"
    );
    let mut batch = RecvBatch::new();
    let mut seen = 0;
    while seen < 6 {
        server.recv_batch_blocking(&mut batch, WAIT)?;
        for (m, _) in batch.iter() {
            let dst = m.dst_ip.map_or("-".into(), |ip| ip.to_string());
            let dscp = m.dscp.map_or("-".into(), |d| d.to_string());
            let ttl = m.ttl.map_or("-".into(), |t| t.to_string());
            let ifx = m.ifindex.map_or("-".into(), |i| i.to_string());
            println!(
                "{:<17} {:<10} {:>4} {:<7} {:<7} {:>4} {:>5} {:>8} {:>5}",
                m.src, dst, ifx, m.ecn, dscp, ttl, m.len, m.segment_size, m.truncated
            );
            seen += 1;
        }
    }
    println!("({} kernel messages for {seen} datagrams: GRO kept the train together)\n", batch.message_count());

    println!("== throughput, {SIZE}-byte datagrams over loopback, {} ms each", RUN.as_millis());
    let std_rate = std_throughput()?;
    println!("std::net::UdpSocket (send_to/recv_from)  {:>10.0} datagrams/s", std_rate);
    let volley_rate = volley_throughput()?;
    println!("volley (sendmmsg+GSO / recvmmsg+GRO)     {:>10.0} datagrams/s", volley_rate);
    println!("ratio: {:.1}x   (full, interleaved comparison: cargo xtask bench)", volley_rate / std_rate);
    Ok(())
}

/// Runs `send` on this thread and `recv` on another for `RUN`, returning
/// datagrams received per second.
fn measure(send: impl FnMut() -> bool, mut recv: impl FnMut() -> usize + Send + 'static) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_rx = stop.clone();
    let receiver = thread::spawn(move || {
        let mut n = 0usize;
        let start = Instant::now();
        while !stop_rx.load(Ordering::Relaxed) {
            n += recv();
        }
        n as f64 / start.elapsed().as_secs_f64()
    });
    let mut send = send;
    let start = Instant::now();
    while start.elapsed() < RUN {
        if !send() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    receiver.join().unwrap_or(0.0)
}

fn std_throughput() -> Result<f64, Box<dyn std::error::Error>> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    rx.set_read_timeout(Some(Duration::from_millis(50)))?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let to = rx.local_addr()?;
    let payload = [1u8; SIZE];
    let mut buf = [0u8; 2048];
    Ok(measure(move || tx.send_to(&payload, to).is_ok(), move || usize::from(rx.recv_from(&mut buf).is_ok())))
}

fn volley_throughput() -> Result<f64, Box<dyn std::error::Error>> {
    let rx = Socket::bind("127.0.0.1:0".parse()?)?;
    let tx = Socket::bind("127.0.0.1:0".parse()?)?;
    let to: SocketAddr = rx.local_addr()?;
    let segments = tx.capabilities().max_gso_segments.clamp(1, 65_000 / SIZE);
    let train = vec![1u8; SIZE * segments];
    let transmits: Vec<Transmit<'_>> = (0..8).map(|_| Transmit::new(to, &train).with_segment_size(SIZE)).collect();
    let mut batch = RecvBatch::new();
    // Safe to move `rx` into the receiver thread: Socket is Send + Sync.
    let rate = measure(
        || match tx.send_batch_blocking(&transmits, Duration::from_millis(100)) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::TimedOut,
        },
        move || rx.recv_batch_blocking(&mut batch, Duration::from_millis(50)).unwrap_or(0),
    );
    Ok(rate)
}
