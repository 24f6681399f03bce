//! Issue 18 in network namespaces: broadcast for LAN discovery,
//! `IP_FREEBIND`, `SO_MARK` for policy routing, and a transparent proxy
//! behind an nftables `tproxy` rule reading each datagram's original
//! destination (`RecvMeta::orig_dst`) and answering from it; plus the
//! typed refusals (broadcast without `SO_BROADCAST`, `IP_TRANSPARENT` and
//! `SO_MARK` without `CAP_NET_ADMIN`).
//!
//! Namespace scenarios need root and `ip` / `nft` (skipped with a printed
//! reason otherwise, failed under `VOLLEY_REQUIRE_LAB=1`). The privilege
//! scenario re-runs this binary as a child that drops to uid 65534.
//! Every wait is bounded in time and iterations; the lab deletes its
//! namespaces when a test ends, pass or fail. See `docs/lab.md`.
#![cfg(target_os = "linux")]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use volley::{Config, Error, OptionError, RecvMeta, Socket, SocketOption, Transmit};
use volley_tests::driver;
use volley_tests::netlab::{Iface, Lab, Ns};

/// The longest any one wait for traffic lasts.
const WAIT: Duration = Duration::from_secs(5);

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("bad address {s:?}: {e}"))
}

/// Sends `payload` with `send` until `sock` receives a datagram carrying
/// it (at most 25 tries, 200 ms each: the first may wait on neighbour
/// resolution); returns its metadata.
fn send_until_received(sock: &Socket, payload: &[u8], mut send: impl FnMut()) -> RecvMeta {
    for _ in 0..25 {
        send();
        if let Some((m, _)) =
            driver::recv_up_to(sock, 1, Duration::from_millis(200)).into_iter().find(|(_, p)| p.as_slice() == payload)
        {
            return m;
        }
    }
    panic!("{:?} never arrived at {:?}", String::from_utf8_lossy(payload), sock.local_addr());
}

/// Two namespaces on one veth subnet: `a` (`.1`) and `b` (`.2`) on
/// 10.77.`net`.0/24 and fd00:77:`net`::/64.
fn pair(lab: &mut Lab, net: u8) -> (Ns, Ns, Iface, Iface) {
    let a = lab.ns("a");
    let b = lab.ns("b");
    let (ia, ib) = lab.link(&a, &b);
    ia.addr(&format!("10.77.{net}.1/24")).addr(&format!("fd00:77:{net}::1/64"));
    ib.addr(&format!("10.77.{net}.2/24")).addr(&format!("fd00:77:{net}::2/64"));
    (a, b, ia, ib)
}

