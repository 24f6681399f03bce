//! Adopting a socket created elsewhere: the way systemd socket activation
//! or a supervisor hands a bound socket to a child process.
// Linux only: inherited descriptors (`std::os::fd`) passed to a child process.
#![cfg(target_os = "linux")]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use volley::{AdoptError, Config, Ecn, Error, RecvBatch, Socket, Transmit};
use volley_tests::driver::{child_mode, train, CHILD_ENV, TIMEOUT};

/// The descriptor number the parent passes (systemd uses `LISTEN_FDS` and
/// fd 3 up; a test cannot place it at 3 without unsafe code in the parent,
/// so it names the number).
const FD_ENV: &str = "VOLLEY_INHERITED_FD";

/// A child process inherits a bound socket, adopts it, and serves on it
/// with GSO/GRO and per-datagram metadata: it receives a GSO train of 11
/// datagrams (ECT(0)) and answers with one datagram describing what it
/// saw, marked CE, sent from the inherited socket.
#[test]
fn a_child_adopts_an_inherited_bound_socket_and_serves_on_it() {
    let inherited = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = inherited.local_addr().unwrap();
    // Let it survive exec, as an inherited descriptor must.
    socket2::SockRef::from(&inherited).set_cloexec(false).unwrap();
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["child_serves_on_an_adopted_socket", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "adopt")
        .env(FD_ENV, inherited.as_raw_fd().to_string())
        .env("LISTEN_FDS", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(inherited); // the child holds it now

    let client = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let contents = train(0, 10, 1200, 500);
    let t = Transmit::new(server, &contents).with_segment_size(1200).with_ecn(Ecn::Ect0);
    client.send_batch_blocking(&[t], TIMEOUT).unwrap();
    let mut batch = RecvBatch::new();
    // The child may still be starting: its socket queues the train meanwhile.
    client.recv_batch_blocking(&mut batch, Duration::from_secs(20)).expect("the child's answer");
    let (meta, answer) = batch.iter().next().unwrap();
    let answer = String::from_utf8(answer.to_vec()).unwrap();
    println!("child answered from {}: {answer}", meta.src);
    assert_eq!(meta.src, server, "answered from the inherited socket");
    assert_eq!(meta.ecn, Ecn::Ce, "per-datagram ECN on the adopted socket's send");
    assert_eq!(answer, format!("11 datagrams, {} bytes, ecn ect0, dst 127.0.0.1, caps ok", contents.len()));
    let out = child.wait_with_output().unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "child failed: {:?}", out.status);
}

/// The child's half (run only by the test above).
#[test]
#[ignore = "child mode of a_child_adopts_an_inherited_bound_socket_and_serves_on_it"]
fn child_serves_on_an_adopted_socket() {
    if child_mode().as_deref() != Some("adopt") {
        return;
    }
    assert_eq!(std::env::var("LISTEN_FDS").as_deref(), Ok("1"));
    let raw: i32 = std::env::var(FD_ENV).unwrap().parse().unwrap();
    // SAFETY: the parent passed this descriptor to us open, and nothing
    // else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let sock = Config::new().recv_errors(true).adopt(fd).expect("adopt the inherited socket");
    let caps = sock.capabilities();
    println!("child: adopted {} with\n{caps}", sock.local_addr().unwrap());
    let caps_ok = caps.pktinfo && caps.ecn && caps.recv_errors;
    let mut batch = RecvBatch::new();
    let (mut count, mut bytes) = (0, 0);
    while count < 11 {
        sock.recv_batch_blocking(&mut batch, Duration::from_secs(20)).expect("the train");
        for (meta, payload) in batch.iter() {
            count += 1;
            bytes += payload.len();
            let from = meta.src;
            if count == 11 {
                let answer = format!(
                    "{count} datagrams, {bytes} bytes, ecn {}, dst {}, caps {}",
                    meta.ecn,
                    meta.dst_ip.map_or("?".into(), |d| d.to_string()),
                    if caps_ok { "ok" } else { "missing" }
                );
                let t = Transmit::new(from, answer.as_bytes()).with_ecn(Ecn::Ce);
                sock.send_batch_blocking(&[t], TIMEOUT).unwrap();
            }
        }
    }
    // Handed back out, it is still the same bound socket.
    let back = sock.into_std();
    assert_eq!(back.local_addr().unwrap().ip().to_string(), "127.0.0.1");
}

