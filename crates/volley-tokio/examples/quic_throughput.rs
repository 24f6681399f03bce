//! QUIC bulk-transfer throughput over volley vs over quinn's own socket, on
//! loopback, in one run.
//!
//! Server and client each get a thread with a current-thread tokio runtime
//! (one core each on a two-core machine). The client sends `--size` MiB on
//! one bidirectional stream; the server hashes what it reads and answers
//! with (length, hash), which the client checks. Each datapath pair runs
//! `--runs` times, the pairs interleaved; the median is reported.
//!
//! ```text
//! cargo run --release -p volley-tokio --features quinn --example quic_throughput -- --size 256 --runs 5
//! cargo run --release ... -- --only default->volley       # one pair (client->server)
//! ```
//!
//! `tests/quinn.rs` includes this file for its helpers.
#![allow(unreachable_pub, dead_code)] // `pub` so tests/quinn.rs can include this file

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use quinn::{ClientConfig, Endpoint, EndpointConfig, ServerConfig, TokioRuntime, TransportConfig};
use volley_tokio::quinn::QuinnSocket;

/// One mebibyte.
pub const MIB: usize = 1 << 20;

/// Which socket an endpoint runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datapath {
    /// `volley_tokio::quinn::QuinnSocket` (recvmmsg/sendmmsg, GSO/GRO).
    Volley,
    /// volley with the portable backend: one syscall per datagram.
    VolleyPortable,
    /// quinn's own socket (quinn-udp on tokio).
    Default,
}

/// A streaming 64-bit hash over 8-byte words (FNV-style multiply plus a
/// rotate): cheap enough in debug builds for 64 MiB.
#[derive(Debug, Clone)]
pub struct WordHash {
    h: u64,
    tail: [u8; 8],
    tail_len: usize,
    /// Bytes hashed so far.
    pub len: u64,
}

impl Default for WordHash {
    fn default() -> Self {
        Self { h: 0xcbf2_9ce4_8422_2325, tail: [0; 8], tail_len: 0, len: 0 }
    }
}

impl WordHash {
    /// An empty hash.
    pub fn new() -> Self {
        Self::default()
    }

    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }

    /// Adds `data`; the result does not depend on how the input is cut.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.tail_len > 0 {
            let take = (8 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// The hash of everything added.
    pub fn finish(mut self) -> u64 {
        for i in 0..self.tail_len {
            self.word(u64::from(self.tail[i]));
        }
        self.h ^ self.len
    }
}

/// A self-signed certificate for "localhost", a server config using it and
/// a client config trusting it; large flow-control windows for bulk.
pub fn configs() -> (ServerConfig, ClientConfig) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let mut server = ServerConfig::with_single_cert(vec![cert.clone()], key).expect("server config");
    let mut transport = TransportConfig::default();
    transport.stream_receive_window((16 * MIB as u32).into());
    transport.receive_window((32 * MIB as u32).into());
    transport.send_window(32 * MIB as u64);
    let transport = Arc::new(transport);
    server.transport_config(transport.clone());
    let mut roots = quinn::rustls::RootCertStore::empty();
    roots.add(cert).expect("add root");
    let mut client = ClientConfig::with_root_certificates(Arc::new(roots)).expect("client config");
    client.transport_config(transport);
    (server, client)
}

/// An endpoint on `127.0.0.1` over `path`; a server if `server` is given.
/// Call inside a tokio runtime.
pub fn endpoint(path: Datapath, server: Option<ServerConfig>) -> Endpoint {
    let at: SocketAddr = "127.0.0.1:0".parse().expect("address");
    // Kernel-default buffer sizes, as quinn's own socket has: a fair race.
    let volley = |config: volley::Config| {
        let socket = QuinnSocket::bind_with(&config, at).expect("bind volley");
        Endpoint::new_with_abstract_socket(
            EndpointConfig::default(),
            server.clone(),
            Arc::new(socket),
            Arc::new(TokioRuntime),
        )
        .expect("volley endpoint")
    };
    match path {
        Datapath::Volley => volley(volley::Config::new()),
        Datapath::VolleyPortable => volley(volley::Config::new().backend(volley::Backend::Portable)),
        Datapath::Default => match server {
            Some(s) => Endpoint::server(s, at).expect("default server"),
            None => Endpoint::client(at).expect("default client"),
        },
    }
}

/// 1 MiB of pseudo-random bytes (xorshift64).
pub fn pattern() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..MIB / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

/// Server side: accepts one connection and one stream, hashes everything
/// read and answers (length, hash); returns when the client closes.
pub async fn serve_one(server: Endpoint) {
    let conn = server.accept().await.expect("an incoming connection").await.expect("handshake (server)");
    let (mut send, mut recv) = conn.accept_bi().await.expect("a stream");
    let mut h = WordHash::new();
    while let Some(chunk) = recv.read_chunk(MIB, true).await.expect("read") {
        h.update(&chunk.bytes);
    }
    let mut answer = [0u8; 16];
    answer[..8].copy_from_slice(&h.len.to_le_bytes());
    answer[8..].copy_from_slice(&h.finish().to_le_bytes());
    send.write_all(&answer).await.expect("answer");
    send.finish().expect("finish answer");
    conn.closed().await;
    server.wait_idle().await;
}

