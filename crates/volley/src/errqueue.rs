//! The per-socket ring of ICMP errors: what the receive and send paths drain
//! from the kernel's error queue (and pending socket errors) so that queued
//! errors never sit in the socket's receive buffer, where the kernel charges
//! them against the room for data. Read with [`crate::Socket::try_recv_error`].

use std::collections::VecDeque;

use crate::IcmpError;

/// Entries the ring keeps; when full, the oldest is dropped and counted.
pub(crate) const CAPACITY: usize = 64;

/// A bounded FIFO of ICMP errors (at most [`CAPACITY`] entries, allocated
/// at the first error: an error-free socket holds nothing).
#[derive(Debug, Default)]
pub(crate) struct ErrorRing {
    queue: VecDeque<IcmpError>,
    lost: u64,
}

impl ErrorRing {
    /// Appends `e`, dropping (and counting) the oldest entry when full.
    pub(crate) fn push(&mut self, e: IcmpError) {
        if self.queue.capacity() == 0 {
            self.queue.reserve_exact(CAPACITY);
        }
        if self.queue.len() == CAPACITY {
            self.queue.pop_front();
            self.lost += 1;
        }
        self.queue.push_back(e);
    }

    /// The oldest entry, if any.
    pub(crate) fn pop(&mut self) -> Option<IcmpError> {
        self.queue.pop_front()
    }

    /// Entries dropped because the ring was full.
    pub(crate) fn lost(&self) -> u64 {
        self.lost
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IcmpKind;

    fn err(errno: i32) -> IcmpError {
        IcmpError { kind: IcmpKind::Pending, destination: None, offender: None, errno }
    }

    #[test]
    fn keeps_the_newest_and_counts_the_dropped() {
        let mut ring = ErrorRing::default();
        assert_eq!(ring.pop(), None);
        for i in 0..CAPACITY as i32 + 10 {
            ring.push(err(i));
        }
        assert_eq!(ring.len(), CAPACITY);
        assert_eq!(ring.lost(), 10);
        // FIFO from the oldest kept (10) to the newest.
        assert_eq!(ring.pop().map(|e| e.errno), Some(10));
        let rest: Vec<i32> = std::iter::from_fn(|| ring.pop()).map(|e| e.errno).collect();
        assert_eq!(rest.len(), CAPACITY - 1);
        assert_eq!(rest.last(), Some(&(CAPACITY as i32 + 9)));
        assert_eq!(ring.lost(), 10, "popping is not losing");
    }

    /// The bound docs/socket-options.md states: 64 entries of 64 bytes
    /// (x86_64), 4 KiB per socket.
    #[test]
    fn ring_memory_is_bounded_as_documented() {
        let entry = size_of::<IcmpError>();
        println!("IcmpError: {entry} bytes; ring at most {} bytes", entry * CAPACITY);
        assert!(entry <= 64, "{entry}");
    }

    #[test]
    fn allocates_once_and_stays_bounded() {
        let mut ring = ErrorRing::default();
        ring.push(err(1));
        let cap = ring.queue.capacity();
        assert!(cap >= CAPACITY);
        for i in 0..10 * CAPACITY as i32 {
            ring.push(err(i));
        }
        assert_eq!(ring.queue.capacity(), cap, "no growth past the first allocation");
    }
}
