//! A volley-tokio echo server whose statistics are served as Prometheus
//! text by `metrics-exporter-prometheus`'s HTTP listener.
//!
//! ```sh
//! cargo run -p volley-metrics --example prometheus -- 127.0.0.1:9898 30
//! curl -s http://127.0.0.1:9898/metrics | grep volley_
//! ```
//! Arguments: the exporter's listen address (default `127.0.0.1:9898`) and
//! how many seconds to run (default 30). A client in the same process sends
//! 10 datagrams every 10 ms, so the counters move.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use volley::Transmit;
use volley_tokio::UdpSocket;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:9898").parse()?;
    let seconds: u64 = args.next().as_deref().unwrap_or("30").parse()?;

    // The exporter first: handles registered before it would be no-ops.
    PrometheusBuilder::new().with_http_listener(listen).install()?;

    let server = Arc::new(UdpSocket::bind("127.0.0.1:0".parse()?)?);
    let client = Arc::new(UdpSocket::bind("127.0.0.1:0".parse()?)?);
    let addr = server.local_addr()?;
    let _server_metrics = volley_metrics::spawn_recorder("echo-server", &server, Duration::from_secs(1))?;
    let _client_metrics = volley_metrics::spawn_recorder("echo-client", &client, Duration::from_secs(1))?;
    println!("echo server on {addr}; metrics: curl -s http://{listen}/metrics | grep volley_");

    // The echo server: answer every datagram from where it came.
    let echo = server.clone();
    tokio::spawn(async move {
        let mut batch = volley::RecvBatch::new();
        loop {
            if echo.recv_batch(&mut batch).await.is_err() {
                continue; // e.g. an ICMP error about an earlier reply
            }
            let replies: Vec<Transmit<'_>> = batch.iter().map(|(m, p)| Transmit::new(m.src, p)).collect();
            let _ = echo.send_batch_all(&replies).await;
        }
    });
    // The client: 10 datagrams every 10 ms, replies drained.
    let pinger = client.clone();
    tokio::spawn(async move {
        let payload = [0u8; 1200];
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut batch = volley::RecvBatch::new();
        loop {
            tick.tick().await;
            let ten: Vec<Transmit<'_>> = (0..10).map(|_| Transmit::new(addr, &payload)).collect();
            let _ = pinger.send_batch_all(&ten).await;
            while pinger.try_recv_batch(&mut batch).is_ok() {}
        }
    });

    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let s = server.stats();
    println!(
        "server: {} datagrams received, {} sent, {:.1} receive syscalls per 1000 datagrams",
        s.datagrams_received,
        s.datagrams_sent,
        s.recv_syscalls_per_1000().unwrap_or(0.0)
    );
    Ok(())
}