/// Client side: connects to `server_addr`, sends `total` bytes, checks the
/// server's length and hash (panics on a mismatch); returns the time from
/// the first byte written to the answer read.
pub async fn send_checked(
    client: Endpoint,
    client_config: ClientConfig,
    server_addr: SocketAddr,
    total: usize,
) -> Duration {
    let conn = client
        .connect_with(client_config, server_addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake (client)");
    let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
    let data = pattern();
    let mut h = WordHash::new();
    let started = Instant::now();
    let (mut sent, mut k) = (0, 0usize);
    while sent < total {
        // Rotate the pattern per chunk, so chunks differ and reordering shows.
        let off = (k * 7919) % data.len();
        let n = (total - sent).min(data.len());
        let (a, b) = (&data[off..], &data[..off]);
        let (a, b) = if n <= a.len() { (&a[..n], &b[..0]) } else { (a, &b[..n - a.len()]) };
        for part in [a, b] {
            h.update(part);
            send.write_all(part).await.expect("write");
        }
        sent += n;
        k += 1;
    }
    send.finish().expect("finish");
    let answer = recv.read_to_end(16).await.expect("answer");
    let elapsed = started.elapsed();
    assert_eq!(u64::from_le_bytes(answer[..8].try_into().expect("8")), total as u64, "byte count");
    assert_eq!(u64::from_le_bytes(answer[8..].try_into().expect("8")), h.finish(), "checksum");
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    elapsed
}

/// One transfer with server and client each on its own thread and
/// current-thread runtime.
pub fn run(server_path: Datapath, client_path: Datapath, total: usize) -> Duration {
    let (server_config, client_config) = configs();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let server = endpoint(server_path, Some(server_config));
            addr_tx.send(server.local_addr().expect("server address")).expect("send address");
            serve_one(server).await;
        });
    });
    let server_addr = addr_rx.recv().expect("server address");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let elapsed = rt.block_on(async {
        let client = endpoint(client_path, None);
        send_checked(client, client_config, server_addr, total).await
    });
    server.join().expect("server thread");
    elapsed
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let size = flag("--size", 256) * MIB;
    let runs = flag("--runs", 5).max(1);
    // (name, server, client); `--only NAME` picks one.
    let pairs = [
        ("default->default", Datapath::Default, Datapath::Default),
        ("volley->volley", Datapath::Volley, Datapath::Volley),
        ("volley->default", Datapath::Default, Datapath::Volley),
        ("default->volley", Datapath::Volley, Datapath::Default),
        ("portable->portable", Datapath::VolleyPortable, Datapath::VolleyPortable),
    ];
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1));
    let pairs = pairs.iter().filter(|(name, ..)| only.is_none_or(|o| o == name));
    println!("QUIC bulk transfer on loopback, {} MiB per run, median of {runs} (client->server)", size / MIB);
    // Rounds interleave the pairs, so drifting machine load hits all alike.
    let pairs: Vec<_> = pairs.collect();
    let mut rates = vec![Vec::new(); pairs.len()];
    let mut cpu = vec![Vec::new(); pairs.len()];
    for _ in 0..runs {
        for (i, &&(_, server, client)) in pairs.iter().enumerate() {
            let before = process_cpu();
            let elapsed = run(server, client, size);
            let spent = process_cpu().saturating_sub(before);
            rates[i].push(size as f64 / 1e6 / elapsed.as_secs_f64());
            // Both endpoints (and the runtimes) are this process's threads.
            cpu[i].push(spent.as_nanos() as f64 / size as f64);
        }
    }
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>11} {:>22} {:>22}",
        "datapath", "MB/s", "min", "max", "CPU ns/B", "MB/s vs first (IQR)", "CPU/B vs first (IQR)"
    );
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() / 4], v[(3 * v.len()) / 4])
    };
    for (i, &&(name, ..)) in pairs.iter().enumerate() {
        // Ratios within each round, against the first pair of that round.
        let rate_ratio: Vec<f64> = rates[i].iter().zip(&rates[0]).map(|(a, b)| a / b).collect();
        let cpu_ratio: Vec<f64> = cpu[i].iter().zip(&cpu[0]).map(|(a, b)| a / b).collect();
        let (r, rmin, rmax) = {
            let mut v = rates[i].clone();
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0], v[v.len() - 1])
        };
        let (c, ..) = median(&cpu[i]);
        let (rr, rr_lo, rr_hi) = median(&rate_ratio);
        let (cr, cr_lo, cr_hi) = median(&cpu_ratio);
        println!(
            "{name:<20} {r:>8.0} {rmin:>8.0} {rmax:>8.0} {c:>11.2} {:>22} {:>22}",
            format!("{rr:.2} ({rr_lo:.2}-{rr_hi:.2})"),
            format!("{cr:.2} ({cr_lo:.2}-{cr_hi:.2})")
        );
    }
}

/// CPU time of this whole process so far (user + system), from
/// `/proc/self/stat` (clock ticks of 10 ms: the runs are long enough).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" that closes the command name: state is 0,
    // utime 11, stime 12.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
