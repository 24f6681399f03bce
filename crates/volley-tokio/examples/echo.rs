//! An async UDP echo server on volley, and a client that checks the echoes.
//!
//! The server answers every datagram from the address it was reached on
//! (`meta.dst_ip` becomes the reply's `src_ip`, which matters on a
//! wildcard-bound, multi-homed host) with the ECN codepoint it arrived with.
//! It reads with a [`DatagramStream`] (one `recvmmsg` per burst, GRO trains
//! split as zero-copy slices) and replies through a [`SendQueue`] (echoes
//! to one client coalesce back into GSO trains; many clients share one
//! `sendmmsg`).
//!
//! ```text
//! cargo run -p volley-tokio --example echo                       # demo: both, in-process
//! cargo run -p volley-tokio --example echo -- server 0.0.0.0:4433
//! cargo run -p volley-tokio --example echo -- client 127.0.0.2:4433 10000
//! ```
#![allow(unreachable_pub)] // `pub` so tests/echo.rs can include this file as a module

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use volley::{Config, Ecn, Transmit};
use volley_tokio::{Datagram, DatagramStream, Outgoing, SendQueue, UdpSocket};

/// Echoes every datagram on `socket` until an error other than a
/// per-datagram one.
pub async fn serve(socket: Arc<UdpSocket>) -> io::Result<()> {
    // Where the stack cannot pick a per-datagram source (Wine), replies
    // leave from its default one.
    let src_send = socket.capabilities().src_send;
    let mut incoming = DatagramStream::new(socket.clone());
    let mut replies = SendQueue::new(socket);
    loop {
        let first = match incoming.recv().await {
            Ok(d) => d,
            // ICMP errors surface here (e.g. a client went away): not fatal.
            Err(e) if is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        replies.push(reply(first, src_send)).await?;
        // Take the rest of the burst without waiting, then send it as one batch.
        loop {
            match incoming.try_recv() {
                Ok(d) => replies.push(reply(d, src_send)).await?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if let Err(e) = replies.flush().await {
            eprintln!("echo: dropped a reply: {e}");
        }
    }
}

/// The echo of `d`: same payload (no copy), back to the sender, from the
/// address it was sent to (if the stack can choose it), with its ECN
/// codepoint.
fn reply(d: Datagram, src_send: bool) -> Outgoing {
    let out = Outgoing::new(d.meta.src, d.payload).with_ecn(d.meta.ecn);
    match d.meta.dst_ip.filter(|_| src_send) {
        Some(ip) => out.with_src_ip(ip),
        None => out,
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset)
}

/// What the client saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Datagrams sent.
    pub sent: usize,
    /// Echoes received intact.
    pub echoed: usize,
    /// Echoes that came from another address than the one we sent to.
    pub wrong_source: usize,
    /// Echoes whose ECN codepoint differed from what we sent.
    pub wrong_ecn: usize,
    /// Echoes whose payload differed.
    pub wrong_payload: usize,
}

/// Sends `count` datagrams (sizes 1..1400, ECN codepoints in turn) to
/// `server` in bursts and checks every echo.
pub async fn client(server: SocketAddr, count: usize) -> io::Result<Report> {
    let local: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(io::Error::other)?;
    let config = Config::new().recv_buffer_size(4 << 20);
    let socket = UdpSocket::bind_with(&config, local)?;
    let marks = socket.capabilities().ecn_send;
    let mut incoming = DatagramStream::new(&socket);
    let mut report = Report::default();
    let ecns = [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1, Ecn::Ce];
    let mut outstanding: HashMap<u32, (Vec<u8>, Ecn)> = HashMap::new();
    for burst in (0..count as u32).collect::<Vec<_>>().chunks(64) {
        let msgs: Vec<(Vec<u8>, Ecn)> = burst
            .iter()
            .map(|&seq| {
                let len = 4 + (seq as usize * 37) % 1396;
                let mut p = vec![(seq % 251) as u8; len];
                p[..4].copy_from_slice(&seq.to_be_bytes());
                (p, ecns[seq as usize % 4])
            })
            .collect();
        let transmits: Vec<_> = msgs.iter().map(|(p, e)| Transmit::new(server, p).with_ecn(*e)).collect();
        socket.send_batch_all(&transmits).await?;
        report.sent += transmits.len();
        for (seq, m) in burst.iter().zip(msgs) {
            outstanding.insert(*seq, m);
        }
        // Collect this burst's echoes (or give up on them after a second).
        while !outstanding.is_empty() {
            let d = match tokio::time::timeout(Duration::from_secs(1), incoming.recv()).await {
                Ok(d) => d?,
                Err(_) => break, // lost: counted as not echoed
            };
            let Some(seq) = d.payload.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
                report.wrong_payload += 1;
                continue;
            };
            let Some((payload, ecn)) = outstanding.remove(&seq) else { continue };
            if d.payload != payload {
                report.wrong_payload += 1;
            } else {
                report.echoed += 1;
            }
            if d.meta.src != server {
                report.wrong_source += 1;
            }
            // A stack that does not apply ECN marks (`ecn_send` false:
            // Wine) sends them unmarked, and so does the echo.
            let ecn = if marks { ecn } else { Ecn::NotEct };
            if d.meta.ecn != ecn {
                report.wrong_ecn += 1;
            }
        }
        outstanding.clear();
    }
    Ok(report)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => {
            let addr = args.get(1).map_or("0.0.0.0:4433", String::as_str).parse()?;
            let socket = Arc::new(UdpSocket::bind(addr)?);
            println!("echo server on {}\n{}", socket.local_addr()?, socket.capabilities());
            serve(socket).await?;
        }
        Some("client") => {
            let addr = args.get(1).ok_or("usage: echo client ADDR [COUNT]")?.parse()?;
            let count = args.get(2).map_or(Ok(1000), |c| c.parse())?;
            println!("{:#?}", client(addr, count).await?);
        }
        None | Some("demo") => {
            // Server on the wildcard address, client talking to 127.0.0.2:
            // the echoes must come back from 127.0.0.2.
            let socket = Arc::new(UdpSocket::bind("0.0.0.0:0".parse()?)?);
            let port = socket.local_addr()?.port();
            tokio::spawn(serve(socket));
            let report = client(SocketAddr::from(([127, 0, 0, 2], port)), 1000).await?;
            println!("{report:#?}");
        }
        Some(other) => return Err(format!("unknown mode {other:?}: use server, client or demo").into()),
    }
    Ok(())
}
