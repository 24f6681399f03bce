//! `volley listen`: prints every datagram that arrives, from any sender,
//! with everything [`RecvMeta`] says about it, and a summary on exit.
//!
//! GRO trains are walked datagram by datagram ([`RecvBatch::messages`] and
//! [`RecvMeta::segments`]), each line saying where in its train the
//! datagram was. One table, [`FIELDS`], lists what a line holds, for the
//! text and the JSON form alike: a new `RecvMeta` field is one more row.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Value};
use volley::{Config, Dscp, Ecn, Error, MulticastInterface, RecvBatch, RecvMeta};

use crate::cli::ListenArgs;
use crate::client::is_icmp_error;
use crate::util::{group, listen_addr, si};
use crate::ExitStatus;

/// The longest single wait for datagrams: how soon Ctrl-C and `--timeout`
/// are noticed.
const TICK: Duration = Duration::from_millis(200);

/// A `--join GROUP[@IFACE]` argument, checked as far as it can be without
/// a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Join {
    pub(crate) group: IpAddr,
    pub(crate) iface: Option<Iface>,
}

/// The interface part of `--join`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Iface {
    /// An interface name (`eth0`), looked up when joining.
    Name(String),
    /// An interface index.
    Index(u32),
    /// The IPv4 interface with this address (IPv4 groups only).
    V4(Ipv4Addr),
}

impl fmt::Display for Join {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.group)?;
        match &self.iface {
            None => Ok(()),
            Some(Iface::Name(n)) => write!(f, "@{n}"),
            Some(Iface::Index(i)) => write!(f, "@{i}"),
            Some(Iface::V4(a)) => write!(f, "@{a}"),
        }
    }
}

/// Why a `--join` argument or membership was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JoinError {
    /// The group part is not an IP address.
    NotAnAddress(String),
    /// The group is an address, but not a multicast one.
    NotMulticast(IpAddr),
    /// `GROUP@` with nothing after the `@`.
    EmptyInterface(IpAddr),
    /// An interface given by IPv4 address for an IPv6 group.
    InterfaceFamily(IpAddr, Ipv4Addr),
    /// No interface has this name.
    NoSuchInterface(String),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnAddress(s) => write!(f, "group {s:?} is not an IP address (expected GROUP or GROUP@IFACE)"),
            Self::NotMulticast(ip) => {
                write!(f, "{ip} is not a multicast address (IPv4 groups are in 224.0.0.0/4, IPv6 groups in ff00::/8)")
            }
            Self::EmptyInterface(ip) => {
                write!(f, "no interface after the @ in {ip}@ (use a name, an index or an IPv4 address)")
            }
            Self::InterfaceFamily(ip, a) => {
                write!(
                    f,
                    "interface address {a} is IPv4 but group {ip} is IPv6: name the interface (e.g. @eth0) instead"
                )
            }
            Self::NoSuchInterface(name) => write!(f, "no interface named {name:?} on this host"),
        }
    }
}

impl std::error::Error for JoinError {}

/// Parses `GROUP[@IFACE]`: the group must be a multicast address; IFACE is
/// an interface name, an index, or (IPv4 groups) an interface address.
pub(crate) fn parse_join(s: &str) -> Result<Join, JoinError> {
    let (g, iface) = match s.trim().split_once('@') {
        Some((g, i)) => (g, Some(i.trim())),
        None => (s.trim(), None),
    };
    let group: IpAddr = g.trim().parse().map_err(|_| JoinError::NotAnAddress(g.trim().to_owned()))?;
    if !group.is_multicast() {
        return Err(JoinError::NotMulticast(group));
    }
    let iface = match iface {
        None => None,
        Some("") => return Err(JoinError::EmptyInterface(group)),
        Some(i) => Some(if let Ok(n) = i.parse::<u32>() {
            Iface::Index(n)
        } else if let Ok(a) = i.parse::<Ipv4Addr>() {
            if group.is_ipv6() {
                return Err(JoinError::InterfaceFamily(group, a));
            }
            Iface::V4(a)
        } else {
            Iface::Name(i.to_owned())
        }),
    };
    Ok(Join { group, iface })
}

/// The membership's interface as the core takes it.
fn multicast_interface(iface: Option<&Iface>) -> Result<MulticastInterface, JoinError> {
    Ok(match iface {
        None => MulticastInterface::Any,
        Some(Iface::Index(i)) => MulticastInterface::Index(*i),
        Some(Iface::V4(a)) => MulticastInterface::V4(*a),
        Some(Iface::Name(n)) => {
            MulticastInterface::Index(if_index(n).ok_or_else(|| JoinError::NoSuchInterface(n.clone()))?)
        }
    })
}

