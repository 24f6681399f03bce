//! Network-namespace lab: throw-away topologies of namespaces joined by veth
//! pairs, for tests that need real hops (a router that marks ECN or answers
//! ICMP, a multi-homed host, a firewall that counts DSCP).
//!
//! ```text
//!   Lab (owns every namespace it made; deletes them in Drop, panic or not)
//!    |- Ns "vly-<pid>-<n>-client" --veth0a====veth0b-- Ns "vly-<pid>-<n>-router" ...
//!    `- names: vly-<pid>-<lab counter>-<role>; veth names: veth<k>a / veth<k>b
//! ```
//!
//! * Namespace names carry the test process id, so a later run deletes what
//!   a crashed run left behind ([`Lab::new`] does it once per process), and
//!   labs of parallel test threads or processes never collide.
//! * A veth pair is created directly in its two namespaces, so interface
//!   names need only be unique inside a namespace: `veth<k>a` / `veth<k>b`,
//!   with `k` counted per lab (short, and never an `ip` keyword).
//! * [`Ns::run`] runs a closure on a fresh thread that has entered the
//!   namespace with `setns(2)`. A socket created there belongs to that
//!   namespace for life, so the usual pattern is to create sockets in
//!   [`Ns::run`] and use them from the test thread.
//! * Commands run with a time limit and fail with the command line, exit
//!   status and stderr in the message.
//! * [`require_root`] / [`Lab::new`] skip a test with a printed reason when
//!   the lab can't be built (not root, `ip` missing), or fail it when the
//!   environment sets `VOLLEY_REQUIRE_LAB=1` (CI does).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

/// Every namespace the lab creates starts with this.
pub const PREFIX: &str = "vly-";
/// Set to `1` to turn "skip" into "fail" when the lab can't run.
pub const REQUIRE_ENV: &str = "VOLLEY_REQUIRE_LAB";
/// Where `ip netns` keeps its namespace handles.
pub const NETNS_DIR: &str = "/var/run/netns";
/// The longest any one command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// True if the environment demands the lab (`VOLLEY_REQUIRE_LAB=1`).
pub fn lab_required() -> bool {
    std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1")
}

/// The current test's name (libtest names the thread after the test).
fn test_name() -> String {
    thread::current().name().unwrap_or("<unnamed test>").to_owned()
}

/// Reports that the lab can't run: prints a skip line and returns `false`,
/// or panics if [`lab_required`].
///
/// # Panics
/// When `VOLLEY_REQUIRE_LAB=1`.
pub fn skip(reason: &str) -> bool {
    let test = test_name();
    assert!(!lab_required(), "{test}: {REQUIRE_ENV}=1 but the lab cannot run: {reason}");
    // Straight to the process's stderr, past libtest's capture, so a skip
    // shows in every log and not only with --nocapture.
    let _ = writeln!(io::stderr(), "SKIPPED {test}: {reason} (set {REQUIRE_ENV}=1 to make this a failure)");
    false
}

/// True if the process is root; otherwise prints why the test is skipped
/// and returns false (or panics under `VOLLEY_REQUIRE_LAB=1`).
pub fn require_root() -> bool {
    let euid = nix::unistd::geteuid();
    euid.is_root() || skip(&format!("network namespaces need root (euid is {euid})"))
}

/// Looks `tool` up in `PATH` (and the sbin directories root usually has).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// True if every tool is installed; otherwise skips (or fails) naming the
/// missing ones and the package to install.
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| find_tool(t).is_none()).collect();
    missing.is_empty()
        || skip(&format!(
            "missing tool(s) {missing:?}; install with: apt-get install -y nftables iproute2 iputils-ping ethtool"
        ))
}

