//! The blocking receive mode (`Config::blocking`): the blocking helpers
//! wait in the kernel (one receive syscall per wake-up, counted with
//! `strace`), time out when asked, and every `try_` call stays
//! non-blocking on a blocking descriptor, on both backends.
// Linux only: blocking descriptors and `strace` counts.
#![cfg(target_os = "linux")]

use std::io::IoSliceMut;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use volley::{Config, Datapath, RecvBatch, RecvMeta, Transmit};
use volley_tests::driver::{self, cases, child_mode};

/// Upper bound for a call that must not block (generous for a loaded CI).
const AT_ONCE: Duration = Duration::from_secs(2);

/// Runs `f` on a thread and fails if it has not returned within `within`
/// (a regression that blocks fails the test instead of hanging it).
fn returns_within<T: Send + 'static>(within: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(within).unwrap_or_else(|_| panic!("the call blocked for more than {within:?}"))
}

#[test]
fn blocking_socket_waits_for_a_datagram_sent_later() {
    for case in cases() {
        let rx = case.bind_with("127.0.0.1:0", |c| c.blocking(true));
        let tx = case.bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send_batch_blocking(&[Transmit::new(to, b"late"), Transmit::new(to, b"later")], driver::TIMEOUT)
                .unwrap();
        });
        let mut batch = RecvBatch::new();
        let started = Instant::now();
        let mut got = Vec::new();
        while got.len() < 2 {
            rx.recv_batch_blocking(&mut batch, driver::TIMEOUT)
                .unwrap_or_else(|e| panic!("[{}] after {:?}: {e}", case.name, started.elapsed()));
            got.extend(batch.iter().map(|(_, p)| p.to_vec()));
        }
        assert_eq!(got, [b"late".to_vec(), b"later".to_vec()], "[{}]", case.name);
        assert!(started.elapsed() >= Duration::from_millis(40), "[{}] returned before anything was sent", case.name);
        sender.join().unwrap();
    }
}

#[test]
fn blocking_receive_times_out() {
    for case in cases() {
        let rx = case.bind_with("127.0.0.1:0", |c| c.blocking(true));
        let mut batch = RecvBatch::new();
        for timeout in [Duration::from_millis(30), Duration::from_millis(80), Duration::ZERO] {
            let started = Instant::now();
            let err = rx.recv_batch_blocking(&mut batch, timeout).unwrap_err();
            let took = started.elapsed();
            assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "[{}] {timeout:?}: {err}", case.name);
            assert!(took >= timeout, "[{}] timed out after {took:?}, before {timeout:?}", case.name);
            assert!(took < timeout + AT_ONCE, "[{}] {timeout:?} took {took:?}", case.name);
        }
        // The caller-buffer form too, and a datagram queued before the call
        // is returned at once.
        let mut buf = [0u8; 64 * 1024];
        let mut meta = [RecvMeta::default()];
        let err = rx.recv_blocking(&mut [IoSliceMut::new(&mut buf)], &mut meta, Duration::from_millis(20)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "[{}]", case.name);
        rx.send_batch_blocking(&[Transmit::new(rx.local_addr().unwrap(), b"queued")], driver::TIMEOUT).unwrap();
        let n = rx.recv_blocking(&mut [IoSliceMut::new(&mut buf)], &mut meta, driver::TIMEOUT).unwrap();
        assert_eq!((n, &buf[..meta[0].len]), (1, &b"queued"[..]), "[{}]", case.name);
    }
}

