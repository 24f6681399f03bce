//! The shared send/receive driver: one parametric harness that every
//! loopback test runs through, once per datapath.
//!
//! ```text
//!  for_each_backend(|case| ...)        runs the body twice:
//!    "linux"    Config::new()                        recvmmsg/sendmmsg, GSO, GRO
//!    "portable" Config::new().backend(Portable)      recvmsg/sendmsg, no offloads
//!  (with VOLLEY_BACKEND=portable both run the portable path, and say so)
//!
//!  send_recv(tx, rx, transmits)   send every transmit, receive with a
//!                                 blocking, timed receiver, check each
//!                                 datagram against the transmit's segments
//! ```
//!
//! Capability-dependent checks ask [`Case::linux`] and the socket's
//! [`volley::Capabilities`]; a feature the kernel lacks is a printed skip,
//! never a faked pass. Tests that need a second process (dropped privileges,
//! `strace`) re-run the test binary in "child mode" with [`run_child`].
//!
//! On Windows (the loopback, bad-input and allocation suites, run under
//! Wine by `cargo xtask ci`) the first case is the Windows backend
//! (`"windows"`), and [`Case::check_capabilities`] pins what a Windows
//! socket reports; under Wine ([`under_wine`]) exactly Wine 8's profile,
//! so what Wine lacks is asserted as the documented degradation. The
//! helpers that need Linux (namespaces, `strace`, `poll` on a raw
//! descriptor) are Linux-only.

use std::io;
use std::net::SocketAddr;
#[cfg(target_os = "linux")]
use std::os::fd::AsFd;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use volley::{Backend, Config, Ecn, RecvBatch, RecvMeta, Socket, Transmit};

/// How long any single blocking step (a receive, a send) may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The environment variable that selects a child-mode test body.
pub const CHILD_ENV: &str = "VOLLEY_TEST_CHILD";

/// True if `VOLLEY_BACKEND=portable` forces the portable path for every
/// socket of this process (CI runs the suite once more with it).
pub fn forced_portable() -> bool {
    std::env::var_os("VOLLEY_BACKEND").is_some_and(|v| v == "portable")
}

/// True if the tests run under Wine (`VOLLEY_WINE=1`, set by `cargo xtask
/// ci`'s Wine step): Windows capability checks then pin Wine 8's profile.
pub fn under_wine() -> bool {
    cfg!(windows) && std::env::var_os("VOLLEY_WINE").is_some_and(|v| v == "1")
}

/// One datapath under test.
#[derive(Debug, Clone)]
pub struct Case {
    /// `"linux"`, `"windows"` or `"portable"`: which configuration this is.
    pub name: &'static str,
    /// The base configuration: `Config::new()`, or with
    /// `backend(Backend::Portable)`.
    pub config: Config,
    /// True if sockets of this case use the Linux backend (recvmmsg,
    /// sendmmsg, GSO, GRO): the `linux` case on Linux without
    /// `VOLLEY_BACKEND=portable`.
    pub linux: bool,
    /// True if sockets of this case use the Windows backend's offload
    /// probes (USO, URO): the `windows` case on Windows without
    /// `VOLLEY_BACKEND=portable`.
    pub windows: bool,
}

/// Both datapaths: the default (Linux, or Windows) one and the forced
/// portable one.
pub fn cases() -> [Case; 2] {
    let linux = cfg!(target_os = "linux") && !forced_portable();
    let windows = cfg!(windows) && !forced_portable();
    let name = if cfg!(windows) { "windows" } else { "linux" };
    [
        Case { name, config: Config::new(), linux, windows },
        Case { name: "portable", config: Config::new().backend(Backend::Portable), linux: false, windows: false },
    ]
}

/// Runs `body` once per datapath, printing which one runs (libtest shows
/// the output of a failing test, so the failing backend is named).
pub fn for_each_backend(mut body: impl FnMut(&Case)) {
    for case in cases() {
        let what = match (case.name, case.linux || case.windows) {
            ("linux", true) => "Config::new(): recvmmsg/sendmmsg + GSO/GRO",
            ("windows", true) => "Config::new(): WSASendMsg/WSARecvMsg, USO/URO where probed",
            ("linux" | "windows", false) => "Config::new(), but VOLLEY_BACKEND=portable forces the portable path",
            _ => "Config::new().backend(Backend::Portable): recvmsg/sendmsg, no offloads",
        };
        println!("=== backend {}: {what}", case.name);
        body(&case);
    }
}

