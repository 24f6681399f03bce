//! The echo wire format, version 1: what `volley blast` and `volley path`
//! send and what `volley echo` answers.
//!
//! Every field is big-endian. A datagram that does not start with the magic
//! `VLY1` and the right kind byte is not ours and is ignored; a new
//! incompatible version gets a new magic (`VLY2`), so old and new peers
//! ignore each other rather than misread each other.
//!
//! ```text
//! request (at least 24 bytes; the rest is padding, any content)
//!  0       4  magic "VLY1"
//!  4       1  kind = 1 (request)
//!  5       1  flags: bit 0 = pad the reply to the request's length
//!  6       1  TOS byte the sender set (DSCP << 2 | ECN), informational
//!  7       1  reserved, 0
//!  8       8  sequence number
//! 16       8  sender timestamp (opaque to the echo, copied back)
//! 24     ...  padding up to the datagram size
//!
//! reply (36 bytes, or the request's length if it asked for padding)
//!  0       4  magic "VLY1"
//!  4       1  kind = 2 (reply)
//!  5       1  flags: bit 0 = TOS known, bit 1 = TTL known,
//!                    bit 2 = drop counter known, bit 3 = request truncated
//!  6       1  TOS byte the sender set (copied from the request)
//!  7       1  TOS byte the request arrived with (ECN in the low two bits)
//!  8       8  sequence number (copied)
//! 16       8  sender timestamp (copied)
//! 24       4  request length as received by the echo
//! 28       4  echo socket's cumulative kernel drop counter (SO_RXQ_OVFL)
//! 32       1  TTL / hop limit the request arrived with
//! 33       3  reserved, 0
//! 36     ...  zero padding if requested
//! ```
//!
//! The echo sends each reply from the address the request was sent to, with
//! the ECN codepoint and DSCP the request arrived with, so the requester
//! learns what happened to its marks on the way there (from the payload)
//! and on the way back (from the reply's own IP header).
//!
//! ```
//! use volley_cli::wire::{Reply, Request, REPLY_LEN, REQUEST_LEN};
//! let mut buf = [0u8; 1200];
//! let req = Request { seq: 7, timestamp: 99, tos: 0xba, pad_reply: false };
//! req.write(&mut buf).unwrap();
//! assert_eq!(Request::parse(&buf).unwrap(), req);
//!
//! let reply = Reply::answer(&req, buf.len(), Some(0xb9), Some(64), Some(0), false);
//! let mut out = [0u8; REPLY_LEN];
//! reply.write(&mut out).unwrap();
//! let back = Reply::parse(&out).unwrap();
//! assert_eq!((back.seq, back.received_tos, back.request_len), (7, Some(0xb9), 1200));
//! assert!(REQUEST_LEN < REPLY_LEN);
//! ```

use std::fmt;

/// The first four bytes of every datagram of this format.
pub const MAGIC: [u8; 4] = *b"VLY1";
/// Kind byte of a request.
pub const KIND_REQUEST: u8 = 1;
/// Kind byte of a reply.
pub const KIND_REPLY: u8 = 2;
/// The smallest request: the header, no padding.
pub const REQUEST_LEN: usize = 24;
/// The size of an unpadded reply.
pub const REPLY_LEN: usize = 36;

const REQ_PAD_REPLY: u8 = 1;
const REP_TOS: u8 = 1;
const REP_TTL: u8 = 2;
const REP_DROPS: u8 = 4;
const REP_TRUNCATED: u8 = 8;

/// Why bytes are not a datagram of this format.
///
/// ```
/// use volley_cli::wire::{Request, WireError};
/// assert_eq!(Request::parse(b"VLY1"), Err(WireError::TooShort { len: 4, need: 24 }));
/// assert_eq!(Request::parse(&[0u8; 24]), Err(WireError::BadMagic));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the header needs.
    TooShort {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The datagram does not start with [`MAGIC`].
    BadMagic,
    /// The kind byte is not the one expected.
    WrongKind(u8),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len, need } => write!(f, "{len} bytes, a VLY1 header needs {need}"),
            Self::BadMagic => f.write_str("not a VLY1 datagram (bad magic)"),
            Self::WrongKind(k) => write!(f, "unexpected VLY1 kind {k}"),
        }
    }
}

impl std::error::Error for WireError {}

