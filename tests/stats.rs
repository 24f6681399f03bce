//! Per-socket statistics (`Socket::stats`) agree with what was observed to
//! move, on both backends: datagrams and bytes, GSO trains and GRO
//! messages, syscalls (the portable path makes one per datagram),
//! `WouldBlock`s, truncations, kernel drops and ICMP errors.
// Linux only: kernel drops and `POLLERR` on the error queue.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::time::Duration;

use volley::{Config, Error, IcmpError, RecvBatch, RecvMeta, Socket, Stats, Transmit};
use volley_tests::driver::{self, cases, payload, recv_datagrams, send_all, train, Case};

const SEG: usize = 1000;

#[test]
fn counters_match_what_moved() {
    for case in cases() {
        let rx = case.bind_with("127.0.0.1:0", |c| c.recv_buffer_size(4 << 20));
        let tx = case.bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        assert_eq!(tx.stats(), Stats::default(), "[{}] a fresh socket counts nothing", case.name);
        // 3 trains of 10 x 1000 B and 5 single datagrams of 100 B.
        let trains: Vec<Vec<u8>> = (0..3).map(|t| train(t * 10, 10, SEG, 0)).collect();
        let singles: Vec<Vec<u8>> = (30..35).map(|s| payload(s, 100)).collect();
        let mut transmits: Vec<_> = trains.iter().map(|b| Transmit::new(to, b).with_segment_size(SEG)).collect();
        transmits.extend(singles.iter().map(|b| Transmit::new(to, b)));
        send_all(&tx, &transmits);
        let got = recv_datagrams(&rx, &mut RecvBatch::new(), 35);
        let bytes: usize = got.iter().map(|r| r.payload.len()).sum();
        assert_eq!((got.len(), bytes), (35, 30_500), "[{}]", case.name);

        let s = tx.stats();
        println!("[{}] sender: {s:?}", case.name);
        assert_eq!((s.datagrams_sent, s.bytes_sent), (35, 30_500), "[{}]", case.name);
        if tx.capabilities().gso() {
            assert_eq!((s.gso_trains, s.gso_segments), (3, 30), "[{}]", case.name);
            assert_eq!(s.send_syscalls, 1, "[{}] one sendmmsg for the batch", case.name);
        } else {
            assert_eq!((s.gso_trains, s.gso_segments), (0, 0), "[{}]", case.name);
            // One message per datagram: one sendmmsg, or one sendmsg each.
            let want = if tx.capabilities().mmsg { 1 } else { 35 };
            assert_eq!(s.send_syscalls, want, "[{}]", case.name);
        }
        assert_eq!((s.send_would_block, s.send_errors), (0, 0), "[{}]", case.name);

        let r = rx.stats();
        println!("[{}] receiver: {r:?}", case.name);
        assert_eq!((r.datagrams_received, r.bytes_received), (35, 30_500), "[{}]", case.name);
        assert!(r.messages_received >= 1 && r.messages_received <= 35, "[{}]", case.name);
        assert_eq!(r.gro_messages > 0, r.messages_received < 35, "[{}] GRO messages are the coalesced ones", case.name);
        if !rx.capabilities().mmsg {
            // One recvmsg per message, plus the ones that heard EAGAIN.
            assert!(r.recv_syscalls > r.messages_received, "[{}] {r:?}", case.name);
        }
        assert!(r.recv_syscalls_per_1000().is_some_and(|k| k > 0.0), "[{}]", case.name);
        assert_eq!((r.truncated, r.icmp.total()), (0, 0), "[{}]", case.name);
    }
}

#[test]
fn would_block_and_truncation_are_counted() {
    for case in cases() {
        let rx = case.bind_with("127.0.0.1:0", |c| c.gro(false));
        let mut small = RecvBatch::with_capacity(4, 500);
        assert!(rx.try_recv_batch(&mut small).unwrap_err().is_would_block());
        assert!(rx.try_recv_batch(&mut small).unwrap_err().is_would_block());
        assert_eq!(rx.stats().recv_would_block, 2, "[{}]", case.name);
        let big = payload(1, 1200);
        send_all(&rx, &[Transmit::new(rx.local_addr().unwrap(), &big)]);
        rx.recv_batch_blocking(&mut small, driver::TIMEOUT).unwrap();
        let (meta, _) = small.iter().next().unwrap();
        assert!(meta.truncated, "[{}]", case.name);
        let s = rx.stats();
        assert_eq!((s.truncated, s.datagrams_received, s.bytes_received), (1, 1, 500), "[{}] {s:?}", case.name);
    }
}

