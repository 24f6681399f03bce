//! The batch syscalls are really used: a small workload re-runs in a child
//! process under `strace -f -c`, and the per-syscall counts are checked.
//!
//! | workload | Linux backend | portable path |
//! | --- | --- | --- |
//! | `gso`: 6400 x 1200 B as 128 GSO trains of 50, GRO receiver | <= 20 send and <= 20 receive calls per 1000 datagrams, no `sendmsg`/`recvmsg` | one `sendmsg` per datagram, no `*mmsg` |
//! | `fanout`: 64 destinations x 1 datagram, 20 rounds | one `sendmmsg` per 64 | one `sendmsg` per datagram |
//!
//! The counts are printed and written to `target/syscalls.txt`
//! (`target/syscalls-forced-portable.txt` under `VOLLEY_BACKEND=portable`)
//! for `docs/benchmarks.md`. Without `strace` the test prints why it skips.
// Linux only: `strace` counts of the batch syscalls.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use volley::{RecvBatch, Socket, Transmit};
use volley_tests::driver::{self, cases, child_mode, payload, train, Case};

const TRACED: &str = "sendmmsg,sendmsg,recvmmsg,recvmsg,sendto,recvfrom";
const SEG: usize = 1200;
const SEGS_PER_TRAIN: u32 = 50;
const TRAINS: u32 = 128;
const TRAINS_PER_ROUND: u32 = 32;
const FANOUT: usize = 64;
const FANOUT_ROUNDS: usize = 20;

/// Datagrams each workload moves.
fn datagrams(workload: &str) -> usize {
    match workload {
        "gso" => (TRAINS * SEGS_PER_TRAIN) as usize,
        _ => FANOUT * FANOUT_ROUNDS,
    }
}

/// 6400 datagrams of 1200 B as GSO trains, received with GRO.
fn workload_gso(case: &Case) {
    let rx = case.bind_with("127.0.0.1:0", |c| c.recv_buffer_size(8 << 20));
    let tx = case.bind("127.0.0.1:0");
    let to = rx.local_addr().unwrap();
    let trains: Vec<Vec<u8>> = (0..TRAINS).map(|t| train(t * SEGS_PER_TRAIN, SEGS_PER_TRAIN, SEG, 0)).collect();
    let transmits: Vec<_> = trains.iter().map(|b| Transmit::new(to, b).with_segment_size(SEG)).collect();
    let mut batch = RecvBatch::new();
    let mut next = 0u32;
    for chunk in transmits.chunks(TRAINS_PER_ROUND as usize) {
        driver::send_all(&tx, chunk);
        let want = chunk.len() * SEGS_PER_TRAIN as usize;
        let mut got = 0;
        while got < want {
            rx.recv_batch_blocking(&mut batch, driver::TIMEOUT).expect("receive");
            for (meta, p) in batch.iter() {
                assert_eq!(meta.len, SEG);
                assert_eq!(driver::seq_of(p), next, "lost or reordered");
                next += 1;
                got += 1;
            }
        }
    }
    assert_eq!(next as usize, datagrams("gso"));
}

/// 64 destinations, one datagram each, per `try_send_batch` call.
fn workload_fanout(case: &Case) {
    let rxs: Vec<Socket> = (0..FANOUT).map(|_| case.bind("127.0.0.1:0")).collect();
    let tx = case.bind("127.0.0.1:0");
    let bufs: Vec<Vec<u8>> = (0..FANOUT as u32).map(|s| payload(s, 100)).collect();
    let transmits: Vec<_> = rxs.iter().zip(&bufs).map(|(rx, b)| Transmit::new(rx.local_addr().unwrap(), b)).collect();
    let mut batch = RecvBatch::with_capacity(1, volley::DEFAULT_SLOT_LEN);
    for _ in 0..FANOUT_ROUNDS {
        assert_eq!(tx.try_send_batch(&transmits).expect("send").transmits, FANOUT, "one call should send all 64");
        for rx in &rxs {
            assert_eq!(rx.recv_batch_blocking(&mut batch, driver::TIMEOUT).expect("receive"), 1);
        }
    }
}

/// Child-mode body: `VOLLEY_TEST_CHILD=syscalls:<case>:<workload>`; a
/// no-op otherwise.
#[test]
#[ignore = "child process of batch_syscalls_are_used"]
fn syscalls_child() {
    let Some(mode) = child_mode() else { return };
    let mut parts = mode.split(':');
    if parts.next() != Some("syscalls") {
        return;
    }
    let (name, workload) = (parts.next().unwrap(), parts.next().unwrap());
    let case = cases().into_iter().find(|c| c.name == name).expect("known case");
    match workload {
        "gso" => workload_gso(&case),
        "fanout" => workload_fanout(&case),
        other => panic!("unknown workload {other}"),
    }
    println!("CHILD-OK {name} {workload}");
}

