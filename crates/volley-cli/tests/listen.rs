//! `volley listen` run as a user runs it: spawned with `--json`, fed by
//! senders that are not volley (a plain `std::net::UdpSocket` with its TOS
//! byte and TTL set through socket2, and Python's socket module when
//! `python3` is installed), and by a volley GSO train; every field of the
//! lines it prints is checked against what was sent. Every wait is bounded;
//! every listener is killed on drop, even when a test fails.
//!
//! Linux only: the senders set the traffic class with socket options
//! Windows lacks, and the multicast test uses network namespaces.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use socket2::SockRef;
use volley::{Socket, Transmit};

const BIN: &str = env!("CARGO_BIN_EXE_volley");
const WAIT: Duration = Duration::from_secs(10);

/// A running `volley listen --json`, killed on drop.
struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// The `listening` line.
    hello: Value,
    local: SocketAddr,
}

impl Listener {
    /// Starts `volley listen --json ARGS` and waits for its `listening`
    /// line: once printed, the socket is bound (and has joined its groups).
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("listen")
            .arg("--json")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn volley listen");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(WAIT).unwrap_or_else(|e| panic!("volley listen {args:?} printed nothing: {e}"));
        let hello: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("not JSON ({e}): {first}"));
        assert_eq!(hello["type"], "listening", "{first}");
        let local = hello["local"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{first}"));
        Self { child, lines, hello, local }
    }

    /// The address to send to: the listening port on `ip`.
    fn at(&self, ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), self.local.port())
    }

    /// Waits (bounded) for the listener to exit; its exit status and the
    /// JSON lines after the first.
    fn finish(mut self) -> (ExitStatus, Vec<Value>) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for volley listen") {
                break s;
            }
            assert!(Instant::now() < deadline, "volley listen did not exit within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")));
        }
        (status, out)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn volley(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run volley")
}

fn datagrams(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["type"] == "datagram").collect()
}

fn summary(lines: &[Value]) -> &Value {
    let last = lines.last().expect("no lines after the first");
    assert_eq!(last["type"], "summary", "the last line is the summary: {last}");
    last
}

/// A plain std socket with the TOS byte (IPv4) or traffic class (IPv6)
/// and the TTL / hop limit set, as any non-volley program would.
fn plain_sender(bind: &str, tos: u32, ttl: u32) -> UdpSocket {
    let sock = UdpSocket::bind(bind).expect("bind sender");
    let s = SockRef::from(&sock);
    if sock.local_addr().unwrap().is_ipv4() {
        s.set_tos_v4(tos).expect("IP_TOS");
        s.set_ttl_v4(ttl).expect("IP_TTL");
    } else {
        s.set_tclass_v6(tos).expect("IPV6_TCLASS");
        s.set_unicast_hops_v6(ttl).expect("IPV6_UNICAST_HOPS");
    }
    sock
}

/// Runs a Python 3 snippet; `false`, with the reason printed, when there is
/// no `python3`.
fn python(code: &str) -> bool {
    match Command::new("python3").args(["-c", code]).output() {
        Ok(out) => {
            assert!(out.status.success(), "python3 failed: {}", String::from_utf8_lossy(&out.stderr));
            true
        }
        Err(e) => {
            eprintln!("skipped the Python sender: no python3 ({e})");
            false
        }
    }
}

fn ipv6_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

