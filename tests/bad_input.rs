//! Bad input never panics and is never dropped silently: every malformed
//! [`Transmit`] is rejected with a typed error naming the field and value,
//! before any syscall, and the edge cases that are *not* errors (empty
//! datagrams, maximum sizes, short GRO tails) work. Both datapaths.
//! `docs/bad-input.md` maps each condition to its error and test.
//!
//! The same tests run on Windows (under Wine in `cargo xtask ci`). Where
//! the stack ignores a per-datagram source (`Capabilities::src_send`
//! false: Wine), a transmit naming one is refused as `SourceUnsupported`
//! before its other source checks, and the tests expect that instead.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use volley::{Dscp, Error, InvalidTransmit, RecvBatch, Sent, Socket, Transmit};
use volley_tests::driver::{self, addr, errno, for_each_backend, payload, recv_datagrams, send_recv, train, Case};

const QUIET: Duration = Duration::from_millis(30);

/// A sender and a receiver on 127.0.0.1.
fn pair_v4(case: &Case) -> (Socket, Socket) {
    (case.bind("127.0.0.1:0"), case.bind("127.0.0.1:0"))
}

/// Asserts `transmits` are rejected as `want`, nothing reaches `rx`, and
/// the Display text contains every string of `names`.
fn assert_rejected(
    case: &Case,
    tx: &Socket,
    rx: &Socket,
    transmits: &[Transmit<'_>],
    want: &InvalidTransmit,
    names: &[&str],
) {
    match tx.try_send_batch(transmits) {
        Err(Error::InvalidTransmit(got)) => {
            assert_eq!(&got, want, "[{}]", case.name);
            let err = Error::InvalidTransmit(got);
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            let text = err.to_string();
            for n in names {
                assert!(text.contains(n), "[{}] Display {text:?} should name {n:?}", case.name);
            }
            println!("[{}] {text}", case.name);
        }
        other => panic!("[{}] expected {want:?}, got {other:?}", case.name),
    }
    driver::assert_quiet(rx, &mut RecvBatch::new(), QUIET);
}

#[test]
fn segment_size_zero_is_rejected() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        let b = payload(1, 100);
        let t = Transmit::new(rx.local_addr().unwrap(), &b).with_segment_size(0);
        assert_rejected(case, &tx, &rx, &[t], &InvalidTransmit::SegmentSizeZero, &["segment_size", "0"]);
    });
}

#[test]
fn more_segments_than_gso_allows_is_rejected_or_emulated() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        let max = tx.capabilities().max_gso_segments;
        // One more than the kernel allows (64, or 128 on newer kernels).
        let over = if max > 1 { max + 1 } else { 65 };
        let contents = train(0, over as u32, 100, 0);
        let t = Transmit::new(rx.local_addr().unwrap(), &contents).with_segment_size(100);
        if max > 1 {
            assert!(matches!(max, 64 | 128), "{max}");
            let want = InvalidTransmit::TooManySegments { segments: over, max };
            assert_rejected(case, &tx, &rx, &[t], &want, &["segment_size", &over.to_string(), &max.to_string()]);
            // Exactly the limit is fine.
            let ok = train(0, max as u32, 100, 0);
            send_recv(&tx, &rx, &[Transmit::new(rx.local_addr().unwrap(), &ok).with_segment_size(100)]);
        } else {
            // Without kernel GSO there is no segment limit: the train is sent
            // one datagram at a time.
            println!("[{}] no GSO: 65 segments are emulated, not rejected", case.name);
            let got = send_recv(&tx, &rx, &[t]);
            assert_eq!(got.len(), 65);
        }
    });
}

#[test]
fn oversized_datagrams_and_contents_are_rejected() {
    for_each_backend(|case| {
        for (at, max) in [("127.0.0.1:0", 65_507), ("[::1]:0", 65_527)] {
            let tx = case.bind(at);
            let rx = case.bind(at);
            let to = rx.local_addr().unwrap();
            let big = vec![7u8; max + 1];
            let t = Transmit::new(to, &big);
            let want = InvalidTransmit::DatagramTooLarge { field: "contents", size: max + 1, max };
            assert_rejected(case, &tx, &rx, &[t], &want, &[&(max + 1).to_string(), &max.to_string()]);

            // A segment over the limit is a datagram over the limit.
            let huge = vec![7u8; 2 * max];
            let t = Transmit::new(to, &huge).with_segment_size(max + 1);
            let want = InvalidTransmit::DatagramTooLarge { field: "segment_size", size: max + 1, max };
            assert_rejected(case, &tx, &rx, &[t], &want, &[&(max + 1).to_string()]);

            // Segments within the limit, but the train as a whole is not.
            let t = Transmit::new(to, &big).with_segment_size(1000);
            let want = InvalidTransmit::ContentsTooLarge { size: max + 1, max };
            assert_rejected(case, &tx, &rx, &[t], &want, &["contents", &(max + 1).to_string(), &max.to_string()]);
        }
    });
}

