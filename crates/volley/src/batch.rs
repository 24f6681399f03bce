//! [`RecvBatch`]: caller-owned receive buffers, allocated once, and the GRO
//! splitter that turns each coalesced receive back into datagrams.
//!
//! # Layout
//!
//! ```text
//!  data: one allocation, `slots` x `slot_len` bytes (default 32 x 64 KiB)
//!  +------------------+------------------+-----+------------------+
//!  | slot 0           | slot 1           | ... | slot n-1         |
//!  | seg|seg|seg|tail | one datagram     |     |                  |
//!  +------------------+------------------+-----+------------------+
//!    ^ GRO train, stride = segment_size
//!  control: `slots` x aligned cmsg space (pktinfo, TOS, TTL, UDP_GRO, ...)
//!  msgs:    one RecvMeta per filled slot: len = bytes in the slot,
//!           segment_size = GRO stride (= len when not coalesced)
//! ```
//!
//! A receive fills slots `0..k` (one `recvmmsg` message each). [`RecvBatch::iter`]
//! walks them and cuts every slot at `segment_size`, yielding one
//! [`RecvMeta`] per datagram; [`RecvBatch::messages`] yields the slots whole
//! (GRO "raw" mode). A 64 KiB slot holds the largest train the kernel builds
//! (64 KiB of payload), so a GRO receive is never truncated by default.

#[cfg(feature = "fuzzing")]
use std::net::SocketAddr;

use std::mem::MaybeUninit;

use crate::sys::cmsg::RecvControl;
use crate::RecvMeta;

/// Default number of messages per receive call.
pub const DEFAULT_SLOTS: usize = 32;
/// Most messages per receive call.
pub const MAX_SLOTS: usize = 64;
/// Default bytes per message slot: the largest UDP payload plus headroom, so
/// a full GRO train (at most 64 KiB) fits.
pub const DEFAULT_SLOT_LEN: usize = 1 << 16;
/// Largest slot [`RecvBatch::with_capacity`] allocates.
pub const MAX_SLOT_LEN: usize = 1 << 20;

