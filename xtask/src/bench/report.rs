//! From cell results to figures, medians, within-round ratios, targets, the
//! markdown report and the JSON document.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::json::{to_document, Num, Ordered};
use super::scenario::{CellConfig, CellResult, Datapath, Scenario, ECHO_INTERVAL};
use super::stats::{median, percentile, quantile};
use super::strace::Row as StraceRow;
use super::Options;

/// Facts about the machine the run happened on.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) kernel: String,
    pub(crate) cpu: String,
    pub(crate) rmem_max: String,
    pub(crate) wmem_max: String,
    pub(crate) rustc: String,
    /// Fraction of all CPUs busy in the half second before the run.
    pub(crate) background_busy: f64,
    /// `release` or `debug`.
    pub(crate) build: &'static str,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "?".into(), |s| s.trim().to_string())
}

impl Machine {
    pub(crate) fn probe() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "?".into());
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map_or_else(|| "?".into(), |s| s.trim().to_string());
        Self {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            cpu,
            rmem_max: read_trim("/proc/sys/net/core/rmem_max"),
            wmem_max: read_trim("/proc/sys/net/core/wmem_max"),
            rustc,
            background_busy: super::stats::system_busy_fraction(Duration::from_millis(500)).unwrap_or(f64::NAN),
            build: if cfg!(debug_assertions) { "debug" } else { "release" },
        }
    }
}

/// The figures of one cell (NaN where not applicable).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    /// Delivered datagrams/s (echo: round trips/s).
    pub(crate) rate: f64,
    /// Payload Gbit/s delivered.
    pub(crate) gbps: f64,
    pub(crate) loss_pct: f64,
    /// CPU ns of both threads per delivered datagram (echo: per round trip),
    /// from `getrusage(RUSAGE_THREAD)`: excludes softirq work.
    pub(crate) cpu_ns: f64,
    /// Busy ns of all CPUs (`/proc/stat`) per delivered datagram: includes
    /// softirq / ksoftirqd (loopback delivery), and any other load.
    pub(crate) sys_cpu_ns: f64,
    /// Sender (echo: client) CPU ns per datagram it handled.
    pub(crate) tx_cpu_ns: f64,
    /// Receiver (echo: server) CPU ns per datagram it handled.
    pub(crate) rx_cpu_ns: f64,
    /// Syscalls per 1000 datagrams, each side.
    pub(crate) tx_sys_k: f64,
    pub(crate) rx_sys_k: f64,
    /// Heap allocations per datagram, each side.
    pub(crate) tx_allocs: f64,
    pub(crate) rx_allocs: f64,
    /// Heap allocations in the window (both sides) and datagrams handled.
    pub(crate) allocs: f64,
    pub(crate) datagrams: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

