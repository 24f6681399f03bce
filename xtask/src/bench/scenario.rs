//! Scenarios, datapaths, and one cell (a scenario against a datapath): the
//! coordinator that runs two side threads through warm-up, the measurement
//! window and the drain, and the synchronous side loops every
//! [`Endpoint`] shares.
//!
//! ```text
//!  coordinator   |-- warm-up --|------ MEASURE ------|-- STOP: join sender, receiver drains --|
//!  sender        send_plan, send_plan, ...            (returns)
//!  receiver      recv, recv, ...                      recv until sender done + 20 ms quiet
//! ```
//! Each side snapshots its own counters, CPU time and allocations when it
//! sees the window open and close ([`Meter`]), so every figure is per side.

use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use super::dp_quinn::QuinnEndpoint;
use super::dp_std::StdEndpoint;
use super::dp_volley::VolleyEndpoint;
use super::endpoint::{self, fit_segments, seq_of, Burst, Endpoint, Role, SockOpts, BATCH};
use super::raw::RawEndpoint;
use super::stats::{system_busy_ns, Ctl, Meter, Pacer, SideResult, MEASURE, STOP};

/// Receiving sockets in `fan-out`.
pub(crate) const FAN_OUT_PEERS: usize = 256;
/// Sending sockets in `fan-in`.
pub(crate) const FAN_IN_CLIENTS: usize = 64;
/// `echo` payload bytes.
pub(crate) const ECHO_SIZE: usize = 100;
/// `echo` request interval (the "low rate": 1000 requests/s at most).
pub(crate) const ECHO_INTERVAL: Duration = Duration::from_millis(1);
/// `echo`: a request without a reply after this long counts as lost.
pub(crate) const ECHO_TIMEOUT: Duration = Duration::from_millis(100);
/// Sequence number of the datagram that tells an echo server to stop.
pub(crate) const POISON: u64 = u64::MAX;
/// A receiver stops once the sender is done and nothing came for this long.
pub(crate) const QUIET: Duration = Duration::from_millis(20);
/// ... or at the latest this long after the window closed.
pub(crate) const DRAIN_MAX: Duration = Duration::from_secs(1);

/// A traffic pattern on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// One flow of `size`-byte datagrams, as fast as the sender can.
    Bulk(usize),
    /// One sending socket, [`FAN_OUT_PEERS`] receiving sockets drained by one thread.
    FanOut,
    /// [`FAN_IN_CLIENTS`] sending sockets, one receiving socket.
    FanIn,
    /// Request/response latency of [`ECHO_SIZE`]-byte datagrams at a low rate.
    Echo,
}

impl Scenario {
    pub(crate) const ALL: [Self; 6] =
        [Self::Bulk(1200), Self::Bulk(64), Self::Bulk(1472), Self::FanOut, Self::FanIn, Self::Echo];

    pub(crate) fn name(self) -> String {
        match self {
            Self::Bulk(size) => format!("bulk-{size}"),
            Self::FanOut => "fan-out".into(),
            Self::FanIn => "fan-in".into(),
            Self::Echo => "echo".into(),
        }
    }

    /// Payload bytes per datagram.
    pub(crate) fn size(self) -> usize {
        match self {
            Self::Bulk(size) => size,
            Self::FanOut | Self::FanIn => 1200,
            Self::Echo => ECHO_SIZE,
        }
    }

    /// (sending sockets, receiving sockets).
    pub(crate) fn sockets(self) -> (usize, usize) {
        match self {
            Self::Bulk(_) | Self::Echo => (1, 1),
            Self::FanOut => (1, FAN_OUT_PEERS),
            Self::FanIn => (FAN_IN_CLIENTS, 1),
        }
    }