/// Parses a socket address, panicking with it on error.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("bad address {s:?}: {e}"))
}

impl Case {
    /// The base configuration, to extend with more options.
    pub fn config(&self) -> Config {
        self.config.clone()
    }

    /// Binds a socket with the base configuration and checks its
    /// capabilities ([`Case::check_capabilities`]).
    pub fn bind(&self, at: &str) -> Socket {
        let sock = self.bind_with(at, |c| c);
        self.check_capabilities(&sock);
        sock
    }

    /// Binds a socket with the base configuration changed by `f`.
    pub fn bind_with(&self, at: &str, f: impl FnOnce(Config) -> Config) -> Socket {
        f(self.config()).bind(addr(at)).unwrap_or_else(|e| panic!("[{}] bind {at}: {e}", self.name))
    }

    /// Asserts what a socket bound with the unmodified base configuration
    /// reports: the portable path has no batching and no offloads; the
    /// Linux backend has `recvmmsg`/`sendmmsg`, 64- or 128-segment GSO and GRO on
    /// kernels that have them (GSO since 4.18, GRO since 5.0); on Unix
    /// ECN marks and sources on send are applied. On Windows see
    /// [`check_windows_capabilities`].
    pub fn check_capabilities(&self, sock: &Socket) {
        let caps = sock.capabilities();
        if self.linux {
            assert_eq!(caps.backend, Backend::Auto, "[{}] {caps}", self.name);
            assert!(caps.mmsg, "[{}] Linux backend without recvmmsg/sendmmsg:\n{caps}", self.name);
            if kernel_at_least(5, 0) {
                // UDP_MAX_SEGMENTS: 64, or 128 on newer kernels (probed).
                assert!(matches!(caps.max_gso_segments, 64 | 128), "[{}] {caps}", self.name);
                assert!(caps.gro, "[{}] GRO missing on a >= 5.0 kernel:\n{caps}", self.name);
            } else {
                println!("skip GSO/GRO capability check: kernel {} is older than 5.0", kernel_release());
            }
        } else if self.windows {
            assert_eq!(caps.backend, Backend::Auto, "[{}] {caps}", self.name);
        } else {
            assert_eq!(caps.backend, Backend::Portable, "[{}] {caps}", self.name);
            assert!(!caps.mmsg, "[{}] portable path reports mmsg:\n{caps}", self.name);
            assert_eq!(caps.max_gso_segments, 1, "[{}] portable path reports GSO:\n{caps}", self.name);
            assert!(!caps.gro, "[{}] portable path reports GRO:\n{caps}", self.name);
        }
        if cfg!(windows) {
            check_windows_capabilities(&caps, self.name);
        } else {
            // The tests take the Windows-only degradations below (marks
            // dropped, sources refused) only where these read false.
            assert!(caps.ecn_send && caps.src_send, "[{}] Unix applies ECN and sources on send:\n{caps}", self.name);
            assert_eq!(caps.dscp_send, caps.tos_cmsg, "[{}] Unix marks DSCP with the TOS message:\n{caps}", self.name);
        }
    }
}