fn per(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

impl Figures {
    pub(crate) fn of(c: &CellResult) -> Self {
        let (t, r) = (&c.tx.window, &c.rx.window);
        let echo = c.scenario == Scenario::Echo;
        // Echo: the client's window counts round trips; otherwise the receiver's.
        let delivered = if echo { t } else { r };
        let rate = per(delivered.datagrams as f64, delivered.secs);
        let tx_rate = per(t.datagrams as f64, t.secs);
        let rx_rate = per(r.datagrams as f64, r.secs);
        let tx_cpu_s = per(t.cpu_ns as f64, t.secs);
        let rx_cpu_s = per(r.cpu_ns as f64, r.secs);
        let mut rtts = c.tx.rtts_ns.clone();
        Self {
            rate,
            gbps: if echo { f64::NAN } else { per(r.bytes as f64 * 8.0, r.secs) / 1e9 },
            loss_pct: if c.sent == 0 {
                f64::NAN
            } else {
                c.sent.saturating_sub(c.received) as f64 / c.sent as f64 * 100.0
            },
            cpu_ns: per(tx_cpu_s + rx_cpu_s, rate),
            sys_cpu_ns: per(per(c.system_cpu_ns as f64, c.system_secs), rate),
            tx_cpu_ns: per(tx_cpu_s, tx_rate),
            rx_cpu_ns: per(rx_cpu_s, rx_rate),
            tx_sys_k: per(t.syscalls as f64 * 1000.0, t.datagrams as f64),
            rx_sys_k: per(r.syscalls as f64 * 1000.0, r.datagrams as f64),
            tx_allocs: per(t.allocs as f64, t.datagrams as f64),
            rx_allocs: per(r.allocs as f64, r.datagrams as f64),
            allocs: (t.allocs + r.allocs) as f64,
            datagrams: (t.datagrams + r.datagrams) as f64,
            p50_us: percentile(&mut rtts, 50.0) / 1e3,
            p99_us: percentile(&mut rtts, 99.0) / 1e3,
        }
    }

    fn median_of(v: &[Self]) -> Self {
        let m = |get: fn(&Self) -> f64| median(&v.iter().map(get).collect::<Vec<_>>());
        Self {
            rate: m(|f| f.rate),
            gbps: m(|f| f.gbps),
            loss_pct: m(|f| f.loss_pct),
            cpu_ns: m(|f| f.cpu_ns),
            sys_cpu_ns: m(|f| f.sys_cpu_ns),
            tx_cpu_ns: m(|f| f.tx_cpu_ns),
            rx_cpu_ns: m(|f| f.rx_cpu_ns),
            tx_sys_k: m(|f| f.tx_sys_k),
            rx_sys_k: m(|f| f.rx_sys_k),
            tx_allocs: m(|f| f.tx_allocs),
            rx_allocs: m(|f| f.rx_allocs),
            // Totals, not medians: the allocation target is about any at all.
            allocs: v.iter().map(|f| f.allocs).sum(),
            datagrams: v.iter().map(|f| f.datagrams).sum(),
            p50_us: m(|f| f.p50_us),
            p99_us: m(|f| f.p99_us),
        }
    }

    fn json(&self) -> FiguresJson {
        FiguresJson {
            datagrams_per_s: Num(self.rate),
            gbit_per_s: Num(self.gbps),
            loss_pct: Num(self.loss_pct),
            cpu_ns_per_datagram: Num(self.cpu_ns),
            all_cpus_busy_ns_per_datagram: Num(self.sys_cpu_ns),
            send_cpu_ns_per_datagram: Num(self.tx_cpu_ns),
            recv_cpu_ns_per_datagram: Num(self.rx_cpu_ns),
            send_syscalls_per_1000: Num(self.tx_sys_k),
            recv_syscalls_per_1000: Num(self.rx_sys_k),
            send_allocs_per_datagram: Num(self.tx_allocs),
            recv_allocs_per_datagram: Num(self.rx_allocs),
            allocs_in_window: Num(self.allocs),
            datagrams_in_window: Num(self.datagrams),
            rtt_p50_us: Num(self.p50_us),
            rtt_p99_us: Num(self.p99_us),
        }
    }
}

/// One cell's or one summary's figures in `results.json`.
#[derive(Debug, Serialize)]
struct FiguresJson {
    datagrams_per_s: Num,
    gbit_per_s: Num,
    loss_pct: Num,
    cpu_ns_per_datagram: Num,
    all_cpus_busy_ns_per_datagram: Num,
    send_cpu_ns_per_datagram: Num,
    recv_cpu_ns_per_datagram: Num,
    send_syscalls_per_1000: Num,
    recv_syscalls_per_1000: Num,
    send_allocs_per_datagram: Num,
    recv_allocs_per_datagram: Num,
    allocs_in_window: Num,
    datagrams_in_window: Num,
    rtt_p50_us: Num,
    rtt_p99_us: Num,
}

/// Medians over rounds of one scenario x datapath, with ratios to the
/// baselines computed per round first.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) scenario: Scenario,
    pub(crate) datapath: Datapath,
    pub(crate) rounds: usize,
    pub(crate) med: Figures,
    /// Median over rounds of this datapath's rate / the baseline's rate in
    /// the same round (echo: of the p50 RTT ratio).
    pub(crate) vs: HashMap<Datapath, f64>,
    /// Interquartile range (p25, p75) of those within-round ratios.
    pub(crate) vs_iqr: HashMap<Datapath, (f64, f64)>,
    pub(crate) config: CellConfig,
}

/// One target from the issue, judged on this run.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) goal: String,
    pub(crate) measured: String,
    pub(crate) value: f64,
    /// `None` when a datapath or scenario it needs was not run.
    pub(crate) pass: Option<bool>,
}

#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub(crate) opts: &'a Options,
    pub(crate) machine: &'a Machine,
    pub(crate) cells: Vec<&'a CellResult>,
    pub(crate) errors: Vec<String>,
    pub(crate) summaries: Vec<Summary>,
    pub(crate) targets: Vec<Target>,
    pub(crate) elapsed: Duration,
    pub(crate) strace: Vec<StraceRow>,
}

const BASELINES: [Datapath; 3] = [Datapath::QuinnUdp, Datapath::Raw, Datapath::Std];