/// Every field of a datagram line against what a plain sender set: source,
/// local address and interface, length, ECN, DSCP, TTL, timestamp; then
/// the summary's counts. A second sender is Python's socket module.
#[test]
fn listen_reports_what_plain_senders_set() {
    let has_python = Command::new("python3").arg("-V").output().is_ok();
    let want = if has_python { 3 } else { 2 };
    let l = Listener::start(&["--listen", "127.0.0.1:0", "--count", &want.to_string(), "--timeout", "10"]);
    assert_eq!(l.hello["stack"], "IPv4");
    assert_eq!(l.hello["reports"]["orig_dst"], true, "listen asks for the original destination");
    assert_eq!(l.hello["timestamps"], true, "listen turns kernel timestamps on");
    let to = l.at("127.0.0.1");

    // DSCP EF + ECT(0) (TOS 0xba), TTL 9; then AF41 + CE (0x8b), TTL 200.
    let a = plain_sender("127.0.0.1:0", 0xba, 9);
    a.send_to(&[7u8; 100], to).unwrap();
    let b = plain_sender("127.0.0.1:0", 0x8b, 200);
    b.send_to(b"", to).unwrap();
    // Python: CS1 + ECT(1) (0x21), TTL 3, 1000 bytes.
    let py = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x21)\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 3)\n\
         s.sendto(b'p' * 1000, ('127.0.0.1', {}))",
        to.port()
    );
    if has_python {
        // Sent after the first two have certainly arrived: order is checked.
        std::thread::sleep(Duration::from_millis(200));
        assert!(python(&py));
    } else {
        eprintln!("skipped the Python sender: no python3");
    }

    let (status, lines) = l.finish();
    assert!(status.success(), "exit {status:?}");
    let d = datagrams(&lines);
    assert_eq!(d.len(), want, "{lines:?}");
    let check = |d: &Value, n: u64, src: Option<SocketAddr>, len: u64, ecn: &str, dscp: u64, name: &str, ttl: u64| {
        assert_eq!(d["n"], n, "{d}");
        if let Some(src) = src {
            assert_eq!(d["src"], src.to_string(), "{d}");
        } else {
            assert!(d["src"].as_str().unwrap().starts_with("127.0.0.1:"), "{d}");
        }
        assert_eq!(d["dst_ip"], "127.0.0.1", "{d}");
        assert_eq!(d["iface"], "lo", "{d}");
        assert!(d["ifindex"].as_u64().is_some_and(|i| i > 0), "{d}");
        assert_eq!(d["len"], len, "{d}");
        assert_eq!(d["segment_size"], len, "{d}");
        assert_eq!((&d["gro_segment"], &d["gro_segments"]), (&Value::Null, &Value::Null), "{d}");
        assert_eq!(d["ecn"], ecn, "{d}");
        assert_eq!(d["dscp"], dscp, "{d}");
        assert_eq!(d["dscp_name"], name, "{d}");
        assert_eq!(d["ttl"], ttl, "{d}");
        assert_eq!(d["truncated"], false, "{d}");
        assert_eq!(d["control_truncated"], false, "{d}");
        // No TPROXY here: the original destination is the listener itself.
        assert_eq!(d["orig_dst"], to.to_string(), "{d}");
        // A kernel timestamp, Unix time in ns, within a minute of now.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let ts = d["timestamp_ns"].as_u64().unwrap_or_else(|| panic!("no timestamp: {d}"));
        assert!(now.abs_diff(ts) < 60_000_000_000, "timestamp {ts} vs now {now}");
    };
    check(d[0], 1, Some(a.local_addr().unwrap()), 100, "ect0", 46, "ef", 9);
    check(d[1], 2, Some(b.local_addr().unwrap()), 0, "ce", 34, "af41", 200);
    if has_python {
        check(d[2], 3, None, 1000, "ect1", 8, "cs1", 3);
    }

    let s = summary(&lines);
    assert_eq!(s["datagrams"], want as u64);
    assert_eq!(s["bytes"], if has_python { 1100 } else { 100 });
    assert_eq!(s["stopped_by"], "count");
    assert_eq!(s["ecn"]["ect0"], 1);
    assert_eq!(s["ecn"]["ce"], 1);
    assert_eq!(s["dscp"]["ef"], 1);
    assert_eq!(s["dscp"]["af41"], 1);
    if has_python {
        assert_eq!(s["ecn"]["ect1"], 1);
        assert_eq!(s["dscp"]["cs1"], 1);
    }
    assert_eq!(s["truncated"], 0);
    assert_eq!(s["tos_unknown"], 0);
    assert_eq!(s["kernel_drops"], 0);
}

