//! `volley`: check what a Linux host and a network path do to UDP, the way
//! iperf3 is used for TCP, without writing code.
//!
//! | command | what it does |
//! |---|---|
//! | `volley probe [--json]` | prints what this host's kernel gives a [`volley::Socket`], for IPv4 and IPv6: batched syscalls, GSO/GRO, which metadata is reported, transmit times, the ICMP error queue, path-MTU modes, reuse-port steering, and the buffer limits `net.core.*mem_*` set, each with a line on what it means |
//! | `volley echo --listen ADDR` | a reflector: answers every request from the address it was sent to, with the ECN and DSCP it arrived with, and says in the reply what the request arrived with |
//! | `volley blast --to ADDR` | load against an echo (GSO trains, `sendmmsg` batches, optional pacing) with a live progress line; reports datagrams/s, Gbit/s, round-trip loss by sequence number, kernel drops at both ends, RTT percentiles, and what happened to the ECN/DSCP marks |
//! | `volley listen --listen ADDR` | prints every datagram that arrives, from any sender (Python's socket module, `nc -u`, ...), one line each (`key=value`, or `--json` lines): source, local address, interface name and index, ECN, DSCP, TTL, length, place in a GRO train, truncation, kernel timestamp, drops, original destination (TPROXY); optional multicast groups (`--join GROUP[@IFACE]`) and `--reuse-port`; a summary per ECN codepoint and DSCP on exit (`--count`, `--timeout`, Ctrl-C) |
//! | `volley path --to ADDR` | against an echo: does each ECN codepoint survive (or is it bleached, re-marked, dropped), do DSCP EF/AF41/CS1 survive, both ways, and the path MTU found by a DF-set binary search |
//!
//! Every wait is bounded (`--timeout`, default 2 s): against an absent peer
//! `path` and `blast` say "no reply from ADDR within 2 s", or sooner, "ICMP
//! port unreachable", when the peer's host says nothing listens.
//!
//! # Exit status
//!
//! `0` success; `1` an error (bad address, bind failure, no reply, failed
//! send); `2` a usage error; `3` the run worked but found a problem: a mark
//! not preserved by the path, or loss above `blast --max-loss`.
//!
//! # The wire format
//!
//! `blast` and `path` send requests in the versioned format of the [`wire`]
//! module (magic `VLY1`: sequence number, timestamp, the TOS byte set), and
//! `echo` answers with the sequence number, the TOS byte and TTL the request
//! arrived with, its length, and the echo socket's kernel drop counter. The
//! layout is documented there, byte by byte, so other tools can speak it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::process::ExitCode;

use clap::Parser as _;

#[macro_use]
mod macros {
    /// `println!` that does not panic when stdout is closed early (`volley
    /// probe | head`): output is best effort, the exit status tells the
    /// outcome.
    macro_rules! outln {
        ($($arg:tt)*) => {{
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout().lock(), $($arg)*);
        }};
    }
}

mod blast;
mod cli;
mod client;
mod echo;
mod listen;
mod path;
mod probe;
mod util;
pub mod wire;

/// Writes `text` to stdout; a closed pipe is not an error.
fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// How a run that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitStatus {
    /// Everything checked out: exit status 0.
    Success,
    /// The run worked but found a problem: exit status 3.
    Problem,
}

/// Parses the command line, runs the subcommand, and maps the outcome to
/// the exit status (see the crate docs). What the binary's `main` calls.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match &cli.command {
        cli::Command::Probe(a) => probe::run(a),
        cli::Command::Echo(a) => echo::run(a),
        cli::Command::Blast(a) => blast::run(a),
        cli::Command::Path(a) => path::run(a),
        cli::Command::Listen(a) => listen::run(a),
    };
    match result {
        Ok(ExitStatus::Success) => ExitCode::SUCCESS,
        Ok(ExitStatus::Problem) => ExitCode::from(3),
        Err(e) => {
            // `{:#}`: the context chain, `: `-separated (volley's errors
            // state their OS error once, not again as `source()`).
            eprintln!("volley: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
