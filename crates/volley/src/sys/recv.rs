//! The way in: message headers pointed at a [`RecvBatch`]'s slots, the
//! backend fills them, and each becomes a [`RecvMeta`]; and the ICMP error
//! queue, drained into the socket's ring.

use crate::os::{AsRawFd, BorrowedFd};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use super::addr::{peer, SockAddrBuf};
use super::sockopt::get_int;
#[cfg(windows)]
use super::winsock as libc;
use super::{cmsg, iovec, platform, recv_msgs, MsgHdr, SocketState, Wait};
use crate::error::icmp_errno;
use crate::stats::Tally;
use crate::{Dscp, Error, RecvBatch, RecvMeta};

/// The receive syscall with volley's ICMP rule: a pending ICMP-derived
/// error (the kernel returns it before any queued datagram) is, with the
/// error queue on, moved into the socket's ring with the queue's entries,
/// and the receive goes on: the queue is drained whenever the kernel
/// signals an error, so its entries never fill the receive buffer. Without
/// the error queue it is returned once, as std does.
fn kernel_recv(fd: BorrowedFd<'_>, state: &SocketState, hdrs: &mut [MsgHdr], wait: Wait) -> io::Result<usize> {
    retry_recv(
        state.live.fixed.recv_errors,
        || recv_msgs(fd.as_raw_fd(), state, hdrs, wait),
        |errno| absorb_pending(fd, state, errno, "receive"),
    )
}

/// [`kernel_recv`]'s retry rule over any `recv`: an `EINTR` is retried;
/// with the error queue on (`recv_errors`), an ICMP-derived errno is handed
/// to `absorb` and the receive retried, at most [`RECV_ICMP_RETRIES`] times
/// in a row (a flood of forged errors cannot hold the caller forever: the
/// next one is returned); any other result is returned as it is.
fn retry_recv(
    recv_errors: bool,
    mut recv: impl FnMut() -> io::Result<usize>,
    mut absorb: impl FnMut(i32),
) -> io::Result<usize> {
    let mut icmp_passes = 0;
    loop {
        match recv() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if recv_errors && icmp_passes < RECV_ICMP_RETRIES && e.raw_os_error().is_some_and(icmp_errno) => {
                icmp_passes += 1;
                absorb(e.raw_os_error().unwrap_or(0));
            }
            other => return other,
        }
    }
}

/// Receives into `batch`'s slots, one [`RecvMeta`] per message. Returns
/// the number of datagrams after GRO splitting.
pub(crate) fn recv(fd: BorrowedFd<'_>, state: &SocketState, batch: &mut RecvBatch, wait: Wait) -> Result<usize, Error> {
    recv_batch_with(state, batch, |hdrs| kernel_recv(fd, state, hdrs, wait))
}

