//! Bind-time options: a builder that ends in [`Config::bind`].
//!
//! Options that the kernel only honours before `bind(2)` (reuse, IPv6-only,
//! bind-to-device, freebind, transparent) are applied before it; the rest
//! right after.

use std::net::SocketAddr;

/// Which datapath a socket uses.
///
/// ```
/// use volley::{Backend, Config};
/// let sock = Config::new().backend(Backend::Portable).bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// assert!(!sock.capabilities().mmsg);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// The best the kernel offers: on Linux `recvmmsg`/`sendmmsg`, GSO and
    /// GRO where probed. The environment variable `VOLLEY_BACKEND=portable`
    /// turns this into [`Backend::Portable`] for every socket of the process,
    /// so a whole test suite can run against the fallback.
    #[default]
    Auto,
    /// The portable path: one datagram per `sendmsg`/`recvmsg`, GSO emulated
    /// by sending segments one by one, GRO off. What non-Linux Unixes get.
    Portable,
}

/// How a reuse-port group spreads datagrams over its sockets.
///
/// ```
/// assert_ne!(volley::Steering::Hash, volley::Steering::Cpu);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Steering {
    /// The kernel's default: a hash of the flow (addresses and ports), so
    /// one peer always reaches the same socket.
    #[default]
    Hash,
    /// By the CPU that processes the packet: socket `cpu % n`. With one
    /// socket per core (and RSS / RPS spreading flows over cores) each
    /// thread handles the packets its core received, without cross-core
    /// traffic. Linux only (`SO_ATTACH_REUSEPORT_CBPF`).
    Cpu,
}

/// Path-MTU discovery mode (`IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`).
///
/// ```
/// let c = volley::Config::new().pmtud(volley::Pmtud::Probe);
/// # let _ = c;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pmtud {
    /// Don't set DF: the kernel may fragment datagrams larger than the path.
    Off,
    /// Set DF and follow the kernel's path-MTU cache: once an ICMP "too big"
    /// arrives, larger sends fail with [`crate::Error::MessageTooLong`].
    Do,
    /// Set DF and ignore the path-MTU cache: sends up to the interface MTU
    /// always leave, so the application probes the path itself (QUIC's
    /// DPLPMTUD). The default for QUIC stacks.
    Probe,
}

/// Socket options, set up before or right after `bind(2)` as the kernel
/// requires. Every option has a sane default; [`Socket::bind`] is
/// `Config::new().bind(addr)`.
///
/// ```
/// use volley::Config;
/// let sock = Config::new()
///     .reuse_addr(true)
///     .recv_buffer_size(4 << 20)
///     .bind("127.0.0.1:0".parse().unwrap())
///     .unwrap();
/// println!("{}", sock.capabilities());
/// ```
///
/// [`Socket::bind`]: crate::Socket::bind
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Config {
    pub(crate) backend: Backend,
    pub(crate) gro: Option<bool>,
    pub(crate) gso: Option<bool>,
    pub(crate) reuse_addr: bool,
    pub(crate) reuse_port: bool,
    pub(crate) ipv6_only: Option<bool>,
    pub(crate) recv_buffer_size: Option<usize>,
    pub(crate) send_buffer_size: Option<usize>,
    pub(crate) tos: Option<u8>,
    pub(crate) pmtud: Option<Pmtud>,
    pub(crate) bind_device: Option<String>,
    pub(crate) timestamps: bool,
    pub(crate) txtime: bool,
    pub(crate) recv_errors: bool,
    pub(crate) broadcast: bool,
    pub(crate) freebind: bool,
    pub(crate) transparent: bool,
    pub(crate) mark: Option<u32>,
    pub(crate) orig_dst: bool,
    pub(crate) blocking: bool,
}

impl Config {
    /// The defaults: best backend, GSO and GRO on where available, kernel
    /// buffer sizes, dual-stack IPv6 sockets (`ipv6_only(false)`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses the datapath (default [`Backend::Auto`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Turns receive offload (`UDP_GRO`) on or off (default: on if the
    /// kernel supports it).
    pub fn gro(mut self, on: bool) -> Self {
        self.gro = Some(on);
        self
    }

    /// Turns send segmentation offload (`UDP_SEGMENT`) on or off (default:
    /// on if the kernel supports it). Off, multi-segment transmits are sent
    /// one datagram per message.
    pub fn gso(mut self, on: bool) -> Self {
        self.gso = Some(on);
        self
    }