    /// One round of the sender's work, repeated until the window closes.
    ///
    /// - bulk: `BATCH` x (64 KiB of datagrams, at most 128) to the one peer;
    /// - fan-out: 1 or 2 datagrams (alternating) to each of the 256 peers;
    /// - fan-in: 1 or 2 datagrams (alternating) from each of the 64 clients.
    pub(crate) fn plan(self, rx: &[SocketAddr]) -> Vec<Burst> {
        match self {
            Self::Bulk(size) => {
                vec![Burst { from: 0, to: rx[0], count: BATCH * fit_segments(size).min(128) }]
            }
            Self::FanOut => rx.iter().enumerate().map(|(i, &to)| Burst { from: 0, to, count: 1 + i % 2 }).collect(),
            Self::FanIn => (0..FAN_IN_CLIENTS).map(|i| Burst { from: i, to: rx[0], count: 1 + i % 2 }).collect(),
            Self::Echo => Vec::new(),
        }
    }

    /// Parses a `--scenario` item; `bulk` means every bulk size.
    pub(crate) fn parse(s: &str) -> Result<Vec<Self>, String> {
        if s == "bulk" {
            return Ok(Self::ALL.into_iter().filter(|s| matches!(s, Self::Bulk(_))).collect());
        }
        Self::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .map(|sc| vec![sc])
            .ok_or_else(|| format!("unknown scenario `{s}` (try --list)"))
    }
}

/// A UDP implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Datapath {
    Std,
    Tokio,
    QuinnUdp,
    VolleyMmsg,
    Volley,
    Raw,
    /// `raw` whose receiver reads each ready socket until `EAGAIN`.
    RawEagain,
    /// The async adapter `crates/volley-tokio` (`dp_volley_tokio.rs`): one
    /// current-thread runtime per side, `DatagramStream` + `send_batch`.
    VolleyTokio,
    /// `volley` with a blocking receive where a side has one socket.
    VolleyBlocking,
}

impl Datapath {
    pub(crate) const ALL: [Self; 9] = [
        Self::Std,
        Self::Tokio,
        Self::QuinnUdp,
        Self::VolleyMmsg,
        Self::Volley,
        Self::Raw,
        Self::RawEagain,
        Self::VolleyTokio,
        Self::VolleyBlocking,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Std => "std",
            Self::Tokio => "tokio",
            Self::QuinnUdp => "quinn-udp",
            Self::VolleyMmsg => "volley-mmsg",
            Self::Volley => "volley",
            Self::Raw => "raw",
            Self::RawEagain => "raw-eagain",
            Self::VolleyTokio => "volley-tokio",
            Self::VolleyBlocking => "volley-blocking",
        }
    }

    /// Why this datapath cannot run in this build, if it cannot.
    /// (Every datapath is built in today; one behind a feature or a kernel
    /// requirement would say why here.)
    pub(crate) fn unavailable(self) -> Option<&'static str> {
        let _ = self;
        None
    }

    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| format!("unknown datapath `{s}` (try --list)"))
    }
}

/// How long each phase of a cell lasts, and where its threads run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// Pin the sender (echo: client) to CPU 0 and the receiver (echo:
    /// server) to CPU 1.
    pub(crate) pin: bool,
    /// `--rate`: datagrams/s the bulk, fan-out and fan-in senders offer
    /// (None: as fast as they can).
    pub(crate) rate: Option<u64>,
}

/// How a datapath was set up for a cell (reported so a handicapped baseline
/// would show).
#[derive(Debug, Clone, Default)]
pub(crate) struct CellConfig {
    pub(crate) describe: String,
    pub(crate) train_segments: usize,
    pub(crate) recv_buffer: usize,
    pub(crate) send_buffer: usize,
}

/// One scenario x datapath x round.
#[derive(Debug, Clone)]
pub(crate) struct CellResult {
    pub(crate) scenario: Scenario,
    pub(crate) datapath: Datapath,
    pub(crate) round: usize,
    /// Sender (echo: client).
    pub(crate) tx: SideResult,
    /// Receiver (echo: server).
    pub(crate) rx: SideResult,
    /// Datagrams the kernel accepted from the sender (echo: requests).
    pub(crate) sent: u64,
    /// Datagrams delivered (echo: replies the client got).
    pub(crate) received: u64,
    /// Busy ns of all CPUs during the coordinator's window, and its length.
    pub(crate) system_cpu_ns: u64,
    pub(crate) system_secs: f64,
    pub(crate) config: CellConfig,
}

