//! The command line: clap derive structs, one per subcommand, and the value
//! parsers for marks, durations and rates.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use volley::{Dscp, Ecn};

const ABOUT: &str = "Check a host's and a path's UDP: offloads, ECN, DSCP, MTU, loss under load, what arrives";

const LONG_ABOUT: &str = "\
volley checks what a Linux host and a network path do to UDP, the way iperf3 is used for TCP, \
without writing code. Run `volley probe` on a host to see what its kernel offers a UDP socket. \
Run `volley echo` on one end of a path and `volley blast` or `volley path` on the other to \
measure rate, loss and drops under load, and to check whether ECN and DSCP marks survive and \
what the path MTU is. Run `volley listen` to see every datagram any sender sends you, with its \
ECN, DSCP, TTL, local address and interface.

Exit status: 0 success; 1 error (bad address, bind failure, no reply); 2 usage error; 3 the \
run worked but found a problem (a mark not preserved, loss above --max-loss).";

const AFTER_HELP: &str = "\
Examples:
  volley probe                          # capability report of this host
  volley echo --listen [::]:4500        # run a reflector (IPv4 and IPv6)
  volley blast --to 192.0.2.7:4500 --ecn ect0 --duration 10
  volley path --to 192.0.2.7:4500       # ECN, DSCP and MTU verdicts
  volley path --to 192.0.2.7:4500 --json | jq .path_mtu
  volley listen --listen 4500 --count 10 # what arrives, from any sender, one line each";

/// The `volley` command line.
#[derive(Debug, Parser)]
#[command(name = "volley", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
#[command(propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Probe(ProbeArgs),
    Echo(EchoArgs),
    Blast(BlastArgs),
    Path(PathArgs),
    Listen(ListenArgs),
}

/// Print what this host's kernel gives a volley UDP socket.
#[derive(Debug, Args)]
#[command(
    long_about = "\
Print what this host's kernel gives a volley UDP socket, for IPv4 and IPv6: \
batched syscalls, GSO and GRO offloads, which metadata the kernel reports (ECN, \
DSCP, TTL, pktinfo, timestamps, drops), transmit times, the ICMP error queue, \
path-MTU discovery modes, reuse-port steering, and the socket buffer limits set \
by sysctl, each with a line on what it means. Opens sockets on the wildcard \
address with port 0; sends nothing.",
    after_help = "\
Examples:
  volley probe
  volley probe --json | jq '.ipv4.max_gso_segments'
  VOLLEY_BACKEND=portable volley probe   # what the portable path gets"
)]
pub(crate) struct ProbeArgs {
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Run an echo server for `blast` and `path`.
#[derive(Debug, Args)]
#[command(
    long_about = "\
Run a reflector for `volley blast` and `volley path`. Every VLY1 request gets a \
reply sent from the address the request was sent to (pktinfo, so a wildcard \
listener on a multi-homed host answers from the right address), carrying the \
ECN codepoint and DSCP the request arrived with, and reporting in its payload the \
TOS byte, TTL and length the request arrived with and this socket's kernel drop \
counter. Other datagrams are ignored. Runs until interrupted, or for --duration.",
    after_help = "\
Examples:
  volley echo --listen [::]:4500        # IPv6 and IPv4 on all addresses
  volley echo --listen 0.0.0.0:4500
  volley echo --listen 4500             # same as [::]:4500
  volley echo --listen 127.0.0.1:0      # any free port; the first line says which"
)]
pub(crate) struct EchoArgs {
    /// Address to listen on: IP:PORT, [IPv6]:PORT, or a bare PORT for [::]:PORT.
    #[arg(long, short = 'l', value_name = "ADDR")]
    pub(crate) listen: String,
    /// Stop after this long (e.g. 30, 1.5, 500ms, 2m); default: run until interrupted.
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Print a statistics line to stderr this often (0 = never).
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "10")]
    pub(crate) stats: Duration,
    /// Socket buffer size to request, bytes, for receive and send.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub(crate) buffer: usize,
    /// Print only the listening line.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
}

