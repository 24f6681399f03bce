//! The Windows backend over loopback: what `cargo xtask ci` runs under
//! Wine (and what runs as is on a real Windows host).
//!
//! Every feature is checked against what [`Socket::capabilities`] says,
//! so a missing feature must show up as the documented degradation (USO
//! off: a train leaves one datagram per segment; URO off: one slot per
//! datagram; ECN marks not applied: `ecn_send` false). Under Wine
//! (`VOLLEY_WINE=1`, set by the CI step) the tests also pin Wine 8's
//! profile exactly, so a change in what Wine offers fails loudly instead
//! of quietly testing less.
#![cfg(windows)]

use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use volley::{
    Backend, BindError, Capabilities, Config, Dscp, Ecn, Error, InvalidTransmit, OptionError, RecvBatch, RecvMeta,
    Socket, SocketOption, Transmit,
};
use volley_tests::driver::under_wine;

const TIMEOUT: Duration = Duration::from_secs(5);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn backends() -> [Config; 2] {
    [Config::new(), Config::new().backend(Backend::Portable)]
}

fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut v = vec![(seq % 251) as u8; len];
    if len >= 4 {
        v[..4].copy_from_slice(&seq.to_be_bytes());
    }
    v
}

/// Receives until `want` datagrams arrived.
fn recv(sock: &Socket, batch: &mut RecvBatch, want: usize) -> Vec<(RecvMeta, Vec<u8>)> {
    let mut got = Vec::new();
    while got.len() < want {
        match sock.recv_batch_blocking(batch, TIMEOUT) {
            Ok(_) => got.extend(batch.iter().map(|(m, p)| (m, p.to_vec()))),
            Err(e) => panic!("received {} of {want}, then: {e}", got.len()),
        }
    }
    got
}

/// What every Windows socket reports, and under Wine 8 exactly what Wine
/// gives (the profile is `volley_tests::driver::check_windows_capabilities`,
/// shared with the suites that run under Wine), plus which path was taken.
fn check_capabilities(caps: &Capabilities, portable: bool) {
    volley_tests::driver::check_windows_capabilities(caps, if portable { "portable" } else { "windows" });
    assert_eq!(caps.backend, if portable { Backend::Portable } else { Backend::Auto });
    if portable {
        assert_eq!(caps.max_gso_segments, 1, "portable: no USO:\n{caps}");
        assert!(!caps.gro, "portable: no URO:\n{caps}");
    }
}

#[test]
fn capabilities_are_what_the_stack_gives() {
    for config in backends() {
        let portable = config.clone().bind(addr("127.0.0.1:0")).unwrap().capabilities().backend == Backend::Portable;
        for at in ["127.0.0.1:0", "[::1]:0", "[::]:0"] {
            let sock = config.bind(addr(at)).unwrap();
            let caps = sock.capabilities();
            println!("{at}:\n{caps}");
            check_capabilities(&caps, portable);
        }
    }
}

#[test]
fn datagrams_round_trip_with_their_metadata() {
    for config in backends() {
        for (rx_at, tx_at) in [("127.0.0.1:0", "127.0.0.1:0"), ("[::1]:0", "[::1]:0")] {
            let rx = config.bind(addr(rx_at)).unwrap();
            let tx = config.bind(addr(tx_at)).unwrap();
            let to = rx.local_addr().unwrap();
            let bufs: Vec<Vec<u8>> = (0..64).map(|i| payload(i, 100 + i as usize)).collect();
            let ts: Vec<_> = bufs.iter().map(|b| Transmit::new(to, b)).collect();
            tx.send_batch_blocking(&ts, TIMEOUT).unwrap();
            let mut batch = RecvBatch::new();
            let got = recv(&rx, &mut batch, 64);
            let caps = rx.capabilities();
            for (i, (meta, p)) in got.iter().enumerate() {
                assert_eq!(p, &bufs[i], "datagram {i} in order and intact");
                assert_eq!((meta.len, meta.segment_size, meta.truncated), (p.len(), p.len(), false));
                assert_eq!(meta.src, tx.local_addr().unwrap());
                if caps.pktinfo {
                    assert_eq!(meta.dst_ip, Some(to.ip()), "pktinfo: the local address");
                    assert!(meta.ifindex.is_some_and(|i| i > 0), "pktinfo: the interface");
                } else {
                    assert_eq!((meta.dst_ip, meta.ifindex), (None, None), "no pktinfo: nothing invented");
                }
                if caps.ttl {
                    assert!(meta.ttl.is_some_and(|t| t > 0), "{meta:?}");
                }
                if caps.ecn {
                    assert_eq!((meta.ecn, meta.dscp), (Ecn::NotEct, Some(Dscp::default())), "unmarked");
                }
            }
        }
    }
}

