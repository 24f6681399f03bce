//! Socket set-up options (issue 3) observed on real sockets on loopback:
//! reuse-port groups and their steering, buffer grants, the ICMP error
//! queue, receive timestamps, SO_TXTIME, connect/disconnect, bind-to-device.
// Linux only: reuse-port groups, the ICMP error queue, timestamps, SO_TXTIME, bind-to-device.
#![cfg(target_os = "linux")]

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use volley::{
    BindError, Config, Error, IcmpKind, MulticastError, MulticastInterface, Pmtud, RecvBatch, Socket, Steering,
    Transmit,
};

const WAIT: Duration = Duration::from_secs(5);

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Drains every socket of `group` until `expected` datagrams arrived (or 5 s
/// passed), returning the 4-byte ids each socket received.
fn drain_group(group: &[Socket], expected: usize) -> Vec<Vec<u32>> {
    let mut got = vec![Vec::new(); group.len()];
    let mut batch = RecvBatch::new();
    let deadline = Instant::now() + WAIT;
    while got.iter().map(Vec::len).sum::<usize>() < expected && Instant::now() < deadline {
        for (i, s) in group.iter().enumerate() {
            if s.try_recv_batch(&mut batch).is_ok() {
                got[i].extend(batch.iter().map(|(_, p)| u32::from_be_bytes(p[..4].try_into().unwrap())));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    got
}

#[test]
fn reuse_port_group_spreads_flows_and_never_duplicates() {
    let group = Config::new().bind_reuse_port_group(localhost(), 4, Steering::Hash).unwrap();
    let addr = group[0].local_addr().unwrap();
    // 64 source ports, 4 datagrams each, every datagram a unique id.
    let mut sent = 0u32;
    for _ in 0..64 {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..4 {
            client.send_to(&sent.to_be_bytes(), addr).unwrap();
            sent += 1;
        }
    }
    let got = drain_group(&group, sent as usize);
    let counts: Vec<usize> = got.iter().map(Vec::len).collect();
    println!("per-socket datagrams: {counts:?}");
    let all: Vec<u32> = got.into_iter().flatten().collect();
    let unique: HashSet<u32> = all.iter().copied().collect();
    assert_eq!(all.len(), sent as usize, "every datagram received exactly once in total");
    assert_eq!(unique.len(), all.len(), "no datagram received twice");
    assert!(counts.iter().all(|&c| c > 0), "all four sockets got a share: {counts:?}");
}

fn pin_to_cpu(cpu: usize) -> bool {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    // Pid 0: this thread.
    set.set(cpu).is_ok() && sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_ok()
}

#[test]
fn cpu_steering_sends_each_cpus_packets_to_its_socket() {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cpus < 2 {
        println!("skipped: CPU steering needs 2 CPUs, this machine has {cpus}");
        return;
    }
    let group = Config::new().bind_reuse_port_group(localhost(), 2, Steering::Cpu).unwrap();
    let addr = group[0].local_addr().unwrap();
    for cpu in 0..2 {
        // On loopback the receive path runs on the sending CPU.
        std::thread::spawn(move || {
            assert!(pin_to_cpu(cpu), "cannot pin to CPU {cpu}");
            for i in 0..20u32 {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.send_to(&i.to_be_bytes(), addr).unwrap();
            }
        })
        .join()
        .unwrap();
        let got = drain_group(&group, 20);
        let counts: Vec<usize> = got.iter().map(Vec::len).collect();
        println!("sender on CPU {cpu}: per-socket {counts:?}");
        let mut want = vec![0; 2];
        want[cpu] = 20;
        assert_eq!(counts, want);
    }
}

#[test]
fn buffer_sizes_report_request_and_grant() {
    let sock = Config::new().recv_buffer_size(1 << 20).send_buffer_size(1 << 19).bind(localhost()).unwrap();
    let (r, s) = (sock.recv_buffer_size(), sock.send_buffer_size());
    println!("recv {r:?} send {s:?}");
    assert_eq!(r.requested, Some(1 << 20));
    assert_eq!(s.requested, Some(1 << 19));
    if nix::unistd::geteuid().is_root() {
        // Root may exceed net.core.rmem_max (SO_RCVBUFFORCE); Linux doubles.
        assert!(r.granted >= 1 << 20, "{r:?}");
        assert!(s.granted >= 1 << 19, "{s:?}");
    } else {
        println!("not root: grant limited by net.core.rmem_max/wmem_max");
        assert!(r.granted > 0 && s.granted > 0);
    }
    let plain = Socket::bind(localhost()).unwrap();
    assert_eq!(plain.recv_buffer_size().requested, None);
}

#[test]
fn error_queue_reports_port_unreachable_and_socket_keeps_working() {
    let sock = Config::new().recv_errors(true).bind(localhost()).unwrap();
    assert!(sock.capabilities().recv_errors);
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    sock.connect(dead_addr).unwrap();
    sock.send_batch_blocking(&[Transmit::new(dead_addr, b"anyone?")], WAIT).unwrap();
    let deadline = Instant::now() + WAIT;
    let err = loop {
        if let Some(e) = sock.try_recv_error().unwrap() {
            break e;
        }
        assert!(Instant::now() < deadline, "no ICMP error queued");
        std::thread::sleep(Duration::from_millis(5));
    };
    println!("{err:?}");
    assert_eq!(err.kind, IcmpKind::PortUnreachable);
    assert_eq!(err.destination, Some(dead_addr));
    assert_eq!(err.errno, libc::ECONNREFUSED);
    assert!(sock.try_recv_error().unwrap().is_none(), "reported once");
    // The socket still receives from its peer.
    let revived = UdpSocket::bind(dead_addr).unwrap();
    revived.send_to(b"back", sock.local_addr().unwrap()).unwrap();
    let mut batch = RecvBatch::new();
    sock.recv_batch_blocking(&mut batch, WAIT).unwrap();
    assert_eq!(batch.iter().next().unwrap().1, b"back");
}

#[test]
fn receive_timestamps_are_recent() {
    let rx = Config::new().timestamps(true).bind(localhost()).unwrap();
    assert!(rx.capabilities().timestamps);
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"t", rx.local_addr().unwrap()).unwrap();
    let mut batch = RecvBatch::new();
    rx.recv_batch_blocking(&mut batch, WAIT).unwrap();
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let ts = batch.iter().next().unwrap().0.timestamp.expect("timestamp");
    assert!(ts + Duration::from_millis(10) >= before && ts <= after, "{ts:?} not in [{before:?}, {after:?}]");
    // Off by default.
    let plain = Socket::bind(localhost()).unwrap();
    UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"t", plain.local_addr().unwrap()).unwrap();
    plain.recv_batch_blocking(&mut batch, WAIT).unwrap();
    assert_eq!(batch.iter().next().unwrap().0.timestamp, None);
}

#[test]
fn txtime_is_accepted_by_the_kernel() {
    let tx = Config::new().txtime(true).bind(localhost()).unwrap();
    assert!(tx.capabilities().txtime);
    let rx = Socket::bind(localhost()).unwrap();
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock_gettime");
    let at = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64 + 1_000_000;
    // Without an fq/etf qdisc (none on these machines) the kernel accepts the
    // SCM_TXTIME message and sends at once; pacing itself is not observable.
    tx.send_batch_blocking(&[Transmit::new(rx.local_addr().unwrap(), b"later").with_txtime(at)], WAIT).unwrap();
    let mut batch = RecvBatch::new();
    rx.recv_batch_blocking(&mut batch, WAIT).unwrap();
    assert_eq!(batch.iter().next().unwrap().1, b"later");
}

#[test]
fn connect_filters_and_disconnect_restores() {
    let sock = Socket::bind(localhost()).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    sock.connect(peer.local_addr().unwrap()).unwrap();
    assert_eq!(sock.peer_addr().unwrap(), peer.local_addr().unwrap());
    let lo_mtu: u32 = std::fs::read_to_string("/sys/class/net/lo/mtu").unwrap().trim().parse().unwrap();
    let mtu = sock.path_mtu().unwrap();
    println!("path MTU over lo: {mtu} (device MTU {lo_mtu})");
    assert!(mtu >= 1280 && mtu <= lo_mtu);
    stranger.send_to(b"stranger", sock.local_addr().unwrap()).unwrap();
    peer.send_to(b"peer", sock.local_addr().unwrap()).unwrap();
    let mut batch = RecvBatch::new();
    sock.recv_batch_blocking(&mut batch, WAIT).unwrap();
    let first: Vec<Vec<u8>> = batch.iter().map(|(_, p)| p.to_vec()).collect();
    assert_eq!(first, [b"peer".to_vec()], "a connected socket only hears its peer");
    sock.disconnect().unwrap();
    assert!(sock.path_mtu().is_err(), "no path MTU without a peer");
    assert_eq!(sock.local_addr().unwrap(), local, "disconnect keeps the port");
    stranger.send_to(b"stranger2", sock.local_addr().unwrap()).unwrap();
    sock.recv_batch_blocking(&mut batch, WAIT).unwrap();
    assert_eq!(batch.iter().next().unwrap().1, b"stranger2");
}

#[test]
fn bind_device_restricts_and_rejects_unknown_interfaces() {
    let sock = Config::new().bind_device("lo").bind(localhost()).unwrap();
    UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"via lo", sock.local_addr().unwrap()).unwrap();
    let mut batch = RecvBatch::new();
    sock.recv_batch_blocking(&mut batch, WAIT).unwrap();
    assert_eq!(batch.iter().next().unwrap().0.ifindex, Some(1));
    match Config::new().bind_device("vly-nonexist0").bind(localhost()) {
        Err(Error::Bind { reason: BindError::Other, source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::ENODEV));
        }
        other => panic!("expected ENODEV bind error, got {other:?}"),
    }
}