/// Receives into the caller's buffers: message `i` into `bufs[i]`,
/// described by `meta[i]`. Returns the number of messages.
pub(crate) fn recv_into(
    fd: BorrowedFd<'_>,
    state: &SocketState,
    bufs: &mut [io::IoSliceMut<'_>],
    meta: &mut [RecvMeta],
    wait: Wait,
) -> Result<usize, Error> {
    let n = bufs.len().min(meta.len()).min(crate::batch::MAX_SLOTS);
    if n == 0 {
        return Err(Error::EmptyBatch);
    }
    if state.live.fixed.gro {
        if let Some(short) = bufs[..n].iter().map(|b| b.len()).filter(|&l| l < crate::batch::DEFAULT_SLOT_LEN).min() {
            return Err(Error::BatchTooSmallForGro { slot_len: short, needed: crate::batch::DEFAULT_SLOT_LEN });
        }
    }
    // Written by the kernel only, and read only as far as it wrote.
    let mut control = [const { MaybeUninit::<cmsg::RecvControl>::uninit() }; crate::batch::MAX_SLOTS];
    let mut out = meta.iter_mut();
    recv_with(
        state,
        Target::Caller(&mut bufs[..n]),
        &mut control[..n],
        |hdrs| kernel_recv(fd, state, hdrs, wait),
        |m| {
            if let Some(slot) = out.next() {
                *slot = m;
            }
        },
    )
    .map(|got| got.messages)
}

/// Receives into the spare capacity of `bufs` (message `i` appended to
/// `bufs[i]`, described by `meta[i]`); returns the number of messages.
#[cfg(feature = "bytes")]
pub(crate) fn recv_bytes(
    fd: BorrowedFd<'_>,
    state: &SocketState,
    bufs: &mut [bytes::BytesMut],
    meta: &mut [RecvMeta],
    wait: Wait,
) -> Result<usize, Error> {
    recv_bytes_with(state, bufs, meta, |hdrs| kernel_recv(fd, state, hdrs, wait))
}

/// [`recv_bytes`] over any `kernel` (a fake one under Miri).
#[cfg(feature = "bytes")]
fn recv_bytes_with(
    state: &SocketState,
    bufs: &mut [bytes::BytesMut],
    meta: &mut [RecvMeta],
    kernel: impl FnOnce(&mut [MsgHdr]) -> io::Result<usize>,
) -> Result<usize, Error> {
    let n = bufs.len().min(meta.len()).min(crate::batch::MAX_SLOTS);
    if n == 0 {
        return Err(Error::EmptyBatch);
    }
    let room = |b: &bytes::BytesMut| b.capacity() - b.len();
    if state.live.fixed.gro {
        if let Some(short) = bufs[..n].iter().map(room).filter(|&l| l < crate::batch::DEFAULT_SLOT_LEN).min() {
            return Err(Error::BatchTooSmallForGro { slot_len: short, needed: crate::batch::DEFAULT_SLOT_LEN });
        }
    }
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; crate::batch::MAX_SLOTS];
    for (iov, b) in iovs.iter_mut().zip(bufs[..n].iter_mut()) {
        let spare = b.spare_capacity_mut();
        iov.write(iovec(spare.as_mut_ptr().cast(), spare.len()));
    }
    // SAFETY: entries 0..n were written just above.
    let iovs = unsafe { std::slice::from_raw_parts_mut(iovs.as_mut_ptr().cast::<libc::iovec>(), n) };
    // Written by the kernel only, and read only as far as it wrote.
    let mut control = [const { MaybeUninit::<cmsg::RecvControl>::uninit() }; crate::batch::MAX_SLOTS];
    let mut out = meta.iter_mut();
    let got = recv_with(state, Target::Raw(iovs), &mut control[..n], kernel, |m| {
        if let Some(slot) = out.next() {
            *slot = m;
        }
    })?
    .messages;
    for (b, m) in bufs.iter_mut().zip(meta.iter()).take(got) {
        // SAFETY: the kernel wrote m.len bytes (clamped to the iovec's
        // length, which was this buffer's spare capacity) at the start of
        // the spare capacity, so they are initialised and within capacity.
        unsafe { b.set_len(b.len() + m.len) };
    }
    Ok(got)
}

/// [`recv`] over any `kernel` that fills message headers the way
/// `recvmmsg` does (unit tests and Miri pass a fake one).
fn recv_batch_with(
    state: &SocketState,
    batch: &mut RecvBatch,
    kernel: impl FnOnce(&mut [MsgHdr]) -> io::Result<usize>,
) -> Result<usize, Error> {
    if state.live.fixed.gro && batch.slot_len() < crate::batch::DEFAULT_SLOT_LEN {
        // The kernel would copy what fits of a coalesced train and discard
        // the rest of it, datagrams and all: refuse rather than lose them.
        return Err(Error::BatchTooSmallForGro { slot_len: batch.slot_len(), needed: crate::batch::DEFAULT_SLOT_LEN });
    }
    let (data, slot_len, control, msgs) = batch.data_mut();
    msgs.clear();
    let got = recv_with(state, Target::Slots { data, slot_len }, control, kernel, |m| msgs.push(m))?;
    Ok(got.datagrams)
}

