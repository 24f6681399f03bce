//! Names the platform groups once, so the code says `#[cfg(linux_like)]`
//! instead of repeating `any(target_os = "linux", target_os = "android")`.

fn main() {
    cfg_aliases::cfg_aliases! {
        // Linux and Android share a kernel: mmsg, GSO/GRO, the error queue.
        linux_like: { any(target_os = "linux", target_os = "android") },
        // A Unix without a file of its own under sys/: the portable path.
        generic_unix: { all(unix, not(linux_like)) },
        // recvmmsg / sendmmsg exist.
        has_mmsg: { linux_like },
    }
}