/// A 10-segment train plus a short tail arrives as 11 datagrams, whether
/// the stack segments it (USO) or volley sends one datagram per segment.
#[test]
fn a_train_arrives_as_its_segments() {
    for config in backends() {
        let rx = config.bind(addr("127.0.0.1:0")).unwrap();
        let tx = config.bind(addr("127.0.0.1:0")).unwrap();
        let mut train = Vec::new();
        for i in 0..10 {
            train.extend(payload(i, 1000));
        }
        train.extend(payload(10, 300));
        let t = Transmit::new(rx.local_addr().unwrap(), &train).with_segment_size(1000);
        tx.send_batch_blocking(&[t], TIMEOUT).unwrap();
        let mut batch = RecvBatch::new();
        let got = recv(&rx, &mut batch, 11);
        assert_eq!(got.len(), 11);
        for (i, (meta, p)) in got.iter().enumerate() {
            let len = if i == 10 { 300 } else { 1000 };
            assert_eq!(p, &payload(i as u32, len), "segment {i}");
            assert!(!meta.truncated);
        }
    }
}

/// The mark a transmit asks for arrives when `ecn_send` says so; when it
/// does not (Wine), the datagram still arrives, unmarked.
#[test]
fn ecn_marks_arrive_as_ecn_send_says() {
    for at in ["127.0.0.1:0", "[::1]:0"] {
        let rx = Socket::bind(addr(at)).unwrap();
        let tx = Socket::bind(addr(at)).unwrap();
        let to = rx.local_addr().unwrap();
        let all = [Ecn::NotEct, Ecn::Ect1, Ecn::Ect0, Ecn::Ce];
        let bufs: Vec<Vec<u8>> = (0..4).map(|i| payload(i, 40)).collect();
        let ts: Vec<_> = all.iter().zip(&bufs).map(|(e, b)| Transmit::new(to, b).with_ecn(*e)).collect();
        tx.send_batch_blocking(&ts, TIMEOUT).unwrap();
        let mut batch = RecvBatch::new();
        let got = recv(&rx, &mut batch, 4);
        let caps = tx.capabilities();
        assert!(rx.capabilities().ecn, "{at}: the TOS is reported on receive");
        for (i, (meta, p)) in got.iter().enumerate() {
            assert_eq!(p, &bufs[i]);
            let want = if caps.ecn_send { all[i] } else { Ecn::NotEct };
            assert_eq!(meta.ecn, want, "{at}: datagram {i}, ecn_send {}", caps.ecn_send);
        }
    }
}

/// The receive side decodes the TOS byte: sent by a plain socket with
/// `IP_TOS` set, which Wine passes to the host (real Windows ignores it
/// without a QoS policy, so there only the datagram is checked).
#[test]
fn receive_decodes_the_tos_byte() {
    let rx = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let tx = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    tx.set_tos_v4(0xb9).unwrap(); // DSCP 46 (EF), ECT(1)
    tx.send_to(b"marked", &rx.local_addr().unwrap().into()).unwrap();
    let mut batch = RecvBatch::new();
    let got = recv(&rx, &mut batch, 1);
    assert_eq!(got[0].1, b"marked");
    if under_wine() {
        assert_eq!((got[0].0.ecn, got[0].0.dscp), (Ecn::Ect1, Some(Dscp::EF)));
    }
}

