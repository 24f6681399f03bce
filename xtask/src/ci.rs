//! `cargo xtask ci`: exactly what CI runs, in order, stopping at the first
//! failure. `.ci/run` installs the system tools and calls this.
//!
//! Steps: format, clippy (warnings are errors), the whole test suite on the
//! best backend, the whole suite again forced onto the portable backend
//! (`VOLLEY_BACKEND=portable`), docs with warnings as errors, the core's
//! tests and the socket integration tests under AddressSanitizer (nightly),
//! a seconds-long run of each fuzz target (needs `cargo-fuzz`; `cmsg_decode`
//! starts from the checked-in `fuzz/seeds/`), one shard of the mutation run
//! (needs `cargo-mutants`; see `mutants.rs`), and a seconds-long benchmark
//! smoke run. `--fast` keeps only the first five.

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
    },
    Step {
        title: "clippy",
        program: Program::Cargo,
        args: &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
        env: &[],
        dir: ".",
        slow: false,
    },
    Step {
        title: "tests (best backend)",
        program: Program::Cargo,
        args: &["test", "--workspace", "--all-features"],
        env: &[],
        dir: ".",
        slow: false,
    },
    Step {
        title: "tests (portable backend forced)",
        program: Program::Cargo,
        args: &["test", "--workspace", "--all-features"],
        env: &[("VOLLEY_BACKEND", "portable")],
        dir: ".",
        slow: false,
    },
    Step {
        title: "docs",
        program: Program::Cargo,
        args: &["doc", "--workspace", "--no-deps", "--all-features"],
        env: &[("RUSTDOCFLAGS", "-Dwarnings")],
        dir: ".",
        slow: false,
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
    },
    Step {
        title: "fuzz gro_split (10 s)",
        program: Program::Rustup,
        args: &["+nightly", "fuzz", "run", "-O", "gro_split", "--", "-max_total_time=10", "-max_len=4096"],
        env: &[],
        dir: "fuzz",
        slow: true,
    },
    // One slice of the mutation run, picked from the commit hash, so CI
    // covers every mutant over successive commits in a few minutes each;
    // `cargo xtask mutants` (no --rotate) is the whole run.
    Step {
        title: "mutation testing, one shard of 32 (cargo-mutants)",
        program: Program::Cargo,
        args: &["xtask", "mutants", "--rotate", "32"],
        env: &[],
        dir: ".",
        slow: true,
    },
    Step {
        title: "bench smoke run",
        program: Program::Cargo,
        args: &["xtask", "bench", "--quick"],
        env: &[],
        dir: ".",
        slow: true,
    },
];

/// Runs the CI steps.
///
/// # Errors
/// The first step that fails, by name.
pub(crate) fn run(args: &[String]) -> Result<(), DynError> {
    let fast = args.iter().any(|a| a == "--fast");
    if let Some(bad) = args.iter().find(|a| *a != "--fast") {
        return Err(format!("unknown argument `{bad}` (only --fast)").into());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // As root, the network-namespace lab (and strace, tc) must run, not skip:
    // the same rule .ci/run sets, so `cargo xtask ci` is exactly CI.
    let require_lab = std::env::var_os("VOLLEY_REQUIRE_LAB").is_none() && is_root();
    if require_lab {
        println!("=== running as root: VOLLEY_REQUIRE_LAB=1 (lab tests fail instead of skipping)");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("xtask has no parent directory")?;
    // libFuzzer writes to the first corpus directory (gitignored) and needs
    // it to exist; the checked-in seeds are the second, read-only one.
    if !fast {
        std::fs::create_dir_all(root.join("fuzz/corpus/cmsg_decode"))?;
    }
    let total = Instant::now();
    for step in STEPS.iter().filter(|s| !(fast && s.slow)) {
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
            return Err(format!("step `{}` failed ({status})", step.title).into());
        }
    }
    println!("\n=== xtask ci: all steps passed in {:.0?}", total.elapsed());
    Ok(())
}

/// Whether this process runs as root (effective uid 0), read from
/// `/proc/self/status` (xtask has no `unsafe` for `geteuid`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)) == Some("0"))
}
