//! ICMP errors must neither stop a quinn endpoint nor deafen a socket
//! (issue 12), through the tokio adapter: `DatagramStream`, `QuinnSocket`
//! under live quinn endpoints, and `SendQueue`.
//!
//! Forged errors come from `volley_tests::icmp` (raw sockets in a namespace
//! of a two-namespace lab, quoting a datagram the victim socket "sent"); the
//! real-router case uses the lab's three-namespace line with a 1280-byte far
//! link, where quinn's own MTU probes draw real frag-needed / packet-too-big.
//!
//! Linux only: the lab and the error queue are Linux's.
#![cfg(target_os = "linux")]

#[path = "../examples/quic_throughput.rs"]
mod bench;

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{configs, send_checked, serve_one, MIB};
use quinn::{ClientConfig, Endpoint, EndpointConfig, ServerConfig, TokioRuntime};
use volley::Config;
use volley_tests::icmp::{classes, flood, wait_pollerr, Class, Pair, DATAGRAMS, QUOTED_PORT};
use volley_tests::netlab::{self, Line, Ns};
use volley_tokio::quinn::QuinnSocket;
use volley_tokio::{DatagramStream, Outgoing, SendQueue, UdpSocket};

const DEADLINE: Duration = Duration::from_secs(20);

/// A `volley_tokio::UdpSocket` bound in `ns`, registered with the current
/// runtime.
fn bind_in(ns: &Ns, config: &Config, at: SocketAddr) -> UdpSocket {
    let handle = tokio::runtime::Handle::current();
    let config = config.clone();
    ns.run(move || {
        let _rt = handle.enter();
        UdpSocket::bind_with(&config, at)
    })
    .unwrap_or_else(|e| panic!("bind {at} in {}: {e}", ns.name()))
}

/// A quinn endpoint over `QuinnSocket::bind_with(config)` (which sets
/// `Pmtud::Probe`, so quinn runs MTU discovery) bound in `ns`; a server if
/// `server` is given. Returns the socket too.
fn endpoint_in(ns: &Ns, config: &Config, at: SocketAddr, server: Option<ServerConfig>) -> (Endpoint, Arc<QuinnSocket>) {
    let handle = tokio::runtime::Handle::current();
    let config = config.clone();
    let socket = ns
        .run(move || {
            let _rt = handle.enter();
            QuinnSocket::bind_with(&config, at)
        })
        .unwrap_or_else(|e| panic!("bind {at} in {}: {e}", ns.name()));
    let socket = Arc::new(socket);
    let endpoint =
        Endpoint::new_with_abstract_socket(EndpointConfig::default(), server, socket.clone(), Arc::new(TokioRuntime))
            .expect("endpoint");
    (endpoint, socket)
}

/// One connection: the client sends `msg` on a bidirectional stream, the
/// server echoes it. `Err` says which step failed.
async fn echo_once(
    server: &Endpoint,
    client: &Endpoint,
    client_config: &ClientConfig,
    msg: &[u8],
) -> Result<(), String> {
    let server_addr = server.local_addr().map_err(|e| e.to_string())?;
    let serve = async {
        let incoming = server.accept().await.ok_or("accept() returned None: the endpoint stopped")?;
        let conn = incoming.await.map_err(|e| format!("server handshake: {e}"))?;
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| format!("accept_bi: {e}"))?;
        let got = recv.read_to_end(1 << 20).await.map_err(|e| format!("server read: {e}"))?;
        send.write_all(&got).await.map_err(|e| format!("server write: {e}"))?;
        send.finish().map_err(|e| format!("server finish: {e}"))?;
        conn.closed().await;
        Ok::<_, String>(())
    };
    let talk = async {
        let conn = client
            .connect_with(client_config.clone(), server_addr, "localhost")
            .map_err(|e| format!("connect: {e}"))?
            .await
            .map_err(|e| format!("client handshake: {e}"))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| format!("open_bi: {e}"))?;
        send.write_all(msg).await.map_err(|e| format!("client write: {e}"))?;
        send.finish().map_err(|e| format!("client finish: {e}"))?;
        let back = recv.read_to_end(1 << 20).await.map_err(|e| format!("client read: {e}"))?;
        conn.close(0u32.into(), b"done");
        if back == msg {
            Ok(())
        } else {
            Err(format!("echo differs: {} bytes back of {}", back.len(), msg.len()))
        }
    };
    let both = async { tokio::try_join!(serve, talk) };
    match tokio::time::timeout(Duration::from_secs(5), both).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err("no echo within 5 s".to_owned()),
    }
}

// ---------------------------------------------------------------------------
// DatagramStream.

