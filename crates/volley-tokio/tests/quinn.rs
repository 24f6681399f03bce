//! quinn over volley: handshakes and checksummed bulk transfers between
//! volley endpoints, and interop with quinn's own socket both ways. The
//! helpers (certificates, endpoints, the checked transfer) live in the
//! throughput example, shared with it.

#[path = "../examples/quic_throughput.rs"]
mod bench;

use std::time::Duration;

use bench::{configs, endpoint, send_checked, serve_one, Datapath, WordHash, MIB};
use volley_tokio::quinn::QuinnSocket;

#[test]
fn word_hash_ignores_chunking_but_not_content() {
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    let mut whole = WordHash::new();
    whole.update(&data);
    let mut parts = WordHash::new();
    for c in data.chunks(13) {
        parts.update(c);
    }
    let (a, b) = (whole.finish(), parts.finish());
    assert_eq!(a, b);
    let mut changed = data.clone();
    changed[500] ^= 1;
    let mut h = WordHash::new();
    h.update(&changed);
    assert_ne!(h.finish(), a);
}

/// Server and client as tasks on the current runtime.
async fn transfer(server_path: Datapath, client_path: Datapath, total: usize, limit: Duration) -> Duration {
    let (server_config, client_config) = configs();
    let server = endpoint(server_path, Some(server_config));
    let server_addr = server.local_addr().unwrap();
    let server = tokio::spawn(serve_one(server));
    let client = endpoint(client_path, None);
    let t = tokio::time::timeout(limit, send_checked(client, client_config, server_addr, total))
        .await
        .expect("transfer in time");
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server done").unwrap();
    println!(
        "{client_path:?} client -> {server_path:?} server: {} MiB in {t:.2?} = {:.1} MB/s",
        total / MIB,
        total as f64 / 1e6 / t.as_secs_f64()
    );
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volley_to_volley_64_mib() {
    transfer(Datapath::Volley, Datapath::Volley, 64 * MIB, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn volley_to_volley_current_thread() {
    transfer(Datapath::Volley, Datapath::Volley, 4 * MIB, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_with_quinns_own_socket_both_ways() {
    transfer(Datapath::Default, Datapath::Volley, 8 * MIB, Duration::from_secs(60)).await;
    transfer(Datapath::Volley, Datapath::Default, 8 * MIB, Duration::from_secs(60)).await;
}

/// The portable backend (one syscall per datagram, no GSO/GRO) runs quinn
/// too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portable_backend_runs_quinn() {
    transfer(Datapath::VolleyPortable, Datapath::VolleyPortable, 4 * MIB, Duration::from_secs(60)).await;
}

/// Receives through the trait with quinn's buffer shapes.
async fn poll_recv_once(
    socket: &QuinnSocket,
    bufs: &mut [Vec<u8>],
    meta: &mut [quinn::udp::RecvMeta],
) -> std::io::Result<usize> {
    use quinn::AsyncUdpSocket;
    let mut slices: Vec<std::io::IoSliceMut<'_>> = bufs.iter_mut().map(|b| std::io::IoSliceMut::new(b)).collect();
    tokio::time::timeout(Duration::from_secs(10), std::future::poll_fn(|cx| socket.poll_recv(cx, &mut slices, meta)))
        .await
        .expect("a receive in time")
}

/// A GRO train larger than quinn's buffers is handed out in whole
/// segments over several buffers, with the right lengths and strides.
#[tokio::test(flavor = "current_thread")]
async fn gro_train_split_over_small_buffers() {
    let socket = QuinnSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = socket.get_ref().local_addr().unwrap();
    let tx = volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let train: Vec<u8> = (0..10 * 1200 + 500).map(|i| (i / 1200) as u8).collect();
    let t = volley::Transmit::new(to, &train).with_segment_size(1200).with_ecn(volley::Ecn::Ect0);
    tx.send_batch_all(&[t]).await.unwrap();

    let mut got = Vec::new();
    while got.iter().map(|(len, _, _)| len).sum::<usize>() < train.len() {
        // Three buffers of 3000 bytes: two segments each.
        let mut bufs = vec![vec![0u8; 3000]; 3];
        let mut meta = [quinn::udp::RecvMeta::default(); 3];
        let n = poll_recv_once(&socket, &mut bufs, &mut meta).await.unwrap();
        for (m, b) in meta[..n].iter().zip(&bufs) {
            assert_eq!(m.addr, tx.local_addr().unwrap());
            // A stack that drops ECN marks (ecn_send false: Wine) sends unmarked.
            let want = tx.capabilities().ecn_send.then_some(quinn::udp::EcnCodepoint::Ect0);
            assert_eq!(m.ecn, want);
            assert_eq!(m.dst_ip, Some("127.0.0.1".parse().unwrap()));
            got.push((m.len, m.stride, b[..m.len].to_vec()));
        }
    }
    let all: Vec<u8> = got.iter().flat_map(|(_, _, b)| b.clone()).collect();
    assert_eq!(all, train);
    if socket.get_ref().capabilities().gro {
        let shapes: Vec<_> = got.iter().map(|(len, stride, _)| (*len, *stride)).collect();
        // The last buffer takes the rest whole: two segments and the tail.
        assert_eq!(shapes, [(2400, 1200), (2400, 1200), (2400, 1200), (2400, 1200), (2900, 1200)]);
    }
}

/// With the ICMP error queue on, a port-unreachable is reported on the
/// socket; the glue swallows it instead of stopping quinn's endpoint.
#[tokio::test(flavor = "current_thread")]
async fn icmp_errors_do_not_stop_the_receive_path() {
    use quinn::AsyncUdpSocket;
    let config = volley::Config::new().recv_errors(true);
    let socket = QuinnSocket::bind_with(&config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // dropped: port closed
    let t = quinn::udp::Transmit { destination: closed, ecn: None, contents: b"x", segment_size: None, src_ip: None };
    socket.get_ref().writable().await.unwrap(); // try_send needs known readiness
    socket.try_send(&t).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // let the ICMP come back
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"real", socket.local_addr().unwrap()).unwrap();
    let mut bufs = vec![vec![0u8; 2048]; 4];
    let mut meta = [quinn::udp::RecvMeta::default(); 4];
    let n = poll_recv_once(&socket, &mut bufs, &mut meta).await.expect("no ICMP error surfaces");
    assert_eq!(n, 1);
    assert_eq!(&bufs[0][..meta[0].len], b"real");
    // Control: the ICMP error did come back (it is in the error queue), so
    // the receive above really went past one.
    // Windows has no error queue (recv_errors reads false): nothing is
    // queued, and the receive above had nothing to go past.
    let queued = socket.get_ref().get_ref().try_recv_error().unwrap();
    if socket.get_ref().capabilities().recv_errors {
        let icmp = queued.expect("an ICMP error was queued");
        assert_eq!((icmp.kind, icmp.destination), (volley::IcmpKind::PortUnreachable, Some(closed)));
    } else {
        assert!(queued.is_none(), "{queued:?}");
    }
    // bind_with sets Pmtud::Probe, so quinn is told the socket does not
    // fragment; where the stack refuses PMTUD modes (Wine), it may.
    if volley::Config::new().pmtud(volley::Pmtud::Probe).bind("127.0.0.1:0".parse().unwrap()).is_ok() {
        assert!(!socket.may_fragment());
    }
}