/// Send load to an echo and report rate, loss, drops, RTT and marks.
#[derive(Debug, Args)]
#[command(
    long_about = "\
Send sequence-numbered VLY1 requests to a `volley echo` (GSO trains, \
sendmmsg batches) for --duration, with a live progress line on a terminal, then \
report: datagrams/s and Gbit/s sent, replies received, round-trip loss by \
sequence number, duplicates and reordering, kernel drops on both ends, RTT, and \
the ECN/DSCP marks as sent, as the echo saw them, and as the replies arrived. \
Before the run, one request checks that the echo answers (--timeout).",
    after_help = "\
Examples:
  volley blast --to 127.0.0.1:4500 --duration 5
  volley blast --to [2001:db8::7]:4500 --size 1400 --ecn ect1 --dscp af41 --rate 100k
  volley blast --to 192.0.2.7:4500 --gso 1            # no GSO: one datagram per message
  volley blast --to 192.0.2.7:4500 --json --max-loss 0.1
  volley blast --to 192.0.2.7:9 --no-echo             # one-way load, no replies expected"
)]
pub(crate) struct BlastArgs {
    /// The echo (or sink) to send to: HOST:PORT.
    #[arg(long, short = 't', value_name = "ADDR")]
    pub(crate) to: String,
    /// UDP payload size of each datagram, bytes (at least 24).
    #[arg(long, short = 's', value_name = "N", default_value_t = 1200)]
    pub(crate) size: usize,
    /// Datagrams per GSO send (1 = no GSO); default: as many as fit, up to the kernel's limit.
    #[arg(long, value_name = "N")]
    pub(crate) gso: Option<usize>,
    /// ECN codepoint to set on every datagram: not-ect, ect0, ect1 (L4S) or ce.
    #[arg(long, value_name = "CODEPOINT", value_parser = parse_ecn, default_value = "not-ect")]
    pub(crate) ecn: Ecn,
    /// DSCP to set: a name (ef, af41, cs1, default, ...) or 0..=63.
    #[arg(long, value_name = "NAME|N", value_parser = parse_dscp)]
    pub(crate) dscp: Option<Dscp>,
    /// Datagrams per second (suffixes k, M); 0 = as fast as possible.
    #[arg(long, short = 'r', value_name = "R", value_parser = parse_rate, default_value = "0")]
    pub(crate) rate: u64,
    /// How long to send (e.g. 10, 1.5, 500ms).
    #[arg(long, short = 'd', value_name = "TIME", value_parser = parse_duration, default_value = "5")]
    pub(crate) duration: Duration,
    /// How long to wait for the echo's first reply, and for the last replies after sending stops.
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "2")]
    pub(crate) timeout: Duration,
    /// Ask the echo to pad replies to the request size (loads the return path too).
    #[arg(long)]
    pub(crate) full_replies: bool,
    /// The peer is not a `volley echo`: send one way, expect no replies.
    #[arg(long)]
    pub(crate) no_echo: bool,
    /// Exit with status 3 if round-trip loss exceeds this percentage.
    #[arg(long, value_name = "PERCENT")]
    pub(crate) max_loss: Option<f64>,
    /// Local address to send from (default: the wildcard of the target's family).
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Option<String>,
    /// Print the report as JSON (progress still goes to a terminal's stderr unless --quiet).
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress line.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
}

/// Check whether ECN and DSCP survive the path to an echo, and find the path MTU.
#[derive(Debug, Args)]
#[command(
    long_about = "\
Against a `volley echo`, check the path: send each ECN codepoint and see what the \
echo saw (preserved, re-marked to CE by a congested router, bleached to Not-ECT, \
re-marked, or dropped); send DSCP EF, AF41 and CS1 likewise; check the return \
path with the echo's replies; and find the path MTU by sending datagrams with \
DF set (path-MTU discovery in probe mode) and binary-searching the largest UDP \
payload the echo receives, between 1200 bytes and what the interface allows. \
ICMP \"packet too big\" messages shorten the search. Prints one verdict per item.",
    after_help = "\
Examples:
  volley path --to 127.0.0.1:4500
  volley path --to [2001:db8::7]:4500 --json
  volley path --to 192.0.2.7:4500 --no-mtu --timeout 5"
)]
pub(crate) struct PathArgs {
    /// The echo to check the path to: HOST:PORT.
    #[arg(long, short = 't', value_name = "ADDR")]
    pub(crate) to: String,
    /// How long to wait for a reply to each probe (tried up to three times within it).
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "2")]
    pub(crate) timeout: Duration,
    /// Skip the path-MTU search.
    #[arg(long)]
    pub(crate) no_mtu: bool,
    /// Smallest UDP payload for the path-MTU search, bytes.
    #[arg(long, value_name = "N", default_value_t = 1200)]
    pub(crate) mtu_min: usize,
    /// Local address to send from (default: the wildcard of the target's family).
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Option<String>,
    /// Print one JSON object instead of the verdicts.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Print every datagram that arrives, from any sender, with its metadata.
