//! `volley blast`: sequence-numbered load against an echo, and a report of
//! what came back.
//!
//! The sending thread fills GSO trains of requests (each datagram with its
//! own sequence number and timestamp) and hands several trains to the
//! kernel per `sendmmsg`, paced to `--rate` if one is given. A receiving
//! thread marks each reply's sequence number in a bitmap, so loss,
//! duplicates and reordering are exact, and tallies the marks the echo saw
//! and the marks the replies arrived with.
//!
//! ```text
//!  sender ──requests (seq, t)──▶ echo ──replies (seq, t, tos seen, ttl, drops)──▶ receiver
//!    │ reserved: highest seq handed to the kernel            │ bitmap, RTT, mark tallies
//!    └──────────────── shared counters (progress line) ◀─────┘
//! ```

use std::collections::BTreeMap;
use std::io::{self, IsTerminal as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use volley::{Config, Dscp, Ecn, Error, IcmpError, RecvBatch, Socket, Transmit};

use crate::cli::BlastArgs;
use crate::client::{describe_silence, is_icmp_error, same_addr, Client, Outcome};
use crate::util::{group, local_for, ms, now_ns, resolve, si, Histogram};
use crate::wire::{Reply, Request, REQUEST_LEN};
use crate::ExitStatus;

/// Sequence numbers of the pre-flight check, far from the run's.
const PREFLIGHT_SEQ: u64 = 1 << 62;
/// Socket buffers to ask for: room for bursts of whole GSO trains.
const BUFFER: usize = 8 << 20;
/// Trains handed to the kernel per call when GSO is on.
const TRAINS_PER_CALL: usize = 8;
/// Datagrams per call without GSO (one `sendmmsg` chunk).
const DATAGRAMS_PER_CALL: usize = 64;
/// How long the socket may stay full before the run is abandoned.
const STALL: Duration = Duration::from_secs(2);
/// Drain ends when no reply came for this long.
const DRAIN_IDLE: Duration = Duration::from_millis(300);

/// Counters both threads update, for the progress line and the drain.
#[derive(Debug, Default)]
struct Shared {
    /// Sequence numbers below this have been handed to the kernel (or are
    /// about to be): replies above it are not ours.
    reserved: AtomicU64,
    replies: AtomicU64,
    local_drops: AtomicU64,
    echo_drops: AtomicU64,
    /// `now_ns()` of the last reply.
    last_reply_ns: AtomicU64,
    /// An ICMP port unreachable arrived: the echo went away.
    refused: AtomicBool,
    icmp: Mutex<Vec<IcmpError>>,
}

pub(crate) fn run(args: &BlastArgs) -> Result<ExitStatus> {
    let target = resolve(&args.to)?;
    let local = local_for(target, args.bind.as_deref())?;
    let max_payload = if target.is_ipv4() { volley::MAX_PAYLOAD_V4 } else { volley::MAX_PAYLOAD_V6 };
    if !(REQUEST_LEN..=max_payload).contains(&args.size) {
        bail!(
            "--size {} is out of range: {REQUEST_LEN}..={max_payload} bytes over IPv{}",
            args.size,
            ip_version(target)
        );
    }
    let sock = Config::new().recv_buffer_size(BUFFER).send_buffer_size(BUFFER).recv_errors(true).bind(local)?; // Error::Bind already names the address
    let local = sock.local_addr()?;
    let caps = sock.capabilities();
    let fit = (max_payload / args.size).max(1);
    let gso = match args.gso {
        Some(0) => bail!("--gso 0: use 1 to send without GSO"),
        Some(n) if n > 1 && !caps.gso() => {
            eprintln!("note: GSO is not available on this socket; --gso {n} sends one datagram per message");
            1
        }
        Some(n) => {
            let allowed = fit.min(caps.max_gso_segments.max(1));
            if n > allowed {
                eprintln!("note: --gso {n} lowered to {allowed} (kernel limit, and a train carries at most {max_payload} bytes)");
            }
            n.min(allowed)
        }
        None => fit.min(caps.max_gso_segments.max(1)),
    };
    let ecn = args.ecn;
    let dscp = args.dscp;
    let tos = dscp.unwrap_or_default().tos(ecn);
    let echo = !args.no_echo;

    let (sock, base_rtt, preflight_icmp) = if echo {
        let mut client = Client::new(sock, target, PREFLIGHT_SEQ);
        let per_try = args.timeout / 3;
        let outcome = client.exchange(REQUEST_LEN, Ecn::NotEct, None, per_try.max(Duration::from_millis(10)), 3)?;
        if !matches!(outcome, Outcome::Reply(_)) {
            bail!("{}", describe_silence(target, &outcome, args.timeout));
        }
        // A second exchange: the first one pays for waking the echo up.
        client.exchange(REQUEST_LEN, Ecn::NotEct, None, per_try.max(Duration::from_millis(10)), 1)?;
        (client.sock, client.min_rtt_ns, client.icmp)
    } else {
        (sock, None, Vec::new())
    };

    let show_progress = !args.quiet && io::stderr().is_terminal();
    let header = format!(
        "volley blast to {target} from {local}: {}-byte datagrams, GSO {gso}, ECN {}, DSCP {}, {}, {}",
        args.size,
        ecn,
        dscp.map_or("default (socket)".into(), |d| d.to_string()),
        if args.rate == 0 { "unlimited rate".into() } else { format!("{} datagrams/s", si(args.rate as f64)) },
        crate::client::fmt_secs(args.duration),
    );
    if !args.json {
        outln!("{header}");
        if let Some(rtt) = base_rtt {
            outln!("echo answered in {}", ms(rtt));
        }
    }

    let shared = Shared { icmp: Mutex::new(preflight_icmp), ..Shared::default() };
    let stop = AtomicBool::new(false);
    let plan = Plan {
        target,
        size: args.size,
        gso,
        ecn,
        dscp,
        tos,
        rate: args.rate,
        duration: args.duration,
        pad: args.full_replies,
    };
    let (sent, recv) = std::thread::scope(|s| {
        let receiver = echo.then(|| s.spawn(|| receive(&sock, target, &shared, &stop)));
        let mut progress = Progress::new(show_progress);
        let sent = send(&sock, &plan, &shared, &mut progress, echo);
        if echo {
            drain(&shared, sent.as_ref().map_or(0, |s| s.datagrams), args.timeout);
        }
        progress.finish();
        stop.store(true, Ordering::Release);
        let recv = receiver.map(|h| h.join().unwrap_or_else(|_| RecvStats::failed("receiver thread panicked")));
        (sent, recv)
    });
    let sent = sent?;
    let icmp = shared.icmp.lock().map(|v| v.clone()).unwrap_or_default();
    let report = Report::new(&plan, local, &sent, recv.as_ref(), &icmp, base_rtt);

    if args.json {
        crate::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        crate::emit(&report.render())?;
    }
    if let Some(r) = &recv {
        if let Some(e) = &r.error {
            bail!("receiving replies failed: {e}");
        }
        if r.unique == 0 && sent.datagrams > 0 {
            bail!(
                "no reply from {target} during the run ({} datagrams sent): the echo stopped, or the path drops \
                 these datagrams (size {}, ECN {}, DSCP {})",
                group(sent.datagrams),
                args.size,
                ecn,
                dscp.map_or("default".into(), |d| d.to_string())
            );
        }
    }
    if let (Some(max), Some(loss)) = (args.max_loss, &report.loss) {
        if loss.percent > max {
            eprintln!("loss {:.3}% is above --max-loss {max}%", loss.percent);
            return Ok(ExitStatus::Problem);
        }
    }
    Ok(ExitStatus::Success)
}

fn ip_version(a: SocketAddr) -> u8 {
    if a.is_ipv4() {
        4
    } else {
        6
    }
}

/// What to send.
#[derive(Debug, Clone, Copy)]
struct Plan {
    target: SocketAddr,
    size: usize,
    gso: usize,
    ecn: Ecn,
    dscp: Option<Dscp>,
    tos: u8,
    rate: u64,
    duration: Duration,
    pad: bool,
}

/// What the sender did.
#[derive(Debug, Clone, Default)]
struct Sent {
    datagrams: u64,
    calls: u64,
    elapsed: Duration,
    /// Why sending stopped before `--duration`, if it did.
    stopped_early: Option<String>,
}

/// The live progress line (hidden when not on a terminal).
struct Progress {
    bar: ProgressBar,
    last: Instant,
    last_sent: u64,
    last_replies: u64,
}

impl Progress {
    fn new(show: bool) -> Self {
        let bar = if show {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            b.set_style(
                ProgressStyle::with_template("{spinner} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        } else {
            ProgressBar::hidden()
        };
        Self { bar, last: Instant::now(), last_sent: 0, last_replies: 0 }
    }

    fn update(&mut self, elapsed: Duration, sent: u64, size: usize, shared: &Shared, echo: bool) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        if dt < 0.25 || self.bar.is_hidden() {
            return;
        }
        let replies = shared.replies.load(Ordering::Relaxed);
        let rate = (sent - self.last_sent) as f64 / dt;
        let gbps = rate * size as f64 * 8.0 / 1e9;
        let mut msg = format!("{:>5.1} s  sent {} datagrams/s  {gbps:.2} Gbit/s", elapsed.as_secs_f64(), si(rate));
        if echo {
            let echoed = (replies - self.last_replies.min(replies)) as f64 / dt;
            // Counts datagrams still in flight as lost: a live estimate.
            let loss = if sent > 0 { 100.0 * sent.saturating_sub(replies) as f64 / sent as f64 } else { 0.0 };
            msg += &format!(
                "  echoed {}/s  loss {loss:.2}%  drops {} here, {} at echo",
                si(echoed),
                shared.local_drops.load(Ordering::Relaxed),
                shared.echo_drops.load(Ordering::Relaxed)
            );
        }
        self.bar.set_message(msg);
        self.bar.tick();
        (self.last, self.last_sent, self.last_replies) = (now, sent, replies);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Sends requests until the duration is up; returns what went out.
fn send(sock: &Socket, plan: &Plan, shared: &Shared, progress: &mut Progress, echo: bool) -> Result<Sent> {
    let train_bytes = plan.gso * plan.size;
    let trains = if plan.gso > 1 { TRAINS_PER_CALL } else { DATAGRAMS_PER_CALL };
    let per_call = (trains * plan.gso) as u64;
    let mut buf = vec![0u8; trains * train_bytes];
    let mut seq = 0u64;
    let mut out = Sent::default();
    let start = Instant::now();
    let end = start + plan.duration;
    'run: loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if echo && shared.refused.load(Ordering::Relaxed) {
            out.stopped_early = Some(format!(
                "ICMP port unreachable after {:.1} s: the echo at {} went away",
                now.duration_since(start).as_secs_f64(),
                plan.target
            ));
            break;
        }
        let mut n = per_call;
        if plan.rate > 0 {
            let due = (plan.rate as f64 * now.duration_since(start).as_secs_f64()) as u64 + 1;
            let allowed = due.saturating_sub(seq);
            if allowed == 0 {
                let next = start + Duration::from_secs_f64(seq as f64 / plan.rate as f64);
                std::thread::sleep(next.min(end).saturating_duration_since(now));
                progress.update(now.duration_since(start), seq, plan.size, shared, echo);
                continue;
            }
            n = n.min(allowed);
        }

        // Number every datagram of this call, then describe the trains.
        let timestamp = now_ns();
        shared.reserved.store(seq + n, Ordering::Release);
        for i in 0..n as usize {
            let at = i * plan.size;
            Request { seq: seq + i as u64, timestamp, tos: plan.tos, pad_reply: plan.pad }
                .write(&mut buf[at..at + plan.size])
                .expect("size is at least REQUEST_LEN");
        }
        let bytes = n as usize * plan.size;
        let mut transmits: Vec<Transmit<'_>> = buf[..bytes]
            .chunks(train_bytes)
            .map(|contents| {
                let mut t = Transmit::new(plan.target, contents).with_ecn(plan.ecn);
                if contents.len() > plan.size {
                    t = t.with_segment_size(plan.size);
                }
                if let Some(d) = plan.dscp {
                    t = t.with_dscp(d);
                }
                t
            })
            .collect();

        let mut i = 0;
        let mut stalled_since: Option<Instant> = None;
        while i < transmits.len() {
            if Instant::now() > end + STALL {
                // ENOBUFS or ICMP errors without end: never run unbounded.
                out.stopped_early = Some(format!("sending stalled past the {} s run", plan.duration.as_secs_f64()));
                seq += sent_before(&transmits, i, plan.size);
                break 'run;
            }
            out.calls += 1;
            match sock.try_send_batch(&transmits[i..]) {
                Ok(sent) => {
                    // What is left, a cut-short train resumed where it
                    // stopped (the datagrams already out keep their numbers:
                    // the remaining contents start with the next one).
                    i = transmits.len() - sent.rest(&mut transmits[i..]).len();
                    stalled_since = None;
                }
                Err(e) if e.is_would_block() => {
                    // Wait for room (bounded); the next try_send_batch sends
                    // and its match handles every outcome.
                    if sock.wait_writable(Duration::from_millis(100))? {
                        stalled_since = None;
                    } else {
                        let since = *stalled_since.get_or_insert(Instant::now());
                        if since.elapsed() >= STALL {
                            out.stopped_early =
                                Some(format!("the socket's send buffer stayed full for {} s", STALL.as_secs()));
                            seq += sent_before(&transmits, i, plan.size);
                            break 'run;
                        }
                    }
                }
                Err(Error::NoBufferSpace) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) if is_icmp_error(&e) => {
                    // An ICMP error about earlier datagrams; nothing was sent.
                    take_icmp(sock, shared);
                }
                Err(Error::MessageTooLong { size, mtu }) => {
                    bail!(
                        "{size}-byte datagrams are too big for the path to {}{}: use a smaller --size",
                        plan.target,
                        mtu.map_or(String::new(), |m| format!(" (MTU {m})"))
                    )
                }
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => bail!(
                    "this host refuses to send to {} (EPERM): a local firewall rule (nftables / iptables OUTPUT) \
                     drops these datagrams{}",
                    plan.target,
                    if plan.gso > 1 { "; a rule on packet length also sees whole GSO trains: try --gso 1" } else { "" }
                ),
                Err(e) => return Err(e).with_context(|| format!("send to {} failed", plan.target)),
            }
        }
        seq += n;
        out.datagrams = seq;
        progress.update(now.duration_since(start), seq, plan.size, shared, echo);
    }
    out.datagrams = seq;
    out.elapsed = start.elapsed();
    Ok(out)
}

/// Datagrams of `transmits[..i]` (all sent), for a run cut short mid-call.
fn sent_before(transmits: &[Transmit<'_>], i: usize, size: usize) -> u64 {
    transmits[..i].iter().map(|t| t.contents.len().div_ceil(size) as u64).sum()
}

/// Waits for the last replies: until every datagram is answered, no reply
/// came for [`DRAIN_IDLE`], or `timeout` passed.
fn drain(shared: &Shared, sent: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let idle_ns = DRAIN_IDLE.as_nanos() as u64;
    while Instant::now() < deadline && shared.replies.load(Ordering::Acquire) < sent {
        let last = shared.last_reply_ns.load(Ordering::Relaxed);
        if now_ns().saturating_sub(last) > idle_ns {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the receiver saw.
#[derive(Debug, Clone)]
struct RecvStats {
    seen: Vec<u64>,
    unique: u64,
    duplicates: u64,
    reordered: u64,
    highest: Option<u64>,
    /// Datagrams that were not replies of this run.
    foreign: u64,
    /// Replies from another address than the target.
    other_source: u64,
    truncated_at_echo: u64,
    rtt: Histogram,
    /// TOS bytes the requests arrived with at the echo.
    echo_tos: [u64; 256],
    echo_tos_unknown: u64,
    /// ECN of the replies as received here.
    reply_ecn: [u64; 4],
    /// DSCP of the replies as received here (`None` = not reported).
    reply_dscp: BTreeMap<u8, u64>,
    reply_dscp_unknown: u64,
    echo_drops: Option<(u32, u32)>,
    local_drops: Option<u32>,
    error: Option<String>,
}

impl RecvStats {
    fn new() -> Self {
        Self {
            seen: Vec::new(),
            unique: 0,
            duplicates: 0,
            reordered: 0,
            highest: None,
            foreign: 0,
            other_source: 0,
            truncated_at_echo: 0,
            rtt: Histogram::new(),
            echo_tos: [0; 256],
            echo_tos_unknown: 0,
            reply_ecn: [0; 4],
            reply_dscp: BTreeMap::new(),
            reply_dscp_unknown: 0,
            echo_drops: None,
            local_drops: None,
            error: None,
        }
    }

    fn failed(why: &str) -> Self {
        Self { error: Some(why.into()), ..Self::new() }
    }

    /// Marks `seq` seen; false if it was already.
    fn mark(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        let fresh = self.seen[word] & (1 << bit) == 0;
        self.seen[word] |= 1 << bit;
        fresh
    }
}

fn receive(sock: &Socket, target: SocketAddr, shared: &Shared, stop: &AtomicBool) -> RecvStats {
    let mut st = RecvStats::new();
    let mut batch = RecvBatch::new();
    while !stop.load(Ordering::Acquire) {
        match sock.recv_batch_blocking(&mut batch, Duration::from_millis(50)) {
            Ok(_) => {
                let now = now_ns();
                let reserved = shared.reserved.load(Ordering::Acquire);
                for (meta, payload) in batch.iter() {
                    if let Some(d) = meta.drops {
                        st.local_drops = Some(d);
                        shared.local_drops.store(u64::from(d), Ordering::Relaxed);
                    }
                    let reply = match Reply::parse(payload) {
                        Ok(r) if r.seq < reserved => r,
                        _ => {
                            st.foreign += 1;
                            continue;
                        }
                    };
                    if !st.mark(reply.seq) {
                        st.duplicates += 1;
                        continue;
                    }
                    st.unique += 1;
                    if !same_addr(meta.src, target) {
                        st.other_source += 1;
                    }
                    match st.highest {
                        Some(h) if reply.seq < h => st.reordered += 1,
                        _ => st.highest = Some(reply.seq),
                    }
                    st.rtt.record(now.saturating_sub(reply.timestamp));
                    match reply.received_tos {
                        Some(tos) => st.echo_tos[usize::from(tos)] += 1,
                        None => st.echo_tos_unknown += 1,
                    }
                    st.truncated_at_echo += u64::from(reply.truncated);
                    st.reply_ecn[usize::from(meta.ecn.bits())] += 1;
                    match meta.dscp {
                        Some(d) => *st.reply_dscp.entry(d.value()).or_default() += 1,
                        None => st.reply_dscp_unknown += 1,
                    }
                    if let Some(d) = reply.echo_drops {
                        let (first, last) = st.echo_drops.get_or_insert((d, d));
                        *last = (*last).max(d);
                        shared.echo_drops.store(u64::from(last.wrapping_sub(*first)), Ordering::Relaxed);
                    }
                }
                shared.replies.store(st.unique, Ordering::Release);
                shared.last_reply_ns.store(now, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) if is_icmp_error(&e) => {
                take_icmp(sock, shared);
            }
            Err(e) => {
                st.error = Some(e.to_string());
                break;
            }
        }
    }
    st
}

/// The final report; also the `--json` schema.
#[derive(Debug, Serialize)]
struct Report {
    target: String,
    local: String,
    config: RunConfig,
    sent: SentReport,
    /// `None` with `--no-echo`.
    replies: Option<RepliesReport>,
    loss: Option<LossReport>,
    drops: DropsReport,
    rtt_ms: Option<RttReport>,
    marks: Option<MarksReport>,
    icmp: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_early: Option<String>,
}

#[derive(Debug, Serialize)]
struct RunConfig {
    size: usize,
    gso: usize,
    ecn: String,
    /// DSCP value set per datagram; `null` keeps the socket's (0).
    dscp: Option<u8>,
    rate: u64,
    duration_s: f64,
    full_replies: bool,
    echo: bool,
    base_rtt_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct SentReport {
    datagrams: u64,
    bytes: u64,
    send_calls: u64,
    seconds: f64,
    datagrams_per_s: f64,
    /// UDP payload bits per second.
    gbit_per_s: f64,
}

#[derive(Debug, Serialize)]
struct RepliesReport {
    /// Distinct sequence numbers answered.
    received: u64,
    duplicates: u64,
    reordered: u64,
    /// Datagrams that were not replies of this run.
    foreign: u64,
    from_other_address: u64,
    truncated_at_echo: u64,
    datagrams_per_s: f64,
}

#[derive(Debug, Serialize)]
struct LossReport {
    lost: u64,
    ratio: f64,
    percent: f64,
}

#[derive(Debug, Serialize)]
struct DropsReport {
    /// Drops by this host's kernel (receive buffer full): replies. A
    /// dropped GRO train counts once.
    local: Option<u64>,
    /// Drops by the echo's kernel during the run: requests. A dropped GRO
    /// train counts once.
    echo: Option<u64>,
}

#[derive(Debug, Serialize)]
struct RttReport {
    min: f64,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct MarksReport {
    sent: MarkSent,
    /// Counts by codepoint / DSCP of the requests as the echo received them.
    seen_by_echo: MarkCounts,
    /// Counts of the replies' own marks as received here (the echo sends
    /// back what it saw).
    replies_received: MarkCounts,
    ecn_preserved: bool,
    dscp_preserved: bool,
    ecn_verdict: String,
    dscp_verdict: String,
}

#[derive(Debug, Serialize)]
struct MarkSent {
    ecn: String,
    dscp: u8,
    dscp_name: String,
}

#[derive(Debug, Serialize)]
struct MarkCounts {
    ecn: BTreeMap<String, u64>,
    dscp: BTreeMap<String, u64>,
    unknown: u64,
}

impl Report {
    fn new(
        plan: &Plan,
        local: SocketAddr,
        sent: &Sent,
        recv: Option<&RecvStats>,
        icmp: &[IcmpError],
        base_rtt: Option<u64>,
    ) -> Self {
        let secs = sent.elapsed.as_secs_f64().max(1e-9);
        let bytes = sent.datagrams * plan.size as u64;
        let sent_dscp = plan.dscp.unwrap_or_default();
        Self {
            target: plan.target.to_string(),
            local: local.to_string(),
            config: RunConfig {
                size: plan.size,
                gso: plan.gso,
                ecn: plan.ecn.to_string(),
                dscp: plan.dscp.map(Dscp::value),
                rate: plan.rate,
                duration_s: plan.duration.as_secs_f64(),
                full_replies: plan.pad,
                echo: recv.is_some(),
                base_rtt_ms: base_rtt.map(|n| n as f64 / 1e6),
            },
            sent: SentReport {
                datagrams: sent.datagrams,
                bytes,
                send_calls: sent.calls,
                seconds: secs,
                datagrams_per_s: sent.datagrams as f64 / secs,
                gbit_per_s: bytes as f64 * 8.0 / secs / 1e9,
            },
            replies: recv.map(|r| RepliesReport {
                received: r.unique,
                duplicates: r.duplicates,
                reordered: r.reordered,
                foreign: r.foreign,
                from_other_address: r.other_source,
                truncated_at_echo: r.truncated_at_echo,
                datagrams_per_s: r.unique as f64 / secs,
            }),
            loss: recv.map(|r| {
                let lost = sent.datagrams.saturating_sub(r.unique);
                let ratio = if sent.datagrams > 0 { lost as f64 / sent.datagrams as f64 } else { 0.0 };
                LossReport { lost, ratio, percent: ratio * 100.0 }
            }),
            drops: DropsReport {
                // SO_RXQ_OVFL comes only once the counter is non-zero.
                local: recv.and_then(|r| r.local_drops).map(u64::from),
                echo: recv.and_then(|r| r.echo_drops).map(|(a, b)| u64::from(b.wrapping_sub(a))),
            },
            rtt_ms: recv.filter(|r| r.rtt.count() > 0).map(|r| {
                let f = |v: Option<u64>| v.unwrap_or(0) as f64 / 1e6;
                RttReport {
                    min: f(r.rtt.min()),
                    mean: f(r.rtt.mean()),
                    p50: f(r.rtt.quantile(0.5)),
                    p90: f(r.rtt.quantile(0.9)),
                    p99: f(r.rtt.quantile(0.99)),
                    max: f(r.rtt.max()),
                }
            }),
            marks: recv.map(|r| marks(plan.ecn, sent_dscp, r)),
            icmp: icmp.iter().map(describe_icmp).collect(),
            stopped_early: sent.stopped_early.clone(),
        }
    }

    fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let s = &self.sent;
        let _ = writeln!(
            o,
            "sent      {} datagrams in {:.2} s: {} datagrams/s, {:.3} Gbit/s of UDP payload, {} send calls",
            group(s.datagrams),
            s.seconds,
            si(s.datagrams_per_s),
            s.gbit_per_s,
            group(s.send_calls)
        );
        if let Some(r) = &self.replies {
            let _ = writeln!(
                o,
                "echoed    {} replies: {} datagrams/s ({} duplicates, {} out of order{})",
                group(r.received),
                si(r.datagrams_per_s),
                group(r.duplicates),
                group(r.reordered),
                if r.from_other_address > 0 {
                    format!(", {} from another address", group(r.from_other_address))
                } else {
                    String::new()
                }
            );
        }
        if let Some(l) = &self.loss {
            let _ = writeln!(
                o,
                "loss      {} of {} ({:.3}%), round trip by sequence number",
                group(l.lost),
                group(s.datagrams),
                l.percent
            );
        }
        let d = |v: Option<u64>| v.map_or("n/a".into(), group);
        if self.replies.is_some() {
            let _ = writeln!(
                o,
                "drops     local {}, echo {}: kernel drops for a full receive buffer, here (replies) and at the \
                 echo (requests); a dropped GRO train counts once",
                d(self.drops.local),
                d(self.drops.echo)
            );
        }
        if let Some(r) = &self.rtt_ms {
            let _ = writeln!(
                o,
                "rtt       min {:.3} ms, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                r.min, r.p50, r.p90, r.p99, r.max
            );
        }
        if let Some(m) = &self.marks {
            let counts = |c: &MarkCounts| {
                let total: u64 = c.ecn.values().sum::<u64>().max(1);
                let ecn: Vec<String> =
                    c.ecn.iter().map(|(k, v)| format!("{k} {:.1}%", 100.0 * *v as f64 / total as f64)).collect();
                let dscp: Vec<String> =
                    c.dscp.iter().map(|(k, v)| format!("{k} {:.1}%", 100.0 * *v as f64 / total as f64)).collect();
                format!("ECN {}, DSCP {}", ecn.join(" "), if dscp.is_empty() { "n/a".into() } else { dscp.join(" ") })
            };
            let _ = writeln!(o, "marks     sent ECN {}, DSCP {}", m.sent.ecn, m.sent.dscp_name);
            let _ =
                writeln!(o, "  at echo {}: ECN {}, DSCP {}", counts(&m.seen_by_echo), m.ecn_verdict, m.dscp_verdict);
            let _ = writeln!(o, "  replies {} (the echo sends back what it saw)", counts(&m.replies_received));
        }
        for e in &self.icmp {
            let _ = writeln!(o, "icmp      {e}");
        }
        if let Some(why) = &self.stopped_early {
            let _ = writeln!(o, "stopped   early: {why}");
        }
        o
    }
}

fn describe_icmp(e: &IcmpError) -> String {
    let mut s = e.kind.to_string();
    if let Some(from) = e.offender {
        s += &format!(" from {from}");
    }
    if let Some(d) = e.destination {
        s += &format!(" about datagrams to {d}");
    }
    s
}

fn marks(sent_ecn: Ecn, sent_dscp: Dscp, r: &RecvStats) -> MarksReport {
    let mut echo = MarkCounts { ecn: BTreeMap::new(), dscp: BTreeMap::new(), unknown: r.echo_tos_unknown };
    for (tos, &n) in r.echo_tos.iter().enumerate().filter(|(_, n)| **n > 0) {
        let tos = tos as u8;
        *echo.ecn.entry(Ecn::from_bits(tos).to_string()).or_default() += n;
        *echo.dscp.entry(Dscp::from_tos(tos).to_string()).or_default() += n;
    }
    let mut back = MarkCounts { ecn: BTreeMap::new(), dscp: BTreeMap::new(), unknown: r.reply_dscp_unknown };
    for (bits, &n) in r.reply_ecn.iter().enumerate().filter(|(_, n)| **n > 0) {
        back.ecn.insert(Ecn::from_bits(bits as u8).to_string(), n);
    }
    for (&v, &n) in &r.reply_dscp {
        back.dscp.insert(Dscp::from_tos(v << 2).to_string(), n);
    }
    let seen: u64 = echo.ecn.values().sum();
    let same_ecn = echo.ecn.get(&sent_ecn.to_string()).copied().unwrap_or(0);
    let same_dscp = echo.dscp.get(&sent_dscp.to_string()).copied().unwrap_or(0);
    let ecn_preserved = seen > 0 && same_ecn == seen;
    let dscp_preserved = seen > 0 && same_dscp == seen;
    let verdict = |preserved: bool, sent: &str, counts: &BTreeMap<String, u64>| {
        if seen == 0 {
            "unknown (the echo could not read the TOS byte)".to_owned()
        } else if preserved {
            "preserved".to_owned()
        } else {
            let changed: Vec<String> = counts
                .iter()
                .filter(|(k, _)| k.as_str() != sent)
                .map(|(k, v)| format!("{sent} -> {k} {:.2}%", 100.0 * *v as f64 / seen as f64))
                .collect();
            format!("changed: {}", changed.join(", "))
        }
    };
    let mut ecn_verdict = verdict(ecn_preserved, &sent_ecn.to_string(), &echo.ecn);
    if !ecn_preserved
        && matches!(sent_ecn, Ecn::Ect0 | Ecn::Ect1)
        && echo.ecn.keys().all(|k| *k == "ce" || *k == sent_ecn.to_string())
    {
        ecn_verdict += " (CE marks: a router on the way signals congestion; ECN works)";
    }
    let dscp_verdict = verdict(dscp_preserved, &sent_dscp.to_string(), &echo.dscp);
    MarksReport {
        sent: MarkSent { ecn: sent_ecn.to_string(), dscp: sent_dscp.value(), dscp_name: sent_dscp.to_string() },
        seen_by_echo: echo,
        replies_received: back,
        ecn_preserved,
        dscp_preserved,
        ecn_verdict,
        dscp_verdict,
    }
}

/// Moves the socket's queued ICMP errors into `shared`, noting a port
/// unreachable (nothing listens at the target).
fn take_icmp(sock: &Socket, shared: &Shared) {
    let mut q = shared.icmp.lock().unwrap_or_else(|p| p.into_inner());
    while let Ok(Some(err)) = sock.try_recv_error() {
        if matches!(err.kind, volley::IcmpKind::PortUnreachable) {
            shared.refused.store(true, Ordering::Relaxed);
        }
        q.push(err);
    }
}
