//! One request, one reply: the exchange `path` is made of and `blast`
//! checks the echo with before its run. Every wait is bounded; ICMP errors
//! (port unreachable, packet too big) end a wait early with what they said.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use volley::{Dscp, Ecn, Error, IcmpError, IcmpKind, RecvBatch, Socket, Transmit};

use crate::util::now_ns;
use crate::wire::{Reply, Request, REQUEST_LEN};

/// What became of one probe.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// The echo answered.
    Reply(Answer),
    /// No reply in time.
    NoReply,
    /// The datagram is larger than the path (or the local interface) takes:
    /// `EMSGSIZE` on send, or an ICMP "packet too big" / "fragmentation
    /// needed" with the MTU it named.
    TooBig { mtu: Option<u32> },
    /// ICMP port unreachable (nothing listens) or another unreachable.
    Unreachable { kind: IcmpKind, from: Option<IpAddr> },
    /// The kernel refused to send it (`EPERM`): a local firewall rule.
    Blocked,
}

/// A reply and how it arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    pub(crate) reply: Reply,
    /// ECN of the reply's IP header, as received here.
    pub(crate) ecn: Ecn,
    /// DSCP of the reply's IP header, as received here (if reported).
    pub(crate) dscp: Option<Dscp>,
    /// Where the reply came from.
    pub(crate) src: SocketAddr,
    pub(crate) rtt_ns: u64,
}

/// A socket talking to one echo.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) sock: Socket,
    pub(crate) target: SocketAddr,
    batch: RecvBatch,
    buf: Vec<u8>,
    next_seq: u64,
    /// Every ICMP error read from the error queue, in order.
    pub(crate) icmp: Vec<IcmpError>,
    /// The smallest round-trip time of any reply so far.
    pub(crate) min_rtt_ns: Option<u64>,
}

impl Client {
    /// `first_seq` keeps this client's sequence numbers apart from others on
    /// the same socket.
    pub(crate) fn new(sock: Socket, target: SocketAddr, first_seq: u64) -> Self {
        Self {
            sock,
            target,
            batch: RecvBatch::new(),
            buf: vec![0; volley::MAX_PAYLOAD_V6],
            next_seq: first_seq,
            icmp: Vec::new(),
            min_rtt_ns: None,
        }
    }