    /// Puts the descriptor in blocking mode (default: non-blocking), for a
    /// server that gives each socket a thread of its own and no event loop.
    ///
    /// Then [`crate::Socket::recv_batch_blocking`] (and
    /// [`crate::Socket::recv_blocking`]) wait *in the kernel*: one
    /// `recvmmsg` with `MSG_WAITFORONE` sleeps until the first datagram and
    /// returns it with whatever else is queued, one syscall per wake-up,
    /// where the non-blocking way costs a `poll` too (and an `epoll` loop
    /// one more `recvmmsg` to hear `EAGAIN`). The timeout is the socket's
    /// `SO_RCVTIMEO`, set only when it changes (so a constant timeout costs
    /// nothing per call).
    ///
    /// Every `try_` call still never blocks (each passes `MSG_DONTWAIT`),
    /// so such a socket also works with mio; only the blocking helpers
    /// wait in the kernel.
    ///
    /// ```
    /// use std::time::Duration;
    /// use volley::{Config, RecvBatch, Transmit};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rx = Config::new().blocking(true).bind("127.0.0.1:0".parse()?)?;
    /// let mut batch = RecvBatch::new();
    /// // Nothing queued: a `try_` call still answers at once.
    /// assert!(rx.try_recv_batch(&mut batch).unwrap_err().is_would_block());
    /// rx.send_batch_blocking(&[Transmit::new(rx.local_addr()?, b"to myself")], Duration::from_secs(5))?;
    /// assert_eq!(rx.recv_batch_blocking(&mut batch, Duration::from_secs(5))?, 1);
    /// # Ok(()) }
    /// ```
    pub fn blocking(mut self, on: bool) -> Self {
        self.blocking = on;
        self
    }

    /// `SO_REUSEADDR` (before bind).
    pub fn reuse_addr(mut self, on: bool) -> Self {
        self.reuse_addr = on;
        self
    }

    /// `SO_REUSEPORT` (before bind): several sockets share one address and
    /// the kernel load-balances datagrams between them by flow hash.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// `IPV6_V6ONLY` (before bind, IPv6 sockets only). `false` (the default)
    /// makes a `[::]` socket also receive IPv4, reported as plain IPv4.
    pub fn ipv6_only(mut self, on: bool) -> Self {
        self.ipv6_only = Some(on);
        self
    }