#[test]
fn largest_datagrams_pass() {
    for_each_backend(|case| {
        for (at, max) in [("127.0.0.1:0", 65_507), ("[::1]:0", 65_527)] {
            let tx = case.bind(at);
            let rx = case.bind(at);
            let b = payload(1, max);
            let got = send_recv(&tx, &rx, &[Transmit::new(rx.local_addr().unwrap(), &b)]);
            assert_eq!(got[0].meta.len, max, "[{}] {at}", case.name);
        }
    });
}

#[test]
fn wrong_address_family_is_rejected() {
    for_each_backend(|case| {
        let b = payload(1, 10);
        // IPv6 destination on an IPv4 socket.
        let (tx, rx) = pair_v4(case);
        let to = addr("[::1]:9");
        let want = InvalidTransmit::AddressFamily { destination: to };
        assert_rejected(case, &tx, &rx, &[Transmit::new(to, &b)], &want, &["destination", "[::1]:9"]);
        // IPv4 destination (plain or mapped) on an IPv6-only socket.
        let tx6 = case.bind_with("[::]:0", |c| c.ipv6_only(true));
        let rx6 = case.bind_with("[::]:0", |c| c.ipv6_only(false));
        let port = rx6.local_addr().unwrap().port();
        for to in
            [SocketAddr::from(([127, 0, 0, 1], port)), SocketAddr::from((Ipv4Addr::LOCALHOST.to_ipv6_mapped(), port))]
        {
            let want = InvalidTransmit::AddressFamily { destination: to };
            assert_rejected(case, &tx6, &rx6, &[Transmit::new(to, &b)], &want, &["destination", &to.to_string()]);
        }
        // The same IPv4 destination from a dual-stack socket is fine.
        let dual = case.bind_with("[::]:0", |c| c.ipv6_only(false));
        send_recv(&dual, &rx6, &[Transmit::new(SocketAddr::from(([127, 0, 0, 1], port)), &b)]);
    });
}

#[test]
fn empty_send_batch_sends_nothing() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        // Progress as a value: nothing asked, nothing sent, no error (a
        // resend loop whose rest became empty needs no special case).
        assert_eq!(tx.try_send_batch(&[]).unwrap(), Sent::default(), "[{}]", case.name);
        tx.send_batch_blocking(&[], QUIET).unwrap();
        driver::assert_quiet(&rx, &mut RecvBatch::new(), QUIET);
    });
}

#[test]
fn empty_receive_is_rejected() {
    for_each_backend(|case| {
        let (_tx, rx) = pair_v4(case);
        let err = rx.try_recv(&mut [], &mut [volley::RecvMeta::default()]).unwrap_err();
        assert!(matches!(err, Error::EmptyBatch), "[{}] {err:?}", case.name);
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("empty"), "{err}");
    });
}

#[test]
fn port_zero_is_rejected() {
    for_each_backend(|case| {
        for at in ["127.0.0.1:0", "[::1]:0"] {
            let tx = case.bind(at);
            let rx = case.bind(at);
            let mut to = rx.local_addr().unwrap();
            to.set_port(0);
            let b = payload(1, 10);
            let want = InvalidTransmit::PortZero { destination: to };
            assert_rejected(
                case,
                &tx,
                &rx,
                &[Transmit::new(to, &b)],
                &want,
                &["destination", &to.to_string(), "port 0"],
            );
        }
    });
}