#[derive(Debug, Args)]
#[command(
    long_about = "\
Print one line per datagram that arrives, from any sender (not only volley: \
Python's socket module, nc -u, a WebRTC client), with everything the kernel \
reports about it: source, the local address it was sent to and the interface \
it arrived on (name and index), ECN codepoint, DSCP, TTL / hop limit, length, \
its place in a GRO train (each datagram of a coalesced receive gets its own \
line), truncation, the kernel receive timestamp (Unix time), the socket's \
kernel drop counter and the original destination (orig_dst: where a TPROXY rule \
diverted the datagram from). Unknown fields are left out of a text line (null in JSON). \
On exit (--count datagrams, --timeout, or Ctrl-C) a summary counts datagrams \
and bytes, datagrams per ECN codepoint and DSCP, truncations and drops. Exit \
status 3 if --count was not reached within --timeout.",
    after_help = "\
Examples:
  volley listen --listen 4500                    # [::]:4500, IPv6 and IPv4
  volley listen --listen 0.0.0.0:4500 --count 10 --json | jq -c 'select(.type == \"datagram\")'
  volley listen --listen 0.0.0.0:5000 --join 239.1.2.3@eth0 --reuse-port
  volley listen --listen [::]:5000 --join ff15::77@2 --timeout 30
Send from anything, e.g. (DSCP EF + ECT(0) is TOS 0xba):
  python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xba); s.sendto(b\"hi\", (\"127.0.0.1\", 4500))'
  echo hi | nc -u -w1 127.0.0.1 4500"
)]
pub(crate) struct ListenArgs {
    /// Address to listen on: IP:PORT, [IPv6]:PORT, or a bare PORT for [::]:PORT (IPv6 and IPv4).
    #[arg(long, short = 'l', value_name = "ADDR")]
    pub(crate) listen: String,
    /// Join a multicast group (repeatable): GROUP, or GROUP@IFACE with an interface name, index or IPv4
    /// address. Also sets SO_REUSEADDR, so several listeners can share the group's port.
    #[arg(long, value_name = "GROUP[@IFACE]", value_parser = crate::listen::parse_join)]
    pub(crate) join: Vec<crate::listen::Join>,
    /// Set SO_REUSEPORT: share the port with other sockets that set it.
    #[arg(long)]
    pub(crate) reuse_port: bool,
    /// On an IPv6 address, IPv6 only (default: dual stack, IPv4 too).
    #[arg(long)]
    pub(crate) ipv6_only: bool,
    /// Stop after this many datagrams.
    #[arg(long, short = 'c', value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Stop after this long (e.g. 10, 1.5, 500ms, 2m); default: run until interrupted.
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// One JSON object per line: a `listening` line, one `datagram` line each, a `summary` line.
    #[arg(long)]
    pub(crate) json: bool,
    /// No line per datagram: only the first line and the summary.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
    /// Turn GRO off: every datagram is its own receive.
    #[arg(long)]
    pub(crate) no_gro: bool,
    /// Receive buffer size to request, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub(crate) buffer: usize,
}

/// The four ECN codepoints, in the order help text lists them.
const ECN_ALL: [Ecn; 4] = [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1, Ecn::Ce];

