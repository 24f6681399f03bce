//! Soak with exact accounting (issue 7): sequence-numbered, checksummed
//! datagrams through volley with GSO on the sender. Zero corrupt, zero
//! duplicated, zero reordered within a GRO train, and every missing datagram
//! accounted for by the kernel's drop counter (`SO_RXQ_OVFL`):
//!
//! - receiver without GRO: the kernel segments each GSO train before
//!   queueing, drops count datagrams, and received + drops == sent exactly;
//! - receiver with GRO: a train stays one skb, and the kernel counts a
//!   dropped train once (measured: 20,960 missing = 524 drops x 40), so
//!   drops <= sent - received <= drops x train length.
//!
//! Bounded by count and time: `VOLLEY_SOAK_DATAGRAMS` (default 300,000) and
//! `VOLLEY_SOAK_SECS` (default 10). The long run of the issue:
//! `VOLLEY_SOAK_DATAGRAMS=10000000 VOLLEY_SOAK_SECS=60 cargo test --release
//! -p volley-tests --test soak -- --nocapture`.
// Linux only: the kernel drop counter (`SO_RXQ_OVFL`) and GSO/GRO accounting.
#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use volley::{Config, RecvBatch, Socket, Transmit};

const SIZE: usize = 1200;
const HEADER: usize = 16; // seq u64 + checksum u64

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// FNV-1a over the payload after the header.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn fill(seq: u64, out: &mut [u8]) {
    for (i, b) in out[HEADER..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    let sum = checksum(&out[HEADER..]);
    out[..8].copy_from_slice(&seq.to_be_bytes());
    out[8..16].copy_from_slice(&sum.to_be_bytes());
}

#[derive(Default, Debug)]
struct Tally {
    received: u64,
    corrupt: u64,
    duplicated: u64,
    reordered_in_train: u64,
    drops: u32,
    trains: u64,
}

fn soak(backend_name: &str, config: Config, rx_config: Config) {
    let rx = Arc::new(rx_config.recv_buffer_size(4 << 20).bind("127.0.0.1:0".parse().unwrap()).unwrap());
    let tx = config.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let target = env_or("VOLLEY_SOAK_DATAGRAMS", 300_000);
    soak_between(backend_name, &tx, &rx, target, || {});
}

