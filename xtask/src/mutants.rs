//! `cargo xtask mutants`: mutation testing of the core with cargo-mutants.
//!
//! Every mutant cargo-mutants makes of `crates/volley/src` (outside
//! `#[cfg(test)]` code) is built and judged by the core's unit tests, the
//! `codec_props` property tests, the core's doctests and the volley-tests
//! targets that run in seconds as root (`loopback`, `bad_input`, `options`,
//! `reliability`, `alloc`, `stats`, `blocking`, `adopt`). Which targets,
//! and which mutants are excluded as equivalent (each with why), is in
//! `.cargo/mutants.toml`, so a plain `cargo mutants` uses the same set,
//! minus the doctests.
//!
//! ```text
//! cargo xtask mutants                      # every mutant (long: see docs/reliability.md)
//! cargo xtask mutants --shard 3/24         # one slice of 24
//! cargo xtask mutants --rotate 24          # one slice, chosen from the commit (CI)
//! cargo xtask mutants --file 'crates/volley/src/sys/cmsg.rs' -- --re 'decode'
//! ```
//!
//! # Doctests
//!
//! cargo-mutants runs one `cargo test` per mutant, and cargo refuses to mix
//! `--doc` with `--lib` / `--test`. So this command hands cargo-mutants this
//! very binary as `$CARGO`: called with `VOLLEY_MUTANTS_CARGO` set, it is a
//! pass-through to the real cargo, except that after a successful
//! `cargo test` (not `--no-run`) it runs `cargo test --doc` for the same
//! packages and features. A mutant is caught if either fails.
//!
//! It installs nothing: without cargo-mutants it says how to install it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::DynError;

/// Real misses not yet covered by a test, one name a line as `--list
/// --line-col=false` prints it (or with `line:col` where the name alone is
/// ambiguous, as for mutants in a `const`).
const KNOWN_GAPS: &str = ".cargo/mutants-known-gaps.txt";

/// Set to the real cargo when this binary runs as cargo-mutants' `$CARGO`.
pub(crate) const SHIM_ENV: &str = "VOLLEY_MUTANTS_CARGO";

const INSTALL: &str = "cargo-mutants is not installed: `cargo install --locked cargo-mutants` \
                       (this command was written against 27.1.0)";

const HELP: &str = "usage: cargo xtask mutants [--shard K/N | --rotate N] [--list] [--file GLOB]... [-- ARGS]

Mutation testing of crates/volley/src with cargo-mutants (configuration and
the equivalent-mutant exclusions: .cargo/mutants.toml). Prints the score
(caught / (caught + missed)) and the missed mutants; fails if any is missed.

  --shard K/N    run only slice K (0-based) of N
  --rotate N     run one slice of N, picked from the commit hash (CI): slice
                 = (first 8 hex digits of HEAD) mod N; VOLLEY_MUTANTS_SHARD=K
                 overrides
  --list         list the mutants that would run, run nothing
  --file GLOB    only mutants in files matching GLOB (repeatable)
  -- ARGS        passed to cargo-mutants as they are (e.g. -- --re 'cmsg')

Output (logs, caught.txt, missed.txt, ...) goes to target/mutants/mutants.out.";

