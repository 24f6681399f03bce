//! The Windows tests under Wine (part of `cargo xtask ci`; alone with
//! `cargo xtask ci --wine`).
//!
//! Builds the test executables for `x86_64-pc-windows-gnu` with the mingw
//! linker and runs them with Wine 8 (`/usr/lib/wine/wine64`: Debian puts
//! no `wine64` on PATH), with `VOLLEY_WINE=1` so the tests pin Wine's
//! capability profile (what Wine lacks must read as the documented
//! degradation, see `tests/windows.rs`). Wine 8 has no
//! `bcryptprimitives.dll`, whose `ProcessPrng` Rust's std imports: the
//! shim `xtask/wine/processprng.c` (forwarding to `RtlGenRandom`) is built
//! with mingw and put beside the executables. Before building, volley-tests
//! (one source for Linux and Windows) is linted for the target, every test
//! target of it (`clippy -D warnings`).
//!
//! Missing tools (Wine, mingw, the rustup target) skip the step with one
//! `SKIPPED:` line in the summary, like the cross-target checks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::DynError;

const TARGET: &str = "x86_64-pc-windows-gnu";
const LINKER: &str = "x86_64-w64-mingw32-gcc";

/// Debian's Wine 8 loader for 64-bit programs; `wine64` or `wine` on PATH
/// elsewhere.
const WINE_CANDIDATES: &[&str] = &["/usr/lib/wine/wine64", "wine64", "wine"];

/// The test executables built and run, one `cargo test` selection per
/// package (target flags apply to every package of one invocation):
/// `(package, target selection)`. volley-tests' other suites are
/// Linux-only (`#![cfg(target_os = "linux")]`: namespaces, `strace`, the
/// drop counter, the error queue).
const SELECTIONS: &[(&str, &[&str])] = &[
    ("volley", &["--lib"]),
    ("volley-tests", &["--test", "windows", "--test", "loopback", "--test", "bad_input", "--test", "alloc"]),
    (
        "volley-tokio",
        &[
            "--lib", "--test", "socket", "--test", "stream", "--test", "queue", "--test", "quinn", "--test", "echo",
            "--test", "alloc",
        ],
    ),
    ("volley-cli", &["--test", "cli"]),
];

/// Per executable (by package and test target name): libtest arguments,
/// and what is left out under Wine and why (printed as `SKIPPED:`).
fn selection(package: &str, name: &str) -> (Vec<&'static str>, Option<&'static str>) {
    match (package, name) {
        ("volley-tokio", "quinn") => (
            vec!["--skip", "interop_with_quinns_own_socket_both_ways"],
            Some(
                "quinn test interop_with_quinns_own_socket_both_ways: quinn-udp's own socket fails its set-up under \
                 Wine 8 (WSAEOPNOTSUPP), before any volley code runs",
            ),
        ),
        ("volley-tokio", "alloc") => (
            vec!["--skip", "steady_state_allocations_per_datagram_are_near_zero"],
            Some(
                "volley-tokio alloc test steady_state_allocations_per_datagram_are_near_zero: it needs 52,000 \
                 datagrams within 20 s, which Wine's per-call overhead on a loaded 2-core machine misses \
                 intermittently (passed 3 of 5 runs); the other allocation tests run",
            ),
        ),
        ("volley-cli", "cli") => (
            vec![
                "probe_json_agrees_with_the_library",
                "help_reads_well_for_every_subcommand",
                "echo_with_a_duration_ends_by_itself",
                "blast_size_limit_follows_the_address_family",
            ],
            Some(
                "volley-cli tests of echo, blast and path: they mark DSCP per datagram and bind with \
                 Pmtud::Probe, which Windows refuses (typed: InvalidTransmit::DscpUnsupported, Unsupported) and \
                 the commands do not yet adapt to; the netns test needs Linux",
            ),
        ),
        _ => (Vec::new(), None),
    }
}

