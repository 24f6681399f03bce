//! `volley probe`: what this host's kernel gives a volley socket, for IPv4
//! and IPv6, each item with a line on what it means.
//!
//! Every probe binds a fresh socket on the wildcard address with port 0 and
//! sends nothing, but one: the base capabilities come from a default
//! socket; the optional features (timestamps, transmit times, the ICMP
//! error queue, broadcast, freebind, transparent, mark, original
//! destination, path-MTU modes, reuse-port steering) from one socket each
//! configured to ask for them, "yes" meaning the kernel accepted it (for
//! `transparent` and `mark`: this process has the privilege). Whether the
//! kernel takes per-datagram ECN/DSCP on send (`IP_TOS`/`IPV6_TCLASS`
//! control messages; Android before 8.0 refuses them) can only be learned by
//! sending: a loopback socket sends one ECN-marked datagram to itself, and
//! `Capabilities::tos_cmsg` says afterwards whether volley had to turn the
//! control message off.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;
use volley::{Backend, Config, Pmtud, Socket, Steering};

use crate::ExitStatus;

/// A buffer request big enough to show where the sysctl caps it.
const BIG_BUFFER: usize = 4 << 20;

/// The whole report; also the `--json` schema.
#[derive(Debug, Serialize)]
struct Report {
    volley_version: &'static str,
    /// `uname -r`.
    kernel: Option<String>,
    cpus: usize,
    /// `auto` or `portable` (from `VOLLEY_BACKEND=portable`).
    backend: &'static str,
    ipv4: Family,
    ipv6: Family,
    sysctl: Sysctl,
    /// The process may exceed `*mem_max` with `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`.
    cap_net_admin: bool,
}

#[derive(Debug, Default, Serialize)]
struct Family {
    /// The address probed (wildcard, port 0).
    bind: String,
    /// A UDP socket of this family could be bound.
    available: bool,
    /// Why not, if not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    mmsg: bool,
    max_gso_segments: usize,
    gso: bool,
    gro: bool,
    pktinfo: bool,
    /// ECN and DSCP (the TOS byte) reported on receive.
    ecn: bool,
    /// A transmit's ECN codepoint reaches the wire.
    ecn_send: bool,
    /// A transmit's source address / interface is applied.
    src_send: bool,
    /// ECN and DSCP set per datagram on send (the TOS control message was
    /// taken by the kernel for one datagram sent to itself on loopback).
    tos_cmsg: bool,
    /// A transmit's own DSCP reaches the wire per datagram
    /// (`Capabilities::dscp_send`; false on Windows: per qWAVE flow).
    dscp_send: bool,
    ttl: bool,
    drop_counter: bool,
    /// Multicast membership and sending supported.
    multicast: bool,
    /// With `Config::timestamps(true)`.
    timestamps: bool,
    /// With `Config::txtime(true)`.
    txtime: bool,
    /// With `Config::recv_errors(true)`.
    recv_errors: bool,
    /// With `Config::broadcast(true)` (`SO_BROADCAST`).
    broadcast: bool,
    /// With `Config::freebind(true)` (`IP_FREEBIND`).
    freebind: bool,
    /// With `Config::transparent(true)` (`IP_TRANSPARENT`: needs
    /// `CAP_NET_ADMIN` or `CAP_NET_RAW`).
    transparent: bool,
    /// With `Config::mark(1)` (`SO_MARK`: needs `CAP_NET_ADMIN` or
    /// `CAP_NET_RAW`).
    mark: bool,
    /// With `Config::orig_dst(true)` (`IP_RECVORIGDSTADDR`).
    orig_dst: bool,
    /// Windows: a connected socket's DSCP can be set through a qWAVE flow
    /// (`Capabilities::qwave`); false elsewhere (the TOS is set directly).
    qwave: bool,
    pmtud: PmtudModes,
    reuse_port: ReusePort,
    buffers: Buffers,
    /// Why an optional feature was refused, by feature.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    probe_errors: BTreeMap<&'static str, String>,
}

#[derive(Debug, Default, Serialize)]
struct PmtudModes {
    off: bool,
    #[serde(rename = "do")]
    do_: bool,
    probe: bool,
}

#[derive(Debug, Default, Serialize)]
struct ReusePort {
    /// A group of two sockets with the kernel's flow-hash steering.
    hash: bool,
    /// A group of two with CPU steering (`SO_ATTACH_REUSEPORT_CBPF`).
    cpu: bool,
}

