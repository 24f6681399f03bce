//! Publishes a volley socket's [`volley::Stats`] through the
//! [`metrics`](https://docs.rs/metrics) facade, so whatever exporter the
//! application installed (Prometheus, StatsD, OpenTelemetry, ...) carries
//! them.
//!
//! A separate crate rather than a feature of the core: the core stays
//! runtime- and facade-agnostic (its dependency tree is mio, socket2, libc,
//! tracing), and the periodic helper for tokio needs `volley-tokio`, which
//! the core cannot depend on.
//!
//! # How it is driven
//!
//! [`SocketMetrics::new`] registers one handle per metric with the recorder
//! installed at that moment (install the exporter first); [`SocketMetrics::record`]
//! then publishes a [`Stats`] snapshot: counters with `absolute` (the
//! snapshot is cumulative and monotone, so a missed or repeated call never
//! double-counts), degrade times as gauges. `record` takes no lock of ours
//! and allocates nothing; call it from the event loop's timer (every few
//! seconds is plenty: scrapes are rarely more frequent). With the `tokio`
//! feature, [`spawn_recorder`] runs that loop as a task for a
//! `volley_tokio::UdpSocket`.
//!
//! ```
//! use volley_metrics::SocketMetrics;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sock = volley::Socket::bind("127.0.0.1:0".parse()?)?;
//! // After installing an exporter (e.g. metrics_exporter_prometheus::PrometheusBuilder::install):
//! let metrics = SocketMetrics::new("game", sock.local_addr()?);
//! // ... in the event loop, every few seconds:
//! metrics.record(&sock.stats());
//! # Ok(()) }
//! ```
//!
//! # The metrics
//!
//! Every series carries the labels `socket` (the caller's name) and
//! `local_addr` (the bound address, e.g. `0.0.0.0:4433`). Counters:
//!
//! | Metric | [`Stats`] field |
//! |---|---|
//! | `volley_datagrams_sent_total` | `datagrams_sent` |
//! | `volley_sent_bytes_total` | `bytes_sent` |
//! | `volley_send_syscalls_total` | `send_syscalls` |
//! | `volley_gso_trains_total` | `gso_trains` |
//! | `volley_gso_segments_total` | `gso_segments` |
//! | `volley_send_would_block_total` | `send_would_block` |
//! | `volley_send_errors_total` | `send_errors` |
//! | `volley_datagrams_received_total` | `datagrams_received` |
//! | `volley_received_bytes_total` | `bytes_received` |
//! | `volley_messages_received_total` | `messages_received` |
//! | `volley_recv_syscalls_total` | `recv_syscalls` |
//! | `volley_gro_messages_total` | `gro_messages` |
//! | `volley_recv_would_block_total` | `recv_would_block` |
//! | `volley_truncated_datagrams_total` | `truncated` |
//! | `volley_kernel_drops_total` | `kernel_drops` |
//! | `volley_icmp_errors_total{kind=...}` | `icmp` (`port_unreachable`, `unreachable`, `packet_too_big`, `time_exceeded`, `pending`, `other`) |
//!
//! Gauges, the Unix time in seconds at which the datapath turned a feature
//! off, or 0 while it is on: `volley_gso_disabled_timestamp_seconds`,
//! `volley_mmsg_disabled_timestamp_seconds`,
//! `volley_tos_cmsg_disabled_timestamp_seconds`. Alert on `> 0`
//! (docs/production.md says what each means and what to do).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Label, Unit};
pub use volley::Stats;

/// The counters, in the order of [`SocketMetrics::counters`]: name, unit,
/// description.
const COUNTERS: [(&str, Unit, &str); 15] = [
    ("volley_datagrams_sent_total", Unit::Count, "Datagrams the kernel accepted (a GSO train counts its segments)."),
    ("volley_sent_bytes_total", Unit::Bytes, "Payload bytes the kernel accepted."),
    ("volley_send_syscalls_total", Unit::Count, "Send syscalls made (sendmmsg, or one sendmsg per message)."),
    ("volley_gso_trains_total", Unit::Count, "Messages sent as one GSO train of more than one segment."),
    ("volley_gso_segments_total", Unit::Count, "Datagrams sent inside GSO trains."),
    ("volley_send_would_block_total", Unit::Count, "Send calls that found the socket buffer full."),
    ("volley_send_errors_total", Unit::Count, "Sends that failed with an error other than WouldBlock."),
    ("volley_datagrams_received_total", Unit::Count, "Datagrams received (a GRO train counts its segments)."),
    ("volley_received_bytes_total", Unit::Bytes, "Payload bytes received."),
    ("volley_messages_received_total", Unit::Count, "Kernel messages received (a GRO train is one)."),
    ("volley_recv_syscalls_total", Unit::Count, "Receive syscalls made, including those that found the queue empty."),
    ("volley_gro_messages_total", Unit::Count, "Received messages that held a GRO train of more than one datagram."),
    ("volley_recv_would_block_total", Unit::Count, "Receive calls that found nothing queued."),
    ("volley_truncated_datagrams_total", Unit::Count, "Datagrams cut short because the receive buffer was too small."),
    (
        "volley_kernel_drops_total",
        Unit::Count,
        "Packets the kernel dropped for a full receive buffer (SO_RXQ_OVFL), as last reported.",
    ),
];

