//! ICMP errors must neither stop nor deafen a socket (issue 12).
//!
//! Every class of ICMP / ICMPv6 error is forged from a raw socket in one
//! namespace at a volley socket in another (`volley_tests::icmp`), quoting a
//! datagram the socket "sent", so the victim's kernel delivers it to that
//! socket as it would a router's or the peer's:
//!
//! - the toolkit itself, checked against plain sockets: every class comes
//!   back with its errno, and the hard/soft split holds;
//! - with `recv_errors(true)` the socket keeps receiving (the next real
//!   datagram arrives, `try_recv_batch` never returns the error) and
//!   `try_recv_error` reports it (kind, errno, destination, offender);
//! - without it, a connected socket gets a hard error's errno once, and
//!   `is_icmp()` says so;
//! - starvation: 2,000 errors interleaved with 200 real datagrams, all 200
//!   arrive, and the drained errors are accounted for;
//! - a send that meets a stale pending error is retried.
// Linux only: network namespaces, raw sockets and the ICMP error queue.
#![cfg(target_os = "linux")]

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use volley::{Config, Error, IcmpError, RecvBatch, Socket, Transmit};
use volley_tests::icmp::{classes, flood, pop_errqueue, set_recverr, wait_pollerr, Class, Pair, DATAGRAMS};

/// Port the forged errors quote as the destination.
const QUOTED_PORT: u16 = 9999;
const WAIT: Duration = Duration::from_secs(3);

/// The errnos the kernel derives from ICMP / ICMPv6.
const ICMP_ERRNOS: [i32; 11] = [
    libc::ECONNREFUSED,
    libc::ECONNRESET,
    libc::EHOSTUNREACH,
    libc::ENETUNREACH,
    libc::EHOSTDOWN,
    libc::ENONET,
    libc::ENOPROTOOPT,
    libc::EOPNOTSUPP,
    libc::EPROTO,
    libc::EMSGSIZE,
    libc::EACCES,
];

fn icmp_errno(e: &Error) -> Option<i32> {
    let errno = match e {
        Error::MessageTooLong { .. } => Some(libc::EMSGSIZE),
        e => e.raw_os_error(),
    };
    errno.filter(|n| ICMP_ERRNOS.contains(n))
}

fn quoted(pair: &Pair, v6: bool) -> SocketAddr {
    SocketAddr::new(pair.quoted_ip(v6), QUOTED_PORT)
}

// ---------------------------------------------------------------------------
// The toolkit against plain sockets.

fn toolkit_reaches_plain_sockets(v6: bool) {
    let Some(pair) = Pair::new() else { return };
    let forger = pair.forger(v6);
    let victim_ip = pair.victim_ip(v6);
    let dest = quoted(&pair, v6);
    let mut failures = Vec::new();
    for class in classes(v6) {
        // Unconnected, IP_RECVERR on: every class sets the pending error and
        // queues one error-queue entry.
        let sock = pair.victim.run(move || UdpSocket::bind(SocketAddr::new(victim_ip, 0))).expect("bind");
        set_recverr(sock.as_fd(), v6).expect("IP_RECVERR");
        sock.set_nonblocking(true).expect("nonblocking");
        let at = sock.local_addr().expect("local_addr");
        forger.send(class, at, dest).expect("forge");
        if !wait_pollerr(sock.as_fd(), WAIT) {
            failures.push(format!("{}: no POLLERR with IP_RECVERR", class.name));
            continue;
        }
        let got = sock.recv(&mut [0u8; 64]).map_err(|e| e.raw_os_error());
        if got != Err(Some(class.errno)) {
            failures.push(format!("{}: recv gave {got:?}, want errno {}", class.name, class.errno));
        }
        let queued = (pop_errqueue(sock.as_fd()).expect("errqueue"), pop_errqueue(sock.as_fd()).expect("errqueue"));
        if !matches!(queued, (Some(_), None)) {
            failures.push(format!("{}: error queue held {queued:?}, want one entry", class.name));
        }

        // Connected, no IP_RECVERR: only hard errors are reported.
        let sock = pair.victim.run(move || UdpSocket::bind(SocketAddr::new(victim_ip, 0))).expect("bind");
        sock.connect(dest).expect("connect");
        sock.set_nonblocking(true).expect("nonblocking");
        forger.send(class, sock.local_addr().expect("local_addr"), dest).expect("forge");
        let wait = if class.hard { WAIT } else { Duration::from_millis(200) };
        let err = wait_pollerr(sock.as_fd(), wait);
        if err != class.hard {
            failures.push(format!("{}: connected without RECVERR: POLLERR {err}, hard {}", class.name, class.hard));
        } else if class.hard {
            let got = sock.recv(&mut [0u8; 64]).map_err(|e| e.raw_os_error());
            if got != Err(Some(class.errno)) {
                failures.push(format!("{}: connected recv gave {got:?}, want errno {}", class.name, class.errno));
            }
        }
    }
    assert!(failures.is_empty(), "forged errors did not behave as the kernel tables say:\n{}", failures.join("\n"));
}

