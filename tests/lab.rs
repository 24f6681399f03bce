//! The network-namespace lab: volley's metadata across real hops.
//!
//! Each scenario builds its own namespaces with [`volley_tests::netlab`]
//! (deleted when the test ends, pass or fail), creates volley sockets inside
//! them and asserts on what arrives. Every scenario runs over IPv4 and IPv6.
//! See `docs/lab.md` for the topologies and what each scenario proves.
//!
//! Scenarios that need namespaces are skipped with a printed reason when not
//! run as root, and fail instead when `VOLLEY_REQUIRE_LAB=1` (CI sets it).
//! The fault-injection scenarios (`faults::*`) need no root: they re-run this
//! test binary as a child process under an `LD_PRELOAD` shim or a seccomp
//! filter, selecting a `child::*` test with `VOLLEY_LAB_CHILD`.
// Linux only: network namespaces, the LD_PRELOAD fault shim, seccomp.
#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use volley::{Backend, Config, Dscp, Ecn, Error, RecvBatch, RecvMeta, Socket, Transmit};
use volley_tests::driver;
use volley_tests::netlab::{self, Lab, Line, Ns};

/// The longest any one scenario waits for traffic.
const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing more arrives" is watched for.
const SETTLE: Duration = Duration::from_millis(300);

fn unspecified(v6: bool) -> SocketAddr {
    if v6 {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    }
}

fn bind(addr: SocketAddr) -> Socket {
    Socket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
}

/// A datagram: its sequence number (4 bytes, big-endian), then `len - 4`
/// filler bytes equal to the low byte of `seq` so corruption shows.
fn payload(seq: u32, len: usize) -> Vec<u8> {
    assert!(len >= 4, "payloads carry a 4-byte sequence number");
    let mut p = vec![seq as u8; len];
    p[..4].copy_from_slice(&seq.to_be_bytes());
    p
}

/// The sequence number of a [`payload`], checking the filler.
fn seq_of(p: &[u8]) -> u32 {
    assert!(p.len() >= 4, "datagram of {} bytes has no sequence number", p.len());
    let seq = u32::from_be_bytes(p[..4].try_into().expect("4 bytes"));
    assert!(p[4..].iter().all(|&b| b == seq as u8), "datagram {seq} ({} bytes) is corrupted", p.len());
    seq
}

/// Receives exactly `want` datagrams within [`WAIT`], then checks nothing
/// more arrives within [`SETTLE`]; returns them keyed by sequence number
/// (asserting no number arrived twice).
fn recv_exactly(sock: &Socket, want: usize) -> BTreeMap<u32, (RecvMeta, Vec<u8>)> {
    let got = driver::recv_up_to(sock, want, WAIT);
    let extra = driver::recv_up_to(sock, usize::MAX, SETTLE);
    let mut by_seq = BTreeMap::new();
    for (meta, p) in got.into_iter().chain(extra) {
        let seq = seq_of(&p);
        assert!(by_seq.insert(seq, (meta, p)).is_none(), "datagram {seq} arrived twice");
    }
    assert_eq!(
        by_seq.len(),
        want,
        "expected {want} datagrams, got {}: {:?}",
        by_seq.len(),
        by_seq.keys().collect::<Vec<_>>()
    );
    by_seq
}

/// Polls `f` until it returns `Some` (at most `timeout`, every 10 ms).
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let mut found = None;
    netlab::wait_until(timeout, Duration::from_millis(10), || {
        found = f();
        found.is_some()
    });
    found
}

/// Scenario 1: a router sets CE on ECN-capable datagrams to one port; the
/// receiver's `RecvMeta::ecn` shows exactly those as CE.
mod ecn {
    use super::*;

    const MARKED: u16 = 5555;
    const PLAIN: u16 = 5556;

    /// Marks like an AQM router would: only ECN-capable packets get CE.
    const RULES: &str = "
table ip vly {
  counter marked {}
  chain transit {
    type filter hook forward priority 0; policy accept;
    udp dport 5555 ip ecn != not-ect counter name marked ip ecn set ce
  }
}
table ip6 vly {
  counter marked {}
  chain transit {
    type filter hook forward priority 0; policy accept;
    udp dport 5555 ip6 ecn != not-ect counter name marked ip6 ecn set ce
  }
}
";

    fn scenario(v6: bool) {
        let Some(line) = Line::new(&["nft"]) else { return };
        line.router.nft(RULES);
        let server_ip = line.server_ip(v6);
        let ports = [MARKED, PLAIN];
        let rx: Vec<Socket> = line.server.run(|| ports.iter().map(|&p| bind(SocketAddr::new(server_ip, p))).collect());
        let tx = line.client.run(|| bind(unspecified(v6)));
        assert!(rx[0].capabilities().ecn, "receiver cannot report ECN: {}", rx[0].capabilities());

        // Per port and codepoint: three single datagrams and a GSO train of
        // three. seq = port index * 1000 + codepoint index * 100 + k.
        let codepoints = [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1];
        let mut singles = Vec::new();
        let mut trains = Vec::new();
        let mut sent = BTreeMap::new();
        for (pi, &port) in ports.iter().enumerate() {
            for (ci, &ecn) in codepoints.iter().enumerate() {
                let base = (pi * 1000 + ci * 100) as u32;
                let dst = SocketAddr::new(server_ip, port);
                for k in 0..3 {
                    singles.push((dst, ecn, payload(base + k, 100)));
                    sent.insert(base + k, (port, ecn));
                }
                let train: Vec<u8> = (10..13).flat_map(|k| payload(base + k, 300)).collect();
                (10..13).for_each(|k| {
                    sent.insert(base + k, (port, ecn));
                });
                trains.push((dst, ecn, train));
            }
        }
        let mut transmits: Vec<Transmit<'_>> =
            singles.iter().map(|(d, e, p)| Transmit::new(*d, p).with_ecn(*e)).collect();
        transmits.extend(trains.iter().map(|(d, e, p)| Transmit::new(*d, p).with_ecn(*e).with_segment_size(300)));
        tx.send_batch_blocking(&transmits, WAIT).expect("send");

        let per_port = sent.len() / 2;
        for (pi, sock) in rx.iter().enumerate() {
            let got = recv_exactly(sock, per_port);
            for (seq, (meta, _)) in got {
                let (port, ecn) = sent[&seq];
                assert_eq!(usize::from(port != MARKED), pi, "datagram {seq} reached the wrong socket");
                let want = if port == MARKED && ecn != Ecn::NotEct { Ecn::Ce } else { ecn };
                assert_eq!(meta.ecn, want, "datagram {seq} to port {port}, sent as {ecn}");
                assert_eq!(meta.dscp, Some(Dscp::DEFAULT), "ECN marking must not touch DSCP");
                assert_eq!(meta.src.ip(), line.client_ip(v6));
            }
        }
        // The router saw (and marked) the ECN-capable packets to MARKED: at
        // least one per GSO train, at most one per datagram.
        let family = if v6 { "ip6" } else { "ip" };
        let marked = line.router.nft_counter(family, "vly", "marked");
        assert!((8..=12).contains(&marked), "router marked {marked} packets");
    }