/// What a transmit naming a source is refused as by `tx`: `want` (its
/// Display naming `names`) where the stack applies sources; where it does
/// not (`src_send` false: Wine) the source cannot be used at all, and
/// that is the refusal.
fn source_refusal<'a>(tx: &Socket, want: InvalidTransmit, names: &'a [&'a str]) -> (InvalidTransmit, &'a [&'a str]) {
    if driver::src_send(tx) {
        (want, names)
    } else {
        (InvalidTransmit::SourceUnsupported, &["src_ip/src_ifindex", "src_send is false"])
    }
}

#[test]
fn source_of_the_wrong_family_is_rejected() {
    for_each_backend(|case| {
        let b = payload(1, 10);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (tx, rx) = pair_v4(case);
        let t = Transmit::new(rx.local_addr().unwrap(), &b).with_src_ip(v6);
        let (want, names) = source_refusal(&tx, InvalidTransmit::SourceFamily { src_ip: v6 }, &["src_ip", "::1"]);
        assert_rejected(case, &tx, &rx, &[t], &want, names);

        let tx6 = case.bind("[::1]:0");
        let rx6 = case.bind("[::1]:0");
        let t = Transmit::new(rx6.local_addr().unwrap(), &b).with_src_ip(v4);
        let (want, names) =
            source_refusal(&tx6, InvalidTransmit::SourceFamily { src_ip: v4 }, &["src_ip", "127.0.0.1"]);
        assert_rejected(case, &tx6, &rx6, &[t], &want, names);

        // Dual stack: an IPv4 path takes an IPv4 (or IPv4-mapped) source.
        let dual = case.bind_with("[::]:0", |c| c.ipv6_only(false));
        let to = rx.local_addr().unwrap();
        let t = Transmit::new(to, &b).with_src_ip(v6);
        let (want, names) = source_refusal(&dual, InvalidTransmit::SourceFamily { src_ip: v6 }, &["src_ip"]);
        assert_rejected(case, &dual, &rx, &[t], &want, names);
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        let t = Transmit::new(to, &b).with_src_ip(mapped);
        if driver::src_send(&dual) {
            let got = send_recv(&dual, &rx, &[t]);
            assert_eq!(got[0].meta.src.ip(), v4, "[{}] mapped source goes out as IPv4", case.name);
        } else {
            let (want, names) = source_refusal(&dual, InvalidTransmit::SourceFamily { src_ip: mapped }, &[]);
            assert_rejected(case, &dual, &rx, &[t], &want, names);
        }
    });
}

#[test]
fn txtime_without_config_is_rejected() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        assert!(!tx.capabilities().txtime);
        let b = payload(1, 10);
        let t = Transmit::new(rx.local_addr().unwrap(), &b).with_txtime(1);
        assert_rejected(case, &tx, &rx, &[t], &InvalidTransmit::TxtimeNotEnabled, &["txtime", "Config::txtime"]);
    });
}

/// pktinfo carries the interface index as a C int: an index above
/// `i32::MAX` is refused before any syscall, on both families (it was once
/// sent on IPv4 as index 0, "any interface").
#[test]
fn src_ifindex_out_of_range_is_rejected() {
    for_each_backend(|case| {
        let b = payload(1, 10);
        for at in ["127.0.0.1:0", "[::1]:0"] {
            let tx = case.bind(at);
            let rx = case.bind(at);
            let bad = i32::MAX as u32 + 1;
            let t = Transmit::new(rx.local_addr().unwrap(), &b).with_src_ifindex(bad);
            let (want, names) = source_refusal(
                &tx,
                InvalidTransmit::SrcIfindexOutOfRange { src_ifindex: bad },
                &["src_ifindex", "2147483648"],
            );
            assert_rejected(case, &tx, &rx, &[t], &want, names);
        }
    });
}

/// FreeBSD (and any Unix without `IP_PKTINFO`) cannot choose the outgoing
/// interface of an IPv4 datagram: `src_ifindex` on an IPv4 destination is
/// refused there rather than ignored. Linux, Android, Apple and Windows
/// apply it: the datagram leaves by that interface and arrives; a stack
/// that ignores sources on send (`src_send` false: Wine) refuses it.
#[test]
fn src_ifindex_on_ipv4_is_applied_or_rejected() {
    let applies = cfg!(any(target_os = "linux", target_os = "android", target_vendor = "apple", windows));
    for_each_backend(|case| {
        let b = payload(1, 10);
        let (tx, rx) = pair_v4(case);
        let t = Transmit::new(rx.local_addr().unwrap(), &b).with_src_ifindex(driver::lo_ifindex());
        if !driver::src_send(&tx) {
            let (want, names) = source_refusal(&tx, InvalidTransmit::SourceUnsupported, &[]);
            assert_rejected(case, &tx, &rx, &[t], &want, names);
        } else if applies {
            let got = send_recv(&tx, &rx, &[t]);
            assert_eq!(got.len(), 1, "[{}]", case.name);
        } else {
            let want = InvalidTransmit::SrcIfindexUnsupported { src_ifindex: driver::lo_ifindex() };
            assert_rejected(case, &tx, &rx, &[t], &want, &["src_ifindex", "IPv4"]);
        }
    });
}

