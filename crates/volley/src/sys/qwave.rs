//! Socket-level DSCP on Windows, through qWAVE (`qwave.dll`, the QoS2 API
//! of `qos2.h`).
//!
//! Windows ignores `IP_TOS` / `IPV6_TCLASS` set by a program unless a
//! Group Policy QoS rule allows it. What a program can do itself is ask
//! qWAVE: a handle (`QOSCreateHandle`), a flow from the socket to one
//! destination (`QOSAddSocketToFlow`), and the flow's mark, either by its
//! traffic type (no privilege, three fixed DSCPs) or as any DSCP
//! (`QOSSetFlow` with `QOSSetOutgoingDSCPValue`: the process must belong
//! to Administrators or Network Configuration Operators).
//!
//! ```text
//!   Socket::set_tos(dscp << 2), on a connected socket
//!     0 ....................... the socket's flow, if any, closed
//!     8 (CS1) ................. a flow of type Background     } no privilege
//!     40 (CS5) ................ a flow of type AudioVideo     } (the DSCP qWAVE
//!     56 (CS7) ................ a flow of type Voice          }  documents for each)
//!     any other ............... a flow of type BestEffort, then
//!                               QOSSetFlow(QOSSetOutgoingDSCPValue): privileged
//! ```
//!
//! **Only a connected socket.** A flow is a socket *and a destination*:
//! `QOSAddSocketToFlow` takes the destination from `connect`, or, on an
//! unconnected socket, as an argument, one flow per destination. Marking
//! every destination of an unconnected socket would mean adding a flow on
//! the send path for each new peer and never knowing when one is done, so
//! volley keeps one flow, to the peer of a connected socket, and refuses
//! the rest (`OptionError::NotConnected`). The flow belongs to that peer:
//! a `connect` or `disconnect` through volley closes it, and the socket's
//! DSCP reads 0 again. qWAVE documents no support for IPv4-mapped
//! addresses: a dual-stack socket connected to an IPv4 peer is refused
//! (`Unsupported`) before qWAVE is asked.
//!
//! **Not per datagram.** qWAVE marks a flow, never one datagram, and the
//! stack ignores a program's `IP_TOS` control message: a transmit may only
//! ask for the DSCP the socket already marks (`validate.rs`). ECN stays
//! per datagram, in the `IP_ECN` control message (`cmsg.rs`).
//!
//! **Loaded, not linked.** `qwave.dll` is loaded from System32 at the
//! first bind (`LoadLibraryExW`), and its functions are looked up by name.
//! A load-time import would stop every volley program from starting where
//! the DLL is absent (Windows Server without the qWAVE feature, trimmed
//! images) for a feature most programs never use; loaded at run time, its
//! absence is one `false` capability and one typed error.
//!
//! **Under Wine 8** `QOSCreateHandle` fails (`ERROR_SERVICE_ALREADY_RUNNING`)
//! and every other export but `QOSAddSocketToFlow` is a stub that aborts
//! the process if called: nothing is called past a failed
//! `QOSCreateHandle`, so Wine shows the degradation and nothing else.

use std::io;
use std::net::SocketAddr;
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};

use windows_sys::core::BOOL;
use windows_sys::Win32::Foundation::{ERROR_ACCESS_DENIED, ERROR_NOT_SUPPORTED, HANDLE};
use windows_sys::Win32::NetworkManagement::QoS as qos;
use windows_sys::Win32::Networking::WinSock::{SOCKADDR, SOCKET};
use windows_sys::Win32::System::LibraryLoader::{GetProcAddress, LoadLibraryExW, LOAD_LIBRARY_SEARCH_SYSTEM32};
use windows_sys::Win32::System::IO::OVERLAPPED;

use super::SocketState;
use crate::os::{AsRawFd, BorrowedFd};
use crate::{Error, OptionError, SocketOption};

type CreateHandleFn = unsafe extern "system" fn(*const qos::QOS_VERSION, *mut HANDLE) -> BOOL;
type CloseHandleFn = unsafe extern "system" fn(HANDLE) -> BOOL;
type AddSocketToFlowFn =
    unsafe extern "system" fn(HANDLE, SOCKET, *const SOCKADDR, qos::QOS_TRAFFIC_TYPE, u32, *mut u32) -> BOOL;