    #[test]
    fn v4() {
        scenario(false);
    }

    #[test]
    fn v6() {
        scenario(true);
    }
}

/// Scenario 2: path MTU through a router whose far link has MTU 1280.
mod pmtu {
    use volley::{IcmpKind, Pmtud};

    use super::*;

    const PORT: u16 = 7100;
    const BIG: usize = 1400;
    const MTU: u32 = 1280;

    /// The line with a 1280-byte far link, and the server's socket.
    fn setup(tools: &[&str]) -> Option<(Line, Socket)> {
        let line = Line::new(tools)?;
        line.router_server_if.mtu(MTU);
        line.server_if.mtu(MTU);
        // Dual-stack: one socket serves both families.
        let rx = line.server.run(|| bind(SocketAddr::new("::".parse().expect("literal"), PORT)));
        Some((line, rx))
    }

    /// Transmits sent (0 or 1: one datagram is never cut).
    fn send_one(tx: &Socket, dst: SocketAddr, p: &[u8]) -> Result<usize, Error> {
        tx.try_send_batch(&[Transmit::new(dst, p)]).map(|sent| sent.transmits)
    }

    /// `Do`: the first big send leaves and draws an ICMP; the next fails
    /// with `MessageTooLong`, `path_mtu()` is 1280, the error queue says
    /// "packet too big (1280)" from the router.
    fn do_mode(v6: bool) {
        let Some((line, rx)) = setup(&[]) else { return };
        let dst = SocketAddr::new(line.server_ip(v6), PORT);
        let tx = line
            .client
            .run(|| Config::new().pmtud(Pmtud::Do).recv_errors(true).bind(unspecified(v6)).expect("bind client"));
        tx.connect(dst).expect("connect");
        assert_eq!(tx.path_mtu().expect("path_mtu"), 1500, "before any ICMP");

        assert_eq!(send_one(&tx, dst, &payload(0, BIG)).expect("first big send leaves"), 1);
        let icmp =
            poll(WAIT, || tx.try_recv_error().expect("try_recv_error")).expect("no ICMP 'too big' in the error queue");
        assert_eq!(icmp.kind, IcmpKind::PacketTooBig { mtu: MTU }, "{icmp:?}");
        assert_eq!(icmp.destination, Some(dst), "{icmp:?}");
        let router: IpAddr = if v6 { "fd00:77:1::fe" } else { "10.77.1.254" }.parse().expect("literal");
        assert_eq!(icmp.offender, Some(router), "{icmp:?}");
        assert_eq!(icmp.errno, libc::EMSGSIZE, "{icmp:?}");

        match send_one(&tx, dst, &payload(1, BIG)) {
            Err(Error::MessageTooLong { size, mtu }) => {
                assert_eq!(size, BIG);
                assert_eq!(mtu, Some(MTU));
            }
            other => panic!("second big send: expected MessageTooLong, got {other:?}"),
        }
        assert_eq!(tx.path_mtu().expect("path_mtu"), MTU);
        // The refused send is in the error queue too (origin "local").
        let local = poll(Duration::from_secs(1), || tx.try_recv_error().expect("try_recv_error"))
            .expect("the local EMSGSIZE is queued");
        assert_eq!(local.kind, IcmpKind::PacketTooBig { mtu: MTU }, "{local:?}");
        assert_eq!(tx.try_recv_error().expect("try_recv_error"), None, "queue drained");

        // Datagrams that fit still go through; the big ones never arrived.
        let fits = if v6 { MTU as usize - 48 } else { MTU as usize - 28 };
        assert_eq!(send_one(&tx, dst, &payload(2, fits)).expect("fitting send"), 1);
        let got = recv_exactly(&rx, 1);
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(got[&2].0.len, fits);
    }

    #[test]
    fn do_v4() {
        do_mode(false);
    }

    #[test]
    fn do_v6() {
        do_mode(true);
    }

    /// Counts fragments reaching the server, before any reassembly.
    const FRAG_RULES: &str = "
table ip vly {
  counter frags {}
  chain pre { type filter hook prerouting priority -450; ip frag-off & 0x3fff != 0 counter name frags; }
}
table ip6 vly {
  counter frags {}
  chain pre { type filter hook prerouting priority -450; exthdr frag exists counter name frags; }
}
";

    /// `Off` over IPv4: DF is clear, the router fragments, the server
    /// receives the datagram whole.
    #[test]
    fn off_v4() {
        let Some((line, rx)) = setup(&["nft"]) else { return };
        line.server.nft(FRAG_RULES);
        let dst = SocketAddr::new(line.server_ip(false), PORT);
        let tx = line.client.run(|| Config::new().pmtud(Pmtud::Off).bind(unspecified(false)).expect("bind client"));
        let bufs: Vec<Vec<u8>> = (0..3).map(|s| payload(s, BIG)).collect();
        let transmits: Vec<_> = bufs.iter().map(|b| Transmit::new(dst, b)).collect();
        tx.send_batch_blocking(&transmits, WAIT).expect("send");
        let got = recv_exactly(&rx, 3);
        for (meta, p) in got.values() {
            assert_eq!((meta.len, p.len(), meta.truncated), (BIG, BIG, false));
        }
        let frags = line.server.nft_counter("ip", "vly", "frags");
        assert!(frags >= 6, "each datagram should arrive as >= 2 fragments; counted {frags}");
    }

