//! Names the platform groups once, so the code says `#[cfg(linux_like)]`
//! instead of repeating `any(target_os = "linux", target_os = "android")`,
//! and gives each kernel (or libc) feature one name.

fn main() {
    cfg_aliases::cfg_aliases! {
        // Platforms with a file of their own under sys/.
        // Linux and Android share a kernel: mmsg, GSO/GRO, the error queue.
        linux_like: { any(target_os = "linux", target_os = "android") },
        android: { target_os = "android" },
        apple: { any(target_os = "macos", target_os = "ios", target_os = "tvos", target_os = "visionos", target_os = "watchos") },
        freebsd: { target_os = "freebsd" },
        // A Unix without a file of its own: the portable path only.
        generic_unix: { all(unix, not(any(linux_like, apple, freebsd))) },

        // Features, by what the kernel and the libc crate offer.
        // recvmmsg / sendmmsg (FreeBSD 11+).
        has_mmsg: { any(linux_like, freebsd) },
        // IP_PKTINFO with struct in_pktinfo (FreeBSD has IP_RECVDSTADDR,
        // IP_RECVIF and IP_SENDSRCADDR instead).
        has_pktinfo_v4: { any(linux_like, apple) },
        // SO_TXTIME / SCM_TXTIME and the reuse-port CBPF constants: in the
        // libc crate for Linux only (Android's bindings lack them).
        has_txtime: { target_os = "linux" },
        has_reuseport_cbpf: { target_os = "linux" },
        // SOCK_NONBLOCK | SOCK_CLOEXEC at socket(2) (not on Apple).
        has_sock_flags: { any(linux_like, freebsd) },
    }
}