#[test]
fn capability_report_names_every_feature() {
    let caps = Socket::bind(localhost()).unwrap().capabilities();
    let text = caps.to_string();
    println!("{text}");
    for name in ["recvmmsg/sendmmsg", "GSO", "GRO", "pktinfo", "ECN", "TTL", "timestamps", "TXTIME", "drop counter"] {
        assert!(text.contains(name), "report lacks {name}");
    }
}

#[test]
fn src_ifindex_picks_the_outgoing_interface() {
    let rx = Socket::bind(localhost()).unwrap();
    let tx = Socket::bind(localhost()).unwrap();
    let lo = 1; // loopback is always interface 1 on Linux
    let to = rx.local_addr().unwrap();
    tx.send_batch_blocking(&[Transmit::new(to, b"via lo").with_src_ifindex(lo)], WAIT).unwrap();
    let mut batch = RecvBatch::new();
    rx.recv_batch_blocking(&mut batch, WAIT).unwrap();
    let (meta, payload) = batch.iter().next().unwrap();
    assert_eq!((payload, meta.ifindex), (&b"via lo"[..], Some(lo)));
    // An interface that does not exist is refused, not silently ignored.
    let err = tx.try_send_batch(&[Transmit::new(to, b"nowhere").with_src_ifindex(999_999)]).unwrap_err();
    println!("{err}");
    assert!(matches!(err.raw_os_error(), Some(libc::ENODEV | libc::ENXIO | libc::EINVAL)), "{err:?}");
}