/// The output of a finished command.
#[derive(Debug)]
pub struct Output {
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// Runs `argv` (no shell), feeding `stdin` if given, with
/// [`COMMAND_TIMEOUT`]; an error names the command, its status and stderr.
///
/// # Errors
/// The command could not start, ran too long, or exited unsuccessfully.
pub fn try_run(argv: &[&str], stdin: Option<&str>) -> io::Result<Output> {
    try_run_env(argv, stdin, &[], COMMAND_TIMEOUT)
}

/// [`try_run`] with extra environment variables and a time limit of its
/// own (for long children such as a re-executed test binary).
///
/// # Errors
/// The command could not start, ran longer than `timeout`, or exited
/// unsuccessfully; the error names the command, its status and stderr.
pub fn try_run_env(argv: &[&str], stdin: Option<&str>, env: &[(&str, &str)], timeout: Duration) -> io::Result<Output> {
    let line = argv.join(" ");
    let (prog, args) =
        argv.split_first().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut child = Command::new(prog)
        .args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("`{line}`: cannot start: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| io::Error::new(e.kind(), format!("`{line}`: writing stdin: {e}")))?;
    }
    // Drain the pipes on threads so a chatty command can't block on a full
    // pipe while we wait for it.
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("`{line}`: still running after {timeout:?}; killed"),
            ));
        }
        thread::sleep(Duration::from_millis(2));
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    if !status.success() {
        return Err(io::Error::other(format!("`{line}` failed ({status}): {}", stderr.trim())));
    }
    Ok(Output { stdout, stderr })
}

/// [`try_run`] that panics with the error; returns stdout.
///
/// # Panics
/// If the command fails.
pub fn run(argv: &[&str]) -> String {
    try_run(argv, None).unwrap_or_else(|e| panic!("{e}")).stdout
}

/// Deletes namespaces with our prefix whose creating process is gone (a
/// crashed or killed earlier run). Returns the names deleted.
pub fn clean_stale() -> Vec<String> {
    let own = std::process::id();
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut deleted = Vec::new();
    for entry in dir.flatten().take(10_000) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) =
            name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()).and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match try_run(&["ip", "netns", "del", &name], None) {
            Ok(_) => deleted.push(name),
            Err(e) => eprintln!("netlab: could not delete stale namespace {name}: {e}"),
        }
    }
    if !deleted.is_empty() {
        eprintln!("netlab: deleted stale namespaces of dead runs: {deleted:?}");
    }
    deleted
}

/// Serialises `ip netns add/del` inside the process: the first `add`
/// mounts /var/run/netns, and two racing first mounts stack.
static NETNS_LOCK: Mutex<()> = Mutex::new(());
static LAB_COUNTER: AtomicUsize = AtomicUsize::new(0);
static CLEAN_ONCE: Once = Once::new();

/// A set of namespaces and links, deleted when dropped.
#[derive(Debug)]
pub struct Lab {
    id: String,
    namespaces: Vec<String>,
    links: usize,
}

impl Lab {
    /// A new, empty lab, or `None` if the test should be skipped (a reason
    /// was printed). Checks root and `ip`, and once per process deletes
    /// stale namespaces of dead runs.
    ///
    /// # Panics
    /// Under `VOLLEY_REQUIRE_LAB=1` when the lab can't run.
    pub fn new() -> Option<Self> {
        Self::with_tools(&[])
    }

    /// Like [`Lab::new`], also requiring `tools` (e.g. `["nft"]`).
    ///
    /// # Panics
    /// Under `VOLLEY_REQUIRE_LAB=1` when the lab can't run.
    pub fn with_tools(tools: &[&str]) -> Option<Self> {
        let mut all = vec!["ip"];
        all.extend_from_slice(tools);
        if !require_root() || !require_tools(&all) {
            return None;
        }
        CLEAN_ONCE.call_once(|| {
            clean_stale();
        });
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        Some(Self { id: format!("{PREFIX}{}-{n}", std::process::id()), namespaces: Vec::new(), links: 0 })
    }

    /// This lab's name prefix, `vly-<pid>-<n>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Creates namespace `<id>-<role>` with `lo` up and IPv6 duplicate
    /// address detection off (addresses are usable at once).
    ///
    /// # Panics
    /// If `ip netns add` fails.
    pub fn ns(&mut self, role: &str) -> Ns {
        let name = format!("{}-{role}", self.id);
        {
            let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            run(&["ip", "netns", "add", &name]);
        }
        self.namespaces.push(name.clone());
        let ns = Ns { name };
        ns.ip("link set lo up");
        for key in ["all", "default"] {
            ns.sysctl(&format!("net.ipv6.conf.{key}.accept_dad"), "0");
        }
        ns
    }