impl<'a> Report<'a> {
    pub(crate) fn new(
        opts: &'a Options,
        machine: &'a Machine,
        results: &'a [Result<CellResult, String>],
        elapsed: Duration,
    ) -> Self {
        let mut errors: Vec<String> = Vec::new();
        let mut cells = Vec::new();
        for r in results {
            match r {
                Ok(c) => {
                    for (side, s) in [("sender", &c.tx), ("receiver", &c.rx)] {
                        if let Some(e) = &s.error {
                            errors.push(format!(
                                "round {} {} x {} {side}: {e}",
                                c.round + 1,
                                c.scenario.name(),
                                c.datapath.name()
                            ));
                        }
                    }
                    cells.push(c);
                }
                Err(e) => errors.push(e.clone()),
            }
        }
        let figs: HashMap<(String, Datapath, usize), Figures> =
            cells.iter().map(|c| ((c.scenario.name(), c.datapath, c.round), Figures::of(c))).collect();
        let mut summaries = Vec::new();
        for &sc in &opts.scenarios {
            for &dp in &opts.runnable() {
                let mine: Vec<&&CellResult> = cells.iter().filter(|c| c.scenario == sc && c.datapath == dp).collect();
                if mine.is_empty() {
                    continue;
                }
                let per_round: Vec<Figures> = mine.iter().map(|c| Figures::of(c)).collect();
                let mut vs = HashMap::new();
                let mut vs_iqr = HashMap::new();
                for base in BASELINES {
                    let ratios: Vec<f64> = mine
                        .iter()
                        .filter_map(|c| {
                            let b = figs.get(&(sc.name(), base, c.round))?;
                            let me = figs.get(&(sc.name(), dp, c.round))?;
                            Some(if sc == Scenario::Echo { me.p50_us / b.p50_us } else { me.rate / b.rate })
                        })
                        .collect();
                    vs.insert(base, median(&ratios));
                    vs_iqr.insert(base, (quantile(&ratios, 0.25), quantile(&ratios, 0.75)));
                }
                let mut med = Figures::median_of(&per_round);
                if sc == Scenario::Echo {
                    // Percentiles over every round's samples pooled: a
                    // round's p99 alone rests on a handful of samples.
                    let mut all: Vec<u64> = mine.iter().flat_map(|c| c.tx.rtts_ns.iter().copied()).collect();
                    med.p50_us = percentile(&mut all, 50.0) / 1e3;
                    med.p99_us = percentile(&mut all, 99.0) / 1e3;
                }
                summaries.push(Summary {
                    scenario: sc,
                    datapath: dp,
                    rounds: mine.len(),
                    med,
                    vs,
                    vs_iqr,
                    config: mine[0].config.clone(),
                });
            }
        }
        let mut rep =
            Self { opts, machine, cells, errors, summaries, targets: Vec::new(), elapsed, strace: Vec::new() };
        rep.targets = rep.judge();
        rep
    }

    pub(crate) fn summary(&self, sc: Scenario, dp: Datapath) -> Option<&Summary> {
        self.summaries.iter().find(|s| s.scenario == sc && s.datapath == dp)
    }

