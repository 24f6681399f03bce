//! `cargo xtask ci`: exactly what CI runs, in order, stopping at the first
//! failure. `.ci/run` installs the system tools and calls this.
//!
//! Steps: format, clippy (warnings are errors), the whole test suite on the
//! best backend, the whole suite again forced onto the portable backend
//! (`VOLLEY_BACKEND=portable`), docs with warnings as errors, the core's
//! tests and the socket integration tests under AddressSanitizer (nightly),
//! the core's socket-free tests under Miri (nightly),
//! a seconds-long run of each fuzz target (needs `cargo-fuzz`; `cmsg_decode`
//! starts from the checked-in `fuzz/seeds/`), one shard of the mutation run
//! (needs `cargo-mutants`; see `mutants.rs`), a seconds-long benchmark
//! smoke run (and one of `--scenario per-core`), then the cross-target checks (clippy with warnings as errors
//! on macOS, iOS, FreeBSD and Android, which also type-checks: lib, tests
//! and examples of volley, volley-tokio and volley-cli) and the MSRV check
//! (`cargo +1.85.0 check`), then the Windows tests under Wine
//! (`wine.rs`). `--fast` keeps only the first five; `--cross` runs only
//! the cross-target and MSRV checks; `--wine` only the Wine step.
//!
//! A cross-target check whose target or toolchain rustup has not
//! installed is skipped with one `SKIPPED:` line in the final summary,
//! never silently; the rest of CI still runs.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::DynError;

/// One step: a title, the program and its arguments, extra environment,
/// the directory to run in, and whether `--fast` skips it.
struct Step {
    title: &'static str,
    program: Program,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    dir: &'static str,
    slow: bool,
    /// A failure fails CI. A step that does not gate reports its failure
    /// in the final summary (`NOT GATING:`) and CI goes on.
    gates: bool,
}

/// `Cargo` is the cargo running xtask (the pinned toolchain); `Rustup` is
/// the rustup proxy, so `+nightly` works.
#[derive(Clone, Copy)]
enum Program {
    Cargo,
    Rustup,
}

const ASAN_ENV: &[(&str, &str)] = &[
    ("RUSTFLAGS", "-Zsanitizer=address"),
    ("RUSTDOCFLAGS", "-Zsanitizer=address"),
    ("CARGO_TARGET_DIR", "target/asan"),
    ("ASAN_OPTIONS", "detect_leaks=0"),
];

const STEPS: &[Step] = &[
    Step {
        title: "format",
        program: Program::Cargo,
        args: &["fmt", "--all", "--", "--check"],
        env: &[],
        dir: ".",
        slow: false,
        gates: true,
    },
    Step {
        title: "clippy",
        program: Program::Cargo,
        args: &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
        env: &[],
        dir: ".",
        slow: false,
        gates: true,
    },
    Step {
        title: "tests (best backend)",
        program: Program::Cargo,
        args: &["test", "--workspace", "--all-features"],
        env: &[],
        dir: ".",
        slow: false,
        gates: true,
    },
    Step {
        title: "tests (portable backend forced)",
        program: Program::Cargo,
        args: &["test", "--workspace", "--all-features"],
        env: &[("VOLLEY_BACKEND", "portable")],
        dir: ".",
        slow: false,
        gates: true,
    },
    Step {
        title: "docs",
        program: Program::Cargo,
        args: &["doc", "--workspace", "--no-deps", "--all-features"],
        env: &[("RUSTDOCFLAGS", "-Dwarnings")],
        dir: ".",
        slow: false,
        gates: true,
    },
    // The LD_PRELOAD fault shim cannot load ahead of the ASan runtime, so
    // the lab's fault tests are left to the plain runs above.
    Step {
        title: "AddressSanitizer",
        program: Program::Rustup,
        args: &[
            "+nightly",
            "test",
            "--target",
            "x86_64-unknown-linux-gnu",
            "-p",
            "volley",
            "-p",
            "volley-tests",
            "--all-features",
            "--lib",
            "--tests",
            "--",
            "--skip",
            "faults::",
        ],
        env: ASAN_ENV,
        dir: ".",
        slow: true,
        gates: true,
    },
    // Undefined behaviour in the unsafe code that needs no socket: the
    // control-message codec, the GRO splitter, RecvBatch, validation, and
    // the receive path driven by a fake kernel (sys::recv::tests). Isolation off
    // only for proptest's failure-persistence file lookup.
    Step {
        title: "Miri (core unit tests, codec properties)",
        program: Program::Rustup,
        args: &[
            "+nightly",
            "miri",
            "test",
            "-p",
            "volley",
            "--features",
            "fuzzing,bytes",
            "--lib",
            "--test",
            "codec_props",
        ],
        env: &[("MIRIFLAGS", "-Zmiri-disable-isolation")],
        dir: ".",
        slow: true,
        gates: true,
    },
    Step {
        title: "fuzz cmsg_decode (10 s)",
        program: Program::Rustup,
        args: &[
            "+nightly",
            "fuzz",
            "run",
            "-O",
            "cmsg_decode",
            "corpus/cmsg_decode",
            "seeds/cmsg_decode",
            "--",
            "-max_total_time=10",
            "-max_len=512",
        ],
        env: &[],
        dir: "fuzz",
        slow: true,
        gates: true,
    },
    Step {
        title: "fuzz gro_split (10 s)",
        program: Program::Rustup,
        args: &["+nightly", "fuzz", "run", "-O", "gro_split", "--", "-max_total_time=10", "-max_len=4096"],
        env: &[],
        dir: "fuzz",
        slow: true,
        gates: true,
    },
    // One slice of 32 of the mutation run over the whole core, picked from
    // the commit hash, so successive commits cover every mutant. It gates:
    // a missed mutant that is not a listed known gap
    // (.cargo/mutants-known-gaps.txt) fails CI. Every file has had its full
    // run and every miss was triaged (docs/reliability.md).
    Step {
        title: "mutation testing, one slice of 32 over the core (cargo-mutants)",
        program: Program::Cargo,
        args: &["xtask", "mutants", "--rotate", "32"],
        env: &[],
        dir: ".",
        slow: true,
        gates: true,
    },
    Step {
        title: "bench smoke run",
        program: Program::Cargo,
        args: &["xtask", "bench", "--quick"],
        env: &[],
        dir: ".",
        slow: true,
        gates: true,
    },
    Step {
        title: "bench smoke run, one socket per core",
        program: Program::Cargo,
        args: &["xtask", "bench", "--scenario", "per-core", "--quick"],
        env: &[],
        dir: ".",
        slow: true,
        gates: true,
    },
];