/// An empty receive (no buffer, or no metadata slot) is refused before
/// any wait, on the owned socket and through a `SocketRef`: nothing could
/// be received into it, so waiting for a datagram would only lose it.
#[test]
fn an_empty_blocking_receive_is_refused_without_waiting() {
    for case in cases() {
        let rx = case.bind_with("127.0.0.1:0", |c| c.blocking(true));
        let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dp = Datapath::new(&std_sock, &case.config().blocking(true)).unwrap();
        let mut buf = [0u8; 64];
        let mut meta = [RecvMeta::default()];
        // A timeout long enough that a wait would show as the wrong error.
        let wait = Duration::from_millis(300);
        for (bufs_empty, meta_empty) in [(true, false), (false, true), (true, true)] {
            let mut one = [IoSliceMut::new(&mut buf)];
            let bufs: &mut [IoSliceMut<'_>] = if bufs_empty { &mut [] } else { &mut one };
            let metas: &mut [RecvMeta] = if meta_empty { &mut [] } else { &mut meta };
            let e = rx.recv_blocking(bufs, metas, wait).unwrap_err();
            assert!(matches!(e, volley::Error::EmptyBatch), "[{}] owned ({bufs_empty}, {meta_empty}): {e}", case.name);
            let e = dp.socket(&std_sock).recv_blocking(bufs, metas, wait).unwrap_err();
            assert!(
                matches!(e, volley::Error::EmptyBatch),
                "[{}] borrowed ({bufs_empty}, {meta_empty}): {e}",
                case.name
            );
        }
    }
}

#[test]
fn try_calls_never_block_on_a_blocking_descriptor() {
    for case in cases() {
        // Made blocking by volley...
        let rx = case.bind_with("127.0.0.1:0", |c| c.blocking(true));
        let rx = std::sync::Arc::new(rx);
        let r = rx.clone();
        let err = returns_within(AT_ONCE, move || r.try_recv_batch(&mut RecvBatch::new()).unwrap_err());
        assert!(err.is_would_block(), "[{}] {err}", case.name);
        // ... or borrowed as it is: std sockets are blocking by default.
        let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let config = case.config();
        let err = returns_within(AT_ONCE, move || {
            let dp = Datapath::new(&std_sock, &config).unwrap();
            let mut buf = [0u8; 64 * 1024];
            let mut meta = [RecvMeta::default()];
            dp.socket(&std_sock).try_recv(&mut [IoSliceMut::new(&mut buf)], &mut meta).unwrap_err()
        });
        assert!(err.is_would_block(), "[{}] borrowed blocking socket: {err}", case.name);
    }
}

#[test]
fn a_blocking_socket_still_works_with_mio() {
    let mut rx = Config::new().blocking(true).bind(driver::addr("127.0.0.1:0")).unwrap();
    let mut poll = mio::Poll::new().unwrap();
    poll.registry().register(&mut rx, mio::Token(0), mio::Interest::READABLE).unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.send_to(b"edge", rx.local_addr().unwrap()).unwrap();
    let mut events = mio::Events::with_capacity(4);
    poll.poll(&mut events, Some(driver::TIMEOUT)).unwrap();
    assert!(events.iter().any(|e| e.token() == mio::Token(0) && e.is_readable()));
    let mut batch = RecvBatch::new();
    assert_eq!(rx.try_recv_batch(&mut batch).unwrap(), 1);
    let rx = std::sync::Arc::new(rx);
    let r = rx.clone();
    let err = returns_within(AT_ONCE, move || r.try_recv_batch(&mut RecvBatch::new()).unwrap_err());
    assert!(err.is_would_block(), "{err}");
}

// ---- syscalls per wake-up, counted with strace ----

/// Datagrams of the ping-pong: each is sent only after the previous one
/// was received, so each receive call is one wake-up with one datagram.
const ROUNDS: usize = 200;
const TRACED: &str = "recvmmsg,recvmsg,recvfrom,poll,ppoll,epoll_wait,setsockopt";

/// Child-mode body: `VOLLEY_TEST_CHILD=blocking:<case>:<blocking|nonblocking>`.
#[test]
#[ignore = "child process of receive_syscalls_per_wakeup"]
fn blocking_child() {
    let Some(mode) = child_mode() else { return };
    let mut parts = mode.split(':');
    if parts.next() != Some("blocking") {
        return;
    }
    let (name, blocking) = (parts.next().unwrap(), parts.next() == Some("blocking"));
    let case = cases().into_iter().find(|c| c.name == name).expect("known case");
    let rx = case.bind_with("127.0.0.1:0", |c| c.blocking(blocking));
    let to = rx.local_addr().unwrap();
    // The sender is a plain std socket (sendto, not traced as a receive).
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        for i in 0..ROUNDS {
            tx.send_to(&(i as u32).to_be_bytes(), to).unwrap();
            ack_rx.recv_timeout(driver::TIMEOUT).expect("the receiver acknowledges");
        }
    });
    let mut batch = RecvBatch::new();
    for i in 0..ROUNDS {
        // A constant timeout: SO_RCVTIMEO is set once.
        assert_eq!(rx.recv_batch_blocking(&mut batch, driver::TIMEOUT).unwrap(), 1);
        let (_, p) = batch.iter().next().unwrap();
        assert_eq!(p, (i as u32).to_be_bytes());
        ack_tx.send(()).unwrap();
    }
    sender.join().unwrap();
    println!("CHILD-OK {name} {blocking}");
}