/// 2,000 forged errors interleaved with 200 datagrams: the stream yields
/// all 200 and never an error.
async fn stream_starvation(v6: bool) {
    let Some(pair) = Pair::new() else { return };
    let class = Class::port_unreachable(v6);
    let sock =
        Arc::new(bind_in(&pair.victim, &Config::new().recv_errors(true), SocketAddr::new(pair.victim_ip(v6), 0)));
    let at = sock.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let forging = {
        let received = received.clone();
        std::thread::spawn(move || {
            let f = flood(&pair, &class, at, &received);
            (f, pair) // keep the lab alive until the receiver is done
        })
    };
    let mut stream = DatagramStream::new(sock.clone());
    let mut seqs = Vec::new();
    let mut errors = Vec::new();
    let start = Instant::now();
    while seqs.len() < DATAGRAMS && start.elapsed() < Duration::from_secs(15) {
        match tokio::time::timeout(Duration::from_secs(3), stream.recv()).await {
            Ok(Ok(d)) => {
                seqs.push(u32::from_be_bytes(d.payload[..4].try_into().unwrap()));
                received.store(seqs.len(), Ordering::Release);
            }
            Ok(Err(e)) => errors.push(e.raw_os_error()),
            Err(_) => break, // nothing for 3 s: the rest is lost
        }
        if errors.len() > 10_000 {
            break;
        }
    }
    let (f, _pair) = forging.join().expect("forger");
    let mut reported = 0;
    while reported < f.forged && sock.get_ref().try_recv_error().expect("try_recv_error").is_some() {
        reported += 1;
    }
    let lost = sock.get_ref().lost_icmp_errors();
    println!(
        "[stream v6={v6}] forged {}, sent {} (stalled {}): received {}/{}, stream errors {}, then try_recv_error \
         reported {reported}, lost_icmp_errors {lost}",
        f.forged,
        f.sent,
        f.stalled,
        seqs.len(),
        f.sent,
        errors.len()
    );
    assert!(errors.is_empty(), "the stream yielded errors {errors:?}");
    seqs.sort_unstable();
    assert_eq!(seqs, (0..DATAGRAMS as u32).collect::<Vec<_>>(), "all {DATAGRAMS} datagrams, each once");
    // A `Pending` entry may count one error twice (a receive returned
    // `sk_err` after its queue entry was drained: the kernel queues before
    // it sets `sk_err`), so "==" only from below.
    let forged = f.forged as u64;
    assert!(reported as u64 + lost >= forged, "an error vanished: reported + lost < forged");
    assert!(reported as u64 + lost <= forged + forged / 10, "far more errors counted than forged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_starvation_2000_errors_200_datagrams_v4() {
    stream_starvation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_starvation_2000_errors_200_datagrams_v6() {
    stream_starvation(true).await;
}

/// Only errors arrive: a stream waiting for a datagram still wakes up and
/// drains them (the error queue would otherwise fill the receive buffer),
/// then yields the datagram that comes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_drains_when_only_errors_arrive() {
    let Some(pair) = Pair::new() else { return };
    let class = Class::port_unreachable(false);
    let sock =
        Arc::new(bind_in(&pair.victim, &Config::new().recv_errors(true), SocketAddr::new(pair.victim_ip(false), 0)));
    let at = sock.local_addr().unwrap();
    let reader = {
        let sock = sock.clone();
        tokio::spawn(async move {
            let mut stream = DatagramStream::new(sock);
            tokio::time::timeout(DEADLINE, stream.recv()).await
        })
    };
    let forger = pair.forger(false);
    let dest = SocketAddr::new(pair.quoted_ip(false), QUOTED_PORT);
    forger.send_many(&class, at, dest, 200).expect("forge");
    // The ring keeps 64: the rest counts as lost once drained.
    let drained = netlab::wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
        sock.get_ref().lost_icmp_errors() >= 200 - 64
    });
    let lost = sock.get_ref().lost_icmp_errors();
    let peer = pair.forger_udp(SocketAddr::new(pair.forger_ip(false), 0));
    peer.send_to(b"after", at).unwrap();
    let got = reader.await.unwrap();
    assert!(drained, "200 errors, no datagram: lost_icmp_errors is {lost} after 5 s (nobody drained)");
    let d = got.expect("a datagram in time").expect("no error from the stream");
    assert_eq!(&d.payload[..], b"after");
}

// ---------------------------------------------------------------------------
// quinn.