    /// `Off` over IPv6: routers never fragment IPv6, so the first big
    /// datagram is dropped with "packet too big"; after that the sender
    /// fragments at the source and the datagrams arrive whole.
    #[test]
    fn off_v6() {
        let Some((line, rx)) = setup(&["nft"]) else { return };
        line.server.nft(FRAG_RULES);
        let dst = SocketAddr::new(line.server_ip(true), PORT);
        let tx = line.client.run(|| Config::new().pmtud(Pmtud::Off).bind(unspecified(true)).expect("bind client"));
        tx.connect(dst).expect("connect");
        assert_eq!(send_one(&tx, dst, &payload(0, BIG)).expect("first send"), 1);
        let mtu = poll(WAIT, || tx.path_mtu().ok().filter(|&m| m == MTU));
        assert_eq!(mtu, Some(MTU), "the kernel learned the path MTU from the router");
        assert_eq!(send_one(&tx, dst, &payload(1, BIG)).expect("second send"), 1);
        let got = recv_exactly(&rx, 1);
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), [1], "only the second arrives");
        assert_eq!(got[&1].0.len, BIG);
        let frags = line.server.nft_counter("ip6", "vly", "frags");
        assert!(frags >= 2, "the second datagram should arrive fragmented; counted {frags}");
    }

    /// Counts what reaches the router from the client (before its MTU check).
    const ROUTER_RULES: &str = "
table inet vly {
  counter arrived {}
  chain pre { type filter hook prerouting priority 0; udp dport 7100 counter name arrived; }
}
";

    /// `Probe` on an unconnected socket: DF set but the path-MTU cache is
    /// ignored, so every 1400-byte send leaves (and the router drops it);
    /// datagrams that fit arrive.
    fn probe(v6: bool) {
        let Some((line, rx)) = setup(&["nft"]) else { return };
        line.router.nft(ROUTER_RULES);
        let dst = SocketAddr::new(line.server_ip(v6), PORT);
        let tx = line.client.run(|| Config::new().pmtud(Pmtud::Probe).bind(unspecified(v6)).expect("bind client"));
        for seq in 0..5 {
            let sent = send_one(&tx, dst, &payload(seq, BIG));
            assert_eq!(sent.expect("probe-mode sends of 1400 always leave"), 1, "send {seq}");
            // Let the router's ICMP come back before the next send.
            std::thread::sleep(Duration::from_millis(30));
        }
        let fits = if v6 { MTU as usize - 48 } else { MTU as usize - 28 };
        assert_eq!(send_one(&tx, dst, &payload(100, fits)).expect("fitting send"), 1);
        let got = recv_exactly(&rx, 1);
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), [100], "no 1400-byte datagram passes");
        let arrived = line.router.nft_counter("inet", "vly", "arrived");
        assert_eq!(arrived, 6, "all six sends left the client and reached the router");
    }

    #[test]
    fn probe_v4() {
        probe(false);
    }

    #[test]
    fn probe_v6() {
        probe(true);
    }

    /// `Probe` on a connected socket: the router's ICMP must not make the
    /// next (small) send fail. The kernel records the ICMP as a pending
    /// socket error (`EMSGSIZE`) that the next `sendmsg` of any size returns,
    /// without sending.
    fn probe_connected(v6: bool) {
        let Some((line, rx)) = setup(&[]) else { return };
        let dst = SocketAddr::new(line.server_ip(v6), PORT);
        let tx = line.client.run(|| Config::new().pmtud(Pmtud::Probe).bind(unspecified(v6)).expect("bind client"));
        tx.connect(dst).expect("connect");
        assert_eq!(send_one(&tx, dst, &payload(0, BIG)).expect("big send leaves"), 1);
        let mtu = poll(WAIT, || tx.path_mtu().ok().filter(|&m| m == MTU));
        assert_eq!(mtu, Some(MTU), "the router's ICMP arrived");
        let small = send_one(&tx, dst, &payload(1, 100));
        assert!(
            matches!(small, Ok(1)),
            "a 100-byte send after the ICMP: {small:?} (Probe promises sends up to the interface MTU leave)"
        );
        let got = recv_exactly(&rx, 1);
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn probe_connected_v4() {
        probe_connected(false);
    }

    #[test]
    fn probe_connected_v6() {
        probe_connected(true);
    }
}

/// Scenario 3: a multi-homed server bound to the wildcard address.
mod multihomed {
    use super::*;

    const PORT: u16 = 7200;

    /// Client and server joined by two links; the server has one address on
    /// the first and two on the second. Returns the lab, the client, the
    /// server and the server's (address, interface name) list.
    ///
    /// ```text
    ///  client veth0a 10.77.1.1   ==== veth0b 10.77.1.2             server
    ///         veth1a 10.77.2.1   ==== veth1b 10.77.2.2, 10.77.2.3
    ///  (and fd00:77:1::1 / fd00:77:1::2, fd00:77:2::1 / fd00:77:2::2, ::100)
    /// ```
    /// The secondary addresses are ones the kernel would not pick as a
    /// source by itself: IPv4 takes the primary (first added) address of the
    /// subnet; IPv6 source selection ties at the /64 (Linux caps RFC 6724's
    /// longest-match rule at the prefix length) and then takes the most
    /// recently added address, so `::100` is added before `::2`.
    fn topology() -> Option<(Lab, Ns, Ns)> {
        let mut lab = Lab::new()?;
        let client = lab.ns("client");
        let server = lab.ns("server");
        let (c0, s0) = lab.link(&client, &server);
        let (c1, s1) = lab.link(&client, &server);
        c0.addr("10.77.1.1/24").addr("fd00:77:1::1/64");
        c1.addr("10.77.2.1/24").addr("fd00:77:2::1/64");
        s0.addr("10.77.1.2/24").addr("fd00:77:1::2/64");
        s1.addr("10.77.2.2/24").addr("10.77.2.3/24");
        s1.addr("fd00:77:2::100/64").addr("fd00:77:2::2/64");
        Some((lab, client, server))
    }