    fn judge(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let bulk = Scenario::Bulk(1200);
        let ratio = |sc: Scenario, base: Datapath, min: f64, name: &str| {
            let s = self.summary(sc, Datapath::Volley);
            let v = s.and_then(|s| s.vs.get(&base).copied()).filter(|v| v.is_finite());
            let (lo, hi) = s.and_then(|s| s.vs_iqr.get(&base).copied()).unwrap_or((f64::NAN, f64::NAN));
            let rounds = s.map_or(0, |s| s.rounds);
            Target {
                name: name.into(),
                goal: format!(">= {min:.2}x"),
                measured: v.map_or_else(
                    || "not run".into(),
                    |v| format!("{v:.2}x (IQR {lo:.2}-{hi:.2} over {rounds} rounds)"),
                ),
                value: v.unwrap_or(f64::NAN),
                pass: v.map(|v| v >= min),
            }
        };
        t.push(ratio(bulk, Datapath::QuinnUdp, 1.1, "bulk-1200: volley datagrams/s vs quinn-udp"));
        t.push(ratio(bulk, Datapath::Raw, 0.95, "bulk-1200: volley datagrams/s within 5% of raw"));
        t.push(ratio(Scenario::FanOut, Datapath::QuinnUdp, 1.5, "fan-out: volley datagrams/s vs quinn-udp"));
        t.push(ratio(Scenario::FanOut, Datapath::Std, 1.5, "fan-out: volley datagrams/s vs std"));
        // Adapter vs core: within-round ratios straight from the cells (the
        // core is not one of the summaries' BASELINES).
        // `dp`'s figure over `base`'s within each round, against a bound
        // (`at_least`: the ratio must reach `bound`, else stay under it).
        let within_round = |sc: Scenario,
                            dp: Datapath,
                            base: Datapath,
                            figure: fn(&Figures) -> f64,
                            bound: f64,
                            at_least: bool,
                            name: &str| {
            let of = |d: Datapath, round: usize| {
                self.cells
                    .iter()
                    .find(|c| c.scenario == sc && c.datapath == d && c.round == round)
                    .map(|c| figure(&Figures::of(c)))
            };
            let ratios: Vec<f64> = self
                .cells
                .iter()
                .filter(|c| c.scenario == sc && c.datapath == dp)
                .filter_map(|c| Some(figure(&Figures::of(c)) / of(base, c.round)?))
                .filter(|v| v.is_finite())
                .collect();
            let v = Some(median(&ratios)).filter(|v| v.is_finite());
            let (lo, hi) = (quantile(&ratios, 0.25), quantile(&ratios, 0.75));
            Target {
                name: name.into(),
                goal: format!("{} {bound:.2}x", if at_least { ">=" } else { "<=" }),
                measured: v.map_or_else(
                    || "not run".into(),
                    |v| format!("{v:.2}x (IQR {lo:.2}-{hi:.2} over {} rounds)", ratios.len()),
                ),
                value: v.unwrap_or(f64::NAN),
                pass: v.map(|v| if at_least { v >= bound } else { v <= bound }),
            }
        };
        t.push(within_round(
            bulk,
            Datapath::VolleyTokio,
            Datapath::Volley,
            |f| f.rate,
            0.9,
            true,
            "bulk-1200: volley-tokio datagrams/s >= 0.9x volley core",
        ));
        // CPU per datagram against raw libc (#13): both sides, or the
        // receiver's alone.
        let cpu_vs_base = |sc: Scenario, dp: Datapath, base: Datapath, max: f64, rx_only: bool, name: &str| {
            let figure: fn(&Figures) -> f64 = if rx_only { |f| f.rx_cpu_ns } else { |f| f.cpu_ns };
            within_round(sc, dp, base, figure, max, false, name)
        };
        let cpu_vs = |sc: Scenario, dp: Datapath, max: f64, rx_only: bool, name: &str| {
            cpu_vs_base(sc, dp, Datapath::Raw, max, rx_only, name)
        };
        let b64 = Scenario::Bulk(64);
        t.push(cpu_vs(b64, Datapath::Volley, 1.03, false, "bulk-64: volley CPU ns/datagram vs raw"));
        t.push(cpu_vs(bulk, Datapath::Volley, 1.03, false, "bulk-1200: volley CPU ns/datagram vs raw"));
        t.push(cpu_vs(b64, Datapath::VolleyTokio, 1.10, false, "bulk-64: volley-tokio CPU ns/datagram vs raw"));
        t.push(cpu_vs_base(
            b64,
            Datapath::VolleyBlocking,
            Datapath::RawEagain,
            0.90,
            true,
            "bulk-64: volley-blocking receiver CPU ns/datagram vs raw's epoll-until-EAGAIN receiver (#13's baseline)",
        ));
        t.push(cpu_vs(
            b64,
            Datapath::VolleyBlocking,
            0.90,
            true,
            "bulk-64: volley-blocking receiver CPU ns/datagram vs raw's epoll receiver that stops at a short batch",
        ));
        let sys = |sc: Scenario, send: bool, max: f64, name: &str| {
            let v = self
                .summary(sc, Datapath::Volley)
                .map(|s| if send { s.med.tx_sys_k } else { s.med.rx_sys_k })
                .filter(|v| v.is_finite());
            Target {
                name: name.into(),
                goal: format!("<= {max:.0}"),
                measured: v.map_or_else(|| "not run".into(), |v| format!("{v:.1}")),
                value: v.unwrap_or(f64::NAN),
                pass: v.map(|v| v <= max),
            }
        };
        t.push(sys(bulk, true, 20.0, "bulk-1200: volley send syscalls per 1000 datagrams"));
        t.push(sys(bulk, false, 20.0, "bulk-1200: volley recv syscalls per 1000 datagrams"));
        t.push(sys(Scenario::FanOut, true, 40.0, "fan-out: volley send syscalls per 1000 datagrams"));
        let volley: Vec<&Summary> = self
            .summaries
            .iter()
            .filter(|s| matches!(s.datapath, Datapath::Volley | Datapath::VolleyMmsg) && s.scenario != Scenario::Echo)
            .collect();
        let (allocs, dgrams) = volley.iter().fold((0.0, 0.0), |(a, d), s| (a + s.med.allocs, d + s.med.datagrams));
        t.push(Target {
            name: "volley + volley-mmsg: heap allocations per datagram (steady state, both sides, all but echo)".into(),
            goal: "0".into(),
            measured: if volley.is_empty() {
                "not run".into()
            } else {
                format!("{allocs:.0} in {} datagrams", fmt_count(dgrams))
            },
            value: per(allocs, dgrams),
            pass: (!volley.is_empty()).then_some(allocs == 0.0),
        });
        t
    }