#[test]
fn io_errors_are_not_repeated_in_the_source_chain() {
    use std::error::Error as _;
    let err = Error::from(std::io::Error::from_raw_os_error(libc::EPERM));
    assert!(err.to_string().contains("not permitted"), "{err}");
    assert!(err.source().is_none(), "Display already says it: {:?}", err.source());
}

/// An ICMP error about one destination must not fail a send to another: with
/// the error queue on, the kernel leaves the errno pending on the socket.
#[test]
fn a_pending_icmp_error_does_not_fail_a_send_elsewhere() {
    let sock = Config::new().recv_errors(true).bind(localhost()).unwrap();
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let live = Socket::bind(localhost()).unwrap();
    sock.send_batch_blocking(&[Transmit::new(dead_addr, b"x")], WAIT).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // let the ICMP come back
    sock.send_batch_blocking(&[Transmit::new(live.local_addr().unwrap(), b"fine")], WAIT).unwrap();
    let mut batch = RecvBatch::new();
    live.recv_batch_blocking(&mut batch, WAIT).unwrap();
    assert_eq!(batch.iter().next().unwrap().1, b"fine");
    // The error itself is not lost: it is in the error queue.
    let err = sock.try_recv_error().unwrap().expect("the ICMP error is queued");
    assert_eq!((err.kind, err.destination), (IcmpKind::PortUnreachable, Some(dead_addr)));
}

