//! `cargo xtask ci`: exactly what CI runs, in order, stopping at the first
//! failure. `.ci/run` installs the system tools and calls this.
//!
//! Steps: format, clippy (warnings are errors), the whole test suite on the
//! best backend, the whole suite again forced onto the portable backend
//! (`VOLLEY_BACKEND=portable`), docs with warnings as errors, and a
//! seconds-long benchmark smoke run. `--fast` skips the portable pass and the
//! bench smoke run.

use std::process::Command;
use std::time::Instant;

use crate::DynError;

/// One step: a title, the cargo arguments, and extra environment.
struct Step {
    title: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    slow: bool,
}

const STEPS: &[Step] = &[
    Step { title: "format", args: &["fmt", "--all", "--", "--check"], env: &[], slow: false },
    Step {
        title: "clippy",
        args: &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
        env: &[],
        slow: false,
    },
    Step { title: "tests (best backend)", args: &["test", "--workspace", "--all-features"], env: &[], slow: false },
    Step {
        title: "tests (portable backend forced)",
        args: &["test", "--workspace", "--all-features"],
        env: &[("VOLLEY_BACKEND", "portable")],
        slow: true,
    },
    Step {
        title: "docs",
        args: &["doc", "--workspace", "--no-deps", "--all-features"],
        env: &[("RUSTDOCFLAGS", "-Dwarnings")],
        slow: false,
    },
    Step { title: "bench smoke run", args: &["xtask", "bench", "--quick"], env: &[], slow: true },
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
    let total = Instant::now();
    for step in STEPS.iter().filter(|s| !(fast && s.slow)) {
        println!("\n=== xtask ci: {} (cargo {})", step.title, step.args.join(" "));
        let started = Instant::now();
        let status = Command::new(&cargo).args(step.args).envs(step.env.iter().copied()).status()?;
        println!("=== {} took {:.0?}", step.title, started.elapsed());
        if !status.success() {
            return Err(format!("step `{}` failed ({status})", step.title).into());
        }
    }
    println!("\n=== xtask ci: all steps passed in {:.0?}", total.elapsed());
    Ok(())
}
