//! `DatagramStream`: zero-copy GRO segments, ordering, metadata, the triad.

mod util;

use std::io;
use std::sync::Arc;

use futures_util::StreamExt;
use util::{addr, local, local_roomy_without_gro, DEADLINE};
use volley::{Ecn, RecvBatch, Transmit};
use volley_tokio::{DatagramStream, UdpSocket};

#[tokio::test(flavor = "current_thread")]
async fn gro_segments_are_slices_of_one_allocation() {
    let rx = Arc::new(local());
    let tx = local();
    if !(tx.capabilities().gso() && rx.capabilities().gro) {
        eprintln!("skipped: no GSO/GRO here");
        return;
    }
    let train: Vec<u8> = (0..8 * 1000 + 300).map(|i| (i / 1000) as u8).collect();
    tx.send_batch_all(&[Transmit::new(rx.local_addr().unwrap(), &train).with_segment_size(1000).with_ecn(Ecn::Ce)])
        .await
        .unwrap();
    let mut stream = DatagramStream::new(rx);
    let mut ds = Vec::new();
    while ds.len() < 9 {
        ds.push(tokio::time::timeout(DEADLINE, stream.next()).await.unwrap().unwrap().unwrap());
    }
    for (i, d) in ds.iter().enumerate() {
        let want = if i < 8 { 1000 } else { 300 };
        assert_eq!((d.meta.len, d.payload.len()), (want, want));
        assert!(d.payload.iter().all(|&b| b == i as u8), "segment {i} holds its own bytes");
        assert_eq!(d.meta.segment_size, 1000);
        // A stack that drops ECN marks (ecn_send false: Wine) sends unmarked.
        assert_eq!(d.meta.ecn, if tx.capabilities().ecn_send { Ecn::Ce } else { Ecn::NotEct });
    }
    // One shared buffer: segment i + 1 starts where segment i ends.
    for w in ds.windows(2) {
        assert_eq!(w[0].payload.as_ptr().wrapping_add(w[0].payload.len()), w[1].payload.as_ptr());
    }
}

