//! Multicast (issue 9) across a real veth link between two network
//! namespaces: two `reuse_addr` receivers on one port both get every
//! datagram of a group they joined, with the group as `dst_ip`; a
//! source-specific receiver only hears its source; leaving stops delivery;
//! bad joins are typed errors. IPv4 and IPv6.
// Linux only: network namespaces.
#![cfg(target_os = "linux")]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use volley::{Config, MulticastInterface, RecvBatch, RecvMeta, Socket, Transmit};
use volley_tests::netlab::{Iface, Lab, Ns};

const PORT: u16 = 47_001;

struct Net {
    _lab: Lab,
    tx: Ns,
    rx: Ns,
    tx_if: Iface,
    rx_if: Iface,
}

/// Sender namespace with two addresses per family, receiver with one, on
/// one veth link with multicast routes.
fn net() -> Option<Net> {
    let mut lab = Lab::new()?;
    let tx = lab.ns("mtx");
    let rx = lab.ns("mrx");
    let (tx_if, rx_if) = lab.link(&tx, &rx);
    tx_if.addr("10.78.0.1/24").addr("10.78.0.3/24").addr("fd00:78::1/64").addr("fd00:78::3/64");
    rx_if.addr("10.78.0.2/24").addr("fd00:78::2/64");
    tx.ip(&format!("route add 224.0.0.0/4 dev {}", tx_if.name));
    rx.ip(&format!("route add 224.0.0.0/4 dev {}", rx_if.name));
    Some(Net { _lab: lab, tx, rx, tx_if, rx_if })
}

/// Receives until `want` datagrams arrived or `limit` passed.
fn collect(sock: &Socket, want: usize, limit: Duration) -> Vec<(RecvMeta, Vec<u8>)> {
    let mut out = Vec::new();
    let mut batch = RecvBatch::new();
    let deadline = Instant::now() + limit;
    while out.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if sock.recv_batch_blocking(&mut batch, left).is_ok() {
            out.extend(batch.iter().map(|(m, p)| (m, p.to_vec())));
        }
    }
    out
}

fn send_from(tx: &Ns, ifindex: u32, src: IpAddr, group: IpAddr, tags: &[u8]) {
    let bind: SocketAddr = if group.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap();
    tx.run(|| {
        let sock = Config::new().ipv6_only(group.is_ipv6()).bind(bind).unwrap();
        sock.set_multicast_interface(MulticastInterface::Index(ifindex)).unwrap();
        sock.set_multicast_hops(1).unwrap();
        let payloads: Vec<[u8; 1]> = tags.iter().map(|t| [*t]).collect();
        let transmits: Vec<Transmit<'_>> =
            payloads.iter().map(|p| Transmit::new(SocketAddr::new(group, PORT), p).with_src_ip(src)).collect();
        sock.send_batch_blocking(&transmits, Duration::from_secs(5)).unwrap();
    });
}

fn receivers(rx: &Ns, v6: bool, n: usize) -> Vec<Socket> {
    let bind: SocketAddr = if v6 { format!("[::]:{PORT}") } else { format!("0.0.0.0:{PORT}") }.parse().unwrap();
    rx.run(|| (0..n).map(|_| Config::new().reuse_addr(true).ipv6_only(v6).bind(bind).unwrap()).collect())
}

fn any_source_group_reaches_every_receiver(v6: bool) {
    let Some(net) = net() else { return };
    let (group, src): (IpAddr, IpAddr) = if v6 {
        ("ff15::77".parse().unwrap(), "fd00:78::1".parse().unwrap())
    } else {
        ("239.77.0.1".parse().unwrap(), "10.78.0.1".parse().unwrap())
    };
    let rx_index = net.rx_if.ifindex();
    let socks = receivers(&net.rx, v6, 2);
    for s in &socks {
        s.join_multicast(group, MulticastInterface::Index(rx_index)).unwrap();
        assert!(s.capabilities().multicast);
    }
    let tags: Vec<u8> = (0..10).collect();
    send_from(&net.tx, net.tx_if.ifindex(), src, group, &tags);
    for (i, s) in socks.iter().enumerate() {
        let got = collect(s, tags.len(), Duration::from_secs(3));
        let seen: Vec<u8> = got.iter().map(|(_, p)| p[0]).collect();
        println!("receiver {i}: {seen:?}");
        assert_eq!(seen, tags, "receiver {i} got every datagram of the group, in order");
        for (m, _) in &got {
            assert_eq!(m.dst_ip, Some(group), "dst_ip is the group");
            assert_eq!(m.ifindex, Some(rx_index), "ifindex is the veth");
            assert_eq!(m.src.ip(), src);
        }
    }
    // Leaving stops delivery to that socket only.
    socks[0].leave_multicast(group, MulticastInterface::Index(rx_index)).unwrap();
    send_from(&net.tx, net.tx_if.ifindex(), src, group, &[42]);
    assert_eq!(collect(&socks[1], 1, Duration::from_secs(3)).len(), 1, "still-joined socket hears it");
    assert!(collect(&socks[0], 1, Duration::from_millis(300)).is_empty(), "left socket hears nothing");
}