/// Targets compiled and linted (not run) by the cross-target checks: each
/// needs only `rustup target add`, no foreign linker or C compiler.
const CROSS_TARGETS: &[&str] = &[
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "aarch64-apple-ios",
    "x86_64-unknown-freebsd",
    "aarch64-linux-android",
    "x86_64-pc-windows-msvc",
    "aarch64-pc-windows-msvc",
];

/// The workspace's `rust-version`.
const MSRV: &str = "1.85.0";

/// Runs the CI steps.
///
/// # Errors
/// The first step that fails, by name.
pub(crate) fn run(args: &[String]) -> Result<(), DynError> {
    let fast = args.iter().any(|a| a == "--fast");
    let cross_only = args.iter().any(|a| a == "--cross");
    let wine_only = args.iter().any(|a| a == "--wine");
    if let Some(bad) = args.iter().find(|a| !matches!(a.as_str(), "--fast" | "--cross" | "--wine")) {
        return Err(format!("unknown argument `{bad}` (only --fast, --cross, --wine)").into());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("xtask has no parent directory")?;
    if wine_only {
        let mut skipped = Vec::new();
        crate::wine::run(root, &pinned_toolchain(root)?, &mut skipped)?;
        for s in &skipped {
            println!("SKIPPED: {s}");
        }
        return Ok(());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // As root, the network-namespace lab (and strace, tc) must run, not skip:
    // the same rule .ci/run sets, so `cargo xtask ci` is exactly CI.
    let require_lab = std::env::var_os("VOLLEY_REQUIRE_LAB").is_none() && is_root();
    if require_lab {
        println!("=== running as root: VOLLEY_REQUIRE_LAB=1 (lab tests fail instead of skipping)");
    }
    // libFuzzer writes to the first corpus directory (gitignored) and needs
    // it to exist; the checked-in seeds are the second, read-only one.
    if !fast {
        std::fs::create_dir_all(root.join("fuzz/corpus/cmsg_decode"))?;
    }
    let total = Instant::now();
    let mut not_gating = Vec::new();
    for step in STEPS.iter().filter(|s| !(cross_only || fast && s.slow)) {
        let program = match step.program {
            Program::Cargo => cargo.as_str(),
            Program::Rustup => "cargo",
        };
        println!("\n=== xtask ci: {} ({program} {})", step.title, step.args.join(" "));
        let started = Instant::now();
        let mut cmd = Command::new(program);
        cmd.args(step.args).envs(step.env.iter().copied()).current_dir(root.join(step.dir));
        if require_lab {
            cmd.env("VOLLEY_REQUIRE_LAB", "1");
        }
        if let Program::Rustup = step.program {
            // Let rustup pick the toolchain from `+nightly`, not the pinned one.
            cmd.env_remove("RUSTUP_TOOLCHAIN").env_remove("CARGO").env_remove("RUSTC");
        }
        let status = cmd.status()?;
        println!("=== {} took {:.0?}", step.title, started.elapsed());
        if !status.success() {
            if step.gates {
                return Err(format!("step `{}` failed ({status})", step.title).into());
            }
            not_gating.push(format!("{} failed ({status}): see its output above", step.title));
        }
    }
    for s in &not_gating {
        println!("NOT GATING: {s}");
    }
    let mut skipped = Vec::new();
    if !fast {
        cross_checks(root, &mut skipped)?;
    }
    if !fast && !cross_only {
        crate::wine::run(root, &pinned_toolchain(root)?, &mut skipped)?;
    }
    for s in &skipped {
        println!("SKIPPED: {s}");
    }
    println!("\n=== xtask ci: all steps passed in {:.0?}", total.elapsed());
    Ok(())
}

/// A `cargo` run through rustup's proxy with `toolchain` (`+1.95.0`), not
/// the one running xtask.
pub(crate) fn rustup_cargo(root: &Path, toolchain: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg(format!("+{toolchain}")).args(args).current_dir(root);
    cmd.env_remove("RUSTUP_TOOLCHAIN").env_remove("CARGO").env_remove("RUSTC");
    cmd
}

/// The output of `rustup <args>`, or why it could not run.
pub(crate) fn rustup(args: &[&str]) -> Result<String, String> {
    let out = Command::new("rustup").args(args).output().map_err(|e| format!("rustup: {e}"))?;
    if !out.status.success() {
        return Err(format!("rustup {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cross-target clippy runs and the MSRV check; what cannot run here
/// (target or toolchain not installed) goes into `skipped`.
fn cross_checks(root: &Path, skipped: &mut Vec<String>) -> Result<(), DynError> {
    let pinned = pinned_toolchain(root)?;
    match rustup(&["target", "list", "--installed", "--toolchain", &pinned]) {
        Err(why) => skipped.push(format!("cross-target checks: {why}")),
        Ok(installed) => {
            let installed: Vec<&str> = installed.lines().map(str::trim).collect();
            let missing: Vec<&str> = CROSS_TARGETS.iter().copied().filter(|t| !installed.contains(t)).collect();
            if !missing.is_empty() {
                skipped.push(format!(
                    "cross-target checks: {} not installed (rustup target add --toolchain {pinned} {})",
                    missing.join(", "),
                    missing.join(" ")
                ));
            }
            for target in CROSS_TARGETS.iter().filter(|t| !missing.contains(t)) {
                // volley and the CLI: everything but benches (criterion is a
                // Linux-only dev-dependency). volley-tokio: the library with
                // every feature; its tests and example need `ring` (quinn's
                // and rcgen's TLS dev-dependencies), a C build that needs a
                // C compiler for the target.
                let core = [
                    "clippy",
                    "--target",
                    target,
                    "-p",
                    "volley",
                    "-p",
                    "volley-cli",
                    "--all-features",
                    "--lib",
                    "--bins",
                    "--tests",
                    "--examples",
                    "--",
                    "-D",
                    "warnings",
                ];
                let tokio = [
                    "clippy",
                    "--target",
                    target,
                    "-p",
                    "volley-tokio",
                    "-p",
                    "volley-metrics",
                    "--all-features",
                    "--lib",
                    "--",
                    "-D",
                    "warnings",
                ];
                let started = Instant::now();
                run_step(
                    &format!("clippy {target}: volley, volley-cli (lib, bins, tests, examples)"),
                    rustup_cargo(root, &pinned, &core),
                )?;
                run_step(
                    &format!("clippy {target}: volley-tokio, volley-metrics (lib)"),
                    rustup_cargo(root, &pinned, &tokio),
                )?;
                println!("=== {target} took {:.0?}", started.elapsed());
            }
        }
    }
    let msrv_installed = rustup(&["toolchain", "list"]).map(|l| l.lines().any(|t| t.starts_with(MSRV)));
    match msrv_installed {
        Ok(true) => {
            let args = [
                "check",
                "-p",
                "volley",
                "-p",
                "volley-tokio",
                "-p",
                "volley-metrics",
                "-p",
                "volley-cli",
                "--all-features",
            ];
            run_step(&format!("MSRV check (cargo +{MSRV} check)"), rustup_cargo(root, MSRV, &args))?;
        }
        Ok(false) => {
            skipped.push(format!("MSRV check: toolchain {MSRV} not installed (rustup toolchain install {MSRV})"))
        }
        Err(why) => skipped.push(format!("MSRV check: {why}")),
    }
    Ok(())
}

/// Runs one step, timed; an error names it.
fn run_step(title: &str, mut cmd: Command) -> Result<(), DynError> {
    println!("\n=== xtask ci: {title}");
    let started = Instant::now();
    let status = cmd.status()?;
    println!("=== {title} took {:.0?}", started.elapsed());
    if !status.success() {
        return Err(format!("step `{title}` failed ({status})").into());
    }
    Ok(())
}

/// The `channel` of `rust-toolchain.toml` (the pinned toolchain).
fn pinned_toolchain(root: &Path) -> Result<String, DynError> {
    let text = std::fs::read_to_string(root.join("rust-toolchain.toml"))?;
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("channel")
                .map(|v| v.trim().trim_start_matches('=').trim().trim_matches('"').to_owned())
        })
        .ok_or_else(|| "rust-toolchain.toml has no channel".into())
}

/// Whether this process runs as root (effective uid 0), read from
/// `/proc/self/status` (xtask has no `unsafe` for `geteuid`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)) == Some("0"))
}