#[test]
fn a_truncated_datagram_is_flagged_not_lost() {
    for config in backends() {
        let rx = config.bind(addr("127.0.0.1:0")).unwrap();
        let tx = config.bind(addr("127.0.0.1:0")).unwrap();
        let to = rx.local_addr().unwrap();
        let (big, small) = (payload(1, 500), payload(2, 50));
        tx.send_batch_blocking(&[Transmit::new(to, &big), Transmit::new(to, &small)], TIMEOUT).unwrap();
        let mut batch = RecvBatch::with_capacity(4, 100);
        let got = recv(&rx, &mut batch, 2);
        assert_eq!((got[0].0.len, got[0].0.truncated), (100, true), "cut to the slot, flagged");
        assert_eq!(got[0].1, big[..100]);
        assert_eq!((got[1].0.len, got[1].0.truncated), (50, false), "the next one is whole");
        assert_eq!(got[1].1, small);
    }
}

#[test]
fn receive_into_caller_buffers() {
    let rx = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let tx = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let to = rx.local_addr().unwrap();
    let ts = [Transmit::new(to, b"one"), Transmit::new(to, b"two!")];
    tx.send_batch_blocking(&ts, TIMEOUT).unwrap();
    assert!(rx.wait_readable(TIMEOUT).unwrap());
    std::thread::sleep(Duration::from_millis(50));
    let (mut a, mut b, mut c) = ([0u8; 64], [0u8; 64], [0u8; 64]);
    let mut bufs = [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b), IoSliceMut::new(&mut c)];
    let mut meta = [RecvMeta::default(); 3];
    let n = rx.try_recv(&mut bufs, &mut meta).unwrap();
    assert_eq!(n, 2, "short receive: the queue ran out");
    assert_eq!((&bufs[0][..meta[0].len], &bufs[1][..meta[1].len]), (&b"one"[..], &b"two!"[..]));
    assert_eq!(meta[1].src, tx.local_addr().unwrap());
}

/// A `[::]` socket carries IPv4, reported as plain IPv4 (the address
/// policy), and sends to plain IPv4 destinations.
#[test]
fn dual_stack_reports_ipv4_as_ipv4() {
    let rx = Socket::bind(addr("[::]:0")).unwrap();
    let tx = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, rx.local_addr().unwrap().port()));
    tx.send_batch_blocking(&[Transmit::new(to, b"v4")], TIMEOUT).unwrap();
    let mut batch = RecvBatch::new();
    let got = recv(&rx, &mut batch, 1);
    assert_eq!(got[0].0.src, tx.local_addr().unwrap());
    assert_eq!(got[0].0.dst_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    // And back, from the dual-stack socket to a plain IPv4 address.
    rx.send_batch_blocking(&[Transmit::new(tx.local_addr().unwrap(), b"back")], TIMEOUT).unwrap();
    let got = recv(&tx, &mut batch, 1);
    assert_eq!((got[0].1.as_slice(), got[0].0.src.ip()), (&b"back"[..], IpAddr::V4(Ipv4Addr::LOCALHOST)));
}

/// The source address of a transmit (pktinfo on send) is used by a
/// wildcard-bound socket where `src_send` says so, and refused, typed,
/// where the stack would ignore it (Wine).
#[test]
fn src_ip_is_used_or_refused() {
    let rx = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let tx = Socket::bind(addr("0.0.0.0:0")).unwrap();
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let t = Transmit::new(rx.local_addr().unwrap(), b"from").with_src_ip(src);
    if tx.capabilities().src_send {
        tx.send_batch_blocking(&[t], TIMEOUT).unwrap();
        let mut batch = RecvBatch::new();
        assert_eq!(recv(&rx, &mut batch, 1)[0].0.src.ip(), src);
    } else {
        match tx.try_send_batch(&[t]) {
            Err(Error::InvalidTransmit(InvalidTransmit::SourceUnsupported)) => {}
            other => panic!("src_send false, yet: {other:?}"),
        }
    }
}