/// LAN discovery: a sender with `Config::broadcast(true)` reaches a
/// wildcard-bound receiver on the other host through 255.255.255.255 and
/// through the subnet's directed broadcast, and the receiver's `dst_ip`
/// says which. Without the option, both sends (and a connect) fail with the
/// typed `BroadcastNotEnabled`, also from a dual-stack socket, and nothing
/// leaves.
#[test]
fn broadcast_limited_and_directed() {
    let Some(mut lab) = Lab::new() else { return };
    let (a, b, ia, _) = pair(&mut lab, 21);
    // A default route, so a wildcard-bound sender can route 255.255.255.255.
    a.ip(&format!("route add default dev {}", ia.name));
    let rx = b.run(|| Socket::bind(sa("0.0.0.0:0"))).expect("bind receiver");
    let port = rx.local_addr().unwrap().port();
    let (tx, plain, plain6) = a.run(|| {
        (
            Config::new().broadcast(true).bind(sa("10.77.21.1:0")).expect("bind broadcaster"),
            Socket::bind(sa("10.77.21.1:0")).expect("bind plain sender"),
            Socket::bind(sa("[::]:0")).expect("bind dual-stack sender"),
        )
    });
    assert!(tx.capabilities().broadcast && !plain.capabilities().broadcast);
    let from = tx.local_addr().unwrap();

    for (dst, what) in [("255.255.255.255", "limited"), ("10.77.21.255", "directed"), ("10.77.21.2", "unicast")] {
        let to = SocketAddr::new(dst.parse().unwrap(), port);
        let payload = format!("{what} broadcast");
        let meta = send_until_received(&rx, payload.as_bytes(), || {
            tx.send_batch_blocking(&[Transmit::new(to, payload.as_bytes())], WAIT).expect("send");
        });
        println!("{what}: to {to}, received from {} with dst_ip {:?}", meta.src, meta.dst_ip);
        assert_eq!(meta.src, from);
        assert_eq!(meta.dst_ip, Some(to.ip()), "{what}: dst_ip is the address the datagram was sent to");
    }

    // Late duplicates of the sends above, if any, go before the checks below.
    let _ = driver::recv_up_to(&rx, usize::MAX, Duration::from_millis(300));
    // Without SO_BROADCAST: typed, nothing sent.
    for to in [sa("255.255.255.255:9"), SocketAddr::new("10.77.21.255".parse().unwrap(), port)] {
        for (sock, name) in [(&plain, "IPv4"), (&plain6, "dual-stack")] {
            match sock.try_send_batch(&[Transmit::new(to, b"must not leave")]) {
                Err(e @ Error::BroadcastNotEnabled { destination }) => {
                    assert_eq!(destination, to);
                    assert_eq!(e.raw_os_error(), Some(libc::EACCES));
                    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
                    assert!(!e.is_icmp(), "not an ICMP error");
                    assert!(e.to_string().contains("Config::broadcast(true)"), "{e}");
                    println!("{name} socket, {to}: {e}");
                }
                other => panic!("{name} send to {to} without SO_BROADCAST: {other:?}"),
            }
        }
    }
    match plain.connect(sa("255.255.255.255:9")) {
        Err(Error::BroadcastNotEnabled { destination }) => assert_eq!(destination, sa("255.255.255.255:9")),
        other => panic!("connect to a broadcast address without SO_BROADCAST: {other:?}"),
    }
    // The refused datagrams never left: the next one to arrive is a marker.
    let marker = SocketAddr::new("10.77.21.2".parse().unwrap(), port);
    tx.send_batch_blocking(&[Transmit::new(marker, b"marker")], WAIT).expect("send marker");
    let got = driver::recv_up_to(&rx, 1, WAIT);
    assert_eq!(got.iter().map(|(_, p)| p.as_slice()).collect::<Vec<_>>(), [b"marker"]);
    assert!(driver::recv_up_to(&rx, 1, Duration::from_millis(300)).is_empty(), "nothing after the marker");
}

/// A broadcast socket made elsewhere and adopted keeps working; one adopted
/// with `broadcast(true)` gets the option set.
#[test]
fn broadcast_on_an_adopted_socket() {
    let Some(mut lab) = Lab::new() else { return };
    let (a, b, _, _) = pair(&mut lab, 22);
    let rx = b.run(|| Socket::bind(sa("0.0.0.0:0"))).expect("bind receiver");
    let to = SocketAddr::new("10.77.22.255".parse().unwrap(), rx.local_addr().unwrap().port());
    let tx = a.run(|| UdpSocket::bind("10.77.22.1:0")).expect("bind std socket");
    let tx = Config::new().broadcast(true).adopt(tx).expect("adopt with broadcast");
    assert!(tx.capabilities().broadcast);
    let meta = send_until_received(&rx, b"adopted", || {
        tx.send_batch_blocking(&[Transmit::new(to, b"adopted")], WAIT).expect("send");
    });
    assert_eq!(meta.dst_ip, Some(to.ip()));
}