fn results_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").join("target"));
    let name = if driver::forced_portable() { "syscalls-forced-portable.txt" } else { "syscalls.txt" };
    target.join(name)
}

#[test]
fn batch_syscalls_are_used() {
    if child_mode().is_some() {
        return;
    }
    if let Some(why) = driver::strace_unavailable() {
        // Fails instead under VOLLEY_REQUIRE_LAB=1 (CI installs strace).
        volley_tests::netlab::skip(&why);
        return;
    }
    let mut report = String::new();
    let _ = writeln!(report, "# volley syscall counts: strace -f -c -e trace={TRACED}");
    let _ = writeln!(
        report,
        "# kernel {}, test profile build; per-1000 = calls x 1000 / datagrams",
        driver::kernel_release()
    );
    if driver::forced_portable() {
        let _ = writeln!(report, "# VOLLEY_BACKEND=portable: the \"linux\" rows ran the portable path too");
    }
    let _ = writeln!(
        report,
        "{:<9} {:<7} {:>9} {:>9} {:>8} {:>9} {:>8} {:>10} {:>10}",
        "backend", "workload", "datagrams", "sendmmsg", "sendmsg", "recvmmsg", "recvmsg", "send/1000", "recv/1000"
    );
    for case in cases() {
        println!("=== backend {} (linux backend: {})", case.name, case.linux);
        for workload in ["gso", "fanout"] {
            let (out, calls) =
                driver::run_child_traced("syscalls_child", &format!("syscalls:{}:{workload}", case.name), TRACED)
                    .expect("run strace");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains(&format!("CHILD-OK {} {workload}", case.name)),
                "child {} {workload} failed: {}\n{stdout}\n{}",
                case.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!calls.is_empty(), "strace wrote no parsable summary");
            let summary = format!("{calls:?}");
            let get = |name: &str| calls.get(name).copied().unwrap_or(0);
            let n = datagrams(workload) as u64;
            let send = get("sendmmsg") + get("sendmsg") + get("sendto");
            let recv = get("recvmmsg") + get("recvmsg") + get("recvfrom");
            let (send_k, recv_k) = (send as f64 * 1000.0 / n as f64, recv as f64 * 1000.0 / n as f64);
            let line = format!(
                "{:<9} {:<7} {:>9} {:>9} {:>8} {:>9} {:>8} {:>10.1} {:>10.1}",
                case.name,
                workload,
                n,
                get("sendmmsg"),
                get("sendmsg"),
                get("recvmmsg"),
                get("recvmsg"),
                send_k,
                recv_k
            );
            println!("{line}");
            let _ = writeln!(report, "{line}");
            check(&case, workload, &calls, n, &summary);
        }
    }
    let path = results_path();
    match std::fs::write(&path, &report) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => println!("could not write {}: {e}", path.display()),
    }
    print!("{report}");
}

/// The expectations per backend and workload.
fn check(case: &Case, workload: &str, calls: &HashMap<String, u64>, n: u64, summary: &str) {
    let get = |name: &str| calls.get(name).copied().unwrap_or(0);
    let ctx = format!("[{}] {workload}: strace summary:\n{summary}", case.name);
    assert_eq!(get("sendto") + get("recvfrom"), 0, "{ctx}");
    if case.linux {
        // One sendmsg is volley's once-per-process probe of the kernel's GSO
        // segment limit (a 1-byte-segment train to itself), not traffic.
        assert!(get("sendmsg") <= 1 && get("recvmsg") == 0, "batch calls only on the Linux backend; {ctx}");
        match workload {
            "gso" => {
                assert!(get("sendmmsg") * 1000 <= 20 * n, "more than 20 send calls per 1000 datagrams; {ctx}");
                assert!(get("recvmmsg") * 1000 <= 20 * n, "more than 20 receive calls per 1000 datagrams; {ctx}");
            }
            _ => assert_eq!(get("sendmmsg"), FANOUT_ROUNDS as u64, "one sendmmsg per 64 destinations; {ctx}"),
        }
    } else {
        assert_eq!((get("sendmmsg"), get("recvmmsg")), (0, 0), "portable path uses no *mmsg; {ctx}");
        assert_eq!(get("sendmsg"), n, "portable path: one sendmsg per datagram; {ctx}");
        assert!(get("recvmsg") >= n, "portable path: at least one recvmsg per datagram; {ctx}");
    }
}
