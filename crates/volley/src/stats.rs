//! Per-socket statistics: what the datapath did, counted per call (never per
//! datagram) in relaxed atomics, read as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::IcmpKind;

/// A snapshot of one socket's counters since it was opened or adopted
/// ([`crate::Socket::stats`], [`crate::Datapath::stats`]; volley-tokio's
/// sockets, `DatagramStream`, `SendQueue` and the quinn socket drive the
/// same counters).
///
/// Counted per call, not per datagram; each field is exact on its own, and
/// a snapshot taken while another thread sends or receives may mix counts
/// from before and after one call. Syscalls per 1000 datagrams, the figure
/// batching exists to cut, is [`Stats::send_syscalls_per_1000`] /
/// [`Stats::recv_syscalls_per_1000`].
///
/// ```
/// use std::time::Duration;
/// use volley::{RecvBatch, Socket, Transmit};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sock = Socket::bind("127.0.0.1:0".parse()?)?;
/// let train = [7u8; 3000];
/// sock.send_batch_blocking(&[Transmit::new(sock.local_addr()?, &train).with_segment_size(1000)], Duration::from_secs(5))?;
/// let mut batch = RecvBatch::new();
/// let mut got = 0;
/// while got < 3 {
///     got += sock.recv_batch_blocking(&mut batch, Duration::from_secs(5))?;
/// }
/// let s = sock.stats();
/// assert_eq!((s.datagrams_sent, s.bytes_sent), (3, 3000));
/// assert_eq!((s.datagrams_received, s.bytes_received), (3, 3000));
/// assert!(s.send_syscalls >= 1 && s.recv_syscalls >= 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams the kernel accepted (a GSO train counts its segments).
    pub datagrams_sent: u64,
    /// Payload bytes the kernel accepted.
    pub bytes_sent: u64,
    /// Send syscalls made (`sendmmsg`, or one `sendmsg` per message),
    /// failed ones included.
    pub send_syscalls: u64,
    /// Messages sent as one GSO train (`UDP_SEGMENT`, more than one segment).
    pub gso_trains: u64,
    /// Datagrams sent inside those trains.
    pub gso_segments: u64,
    /// Send calls that found the socket buffer full (`WouldBlock`).
    pub send_would_block: u64,
    /// Sends that failed with an error other than `WouldBlock` (not
    /// counting a stale ICMP error the retry went past).
    pub send_errors: u64,
    /// Datagrams received (a GRO train counts its segments).
    pub datagrams_received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Kernel messages received (a GRO train is one).
    pub messages_received: u64,
    /// Receive syscalls made (`recvmmsg`, or one `recvmsg` per message),
    /// including those that found the queue empty.
    pub recv_syscalls: u64,
    /// Messages that held a GRO train of more than one datagram.
    pub gro_messages: u64,
    /// Receive calls that found nothing queued (`WouldBlock`).
    pub recv_would_block: u64,
    /// Datagrams cut short because the buffer was too small (`MSG_TRUNC`).
    pub truncated: u64,
    /// The kernel's count of packets it dropped for a full receive buffer
    /// (`SO_RXQ_OVFL`), as last reported (see [`crate::RecvMeta::drops`]).
    pub kernel_drops: u64,
    /// ICMP errors seen, by kind.
    pub icmp: IcmpCounts,
    /// When GSO was turned off at run time (a send failed with `EIO` or a
    /// GSO-only `EINVAL`), if it was.
    pub gso_disabled_at: Option<SystemTime>,
    /// When `recvmmsg`/`sendmmsg` were turned off at run time (refused by a
    /// seccomp filter), if they were.
    pub mmsg_disabled_at: Option<SystemTime>,
    /// When per-datagram TOS control messages (ECN/DSCP) were turned off
    /// because the kernel refused one, if they were.
    pub tos_cmsg_disabled_at: Option<SystemTime>,
}

impl Stats {
    /// Send syscalls per 1000 datagrams sent (`None` before the first).
    ///
    /// ```
    /// let mut s = volley::Stats::default();
    /// assert_eq!(s.send_syscalls_per_1000(), None);
    /// (s.datagrams_sent, s.send_syscalls) = (640, 10);
    /// assert_eq!(s.send_syscalls_per_1000(), Some(15.625));
    /// ```
    pub fn send_syscalls_per_1000(&self) -> Option<f64> {
        per_1000(self.send_syscalls, self.datagrams_sent)
    }