/// Runs cargo-mutants over the core.
///
/// # Errors
/// Bad arguments, cargo-mutants missing, or a run that missed mutants.
pub(crate) fn run(args: &[String]) -> Result<(), DynError> {
    let mut shard: Option<String> = None;
    let mut rotate: Option<u32> = None;
    let mut list = false;
    let mut extra: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--shard" => shard = Some(it.next().ok_or("--shard needs K/N")?.clone()),
            "--rotate" => {
                let n: u32 = it.next().ok_or("--rotate needs N")?.parse()?;
                if n == 0 {
                    return Err("--rotate needs N >= 1".into());
                }
                rotate = Some(n);
            }
            "--list" => list = true,
            "--file" => {
                extra.push("--file".into());
                extra.push(it.next().ok_or("--file needs a glob")?.clone());
            }
            "--" => extra.extend(it.by_ref().cloned()),
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{HELP}").into()),
        }
    }
    if let Some(n) = rotate {
        if shard.is_some() {
            return Err("--shard and --rotate exclude each other".into());
        }
        let k = match std::env::var("VOLLEY_MUTANTS_SHARD") {
            Ok(k) => k.parse::<u32>()? % n,
            Err(_) => rotation_seed() % n,
        };
        shard = Some(format!("{k}/{n}"));
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("xtask has no parent directory")?;
    match Command::new("cargo-mutants").args(["mutants", "--version"]).output() {
        Ok(out) if out.status.success() => {
            print!("=== xtask mutants: {}", String::from_utf8_lossy(&out.stdout));
        }
        _ => return Err(INSTALL.into()),
    }
    let real_cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let out_dir = target.join("mutants");

    let mut cmd = Command::new("cargo-mutants");
    cmd.arg("mutants").arg("--package").arg("volley").arg("--output").arg(&out_dir);
    if list {
        cmd.arg("--list").arg("--line-col=false");
    }
    if let Some(s) = &shard {
        cmd.arg("--shard").arg(s);
        println!("=== shard {s}");
    }
    cmd.args(&extra).current_dir(root);
    cmd.env("CARGO", std::env::current_exe()?).env(SHIM_ENV, &real_cargo);
    // Each cargo-mutants job builds in its own scratch copy with its own
    // target directory. A shared one is wrong: cargo names the core's
    // artifacts the same in every copy, so with `-j 2` one job's mutant
    // overwrote the other's between its build and its tests.
    cmd.env_remove("CARGO_TARGET_DIR");
    let started = Instant::now();
    let status = cmd.status()?;
    if list {
        return if status.success() { Ok(()) } else { Err(format!("cargo-mutants --list failed ({status})").into()) };
    }
    let elapsed = started.elapsed();
    let outcomes = out_dir.join("mutants.out");
    let read = |name: &str| -> Vec<String> {
        std::fs::read_to_string(outcomes.join(name))
            .map(|s| s.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let (caught, missed, unviable, timeout) =
        (read("caught.txt"), read("missed.txt"), read("unviable.txt"), read("timeout.txt"));
    let judged = caught.len() + missed.len();
    println!(
        "\n=== xtask mutants{}: {} caught, {} missed, {} unviable, {} timed out in {:.0?}",
        shard.as_deref().map(|s| format!(" (shard {s})")).unwrap_or_default(),
        caught.len(),
        missed.len(),
        unviable.len(),
        timeout.len(),
        elapsed
    );
    // Integer per-mille, rounded down: no float formatting surprises.
    if let Some(permille) = (caught.len() * 1000).checked_div(judged) {
        println!("=== score: {}.{}% of {judged} viable mutants caught", permille / 10, permille % 10);
    }
    // Known gaps: real misses not yet covered, listed (without line numbers)
    // in a checked-in file and in docs/reliability.md; they count in the
    // score but do not fail the run. Any other miss does.
    let known: Vec<String> = std::fs::read_to_string(root.join(KNOWN_GAPS))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let mut new_misses = 0;
    for m in &missed {
        if known.iter().any(|k| k == m || *k == without_line_col(m)) {
            println!("MISSED  {m}  (known gap, {KNOWN_GAPS})");
        } else {
            println!("MISSED  {m}");
            new_misses += 1;
        }
    }
    for m in &timeout {
        println!("TIMEOUT {m}");
    }
    println!("=== details: {}", outcomes.display());
    if new_misses > 0 {
        return Err(format!(
            "{new_misses} mutant(s) missed that are not known gaps: add a test that fails on each, or, if it \
             cannot change behaviour, an exclusion with why in .cargo/mutants.toml"
        )
        .into());
    }
    if !status.success() && timeout.is_empty() {
        // Not a miss and not a timeout: the baseline or the tool failed.
        return Err(format!("cargo-mutants failed ({status})").into());
    }
    Ok(())
}

/// `path:line:col: description` without the `line:col`, as `--list
/// --line-col=false` prints it.
fn without_line_col(name: &str) -> String {
    let mut parts = name.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(path), Some(line), Some(col), Some(rest))
            if line.parse::<u32>().is_ok() && col.parse::<u32>().is_ok() =>
        {
            format!("{path}:{rest}")
        }
        _ => name.to_owned(),
    }
}

/// The CI rotation: the first 8 hex digits of `HEAD`, or the day number
/// when git is unavailable.
fn rotation_seed() -> u32 {
    let head = Command::new("git").args(["rev-parse", "HEAD"]).output().ok().filter(|o| o.status.success());
    head.and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|h| u32::from_str_radix(h.get(..8)?, 16).ok())
        .unwrap_or_else(|| {
            let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
            u32::try_from(days % u64::from(u32::MAX)).unwrap_or(0)
        })
}

