//! Heap allocations per datagram in steady state, counted by the shared
//! counting global allocator (`volley_tests::alloc`) on the test's own
//! thread: receiving through `DatagramStream`,
//! sending through `SendQueue`.
//!
//! A sender thread (plain blocking volley socket, not counted) keeps the
//! receiver busy; the receiver drops each datagram before asking for the
//! next, as a prompt consumer does. Run with `--nocapture` to see the
//! figures.

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use util::{addr, DEADLINE};
use volley::{Config, Transmit};
use volley_tests::alloc::{thread_alloc_bytes as alloc_bytes, thread_allocs as allocs, CountingAlloc};
use volley_tokio::{DatagramStream, UdpSocket};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Sends `payload` (as GSO trains of `segment_size` when given) to `to`
/// until `stop`.
fn blast(to: std::net::SocketAddr, payload: Vec<u8>, segment_size: Option<usize>, stop: Arc<AtomicBool>) {
    let sock = volley::Socket::bind(addr("127.0.0.1:0")).expect("bind sender");
    let mut t = Transmit::new(to, &payload);
    t.segment_size = segment_size;
    let batch = [t; 16];
    while !stop.load(Ordering::Relaxed) {
        // Errors (a full buffer) just mean: try again.
        let _ = sock.send_batch_blocking(&batch, Duration::from_millis(50));
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Receives `warmup + measured` datagrams, returning allocations per
/// datagram over the measured part.
async fn allocs_per_datagram(payload_len: usize, segment_size: Option<usize>, measured: u64) -> f64 {
    let config = Config::new().recv_buffer_size(8 << 20);
    let rx = UdpSocket::bind_with(&config, addr("127.0.0.1:0")).unwrap();
    let to = rx.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || blast(to, vec![0x5a; payload_len], segment_size, stop))
    };
    let mut stream = DatagramStream::new(&rx);
    let result = tokio::time::timeout(DEADLINE, async {
        for _ in 0..2_000 {
            let d = stream.next().await.unwrap().unwrap();
            drop(d);
        }
        let before = allocs();
        let mut bytes = 0usize;
        for _ in 0..measured {
            let d = stream.next().await.unwrap().unwrap();
            bytes += d.payload.len(); // use it, then drop it at once
        }
        let n = allocs() - before;
        assert!(bytes > 0);
        n
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let n = result.expect("datagrams kept coming");
    let per = n as f64 / measured as f64;
    println!(
        "payload {payload_len} B, segment_size {segment_size:?}: {n} allocations over {measured} datagrams = {per:.5}/datagram"
    );
    per
}

#[tokio::test(flavor = "current_thread")]
async fn steady_state_allocations_per_datagram_are_near_zero() {
    // The counter sees this thread's allocations.
    let before = allocs();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(16)));
    assert_eq!(allocs(), before + 1);

    // Plain datagrams, one recvmmsg message each.
    let plain = allocs_per_datagram(1200, None, 50_000).await;
    assert!(plain < 0.01, "{plain} allocations per datagram");
    // GSO trains of 10 x 1200 B, received as GRO trains and sliced.
    let gro = allocs_per_datagram(12_000, Some(1200), 50_000).await;
    assert!(gro < 0.01, "{gro} allocations per datagram");
}

/// The other side of the trade-off: a consumer that keeps every datagram
/// pins the buffer its message was received into, so the stream makes a
/// new one for each message (the buffer, and the shared header `bytes`
/// gives it when it is first split): at most two allocations per message,
/// never a copy.
#[tokio::test(flavor = "current_thread")]
async fn holding_datagrams_costs_one_buffer_per_message() {
    // Small slots need a socket without GRO.
    let rx = UdpSocket::bind_with(&Config::new().gro(false), addr("127.0.0.1:0")).unwrap();
    let tx = UdpSocket::bind(addr("127.0.0.1:0")).unwrap();
    let to = rx.local_addr().unwrap();
    let mut stream = DatagramStream::with_batch(&rx, volley::RecvBatch::with_capacity(8, 2048));
    let m = [1u8; 1000];
    let mut held = Vec::new();
    let before = allocs();
    for _ in 0..40 {
        tx.send_batch_all(&[Transmit::new(to, &m); 8]).await.unwrap();
        for _ in 0..8 {
            held.push(tokio::time::timeout(DEADLINE, stream.next()).await.unwrap().unwrap().unwrap());
        }
    }
    let n = allocs() - before;
    println!("holding 320 datagrams (one per message): {n} allocations");
    assert!(n > 0 && n <= 2 * 320 + 16, "{n}");
}

