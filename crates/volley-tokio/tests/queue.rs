//! `SendQueue`: coalescing into GSO trains on the wire, many destinations
//! per call, order per destination, the Sink, error handling.

mod util;

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt;
use util::{addr, local, local_roomy, recv_messages, recv_n};
use volley::{Config, Ecn};
use volley_tokio::{Outgoing, SendQueue, UdpSocket};

/// Ten equal datagrams to one destination leave as one GSO train, which a
/// GRO receiver gets as one message.
#[tokio::test(flavor = "current_thread")]
async fn equal_sizes_become_one_gso_train() {
    let tx = Arc::new(local());
    let rx = local();
    if !(tx.capabilities().gso() && rx.capabilities().gro) {
        eprintln!("skipped: no GSO/GRO here");
        return;
    }
    let to = rx.local_addr().unwrap();
    let mut q = SendQueue::new(tx);
    for i in 0..9u8 {
        q.try_push(Outgoing::new(to, vec![i; 1200])).unwrap();
    }
    q.try_push(Outgoing::new(to, vec![9; 700])).unwrap(); // shorter tail joins
    q.flush().await.unwrap();
    assert_eq!(recv_messages(&rx, 10).await, [(9 * 1200 + 700, 1200)]);
}

/// Three destinations, mixed sizes and ECN, interleaved: every datagram
/// arrives intact and in order per destination.
async fn many_destinations(gso: bool) {
    let tx = UdpSocket::bind_with(&Config::new().gso(gso), addr("127.0.0.1:0")).unwrap();
    let rxs: Vec<UdpSocket> = (0..3).map(|_| local_roomy()).collect();
    let dests: Vec<_> = rxs.iter().map(|r| r.local_addr().unwrap()).collect();
    let mut q = SendQueue::with_capacity(&tx, 256);
    let mut expected: HashMap<usize, Vec<(Vec<u8>, Ecn)>> = HashMap::new();
    for i in 0..900u32 {
        let d = (i % 3) as usize;
        let len = match i % 7 {
            0 => 100,
            1 => 1400,
            _ => 1200,
        };
        let ecn = if i % 11 == 0 { Ecn::Ect0 } else { Ecn::NotEct };
        let mut payload = vec![(i % 251) as u8; len];
        payload[..4].copy_from_slice(&i.to_be_bytes());
        expected.entry(d).or_default().push((payload.clone(), ecn));
        q.push(Outgoing::new(dests[d], payload).with_ecn(ecn)).await.unwrap();
    }
    q.flush().await.unwrap();
    assert!(q.is_empty());
    for (d, rx) in rxs.iter().enumerate() {
        let want = &expected[&d];
        let got = recv_n(rx, want.len()).await;
        for ((meta, payload), (wp, we)) in got.iter().zip(want) {
            assert_eq!(payload, wp);
            // A stack that drops ECN marks (ecn_send false: Wine) sends unmarked.
            let we = if tx.capabilities().ecn_send { *we } else { Ecn::NotEct };
            assert_eq!(meta.ecn, we);
            assert_eq!(meta.src, tx.local_addr().unwrap());
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn many_destinations_with_gso() {
    many_destinations(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_destinations_without_gso() {
    many_destinations(false).await;
}

#[tokio::test(flavor = "current_thread")]
async fn sink_sends_and_flushes() {
    let tx = Arc::new(local());
    let rx = local();
    let to = rx.local_addr().unwrap();
    let mut q = SendQueue::with_capacity(tx, 8);
    for i in 0..50u8 {
        q.feed(Outgoing::from((to, Bytes::from(vec![i; 300])))).await.unwrap();
    }
    q.flush().await.unwrap();
    let got = recv_n(&rx, 50).await;
    for (i, (_, p)) in got.iter().enumerate() {
        assert_eq!(p, &vec![i as u8; 300]);
    }
    SinkExt::close(&mut q).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn try_push_respects_the_bound() {
    let tx = local();
    let to = addr("127.0.0.1:9");
    let mut q = SendQueue::with_capacity(&tx, 3);
    for _ in 0..3 {
        q.try_push(Outgoing::new(to, vec![0])).unwrap();
    }
    let back = q.try_push(Outgoing::new(to, vec![7])).unwrap_err();
    assert_eq!(&back.payload[..], &[7]);
    assert_eq!(q.len(), 3);
}

/// A datagram the socket rejects is dropped with its error; the others are
/// sent by the next flush.
#[tokio::test(flavor = "current_thread")]
async fn a_bad_datagram_fails_alone() {
    let tx = local();
    let rx = local();
    let to = rx.local_addr().unwrap();
    let mut q = SendQueue::new(&tx);
    q.try_push(Outgoing::new(to, vec![1; 10])).unwrap();
    q.try_push(Outgoing::new(addr("[::1]:9"), vec![2; 10])).unwrap(); // IPv6 on an IPv4 socket
    q.try_push(Outgoing::new(to, vec![3; 20])).unwrap();
    let err = q.flush().await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    q.flush().await.unwrap();
    assert!(q.is_empty());
    let got = recv_n(&rx, 2).await;
    assert_eq!(got[0].1, vec![1; 10]);
    assert_eq!(got[1].1, vec![3; 20]);
}

/// `src_ip` and ECN go out per datagram: replies leave from the address
/// the queue asked for.
#[tokio::test(flavor = "current_thread")]
async fn src_ip_per_datagram() {
    let tx = UdpSocket::bind(addr("0.0.0.0:0")).unwrap();
    if !tx.capabilities().pktinfo {
        eprintln!("skipped: no pktinfo");
        return;
    }
    let rx = local();
    let to = rx.local_addr().unwrap();
    if !tx.capabilities().src_send {
        // The stack ignores a per-datagram source (Wine): refused, typed,
        // rather than sent from another address.
        let t = volley::Transmit::new(to, &[0; 100]).with_src_ip(addr("127.0.0.2:0").ip());
        match tx.get_ref().try_send_batch(&[t]) {
            Err(volley::Error::InvalidTransmit(volley::InvalidTransmit::SourceUnsupported)) => return,
            other => panic!("src_send false, yet: {other:?}"),
        }
    }
    let mut q = SendQueue::new(&tx);
    for src in ["127.0.0.2", "127.0.0.3", "127.0.0.2"] {
        q.try_push(Outgoing::new(to, vec![0; 100]).with_src_ip(src.parse().unwrap()).with_ecn(Ecn::Ect1)).unwrap();
    }
    q.flush().await.unwrap();
    let port = tx.local_addr().unwrap().port();
    let got = recv_n(&rx, 3).await;
    let mut srcs: Vec<_> = got.iter().map(|(m, _)| m.src).collect();
    srcs.sort();
    assert_eq!(
        srcs,
        [addr("127.0.0.2:0"), addr("127.0.0.2:0"), addr("127.0.0.3:0")].map(|mut a| {
            a.set_port(port);
            a
        })
    );
    let ecn = if tx.capabilities().ecn_send { Ecn::Ect1 } else { Ecn::NotEct };
    assert!(got.iter().all(|(m, _)| m.ecn == ecn));
}

/// Two queues in two tasks on one socket (with a small send buffer) both
/// finish. (Loopback rarely fills a UDP send buffer, so this shows sharing
/// works, not that both waiters are woken; `socket::many_waiters_all_wake`
/// covers the per-call waiters the async methods use.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_in_two_tasks_share_a_full_socket() {
    let tx = Arc::new(UdpSocket::bind_with(&Config::new().send_buffer_size(16 << 10), addr("127.0.0.1:0")).unwrap());
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap(); // nobody reads: drops are fine
    let to = sink.local_addr().unwrap();
    let mut tasks = Vec::new();
    for t in 0..2u8 {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut q = SendQueue::with_capacity(tx, 16);
            for _ in 0..3000 {
                q.push(Outgoing::new(to, vec![t; 1000])).await.unwrap();
            }
            q.flush().await.unwrap();
        }));
    }
    for t in tasks {
        tokio::time::timeout(util::DEADLINE, t).await.expect("both queues finish").unwrap();
    }
}