/// What one receive got: kernel messages, and the datagrams in them (GRO
/// trains counted by segment).
struct Got {
    messages: usize,
    datagrams: usize,
}

/// Where each message's payload goes.
enum Target<'a, 'b> {
    /// Slot `i` of a batch's buffer: `data[i * slot_len..][..slot_len]`.
    Slots { data: &'a mut [u8], slot_len: usize },
    /// The caller's buffer `i` (`IoSliceMut` is an `iovec` on Unix).
    Caller(&'a mut [io::IoSliceMut<'b>]),
    /// iovecs over memory the kernel may write (uninitialised spare
    /// capacity: no Rust reference to it exists while the kernel writes).
    #[cfg(feature = "bytes")]
    Raw(&'a mut [libc::iovec]),
}

/// The receive path over any `kernel`: builds one header per message over
/// `target` and `control` (which bounds the count), lets the kernel fill
/// them, and hands one decoded [`RecvMeta`] per message to `out`, in
/// order. Counts the call in the socket's statistics.
fn recv_with(
    state: &SocketState,
    target: Target<'_, '_>,
    control: &mut [MaybeUninit<cmsg::RecvControl>],
    kernel: impl FnOnce(&mut [MsgHdr]) -> io::Result<usize>,
    mut out: impl FnMut(RecvMeta),
) -> Result<Got, Error> {
    // Per-call scratch, left uninitialised: only the `n` entries used are
    // written (zeroing all 64 would cost more than a small receive).
    let mut names = [const { MaybeUninit::<SockAddrBuf>::uninit() }; crate::batch::MAX_SLOTS];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; crate::batch::MAX_SLOTS];
    let mut hdrs = [const { MaybeUninit::<MsgHdr>::uninit() }; crate::batch::MAX_SLOTS];
    // One base pointer per array, taken once: the kernel writes through
    // pointers derived from these, so no `&mut` reborrow of the buffers,
    // `control` or `names` may happen until it is done (a reborrow would
    // invalidate the pointers already handed out).
    let ctrl_base = control.as_mut_ptr().cast::<cmsg::RecvControl>();
    let name_base = names.as_mut_ptr().cast::<SockAddrBuf>();
    let hdr_base = hdrs.as_mut_ptr().cast::<MsgHdr>();
    let (n, iov_base) = match target {
        Target::Slots { data, slot_len } => {
            let n = control.len().min(data.len() / slot_len.max(1)).min(crate::batch::MAX_SLOTS);
            let data_base = data.as_mut_ptr();
            let iov_base = iovs.as_mut_ptr().cast::<libc::iovec>();
            for i in 0..n {
                // SAFETY: i < n <= MAX_SLOTS, the length of `iovs`; slot i
                // (i * slot_len .. (i + 1) * slot_len) lies inside `data` as
                // n <= data.len() / slot_len.
                unsafe { iov_base.add(i).write(iovec(data_base.add(i * slot_len), slot_len)) };
            }
            (n, iov_base)
        }
        Target::Caller(bufs) => {
            // std guarantees `IoSliceMut` is ABI-compatible with `iovec` on
            // Unix: the caller's slices are the kernel's iovecs.
            (bufs.len().min(control.len()).min(crate::batch::MAX_SLOTS), bufs.as_mut_ptr().cast::<libc::iovec>())
        }
        #[cfg(feature = "bytes")]
        Target::Raw(iovs) => (iovs.len().min(control.len()).min(crate::batch::MAX_SLOTS), iovs.as_mut_ptr()),
    };
    for i in 0..n {
        // SAFETY: i < n, and n bounds `names`, `hdrs` (MAX_SLOTS), `control`
        // and the iovecs at `iov_base` (see above): every `add(i)` is in
        // bounds. Writing a MaybeUninit element through its raw pointer
        // initialises it; the control entry is only pointed at.
        unsafe {
            let name = name_base.add(i);
            name.write(SockAddrBuf::new());
            let mut h = MsgHdr { hdr: cmsg::zeroed(), len: 0 };
            h.hdr.msg_name = name.cast();
            h.hdr.msg_namelen = size_of::<SockAddrBuf>() as libc::socklen_t;
            h.hdr.msg_iov = iov_base.add(i);
            h.hdr.msg_iovlen = 1;
            h.hdr.msg_control = ctrl_base.add(i).cast();
            h.hdr.msg_controllen = cmsg::RECV_SPACE as _;
            hdr_base.add(i).write(h);
        }
    }
    // SAFETY: entries 0..n of `hdrs` were written just above; the slice is
    // derived from the same base pointer, so the pointers inside stay valid.
    let hdrs = unsafe { std::slice::from_raw_parts_mut(hdr_base, n) };
    let got = match kernel(hdrs) {
        Ok(got) => got.min(n),
        Err(e) => {
            if e.kind() == io::ErrorKind::WouldBlock {
                state.stats.received(&Tally::default(), true, None);
            }
            return Err(e.into());
        }
    };
    let mut tally = Tally { messages: got as u64, ..Tally::default() };
    let mut drops = None;
    for (i, h) in hdrs[..got].iter().enumerate() {
        // SAFETY: entry i < got <= n of `names` and of the iovecs was written
        // above; the kernel is done writing through the pointers, and wrote
        // the first msg_controllen bytes (at most RECV_SPACE) of control
        // entry i, which are all that is read.
        let (name, room, ctrl) = unsafe {
            let ctrl_len = (h.hdr.msg_controllen as usize).min(cmsg::RECV_SPACE);
            (
                &*name_base.add(i),
                (*iov_base.add(i)).iov_len as usize,
                std::slice::from_raw_parts(ctrl_base.add(i).cast::<u8>(), ctrl_len),
            )
        };
        // A UDP socket always gets an IPv4/IPv6 source; keep the message
        // (the caller indexes by message) with an unspecified one otherwise.
        let src = name.read(h.hdr.msg_namelen);
        debug_assert!(src.is_some(), "UDP receive without an IP source address");
        let src = src.unwrap_or(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)));
        let len = (h.len as usize).min(room);
        let d = cmsg::decode(ctrl);
        let mut meta = RecvMeta::new(src, len);
        // The original destination's address is the header's destination,
        // as pktinfo's: only its port is kept (RecvMeta::orig_dst).
        meta.dst_ip = d.dst_ip.or(d.orig_dst.map(|a| a.ip())).map(|ip| ip.to_canonical());
        meta.orig_dst_port = d.orig_dst.map(|a| a.port());
        meta.ifindex = d.ifindex;
        if let Some(tos) = d.tos {
            meta.ecn = crate::Ecn::from_bits(tos);
            meta.dscp = Some(Dscp::from_tos(tos));
        }
        if let Some(ecn) = d.ecn {
            meta.ecn = crate::Ecn::from_bits(ecn);
        }
        meta.ttl = d.ttl;
        meta.segment_size = d.gro_segment_size.unwrap_or(len);
        meta.truncated = h.hdr.msg_flags & libc::MSG_TRUNC != 0;
        meta.control_truncated = h.hdr.msg_flags & libc::MSG_CTRUNC != 0;
        meta.timestamp = d.timestamp;
        // The kernel sends no SO_RXQ_OVFL message while the count is 0.
        meta.drops = d.drops.or(state.live.fixed.drop_counter.then_some(0));
        let datagrams = crate::batch::segment_count(&meta) as u64;
        tally.datagrams += datagrams;
        tally.bytes += len as u64;
        tally.trains += u64::from(datagrams > 1);
        tally.truncated += u64::from(meta.truncated);
        drops = meta.drops.or(drops);
        out(meta);
    }
    state.stats.received(&tally, false, drops);
    Ok(Got { messages: got, datagrams: tally.datagrams as usize })
}

