//! The echo example: replies come from the address the client used and
//! keep each datagram's ECN codepoint, over IPv4 and dual-stack IPv6.

#[allow(dead_code)] // the example's `main`
#[path = "../examples/echo.rs"]
mod echo;

use std::net::SocketAddr;
use std::sync::Arc;

use volley_tokio::UdpSocket;

async fn check(server_bind: &str, client_to: &str) {
    let socket = Arc::new(UdpSocket::bind(server_bind.parse().unwrap()).unwrap());
    let port = socket.local_addr().unwrap().port();
    let src_send = socket.capabilities().src_send;
    let server = tokio::spawn(echo::serve(socket));
    let mut to: SocketAddr = client_to.parse().unwrap();
    to.set_port(port);
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), echo::client(to, 2000))
        .await
        .expect("client in time")
        .unwrap();
    server.abort();
    // A stack that cannot pick a per-datagram source (src_send false:
    // Wine) answers from its default address, 127.0.0.1 / ::1: right only
    // when that is the address the client used.
    let default_source = to.ip() == std::net::Ipv4Addr::LOCALHOST || to.ip() == std::net::Ipv6Addr::LOCALHOST;
    let wrong_source = if src_send || default_source { 0 } else { 2000 };
    assert_eq!(
        report,
        echo::Report { sent: 2000, echoed: 2000, wrong_source, wrong_ecn: 0, wrong_payload: 0 },
        "talking to {to} (src_send {src_send})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_answers_from_the_address_it_was_reached_on() {
    check("0.0.0.0:0", "127.0.0.2:0").await;
    check("0.0.0.0:0", "127.0.0.1:0").await;
}

#[tokio::test(flavor = "current_thread")]
async fn echo_on_dual_stack_ipv6() {
    check("[::]:0", "[::1]:0").await;
    check("[::]:0", "127.0.0.3:0").await;
}