/// With the error queue on, ICMP errors never fail a receive: the pending
/// error is moved, with the queue's entries, to the socket's ring, and the
/// receive returns the datagram queued behind it.
#[test]
fn with_the_error_queue_a_receive_never_returns_an_icmp_error() {
    let sock = Config::new().recv_errors(true).bind(localhost()).unwrap();
    let mut dead = Vec::new();
    for _ in 0..5 {
        let d = UdpSocket::bind("127.0.0.1:0").unwrap();
        dead.push(d.local_addr().unwrap());
    } // all closed here
    for &d in &dead {
        sock.send_batch_blocking(&[Transmit::new(d, b"anyone?")], WAIT).unwrap();
    }
    // Wait until the errors are back (poll reports POLLERR), then queue data.
    let deadline = Instant::now() + WAIT;
    while !sock.wait_readable(Duration::from_millis(10)).unwrap() && !errors_pending(&sock) {
        assert!(Instant::now() < deadline, "no ICMP error came back");
    }
    std::thread::sleep(Duration::from_millis(20)); // the rest of the five
    let live = UdpSocket::bind("127.0.0.1:0").unwrap();
    live.send_to(b"data", sock.local_addr().unwrap()).unwrap();
    let mut batch = RecvBatch::new();
    let n = sock.recv_batch_blocking(&mut batch, WAIT).expect("the receive returns data, not the ICMP error");
    assert_eq!(n, 1);
    assert_eq!(batch.iter().next().unwrap().1, b"data");
    let mut seen = Vec::new();
    while let Some(e) = sock.try_recv_error().unwrap() {
        assert_eq!(e.kind, IcmpKind::PortUnreachable, "{e:?}");
        seen.push(e.destination.expect("destination"));
    }
    assert!(!seen.is_empty() && seen.iter().all(|d| dead.contains(d)), "{seen:?} vs {dead:?}");
    assert_eq!(sock.lost_icmp_errors(), 0);
    println!("{} of {} port unreachables kept (the kernel rate-limits them)", seen.len(), dead.len());
}

/// POLLERR without POLLIN: an ICMP error is queued.
fn errors_pending(sock: &Socket) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfd = [PollFd::new(std::os::fd::AsFd::as_fd(sock), PollFlags::empty())];
    let _ = poll(&mut pfd, PollTimeout::ZERO);
    pfd[0].revents().is_some_and(|r| r.contains(PollFlags::POLLERR))
}

#[test]
fn disconnect_keeps_a_wildcard_bind() {
    let sock = Socket::bind("0.0.0.0:0".parse().unwrap()).unwrap();
    let bound = sock.local_addr().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(peer.local_addr().unwrap()).unwrap();
    sock.disconnect().unwrap();
    assert_eq!(sock.local_addr().unwrap(), bound, "still the wildcard, same port");
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    other.send_to(b"to .2", ("127.0.0.2", bound.port())).unwrap();
    let mut batch = RecvBatch::new();
    sock.recv_batch_blocking(&mut batch, WAIT).unwrap();
    let (meta, payload) = batch.iter().next().unwrap();
    assert_eq!((payload, meta.dst_ip), (&b"to .2"[..], Some("127.0.0.2".parse().unwrap())));
}