/// What every Windows socket reports (either case), and under Wine 8
/// exactly what Wine gives: pktinfo, TOS and hop limit on receive; no USO,
/// no URO, ECN marks not applied (`ecn_send` false), sources on send
/// ignored (`src_send` false, so refused), no qWAVE. `tests/windows.rs`
/// checks its sockets with this too.
pub fn check_windows_capabilities(caps: &volley::Capabilities, name: &str) {
    assert!(!caps.mmsg, "[{name}] no batching syscall on Windows:\n{caps}");
    assert!(!caps.dscp_send, "[{name}] Windows marks DSCP per qWAVE flow, not per datagram:\n{caps}");
    assert!(!caps.timestamps && !caps.txtime && !caps.drop_counter && !caps.recv_errors, "[{name}] {caps}");
    if under_wine() {
        assert_eq!(caps.max_gso_segments, 1, "[{name}] Wine 8 has no UDP_SEND_MSG_SIZE: USO must read off:\n{caps}");
        assert!(!caps.gro, "[{name}] Wine 8 has no UDP_RECV_MAX_COALESCED_SIZE: URO must read off:\n{caps}");
        assert!(!caps.ecn_send, "[{name}] Wine 8 drops IP_ECN marks: ecn_send must read false:\n{caps}");
        assert!(!caps.src_send, "[{name}] Wine 8 ignores IP_PKTINFO on send: src_send must read false:\n{caps}");
        assert!(caps.pktinfo && caps.ecn && caps.ttl, "[{name}] Wine 8 reports pktinfo, TOS and TTL:\n{caps}");
        assert!(!caps.qwave, "[{name}] Wine 8's QOSCreateHandle fails: qwave must read false:\n{caps}");
    } else if caps.gso() {
        assert_eq!(caps.max_gso_segments, 64, "[{name}] {caps}");
    }
}

/// The ECN codepoint a datagram sent by `tx` with `asked` arrives with:
/// `asked` where the stack applies marks (`Capabilities::ecn_send`: all
/// of Unix, asserted), else unmarked (Windows stacks that drop the
/// `IP_ECN` message's mark: Wine).
pub fn sent_ecn(tx: &Socket, asked: Ecn) -> Ecn {
    let caps = tx.capabilities();
    assert!(caps.ecn_send || cfg!(windows), "ecn_send false off Windows:\n{caps}");
    if caps.ecn_send {
        asked
    } else {
        Ecn::NotEct
    }
}

/// Whether `tx` applies a transmit's source address and interface
/// (`Capabilities::src_send`): all of Unix (asserted); on Windows as the
/// bind-time self-test saw (Wine: no, and such a transmit is refused).
pub fn src_send(tx: &Socket) -> bool {
    let caps = tx.capabilities();
    assert!(caps.src_send || cfg!(windows), "src_send false off Windows:\n{caps}");
    caps.src_send
}

/// Whether a DSCP can be marked, per datagram or socket-wide: everywhere
/// but Windows, which refuses both, typed
/// (`InvalidTransmit::DscpUnsupported`, `ErrorKind::Unsupported`): it
/// ignores a program's DSCP without a QoS policy, and volley does not
/// drive qWAVE.
pub const MARKS_DSCP: bool = !cfg!(windows);

/// The error codes `io::Error::raw_os_error` holds after a socket call:
/// `errno` on Unix, `WSAGetLastError`'s `WSAE*` codes on Windows.
pub mod errno {
    #[cfg(unix)]
    pub use libc::{EACCES, EADDRINUSE, EADDRNOTAVAIL, EINVAL, ENOPROTOOPT};
    #[cfg(windows)]
    pub use windows_sys::Win32::Networking::WinSock::{
        WSAEACCES as EACCES, WSAEADDRINUSE as EADDRINUSE, WSAEADDRNOTAVAIL as EADDRNOTAVAIL, WSAEINVAL as EINVAL,
        WSAENOPROTOOPT as ENOPROTOOPT,
    };
}