    /// The server's addresses of one family and the interface each is on.
    fn targets(v6: bool) -> [(IpAddr, &'static str); 3] {
        let a = |s: &str| s.parse::<IpAddr>().expect("literal");
        if v6 {
            [(a("fd00:77:1::2"), "veth0b"), (a("fd00:77:2::2"), "veth1b"), (a("fd00:77:2::100"), "veth1b")]
        } else {
            [(a("10.77.1.2"), "veth0b"), (a("10.77.2.2"), "veth1b"), (a("10.77.2.3"), "veth1b")]
        }
    }

    /// Sends three datagrams to each server address, checks each reports
    /// the address and interface it came in on, replies from that address,
    /// and checks the client sees each reply come from the address it used.
    /// `families` lists the address families sent (both for dual-stack).
    fn scenario(server_bind: SocketAddr, server_config: Config, families: &[bool]) {
        let Some((_lab, client, server)) = topology() else { return };
        let rx = server.run(|| server_config.bind(server_bind).expect("bind server"));
        assert!(rx.capabilities().pktinfo, "{}", rx.capabilities());
        let ifindex: BTreeMap<&str, u32> = ["veth0b", "veth1b"].into_iter().map(|n| (n, server.ifindex(n))).collect();
        assert_ne!(ifindex["veth0b"], ifindex["veth1b"]);

        for &v6 in families {
            let tx = client.run(|| bind(unspecified(v6)));
            let targets = targets(v6);
            let mut sent = BTreeMap::new();
            let bufs: Vec<(SocketAddr, Vec<u8>)> = targets
                .iter()
                .enumerate()
                .flat_map(|(ti, &(ip, _))| {
                    (0..3u32).map(move |k| (SocketAddr::new(ip, PORT), payload(ti as u32 * 10 + k, 64)))
                })
                .collect();
            for (dst, p) in &bufs {
                sent.insert(seq_of(p), *dst);
            }
            let transmits: Vec<_> = bufs.iter().map(|(d, p)| Transmit::new(*d, p)).collect();
            tx.send_batch_blocking(&transmits, WAIT).expect("client send");

            let got = recv_exactly(&rx, bufs.len());
            let mut replies = Vec::new();
            for (seq, (meta, p)) in &got {
                let dst = sent[seq];
                let ifname = targets.iter().find(|t| t.0 == dst.ip()).expect("target").1;
                assert_eq!(meta.dst_ip, Some(dst.ip()), "datagram {seq} sent to {dst}");
                assert_eq!(meta.ifindex, Some(ifindex[ifname]), "datagram {seq} came in on {ifname}");
                assert_eq!(meta.src.is_ipv6(), v6, "address policy: IPv4 is reported as IPv4");
                replies.push((meta.src, meta.dst_ip.expect("dst_ip"), p.clone()));
            }
            let transmits: Vec<_> =
                replies.iter().map(|(to, from, p)| Transmit::new(*to, p).with_src_ip(*from)).collect();
            rx.send_batch_blocking(&transmits, WAIT).expect("server reply");

            for (seq, (meta, _)) in recv_exactly(&tx, bufs.len()) {
                assert_eq!(meta.src, sent[&seq], "reply to {seq} must come from the address the client used");
            }

            // Control: without src_ip the reply to the secondary address
            // comes from the primary one, so the check above has teeth.
            let (secondary, _) = targets[2];
            let p = payload(99, 64);
            tx.send_batch_blocking(&[Transmit::new(SocketAddr::new(secondary, PORT), &p)], WAIT).expect("client send");
            let (meta, _) = recv_exactly(&rx, 1).remove(&99).expect("datagram 99");
            rx.send_batch_blocking(&[Transmit::new(meta.src, &p)], WAIT).expect("server reply");
            let (reply, _) = recv_exactly(&tx, 1).remove(&99).expect("reply 99");
            assert_ne!(reply.src.ip(), secondary, "the kernel picks the primary address by itself");
        }
    }

    #[test]
    fn v4() {
        scenario("0.0.0.0:7200".parse().expect("literal"), Config::new(), &[false]);
    }

    #[test]
    fn v6() {
        scenario("[::]:7200".parse().expect("literal"), Config::new().ipv6_only(true), &[true]);
    }

    /// One dual-stack `[::]` socket serves both families; IPv4 peers and
    /// local addresses are reported as plain IPv4.
    #[test]
    fn dual_stack() {
        scenario("[::]:7200".parse().expect("literal"), Config::new().ipv6_only(false), &[false, true]);
    }
}

/// Scenario 4: DSCP survives a hop; a firewall at the receiver counts EF.
mod dscp {
    use super::*;

    const PORT: u16 = 7300;

    const RULES: &str = "
table ip vly {
  counter ef {}
  counter af41 {}
  chain input {
    type filter hook input priority 0;
    udp dport 7300 ip dscp ef counter name ef
    udp dport 7300 ip dscp af41 counter name af41
  }
}
table ip6 vly {
  counter ef {}
  counter af41 {}
  chain input {
    type filter hook input priority 0;
    udp dport 7300 ip6 dscp ef counter name ef
    udp dport 7300 ip6 dscp af41 counter name af41
  }
}
";

    fn scenario(v6: bool) {
        let Some(line) = Line::new(&["nft"]) else { return };
        line.server.nft(RULES);
        let dst = SocketAddr::new(line.server_ip(v6), PORT);
        let rx = line.server.run(|| bind(dst));
        // A plain socket, and one whose socket-level TOS is AF41.
        let (plain, af41) = line.client.run(|| {
            let af41 = Config::new().tos(Dscp::AF41.tos(Ecn::NotEct)).bind(unspecified(v6)).expect("bind af41 client");
            (bind(unspecified(v6)), af41)
        });

        // (socket, per-transmit DSCP, ECN, expected DSCP) x count.
        let plan: [(&Socket, Option<Dscp>, Ecn, Dscp, u32); 6] = [
            (&plain, Some(Dscp::EF), Ecn::NotEct, Dscp::EF, 5),
            (&plain, None, Ecn::NotEct, Dscp::DEFAULT, 3),
            (&plain, Some(Dscp::EF), Ecn::Ect0, Dscp::EF, 2),
            (&af41, None, Ecn::NotEct, Dscp::AF41, 4),
            // ECN alone keeps the socket's DSCP.
            (&af41, None, Ecn::Ect0, Dscp::AF41, 2),
            (&af41, Some(Dscp::EF), Ecn::NotEct, Dscp::EF, 1),
        ];
        let mut expected = BTreeMap::new();
        let mut seq = 0u32;
        for (sock, dscp, ecn, want, count) in plan {
            let bufs: Vec<Vec<u8>> = (seq..seq + count).map(|s| payload(s, 80)).collect();
            let transmits: Vec<_> = bufs
                .iter()
                .map(|b| {
                    let t = Transmit::new(dst, b).with_ecn(ecn);
                    match dscp {
                        Some(d) => t.with_dscp(d),
                        None => t,
                    }
                })
                .collect();
            sock.send_batch_blocking(&transmits, WAIT).expect("send");
            for s in seq..seq + count {
                expected.insert(s, (want, ecn));
            }
            seq += count;
        }

        let got = recv_exactly(&rx, expected.len());
        for (seq, (meta, _)) in &got {
            let (dscp, ecn) = expected[seq];
            assert_eq!(meta.dscp, Some(dscp), "datagram {seq}");
            assert_eq!(meta.ecn, ecn, "datagram {seq}");
        }
        let count = |d: Dscp| expected.values().filter(|(x, _)| *x == d).count() as u64;
        let family = if v6 { "ip6" } else { "ip" };
        assert_eq!(line.server.nft_counter(family, "vly", "ef"), count(Dscp::EF), "nft saw EF");
        assert_eq!(line.server.nft_counter(family, "vly", "af41"), count(Dscp::AF41), "nft saw AF41");
    }