/// Reusable receive buffers for [`crate::Socket::try_recv_batch`].
///
/// Allocate once, receive into it again and again: a receive performs no heap
/// allocation.
///
/// ```
/// use volley::{RecvBatch, Socket, Transmit};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rx = Socket::bind("127.0.0.1:0".parse()?)?;
/// let tx = Socket::bind("127.0.0.1:0".parse()?)?;
/// let payload = [7u8; 3000];
/// // One GSO send: datagrams of 1200, 1200 and 600 bytes.
/// let t = Transmit::new(rx.local_addr()?, &payload).with_segment_size(1200);
/// tx.send_batch_blocking(&[t], std::time::Duration::from_secs(5))?;
///
/// let mut batch = RecvBatch::new();
/// let mut sizes = Vec::new();
/// while sizes.len() < 3 {
///     rx.recv_batch_blocking(&mut batch, std::time::Duration::from_secs(5))?;
///     sizes.extend(batch.iter().map(|(meta, _)| meta.len));
/// }
/// assert_eq!(sizes, [1200, 1200, 600]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RecvBatch {
    data: Box<[u8]>,
    slot_len: usize,
    /// Control space per slot, written only by the kernel (never read past
    /// what it wrote), so left uninitialised.
    pub(crate) control: Box<[MaybeUninit<RecvControl>]>,
    /// One per filled slot; `len` counts bytes in the slot.
    pub(crate) msgs: Vec<RecvMeta>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    /// 32 slots of 64 KiB (2 MiB): enough for 32 full GRO trains per call.
    ///
    /// ```
    /// let b = volley::RecvBatch::new();
    /// assert_eq!(b.slots(), 32);
    /// assert!(b.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_SLOTS, DEFAULT_SLOT_LEN)
    }

    /// `slots` messages per call (clamped to `1..=64`), each up to
    /// `slot_len` bytes (clamped to `1..=1 MiB`). A datagram longer than
    /// `slot_len` is cut short and flagged [`RecvMeta::truncated`]. A socket
    /// with GRO on refuses slots under [`DEFAULT_SLOT_LEN`]
    /// ([`crate::Error::BatchTooSmallForGro`]): the kernel would discard the
    /// rest of a coalesced train.
    ///
    /// ```
    /// let b = volley::RecvBatch::with_capacity(8, 1500);
    /// assert_eq!((b.slots(), b.slot_len()), (8, 1500));
    /// ```
    pub fn with_capacity(slots: usize, slot_len: usize) -> Self {
        let slots = slots.clamp(1, MAX_SLOTS);
        let slot_len = slot_len.clamp(1, MAX_SLOT_LEN);
        Self {
            data: vec![0u8; slots * slot_len].into_boxed_slice(),
            slot_len,
            control: (0..slots).map(|_| MaybeUninit::uninit()).collect(),
            msgs: Vec::with_capacity(slots),
        }
    }

    /// Messages one receive call can return.
    pub fn slots(&self) -> usize {
        self.control.len()
    }

    /// Bytes per message slot.
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// Datagrams held (after GRO splitting).
    ///
    /// ```
    /// assert_eq!(volley::RecvBatch::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.msgs.iter().map(segment_count).sum()
    }

    /// True if the last receive returned nothing (or none happened yet).
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// True if the last receive filled fewer slots than the batch has: the
    /// kernel's queue ran out (or an error cut it short, which raises a
    /// readiness event of its own). With edge-triggered readiness (mio,
    /// tokio) a receive loop may stop here instead of spending a call to
    /// learn that the queue is empty.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rx = volley::Socket::bind("127.0.0.1:0".parse()?)?;
    /// let tx = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// tx.send_to(b"one", rx.local_addr()?)?;
    /// let mut batch = volley::RecvBatch::new();
    /// rx.recv_batch_blocking(&mut batch, std::time::Duration::from_secs(5))?;
    /// assert!(batch.is_short()); // 1 message, 32 slots: nothing left to ask for
    /// # Ok(()) }
    /// ```
    pub fn is_short(&self) -> bool {
        self.msgs.len() < self.slots()
    }

    /// Messages held: kernel receives, each possibly a GRO train.
    pub fn message_count(&self) -> usize {
        self.msgs.len()
    }

    /// The datagrams of the last receive, GRO trains split, in arrival order,
    /// each with its own copy of the metadata (its `len`, and `truncated`
    /// only on the datagram that was cut). The simple way; the fast way is
    /// [`RecvBatch::messages`] and [`RecvMeta::segments`], which hand out the
    /// metadata by reference once per message instead of a ~100-byte copy
    /// per datagram.
    ///
    /// ```
    /// let batch = volley::RecvBatch::new();
    /// assert_eq!(batch.iter().count(), 0);
    /// ```
    pub fn iter(&self) -> Datagrams<'_> {
        Datagrams { batch: self, msg: 0, offset: 0 }
    }

    /// The messages of the last receive unsplit ("GRO raw" mode), with
    /// their metadata by reference: each item is a whole slot, `meta.len`
    /// its total size and `meta.segment_size` the stride to cut it at
    /// ([`RecvMeta::segments`] walks its datagrams). The cheapest way
    /// through a batch: nothing is copied.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rx = volley::Socket::bind("127.0.0.1:0".parse()?)?;
    /// let tx = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// tx.send_to(b"hi", rx.local_addr()?)?;
    /// let mut batch = volley::RecvBatch::new();
    /// rx.recv_batch_blocking(&mut batch, std::time::Duration::from_secs(5))?;
    /// for (meta, message) in batch.messages() {
    ///     for datagram in meta.segments(message) {
    ///         assert_eq!((meta.src, datagram), (tx.local_addr()?, &b"hi"[..]));
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn messages(&self) -> impl ExactSizeIterator<Item = (&RecvMeta, &[u8])> + '_ {
        self.msgs.iter().enumerate().map(|(i, m)| (m, &self.slot(i)[..m.len]))
    }

    /// Message `i` of the last receive, unsplit, as in
    /// [`RecvBatch::messages`]; `None` past the end.
    ///
    /// ```
    /// assert!(volley::RecvBatch::new().message(0).is_none());
    /// ```
    pub fn message(&self, i: usize) -> Option<(&RecvMeta, &[u8])> {
        self.msgs.get(i).map(|m| (m, &self.slot(i)[..m.len]))
    }

    fn slot(&self, i: usize) -> &[u8] {
        &self.data[i * self.slot_len..(i + 1) * self.slot_len]
    }

    /// The data area for the sys layer: the whole buffer and the slot size.
    pub(crate) fn data_mut(&mut self) -> (&mut [u8], usize, &mut [MaybeUninit<RecvControl>], &mut Vec<RecvMeta>) {
        (&mut self.data, self.slot_len, &mut self.control, &mut self.msgs)
    }
}

