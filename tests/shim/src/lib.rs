//! `volley-shim`: an `LD_PRELOAD` fault injector for volley's lab tests.
//!
//! Some kernel failures cannot be produced on demand: since Linux 6.11 a GSO
//! send no longer fails with `EIO` on a device without checksum offload, and
//! the IPsec transforms that also give `EIO` are not in every kernel. So the
//! lab injects those faults at the syscall boundary instead, leaving
//! volley's own code path untouched: this library exports `sendmsg` and
//! `sendmmsg`, which the dynamic linker resolves before glibc's when it is
//! named in `LD_PRELOAD`. Each wrapper decides from the environment whether
//! to fail and otherwise forwards to the real function found with
//! `dlsym(RTLD_NEXT, ..)`.
//!
//! Modes, chosen once per process by the `VOLLEY_SHIM` environment variable:
//!
//! | `VOLLEY_SHIM` | effect |
//! | --- | --- |
//! | unset, empty | pass everything through |
//! | `eio-gso` | a message carrying a `SOL_UDP`/`UDP_SEGMENT` control message fails with `EIO`, like a GSO send through a device without checksum offload on older kernels |
//! | `einval-tos` | a message carrying an `IP_TOS` or `IPV6_TCLASS` control message fails with `EINVAL`, like Android before API 26 |
//! | `eio-tos` | the same with `EIO` |
//! | `eio-tos-gso` | a message carrying a TOS control message *and* `UDP_SEGMENT` fails with `EIO` (either alone passes), like some Android kernels |
//! | `enobufs:N` | the first `N` calls fail with `ENOBUFS` (a full device queue), later calls pass |
//!
//! `sendmmsg` behaves as the kernel does when message `i` fails: messages
//! `0..i` are really sent and the call returns `i`; if `i == 0` it returns
//! `-1` with `errno` set.
//!
//! A test can check the shim was really loaded (and how often it struck) by
//! looking up `volley_shim_faults` and `volley_shim_calls` with
//! `dlsym(RTLD_DEFAULT, ..)`.

use std::ffi::{c_int, c_uint, CStr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// `UDP_SEGMENT` from `<linux/udp.h>`: the GSO segment size control message.
const UDP_SEGMENT: c_int = 103;

/// Failures injected so far.
static FAULTS: AtomicU64 = AtomicU64::new(0);
/// Calls of either wrapper so far.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// What the shim does, parsed once from `VOLLEY_SHIM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PassThrough,
    EioOnGso,
    EinvalOnTos,
    EioOnTos,
    EioOnTosWithGso,
    Enobufs { first: u64 },
}

fn mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| {
        let Some(v) = std::env::var_os("VOLLEY_SHIM") else {
            return Mode::PassThrough;
        };
        let v = v.to_string_lossy();
        match v.as_ref() {
            "" | "off" => Mode::PassThrough,
            "eio-gso" => Mode::EioOnGso,
            "einval-tos" => Mode::EinvalOnTos,
            "eio-tos" => Mode::EioOnTos,
            "eio-tos-gso" => Mode::EioOnTosWithGso,
            other => match other.strip_prefix("enobufs:").map(str::parse) {
                Some(Ok(first)) => Mode::Enobufs { first },
                _ => {
                    eprintln!("volley-shim: unknown VOLLEY_SHIM={other:?}; passing calls through");
                    Mode::PassThrough
                }
            },
        }
    })
}

type SendmsgFn = unsafe extern "C" fn(c_int, *const libc::msghdr, c_int) -> isize;
type SendmmsgFn = unsafe extern "C" fn(c_int, *mut libc::mmsghdr, c_uint, c_int) -> c_int;

/// The next definition of `name` after this library (glibc's), cached.
fn next_symbol(cache: &AtomicUsize, name: &CStr) -> usize {
    let cached = cache.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: `name` is a NUL-terminated string; RTLD_NEXT is a valid pseudo
    // handle for a shared object; dlsym has no other preconditions.
    let sym = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    cache.store(sym, Ordering::Relaxed);
    sym
}

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = e };
}

/// The control messages of one message the modes look at.
#[derive(Debug, Clone, Copy, Default)]
struct Carries {
    /// `SOL_UDP`/`UDP_SEGMENT`.
    gso: bool,
    /// `IPPROTO_IP`/`IP_TOS` or `IPPROTO_IPV6`/`IPV6_TCLASS`.
    tos: bool,
}

