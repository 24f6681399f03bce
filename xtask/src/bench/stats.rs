//! Run control shared by the two sides of a cell, the per-side [`Meter`]
//! that snapshots counters at the edges of the measurement window, and the
//! small statistics helpers (median, percentiles).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::raw;

/// Heap allocations are counted per thread (per side) in the steady-state
/// window by the workspace's one counting allocator.
#[global_allocator]
static GLOBAL: volley_tests::alloc::CountingAlloc = volley_tests::alloc::CountingAlloc;

/// Warm-up: traffic flows, nothing is measured yet.
pub(crate) const WARMUP: u8 = 0;
/// The measurement window.
pub(crate) const MEASURE: u8 = 1;
/// Senders stop; receivers drain, then stop.
pub(crate) const STOP: u8 = 2;

/// Set by the coordinator, read (relaxed) by both sides on every iteration.
#[derive(Debug, Default)]
pub(crate) struct Ctl {
    phase: AtomicU8,
    sender_done: AtomicBool,
    arrived: AtomicU8,
    /// Datagrams per second the sender offers (`--rate`); 0: as fast as it can.
    rate: u64,
}

impl Ctl {
    /// A control block whose sender offers `rate` datagrams/s (None: as
    /// fast as it can).
    pub(crate) fn paced(rate: Option<u64>) -> Self {
        Self { rate: rate.unwrap_or(0), ..Self::default() }
    }

    /// A side's thread is running (the warm-up starts once both are).
    pub(crate) fn arrive(&self) {
        self.arrived.fetch_add(1, Ordering::Release);
    }

    /// Waits until `n` sides arrived, at most `limit`.
    pub(crate) fn wait_arrived(&self, n: u8, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.arrived.load(Ordering::Acquire) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[inline]
    pub(crate) fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }

    pub(crate) fn set_phase(&self, p: u8) {
        self.phase.store(p, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn stopping(&self) -> bool {
        self.phase() >= STOP
    }

    pub(crate) fn sender_done(&self) -> bool {
        self.sender_done.load(Ordering::Relaxed)
    }

    pub(crate) fn set_sender_done(&self) {
        self.sender_done.store(true, Ordering::Relaxed);
    }
}

/// Counters of one side at one instant.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    datagrams: u64,
    bytes: u64,
    syscalls: u64,
    allocs: u64,
    cpu_ns: u64,
    user_ns: u64,
    csw: (u64, u64),
}

impl Snapshot {
    fn take(datagrams: u64, bytes: u64, syscalls: u64) -> Self {
        let (user, system) = raw::thread_cpu_ns();
        Self {
            at: Instant::now(),
            datagrams,
            bytes,
            syscalls,
            allocs: volley_tests::alloc::thread_allocs(),
            cpu_ns: user + system,
            user_ns: user,
            csw: raw::thread_context_switches(),
        }
    }
}

/// One side's figures over the measurement window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Window {
    pub(crate) secs: f64,
    pub(crate) datagrams: u64,
    pub(crate) bytes: u64,
    pub(crate) syscalls: u64,
    pub(crate) allocs: u64,
    /// User + system CPU time of the side's thread.
    pub(crate) cpu_ns: u64,
    /// The user-space part of `cpu_ns`.
    pub(crate) user_ns: u64,
    /// Voluntary context switches of the side's thread (it slept).
    pub(crate) voluntary_csw: u64,
    /// Involuntary context switches (another thread took its CPU).
    pub(crate) involuntary_csw: u64,
}

/// Watches the phase from inside a side's thread and snapshots the side's
/// counters (plus this thread's CPU time and allocations) when the window
/// opens and closes. Must live on the thread whose work it measures.
#[derive(Debug)]
pub(crate) struct Meter {
    seen: u8,
    start: Option<Snapshot>,
    end: Option<Snapshot>,
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

impl Meter {
    pub(crate) fn new() -> Self {
        Self { seen: WARMUP, start: None, end: None }
    }

    /// Notes the current phase; returns true once the window has closed.
    #[inline]
    pub(crate) fn observe(&mut self, phase: u8, datagrams: u64, bytes: u64, syscalls: u64) -> bool {
        if phase != self.seen {
            self.transition(phase, datagrams, bytes, syscalls);
        }
        self.seen >= STOP
    }

