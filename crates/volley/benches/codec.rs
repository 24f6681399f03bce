//! Micro-benchmarks of the two pieces of per-datagram work volley does in
//! user space: the control-message codec and the GRO splitter.
//!
//! `cargo bench -p volley --features fuzzing --bench codec`
//!
//! Group names encode the configuration, after quinn-udp's benches.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use volley::fuzzing;
use volley::RecvBatch;

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("cmsg");
    g.throughput(Throughput::Elements(1));
    let control = fuzzing::sample_recv_control();
    g.bench_function("decode_pktinfo_tos_ttl_gro_ovfl", |b| b.iter(|| fuzzing::decode_control(black_box(&control))));
    let v4: IpAddr = "127.0.0.2".parse().unwrap_or(IpAddr::from([127, 0, 0, 2]));
    let v6: IpAddr = "fd00::2".parse().unwrap_or(IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 2]));
    g.bench_function("encode_tos_pktinfo_segment_v4", |b| {
        b.iter(|| fuzzing::encode_send(black_box(0xba), black_box(v4), black_box(1200)))
    });
    g.bench_function("encode_tos_pktinfo_segment_v6", |b| {
        b.iter(|| fuzzing::encode_send(black_box(0xba), black_box(v6), black_box(1200)))
    });
    g.finish();
}

fn gro_split(c: &mut Criterion) {
    let mut g = c.benchmark_group("gro_split");
    for (segments, stride) in [(1usize, 1200usize), (54, 1200), (128, 64)] {
        let data = vec![0x5au8; segments * stride];
        let mut batch = RecvBatch::with_capacity(1, volley::DEFAULT_SLOT_LEN);
        fuzzing::fill_batch(&mut batch, &data, stride);
        g.throughput(Throughput::Elements(segments as u64));
        g.bench_function(format!("segments_{segments}_stride_{stride}"), |b| {
            b.iter(|| {
                let mut bytes = 0;
                for (meta, payload) in black_box(&batch).iter() {
                    bytes += meta.len + payload.len();
                }
                bytes
            })
        });
    }
    g.finish();
}

criterion_group!(benches, codec, gro_split);
criterion_main!(benches);