/// A `[::]` listener is dual stack: it hears IPv6 and IPv4 senders, and
/// reports an IPv4 sender as plain IPv4 with the IPv4 local address.
#[test]
fn listen_dual_stack_hears_ipv6_and_ipv4() {
    if !ipv6_available() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let l = Listener::start(&["--listen", "[::]:0", "--count", "2", "--timeout", "10"]);
    assert_eq!(l.hello["stack"], "IPv6 and IPv4");
    let v6 = plain_sender("[::1]:0", 0x22, 17); // CS1 + ECT(0)
    v6.send_to(b"six", l.at("::1")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let v4 = plain_sender("127.0.0.1:0", 0xb9, 33); // EF + ECT(1)
    v4.send_to(b"four", l.at("127.0.0.1")).unwrap();
    let (status, lines) = l.finish();
    assert!(status.success(), "exit {status:?}");
    let d = datagrams(&lines);
    assert_eq!(d.len(), 2, "{lines:?}");
    assert_eq!(d[0]["src"], v6.local_addr().unwrap().to_string());
    assert_eq!(d[0]["dst_ip"], "::1");
    assert_eq!((&d[0]["ecn"], &d[0]["dscp_name"], &d[0]["ttl"]), (&"ect0".into(), &"cs1".into(), &17.into()));
    assert_eq!(d[0]["len"], 3);
    assert_eq!(d[1]["src"], v4.local_addr().unwrap().to_string(), "IPv4 sender shown as IPv4");
    assert_eq!(d[1]["dst_ip"], "127.0.0.1");
    assert_eq!((&d[1]["ecn"], &d[1]["dscp_name"], &d[1]["ttl"]), (&"ect1".into(), &"ef".into(), &33.into()));
    assert_eq!(d[1]["len"], 4);
    for x in &d {
        assert_eq!(x["iface"], "lo");
    }
}

/// A GSO train of 3 x 1200 + 100 bytes: one line per datagram, each with
/// its place in the GRO train when the kernel coalesced it (it says so in
/// the `listening` line), in order; the summary counts 4 datagrams.
#[test]
fn listen_shows_a_gro_train_datagram_by_datagram() {
    let l = Listener::start(&["--listen", "127.0.0.1:0", "--count", "4", "--timeout", "10"]);
    let tx = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut payload = vec![1u8; 3 * 1200 + 100];
    payload[1200..2400].fill(2);
    let t = Transmit::new(l.at("127.0.0.1"), &payload).with_segment_size(1200).with_ecn(volley::Ecn::Ect0);
    tx.send_batch_blocking(&[t], WAIT).unwrap();
    let (status, lines) = l.finish();
    assert!(status.success(), "exit {status:?}");
    let d = datagrams(&lines);
    let lens: Vec<u64> = d.iter().map(|x| x["len"].as_u64().unwrap()).collect();
    assert_eq!(lens, [1200, 1200, 1200, 100]);
    // Loopback hands a GSO send to a GRO socket as one message; where the
    // kernel did not coalesce, each datagram is its own receive.
    let coalesced = d[0]["gro_segments"] == 4;
    if !coalesced {
        eprintln!("note: the train arrived uncoalesced ): {}", d[0]);
    }
    for (i, x) in d.iter().enumerate() {
        assert_eq!(x["ecn"], "ect0");
        assert_eq!(x["src"], tx.local_addr().unwrap().to_string());
        if coalesced {
            assert_eq!(x["gro_segment"], i as u64 + 1, "{x}");
            assert_eq!(x["gro_segments"], 4, "{x}");
            assert_eq!(x["segment_size"], 1200, "{x}");
        }
    }
    let s = summary(&lines);
    assert_eq!(s["datagrams"], 4);
    assert_eq!(s["bytes"], 3700);
    assert_eq!(s["ecn"]["ect0"], 4);
    assert_eq!(s["messages"], if coalesced { 1 } else { 4 });
    assert_eq!(s["gro_trains"], u64::from(coalesced));
}

/// Ctrl-C (SIGINT) ends the listener cleanly, with its summary, exit 0.
#[test]
fn listen_prints_its_summary_on_ctrl_c() {
    let l = Listener::start(&["--listen", "127.0.0.1:0"]);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.send_to(b"one", l.at("127.0.0.1")).unwrap();
    tx.send_to(b"two!", l.at("127.0.0.1")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let kill = Command::new("kill").args(["-INT", &l.child.id().to_string()]).status();
    if !kill.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no `kill` command to send SIGINT");
        return;
    }
    let (status, lines) = l.finish();
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean exit");
    let s = summary(&lines);
    assert_eq!(s["stopped_by"], "signal");
    assert_eq!(s["datagrams"], 2);
    assert_eq!(s["bytes"], 7);
}

/// `--timeout` before `--count` is reached: the summary says so, exit 3.
#[test]
fn listen_timeout_before_count_exits_3() {
    let l = Listener::start(&["--listen", "127.0.0.1:0", "--count", "5", "--timeout", "300ms"]);
    UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"only one", l.at("127.0.0.1")).unwrap();
    let (status, lines) = l.finish();
    assert_eq!(status.code(), Some(3));
    let s = summary(&lines);
    assert_eq!((&s["stopped_by"], &s["datagrams"]), (&"timeout".into(), &1.into()));
}

