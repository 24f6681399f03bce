//! Checking a [`Transmit`] against the socket before any syscall: pure
//! logic, no OS calls, so it is unit-tested without sockets.

use std::net::{SocketAddr, SocketAddrV6};

use crate::meta::{MAX_PAYLOAD_V4, MAX_PAYLOAD_V6};
use crate::{Dscp, InvalidTransmit, Transmit};

/// Which IP versions a socket carries: an IPv4 socket `v4` only, an
/// IPv6-only socket `v6` only, a dual-stack `[::]` socket both. Options
/// with a per-family flavour (TOS, PMTUD, multicast) are set on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Families {
    pub(crate) v4: bool,
    pub(crate) v6: bool,
}

/// What a transmit may ask of this socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The IP versions the socket carries.
    pub(crate) families: Families,
    /// `SO_TXTIME` is on: a transmit may carry a departure time.
    pub(crate) txtime: bool,
    /// Most segments one GSO send may carry (1: GSO off, trains are cut).
    pub(crate) gso_max: usize,
    /// The stack applies a per-datagram source address / interface.
    pub(crate) src: bool,
    /// The platform can choose the outgoing interface of an IPv4 datagram
    /// (`IP_PKTINFO`'s `ipi_ifindex`); FreeBSD cannot (`IP_SENDSRCADDR`
    /// carries only an address).
    pub(crate) ifindex_v4: bool,
    /// The platform marks a DSCP per datagram (a TOS control message);
    /// Windows does not: only the socket's flow is marked.
    pub(crate) dscp_per_datagram: bool,
    /// The DSCP the socket marks (its socket-level TOS).
    pub(crate) socket_dscp: Dscp,
}

impl Limits {
    /// Whether this platform's IPv4 send path takes an interface index
    /// (`IP_PKTINFO`: Linux, Android, Apple, Windows).
    pub(crate) const IFINDEX_V4: bool = cfg!(any(has_pktinfo_v4, windows));
    /// Whether this platform marks a DSCP per datagram: every Unix;
    /// Windows ignores a program's TOS and marks per qWAVE flow.
    pub(crate) const DSCP_PER_DATAGRAM: bool = cfg!(not(windows));
}

/// A transmit that passed [`validate`]: where it goes, as the socket must
/// see it, and whether its path is IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The destination as written into `msg_name` (IPv4-mapped on a
    /// dual-stack socket).
    pub(crate) wire: SocketAddr,
    /// The path is IPv4 (plain, or mapped on a dual-stack socket).
    pub(crate) v4: bool,
}