    pub(crate) fn markdown(&self) -> String {
        let mut s = String::new();
        let o = self.opts;
        let m = self.machine;
        let _ = writeln!(s, "# volley datapath benchmarks\n");
        let _ = writeln!(s, "- command: `{}`", o.command);
        let _ = writeln!(
            s,
            "- machine: {} CPUs ({}), Linux {}, net.core.rmem_max {}, net.core.wmem_max {}, {}; {:.0}% of all CPUs busy just before the run",
            m.nproc,
            m.cpu,
            m.kernel,
            m.rmem_max,
            m.wmem_max,
            m.rustc,
            m.background_busy * 100.0
        );
        if m.build == "debug" {
            s.push_str("- **debug build: a smoke test, these figures are not representative** (use `--release` or drop `--quick`)\n");
        }
        let _ = writeln!(
            s,
            "- one sender thread and one receiver thread per cell{}",
            if o.timing.pin { ", pinned to CPU 0 and CPU 1" } else { ", not pinned" }
        );
        let _ = writeln!(
            s,
            "- {} round(s) x {} scenario(s) x {} datapath(s), {} ms warm-up + {} ms window per cell, interleaved; {:.0} s total",
            o.rounds,
            o.scenarios.len(),
            o.runnable().len(),
            o.timing.warmup.as_millis(),
            o.timing.duration.as_millis(),
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "- every socket requests SO_RCVBUF = SO_SNDBUF = {} KiB; figures are medians over rounds; `x base` columns are the median of within-round ratios",
            o.sock.recv_buffer >> 10
        );
        if let Some(rate) = o.timing.rate {
            let _ = writeln!(
                s,
                "- **paced**: the bulk, fan-out and fan-in senders offer {rate} datagrams/s (`--rate`); loss compares datapaths at one offered load; CPU figures include the sender's pacing (sleep + spin) and are not comparable with an unpaced run"
            );
        }
        s.push_str("- CPU ns/dgram: both threads' `getrusage(RUSAGE_THREAD)` per delivered datagram; all-CPU ns/dgram: busy time of every CPU (`/proc/stat`, includes softirq = loopback delivery, and anything else running) per delivered datagram\n");
        s.push_str("- sys/1k: syscalls per 1000 datagrams counted inside each datapath (send, receive, epoll_wait; see `--strace` for a cross-check); allocs/dgram: heap allocations by that side's thread in the window\n");
        for d in &o.datapaths {
            if let Some(why) = d.unavailable() {
                let _ = writeln!(s, "- {} not run: {why}", d.name());
            }
        }
        s.push('\n');
        for &sc in &o.scenarios {
            let rows: Vec<&Summary> = self.summaries.iter().filter(|x| x.scenario == sc).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(s, "## {}\n\n{}\n", sc.name(), describe(sc));
            if sc == Scenario::Echo {
                s.push_str("| datapath | p50 µs | p99 µs | round trips/s | loss % | CPU ns/rt | client sys/1k | server sys/1k | client allocs/rt | server allocs/rt | p50 x quinn-udp |\n");
                s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
                for r in rows {
                    let f = &r.med;
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        r.datapath.name(),
                        fmt_f(f.p50_us, 1),
                        fmt_f(f.p99_us, 1),
                        fmt_f(f.rate, 0),
                        fmt_f(f.loss_pct, 2),
                        fmt_f(f.cpu_ns, 0),
                        fmt_f(f.tx_sys_k, 0),
                        fmt_f(f.rx_sys_k, 0),
                        fmt_allocs(f.tx_allocs),
                        fmt_allocs(f.rx_allocs),
                        fmt_ratio(r.vs.get(&Datapath::QuinnUdp).copied()),
                    );
                }
            } else {
                s.push_str("| datapath | datagrams/s | Gbit/s | loss % | CPU ns/dgram | all-CPU ns/dgram | send sys/1k | recv sys/1k | send allocs/dgram | recv allocs/dgram | x quinn-udp | x raw | x std |\n");
                s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
                for r in rows {
                    let f = &r.med;
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        r.datapath.name(),
                        fmt_count(f.rate),
                        fmt_f(f.gbps, 2),
                        fmt_f(f.loss_pct, 1),
                        fmt_f(f.cpu_ns, 0),
                        fmt_f(f.sys_cpu_ns, 0),
                        fmt_f(f.tx_sys_k, 1),
                        fmt_f(f.rx_sys_k, 1),
                        fmt_allocs(f.tx_allocs),
                        fmt_allocs(f.rx_allocs),
                        fmt_ratio(r.vs.get(&Datapath::QuinnUdp).copied()),
                        fmt_ratio(r.vs.get(&Datapath::Raw).copied()),
                        fmt_ratio(r.vs.get(&Datapath::Std).copied()),
                    );
                }
            }
            s.push('\n');
        }

        s.push_str("## targets\n\n| target | goal | measured | result |\n|---|---|---|---|\n");
        for t in &self.targets {
            let verdict = match t.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "n/a",
            };
            let _ = writeln!(s, "| {} | {} | {} | {verdict} |", t.name, t.goal, t.measured);
        }
        s.push('\n');

        s.push_str("## datapath configuration\n\n");
        s.push_str("Granted buffer sizes (the kernel doubles the request, capped by rmem_max/wmem_max) and GSO train length (datagrams per send unit) for bulk-1200, or the first scenario run.\n\n");
        s.push_str("| datapath | GSO segments | SO_RCVBUF | SO_SNDBUF | how |\n|---|--:|--:|--:|---|\n");
        for &dp in &o.runnable() {
            let Some(sm) =
                self.summary(Scenario::Bulk(1200), dp).or_else(|| self.summaries.iter().find(|x| x.datapath == dp))
            else {
                continue;
            };
            let c = &sm.config;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                dp.name(),
                c.train_segments,
                c.recv_buffer,
                c.send_buffer,
                c.describe
            );
        }
        s.push('\n');

        if !self.strace.is_empty() {
            s.push_str(&super::strace::markdown(&self.strace));
        }
        if !self.errors.is_empty() {
            s.push_str("## errors\n\n");
            for e in &self.errors {
                let _ = writeln!(s, "- {e}");
            }
            s.push('\n');
        }
        s
    }

    /// The `results.json` document.
    pub(crate) fn json(&self) -> String {
        let o = self.opts;
        let m = self.machine;
        let side = |r: &'a super::stats::SideResult| {
            let w = &r.window;
            SideJson {
                window_secs: Num(w.secs),
                window_datagrams: w.datagrams,
                window_bytes: w.bytes,
                window_syscalls: w.syscalls,
                window_allocs: w.allocs,
                window_cpu_ns: w.cpu_ns,
                window_user_cpu_ns: w.user_ns,
                total_datagrams: r.total,
                total_syscalls: r.total_syscalls,
                echo_lost: r.lost,
                checksum: r.checksum,
                error: r.error.as_deref(),
            }
        };
        let doc = Document {
            command: &o.command,
            machine: MachineJson {
                nproc: m.nproc,
                kernel: &m.kernel,
                cpu: &m.cpu,
                rmem_max: &m.rmem_max,
                wmem_max: &m.wmem_max,
                rustc: &m.rustc,
                background_busy_fraction: Num(m.background_busy),
                build: m.build,
            },
            options: OptionsJson {
                rounds: o.rounds,
                warmup_ms: o.timing.warmup.as_millis() as u64,
                duration_ms: o.timing.duration.as_millis() as u64,
                quick: o.quick,
                pinned: o.timing.pin,
                recv_buffer_requested: o.sock.recv_buffer,
                send_buffer_requested: o.sock.send_buffer,
                echo_interval_us: ECHO_INTERVAL.as_micros() as u64,
                elapsed_secs: Num(self.elapsed.as_secs_f64()),
            },
            summary: self
                .summaries
                .iter()
                .map(|s| SummaryJson {
                    scenario: s.scenario.name(),
                    datapath: s.datapath.name(),
                    rounds: s.rounds,
                    median: s.med.json(),
                    ratio_vs: Ordered(
                        BASELINES.iter().map(|b| (b.name(), Num(s.vs.get(b).copied().unwrap_or(f64::NAN)))).collect(),
                    ),
                    ratio_vs_iqr: Ordered(
                        BASELINES
                            .iter()
                            .map(|b| {
                                let (lo, hi) = s.vs_iqr.get(b).copied().unwrap_or((f64::NAN, f64::NAN));
                                (b.name(), [Num(lo), Num(hi)])
                            })
                            .collect(),
                    ),
                    config: ConfigJson {
                        describe: &s.config.describe,
                        gso_segments: s.config.train_segments,
                        so_rcvbuf: s.config.recv_buffer,
                        so_sndbuf: s.config.send_buffer,
                    },
                })
                .collect(),
            targets: self
                .targets
                .iter()
                .map(|t| TargetJson {
                    target: &t.name,
                    goal: &t.goal,
                    measured: &t.measured,
                    value: Num(t.value),
                    pass: t.pass,
                })
                .collect(),
            cells: self
                .cells
                .iter()
                .map(|c| CellJson {
                    round: c.round + 1,
                    scenario: c.scenario.name(),
                    datapath: c.datapath.name(),
                    sent: c.sent,
                    received: c.received,
                    all_cpus_busy_ns: c.system_cpu_ns,
                    all_cpus_window_secs: Num(c.system_secs),
                    figures: Figures::of(c).json(),
                    sender: side(&c.tx),
                    receiver: side(&c.rx),
                })
                .collect(),
            strace: super::strace::json(&self.strace),
            errors: &self.errors,
        };
        to_document(&doc)
    }
}