#[test]
fn errors_are_typed() {
    let a = Socket::bind(addr("127.0.0.1:0")).unwrap();
    match Socket::bind(a.local_addr().unwrap()) {
        Err(Error::Bind { reason: BindError::AddressInUse, .. }) => {}
        other => panic!("{other:?}"),
    }
    let unsupported = |r: Result<Socket, Error>, what: &str| match r {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{what}: {e}"),
        Ok(_) => panic!("{what}: accepted"),
    };
    unsupported(Config::new().reuse_port(true).bind(addr("127.0.0.1:0")), "reuse_port");
    unsupported(Config::new().timestamps(true).bind(addr("127.0.0.1:0")), "timestamps");
    unsupported(Config::new().txtime(true).bind(addr("127.0.0.1:0")), "txtime");
    unsupported(Config::new().bind_device("lo").bind(addr("127.0.0.1:0")), "bind_device");
    if under_wine() {
        unsupported(Config::new().pmtud(volley::Pmtud::Probe).bind(addr("127.0.0.1:0")), "pmtud (Wine)");
    }
    let to = a.local_addr().unwrap();
    let t = Transmit::new(to, b"x").with_dscp(Dscp::EF);
    match a.try_send_batch(&[t]) {
        Err(Error::InvalidTransmit(InvalidTransmit::DscpUnsupported { dscp })) => assert_eq!(dscp, Dscp::EF),
        other => panic!("{other:?}"),
    }
    // The default DSCP is no request: it goes.
    let t = Transmit::new(to, b"x").with_dscp(Dscp::default());
    assert_eq!(a.try_send_batch(&[t]).unwrap().transmits, 1);
}

/// The DSCP refusal a socket-level TOS must meet, with its reason.
#[track_caller]
fn refused_dscp(r: Result<(), Error>, want: OptionError, what: &str) -> Error {
    match r {
        Err(e @ Error::SocketOption { option: SocketOption::Dscp, reason, .. }) if reason == want => e,
        other => panic!("{what}: want SocketOption::Dscp refused {want:?}, got {other:?}"),
    }
}