/// Most error-queue entries one call reads: the kernel bounds the queue by
/// the receive buffer; this bounds the work of one call under a flood.
const DRAIN_MAX: usize = 256;

/// How many times one receive goes past a pending ICMP error before it
/// returns it (each pass drained the error queue): a bound on the work of
/// one call under an ICMP flood.
const RECV_ICMP_RETRIES: usize = 64;

fn log_icmp(e: &crate::IcmpError, during: &'static str) {
    tracing::debug!(
        kind = %e.kind,
        destination = ?e.destination,
        offender = ?e.offender,
        errno = e.errno,
        during,
        "ICMP error for an earlier datagram; kept for try_recv_error"
    );
}

/// Moves the kernel's queued ICMP errors into the socket's ring (with the
/// error queue on); returns how many it moved. Also takes the pending
/// socket error that came with them (`SO_ERROR`), so the next receive does
/// not report it again; recorded bare if the queue held nothing for it
/// (the kernel refuses queue entries while the receive buffer is full).
pub(crate) fn drain_errors(fd: BorrowedFd<'_>, state: &SocketState) -> usize {
    if !state.live.fixed.recv_errors {
        return 0;
    }
    let mut ring = state.errors();
    let mut moved = 0;
    for _ in 0..DRAIN_MAX {
        match platform::read_error_entry(fd) {
            Ok(Some(Some(e))) => {
                log_icmp(&e, "drain");
                state.stats.icmp(&e.kind);
                ring.push(e);
                moved += 1;
            }
            Ok(Some(None)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if let Ok(errno) = get_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
        if moved == 0 && icmp_errno(errno) {
            let e = bare(fd, errno, "drain");
            state.stats.icmp(&e.kind);
            ring.push(e);
        }
    }
    moved
}

/// An ICMP error of which only the errno is known ([`crate::IcmpKind::Pending`]).
fn bare(fd: BorrowedFd<'_>, errno: i32, during: &'static str) -> crate::IcmpError {
    let e = crate::IcmpError { kind: crate::IcmpKind::Pending, destination: peer(fd), offender: None, errno };
    log_icmp(&e, during);
    e
}

/// A pending ICMP-derived `errno` met (and so consumed) by a receive or
/// send: drains the error queue, where its details are, or, when that holds
/// nothing (queue off, or the kernel refused the entry), records the bare
/// errno, so the error is never lost unseen.
pub(super) fn absorb_pending(fd: BorrowedFd<'_>, state: &SocketState, errno: i32, during: &'static str) {
    if drain_errors(fd, state) == 0 {
        let e = bare(fd, errno, during);
        state.stats.icmp(&e.kind);
        state.errors().push(e);
    }
}

/// One ICMP error: the socket's ring first, then the kernel's queue.
pub(crate) fn recv_error(fd: BorrowedFd<'_>, state: &SocketState) -> Result<Option<crate::IcmpError>, Error> {
    if let Some(e) = state.errors().pop() {
        return Ok(Some(e));
    }
    for _ in 0..DRAIN_MAX {
        match platform::read_error_entry(fd)? {
            Some(Some(e)) => {
                state.stats.icmp(&e.kind);
                return Ok(Some(e));
            }
            Some(None) => {}
            None => break,
        }
    }
    Ok(None)
}

#[cfg(test)]
// The fake kernel writes Linux's control messages (IP_PKTINFO).
#[cfg(linux_like)]
mod tests {
    use std::net::IpAddr;
    use std::sync::atomic::{AtomicU64, AtomicU8};

    use super::*;
    use crate::capabilities::Live;
    use crate::validate::Families;
    use crate::{Capabilities, Ecn, IcmpKind};

    /// Socket state as a plain IPv4 socket without offloads would have it.
    fn state(recv_errors: bool) -> SocketState {
        let caps = Capabilities { recv_errors, ..crate::capabilities::tests::plain() };
        SocketState {
            live: Live::new(caps),
            families: Families { v4: true, v6: false },
            socket_dscp: AtomicU8::new(0),
            #[cfg(windows)]
            qos: Default::default(),
            pending_error: Default::default(),
            errors: Default::default(),
            blocking: Default::default(),
            rcvtimeo_us: AtomicU64::new(super::super::socket::NO_TIMEOUT_SET),
            stats: Default::default(),
        }
    }

    /// A fake `recvmmsg`: writes a source address, a payload and control
    /// messages through the pointers of each header, as the kernel does.
    /// Under Miri this checks that those pointers are still valid when the
    /// "kernel" writes through them (no reborrow of their arrays between).
    fn fake_kernel(hdrs: &mut [MsgHdr], count: usize) -> io::Result<usize> {
        for (i, h) in hdrs.iter_mut().take(count).enumerate() {
            let payload = [i as u8 + 1; 100];
            // SAFETY: the header's pointers were built by recv_with over live
            // buffers of the stated sizes (one iovec of slot_len >= 100
            // bytes, a SockAddrBuf, RECV_SPACE bytes of control).
            unsafe {
                let iov = &*h.hdr.msg_iov;
                assert!(iov.iov_len >= payload.len());
                std::ptr::copy_nonoverlapping(payload.as_ptr(), iov.iov_base.cast::<u8>(), payload.len());
                let name = &mut *h.hdr.msg_name.cast::<SockAddrBuf>();
                h.hdr.msg_namelen = name.write(SocketAddr::from(([10, 0, 0, 9], 4000 + i as u16)));
                let ctrl =
                    std::slice::from_raw_parts_mut(h.hdr.msg_control.cast::<u8>(), h.hdr.msg_controllen as usize);
                let mut enc = cmsg::Encoder::new(ctrl);
                let mut pi: libc::in_pktinfo = cmsg::zeroed();
                pi.ipi_ifindex = 3;
                pi.ipi_addr.s_addr = u32::from(Ipv4Addr::new(10, 0, 0, 1)).to_be();
                enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, pi).unwrap();
                enc.push(libc::IPPROTO_IP, libc::IP_TOS, 0xb8u8 | (i as u8 & 3)).unwrap();
                enc.push(libc::IPPROTO_IP, libc::IP_TTL, 60 as libc::c_int).unwrap();
                if i % 2 == 1 {
                    // Diverted by a TPROXY rule: sent to port 5000 + i.
                    let orig = SocketAddr::from(([10, 0, 0, 1], 5000 + i as u16));
                    cmsg::push_orig_dst(&mut enc, orig).unwrap();
                }
                h.hdr.msg_controllen = enc.len() as _;
            }
            h.len = payload.len() as libc::c_uint;
        }
        Ok(count)
    }

    #[test]
    fn receive_decodes_what_the_kernel_wrote_through_each_header() {
        let st = state(false);
        let mut batch = RecvBatch::with_capacity(4, 2048);
        let got = recv_batch_with(&st, &mut batch, |h| fake_kernel(h, 3)).unwrap();
        assert_eq!(got, 3);
        assert_eq!(batch.message_count(), 3);
        for (i, (meta, payload)) in batch.iter().enumerate() {
            assert_eq!(payload, &[i as u8 + 1; 100][..]);
            assert_eq!(meta.src, SocketAddr::from(([10, 0, 0, 9], 4000 + i as u16)));
            assert_eq!(meta.dst_ip, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
            assert_eq!(meta.ifindex, Some(3));
            assert_eq!(meta.ecn, Ecn::from_bits(i as u8 & 3));
            assert_eq!(meta.dscp, Some(Dscp::EF));
            assert_eq!(meta.ttl, Some(60));
            assert_eq!(meta.drops, Some(0), "drop counter on, no SO_RXQ_OVFL message: 0");
            let orig = (i % 2 == 1).then(|| SocketAddr::from(([10, 0, 0, 1], 5000 + i as u16)));
            assert_eq!((meta.orig_dst(), meta.orig_dst_port), (orig, orig.map(|a| a.port())));
        }
    }

    /// The caller-buffer path: the kernel writes straight into the
    /// caller's `IoSliceMut`s (under Miri: through the pointers handed out).
    #[test]
    fn receive_into_caller_buffers_fills_each_buffer_and_meta() {
        let st = state(false);
        let (mut a, mut b, mut c) = ([0u8; 300], [0u8; 300], [0u8; 300]);
        let mut bufs = [io::IoSliceMut::new(&mut a), io::IoSliceMut::new(&mut b), io::IoSliceMut::new(&mut c)];
        let mut control = [const { MaybeUninit::<cmsg::RecvControl>::uninit() }; 3];
        let mut metas = Vec::new();
        let got = recv_with(&st, Target::Caller(&mut bufs), &mut control, |h| fake_kernel(h, 2), |m| metas.push(m))
            .unwrap()
            .messages;
        assert_eq!(got, 2, "short: two of three");
        for (i, m) in metas.iter().enumerate() {
            assert_eq!(m.len, 100);
            assert_eq!(&bufs[i][..m.len], &[i as u8 + 1; 100][..]);
            assert_eq!(m.src, SocketAddr::from(([10, 0, 0, 9], 4000 + i as u16)));
            assert_eq!(m.ttl, Some(60));
        }
        assert_eq!(&bufs[2][..100], &[0u8; 100][..], "untouched");
    }

    /// The spare-capacity path: the kernel writes into uninitialised
    /// capacity, and only what it wrote becomes the buffer's contents.
    #[cfg(feature = "bytes")]
    #[test]
    fn receive_into_spare_capacity_appends_exactly_what_was_written() {
        let st = state(false);
        let mut bufs = [bytes::BytesMut::with_capacity(300), bytes::BytesMut::with_capacity(300)];
        bufs[1].extend_from_slice(b"kept"); // appended after what is there
        let mut meta = [RecvMeta::default(); 2];
        let got = recv_bytes_with(&st, &mut bufs, &mut meta, |h| fake_kernel(h, 2)).unwrap();
        assert_eq!(got, 2);
        assert_eq!(&bufs[0][..], &[1u8; 100][..]);
        assert_eq!(&bufs[1][..4], b"kept");
        assert_eq!(&bufs[1][4..], &[2u8; 100][..]);
        assert_eq!((meta[0].len, meta[1].len), (100, 100));
    }

    /// With GRO on, a buffer whose spare room (capacity less contents)
    /// could not hold a 64 KiB train is refused before the kernel is asked,
    /// naming that room; enough room receives.
    #[cfg(feature = "bytes")]
    #[test]
    fn gro_needs_the_room_of_a_whole_train_in_every_buffer() {
        let mut st = state(false);
        st.live.fixed.gro = true;
        let need = crate::batch::DEFAULT_SLOT_LEN;
        let mut meta = [RecvMeta::default(); 2];
        // Large enough, but 100 bytes already in it: room is 100 short.
        let mut nearly = bytes::BytesMut::with_capacity(need);
        nearly.extend_from_slice(&[0; 100]);
        let room = nearly.capacity() - 100;
        let mut bufs = [bytes::BytesMut::with_capacity(need), nearly];
        match recv_bytes_with(&st, &mut bufs, &mut meta, |_| panic!("refused before the kernel")) {
            Err(Error::BatchTooSmallForGro { slot_len, needed }) => assert_eq!((slot_len, needed), (room, need)),
            other => panic!("expected BatchTooSmallForGro, got {other:?}"),
        }
        let mut bufs = [bytes::BytesMut::with_capacity(need), bytes::BytesMut::with_capacity(need)];
        assert_eq!(recv_bytes_with(&st, &mut bufs, &mut meta, |h| fake_kernel(h, 2)).unwrap(), 2);
    }

    /// The receive retry rule: `EINTR` is retried; with the error queue
    /// on, ICMP errnos are absorbed and retried exactly `RECV_ICMP_RETRIES`
    /// times in a row, then returned; without it, returned at once; other
    /// errors and data are returned as they are.
    #[test]
    fn receive_retries_eintr_and_a_bounded_run_of_icmp_errors() {
        let refused = || Err(io::Error::from_raw_os_error(libc::ECONNREFUSED));
        // A flood: every call fails; bounded, whatever the mutant.
        let (mut calls, mut absorbed) = (0, 0);
        let got = retry_recv(
            true,
            || {
                calls += 1;
                assert!(calls < 10 * RECV_ICMP_RETRIES, "unbounded retries");
                refused()
            },
            |errno| {
                assert_eq!(errno, libc::ECONNREFUSED);
                absorbed += 1;
            },
        );
        assert_eq!(got.unwrap_err().raw_os_error(), Some(libc::ECONNREFUSED));
        assert_eq!((calls, absorbed), (RECV_ICMP_RETRIES + 1, RECV_ICMP_RETRIES));
        // Without the error queue: returned at once, nothing absorbed.
        let mut calls = 0;
        let got = retry_recv(
            false,
            || {
                calls += 1;
                refused()
            },
            |_| panic!("absorbed without the error queue"),
        );
        assert!(got.is_err());
        assert_eq!(calls, 1);
        // EINTR twice, then data; an EAGAIN is returned, not retried.
        let mut script = vec![
            Ok(3),
            Err(io::Error::from(io::ErrorKind::Interrupted)),
            Err(io::Error::from(io::ErrorKind::Interrupted)),
        ];
        assert_eq!(retry_recv(true, || script.pop().unwrap(), |_| panic!("no ICMP here")).unwrap(), 3);
        let mut calls = 0;
        let got = retry_recv(
            true,
            || {
                calls += 1;
                Err(io::Error::from(io::ErrorKind::WouldBlock))
            },
            |_| panic!("EAGAIN is not an ICMP error"),
        );
        assert_eq!((got.unwrap_err().kind(), calls), (io::ErrorKind::WouldBlock, 1));
    }

    /// The kernel is offered only slots that lie inside the buffer: with
    /// room for 2 slots and control space for 4, 2 headers go down, each
    /// pointing inside the buffer (the bound keeps the kernel's writes in
    /// bounds whatever the caller passes).
    #[test]
    fn slots_offered_never_exceed_the_buffer() {
        let st = state(false);
        let slot_len = 512;
        let mut data = vec![0u8; 2 * slot_len + 100];
        let (lo, hi) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
        let mut control = [const { MaybeUninit::<cmsg::RecvControl>::uninit() }; 4];
        let got = recv_with(
            &st,
            Target::Slots { data: &mut data, slot_len },
            &mut control,
            |hdrs| {
                assert_eq!(hdrs.len(), 2, "slots that fit in the buffer");
                for h in hdrs.iter() {
                    // SAFETY: each header's one iovec was written by recv_with.
                    let iov = unsafe { &*h.hdr.msg_iov };
                    let (start, end) = (iov.iov_base as usize, iov.iov_base as usize + iov.iov_len as usize);
                    assert!(start >= lo && end <= hi, "iovec inside the buffer");
                }
                Err(io::Error::from(io::ErrorKind::WouldBlock))
            },
            |_| {},
        );
        assert!(matches!(got, Err(e) if e.is_would_block()));
    }

    #[test]
    fn receive_error_leaves_an_empty_batch() {
        let st = state(false);
        let mut batch = RecvBatch::with_capacity(2, 2048);
        recv_batch_with(&st, &mut batch, |h| fake_kernel(h, 2)).unwrap();
        let err = recv_batch_with(&st, &mut batch, |_| Err(io::Error::from(io::ErrorKind::WouldBlock))).unwrap_err();
        assert!(err.is_would_block());
        assert_eq!(batch.message_count(), 0, "the old contents are gone");
    }

    #[test]
    #[cfg_attr(miri, ignore = "needs a socket")]
    fn ring_records_a_bare_pending_error_when_the_queue_has_nothing() {
        // The error queue is off, so nothing is drained: the bare errno is
        // what gets recorded.
        let st = state(false);
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsFd;
        absorb_pending(sock.as_fd(), &st, libc::ECONNREFUSED, "test");
        let e = recv_error(sock.as_fd(), &st).unwrap().expect("recorded");
        assert_eq!((e.kind, e.errno, e.destination), (IcmpKind::Pending, libc::ECONNREFUSED, None));
        assert!(recv_error(sock.as_fd(), &st).unwrap().is_none(), "reported once");
    }
}