/// `results.json`, the schema docs/benchmarks.md describes and scripts
/// read. Field order is the document's key order.
#[derive(Debug, Serialize)]
struct Document<'a> {
    command: &'a str,
    machine: MachineJson<'a>,
    options: OptionsJson,
    summary: Vec<SummaryJson<'a>>,
    targets: Vec<TargetJson<'a>>,
    cells: Vec<CellJson<'a>>,
    strace: Vec<super::strace::RowJson<'a>>,
    errors: &'a [String],
}

#[derive(Debug, Serialize)]
struct MachineJson<'a> {
    nproc: usize,
    kernel: &'a str,
    cpu: &'a str,
    rmem_max: &'a str,
    wmem_max: &'a str,
    rustc: &'a str,
    background_busy_fraction: Num,
    build: &'a str,
}

#[derive(Debug, Serialize)]
struct OptionsJson {
    rounds: usize,
    warmup_ms: u64,
    duration_ms: u64,
    quick: bool,
    pinned: bool,
    recv_buffer_requested: usize,
    send_buffer_requested: usize,
    echo_interval_us: u64,
    elapsed_secs: Num,
}

#[derive(Debug, Serialize)]
struct SummaryJson<'a> {
    scenario: String,
    datapath: &'a str,
    rounds: usize,
    median: FiguresJson,
    ratio_vs: Ordered<&'a str, Num>,
    ratio_vs_iqr: Ordered<&'a str, [Num; 2]>,
    config: ConfigJson<'a>,
}