/// Which of the control messages the modes look at `msg` carries.
///
/// # Safety
/// `msg` must point to a valid `msghdr` whose control buffer (if any) is
/// `msg_controllen` readable bytes, as `sendmsg(2)` requires anyway.
unsafe fn carries(msg: *const libc::msghdr) -> Carries {
    let mut out = Carries::default();
    if msg.is_null() {
        return out;
    }
    // SAFETY: the caller guarantees `msg` is valid; CMSG_FIRSTHDR/NXTHDR only
    // return headers inside the control buffer (or null).
    unsafe {
        if (*msg).msg_control.is_null() {
            return out;
        }
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::SOL_UDP, UDP_SEGMENT) => out.gso = true,
                (libc::IPPROTO_IP, libc::IP_TOS) | (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => out.tos = true,
                _ => {}
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    out
}

/// Whether a call should fail, and with which errno, given what the
/// (first) message carries.
fn fault_for(msg: Carries) -> Option<c_int> {
    match mode() {
        Mode::PassThrough => None,
        Mode::EioOnGso => msg.gso.then_some(libc::EIO),
        Mode::EinvalOnTos => msg.tos.then_some(libc::EINVAL),
        Mode::EioOnTos => msg.tos.then_some(libc::EIO),
        Mode::EioOnTosWithGso => (msg.tos && msg.gso).then_some(libc::EIO),
        Mode::Enobufs { first } => {
            // Counts calls, so "the first N" holds across threads too.
            static SEEN: AtomicU64 = AtomicU64::new(0);
            (SEEN.fetch_add(1, Ordering::Relaxed) < first).then_some(libc::ENOBUFS)
        }
    }
}

/// Wraps glibc's `sendmsg(2)`.
///
/// # Safety
/// Same contract as `sendmsg(2)`: `msg` points to a valid `msghdr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded from our caller's contract.
    let what = unsafe { carries(msg) };
    if let Some(errno) = fault_for(what) {
        FAULTS.fetch_add(1, Ordering::Relaxed);
        set_errno(errno);
        return -1;
    }
    let real = next_symbol(&REAL, c"sendmsg");
    if real == 0 {
        set_errno(libc::ENOSYS);
        return -1;
    }
    // SAFETY: `real` is glibc's sendmsg, whose signature SendmsgFn matches;
    // the arguments are our caller's, unchanged.
    unsafe {
        let f: SendmsgFn = std::mem::transmute::<usize, SendmsgFn>(real);
        f(fd, msg, flags)
    }
}

/// Wraps glibc's `sendmmsg(2)`.
///
/// # Safety
/// Same contract as `sendmmsg(2)`: `msgvec` points to `vlen` valid
/// `mmsghdr`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmmsg(fd: c_int, msgvec: *mut libc::mmsghdr, vlen: c_uint, flags: c_int) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    CALLS.fetch_add(1, Ordering::Relaxed);
    let real = next_symbol(&REAL, c"sendmmsg");
    if real == 0 {
        set_errno(libc::ENOSYS);
        return -1;
    }
    // SAFETY: `real` is glibc's sendmmsg, whose signature SendmmsgFn matches.
    let real: SendmmsgFn = unsafe { std::mem::transmute::<usize, SendmmsgFn>(real) };

    // The first message that fails, and why; messages before it go out.
    let mut fail: Option<(c_uint, c_int)> = None;
    if !msgvec.is_null() {
        for i in 0..vlen {
            // SAFETY: the caller guarantees `vlen` valid entries at `msgvec`.
            let what = unsafe { carries(&raw const (*msgvec.add(i as usize)).msg_hdr) };
            let errno = match mode() {
                // Whole-call faults apply to the first message only.
                Mode::Enobufs { .. } if i == 0 => fault_for(what),
                Mode::Enobufs { .. } => None,
                _ => fault_for(what),
            };
            if let Some(errno) = errno {
                fail = Some((i, errno));
                break;
            }
        }
    }
    match fail {
        None => {
            // SAFETY: our caller's arguments, unchanged.
            unsafe { real(fd, msgvec, vlen, flags) }
        }
        Some((0, errno)) => {
            FAULTS.fetch_add(1, Ordering::Relaxed);
            set_errno(errno);
            -1
        }
        Some((i, _)) => {
            FAULTS.fetch_add(1, Ordering::Relaxed);
            // The kernel sends the messages before the failing one and
            // reports how many; the error itself is not reported.
            // SAFETY: a prefix of our caller's valid vector.
            unsafe { real(fd, msgvec, i, flags) }
        }
    }
}

/// Failures injected in this process so far (for tests to check the shim
/// is loaded and struck).
#[unsafe(no_mangle)]
pub extern "C" fn volley_shim_faults() -> u64 {
    FAULTS.load(Ordering::Relaxed)
}

/// Calls of the `sendmsg`/`sendmmsg` wrappers in this process so far.
#[unsafe(no_mangle)]
pub extern "C" fn volley_shim_calls() -> u64 {
    CALLS.load(Ordering::Relaxed)
}
