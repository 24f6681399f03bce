//! `volley path`: what the path to an echo does to ECN and DSCP marks, and
//! its MTU.
//!
//! Every probe is one request and one reply ([`Client::exchange`]). The
//! reply's payload says what the request arrived with (the forward path);
//! the echo sends the reply with those same marks, so the reply's own IP
//! header says what the return path did. The MTU search sends requests with
//! DF set and the kernel's path-MTU cache ignored (`Pmtud::Probe`), so each
//! size either reaches the echo whole or not at all.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;
use volley::{Config, Dscp, Ecn, Pmtud};

use crate::cli::PathArgs;
use crate::client::{describe_silence, Client, Outcome};
use crate::util::{header_overhead, local_for, ms, resolve};
use crate::wire::REQUEST_LEN;
use crate::ExitStatus;

/// Payload size of the ECN and DSCP probes.
const MARK_PROBE: usize = 64;
/// Tries per probe (a loss is not a verdict).
const TRIES: u32 = 3;

/// The whole result; also the `--json` schema.
#[derive(Debug, Serialize)]
struct Report {
    target: String,
    local: String,
    rtt_ms: f64,
    /// Where the echo's replies come from (the target, unless something
    /// on the way or the echo's host rewrites the source).
    reply_from: String,
    ecn: MarkReport,
    dscp: MarkReport,
    /// `None` with `--no-mtu`.
    path_mtu: Option<MtuReport>,
    /// ICMP errors seen during the run.
    icmp: Vec<String>,
}

/// The verdicts for one kind of mark.
#[derive(Debug, Serialize)]
struct MarkReport {
    /// `preserved`, or what went wrong on the way to the echo.
    verdict: String,
    /// Nothing was lost, bleached or re-marked (CE on ECT is fine).
    ok: bool,
    /// The same for the echo's replies on the way back.
    return_verdict: String,
    return_ok: bool,
    probes: Vec<MarkProbe>,
}

/// One mark sent, and what became of it.
#[derive(Debug, Serialize)]
struct MarkProbe {
    sent: String,
    /// As the echo received it; `null` if no reply or not reported.
    seen_by_echo: Option<String>,
    /// The reply's mark as received here (the echo sends what it saw).
    reply_received: Option<String>,
    /// `preserved`, `congestion-marked`, `bleached`, `re-marked`, `dropped`,
    /// `blocked` (a local firewall refused to send it) or `unknown`.
    forward: &'static str,
    reverse: &'static str,
}

#[derive(Debug, Serialize)]
struct MtuReport {
    verdict: String,
    /// The search worked: the smallest size got through.
    ok: bool,
    /// The largest IP packet that reached the echo (payload + IP + UDP headers).
    bytes: Option<usize>,
    /// The largest UDP payload that reached the echo.
    max_payload: Option<usize>,
    /// The local interface's MTU towards the target, if the kernel said.
    interface_mtu: Option<u32>,
    /// `path`, `interface` or `udp` (the protocol's 65,535-byte limit).
    limited_by: &'static str,
    /// The smallest MTU an ICMP "packet too big" named, if one came.
    icmp_mtu: Option<u32>,
    probes: u32,
}