    /// Requests `SO_RCVBUF` of `bytes`; the grant is in
    /// [`crate::Socket::recv_buffer_size`].
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.recv_buffer_size = Some(bytes);
        self
    }

    /// Requests `SO_SNDBUF` of `bytes`; the grant is in
    /// [`crate::Socket::send_buffer_size`].
    pub fn send_buffer_size(mut self, bytes: usize) -> Self {
        self.send_buffer_size = Some(bytes);
        self
    }

    /// The socket-level TOS / traffic-class byte (DSCP and ECN), as
    /// [`crate::Socket::set_tos`]. On Windows a DSCP other than 0 is a qWAVE
    /// flow to a connected peer, which a bind does not have: it is refused
    /// ([`crate::Error::SocketOption`], [`crate::OptionError::NotConnected`]);
    /// connect, then call `set_tos`.
    ///
    /// ```
    /// use volley::{Config, Dscp, Ecn, Error, OptionError};
    /// let af41 = Dscp::AF41.tos(Ecn::NotEct);
    /// match Config::new().tos(af41).bind("127.0.0.1:0".parse().unwrap()) {
    ///     Ok(sock) => assert_eq!(sock.tos().unwrap(), af41),
    ///     // Windows: a qWAVE flow needs a peer, which a bind does not have.
    ///     Err(Error::SocketOption { reason: OptionError::NotConnected, .. }) => assert!(cfg!(windows)),
    ///     Err(e) => panic!("{e}"),
    /// }
    /// ```
    pub fn tos(mut self, tos: u8) -> Self {
        self.tos = Some(tos);
        self
    }

    /// Path-MTU discovery mode (default: the kernel's, which on Linux sets
    /// DF and fragments only once an ICMP "too big" lowered the path MTU:
    /// `IP_PMTUDISC_WANT`).
    pub fn pmtud(mut self, mode: Pmtud) -> Self {
        self.pmtud = Some(mode);
        self
    }

    /// `SO_BINDTODEVICE` (before bind): only use this interface.
    pub fn bind_device(mut self, ifname: impl Into<String>) -> Self {
        self.bind_device = Some(ifname.into());
        self
    }

    /// Receive timestamps (`SO_TIMESTAMPNS`) in [`crate::RecvMeta::timestamp`].
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// Enables `SO_TXTIME` so [`crate::Transmit::txtime`] may be used.
    pub fn txtime(mut self, on: bool) -> Self {
        self.txtime = on;
        self
    }

    /// Enables the ICMP error queue (`IP_RECVERR` / `IPV6_RECVERR`), read
    /// with [`crate::Socket::try_recv_error`].
    pub fn recv_errors(mut self, on: bool) -> Self {
        self.recv_errors = on;
        self
    }

    /// `SO_BROADCAST`: lets the socket send to `255.255.255.255` and to a
    /// subnet's directed broadcast address (LAN discovery, game lobbies).
    /// Without it the kernel refuses such sends, which volley reports as
    /// [`crate::Error::BroadcastNotEnabled`]. Receiving broadcasts needs no
    /// option: a socket bound to the wildcard address gets them, with
    /// [`crate::RecvMeta::dst_ip`] the broadcast address. Every platform.
    ///
    /// ```
    /// let sock = volley::Config::new().broadcast(true).bind("0.0.0.0:0".parse().unwrap()).unwrap();
    /// assert!(sock.capabilities().broadcast);
    /// ```
    pub fn broadcast(mut self, on: bool) -> Self {
        self.broadcast = on;
        self
    }

    /// `IP_FREEBIND` / `IPV6_FREEBIND` (before bind): bind to an address no
    /// interface has yet (a service that starts before the network is up,
    /// or before a VPN or DHCP assigns its address); datagrams arrive once
    /// the address is added. No privilege needed. Linux and Android only:
    /// elsewhere [`crate::Error::SocketOption`] with
    /// [`crate::OptionError::Unsupported`].
    ///
    /// ```
    /// # if cfg!(any(target_os = "linux", target_os = "android")) {
    /// // 127.0.0.0/8 is all local on Linux; FREEBIND matters for addresses
    /// // that are not (yet) on any interface.
    /// let sock = volley::Config::new().freebind(true).bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(sock.capabilities().freebind);
    /// # }
    /// ```
    pub fn freebind(mut self, on: bool) -> Self {
        self.freebind = on;
        self
    }

    /// `IP_TRANSPARENT` / `IPV6_TRANSPARENT` (before bind): the socket may
    /// bind to and send from addresses that are not local, and receives
    /// datagrams a TPROXY firewall rule diverts to it. With
    /// [`Config::orig_dst`] each datagram says where it was going
    /// ([`crate::RecvMeta::orig_dst`]); a [`crate::Transmit::src_ip`] of
    /// that address answers from it. Needs `CAP_NET_ADMIN` (or
    /// `CAP_NET_RAW`): refused with [`crate::Error::SocketOption`] and
    /// [`crate::OptionError::PermissionDenied`] otherwise. Linux and Android
    /// only (`Unsupported` elsewhere). See the guide's transparent-proxy
    /// section.
    ///
    /// ```
    /// use volley::{Config, Error, OptionError};
    /// match Config::new().transparent(true).orig_dst(true).bind("0.0.0.0:0".parse().unwrap()) {
    ///     Ok(sock) => assert!(sock.capabilities().transparent && sock.capabilities().orig_dst),
    ///     Err(Error::SocketOption { reason: OptionError::PermissionDenied | OptionError::Unsupported, .. }) => {}
    ///     Err(other) => panic!("{other}"),
    /// }
    /// ```
    pub fn transparent(mut self, on: bool) -> Self {
        self.transparent = on;
        self
    }

    /// `SO_MARK`: the firewall mark of every packet the socket sends, for
    /// policy routing (`ip rule add fwmark ...`) and nftables `meta mark`
    /// rules, e.g. to keep a tunnel's own packets off the tunnel. Needs
    /// `CAP_NET_ADMIN` (or `CAP_NET_RAW`): refused with
    /// [`crate::Error::SocketOption`] and
    /// [`crate::OptionError::PermissionDenied`] otherwise. Linux and Android
    /// only (`Unsupported` elsewhere). The mark in force is in
    /// [`crate::Capabilities::mark`].
    ///
    /// ```
    /// match volley::Config::new().mark(0x51).bind("127.0.0.1:0".parse().unwrap()) {
    ///     Ok(sock) => assert_eq!(sock.capabilities().mark, Some(0x51)),
    ///     Err(e) => assert!(matches!(e, volley::Error::SocketOption { .. }), "{e}"),
    /// }
    /// ```
    pub fn mark(mut self, mark: u32) -> Self {
        self.mark = Some(mark);
        self
    }

    /// `IP_RECVORIGDSTADDR` / `IPV6_RECVORIGDSTADDR`: reports each
    /// datagram's original destination, address and port
    /// ([`crate::RecvMeta::orig_dst`]): where a datagram that a TPROXY rule
    /// diverted to this socket was going. Costs one control message per
    /// receive. Linux and Android only (`Unsupported` elsewhere).
    ///
    /// ```
    /// # if cfg!(any(target_os = "linux", target_os = "android")) {
    /// let sock = volley::Config::new().orig_dst(true).bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(sock.capabilities().orig_dst);
    /// # }
    /// ```
    pub fn orig_dst(mut self, on: bool) -> Self {
        self.orig_dst = on;
        self
    }

    /// Creates the socket, applies the options and binds it to `addr`.
    ///
    /// # Errors
    /// [`crate::Error::Bind`] naming the address and the reason;
    /// [`crate::Error::SocketOption`] if an option it asks for is refused.
    pub fn bind(&self, addr: SocketAddr) -> Result<crate::Socket, crate::Error> {
        crate::Socket::with_config(addr, self)
    }

    /// Binds `n` sockets to one address with `SO_REUSEPORT`, so a
    /// thread-per-core server can shard traffic, and attaches a classic-BPF
    /// program (`SO_ATTACH_REUSEPORT_CBPF`) for `steering` (Linux). If
    /// `addr` has port 0, the first socket picks the port and the rest join
    /// it.
    ///
    /// ```
    /// use volley::{Config, Steering};
    /// let group = Config::new().bind_reuse_port_group("127.0.0.1:0".parse().unwrap(), 4, Steering::Hash).unwrap();
    /// assert_eq!(group.len(), 4);
    /// let port = group[0].local_addr().unwrap().port();
    /// assert!(group.iter().all(|s| s.local_addr().unwrap().port() == port));
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::Bind`] from any member; an `InvalidInput` error if
    /// `n` is 0.
    pub fn bind_reuse_port_group(
        &self,
        addr: SocketAddr,
        n: usize,
        steering: Steering,
    ) -> Result<Vec<crate::Socket>, crate::Error> {
        if n == 0 {
            return Err(crate::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a reuse-port group needs at least one socket",
            )));
        }
        let config = self.clone().reuse_port(true);
        let first = config.bind(addr)?;
        let addr = first.local_addr()?;
        let mut group = Vec::with_capacity(n);
        group.push(first);
        for _ in 1..n {
            group.push(config.bind(addr)?);
        }
        if steering == Steering::Cpu {
            group[0].attach_cpu_steering(n)?;
        }
        Ok(group)
    }

    /// Takes over a UDP socket created elsewhere: an inherited descriptor
    /// (systemd socket activation passes bound sockets from fd 3 up, with
    /// `LISTEN_FDS`), one a supervisor hands over, or one bound before the
    /// process dropped its privileges. Accepts a [`std::net::UdpSocket`], a
    /// `socket2::Socket` or an [`OwnedFd`](crate::os::OwnedFd) (on Windows
    /// an `OwnedSocket`).
    ///
    /// The socket is made non-blocking and close-on-exec; everything this
    /// configuration asks that works on a bound socket is applied (TOS,
    /// path-MTU mode, buffers, error queue, timestamps, `SO_TXTIME`, GRO,
    /// broadcast, `freebind`, `transparent`, `mark`, `orig_dst`) and the
    /// kernel is probed as at [`Config::bind`]. An option the socket already
    /// has is left as it is, so a socket a privileged parent made
    /// transparent (or marked) adopts without the privilege; `freebind` and
    /// `transparent` set on an adopted socket no longer change its bind,
    /// only what it may send from. What only takes
    /// effect at bind (`reuse_addr`, `reuse_port`, `ipv6_only`,
    /// `bind_device`) is checked instead: if asked for and not so, the
    /// socket is refused with a typed reason rather than silently used
    /// otherwise. [`crate::Socket::into_std`] gives it back.
    ///
    /// ```
    /// use volley::{Config, Transmit};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bound = std::net::UdpSocket::bind("127.0.0.1:0")?; // e.g. inherited
    /// let addr = bound.local_addr()?;
    /// let sock = Config::new().recv_errors(true).adopt(bound)?;
    /// assert_eq!(sock.local_addr()?, addr);
    /// assert!(sock.capabilities().recv_errors);
    /// sock.send_batch_blocking(&[Transmit::new(addr, b"to myself")], std::time::Duration::from_secs(5))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::Adopt`] naming what does not fit;
    /// [`crate::Error::SocketOption`] if an option it asks for is refused.
    pub fn adopt(&self, socket: impl Into<crate::os::OwnedFd>) -> Result<crate::Socket, crate::Error> {
        crate::Socket::adopt(socket.into(), self)
    }

    pub(crate) fn effective_backend(&self) -> Backend {
        backend_under(self.backend, std::env::var_os("VOLLEY_BACKEND").as_deref())
    }
}