/// `IP_FREEBIND`: a server binds an address no interface has yet (without
/// the option the bind is refused), then the address is added and the
/// datagrams sent to it arrive. IPv4 and IPv6.
#[test]
fn freebind_binds_before_the_address_exists() {
    let Some(mut lab) = Lab::new() else { return };
    let (a, b, _, ib) = pair(&mut lab, 23);
    for (future, cidr) in [("10.77.23.9:4000", "10.77.23.9/24"), ("[fd00:77:23::9]:4000", "fd00:77:23::9/64")] {
        let at = sa(future);
        let plain = b.run(|| Socket::bind(at));
        assert!(
            matches!(plain, Err(Error::Bind { reason: volley::BindError::AddressNotAvailable, .. })),
            "without freebind, binding {at} fails: {plain:?}"
        );
        let rx = b.run(|| Config::new().freebind(true).bind(at)).unwrap_or_else(|e| panic!("freebind {at}: {e}"));
        assert!(rx.capabilities().freebind);
        assert_eq!(rx.local_addr().unwrap(), at);
        ib.addr(cidr);
        let tx =
            a.run(|| Socket::bind(SocketAddr::new(if at.is_ipv6() { "::" } else { "0.0.0.0" }.parse().unwrap(), 0)));
        let tx = tx.expect("bind sender");
        let meta = send_until_received(&rx, b"now it exists", || {
            tx.send_batch_blocking(&[Transmit::new(at, b"now it exists")], WAIT).expect("send");
        });
        println!("{at}: bound before `ip addr add {cidr}`, received from {}", meta.src);
        assert_eq!(meta.dst_ip, Some(at.ip()));
    }
}

/// `SO_MARK`, observed twice: an nftables output counter of `meta mark`,
/// and a policy-routing rule (`ip rule add fwmark`) that sends marked
/// packets over a second link, which the receiver sees as a different
/// `ifindex`. An unmarked socket takes the main table's link. IPv4 and IPv6.
#[test]
fn mark_selects_the_policy_route() {
    let Some(mut lab) = Lab::with_tools(&["nft"]) else { return };
    let a = lab.ns("a");
    let b = lab.ns("b");
    let (a0, b0) = lab.link(&a, &b);
    let (a1, b1) = lab.link(&a, &b);
    a0.addr("10.77.24.1/24").addr("fd00:77:24::1/64");
    b0.addr("10.77.24.2/24").addr("fd00:77:24::2/64");
    a1.addr("10.77.25.1/24").addr("fd00:77:25::1/64");
    b1.addr("10.77.25.2/24").addr("fd00:77:25::2/64");
    // The service address lives on b's loopback; a reaches it over link 0,
    // or over link 1 for packets marked 0x51.
    b.ip("addr add 10.77.26.2/32 dev lo");
    b.ip("-6 addr add fd00:77:26::2/128 dev lo");
    a.ip(&format!("route add 10.77.26.2/32 via 10.77.24.2 dev {}", a0.name));
    a.ip(&format!("-6 route add fd00:77:26::2/128 via fd00:77:24::2 dev {}", a0.name));
    a.ip(&format!("route add 10.77.26.2/32 via 10.77.25.2 dev {} table 51", a1.name));
    a.ip(&format!("-6 route add fd00:77:26::2/128 via fd00:77:25::2 dev {} table 51", a1.name));
    a.ip("rule add fwmark 0x51 lookup 51");
    a.ip("-6 rule add fwmark 0x51 lookup 51");
    a.nft(
        "table inet vly_mark {
            counter marked { }
            chain out {
                type filter hook output priority 0; policy accept;
                meta l4proto udp meta mark 0x51 counter name marked
            }
        }
        ",
    );
    let (if0, if1) = (b0.ifindex(), b1.ifindex());
    let mut marked_sent = 0;
    for v6 in [false, true] {
        let service = sa(if v6 { "[fd00:77:26::2]:4000" } else { "10.77.26.2:4000" });
        let any = sa(if v6 { "[::]:0" } else { "0.0.0.0:0" });
        let rx = b.run(|| Socket::bind(SocketAddr::new(if v6 { "::" } else { "0.0.0.0" }.parse().unwrap(), 4000)));
        let rx = rx.expect("bind receiver");
        let (marked, plain) = a.run(|| (Config::new().mark(0x51).bind(any), Socket::bind(any)));
        let marked = marked.unwrap_or_else(|e| panic!("mark as root: {e}"));
        let plain = plain.expect("bind plain");
        assert_eq!((marked.capabilities().mark, plain.capabilities().mark), (Some(0x51), None));
        for (sock, want_if, name) in [(&plain, if0, "unmarked"), (&marked, if1, "marked 0x51")] {
            let payload = format!("{name} v6={v6}");
            let mut sends = 0;
            let meta = send_until_received(&rx, payload.as_bytes(), || {
                sends += 1;
                sock.send_batch_blocking(&[Transmit::new(service, payload.as_bytes())], WAIT).expect("send");
            });
            if sock.capabilities().mark.is_some() {
                marked_sent += sends;
            }
            println!("{name} (v6 {v6}): arrived on ifindex {:?} (link 0 = {if0}, link 1 = {if1})", meta.ifindex);
            assert_eq!(meta.ifindex, Some(want_if), "{name} v6={v6}: taken link");
            assert_eq!(meta.dst_ip, Some(service.ip()));
        }
    }
    let counted = a.nft_counter("inet", "vly_mark", "marked");
    println!("nftables counted {counted} packets with meta mark 0x51; the marked sockets sent {marked_sent}");
    assert_eq!(counted, marked_sent, "exactly the marked sockets' datagrams carry the mark");
}