#[derive(Debug, Default, Serialize)]
struct Buffers {
    /// `SO_RCVBUF` of a socket that asks for nothing.
    recv_default: usize,
    /// `SO_SNDBUF` of a socket that asks for nothing.
    send_default: usize,
    /// What a request of `requested` bytes got.
    requested: usize,
    recv_granted: usize,
    send_granted: usize,
}

#[derive(Debug, Default, Serialize)]
struct Sysctl {
    rmem_default: Option<u64>,
    rmem_max: Option<u64>,
    wmem_default: Option<u64>,
    wmem_max: Option<u64>,
}

pub(crate) fn run(args: &crate::cli::ProbeArgs) -> anyhow::Result<ExitStatus> {
    let report = collect();
    if args.json {
        crate::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        crate::emit(&render(&report))?;
    }
    if !report.ipv4.available && !report.ipv6.available {
        anyhow::bail!(
            "no UDP socket could be bound: {}; {}",
            report.ipv4.error.as_deref().unwrap_or("?"),
            report.ipv6.error.as_deref().unwrap_or("?")
        );
    }
    Ok(ExitStatus::Success)
}

fn collect() -> Report {
    let ipv4 = probe_family((Ipv4Addr::UNSPECIFIED, 0).into());
    let ipv6 = probe_family((Ipv6Addr::UNSPECIFIED, 0).into());
    let backend = match Socket::bind((Ipv4Addr::LOCALHOST, 0).into()).map(|s| s.capabilities().backend) {
        Ok(Backend::Portable) => "portable",
        _ => "auto",
    };
    Report {
        volley_version: env!("CARGO_PKG_VERSION"),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        backend,
        ipv4,
        ipv6,
        sysctl: Sysctl {
            rmem_default: read_u64("/proc/sys/net/core/rmem_default"),
            rmem_max: read_u64("/proc/sys/net/core/rmem_max"),
            wmem_default: read_u64("/proc/sys/net/core/wmem_default"),
            wmem_max: read_u64("/proc/sys/net/core/wmem_max"),
        },
        cap_net_admin: cap_net_admin(),
    }
}

fn probe_family(addr: SocketAddr) -> Family {
    let mut f = Family { bind: addr.to_string(), ..Family::default() };
    let base = match Socket::bind(addr) {
        Ok(s) => s,
        Err(e) => {
            f.error = Some(e.to_string());
            return f;
        }
    };
    f.available = true;
    let caps = base.capabilities();
    f.mmsg = caps.mmsg;
    f.max_gso_segments = caps.max_gso_segments;
    f.gso = caps.gso();
    f.gro = caps.gro;
    f.pktinfo = caps.pktinfo;
    f.ecn = caps.ecn;
    f.ecn_send = caps.ecn_send;
    f.src_send = caps.src_send;
    f.dscp_send = caps.dscp_send;
    f.ttl = caps.ttl;
    f.drop_counter = caps.drop_counter;
    f.multicast = caps.multicast;
    f.qwave = caps.qwave;
    f.buffers.recv_default = base.recv_buffer_size().granted;
    f.buffers.send_default = base.send_buffer_size().granted;
    drop(base);

    let mut errors = BTreeMap::new();
    match tos_cmsg(addr.is_ipv6()) {
        Ok(ok) => f.tos_cmsg = ok,
        Err(e) => {
            errors.insert("tos_cmsg", e.to_string());
        }
    }
    let mut try_bind = |name: &'static str, config: Config| match config.bind(addr) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.insert(name, e.to_string());
            None
        }
    };
    f.timestamps = try_bind("timestamps", Config::new().timestamps(true)).is_some_and(|s| s.capabilities().timestamps);
    f.txtime = try_bind("txtime", Config::new().txtime(true)).is_some_and(|s| s.capabilities().txtime);
    f.recv_errors =
        try_bind("recv_errors", Config::new().recv_errors(true)).is_some_and(|s| s.capabilities().recv_errors);
    f.broadcast = try_bind("broadcast", Config::new().broadcast(true)).is_some_and(|s| s.capabilities().broadcast);
    f.freebind = try_bind("freebind", Config::new().freebind(true)).is_some_and(|s| s.capabilities().freebind);
    f.transparent =
        try_bind("transparent", Config::new().transparent(true)).is_some_and(|s| s.capabilities().transparent);
    f.mark = try_bind("mark", Config::new().mark(1)).is_some_and(|s| s.capabilities().mark == Some(1));
    f.orig_dst = try_bind("orig_dst", Config::new().orig_dst(true)).is_some_and(|s| s.capabilities().orig_dst);
    f.pmtud.off = try_bind("pmtud_off", Config::new().pmtud(Pmtud::Off)).is_some();
    f.pmtud.do_ = try_bind("pmtud_do", Config::new().pmtud(Pmtud::Do)).is_some();
    f.pmtud.probe = try_bind("pmtud_probe", Config::new().pmtud(Pmtud::Probe)).is_some();
    if let Some(s) = try_bind("buffers", Config::new().recv_buffer_size(BIG_BUFFER).send_buffer_size(BIG_BUFFER)) {
        f.buffers.requested = BIG_BUFFER;
        f.buffers.recv_granted = s.recv_buffer_size().granted;
        f.buffers.send_granted = s.send_buffer_size().granted;
    }
    for (name, steering) in [("reuse_port_hash", Steering::Hash), ("reuse_port_cpu", Steering::Cpu)] {
        let ok = match Config::new().bind_reuse_port_group(addr, 2, steering) {
            Ok(_) => true,
            Err(e) => {
                errors.insert(name, e.to_string());
                false
            }
        };
        match steering {
            Steering::Cpu => f.reuse_port.cpu = ok,
            _ => f.reuse_port.hash = ok,
        }
    }
    f.probe_errors = errors;
    f
}

