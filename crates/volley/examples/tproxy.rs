//! A transparent UDP responder behind a TPROXY rule: every datagram a
//! client sends to *any* address diverted to this socket is answered from
//! exactly the address and port the client sent it to.
//!
//! Linux, as root (or with `CAP_NET_ADMIN`). On the host the traffic passes
//! through (see docs/guide.md, "A transparent proxy"):
//!
//! ```sh
//! nft add table ip tp
//! nft add chain ip tp pre '{ type filter hook prerouting priority mangle; }'
//! nft add rule ip tp pre meta l4proto udp tproxy to :7777 meta mark set 1 accept
//! ip rule add fwmark 1 lookup 100
//! ip route add local 0.0.0.0/0 dev lo table 100
//! cargo run --example tproxy -- 0.0.0.0:7777
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use volley::{Config, RecvBatch, Socket, Transmit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = std::env::args().nth(1).as_deref().unwrap_or("0.0.0.0:7777").parse()?;
    // IP_TRANSPARENT: receive what the rule diverts; orig_dst: learn where
    // each datagram was going.
    let sock = Config::new().transparent(true).orig_dst(true).bind(listen)?;
    // One socket per original destination, bound to it (not a local
    // address: IP_TRANSPARENT allows it), so replies come from its port too.
    let mut from: HashMap<SocketAddr, Socket> = HashMap::new();
    let mut batch = RecvBatch::new();
    loop {
        if sock.recv_batch_blocking(&mut batch, Duration::from_secs(60)).is_err() {
            continue;
        }
        for (meta, payload) in batch.iter() {
            let Some(orig) = meta.orig_dst() else { continue };
            println!("{} -> {orig}: {} bytes", meta.src, payload.len());
            let out = match from.entry(orig) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Config::new().transparent(true).reuse_addr(true).bind(orig)?)
                }
            };
            // Or, without a socket per destination, answer from the address
            // only (the source port is then the listening socket's):
            // Transmit::new(meta.src, payload).with_src_ip(orig.ip())
            out.send_batch_blocking(&[Transmit::new(meta.src, payload)], Duration::from_secs(1))?;
        }
    }
}