#[cfg(all(unix, not(target_os = "ios")))]
fn if_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok().filter(|i| *i != 0)
}

#[cfg(not(all(unix, not(target_os = "ios"))))]
fn if_index(_name: &str) -> Option<u32> {
    None
}

#[cfg(all(unix, not(target_os = "ios")))]
fn if_name(index: u32) -> Option<String> {
    nix::net::if_::if_indextoname(index).ok().map(|c| c.to_string_lossy().into_owned())
}

#[cfg(not(all(unix, not(target_os = "ios"))))]
fn if_name(_index: u32) -> Option<String> {
    None
}

/// One datagram as a line describes it.
#[derive(Debug)]
struct Datagram<'a> {
    /// 1-based count of datagrams printed.
    n: u64,
    meta: &'a RecvMeta,
    /// This datagram's payload length (a train's segments differ from
    /// `meta.len`, the whole message).
    len: usize,
    /// Position in its GRO train (0-based) and the train's length.
    index: usize,
    train: usize,
    /// Whether this datagram is the one the kernel cut short.
    truncated: bool,
    iface: Option<&'a str>,
}

/// Where a field appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    Both,
    Json,
    Text,
}

/// A datagram line's fields in order: key, where it appears, and its value
/// (`null` / `false`: left out of text lines). A new `RecvMeta` field is
/// one more row, as `orig_dst` was.
#[allow(clippy::type_complexity)]
const FIELDS: &[(&str, Show, fn(&Datagram<'_>) -> Value)] = &[
    ("type", Show::Json, |_| "datagram".into()),
    ("n", Show::Both, |d| d.n.into()),
    ("src", Show::Both, |d| d.meta.src.to_string().into()),
    ("dst_ip", Show::Both, |d| opt(d.meta.dst_ip)),
    ("ifindex", Show::Json, |d| d.meta.ifindex.into()),
    ("iface", Show::Both, |d| d.iface.into()),
    ("len", Show::Both, |d| d.len.into()),
    ("ecn", Show::Both, |d| d.meta.dscp.map(|_| d.meta.ecn.to_string()).into()),
    ("dscp", Show::Json, |d| d.meta.dscp.map(Dscp::value).into()),
    ("dscp", Show::Text, |d| opt(d.meta.dscp)),
    ("dscp_name", Show::Json, |d| opt(d.meta.dscp)),
    ("ttl", Show::Both, |d| d.meta.ttl.into()),
    ("segment_size", Show::Json, |d| d.meta.segment_size.into()),
    ("gro_segment", Show::Both, |d| (d.train > 1).then_some(d.index + 1).into()),
    ("gro_segments", Show::Both, |d| (d.train > 1).then_some(d.train).into()),
    ("truncated", Show::Both, |d| d.truncated.into()),
    ("control_truncated", Show::Both, |d| d.meta.control_truncated.into()),
    ("timestamp_ns", Show::Json, |d| d.meta.timestamp.map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)).into()),
    ("ts", Show::Text, |d| d.meta.timestamp.map(|t| format!("{}.{:09}", t.as_secs(), t.subsec_nanos())).into()),
    ("drops", Show::Both, |d| d.meta.drops.into()),
    ("orig_dst", Show::Both, |d| opt(d.meta.orig_dst())),
];

/// `null` or the value's `Display`.
fn opt(v: Option<impl fmt::Display>) -> Value {
    v.map_or(Value::Null, |v| v.to_string().into())
}

impl Datagram<'_> {
    /// `key=value` pairs, unknown and false fields left out.
    fn text(&self) -> String {
        let mut out = String::with_capacity(160);
        for (key, show, value) in FIELDS {
            if *show == Show::Json {
                continue;
            }
            let v = value(self);
            let shown = match &v {
                Value::Null | Value::Bool(false) => continue,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(&shown);
        }
        out
    }

    /// One JSON object, every field present (`null` when unknown).
    fn json(&self) -> String {
        let fields = FIELDS.iter().filter(|(_, show, _)| *show != Show::Text).map(|(k, _, f)| (*k, f(self)));
        serde_json::to_string(&Ordered(fields.collect())).unwrap_or_default()
    }
}

/// A JSON object with its keys in the given order.
#[derive(Debug)]
struct Ordered<K, V>(Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for Ordered<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Why the listener stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Count,
    Timeout,
    Signal,
    /// Standard output was closed (a pipe's reader exited).
    Closed,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Timeout => "timeout",
            Self::Signal => "signal",
            Self::Closed => "output closed",
        }
    }
}