/// A socket-level DSCP is a qWAVE flow to the connected peer: refused,
/// typed, on an unconnected socket (and so at bind) and with ECN bits;
/// on a connected one it is marked where qWAVE answers (DSCP 40 needs no
/// privilege), and refused as `Unsupported` where it does not. Under Wine
/// 8 `QOSCreateHandle` fails: the capability reads false and a connected
/// socket's DSCP is refused naming that step.
#[test]
fn socket_dscp_is_a_qwave_flow_or_a_typed_refusal() {
    let cs5 = Dscp::new(40).unwrap().tos(Ecn::NotEct);
    let ef = Dscp::EF.tos(Ecn::NotEct);
    let peer = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let sock = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let qwave = sock.capabilities().qwave;
    println!("qwave: {qwave}");

    // Unconnected: no peer to make a flow to.
    let e = refused_dscp(sock.set_tos(ef), OptionError::NotConnected, "unconnected");
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected, "{e}");
    println!("unconnected: {e}");
    match Config::new().tos(ef).bind(addr("127.0.0.1:0")) {
        Err(Error::SocketOption { option: SocketOption::Dscp, reason: OptionError::NotConnected, .. }) => {}
        other => panic!("Config::tos at bind: {other:?}"),
    }
    // ECN belongs in the datagram (IP_ECN), never in the socket's TOS.
    refused_dscp(sock.set_tos(Dscp::EF.tos(Ecn::Ect0)), OptionError::Unsupported, "ECN bits");
    sock.set_tos(0).unwrap();
    assert_eq!(sock.tos().unwrap(), 0);

    sock.connect(peer.local_addr().unwrap()).unwrap();
    match sock.set_tos(cs5) {
        Ok(()) => {
            assert!(qwave, "a flow without the capability");
            assert_eq!(sock.tos().unwrap(), cs5);
            // A transmit may name the flow's DSCP, not another.
            let to = peer.local_addr().unwrap();
            let same = Transmit::new(to, b"cs5").with_dscp(Dscp::new(40).unwrap());
            sock.send_batch_blocking(&[same], TIMEOUT).unwrap();
            let mut batch = RecvBatch::new();
            // What reaches the wire over loopback is printed, not
            // asserted: whether qWAVE marks loopback traffic is not known.
            println!("received dscp {:?} (flow 40)", recv(&peer, &mut batch, 1)[0].0.dscp);
            let other = Transmit::new(to, b"ef").with_dscp(Dscp::EF);
            match sock.try_send_batch(&[other]) {
                Err(Error::InvalidTransmit(InvalidTransmit::DscpUnsupported { dscp })) => assert_eq!(dscp, Dscp::EF),
                other => panic!("{other:?}"),
            }
            // EF needs Administrators or Network Configuration Operators;
            // refused, the socket is left unmarked.
            match sock.set_tos(ef) {
                Ok(()) => assert_eq!(sock.tos().unwrap(), ef),
                r => {
                    refused_dscp(r, OptionError::PermissionDenied, "EF unprivileged");
                    assert_eq!(sock.tos().unwrap(), 0);
                    sock.set_tos(cs5).unwrap();
                }
            }
            // The flow belongs to the peer: a new connect ends it.
            sock.connect(peer.local_addr().unwrap()).unwrap();
            assert_eq!(sock.tos().unwrap(), 0, "connect ends the flow");
        }
        r => {
            let e = refused_dscp(r, OptionError::Unsupported, "connected, qWAVE unavailable");
            println!("connected: {e}");
            assert!(!qwave, "refused although qWAVE answered: {e}");
            if under_wine() {
                // Wine 8's stub sets ERROR_SERVICE_ALREADY_RUNNING.
                let text = e.to_string();
                assert!(text.contains("QOSCreateHandle") && text.contains("(os error 1056)"), "{e}");
            }
            assert_eq!(sock.tos().unwrap(), 0);
        }
    }
    sock.set_tos(0).unwrap();
    assert_eq!(sock.tos().unwrap(), 0);
    // qWAVE takes no IPv4-mapped peer: a dual-stack socket connected to
    // an IPv4 address is refused before qWAVE is asked.
    let dual = Socket::bind(addr("[::]:0")).unwrap();
    dual.connect(peer.local_addr().unwrap()).unwrap();
    let e = refused_dscp(dual.set_tos(cs5), OptionError::Unsupported, "mapped peer");
    assert!(e.to_string().contains("IPv4-mapped"), "{e}");
    // Per datagram only the socket's DSCP (0 here) may be named.
    let t = Transmit::new(peer.local_addr().unwrap(), b"x").with_dscp(Dscp::EF);
    match sock.try_send_batch(&[t]) {
        Err(Error::InvalidTransmit(InvalidTransmit::DscpUnsupported { dscp })) => assert_eq!(dscp, Dscp::EF),
        other => panic!("{other:?}"),
    }
}