/// Parses an ECN codepoint by the core's names (`not-ect`, `ect0`, `ect1`,
/// `ce`: `Ecn`'s `Display`), or `notect` / `none`.
pub(crate) fn parse_ecn(s: &str) -> Result<Ecn, String> {
    let lower = s.trim().to_ascii_lowercase();
    if matches!(lower.as_str(), "notect" | "none") {
        return Ok(Ecn::NotEct);
    }
    ECN_ALL.into_iter().find(|e| e.to_string() == lower).ok_or_else(|| {
        let names: Vec<String> = ECN_ALL.iter().map(Ecn::to_string).collect();
        format!("unknown ECN codepoint {s:?}: use one of {}", names.join(", "))
    })
}

/// Parses a DSCP by the core's names (`Dscp`'s `Display`: ef, af11..af43,
/// cs1..cs7, le, va, default), or the aliases be / df / cs0 / voice-admit,
/// or a number.
pub(crate) fn parse_dscp(s: &str) -> Result<Dscp, String> {
    let lower = s.trim().to_ascii_lowercase();
    let alias = match lower.as_str() {
        "be" | "df" | "cs0" => Some(0),
        "voice-admit" => Some(44),
        _ => None,
    };
    if let Some(v) = alias.or_else(|| (0..64).find(|&v| Dscp::from_tos(v << 2).to_string() == lower)) {
        return Ok(Dscp::from_tos(v << 2));
    }
    if lower.starts_with("af") {
        return Err(format!("unknown DSCP {s:?}: AF classes are af11..af43"));
    }
    let value = lower
        .parse::<u8>()
        .map_err(|_| format!("unknown DSCP {s:?}: use a name (ef, af11..af43, cs0..cs7, le, va, default) or 0..=63"))?;
    Dscp::new(value).map_err(|e| e.to_string())
}

/// Parses a duration: plain seconds (`1.5`) or with a unit (`500ms`, `2s`, `1m`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("not a duration: {s:?} (try 10, 1.5, 500ms, 2m)"))?;
    if !v.is_finite() || v < 0.0 || v * scale > 1e9 {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Parses a rate in datagrams per second with an optional k / M / G suffix.
pub(crate) fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| format!("not a rate: {s:?} (datagrams/s, e.g. 50000, 100k, 1M)"))?;
    if !v.is_finite() || v < 0.0 || v * scale > 1e12 {
        return Err(format!("rate out of range: {s:?}"));
    }
    Ok((v * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dscp_names_and_numbers() {
        assert_eq!(parse_dscp("EF").unwrap(), Dscp::EF);
        assert_eq!(parse_dscp("af41").unwrap(), Dscp::AF41);
        assert_eq!(parse_dscp("af11").unwrap().value(), 10);
        assert_eq!(parse_dscp("af43").unwrap().value(), 38);
        assert_eq!(parse_dscp("cs1").unwrap(), Dscp::CS1);
        assert_eq!(parse_dscp("cs7").unwrap().value(), 56);
        assert_eq!(parse_dscp("default").unwrap().value(), 0);
        assert_eq!(parse_dscp("63").unwrap().value(), 63);
        assert!(parse_dscp("64").is_err());
        assert!(parse_dscp("af51").is_err());
        assert!(parse_dscp("cs8").is_err());
        assert!(parse_dscp("fast").is_err());
        assert_eq!(parse_dscp("le").unwrap().value(), 1);
        assert_eq!(parse_dscp("VA").unwrap().value(), 44);
        assert_eq!(parse_dscp("be").unwrap().value(), 0);
        // Every value round-trips through the core's name for it.
        for v in 0..64u8 {
            let d = Dscp::new(v).unwrap();
            assert_eq!(parse_dscp(&d.to_string()).unwrap(), d);
        }
    }

    #[test]
    fn ecn_names_are_the_cores() {
        for e in ECN_ALL {
            assert_eq!(parse_ecn(&e.to_string()).unwrap(), e);
        }
        assert_eq!(parse_ecn("NONE").unwrap(), Ecn::NotEct);
        assert!(parse_ecn("purple").unwrap_err().contains("not-ect, ect0, ect1, ce"));
    }

    #[test]
    fn durations_and_rates() {
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_rate("0").unwrap(), 0);
        assert_eq!(parse_rate("100k").unwrap(), 100_000);
        assert_eq!(parse_rate("1.5M").unwrap(), 1_500_000);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("-5").is_err());
    }
}