/// Checks one transmit against the socket's [`Limits`].
pub(crate) fn validate(t: &Transmit<'_>, limits: Limits) -> Result<Checked, InvalidTransmit> {
    if t.segment_size == Some(0) {
        return Err(InvalidTransmit::SegmentSizeZero);
    }
    if t.destination.port() == 0 {
        return Err(InvalidTransmit::PortZero { destination: t.destination });
    }
    if t.txtime.is_some() && !limits.txtime {
        return Err(InvalidTransmit::TxtimeNotEnabled);
    }
    // Windows takes ECN per datagram (IP_ECN) but no DSCP: one other than
    // what the socket's flow marks is refused, not silently dropped.
    if let Some(dscp) = t.dscp.filter(|&d| !limits.dscp_per_datagram && d != limits.socket_dscp) {
        return Err(InvalidTransmit::DscpUnsupported { dscp });
    }
    // Normalise IPv4-mapped destinations to IPv4, then map for the socket.
    let dest = crate::meta::canonical(t.destination);
    let v4_path = dest.is_ipv4();
    let fam = limits.families;
    let wire = match dest {
        SocketAddr::V4(_) if !fam.v6 => dest,
        SocketAddr::V6(_) if fam.v6 => dest,
        SocketAddr::V4(a) if fam.v4 => SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0)),
        _ => return Err(InvalidTransmit::AddressFamily { destination: t.destination }),
    };
    if (t.src_ip.is_some() || t.src_ifindex.is_some()) && !limits.src {
        return Err(InvalidTransmit::SourceUnsupported);
    }
    if let Some(index) = t.src_ifindex {
        // pktinfo's interface index is a C int for both families.
        if i32::try_from(index).is_err() {
            return Err(InvalidTransmit::SrcIfindexOutOfRange { src_ifindex: index });
        }
        // An index this platform cannot apply is refused, never ignored
        // (0, "no interface", asks for nothing).
        if v4_path && index != 0 && !limits.ifindex_v4 {
            return Err(InvalidTransmit::SrcIfindexUnsupported { src_ifindex: index });
        }
    }
    if let Some(src) = t.src_ip {
        if src.to_canonical().is_ipv4() != v4_path {
            return Err(InvalidTransmit::SourceFamily { src_ip: src });
        }
    }
    let max = if v4_path { MAX_PAYLOAD_V4 } else { MAX_PAYLOAD_V6 };
    let gso_max = limits.gso_max;
    match t.gso_stride() {
        None if t.contents.len() > max => {
            return Err(InvalidTransmit::DatagramTooLarge { field: "contents", size: t.contents.len(), max });
        }
        Some(s) if s > max => return Err(InvalidTransmit::DatagramTooLarge { field: "segment_size", size: s, max }),
        Some(_) if t.contents.len() > max => {
            return Err(InvalidTransmit::ContentsTooLarge { size: t.contents.len(), max });
        }
        Some(_) if gso_max > 1 && t.segments() > gso_max => {
            return Err(InvalidTransmit::TooManySegments { segments: t.segments(), max: gso_max });
        }
        _ => {}
    }
    Ok(Checked { wire, v4: v4_path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    const V4: Families = Families { v4: true, v6: false };
    const DUAL: Families = Families { v4: true, v6: true };
    const V6: Families = Families { v4: false, v6: true };

    fn limits(families: Families) -> Limits {
        Limits {
            families,
            txtime: false,
            gso_max: 64,
            src: true,
            ifindex_v4: true,
            dscp_per_datagram: true,
            socket_dscp: Dscp::default(),
        }
    }

    /// Where DSCP is marked per flow (Windows), a transmit may name only the
    /// socket's DSCP: anything else is refused, never sent with another mark.
    #[test]
    fn a_dscp_other_than_the_sockets_is_refused_where_marking_is_per_flow() {
        let to = "127.0.0.1:9".parse().unwrap();
        let per_flow = |socket_dscp| Limits { dscp_per_datagram: false, socket_dscp, ..limits(V4) };
        let ef = Transmit::new(to, b"x").with_dscp(Dscp::EF);
        assert_eq!(validate(&ef, per_flow(Dscp::default())), Err(InvalidTransmit::DscpUnsupported { dscp: Dscp::EF }));
        assert!(validate(&ef, per_flow(Dscp::EF)).is_ok(), "the socket's own DSCP goes");
        let default = Transmit::new(to, b"x").with_dscp(Dscp::default());
        assert!(validate(&default, per_flow(Dscp::default())).is_ok());
        assert_eq!(
            validate(&default, per_flow(Dscp::EF)),
            Err(InvalidTransmit::DscpUnsupported { dscp: Dscp::default() }),
            "0 on an EF socket would leave marked EF"
        );
        assert!(validate(&Transmit::new(to, b"x"), per_flow(Dscp::EF)).is_ok(), "no DSCP asked: the socket's");
        assert!(validate(&ef, limits(V4)).is_ok(), "per datagram: any DSCP");
        assert_eq!(Limits::DSCP_PER_DATAGRAM, cfg!(unix));
    }

    /// A GSO train's contents may be exactly the largest UDP payload of
    /// their family; one byte more is `ContentsTooLarge`.
    #[test]
    fn a_train_of_exactly_the_largest_payload_is_accepted() {
        for (to, families, max) in [
            ("127.0.0.1:9", V4, MAX_PAYLOAD_V4),
            ("[::1]:9", V6, MAX_PAYLOAD_V6),
            ("127.0.0.1:9", DUAL, MAX_PAYLOAD_V4),
        ] {
            let to = to.parse().unwrap();
            let at_max = vec![0u8; max];
            assert!(validate(&Transmit::new(to, &at_max).with_segment_size(1200), limits(families)).is_ok(), "{to}");
            let over = vec![0u8; max + 1];
            assert_eq!(
                validate(&Transmit::new(to, &over).with_segment_size(1200), limits(families)),
                Err(InvalidTransmit::ContentsTooLarge { size: max + 1, max }),
                "{to}"
            );
        }
    }

    /// A stack that ignores a per-datagram source (Wine) refuses a transmit
    /// that names one, rather than sending it from another address.
    #[test]
    fn a_source_is_refused_where_the_stack_ignores_it() {
        let no_src = Limits { src: false, ..limits(V4) };
        let to = "127.0.0.1:9".parse().unwrap();
        assert!(validate(&Transmit::new(to, b"x"), no_src).is_ok());
        let with_ip = Transmit::new(to, b"x").with_src_ip("127.0.0.1".parse().unwrap());
        assert_eq!(validate(&with_ip, no_src), Err(InvalidTransmit::SourceUnsupported));
        let mut with_if = Transmit::new(to, b"x");
        with_if.src_ifindex = Some(1);
        assert_eq!(validate(&with_if, no_src), Err(InvalidTransmit::SourceUnsupported));
        assert!(validate(&with_ip, limits(V4)).is_ok());
    }

    #[test]
    fn src_ifindex_on_ipv4_is_refused_where_the_platform_cannot_apply_it() {
        let payload = [0u8; 10];
        let no_v4 = |fam| Limits { ifindex_v4: false, ..limits(fam) };
        for (fam, to) in [(V4, "10.0.0.1:9"), (DUAL, "10.0.0.1:9"), (DUAL, "[::ffff:10.0.0.1]:9")] {
            let t = Transmit::new(to.parse().unwrap(), &payload).with_src_ifindex(3);
            assert_eq!(
                validate(&t, no_v4(fam)).unwrap_err(),
                InvalidTransmit::SrcIfindexUnsupported { src_ifindex: 3 },
                "{to}"
            );
            assert!(validate(&t, limits(fam)).is_ok(), "{to}: applied where IP_PKTINFO exists");
            // Index 0 asks for no interface: nothing to refuse.
            let zero = Transmit::new(to.parse().unwrap(), &payload).with_src_ifindex(0);
            assert!(validate(&zero, no_v4(fam)).is_ok(), "{to}");
        }
        // IPv6 destinations take the index everywhere (IPV6_PKTINFO).
        let v6 = Transmit::new("[fd00::1]:9".parse().unwrap(), &payload).with_src_ifindex(3);
        assert!(validate(&v6, no_v4(DUAL)).is_ok());
        let e = Error::from(InvalidTransmit::SrcIfindexUnsupported { src_ifindex: 3 });
        assert!(e.to_string().contains("src_ifindex 3"), "{e}");
        assert_eq!(
            Limits::IFINDEX_V4,
            cfg!(any(target_os = "linux", target_os = "android", target_vendor = "apple", windows))
        );
    }

    #[test]
    fn src_ifindex_beyond_a_c_int_is_refused_for_both_families() {
        let payload = [0u8; 10];
        for (fam, to) in [(V4, "10.0.0.1:9"), (DUAL, "[fd00::1]:9"), (DUAL, "10.0.0.1:9")] {
            let over = Transmit::new(to.parse().unwrap(), &payload).with_src_ifindex(i32::MAX as u32 + 1);
            assert_eq!(
                validate(&over, limits(fam)).unwrap_err(),
                InvalidTransmit::SrcIfindexOutOfRange { src_ifindex: i32::MAX as u32 + 1 },
                "{to}"
            );
            let max = Transmit::new(to.parse().unwrap(), &payload).with_src_ifindex(i32::MAX as u32);
            assert!(validate(&max, limits(fam)).is_ok(), "{to}: i32::MAX is a valid index");
        }
        let over = Transmit::new("10.0.0.1:9".parse().unwrap(), &payload).with_src_ifindex(u32::MAX);
        let e = Error::from(validate(&over, limits(V4)).unwrap_err());
        assert!(e.to_string().contains("src_ifindex 4294967295"), "{e}");
    }

    #[test]
    fn ipv4_goes_mapped_on_a_dual_stack_socket_and_is_refused_on_ipv6_only() {
        let t = Transmit::new("10.0.0.1:9".parse().unwrap(), b"x");
        let c = validate(&t, limits(DUAL)).unwrap();
        assert_eq!(c.wire, "[::ffff:10.0.0.1]:9".parse().unwrap());
        assert!(c.v4);
        assert_eq!(validate(&t, limits(V4)).unwrap().wire, t.destination);
        assert_eq!(
            validate(&t, limits(V6)).unwrap_err(),
            InvalidTransmit::AddressFamily { destination: t.destination }
        );
        // A mapped destination on an IPv4 socket is folded back to IPv4.
        let mapped = Transmit::new("[::ffff:10.0.0.1]:9".parse().unwrap(), b"x");
        assert_eq!(validate(&mapped, limits(V4)).unwrap().wire, "10.0.0.1:9".parse().unwrap());
    }

    #[test]
    fn sizes_ports_and_segments_are_checked() {
        let to = "10.0.0.1:9".parse().unwrap();
        let big = vec![0u8; MAX_PAYLOAD_V4 + 1];
        assert!(matches!(
            validate(&Transmit::new(to, &big), limits(V4)),
            Err(InvalidTransmit::DatagramTooLarge { field: "contents", .. })
        ));
        let zero_port = Transmit::new("10.0.0.1:0".parse().unwrap(), b"x");
        assert!(matches!(validate(&zero_port, limits(V4)), Err(InvalidTransmit::PortZero { .. })));
        let seg0 = Transmit::new(to, b"xx").with_segment_size(0);
        assert_eq!(validate(&seg0, limits(V4)), Err(InvalidTransmit::SegmentSizeZero));
        let train = vec![0u8; 65 * 10];
        let t = Transmit::new(to, &train).with_segment_size(10);
        assert_eq!(validate(&t, limits(V4)), Err(InvalidTransmit::TooManySegments { segments: 65, max: 64 }));
        // Without GSO the train is cut: any number of segments is fine.
        assert!(validate(&t, Limits { gso_max: 1, ..limits(V4) }).is_ok());
        let timed = Transmit::new(to, b"x").with_txtime(1);
        assert_eq!(validate(&timed, limits(V4)), Err(InvalidTransmit::TxtimeNotEnabled));
        assert!(validate(&timed, Limits { txtime: true, ..limits(V4) }).is_ok());
    }
}