/// mio readiness on Windows goes through mio's own UDP socket: after a
/// receive met WouldBlock, the next datagram raises a new event.
#[test]
fn mio_readiness_rearms_after_would_block() {
    use mio::{Events, Interest, Poll, Token};
    let mut rx = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let tx = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let to = rx.local_addr().unwrap();
    let mut poll = Poll::new().unwrap();
    poll.registry().register(&mut rx, Token(7), Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    let mut batch = RecvBatch::new();
    for round in 0..3u32 {
        let p = payload(round, 20);
        assert_eq!(tx.try_send_batch(&[Transmit::new(to, &p)]).unwrap().transmits, 1);
        let mut got = None;
        let deadline = std::time::Instant::now() + TIMEOUT;
        while got.is_none() {
            assert!(std::time::Instant::now() < deadline, "round {round}: no readiness event");
            poll.poll(&mut events, Some(Duration::from_millis(500))).unwrap();
            if events.iter().any(|e| e.token() == Token(7) && e.is_readable()) {
                loop {
                    match rx.try_recv_batch(&mut batch) {
                        Ok(_) => got = batch.iter().next().map(|(_, d)| d.to_vec()),
                        Err(e) if e.is_would_block() => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
        assert_eq!(got.unwrap(), p, "round {round}");
    }
}

/// volley lets a loop stop after a short receive, without meeting
/// `WouldBlock`: the next datagram must still raise an event (mio on
/// Windows re-arms only after a `WouldBlock`, which volley reports to it
/// after every call).
#[test]
fn mio_readiness_after_a_short_receive() {
    use mio::{Events, Interest, Poll, Token};
    let mut rx = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let tx = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let to = rx.local_addr().unwrap();
    let mut poll = Poll::new().unwrap();
    poll.registry().register(&mut rx, Token(3), Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    let mut batch = RecvBatch::new();
    for round in 0..3u32 {
        let p = payload(round, 20);
        assert_eq!(tx.try_send_batch(&[Transmit::new(to, &p)]).unwrap().transmits, 1);
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            assert!(std::time::Instant::now() < deadline, "round {round}: no readiness event after a short receive");
            poll.poll(&mut events, Some(Duration::from_millis(500))).unwrap();
            if events.iter().any(|e| e.token() == Token(3)) {
                match rx.try_recv_batch(&mut batch) {
                    // One call, short (one datagram in a 32-slot batch): stop here.
                    Ok(n) => {
                        assert!(batch.is_short() && n == 1, "round {round}");
                        assert_eq!(batch.iter().next().unwrap().1, &p[..]);
                        break;
                    }
                    Err(e) if e.is_would_block() => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}

/// A port unreachable does not fail the next receive of an unconnected
/// socket (`SIO_UDP_CONNRESET` off), as on Linux.
#[test]
fn a_closed_port_does_not_fail_the_next_receive() {
    let sock = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let gone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = gone.local_addr().unwrap();
    drop(gone);
    sock.send_batch_blocking(&[Transmit::new(to, b"anyone?")], TIMEOUT).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut batch = RecvBatch::new();
    match sock.try_recv_batch(&mut batch) {
        Err(e) if e.is_would_block() => {}
        other => panic!("expected WouldBlock, got {other:?}"),
    }
    // And the socket still works.
    let me = sock.local_addr().unwrap();
    sock.send_batch_blocking(&[Transmit::new(me, b"self")], TIMEOUT).unwrap();
    assert_eq!(recv(&sock, &mut batch, 1)[0].1, b"self");
}

#[test]
fn connect_and_disconnect() {
    let sock = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let peer = Socket::bind(addr("127.0.0.1:0")).unwrap();
    let other = Socket::bind(addr("127.0.0.1:0")).unwrap();
    sock.connect(peer.local_addr().unwrap()).unwrap();
    assert_eq!(sock.peer_addr().unwrap(), peer.local_addr().unwrap());
    sock.disconnect().unwrap();
    assert!(sock.peer_addr().is_err(), "no peer after disconnect");
    let me = sock.local_addr().unwrap();
    other.send_batch_blocking(&[Transmit::new(me, b"after")], TIMEOUT).unwrap();
    let mut batch = RecvBatch::new();
    assert_eq!(recv(&sock, &mut batch, 1)[0].1, b"after", "another sender reaches it again");
}

#[test]
fn adopt_and_give_back_a_std_socket() {
    let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let at = std_sock.local_addr().unwrap();
    let sock = Socket::from_std(std_sock).unwrap();
    check_capabilities(&sock.capabilities(), false);
    assert_eq!(sock.local_addr().unwrap(), at);
    let back = sock.into_std();
    assert_eq!(back.local_addr().unwrap(), at);
    let (fd, dp) = Socket::from_std(back).unwrap().into_parts();
    let std_sock = std::net::UdpSocket::from(fd);
    assert_eq!(dp.socket(&std_sock).local_addr().unwrap(), at);
}