/// The soak from `tx` to `rx` (bound and configured by the caller) of
/// `target` datagrams; `before_marker` runs once the bulk is sent, before
/// the final datagram that carries the last drop count.
fn soak_between(backend_name: &str, tx: &Socket, rx: &Arc<Socket>, target: u64, before_marker: impl FnOnce()) {
    let limit = Duration::from_secs(env_or("VOLLEY_SOAK_SECS", 10));
    let to = rx.local_addr().unwrap();
    let caps = tx.capabilities();
    println!(
        "[{backend_name}] target {target} datagrams or {limit:?}; tx GSO {}, rx GRO {}",
        caps.gso(),
        rx.capabilities().gro
    );

    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (rx, stop) = (rx.clone(), stop.clone());
        thread::spawn(move || {
            let mut seen = vec![0u64; (target as usize).div_ceil(64) + 1];
            let mut t = Tally::default();
            let mut batch = RecvBatch::new();
            let mut quiet_since = None::<Instant>;
            loop {
                match rx.try_recv_batch(&mut batch) {
                    Ok(_) => {
                        quiet_since = None;
                        for (meta, msg) in batch.messages() {
                            t.trains += 1;
                            let mut prev = None;
                            for dgram in msg.chunks(meta.segment_size.max(1)) {
                                if dgram.len() != SIZE
                                    || checksum(&dgram[HEADER..])
                                        != u64::from_be_bytes(dgram[8..16].try_into().unwrap())
                                {
                                    t.corrupt += 1;
                                    continue;
                                }
                                let seq = u64::from_be_bytes(dgram[..8].try_into().unwrap());
                                let (word, bit) = ((seq / 64) as usize, seq % 64);
                                if word >= seen.len() || seen[word] & (1 << bit) != 0 {
                                    t.duplicated += 1;
                                    continue;
                                }
                                seen[word] |= 1 << bit;
                                if prev.is_some_and(|p| seq != p + 1) {
                                    t.reordered_in_train += 1;
                                }
                                prev = Some(seq);
                                t.received += 1;
                            }
                            if let Some(d) = meta.drops {
                                t.drops = t.drops.max(d);
                            }
                        }
                    }
                    Err(e) if e.is_would_block() => {
                        // Done once the sender stopped and the queue stayed
                        // empty for 300 ms.
                        if stop.load(Ordering::Acquire) {
                            let since = *quiet_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > Duration::from_millis(300) {
                                return t;
                            }
                        }
                        thread::sleep(Duration::from_micros(50));
                    }
                    Err(e) => panic!("receive failed: {e}"),
                }
            }
        })
    };

    // Sender: trains of up to 40 datagrams, 8 transmits per call.
    let per_train = caps.max_gso_segments.clamp(1, 40);
    let mut bufs = vec![vec![0u8; SIZE * per_train]; 8];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < target && start.elapsed() < limit {
        let mut lens = [0usize; 8];
        let mut seq = sent;
        for (buf, len) in bufs.iter_mut().zip(lens.iter_mut()) {
            let n = ((target - seq) as usize).min(per_train);
            for k in 0..n {
                fill(seq + k as u64, &mut buf[k * SIZE..(k + 1) * SIZE]);
            }
            *len = n * SIZE;
            seq += n as u64;
        }
        let transmits: Vec<Transmit<'_>> = bufs
            .iter()
            .zip(lens)
            .filter(|(_, l)| *l > 0)
            .map(|(b, l)| Transmit::new(to, &b[..l]).with_segment_size(SIZE))
            .collect();
        tx.send_batch_blocking(&transmits, Duration::from_secs(5)).unwrap();
        sent = seq;
    }
    let elapsed = start.elapsed();
    before_marker();
    // A last datagram after a pause carries the final drop count.
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Release);
    let marker_seq = sent;
    let mut marker = vec![0u8; SIZE];
    fill(marker_seq, &mut marker);
    tx.send_batch_blocking(&[Transmit::new(to, &marker)], Duration::from_secs(5)).unwrap();
    let sent = sent + 1;
    let t = receiver.join().unwrap();
    let drops = u64::from(t.drops);
    println!(
        "[{backend_name}] sent {sent} in {elapsed:.2?} ({:.0}/s), received {}, kernel drops {drops}, trains {} \
         (avg {:.1} datagrams), corrupt {}, duplicated {}, reordered in train {}",
        sent as f64 / elapsed.as_secs_f64(),
        t.received,
        t.trains,
        t.received as f64 / t.trains.max(1) as f64,
        t.corrupt,
        t.duplicated,
        t.reordered_in_train
    );
    assert!(t.received > 0);
    assert_eq!(t.corrupt, 0, "corrupt datagrams");
    assert_eq!(t.duplicated, 0, "duplicated datagrams");
    assert_eq!(t.reordered_in_train, 0, "reordered within a GRO train");
    let missing = sent - t.received;
    if rx.capabilities().gro {
        assert!(drops <= missing, "each counted drop lost at least one datagram");
        assert!(missing <= drops * per_train as u64, "every missing datagram is in a counted dropped train");
    } else {
        assert_eq!(t.received + drops, sent, "received + kernel drops == sent");
    }
}

#[test]
fn soak_gso_exact_accounting() {
    soak("gso -> no gro", Config::new(), Config::new().gro(false));
}

#[test]
fn soak_gso_gro_train_accounting() {
    soak("gso -> gro", Config::new(), Config::new());
}

#[test]
fn soak_portable_exact_accounting() {
    let portable = Config::new().backend(volley::Backend::Portable);
    soak("portable", portable.clone(), portable);
}