/// Transparent proxy: a client sends to remote addresses; the proxy host's
/// nftables `tproxy` rule diverts them to a socket with
/// `transparent(true).orig_dst(true)`, which reads each datagram's original
/// destination and answers from it: per transmit with `src_ip` (source port
/// is the proxy socket's), and exactly from address and port with a second
/// transparent socket bound to the original destination. IPv4 uses
/// `Config::bind`; IPv6 adopts a plain socket (the adoption path).
#[test]
fn tproxy_reports_the_original_destination_and_answers_from_it() {
    let Some(mut lab) = Lab::with_tools(&["nft"]) else { return };
    let client = lab.ns("client");
    let proxy = lab.ns("proxy");
    let (ci, pi) = lab.link(&client, &proxy);
    ci.addr("10.77.27.1/24").addr("fd00:77:27::1/64");
    pi.addr("10.77.27.254/24").addr("fd00:77:27::fe/64");
    client.default_route("10.77.27.254");
    client.default_route("fd00:77:27::fe");
    const TPROXY_PORT: u16 = 7777;
    proxy.nft(&format!(
        "table ip vly_tp {{
            chain pre {{
                type filter hook prerouting priority mangle; policy accept;
                ip daddr 10.77.99.0/24 meta l4proto udp tproxy to :{TPROXY_PORT} meta mark set 0x1 accept
            }}
        }}
        table ip6 vly_tp {{
            chain pre {{
                type filter hook prerouting priority mangle; policy accept;
                ip6 daddr fd00:77:99::/64 meta l4proto udp tproxy to :{TPROXY_PORT} meta mark set 0x1 accept
            }}
        }}
        "
    ));
    proxy.ip("rule add fwmark 0x1 lookup 100");
    proxy.ip("route add local 0.0.0.0/0 dev lo table 100");
    proxy.ip("-6 rule add fwmark 0x1 lookup 100");
    proxy.ip("-6 route add local ::/0 dev lo table 100");

    for v6 in [false, true] {
        let listen = if v6 { sa("[::]:7777") } else { sa("0.0.0.0:7777") };
        let srv = proxy.run(|| {
            if v6 {
                // Bound elsewhere without any option, then adopted: volley
                // sets IP_TRANSPARENT and IPV6_RECVORIGDSTADDR on it.
                let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None)?;
                s.set_only_v6(true)?;
                s.bind(&listen.into())?;
                Config::new().transparent(true).orig_dst(true).adopt(s).map_err(std::io::Error::from)
            } else {
                Config::new().transparent(true).orig_dst(true).bind(listen).map_err(std::io::Error::from)
            }
        });
        let srv = srv.unwrap_or_else(|e| panic!("transparent socket (v6 {v6}): {e}"));
        let caps = srv.capabilities();
        assert!(caps.transparent && caps.orig_dst, "{caps}");
        let cli = client.run(|| UdpSocket::bind(if v6 { "[::]:0" } else { "0.0.0.0:0" })).expect("bind client");
        cli.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let cli_port = cli.local_addr().unwrap().port();
        let remotes: [SocketAddr; 2] = if v6 {
            [sa("[fd00:77:99::7]:4242"), sa("[fd00:77:99::8]:53")]
        } else {
            [sa("10.77.99.7:4242"), sa("10.77.99.8:53")]
        };
        for remote in remotes {
            let payload = format!("to {remote}");
            let meta = send_until_received(&srv, payload.as_bytes(), || {
                cli.send_to(payload.as_bytes(), remote).expect("client send");
            });
            println!(
                "v6 {v6}: client sent to {remote}; proxy socket {listen} got it from {} with orig_dst {:?}, dst_ip {:?}",
                meta.src,
                meta.orig_dst(),
                meta.dst_ip
            );
            assert_eq!(meta.orig_dst(), Some(remote), "the address and port the client sent to");
            assert_eq!(meta.dst_ip, Some(remote.ip()));
            assert_eq!(meta.src.port(), cli_port);
            assert!(matches!(meta.src.ip(), IpAddr::V6(_)) == v6);

            // 1. Per transmit: src_ip = the original destination's address.
            let reply = Transmit::new(meta.src, b"reply via src_ip").with_src_ip(remote.ip());
            srv.send_batch_blocking(&[reply], WAIT).expect("reply with src_ip");
            let mut buf = [0u8; 64];
            let (n, from) = recv_from_matching(&cli, &mut buf, b"reply via src_ip");
            println!("  reply 1 ({n} bytes) came from {from}");
            assert_eq!(from, SocketAddr::new(remote.ip(), TPROXY_PORT), "from the original address");

            // 2. Exactly from address and port: a transparent socket bound
            // to the original destination (not a local address).
            let from_orig = proxy.run(|| Config::new().transparent(true).reuse_addr(true).bind(remote));
            let from_orig = from_orig.unwrap_or_else(|e| panic!("bind {remote} with IP_TRANSPARENT: {e}"));
            from_orig.send_batch_blocking(&[Transmit::new(meta.src, b"reply from orig_dst")], WAIT).expect("reply");
            let (_, from) = recv_from_matching(&cli, &mut buf, b"reply from orig_dst");
            println!("  reply 2 came from {from}");
            assert_eq!(from, remote, "from exactly the address and port the client sent to");
        }
    }
}

