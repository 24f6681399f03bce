//! Shared helpers: address resolution, the request clock, number
//! formatting, and an RTT histogram.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

/// Resolves `HOST:PORT` (or a literal socket address) to one address.
pub(crate) fn resolve(addr: &str) -> Result<SocketAddr> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    let mut all = addr
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {addr:?}: expected HOST:PORT, IP:PORT or [IPv6]:PORT"))?;
    all.next().ok_or_else(|| anyhow!("{addr:?} resolved to no address"))
}

/// A listening address: like [`resolve`], and a bare port means `[::]:PORT`.
pub(crate) fn listen_addr(addr: &str) -> Result<SocketAddr> {
    if let Ok(port) = addr.trim().parse::<u16>() {
        return Ok(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port));
    }
    resolve(addr)
}

/// The local address to send to `target` from: `bind` if given, else the
/// wildcard of the target's family with port 0.
pub(crate) fn local_for(target: SocketAddr, bind: Option<&str>) -> Result<SocketAddr> {
    match bind {
        Some(b) => {
            let a = resolve(b)?;
            if a.is_ipv4() != target.is_ipv4() {
                bail!("--bind {a} and the target {target} are of different IP versions");
            }
            Ok(a)
        }
        None if target.is_ipv4() => Ok((Ipv4Addr::UNSPECIFIED, 0).into()),
        None => Ok((Ipv6Addr::UNSPECIFIED, 0).into()),
    }
}

/// Nanoseconds on this process's monotonic clock: what requests carry as
/// their timestamp.
pub(crate) fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Bytes of IP and UDP header in front of a UDP payload.
pub(crate) fn header_overhead(ipv4: bool) -> usize {
    if ipv4 {
        20 + 8
    } else {
        40 + 8
    }
}

/// `1234567.0` as `1.23 M`, `999.0` as `999`: put the unit after a space.
pub(crate) fn si(v: f64) -> String {
    let (d, unit) = match v.abs() {
        x if x >= 1e9 => (1e9, " G"),
        x if x >= 1e6 => (1e6, " M"),
        x if x >= 1e3 => (1e3, " k"),
        _ => (1.0, ""),
    };
    let x = v / d;
    let digits = if x.abs() >= 100.0 || d == 1.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.digits$}{unit}")
}

/// `1234567` as `1,234,567`.
pub(crate) fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds with sensible precision, from nanoseconds.
pub(crate) fn ms(ns: u64) -> String {
    let m = ns as f64 / 1e6;
    if m >= 100.0 {
        format!("{m:.0} ms")
    } else if m >= 1.0 {
        format!("{m:.2} ms")
    } else {
        format!("{m:.3} ms")
    }
}

/// Round-trip times in nanoseconds: exact count, sum, min and max, and an
/// [HdrHistogram](hdrhistogram) (3 significant digits, up to an hour) for
/// percentiles.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    hdr: hdrhistogram::Histogram<u64>,
    n: u64,
    sum: u128,
    min: u64,
    max: u64,
}

/// The largest value tracked exactly by the histogram: an hour; larger
/// values count as this (min and max stay exact).
const HIST_MAX_NS: u64 = 3_600_000_000_000;

impl Histogram {
    pub(crate) fn new() -> Self {
        let hdr = hdrhistogram::Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("constant, valid bounds");
        Self { hdr, n: 0, sum: 0, min: u64::MAX, max: 0 }
    }

    pub(crate) fn record(&mut self, v: u64) {
        self.hdr.saturating_record(v);
        self.n += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub(crate) fn count(&self) -> u64 {
        self.n
    }

    pub(crate) fn min(&self) -> Option<u64> {
        (self.n > 0).then_some(self.min)
    }

    pub(crate) fn max(&self) -> Option<u64> {
        (self.n > 0).then_some(self.max)
    }

    pub(crate) fn mean(&self) -> Option<u64> {
        (self.n > 0).then(|| (self.sum / u128::from(self.n)) as u64)
    }

    /// The `q` quantile (`0.0..=1.0`), clamped to the exact min and max.
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        (self.n > 0).then(|| self.hdr.value_at_quantile(q.clamp(0.0, 1.0)).clamp(self.min, self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_extremes_are_exact() {
        let mut h = Histogram::new();
        h.record(0);
        h.record(u64::MAX);
        assert_eq!((h.min(), h.max(), h.count()), (Some(0), Some(u64::MAX), 2));
        assert_eq!(h.quantile(0.0), Some(0));
        // Saturated at the tracked maximum, within the 3 digits' precision.
        let top = h.quantile(1.0).unwrap();
        assert!(top.abs_diff(HIST_MAX_NS) <= HIST_MAX_NS / 1000, "{top}");
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.min(), Some(1000));
        assert_eq!(h.max(), Some(1_000_000));
        let p50 = h.quantile(0.5).unwrap() as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.001, "{p50}");
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.001, "{p99}");
        assert_eq!(Histogram::new().quantile(0.5), None);
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(12), "12");
        assert_eq!(si(1_234_567.0), "1.23 M");
        assert_eq!(si(999.0), "999");
        assert_eq!(listen_addr("4500").unwrap(), "[::]:4500".parse().unwrap());
        assert!(resolve("nonsense").is_err());
    }
}
