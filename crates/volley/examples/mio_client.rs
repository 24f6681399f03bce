//! The client for `mio_server`: sends ten datagrams in one GSO send, marked
//! ECT(0), and prints what comes back.
//!
//! `cargo run --example mio_client -- 127.0.0.1:4433`

use std::time::Duration;

use volley::{Ecn, RecvBatch, Socket, Transmit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server: std::net::SocketAddr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:4433".into()).parse()?;
    let bind = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = Socket::bind(bind.parse()?)?;
    let payload = vec![b'x'; 10 * 1200];
    let ten = Transmit::new(server, &payload).with_segment_size(1200).with_ecn(Ecn::Ect0);
    socket.send_batch_blocking(&[ten], Duration::from_secs(1))?;

    let mut batch = RecvBatch::new();
    let mut got = 0;
    while got < 10 {
        socket.recv_batch_blocking(&mut batch, Duration::from_secs(2))?;
        for (meta, payload) in batch.iter() {
            println!("{} bytes from {} (ecn {}, to {:?})", payload.len(), meta.src, meta.ecn, meta.dst_ip);
            got += 1;
        }
    }
    Ok(())
}