/// Runs one cell.
///
/// # Errors
/// Setup failures (bind, configure); errors inside a side are reported in
/// its [`SideResult::error`].
pub(crate) fn run_cell(
    sc: Scenario,
    dp: Datapath,
    round: usize,
    t: &Timing,
    opts: &SockOpts,
) -> Result<CellResult, String> {
    let (tx, rx, sent, received, config, (system_cpu_ns, system_secs)) = match dp {
        Datapath::Std => run_sync::<StdEndpoint>(sc, t, opts),
        Datapath::QuinnUdp => run_sync::<QuinnEndpoint>(sc, t, opts),
        Datapath::Raw => run_sync::<RawEndpoint>(sc, t, opts),
        Datapath::RawEagain => run_sync::<RawEndpoint<true>>(sc, t, opts),
        Datapath::Volley => run_sync::<VolleyEndpoint<true>>(sc, t, opts),
        Datapath::VolleyMmsg => run_sync::<VolleyEndpoint<false>>(sc, t, opts),
        Datapath::VolleyBlocking => run_sync::<VolleyEndpoint<true, true>>(sc, t, opts),
        Datapath::Tokio => super::dp_tokio::run(sc, t, opts),
        Datapath::VolleyTokio => super::dp_volley_tokio::run(sc, t, opts),
    }
    .map_err(|e| format!("{} x {}: {e}", sc.name(), dp.name()))?;
    Ok(CellResult { scenario: sc, datapath: dp, round, tx, rx, sent, received, system_cpu_ns, system_secs, config })
}

/// (sender, receiver, sent, received, config, (system busy ns, secs))
pub(crate) type Pair = (SideResult, SideResult, u64, u64, CellConfig, (u64, f64));

fn run_sync<E: Endpoint>(sc: Scenario, t: &Timing, opts: &SockOpts) -> io::Result<Pair> {
    let (ntx, nrx) = sc.sockets();
    let (tx_role, rx_role) = if sc == Scenario::Echo { (Role::Both, Role::Both) } else { (Role::Send, Role::Recv) };
    let rx = E::bind(nrx, rx_role, opts)?;
    let mut tx = E::bind(ntx, tx_role, opts)?;
    let rx_addrs = rx.local_addrs()?;
    let size = sc.size();
    let (recv_buffer, send_buffer) = rx.buffer_sizes();
    let config =
        CellConfig { describe: tx.describe(), train_segments: tx.train_segments(size), recv_buffer, send_buffer };
    let (txr, rxr, system) = if sc == Scenario::Echo {
        let server = rx_addrs[0];
        let samples = samples_capacity(t);
        run_pair(move |c| echo_server(rx, c), move |c| echo_client(tx, server, samples, c), t)
    } else {
        tx.prepare(&sc.plan(&rx_addrs), size);
        run_pair(move |c| recv_side(rx, c), move |c| send_side(tx, size, c), t)
    };
    let sent = txr.total;
    let received = if sc == Scenario::Echo { txr.total.saturating_sub(txr.lost) } else { rxr.total };
    Ok((txr, rxr, sent, received, config, system))
}

/// Echo RTT samples to reserve up front (no allocation in the window).
pub(crate) fn samples_capacity(t: &Timing) -> usize {
    (t.duration.as_secs_f64() / ECHO_INTERVAL.as_secs_f64() * 2.0) as usize + 64
}

/// Runs the receiver (echo: server) and sender (echo: client) side on two
/// threads through warm-up, window and drain. Returns (sender, receiver,
/// (busy ns of all CPUs in the window, window seconds)).
pub(crate) fn run_pair<R, T>(rx: R, tx: T, t: &Timing) -> (SideResult, SideResult, (u64, f64))
where
    R: FnOnce(&Ctl) -> SideResult + Send,
    T: FnOnce(&Ctl) -> SideResult + Send,
{
    let ctl = Ctl::paced(t.rate);
    thread::scope(|s| {
        let rxh = thread::Builder::new().name("bench-rx".into()).spawn_scoped(s, || {
            pin(t.pin, 1);
            ctl.arrive();
            rx(&ctl)
        });
        let txh = thread::Builder::new().name("bench-tx".into()).spawn_scoped(s, || {
            pin(t.pin, 0);
            ctl.arrive();
            tx(&ctl)
        });
        let (busy, secs) = measure_window(&ctl, 2, t);
        let txr = join_side(txh, "sender");
        ctl.set_sender_done();
        let rxr = join_side(rxh, "receiver");
        (txr, rxr, busy.map_or((0, 0.0), |b| (b, secs)))
    })
}