pub(crate) fn run(args: &PathArgs) -> Result<ExitStatus> {
    let target = resolve(&args.to)?;
    let local = local_for(target, args.bind.as_deref())?;
    let sock = Config::new().pmtud(Pmtud::Probe).recv_errors(true).bind(local)?; // Error::Bind already names the address
    let local = sock.local_addr()?;
    if !sock.capabilities().ecn {
        eprintln!("warning: this kernel does not report the TOS byte: return-path verdicts will be unknown");
    }
    let mut client = Client::new(sock, target, 0);
    let per_try = (args.timeout / TRIES).max(Duration::from_millis(10));

    let first = client.exchange(REQUEST_LEN, Ecn::NotEct, None, per_try, TRIES)?;
    let Outcome::Reply(hello) = first else {
        bail!("{}", describe_silence(target, &first, args.timeout));
    };
    // A second exchange: the first one pays for waking the echo up.
    client.exchange(REQUEST_LEN, Ecn::NotEct, None, per_try, 1)?;
    let rtt = client.min_rtt_ns.unwrap_or(hello.rtt_ns);
    if !args.json {
        outln!("volley path to {target} from {local}");
        outln!("reachable: yes, rtt {}", ms(rtt));
        if !crate::client::same_addr(hello.src, target) {
            outln!(
                "  note: replies come from {}, not {target} (NAT, or a multi-homed echo without pktinfo)",
                hello.src
            );
        }
    }

    let mut ecn_probes = Vec::new();
    for ecn in [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1, Ecn::Ce] {
        let o = client.exchange(MARK_PROBE, ecn, None, per_try, TRIES)?;
        ecn_probes.push(ecn_probe(ecn, &o));
    }
    let ecn = summarize(ecn_probes);
    if !args.json {
        print_marks("ECN", &ecn);
    }

    let mut dscp_probes = Vec::new();
    for dscp in [Dscp::EF, Dscp::AF41, Dscp::CS1] {
        let o = client.exchange(MARK_PROBE, Ecn::NotEct, Some(dscp), per_try, TRIES)?;
        dscp_probes.push(dscp_probe(dscp, &o));
    }
    let dscp = summarize(dscp_probes);
    if !args.json {
        print_marks("DSCP", &dscp);
    }

    let path_mtu = if args.no_mtu { None } else { Some(search_mtu(&mut client, local, args, rtt)?) };
    if let (Some(m), false) = (&path_mtu, args.json) {
        outln!("{:<26}{}", format!("path MTU: {}", m.verdict), mtu_detail(m));
    }

    let report = Report {
        target: target.to_string(),
        local: local.to_string(),
        rtt_ms: client.min_rtt_ns.unwrap_or(rtt) as f64 / 1e6,
        reply_from: hello.src.to_string(),
        ecn,
        dscp,
        path_mtu,
        icmp: client.icmp.iter().map(|e| e.kind.to_string()).collect(),
    };
    if args.json {
        crate::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    }
    let ok = report.ecn.ok
        && report.ecn.return_ok
        && report.dscp.ok
        && report.dscp.return_ok
        && report.path_mtu.as_ref().is_none_or(|m| m.ok);
    Ok(if ok { ExitStatus::Success } else { ExitStatus::Problem })
}

fn ecn_probe(sent: Ecn, o: &Outcome) -> MarkProbe {
    let name = |e: Ecn| e.to_string();
    match o {
        Outcome::Reply(a) => {
            let seen = a.reply.received_tos.map(Ecn::from_bits);
            // The reply's ECN is known when the kernel reported its TOS byte.
            let back = a.dscp.map(|_| a.ecn);
            MarkProbe {
                sent: name(sent),
                seen_by_echo: seen.map(name),
                reply_received: back.map(name),
                forward: classify_ecn(sent, seen),
                reverse: seen.map_or("unknown", |s| classify_ecn(s, back)),
            }
        }
        _ => MarkProbe {
            sent: name(sent),
            seen_by_echo: None,
            reply_received: None,
            forward: lost(o),
            reverse: "unknown",
        },
    }
}

/// The class of a probe that got no reply.
fn lost(o: &Outcome) -> &'static str {
    match o {
        Outcome::Blocked => "blocked",
        _ => "dropped",
    }
}

fn classify_ecn(sent: Ecn, got: Option<Ecn>) -> &'static str {
    match got {
        None => "unknown",
        Some(g) if g == sent => "preserved",
        Some(Ecn::Ce) if matches!(sent, Ecn::Ect0 | Ecn::Ect1) => "congestion-marked",
        Some(Ecn::NotEct) => "bleached",
        Some(_) => "re-marked",
    }
}

fn dscp_probe(sent: Dscp, o: &Outcome) -> MarkProbe {
    match o {
        Outcome::Reply(a) => {
            let seen = a.reply.received_tos.map(Dscp::from_tos);
            MarkProbe {
                sent: sent.to_string(),
                seen_by_echo: seen.map(|d| d.to_string()),
                reply_received: a.dscp.map(|d| d.to_string()),
                forward: classify_dscp(sent, seen),
                reverse: seen.map_or("unknown", |s| classify_dscp(s, a.dscp)),
            }
        }
        _ => MarkProbe {
            sent: sent.to_string(),
            seen_by_echo: None,
            reply_received: None,
            forward: lost(o),
            reverse: "unknown",
        },
    }
}

fn classify_dscp(sent: Dscp, got: Option<Dscp>) -> &'static str {
    match got {
        None => "unknown",
        Some(g) if g == sent => "preserved",
        Some(g) if g == Dscp::DEFAULT => "bleached",
        Some(_) => "re-marked",
    }
}

fn fine(class: &str) -> bool {
    matches!(class, "preserved" | "congestion-marked")
}