/// The ICMP counter and its `kind` label values, in [`icmp_values`] order.
const ICMP: &str = "volley_icmp_errors_total";
const ICMP_KINDS: [&str; 6] =
    ["port_unreachable", "unreachable", "packet_too_big", "time_exceeded", "pending", "other"];

/// The degrade gauges, in [`degrade_times`] order.
const GAUGES: [(&str, &str); 3] = [
    (
        "volley_gso_disabled_timestamp_seconds",
        "Unix time at which GSO was turned off after a send failed with EIO (or a GSO-only EINVAL); 0 while on.",
    ),
    (
        "volley_mmsg_disabled_timestamp_seconds",
        "Unix time at which recvmmsg/sendmmsg were turned off (refused by seccomp); 0 while on.",
    ),
    (
        "volley_tos_cmsg_disabled_timestamp_seconds",
        "Unix time at which per-datagram TOS control messages (ECN/DSCP) were turned off; 0 while on.",
    ),
];

fn counter_values(s: &Stats) -> [u64; 15] {
    [
        s.datagrams_sent,
        s.bytes_sent,
        s.send_syscalls,
        s.gso_trains,
        s.gso_segments,
        s.send_would_block,
        s.send_errors,
        s.datagrams_received,
        s.bytes_received,
        s.messages_received,
        s.recv_syscalls,
        s.gro_messages,
        s.recv_would_block,
        s.truncated,
        s.kernel_drops,
    ]
}

fn icmp_values(s: &Stats) -> [u64; 6] {
    let i = &s.icmp;
    [i.port_unreachable, i.unreachable, i.packet_too_big, i.time_exceeded, i.pending, i.other]
}

fn degrade_times(s: &Stats) -> [Option<SystemTime>; 3] {
    [s.gso_disabled_at, s.mmsg_disabled_at, s.tos_cmsg_disabled_at]
}

/// Seconds since the Unix epoch, 0 for "never" (or a clock before 1970).
fn unix_seconds(t: Option<SystemTime>) -> f64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0.0, |d| d.as_secs_f64())
}

/// Describes every volley metric (help text and unit) to the installed
/// recorder; [`SocketMetrics::new`] calls it, so calling it yourself is only
/// useful to have the descriptions before any socket exists.
///
/// ```
/// volley_metrics::describe();
/// ```
pub fn describe() {
    for (name, unit, help) in COUNTERS {
        metrics::describe_counter!(name, unit, help);
    }
    metrics::describe_counter!(ICMP, Unit::Count, "ICMP / ICMPv6 errors the socket saw, by kind.");
    for (name, help) in GAUGES {
        metrics::describe_gauge!(name, Unit::Seconds, help);
    }
}

/// One socket's metric handles, registered once; [`SocketMetrics::record`]
/// publishes a [`Stats`] snapshot through them.
///
/// The handles belong to the recorder that was installed when the
/// `SocketMetrics` was made: install the exporter first (before that,
/// `metrics` hands out no-op handles and nothing would be exported).
/// Several sockets (one per core) each get their own `SocketMetrics`, told
/// apart by the `socket` label, or by `local_addr` when their addresses
/// differ.
///
/// ```
/// use volley_metrics::SocketMetrics;
/// let mut stats = volley::Stats::default();
/// let m = SocketMetrics::new("core-0", "127.0.0.1:4433".parse().unwrap());
/// stats.datagrams_received = 10;
/// m.record(&stats);
/// assert_eq!(m.labels()[0].value(), "core-0");
/// assert_eq!(m.labels()[1].value(), "127.0.0.1:4433");
/// ```
#[derive(Debug)]
pub struct SocketMetrics {
    labels: Vec<Label>,
    counters: [Counter; 15],
    icmp: [Counter; 6],
    gauges: [Gauge; 3],
}

impl SocketMetrics {
    /// Registers the handles for a socket named `name` bound to `local_addr`
    /// (labels `socket` and `local_addr`) with the installed recorder, and
    /// describes the metrics.
    ///
    /// ```
    /// let m = volley_metrics::SocketMetrics::new("dns", "[::]:53".parse().unwrap());
    /// assert_eq!(m.labels()[1].value(), "[::]:53");
    /// ```
    pub fn new(name: impl Into<String>, local_addr: SocketAddr) -> Self {
        Self::with_labels(vec![Label::new("socket", name.into()), Label::new("local_addr", local_addr.to_string())])
    }

