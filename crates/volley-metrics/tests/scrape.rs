//! The exporter end to end: metrics-exporter-prometheus's HTTP listener on
//! loopback, datagrams moved through volley sockets, `/metrics` scraped
//! with a plain HTTP/1.1 GET, and every scraped value equal to what
//! `stats()` said. One test function: the recorder is process-global.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use volley::{RecvBatch, Socket, Stats, Transmit};
use volley_metrics::SocketMetrics;

const WAIT: Duration = Duration::from_secs(5);

/// Installs the Prometheus exporter on an ephemeral loopback port. The
/// exporter cannot report the port it bound, so one is reserved and
/// released first; another process may take it in between, hence the
/// (bounded) retry.
fn install_exporter() -> SocketAddr {
    let mut last = None;
    for _ in 0..5 {
        let addr = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("reserve a port");
        match PrometheusBuilder::new().with_http_listener(addr).install() {
            Ok(()) => return addr,
            Err(e) => last = Some(e),
        }
    }
    panic!("could not install the exporter: {last:?}");
}

/// `GET /metrics` over a fresh connection; the body.
fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).expect("connect to the exporter");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The value of the series `name` whose labels include every `labels` pair.
fn value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, v) = line.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?.strip_prefix('{')?;
        labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))).then(|| v.parse().ok())?
    })
}

/// Every counter of `stats` as the scrape must show it.
fn expected(s: &Stats) -> Vec<(&'static str, u64)> {
    vec![
        ("volley_datagrams_sent_total", s.datagrams_sent),
        ("volley_sent_bytes_total", s.bytes_sent),
        ("volley_send_syscalls_total", s.send_syscalls),
        ("volley_gso_trains_total", s.gso_trains),
        ("volley_gso_segments_total", s.gso_segments),
        ("volley_send_would_block_total", s.send_would_block),
        ("volley_send_errors_total", s.send_errors),
        ("volley_datagrams_received_total", s.datagrams_received),
        ("volley_received_bytes_total", s.bytes_received),
        ("volley_messages_received_total", s.messages_received),
        ("volley_recv_syscalls_total", s.recv_syscalls),
        ("volley_gro_messages_total", s.gro_messages),
        ("volley_recv_would_block_total", s.recv_would_block),
        ("volley_truncated_datagrams_total", s.truncated),
        ("volley_kernel_drops_total", s.kernel_drops),
    ]
}

fn assert_scraped(body: &str, name: &str, local: SocketAddr, s: &Stats) {
    let local = local.to_string();
    let labels = [("socket", name), ("local_addr", local.as_str())];
    for (metric, want) in expected(s) {
        let got = value(body, metric, &labels);
        assert_eq!(got, Some(want as f64), "{metric} of {name}\n{body}");
    }
    let icmp = [("socket", name), ("local_addr", local.as_str()), ("kind", "port_unreachable")];
    assert_eq!(value(body, "volley_icmp_errors_total", &icmp), Some(s.icmp.port_unreachable as f64));
    for g in [
        "volley_gso_disabled_timestamp_seconds",
        "volley_mmsg_disabled_timestamp_seconds",
        "volley_tos_cmsg_disabled_timestamp_seconds",
    ] {
        assert_eq!(value(body, g, &labels), Some(0.0), "{g}: nothing degraded on loopback\n{body}");
    }
}

/// Receives until `n` datagrams arrived (bounded by [`WAIT`]).
fn receive(sock: &Socket, n: usize) {
    let mut batch = RecvBatch::new();
    let (mut got, start) = (0, Instant::now());
    while got < n {
        assert!(start.elapsed() < WAIT, "only {got} of {n} datagrams arrived");
        match sock.recv_batch_blocking(&mut batch, WAIT) {
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("receive: {e}"),
        }
    }
}

#[test]
fn prometheus_scrape_shows_the_stats() {
    let exporter = install_exporter();

    // Part 1: a mio-style socket, `record` called by the application.
    let server = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let local = server.local_addr().unwrap();
    let metrics = SocketMetrics::new("server", local);

    let train = [7u8; 12_000];
    client.send_batch_blocking(&[Transmit::new(local, &train).with_segment_size(1200)], WAIT).unwrap();
    receive(&server, 10);
    let first = server.stats();
    assert_eq!((first.datagrams_received, first.bytes_received), (10, 12_000));
    metrics.record(&first);
    assert_scraped(&scrape(exporter), "server", local, &first);

    // The counters move: 5 more datagrams, and a reply from the server.
    client.send_batch_blocking(&[Transmit::new(local, &train[..6000]).with_segment_size(1200)], WAIT).unwrap();
    receive(&server, 5);
    server.send_batch_blocking(&[Transmit::new(client.local_addr().unwrap(), b"pong")], WAIT).unwrap();
    let second = server.stats();
    assert_eq!((second.datagrams_received, second.datagrams_sent, second.bytes_sent), (15, 1, 4));
    metrics.record(&second);
    let body = scrape(exporter);
    assert_scraped(&body, "server", local, &second);
    let labels = [("socket", "server")];
    assert_eq!(value(&body, "volley_datagrams_received_total", &labels), Some(15.0));
    assert!(body.contains("# HELP volley_datagrams_received_total"), "descriptions exported:\n{body}");

    // Part 2: the tokio helper records a volley-tokio socket by itself.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let sock = Arc::new(volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap());
        let local = sock.local_addr().unwrap();
        let task = volley_metrics::spawn_recorder("tokio", &sock, Duration::from_millis(20)).unwrap();
        let payload = [1u8; 500];
        let t: Vec<Transmit<'_>> = (0..4).map(|_| Transmit::new(local, &payload)).collect();
        sock.send_batch_all(&t).await.unwrap();
        let mut batch = RecvBatch::new();
        let mut got = 0;
        while got < 4 {
            got += tokio::time::timeout(WAIT, sock.recv_batch(&mut batch)).await.expect("datagrams").unwrap();
        }
        let want = sock.stats();
        assert_eq!((want.datagrams_sent, want.datagrams_received), (4, 4));
        // The task records every 20 ms: wait (bounded) for a scrape to show it.
        let start = Instant::now();
        let labels = [("socket", "tokio")];
        loop {
            let body = tokio::task::spawn_blocking(move || scrape(exporter)).await.unwrap();
            if value(&body, "volley_datagrams_received_total", &labels) == Some(4.0) {
                assert_scraped(&body, "tokio", local, &sock.stats());
                break;
            }
            assert!(start.elapsed() < WAIT, "the recorder task never published:\n{body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(sock);
        tokio::time::timeout(WAIT, task).await.expect("the task ends with its socket").unwrap();
    });
}

#[test]
fn spawn_recorder_outside_a_runtime_is_an_error_not_a_panic() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sock = rt.block_on(async { Arc::new(volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap()) });
    // Here no runtime is entered: tokio::spawn would panic.
    let err = volley_metrics::spawn_recorder("none", &sock, Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Other, "{err}");
    let _entered = rt.enter();
    let task = volley_metrics::spawn_recorder("entered", &sock, Duration::from_secs(1));
    assert!(task.is_ok(), "inside the runtime's context it spawns");
}