    /// Receive syscalls per 1000 datagrams received (`None` before the
    /// first).
    ///
    /// ```
    /// assert_eq!(volley::Stats::default().recv_syscalls_per_1000(), None);
    /// ```
    pub fn recv_syscalls_per_1000(&self) -> Option<f64> {
        per_1000(self.recv_syscalls, self.datagrams_received)
    }
}

fn per_1000(calls: u64, datagrams: u64) -> Option<f64> {
    (datagrams > 0).then(|| calls as f64 * 1000.0 / datagrams as f64)
}

/// ICMP and ICMPv6 errors a socket saw, by [`IcmpKind`] (from the error
/// queue with `Config::recv_errors`, or pending socket errors).
///
/// ```
/// let c = volley::IcmpCounts::default();
/// assert_eq!(c.total(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IcmpCounts {
    /// Port unreachable: nobody listens there.
    pub port_unreachable: u64,
    /// Host, network or protocol unreachable, or administratively prohibited.
    pub unreachable: u64,
    /// Packet too big / fragmentation needed.
    pub packet_too_big: u64,
    /// TTL / hop limit exceeded.
    pub time_exceeded: u64,
    /// Errors left pending on the socket, without error-queue details.
    pub pending: u64,
    /// Anything else.
    pub other: u64,
}

impl IcmpCounts {
    /// All kinds together.
    ///
    /// ```
    /// let mut c = volley::IcmpCounts::default();
    /// (c.port_unreachable, c.packet_too_big) = (2, 1);
    /// assert_eq!(c.total(), 3);
    /// ```
    pub fn total(&self) -> u64 {
        self.port_unreachable + self.unreachable + self.packet_too_big + self.time_exceeded + self.pending + self.other
    }
}

/// One call's worth of datapath counts, added to [`Counters`] at once.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub(crate) datagrams: u64,
    pub(crate) bytes: u64,
    /// GSO trains (send) or GRO messages (receive).
    pub(crate) trains: u64,
    /// Segments in those trains (send only).
    pub(crate) train_segments: u64,
    /// Messages (receive only).
    pub(crate) messages: u64,
    /// Truncated datagrams (receive only).
    pub(crate) truncated: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    datagrams_sent: AtomicU64,
    bytes_sent: AtomicU64,
    send_syscalls: AtomicU64,
    gso_trains: AtomicU64,
    gso_segments: AtomicU64,
    send_would_block: AtomicU64,
    send_errors: AtomicU64,
    datagrams_received: AtomicU64,
    bytes_received: AtomicU64,
    messages_received: AtomicU64,
    recv_syscalls: AtomicU64,
    gro_messages: AtomicU64,
    recv_would_block: AtomicU64,
    truncated: AtomicU64,
    kernel_drops: AtomicU64,
    icmp: [AtomicU64; 6],
}