/// The wineserver beside `wine` (Debian: `/usr/lib/wine/wineserver64`),
/// else `wineserver` on PATH.
fn wineserver(wine: &str) -> Option<PathBuf> {
    let beside = Path::new(wine).parent().filter(|p| !p.as_os_str().is_empty());
    let candidates = beside
        .into_iter()
        .flat_map(|dir| [dir.join("wineserver64"), dir.join("wineserver")])
        .chain([PathBuf::from("/usr/bin/wineserver")]);
    candidates.into_iter().find(|p| p.exists())
}

fn find_wine() -> Option<String> {
    WINE_CANDIDATES.iter().find_map(|w| {
        let ok = if w.starts_with('/') {
            Path::new(w).exists()
        } else {
            Command::new(w).arg("--version").output().is_ok_and(|o| o.status.success())
        };
        ok.then(|| (*w).to_owned())
    })
}

/// Runs the Windows tests under Wine; what cannot run goes into `skipped`.
pub(crate) fn run(root: &Path, pinned: &str, skipped: &mut Vec<String>) -> Result<(), DynError> {
    let installed = crate::ci::rustup(&["target", "list", "--installed", "--toolchain", pinned]);
    let why_not = match (&installed, find_wine()) {
        (Err(why), _) => Some(why.clone()),
        (Ok(list), _) if !list.lines().any(|t| t.trim() == TARGET) => {
            Some(format!("{TARGET} not installed (rustup target add --toolchain {pinned} {TARGET})"))
        }
        (_, None) => Some("no Wine (apt-get install wine64)".to_owned()),
        _ if Command::new(LINKER).arg("--version").output().is_err() => {
            Some(format!("no {LINKER} (apt-get install gcc-mingw-w64-x86-64)"))
        }
        _ => None,
    };
    if let Some(why) = why_not {
        skipped.push(format!("Windows tests under Wine: {why}"));
        return Ok(());
    }
    let wine = find_wine().ok_or("no Wine")?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let started = Instant::now();
    println!("\n=== xtask ci: Windows tests under Wine ({wine}, {TARGET})");

    // volley-tests is one source for Linux and Windows: every target of it
    // (the Linux-only suites compile to nothing there) must stay clean for
    // Windows, not only the suites run below.
    let lint = ["clippy", "--target", TARGET, "-p", "volley-tests", "--all-targets", "--", "-D", "warnings"];
    let status = crate::ci::rustup_cargo(root, pinned, &lint).status()?;
    if !status.success() {
        return Err(format!("clippy {TARGET} -p volley-tests --all-targets failed ({status})").into());
    }

    // The test executables, listed by cargo as JSON artifacts.
    let linker_env = format!("CARGO_TARGET_{}_LINKER", TARGET.to_uppercase().replace('-', "_"));
    let mut exes = Vec::new();
    for (package, selection) in SELECTIONS {
        let mut args =
            vec!["test", "--target", TARGET, "--no-run", "--message-format=json-render-diagnostics", "-p", package];
        args.extend_from_slice(selection);
        // Diagnostics go to stderr (shown); the JSON artifacts to stdout.
        let out = crate::ci::rustup_cargo(root, pinned, &args)
            .env(&linker_env, LINKER)
            .stderr(std::process::Stdio::inherit())
            .output()?;
        if !out.status.success() {
            let what = selection.join(" ");
            return Err(format!("building the Windows tests (-p {package} {what}) failed ({})", out.status).into());
        }
        exes.extend(executables(&String::from_utf8_lossy(&out.stdout)).into_iter().map(|(n, e)| (*package, n, e)));
    }
    if exes.is_empty() {
        return Err("cargo listed no Windows test executables".into());
    }

    // The ProcessPrng shim, beside the executables.
    let dll_dir = exes[0].2.parent().ok_or("executable without a directory")?.to_path_buf();
    let shim = root.join("xtask/wine/processprng.c");
    let dll = dll_dir.join("bcryptprimitives.dll");
    let status = Command::new(LINKER).args(["-shared", "-O2", "-o"]).arg(&dll).arg(&shim).arg("-ladvapi32").status()?;
    if !status.success() {
        return Err(format!("building {} failed ({status})", dll.display()).into());
    }

    let prefix = target_dir.join("wine-prefix");
    std::fs::create_dir_all(&prefix)?;
    // One wineserver for the whole step: left to itself it exits a few
    // seconds after each test executable, and an executable started while
    // it shuts down dies at once ("wine client error:0: recvmsg:
    // Connection reset by peer", seen on this machine in two runs of
    // fourteen executables). Persistent until killed at the end.
    let server = wineserver(&wine);
    if let Some(server) = &server {
        match Command::new(server).arg("-p").env("WINEPREFIX", &prefix).status() {
            Ok(s) if s.success() => {}
            other => {
                println!("=== wine: no persistent wineserver ({other:?}); each executable starts its own");
            }
        }
    }
    let mut failed = Vec::new();
    let mut results = Vec::new();
    for (package, name, exe) in &exes {
        let (extra, left_out) = selection(package, name);
        if let Some(why) = left_out {
            skipped.push(format!("under Wine: {why}"));
        }
        println!("\n=== wine: {package} {name} ({})", exe.display());
        let t = Instant::now();
        let mut child = Command::new(&wine)
            .arg(exe)
            // One test at a time: Wine adds a server round trip to many
            // calls, and the timing-bound tests (a sender thread feeding
            // the allocation counter) starve when run side by side.
            .args(["--test-threads", "1"])
            .args(&extra)
            .current_dir(exe.parent().unwrap_or(root))
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all")
            .env("VOLLEY_WINE", "1")
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        // Shown as it comes; libtest's summary line kept for the table.
        let mut summary = String::from("no libtest summary");
        if let Some(out) = child.stdout.take() {
            for line in std::io::BufRead::split(std::io::BufReader::new(out), b'\n') {
                let line = String::from_utf8_lossy(&line?).trim_end().to_owned();
                println!("{line}");
                if let Some(rest) = line.strip_prefix("test result: ") {
                    summary = rest.to_owned();
                }
            }
        }
        let status = child.wait()?;
        println!("=== wine: {package} {name} took {:.0?}", t.elapsed());
        results.push(format!("{package} {name}: {summary}"));
        if !status.success() {
            failed.push(format!("{package} {name} ({status})"));
        }
    }
    if let Some(server) = &server {
        // Stop it (and any process a test left behind) before reporting.
        let _ = Command::new(server).arg("-k").env("WINEPREFIX", &prefix).status();
    }
    println!("\n=== Windows tests under Wine took {:.0?}", started.elapsed());
    for r in &results {
        println!("=== wine: {r}");
    }
    if !failed.is_empty() {
        return Err(format!("under Wine: {} failed", failed.join(", ")).into());
    }
    Ok(())
}

/// `(test target name, executable)` of each test artifact in cargo's JSON
/// messages (no JSON parser in xtask: the two string fields are read
/// directly; cargo escapes neither in a path it wrote).
fn executables(json: &str) -> Vec<(String, PathBuf)> {
    let field = |line: &str, key: &str| -> Option<String> {
        let start = line.find(key)? + key.len();
        let end = start + line[start..].find('"')?;
        Some(line[start..end].to_owned())
    };
    json.lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        // A test build (the profile's `test`; the target's `test` only says
        // it could be tested, and the CLI binary the cli tests run has it).
        .filter(|l| {
            l.find("\"profile\":{")
                .is_some_and(|p| l[p..].split('}').next().is_some_and(|pr| pr.contains("\"test\":true")))
        })
        .filter_map(|l| {
            let exe = field(l, "\"executable\":\"")?;
            let target = l.find("\"target\":{")?;
            let name = field(&l[target..], "\"name\":\"")?;
            Some((name, PathBuf::from(exe)))
        })
        .collect()
}