    #[test]
    fn v4() {
        scenario(false);
    }

    #[test]
    fn v6() {
        scenario(true);
    }
}

/// Scenario 6: a reuse-port group spreads flows from 64 source ports.
mod reuse_port {
    use super::*;

    const PORT: u16 = 7400;
    const GROUP: usize = 4;
    const FLOWS: u32 = 64;
    const PER_FLOW: u32 = 4;

    fn scenario(v6: bool) {
        let Some(line) = Line::new(&[]) else { return };
        let addr = SocketAddr::new(line.server_ip(v6), PORT);
        let group: Vec<Socket> = line.server.run(|| {
            (0..GROUP).map(|_| Config::new().reuse_port(true).bind(addr).expect("bind group member")).collect()
        });
        let clients: Vec<Socket> = line.client.run(|| (0..FLOWS).map(|_| bind(unspecified(v6))).collect());
        let ports: BTreeSet<u16> = clients.iter().map(|c| c.local_addr().expect("addr").port()).collect();
        assert_eq!(ports.len(), FLOWS as usize, "64 distinct source ports");

        for (flow, c) in clients.iter().enumerate() {
            let bufs: Vec<Vec<u8>> = (0..PER_FLOW).map(|i| payload(flow as u32 * PER_FLOW + i, 32)).collect();
            let transmits: Vec<_> = bufs.iter().map(|b| Transmit::new(addr, b)).collect();
            c.send_batch_blocking(&transmits, WAIT).expect("send");
        }

        // Drain the whole group until everything arrived (bounded).
        let total = (FLOWS * PER_FLOW) as usize;
        let mut seen: BTreeMap<u32, (usize, u16)> = BTreeMap::new();
        let mut batch = RecvBatch::new();
        let deadline = Instant::now() + WAIT;
        for _ in 0..100_000 {
            if seen.len() >= total || Instant::now() > deadline {
                break;
            }
            let mut idle = true;
            for (i, s) in group.iter().enumerate() {
                match s.try_recv_batch(&mut batch) {
                    Ok(_) => {
                        idle = false;
                        for (meta, p) in batch.iter() {
                            let seq = seq_of(p);
                            let prev = seen.insert(seq, (i, meta.src.port()));
                            assert!(prev.is_none(), "datagram {seq} received twice");
                        }
                    }
                    Err(e) if e.is_would_block() => {}
                    Err(e) => panic!("receive on member {i}: {e}"),
                }
            }
            if idle {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert_eq!(seen.len(), total, "every datagram arrives exactly once");
        let members: BTreeSet<usize> = seen.values().map(|(i, _)| *i).collect();
        assert!(members.len() > 1, "64 flows all landed on one member: {members:?}");
        // Flow affinity: one source port, one member.
        let mut member_of: BTreeMap<u16, usize> = BTreeMap::new();
        for (seq, (i, port)) in &seen {
            let flow = seq / PER_FLOW;
            let expected_port = clients[flow as usize].local_addr().expect("addr").port();
            assert_eq!(*port, expected_port, "datagram {seq} reports the wrong source port");
            let m = *member_of.entry(*port).or_insert(*i);
            assert_eq!(m, *i, "flow from port {port} was split across members");
        }
        eprintln!(
            "reuse-port spread over {GROUP} members: {:?}",
            (0..GROUP).map(|i| seen.values().filter(|(m, _)| *m == i).count()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn v4() {
        scenario(false);
    }

    #[test]
    fn v6() {
        scenario(true);
    }
}

/// Scenario 5: syscall faults injected at the boundary, in a child process.
mod faults {
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    use super::*;

    /// Builds `tests/shim` (once per process) and returns the library path,
    /// or `None` (skipped) if cargo can't be found.
    fn shim_library() -> Option<PathBuf> {
        static LIB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        match LIB.get_or_init(build_shim) {
            Ok(p) => Some(p.clone()),
            Err(e) if e.starts_with("skip: ") => {
                netlab::skip(e.trim_start_matches("skip: "));
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    fn build_shim() -> Result<PathBuf, String> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        if !Path::new(&cargo).is_file() && netlab::find_tool(&cargo).is_none() {
            return Err(format!("skip: cargo not found at {cargo} (needed to build tests/shim)"));
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("shim/Cargo.toml");
        // A target directory of its own, beside ours: never waits on the
        // lock of the build that is running these tests.
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let target = exe
            .ancestors()
            .nth(3)
            .ok_or_else(|| format!("{} is not in <target>/<profile>/deps", exe.display()))?
            .join("volley-shim");
        let out = netlab::try_run_env(
            &[
                &cargo,
                "build",
                "--manifest-path",
                &manifest.to_string_lossy(),
                "-p",
                "volley-shim",
                "--target-dir",
                &target.to_string_lossy(),
                "--message-format",
                "json",
            ],
            None,
            &[],
            Duration::from_secs(300),
        )
        .map_err(|e| format!("building the LD_PRELOAD shim failed: {e}"))?;
        out.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "volley_shim")
            .flat_map(|v| v["filenames"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f.as_str().map(PathBuf::from))
            .find(|p| p.extension().is_some_and(|e| e == "so"))
            .ok_or_else(|| format!("cargo built no libvolley_shim.so:\n{}", out.stdout))
    }

    /// Re-runs this test binary with only `child::<name>` selected and the
    /// extra environment; fails unless that one test ran and passed.
    fn run_child(name: &str, env: &[(&str, &str)]) {
        let exe = std::env::current_exe().expect("current_exe");
        let test = format!("child::{name}");
        let mut env = env.to_vec();
        env.push(("VOLLEY_LAB_CHILD", name));
        // These scenarios test how the batched backend degrades, so the
        // child uses it even when the suite runs with the portable one.
        env.push(("VOLLEY_BACKEND", "auto"));
        let out = netlab::try_run_env(
            &[&exe.to_string_lossy(), &test, "--exact", "--ignored", "--nocapture", "--test-threads=1"],
            None,
            &env,
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("child {test} failed: {e}"));
        eprintln!("--- child {test} stderr ---\n{}", out.stderr);
        assert!(out.stdout.contains("1 passed"), "child {test} did not run exactly one test:\n{}", out.stdout);
    }

    fn gso_eio(v6: bool) {
        let Some(lib) = shim_library() else { return };
        let lib = lib.to_string_lossy();
        let name = if v6 { "gso_eio_v6" } else { "gso_eio_v4" };
        run_child(name, &[("LD_PRELOAD", &lib), ("VOLLEY_SHIM", "eio-gso")]);
    }

    #[test]
    fn gso_eio_v4() {
        gso_eio(false);
    }

    #[test]
    fn gso_eio_v6() {
        gso_eio(true);
    }

    /// A kernel that refuses TOS control messages: `mode` is the shim's
    /// (`einval-tos`, `eio-tos`, `eio-tos-gso`), `name` the child test.
    fn tos_refused(name: &str, mode: &str) {
        let Some(lib) = shim_library() else { return };
        run_child(name, &[("LD_PRELOAD", &lib.to_string_lossy()), ("VOLLEY_SHIM", mode)]);
    }

    #[test]
    fn tos_einval_v4() {
        tos_refused("tos_einval_v4", "einval-tos");
    }

    #[test]
    fn tos_einval_v6() {
        tos_refused("tos_einval_v6", "einval-tos");
    }

    #[test]
    fn tos_einval_portable_v4() {
        tos_refused("tos_einval_portable_v4", "einval-tos");
    }

    #[test]
    fn tos_eio_v4() {
        tos_refused("tos_eio_v4", "eio-tos");
    }

    #[test]
    fn tos_eio_v6() {
        tos_refused("tos_eio_v6", "eio-tos");
    }

    #[test]
    fn tos_with_gso_eio_v4() {
        tos_refused("tos_with_gso_eio_v4", "eio-tos-gso");
    }

    #[test]
    fn tos_with_gso_eio_v6() {
        tos_refused("tos_with_gso_eio_v6", "eio-tos-gso");
    }

    fn enobufs(v6: bool) {
        let Some(lib) = shim_library() else { return };
        let name = if v6 { "enobufs_v6" } else { "enobufs_v4" };
        run_child(name, &[("LD_PRELOAD", &lib.to_string_lossy()), ("VOLLEY_SHIM", "enobufs:1")]);
    }

    #[test]
    fn enobufs_v4() {
        enobufs(false);
    }

    #[test]
    fn enobufs_v6() {
        enobufs(true);
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn seccomp_mmsg_v4() {
        run_child("seccomp_mmsg_v4", &[]);
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn seccomp_mmsg_v6() {
        run_child("seccomp_mmsg_v6", &[]);
    }
}

/// The child halves of `faults::*`: ignored in normal runs, and inert
/// unless `VOLLEY_LAB_CHILD` names them (so `--ignored` runs stay green).
mod child {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::Layer;

    use super::*;

    fn is_child(name: &str) -> bool {
        let me = std::env::var("VOLLEY_LAB_CHILD").is_ok_and(|v| v == name);
        if !me {
            eprintln!("child::{name} does nothing unless run by its parent test in faults::");
        }
        me
    }

    /// Counts volley's WARN events.
    struct WarnCounter(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> Layer<S> for WarnCounter {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let m = event.metadata();
            if *m.level() == tracing::Level::WARN && m.target().starts_with("volley") {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Installs a process-wide subscriber (this process runs one test) that
    /// prints events to stderr and counts volley's warnings.
    fn count_warnings() -> Arc<AtomicUsize> {
        let warns = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(WarnCounter(warns.clone()))
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber of the child");
        warns
    }

    /// A counter exported by the shim, if it is loaded.
    fn shim_counter(symbol: &std::ffi::CStr) -> Option<u64> {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no
        // preconditions; a non-null result is the shim's
        // `extern "C" fn() -> u64` of that name.
        unsafe {
            let f = libc::dlsym(libc::RTLD_DEFAULT, symbol.as_ptr());
            (!f.is_null()).then(|| std::mem::transmute::<*mut libc::c_void, extern "C" fn() -> u64>(f)())
        }
    }

    fn loopback(v6: bool) -> SocketAddr {
        if v6 {
            "[::1]:0".parse().expect("literal")
        } else {
            "127.0.0.1:0".parse().expect("literal")
        }
    }

    /// Sends `rounds` batches of GSO trains and single datagrams from `tx`
    /// to `rx`, sequence-numbered, and checks each round arrives complete,
    /// exactly once.
    fn traffic(tx: &Socket, rx: &Socket, rounds: u32) {
        traffic_ecn(tx, rx, rounds, Ecn::NotEct);
    }

    /// What [`traffic_ecn`] saw arrive.
    #[derive(Debug, Default)]
    struct Arrived {
        /// Datagrams sent, and received (each exactly once).
        sent: usize,
        received: usize,
        /// Received with the ECN codepoint the transmits asked for.
        with_ecn: usize,
    }

    /// [`traffic`] with every transmit asking for `ecn`; also counts the
    /// datagrams that arrived with it.
    fn traffic_ecn(tx: &Socket, rx: &Socket, rounds: u32, ecn: Ecn) -> Arrived {
        let dst = rx.local_addr().expect("rx addr");
        let mut seq = 0u32;
        let mut arrived = Arrived::default();
        for round in 0..rounds {
            let first = seq;
            // Four trains of eight 1000-byte datagrams, then four singles.
            let mut bufs: Vec<(Vec<u8>, Option<usize>)> = (0..4)
                .map(|_| {
                    let train = (seq..seq + 8).flat_map(|s| payload(s, 1000)).collect();
                    seq += 8;
                    (train, Some(1000))
                })
                .collect();
            for _ in 0..4 {
                bufs.push((payload(seq, 300), None));
                seq += 1;
            }
            let transmits: Vec<_> = bufs
                .iter()
                .map(|(b, s)| match s {
                    Some(s) => Transmit::new(dst, b).with_segment_size(*s).with_ecn(ecn),
                    None => Transmit::new(dst, b).with_ecn(ecn),
                })
                .collect();
            tx.send_batch_blocking(&transmits, WAIT)
                .unwrap_or_else(|e| panic!("round {round}: send failed: {e} ({e:?})"));
            let got = recv_exactly(rx, (seq - first) as usize);
            assert_eq!(
                got.keys().copied().collect::<Vec<_>>(),
                (first..seq).collect::<Vec<_>>(),
                "round {round}: lost datagrams"
            );
            arrived.sent += (seq - first) as usize;
            arrived.received += got.len();
            arrived.with_ecn += got.values().filter(|(m, _)| m.ecn == ecn).count();
        }
        arrived
    }

    fn gso_eio(v6: bool) {
        let warns = count_warnings();
        assert!(shim_counter(c"volley_shim_faults").is_some(), "the LD_PRELOAD shim is not loaded");
        let rx = Config::new().recv_buffer_size(1 << 20).bind(loopback(v6)).expect("bind rx");
        let tx = bind(loopback(v6));
        let caps = tx.capabilities();
        assert!(caps.max_gso_segments > 1, "GSO must be on to test its fallback:\n{caps}");

        // ECN-marked, so each refused message also carries a TOS control
        // message: the degrade must find that UDP_SEGMENT is the culprit.
        let first = traffic_ecn(&tx, &rx, 3, Ecn::Ect0);
        let faults = shim_counter(c"volley_shim_faults").expect("shim");
        assert!(faults >= 1, "the shim never failed a GSO send");
        assert_eq!(tx.capabilities().max_gso_segments, 1, "GSO is off after EIO");
        assert!(tx.capabilities().tos_cmsg, "TOS control messages were not at fault:\n{}", tx.capabilities());
        assert_eq!(warns.load(Ordering::Relaxed), 1, "exactly one warning");
        let off = tx.stats().gso_disabled_at.expect("the statistics say when GSO went off");
        assert!(off <= std::time::SystemTime::now());

        // GSO stays off: no more faults, no more warnings, nothing lost.
        let then = traffic_ecn(&tx, &rx, 2, Ecn::Ect0);
        assert_eq!(shim_counter(c"volley_shim_faults"), Some(faults), "GSO was tried again");
        assert_eq!(warns.load(Ordering::Relaxed), 1, "still exactly one warning");
        assert_eq!(first.with_ecn, first.received, "ECN lost with GSO: {first:?}");
        assert_eq!(then.with_ecn, then.received, "ECN lost with GSO: {then:?}");
        eprintln!("eio-gso: {faults} faults; before: {first:?}; after: {then:?}");
    }

    /// The kernel refuses the TOS control message (the shim's mode says
    /// when): the refused messages are resent without it, nothing is lost,
    /// TOS control messages are off for the socket (and say so in the
    /// capability report) while GSO stays on, and the socket-level TOS
    /// still marks every datagram.
    fn tos_refused(v6: bool, backend: Backend) {
        let warns = count_warnings();
        assert!(shim_counter(c"volley_shim_faults").is_some(), "the LD_PRELOAD shim is not loaded");
        let rx = Config::new().recv_buffer_size(1 << 20).bind(loopback(v6)).expect("bind rx");
        let tx = Config::new().backend(backend).bind(loopback(v6)).expect("bind tx");
        let caps = tx.capabilities();
        assert!(caps.tos_cmsg, "TOS control messages start on:\n{caps}");
        assert!(rx.capabilities().ecn, "the receiver must read ECN to tell what was sent");
        let gso = caps.gso();
        if backend == Backend::Auto {
            assert!(gso, "GSO must be on to test it is kept:\n{caps}");
        }

        let first = traffic_ecn(&tx, &rx, 3, Ecn::Ect0);
        let faults = shim_counter(c"volley_shim_faults").expect("shim");
        assert!(faults >= 1, "the shim never refused a TOS control message");
        let caps = tx.capabilities();
        assert!(!caps.tos_cmsg, "TOS control messages still on after the kernel refused them:\n{caps}");
        assert!(caps.to_string().contains("socket-level only"), "the report does not say it:\n{caps}");
        assert_eq!(caps.gso(), gso, "GSO was not at fault:\n{caps}");
        assert!(
            tx.stats().tos_cmsg_disabled_at.is_some() && tx.stats().gso_disabled_at.is_none(),
            "stats say which, when"
        );
        assert_eq!(warns.load(Ordering::Relaxed), 1, "exactly one warning");
        // 36 datagrams a round: four trains of eight, four singles.
        assert_eq!((first.sent, first.received), (3 * 36, 3 * 36), "{first:?}");

        // Off for good: no more faults, nothing lost, and (honestly) no
        // per-datagram ECN: the datagrams carry the socket's TOS, 0.
        let then = traffic_ecn(&tx, &rx, 2, Ecn::Ect0);
        assert_eq!(shim_counter(c"volley_shim_faults"), Some(faults), "TOS control messages were tried again");
        assert_eq!((then.sent, then.received, then.with_ecn), (2 * 36, 2 * 36, 0), "{then:?}");

        // The socket-level TOS still marks every datagram.
        tx.set_tos(Dscp::DEFAULT.tos(Ecn::Ect0)).expect("set_tos");
        let socket_level = traffic_ecn(&tx, &rx, 1, Ecn::Ect0);
        assert_eq!(socket_level.with_ecn, socket_level.received, "{socket_level:?}");
        assert_eq!(shim_counter(c"volley_shim_faults"), Some(faults));
        assert_eq!(warns.load(Ordering::Relaxed), 1, "still exactly one warning");
        eprintln!(
            "{}: {faults} faults; first: {first:?}; after: {then:?}; socket-level TOS: {socket_level:?}\n{caps}",
            std::env::var("VOLLEY_SHIM").unwrap_or_default()
        );
    }

    macro_rules! tos_children {
        ($($name:ident: $v6:expr, $backend:expr;)*) => { $(
            #[test]
            #[ignore = "child process of the faults:: test of the same name"]
            fn $name() {
                if is_child(stringify!($name)) {
                    tos_refused($v6, $backend);
                }
            }
        )* };
    }

    tos_children! {
        tos_einval_v4: false, Backend::Auto;
        tos_einval_v6: true, Backend::Auto;
        tos_einval_portable_v4: false, Backend::Portable;
        tos_eio_v4: false, Backend::Auto;
        tos_eio_v6: true, Backend::Auto;
        tos_with_gso_eio_v4: false, Backend::Auto;
        tos_with_gso_eio_v6: true, Backend::Auto;
    }

    #[test]
    #[ignore = "child process of faults::gso_eio_v4"]
    fn gso_eio_v4() {
        if is_child("gso_eio_v4") {
            gso_eio(false);
        }
    }

    #[test]
    #[ignore = "child process of faults::gso_eio_v6"]
    fn gso_eio_v6() {
        if is_child("gso_eio_v6") {
            gso_eio(true);
        }
    }

    /// `ENOBUFS` (a full device queue) is its own error, nothing is sent,
    /// and the retry goes through.
    fn enobufs(v6: bool) {
        let rx = bind(loopback(v6));
        let tx = bind(loopback(v6));
        let dst = rx.local_addr().expect("addr");
        let p = payload(7, 100);
        match tx.try_send_batch(&[Transmit::new(dst, &p)]) {
            Err(Error::NoBufferSpace) => {}
            other => panic!("expected NoBufferSpace, got {other:?}"),
        }
        assert_eq!(shim_counter(c"volley_shim_faults"), Some(1), "the shim failed exactly one call");
        assert_eq!(tx.try_send_batch(&[Transmit::new(dst, &p)]).expect("retry").transmits, 1);
        let got = recv_exactly(&rx, 1);
        assert!(got.contains_key(&7));
    }

    #[test]
    #[ignore = "child process of faults::enobufs_v4"]
    fn enobufs_v4() {
        if is_child("enobufs_v4") {
            enobufs(false);
        }
    }

    #[test]
    #[ignore = "child process of faults::enobufs_v6"]
    fn enobufs_v6() {
        if is_child("enobufs_v6") {
            enobufs(true);
        }
    }

    /// Installs a seccomp filter answering `recvmmsg`/`sendmmsg` with
    /// `ENOSYS` for the whole process, as sandboxes do.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn block_mmsg() {
        #[cfg(target_arch = "x86_64")]
        const ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
        #[cfg(target_arch = "x86_64")]
        const NRS: [u32; 2] = [299, 307]; // recvmmsg, sendmmsg
        #[cfg(target_arch = "aarch64")]
        const ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
        #[cfg(target_arch = "aarch64")]
        const NRS: [u32; 2] = [243, 269];
        const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
        const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
        const RET_K: u16 = 0x06; // BPF_RET | BPF_K
        const RET_ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
        const RET_ERRNO: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
        let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        // struct seccomp_data { int nr; __u32 arch; ... }
        let filter = [
            op(LD_W_ABS, 0, 0, 4),                            // 0: A = arch
            op(JEQ_K, 0, 3, ARCH),                            // 1: other arch -> 5 (allow)
            op(LD_W_ABS, 0, 0, 0),                            // 2: A = nr
            op(JEQ_K, 2, 0, NRS[0]),                          // 3: recvmmsg -> 6 (errno)
            op(JEQ_K, 1, 0, NRS[1]),                          // 4: sendmmsg -> 6 (errno)
            op(RET_K, 0, 0, RET_ALLOW),                       // 5
            op(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32), // 6
        ];
        let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
        nix::sys::prctl::set_no_new_privs().expect("PR_SET_NO_NEW_PRIVS");
        // SAFETY: `prog` points to a valid filter program that outlives the
        // call (the kernel copies it). TSYNC applies it to every thread.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &raw const prog,
            )
        };
        assert_eq!(rc, 0, "seccomp(SET_MODE_FILTER): {}", std::io::Error::last_os_error());
        // The filter is live: the raw syscall now answers ENOSYS.
        // SAFETY: recvmmsg on fd -1 with no messages touches no memory.
        let rc = unsafe { libc::recvmmsg(-1, std::ptr::null_mut(), 0, 0, std::ptr::null_mut()) };
        let err = std::io::Error::last_os_error();
        assert_eq!((rc, err.raw_os_error()), (-1, Some(libc::ENOSYS)), "filter not active");
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn seccomp_mmsg(v6: bool) {
        let warns = count_warnings();
        // Sockets first, then the filter: the batched calls start failing
        // under a socket that probed them fine (a sandbox applied later).
        let rx = Config::new().recv_buffer_size(1 << 20).bind(loopback(v6)).expect("bind rx");
        let tx = bind(loopback(v6));
        assert!(tx.capabilities().mmsg, "mmsg must be on to test its fallback:\n{}", tx.capabilities());
        block_mmsg();
        traffic(&tx, &rx, 3);
        assert!(!tx.capabilities().mmsg, "sender still claims sendmmsg:\n{}", tx.capabilities());
        assert!(!rx.capabilities().mmsg, "receiver still claims recvmmsg:\n{}", rx.capabilities());
        assert!(tx.stats().mmsg_disabled_at.is_some() && rx.stats().mmsg_disabled_at.is_some(), "stats say when");
        assert!(tx.stats().gso_disabled_at.is_none(), "GSO was not turned off");
        // Reported once per socket, not once per call.
        assert_eq!(warns.load(Ordering::Relaxed), 2, "one warning per socket");
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    #[ignore = "child process of faults::seccomp_mmsg_v4"]
    fn seccomp_mmsg_v4() {
        if is_child("seccomp_mmsg_v4") {
            seccomp_mmsg(false);
        }
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    #[ignore = "child process of faults::seccomp_mmsg_v6"]
    fn seccomp_mmsg_v6() {
        if is_child("seccomp_mmsg_v6") {
            seccomp_mmsg(true);
        }
    }
}

/// `EPERM` is not only seccomp's answer: a netfilter drop in OUTPUT returns
/// it for that one datagram. It must be reported, and must not turn the
/// batched syscalls off for the socket's life (found by the CLI's tests).
mod netfilter_eperm {
    use std::net::SocketAddr;
    use std::time::Duration;

    use volley::{Error, RecvBatch, Socket, Transmit};
    use volley_tests::netlab::Lab;

    #[test]
    fn a_dropped_send_is_reported_and_mmsg_stays_on() {
        let Some(mut lab) = Lab::with_tools(&["nft"]) else { return };
        let ns = lab.ns("eperm");
        ns.nft("table inet vly {\n  chain out {\n    type filter hook output priority 0;\n    udp dport 5999 drop\n  }\n}\n");
        ns.run(|| {
            let tx = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let rx = Socket::bind("127.0.0.1:6000".parse().unwrap()).unwrap();
            // Both backends report the drop and keep sending; the Linux one
            // must also keep its batched syscalls.
            let mmsg = tx.capabilities().mmsg;
            let blocked: SocketAddr = "127.0.0.1:5999".parse().unwrap();
            match tx.try_send_batch(&[Transmit::new(blocked, b"dropped")]) {
                Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}"),
                other => panic!("expected EPERM from the netfilter drop, got {other:?}"),
            }
            assert_eq!(tx.capabilities().mmsg, mmsg, "a firewall drop must not turn sendmmsg off");
            tx.send_batch_blocking(&[Transmit::new(rx.local_addr().unwrap(), b"fine")], Duration::from_secs(5))
                .unwrap();
            let mut batch = RecvBatch::new();
            rx.recv_batch_blocking(&mut batch, Duration::from_secs(5)).unwrap();
            assert_eq!(batch.iter().next().unwrap().1, b"fine");
            assert_eq!(tx.capabilities().mmsg, mmsg);
        });
    }
}
