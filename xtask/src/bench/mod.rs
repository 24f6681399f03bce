//! `cargo xtask bench`: every scenario against every datapath on loopback.
//!
//! Rounds are interleaved (round 1: every scenario x every datapath, round
//! 2: the same again, ...), so drift (thermal, noisy neighbours) hits all
//! datapaths alike; the report gives medians over rounds, and ratios between
//! datapaths computed within each round before taking their median.
//!
//! Output: a markdown report on stdout, `results.json` and SVG charts under
//! `target/bench/`, a progress line on stderr.
//!
//! Modules: [`scenario`] (scenarios, datapaths, the coordinator and the
//! shared side loops), [`endpoint`] (what a synchronous datapath provides),
//! one `dp_*.rs` per datapath plus [`raw`] (the libc datapath and every
//! `unsafe` of xtask), [`stats`] (window metering), [`report`], [`chart`],
//! [`json`] (serde helpers for `results.json`), [`strace`] (the `--strace`
//! cross-check), [`per_core`] (the separate `--scenario per-core`
//! comparison of 1 and 2 receiving threads).

mod chart;
mod dp_quinn;
mod dp_std;
mod dp_tokio;
mod dp_volley;
mod dp_volley_tokio;
mod endpoint;
mod json;
mod per_core;
#[allow(unsafe_code)]
mod raw;
mod report;
mod rt;
mod scenario;
mod stats;
mod strace;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::DynError;
use endpoint::SockOpts;
use scenario::{CellResult, Datapath, Scenario, Timing};

const HELP: &str = "usage: cargo xtask bench [options]

Runs every scenario against every datapath on loopback, in interleaved
rounds, and reports medians and within-round ratios.

options:
  --quick               seconds-long smoke run for CI (1 round, 150 ms
                        windows), in the current build: under `cargo xtask`
                        that is a debug build, so its figures are not
                        representative (add --release for real ones)
  --rounds N            rounds (default 25; --quick: 1)
  --duration-ms N       measurement window per cell (default 200; --quick: 150)
  --warmup-ms N         warm-up before each window (default 50)
  --rate N              pace the bulk, fan-out and fan-in senders at N
                        datagrams/s (suffix k or M: 12M), to compare loss at
                        one offered load; CPU figures then include the
                        sender's pacing (default: as fast as it can)
  --scenario LIST       comma list: bulk (all sizes), bulk-1200, bulk-64,
                        bulk-1472, fan-out, fan-in, echo (default: all);
                        `per-core` alone: fan-in from 64 clients to a
                        reuse-port group of 1, then 2 sockets, one thread
                        each (not part of the matrix; docs/benchmarks.md)
  --datapath LIST       comma list: std, tokio, quinn-udp, volley-mmsg,
                        volley, raw, raw-eagain (raw reading each socket
                        until EAGAIN), volley-tokio, volley-blocking
                        (default: all available)
  --strace              afterwards, rerun short cells under `strace -c -f`
                        and compare its syscall counts with ours
  --out DIR             output directory (default: <workspace>/target/bench)
  --no-pin              do not pin the sender to CPU 0 and the receiver to CPU 1
  --release             with --quick: re-run in release mode too
  --debug-build         run in this build even if it is a debug build
                        (default without --quick: re-run itself with
                        `cargo run --release`)
  --list                list scenarios and datapaths
  -h, --help            this text";

/// Parses `--rate`: datagrams/s, with an optional `k` or `M` suffix.
fn rate(v: &str) -> Result<u64, String> {
    let (digits, scale) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 1_000.0),
        Some(b'M' | b'm') => (&v[..v.len() - 1], 1_000_000.0),
        _ => (v, 1.0),
    };
    match digits.parse::<f64>() {
        Ok(n) if n.is_finite() && n * scale >= 1.0 => Ok((n * scale) as u64),
        _ => Err(format!("--rate: `{v}` is not a rate in datagrams/s (e.g. 500000, 500k, 12M)")),
    }
}

