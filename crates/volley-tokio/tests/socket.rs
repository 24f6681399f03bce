//! `UdpSocket`: the triad on both runtimes, sharing between tasks, GSO/GRO
//! end to end, the portable backend.

mod util;

use std::future::poll_fn;
use std::io;
use std::sync::Arc;

use util::{addr, local, local_roomy, recv_messages, recv_n, DEADLINE};
use volley::{Backend, Config, Ecn, RecvBatch, Transmit};
use volley_tokio::{Datagram, DatagramStream, Outgoing, SendQueue, UdpSocket};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<UdpSocket>();
    assert_send_sync::<DatagramStream>();
    assert_send_sync::<DatagramStream<&UdpSocket>>();
    assert_send_sync::<Datagram>();
    assert_send_sync::<SendQueue>();
    assert_send_sync::<Outgoing>();
    assert_send_sync::<volley_tokio::quinn::QuinnSocket>();
}

/// Sends 100 datagrams (some as one GSO train) with the three send forms and
/// receives them with the three receive forms.
async fn triad() {
    let a = local();
    let b = local();
    let to = b.local_addr().unwrap();
    let small: Vec<[u8; 64]> = (0..40u8).map(|i| [i; 64]).collect();
    let singles: Vec<_> = small.iter().map(|m| Transmit::new(to, m).with_ecn(Ecn::Ect1)).collect();

    // async
    a.send_batch_all(&singles[..20]).await.unwrap();
    // poll
    let mut rest = &singles[20..30];
    while !rest.is_empty() {
        let sent = poll_fn(|cx| a.poll_send_batch(cx, rest)).await.unwrap();
        assert!(!sent.is_partial(), "single datagrams cut: {sent:?}");
        rest = &rest[sent.transmits..];
    }
    // try (after waiting for writability)
    let mut rest = &singles[30..];
    while !rest.is_empty() {
        a.writable().await.unwrap();
        match a.try_send_batch(rest) {
            Ok(sent) => rest = &rest[sent.transmits..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    // and 60 more in one GSO transmit
    let train = vec![0xee; 60 * 100];
    a.send_batch_all(&[Transmit::new(to, &train).with_segment_size(100)]).await.unwrap();

    let mut got = Vec::new();
    let mut batch = RecvBatch::with_capacity(8, 1 << 16);
    tokio::time::timeout(DEADLINE, async {
        let mut form = 0;
        while got.len() < 100 {
            form += 1;
            match form % 3 {
                0 => {
                    b.recv_batch(&mut batch).await.unwrap();
                }
                1 => {
                    poll_fn(|cx| b.poll_recv_batch(cx, &mut batch)).await.unwrap();
                }
                _ => {
                    b.readable().await.unwrap();
                    match b.try_recv_batch(&mut batch) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            got.extend(batch.iter().map(|(m, p)| (m, p.to_vec())));
        }
    })
    .await
    .expect("100 datagrams in time");
    for (i, (meta, payload)) in got.iter().enumerate().take(40) {
        assert_eq!(payload, &[i as u8; 64]);
        // A stack that drops ECN marks (ecn_send false: Wine) sends unmarked.
        assert_eq!(meta.ecn, if a.capabilities().ecn_send { Ecn::Ect1 } else { Ecn::NotEct });
        assert_eq!(meta.src, a.local_addr().unwrap());
    }
    assert!(got[40..].iter().all(|(m, p)| m.len == 100 && p == &[0xee; 100]));
}

#[tokio::test(flavor = "current_thread")]
async fn triad_current_thread() {
    triad().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triad_multi_thread() {
    triad().await;
}

/// One socket, shared: a receiving task echoes what a sending task sends
/// through the same socket (to itself and back through a peer).
async fn shared_between_tasks() {
    let sock = Arc::new(local_roomy());
    let peer = local_roomy();
    let peer_addr = peer.local_addr().unwrap();
    const N: usize = 2000;

    let rx = sock.clone();
    let receiver = tokio::spawn(async move { recv_n(&rx, N).await });
    let tx = sock.clone();
    let sender = tokio::spawn(async move {
        for i in 0..N / 100 {
            let msgs: Vec<[u8; 8]> = (0..100).map(|j| ((i * 100 + j) as u64).to_be_bytes()).collect();
            let ts: Vec<_> = msgs.iter().map(|m| Transmit::new(peer_addr, m)).collect();
            tx.send_batch_all(&ts).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    // The peer bounces everything back to the shared socket.
    let to = sock.local_addr().unwrap();
    let bounce = tokio::spawn(async move {
        let mut batch = RecvBatch::new();
        let mut n = 0;
        while n < N {
            peer.recv_batch(&mut batch).await.unwrap();
            let payloads: Vec<Vec<u8>> = batch.iter().map(|(_, p)| p.to_vec()).collect();
            let ts: Vec<_> = payloads.iter().map(|p| Transmit::new(to, p)).collect();
            peer.send_batch_all(&ts).await.unwrap();
            n += ts.len();
        }
    });
    sender.await.unwrap();
    tokio::time::timeout(DEADLINE, bounce).await.expect("bounce in time").unwrap();
    let got = receiver.await.unwrap();
    let mut seqs: Vec<u64> = got.iter().map(|(_, p)| u64::from_be_bytes(p[..8].try_into().unwrap())).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..N as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "current_thread")]
async fn shared_between_tasks_current_thread() {
    shared_between_tasks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_between_tasks_multi_thread() {
    shared_between_tasks().await;
}

/// Many tasks wait to receive on one socket at once; every one is woken
/// (the async methods use per-call waiters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiters_all_wake() {
    let sock = Arc::new(local());
    let to = sock.local_addr().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = sock.clone();
        tasks.push(tokio::spawn(async move {
            let mut batch = RecvBatch::with_capacity(1, volley::DEFAULT_SLOT_LEN);
            s.recv_batch(&mut batch).await.unwrap()
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let tx = local();
    let msgs = [[1u8; 4]; 8];
    let ts: Vec<_> = msgs.iter().map(|m| Transmit::new(to, m)).collect();
    tx.send_batch_all(&ts).await.unwrap();
    for t in tasks {
        assert_eq!(tokio::time::timeout(DEADLINE, t).await.expect("woken").unwrap(), 1);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn try_forms_say_would_block() {
    let sock = local();
    let e = sock.try_recv_batch(&mut RecvBatch::new()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
}

#[tokio::test(flavor = "current_thread")]
async fn recv_batch_is_cancel_safe() {
    use std::future::{poll_fn, Future};
    let sock = local();
    let tx = local();
    let to = sock.local_addr().unwrap();
    let mut batch = RecvBatch::new();
    {
        // Poll once with nothing queued (the future registers for
        // readiness), let a datagram arrive and wake it, then drop the
        // future without polling it again: the cancellation must lose nothing.
        let mut fut = std::pin::pin!(sock.recv_batch(&mut batch));
        let pending = poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_pending())).await;
        assert!(pending, "nothing was queued yet");
        tx.send_batch_all(&[Transmit::new(to, b"in flight")]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = recv_n(&sock, 1).await;
    assert_eq!(got[0].1, b"in flight", "the datagram that arrived during the cancelled receive");
}

#[tokio::test(flavor = "current_thread")]
async fn errors_keep_the_typed_core_error() {
    let sock = local();
    let v6 = addr("[::1]:9");
    let e = sock.send_batch(&[Transmit::new(v6, b"x")]).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<volley::Error>());
    assert!(matches!(inner, Some(volley::Error::InvalidTransmit(volley::InvalidTransmit::AddressFamily { .. }))));
    let e = sock.recv(&mut [], &mut [volley::RecvMeta::default()]).await.unwrap_err();
    assert!(matches!(e.get_ref().and_then(|i| i.downcast_ref()), Some(volley::Error::EmptyBatch)));
    // An empty send batch is not an error: it sends nothing.
    assert_eq!(sock.send_batch(&[]).await.unwrap(), volley::Sent::default());
}

#[tokio::test(flavor = "current_thread")]
async fn gso_train_arrives_as_gro_train() {
    let rx = local();
    let tx = local();
    if !(tx.capabilities().gso() && rx.capabilities().gro) {
        eprintln!("skipped: no GSO/GRO here\n{}", tx.capabilities());
        return;
    }
    let train = vec![5u8; 10 * 1200];
    tx.send_batch_all(&[Transmit::new(rx.local_addr().unwrap(), &train).with_segment_size(1200)]).await.unwrap();
    assert_eq!(recv_messages(&rx, 10).await, [(12_000, 1200)]);
}

/// The portable backend (one syscall per datagram) behind the same API.
#[tokio::test(flavor = "current_thread")]
async fn portable_backend() {
    let cfg = Config::new().backend(Backend::Portable);
    let a = UdpSocket::bind_with(&cfg, addr("127.0.0.1:0")).unwrap();
    let b = UdpSocket::bind_with(&cfg, addr("127.0.0.1:0")).unwrap();
    assert!(!a.capabilities().mmsg);
    let train = vec![3u8; 2500];
    let t = Transmit::new(b.local_addr().unwrap(), &train).with_segment_size(1000);
    a.send_batch_all(&[t, Transmit::new(b.local_addr().unwrap(), b"z")]).await.unwrap();
    let got = recv_n(&b, 4).await;
    let sizes: Vec<_> = got.iter().map(|(m, _)| m.len).collect();
    assert_eq!(sizes, [1000, 1000, 500, 1]);
}

#[tokio::test(flavor = "current_thread")]
async fn new_wraps_an_existing_socket_and_into_inner_returns_it() {
    let core = volley::Socket::bind(addr("127.0.0.1:0")).unwrap();
    let at = core.local_addr().unwrap();
    let sock = UdpSocket::new(core).unwrap();
    assert_eq!(sock.local_addr().unwrap(), at);
    assert_eq!(sock.get_ref().local_addr().unwrap(), at);
    let core = sock.into_inner().unwrap();
    assert_eq!(core.local_addr().unwrap(), at);
}

/// One descriptor per socket: tokio owns it, volley drives it (no dup).
/// Counted per socket (descriptors of this process naming the same kernel
/// socket), so tests running in parallel do not disturb the count.
#[cfg(target_os = "linux")] // reads /proc/self/fd
#[tokio::test(flavor = "current_thread")]
async fn a_socket_holds_one_descriptor() {
    use std::os::fd::AsRawFd;
    let target = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    let socks: Vec<_> = (0..16).map(|_| UdpSocket::bind(addr("127.0.0.1:0")).unwrap()).collect();
    let all: Vec<_> =
        std::fs::read_dir("/proc/self/fd").unwrap().filter_map(|e| std::fs::read_link(e.ok()?.path()).ok()).collect();
    for s in &socks {
        let me = target(s.as_raw_fd());
        let holders = all.iter().filter(|t| **t == me).count();
        assert_eq!(holders, 1, "{} descriptors name {}", holders, me.display());
    }
    // And they work through that one descriptor.
    let to = socks[1].local_addr().unwrap();
    socks[0].send_batch_all(&[Transmit::new(to, b"one fd")]).await.unwrap();
    let mut batch = RecvBatch::new();
    socks[1].recv_batch(&mut batch).await.unwrap();
    assert_eq!(batch.iter().next().unwrap().1, b"one fd");
}

#[test]
fn new_outside_a_runtime_is_an_error() {
    let core = volley::Socket::bind(addr("127.0.0.1:0")).unwrap();
    assert!(UdpSocket::new(core).is_err());
}
