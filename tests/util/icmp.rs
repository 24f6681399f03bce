//! Forged ICMP / ICMPv6 errors, for tests of what a UDP socket does when
//! they arrive (issue 12).
//!
//! ```text
//!   Pair (a Lab of two namespaces joined by one veth pair)
//!    forger 10.88.0.1 (+ 10.88.0.3 "quoted")  ==== victim 10.88.0.2
//!           fd00:88::1 (+ fd00:88::3)                fd00:88::2
//! ```
//!
//! A [`Forger`] is a raw socket (`SOCK_RAW`, `IPPROTO_ICMP` /
//! `IPPROTO_ICMPV6`) in the forger namespace. [`Forger::send`] builds an
//! ICMP error that quotes a UDP datagram the victim socket "sent" (the inner
//! IP header from the victim's address to a destination, and the 8-byte UDP
//! header with the victim's source port) and sends it to the victim's
//! address. The victim's kernel looks the UDP socket up from the quoted
//! headers (local = inner source, remote = inner destination) and hands it
//! the error exactly as if a router or the peer had sent it: `sk_err` is
//! set, and with `IP_RECVERR` / `IPV6_RECVERR` an entry is queued on the
//! error queue, charged to the receive buffer. Nothing is checked against
//! what the socket really sent, so no datagram has to leave the victim.
//!
//! The IPv4 ICMP checksum is computed here; for raw ICMPv6 sockets the
//! kernel always computes the checksum over the pseudo-header. Forged
//! errors are not rate-limited (only kernel-generated ICMP is).
//!
//! [`CLASSES_V4`] / [`CLASSES_V6`] list every error class with the errno the
//! kernel maps it to (`icmp_err_convert`, `icmpv6_err_convert`) and whether
//! it is "hard" (reported to a connected socket even without `RECVERR`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::netlab::{Lab, Ns};

/// One class of ICMP / ICMPv6 error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// A short name for messages.
    pub name: &'static str,
    /// ICMPv6 (true) or ICMP (false).
    pub v6: bool,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// The 32-bit field after the checksum: the MTU for "packet too big" /
    /// "fragmentation needed", the pointer for "parameter problem".
    pub info: u32,
    /// The errno the kernel reports for it.
    pub errno: i32,
    /// Reported to a connected socket without `RECVERR` (the kernel's
    /// "fatal" flag; frag-needed / packet-too-big are hard unless the socket
    /// has PMTU discovery off).
    pub hard: bool,
}

/// The MTU the "too big" classes carry.
pub const FORGED_MTU: u32 = 1280;

const fn class(name: &'static str, v6: bool, icmp_type: u8, code: u8, info: u32, errno: i32, hard: bool) -> Class {
    Class { name, v6, icmp_type, code, info, errno, hard }
}

/// Every IPv4 class the issue names.
pub const CLASSES_V4: [Class; 11] = [
    class("net unreachable (3/0)", false, 3, 0, 0, libc::ENETUNREACH, false),
    class("host unreachable (3/1)", false, 3, 1, 0, libc::EHOSTUNREACH, false),
    class("protocol unreachable (3/2)", false, 3, 2, 0, libc::ENOPROTOOPT, true),
    class("port unreachable (3/3)", false, 3, 3, 0, libc::ECONNREFUSED, true),
    class("frag needed (3/4)", false, 3, 4, FORGED_MTU, libc::EMSGSIZE, true),
    class("source route failed (3/5)", false, 3, 5, 0, libc::EOPNOTSUPP, false),
    class("host unknown (3/7)", false, 3, 7, 0, libc::EHOSTDOWN, true),
    class("host isolated (3/8)", false, 3, 8, 0, libc::ENONET, true),
    class("admin prohibited (3/13)", false, 3, 13, 0, libc::EHOSTUNREACH, true),
    class("time exceeded (11/0)", false, 11, 0, 0, libc::EHOSTUNREACH, false),
    class("parameter problem (12/0)", false, 12, 0, 20 << 24, libc::EPROTO, true),
];