/// The text form: one `key=value` line per datagram, then the summary.
#[test]
fn listen_text_lines_read_well() {
    let mut child = Command::new(BIN)
        .args(["listen", "--listen", "127.0.0.1:0", "--count", "1", "--timeout", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let port: u16 = first
        .split("listen on 127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("first line: {first}"));
    let tx = plain_sender("127.0.0.1:0", 0xba, 64);
    tx.send_to(b"hello", ("127.0.0.1", port)).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    let line = rest.lines().next().unwrap();
    let src = tx.local_addr().unwrap();
    assert!(
        line.starts_with(&format!("n=1 src={src} dst_ip=127.0.0.1 iface=lo len=5 ecn=ect0 dscp=ef ttl=64 ts=")),
        "{line}"
    );
    assert!(line.ends_with(&format!("drops=0 orig_dst=127.0.0.1:{port}")), "{line}");
    assert!(!line.contains("truncated"), "false fields are left out: {line}");
    assert!(rest.contains("summary: 1 datagrams, 5 bytes"), "{rest}");
    assert!(rest.contains("ecn   ect0 1"), "{rest}");
    assert!(rest.contains("dscp  ef 1"), "{rest}");
}

/// Bad `--join` arguments are usage errors (exit 2) naming what is wrong;
/// an interface that does not exist fails before binding (exit 1).
#[test]
fn listen_rejects_bad_groups_and_interfaces_clearly() {
    let usage = [
        ("10.0.0.1", "10.0.0.1 is not a multicast address"),
        ("banana@lo", "group \"banana\" is not an IP address"),
        ("239.1.2.3@", "no interface after the @"),
        ("ff15::77@10.0.0.1", "interface address 10.0.0.1 is IPv4 but group ff15::77 is IPv6"),
    ];
    for (arg, says) in usage {
        let out = volley(&["listen", "--listen", "127.0.0.1:0", "--join", arg]);
        assert_eq!(out.status.code(), Some(2), "--join {arg}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "--join {arg}: {err}");
    }
    let out = volley(&["listen", "--listen", "127.0.0.1:0", "--join", "239.1.2.3@nosuch0", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no interface named \"nosuch0\""));
    // An IPv6 group on an IPv4 socket: the core's typed refusal, named.
    let out = volley(&["listen", "--listen", "0.0.0.0:0", "--join", "ff15::77", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--join ff15::77") && err.contains("address family"), "{err}");
    // Not a number, not a duration.
    let out = volley(&["listen", "--listen", "127.0.0.1:0", "--count", "many"]);
    assert_eq!(out.status.code(), Some(2));
    let out = volley(&["listen", "--listen", "127.0.0.1:0", "--timeout", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
}

#[test]
fn listen_help_describes_it() {
    let out = volley(&["listen", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in ["Usage: volley listen", "Examples:", "--join", "--count", "--timeout", "--json", "Ctrl-C"] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
    let top = String::from_utf8_lossy(&volley(&["--help"]).stdout).into_owned();
    assert!(top.contains("listen"), "{top}");
}

/// A multicast group joined on `lo`, in a private network namespace where
/// `lo` gets the MULTICAST flag and the multicast route (many hosts' `lo`
/// has neither): the datagram arrives with the group as its local address.
/// Skipped, with the reason, without root / `unshare` / `ip` / `python3`.
#[test]
fn listen_joins_a_multicast_group_on_loopback() {
    let works = |cmd: &str, args: &[&str]| {
        Command::new(cmd).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    };
    if !works("unshare", &["-n", "true"]) || !works("ip", &["-V"]) || !works("python3", &["-V"]) {
        eprintln!("skipped: needs root, unshare, ip and python3 for a private network namespace with a sender");
        return;
    }
    let script = r#"
        ( set -e
          ip link set lo up
          ip link set lo multicast on
          ip route add 224.0.0.0/4 dev lo
        ) || exit 77
        "$VOLLEY" listen --listen 0.0.0.0:4600 --join 239.7.7.7@lo --count 1 --timeout 5 --json > "$OUT" &
        pid=$!
        for i in $(seq 50); do [ -s "$OUT" ] && break; sleep 0.1; done
        python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xb8)
s.sendto(b'group', ('239.7.7.7', 4600))"
        wait $pid
    "#;
    let out_file = std::env::temp_dir().join(format!("volley-listen-mcast-{}.jsonl", std::process::id()));
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .env("VOLLEY", BIN)
        .env("OUT", &out_file)
        .output()
        .expect("run unshare");
    let text = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    if out.status.code() == Some(77) {
        eprintln!("skipped: could not give lo multicast: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    assert!(out.status.success(), "exit {:?}: {}\n{text}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["groups"][0], "239.7.7.7@lo");
    let d = datagrams(&lines);
    assert_eq!(d.len(), 1, "{text}");
    assert_eq!(d[0]["dst_ip"], "239.7.7.7", "the group is the local address: {text}");
    assert_eq!(d[0]["iface"], "lo");
    assert_eq!(d[0]["ttl"], 1);
    assert_eq!((&d[0]["dscp_name"], &d[0]["ecn"]), (&"ef".into(), &"not-ect".into()));
    assert_eq!(d[0]["len"], 5);
    assert!(d[0]["src"].as_str().unwrap().parse::<SocketAddr>().is_ok_and(|a| matches!(a.ip(), IpAddr::V4(_))));
    assert_eq!(summary(&lines)["stopped_by"], "count");
}