type SetFlowFn = unsafe extern "system" fn(
    HANDLE,
    u32,
    qos::QOS_SET_FLOW,
    u32,
    *const core::ffi::c_void,
    u32,
    *mut OVERLAPPED,
) -> BOOL;

/// The qWAVE functions volley calls, looked up once per process.
struct Api {
    create_handle: CreateHandleFn,
    close_handle: CloseHandleFn,
    add_socket_to_flow: AddSocketToFlowFn,
    set_flow: SetFlowFn,
}

/// A qWAVE step that failed, and the OS error it left.
#[derive(Debug, Clone, Copy)]
struct Failed {
    step: &'static str,
    code: i32,
}

impl Failed {
    /// Captures `GetLastError` for `step`: call right after it failed.
    fn last(step: &'static str) -> Self {
        Self { step, code: io::Error::last_os_error().raw_os_error().unwrap_or(0) }
    }

    /// Why the step failed, for the caller.
    fn reason(self) -> OptionError {
        match u32::try_from(self.code) {
            Ok(ERROR_ACCESS_DENIED) => OptionError::PermissionDenied,
            Ok(ERROR_NOT_SUPPORTED) => OptionError::Unsupported,
            _ => OptionError::Other,
        }
    }

    /// The error a failed step becomes: `reason` (qWAVE unavailable is
    /// `Unsupported`, whatever the OS code), the step and the OS error in
    /// the message.
    fn into_error(self, reason: OptionError) -> Error {
        let os = io::Error::from_raw_os_error(self.code);
        let kind = match reason {
            OptionError::PermissionDenied => io::ErrorKind::PermissionDenied,
            OptionError::Unsupported => io::ErrorKind::Unsupported,
            _ => os.kind(),
        };
        let hint = match reason {
            OptionError::PermissionDenied => {
                "; any DSCP but 8, 40 and 56 needs Administrators or Network Configuration Operators"
            }
            _ => "",
        };
        let source = io::Error::new(kind, format!("qWAVE {} failed: {os}{hint}", self.step));
        Error::SocketOption { option: SocketOption::Dscp, reason, source }
    }
}

/// `qwave.dll` and its functions, loaded at the first call.
fn api() -> Result<&'static Api, Failed> {
    static API: OnceLock<Result<Api, Failed>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(|f| *f)
}

fn load() -> Result<Api, Failed> {
    let name: Vec<u16> = "qwave.dll".encode_utf16().chain([0]).collect();
    // SAFETY: LoadLibraryExW reads the NUL-terminated UTF-16 name (alive for
    // the call); no file handle (null, as the flag requires); from System32
    // only, so no DLL planted beside the program is loaded. The module is
    // never freed: the function pointers below stay valid for the process.
    let module = unsafe { LoadLibraryExW(name.as_ptr(), ptr::null_mut(), LOAD_LIBRARY_SEARCH_SYSTEM32) };
    if module.is_null() {
        return Err(Failed::last("loading qwave.dll"));
    }
    let find = |symbol: &'static [u8]| {
        // SAFETY: GetProcAddress reads the NUL-terminated ASCII name (a
        // static) in a module loaded above and never freed.
        unsafe { GetProcAddress(module, symbol.as_ptr()) }
            .ok_or_else(|| Failed::last(std::str::from_utf8(&symbol[..symbol.len() - 1]).unwrap_or("GetProcAddress")))
    };
    let (create, close, add, set) = (
        find(b"QOSCreateHandle\0")?,
        find(b"QOSCloseHandle\0")?,
        find(b"QOSAddSocketToFlow\0")?,
        find(b"QOSSetFlow\0")?,
    );
    // SAFETY: each pointer is the named qos2.h export, whose C signature
    // (WINAPI, i.e. "system") the type it becomes spells out; a fn pointer
    // to a fn pointer of another signature is a same-size transmute.
    unsafe {
        Ok(Api {
            create_handle: std::mem::transmute::<unsafe extern "system" fn() -> isize, CreateHandleFn>(create),
            close_handle: std::mem::transmute::<unsafe extern "system" fn() -> isize, CloseHandleFn>(close),
            add_socket_to_flow: std::mem::transmute::<unsafe extern "system" fn() -> isize, AddSocketToFlowFn>(add),
            set_flow: std::mem::transmute::<unsafe extern "system" fn() -> isize, SetFlowFn>(set),
        })
    }
}