    /// Registers the handles with labels of your choosing (for instance a
    /// `core` label beside the address); the ICMP counter adds `kind`.
    ///
    /// ```
    /// use metrics::Label;
    /// let m = volley_metrics::SocketMetrics::with_labels(vec![Label::new("core", "3")]);
    /// assert_eq!(m.labels().len(), 1);
    /// ```
    pub fn with_labels(labels: Vec<Label>) -> Self {
        describe();
        let counters = COUNTERS.map(|(name, _, _)| metrics::counter!(name, labels.iter()));
        let icmp = ICMP_KINDS.map(|kind| {
            let mut l = labels.clone();
            l.push(Label::new("kind", kind));
            metrics::counter!(ICMP, l)
        });
        let gauges = GAUGES.map(|(name, _)| metrics::gauge!(name, labels.iter()));
        Self { labels, counters, icmp, gauges }
    }

    /// The labels every series of this socket carries.
    ///
    /// ```
    /// let m = volley_metrics::SocketMetrics::new("a", "127.0.0.1:1".parse().unwrap());
    /// assert_eq!(m.labels()[0].key(), "socket");
    /// ```
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Publishes `stats` (a snapshot from `stats()` of the socket these
    /// handles were made for): every counter set to its absolute value,
    /// every degrade gauge to its Unix time or 0. No allocation, no lock of
    /// ours (the recorder's handles are atomics in the common exporters).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sock = volley::Socket::bind("127.0.0.1:0".parse()?)?;
    /// let m = volley_metrics::SocketMetrics::new("test", sock.local_addr()?);
    /// m.record(&sock.stats());
    /// # Ok(()) }
    /// ```
    pub fn record(&self, stats: &Stats) {
        for (c, v) in self.counters.iter().zip(counter_values(stats)) {
            c.absolute(v);
        }
        for (c, v) in self.icmp.iter().zip(icmp_values(stats)) {
            c.absolute(v);
        }
        for (g, t) in self.gauges.iter().zip(degrade_times(stats)) {
            g.set(unix_seconds(t));
        }
    }
}

/// Spawns a task on the current tokio runtime that records `socket`'s
/// statistics every `period` (and once at the start) under the labels of
/// [`SocketMetrics::new`]. It holds only a weak reference: it ends, after a
/// last record, once the socket is dropped. Abort the handle to stop it
/// earlier. A zero `period` is taken as one second.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let sock = Arc::new(volley_tokio::UdpSocket::bind("127.0.0.1:0".parse().unwrap())?);
/// let task = volley_metrics::spawn_recorder("echo", &sock, Duration::from_secs(5))?;
/// drop(sock);
/// task.await.unwrap(); // ends once the socket is gone
/// # Ok(()) }
/// ```
///
/// # Errors
/// Reading the socket's local address failed, or there is no tokio
/// runtime to spawn on (`ErrorKind::Other`, where `tokio::spawn` would
/// panic).
#[cfg(feature = "tokio")]
pub fn spawn_recorder(
    name: impl Into<String>,
    socket: &std::sync::Arc<volley_tokio::UdpSocket>,
    period: std::time::Duration,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
    let metrics = SocketMetrics::new(name, socket.local_addr()?);
    let weak = std::sync::Arc::downgrade(socket);
    let period = if period.is_zero() { std::time::Duration::from_secs(1) } else { period };
    Ok(runtime.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Stats::default();
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(sock) => {
                    last = sock.stats();
                    metrics.record(&last);
                }
                None => {
                    // The socket is gone: its final counters stay exported.
                    metrics.record(&last);
                    return;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stats_field_has_a_metric() {
        // Distinct values per field: a swapped table entry would show.
        let mut s = Stats::default();
        let fields = [
            &mut s.datagrams_sent,
            &mut s.bytes_sent,
            &mut s.send_syscalls,
            &mut s.gso_trains,
            &mut s.gso_segments,
            &mut s.send_would_block,
            &mut s.send_errors,
            &mut s.datagrams_received,
            &mut s.bytes_received,
            &mut s.messages_received,
            &mut s.recv_syscalls,
            &mut s.gro_messages,
            &mut s.recv_would_block,
            &mut s.truncated,
            &mut s.kernel_drops,
        ];
        for (i, f) in fields.into_iter().enumerate() {
            *f = i as u64 + 1;
        }
        assert_eq!(counter_values(&s), std::array::from_fn(|i| i as u64 + 1));
        s.icmp.time_exceeded = 9;
        assert_eq!(icmp_values(&s)[ICMP_KINDS.iter().position(|k| *k == "time_exceeded").unwrap()], 9);
        let names: std::collections::HashSet<_> = COUNTERS.iter().map(|c| c.0).collect();
        assert_eq!(names.len(), COUNTERS.len());
        assert!(COUNTERS.iter().all(|c| c.0.starts_with("volley_") && c.0.ends_with("_total")));
    }

    #[test]
    fn degrade_times_are_unix_seconds_or_zero() {
        assert_eq!(unix_seconds(None), 0.0);
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_500);
        assert_eq!(unix_seconds(Some(t)), 1_700_000_000.5);
        assert_eq!(unix_seconds(Some(UNIX_EPOCH - std::time::Duration::from_secs(1))), 0.0);
    }
}