#[test]
fn kernel_drops_are_the_last_reported() {
    for case in cases() {
        let rx = case.bind_with("127.0.0.1:0", |c| c.gro(false).recv_buffer_size(4096));
        if !rx.capabilities().drop_counter {
            println!("[{}] skipped: no SO_RXQ_OVFL here", case.name);
            continue;
        }
        let tx = case.bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        let bufs: Vec<Vec<u8>> = (0..200).map(|s| payload(s, 1000)).collect();
        let transmits: Vec<_> = bufs.iter().map(|b| Transmit::new(to, b)).collect();
        send_all(&tx, &transmits);
        let mut batch = RecvBatch::new();
        while rx.recv_batch_blocking(&mut batch, Duration::from_millis(200)).is_ok() {}
        // A datagram carries the count as of its own arrival: one sent after
        // the overflow carries them all.
        send_all(&tx, &[Transmit::new(to, b"last")]);
        rx.recv_batch_blocking(&mut batch, driver::TIMEOUT).unwrap();
        let drops = batch.messages().filter_map(|(m, _)| m.drops).last().expect("drops reported");
        assert!(drops > 0, "[{}] a 4 KiB buffer took 200 x 1000 B", case.name);
        assert_eq!(rx.stats().kernel_drops, u64::from(drops), "[{}]", case.name);
    }
}

/// A socket on 127.0.0.1 with the error queue on (`recv_errors`) and what
/// `more` asks for, or `None` after saying so where this backend has none.
fn with_error_queue(case: &Case, more: impl FnOnce(Config) -> Config) -> Option<Socket> {
    let sock = case.bind_with("127.0.0.1:0", |c| more(c.recv_errors(true)));
    if sock.capabilities().recv_errors {
        Some(sock)
    } else {
        println!("[{}] skipped: no error queue here", case.name);
        None
    }
}

/// Pops the error ring empty through `pop`, checking that each error is
/// about `to`; returns how many there were.
fn pop_all(case: &Case, to: SocketAddr, mut pop: impl FnMut() -> Result<Option<IcmpError>, Error>) -> u64 {
    let mut seen = 0;
    while let Ok(Some(e)) = pop() {
        assert_eq!(e.destination, Some(to), "[{}]", case.name);
        seen += 1;
    }
    seen
}

/// A loopback address nobody listens on: a send there draws an ICMP port
/// unreachable.
fn closed_port() -> SocketAddr {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    closed.local_addr().unwrap()
}

/// Up to 10 rounds (the kernel's ICMP budget may be spent by other tests):
/// `send`, wait up to 500 ms for the error signal on `fd`, then `check`
/// (told whether it came) says whether what the test waits for is there.
fn provoke_icmp<T>(
    fd: &impl std::os::fd::AsFd,
    mut send: impl FnMut(),
    mut check: impl FnMut(bool) -> Option<T>,
) -> Option<T> {
    (0..10).find_map(|_| {
        send();
        check(driver::wait_ready(fd, libc::POLLERR, Duration::from_millis(500)))
    })
}

#[test]
fn icmp_errors_are_counted_by_kind() {
    for case in cases() {
        let Some(tx) = with_error_queue(&case, |c| c) else { continue };
        let to = closed_port();
        let counted = provoke_icmp(
            &tx,
            || send_all(&tx, &[Transmit::new(to, b"anyone?")]),
            |signalled| {
                if signalled {
                    tx.drain_icmp_errors();
                }
                Some(tx.stats().icmp.port_unreachable).filter(|&c| c > 0)
            },
        );
        let Some(counted) = counted else { panic!("[{}] no port unreachable counted", case.name) };
        let seen = pop_all(&case, to, || tx.try_recv_error());
        assert_eq!(seen + tx.lost_icmp_errors(), counted, "[{}] every counted error is in the ring", case.name);
    }
}