#[test]
fn dscp_out_of_range_is_rejected() {
    for value in [64, 100, 255] {
        match Dscp::new(value) {
            Err(e @ Error::InvalidDscp { .. }) => {
                assert!(matches!(e, Error::InvalidDscp { value: v } if v == value));
                assert!(e.to_string().contains(&value.to_string()), "{e}");
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            }
            other => panic!("Dscp::new({value}): {other:?}"),
        }
    }
    assert_eq!(Dscp::new(63).unwrap().value(), 63);
}

/// Sends `transmits` whose `bad`-th one is invalid: the call sends exactly
/// the ones before it and returns their count; the retry from there
/// reports the error; nothing after it is sent.
fn assert_stops_at(
    case: &Case,
    tx: &Socket,
    rx: &Socket,
    transmits: &[Transmit<'_>],
    bad: usize,
    want: &InvalidTransmit,
) {
    let sent = tx.try_send_batch(transmits).unwrap_or_else(|e| panic!("[{}] {e}", case.name));
    assert_eq!(
        sent,
        Sent { transmits: bad, segments: 0 },
        "[{}] should stop right before the invalid transmit",
        case.name
    );
    let n = sent.transmits;
    let got = recv_datagrams(rx, &mut RecvBatch::new(), bad);
    let seqs: Vec<u32> = got.iter().map(|r| driver::seq_of(&r.payload)).collect();
    assert_eq!(seqs, (0..bad as u32).collect::<Vec<_>>(), "[{}]", case.name);
    match tx.try_send_batch(&transmits[n..]) {
        Err(Error::InvalidTransmit(e)) => assert_eq!(&e, want, "[{}]", case.name),
        other => panic!("[{}] retry from {n}: {other:?}", case.name),
    }
    driver::assert_quiet(rx, &mut RecvBatch::new(), QUIET);
    // Skipping it sends the rest.
    let rest = &transmits[n + 1..];
    let sent = tx.try_send_batch(rest).unwrap();
    assert!(sent.is_complete(rest), "{sent:?}");
    let got = recv_datagrams(rx, &mut RecvBatch::new(), rest.len());
    assert_eq!(driver::seq_of(&got[0].payload), bad as u32 + 1);
}

#[test]
fn invalid_transmit_mid_batch_sends_those_before_it() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        let to = rx.local_addr().unwrap();
        let bufs: Vec<Vec<u8>> = (0..8).map(|s| payload(s, 50)).collect();
        let mut ts: Vec<_> = bufs.iter().map(|b| Transmit::new(to, b)).collect();
        ts[3].segment_size = Some(0);
        assert_stops_at(case, &tx, &rx, &ts, 3, &InvalidTransmit::SegmentSizeZero);

        // Past the first 64-message chunk, and with a different error.
        let bufs: Vec<Vec<u8>> = (0..100).map(|s| payload(s, 50)).collect();
        let mut ts: Vec<_> = bufs.iter().map(|b| Transmit::new(to, b)).collect();
        let mut bad_to = to;
        bad_to.set_port(0);
        ts[70].destination = bad_to;
        assert_stops_at(case, &tx, &rx, &ts, 70, &InvalidTransmit::PortZero { destination: bad_to });
        // Exactly at the chunk boundary: the first 64 go in one call, the
        // 65th starts the next chunk invalid; still Ok with 64, not an Err.
        ts[70].destination = to;
        ts[64].destination = bad_to;
        assert_stops_at(case, &tx, &rx, &ts, 64, &InvalidTransmit::PortZero { destination: bad_to });
        ts[64].destination = to;

        // An invalid first transmit: Err, nothing sent.
        ts[0].segment_size = Some(0);
        assert!(matches!(tx.try_send_batch(&ts), Err(Error::InvalidTransmit(InvalidTransmit::SegmentSizeZero))));
        driver::assert_quiet(&rx, &mut RecvBatch::new(), QUIET);
    });
}