/// Every IPv6 class the issue names.
pub const CLASSES_V6: [Class; 9] = [
    class("no route (1/0)", true, 1, 0, 0, libc::ENETUNREACH, false),
    class("admin prohibited (1/1)", true, 1, 1, 0, libc::EACCES, true),
    class("address unreachable (1/3)", true, 1, 3, 0, libc::EHOSTUNREACH, false),
    class("port unreachable (1/4)", true, 1, 4, 0, libc::ECONNREFUSED, true),
    class("policy fail (1/5)", true, 1, 5, 0, libc::EACCES, true),
    class("reject route (1/6)", true, 1, 6, 0, libc::EACCES, true),
    class("packet too big (2/0)", true, 2, 0, FORGED_MTU, libc::EMSGSIZE, true),
    class("time exceeded (3/0)", true, 3, 0, 0, libc::EHOSTUNREACH, false),
    class("parameter problem (4/0)", true, 4, 0, 40, libc::EPROTO, true),
];

/// The classes of one family.
pub fn classes(v6: bool) -> &'static [Class] {
    if v6 {
        &CLASSES_V6
    } else {
        &CLASSES_V4
    }
}

impl Class {
    /// Port unreachable, the common case (peer gone).
    pub fn port_unreachable(v6: bool) -> Self {
        classes(v6).iter().copied().find(|c| c.errno == libc::ECONNREFUSED).expect("listed")
    }

    /// How volley classifies it (`IcmpKind::classify`): origin 2 is ICMP,
    /// 3 is ICMPv6.
    pub fn kind(&self) -> volley::IcmpKind {
        use volley::IcmpKind;
        match (self.v6, self.icmp_type, self.code) {
            (false, 3, 4) | (true, 2, _) => IcmpKind::PacketTooBig { mtu: self.info },
            (false, 3, 3) | (true, 1, 4) => IcmpKind::PortUnreachable,
            (false, 3, c) | (true, 1, c) => IcmpKind::Unreachable { code: c },
            (false, 11, _) | (true, 3, _) => IcmpKind::TimeExceeded,
            (v6, t, c) => IcmpKind::Other { origin: if v6 { 3 } else { 2 }, icmp_type: t, code: c },
        }
    }
}

/// The Internet checksum (RFC 1071).
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Bytes of the quoted datagram's payload after its UDP header.
const QUOTED_PAYLOAD: usize = 32;

fn quoted_udp(victim: SocketAddr, dest: SocketAddr) -> [u8; 8 + QUOTED_PAYLOAD] {
    let mut udp = [0xabu8; 8 + QUOTED_PAYLOAD];
    udp[0..2].copy_from_slice(&victim.port().to_be_bytes());
    udp[2..4].copy_from_slice(&dest.port().to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + QUOTED_PAYLOAD) as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    udp
}

/// An ICMP (IPv4) error message, checksummed, quoting a UDP datagram from
/// `victim` to `dest`.
///
/// # Panics
/// If the class is IPv6 or the addresses are not IPv4.
pub fn build_v4(class: &Class, victim: SocketAddr, dest: SocketAddr) -> Vec<u8> {
    assert!(!class.v6, "an ICMPv6 class");
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (victim.ip(), dest.ip()) else { panic!("IPv4 addresses") };
    let udp = quoted_udp(victim, dest);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    ip[8] = 64;
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut msg = vec![class.icmp_type, class.code, 0, 0];
    if class.icmp_type == 3 && class.code == 4 {
        // Unused (2) and next-hop MTU (2).
        msg.extend_from_slice(&[0, 0]);
        msg.extend_from_slice(&(class.info as u16).to_be_bytes());
    } else {
        msg.extend_from_slice(&class.info.to_be_bytes());
    }
    msg.extend_from_slice(&ip);
    msg.extend_from_slice(&udp);
    let sum = checksum(&msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    msg
}

/// An ICMPv6 error message quoting a UDP datagram from `victim` to `dest`
/// (checksum left 0: the kernel fills it in for raw ICMPv6 sockets).
///
/// # Panics
/// If the class is IPv4 or the addresses are not IPv6.
pub fn build_v6(class: &Class, victim: SocketAddr, dest: SocketAddr) -> Vec<u8> {
    assert!(class.v6, "an ICMP (v4) class");
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (victim.ip(), dest.ip()) else { panic!("IPv6 addresses") };
    let udp = quoted_udp(victim, dest);
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(udp.len() as u16).to_be_bytes());
    ip[6] = 17; // UDP
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    let mut msg = vec![class.icmp_type, class.code, 0, 0];
    msg.extend_from_slice(&class.info.to_be_bytes());
    msg.extend_from_slice(&ip);
    msg.extend_from_slice(&udp);
    msg
}