/// The borrowed datapath drains ICMP errors as the owned socket does:
/// `SocketRef::drain_icmp_errors` says how many it moved into the ring,
/// and each is then there for `try_recv_error`.
#[test]
fn borrowed_sockets_drain_icmp_errors_too() {
    for case in cases() {
        let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dp = volley::Datapath::new(&std_sock, &case.config().recv_errors(true)).unwrap();
        if !dp.capabilities().recv_errors {
            println!("[{}] skipped: no error queue here", case.name);
            continue;
        }
        let tx = dp.socket(&std_sock);
        let to = closed_port();
        let mut drained = 0;
        let found = provoke_icmp(
            &std_sock,
            || {
                let sent = tx.try_send_batch(&[Transmit::new(to, b"anyone?")]).unwrap();
                assert_eq!(sent.transmits, 1, "[{}]", case.name);
            },
            |signalled| {
                if signalled {
                    drained += tx.drain_icmp_errors();
                }
                Some(drained).filter(|&d| d > 0)
            },
        );
        let Some(drained) = found else { panic!("[{}] no ICMP error drained", case.name) };
        let seen = pop_all(&case, to, || tx.try_recv_error());
        assert_eq!(seen + tx.lost_icmp_errors(), drained as u64, "[{}] every drained error is in the ring", case.name);
    }
}

#[test]
fn caller_buffer_receives_count_too() {
    for case in cases() {
        let rx = case.bind_with("127.0.0.1:0", |c| c.gro(false));
        send_all(&rx, &[Transmit::new(rx.local_addr().unwrap(), b"mine")]);
        let mut buf = [0u8; 1500];
        let mut meta = [RecvMeta::default()];
        let n = rx.recv_blocking(&mut [std::io::IoSliceMut::new(&mut buf)], &mut meta, driver::TIMEOUT).unwrap();
        assert_eq!(n, 1);
        let s = rx.stats();
        assert_eq!((s.datagrams_received, s.bytes_received, s.datagrams_sent), (1, 4, 1), "[{}]", case.name);
    }
}

/// A refused send counts one send error and no would-block; a transmit
/// whose segment size covers its payload is one datagram, not a GSO train.
#[test]
fn refused_sends_and_one_segment_trains_are_counted_as_what_they_are() {
    for case in cases() {
        let tx = case.bind("127.0.0.1:0");
        let rx = case.bind("127.0.0.1:0");
        // Broadcast without SO_BROADCAST: the kernel refuses (EACCES).
        let e = tx.try_send_batch(&[Transmit::new("255.255.255.255:9".parse().unwrap(), b"all?")]).unwrap_err();
        assert!(matches!(e, Error::BroadcastNotEnabled { .. }), "[{}] {e}", case.name);
        let s = tx.stats();
        assert_eq!((s.send_errors, s.send_would_block, s.datagrams_sent), (1, 0, 0), "[{}] {s:?}", case.name);
        let one = payload(1, 100);
        send_all(&tx, &[Transmit::new(rx.local_addr().unwrap(), &one).with_segment_size(1200)]);
        let s = tx.stats();
        assert_eq!((s.datagrams_sent, s.gso_trains, s.gso_segments), (1, 0, 0), "[{}] {s:?}", case.name);
    }
}

/// Draining an error queue that holds nothing, on a socket with no
/// pending error, moves nothing and records nothing.
#[test]
fn draining_nothing_records_nothing() {
    for case in cases() {
        let Some(sock) = with_error_queue(&case, |c| c) else { continue };
        assert_eq!(sock.drain_icmp_errors(), 0, "[{}]", case.name);
        assert_eq!(sock.try_recv_error().unwrap(), None, "[{}]", case.name);
        assert_eq!(sock.stats().icmp.total(), 0, "[{}]", case.name);
    }
}

/// While the receive buffer is full the kernel cannot queue an ICMP error's
/// details, but still sets the socket error: draining then records it bare
/// (kind `Pending`), so it is neither lost nor reported twice.
#[test]
fn an_error_the_full_queue_refused_is_recorded_bare() {
    for case in cases() {
        let Some(sock) = with_error_queue(&case, |c| c.recv_buffer_size(4096)) else { continue };
        let me = sock.local_addr().unwrap();
        // Fill the receive buffer with small datagrams to itself, to its
        // last few hundred bytes (more datagrams are dropped).
        let filler = payload(7, 1);
        for _ in 0..256 {
            let _ = sock.try_send_batch(&[Transmit::new(me, &filler)]);
        }
        let to = closed_port();
        let found = provoke_icmp(
            &sock,
            || {
                let _ = sock.try_send_batch(&[Transmit::new(to, b"anyone?")]);
            },
            |signalled| {
                let moved = if signalled { sock.drain_icmp_errors() } else { return None };
                sock.try_recv_error().unwrap().map(|e| (moved, e))
            },
        );
        let Some((moved, e)) = found else { panic!("[{}] no ICMP error recorded", case.name) };
        assert_eq!(moved, 0, "[{}] the full queue took no entry: {e:?}", case.name);
        assert_eq!((e.kind, e.errno), (volley::IcmpKind::Pending, libc::ECONNREFUSED), "[{}]", case.name);
        assert_eq!(sock.try_recv_error().unwrap(), None, "[{}] recorded once", case.name);
    }
}