    #[cold]
    fn transition(&mut self, phase: u8, datagrams: u64, bytes: u64, syscalls: u64) {
        let snap = Snapshot::take(datagrams, bytes, syscalls);
        if phase >= MEASURE && self.start.is_none() {
            self.start = Some(snap);
        }
        if phase >= STOP && self.end.is_none() {
            self.end = Some(snap);
        }
        self.seen = phase;
    }

    /// The window's figures (zero if it never opened).
    pub(crate) fn window(&self) -> Window {
        let (Some(a), Some(b)) = (self.start, self.end) else { return Window::default() };
        Window {
            secs: b.at.duration_since(a.at).as_secs_f64(),
            datagrams: b.datagrams - a.datagrams,
            bytes: b.bytes - a.bytes,
            syscalls: b.syscalls - a.syscalls,
            allocs: b.allocs - a.allocs,
            cpu_ns: b.cpu_ns - a.cpu_ns,
            user_ns: b.user_ns - a.user_ns,
            voluntary_csw: b.csw.0.saturating_sub(a.csw.0),
            involuntary_csw: b.csw.1.saturating_sub(a.csw.1),
        }
    }
}

/// Holds a sender to `--rate` datagrams/s: before each send call it waits
/// until the datagrams sent so far are due (`sent / rate` seconds after the
/// first call), sleeping while more than a millisecond ahead and spinning
/// the rest. So a paced sender's CPU figures include that spinning: a paced
/// run compares loss at one offered load, not CPU.
#[derive(Debug)]
pub(crate) struct Pacer {
    rate: u64,
    start: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new(ctl: &Ctl) -> Self {
        Self { rate: ctl.rate, start: None }
    }

    /// Waits until `sent` datagrams are due (at once when unpaced).
    #[inline]
    pub(crate) fn wait(&mut self, sent: u64) {
        if self.rate == 0 {
            return;
        }
        let start = *self.start.get_or_insert_with(Instant::now);
        let due = start + Duration::from_secs_f64(sent as f64 / self.rate as f64);
        loop {
            let now = Instant::now();
            if now >= due {
                return;
            }
            let ahead = due - now;
            if ahead > Duration::from_millis(1) {
                std::thread::sleep(ahead - Duration::from_micros(500));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// What one side reports at the end of a cell.
#[derive(Debug, Clone, Default)]
pub(crate) struct SideResult {
    pub(crate) window: Window,
    /// Datagrams sent (sender) or received (receiver) over the whole run.
    pub(crate) total: u64,
    /// Syscalls over the whole run (for `--strace` comparison).
    pub(crate) total_syscalls: u64,
    /// Echo client: round-trip times in the window, nanoseconds.
    pub(crate) rtts_ns: Vec<u64>,
    /// Echo client: requests that got no reply in time.
    pub(crate) lost: u64,
    /// Wrapping sum of received sequence numbers (keeps the receive work observable).
    pub(crate) checksum: u64,
    pub(crate) error: Option<String>,
}

/// Busy CPU time of the whole machine, all CPUs (user, nice, system, irq,
/// softirq, steal from the first line of `/proc/stat`), in nanoseconds.
/// Unlike per-thread `getrusage` it includes softirq work (loopback
/// delivery) and ksoftirqd, and also anything else running.
pub(crate) fn system_busy_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).unwrap_or(&0);
    Some(busy * (1_000_000_000 / raw::clock_ticks()))
}

/// Fraction of all CPUs busy over `d` (0..=1), e.g. to see a noisy machine.
pub(crate) fn system_busy_fraction(d: Duration) -> Option<f64> {
    let a = system_busy_ns()?;
    std::thread::sleep(d);
    let b = system_busy_ns()?;
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    Some((b - a) as f64 / (d.as_nanos() as f64 * cpus as f64))
}

/// Median of `v` (NaN if empty); non-finite values are ignored.
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The `q`-quantile (0..=1, linear interpolation) of the finite values of
/// `v`, NaN if there are none.
pub(crate) fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The `p`-th percentile (0..=100, nearest rank) of `v`, NaN if empty.
pub(crate) fn percentile(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_even_odd_and_nan() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 50.0), 50.0);
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert_eq!(percentile(&mut [7], 99.0), 7.0);
    }

    #[test]
    fn meter_window_spans_measure_to_stop() {
        let mut m = Meter::new();
        assert!(!m.observe(WARMUP, 0, 0, 0));
        assert!(!m.observe(MEASURE, 10, 100, 1));
        assert!(m.observe(STOP, 30, 300, 4));
        let w = m.window();
        assert_eq!((w.datagrams, w.bytes, w.syscalls), (20, 200, 3));
    }
}