/// A raw ICMP or ICMPv6 socket that sends forged errors. Create it inside
/// the forging namespace ([`Pair::forger`]).
#[derive(Debug)]
pub struct Forger {
    socket: Socket,
    v6: bool,
}

impl Forger {
    /// A raw socket of `source`'s family, in the calling thread's
    /// namespace, sending from `source` (the offender the victim sees).
    ///
    /// # Errors
    /// As `socket(2)` (needs `CAP_NET_RAW`) or `bind(2)`.
    pub fn new(source: IpAddr) -> io::Result<Self> {
        let v6 = source.is_ipv6();
        let socket = if v6 {
            Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?
        } else {
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?
        };
        socket.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
        Ok(Self { socket, v6 })
    }

    /// Sends one error of `class` to `victim`'s host, quoting a datagram
    /// `victim` -> `dest`.
    ///
    /// # Errors
    /// As `sendto(2)`.
    ///
    /// # Panics
    /// If the class or addresses don't match the forger's family.
    pub fn send(&self, class: &Class, victim: SocketAddr, dest: SocketAddr) -> io::Result<()> {
        assert_eq!(class.v6, self.v6, "class and forger families differ");
        let msg = if self.v6 { build_v6(class, victim, dest) } else { build_v4(class, victim, dest) };
        let to = SockAddr::from(SocketAddr::new(victim.ip(), 0));
        let n = self.socket.send_to(&msg, &to)?;
        assert_eq!(n, msg.len(), "raw send was cut");
        Ok(())
    }