/// The backend a socket gets: `configured`, except that `Auto` becomes
/// `Portable` when the environment variable `VOLLEY_BACKEND` (its value
/// `env`) says `portable`. An explicit choice is never overridden.
fn backend_under(configured: Backend, env: Option<&std::ffi::OsStr>) -> Backend {
    if configured == Backend::Auto && env.is_some_and(|v| v == "portable") {
        return Backend::Portable;
    }
    configured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volley_backend_portable_turns_only_auto_into_portable() {
        use std::ffi::OsStr;
        let portable = Some(OsStr::new("portable"));
        assert_eq!(backend_under(Backend::Auto, portable), Backend::Portable);
        assert_eq!(backend_under(Backend::Auto, None), Backend::Auto);
        assert_eq!(backend_under(Backend::Auto, Some(OsStr::new("auto"))), Backend::Auto);
        assert_eq!(backend_under(Backend::Auto, Some(OsStr::new("Portable "))), Backend::Auto);
        assert_eq!(backend_under(Backend::Portable, None), Backend::Portable);
        assert_eq!(backend_under(Backend::Portable, portable), Backend::Portable);
    }

    /// Each builder sets its own field and keeps every other: chained in
    /// one expression, the last call must not have reset the first.
    #[test]
    fn every_builder_sets_its_field_and_keeps_the_rest() {
        let c = Config::new()
            .backend(Backend::Portable)
            .gro(false)
            .gso(false)
            .blocking(true)
            .reuse_addr(true)
            .reuse_port(true)
            .ipv6_only(true)
            .recv_buffer_size(1 << 20)
            .send_buffer_size(1 << 19)
            .tos(0xb8)
            .pmtud(Pmtud::Probe)
            .bind_device("lo")
            .timestamps(true)
            .txtime(true)
            .recv_errors(true)
            .broadcast(true)
            .freebind(true)
            .transparent(true)
            .mark(7)
            .orig_dst(true);
        assert_eq!(c.backend, Backend::Portable);
        assert_eq!((c.gro, c.gso, c.blocking), (Some(false), Some(false), true));
        assert_eq!((c.reuse_addr, c.reuse_port, c.ipv6_only), (true, true, Some(true)));
        assert_eq!((c.recv_buffer_size, c.send_buffer_size), (Some(1 << 20), Some(1 << 19)));
        assert_eq!((c.tos, c.pmtud, c.bind_device.as_deref()), (Some(0xb8), Some(Pmtud::Probe), Some("lo")));
        assert_eq!((c.timestamps, c.txtime, c.recv_errors, c.broadcast), (true, true, true, true));
        assert_eq!((c.freebind, c.transparent, c.mark, c.orig_dst), (true, true, Some(7), true));
        // And the opposite values, so no builder ignores its argument.
        let d = c.gro(true).gso(true).blocking(false).reuse_addr(false).reuse_port(false).ipv6_only(false);
        let d = d.timestamps(false).txtime(false).recv_errors(false).broadcast(false).freebind(false);
        let d = d.transparent(false).orig_dst(false).backend(Backend::Auto);
        assert_eq!(
            (d.gro, d.gso, d.blocking, d.reuse_addr, d.reuse_port),
            (Some(true), Some(true), false, false, false)
        );
        assert_eq!((d.ipv6_only, d.timestamps, d.txtime, d.recv_errors), (Some(false), false, false, false));
        assert_eq!((d.broadcast, d.freebind, d.transparent, d.orig_dst), (false, false, false, false));
        assert_eq!((d.backend, d.mark, d.tos), (Backend::Auto, Some(7), Some(0xb8)));
    }
}