/// `send_batch_blocking` waits only for buffer space: an invalid transmit
/// is returned as it is, at once (not retried until the timeout and
/// reported as `TimedOut`), after the transmits before it were sent.
#[test]
fn send_batch_blocking_returns_an_invalid_transmit_typed() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        let to = rx.local_addr().unwrap();
        let bufs: Vec<Vec<u8>> = (0..6).map(|s| payload(s, 50)).collect();
        let mut ts: Vec<_> = bufs.iter().map(|b| Transmit::new(to, b)).collect();
        ts[3].segment_size = Some(0);
        match tx.send_batch_blocking(&ts, Duration::from_secs(10)) {
            Err(Error::InvalidTransmit(InvalidTransmit::SegmentSizeZero)) => {}
            other => panic!("[{}] expected SegmentSizeZero, got {other:?}", case.name),
        }
        let got = recv_datagrams(&rx, &mut RecvBatch::new(), 3);
        let seqs: Vec<u32> = got.iter().map(|r| driver::seq_of(&r.payload)).collect();
        assert_eq!(seqs, [0, 1, 2], "[{}] the transmits before the invalid one", case.name);
        driver::assert_quiet(&rx, &mut RecvBatch::new(), QUIET);
    });
}

#[test]
fn zero_length_datagrams_are_sent_and_received() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        let to = rx.local_addr().unwrap();
        let empty: &[u8] = &[];
        // Plain, with a (meaningless) stride, and between two real ones.
        let (a, b) = (payload(1, 10), payload(2, 10));
        let ts = [
            Transmit::new(to, empty),
            Transmit::new(to, &a),
            Transmit::new(to, empty).with_segment_size(1200),
            Transmit::new(to, &b),
        ];
        let got = send_recv(&tx, &rx, &ts);
        let lens: Vec<usize> = got.iter().map(|r| r.meta.len).collect();
        assert_eq!(lens, [0, 10, 0, 10], "[{}]", case.name);
        assert!(got.iter().all(|r| !r.meta.truncated));
    });
}

#[test]
fn gro_train_with_a_short_last_segment_is_split_right() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        for tail in [1, 4, 999] {
            let contents = train(0, 3, 1000, tail);
            let t = Transmit::new(rx.local_addr().unwrap(), &contents).with_segment_size(1000);
            let got = send_recv(&tx, &rx, &[t]);
            let lens: Vec<usize> = got.iter().map(|r| r.meta.len).collect();
            assert_eq!(lens, [1000, 1000, 1000, tail], "[{}]", case.name);
            if tx.capabilities().gso() && rx.capabilities().gro {
                assert!(got.iter().all(|r| r.meta.segment_size == 1000), "[{}] tail {tail}: stride", case.name);
            }
        }
        // A receive buffer that ends inside the tail flags only the tail.
        let contents = train(0, 2, 1000, 500);
        let t = Transmit::new(rx.local_addr().unwrap(), &contents).with_segment_size(1000);
        driver::send_all(&tx, &[t]);
        let mut small = RecvBatch::with_capacity(4, 2200);
        if rx.capabilities().gro {
            // The kernel would drop what does not fit of a coalesced train:
            // a GRO socket refuses slots that small, and loses nothing.
            assert!(rx.wait_readable(Duration::from_secs(5)).unwrap());
            match rx.try_recv_batch(&mut small) {
                Err(Error::BatchTooSmallForGro { slot_len: 2200, needed }) => assert_eq!(needed, 1 << 16),
                other => panic!("[{}] expected BatchTooSmallForGro, got {other:?}", case.name),
            }
            let got = recv_datagrams(&rx, &mut RecvBatch::new(), 3);
            let seen: Vec<_> = got.iter().map(|r| (r.meta.len, r.meta.truncated)).collect();
            assert_eq!(seen, [(1000, false), (1000, false), (500, false)], "[{}]", case.name);
        } else {
            let got = recv_datagrams(&rx, &mut small, 3);
            let seen: Vec<_> = got.iter().map(|r| (r.meta.len, r.meta.truncated)).collect();
            assert_eq!(seen, [(1000, false), (1000, false), (500, false)], "[{}]", case.name);
        }
    });
}

#[test]
fn one_byte_receive_slots_flag_truncation() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        let mut batch = RecvBatch::with_capacity(0, 0);
        assert_eq!((batch.slots(), batch.slot_len()), (1, 1), "with_capacity clamps to one 1-byte slot");
        let b = payload(1, 5);
        // Small slots need a socket without GRO (see BatchTooSmallForGro).
        let rx = if rx.capabilities().gro {
            case.config().gro(false).bind("127.0.0.1:0".parse().unwrap()).unwrap()
        } else {
            rx
        };
        driver::send_all(&tx, &[Transmit::new(rx.local_addr().unwrap(), &b)]);
        let got = recv_datagrams(&rx, &mut batch, 1);
        assert_eq!((got[0].meta.len, got[0].meta.truncated), (1, true), "[{}]", case.name);
        assert_eq!(got[0].payload, b[..1]);
    });
}