/// Parsed command line.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) rounds: usize,
    pub(crate) timing: Timing,
    pub(crate) scenarios: Vec<Scenario>,
    pub(crate) datapaths: Vec<Datapath>,
    pub(crate) strace: bool,
    pub(crate) out: PathBuf,
    pub(crate) debug_build: bool,
    /// Re-run in release mode even with `--quick`.
    pub(crate) release: bool,
    pub(crate) list: bool,
    pub(crate) help: bool,
    /// `--scenario per-core`: the 1-vs-2 receiving threads comparison.
    pub(crate) per_core: bool,
    /// Internal (`--strace` children): run one `scenario/datapath` cell and
    /// print its counters.
    pub(crate) cell: Option<(Scenario, Datapath)>,
    pub(crate) sock: SockOpts,
    /// The command line as given, for the report.
    pub(crate) command: String,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            quick: false,
            rounds: 0,
            timing: Timing { warmup: Duration::ZERO, duration: Duration::ZERO, pin: true, rate: None },
            scenarios: Vec::new(),
            datapaths: Vec::new(),
            strace: false,
            out: std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| workspace_root().join("target"), PathBuf::from)
                .join("bench"),
            debug_build: false,
            release: false,
            list: false,
            help: false,
            per_core: false,
            cell: None,
            sock: SockOpts::default(),
            command: std::iter::once("cargo xtask bench".to_string())
                .chain(args.iter().filter(|a| *a != "--debug-build").cloned())
                .collect::<Vec<_>>()
                .join(" "),
        };
        let (mut rounds, mut duration, mut warmup) = (None, None, None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
            let number = |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("{name}: `{v}` is not a number"));
            match a.as_str() {
                "--quick" => o.quick = true,
                "--rounds" => rounds = Some(number(a, value(a)?)?.max(1) as usize),
                "--duration-ms" => duration = Some(Duration::from_millis(number(a, value(a)?)?.max(10))),
                "--warmup-ms" => warmup = Some(Duration::from_millis(number(a, value(a)?)?)),
                "--rate" => o.timing.rate = Some(rate(&value(a)?)?),
                "--scenario" | "--scenarios" => {
                    for s in value(a)?.split(',').filter(|s| !s.is_empty()) {
                        if s.trim() == per_core::NAME {
                            o.per_core = true;
                        } else {
                            o.scenarios.extend(Scenario::parse(s.trim())?);
                        }
                    }
                }
                "--datapath" | "--datapaths" => {
                    for s in value(a)?.split(',').filter(|s| !s.is_empty()) {
                        o.datapaths.push(Datapath::parse(s.trim())?);
                    }
                }
                "--strace" => o.strace = true,
                "--out" => o.out = PathBuf::from(value(a)?),
                "--debug-build" => o.debug_build = true,
                "--release" => o.release = true,
                "--no-pin" => o.timing.pin = false,
                "--list" => o.list = true,
                "-h" | "--help" => o.help = true,
                "--internal-cell" => {
                    let v = value(a)?;
                    let (s, d) = v.split_once('/').ok_or("--internal-cell SCENARIO/DATAPATH")?;
                    let sc = Scenario::parse(s)?;
                    o.cell = Some((sc[0], Datapath::parse(d)?));
                }
                other => return Err(format!("unknown option `{other}`\n\n{HELP}")),
            }
        }
        if o.per_core && !o.scenarios.is_empty() {
            return Err(format!("--scenario {} runs alone (not with other scenarios)", per_core::NAME));
        }
        // Many short rounds rather than a few long ones: on a VM the speed
        // of the machine itself flips every few seconds (see
        // docs/benchmarks.md), so cells compared within a round must be
        // close in time, and the median needs many rounds.
        o.rounds = rounds.unwrap_or(if o.quick { 1 } else { 25 });
        o.timing.duration = duration.unwrap_or(Duration::from_millis(if o.quick { 150 } else { 200 }));
        o.timing.warmup = warmup.unwrap_or(Duration::from_millis(50));
        // Keep the canonical order, drop duplicates.
        o.scenarios = if o.scenarios.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            Scenario::ALL.into_iter().filter(|s| o.scenarios.contains(s)).collect()
        };
        if o.datapaths.is_empty() {
            o.datapaths = Datapath::ALL.to_vec();
        } else {
            o.datapaths = Datapath::ALL.into_iter().filter(|d| o.datapaths.contains(d)).collect();
        }
        Ok(o)
    }

    /// Datapaths that can run in this build.
    pub(crate) fn runnable(&self) -> Vec<Datapath> {
        self.datapaths.iter().copied().filter(|d| d.unavailable().is_none()).collect()
    }
}

