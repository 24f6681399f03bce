//! `--strace`: rerun short cells under `strace -c -f` and compare strace's
//! count of data-path syscalls with the counters inside each datapath. The
//! child is this binary with `--internal-cell SCENARIO/DATAPATH`; it prints
//! one `STRACE-CELL` line with its own counts.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use super::json::Ordered;
use super::scenario::{self, Datapath, Scenario, Timing};
use super::Options;
use crate::DynError;

/// Syscalls that belong to a datapath's send/receive/wait loop.
const DATA_SYSCALLS: [&str; 13] = [
    "sendto",
    "sendmsg",
    "sendmmsg",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "poll",
    "ppoll",
    "select",
    "pselect6",
];

/// One cell run under strace.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) datapath: String,
    /// Datagrams delivered in the whole (child) run.
    pub(crate) received: u64,
    /// Our counters, both sides, whole run.
    pub(crate) counted: u64,
    /// strace's count of [`DATA_SYSCALLS`], all threads.
    pub(crate) traced: u64,
    /// strace's per-syscall counts of [`DATA_SYSCALLS`].
    pub(crate) by_name: Vec<(String, u64)>,
    pub(crate) error: Option<String>,
}

/// The child: run one cell and print our counts.
pub(crate) fn child(sc: Scenario, dp: Datapath, opts: &Options) -> Result<(), DynError> {
    let c = scenario::run_cell(sc, dp, 0, &opts.timing, &opts.sock)?;
    println!(
        "STRACE-CELL sent={} received={} tx_syscalls={} rx_syscalls={}",
        c.sent, c.received, c.tx.total_syscalls, c.rx.total_syscalls
    );
    Ok(())
}

/// Runs every selected cell but echo under `strace -c -f` (short windows).
pub(crate) fn run(opts: &Options) -> Result<Vec<Row>, DynError> {
    let exe = std::env::current_exe()?;
    std::fs::create_dir_all(&opts.out)?;
    let timing = Timing {
        warmup: Duration::from_millis(50),
        duration: Duration::from_millis(300),
        pin: opts.timing.pin,
        rate: opts.timing.rate,
    };
    let mut rows = Vec::new();
    for &sc in opts.scenarios.iter().filter(|s| **s != Scenario::Echo) {
        for &dp in &opts.runnable() {
            eprint!("\r\x1b[K[strace] {} x {}", sc.name(), dp.name());
            let file = opts.out.join(format!("strace-{}-{}.txt", sc.name(), dp.name()));
            let out = Command::new("strace")
                .arg("-f")
                .arg("-c")
                .arg("-o")
                .arg(&file)
                .arg("--")
                .arg(&exe)
                .args(["bench", "--debug-build", "--internal-cell"])
                .arg(format!("{}/{}", sc.name(), dp.name()))
                .args(["--warmup-ms", &timing.warmup.as_millis().to_string()])
                .args(["--duration-ms", &timing.duration.as_millis().to_string()])
                .args(if timing.pin { &[][..] } else { &["--no-pin"][..] })
                .output();
            let mut row = Row {
                scenario: sc.name(),
                datapath: dp.name().into(),
                received: 0,
                counted: 0,
                traced: 0,
                by_name: Vec::new(),
                error: None,
            };
            match out {
                Err(e) => row.error = Some(format!("cannot run strace: {e}")),
                Ok(o) if !o.status.success() => {
                    row.error = Some(format!("child failed: {}", String::from_utf8_lossy(&o.stderr).trim()));
                }
                Ok(o) => {
                    let stdout = String::from_utf8_lossy(&o.stdout);
                    let field = |name: &str| -> u64 {
                        stdout
                            .lines()
                            .find(|l| l.starts_with("STRACE-CELL"))
                            .and_then(|l| {
                                l.split_whitespace().find_map(|kv| {
                                    kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')).and_then(|v| v.parse().ok())
                                })
                            })
                            .unwrap_or(0)
                    };
                    row.received = field("received");
                    row.counted = field("tx_syscalls") + field("rx_syscalls");
                    match std::fs::read_to_string(&file) {
                        Ok(summary) => {
                            row.by_name = parse_summary(&summary);
                            row.traced = row.by_name.iter().map(|(_, n)| n).sum();
                        }
                        Err(e) => row.error = Some(format!("{}: {e}", file.display())),
                    }
                }
            }
            rows.push(row);
        }
    }
    eprintln!("\r\x1b[K[strace] done");
    Ok(rows)
}

/// The data-path rows of a `strace -c` summary: `% time  seconds
/// usecs/call  calls  [errors]  syscall`.
fn parse_summary(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let name = *t.last()?;
            if t.len() < 5 || !DATA_SYSCALLS.contains(&name) {
                return None;
            }
            Some((name.to_string(), t[3].parse().ok()?))
        })
        .collect()
}

fn per_k(n: u64, d: u64) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.1}", n as f64 * 1000.0 / d as f64)
    }
}

pub(crate) fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "## strace cross-check\n\nShort cells (50 ms warm-up, 300 ms window) rerun under `strace -c -f`; \
         syscalls per 1000 delivered datagrams, both sides and the whole run, counted by the harness \
         vs. strace's count of send/recv/epoll syscalls (all threads). strace slows every syscall, so \
         absolute rates differ from the main run; the per-datagram counts should agree.\n\n\
         | scenario | datapath | delivered | harness sys/1k | strace sys/1k | strace by syscall |\n|---|---|--:|--:|--:|---|\n",
    );
    for r in rows {
        let by: Vec<String> = r.by_name.iter().map(|(n, c)| format!("{n} {c}")).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.datapath,
            r.received,
            per_k(r.counted, r.received),
            per_k(r.traced, r.received),
            r.error.clone().unwrap_or_else(|| by.join(", "))
        );
    }
    s.push('\n');
    s
}

/// One row of `results.json`'s `strace` array.
#[derive(Debug, Serialize)]
pub(crate) struct RowJson<'a> {
    scenario: &'a str,
    datapath: &'a str,
    received: u64,
    harness_syscalls: u64,
    strace_syscalls: u64,
    strace_by_syscall: Ordered<&'a str, u64>,
    error: Option<&'a str>,
}

pub(crate) fn json(rows: &[Row]) -> Vec<RowJson<'_>> {
    rows.iter()
        .map(|r| RowJson {
            scenario: &r.scenario,
            datapath: &r.datapath,
            received: r.received,
            harness_syscalls: r.counted,
            strace_syscalls: r.traced,
            strace_by_syscall: Ordered(r.by_name.iter().map(|(n, c)| (n.as_str(), *c)).collect()),
            error: r.error.as_deref(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strace_summary() {
        let text = "% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.006000           6      1000           sendmsg
 30.00    0.003000           3       900       100 recvmmsg
  5.00    0.000500           5       100           epoll_wait
  5.00    0.000500           5       100           mmap
------ ----------- ----------- --------- --------- ----------------
100.00    0.010000           4      2100       100 total
";
        let rows = parse_summary(text);
        assert_eq!(
            rows,
            [("sendmsg".to_string(), 1000), ("recvmmsg".to_string(), 900), ("epoll_wait".to_string(), 100)]
        );
    }
}