/// A server endpoint with `recv_errors(true)` gets one forged error of each
/// class; afterwards it still accepts a new connection and echoes.
async fn quinn_survives_every_class(v6: bool) {
    let Some(pair) = Pair::new() else { return };
    let (server_config, client_config) = configs();
    let forger = pair.forger(v6);
    let (client, _) = endpoint_in(&pair.forger, &Config::new(), SocketAddr::new(pair.forger_ip(v6), 0), None);
    let dest = SocketAddr::new(pair.quoted_ip(v6), QUOTED_PORT);
    let mut failures = Vec::new();
    for class in classes(v6) {
        let (server, _socket) = endpoint_in(
            &pair.victim,
            &Config::new().recv_errors(true),
            SocketAddr::new(pair.victim_ip(v6), 0),
            Some(server_config.clone()),
        );
        // Control: the endpoint works before the error.
        if let Err(e) = echo_once(&server, &client, &client_config, b"before").await {
            failures.push(format!("{}: before the error: {e}", class.name));
            continue;
        }
        forger.send(class, server.local_addr().unwrap(), dest).expect("forge");
        if let Err(e) = echo_once(&server, &client, &client_config, class.name.as_bytes()).await {
            failures.push(format!("{}: {e}", class.name));
        }
        server.close(0u32.into(), b"next");
    }
    client.close(0u32.into(), b"done");
    assert!(
        failures.is_empty(),
        "quinn server over QuinnSocket with recv_errors(true), one forged error per class:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_survives_every_class_v4() {
    quinn_survives_every_class(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_survives_every_class_v6() {
    quinn_survives_every_class(true).await;
}

/// Only errors arrive at an idle quinn endpoint: its socket is still
/// drained (by the endpoint driver's receive), so the error queue does not
/// fill the receive buffer; a connection afterwards works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_drains_when_only_errors_arrive() {
    let Some(pair) = Pair::new() else { return };
    let (server_config, client_config) = configs();
    let class = Class::port_unreachable(false);
    let (server, socket) = endpoint_in(
        &pair.victim,
        &Config::new().recv_errors(true),
        SocketAddr::new(pair.victim_ip(false), 0),
        Some(server_config),
    );
    let forger = pair.forger(false);
    let dest = SocketAddr::new(pair.quoted_ip(false), QUOTED_PORT);
    forger.send_many(&class, server.local_addr().unwrap(), dest, 200).expect("forge");
    let drained = netlab::wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
        socket.get_ref().get_ref().lost_icmp_errors() >= 200 - 64
    });
    let lost = socket.get_ref().get_ref().lost_icmp_errors();
    let (client, _) = endpoint_in(&pair.forger, &Config::new(), SocketAddr::new(pair.forger_ip(false), 0), None);
    let after = echo_once(&server, &client, &client_config, b"after").await;
    assert!(drained, "200 errors at an idle endpoint: lost_icmp_errors is {lost} after 5 s (nobody drained)");
    assert_eq!(after, Ok(()));
}