    /// Joins `a` and `b` with a veth pair, both ends up. The ends are named
    /// `veth<k>a` (in `a`) and `veth<k>b` (in `b`).
    ///
    /// # Panics
    /// If `ip link add` fails.
    pub fn link(&mut self, a: &Ns, b: &Ns) -> (Iface, Iface) {
        let k = self.links;
        self.links += 1;
        let (name_a, name_b) = (format!("veth{k}a"), format!("veth{k}b"));
        run(&[
            "ip", "link", "add", &name_a, "netns", &a.name, "type", "veth", "peer", "name", &name_b, "netns", &b.name,
        ]);
        let ia = Iface { ns: a.clone(), name: name_a };
        let ib = Iface { ns: b.clone(), name: name_b };
        ia.up();
        ib.up();
        (ia, ib)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for name in self.namespaces.iter().rev() {
            // Never panic here: this may run while a failed test unwinds.
            if let Err(e) = try_run(&["ip", "netns", "del", name], None) {
                eprintln!("netlab: could not delete namespace {name}: {e}");
            }
        }
    }
}

/// A namespace of a [`Lab`] (a name; cheap to clone). Valid while its lab
/// lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ns {
    name: String,
}

impl Ns {
    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> <args>`, `args` split on whitespace; returns stdout.
    ///
    /// # Panics
    /// If the command fails.
    pub fn ip(&self, args: &str) -> String {
        let mut argv = vec!["ip", "-n", &self.name];
        argv.extend(args.split_whitespace());
        run(&argv)
    }

    /// Runs `argv` inside the namespace (`ip netns exec`); returns stdout.
    ///
    /// # Errors
    /// The command failed; the error says how.
    pub fn try_exec(&self, argv: &[&str], stdin: Option<&str>) -> io::Result<Output> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(argv);
        try_run(&full, stdin)
    }

    /// [`Ns::try_exec`] that panics on failure; returns stdout.
    ///
    /// # Panics
    /// If the command fails.
    pub fn exec(&self, argv: &[&str]) -> String {
        self.try_exec(argv, None).unwrap_or_else(|e| panic!("{e}")).stdout
    }

    /// Loads an nftables script (`nft -f -`) into the namespace.
    ///
    /// # Panics
    /// If `nft` rejects it; the message shows the script.
    pub fn nft(&self, script: &str) {
        if let Err(e) = self.try_exec(&["nft", "-f", "-"], Some(script)) {
            panic!("{e}\nscript:\n{script}");
        }
    }

    /// Packets counted so far by the named nftables counter
    /// (`nft -j list counter <family> <table> <name>`).
    ///
    /// # Panics
    /// If the counter doesn't exist or the output can't be parsed.
    pub fn nft_counter(&self, family: &str, table: &str, counter: &str) -> u64 {
        let out = self.exec(&["nft", "-j", "list", "counter", family, table, counter]);
        let json: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("nft -j output is not JSON ({e}): {out}"));
        json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|item| item["counter"]["packets"].as_u64())
            .unwrap_or_else(|| panic!("no counter {family} {table} {counter} in: {out}"))
    }

    /// Sets a sysctl inside the namespace (`net.*` keys are per namespace).
    ///
    /// # Panics
    /// If the key doesn't exist or can't be written.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = value.to_owned();
        self.run(move || {
            std::fs::write(&path, value.as_bytes()).unwrap_or_else(|e| panic!("sysctl {path} = {value}: {e}"));
        });
    }

    /// The interface index of `ifname`, as `ip -j link` reports it.
    ///
    /// # Panics
    /// If there is no such interface.
    pub fn ifindex(&self, ifname: &str) -> u32 {
        let out = self.ip(&format!("-j link show dev {ifname}"));
        let json: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j output is not JSON ({e}): {out}"));
        json[0]["ifindex"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or_else(|| panic!("no ifindex for {ifname} in {}: {out}", self.name))
    }

    /// Default route via `gw` (IPv4 or IPv6).
    ///
    /// # Panics
    /// If `ip route add` fails.
    pub fn default_route(&self, gw: &str) {
        let fam = if gw.contains(':') { "-6" } else { "-4" };
        self.ip(&format!("{fam} route add default via {gw}"));
    }

    /// Turns on IPv4 and IPv6 forwarding.
    pub fn forward(&self) {
        self.sysctl("net.ipv4.ip_forward", "1");
        self.sysctl("net.ipv6.conf.all.forwarding", "1");
    }

    /// Runs `f` on a new thread inside this namespace and returns its
    /// result; a panic in `f` propagates. Sockets created by `f` stay in the
    /// namespace whichever thread uses them later.
    ///
    /// # Panics
    /// If the namespace can't be entered, or `f` panics.
    pub fn run<R, F>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = self.path();
        thread::scope(|s| {
            let handle = thread::Builder::new()
                .name(format!("netns {}", self.name))
                .spawn_scoped(s, move || {
                    enter(&path).unwrap_or_else(|e| panic!("{e}"));
                    f()
                })
                .expect("spawn namespace thread");
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Like [`Ns::run`] but returns at once; join the handle for the result.
    ///
    /// # Panics
    /// If the thread can't be spawned (the closure panics inside it if the
    /// namespace can't be entered).
    pub fn spawn<R, F>(&self, f: F) -> thread::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let path = self.path();
        thread::Builder::new()
            .name(format!("netns {}", self.name))
            .spawn(move || {
                enter(&path).unwrap_or_else(|e| panic!("{e}"));
                f()
            })
            .expect("spawn namespace thread")
    }

    fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &Path) -> io::Result<()> {
    let file = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
    // setns only changes this thread's network namespace.
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("setns {}: {e}", path.display()))
    })
}

/// One end of a veth pair.
#[derive(Debug, Clone)]
pub struct Iface {
    /// The namespace it lives in.
    pub ns: Ns,
    /// Its name there.
    pub name: String,
}

impl Iface {
    /// Adds an address in CIDR form; IPv6 addresses skip duplicate address
    /// detection (`nodad`).
    ///
    /// # Panics
    /// If `ip addr add` fails.
    pub fn addr(&self, cidr: &str) -> &Self {
        let mut args = String::new();
        if cidr.contains(':') {
            let _ = write!(args, "-6 addr add {cidr} dev {} nodad", self.name);
        } else {
            let _ = write!(args, "addr add {cidr} dev {}", self.name);
        }
        self.ns.ip(&args);
        self
    }

    /// Sets the MTU.
    ///
    /// # Panics
    /// If `ip link set` fails.
    pub fn mtu(&self, mtu: u32) -> &Self {
        self.ns.ip(&format!("link set dev {} mtu {mtu}", self.name));
        self
    }

    /// Brings the interface up.
    ///
    /// # Panics
    /// If `ip link set` fails.
    pub fn up(&self) -> &Self {
        self.ns.ip(&format!("link set dev {} up", self.name));
        self
    }

    /// The interface index, from `ip -j link`.
    ///
    /// # Panics
    /// If the interface is gone.
    pub fn ifindex(&self) -> u32 {
        self.ns.ifindex(&self.name)
    }
}

/// The usual three-namespace line, with addresses on both families:
///
/// ```text
///  client                 router                          server
///  veth0a 10.77.1.1 ==== veth0b 10.77.1.254
///         fd00:77:1::1          fd00:77:1::fe
///                         veth1a 10.77.2.254   ==== veth1b 10.77.2.2
///                                fd00:77:2::fe             fd00:77:2::2
/// ```
/// Client and server route everything via the router, which forwards.
/// [`Line::new`] ends with a UDP round trip per family ([`Line::warm_up`]).
#[derive(Debug)]
pub struct Line {
    /// Owns the namespaces; they are deleted when the line is dropped.
    pub lab: Lab,
    /// The sending end.
    pub client: Ns,
    /// Forwards between the two links.
    pub router: Ns,
    /// The receiving end.
    pub server: Ns,
    /// Client's interface.
    pub client_if: Iface,
    /// Router's interface towards the client.
    pub router_client_if: Iface,
    /// Router's interface towards the server (the "far link").
    pub router_server_if: Iface,
    /// Server's interface.
    pub server_if: Iface,
}

impl Line {
    /// Client address on the near link.
    pub const CLIENT_V4: &'static str = "10.77.1.1";
    /// Server address on the far link.
    pub const SERVER_V4: &'static str = "10.77.2.2";
    /// Client IPv6 address.
    pub const CLIENT_V6: &'static str = "fd00:77:1::1";
    /// Server IPv6 address.
    pub const SERVER_V6: &'static str = "fd00:77:2::2";

