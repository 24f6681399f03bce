//! A mio echo server in about 20 lines of logic: replies from the address
//! it was reached on, with the ECN codepoint it received.
//!
//! `cargo run --example mio_server -- 0.0.0.0:4433` (default 127.0.0.1:4433),
//! then `cargo run --example mio_client -- 127.0.0.1:4433`.

use mio::{Events, Interest, Poll, Token};
use volley::{RecvBatch, Socket, Transmit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:4433".into()).parse()?;
    let mut socket = Socket::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry().register(&mut socket, Token(0), Interest::READABLE)?;
    let (mut events, mut batch) = (Events::with_capacity(64), RecvBatch::new());
    println!("echoing on {}", socket.local_addr()?);
    loop {
        poll.poll(&mut events, None)?;
        // Drain the queue: mio readiness is edge-triggered.
        loop {
            match socket.try_recv_batch(&mut batch) {
                Ok(_) => {}
                Err(e) if e.is_would_block() => break,
                // An ICMP error about an earlier datagram: not this socket's fault.
                Err(e) if e.is_icmp() => continue,
                Err(e) => return Err(e.into()),
            }
            let replies: Vec<Transmit<'_>> = batch
                .iter()
                .map(|(meta, payload)| {
                    let reply = Transmit::new(meta.src, payload).with_ecn(meta.ecn);
                    match meta.dst_ip {
                        Some(ip) => reply.with_src_ip(ip), // answer from the address we were reached on
                        None => reply,
                    }
                })
                .collect();
            // A full send buffer drops the echo: fine for an echo server;
            // a real server would queue and register for WRITABLE.
            let _ = socket.try_send_batch(&replies);
            if batch.is_short() {
                break; // the queue ran out: the next datagram raises a new edge
            }
        }
    }
}