/// What happened to one mark, in words.
fn describe(sent: &str, class: &str, got: Option<&str>) -> String {
    let got = got.unwrap_or("?");
    match class {
        "preserved" => format!("{sent} preserved"),
        "congestion-marked" => format!("{sent} arrived as {got} (a router signalled congestion; ECN works)"),
        "bleached" => format!("{sent} bleached to {got}"),
        "re-marked" => format!("{sent} re-marked to {got}"),
        "dropped" => format!("{sent} dropped (no reply in {TRIES} tries)"),
        "blocked" => format!("{sent} refused by a local firewall rule (EPERM on send)"),
        _ => format!("{sent} unknown (the TOS byte was not reported)"),
    }
}

fn verdict<'a>(items: impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)> + Clone) -> (String, bool) {
    let ok = items.clone().all(|(_, class, _)| fine(class));
    if items.clone().all(|(_, class, _)| class == "preserved") {
        return ("preserved".into(), true);
    }
    let notes: Vec<String> =
        items.filter(|(_, class, _)| *class != "preserved").map(|(s, c, g)| describe(s, c, g)).collect();
    (notes.join("; "), ok)
}

fn summarize(probes: Vec<MarkProbe>) -> MarkReport {
    let (verdict_fwd, ok) = verdict(probes.iter().map(|p| (p.sent.as_str(), p.forward, p.seen_by_echo.as_deref())));
    // The return path starts with what the echo saw; probes that never came
    // back say nothing about it.
    let (verdict_back, return_ok) = verdict(
        probes
            .iter()
            .filter(|p| p.seen_by_echo.is_some())
            .map(|p| (p.seen_by_echo.as_deref().unwrap_or("?"), p.reverse, p.reply_received.as_deref())),
    );
    MarkReport { verdict: verdict_fwd, ok, return_verdict: verdict_back, return_ok, probes }
}

fn print_marks(name: &str, r: &MarkReport) {
    let pairs: Vec<String> =
        r.probes.iter().map(|p| format!("{} -> {}", p.sent, p.seen_by_echo.as_deref().unwrap_or("(lost)"))).collect();
    outln!("{:<26}{}", format!("{name}: {}", short(&r.verdict)), pairs.join(", "));
    if !r.ok || r.verdict != "preserved" {
        outln!("  {}", r.verdict);
    }
    outln!("{name} (return path): {}", r.return_verdict);
}

/// The first word of a verdict for the aligned column.
fn short(v: &str) -> &str {
    if v == "preserved" {
        v
    } else {
        "changed"
    }
}

/// The local interface's MTU towards `target`: `IP_MTU` of a socket
/// connected to it.
fn interface_mtu(local: SocketAddr, target: SocketAddr) -> Option<u32> {
    let probe = Config::new().pmtud(Pmtud::Probe).bind(SocketAddr::new(local.ip(), 0)).ok()?;
    probe.connect(target).ok()?;
    probe.path_mtu().ok()
}

fn search_mtu(client: &mut Client, local: SocketAddr, args: &PathArgs, rtt_ns: u64) -> Result<MtuReport> {
    let target = client.target;
    let v4 = target.is_ipv4();
    let hdr = header_overhead(v4);
    let udp_max = if v4 { volley::MAX_PAYLOAD_V4 } else { volley::MAX_PAYLOAD_V6 };
    let interface_mtu = interface_mtu(local, target);
    let top = interface_mtu.map_or(udp_max, |m| (m as usize).saturating_sub(hdr).min(udp_max));
    let floor = args.mtu_min.clamp(REQUEST_LEN, top);
    // A size that gets no reply costs a wait: scale it to the path's RTT.
    let per_try = Duration::from_nanos(rtt_ns.saturating_mul(20))
        .clamp(Duration::from_millis(100), (args.timeout / TRIES).max(Duration::from_millis(100)));
    let mut probes = 0;
    let mut icmp_mtu: Option<u32> = None;
    let mut try_size = |size: usize, icmp_mtu: &mut Option<u32>| -> Result<Result<(), Option<usize>>> {
        probes += 1;
        match client.exchange(size, Ecn::NotEct, None, per_try, 2)? {
            Outcome::Reply(_) => Ok(Ok(())),
            Outcome::TooBig { mtu } => {
                if let Some(m) = mtu {
                    *icmp_mtu = Some(icmp_mtu.map_or(m, |old| old.min(m)));
                }
                Ok(Err(mtu.map(|m| (m as usize).saturating_sub(hdr))))
            }
            _ => Ok(Err(None)),
        }
    };

    if try_size(floor, &mut icmp_mtu)?.is_err() {
        return Ok(MtuReport {
            verdict: format!("below {} bytes ({floor}-byte datagrams do not get through with DF set)", floor + hdr),
            ok: false,
            bytes: None,
            max_payload: None,
            interface_mtu,
            limited_by: "path",
            icmp_mtu,
            probes,
        });
    }
    // Invariant: `good` got through, `bad` did not (or is past the top).
    let (mut good, mut bad) = (floor, top + 1);
    let mut next = top; // the common case: the whole way is open
    while bad - good > 1 {
        let size = next.clamp(good + 1, bad - 1);
        match try_size(size, &mut icmp_mtu)? {
            Ok(()) => good = size,
            Err(hint) => {
                bad = size;
                // An ICMP "packet too big" names the size to try next.
                if let Some(p) = hint.filter(|p| *p > good && *p < bad) {
                    next = p;
                    continue;
                }
            }
        }
        next = good + (bad - good) / 2;
    }
    let limited_by = if good < top {
        "path"
    } else if top == udp_max {
        "udp"
    } else {
        "interface"
    };
    Ok(MtuReport {
        verdict: format!("{} bytes", good + hdr),
        ok: true,
        bytes: Some(good + hdr),
        max_payload: Some(good),
        interface_mtu,
        limited_by,
        icmp_mtu,
        probes,
    })
}