/// The send side: a warmed-up `SendQueue` plans, stages (GSO trains) and
/// sends without allocating.
#[tokio::test(flavor = "current_thread")]
async fn send_queue_steady_state_allocates_nothing() {
    static PAYLOAD: [u8; 1200] = [7; 1200];
    let tx = UdpSocket::bind(addr("127.0.0.1:0")).unwrap();
    let sinks: Vec<_> = (0..4).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let dests: Vec<_> = sinks.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut q = volley_tokio::SendQueue::with_capacity(&tx, 256);
    let round = |q: &mut volley_tokio::SendQueue<&UdpSocket>| {
        for i in 0..256 {
            let len = if i % 16 == 15 { 500 } else { 1200 };
            let d = volley_tokio::Outgoing::new(dests[i % 4], bytes::Bytes::from_static(&PAYLOAD[..len]));
            q.try_push(d).unwrap();
        }
    };
    for _ in 0..10 {
        round(&mut q);
        q.flush().await.unwrap();
    }
    let before = allocs();
    for _ in 0..100 {
        round(&mut q);
        q.flush().await.unwrap();
    }
    let n = allocs() - before;
    println!("send queue: {n} allocations over 25600 datagrams");
    assert_eq!(n, 0);
}

/// The quinn socket receives in place: binding one holds no receive batch
/// (the adapter once kept a 2 MiB one per socket to copy out of), and a
/// receive of a GRO train into quinn-sized buffers allocates nothing.
#[tokio::test(flavor = "current_thread")]
async fn quinn_socket_receives_in_place_without_a_batch() {
    use quinn::AsyncUdpSocket;
    let before = alloc_bytes();
    let socket = volley_tokio::quinn::QuinnSocket::bind(addr("127.0.0.1:0")).unwrap();
    let held = alloc_bytes() - before;
    println!("QuinnSocket::bind allocated {held} bytes");
    assert!(held < 64 * 1024, "{held} bytes allocated at bind: a receive batch?");

    let tx = UdpSocket::bind(addr("127.0.0.1:0")).unwrap();
    let train = vec![3u8; 10 * 1200];
    let to = socket.local_addr().unwrap();
    // quinn's buffers: max_udp_payload_size (1472) x max_receive_segments.
    let mut storage = vec![vec![0u8; 1472 * socket.max_receive_segments()]; 4];
    let mut meta = [quinn::udp::RecvMeta::default(); 4];
    let mut got = 0;
    let mut spent = 0;
    while got < train.len() {
        tx.send_batch_all(&[Transmit::new(to, &train).with_segment_size(1200)]).await.unwrap();
        let mut bufs: Vec<std::io::IoSliceMut<'_>> = storage.iter_mut().map(|b| std::io::IoSliceMut::new(b)).collect();
        let before = allocs();
        let n = tokio::time::timeout(DEADLINE, std::future::poll_fn(|cx| socket.poll_recv(cx, &mut bufs, &mut meta)))
            .await
            .unwrap()
            .unwrap();
        spent += allocs() - before;
        for (m, b) in meta[..n].iter().zip(&bufs) {
            assert!(b[..m.len].iter().all(|&x| x == 3));
            got += m.len;
        }
    }
    assert_eq!(spent, 0, "allocations while receiving");
}

/// Memory per receiving socket in fan-out: a stream holds nothing until
/// its first receive, then 4 slots of 64 KiB (256 KiB), growing only while
/// receives come back full. (The copying stream held a 2 MiB batch and a
/// 2 MiB pool per socket.)
#[tokio::test(flavor = "current_thread")]
async fn a_quiet_stream_holds_at_most_256_kib() {
    const SOCKETS: usize = 64;
    let tx = UdpSocket::bind(addr("127.0.0.1:0")).unwrap();
    let socks: Vec<_> = (0..SOCKETS).map(|_| UdpSocket::bind(addr("127.0.0.1:0")).unwrap()).collect();
    let before = alloc_bytes();
    let mut streams: Vec<_> = socks.iter().map(DatagramStream::new).collect();
    let idle = alloc_bytes() - before;
    for (s, stream) in socks.iter().zip(&mut streams) {
        tx.send_batch_all(&[Transmit::new(s.local_addr().unwrap(), b"hello")]).await.unwrap();
        let d = tokio::time::timeout(DEADLINE, stream.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(&d.payload[..], b"hello");
    }
    let after = alloc_bytes() - before;
    let per_socket = after / SOCKETS as u64;
    println!(
        "{SOCKETS} streams: {} bytes before any receive ({} per stream), {per_socket} bytes per stream after one datagram each",
        idle,
        idle / SOCKETS as u64
    );
    assert!(idle / (SOCKETS as u64) < 16 * 1024, "an idle stream allocated {} bytes", idle / SOCKETS as u64);
    assert!(per_socket <= 256 * 1024 + 16 * 1024, "{per_socket} bytes per quiet stream");
}