/// A UDP socket made elsewhere: `setup` sets what only takes effect
/// before bind, then it is bound to `at`.
fn bound_with(
    at: &str,
    setup: impl FnOnce(&socket2::Socket) -> std::io::Result<()>,
) -> std::io::Result<socket2::Socket> {
    let at: std::net::SocketAddr = at.parse().unwrap();
    let s = socket2::Socket::new(socket2::Domain::for_address(at), socket2::Type::DGRAM, None)?;
    setup(&s)?;
    s.bind(&at.into())?;
    Ok(s)
}

#[test]
fn adoption_refuses_what_it_cannot_honour() {
    let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    match Config::new().reuse_port(true).adopt(plain) {
        Err(e @ Error::Adopt { reason: AdoptError::ReusePort, .. }) => {
            assert!(e.to_string().contains("reuse_port"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    match Config::new().adopt(tcp) {
        Err(Error::Adopt { reason: AdoptError::NotUdp, .. }) => {}
        other => panic!("a TCP socket: {other:?}"),
    }
    let v6 = bound_with("[::]:0", |s| s.set_only_v6(true)).unwrap();
    match Config::new().ipv6_only(false).adopt(v6) {
        Err(Error::Adopt { reason: AdoptError::Ipv6Only, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Asked-for options that are set are fine.
    let s = bound_with("127.0.0.1:0", |s| s.set_reuse_port(true)).unwrap();
    let sock = Config::new().reuse_port(true).tos(0xb8).adopt(s).expect("reuse_port was set at bind");
    assert_eq!(sock.tos().unwrap(), 0xb8, "post-bind options applied");
    let std_back: std::net::UdpSocket = sock.into_std();
    assert!(Socket::try_from(std_back).is_ok(), "and back again");
}

/// std's sockets are blocking. An adopted one is made non-blocking, as
/// mio needs (a `try_` call must never sleep in the kernel), unless the
/// configuration asks for a blocking one (`Config::blocking`), which keeps
/// `O_NONBLOCK` clear and still never blocks a `try_` call.
#[test]
fn an_adopted_socket_is_non_blocking_unless_asked() {
    for blocking in [false, true] {
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!socket2::SockRef::from(&plain).nonblocking().unwrap(), "std binds blocking");
        let sock = Config::new().blocking(blocking).adopt(plain).expect("adopt");
        let nonblocking = socket2::SockRef::from(&sock).nonblocking().unwrap();
        assert_eq!(nonblocking, !blocking, "O_NONBLOCK after adopt with blocking({blocking})");
        match sock.try_recv_batch(&mut RecvBatch::new()) {
            Err(e) if e.is_would_block() => {}
            other => panic!("blocking({blocking}): an empty try_recv_batch gave {other:?}"),
        }
        match sock.recv_batch_blocking(&mut RecvBatch::new(), Duration::from_millis(20)) {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            other => panic!("blocking({blocking}): an empty recv_batch_blocking gave {other:?}"),
        }
    }
}

/// The raw descriptor a socket gives (for `poll`, `setsockopt`, an event
/// loop) is its own, the one `as_fd` borrows.
#[test]
fn the_raw_descriptor_is_the_sockets_own() {
    let sock = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let raw = sock.as_raw_fd();
    assert_eq!(raw, std::os::fd::AsFd::as_fd(&sock).as_raw_fd());
    assert_eq!(socket2::SockRef::from(&sock).local_addr().unwrap().as_socket(), Some(sock.local_addr().unwrap()));
}

/// The remaining bind-time options an adopted socket must already have:
/// `SO_REUSEADDR`, and the device of `bind_device` (as root).
#[test]
fn adoption_checks_reuse_addr_and_the_bound_device() {
    let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    match Config::new().reuse_addr(true).adopt(plain) {
        Err(e @ Error::Adopt { reason: AdoptError::ReuseAddr, .. }) => {
            assert!(e.to_string().contains("reuse_addr"), "{e}");
        }
        other => panic!("a socket bound without SO_REUSEADDR: {other:?}"),
    }
    let s = bound_with("127.0.0.1:0", |s| s.set_reuse_address(true)).unwrap();
    Config::new().reuse_addr(true).adopt(s).expect("SO_REUSEADDR was set at bind");

    let unbound = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    match Config::new().bind_device("lo").adopt(unbound) {
        Err(Error::Adopt { reason: AdoptError::BindDevice, .. }) => {}
        other => panic!("a socket on no device, adopted for lo: {other:?}"),
    }
    match bound_with("127.0.0.1:0", |s| s.bind_device(Some(b"lo"))) {
        Ok(s) => drop(Config::new().bind_device("lo").adopt(s).expect("bound to lo")),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            println!("SKIPPED the bound-device case: SO_BINDTODEVICE needs CAP_NET_RAW: {e}");
        }
        Err(e) => panic!("a socket bound to lo: {e}"),
    }
}

/// An adopted socket takes the families its address allows, as a bound
/// one: IPv4 on an IPv4 socket and on a dual-stack IPv6 one, both ways,
/// with IPv4 metadata on receive (the original destination included, an
/// option set per family at adoption); an IPv6-only socket refuses an IPv4
/// destination, typed.
#[test]
fn an_adopted_socket_sends_to_the_families_it_carries() {
    let rx = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = rx.local_addr().unwrap();
    let mut batch = RecvBatch::new();
    // orig_dst: an option volley sets per family at adoption.
    let v4 = Config::new().orig_dst(true).adopt(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
    let dual = bound_with("[::]:0", |s| s.set_only_v6(false)).unwrap();
    let dual = Config::new().orig_dst(true).adopt(dual).unwrap();
    for (name, tx) in [("IPv4", &v4), ("dual-stack", &dual)] {
        tx.send_batch_blocking(&[Transmit::new(to, name.as_bytes())], TIMEOUT)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        rx.recv_batch_blocking(&mut batch, TIMEOUT).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(batch.iter().next().map(|(_, p)| p.to_vec()), Some(name.as_bytes().to_vec()));
        // And it receives IPv4 with its metadata: the IPv4-level receive
        // options were set on it (on a dual-stack socket too).
        let back = std::net::SocketAddr::from(([127, 0, 0, 1], tx.local_addr().unwrap().port()));
        rx.send_batch_blocking(&[Transmit::new(back, b"back")], TIMEOUT).unwrap();
        tx.recv_batch_blocking(&mut batch, TIMEOUT).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (meta, payload) = batch.iter().next().unwrap();
        assert_eq!(payload, b"back");
        assert_eq!(meta.dst_ip, Some(std::net::Ipv4Addr::LOCALHOST.into()), "{name}: IP_PKTINFO");
        assert!(meta.ttl.is_some(), "{name}: IP_RECVTTL: {meta:?}");
        assert_eq!(meta.orig_dst(), Some(back), "{name}: IP_RECVORIGDSTADDR");
    }
    let only6 = bound_with("[::]:0", |s| s.set_only_v6(true)).unwrap();
    let only6 = Config::new().adopt(only6).unwrap();
    match only6.try_send_batch(&[Transmit::new(to, b"v4")]) {
        Err(Error::InvalidTransmit(volley::InvalidTransmit::AddressFamily { destination })) => {
            assert_eq!(destination, to);
        }
        other => panic!("an IPv4 destination from an IPv6-only socket: {other:?}"),
    }
}
