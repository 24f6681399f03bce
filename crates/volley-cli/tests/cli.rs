//! Runs the `volley` binary the way a user does: spawned, with arguments,
//! reading its output and exit status. Loopback only; every echo is killed
//! by a guard, even when a test fails.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use volley::{Config, Dscp, Ecn, RecvBatch, Socket, Transmit};
use volley_cli::wire::{Reply, Request, REPLY_LEN};

const BIN: &str = env!("CARGO_BIN_EXE_volley");
const WAIT: Duration = Duration::from_secs(10);

/// A running `volley echo`, killed on drop.
struct Echo {
    child: Child,
    addr: SocketAddr,
}

impl Echo {
    /// Starts an echo on `listen` (port 0: the kernel picks a free one) and
    /// waits for its "listening on ADDR" line: once printed, it is bound.
    fn start(listen: &str) -> Self {
        let mut child = Command::new(BIN)
            .args(["echo", "--listen", listen, "--quiet"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn volley echo");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep reading so the echo never blocks on a full pipe.
            for _ in lines {}
        });
        let mut echo = Self { child, addr: "0.0.0.0:0".parse().unwrap() };
        let line = match rx.recv_timeout(WAIT) {
            Ok(Some(Ok(line))) => line,
            other => panic!("volley echo did not start: {other:?}"),
        };
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        echo.addr = addr.parse().unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
        echo
    }