/// A socket bound to an explicit port keeps it through a disconnect (the
/// kernel does not unhash it), and volley must not try to bind it again.
#[test]
fn disconnect_keeps_an_explicit_port() {
    let free = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let sock = match Socket::bind(free) {
        Ok(s) => s,
        Err(e) => panic!("binding {free} (free a moment ago): {e}"),
    };
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(peer.local_addr().unwrap()).unwrap();
    sock.disconnect().unwrap();
    assert_eq!(sock.local_addr().unwrap(), free, "same address and port after disconnect");
}

/// Joins that cannot work are typed errors naming why (no network
/// namespace needed; moved here from tests/multicast.rs so the mutation
/// run, which leaves the namespace suites out, covers them).
#[test]
fn bad_joins_are_typed_errors() {
    let v4 = Socket::bind("0.0.0.0:0".parse().unwrap()).unwrap();
    let v6only = Config::new().ipv6_only(true).bind("[::]:0".parse().unwrap()).unwrap();
    let reason = |r: Result<(), Error>| match r {
        Err(Error::Multicast { reason, .. }) => reason,
        other => panic!("expected a multicast error, got {other:?}"),
    };
    let any = MulticastInterface::Any;
    assert_eq!(reason(v4.join_multicast("10.0.0.1".parse().unwrap(), any)), MulticastError::NotMulticast);
    assert_eq!(reason(v4.join_multicast("ff15::1".parse().unwrap(), any)), MulticastError::GroupFamily);
    assert_eq!(reason(v6only.join_multicast("239.1.1.1".parse().unwrap(), any)), MulticastError::GroupFamily);
    assert_eq!(
        reason(v4.join_source_multicast("232.1.1.1".parse().unwrap(), "fd00::1".parse().unwrap(), any)),
        MulticastError::SourceFamily
    );
    assert_eq!(
        reason(v6only.join_multicast("ff15::1".parse().unwrap(), MulticastInterface::V4("127.0.0.1".parse().unwrap()))),
        MulticastError::InterfaceFamily
    );
    let missing = MulticastInterface::Index(999_999);
    let err = v4.join_multicast("239.1.1.1".parse().unwrap(), missing).unwrap_err();
    println!("{err}");
    assert!(matches!(err, Error::Multicast { reason: MulticastError::NoSuchInterface, source: Some(_), .. }));
    assert!(err.to_string().contains("239.1.1.1"), "message names the group: {err}");
    let err = v6only.join_multicast("ff15::1".parse().unwrap(), missing).unwrap_err();
    assert!(matches!(err, Error::Multicast { reason: MulticastError::NoSuchInterface, .. }), "{err}");
    assert!(matches!(
        v4.set_multicast_interface(missing),
        Err(Error::Multicast { reason: MulticastError::NoSuchInterface, .. })
    ));
    // Leaving what was never joined is said so, on both families; a
    // source-specific leave likewise fails, typed.
    assert_eq!(reason(v4.leave_multicast("239.1.1.1".parse().unwrap(), any)), MulticastError::NotMember);
    assert_eq!(reason(v6only.leave_multicast("ff15::1".parse().unwrap(), any)), MulticastError::NotMember);
    let (ssm, src) = ("232.1.1.1".parse().unwrap(), "127.0.0.1".parse().unwrap());
    assert!(matches!(v4.leave_source_multicast(ssm, src, any), Err(Error::Multicast { .. })));
    v4.join_source_multicast(ssm, src, any).unwrap();
    v4.leave_source_multicast(ssm, src, any).unwrap();
    // The same by the interface's IPv4 address (the classic IPv4 call).
    let lo = MulticastInterface::V4(std::net::Ipv4Addr::LOCALHOST);
    v4.join_source_multicast(ssm, src, lo).unwrap();
    v4.leave_source_multicast(ssm, src, lo).unwrap();
    assert!(matches!(v4.leave_source_multicast(ssm, src, lo), Err(Error::Multicast { .. })), "left twice");
}

#[test]
fn a_socket_bound_to_one_ipv6_address_is_not_dual_stack() {
    let sock = Socket::bind("[::1]:0".parse().unwrap()).unwrap();
    let err = sock.try_send_batch(&[Transmit::new("127.0.0.1:9".parse().unwrap(), b"x")]).unwrap_err();
    assert!(matches!(err, Error::InvalidTransmit(volley::InvalidTransmit::AddressFamily { .. })), "{err:?}");
}