/// The running kernel's release string (`uname -r`; under Wine the
/// host's), empty where unknown.
pub fn kernel_release() -> String {
    host_file("/proc/sys/kernel/osrelease")
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// True if the running kernel is at least `major.minor`.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = kernel_release();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

/// A file of the Linux host: itself on Linux; under Wine through Wine's
/// `Z:` drive (the host's `/`), so the tests can read the host facts
/// Wine's Winsock passes through; `None` on Windows proper.
pub fn host_file(path: &str) -> Option<std::path::PathBuf> {
    if cfg!(target_os = "linux") {
        Some(path.into())
    } else if under_wine() {
        Some(format!("Z:{}", path.replace('/', "\\")).into())
    } else {
        None
    }
}

/// An integer sysctl from `/proc/sys` (of the host, under Wine), if
/// readable.
pub fn sysctl(path: &str) -> Option<i64> {
    std::fs::read_to_string(host_file(&format!("/proc/sys/{path}"))?).ok()?.trim().parse().ok()
}

/// The TTL (`v6` false) or IPv6 loopback hop limit a datagram leaves
/// with by default: the sysctl on Linux and under Wine (the host kernel
/// sends it), else 64; Windows' `DefaultTTL` / `DefaultCurHopLimit`,
/// 128, on Windows proper.
pub fn default_ttl(v6: bool) -> u8 {
    let path = if v6 { "net/ipv6/conf/lo/hop_limit" } else { "net/ipv4/ip_default_ttl" };
    let fallback = if cfg!(windows) && !under_wine() { 128 } else { 64 };
    sysctl(path).unwrap_or(fallback) as u8
}

/// The loopback interface index, from `if_nametoindex("lo")`.
#[cfg(target_os = "linux")]
pub fn lo_ifindex() -> u32 {
    nix::net::if_::if_nametoindex("lo").unwrap_or_else(|e| panic!("no interface named lo: {e}"))
}

/// The loopback interface index pktinfo reports. Under Wine: the host's
/// `lo` (Wine passes the Linux index through; its IP Helper numbers
/// interfaces otherwise, and `GetBestInterface(127.0.0.1)` answers the
/// host's default route). On Windows proper: `GetBestInterface`.
#[cfg(windows)]
pub fn lo_ifindex() -> u32 {
    if under_wine() {
        let file = host_file("/sys/class/net/lo/ifindex").expect("under Wine");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        return text.trim().parse().unwrap_or_else(|e| panic!("{}: {text:?}: {e}", file.display()));
    }
    let mut index = 0u32;
    let loopback = u32::from_ne_bytes(std::net::Ipv4Addr::LOCALHOST.octets());
    // SAFETY: GetBestInterface reads the address by value and writes one
    // DWORD through the pointer, a local that outlives the call.
    let res = unsafe { windows_sys::Win32::NetworkManagement::IpHelper::GetBestInterface(loopback, &mut index) };
    assert_eq!(res, 0, "GetBestInterface(127.0.0.1) failed: {}", io::Error::from_raw_os_error(res as i32));
    index
}

/// A test payload of `len` bytes that carries `seq` in its first four bytes
/// (little endian, when there is room) and a seq-dependent pattern after.
pub fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8).collect();
    let n = len.min(4);
    p[..n].copy_from_slice(&seq.to_le_bytes()[..n]);
    p
}

/// The sequence number [`payload`] wrote (payloads of at least four bytes).
pub fn seq_of(p: &[u8]) -> u32 {
    assert!(p.len() >= 4, "payload of {} bytes carries no sequence number", p.len());
    u32::from_le_bytes([p[0], p[1], p[2], p[3]])
}

/// The contents of a GSO train: `count` segments of `segment_size` bytes,
/// each a [`payload`] numbered from `first_seq`, and a `tail`-byte last
/// segment if `tail > 0`.
pub fn train(first_seq: u32, count: u32, segment_size: usize, tail: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(count as usize * segment_size + tail);
    for i in 0..count {
        v.extend_from_slice(&payload(first_seq + i, segment_size));
    }
    if tail > 0 {
        v.extend_from_slice(&payload(first_seq + count, tail));
    }
    v
}

/// The datagrams a transmit becomes on the wire, in order.
pub fn segments_of<'a>(t: &Transmit<'a>) -> Vec<&'a [u8]> {
    match t.segment_size {
        Some(s) if s > 0 && t.contents.len() > s => t.contents.chunks(s).collect(),
        _ => vec![t.contents],
    }
}

/// One received datagram (after GRO splitting), copied out of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its metadata.
    pub meta: RecvMeta,
    /// Its bytes.
    pub payload: Vec<u8>,
}

