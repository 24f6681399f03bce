//! Property tests for the control-message codec and the GRO splitter
//! (feature `fuzzing`, which `cargo xtask ci` enables with `--all-features`).
#![cfg(feature = "fuzzing")]

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use proptest::prelude::*;
use volley::fuzzing;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 2000 }))]

    /// Any combination of per-datagram options encodes and decodes back.
    #[test]
    fn send_options_round_trip(
        v4 in any::<bool>(),
        tos in proptest::option::of(any::<u8>()),
        src in proptest::option::of(any::<bool>()),
        seg in proptest::option::of(1u16..),
        txtime in proptest::option::of(any::<u64>()),
        addr4 in any::<[u8; 4]>(),
        addr6 in any::<[u8; 16]>(),
    ) {
        let src_ip = src.map(|_| if v4 { IpAddr::from(addr4) } else { IpAddr::from(addr6) });
        prop_assert!(fuzzing::round_trip(tos, src_ip, seg, txtime, v4));
    }

    /// The original destination (`IP_ORIGDSTADDR` / `IPV6_ORIGDSTADDR`),
    /// any address and port, alone or after another message, decodes to
    /// exactly what the kernel wrote (Linux and Android; no such message
    /// elsewhere).
    #[test]
    fn orig_dst_round_trips(
        v4 in any::<bool>(),
        addr4 in any::<[u8; 4]>(),
        addr6 in any::<[u8; 16]>(),
        port in any::<u16>(),
        scope in any::<u32>(),
        prefix in any::<bool>(),
    ) {
        let addr = if v4 {
            SocketAddr::from((addr4, port))
        } else {
            SocketAddrV6::new(addr6.into(), port, 0, scope).into()
        };
        let back = fuzzing::orig_dst_round_trip(addr, prefix);
        if cfg!(any(target_os = "linux", target_os = "android")) {
            prop_assert_eq!(back, Some(addr));
        } else {
            prop_assert_eq!(back, None);
        }
    }

    /// Decoding arbitrary bytes never panics or reads out of bounds.
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::decode_control(&bytes);
    }

    /// The splitter tiles any slot exactly (invariants asserted inside).
    #[test]
    fn split_tiles_the_slot(
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        len in 0usize..5000,
        stride in 0usize..1500,
        truncated in any::<bool>(),
    ) {
        let n = fuzzing::split(&data, len, stride, truncated);
        prop_assert!(n >= 1);
    }
}