/// Entry point of `cargo xtask bench`.
///
/// # Errors
/// Bad arguments, a failed release build, or output that cannot be written.
pub(crate) fn run(args: &[String]) -> Result<(), DynError> {
    let opts = Options::parse(args)?;
    if opts.help {
        println!("{HELP}");
        return Ok(());
    }
    if opts.list {
        println!("scenarios:");
        for s in Scenario::ALL {
            println!("  {}", s.name());
        }
        println!("  {} (alone: 1 vs 2 receiving threads, volley)", per_core::NAME);
        println!("datapaths:");
        for d in Datapath::ALL {
            match d.unavailable() {
                None => println!("  {}", d.name()),
                Some(why) => println!("  {} (unavailable: {why})", d.name()),
            }
        }
        return Ok(());
    }
    // Full runs measure optimised code; `--quick` is a smoke test (CI) and
    // runs in whatever build it is, unless `--release` asks otherwise.
    if cfg!(debug_assertions) && !opts.debug_build && (!opts.quick || opts.release) {
        return reexec_release(args);
    }
    if let Some((sc, dp)) = opts.cell {
        return strace::child(sc, dp, &opts);
    }
    if opts.per_core {
        return per_core::run(&opts);
    }

    if let Some(v) = std::env::var_os("VOLLEY_BACKEND") {
        eprintln!("bench: warning: VOLLEY_BACKEND={} is set; volley datapaths use it", v.to_string_lossy());
    }
    let machine = report::Machine::probe();
    if machine.background_busy > 0.10 {
        eprintln!(
            "bench: warning: the machine was {:.0}% busy before the run; figures will be noisy",
            machine.background_busy * 100.0
        );
    }
    let started = Instant::now();
    let results = run_matrix(&opts);
    let mut rep = report::Report::new(&opts, &machine, &results, started.elapsed());
    if opts.strace {
        rep.strace = strace::run(&opts)?;
    }
    print!("{}", rep.markdown());
    std::io::stdout().flush()?;

    std::fs::create_dir_all(&opts.out)?;
    let json_path = opts.out.join("results.json");
    std::fs::write(&json_path, rep.json())?;
    let charts = chart::write_all(&rep, &opts.out)?;
    eprintln!("wrote {}", json_path.display());
    for c in charts {
        eprintln!("wrote {}", c.display());
    }
    // A smoke test must fail loudly: any cell error, or a flow that
    // delivered nothing, fails the command (targets never do).
    let silent: Vec<String> = results
        .iter()
        .flatten()
        .filter(|c| c.received == 0)
        .map(|c| format!("{} x {} delivered nothing", c.scenario.name(), c.datapath.name()))
        .collect();
    if !rep.errors.is_empty() || !silent.is_empty() {
        return Err(
            format!("{} cell error(s), {} empty cell(s): see the report", rep.errors.len(), silent.len()).into()
        );
    }
    Ok(())
}

/// Benchmarks in a debug build measure the optimiser's absence: re-run
/// ourselves through `cargo run --release` with the same arguments.
fn reexec_release(args: &[String]) -> Result<(), DynError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("bench: building and running xtask in release mode (pass --debug-build to skip)");
    let status = std::process::Command::new(cargo)
        .current_dir(workspace_root())
        .args(["run", "--release", "--quiet", "--package", "xtask", "--", "bench", "--debug-build"])
        .args(args)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("release run failed ({status})").into())
    }
}

/// Runs the rounds: each round runs every selected scenario against every
/// runnable datapath. The datapath order rotates by one each round, so no
/// datapath always runs first (right after a scenario switch) or last.
fn run_matrix(opts: &Options) -> Vec<Result<CellResult, String>> {
    let datapaths = opts.runnable();
    for d in &opts.datapaths {
        if let Some(why) = d.unavailable() {
            eprintln!("bench: skipping {}: {why}", d.name());
        }
    }
    let cells = opts.rounds * opts.scenarios.len() * datapaths.len();
    let mut out = Vec::with_capacity(cells);
    let started = Instant::now();
    let mut done = 0usize;
    for round in 0..opts.rounds {
        for &sc in &opts.scenarios {
            for k in 0..datapaths.len() {
                let dp = datapaths[(k + round) % datapaths.len()];
                let elapsed = started.elapsed().as_secs_f64();
                let left = if done == 0 { f64::NAN } else { elapsed / done as f64 * (cells - done) as f64 };
                eprint!(
                    "\r\x1b[K[round {}/{}] cell {}/{}: {} x {}  ({elapsed:.0} s elapsed, ~{left:.0} s left)",
                    round + 1,
                    opts.rounds,
                    done + 1,
                    cells,
                    sc.name(),
                    dp.name(),
                );
                let r = scenario::run_cell(sc, dp, round, &opts.timing, &opts.sock);
                match &r {
                    Err(e) => eprintln!("\r\x1b[Kbench: {e}"),
                    Ok(c) => {
                        for (side, res) in [("sender", &c.tx), ("receiver", &c.rx)] {
                            if let Some(e) = &res.error {
                                eprintln!("\r\x1b[Kbench: {} x {} {side}: {e}", sc.name(), dp.name());
                            }
                        }
                    }
                }
                out.push(r);
                done += 1;
                // Let the previous cell's sockets close and softirqs settle.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    eprintln!("\r\x1b[K[done] {cells} cells in {:.1} s", started.elapsed().as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn rate_takes_plain_and_suffixed_numbers_and_refuses_the_rest() {
        assert_eq!(super::rate("500000"), Ok(500_000));
        assert_eq!(super::rate("500k"), Ok(500_000));
        assert_eq!(super::rate("12M"), Ok(12_000_000));
        assert_eq!(super::rate("1.5M"), Ok(1_500_000));
        for bad in ["", "M", "0", "-3", "fast", "nanM"] {
            assert!(super::rate(bad).is_err(), "{bad}");
        }
    }
}