/// Datagrams in one received message (a GRO train of `len` bytes cut at
/// `segment_size`).
pub(crate) fn segment_count(m: &RecvMeta) -> usize {
    if m.segment_size == 0 || m.len <= m.segment_size {
        1
    } else {
        m.len.div_ceil(m.segment_size)
    }
}

/// Iterator over the datagrams of a [`RecvBatch`]; see [`RecvBatch::iter`].
#[derive(Debug, Clone)]
pub struct Datagrams<'a> {
    batch: &'a RecvBatch,
    msg: usize,
    offset: usize,
}

impl<'a> Iterator for Datagrams<'a> {
    type Item = (RecvMeta, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let m = self.batch.msgs.get(self.msg)?;
        let stride = if m.segment_size == 0 { m.len.max(1) } else { m.segment_size };
        let start = self.offset;
        let end = (start + stride).min(m.len);
        let last = end >= m.len;
        let mut meta = *m;
        meta.len = end - start;
        // Only the datagram that reaches the end of a cut-short slot lost bytes.
        meta.truncated = m.truncated && last;
        let payload = &self.batch.slot(self.msg)[start..end];
        if last {
            self.msg += 1;
            self.offset = 0;
        } else {
            self.offset = end;
        }
        Some((meta, payload))
    }
}

/// Fills `batch` with one message holding `data` as a GRO train of stride
/// `stride` (feature `fuzzing`, for benchmarks of the splitter).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_fill(batch: &mut RecvBatch, data: &[u8], stride: usize) {
    let (buf, slot_len, _, msgs) = batch.data_mut();
    let len = data.len().min(slot_len);
    buf[..len].copy_from_slice(&data[..len]);
    msgs.clear();
    let mut m = RecvMeta::new(SocketAddr::from(([127, 0, 0, 1], 4433)), len);
    m.segment_size = stride;
    msgs.push(m);
}