    /// Builds the line, or `None` to skip (see [`Lab::new`]).
    ///
    /// # Panics
    /// If a step fails, or under `VOLLEY_REQUIRE_LAB=1` when the lab can't
    /// run.
    pub fn new(tools: &[&str]) -> Option<Self> {
        let mut lab = Lab::with_tools(tools)?;
        let client = lab.ns("client");
        let router = lab.ns("router");
        let server = lab.ns("server");
        let (client_if, router_client_if) = lab.link(&client, &router);
        let (router_server_if, server_if) = lab.link(&router, &server);
        client_if.addr("10.77.1.1/24").addr("fd00:77:1::1/64");
        router_client_if.addr("10.77.1.254/24").addr("fd00:77:1::fe/64");
        router_server_if.addr("10.77.2.254/24").addr("fd00:77:2::fe/64");
        server_if.addr("10.77.2.2/24").addr("fd00:77:2::2/64");
        router.forward();
        for (ns, v4, v6) in [(&client, "10.77.1.254", "fd00:77:1::fe"), (&server, "10.77.2.254", "fd00:77:2::fe")] {
            ns.default_route(v4);
            ns.default_route(v6);
        }
        let line = Self { lab, client, router, server, client_if, router_client_if, router_server_if, server_if };
        for v6 in [false, true] {
            line.warm_up(v6);
        }
        Some(line)
    }