/// Adds `n` unless it is 0 (an atomic add costs even then).
fn add(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Nanoseconds since the Unix epoch, never 0 (0 means "not set").
pub(crate) fn now_ns() -> u64 {
    let ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    u64::try_from(ns).unwrap_or(u64::MAX).max(1)
}

fn at(ns: u64) -> Option<SystemTime> {
    (ns != 0).then(|| UNIX_EPOCH + Duration::from_nanos(ns))
}

impl Counters {
    /// Send syscalls made (counted where they are made).
    pub(crate) fn send_syscalls(&self, n: u64) {
        add(&self.send_syscalls, n);
    }

    /// Receive syscalls made.
    pub(crate) fn recv_syscalls(&self, n: u64) {
        add(&self.recv_syscalls, n);
    }

    /// One send call: what the kernel took, and how it ended.
    pub(crate) fn sent(&self, t: &Tally, would_block: bool, error: bool) {
        add(&self.datagrams_sent, t.datagrams);
        add(&self.bytes_sent, t.bytes);
        add(&self.gso_trains, t.trains);
        add(&self.gso_segments, t.train_segments);
        add(&self.send_would_block, u64::from(would_block));
        add(&self.send_errors, u64::from(error));
    }

    /// One receive call.
    pub(crate) fn received(&self, t: &Tally, would_block: bool, drops: Option<u32>) {
        add(&self.datagrams_received, t.datagrams);
        add(&self.bytes_received, t.bytes);
        add(&self.messages_received, t.messages);
        add(&self.gro_messages, t.trains);
        add(&self.truncated, t.truncated);
        add(&self.recv_would_block, u64::from(would_block));
        if let Some(d) = drops {
            self.kernel_drops.fetch_max(u64::from(d), Ordering::Relaxed);
        }
    }

    /// An ICMP error entered the socket's ring (or was read past it).
    pub(crate) fn icmp(&self, kind: &IcmpKind) {
        let i = match kind {
            IcmpKind::PortUnreachable => 0,
            IcmpKind::Unreachable { .. } => 1,
            IcmpKind::PacketTooBig { .. } => 2,
            IcmpKind::TimeExceeded => 3,
            IcmpKind::Pending => 4,
            _ => 5,
        };
        self.icmp[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters, with the run-time degrades' times (`0`: never) from
    /// the capability state.
    pub(crate) fn snapshot(&self, gso_off_ns: u64, mmsg_off_ns: u64, tos_cmsg_off_ns: u64) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            datagrams_sent: get(&self.datagrams_sent),
            bytes_sent: get(&self.bytes_sent),
            send_syscalls: get(&self.send_syscalls),
            gso_trains: get(&self.gso_trains),
            gso_segments: get(&self.gso_segments),
            send_would_block: get(&self.send_would_block),
            send_errors: get(&self.send_errors),
            datagrams_received: get(&self.datagrams_received),
            bytes_received: get(&self.bytes_received),
            messages_received: get(&self.messages_received),
            recv_syscalls: get(&self.recv_syscalls),
            gro_messages: get(&self.gro_messages),
            recv_would_block: get(&self.recv_would_block),
            truncated: get(&self.truncated),
            kernel_drops: get(&self.kernel_drops),
            icmp: IcmpCounts {
                port_unreachable: get(&self.icmp[0]),
                unreachable: get(&self.icmp[1]),
                packet_too_big: get(&self.icmp[2]),
                time_exceeded: get(&self.icmp[3]),
                pending: get(&self.icmp[4]),
                other: get(&self.icmp[5]),
            },
            gso_disabled_at: at(gso_off_ns),
            mmsg_disabled_at: at(mmsg_off_ns),
            tos_cmsg_disabled_at: at(tos_cmsg_off_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_add_up() {
        let c = Counters::default();
        c.send_syscalls(1);
        c.recv_syscalls(3);
        c.sent(
            &Tally { datagrams: 64, bytes: 64_000, trains: 1, train_segments: 64, ..Tally::default() },
            false,
            false,
        );
        c.sent(&Tally::default(), true, false);
        c.received(
            &Tally { datagrams: 40, bytes: 48_000, trains: 1, messages: 2, truncated: 1, ..Tally::default() },
            false,
            Some(7),
        );
        c.received(&Tally::default(), true, Some(3));
        // Each kind a different number of times (1 to 6), so that every
        // kind lands in its own field and every term of total() counts.
        let kinds = [
            IcmpKind::PortUnreachable,
            IcmpKind::Unreachable { code: 1 },
            IcmpKind::PacketTooBig { mtu: 1280 },
            IcmpKind::TimeExceeded,
            IcmpKind::Pending,
            IcmpKind::Other { origin: 2, icmp_type: 5, code: 0 },
        ];
        for (n, kind) in kinds.iter().enumerate() {
            for _ in 0..=n {
                c.icmp(kind);
            }
        }
        let before = SystemTime::now();
        let s = c.snapshot(now_ns(), 0, 0);
        assert_eq!(
            (s.datagrams_sent, s.bytes_sent, s.send_syscalls, s.gso_trains, s.gso_segments),
            (64, 64_000, 1, 1, 64)
        );
        assert_eq!(s.send_would_block, 1);
        assert_eq!((s.datagrams_received, s.bytes_received, s.recv_syscalls, s.messages_received), (40, 48_000, 3, 2));
        assert_eq!((s.gro_messages, s.truncated, s.recv_would_block), (1, 1, 1));
        assert_eq!(s.kernel_drops, 7, "the kernel's counter only grows: the highest seen");
        let i = s.icmp;
        assert_eq!(
            [i.port_unreachable, i.unreachable, i.packet_too_big, i.time_exceeded, i.pending, i.other],
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(i.total(), 21);
        let off = s.gso_disabled_at.expect("set");
        assert!(off >= before - Duration::from_millis(1) && off <= SystemTime::now(), "{off:?} is now");
        assert!(s.mmsg_disabled_at.is_none());
        assert_eq!(s.send_syscalls_per_1000(), Some(1000.0 / 64.0));
        assert_eq!(s.recv_syscalls_per_1000(), Some(75.0));
    }
}