/// Receives until `want` datagrams arrived, waiting at most [`TIMEOUT`]
/// for each receive call.
///
/// # Panics
/// On a receive error or timeout, naming how many arrived.
pub fn recv_datagrams(sock: &Socket, batch: &mut RecvBatch, want: usize) -> Vec<Received> {
    let mut got = Vec::with_capacity(want);
    while got.len() < want {
        match sock.recv_batch_blocking(batch, TIMEOUT) {
            Ok(_) => got.extend(batch.iter().map(|(meta, p)| Received { meta, payload: p.to_vec() })),
            Err(e) => panic!("received {} of {want} datagrams, then: {e}", got.len()),
        }
    }
    got
}

/// Receives whatever arrives until the socket stays quiet for `quiet`;
/// the whole drain is bounded by 30 s.
pub fn drain(sock: &Socket, batch: &mut RecvBatch, quiet: Duration) -> Vec<Received> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match sock.recv_batch_blocking(batch, quiet) {
            Ok(_) => got.extend(batch.iter().map(|(meta, p)| Received { meta, payload: p.to_vec() })),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
            Err(e) => panic!("drain: {e}"),
        }
    }
    got
}

/// Asserts nothing more arrives within `quiet` (no duplicates, no strays).
pub fn assert_quiet(sock: &Socket, batch: &mut RecvBatch, quiet: Duration) {
    match sock.recv_batch_blocking(batch, quiet) {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
        Ok(n) => {
            let first: Vec<_> = batch.iter().take(4).map(|(m, p)| (m.src, m.len, p.len())).collect();
            panic!("{n} unexpected datagram(s) arrived: {first:?}")
        }
        Err(e) => panic!("expected silence, got {e}"),
    }
}