#[derive(Debug, Serialize)]
struct ConfigJson<'a> {
    describe: &'a str,
    gso_segments: usize,
    so_rcvbuf: usize,
    so_sndbuf: usize,
}

#[derive(Debug, Serialize)]
struct TargetJson<'a> {
    target: &'a str,
    goal: &'a str,
    measured: &'a str,
    value: Num,
    pass: Option<bool>,
}

#[derive(Debug, Serialize)]
struct CellJson<'a> {
    round: usize,
    scenario: String,
    datapath: &'a str,
    sent: u64,
    received: u64,
    all_cpus_busy_ns: u64,
    all_cpus_window_secs: Num,
    figures: FiguresJson,
    sender: SideJson<'a>,
    receiver: SideJson<'a>,
}

#[derive(Debug, Serialize)]
struct SideJson<'a> {
    window_secs: Num,
    window_datagrams: u64,
    window_bytes: u64,
    window_syscalls: u64,
    window_allocs: u64,
    window_cpu_ns: u64,
    window_user_cpu_ns: u64,
    total_datagrams: u64,
    total_syscalls: u64,
    echo_lost: u64,
    checksum: u64,
    error: Option<&'a str>,
}

fn describe(sc: Scenario) -> String {
    match sc {
        Scenario::Bulk(size) => format!(
            "One flow of {size}-byte datagrams, sender as fast as it can, receiver counts; datagrams/s is what was delivered, loss is (sent - received) / sent."
        ),
        Scenario::FanOut => "One sending socket to 256 receiving sockets, 1 or 2 datagrams of 1200 B per peer per round; one thread drains all 256 (epoll).".into(),
        Scenario::FanIn => "64 client sockets (one sender thread) to one server socket, 1 or 2 datagrams of 1200 B per client per round.".into(),
        Scenario::Echo => format!(
            "Request/response of 100-byte datagrams, one request per {} µs (tokio's timer rounds to 1 ms); RTT measured by the client, p50/p99 over all rounds' samples pooled. `p50 x quinn-udp` is the median of within-round p50 ratios (lower is better).",
            ECHO_INTERVAL.as_micros()
        ),
    }
}