/// The soak between two namespaces while a thread forges ICMP
/// port-unreachables at the receiver (`recv_errors(true)`, no GRO), 100 every
/// millisecond: the receive path drains the error queue as it goes, never
/// returns an ICMP error (the receiver panics on any error), and the exact
/// accounting still holds: received + `RecvMeta::drops` == sent.
///
/// Which counter says what:
/// - `RecvMeta::drops` (`SO_RXQ_OVFL`, the socket's `sk_drops`) counts data
///   datagrams the kernel dropped for a full receive buffer;
/// - `Socket::lost_icmp_errors` counts error-queue entries volley drained
///   but had no room for in its 64-entry ring;
/// - error-queue entries the kernel refused because the receive buffer was
///   full are counted nowhere (`sock_queue_err_skb` fails, the skb is
///   freed), though the pending `sk_err` they leave may be recorded as one
///   `IcmpKind::Pending` entry;
/// - a `Pending` entry is also recorded when a receive returns `sk_err` but
///   the queue is already empty: the kernel queues an entry before it sets
///   `sk_err`, so a drain on another CPU can take the entry first and the
///   same ICMP error is then counted twice (seen: 6 in 161,300). So reported
///   + lost is close to forged, not equal in either direction.
#[test]
fn soak_with_icmp_flood_exact_accounting() {
    use std::sync::atomic::AtomicUsize;
    use volley_tests::icmp::{Class, Pair, QUOTED_PORT};

    let Some(pair) = Pair::new() else { return };
    let (victim_ip, forger_ip) = (pair.victim_ip(false), pair.forger_ip(false));
    let rx = pair
        .victim
        .run(move || Config::new().gro(false).recv_errors(true).recv_buffer_size(4 << 20).bind((victim_ip, 0).into()))
        .expect("bind receiver");
    let rx = Arc::new(rx);
    let tx = pair.forger.run(move || Config::new().bind((forger_ip, 0).into())).expect("bind sender");
    let forger = pair.forger(false);
    let (victim, dest) = (rx.local_addr().unwrap(), (pair.quoted_ip(false), QUOTED_PORT).into());
    let stop = Arc::new(AtomicBool::new(false));
    let forged = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (stop, forged) = (stop.clone(), forged.clone());
        thread::spawn(move || {
            let class = Class::port_unreachable(false);
            let start = Instant::now();
            // Bounded: 60 s, 2,000,000 errors.
            while !stop.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(60) {
                let n = forger.send_many(&class, victim, dest, 100).expect("forge");
                if forged.fetch_add(n, Ordering::Relaxed) + n >= 2_000_000 {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let target = env_or("VOLLEY_SOAK_DATAGRAMS", 300_000) / 3;
    soak_between("icmp flood, gso -> no gro", &tx, &rx, target, || {
        stop.store(true, Ordering::Release);
    });
    flood.join().expect("flood thread");
    let forged = forged.load(Ordering::Relaxed) as u64;
    let mut reported = 0u64;
    while reported < forged && rx.try_recv_error().expect("try_recv_error").is_some() {
        reported += 1;
    }
    let lost = rx.lost_icmp_errors();
    println!(
        "[icmp flood] forged {forged} port-unreachables during the soak: try_recv_error reported {reported}, lost_icmp_errors {lost}, unaccounted (refused by the kernel, less double counts) {}",
        forged - (reported + lost).min(forged)
    );
    assert!(forged > 0, "the flood sent nothing");
    // `reported` may exceed the ring's 64: try_recv_error goes on to read
    // what the kernel queued after the last receive drained (seen once).
    assert!(reported + lost <= forged + forged / 10, "far more errors accounted for than forged");
    assert!(lost > 0, "none of {forged} errors was drained during the soak");
}

// The receiver above shares the socket through an Arc: checked at compile
// time, not by a test that could not fail.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Socket>();
    assert_send_sync::<RecvBatch>();
};