/// Sends one ECN-marked datagram from a loopback socket to itself: volley
/// resends it without the TOS control message (and turns that off) if the
/// kernel refuses it. Returns whether it is still on.
fn tos_cmsg(v6: bool) -> Result<bool, volley::Error> {
    let lo: SocketAddr = if v6 { (Ipv6Addr::LOCALHOST, 0).into() } else { (Ipv4Addr::LOCALHOST, 0).into() };
    let sock = Socket::bind(lo)?;
    let me = sock.local_addr()?;
    let t = volley::Transmit::new(me, b"volley probe").with_ecn(volley::Ecn::Ect0);
    sock.send_batch_blocking(&[t], std::time::Duration::from_secs(1))?;
    Ok(sock.capabilities().tos_cmsg)
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn read_u64(path: &str) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// Bit 12 (`CAP_NET_ADMIN`) of the effective capability set.
fn cap_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    let Some(status) = read_trimmed("/proc/self/status") else { return false };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// One row of the human report: a feature, its value per family, and what
/// it means.
struct Row {
    name: &'static str,
    v4: String,
    v6: String,
    meaning: String,
}

fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let yn = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let fam = |f: &Family, get: &dyn Fn(&Family) -> String| if f.available { get(f) } else { "-".into() };
    // The meaning follows IPv4 when it is there, else IPv6.
    let primary = if r.ipv4.available { &r.ipv4 } else { &r.ipv6 };
    let both = |get: &dyn Fn(&Family) -> bool| {
        let a = !r.ipv4.available || get(&r.ipv4);
        let b = !r.ipv6.available || get(&r.ipv6);
        a && b
    };

    let _ = writeln!(out, "volley probe: what this host gives a volley UDP socket");
    let _ = writeln!(
        out,
        "kernel {}, {} CPU{}, backend {}{}",
        r.kernel.as_deref().unwrap_or("unknown"),
        r.cpus,
        if r.cpus == 1 { "" } else { "s" },
        r.backend,
        if r.backend == "portable" { " (VOLLEY_BACKEND=portable: no mmsg, GSO or GRO)" } else { "" }
    );
    out.push('\n');

    let gso = |f: &Family| if f.gso { format!("yes, {} segments", f.max_gso_segments) } else { "no".into() };
    let pmtud = |f: &Family| {
        let m: Vec<&str> = [(f.pmtud.off, "off"), (f.pmtud.do_, "do"), (f.pmtud.probe, "probe")]
            .into_iter()
            .filter_map(|(ok, n)| ok.then_some(n))
            .collect();
        if m.is_empty() {
            "none".into()
        } else {
            m.join(", ")
        }
    };
    let steering = |f: &Family| match (f.reuse_port.hash, f.reuse_port.cpu) {
        (true, true) => "hash, cpu".into(),
        (true, false) => "hash".into(),
        (false, true) => "cpu".into(),
        (false, false) => "no".into(),
    };
    let rows = [
        Row {
            name: "batched syscalls",
            v4: fam(&r.ipv4, &|f| yn(f.mmsg)),
            v6: fam(&r.ipv6, &|f| yn(f.mmsg)),
            meaning: if both(&|f| f.mmsg) {
                "recvmmsg/sendmmsg move up to 64 datagrams per syscall instead of one".into()
            } else {
                "one datagram per syscall (portable backend, or a seccomp filter blocks recvmmsg/sendmmsg): \
                 several times the CPU per datagram"
                    .into()
            },
        },
        Row {
            name: "GSO (UDP_SEGMENT)",
            v4: fam(&r.ipv4, &gso),
            v6: fam(&r.ipv6, &gso),
            meaning: if both(&|f| f.gso) {
                format!(
                    "one send carries a train of up to {} equal-size datagrams, split late by the stack or the NIC",
                    primary.max_gso_segments
                )
            } else {
                "every datagram goes down the stack on its own (GSO needs Linux 4.18 and the Auto backend)".into()
            },
        },
        Row {
            name: "GRO (UDP_GRO)",
            v4: fam(&r.ipv4, &|f| yn(f.gro)),
            v6: fam(&r.ipv6, &|f| yn(f.gro)),
            meaning: if both(&|f| f.gro) {
                "a flow's datagrams arrive coalesced in one receive; volley splits them again".into()
            } else {
                "one receive per datagram (UDP_GRO needs Linux 5.0 and the Auto backend)".into()
            },
        },
        Row {
            name: "ECN/DSCP on receive",
            v4: fam(&r.ipv4, &|f| yn(f.ecn)),
            v6: fam(&r.ipv6, &|f| yn(f.ecn)),
            meaning: if both(&|f| f.ecn) {
                "each datagram's ECN codepoint and DSCP are reported: ECN congestion feedback (QUIC, L4S) can work"
                    .into()
            } else {
                "ECN marks are invisible to the application: ECN-based congestion control cannot work".into()
            },
        },
        Row {
            name: "ECN on send",
            v4: fam(&r.ipv4, &|f| yn(f.ecn_send)),
            v6: fam(&r.ipv6, &|f| yn(f.ecn_send)),
            meaning: if both(&|f| f.ecn_send) {
                "each datagram leaves with the ECN codepoint it asks for".into()
            } else {
                "ECN marks are not applied (datagrams leave unmarked): ECN validation will turn ECN off".into()
            },
        },
        Row {
            name: "source on send",
            v4: fam(&r.ipv4, &|f| yn(f.src_send)),
            v6: fam(&r.ipv6, &|f| yn(f.src_send)),
            meaning: if both(&|f| f.src_send) {
                "a send can pick its source address and interface".into()
            } else {
                "a send cannot pick its source (refused, typed): replies leave from the default address".into()
            },
        },
        Row {
            name: "ECN/DSCP on send",
            v4: fam(&r.ipv4, &|f| if f.tos_cmsg { "per datagram".into() } else { "socket only".into() }),
            v6: fam(&r.ipv6, &|f| if f.tos_cmsg { "per datagram".into() } else { "socket only".into() }),
            meaning: if both(&|f| f.tos_cmsg) {
                "each datagram carries its own ECN codepoint and DSCP (IP_TOS/IPV6_TCLASS control messages)".into()
            } else {
                "the kernel refused the TOS control message: volley sends without it, so datagrams carry the \
                 socket-level TOS (Socket::set_tos) and per-datagram ECN is lost"
                    .into()
            },
        },
        Row {
            name: "pktinfo",
            v4: fam(&r.ipv4, &|f| yn(f.pktinfo)),
            v6: fam(&r.ipv6, &|f| yn(f.pktinfo)),
            meaning: if both(&|f| f.pktinfo && f.src_send) {
                "each datagram says which local address it was sent to, and a send can pick its source: \
                 a wildcard server on a multi-homed host answers from the right address"
                    .into()
            } else {
                "no destination address per datagram: bind one socket per local address".into()
            },
        },
        Row {
            name: "TTL / hop limit",
            v4: fam(&r.ipv4, &|f| yn(f.ttl)),
            v6: fam(&r.ipv6, &|f| yn(f.ttl)),
            meaning: "the TTL or hop limit each datagram arrived with is reported (hop counting, GTSM checks)".into(),
        },
        Row {
            name: "drop counter",
            v4: fam(&r.ipv4, &|f| yn(f.drop_counter)),
            v6: fam(&r.ipv6, &|f| yn(f.drop_counter)),
            meaning: if both(&|f| f.drop_counter) {
                "datagrams the kernel dropped for a full receive buffer are counted (SO_RXQ_OVFL): \
                 loss on this host can be told from loss on the network"
                    .into()
            } else {
                "host drops cannot be told from network loss".into()
            },
        },
        Row {
            name: "rx timestamps",
            v4: fam(&r.ipv4, &|f| yn(f.timestamps)),
            v6: fam(&r.ipv6, &|f| yn(f.timestamps)),
            meaning: "with Config::timestamps(true), the kernel's receive time per datagram (SO_TIMESTAMPNS): \
                      latency measured without scheduling delay"
                .into(),
        },
        Row {
            name: "SO_TXTIME",
            v4: fam(&r.ipv4, &|f| yn(f.txtime)),
            v6: fam(&r.ipv6, &|f| yn(f.txtime)),
            meaning: "with Config::txtime(true), datagrams may carry a departure time; only the fq or etf qdisc \
                      holds them until then, others send at once"
                .into(),
        },
        Row {
            name: "multicast",
            v4: fam(&r.ipv4, &|f| yn(f.multicast)),
            v6: fam(&r.ipv6, &|f| yn(f.multicast)),
            meaning: "groups can be joined (any-source and source-specific) and sent to; a socket hears only \
                      the groups it joined"
                .into(),
        },
        Row {
            name: "ICMP error queue",
            v4: fam(&r.ipv4, &|f| yn(f.recv_errors)),
            v6: fam(&r.ipv6, &|f| yn(f.recv_errors)),
            meaning: "with Config::recv_errors(true), ICMP errors (port unreachable, packet too big) are read \
                      with the destination they concern, without disturbing the data"
                .into(),
        },
        Row {
            name: "broadcast",
            v4: fam(&r.ipv4, &|f| yn(f.broadcast)),
            v6: fam(&r.ipv6, &|f| yn(f.broadcast)),
            meaning: "with Config::broadcast(true), sends to 255.255.255.255 and a subnet's directed broadcast \
                      (LAN discovery; IPv4 only, IPv6 has multicast instead)"
                .into(),
        },
        Row {
            name: "IP_FREEBIND",
            v4: fam(&r.ipv4, &|f| yn(f.freebind)),
            v6: fam(&r.ipv6, &|f| yn(f.freebind)),
            meaning: "with Config::freebind(true), a socket binds an address no interface has yet \
                      (start before the network is up)"
                .into(),
        },
        Row {
            name: "IP_TRANSPARENT",
            v4: fam(&r.ipv4, &|f| yn(f.transparent)),
            v6: fam(&r.ipv6, &|f| yn(f.transparent)),
            meaning: if both(&|f| f.transparent) {
                "with Config::transparent(true), a socket receives what a TPROXY rule diverts to it and \
                 sends from non-local addresses (transparent proxies)"
                    .into()
            } else {
                "refused: needs CAP_NET_ADMIN or CAP_NET_RAW (or not Linux); see the notes below".into()
            },
        },
        Row {
            name: "SO_MARK",
            v4: fam(&r.ipv4, &|f| yn(f.mark)),
            v6: fam(&r.ipv6, &|f| yn(f.mark)),
            meaning: if both(&|f| f.mark) {
                "with Config::mark(m), every packet carries firewall mark m for policy routing \
                 (ip rule fwmark) and nftables"
                    .into()
            } else {
                "refused: needs CAP_NET_ADMIN or CAP_NET_RAW (or not Linux); see the notes below".into()
            },
        },
        Row {
            name: "original destination",
            v4: fam(&r.ipv4, &|f| yn(f.orig_dst)),
            v6: fam(&r.ipv6, &|f| yn(f.orig_dst)),
            meaning: "with Config::orig_dst(true), each datagram's original destination address and port \
                      (RecvMeta::orig_dst): where a datagram a TPROXY rule diverted was going"
                .into(),
        },
        Row {
            name: "qWAVE socket DSCP",
            v4: fam(&r.ipv4, &|f| yn(f.qwave)),
            v6: fam(&r.ipv6, &|f| yn(f.qwave)),
            meaning: if cfg!(windows) {
                if both(&|f| f.qwave) {
                    "a connected socket's DSCP is set through a qWAVE flow to its peer (values other than \
                     CS1, CS5 and CS7 need an administrator)"
                        .into()
                } else {
                    "qWAVE unavailable: a socket-level DSCP is refused (typed); ECN still goes per datagram".into()
                }
            } else {
                "Windows only: here the TOS is set directly (IP_TOS / IPV6_TCLASS)".into()
            },
        },
        Row {
            name: "PMTUD modes",
            v4: fam(&r.ipv4, &pmtud),
            v6: fam(&r.ipv6, &pmtud),
            meaning: if both(&|f| f.pmtud.probe) {
                "DF can be set with the kernel's path-MTU cache ignored (probe): QUIC-style MTU probing works".into()
            } else {
                "Pmtud::Probe refused: the application cannot probe the path MTU itself".into()
            },
        },
        Row {
            name: "reuse-port steering",
            v4: fam(&r.ipv4, &steering),
            v6: fam(&r.ipv6, &steering),
            meaning: if both(&|f| f.reuse_port.cpu) {
                "a reuse-port group spreads flows over sockets by hash, or by receiving CPU (one socket per core)"
                    .into()
            } else {
                "CPU steering refused: a reuse-port group can only spread by flow hash".into()
            },
        },
    ];
    let _ = writeln!(out, "{:<22}{:<20}IPv6", "", "IPv4");
    for row in &rows {
        let _ = writeln!(out, "{:<22}{:<20}{}", row.name, row.v4, row.v6);
        for line in wrap(&row.meaning, 92) {
            let _ = writeln!(out, "    {line}");
        }
    }
    for f in [&r.ipv4, &r.ipv6] {
        if let Some(e) = &f.error {
            let _ = writeln!(out, "note: {} unavailable: {e}", f.bind);
        }
        for (feature, e) in &f.probe_errors {
            let _ = writeln!(out, "note: {feature} on {}: {e}", f.bind);
        }
    }

    out.push('\n');
    let _ = writeln!(out, "socket buffers (sysctl net.core.*)");
    let v = |x: Option<u64>| x.map_or("?".into(), crate::util::group);
    let s = &r.sysctl;
    let _ = writeln!(out, "  rmem_default  {:>12}  receive buffer of a socket that does not ask", v(s.rmem_default));
    let _ =
        writeln!(out, "  rmem_max      {:>12}  caps SO_RCVBUF: a request is doubled, up to twice this", v(s.rmem_max));
    let _ = writeln!(out, "  wmem_default  {:>12}  send buffer of a socket that does not ask", v(s.wmem_default));
    let _ = writeln!(out, "  wmem_max      {:>12}  caps SO_SNDBUF the same way", v(s.wmem_max));
    let _ = writeln!(
        out,
        "  CAP_NET_ADMIN {:>12}  {}",
        yn(r.cap_net_admin),
        if r.cap_net_admin {
            "may exceed the caps (volley retries with SO_RCVBUFFORCE/SO_SNDBUFFORCE)"
        } else {
            "requests above the caps are cut to them"
        }
    );
    if primary.available && primary.buffers.requested > 0 {
        let b = &primary.buffers;
        let _ = writeln!(
            out,
            "  Config::recv_buffer_size / send_buffer_size({} MiB) get: receive {} KiB, send {} KiB",
            b.requested >> 20,
            b.recv_granted / 1024,
            b.send_granted / 1024
        );
        if !r.cap_net_admin && s.rmem_max.is_some_and(|m| (m as usize) < b.requested) {
            let _ = writeln!(
                out,
                "  for bursts at high rates, raise the caps: sysctl -w net.core.rmem_max={} net.core.wmem_max={}",
                b.requested * 2,
                b.requested * 2
            );
        }
    }
    out
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_breaks_at_spaces() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("", 5), Vec::<String>::new());
        assert_eq!(wrap("toolongword x", 4), ["toolongword", "x"]);
    }
}
