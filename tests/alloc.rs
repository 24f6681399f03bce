//! The data path allocates nothing: after warm-up, 1000 rounds of
//! `try_send_batch` (64 transmits, with and without GSO) and
//! `try_recv_batch` perform zero heap allocations, on both datapaths.
//!
//! The shared counting global allocator (`volley_tests::alloc`) counts
//! allocations per thread, so the test harness's own threads cannot
//! disturb the count. The same tests run on Windows (under Wine in `cargo
//! xtask ci`): the Windows backend and the portable one.

use std::time::{Duration, Instant};

use volley::{RecvBatch, Socket, Transmit};
use volley_tests::alloc::{count_allocations, CountingAlloc};
use volley_tests::driver::{self, for_each_backend, payload, train};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// One round: sends all of `transmits` (retrying on `WouldBlock`), then
/// receives until `datagrams` arrived. Allocation-free unless it fails.
fn round(tx: &Socket, rx: &Socket, batch: &mut RecvBatch, transmits: &[Transmit<'_>], datagrams: usize, bytes: usize) {
    let deadline = Instant::now() + driver::TIMEOUT;
    let mut rest = transmits;
    while !rest.is_empty() {
        match tx.try_send_batch(rest) {
            Ok(sent) => {
                assert!(!sent.is_partial(), "a GSO train cut: {sent:?}");
                rest = &rest[sent.transmits..];
            }
            Err(e) if e.is_would_block() => {
                let _ = tx.wait_writable(Duration::from_millis(100));
            }
            Err(e) => panic!("send: {e}"),
        }
        assert!(Instant::now() < deadline, "send stalled");
    }
    let (mut got, mut got_bytes) = (0, 0);
    while got < datagrams {
        match rx.try_recv_batch(batch) {
            Ok(n) => {
                got += n;
                got_bytes += batch.iter().map(|(m, _)| m.len).sum::<usize>();
            }
            Err(e) if e.is_would_block() => {
                assert!(Instant::now() < deadline, "received {got} of {datagrams}: lost?");
                let _ = rx.wait_readable(Duration::from_millis(100));
            }
            Err(e) => panic!("receive: {e}"),
        }
    }
    assert_eq!((got, got_bytes), (datagrams, bytes));
}

#[test]
fn send_and_receive_rounds_allocate_nothing() {
    for_each_backend(|case| {
        let rx = case.bind_with("127.0.0.1:0", |c| c.recv_buffer_size(8 << 20));
        let tx = case.bind("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        println!("[{}] receive buffer {:?}", case.name, rx.recv_buffer_size());

        let singles: Vec<Vec<u8>> = (0..64).map(|s| payload(s, 200)).collect();
        let single_ts: Vec<_> = singles.iter().map(|b| Transmit::new(to, b)).collect();
        let trains: Vec<Vec<u8>> = (0..64).map(|s| train(s * 4, 3, 1000, 500)).collect();
        let train_ts: Vec<_> = trains.iter().map(|b| Transmit::new(to, b).with_segment_size(1000)).collect();
        let mut batch = RecvBatch::with_capacity(64, 1 << 16);

        let mut run = |n: usize| {
            for i in 0..n {
                if i % 2 == 0 {
                    round(&tx, &rx, &mut batch, &single_ts, 64, 64 * 200);
                } else {
                    round(&tx, &rx, &mut batch, &train_ts, 64 * 4, 64 * 3500);
                }
            }
        };
        run(20); // warm-up: lazy statics, first-use paths
        let t0 = Instant::now();
        let allocations = count_allocations(|| run(1000));
        println!("[{}] 1000 rounds in {:?}: {allocations} allocations", case.name, t0.elapsed());
        assert_eq!(allocations, 0, "[{}] the data path allocated", case.name);
    });
}

/// Publishing statistics (volley-metrics) allocates nothing after the
/// handles are registered: `record` on a live socket's snapshot, 1000
/// times, through a real Prometheus recorder whose rendering then shows
/// the values (so the handles were not no-ops).
#[test]
fn metrics_record_allocates_nothing() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let sock = Socket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = sock.local_addr().unwrap();
    let m = metrics::with_local_recorder(&recorder, || volley_metrics::SocketMetrics::new("alloc", to));
    let mut batch = RecvBatch::new();
    let p = payload(1, 100);
    let allocations = count_allocations(|| {
        for _ in 0..1000 {
            sock.send_batch_blocking(&[Transmit::new(to, &p)], driver::TIMEOUT).unwrap();
            sock.recv_batch_blocking(&mut batch, driver::TIMEOUT).unwrap();
            m.record(&sock.stats());
        }
    });
    assert_eq!(allocations, 0, "record allocated");
    let text = handle.render();
    assert!(text.contains("volley_datagrams_received_total{socket=\"alloc\""), "{text}");
    assert!(text.lines().any(|l| l.starts_with("volley_datagrams_received_total") && l.ends_with(" 1000")), "{text}");
}

/// The counter works: a sanity check that allocations are seen at all.
#[test]
fn counting_allocator_sees_allocations() {
    let n = count_allocations(|| {
        let v = std::hint::black_box(vec![1u8; 100]);
        drop(v);
    });
    assert_eq!(n, 1);
}