fn source_specific_group_filters_by_source(v6: bool) {
    let Some(net) = net() else { return };
    let (group, good, bad): (IpAddr, IpAddr, IpAddr) = if v6 {
        ("ff35::77".parse().unwrap(), "fd00:78::1".parse().unwrap(), "fd00:78::3".parse().unwrap())
    } else {
        ("232.77.0.1".parse().unwrap(), "10.78.0.1".parse().unwrap(), "10.78.0.3".parse().unwrap())
    };
    let rx_index = net.rx_if.ifindex();
    let socks = receivers(&net.rx, v6, 1);
    let sock = &socks[0];
    if v6 {
        sock.join_source_multicast(group, good, MulticastInterface::Index(rx_index)).unwrap();
    } else {
        // IPv4 also by interface address (IP_ADD_SOURCE_MEMBERSHIP).
        let local = MulticastInterface::V4("10.78.0.2".parse().unwrap());
        sock.join_source_multicast(group, good, local).unwrap();
    }
    let tx_index = net.tx_if.ifindex();
    send_from(&net.tx, tx_index, bad, group, &[1, 2, 3]);
    send_from(&net.tx, tx_index, good, group, &[7, 8, 9]);
    let got = collect(sock, 6, Duration::from_millis(1500));
    let seen: Vec<(IpAddr, u8)> = got.iter().map(|(m, p)| (m.src.ip(), p[0])).collect();
    println!("SSM receiver: {seen:?}");
    assert_eq!(seen, [(good, 7), (good, 8), (good, 9)], "only the chosen source's datagrams");
}

#[test]
fn any_source_v4() {
    any_source_group_reaches_every_receiver(false);
}

#[test]
fn any_source_v6() {
    any_source_group_reaches_every_receiver(true);
}

#[test]
fn source_specific_v4() {
    source_specific_group_filters_by_source(false);
}

#[test]
fn source_specific_v6() {
    source_specific_group_filters_by_source(true);
}

/// `set_multicast_loop`: with loop on (the kernel default) a receiver on the
/// sending host hears the group; with it off, it does not.
fn multicast_loop_on_and_off(v6: bool) {
    let Some(net) = net() else { return };
    let index = net.tx_if.ifindex();
    let group: IpAddr = if v6 { "ff15::99".parse().unwrap() } else { "239.77.0.99".parse().unwrap() };
    let port = PORT + 1;
    net.tx.run(|| {
        let (any, v6only) = if v6 { ("[::]", true) } else { ("0.0.0.0", false) };
        let rx =
            Config::new().reuse_addr(true).ipv6_only(v6only).bind(format!("{any}:{port}").parse().unwrap()).unwrap();
        rx.join_multicast(group, MulticastInterface::Index(index)).unwrap();
        let tx = Config::new().ipv6_only(v6only).bind(format!("{any}:0").parse().unwrap()).unwrap();
        tx.set_multicast_interface(MulticastInterface::Index(index)).unwrap();
        let to = SocketAddr::new(group, port);
        tx.send_batch_blocking(&[Transmit::new(to, b"looped")], Duration::from_secs(5)).unwrap();
        let got = collect(&rx, 1, Duration::from_secs(3));
        assert_eq!(got.len(), 1, "loop on: this host hears its own group traffic");
        assert_eq!(got[0].1, b"looped");
        tx.set_multicast_loop(false).unwrap();
        tx.send_batch_blocking(&[Transmit::new(to, b"not looped")], Duration::from_secs(5)).unwrap();
        assert!(collect(&rx, 1, Duration::from_millis(300)).is_empty(), "loop off: nothing back on this host");
    });
}

#[test]
fn multicast_loop_v4() {
    multicast_loop_on_and_off(false);
}

#[test]
fn multicast_loop_v6() {
    multicast_loop_on_and_off(true);
}