/// A qWAVE handle; closing it removes every flow added on it.
#[derive(Debug)]
struct Handle(HANDLE);

// SAFETY: the handle is a process-wide kernel handle value, not tied to
// the thread that created it; volley uses it only under the socket's
// mutex (FlowSlot).
unsafe impl Send for Handle {}

impl Handle {
    fn create(api: &Api) -> Result<Self, Failed> {
        let version = qos::QOS_VERSION { MajorVersion: 1, MinorVersion: 0 };
        let mut handle: HANDLE = ptr::null_mut();
        // SAFETY: QOSCreateHandle reads the version (1.0, the only one
        // defined) and writes one HANDLE into `handle`.
        if unsafe { (api.create_handle)(&version, &mut handle) } == 0 {
            return Err(Failed::last("QOSCreateHandle"));
        }
        Ok(Self(handle))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // A Handle exists only after QOSCreateHandle succeeded, so the
        // functions were loaded.
        if let Ok(api) = api() {
            // SAFETY: the handle came from QOSCreateHandle and is closed
            // once, here. Closing ends its flows: the socket's traffic is
            // no longer marked (no QOSRemoveSocketFromFlow needed: one
            // handle per flow).
            unsafe { (api.close_handle)(self.0) };
        }
    }
}

/// Whether qWAVE answers in this process: `qwave.dll` loads and
/// `QOSCreateHandle` succeeds (the handle is closed again). Tested once,
/// at the first bind ([`crate::Capabilities::qwave`]); the privilege an
/// arbitrary DSCP needs is learned only when one is set.
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let probe = api().and_then(Handle::create);
        if let Err(f) = probe {
            tracing::debug!(step = f.step, error = %io::Error::from_raw_os_error(f.code), "qWAVE unavailable: socket-level DSCP refused");
        }
        probe.is_ok()
    })
}

/// The qWAVE traffic type that marks `dscp` by itself, without the
/// privilege `QOSSetOutgoingDSCPValue` needs (the values qos2.h documents).
fn traffic_type(dscp: u8) -> Option<qos::QOS_TRAFFIC_TYPE> {
    match dscp {
        8 => Some(qos::QOSTrafficTypeBackground),
        40 => Some(qos::QOSTrafficTypeAudioVideo),
        56 => Some(qos::QOSTrafficTypeVoice),
        _ => None,
    }
}

/// A socket's flow: added to qWAVE towards its peer, marked `dscp`.
#[derive(Debug)]
pub(crate) struct Flow {
    /// Held for its drop: closing the handle ends the flow.
    _handle: Handle,
    socket: SOCKET,
    peer: SocketAddr,
    dscp: u8,
}

/// The flow a socket has, if any (one per [`SocketState`]).
#[derive(Debug, Default)]
pub(crate) struct FlowSlot(Mutex<Option<Flow>>);