/// This binary as cargo-mutants' `$CARGO`: runs the real cargo with the
/// same arguments; after a successful `cargo test` that ran tests, also the
/// doctests of the same packages and features.
pub(crate) fn shim(real_cargo: OsString) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = |status: std::io::Result<std::process::ExitStatus>| match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(u8::try_from(s.code().unwrap_or(101)).unwrap_or(101)),
        Err(e) => {
            eprintln!("xtask mutants shim: cannot run {}: {e}", real_cargo.to_string_lossy());
            ExitCode::from(101)
        }
    };
    let args = with_test_packages(args);
    let first = Command::new(&real_cargo).args(&args).env_remove(SHIM_ENV).status();
    let runs_tests = args.first().is_some_and(|a| a == "test") && !args.iter().any(|a| a == "--no-run");
    if !runs_tests || !first.as_ref().is_ok_and(|s| s.success()) {
        return code(first);
    }
    code(Command::new(&real_cargo).args(doc_args(&args)).env_remove(SHIM_ENV).status())
}

/// cargo-mutants builds and tests its unmutated baseline with the mutated
/// package only, not `test_package` from `.cargo/mutants.toml`, so the
/// volley-tests targets named there are not found: a `cargo test` for the
/// core gets volley-tests added when it lacks it.
fn with_test_packages(mut args: Vec<String>) -> Vec<String> {
    let is_test = args.first().is_some_and(|a| a == "test");
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let packages: Vec<&String> = args[..end].iter().filter(|a| a.starts_with("--package=")).collect();
    let core_only = packages.iter().any(|a| a.starts_with("--package=volley@") || *a == "--package=volley")
        && !packages.iter().any(|a| a.starts_with("--package=volley-tests"));
    if is_test && core_only {
        args.insert(end, "--package=volley-tests".into());
    }
    args
}

/// `cargo test ...` arguments turned into the doctest run: target selectors
/// (`--lib`, `--test NAME`, ...) and test-binary arguments dropped, `--doc`
/// added; packages, features, profile and verbosity kept.
fn doc_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--" => break,
            "--lib" | "--bins" | "--tests" | "--examples" | "--benches" | "--all-targets" => {}
            "--test" | "--bin" | "--example" | "--bench" => {
                it.next();
            }
            s if ["--test=", "--bin=", "--example=", "--bench="].iter().any(|p| s.starts_with(p)) => {}
            _ => out.push(a.clone()),
        }
    }
    out.push("--doc".into());
    out
}

#[cfg(test)]
mod tests {
    use super::{doc_args, with_test_packages, without_line_col};

    #[test]
    fn names_lose_only_line_and_column() {
        assert_eq!(
            without_line_col("crates/volley/src/meta.rs:77:9: replace Ecn::bits -> u8 with 1"),
            "crates/volley/src/meta.rs: replace Ecn::bits -> u8 with 1"
        );
        let plain = "crates/volley/src/meta.rs: replace Ecn::bits -> u8 with 1";
        assert_eq!(without_line_col(plain), plain);
    }

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn baseline_gets_the_test_package() {
        let base = strings(&["test", "--no-run", "--package=volley@0.1.0", "--lib"]);
        assert_eq!(
            with_test_packages(base),
            strings(&["test", "--no-run", "--package=volley@0.1.0", "--lib", "--package=volley-tests"])
        );
        let mutant = strings(&["test", "--package=volley@0.1.0", "--package=volley-tests@0.0.0", "--lib"]);
        assert_eq!(with_test_packages(mutant.clone()), mutant);
        let meta = strings(&["metadata", "--package=volley@0.1.0"]);
        assert_eq!(with_test_packages(meta.clone()), meta);
    }

    #[test]
    fn doc_args_keep_packages_and_features_and_drop_targets() {
        let args: Vec<String> = [
            "test",
            "--verbose",
            "--package=volley@0.1.0",
            "--all-features",
            "--lib",
            "--test",
            "loopback",
            "--test=alloc",
            "--",
            "--skip",
            "x",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(doc_args(&args), ["test", "--verbose", "--package=volley@0.1.0", "--all-features", "--doc"]);
    }
}