/// Receives on a std socket (200 ms read timeout) until `want` arrives, at
/// most 25 reads.
fn recv_from_matching(sock: &UdpSocket, buf: &mut [u8], want: &[u8]) -> (usize, SocketAddr) {
    for _ in 0..25 {
        if let Ok((n, from)) = sock.recv_from(buf) {
            if &buf[..n] == want {
                return (n, from);
            }
        }
    }
    panic!("{:?} never arrived at the client", String::from_utf8_lossy(want));
}

/// A socket set up with `IP_TRANSPARENT` and `SO_MARK` by a privileged
/// process, for the child to adopt after dropping its privileges.
fn privileged_socket() -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
    s.set_ip_transparent_v4(true).expect("IP_TRANSPARENT as root");
    s.set_mark(0x77).expect("SO_MARK as root");
    s.bind(&sa("127.0.0.1:0").into()).expect("bind");
    s
}

const PRIV_CHILD: &str = "unprivileged_child";

/// Without `CAP_NET_ADMIN` (and `CAP_NET_RAW`), `transparent` and `mark`
/// are refused with a typed `PermissionDenied` naming the option, at bind
/// and at adoption; a socket a privileged process already set up is
/// adopted with the same options without needing the privilege.
#[test]
fn transparent_and_mark_need_cap_net_admin() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        check_unprivileged(None);
        return;
    }
    // Root: re-run this binary as a child that drops to uid/gid 65534.
    let out = driver::run_child(PRIV_CHILD, "unprivileged", &[]).expect("start child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("child: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed");
    assert!(stdout.contains("CHILD-OK unprivileged"), "the child must have run its checks");
}