/// What the run saw, for the summary.
#[derive(Debug, Default)]
struct Tally {
    datagrams: u64,
    bytes: u64,
    messages: u64,
    gro_trains: u64,
    /// By ECN codepoint and by DSCP value, for datagrams whose TOS byte was
    /// reported.
    ecn: [u64; 4],
    dscp: BTreeMap<u8, u64>,
    /// Datagrams without a TOS byte (the kernel did not report one).
    tos_unknown: u64,
    truncated: u64,
    control_truncated: u64,
    /// The socket's kernel drop counter, last seen.
    drops: Option<u32>,
}

impl Tally {
    fn ecn_counts(&self) -> Vec<(String, u64)> {
        [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1, Ecn::Ce]
            .into_iter()
            .map(|e| (e.to_string(), self.ecn[usize::from(e.bits())]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn dscp_counts(&self) -> Vec<(String, u64)> {
        self.dscp.iter().map(|(v, n)| (Dscp::from_tos(v << 2).to_string(), *n)).collect()
    }
}

pub(crate) fn run(args: &ListenArgs) -> Result<ExitStatus> {
    // Resolve interfaces first: a typo fails before anything is bound.
    let joins = args
        .join
        .iter()
        .map(|j| multicast_interface(j.iface.as_ref()).map(|i| (j, i)))
        .collect::<Result<Vec<_>, _>>()?;

    let addr = listen_addr(&args.listen)?;
    let config = Config::new()
        .timestamps(true)
        .recv_buffer_size(args.buffer)
        .reuse_port(args.reuse_port)
        .reuse_addr(!args.join.is_empty())
        .ipv6_only(args.ipv6_only)
        .gro(!args.no_gro)
        // The original destination (TPROXY) where the kernel can say it.
        .orig_dst(cfg!(any(target_os = "linux", target_os = "android")));
    let sock = match config.bind(addr) {
        Ok(s) => s,
        // A bare port on a host without IPv6: fall back to IPv4.
        Err(_) if args.listen.trim().parse::<u16>().is_ok() => {
            let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
            config.bind(v4).with_context(|| format!("cannot listen on {addr} or {v4}"))?
        }
        Err(e) => return Err(e).with_context(|| format!("cannot listen on {addr}")),
    };
    for (j, iface) in &joins {
        // The core's error names the group and the reason.
        sock.join_multicast(j.group, *iface).with_context(|| format!("--join {j}"))?;
    }
    let local = sock.local_addr()?;
    let caps = sock.capabilities();
    let stack = match local {
        SocketAddr::V6(a) if a.ip().is_unspecified() && !args.ipv6_only => "IPv6 and IPv4",
        SocketAddr::V6(_) => "IPv6",
        SocketAddr::V4(_) => "IPv4",
    };
    let groups: Vec<String> = args.join.iter().map(Join::to_string).collect();
    if args.json {
        let reports = json!({ "pktinfo": caps.pktinfo, "ecn_dscp": caps.ecn, "ttl": caps.ttl, "drops": caps.drop_counter, "orig_dst": caps.orig_dst });
        let line = Ordered(vec![
            ("type", json!("listening")),
            ("local", json!(local.to_string())),
            ("stack", json!(stack)),
            ("groups", json!(groups)),
            ("reuse_port", json!(args.reuse_port)),
            ("gro", json!(caps.gro)),
            ("timestamps", json!(caps.timestamps)),
            ("reports", reports),
        ]);
        outln!("{}", serde_json::to_string(&line).unwrap_or_default());
    } else {
        let joined = if groups.is_empty() { String::new() } else { format!(", groups {}", groups.join(" ")) };
        outln!("volley listen on {local} ({stack}{joined}): one line per datagram, Ctrl-C to stop");
    }
    let _ = io::stdout().flush();

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)) {
        eprintln!("warning: cannot catch Ctrl-C ({e}): the summary is printed only with --count or --timeout");
    }

    let mut tally = Tally::default();
    let mut names: HashMap<u32, Option<String>> = HashMap::new();
    let mut batch = RecvBatch::new();
    let start = Instant::now();
    let deadline = args.timeout.map(|t| start + t);
    let count = args.count.unwrap_or(u64::MAX);
    let why = 'run: loop {
        if tally.datagrams >= count {
            break Stop::Count;
        }
        if stop.load(Ordering::SeqCst) {
            break Stop::Signal;
        }
        let now = Instant::now();
        let wait = match deadline {
            Some(d) if now >= d => break Stop::Timeout,
            Some(d) => TICK.min(d - now),
            None => TICK,
        };
        match sock.recv_batch_blocking(&mut batch, wait.max(Duration::from_millis(1))) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::Interrupted => continue,
            // An ICMP error about something this socket never sent on purpose.
            Err(e) if is_icmp_error(&e) => continue,
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e).context("receive failed"),
        }
        for (meta, message) in batch.messages() {
            tally.messages += 1;
            let segments = meta.segments(message);
            let train = segments.len();
            if train > 1 {
                tally.gro_trains += 1;
            }
            if meta.drops.is_some() {
                tally.drops = meta.drops;
            }
            let iface = meta.ifindex.and_then(|i| names.entry(i).or_insert_with(|| if_name(i)).as_deref());
            for (index, payload) in segments.enumerate() {
                if tally.datagrams >= count {
                    break 'run Stop::Count;
                }
                tally.datagrams += 1;
                tally.bytes += payload.len() as u64;
                match meta.dscp {
                    Some(d) => {
                        tally.ecn[usize::from(meta.ecn.bits())] += 1;
                        *tally.dscp.entry(d.value()).or_default() += 1;
                    }
                    None => tally.tos_unknown += 1,
                }
                // Only the last datagram of a message can be the one cut.
                let truncated = meta.truncated && index + 1 == train;
                tally.truncated += u64::from(truncated);
                tally.control_truncated += u64::from(meta.control_truncated && index == 0);
                if !args.quiet {
                    let d = Datagram { n: tally.datagrams, meta, len: payload.len(), index, train, truncated, iface };
                    let line = if args.json { d.json() } else { d.text() };
                    // `volley listen | head -3`: stop once the reader left.
                    if let Err(e) = writeln!(io::stdout().lock(), "{line}") {
                        if e.kind() == io::ErrorKind::BrokenPipe {
                            break 'run Stop::Closed;
                        }
                    }
                }
            }
        }
    };
    let report = Summary {
        kind: "summary",
        datagrams: tally.datagrams,
        bytes: tally.bytes,
        messages: tally.messages,
        gro_trains: tally.gro_trains,
        seconds: start.elapsed().as_secs_f64(),
        ecn: Ordered(tally.ecn_counts()),
        dscp: Ordered(tally.dscp_counts()),
        tos_unknown: tally.tos_unknown,
        truncated: tally.truncated,
        control_truncated: tally.control_truncated,
        kernel_drops: tally.drops.map(u64::from).or(caps.drop_counter.then_some(0)),
        stopped_by: why.name(),
    };
    if args.json {
        outln!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        crate::emit(&report.text())?;
    }
    // `--count N` not reached within `--timeout`: the run worked, but short.
    Ok(if why == Stop::Timeout && args.count.is_some() { ExitStatus::Problem } else { ExitStatus::Success })
}