/// Waits for `threads` side threads to arrive, then runs the warm-up and
/// the measurement window and stops the sides; returns the busy ns of all
/// CPUs in the window (if `/proc/stat` could be read) and its length.
pub(crate) fn measure_window(ctl: &Ctl, threads: u8, t: &Timing) -> (Option<u64>, f64) {
    // On a loaded machine a thread can take a while to first run.
    ctl.wait_arrived(threads, Duration::from_secs(5));
    thread::sleep(t.warmup);
    let (busy0, t0) = (system_busy_ns(), Instant::now());
    ctl.set_phase(MEASURE);
    thread::sleep(t.duration);
    ctl.set_phase(STOP);
    let (busy1, secs) = (system_busy_ns(), t0.elapsed().as_secs_f64());
    (busy0.zip(busy1).map(|(a, b)| b - a), secs)
}

/// A side thread's result, or an error result if it could not be spawned
/// or panicked.
pub(crate) fn join_side(h: io::Result<thread::ScopedJoinHandle<'_, SideResult>>, what: &str) -> SideResult {
    match h {
        Ok(h) => h
            .join()
            .unwrap_or_else(|_| SideResult { error: Some(format!("{what} thread panicked")), ..SideResult::default() }),
        Err(e) => SideResult { error: Some(e.to_string()), ..SideResult::default() },
    }
}

pub(crate) fn pin(on: bool, cpu: usize) {
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    if on && cpu < cpus {
        let _ = super::raw::pin_thread(cpu);
    }
}

/// Counts what a receiver got: the per-datagram work every datapath does.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) datagrams: u64,
    pub(crate) bytes: u64,
    pub(crate) checksum: u64,
}

impl Sink {
    #[inline]
    pub(crate) fn take(&mut self, payload: &[u8]) {
        self.datagrams += 1;
        self.bytes += payload.len() as u64;
        self.checksum = self.checksum.wrapping_add(seq_of(payload));
    }
}

/// Tracks the drain after the window closed: done once the sender is done
/// and nothing arrived for [`QUIET`], or after [`DRAIN_MAX`].
#[derive(Debug, Default)]
pub(crate) struct Drain {
    since: Option<(Instant, Instant)>,
}

impl Drain {
    /// `got`: datagrams from the last receive.
    pub(crate) fn done(&mut self, got: usize, ctl: &Ctl) -> bool {
        let now = Instant::now();
        let (stop, last) = self.since.get_or_insert((now, now));
        if got > 0 {
            *last = now;
        }
        (ctl.sender_done() && now.duration_since(*last) >= QUIET) || now.duration_since(*stop) >= DRAIN_MAX
    }
}

pub(crate) fn send_side<E: Endpoint>(mut ep: E, size: usize, ctl: &Ctl) -> SideResult {
    let mut meter = Meter::new();
    let mut seq = 0u64;
    let mut error = None;
    let stop = || ctl.stopping();
    let mut pacer = Pacer::new(ctl);
    loop {
        if meter.observe(ctl.phase(), seq, seq * size as u64, ep.syscalls()) {
            break;
        }
        pacer.wait(seq);
        if let Err(e) = ep.send_plan(size, &mut seq, &stop) {
            error = Some(format!("send: {e}"));
            break;
        }
    }
    SideResult { window: meter.window(), total: seq, total_syscalls: ep.syscalls(), error, ..SideResult::default() }
}