/// A request: sequence number, timestamp and the marks the sender set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Sequence number, unique per datagram of a run.
    pub seq: u64,
    /// The sender's clock (nanoseconds since any epoch it likes), copied back
    /// by the echo so the sender can compute the round-trip time.
    pub timestamp: u64,
    /// The TOS byte the sender put on the datagram (DSCP << 2 | ECN).
    pub tos: u8,
    /// Ask the echo to pad its reply to the request's length (tests the
    /// return path with large datagrams).
    pub pad_reply: bool,
}

impl Request {
    /// Writes the header into `buf[..REQUEST_LEN]`, leaving the rest as is.
    ///
    /// # Errors
    /// [`WireError::TooShort`] if `buf` is shorter than [`REQUEST_LEN`].
    pub fn write(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let len = buf.len();
        let h = buf.get_mut(..REQUEST_LEN).ok_or(WireError::TooShort { len, need: REQUEST_LEN })?;
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = KIND_REQUEST;
        h[5] = if self.pad_reply { REQ_PAD_REPLY } else { 0 };
        h[6] = self.tos;
        h[7] = 0;
        h[8..16].copy_from_slice(&self.seq.to_be_bytes());
        h[16..24].copy_from_slice(&self.timestamp.to_be_bytes());
        Ok(())
    }

    /// Reads a request header.
    ///
    /// # Errors
    /// [`WireError`] if `buf` is not a VLY1 request.
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        let h = header(buf, REQUEST_LEN, KIND_REQUEST)?;
        Ok(Self { seq: be64(&h[8..16]), timestamp: be64(&h[16..24]), tos: h[6], pad_reply: h[5] & REQ_PAD_REPLY != 0 })
    }
}

/// A reply: what the echo saw of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The request's sequence number.
    pub seq: u64,
    /// The request's timestamp.
    pub timestamp: u64,
    /// The TOS byte the requester says it set.
    pub sent_tos: u8,
    /// The TOS byte the request arrived with, if the echo's kernel said.
    pub received_tos: Option<u8>,
    /// The TTL / hop limit the request arrived with, if known.
    pub received_ttl: Option<u8>,
    /// The request's length as received.
    pub request_len: u32,
    /// The echo socket's cumulative kernel drop counter, if known.
    pub echo_drops: Option<u32>,
    /// The request arrived cut short at the echo.
    pub truncated: bool,
    /// The requester asked for a padded reply.
    pub padded: bool,
}

impl Reply {
    /// The reply to `request`, which arrived as `len` bytes with the given
    /// TOS byte and TTL; `drops` is the echo socket's drop counter.
    pub fn answer(
        request: &Request,
        len: usize,
        tos: Option<u8>,
        ttl: Option<u8>,
        drops: Option<u32>,
        truncated: bool,
    ) -> Self {
        Self {
            seq: request.seq,
            timestamp: request.timestamp,
            sent_tos: request.tos,
            received_tos: tos,
            received_ttl: ttl,
            request_len: u32::try_from(len).unwrap_or(u32::MAX),
            echo_drops: drops,
            truncated,
            padded: request.pad_reply,
        }
    }

    /// Bytes this reply takes on the wire: [`REPLY_LEN`], or the request's
    /// length if it asked for padding.
    pub fn wire_len(&self) -> usize {
        if self.padded {
            (self.request_len as usize).max(REPLY_LEN)
        } else {
            REPLY_LEN
        }
    }