/// A live quinn connection while the server's socket gets bursts of 200
/// port-unreachables (errors the old glue already swallowed, so only the
/// undrained error queue can hurt): ten rounds of (200 errors, 64 KiB
/// echoed) finish, and the server accepts a new connection afterwards.
async fn quinn_starvation(v6: bool) {
    let Some(pair) = Pair::new() else { return };
    let (server_config, client_config) = configs();
    let class = Class::port_unreachable(v6);
    let forger = pair.forger(v6);
    let (server, _ssock) = endpoint_in(
        &pair.victim,
        &Config::new().recv_errors(true),
        SocketAddr::new(pair.victim_ip(v6), 0),
        Some(server_config),
    );
    let (client, _) = endpoint_in(&pair.forger, &Config::new(), SocketAddr::new(pair.forger_ip(v6), 0), None);
    let server_addr = server.local_addr().unwrap();
    let dest = SocketAddr::new(pair.quoted_ip(v6), QUOTED_PORT);
    let serve = {
        let server = server.clone();
        tokio::spawn(async move {
            let conn = server.accept().await.expect("an incoming connection").await.expect("server handshake");
            // Echo every stream until the client closes.
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let got = recv.read_to_end(1 << 20).await.expect("server read");
                send.write_all(&got).await.expect("server write");
                send.finish().expect("finish");
            }
        })
    };
    let start = Instant::now();
    let conn =
        tokio::time::timeout(DEADLINE, client.connect_with(client_config.clone(), server_addr, "localhost").unwrap())
            .await
            .expect("handshake in time")
            .expect("client handshake");
    let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut rounds = 0;
    let mut forged = 0;
    let mut slowest = Duration::ZERO;
    let run = async {
        for _ in 0..10 {
            forged += forger.send_many(&class, server_addr, dest, 200).expect("forge");
            let t = Instant::now();
            let (mut send, mut recv) = conn.open_bi().await.expect("open_bi");
            send.write_all(&chunk).await.expect("client write");
            send.finish().expect("finish");
            let back = recv.read_to_end(1 << 20).await.expect("client read");
            assert_eq!(back, chunk, "round {rounds}: echo differs");
            slowest = slowest.max(t.elapsed());
            rounds += 1;
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(30), run).await.is_ok();
    println!(
        "[quinn v6={v6}] {rounds}/10 rounds of 64 KiB echoed with {forged} forged errors in {:.2?} (slowest round \
         {slowest:.2?}); server socket lost_icmp_errors {}",
        start.elapsed(),
        _ssock.get_ref().get_ref().lost_icmp_errors()
    );
    assert!(finished, "only {rounds}/10 echo rounds within 30 s");
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(5), serve).await;
    let after = echo_once(&server, &client, &client_config, b"still there?").await;
    assert_eq!(after, Ok(()), "a new connection after the flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_starvation_2000_errors_v4() {
    quinn_starvation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_starvation_2000_errors_v6() {
    quinn_starvation(true).await;
}

/// quinn over volley through a router whose far link has MTU 1280: quinn's
/// own MTU probes (larger than 1280, DF set) draw real ICMP frag-needed /
/// ICMPv6 packet-too-big from the router; both endpoints have
/// `recv_errors(true)`, survive, a 4 MiB checked transfer completes and the
/// server accepts a second connection.
async fn quinn_through_1280_router(v6: bool) {
    let Some(line) = Line::new(&[]) else { return };
    line.router_server_if.mtu(1280);
    line.server_if.mtu(1280);
    let (server_config, client_config) = configs();
    let config = Config::new().recv_errors(true);
    let (server, _) = endpoint_in(&line.server, &config, SocketAddr::new(line.server_ip(v6), 0), Some(server_config));
    let (client, client_socket) = endpoint_in(&line.client, &config, SocketAddr::new(line.client_ip(v6), 0), None);
    let server_addr = server.local_addr().unwrap();
    let counter = if v6 { ("Icmp6", "Icmp6OutPktTooBigs") } else { ("Icmp", "OutDestUnreachs") };
    let before = volley_tests::icmp::snmp_counter(&line.router, counter.0, counter.1);
    let serving = tokio::spawn(serve_one(server.clone()));
    let elapsed = tokio::time::timeout(
        Duration::from_secs(60),
        send_checked(client.clone(), client_config.clone(), server_addr, 4 * MIB),
    )
    .await
    .expect("4 MiB through the 1280 router within 60 s (did an ICMP stop an endpoint?)");
    tokio::time::timeout(DEADLINE, serving).await.expect("server done").unwrap();
    let drawn = volley_tests::icmp::snmp_counter(&line.router, counter.0, counter.1) - before;
    println!(
        "[router v6={v6}] 4 MiB in {elapsed:.2?}; router sent {drawn} {}; client lost_icmp_errors {}",
        counter.1,
        client_socket.get_ref().get_ref().lost_icmp_errors()
    );
    assert!(drawn > 0, "quinn's probes drew no {} from the router: the test proved nothing", counter.1);
    // Both endpoints are still running.
    let after = echo_once(&server, &client, &client_config, b"second").await;
    assert_eq!(after, Ok(()), "a second connection after the PMTU ICMP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_through_1280_router_v4() {
    quinn_through_1280_router(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_through_1280_router_v6() {
    quinn_through_1280_router(true).await;
}

// ---------------------------------------------------------------------------
// SendQueue.

/// A connected socket sends while the peer is down (ECONNREFUSED pending),
/// the peer comes back on the same port: 40 x 1200 B pushed and flushed
/// all arrive. (Loopback port-unreachables are rate-limited by
/// `net.ipv4.icmp_msgs_per_sec`, burst 50; this test draws one.)
#[tokio::test(flavor = "current_thread")]
async fn send_queue_is_not_stopped_by_a_stale_error() {
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    drop(peer); // down
    let core = volley::Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    core.connect(peer_addr).unwrap();
    let tx = UdpSocket::new(core).unwrap();
    tx.send_batch_all(&[volley::Transmit::new(peer_addr, b"into the void")]).await.unwrap();
    assert!(
        wait_pollerr(tx.get_ref().as_fd(), Duration::from_secs(3)),
        "the port-unreachable never came back (icmp_msgs_per_sec budget?)"
    );
    let Ok(peer) = std::net::UdpSocket::bind(peer_addr) else {
        eprintln!("port {peer_addr} was taken meanwhile; skipped");
        return;
    };
    peer.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut q = SendQueue::new(&tx);
    for i in 0..40u8 {
        q.try_push(Outgoing::new(peer_addr, vec![i; 1200])).unwrap();
    }
    let flushed = tokio::time::timeout(DEADLINE, q.flush()).await.expect("flush in time");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2048];
    while got.len() < 40 {
        match peer.recv(&mut buf) {
            Ok(n) => got.push((n, buf[0])),
            Err(_) => break, // 500 ms of silence: the rest is not coming
        }
    }
    println!("flush: {flushed:?}; received {}/40", got.len());
    assert_eq!(got.len(), 40, "received {} of 40 (flush returned {flushed:?})", got.len());
    assert!(flushed.is_ok(), "flush: {flushed:?}");
    assert_eq!(got, (0..40u8).map(|i| (1200, i)).collect::<Vec<_>>());
}