impl FlowSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Flow>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Adds the connected socket `socket` to a new flow marked `dscp`.
fn open(socket: SOCKET, peer: SocketAddr, dscp: u8) -> Result<Flow, Error> {
    let unavailable = |f: Failed| f.into_error(OptionError::Unsupported);
    let api = api().map_err(unavailable)?;
    let handle = Handle::create(api).map_err(unavailable)?;
    let fixed = traffic_type(dscp);
    let mut id: u32 = 0;
    // SAFETY: QOSAddSocketToFlow with a live handle and socket; no
    // destination (null: the socket is connected, qWAVE takes its peer);
    // non-adaptive (no network experiments); it writes the flow id into
    // `id`, which must be 0 on input.
    let added = unsafe {
        (api.add_socket_to_flow)(
            handle.0,
            socket,
            ptr::null(),
            fixed.unwrap_or(qos::QOSTrafficTypeBestEffort),
            qos::QOS_NON_ADAPTIVE_FLOW,
            &mut id,
        )
    };
    if added == 0 {
        let f = Failed::last("QOSAddSocketToFlow");
        return Err(f.into_error(f.reason()));
    }
    if fixed.is_none() {
        let value = u32::from(dscp);
        // SAFETY: QOSSetFlow on the flow just added, with the operation's
        // buffer (a DWORD DSCP, `value`, of the stated size); flags 0 as
        // required; no overlapped I/O (null: the call completes at once).
        let set = unsafe {
            (api.set_flow)(
                handle.0,
                id,
                qos::QOSSetOutgoingDSCPValue,
                size_of::<u32>() as u32,
                (&value as *const u32).cast(),
                0,
                ptr::null_mut(),
            )
        };
        if set == 0 {
            let f = Failed::last("QOSSetFlow(QOSSetOutgoingDSCPValue)");
            return Err(f.into_error(f.reason()));
        }
    }
    Ok(Flow { _handle: handle, socket, peer, dscp })
}

/// The socket-level TOS on Windows: its DSCP as a qWAVE flow to the
/// connected peer (module docs); 0 closes the flow. The old flow is closed
/// before a new one is added, so a refused change leaves the socket
/// unmarked, which `tos` then reads.
pub(super) fn set_tos(fd: BorrowedFd<'_>, state: &SocketState, tos: u8) -> Result<(), Error> {
    let refused = |reason, why: &str| Error::SocketOption {
        option: SocketOption::Dscp,
        reason,
        source: io::Error::new(
            match reason {
                OptionError::NotConnected => io::ErrorKind::NotConnected,
                _ => io::ErrorKind::Unsupported,
            },
            why,
        ),
    };
    if tos & 0b11 != 0 {
        return Err(refused(
            OptionError::Unsupported,
            "ECN in a socket-level TOS on Windows: the stack takes ECN per datagram only (Transmit::ecn)",
        ));
    }
    let dscp = tos >> 2;
    let socket = fd.as_raw_fd();
    let mut slot = state.qos.lock();
    if dscp == 0 {
        *slot = None;
        state.socket_dscp.store(0, Ordering::Relaxed);
        return Ok(());
    }
    let peer = match socket2::SockRef::from(&fd).peer_addr() {
        Ok(a) => a.as_socket(),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
        Err(e) => return Err(Error::Io(e)),
    };
    if let (Some(flow), Some(peer)) = (slot.as_ref(), peer) {
        if (flow.socket, flow.peer, flow.dscp) == (socket, peer, dscp) {
            return Ok(());
        }
    }
    *slot = None;
    state.socket_dscp.store(0, Ordering::Relaxed);
    let Some(peer) = peer else {
        return Err(refused(
            OptionError::NotConnected,
            "a socket-level DSCP on Windows is a qWAVE flow to one peer: connect the socket first \
             (Socket::connect), then set it",
        ));
    };
    if matches!(peer, SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_some()) {
        return Err(refused(
            OptionError::Unsupported,
            "qWAVE does not take IPv4-mapped addresses (a dual-stack socket connected to an IPv4 peer): \
             use an IPv4 socket for an IPv4 peer",
        ));
    }
    *slot = Some(open(socket, peer, dscp)?);
    state.socket_dscp.store(dscp, Ordering::Relaxed);
    Ok(())
}

/// The socket's peer changed (connect, disconnect): its flow, tied to the
/// old peer, is closed and its DSCP reads 0.
pub(crate) fn end_flow(state: &SocketState) {
    if let Some(flow) = state.qos.lock().take() {
        tracing::debug!(peer = %flow.peer, dscp = flow.dscp, "peer changed: qWAVE flow closed, socket DSCP back to 0");
        state.socket_dscp.store(0, Ordering::Relaxed);
    }
}