    /// Sends a request of `size` bytes with the given marks, up to `tries`
    /// times, each waiting `per_try` for the reply. A late reply to an
    /// earlier try counts.
    pub(crate) fn exchange(
        &mut self,
        size: usize,
        ecn: Ecn,
        dscp: Option<Dscp>,
        per_try: Duration,
        tries: u32,
    ) -> Result<Outcome> {
        let size = size.clamp(REQUEST_LEN, self.buf.len());
        let first_seq = self.next_seq;
        for _ in 0..tries.max(1) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let tos = dscp.unwrap_or_default().tos(ecn);
            Request { seq, timestamp: now_ns(), tos, pad_reply: false }
                .write(&mut self.buf[..size])
                .expect("size is at least REQUEST_LEN");
            let mut t = Transmit::new(self.target, &self.buf[..size]).with_ecn(ecn);
            if let Some(d) = dscp {
                t = t.with_dscp(d);
            }
            match self.sock.send_batch_blocking(&[t], per_try) {
                Ok(()) => {}
                Err(Error::MessageTooLong { mtu, .. }) => {
                    let from_queue = self.drain_icmp();
                    return Ok(Outcome::TooBig { mtu: mtu.or(from_queue.and_then(too_big_mtu)) });
                }
                Err(e) if is_icmp_error(&e) => {
                    if let Some(o) = self.drain_icmp().and_then(|e| self.classify(e)) {
                        return Ok(o);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(Outcome::Blocked),
                Err(e) => return Err(e).with_context(|| format!("cannot send to {}", self.target)),
            }
            if let Some(o) = self.wait_reply(first_seq, per_try)? {
                return Ok(o);
            }
        }
        Ok(Outcome::NoReply)
    }

    /// Waits up to `timeout` for a reply with a sequence number of this
    /// exchange (at least `first_seq`).
    fn wait_reply(&mut self, first_seq: u64, timeout: Duration) -> Result<Option<Outcome>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(self.drain_icmp().and_then(|e| self.classify(e)));
            }
            match self.sock.recv_batch_blocking(&mut self.batch, left) {
                Ok(_) => {
                    let now = now_ns();
                    for (meta, payload) in self.batch.iter() {
                        let Ok(reply) = Reply::parse(payload) else { continue };
                        if reply.seq >= first_seq && reply.seq < self.next_seq {
                            let rtt_ns = now.saturating_sub(reply.timestamp);
                            self.min_rtt_ns = Some(self.min_rtt_ns.map_or(rtt_ns, |m| m.min(rtt_ns)));
                            return Ok(Some(Outcome::Reply(Answer {
                                reply,
                                ecn: meta.ecn,
                                dscp: meta.dscp,
                                src: meta.src,
                                rtt_ns,
                            })));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) if is_icmp_error(&e) || e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    if let Some(o) = self.drain_icmp().and_then(|e| self.classify(e)) {
                        return Ok(Some(o));
                    }
                }
                Err(e) => return Err(e).context("receive failed"),
            }
        }
    }

    /// Reads the whole error queue; returns the last entry about our target.
    pub(crate) fn drain_icmp(&mut self) -> Option<IcmpError> {
        let mut last = None;
        while let Ok(Some(e)) = self.sock.try_recv_error() {
            self.icmp.push(e);
            if e.destination.is_none_or(|d| same_addr(d, self.target)) {
                last = Some(e);
            }
        }
        last
    }

    fn classify(&self, e: IcmpError) -> Option<Outcome> {
        match e.kind {
            IcmpKind::PacketTooBig { mtu } => Some(Outcome::TooBig { mtu: Some(mtu) }),
            IcmpKind::PortUnreachable | IcmpKind::Unreachable { .. } => {
                Some(Outcome::Unreachable { kind: e.kind, from: e.offender })
            }
            _ => None,
        }
    }
}

fn too_big_mtu(e: IcmpError) -> Option<u32> {
    match e.kind {
        IcmpKind::PacketTooBig { mtu } => Some(mtu),
        _ => None,
    }
}

/// Errors an ICMP message about an earlier datagram causes on the next
/// socket call (the core's table, [`Error::is_icmp`]); with the error queue
/// on, the details are in the queue. A send's `MessageTooLong` is left to
/// its own handling (it may concern the datagram being sent).
pub(crate) fn is_icmp_error(e: &Error) -> bool {
    e.is_icmp() && !matches!(e, Error::MessageTooLong { .. })
}

/// Equal addresses, an IPv4-mapped IPv6 address counting as its IPv4.
pub(crate) fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    let canon = |a: SocketAddr| match a.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, |v4| SocketAddr::new(v4.into(), a.port())),
        IpAddr::V4(_) => a,
    };
    canon(a) == canon(b)
}

/// What to tell the user when a peer does not answer.
pub(crate) fn describe_silence(target: SocketAddr, outcome: &Outcome, waited: Duration) -> String {
    match outcome {
        Outcome::Unreachable { kind: IcmpKind::PortUnreachable, from } => format!(
            "ICMP port unreachable from {}: nothing listens on {target} (start `volley echo --listen {}` there)",
            from.map_or_else(|| target.ip().to_string(), |ip| ip.to_string()),
            target.port()
        ),
        Outcome::Unreachable { kind, from } => {
            format!("{target} is unreachable: ICMP {kind}{}", from.map_or(String::new(), |ip| format!(" from {ip}")))
        }
        Outcome::Blocked => format!(
            "this host refuses to send to {target} (EPERM): a local firewall rule (nftables / iptables \
             OUTPUT) drops these datagrams"
        ),
        Outcome::TooBig { mtu } => format!(
            "even the smallest probe is too big for the path to {target}{}",
            mtu.map_or(String::new(), |m| format!(" (MTU {m})"))
        ),
        _ => format!(
            "no reply from {target} within {}: is `volley echo` running there, and does a firewall let UDP \
             port {} through?",
            fmt_secs(waited),
            target.port()
        ),
    }
}

/// `2 s`, `1.5 s`, `500 ms`.
pub(crate) fn fmt_secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