fn mtu_detail(m: &MtuReport) -> String {
    let Some(payload) = m.max_payload else {
        return String::new();
    };
    let why = match m.limited_by {
        "udp" => "UDP's own maximum".to_owned(),
        "interface" => format!("the local interface's MTU {}", m.interface_mtu.unwrap_or(0)),
        _ => m.icmp_mtu.map_or_else(
            || "the path: larger datagrams with DF set get no reply".to_owned(),
            |i| format!("the path: a router reported MTU {i}"),
        ),
    };
    format!("largest UDP payload {payload} bytes, limited by {why}; {} probes", m.probes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(sent: &str, seen: Option<&str>, forward: &'static str) -> MarkProbe {
        MarkProbe {
            sent: sent.into(),
            seen_by_echo: seen.map(Into::into),
            reply_received: seen.map(Into::into),
            forward,
            reverse: if seen.is_some() { "preserved" } else { "unknown" },
        }
    }

    #[test]
    fn ecn_classes() {
        assert_eq!(classify_ecn(Ecn::Ect0, Some(Ecn::Ect0)), "preserved");
        assert_eq!(classify_ecn(Ecn::Ect0, Some(Ecn::Ce)), "congestion-marked");
        assert_eq!(classify_ecn(Ecn::Ect1, Some(Ecn::NotEct)), "bleached");
        assert_eq!(classify_ecn(Ecn::Ect0, Some(Ecn::Ect1)), "re-marked");
        assert_eq!(classify_ecn(Ecn::NotEct, Some(Ecn::Ce)), "re-marked");
        assert_eq!(classify_ecn(Ecn::Ce, None), "unknown");
        assert_eq!(classify_dscp(Dscp::EF, Some(Dscp::EF)), "preserved");
        assert_eq!(classify_dscp(Dscp::EF, Some(Dscp::DEFAULT)), "bleached");
        assert_eq!(classify_dscp(Dscp::AF41, Some(Dscp::AF11)), "re-marked");
    }

    #[test]
    fn verdicts_name_what_went_wrong() {
        let all = summarize(vec![probe("ect0", Some("ect0"), "preserved"), probe("ce", Some("ce"), "preserved")]);
        assert_eq!((all.verdict.as_str(), all.ok, all.return_ok), ("preserved", true, true));

        let ce = summarize(vec![probe("ect0", Some("ce"), "congestion-marked")]);
        assert!(ce.ok, "CE on ECT is ECN working");
        assert!(ce.verdict.contains("ect0 arrived as ce"), "{}", ce.verdict);

        let bad = summarize(vec![
            probe("ect1", Some("not-ect"), "bleached"),
            probe("ef", Some("af11"), "re-marked"),
            probe("ce", None, "dropped"),
        ]);
        assert!(!bad.ok);
        assert_eq!(bad.verdict, "ect1 bleached to not-ect; ef re-marked to af11; ce dropped (no reply in 3 tries)");
        // The lost probe says nothing about the return path.
        assert_eq!(bad.return_verdict, "preserved");
    }
}