/// Sends all of `transmits` (waiting for buffer space up to [`TIMEOUT`]).
///
/// # Panics
/// On any error.
pub fn send_all(sock: &Socket, transmits: &[Transmit<'_>]) {
    sock.send_batch_blocking(transmits, TIMEOUT)
        .unwrap_or_else(|e| panic!("send of {} transmits: {e}", transmits.len()));
}

/// The parametric round trip: sends `transmits` from `tx` to `rx` (each
/// transmit's `destination` must reach `rx`), receives every datagram they
/// become, and checks each one's bytes, length, truncation flag and source
/// port against the transmit's segments, in order. Returns what arrived.
pub fn send_recv(tx: &Socket, rx: &Socket, transmits: &[Transmit<'_>]) -> Vec<Received> {
    let expected: Vec<&[u8]> = transmits.iter().flat_map(segments_of).collect();
    send_all(tx, transmits);
    let mut batch = RecvBatch::new();
    let got = recv_datagrams(rx, &mut batch, expected.len());
    assert_eq!(got.len(), expected.len(), "datagram count");
    let tx_port = tx.local_addr().expect("local_addr").port();
    for (i, (r, want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(r.meta.len, want.len(), "datagram {i}: meta.len");
        assert!(r.payload == *want, "datagram {i}: contents differ (len {} vs {})", r.payload.len(), want.len());
        assert!(!r.meta.truncated, "datagram {i}: truncated");
        assert_eq!(r.meta.src.port(), tx_port, "datagram {i}: source port");
    }
    got
}

/// Waits until `sock` is readable (`libc::POLLIN`) or writable
/// (`libc::POLLOUT`), or `timeout` passes; returns whether it became ready.
#[cfg(target_os = "linux")]
pub fn wait_ready(sock: &impl AsFd, events: libc::c_short, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfd = [PollFd::new(sock.as_fd(), PollFlags::from_bits_truncate(events))];
    let ms = PollTimeout::try_from(timeout.as_millis()).unwrap_or(PollTimeout::MAX);
    poll(&mut pfd, ms).is_ok_and(|n| n > 0)
}

/// Which child-mode body this process should run, if it is a child started
/// by [`run_child`].
pub fn child_mode() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Re-runs this test binary for the single test `test` with
/// [`CHILD_ENV`]`=mode`, optionally wrapped in a command (`wrapper`, e.g.
/// `strace ...`); returns its output. The environment, including
/// `VOLLEY_BACKEND`, is inherited.
pub fn run_child(test: &str, mode: &str, wrapper: &[&str]) -> io::Result<Output> {
    let exe = std::env::current_exe()?;
    let mut argv: Vec<std::ffi::OsString> = wrapper.iter().map(Into::into).collect();
    argv.push(exe.into());
    // Child-mode tests are #[ignore]d so a normal run does not count them.
    for a in [test, "--exact", "--ignored", "--nocapture", "--test-threads=1"] {
        argv.push(a.into());
    }
    Command::new(&argv[0]).args(&argv[1..]).env(CHILD_ENV, mode).output()
}

/// Runs `f` on a fresh thread that has entered a new, private network
/// namespace (`unshare(CLONE_NEWNET)`) with its `lo` up. Sockets created in
/// `f` stay in that namespace for life, so they can be used from the
/// calling thread; commands spawned from `f` (e.g. `tc`) run in it too. The
/// namespace disappears when its last socket closes.
///
/// # Errors
/// Why the namespace could not be made (not root, no `ip`), for the caller
/// to print as a skip reason.
#[cfg(target_os = "linux")]
pub fn in_private_netns<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // unshare(2) affects only the calling thread's network namespace.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("unshare(CLONE_NEWNET): {}", io::Error::from(e)))?;
            run_cmd(&["ip", "link", "set", "lo", "up"])?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Runs a command, returning its stdout or a message with its stderr.
///
/// # Errors
/// If it cannot start or exits non-zero.
pub fn run_cmd(argv: &[&str]) -> Result<String, String> {
    let out = Command::new(argv[0]).args(&argv[1..]).output().map_err(|e| format!("{}: {e}", argv.join(" ")))?;
    if !out.status.success() {
        return Err(format!("{}: {} {}", argv.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Receives until `want` datagrams arrived or `timeout` passed (whichever
/// is first); returns what arrived, each with its metadata.
pub fn recv_up_to(sock: &Socket, want: usize, timeout: Duration) -> Vec<(RecvMeta, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let mut batch = RecvBatch::new();
    let mut out = Vec::new();
    // Each round waits at most 100 ms, so the bound is time, then count.
    for _ in 0..10_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        if out.len() >= want || left.is_zero() {
            break;
        }
        match sock.recv_batch_blocking(&mut batch, left.min(Duration::from_millis(100))) {
            Ok(_) => out.extend(batch.iter().map(|(m, p)| (m, p.to_vec()))),
            Err(e) if e.is_would_block() || e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) => panic!("receive failed: {e} ({e:?})"),
        }
    }
    out
}

/// Per-syscall call counts from an `strace -c` summary table
/// ("% time seconds usecs/call calls \[errors\] syscall").
pub fn parse_strace_summary(text: &str) -> std::collections::HashMap<String, u64> {
    let mut calls = std::collections::HashMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 5 || cols[0].parse::<f64>().is_err() {
            continue;
        }
        let (Some(name), Ok(n)) = (cols.last(), cols[3].parse::<u64>()) else { continue };
        if *name != "total" {
            calls.insert((*name).to_owned(), n);
        }
    }
    calls
}

/// Re-runs this test binary's child-mode test `test` (as [`run_child`])
/// under `strace -f -c -e trace=<trace>`; returns the child's output and
/// its per-syscall counts.
pub fn run_child_traced(
    test: &str,
    mode: &str,
    trace: &str,
) -> io::Result<(Output, std::collections::HashMap<String, u64>)> {
    let tag: String = mode.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let out_file = std::env::temp_dir().join(format!("volley-strace-{}-{tag}.txt", std::process::id()));
    let out_arg = out_file.to_string_lossy().into_owned();
    let trace = format!("trace={trace}");
    let wrapper = ["strace", "-f", "-c", "-o", out_arg.as_str(), "-e", trace.as_str()];
    let out = run_child(test, mode, &wrapper)?;
    let summary = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    Ok((out, parse_strace_summary(&summary)))
}

/// Why `strace` cannot run here, if it cannot.
pub fn strace_unavailable() -> Option<String> {
    match Command::new("strace").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("strace -V: {}", o.status)),
        Err(e) => Some(format!("strace not runnable: {e}")),
    }
}