/// More ICMP errors than the ring holds (64): the ring keeps 64, the rest
/// are counted by `lost_icmp_errors`, and every error counted is one or
/// the other.
#[test]
fn icmp_errors_past_the_ring_are_counted_lost() {
    for case in cases() {
        let Some(tx) = with_error_queue(&case, |c| c) else { continue };
        let to = closed_port();
        // The kernel's global ICMP budget (net.ipv4.icmp_msgs_per_sec,
        // 1000/s in bursts of 50) refills about one a millisecond: pace.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tx.stats().icmp.port_unreachable <= 80 && std::time::Instant::now() < deadline {
            send_all(&tx, &[Transmit::new(to, b"anyone?")]);
            std::thread::sleep(Duration::from_millis(2));
            tx.drain_icmp_errors();
        }
        let counted = tx.stats().icmp.port_unreachable;
        assert!(counted > 80, "[{}] only {counted} port unreachables in 10 s", case.name);
        let seen = pop_all(&case, to, || tx.try_recv_error());
        println!("[{}] {counted} counted, {seen} in the ring, {} lost", case.name, tx.lost_icmp_errors());
        assert_eq!(seen, 64, "[{}] the ring holds 64", case.name);
        assert_eq!(tx.lost_icmp_errors(), counted - 64, "[{}] the rest are counted lost", case.name);
    }
}

/// The portable path's syscall count is exact: one `recvmsg` per message
/// plus the one that heard `EAGAIN`, none more when every slot was filled;
/// `recvmmsg` is one call either way.
#[test]
fn receive_syscalls_are_counted_exactly() {
    for case in cases() {
        let rx = case.bind_with("127.0.0.1:0", |c| c.gro(false));
        let tx = case.bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        let mmsg = rx.capabilities().mmsg;
        for (datagrams, slots, want_portable) in [(3, 8, 4), (4, 4, 4)] {
            let bufs: Vec<Vec<u8>> = (0..datagrams).map(|s| payload(s, 100)).collect();
            let ts: Vec<Transmit<'_>> = bufs.iter().map(|b| Transmit::new(to, b)).collect();
            send_all(&tx, &ts);
            assert!(driver::wait_ready(&rx, libc::POLLIN, Duration::from_secs(5)), "[{}]", case.name);
            // Loopback queues the datagrams as the send call returns.
            let before = rx.stats().recv_syscalls;
            let mut batch = RecvBatch::with_capacity(slots, 2048);
            let n = rx.try_recv_batch(&mut batch).unwrap();
            assert_eq!(n, datagrams as usize, "[{}] {datagrams} queued, {slots} slots", case.name);
            let calls = rx.stats().recv_syscalls - before;
            let want = if mmsg { 1 } else { want_portable };
            assert_eq!(calls, want, "[{}] {datagrams} datagrams into {slots} slots", case.name);
        }
    }
}

/// An ICMP error waiting in the error queue wakes `poll` (`POLLERR`) but
/// does not make the socket readable: `wait_readable` keeps waiting and
/// says false when nothing arrived, and true once a datagram does.
#[test]
fn a_queued_icmp_error_does_not_make_a_socket_readable() {
    for case in cases() {
        let Some(tx) = with_error_queue(&case, |c| c) else { continue };
        let to = closed_port();
        let queued =
            provoke_icmp(&tx, || send_all(&tx, &[Transmit::new(to, b"anyone?")]), |signalled| signalled.then_some(()));
        assert!(queued.is_some(), "[{}] no ICMP error queued", case.name);
        assert!(!tx.wait_readable(Duration::from_millis(100)).unwrap(), "[{}] an ICMP error read as data", case.name);
        send_all(&tx, &[Transmit::new(tx.local_addr().unwrap(), b"data")]);
        assert!(tx.wait_readable(Duration::from_secs(5)).unwrap(), "[{}] a datagram did not wake it", case.name);
    }
}