#[test]
fn toolkit_every_class_reaches_plain_sockets_v4() {
    toolkit_reaches_plain_sockets(false);
}

#[test]
fn toolkit_every_class_reaches_plain_sockets_v6() {
    toolkit_reaches_plain_sockets(true);
}

// ---------------------------------------------------------------------------
// Through the core.

/// What a bounded receive loop saw.
#[derive(Debug, Default)]
struct Seen {
    payloads: Vec<Vec<u8>>,
    /// ICMP-derived errors `try_recv_batch` returned (errnos).
    icmp_errors: Vec<i32>,
}

/// Receives until `want` datagrams arrived or `timeout` passed, noting every
/// ICMP-derived error on the way (any other error panics).
fn recv_until(sock: &Socket, want: usize, timeout: Duration) -> Seen {
    let deadline = Instant::now() + timeout;
    let mut seen = Seen::default();
    let mut batch = RecvBatch::new();
    // Bounded in time and in calls.
    for _ in 0..1_000_000 {
        if seen.payloads.len() >= want {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match sock.try_recv_batch(&mut batch) {
            Ok(_) => seen.payloads.extend(batch.iter().map(|(_, p)| p.to_vec())),
            Err(e) if e.is_would_block() => {
                sock.wait_readable(left.min(Duration::from_millis(50))).expect("wait_readable");
            }
            Err(e) => match icmp_errno(&e) {
                Some(errno) => seen.icmp_errors.push(errno),
                None => panic!("receive failed: {e}"),
            },
        }
    }
    seen
}

fn check_report(class: &Class, got: Option<IcmpError>, dest: SocketAddr, offender: std::net::IpAddr) -> Option<String> {
    let Some(e) = got else { return Some(format!("{}: try_recv_error reported nothing", class.name)) };
    let want = (class.kind(), class.errno, Some(dest), Some(offender));
    let have = (e.kind, e.errno, e.destination, e.offender);
    (want != have).then(|| format!("{}: try_recv_error gave {have:?}, want {want:?}", class.name))
}

/// With `recv_errors(true)`: each class is reported by `try_recv_error`,
/// never by `try_recv_batch`, and the next real datagram arrives.
fn recv_errors_socket_keeps_receiving(v6: bool) {
    let Some(pair) = Pair::new() else { return };
    let forger = pair.forger(v6);
    let peer = pair.forger_udp(SocketAddr::new(pair.forger_ip(v6), 0));
    let (victim_ip, forger_ip, dest) = (pair.victim_ip(v6), pair.forger_ip(v6), quoted(&pair, v6));
    let mut failures = Vec::new();
    for class in classes(v6) {
        let sock = pair
            .victim
            .run(move || Config::new().recv_errors(true).bind(SocketAddr::new(victim_ip, 0)))
            .expect("bind victim");
        let at = sock.local_addr().expect("local_addr");
        forger.send(class, at, dest).expect("forge");
        // Same link, same sender thread: the datagram arrives after the error.
        peer.send_to(class.name.as_bytes(), at).expect("send real datagram");
        let seen = recv_until(&sock, 1, WAIT);
        if !seen.icmp_errors.is_empty() {
            failures.push(format!("{}: try_recv_batch returned errno(s) {:?}", class.name, seen.icmp_errors));
        }
        if seen.payloads != [class.name.as_bytes()] {
            failures.push(format!("{}: received {:?}, want the one real datagram", class.name, seen.payloads));
        }
        failures.extend(check_report(class, sock.try_recv_error().expect("try_recv_error"), dest, forger_ip));
        let extra = sock.try_recv_error().expect("try_recv_error");
        if extra.is_some() {
            failures.push(format!("{}: a second report {extra:?}", class.name));
        }
    }
    assert!(failures.is_empty(), "recv_errors(true) socket, {} classes:\n{}", classes(v6).len(), failures.join("\n"));
}

#[test]
fn recv_errors_socket_keeps_receiving_every_class_v4() {
    recv_errors_socket_keeps_receiving(false);
}

#[test]
fn recv_errors_socket_keeps_receiving_every_class_v6() {
    recv_errors_socket_keeps_receiving(true);
}

/// Without `recv_errors`, a connected socket gets a hard error's errno once
/// from `try_recv_batch` (as std does), `is_icmp()` true; soft errors are
/// not reported by the kernel at all. The real datagram arrives after.
fn connected_without_recv_errors(v6: bool) {
    let Some(pair) = Pair::new() else { return };
    let forger = pair.forger(v6);
    let (victim_ip, dest) = (pair.victim_ip(v6), quoted(&pair, v6));
    let peer = pair.forger_udp(dest); // the connected peer itself
    let mut failures = Vec::new();
    for class in classes(v6) {
        let sock = pair.victim.run(move || Config::new().bind(SocketAddr::new(victim_ip, 0))).expect("bind victim");
        sock.connect(dest).expect("connect");
        let at = sock.local_addr().expect("local_addr");
        forger.send(class, at, dest).expect("forge");
        if class.hard && !wait_pollerr(sock.as_fd(), WAIT) {
            failures.push(format!("{}: the error never became pending", class.name));
            continue;
        }
        peer.send_to(class.name.as_bytes(), at).expect("send real datagram");
        let mut batch = RecvBatch::new();
        let mut errors = Vec::new();
        let mut got = Vec::new();
        let deadline = Instant::now() + WAIT;
        while got.is_empty() && Instant::now() < deadline {
            match sock.try_recv_batch(&mut batch) {
                Ok(_) => got.extend(batch.iter().map(|(_, p)| p.to_vec())),
                Err(e) if e.is_would_block() => {
                    sock.wait_readable(Duration::from_millis(50)).expect("wait_readable");
                }
                Err(e) => errors.push((e.raw_os_error(), e.is_icmp())),
            }
        }
        let want_errors = if class.hard { vec![(Some(class.errno), true)] } else { Vec::new() };
        if errors != want_errors {
            failures.push(format!("{}: try_recv_batch errors {errors:?}, want {want_errors:?}", class.name));
        }
        if got != [class.name.as_bytes()] {
            failures.push(format!("{}: received {got:?}", class.name));
        }
    }
    assert!(failures.is_empty(), "connected socket without recv_errors:\n{}", failures.join("\n"));
}

#[test]
fn connected_without_recv_errors_gets_hard_errno_once_v4() {
    connected_without_recv_errors(false);
}

#[test]
fn connected_without_recv_errors_gets_hard_errno_once_v6() {
    connected_without_recv_errors(true);
}

/// Every errno of the list is ICMP-derived for the free function
/// and the error type, and ordinary errors are not.
#[test]
fn is_icmp_covers_exactly_the_icmp_errnos() {
    for errno in ICMP_ERRNOS {
        let io = std::io::Error::from_raw_os_error(errno);
        assert!(volley::is_icmp_error(&io), "errno {errno} ({io})");
        assert!(Error::Io(std::io::Error::from_raw_os_error(errno)).is_icmp(), "Error::Io errno {errno}");
    }
    assert!(Error::MessageTooLong { size: 2000, mtu: Some(1280) }.is_icmp());
    for errno in [libc::EAGAIN, libc::EINVAL, libc::ENOBUFS, libc::EBADF, libc::EPERM, libc::EIO] {
        let io = std::io::Error::from_raw_os_error(errno);
        assert!(!volley::is_icmp_error(&io), "errno {errno} ({io}) is not from ICMP");
    }
    assert!(!Error::EmptyBatch.is_icmp());
}

// ---------------------------------------------------------------------------
// Starvation.

fn starvation_core(v6: bool) {
    let Some(pair) = Pair::new() else { return };
    let class = Class::port_unreachable(v6);
    let victim_ip = pair.victim_ip(v6);
    let sock = Arc::new(
        pair.victim.run(move || Config::new().recv_errors(true).bind(SocketAddr::new(victim_ip, 0))).expect("bind"),
    );
    let at = sock.local_addr().expect("local_addr");
    let received = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (sock, received, done) = (sock.clone(), received.clone(), done.clone());
        thread::spawn(move || {
            let mut seen = Seen::default();
            let start = Instant::now();
            // Bounded: 30 s, or 2 s after the sender is done.
            let mut done_at = None::<Instant>;
            while seen.payloads.len() < DATAGRAMS && start.elapsed() < Duration::from_secs(30) {
                if done.load(Ordering::Acquire) && done_at.get_or_insert_with(Instant::now).elapsed() > WAIT {
                    break;
                }
                let s = recv_until(&sock, DATAGRAMS - seen.payloads.len(), Duration::from_millis(20));
                seen.payloads.extend(s.payloads);
                seen.icmp_errors.extend(s.icmp_errors);
                received.store(seen.payloads.len(), Ordering::Release);
            }
            seen
        })
    };
    let start = Instant::now();
    let f = flood(&pair, &class, at, &received);
    done.store(true, Ordering::Release);
    let seen = receiver.join().expect("receiver");
    let mut reported = 0usize;
    while reported < 10 * f.forged && sock.try_recv_error().expect("try_recv_error").is_some() {
        reported += 1;
    }
    let lost = sock.lost_icmp_errors();
    println!(
        "[core v6={v6}] forged {} errors + {} datagrams in {:.2?} (stalled {}): received {}/{}, try_recv_batch \
         returned {} ICMP errors, try_recv_error then reported {reported}, lost_icmp_errors {lost}",
        f.forged,
        f.sent,
        start.elapsed(),
        f.stalled,
        seen.payloads.len(),
        f.sent,
        seen.icmp_errors.len()
    );
    let mut seqs: Vec<u32> = seen.payloads.iter().map(|p| u32::from_be_bytes(p[..4].try_into().unwrap())).collect();
    seqs.sort_unstable();
    assert_eq!(seqs.len(), DATAGRAMS, "received {} of {DATAGRAMS} real datagrams", seqs.len());
    assert_eq!(seqs, (0..DATAGRAMS as u32).collect::<Vec<_>>());
    assert!(seen.icmp_errors.is_empty(), "try_recv_batch returned {} ICMP errors", seen.icmp_errors.len());
    assert!(reported <= 64, "the ring holds at most 64 entries, {reported} reported");
    // Paced as in `flood`, the kernel never refuses an entry, so everything
    // forged was drained into the ring: kept or counted as lost.
    // A `Pending` entry may count one error twice (a receive returned
    // `sk_err` after its queue entry was drained: the kernel queues before
    // it sets `sk_err`), so "==" only from below.
    let forged = f.forged as u64;
    assert!(reported as u64 + lost >= forged, "an error vanished: reported + lost < forged");
    assert!(reported as u64 + lost <= forged + forged / 10, "far more errors counted than forged");
}

