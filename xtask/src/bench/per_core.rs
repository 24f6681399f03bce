//! `cargo xtask bench --scenario per-core`: fan-in from
//! [`FAN_IN_CLIENTS`] client sockets to a reuse-port group of 1 or 2 volley
//! sockets, one receiver thread (own socket, own epoll, own `RecvBatch`,
//! nothing shared but the read-only phase flag) per socket.
//!
//! Separate from the scenario x datapath matrix because its shape differs:
//! the matrix compares datapaths with one receiving thread; this compares
//! thread counts of one datapath (volley, GSO/GRO on), with `n + 1` threads
//! per cell and figures per receiver thread. It reuses the matrix's sender
//! (`VolleyEndpoint`, the `fan-in` plan), receiver loop (`recv_side`) and
//! window metering, so a 1-socket cell here is the matrix's
//! `fan-in x volley` cell.
//!
//! Placement on a 2-core machine: 1 socket: receiver on CPU 1, sender on
//! CPU 0 (as in the matrix). 2 sockets: receivers on CPUs 0 and 1, the
//! sender unpinned, so it competes with both. Steering is by flow hash
//! (`Steering::Hash`): on loopback a packet is processed on the sending CPU,
//! so `Steering::Cpu` would hand every datagram of the one sender thread
//! to one socket.
//!
//! Contention is reported as it shows from user space: context switches of
//! each receiver thread (involuntary: preempted by another runnable thread,
//! here mostly the sender; voluntary: went to sleep in `epoll_wait`), the
//! share of the busiest socket, and receive-buffer loss. The receivers
//! share no lock and no written cache line (volley's statistics are per
//! socket), so any cross-thread cost is the CPU itself being shared.

use std::thread;
use std::time::{Duration, Instant};

use volley::{Config, Steering};

use super::dp_volley::VolleyEndpoint;
use super::endpoint::{Endpoint, Role, SockOpts};
use super::scenario::{self, Scenario, Timing, FAN_IN_CLIENTS};
use super::stats::{median, Ctl, SideResult};
use super::Options;
use crate::DynError;

/// The `--scenario` name.
pub(crate) const NAME: &str = "per-core";

/// Receiver-thread counts compared.
const SERVERS: [usize; 2] = [1, 2];

/// One cell: `servers` receiver threads, one round.
#[derive(Debug)]
struct Cell {
    servers: usize,
    tx: SideResult,
    rx: Vec<SideResult>,
    /// Busy ns of all CPUs over the window.
    system_ns: u64,
    secs: f64,
}

impl Cell {
    fn delivered(&self) -> u64 {
        self.rx.iter().map(|r| r.window.datagrams).sum()
    }

    fn rate(&self) -> f64 {
        self.delivered() as f64 / self.secs.max(1e-9)
    }

    fn server_cpu_ns(&self) -> u64 {
        self.rx.iter().map(|r| r.window.cpu_ns).sum()
    }

    /// Per-datagram figure of `ns` (NaN if nothing was delivered).
    fn per_datagram(&self, ns: u64) -> f64 {
        let d = self.delivered();
        if d == 0 {
            f64::NAN
        } else {
            ns as f64 / d as f64
        }
    }

    fn errors(&self) -> Vec<String> {
        let sides = std::iter::once(("sender".to_string(), &self.tx))
            .chain(self.rx.iter().enumerate().map(|(i, r)| (format!("receiver {i}"), r)));
        sides.filter_map(|(who, r)| r.error.as_ref().map(|e| format!("{} sockets, {who}: {e}", self.servers))).collect()
    }
}