    /// Writes the reply into `buf[..self.wire_len()]` (padding zeroed) and
    /// returns its length.
    ///
    /// # Errors
    /// [`WireError::TooShort`] if `buf` cannot hold it.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let n = self.wire_len();
        let len = buf.len();
        let out = buf.get_mut(..n).ok_or(WireError::TooShort { len, need: n })?;
        let mut flags = 0;
        if self.received_tos.is_some() {
            flags |= REP_TOS;
        }
        if self.received_ttl.is_some() {
            flags |= REP_TTL;
        }
        if self.echo_drops.is_some() {
            flags |= REP_DROPS;
        }
        if self.truncated {
            flags |= REP_TRUNCATED;
        }
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = KIND_REPLY;
        out[5] = flags;
        out[6] = self.sent_tos;
        out[7] = self.received_tos.unwrap_or(0);
        out[8..16].copy_from_slice(&self.seq.to_be_bytes());
        out[16..24].copy_from_slice(&self.timestamp.to_be_bytes());
        out[24..28].copy_from_slice(&self.request_len.to_be_bytes());
        out[28..32].copy_from_slice(&self.echo_drops.unwrap_or(0).to_be_bytes());
        out[32] = self.received_ttl.unwrap_or(0);
        out[33..].fill(0);
        Ok(n)
    }

    /// Reads a reply.
    ///
    /// # Errors
    /// [`WireError`] if `buf` is not a VLY1 reply.
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        let h = header(buf, REPLY_LEN, KIND_REPLY)?;
        let flags = h[5];
        Ok(Self {
            seq: be64(&h[8..16]),
            timestamp: be64(&h[16..24]),
            sent_tos: h[6],
            received_tos: (flags & REP_TOS != 0).then_some(h[7]),
            received_ttl: (flags & REP_TTL != 0).then_some(h[32]),
            request_len: u32::from_be_bytes([h[24], h[25], h[26], h[27]]),
            echo_drops: (flags & REP_DROPS != 0).then(|| u32::from_be_bytes([h[28], h[29], h[30], h[31]])),
            truncated: flags & REP_TRUNCATED != 0,
            padded: buf.len() > REPLY_LEN,
        })
    }
}

fn header(buf: &[u8], need: usize, kind: u8) -> Result<&[u8], WireError> {
    let h = buf.get(..need).ok_or(WireError::TooShort { len: buf.len(), need })?;
    if h[0..4] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if h[4] != kind {
        return Err(WireError::WrongKind(h[4]));
    }
    Ok(h)
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_and_keeps_padding() {
        let mut buf = vec![0xee; 100];
        let r = Request { seq: u64::MAX - 1, timestamp: 1 << 40, tos: 0xb8 | 2, pad_reply: true };
        r.write(&mut buf).unwrap();
        assert_eq!(&buf[..4], b"VLY1");
        assert!(buf[REQUEST_LEN..].iter().all(|&b| b == 0xee));
        assert_eq!(Request::parse(&buf).unwrap(), r);
        assert_eq!(Request::parse(&buf[..REQUEST_LEN]).unwrap(), r);
    }

    #[test]
    fn reply_round_trips_with_and_without_unknown_fields() {
        let req = Request { seq: 3, timestamp: 4, tos: 2, pad_reply: false };
        for (tos, ttl, drops) in [(Some(3), Some(64), Some(17)), (None, None, None)] {
            let r = Reply::answer(&req, 1200, tos, ttl, drops, true);
            let mut buf = [0xffu8; 64];
            assert_eq!(r.write(&mut buf).unwrap(), REPLY_LEN);
            assert_eq!(Reply::parse(&buf[..REPLY_LEN]).unwrap(), r);
        }
    }

    #[test]
    fn padded_reply_has_request_length() {
        let req = Request { seq: 9, timestamp: 0, tos: 0, pad_reply: true };
        let r = Reply::answer(&req, 1500, Some(0), Some(1), None, false);
        let mut buf = vec![0xffu8; 2000];
        assert_eq!(r.write(&mut buf).unwrap(), 1500);
        assert!(buf[REPLY_LEN..1500].iter().all(|&b| b == 0));
        let back = Reply::parse(&buf[..1500]).unwrap();
        assert!(back.padded);
        assert_eq!(back.request_len, 1500);
        // A padded request shorter than a reply still gets a whole reply.
        assert_eq!(Reply::answer(&req, 24, None, None, None, false).wire_len(), REPLY_LEN);
    }

    #[test]
    fn foreign_bytes_are_rejected_not_misread() {
        assert_eq!(Reply::parse(&[0; 10]), Err(WireError::TooShort { len: 10, need: REPLY_LEN }));
        let mut buf = [0u8; REPLY_LEN];
        Request { seq: 1, timestamp: 1, tos: 0, pad_reply: false }.write(&mut buf).unwrap();
        assert_eq!(Reply::parse(&buf), Err(WireError::WrongKind(KIND_REQUEST)));
        buf[3] = b'2';
        assert_eq!(Request::parse(&buf), Err(WireError::BadMagic));
        let mut small = [0u8; 10];
        assert!(Request { seq: 0, timestamp: 0, tos: 0, pad_reply: false }.write(&mut small).is_err());
    }
}
