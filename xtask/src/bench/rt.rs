//! What the two tokio-based datapaths (`dp_tokio`, `dp_volley_tokio`)
//! share: a current-thread runtime per side that counts its parks (each park
//! is one `epoll_wait`), the side's syscall counters, and the watcher loop
//! that meters a receiving side's progress.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use super::scenario::Drain;
use super::stats::{Ctl, Meter, SideResult};

/// How often a receiving side's watcher looks at the phase.
pub(crate) const WATCH: Duration = Duration::from_millis(2);

/// A side's runtime, built (possibly on another thread) before it runs.
pub(crate) struct Side {
    rt: Runtime,
    parks: Arc<AtomicU64>,
}

impl Side {
    /// A current-thread runtime with IO and time that counts its parks.
    pub(crate) fn new() -> io::Result<Self> {
        let parks = Arc::new(AtomicU64::new(0));
        let p = Arc::clone(&parks);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .on_thread_park(move || {
                p.fetch_add(1, Ordering::Relaxed);
            })
            .build()?;
        Ok(Self { rt, parks })
    }

    /// The runtime, e.g. to `enter()` it while binding sockets.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Runs `f` on the calling thread (the side's); an error becomes the
    /// side's reported error.
    pub(crate) fn run(self, f: impl FnOnce(&Probe) -> io::Result<SideResult>) -> SideResult {
        let p = Probe { rt: self.rt, parks: self.parks, calls: Rc::new(Cell::new(0)) };
        f(&p).unwrap_or_else(|e| SideResult { error: Some(e.to_string()), ..SideResult::default() })
    }
}

/// Builds a side's runtime on the calling thread and runs `f` on it.
pub(crate) fn side(f: impl FnOnce(&Probe) -> io::Result<SideResult>) -> SideResult {
    match Side::new() {
        Ok(s) => s.run(f),
        Err(e) => SideResult { error: Some(format!("runtime: {e}")), ..SideResult::default() },
    }
}

/// A side's runtime and its syscall counters.
pub(crate) struct Probe {
    pub(crate) rt: Runtime,
    parks: Arc<AtomicU64>,
    /// send/recv syscalls counted by the datapath.
    pub(crate) calls: Rc<Cell<u64>>,
}

impl Probe {
    /// Counted send/recv calls plus `epoll_wait`s (parks).
    pub(crate) fn syscalls(&self) -> u64 {
        self.calls.get() + self.parks.load(Ordering::Relaxed)
    }
}

/// Adds one to a counter.
pub(crate) fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// The receiving side's watcher: every [`WATCH`], meters `sink` (datagrams,
/// bytes, checksum) until the window closed and the drain finished.
pub(crate) async fn watch(sink: &Cell<(u64, u64, u64)>, ctl: &Ctl, p: &Probe) -> Meter {
    let mut meter = Meter::new();
    let mut drain = Drain::default();
    let mut tick = tokio::time::interval(WATCH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = 0;
    loop {
        tick.tick().await;
        let (n, bytes, _) = sink.get();
        if meter.observe(ctl.phase(), n, bytes, p.syscalls()) && drain.done((n - last) as usize, ctl) {
            return meter;
        }
        last = n;
    }
}