#[test]
fn receive_syscalls_per_wakeup() {
    if child_mode().is_some() {
        return;
    }
    if let Some(why) = driver::strace_unavailable() {
        volley_tests::netlab::skip(&why);
        return;
    }
    for case in cases() {
        let mut counts = Vec::new();
        for mode in ["nonblocking", "blocking"] {
            let (out, calls) =
                driver::run_child_traced("blocking_child", &format!("blocking:{}:{mode}", case.name), TRACED)
                    .expect("strace");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("CHILD-OK"),
                "child {} {mode}: {}\n{stdout}\n{}",
                case.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let get = |n: &str| calls.get(n).copied().unwrap_or(0);
            let recv = get("recvmmsg") + get("recvmsg") + get("recvfrom");
            let waits = get("poll") + get("ppoll") + get("epoll_wait");
            println!(
                "[{}] {mode}: {ROUNDS} wake-ups: {recv} receive calls ({:.2} per wake-up), {waits} poll calls, {} setsockopt",
                case.name,
                recv as f64 / ROUNDS as f64,
                get("setsockopt")
            );
            counts.push((recv, waits, get("setsockopt")));
        }
        let [(nb_recv, nb_waits, nb_set), (b_recv, b_waits, b_set)] = counts[..] else { unreachable!() };
        // Blocking: no poll at all; one receive per wake-up with recvmmsg
        // (MSG_WAITFORONE), at most two with the portable loop (the
        // recvmsg after the datagram answers EAGAIN).
        // (Rust's runtime polls the standard descriptors once at start-up:
        // that one is in both counts.)
        assert!(b_waits <= 1, "[{}] the blocking mode polled: {b_waits} calls", case.name);
        let per_wakeup = if case.linux { 1 } else { 2 };
        assert!(
            b_recv <= (per_wakeup * ROUNDS) as u64,
            "[{}] {b_recv} receive calls for {ROUNDS} wake-ups (want <= {per_wakeup} each)",
            case.name
        );
        // SO_RCVTIMEO is set once for the constant timeout, not per call.
        assert_eq!(b_set, nb_set + 1, "[{}] setsockopt: blocking {b_set}, non-blocking {nb_set}", case.name);
        // And it is fewer syscalls than the non-blocking way whenever that
        // way had to wait (a poll per datagram not there yet). When every
        // datagram was already queued as the receiver came back (a slow
        // receiver: seen under ASan, 200 receives and no poll) both take one
        // receive per datagram, and blocking must take no more.
        let (b, nb) = (b_recv + b_waits, nb_recv + nb_waits);
        if nb_waits > 1 {
            assert!(b < nb, "[{}] blocking {b_recv}+{b_waits} vs non-blocking {nb_recv}+{nb_waits}", case.name);
        } else {
            println!("[{}] the non-blocking receiver never waited: comparing for no more calls", case.name);
            assert!(b <= nb, "[{}] blocking {b_recv}+{b_waits} vs non-blocking {nb_recv}+{nb_waits}", case.name);
        }
    }
}

/// A signal delivered while a receive sleeps in the kernel (a handler
/// installed without `SA_RESTART`: the kernel answers `EINTR`) does not
/// end the receive: volley retries it, and the datagram sent after the
/// signal is what it returns.
#[test]
fn a_signal_does_not_end_a_blocking_receive() {
    extern "C" fn ignore(_: libc::c_int) {}
    // SAFETY: an all-zero `sigaction` is valid (empty mask, no flags); the
    // handler does nothing, so it is async-signal-safe; SIGUSR2 is not used
    // elsewhere in this test binary.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
        assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
    }
    for case in cases() {
        let rx = std::sync::Arc::new(case.bind_with("127.0.0.1:0", |c| c.blocking(true)));
        let to = rx.local_addr().unwrap();
        let (tid_tx, tid_rx) = mpsc::channel();
        let r = rx.clone();
        let receiver = std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut batch = RecvBatch::new();
            let got = r.recv_batch_blocking(&mut batch, Duration::from_secs(10));
            got.map(|n| (n, batch.iter().next().map(|(_, p)| p.to_vec())))
        });
        let tid = tid_rx.recv().unwrap();
        // Let it reach the kernel, interrupt it (more than once: a signal
        // that lands before the call only runs the handler), then send.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: `tid` is the receiver thread, alive until joined below.
            assert_eq!(unsafe { libc::pthread_kill(tid, libc::SIGUSR2) }, 0);
        }
        std::thread::sleep(Duration::from_millis(50));
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"after the signal", to).unwrap();
        let got = receiver.join().unwrap();
        match got {
            Ok((n, first)) => {
                assert_eq!(n, 1, "[{}]", case.name);
                assert_eq!(first.as_deref(), Some(&b"after the signal"[..]), "[{}]", case.name);
            }
            Err(e) => panic!("[{}] the signal ended the receive: {e}", case.name),
        }
    }
}
