//! `volley echo`: answers every VLY1 request with a reply sent from the
//! address the request was sent to, carrying the request's ECN and DSCP and
//! reporting in its payload what the request arrived with.
//!
//! Replies to one peer that leave in a row are sent as one GSO train, and
//! every batch of replies goes out in one `sendmmsg`: the echo keeps up
//! with `blast` without being the bottleneck it measures.

use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use volley::{Config, Dscp, Ecn, RecvBatch, RecvMeta, Socket, Transmit};

use crate::cli::EchoArgs;
use crate::client::is_icmp_error;
use crate::util::{group, listen_addr, si};
use crate::wire::{Reply, Request};
use crate::ExitStatus;

/// The most payload one GSO train may carry (IPv4's UDP limit).
const MAX_TRAIN: usize = volley::MAX_PAYLOAD_V4;
/// How long to wait for room in the send buffer before dropping replies.
const SEND_WAIT: Duration = Duration::from_millis(200);

pub(crate) fn run(args: &EchoArgs) -> Result<ExitStatus> {
    let addr = listen_addr(&args.listen)?;
    let config = Config::new().recv_buffer_size(args.buffer).send_buffer_size(args.buffer);
    let sock = match config.bind(addr) {
        Ok(s) => s,
        // A bare port on a host without IPv6: fall back to IPv4.
        Err(_) if args.listen.trim().parse::<u16>().is_ok() => {
            let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
            config.bind(v4).with_context(|| format!("cannot listen on {addr} or {v4}"))?
        }
        Err(e) => return Err(e).with_context(|| format!("cannot listen on {addr}")),
    };
    let local = sock.local_addr()?;
    let caps = sock.capabilities();
    outln!("volley echo listening on {local} (wire format VLY1)");
    let _ = io::stdout().flush();
    if local.ip().is_unspecified() && !caps.pktinfo {
        eprintln!(
            "warning: this kernel does not report destination addresses (pktinfo); on a multi-homed host replies \
             may leave from another address than the one a request was sent to"
        );
    }
    if !caps.ecn {
        eprintln!("warning: this kernel does not report the TOS byte: replies cannot say what ECN/DSCP arrived");
    }

    let mut echo = Echo::new(&sock);
    let mut batch = RecvBatch::new();
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + d);
    let mut last_stats = (Instant::now(), echo.stats);
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if !args.quiet && !args.stats.is_zero() && now.duration_since(last_stats.0) >= args.stats {
            if echo.stats.requests != last_stats.1.requests || echo.stats.ignored != last_stats.1.ignored {
                eprintln!("{}", echo.stats.line(Some((now.duration_since(last_stats.0), &last_stats.1))));
            }
            last_stats = (now, echo.stats);
        }
        let mut wait = Duration::from_secs(1);
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(now));
        }
        match sock.recv_batch_blocking(&mut batch, wait.max(Duration::from_millis(1))) {
            Ok(_) => echo.answer(&batch),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            // An ICMP error about an earlier reply (a client that went away).
            Err(e) if is_icmp_error(&e) => {}
            Err(e) => return Err(e).context("receive failed"),
        }
    }
    if !args.quiet {
        eprintln!("{}", echo.stats.line(None));
    }
    Ok(ExitStatus::Success)
}

/// What the echo has done so far.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    requests: u64,
    replies: u64,
    ignored: u64,
    /// Replies not sent: the send buffer stayed full, or the send failed.
    unsent: u64,
    /// The kernel's drop counter of this socket (requests lost to a full
    /// receive buffer).
    kernel_drops: Option<u32>,
}

impl Stats {
    fn line(&self, interval: Option<(Duration, &Self)>) -> String {
        let rate = interval.map_or(String::new(), |(d, before)| {
            let r = (self.requests - before.requests) as f64 / d.as_secs_f64().max(1e-9);
            format!("{} requests/s, ", si(r))
        });
        format!(
            "echo: {rate}{} requests, {} replies, {} not ours, {} replies unsent, kernel drops {}",
            group(self.requests),
            group(self.replies),
            group(self.ignored),
            group(self.unsent),
            self.kernel_drops.map_or("n/a".into(), |d| group(u64::from(d)))
        )
    }
}

/// Replies to one destination with the same marks and size, sent as one
/// GSO train.
#[derive(Debug, Clone, Copy)]
struct Train {
    dst: SocketAddr,
    src_ip: Option<IpAddr>,
    ecn: Ecn,
    dscp: Option<Dscp>,
    start: usize,
    stride: usize,
    segments: usize,
}

