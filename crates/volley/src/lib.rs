//! volley: UDP at batch speed, with the metadata transports need.
//!
//! A [`Socket`] is a non-blocking UDP socket registered with [mio] that
//! receives with `recvmmsg` and sends with `sendmmsg`, segments sends with
//! GSO (`UDP_SEGMENT`) and receives with GRO (`UDP_GRO`). Each received
//! datagram comes with a [`RecvMeta`]: source, the local address it was sent
//! to (`dst_ip`, from pktinfo), interface index, ECN codepoint, DSCP, TTL,
//! GRO stride and a truncation flag, and on request the original
//! destination behind a TPROXY rule ([`RecvMeta::orig_dst`]). Each [`Transmit`] carries its own
//! destination, ECN, DSCP, source address and GSO stride.
//!
//! ```
//! use std::time::Duration;
//! use volley::{Ecn, RecvBatch, Socket, Transmit};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Socket::bind("0.0.0.0:0".parse()?)?;
//! let client = Socket::bind("127.0.0.1:0".parse()?)?;
//! let port = server.local_addr()?.port();
//!
//! // Ten 1200-byte datagrams in one GSO send, marked ECT(0).
//! let payload = vec![0xab; 12_000];
//! let t = Transmit::new(([127, 0, 0, 2], port).into(), &payload)
//!     .with_segment_size(1200)
//!     .with_ecn(Ecn::Ect0);
//! client.send_batch_blocking(&[t], Duration::from_secs(5))?;
//!
//! let mut batch = RecvBatch::new();
//! let mut seen = 0;
//! while seen < 10 {
//!     server.recv_batch_blocking(&mut batch, Duration::from_secs(5))?;
//!     for (meta, payload) in batch.iter() {
//!         assert_eq!(payload.len(), 1200);
//!         assert_eq!(meta.ecn, Ecn::Ect0);
//!         assert_eq!(meta.dst_ip, Some("127.0.0.2".parse()?));
//!         seen += 1;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # How it degrades
//!
//! Support is probed once per socket at bind and shown by
//! [`Socket::capabilities`]. A missing feature means a slower path, never
//! wrong data: without GSO a multi-segment [`Transmit`] goes out as one
//! message per segment; without GRO every datagram fills its own slot;
//! without `recvmmsg`/`sendmmsg` (seccomp answers `ENOSYS`/`EPERM`) the
//! socket switches to `recvmsg`/`sendmsg` at run time; if a GSO send fails
//! with `EIO` the same transmits are resent unsegmented and GSO is turned off
//! for the socket, with one `tracing` warning. [`Backend::Portable`] (or the
//! environment variable `VOLLEY_BACKEND=portable`) forces the portable path
//! everywhere, which is what non-Linux Unixes use.
//!
//! # Address policy
//!
//! One rule everywhere: IPv4 is IPv4. On a dual-stack IPv6 socket
//! (`[::]` with [`Config::ipv6_only`]`(false)`, the default), IPv4-mapped
//! addresses (`::ffff:a.b.c.d`) are reported as plain IPv4 in
//! [`RecvMeta::src`] and [`RecvMeta::dst_ip`], and plain IPv4 destinations
//! and sources in a [`Transmit`] are mapped for the kernel. Code written for
//! an IPv4 socket works unchanged on a dual-stack one.
//!
//! # Errors
//!
//! Bad input is rejected with a typed [`Error`] naming the field and value
//! (see [`InvalidTransmit`]), before any syscall; nothing is dropped
//! silently: [`Socket::try_send_batch`] reports how many transmits went out
//! so the caller can retry the rest.
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod batch;
mod capabilities;
mod config;
mod datapath;
mod error;
mod errqueue;
mod meta;
mod multicast;
pub mod os;
mod plan;
mod socket;
mod stats;
mod sys;
mod validate;

/// Internals exposed to the fuzz targets (`fuzz/`) and property tests.
/// Not part of the API: enabled by the `fuzzing` feature only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes arbitrary control-message bytes (must never panic).
    pub fn decode_control(bytes: &[u8]) {
        crate::sys::cmsg::fuzzing::decode_control(bytes);
    }

    /// Splits a slot of `data` (see `batch::fuzz_split`), asserting the
    /// splitter's invariants; returns the datagram count.
    pub fn split(data: &[u8], len: usize, stride: usize, truncated: bool) -> usize {
        crate::batch::fuzz_split(data, len, stride, truncated)
    }

    /// Typical receive control bytes, as the kernel writes them for one
    /// datagram on an IPv4 socket: pktinfo, TOS, TTL, UDP_GRO, SO_RXQ_OVFL,
    /// IP_ORIGDSTADDR.
    pub fn sample_recv_control() -> Vec<u8> {
        crate::sys::cmsg::fuzzing::sample_recv_control()
    }

    /// Encodes the send-side control messages of one transmit (TOS,
    /// pktinfo, UDP_SEGMENT) and returns their length.
    pub fn encode_send(tos: u8, src_ip: std::net::IpAddr, segment_size: u16) -> usize {
        crate::sys::cmsg::fuzzing::encode_send(tos, src_ip, segment_size)
    }

    /// Fills `batch` with one received message: `data` as a GRO train of
    /// stride `stride`, as the receive path would leave it.
    pub fn fill_batch(batch: &mut crate::RecvBatch, data: &[u8], stride: usize) {
        crate::batch::fuzz_fill(batch, data, stride);
    }

    /// Encodes `addr` as an `IP_ORIGDSTADDR` / `IPV6_ORIGDSTADDR` message
    /// (after an `IP_TOS` one if `prefix`) and decodes it back; `None` off
    /// Linux.
    pub fn orig_dst_round_trip(addr: std::net::SocketAddr, prefix: bool) -> Option<std::net::SocketAddr> {
        crate::sys::cmsg::fuzzing::orig_dst_round_trip(addr, prefix)
    }

    /// Encodes per-datagram send options and decodes them back.
    pub fn round_trip(
        tos: Option<u8>,
        src_ip: Option<std::net::IpAddr>,
        segment_size: Option<u16>,
        txtime: Option<u64>,
        v4: bool,
    ) -> bool {
        crate::sys::cmsg::fuzzing::round_trip(tos, src_ip, segment_size, txtime, v4)
    }
}

pub use batch::{Datagrams, RecvBatch, DEFAULT_SLOTS, DEFAULT_SLOT_LEN, MAX_SLOTS, MAX_SLOT_LEN};
pub use capabilities::Capabilities;
pub use config::{Backend, Config, Pmtud, Steering};
pub use datapath::{Datapath, SocketRef};
pub use error::{is_icmp_error, AdoptError, BindError, Error, InvalidTransmit, OptionError, SocketOption};
pub use meta::{Dscp, Ecn, IcmpError, IcmpKind, RecvMeta, Segments, Sent, Transmit, MAX_PAYLOAD_V4, MAX_PAYLOAD_V6};
pub use multicast::{MulticastError, MulticastInterface};
pub use socket::{BufferSize, Socket};
pub use stats::{IcmpCounts, Stats};