#[test]
fn starvation_2000_errors_200_datagrams_core_v4() {
    starvation_core(false);
}

#[test]
fn starvation_2000_errors_200_datagrams_core_v6() {
    starvation_core(true);
}

// ---------------------------------------------------------------------------
// Sends that meet a stale error.

/// A connected socket sends while its peer is down (the port-unreachable
/// leaves ECONNREFUSED pending), the peer comes back on the same port: the
/// next send goes through (the core retries once past the stale error) and
/// the stale error is readable from `try_recv_error`.
#[test]
fn send_retries_past_a_stale_error() {
    let peer = UdpSocket::bind("127.0.0.1:0").expect("bind peer");
    let peer_addr = peer.local_addr().expect("local_addr");
    drop(peer); // down
    let tx = Socket::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    tx.connect(peer_addr).expect("connect");
    assert_eq!(tx.try_send_batch(&[Transmit::new(peer_addr, b"into the void")]).expect("first send").transmits, 1);
    assert!(wait_pollerr(tx.as_fd(), WAIT), "the port-unreachable never came back (icmp_msgs_per_sec budget?)");
    let Ok(peer) = UdpSocket::bind(peer_addr) else {
        // Another test took the port in between: nothing to learn.
        eprintln!("port {peer_addr} was taken meanwhile; skipped");
        return;
    };
    peer.set_read_timeout(Some(WAIT)).expect("timeout");
    let sent = tx.try_send_batch(&[Transmit::new(peer_addr, b"fresh")]);
    assert!(matches!(sent, Ok(volley::Sent { transmits: 1, segments: 0 })), "send after the peer came back: {sent:?}");
    let mut buf = [0u8; 16];
    let (n, _) = peer.recv_from(&mut buf).expect("the fresh datagram arrives");
    assert_eq!(&buf[..n], b"fresh");
    let stale = tx.try_recv_error().expect("try_recv_error");
    assert_eq!(stale.map(|e| e.errno), Some(libc::ECONNREFUSED), "the stale error is recorded: {stale:?}");
}
