//! The GSO train plan: how a batch of [`Transmit`]s becomes message headers,
//! and how the kernel's answer (how many headers went out) maps back to
//! transmits sent. Pure logic, unit-tested without sockets; `sys::send`
//! builds one header per [`Piece`].
//!
//! With GSO a train (a transmit with a `segment_size` shorter than its
//! contents) is one message carrying `UDP_SEGMENT`; without it (portable
//! backend, no kernel support, or turned off at run time) it is cut into
//! one message per segment, and a send may stop inside a train.

use crate::Transmit;

/// One message of a send: which bytes of its transmit, and how they go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Piece {
    /// The payload: `contents[start..end]`.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Emulated segment index within the train (0 for a whole transmit).
    pub(crate) segment: usize,
    /// This message completes its transmit.
    pub(crate) last: bool,
    /// The GSO stride, when this message carries `UDP_SEGMENT`.
    pub(crate) gso: Option<usize>,
    /// Bytes of each datagram it becomes: the GSO stride, or the payload.
    pub(crate) datagram: usize,
}

/// Cuts the message that starts at emulated `segment` of `t`. `gso`: this
/// transmit may go as one GSO message (GSO is on and not under suspicion
/// for it).
pub(crate) fn cut(t: &Transmit<'_>, segment: usize, gso: bool) -> Piece {
    let len = t.contents.len();
    match t.gso_stride() {
        Some(s) if gso => Piece { start: 0, end: len, segment: 0, last: true, gso: Some(s), datagram: s },
        Some(s) => {
            let start = (segment * s).min(len);
            let end = (start + s).min(len);
            Piece { start, end, segment, last: end == len, gso: None, datagram: end - start }
        }
        None => Piece { start: 0, end: len, segment: 0, last: true, gso: None, datagram: len },
    }
}

/// How far a send got: transmits completed, and emulated segments of the
/// next one already sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    pub(crate) transmits: usize,
    pub(crate) segment: usize,
}

impl Progress {
    /// Accounts for the pieces the kernel took (in order).
    pub(crate) fn advance<'a>(&mut self, sent: impl IntoIterator<Item = &'a Piece>) {
        for p in sent {
            if p.last {
                self.transmits += 1;
                self.segment = 0;
            } else {
                self.segment = p.segment + 1;
            }
        }
    }

    /// The public form of this progress.
    pub(crate) const fn sent(self) -> crate::Sent {
        crate::Sent { transmits: self.transmits, segments: self.segment }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to() -> std::net::SocketAddr {
        "10.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn a_train_is_one_gso_piece_or_one_piece_per_segment() {
        let data = [7u8; 25];
        let t = Transmit::new(to(), &data).with_segment_size(10);
        assert_eq!(cut(&t, 0, true), Piece { start: 0, end: 25, segment: 0, last: true, gso: Some(10), datagram: 10 });
        let pieces: Vec<Piece> = (0..3).map(|s| cut(&t, s, false)).collect();
        assert_eq!(pieces.iter().map(|p| (p.start, p.end)).collect::<Vec<_>>(), [(0, 10), (10, 20), (20, 25)]);
        assert_eq!(pieces.iter().map(|p| p.last).collect::<Vec<_>>(), [false, false, true]);
        assert_eq!(pieces[2].datagram, 5, "the tail is shorter");
        assert!(pieces.iter().all(|p| p.gso.is_none()));
    }

    #[test]
    fn a_single_datagram_is_one_piece_whatever_the_segment_size() {
        let data = [1u8; 10];
        for t in [Transmit::new(to(), &data), Transmit::new(to(), &data).with_segment_size(10)] {
            for gso in [true, false] {
                assert_eq!(
                    cut(&t, 0, gso),
                    Piece { start: 0, end: 10, segment: 0, last: true, gso: None, datagram: 10 }
                );
            }
        }
        let empty = Transmit::new(to(), &[]);
        assert!(cut(&empty, 0, true).last);
    }

    #[test]
    fn progress_counts_transmits_and_stops_inside_a_train() {
        let data = [0u8; 30];
        let t = Transmit::new(to(), &data).with_segment_size(10);
        let whole = cut(&Transmit::new(to(), b"x"), 0, true);
        let mut p = Progress::default();
        p.advance(&[whole, cut(&t, 0, false), cut(&t, 1, false)]);
        assert_eq!(p, Progress { transmits: 1, segment: 2 });
        p.advance(&[cut(&t, 2, false)]);
        assert_eq!(p, Progress { transmits: 2, segment: 0 });
    }
}