struct Echo<'s> {
    sock: &'s Socket,
    max_segments: usize,
    /// All replies of one batch, back to back; reused.
    arena: Vec<u8>,
    trains: Vec<Train>,
    stats: Stats,
}

impl<'s> Echo<'s> {
    fn new(sock: &'s Socket) -> Self {
        Self {
            sock,
            max_segments: sock.capabilities().max_gso_segments.max(1),
            arena: Vec::with_capacity(1 << 20),
            trains: Vec::with_capacity(64),
            stats: Stats::default(),
        }
    }

    fn answer(&mut self, batch: &RecvBatch) {
        self.arena.clear();
        self.trains.clear();
        for (meta, payload) in batch.iter() {
            // SO_RXQ_OVFL comes only once the counter is non-zero.
            if let Some(d) = meta.drops {
                self.stats.kernel_drops = Some(d);
            }
            let Ok(request) = Request::parse(payload) else {
                self.stats.ignored += 1;
                continue;
            };
            self.stats.requests += 1;
            self.push(&meta, &request);
        }
        if !self.trains.is_empty() {
            self.send();
        }
    }

    /// Appends the reply to `request` to the arena, extending the last
    /// train when it goes the same way.
    fn push(&mut self, meta: &RecvMeta, request: &Request) {
        let tos = meta.dscp.map(|d| d.tos(meta.ecn));
        let reply = Reply::answer(request, meta.len, tos, meta.ttl, meta.drops, meta.truncated);
        let start = self.arena.len();
        let len = reply.wire_len();
        self.arena.resize(start + len, 0);
        reply.write(&mut self.arena[start..]).expect("the arena was sized for the reply");
        let src_ip = meta.dst_ip.filter(|ip| usable_source(*ip));
        if let Some(t) = self.trains.last_mut() {
            let same_way = t.dst == meta.src && t.src_ip == src_ip && t.ecn == meta.ecn && t.dscp == meta.dscp;
            if same_way && t.stride == len && t.segments < self.max_segments && (t.segments + 1) * len <= MAX_TRAIN {
                t.segments += 1;
                return;
            }
        }
        self.trains.push(Train {
            dst: meta.src,
            src_ip,
            ecn: meta.ecn,
            dscp: meta.dscp,
            start,
            stride: len,
            segments: 1,
        });
    }

    fn send(&mut self) {
        let mut transmits: Vec<Transmit<'_>> = self
            .trains
            .iter()
            .map(|t| {
                let contents = &self.arena[t.start..t.start + t.stride * t.segments];
                let mut tx = Transmit::new(t.dst, contents).with_ecn(t.ecn);
                if t.segments > 1 {
                    tx = tx.with_segment_size(t.stride);
                }
                if let Some(d) = t.dscp {
                    tx = tx.with_dscp(d);
                }
                if let Some(ip) = t.src_ip {
                    tx = tx.with_src_ip(ip);
                }
                tx
            })
            .collect();
        let mut i = 0;
        let mut icmp_retries = 0;
        while i < transmits.len() {
            match self.sock.try_send_batch(&transmits[i..]) {
                Ok(sent) => {
                    let whole: u64 = transmits[i..i + sent.transmits].iter().map(|t| t.segments() as u64).sum();
                    self.stats.replies += whole + sent.segments as u64;
                    // What is left, a cut-short train resumed where it stopped.
                    i = transmits.len() - sent.rest(&mut transmits[i..]).len();
                }
                Err(e) if e.is_would_block() => {
                    // Wait (bounded) for room; the next try_send_batch sends.
                    if !self.sock.wait_writable(SEND_WAIT).unwrap_or(false) {
                        self.stats.unsent += transmits[i..].iter().map(|t| t.segments() as u64).sum::<u64>();
                        return;
                    }
                }
                Err(e) if is_icmp_error(&e) && icmp_retries < 8 => {
                    // A pending ICMP error about an earlier reply; nothing was sent.
                    icmp_retries += 1;
                }
                Err(_) if transmits[i].src_ip.is_some() => {
                    // The source address may not be usable as such (it went
                    // away, or is link-local and needs an interface): let the
                    // kernel pick one rather than not answer.
                    transmits[i].src_ip = None;
                }
                Err(_) => {
                    // This reply cannot be sent: skip it, keep the others.
                    self.stats.unsent += transmits[i].segments() as u64;
                    i += 1;
                }
            }
        }
    }
}

/// A destination address a reply can be sent from: not multicast, not
/// broadcast.
fn usable_source(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_multicast() && !v4.is_broadcast(),
        IpAddr::V6(v6) => !v6.is_multicast(),
    }
}