    /// Sends `n` errors of `class`, retrying a send the kernel refuses for
    /// lack of buffer (`ENOBUFS`) a bounded number of times. Returns how many
    /// were sent.
    ///
    /// # Errors
    /// Any other send error.
    pub fn send_many(&self, class: &Class, victim: SocketAddr, dest: SocketAddr, n: usize) -> io::Result<usize> {
        let mut sent = 0;
        let mut retries = 0;
        while sent < n {
            match self.send(class, victim, dest) {
                Ok(()) => sent += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && retries < 1000 => {
                    retries += 1;
                    thread::sleep(Duration::from_micros(200));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
}

/// Two namespaces on one veth pair: `forger` (raw sockets, the real peers)
/// and `victim` (the socket under test). Deleted when dropped.
#[derive(Debug)]
pub struct Pair {
    /// Owns the namespaces.
    pub lab: Lab,
    /// Where the socket under test lives.
    pub victim: Ns,
    /// Where the forged errors and the real datagrams come from.
    pub forger: Ns,
}

impl Pair {
    /// The victim's IPv4 address.
    pub const VICTIM_V4: &'static str = "10.88.0.2";
    /// The forger's IPv4 address.
    pub const FORGER_V4: &'static str = "10.88.0.1";
    /// A second address on the forger: the destination the forged errors
    /// quote, so PMTU or other state the kernel keeps for it never touches
    /// the real peers.
    pub const QUOTED_V4: &'static str = "10.88.0.3";
    /// The victim's IPv6 address.
    pub const VICTIM_V6: &'static str = "fd00:88::2";
    /// The forger's IPv6 address.
    pub const FORGER_V6: &'static str = "fd00:88::1";
    /// See [`Pair::QUOTED_V4`].
    pub const QUOTED_V6: &'static str = "fd00:88::3";

    /// Builds the pair and checks a UDP round trip per family, or `None`
    /// to skip (see [`Lab::new`]).
    ///
    /// # Panics
    /// If a step fails, or under `VOLLEY_REQUIRE_LAB=1` when the lab can't
    /// run.
    pub fn new() -> Option<Self> {
        let mut lab = Lab::new()?;
        let victim = lab.ns("victim");
        let forger = lab.ns("forger");
        let (fi, vi) = lab.link(&forger, &victim);
        fi.addr("10.88.0.1/24").addr("10.88.0.3/24").addr("fd00:88::1/64").addr("fd00:88::3/64");
        vi.addr("10.88.0.2/24").addr("fd00:88::2/64");
        let pair = Self { lab, victim, forger };
        for v6 in [false, true] {
            pair.warm_up(v6);
        }
        Some(pair)
    }

    /// The victim's address of the family.
    pub fn victim_ip(&self, v6: bool) -> IpAddr {
        ip(if v6 { Self::VICTIM_V6 } else { Self::VICTIM_V4 })
    }

    /// The forger's address of the family.
    pub fn forger_ip(&self, v6: bool) -> IpAddr {
        ip(if v6 { Self::FORGER_V6 } else { Self::FORGER_V4 })
    }

    /// The quoted destination's address of the family.
    pub fn quoted_ip(&self, v6: bool) -> IpAddr {
        ip(if v6 { Self::QUOTED_V6 } else { Self::QUOTED_V4 })
    }

    /// A raw socket in the forger namespace, sending from
    /// [`Pair::forger_ip`] (with two addresses on the link, source address
    /// selection would otherwise pick either).
    ///
    /// # Panics
    /// If the socket can't be created.
    pub fn forger(&self, v6: bool) -> Forger {
        let source = self.forger_ip(v6);
        self.forger.run(move || Forger::new(source)).unwrap_or_else(|e| panic!("raw socket (v6 {v6}): {e}"))
    }

    /// A plain UDP socket in the forger namespace bound to `addr` (the
    /// sender of real datagrams).
    ///
    /// # Panics
    /// If bind fails.
    pub fn forger_udp(&self, addr: SocketAddr) -> UdpSocket {
        self.forger.run(move || UdpSocket::bind(addr)).unwrap_or_else(|e| panic!("bind {addr} in forger: {e}"))
    }

    /// One UDP round trip forger -> victim -> forger, so neighbour entries
    /// both ways are resolved before a test sends.
    ///
    /// # Panics
    /// If no round trip succeeds within a few tries.
    pub fn warm_up(&self, v6: bool) {
        let victim_ip = self.victim_ip(v6);
        let vic = self.victim.run(move || UdpSocket::bind(SocketAddr::new(victim_ip, 0))).expect("bind victim");
        let fwd = self.forger_udp(SocketAddr::new(self.forger_ip(v6), 0));
        let to = vic.local_addr().expect("local_addr");
        let step = Some(Duration::from_millis(300));
        vic.set_read_timeout(step).expect("timeout");
        fwd.set_read_timeout(step).expect("timeout");
        let mut buf = [0u8; 16];
        for _ in 0..10 {
            if fwd.send_to(b"warm-up", to).is_err() {
                thread::sleep(Duration::from_millis(100));
                continue;
            }
            let Ok((_, from)) = vic.recv_from(&mut buf) else { continue };
            if vic.send_to(b"warm-up", from).is_ok() && fwd.recv_from(&mut buf).is_ok() {
                return;
            }
        }
        panic!("icmp pair warm-up: no UDP round trip forger -> {to} and back");
    }
}

// ---------------------------------------------------------------------------
// Flood: bursts of forged errors interleaved with real datagrams.

/// Rounds of (a burst of forged errors, then a burst of real datagrams).
pub const ROUNDS: usize = 10;
pub const ERRORS_PER_ROUND: usize = 200;
pub const DATAGRAMS_PER_ROUND: usize = 20;
/// Real datagrams in all (`u32` sequence numbers, big-endian, as payload).
pub const DATAGRAMS: usize = ROUNDS * DATAGRAMS_PER_ROUND;

/// What a flood run saw.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    /// Forged errors sent.
    pub forged: usize,
    /// Real datagrams sent.
    pub sent: usize,
    /// The receiver fell behind for 2 s once (then it was not waited for).
    pub stalled: bool,
}

/// The port the flood's errors quote as the destination.
pub const QUOTED_PORT: u16 = 9999;

/// Sends `ROUNDS` x (`ERRORS_PER_ROUND` forged errors of `class`, then
/// `DATAGRAMS_PER_ROUND` real datagrams numbered from 0) at `victim`; before
/// each round waits until `received` has every datagram of the rounds before
/// (a stalled receiver is waited for at most once, 2 s).
///
/// One round's errors (about 200 x 770 bytes of error-queue skb) and
/// datagrams fit the default receive buffer together, so a receiver that
/// drains the error queue as it receives loses nothing and the kernel never
/// refuses an error entry. A receiver that never drains it finds the buffer
/// full of errors from the second round on: the kernel then takes one
/// datagram at a time (it checks the buffer before adding) and drops the
/// rest of each burst.
///
/// # Panics
/// If a send fails.
pub fn flood(pair: &Pair, class: &Class, victim: SocketAddr, received: &AtomicUsize) -> Flood {
    let v6 = class.v6;
    let forger = pair.forger(v6);
    let peer = pair.forger_udp(SocketAddr::new(pair.forger_ip(v6), 0));
    let dest = SocketAddr::new(pair.quoted_ip(v6), QUOTED_PORT);
    let mut f = Flood { forged: 0, sent: 0, stalled: false };
    for _ in 0..ROUNDS {
        if !f.stalled {
            let want = f.sent;
            f.stalled = !crate::netlab::wait_until(Duration::from_secs(2), Duration::from_micros(500), || {
                received.load(Ordering::Acquire) >= want
            });
        }
        f.forged += forger.send_many(class, victim, dest, ERRORS_PER_ROUND).expect("forge");
        for _ in 0..DATAGRAMS_PER_ROUND {
            peer.send_to(&(f.sent as u32).to_be_bytes(), victim).expect("send real datagram");
            f.sent += 1;
        }
    }
    f
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

/// Waits until `fd` reports `POLLERR` (a pending socket error or an error
/// queue entry), at most `timeout`. Returns whether it did.
pub fn wait_pollerr(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    // At most one poll per 10 ms step.
    for _ in 0..=timeout.as_millis() / 10 {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut p = [PollFd::new(fd, PollFlags::empty())];
        let rc = poll(&mut p, PollTimeout::from(10u8));
        if rc.is_ok_and(|n| n > 0) && p[0].revents().is_some_and(|r| r.contains(PollFlags::POLLERR)) {
            return true;
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    false
}

/// Sets `IP_RECVERR` (or `IPV6_RECVERR`) on a plain socket.
///
/// # Errors
/// As `setsockopt(2)`.
pub fn set_recverr(fd: BorrowedFd<'_>, v6: bool) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    if v6 {
        setsockopt(&fd, sockopt::Ipv6RecvErr, &true)?;
    } else {
        setsockopt(&fd, sockopt::Ipv4RecvErr, &true)?;
    }
    Ok(())
}

/// Pops one entry off a socket's error queue (`MSG_ERRQUEUE`, payload and
/// control data discarded): `Some(payload length)`, or `None` when empty.
///
/// # Errors
/// As `recv(2)`, except `EAGAIN`.
pub fn pop_errqueue(fd: BorrowedFd<'_>) -> io::Result<Option<usize>> {
    use nix::sys::socket::{recv, MsgFlags};
    let mut buf = [0u8; 256];
    match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT) {
        Ok(n) => Ok(Some(n)),
        Err(nix::errno::Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A named counter of `/proc/net/snmp` (e.g. `("Icmp", "OutDestUnreachs")`)
/// or, for a `section` of `"Icmp6"`, `/proc/net/snmp6` (`name` is then the
/// full key such as `Icmp6OutPktTooBigs`), read inside `ns`.
///
/// # Panics
/// If the file can't be read or has no such counter.
pub fn snmp_counter(ns: &Ns, section: &str, name: &str) -> u64 {
    if section == "Icmp6" {
        let text = ns.exec(&["cat", "/proc/net/snmp6"]);
        return text
            .lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(name)).then(|| it.next().and_then(|v| v.parse().ok())).flatten()
            })
            .unwrap_or_else(|| panic!("no {name} in snmp6 of {}", ns.name()));
    }
    let text = ns.exec(&["cat", "/proc/net/snmp"]);
    let prefix = format!("{section}:");
    let mut rows = text.lines().filter(|l| l.starts_with(&prefix));
    let (Some(head), Some(values)) = (rows.next(), rows.next()) else {
        panic!("no {section} rows in snmp of {}", ns.name())
    };
    head.split_whitespace()
        .zip(values.split_whitespace())
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no {section} {name} in snmp of {}", ns.name()))
}

/// An IPv4 or IPv6 unspecified address of the family.
pub fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_header() {
        // The example IPv4 header of RFC 1071 practice: checksum 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn v4_message_checksums_to_zero_and_quotes_the_ports() {
        let victim: SocketAddr = "10.88.0.2:4242".parse().unwrap();
        let dest: SocketAddr = "10.88.0.3:9".parse().unwrap();
        for c in &CLASSES_V4 {
            let m = build_v4(c, victim, dest);
            assert_eq!(checksum(&m), 0, "{}", c.name);
            assert_eq!((m[0], m[1]), (c.icmp_type, c.code));
            assert_eq!(u16::from_be_bytes([m[28], m[29]]), 4242);
            assert_eq!(u16::from_be_bytes([m[30], m[31]]), 9);
        }
        let frag = build_v4(&CLASSES_V4[4], victim, dest);
        assert_eq!(u16::from_be_bytes([frag[6], frag[7]]), 1280);
    }
}