/// `1.23 M`, `456.7 k`, `12`.
pub(crate) fn fmt_count(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn fmt_f(v: f64, prec: usize) -> String {
    if v.is_finite() {
        format!("{v:.prec$}")
    } else {
        "-".into()
    }
}

fn fmt_allocs(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v == 0.0 {
        "0".into()
    } else if v >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.1e}")
    }
}

fn fmt_ratio(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::scenario::{CellConfig, Timing};
    use crate::bench::stats::{SideResult, Window};

    /// A fixed report: two rounds of bulk-1200 on four datapaths (the
    /// baselines and volley), one echo cell with RTTs, one failed cell, a
    /// strace row, odd strings and non-finite ratios.
    fn fixture_json() -> String {
        let mut opts = Options::parse(&["--quick".to_string(), "--rounds".to_string(), "2".to_string()]).unwrap();
        opts.timing =
            Timing { warmup: Duration::from_millis(100), duration: Duration::from_millis(250), pin: true, rate: None };
        let machine = Machine {
            nproc: 2,
            kernel: "6.18.0 \"test\"\tkernel".into(),
            cpu: "Some CPU @ 2.0GHz".into(),
            rmem_max: "4194304".into(),
            wmem_max: "4194304".into(),
            rustc: "rustc 1.95.0".into(),
            background_busy: 0.125,
            build: "release",
        };
        let side = |datagrams: u64, syscalls: u64, cpu_ns: u64, rtts: Vec<u64>| SideResult {
            window: Window {
                secs: 0.25,
                datagrams,
                bytes: datagrams * 1200,
                syscalls,
                allocs: 0,
                cpu_ns,
                user_ns: cpu_ns / 3,
                voluntary_csw: 0,
                involuntary_csw: 0,
            },
            total: datagrams + 7,
            total_syscalls: syscalls + 3,
            rtts_ns: rtts,
            lost: 0,
            checksum: datagrams.wrapping_mul(2_654_435_761),
            error: None,
        };
        let mut results = Vec::new();
        for round in 0..2 {
            for (i, dp) in [Datapath::Std, Datapath::QuinnUdp, Datapath::Raw, Datapath::Volley].into_iter().enumerate()
            {
                let n = 100_000 + 37_000 * i as u64 + 1_111 * round as u64;
                results.push(Ok(CellResult {
                    scenario: Scenario::Bulk(1200),
                    datapath: dp,
                    round,
                    tx: side(n + 10, n / 40 + i as u64, 91_000_000 + 7 * n, Vec::new()),
                    rx: side(n, n / 32, 83_000_000 + 3 * n, Vec::new()),
                    sent: n + 10,
                    received: n,
                    system_cpu_ns: 400_000_000 + n,
                    system_secs: 0.2500001,
                    config: CellConfig {
                        describe: format!("{} with \\ and \"quotes\"", dp.name()),
                        train_segments: 1 + i,
                        recv_buffer: 4 << 20,
                        send_buffer: 4 << 20,
                    },
                }));
            }
        }
        results.push(Ok(CellResult {
            scenario: Scenario::Echo,
            datapath: Datapath::Volley,
            round: 0,
            tx: side(500, 1000, 5_000_000, (1..=500).map(|k| 20_000 + 13 * k).collect()),
            rx: side(500, 1000, 4_000_000, Vec::new()),
            sent: 500,
            received: 500,
            system_cpu_ns: 9_000_000,
            system_secs: 0.25,
            config: CellConfig { describe: "echo".into(), train_segments: 1, recv_buffer: 0, send_buffer: 0 },
        }));
        results.push(Err("fan-in/raw: bind failed: address in use\nsecond line".to_string()));
        let mut rep = Report::new(&opts, &machine, &results, Duration::from_millis(12_345));
        rep.strace = vec![StraceRow {
            scenario: "bulk-1200".into(),
            datapath: "volley".into(),
            received: 123_456,
            counted: 4_000,
            traced: 4_012,
            by_name: vec![("sendmmsg".into(), 2_000), ("recvmmsg".into(), 2_012)],
            error: None,
        }];
        rep.json()
    }

    /// The JSON document's schema and formatting are fixed: consumers
    /// (docs/benchmarks.md, the charts, scripts) read it. The golden file
    /// was written by the hand-rolled writer this replaced.
    #[test]
    fn json_matches_the_golden_document() {
        let got = fixture_json();
        let golden_path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bench/testdata/report.json");
        if std::env::var_os("VOLLEY_BLESS").is_some() {
            std::fs::write(golden_path, &got).unwrap();
        }
        let want = std::fs::read_to_string(golden_path).expect("golden file");
        assert_eq!(got, want, "the results.json document changed");
    }
}
