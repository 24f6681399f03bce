//! Helpers shared by the integration tests: addresses, a bounded receive
//! loop, deadlines.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use volley::{RecvBatch, RecvMeta};
use volley_tokio::UdpSocket;

/// Every await in a test is bounded by this.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// `s` parsed as a socket address.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

/// A socket on `127.0.0.1`, any port.
pub fn local() -> UdpSocket {
    UdpSocket::bind(addr("127.0.0.1:0")).expect("bind 127.0.0.1:0")
}

/// A socket on `127.0.0.1` with 16 MiB kernel buffers, so bursts of
/// thousands of datagrams are not dropped on loopback.
pub fn local_roomy() -> UdpSocket {
    let config = volley::Config::new().recv_buffer_size(16 << 20).send_buffer_size(16 << 20);
    UdpSocket::bind_with(&config, addr("127.0.0.1:0")).expect("bind 127.0.0.1:0")
}

/// Like [`local_roomy`] but without GRO, so it may receive into small
/// slots (a GRO socket needs 64 KiB slots for coalesced trains).
#[allow(dead_code)] // not every test file uses it
pub fn local_roomy_without_gro() -> UdpSocket {
    let config = volley::Config::new().gro(false).recv_buffer_size(16 << 20).send_buffer_size(16 << 20);
    UdpSocket::bind_with(&config, addr("127.0.0.1:0")).expect("bind 127.0.0.1:0")
}

/// Receives until `n` datagrams arrived (GRO trains split); panics after
/// [`DEADLINE`].
pub async fn recv_n(sock: &UdpSocket, n: usize) -> Vec<(RecvMeta, Vec<u8>)> {
    let mut batch = RecvBatch::new();
    let mut out = Vec::with_capacity(n);
    tokio::time::timeout(DEADLINE, async {
        while out.len() < n {
            sock.recv_batch(&mut batch).await.expect("recv_batch");
            out.extend(batch.iter().map(|(m, p)| (m, p.to_vec())));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} datagrams before the deadline", out.len()));
    out
}

/// Receives until `n` datagrams arrived and returns the messages (GRO
/// trains whole) as (len, segment_size) pairs.
pub async fn recv_messages(sock: &UdpSocket, n: usize) -> Vec<(usize, usize)> {
    let mut batch = RecvBatch::new();
    let mut out = Vec::new();
    let mut seen = 0;
    tokio::time::timeout(DEADLINE, async {
        while seen < n {
            seen += sock.recv_batch(&mut batch).await.expect("recv_batch");
            out.extend(batch.messages().map(|(m, _)| (m.len, m.segment_size)));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {seen} of {n} datagrams before the deadline"));
    out
}