/// The GRO splitter on arbitrary input (feature `fuzzing`): fills one slot
/// with `data` as a receive of `len` bytes (clamped to the slot, as the sys
/// layer does) with stride `stride`, splits it, and checks the invariants:
/// the pieces tile the slot exactly, none is longer than the stride, only
/// the last may be shorter, `len()` agrees, and only the last carries the
/// truncation flag. Returns the number of datagrams.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_split(data: &[u8], len: usize, stride: usize, truncated: bool) -> usize {
    let mut b = RecvBatch::with_capacity(1, data.len().max(1));
    let len = len.min(b.slot_len);
    {
        let (buf, _, _, msgs) = b.data_mut();
        buf[..data.len()].copy_from_slice(data);
        let mut m = RecvMeta::new("127.0.0.1:1".parse().expect("literal address"), len);
        m.segment_size = stride;
        m.truncated = truncated;
        msgs.push(m);
    }
    let mut offset = 0;
    let mut count = 0;
    let pieces: Vec<_> = b.iter().collect();
    for (i, (m, p)) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        assert_eq!(m.len, p.len());
        assert_eq!(p, &&b.data[offset..offset + p.len()]);
        if stride > 0 {
            assert!(p.len() <= stride);
            assert!(last || p.len() == stride);
        }
        assert_eq!(m.truncated, truncated && last);
        offset += p.len();
        count += 1;
    }
    assert_eq!(offset, len);
    assert_eq!(count, b.len());
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(batch: &mut RecvBatch, i: usize, bytes: &[u8], stride: usize, truncated: bool) {
        let (data, slot_len, _, msgs) = batch.data_mut();
        data[i * slot_len..i * slot_len + bytes.len()].copy_from_slice(bytes);
        let mut m = RecvMeta::new("127.0.0.1:1".parse().unwrap(), bytes.len());
        m.segment_size = stride;
        m.truncated = truncated;
        msgs.push(m);
    }

    /// Short means fewer messages than slots: the kernel stopped at an
    /// empty queue. A full batch is not short (the loop must ask again).
    #[test]
    fn a_batch_is_short_until_every_slot_is_filled() {
        let mut b = RecvBatch::with_capacity(2, 64);
        assert!(b.is_short(), "nothing received");
        fill(&mut b, 0, b"a", 1, false);
        assert!(b.is_short(), "1 of 2 slots");
        fill(&mut b, 1, b"b", 1, false);
        assert!(!b.is_short(), "2 of 2 slots: more may be queued");
    }

    #[test]
    fn splits_gro_train_with_short_tail() {
        let mut b = RecvBatch::with_capacity(2, 4096);
        let bytes: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        fill(&mut b, 0, &bytes, 1000, false);
        fill(&mut b, 1, b"xyz", 3, false);
        let got: Vec<_> = b.iter().map(|(m, p)| (m.len, m.segment_size, p.to_vec())).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], (1000, 1000, bytes[..1000].to_vec()));
        assert_eq!(got[1], (1000, 1000, bytes[1000..2000].to_vec()));
        assert_eq!(got[2], (500, 1000, bytes[2000..].to_vec()));
        assert_eq!(got[3], (3, 3, b"xyz".to_vec()));
        assert_eq!(b.len(), 4);
        assert_eq!(b.message_count(), 2);
    }

    #[test]
    fn zero_length_datagram_is_yielded() {
        let mut b = RecvBatch::with_capacity(1, 100);
        fill(&mut b, 0, b"", 0, false);
        let got: Vec<_> = b.iter().map(|(m, p)| (m.len, p.len())).collect();
        assert_eq!(got, [(0, 0)]);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn truncation_flags_only_the_last_segment() {
        let mut b = RecvBatch::with_capacity(1, 3000);
        fill(&mut b, 0, &[1u8; 3000], 1200, true);
        let flags: Vec<_> = b.iter().map(|(m, _)| (m.len, m.truncated)).collect();
        assert_eq!(flags, [(1200, false), (1200, false), (600, true)]);
    }

    /// A filled batch is not empty, and `message(i)` returns each slot whole
    /// (unsplit), `None` past the last.
    #[test]
    fn message_returns_each_filled_slot() {
        let mut b = RecvBatch::with_capacity(3, 4096);
        assert!(b.is_empty());
        let train: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
        fill(&mut b, 0, &train, 1000, false);
        fill(&mut b, 1, b"abc", 3, true);
        assert!(!b.is_empty());
        let (m0, p0) = b.message(0).expect("slot 0 is filled");
        assert_eq!((m0.len, m0.segment_size, p0), (2500, 1000, &train[..]));
        let (m1, p1) = b.message(1).expect("slot 1 is filled");
        assert_eq!((m1.len, m1.truncated, p1), (3, true, &b"abc"[..]));
        assert!(b.message(2).is_none());
        let whole: Vec<_> = b.messages().map(|(m, p)| (m.len, p.to_vec())).collect();
        assert_eq!(whole, [(2500, train.clone()), (3, b"abc".to_vec())]);
    }

    /// `segment_count`: a slot no longer than its stride, or without one, is
    /// one datagram; a longer one is cut at the stride.
    #[test]
    fn segment_count_boundaries() {
        let at = |len: usize, stride: usize| {
            let mut m = RecvMeta::new("127.0.0.1:1".parse().unwrap(), len);
            m.segment_size = stride;
            segment_count(&m)
        };
        assert_eq!(at(0, 0), 1);
        assert_eq!(at(10, 0), 1);
        assert_eq!(at(10, 10), 1);
        assert_eq!(at(11, 10), 2);
        assert_eq!(at(9, 10), 1);
        assert_eq!(at(30, 10), 3);
    }

    /// `Debug` of a batch names each control buffer by its size instead of
    /// dumping hundreds of bytes per slot.
    #[test]
    fn debug_names_control_buffers_by_size() {
        let b = RecvBatch::with_capacity(2, 8);
        let text = format!("{b:?}");
        let name = format!("Aligned<{}>", crate::sys::cmsg::RECV_SPACE);
        assert_eq!(text.matches(&name).count(), 2, "{text}");
    }
}
