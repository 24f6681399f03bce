//! Project automation, run as `cargo xtask <command>` (the alias lives in
//! `.cargo/config.toml`), one module per command:
//!
//! - `cargo xtask ci`: exactly what CI runs ([`mod@ci`]).
//! - `cargo xtask bench`: every scenario against every datapath, interleaved
//!   rounds, medians and within-round ratios; markdown on stdout, JSON and
//!   SVG under `target/bench/` ([`mod@bench`]).
//! - `cargo xtask mutants`: mutation testing of the core with cargo-mutants,
//!   whole or one shard ([`mod@mutants`]).
//!
//! The only `unsafe` is in `bench/raw.rs` (the libc datapath, `getrusage`;
//! the counting allocator is `volley_tests::alloc`); everything else is
//! checked by
//! `#![deny(unsafe_code)]`.
#![deny(unsafe_code)]

mod bench;
mod ci;
mod mutants;
mod wine;

use std::process::ExitCode;

/// The error every command returns: printed by `main`, exit status 1.
pub(crate) type DynError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: cargo xtask <command> [args]

commands:
  ci      run what CI runs
  bench   run the datapath benchmarks (cargo xtask bench --help)
  mutants mutation testing of the core (cargo xtask mutants --help)";

fn main() -> ExitCode {
    // cargo-mutants runs this binary as its cargo (see `mutants`).
    if let Some(real_cargo) = std::env::var_os(mutants::SHIM_ENV) {
        return mutants::shim(real_cargo);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let result = match command.as_str() {
        "bench" => bench::run(rest),
        "ci" => ci::run(rest),
        "mutants" => mutants::run(rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