pub(crate) fn recv_side<E: Endpoint>(mut ep: E, ctl: &Ctl) -> SideResult {
    let mut meter = Meter::new();
    let mut sink = Sink::default();
    let mut drain = Drain::default();
    let mut error = None;
    loop {
        let got = match ep.recv(|_, _, p| sink.take(p)) {
            Ok(n) => n,
            Err(e) => {
                error = Some(format!("recv: {e}"));
                break;
            }
        };
        if meter.observe(ctl.phase(), sink.datagrams, sink.bytes, ep.syscalls()) && drain.done(got, ctl) {
            break;
        }
    }
    SideResult {
        window: meter.window(),
        total: sink.datagrams,
        total_syscalls: ep.syscalls(),
        checksum: sink.checksum,
        error,
        ..SideResult::default()
    }
}

fn echo_server<E: Endpoint>(mut ep: E, ctl: &Ctl) -> SideResult {
    let mut meter = Meter::new();
    let mut drain = Drain::default();
    let mut served = 0u64;
    let mut error = None;
    let mut pending: Vec<(SocketAddr, [u8; ECHO_SIZE], usize)> = Vec::with_capacity(256);
    'outer: loop {
        pending.clear();
        let got = ep.recv(|_, src, p| {
            if pending.len() < pending.capacity() {
                let mut b = [0; ECHO_SIZE];
                let n = p.len().min(ECHO_SIZE);
                b[..n].copy_from_slice(&p[..n]);
                pending.push((src, b, n));
            }
        });
        if let Err(e) = got {
            error = Some(format!("recv: {e}"));
            break;
        }
        for (src, b, n) in &pending {
            if seq_of(&b[..*n]) == POISON {
                break 'outer;
            }
            if let Err(e) = ep.send_one(0, *src, &b[..*n]) {
                error = Some(format!("send: {e}"));
                break 'outer;
            }
            served += 1;
        }
        if meter.observe(ctl.phase(), served, served * ECHO_SIZE as u64, ep.syscalls())
            && drain.done(pending.len(), ctl)
        {
            break;
        }
    }
    // The poison may arrive before the server saw STOP: close the window.
    meter.observe(STOP, served, served * ECHO_SIZE as u64, ep.syscalls());
    SideResult { window: meter.window(), total: served, total_syscalls: ep.syscalls(), error, ..SideResult::default() }
}

fn echo_client<E: Endpoint>(mut ep: E, server: SocketAddr, samples: usize, ctl: &Ctl) -> SideResult {
    let mut meter = Meter::new();
    let mut rtts = Vec::with_capacity(samples);
    let mut req = [0u8; ECHO_SIZE];
    let (mut seq, mut replies, mut lost) = (0u64, 0u64, 0u64);
    let mut error = None;
    let mut next = Instant::now();
    'outer: loop {
        if meter.observe(ctl.phase(), replies, replies * ECHO_SIZE as u64, ep.syscalls()) {
            break;
        }
        seq += 1;
        endpoint::stamp(&mut req, ECHO_SIZE, seq);
        let t0 = Instant::now();
        if let Err(e) = ep.send_one(0, server, &req) {
            error = Some(format!("send: {e}"));
            break;
        }
        let mut got = false;
        loop {
            if let Err(e) = ep.recv(|_, _, p| got |= seq_of(p) == seq) {
                error = Some(format!("recv: {e}"));
                break 'outer;
            }
            let now = Instant::now();
            if got {
                replies += 1;
                if ctl.phase() == MEASURE && rtts.len() < rtts.capacity() {
                    rtts.push(now.duration_since(t0).as_nanos() as u64);
                }
                break;
            }
            if now.duration_since(t0) >= ECHO_TIMEOUT {
                lost += 1;
                break;
            }
        }
        next += ECHO_INTERVAL;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    endpoint::stamp(&mut req, ECHO_SIZE, POISON);
    let _ = ep.send_one(0, server, &req);
    SideResult {
        window: meter.window(),
        total: seq,
        total_syscalls: ep.syscalls(),
        rtts_ns: rtts,
        lost,
        error,
        ..SideResult::default()
    }
}