#[test]
fn blocking_helpers_take_any_timeout() {
    let rx = Socket::bind(localhost()).unwrap();
    let tx = Socket::bind(localhost()).unwrap();
    tx.send_batch_blocking(&[Transmit::new(rx.local_addr().unwrap(), b"forever")], Duration::MAX).unwrap();
    let mut batch = RecvBatch::new();
    rx.recv_batch_blocking(&mut batch, Duration::MAX).unwrap();
    assert_eq!(batch.iter().next().unwrap().1, b"forever");
    // A sub-millisecond wait is a real (rounded-up) wait ending in a timeout.
    let start = Instant::now();
    let err = rx.recv_batch_blocking(&mut batch, Duration::from_micros(100)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err:?}");
    assert!(start.elapsed() >= Duration::from_micros(100), "returned before the timeout");
}

fn thread_cpu() -> Duration {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).expect("clock_gettime");
    Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
}

/// While the error queue holds an entry, poll(2) reports POLLERR at once;
/// the blocking receive must nap, not spin, until data or the timeout.
#[test]
fn blocking_receive_does_not_spin_on_a_queued_icmp_error() {
    let sock = Config::new().recv_errors(true).bind(localhost()).unwrap();
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    sock.send_batch_blocking(&[Transmit::new(dead_addr, b"x")], WAIT).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut batch = RecvBatch::new();
    // The pending error itself is reported once by a receive.
    let _ = sock.try_recv_batch(&mut batch);
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let res = sock.recv_batch_blocking(&mut batch, Duration::from_millis(300));
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    println!("waited {wall:?} using {cpu:?} of CPU: {res:?}");
    assert!(res.is_err(), "nothing to receive");
    assert!(wall >= Duration::from_millis(290), "returned early after {wall:?}");
    assert!(cpu < Duration::from_millis(150), "spun: {cpu:?} of CPU in a {wall:?} wait");
    assert!(sock.try_recv_error().unwrap().is_some(), "the ICMP entry is still queued");
}

/// The most control data one receive carries: an IPv4 datagram on a
/// dual-stack socket with timestamps on gets pktinfo in both flavours, TOS,
/// TTL, the timestamp, the drop counter and the original destination. All
/// of it must fit the per-message control space: nothing truncated, every
/// field reported.
#[test]
fn every_option_of_a_dual_stack_receive_fits() {
    let rx = Config::new().ipv6_only(false).timestamps(true).orig_dst(true).bind("[::]:0".parse().unwrap()).unwrap();
    let port = rx.local_addr().unwrap().port();
    let tx = Socket::bind(localhost()).unwrap();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let t = Transmit::new(to, b"all of it").with_ecn(volley::Ecn::Ect0).with_dscp(volley::Dscp::AF41);
    tx.send_batch_blocking(&[t], WAIT).unwrap();
    let mut batch = RecvBatch::new();
    rx.recv_batch_blocking(&mut batch, WAIT).unwrap();
    let (meta, payload) = batch.iter().next().unwrap();
    assert_eq!(payload, b"all of it");
    assert!(!meta.control_truncated, "{meta:?}");
    assert_eq!(meta.dst_ip, Some("127.0.0.1".parse().unwrap()), "{meta:?}");
    assert!(meta.ifindex.is_some(), "{meta:?}");
    assert_eq!((meta.ecn, meta.dscp), (volley::Ecn::Ect0, Some(volley::Dscp::AF41)), "{meta:?}");
    assert!(meta.ttl.is_some(), "{meta:?}");
    assert!(meta.timestamp.is_some(), "{meta:?}");
    assert!(meta.drops.is_some(), "{meta:?}");
    assert_eq!(meta.orig_dst(), Some(to), "{meta:?}");
}