/// Child-mode body of `transparent_and_mark_need_cap_net_admin`: a no-op
/// unless started by it.
#[test]
#[ignore = "child process of transparent_and_mark_need_cap_net_admin"]
fn unprivileged_child() {
    if driver::child_mode().as_deref() != Some("unprivileged") {
        return;
    }
    let inherited = privileged_socket();
    // SAFETY: setgid/setuid take plain ids; glibc applies them to every
    // thread. Leaving uid 0 clears the effective capabilities.
    unsafe {
        assert_eq!(libc::setgid(65534), 0, "setgid: {}", std::io::Error::last_os_error());
        assert_eq!(libc::setuid(65534), 0, "setuid: {}", std::io::Error::last_os_error());
    }
    check_unprivileged(Some(inherited));
    println!("CHILD-OK unprivileged");
}

fn check_unprivileged(inherited: Option<socket2::Socket>) {
    let refused = |r: Result<Socket, Error>, want: SocketOption, how: &str| match r {
        Err(e @ Error::SocketOption { option, reason: OptionError::PermissionDenied, .. }) if option == want => {
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
            assert_eq!(e.raw_os_error(), Some(libc::EPERM));
            assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
            println!("{how}: {e}");
        }
        other => panic!("{how}: expected {want} refused, got {other:?}"),
    };
    for at in [sa("127.0.0.1:0"), sa("[::1]:0")] {
        refused(Config::new().transparent(true).bind(at), SocketOption::Transparent, &format!("bind {at}"));
        refused(Config::new().mark(7).bind(at), SocketOption::Mark, &format!("bind {at}"));
    }
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    refused(Config::new().transparent(true).adopt(plain), SocketOption::Transparent, "adopt");
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    refused(Config::new().mark(7).adopt(plain), SocketOption::Mark, "adopt");
    // Options that need no privilege still work.
    let ok = Config::new().freebind(true).broadcast(true).orig_dst(true).bind(sa("127.0.0.1:0")).expect("unprivileged");
    let caps = ok.capabilities();
    assert!(caps.freebind && caps.broadcast && caps.orig_dst, "{caps}");
    if let Some(s) = inherited {
        let adopted = Config::new().transparent(true).mark(0x77).adopt(s).expect("already set: nothing to refuse");
        let caps = adopted.capabilities();
        assert!(caps.transparent, "{caps}");
        assert_eq!(caps.mark, Some(0x77));
        println!("adopted a socket made transparent and marked before the privileges were dropped");
    }
}

/// The original destination on loopback without any firewall: the port
/// the sender addressed (the socket's own), on both backends, v4, v6 and
/// dual-stack; off by default.
#[test]
fn orig_dst_on_loopback() {
    for (bind, to) in [("0.0.0.0:0", "127.0.0.2"), ("[::1]:0", "::1"), ("[::]:0", "127.0.0.3")] {
        for backend in [volley::Backend::Auto, volley::Backend::Portable] {
            let rx = Config::new().backend(backend).orig_dst(true).bind(sa(bind)).expect("bind");
            let off = Config::new().backend(backend).bind(sa(bind)).expect("bind");
            assert!(rx.capabilities().orig_dst && !off.capabilities().orig_dst);
            let tx = UdpSocket::bind(if to.contains(':') { "[::1]:0" } else { "127.0.0.1:0" }).unwrap();
            let dst = SocketAddr::new(to.parse().unwrap(), rx.local_addr().unwrap().port());
            let dst_off = SocketAddr::new(to.parse().unwrap(), off.local_addr().unwrap().port());
            tx.send_to(b"x", dst).unwrap();
            tx.send_to(b"x", dst_off).unwrap();
            let got = driver::recv_up_to(&rx, 1, WAIT);
            assert_eq!(got.len(), 1, "{bind} {backend:?}");
            assert_eq!(got[0].0.orig_dst(), Some(dst), "{bind} {backend:?}");
            let got = driver::recv_up_to(&off, 1, WAIT);
            assert_eq!((got[0].0.orig_dst(), got[0].0.orig_dst_port), (None, None), "off by default");
        }
    }
}