    /// The address to send to: the listening port on `ip`.
    fn at(&self, ip: &str) -> String {
        SocketAddr::new(ip.parse().unwrap(), self.addr.port()).to_string()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn volley(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run volley")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ipv6_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

#[test]
fn help_reads_well_for_every_subcommand() {
    for sub in [&[][..], &["probe"], &["echo"], &["blast"], &["path"]] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = volley(&args);
        ok(&out);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: volley"), "{args:?}:\n{text}");
        assert!(text.contains("Examples:"), "{args:?} has no examples:\n{text}");
    }
    // Usage errors exit with 2 and say what is wrong.
    let out = volley(&[]);
    assert_eq!(out.status.code(), Some(2));
    let out = volley(&["blast", "--to", "127.0.0.1:9", "--ecn", "purple"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("purple"));
    let out = volley(&["blast", "--to", "127.0.0.1:9", "--dscp", "af51"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("af11..af43"));
}

#[test]
fn probe_json_agrees_with_the_library() {
    let out = volley(&["probe", "--json"]);
    ok(&out);
    let report = json(&out);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(report["kernel"], kernel.trim());
    for key in ["rmem_max", "wmem_max", "rmem_default", "wmem_default"] {
        let file = std::fs::read_to_string(format!("/proc/sys/net/core/{key}")).unwrap();
        assert_eq!(report["sysctl"][key], file.trim().parse::<u64>().unwrap(), "{key}");
    }
    let families: &[(&str, &str)] =
        if ipv6_available() { &[("ipv4", "0.0.0.0:0"), ("ipv6", "[::]:0")] } else { &[("ipv4", "0.0.0.0:0")] };
    for (family, addr) in families {
        let f = &report[family];
        let addr: SocketAddr = addr.parse().unwrap();
        let caps = Socket::bind(addr).unwrap().capabilities();
        assert_eq!(f["available"], true, "{family}");
        assert_eq!(f["mmsg"], caps.mmsg, "{family}");
        assert_eq!(f["max_gso_segments"], caps.max_gso_segments, "{family}");
        assert_eq!(f["gso"], caps.gso(), "{family}");
        assert_eq!(f["gro"], caps.gro, "{family}");
        assert_eq!(f["pktinfo"], caps.pktinfo, "{family}");
        assert_eq!(f["ecn"], caps.ecn, "{family}");
        assert_eq!((f["ecn_send"].as_bool(), f["src_send"].as_bool()), (Some(caps.ecn_send), Some(caps.src_send)));
        assert_eq!(f["tos_cmsg"], caps.tos_cmsg, "{family}");
        assert_eq!(f["ttl"], caps.ttl, "{family}");
        assert_eq!(f["drop_counter"], caps.drop_counter, "{family}");
        assert_eq!(f["multicast"], caps.multicast, "{family}");
        assert_eq!(f["qwave"], caps.qwave, "{family}");
        assert_eq!(f["dscp_send"], caps.dscp_send, "{family}");
        let with = |c: Config| c.bind(addr).map(|s| s.capabilities()).ok();
        assert_eq!(f["timestamps"], with(Config::new().timestamps(true)).is_some_and(|c| c.timestamps));
        assert_eq!(f["txtime"], with(Config::new().txtime(true)).is_some_and(|c| c.txtime));
        assert_eq!(f["recv_errors"], with(Config::new().recv_errors(true)).is_some_and(|c| c.recv_errors));
        assert_eq!(f["broadcast"], with(Config::new().broadcast(true)).is_some_and(|c| c.broadcast));
        assert_eq!(f["freebind"], with(Config::new().freebind(true)).is_some_and(|c| c.freebind));
        assert_eq!(f["transparent"], with(Config::new().transparent(true)).is_some_and(|c| c.transparent));
        assert_eq!(f["mark"], with(Config::new().mark(1)).is_some_and(|c| c.mark == Some(1)));
        assert_eq!(f["orig_dst"], with(Config::new().orig_dst(true)).is_some_and(|c| c.orig_dst));
        for (mode, m) in [("off", volley::Pmtud::Off), ("do", volley::Pmtud::Do), ("probe", volley::Pmtud::Probe)] {
            assert_eq!(f["pmtud"][mode], Config::new().pmtud(m).bind(addr).is_ok(), "{family} pmtud.{mode}");
        }
        let cpu = Config::new().bind_reuse_port_group(addr, 2, volley::Steering::Cpu).is_ok();
        assert_eq!(f["reuse_port"]["cpu"], cpu, "{family}");
        assert!(f["buffers"]["recv_default"].as_u64().unwrap() > 0);
    }
    // The human report names every item and the sysctls.
    let out = volley(&["probe"]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for item in [
        "GSO (UDP_SEGMENT)",
        "GRO (UDP_GRO)",
        "ECN/DSCP on send",
        "pktinfo",
        "drop counter",
        "PMTUD modes",
        "rmem_max",
        "broadcast",
        "IP_FREEBIND",
        "IP_TRANSPARENT",
        "SO_MARK",
        "original destination",
    ] {
        assert!(text.contains(item), "probe output lacks {item}:\n{text}");
    }
}

#[test]
fn echo_replies_in_the_wire_format_from_the_address_it_was_reached_on() {
    let echo = Echo::start("0.0.0.0:0");
    let client = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    // 127.0.0.3 is this host too; a wildcard echo must answer from it.
    let to: SocketAddr = echo.at("127.0.0.3").parse().unwrap();
    let mut request = vec![0u8; 1000];
    Request { seq: 42, timestamp: 7, tos: Dscp::EF.tos(Ecn::Ect1), pad_reply: false }.write(&mut request).unwrap();
    let mut padded = vec![0u8; 1500];
    Request { seq: 43, timestamp: 8, tos: 0, pad_reply: true }.write(&mut padded).unwrap();
    let transmits = [
        Transmit::new(to, b"not a VLY1 datagram").with_ecn(Ecn::Ect0),
        Transmit::new(to, &request).with_ecn(Ecn::Ect1).with_dscp(Dscp::EF),
        Transmit::new(to, &padded),
    ];
    client.send_batch_blocking(&transmits, WAIT).unwrap();

    let mut batch = RecvBatch::new();
    let mut replies = Vec::new();
    let deadline = Instant::now() + WAIT;
    while replies.len() < 2 && Instant::now() < deadline {
        client.recv_batch_blocking(&mut batch, WAIT).unwrap();
        for (meta, payload) in batch.iter() {
            replies.push((meta, Reply::parse(payload).unwrap(), payload.len()));
        }
    }
    replies.sort_by_key(|(_, r, _)| r.seq);
    assert_eq!(replies.len(), 2, "the foreign datagram gets no reply");
    let (meta, r, len) = replies[0];
    assert_eq!(meta.src, to, "reply from the address the request was sent to");
    assert_eq!((r.seq, r.timestamp, r.request_len, len), (42, 7, 1000, REPLY_LEN));
    assert_eq!(r.sent_tos, Dscp::EF.tos(Ecn::Ect1));
    assert_eq!(r.received_tos, Some(Dscp::EF.tos(Ecn::Ect1)));
    let ttl = std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl").unwrap();
    assert_eq!(r.received_ttl, Some(ttl.trim().parse().unwrap()));
    assert!(!r.truncated);
    assert_eq!((meta.ecn, meta.dscp), (Ecn::Ect1, Some(Dscp::EF)), "reply carries the marks the request had");
    let (meta, r, len) = replies[1];
    assert_eq!((r.seq, r.request_len, len), (43, 1500, 1500), "padded on request");
    assert_eq!((meta.ecn, r.received_tos), (Ecn::NotEct, Some(0)));
}

#[test]
fn blast_against_echo_reports_consistent_numbers() {
    let echo = Echo::start("127.0.0.1:0");
    let to = echo.at("127.0.0.1");
    let out = volley(&["blast", "--to", &to, "--duration", "1", "--rate", "20k", "--ecn", "ect0", "--json"]);
    ok(&out);
    let r = json(&out);
    let sent = r["sent"]["datagrams"].as_u64().unwrap();
    let received = r["replies"]["received"].as_u64().unwrap();
    let lost = r["loss"]["lost"].as_u64().unwrap();
    assert!(sent > 10_000 && sent <= 20_100, "20k/s for 1 s sent {sent}");
    assert!(received <= sent);
    assert_eq!(lost, sent - received);
    let ratio = r["loss"]["ratio"].as_f64().unwrap();
    assert!((ratio - lost as f64 / sent as f64).abs() < 1e-9);
    assert!(ratio < 0.05, "loss {ratio} on loopback at 20k/s");
    assert_eq!(r["replies"]["duplicates"], 0);
    assert_eq!(r["config"]["ecn"], "ect0");
    assert_eq!(r["sent"]["bytes"], sent * 1200);
    assert!(r["sent"]["gbit_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["rtt_ms"]["min"].as_f64().unwrap() > 0.0);
    assert!(r["rtt_ms"]["p50"].as_f64().unwrap() <= r["rtt_ms"]["max"].as_f64().unwrap());
    // Every reply says the echo saw ECT(0), and came back ECT(0).
    let marks = &r["marks"];
    assert_eq!(marks["sent"]["ecn"], "ect0");
    assert_eq!(marks["seen_by_echo"]["ecn"], serde_json::json!({ "ect0": received }));
    assert_eq!(marks["replies_received"]["ecn"], serde_json::json!({ "ect0": received }));
    assert_eq!(marks["ecn_preserved"], true);
    assert_eq!(marks["dscp_preserved"], true);
    assert!(r["drops"]["local"].is_u64() && r["drops"]["echo"].is_u64());

    // The human report, with DSCP and without GSO.
    let out = volley(&["blast", "--to", &to, "-d", "300ms", "-r", "5k", "--gso", "1", "--dscp", "af41", "-q"]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in ["GSO 1", "sent ", "echoed ", "loss ", "rtt ", "DSCP af41 100.0%: ECN preserved, DSCP preserved"] {
        assert!(text.contains(line), "blast output lacks {line:?}:\n{text}");
    }
}

#[test]
fn path_finds_marks_preserved_and_the_mtu_on_loopback() {
    let mut cases = vec![("127.0.0.1:0", "127.0.0.1", 65_535)];
    if ipv6_available() {
        cases.push(("[::1]:0", "::1", 65_536));
    }
    for (listen, ip, mtu) in cases {
        let echo = Echo::start(listen);
        let start = Instant::now();
        let out = volley(&["path", "--to", &echo.at(ip), "--json"]);
        ok(&out);
        let r = json(&out);
        assert_eq!(r["ecn"]["verdict"], "preserved", "{r:#}");
        assert_eq!(r["ecn"]["return_verdict"], "preserved");
        assert_eq!(r["dscp"]["verdict"], "preserved", "{r:#}");
        assert_eq!(r["ecn"]["probes"].as_array().unwrap().len(), 4);
        assert_eq!(r["dscp"]["probes"][0]["seen_by_echo"], "ef");
        let bytes = r["path_mtu"]["bytes"].as_u64().unwrap();
        assert!(bytes > 1200);
        assert_eq!(bytes, mtu, "loopback MTU 65536, IPv4 capped by UDP's 65,507-byte payload");
        assert!(start.elapsed() < Duration::from_secs(5), "path took {:?}", start.elapsed());
    }
}

#[test]
fn path_verdicts_read_well() {
    let echo = Echo::start("127.0.0.1:0");
    let out = volley(&["path", "--to", &echo.at("127.0.0.1")]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in ["reachable: yes", "ECN: preserved", "DSCP: preserved", "path MTU: 65535 bytes"] {
        assert!(text.contains(line), "path output lacks {line:?}:\n{text}");
    }
}

#[test]
fn absent_peers_fail_fast_with_a_clear_message() {
    // A socket that never answers: "no reply within" the timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = silent.local_addr().unwrap().to_string();
    let runs = [vec!["path", "--to", &to, "--timeout", "600ms"], vec!["blast", "--to", &to, "--timeout", "600ms"]];
    for args in runs {
        let start = Instant::now();
        let out = volley(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("no reply from {to} within 600 ms")), "{args:?}: {err}");
        assert!(start.elapsed() < Duration::from_secs(3), "{args:?} took {:?}", start.elapsed());
    }
    // Nothing listening at all: the ICMP port unreachable says so at once.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = Instant::now();
    let out = volley(&["path", "--to", &format!("127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port unreachable") && err.contains("nothing listens"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    // Bad addresses are errors, not hangs.
    let out = volley(&["path", "--to", "no-such-host.invalid:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot resolve"));
}

#[test]
fn echo_with_a_duration_ends_by_itself() {
    let start = Instant::now();
    let out = volley(&["echo", "--listen", "127.0.0.1:0", "--duration", "300ms"]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("volley echo listening on 127.0.0.1:"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("echo: 0 requests"));
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// Runs `script` with `sh` in a new network namespace (its own loopback,
/// isolated from the host's); `None`, with the reason printed, where that
/// is not possible (not root, no `unshare`, `ip` or `nft`).
fn in_private_netns(script: &str) -> Option<Output> {
    let works = |cmd: &str, args: &[&str]| {
        Command::new(cmd).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    };
    if !works("unshare", &["-n", "true"]) || !works("nft", &["--version"]) || !works("ip", &["-V"]) {
        eprintln!("skipped: needs root, unshare, ip and nft for a private network namespace");
        return None;
    }
    Some(Command::new("unshare").args(["-n", "sh", "-c", script]).env("VOLLEY", BIN).output().expect("run unshare"))
}

#[test]
fn path_names_bleached_remarked_and_dropped_marks_and_exits_3() {
    // Inside the namespace: nftables rewrites the requests' marks on the
    // way out (rules apply in order: CE is dropped before ECT(0) becomes
    // CE), the replies go back untouched, and lo gets MTU 1400.
    let script = r#"
        (
        set -e
        ip link set lo up
        ip link set lo mtu 1400
        nft add table ip t
        nft add chain ip t out '{ type filter hook output priority -150; }'
        nft add rule ip t out udp dport 4500 ip ecn ce drop
        nft add rule ip t out udp dport 4500 ip ecn ect0 ip ecn set ce
        nft add rule ip t out udp dport 4500 ip ecn ect1 ip ecn set not-ect
        nft add rule ip t out udp dport 4500 ip dscp ef ip dscp set cs0
        nft add rule ip t out udp dport 4500 ip dscp af41 ip dscp set af11
        ) || exit 77
        "$VOLLEY" echo --listen 127.0.0.1:4500 --quiet --duration 20 >/dev/null &
        sleep 0.3
        "$VOLLEY" path --to 127.0.0.1:4500 --timeout 600ms --json
        rc=$?
        kill $!
        exit $rc
    "#;
    let Some(out) = in_private_netns(script) else { return };
    if out.status.code() == Some(77) {
        eprintln!("skipped: nftables set-up failed: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    assert_eq!(
        out.status.code(),
        Some(3),
        "a path that changes marks exits 3; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    let forward = |kind: &str| -> Vec<(String, String)> {
        r[kind]["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["sent"].as_str().unwrap().to_owned(), p["forward"].as_str().unwrap().to_owned()))
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect::<Vec<_>>();
    assert_eq!(
        forward("ecn"),
        pairs(&[("not-ect", "preserved"), ("ect0", "congestion-marked"), ("ect1", "bleached"), ("ce", "blocked")])
    );
    assert_eq!(forward("dscp"), pairs(&[("ef", "bleached"), ("af41", "re-marked"), ("cs1", "preserved")]));
    assert_eq!(r["ecn"]["ok"], false);
    assert_eq!(r["dscp"]["verdict"], "ef bleached to default; af41 re-marked to af11");
    assert_eq!(r["dscp"]["return_verdict"], "preserved", "the replies are not touched");
    assert_eq!(r["path_mtu"]["bytes"], 1400);
    assert_eq!(r["path_mtu"]["limited_by"], "interface");
}

/// `--size` takes up to the UDP maximum of the target's family, no more:
/// checked before any datagram is sent (nothing needs to listen).
#[test]
fn blast_size_limit_follows_the_address_family() {
    for (to, max) in [("127.0.0.1:9", volley::MAX_PAYLOAD_V4), ("[::1]:9", volley::MAX_PAYLOAD_V6)] {
        let over = (max + 1).to_string();
        let out = volley(&["blast", "--to", to, "--size", &over, "--duration", "1", "--quiet"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{to}: {err}");
        assert!(err.contains("out of range") && err.contains(&max.to_string()), "{to}: {err}");
    }
}