/// The multicast send options reach the socket: what `set_multicast_hops`,
/// `set_multicast_loop` and `set_multicast_interface` set is what the
/// kernel then reports, for each family the socket carries; an interface
/// named by IPv4 address on an IPv6-only socket is `InterfaceFamily`.
#[test]
fn multicast_send_options_reach_the_socket() {
    let v4 = Socket::bind("0.0.0.0:0".parse().unwrap()).unwrap();
    let dual = Socket::bind("[::]:0".parse().unwrap()).unwrap();
    let v6only = Config::new().ipv6_only(true).bind("[::]:0".parse().unwrap()).unwrap();
    for (hops, looped) in [(7u8, false), (1, true)] {
        v4.set_multicast_hops(hops).unwrap();
        v4.set_multicast_loop(looped).unwrap();
        let s = socket2::SockRef::from(&v4);
        assert_eq!((s.multicast_ttl_v4().unwrap(), s.multicast_loop_v4().unwrap()), (u32::from(hops), looped));
        dual.set_multicast_hops(hops).unwrap();
        dual.set_multicast_loop(looped).unwrap();
        let s = socket2::SockRef::from(&dual);
        assert_eq!((s.multicast_hops_v6().unwrap(), s.multicast_loop_v6().unwrap()), (u32::from(hops), looped));
        // A dual-stack socket's IPv4 side too.
        assert_eq!((s.multicast_ttl_v4().unwrap(), s.multicast_loop_v4().unwrap()), (u32::from(hops), looped));
    }
    v4.set_multicast_interface(MulticastInterface::V4("127.0.0.1".parse().unwrap())).unwrap();
    assert_eq!(socket2::SockRef::from(&v4).multicast_if_v4().unwrap(), std::net::Ipv4Addr::LOCALHOST);
    let e = v6only.set_multicast_interface(MulticastInterface::V4("127.0.0.1".parse().unwrap())).unwrap_err();
    assert!(matches!(e, Error::Multicast { reason: MulticastError::InterfaceFamily, .. }), "{e:?}");
}

/// `orig_dst` on loopback (Linux): with it on, every datagram reports the
/// destination it was sent to, on an IPv4, a dual-stack and an IPv6-only
/// socket; with it off, none does.
#[cfg(target_os = "linux")]
#[test]
fn orig_dst_is_reported_exactly_when_asked() {
    let mut batch = RecvBatch::new();
    for (at, to_ip) in [("127.0.0.1:0", "127.0.0.1"), ("[::]:0", "127.0.0.1"), ("[::]:0", "::1"), ("[::1]:0", "::1")] {
        for asked in [false, true] {
            let v6only = at == "[::1]:0";
            let rx = Config::new().orig_dst(asked).ipv6_only(v6only).bind(at.parse().unwrap()).unwrap();
            let to = SocketAddr::new(to_ip.parse().unwrap(), rx.local_addr().unwrap().port());
            let tx = UdpSocket::bind(if to.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }).unwrap();
            tx.send_to(b"where to?", to).unwrap();
            rx.recv_batch_blocking(&mut batch, WAIT).unwrap();
            let (meta, _) = batch.iter().next().unwrap();
            let want = asked.then_some(to);
            assert_eq!(meta.orig_dst(), want, "{at} receiving for {to}, orig_dst({asked})");
        }
    }
}

/// `may_fragment` (Linux) is false exactly when every family the socket
/// carries has "don't fragment" for good (`Pmtud::Do` or `Probe`): on an
/// IPv4, a dual-stack and an IPv6-only socket alike.
#[cfg(target_os = "linux")]
#[test]
fn may_fragment_follows_pmtud_on_every_family() {
    for (at, v6only) in [("127.0.0.1:0", false), ("[::]:0", false), ("[::]:0", true)] {
        let bind = |pmtud: Option<Pmtud>| {
            let c = Config::new().ipv6_only(v6only);
            let c = if let Some(p) = pmtud { c.pmtud(p) } else { c };
            c.bind(at.parse().unwrap()).unwrap()
        };
        for (pmtud, may) in
            [(None, true), (Some(Pmtud::Off), true), (Some(Pmtud::Do), false), (Some(Pmtud::Probe), false)]
        {
            assert_eq!(bind(pmtud).may_fragment(), may, "{at} v6only {v6only}, {pmtud:?}");
        }
    }
}