    /// One UDP round trip client -> server -> client, so every neighbour
    /// entry on the way is resolved before a test sends a burst (a burst
    /// into an unresolved neighbour is queued, and the queue is small).
    ///
    /// # Panics
    /// If no round trip succeeds within a few tries.
    pub fn warm_up(&self, v6: bool) {
        let any: SocketAddr = if v6 { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("literal");
        let server_ip = self.server_ip(v6);
        let srv = self.server.run(|| UdpSocket::bind(SocketAddr::new(server_ip, 0)));
        let srv = srv.unwrap_or_else(|e| panic!("warm-up: bind in {}: {e}", self.server.name));
        let cli = self.client.run(|| UdpSocket::bind(any));
        let cli = cli.unwrap_or_else(|e| panic!("warm-up: bind in {}: {e}", self.client.name));
        let to = srv.local_addr().expect("local_addr");
        let step = Some(Duration::from_millis(500));
        srv.set_read_timeout(step).expect("timeout");
        cli.set_read_timeout(step).expect("timeout");
        let mut buf = [0u8; 16];
        for _ in 0..6 {
            if cli.send_to(b"warm-up", to).is_err() {
                thread::sleep(Duration::from_millis(100));
                continue;
            }
            let Ok((_, from)) = srv.recv_from(&mut buf) else { continue };
            if srv.send_to(b"warm-up", from).is_ok() && cli.recv_from(&mut buf).is_ok() {
                return;
            }
        }
        panic!("warm-up: no UDP round trip {} -> {to} and back", self.client_ip(v6));
    }

    /// The client's address of the given family.
    pub fn client_ip(&self, v6: bool) -> IpAddr {
        (if v6 { Self::CLIENT_V6 } else { Self::CLIENT_V4 }).parse().expect("literal")
    }

    /// The server's address of the given family.
    pub fn server_ip(&self, v6: bool) -> IpAddr {
        (if v6 { Self::SERVER_V6 } else { Self::SERVER_V4 }).parse().expect("literal")
    }
}

/// Polls `cond` every `step` until it holds or `timeout` passes (at most
/// `timeout / step + 1` checks). Returns whether it held.
pub fn wait_until(timeout: Duration, step: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let max_checks = timeout.as_millis() / step.as_millis().max(1) + 1;
    for _ in 0..max_checks {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            break;
        }
        thread::sleep(step);
    }
    cond()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_run_reports_command_and_stderr() {
        let e = try_run(&["sh", "-c", "echo boom >&2; exit 3"], None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn try_run_feeds_stdin() {
        let out = try_run(&["cat"], Some("hello")).unwrap();
        assert_eq!(out.stdout, "hello");
    }

    #[test]
    fn wait_until_is_bounded() {
        let start = Instant::now();
        assert!(!wait_until(Duration::from_millis(50), Duration::from_millis(10), || false));
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