/// Every rejection's Display names the `Transmit` field at fault; for a
/// datagram over the UDP limit that is `contents` (one datagram) or
/// `segment_size` (one GSO segment), which the text must tell apart.
#[test]
fn datagram_too_large_display_names_the_field() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        let to = rx.local_addr().unwrap();
        let big = vec![0u8; 65_508];
        let t = Transmit::new(to, &big);
        assert_rejected(
            case,
            &tx,
            &rx,
            &[t],
            &InvalidTransmit::DatagramTooLarge { field: "contents", size: 65_508, max: 65_507 },
            &["contents", "65508"],
        );
        let huge = vec![0u8; 140_000];
        let t = Transmit::new(to, &huge).with_segment_size(70_000);
        assert_rejected(
            case,
            &tx,
            &rx,
            &[t],
            &InvalidTransmit::DatagramTooLarge { field: "segment_size", size: 70_000, max: 65_507 },
            &["segment_size", "70000"],
        );
    });
}

/// A segment size equal to (or above) the payload is one datagram, not a
/// train: an oversized one is reported as its contents, not as a segment.
#[test]
fn segment_size_covering_the_payload_is_one_datagram() {
    for_each_backend(|case| {
        let (tx, rx) = pair_v4(case);
        let to = rx.local_addr().unwrap();
        let big = vec![7u8; 65_508];
        for seg in [65_508, 70_000] {
            let t = Transmit::new(to, &big).with_segment_size(seg);
            assert_eq!(t.segments(), 1);
            let want = InvalidTransmit::DatagramTooLarge { field: "contents", size: 65_508, max: 65_507 };
            assert_rejected(case, &tx, &rx, &[t], &want, &["contents", "65508"]);
        }
    });
}

/// A segment of exactly the largest datagram is allowed: a train of them
/// is refused for its total size, not for its segment size.
#[test]
fn segment_of_exactly_the_limit_is_not_too_large() {
    for_each_backend(|case| {
        for (at, max) in [("127.0.0.1:0", 65_507), ("[::1]:0", 65_527)] {
            let tx = case.bind(at);
            let rx = case.bind(at);
            let two = vec![7u8; 2 * max];
            let t = Transmit::new(rx.local_addr().unwrap(), &two).with_segment_size(max);
            let want = InvalidTransmit::ContentsTooLarge { size: 2 * max, max };
            assert_rejected(case, &tx, &rx, &[t], &want, &["contents", &(2 * max).to_string()]);
        }
    });
}

/// A send to the limited broadcast address from a socket without
/// `SO_BROADCAST` (on loopback: 127.0.0.1 as source routes it to `lo`) is
/// the typed `BroadcastNotEnabled`, not a generic permission error and not
/// an ICMP error; with `Config::broadcast(true)` it is sent.
#[test]
fn broadcast_without_so_broadcast_is_typed() {
    for_each_backend(|case| {
        let to = addr("255.255.255.255:9");
        let tx = case.bind("127.0.0.1:0");
        match tx.try_send_batch(&[Transmit::new(to, b"lan discovery")]) {
            Err(e @ Error::BroadcastNotEnabled { destination }) => {
                assert_eq!(destination, to);
                assert_eq!((e.kind(), e.raw_os_error()), (std::io::ErrorKind::PermissionDenied, Some(errno::EACCES)));
                assert!(!e.is_icmp() && !volley::is_icmp_error(&std::io::Error::from(e)));
            }
            other => panic!("[{}] {other:?}", case.name),
        }
        let on = case.config().broadcast(true).bind(addr("127.0.0.1:0")).unwrap();
        assert!(on.capabilities().broadcast);
        assert_eq!(on.try_send_batch(&[Transmit::new(to, b"lan discovery")]).unwrap().transmits, 1, "[{}]", case.name);
        // A unicast send from the socket without the option still works.
        let rx = case.bind("127.0.0.1:0");
        let sent = tx.try_send_batch(&[Transmit::new(rx.local_addr().unwrap(), b"unicast")]).unwrap();
        assert_eq!(sent.transmits, 1, "[{}]", case.name);
        assert_eq!(recv_datagrams(&rx, &mut RecvBatch::new(), 1).len(), 1, "[{}]", case.name);
    });
}