#[tokio::test(flavor = "current_thread")]
async fn many_messages_keep_order_and_metadata() {
    let rx = local_roomy_without_gro(); // small slots below
    let tx = local();
    let to = rx.local_addr().unwrap();
    const N: u32 = 5000;
    let mut stream = DatagramStream::with_batch(&rx, RecvBatch::with_capacity(16, 4096));
    let send = async {
        for chunk in (0..N).collect::<Vec<_>>().chunks(250) {
            let payloads: Vec<[u8; 4]> = chunk.iter().map(|i| i.to_be_bytes()).collect();
            let ts: Vec<_> = payloads.iter().map(|p| Transmit::new(to, p).with_ecn(Ecn::Ect0)).collect();
            tx.send_batch_all(&ts).await.unwrap();
        }
    };
    let recv = async {
        let mut next = 0u32;
        while next < N {
            let d = stream.recv().await.unwrap();
            assert_eq!(u32::from_be_bytes(d.payload[..].try_into().unwrap()), next);
            assert_eq!(d.meta.src, tx.local_addr().unwrap());
            assert_eq!(d.meta.ecn, if tx.capabilities().ecn_send { Ecn::Ect0 } else { Ecn::NotEct });
            assert_eq!(d.meta.dst_ip, Some(addr("127.0.0.1:0").ip()));
            next += 1;
        }
    };
    tokio::time::timeout(DEADLINE, async { tokio::join!(send, recv) }).await.expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_recv_drains_a_burst_then_would_block() {
    let rx = local();
    let tx = local();
    let msgs = [[9u8; 10]; 20];
    let ts: Vec<_> = msgs.iter().map(|m| Transmit::new(rx.local_addr().unwrap(), m)).collect();
    tx.send_batch_all(&ts).await.unwrap();
    let mut stream = DatagramStream::new(&rx);
    let first = stream.recv().await.unwrap();
    assert_eq!(first.payload.len(), 10);
    let mut n = 1;
    while n < 20 {
        match stream.try_recv() {
            Ok(_) => n += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => rx.readable().await.unwrap(),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(stream.try_recv().unwrap_err().kind(), io::ErrorKind::WouldBlock);
    assert_eq!(stream.buffered_len(), 0);
}

/// The datagrams of one receive are cut from their messages as they are
/// asked for: `buffered_len` counts what is left (a GRO train's remaining
/// segments included), an empty datagram comes out once with no bytes, and
/// only the datagram cut short says `truncated`.
#[tokio::test(flavor = "current_thread")]
async fn buffered_len_empty_and_truncated_datagrams() {
    let rx = local_roomy_without_gro(); // slots of 8 bytes below
    let tx = local();
    let to = rx.local_addr().unwrap();
    let long = [5u8; 20];
    tx.send_batch_all(&[Transmit::new(to, b"abc"), Transmit::new(to, b""), Transmit::new(to, &long)]).await.unwrap();
    let mut stream = DatagramStream::with_batch(&rx, RecvBatch::with_capacity(4, 8));
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(tokio::time::timeout(DEADLINE, stream.recv()).await.unwrap().unwrap());
        // One receive may hold all three (they were sent together) or not:
        // what is buffered is exactly what has not been yielded yet.
        assert!(stream.buffered_len() <= 3 - got.len(), "buffered {} after {}", stream.buffered_len(), got.len());
    }
    assert_eq!(stream.buffered_len(), 0);
    assert_eq!((&got[0].payload[..], got[0].meta.len, got[0].meta.truncated), (&b"abc"[..], 3, false));
    assert_eq!((got[1].payload.len(), got[1].meta.len, got[1].meta.truncated), (0, 0, false));
    assert_eq!((&got[2].payload[..], got[2].meta.len, got[2].meta.truncated), (&[5u8; 8][..], 8, true));

    // A GRO train of 5 in one receive: 5 buffered before the first is
    // taken, one fewer after each.
    let (gtx, grx) = (local(), local());
    if !(gtx.capabilities().gso() && grx.capabilities().gro) {
        eprintln!("skipped the GRO half: no GSO/GRO here");
        return;
    }
    let train = [1u8; 5 * 100];
    gtx.send_batch_all(&[Transmit::new(grx.local_addr().unwrap(), &train).with_segment_size(100)]).await.unwrap();
    let mut stream = DatagramStream::new(&grx);
    let first = tokio::time::timeout(DEADLINE, stream.recv()).await.unwrap().unwrap();
    assert_eq!(first.meta.segment_size, 100, "one GRO receive");
    for left in (0..4).rev() {
        assert_eq!(stream.buffered_len(), left + 1);
        let d = stream.try_recv().unwrap();
        assert_eq!((d.payload.len(), d.meta.len), (100, 100));
        assert_eq!(stream.buffered_len(), left);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn stream_owns_or_borrows_the_socket() {
    let sock = UdpSocket::bind(addr("127.0.0.1:0")).unwrap();
    let at = sock.local_addr().unwrap();
    {
        let s = DatagramStream::new(&sock);
        assert_eq!(s.get_ref().local_addr().unwrap(), at);
    }
    let s = DatagramStream::new(sock);
    assert_eq!(s.into_inner().local_addr().unwrap(), at);
}

/// Received datagrams outlive later receives: holding them makes the pool
/// take a fresh chunk instead of overwriting.
#[tokio::test(flavor = "current_thread")]
async fn held_datagrams_are_never_overwritten() {
    let rx = local_roomy_without_gro(); // small slots below
    let tx = local();
    let to = rx.local_addr().unwrap();
    // A tiny batch so the pool chunk (slots x slot_len = 2 x 64 bytes) runs out fast.
    let mut stream = DatagramStream::with_batch(&rx, RecvBatch::with_capacity(2, 64));
    let mut held = Vec::new();
    for round in 0..50u8 {
        let m = [round; 64];
        tx.send_batch_all(&[Transmit::new(to, &m)]).await.unwrap();
        held.push(tokio::time::timeout(DEADLINE, stream.recv()).await.unwrap().unwrap());
    }
    for (i, d) in held.iter().enumerate() {
        assert_eq!(&d.payload[..], &[i as u8; 64][..]);
    }
}

/// With the error queue on, ICMP errors that arrive while a stream waits
/// (and no data comes) are moved out of the kernel's queue at once, so they
/// never sit in the receive buffer; the stream never yields them, and the
/// next datagram arrives.
#[tokio::test(flavor = "current_thread")]
async fn an_idle_stream_drains_icmp_errors_and_keeps_receiving() {
    let config = volley::Config::new().recv_errors(true);
    let rx = Arc::new(UdpSocket::bind_with(&config, addr("127.0.0.1:0")).unwrap());
    let mut stream = DatagramStream::new(Arc::clone(&rx));
    let waiter = tokio::spawn(async move { stream.next().await.map(|r| r.map(|d| d.payload.to_vec())) });
    let mut dead = Vec::new();
    for _ in 0..3 {
        dead.push(std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    }
    for &d in &dead {
        rx.send_batch_all(&[Transmit::new(d, b"anyone?")]).await.unwrap();
    }
    let mut kept = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    // Windows has no error queue (recv_errors reads false): nothing to
    // wait for, and the stream must still not yield, and keep receiving.
    let queue = rx.capabilities().recv_errors;
    while queue && kept.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await; // the stream's task runs
        let left_in_kernel = rx.get_ref().drain_icmp_errors();
        assert_eq!(left_in_kernel, 0, "the waiting stream left ICMP errors in the kernel's queue");
        while let Some(e) = rx.get_ref().try_recv_error().unwrap() {
            kept.push(e);
        }
    }
    assert_eq!(kept.is_empty(), !queue, "ICMP errors come back exactly when the error queue is on");
    for e in &kept {
        assert_eq!(e.kind, volley::IcmpKind::PortUnreachable, "{e:?}");
        assert!(dead.contains(&e.destination.unwrap()), "{e:?}");
    }
    assert!(!waiter.is_finished(), "the stream yielded something for an ICMP error");
    let tx = local();
    tx.send_batch_all(&[Transmit::new(rx.local_addr().unwrap(), b"data")]).await.unwrap();
    let got = tokio::time::timeout(DEADLINE, waiter).await.unwrap().unwrap();
    assert_eq!(got.unwrap().unwrap(), b"data");
}

/// The adapters drive the core's counters: what a `SendQueue` sends and a
/// `DatagramStream` receives shows in the sockets' `stats()`.
#[tokio::test(flavor = "current_thread")]
async fn stream_and_queue_drive_the_socket_statistics() {
    use volley_tokio::{Outgoing, SendQueue};
    let rx = Arc::new(local());
    let tx = Arc::new(local());
    let to = rx.local_addr().unwrap();
    let mut q = SendQueue::new(tx.clone());
    for i in 0..20u8 {
        q.try_push(Outgoing::new(to, vec![i; 1200])).unwrap();
    }
    q.flush().await.unwrap();
    let mut stream = DatagramStream::new(rx.clone());
    for _ in 0..20 {
        tokio::time::timeout(DEADLINE, stream.next()).await.unwrap().unwrap().unwrap();
    }
    let (s, r) = (tx.stats(), rx.stats());
    assert_eq!((s.datagrams_sent, s.bytes_sent), (20, 24_000), "{s:?}");
    assert_eq!((r.datagrams_received, r.bytes_received), (20, 24_000), "{r:?}");
    if tx.capabilities().gso() {
        // The queue coalesced one destination's datagrams into trains.
        assert!(s.gso_trains >= 1 && s.gso_segments == 20, "{s:?}");
        assert!(s.send_syscalls <= 2, "{s:?}");
    }
}