/// Runs the rounds (the order of 1 and 2 alternates) and prints the report.
///
/// # Errors
/// A cell that could not be set up, a side that failed, or a cell that
/// delivered nothing.
pub(crate) fn run(opts: &Options) -> Result<(), DynError> {
    let mut cells = Vec::new();
    let started = Instant::now();
    for round in 0..opts.rounds {
        let order: Vec<usize> = if round % 2 == 0 { SERVERS.to_vec() } else { SERVERS.iter().rev().copied().collect() };
        for n in order {
            eprint!("\r\x1b[K[round {}/{}] per-core: {n} socket(s)", round + 1, opts.rounds);
            cells.push(run_cell(n, &opts.timing, &opts.sock)?);
            thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!("\r\x1b[K[done] {} cells in {:.1} s", cells.len(), started.elapsed().as_secs_f64());
    print!("{}", report(opts, &cells));
    let errors: Vec<String> = cells.iter().flat_map(Cell::errors).collect();
    let empty = cells.iter().filter(|c| c.delivered() == 0).count();
    for e in &errors {
        eprintln!("bench: {e}");
    }
    if !errors.is_empty() || empty > 0 {
        return Err(format!("{} side error(s), {empty} cell(s) delivered nothing", errors.len()).into());
    }
    Ok(())
}

/// One cell: binds the group and the 64 clients, runs the sender and `n`
/// receivers through warm-up, window and drain.
fn run_cell(n: usize, t: &Timing, sock: &SockOpts) -> Result<Cell, DynError> {
    let config = Config::new().recv_buffer_size(sock.recv_buffer).send_buffer_size(sock.send_buffer);
    let group = config.bind_reuse_port_group("127.0.0.1:0".parse()?, n, Steering::Hash)?;
    let addr = group[0].local_addr()?;
    let servers = group
        .into_iter()
        .map(|s| VolleyEndpoint::<true>::from_sockets(vec![s], Role::Recv))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tx = VolleyEndpoint::<true>::bind(FAN_IN_CLIENTS, Role::Send, sock)?;
    let size = Scenario::FanIn.size();
    tx.prepare(&Scenario::FanIn.plan(&[addr]), size);

    let ctl = &Ctl::default();
    let (tx, rx, system_ns, secs) = thread::scope(|s| {
        let receivers: Vec<_> = servers
            .into_iter()
            .enumerate()
            .map(|(i, ep)| {
                // 1 socket: CPU 1, as the matrix's receiver; 2: CPUs 0 and 1.
                let cpu = if n == 1 { 1 } else { i };
                thread::Builder::new().name(format!("per-core-rx{i}")).spawn_scoped(s, move || {
                    scenario::pin(t.pin, cpu);
                    ctl.arrive();
                    scenario::recv_side(ep, ctl)
                })
            })
            .collect();
        let sender = thread::Builder::new().name("per-core-tx".into()).spawn_scoped(s, move || {
            // With a receiver on every core the sender has no core of its own.
            scenario::pin(t.pin && n == 1, 0);
            ctl.arrive();
            scenario::send_side(tx, size, ctl)
        });
        let (busy, secs) = scenario::measure_window(ctl, u8::try_from(n + 1).unwrap_or(u8::MAX), t);
        let txr = scenario::join_side(sender, "sender");
        ctl.set_sender_done();
        let rxr: Vec<SideResult> = receivers.into_iter().map(|h| scenario::join_side(h, "receiver")).collect();
        (txr, rxr, busy.unwrap_or(0), secs)
    });
    Ok(Cell { servers: n, tx, rx, system_ns, secs })
}

/// The markdown report: medians over rounds per socket count, and the
/// within-round ratio of 2 sockets to 1.
fn report(opts: &Options, cells: &[Cell]) -> String {
    use std::fmt::Write as _;
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    let mut out = String::new();
    let _ = writeln!(out, "# per-core: fan-in from {FAN_IN_CLIENTS} clients to a reuse-port group\n");
    let _ = writeln!(
        out,
        "`{}`: {} round(s), {:.0?} windows, {cpus} CPUs, volley (GSO/GRO on), hash steering, \
         1200-byte datagrams; pinned: {}\n",
        opts.command, opts.rounds, opts.timing.duration, opts.timing.pin
    );
    let _ = writeln!(
        out,
        "| sockets = threads | delivered Mdgram/s | server CPU ns/dgram | server CPU (cores) | machine busy ns/dgram | \
         sender CPU ns/dgram | rx syscalls /1000 dgrams | involuntary csw/s per rx thread | voluntary csw/s per rx thread | busiest socket share | loss |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for n in SERVERS {
        let mine: Vec<&Cell> = cells.iter().filter(|c| c.servers == n).collect();
        let med = |f: &dyn Fn(&Cell) -> f64| median(&mine.iter().map(|c| f(c)).collect::<Vec<_>>());
        let per_thread_s = |c: &Cell, v: u64| v as f64 / c.secs.max(1e-9) / c.servers as f64;
        let rate = med(&|c| c.rate() / 1e6);
        let cpu = med(&|c| c.per_datagram(c.server_cpu_ns()));
        let cores = med(&|c| c.server_cpu_ns() as f64 / 1e9 / c.secs.max(1e-9));
        let machine = med(&|c| c.per_datagram(c.system_ns));
        let sender = med(&|c| c.tx.window.cpu_ns as f64 / c.tx.window.datagrams.max(1) as f64);
        let syscalls = med(&|c| c.per_datagram(c.rx.iter().map(|r| r.window.syscalls).sum::<u64>()) * 1000.0);
        let invol = med(&|c| per_thread_s(c, c.rx.iter().map(|r| r.window.involuntary_csw).sum()));
        let vol = med(&|c| per_thread_s(c, c.rx.iter().map(|r| r.window.voluntary_csw).sum()));
        let share = med(&|c| {
            let max = c.rx.iter().map(|r| r.window.datagrams).max().unwrap_or(0);
            max as f64 / c.delivered().max(1) as f64
        });
        let loss = med(&|c| {
            let got: u64 = c.rx.iter().map(|r| r.total).sum();
            c.tx.total.saturating_sub(got) as f64 / c.tx.total.max(1) as f64
        });
        let _ = writeln!(
            out,
            "| {n} | {rate:.3} | {cpu:.0} | {cores:.2} | {machine:.0} | {sender:.0} | {syscalls:.1} | {invol:.0} | {vol:.0} | {:.0}% | {:.2}% |",
            share * 100.0,
            loss * 100.0
        );
    }
    // Ratios within a round (cells of one round ran seconds apart).
    let mut rate_ratio = Vec::new();
    let mut cpu_ratio = Vec::new();
    for round in cells.chunks(SERVERS.len()) {
        let one = round.iter().find(|c| c.servers == 1);
        let two = round.iter().find(|c| c.servers == 2);
        if let (Some(a), Some(b)) = (one, two) {
            rate_ratio.push(b.rate() / a.rate());
            cpu_ratio.push(b.per_datagram(b.server_cpu_ns()) / a.per_datagram(a.server_cpu_ns()));
        }
    }
    let _ = writeln!(
        out,
        "\n2 sockets / 1 socket, median of within-round ratios: delivered rate x{:.2}, server CPU per datagram x{:.2}\n",
        median(&rate_ratio),
        median(&cpu_ratio)
    );
    let _ = writeln!(
        out,
        "Server CPU is the receiver threads' getrusage (user + system); loopback delivery runs in the \
         sender's softirq and is in `machine busy` (all CPUs, /proc/stat) instead. With {cpus} CPUs and \
         2 receivers the sender has no core of its own: this shows the per-datagram cost and the \
         contention of splitting one receive queue in two, not how throughput scales to N cores."
    );
    out
}