/// The summary printed on exit (`--json`: one last line of type `summary`).
#[derive(Debug, Serialize)]
struct Summary {
    #[serde(rename = "type")]
    kind: &'static str,
    datagrams: u64,
    bytes: u64,
    /// Kernel receives (a GRO train is one).
    messages: u64,
    gro_trains: u64,
    seconds: f64,
    /// Datagrams per ECN codepoint / DSCP name, of those whose TOS byte the
    /// kernel reported.
    ecn: Ordered<String, u64>,
    dscp: Ordered<String, u64>,
    tos_unknown: u64,
    truncated: u64,
    control_truncated: u64,
    /// The socket's kernel drop counter (`SO_RXQ_OVFL`); `null` where the
    /// kernel has none.
    kernel_drops: Option<u64>,
    stopped_by: &'static str,
}

impl Summary {
    fn text(&self) -> String {
        let counts = |c: &Ordered<String, u64>| {
            if c.0.is_empty() {
                "none reported".to_owned()
            } else {
                c.0.iter().map(|(k, n)| format!("{k} {}", group(*n))).collect::<Vec<_>>().join(", ")
            }
        };
        let secs = self.seconds.max(1e-9);
        let mut s = format!(
            "summary: {} datagrams, {} bytes in {} receives ({} GRO trains) over {:.2} s ({} datagrams/s), stopped by {}\n",
            group(self.datagrams),
            group(self.bytes),
            group(self.messages),
            group(self.gro_trains),
            self.seconds,
            si(self.datagrams as f64 / secs),
            self.stopped_by
        );
        s += &format!("  ecn   {}\n", counts(&self.ecn));
        s += &format!("  dscp  {}\n", counts(&self.dscp));
        if self.tos_unknown > 0 {
            s += &format!("  {} datagrams without a TOS byte (not reported by the kernel)\n", group(self.tos_unknown));
        }
        s += &format!(
            "  truncated {}, control truncated {}, kernel drops {}\n",
            group(self.truncated),
            group(self.control_truncated),
            self.kernel_drops.map_or("n/a".into(), group)
        );
        s
    }
}
