//! 1:N matching time at N = 1k, 10k, 100k and 1M one-embedding identities (dim 128, Euclidean on
//! raw descriptors as dlib compares them): the int8 `Index` against the f32 `ExactIndex` peer.
//!
//! The vectors are synthetic (seeded Gaussian): matching time does not depend on where they come
//! from. Run: `cargo bench --bench matcher` (figures in BENCHMARKS.md).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lanewatch::matcher::{ExactIndex, Index};
use lanewatch::rng::SplitMix64;
use lanewatch::vision::contract::Metric;

const DIM: usize = 128;

/// Seeded Gaussian descriptors: deterministic, dependency-free.
struct Rng(SplitMix64);

impl Rng {
    /// Spread like dlib descriptors (components of roughly +-0.1).
    fn vector(&mut self) -> Vec<f32> {
        (0..DIM).map(|_| 0.09 * self.0.gaussian_f32()).collect()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("matcher");
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        let mut rng = Rng(SplitMix64::new(n as u64));
        let mut int8 = Index::new(DIM, Metric::Euclidean);
        let mut exact = ExactIndex::new(DIM, Metric::Euclidean);
        for _ in 0..n {
            let v = rng.vector();
            int8.push_identity([v.as_slice()]).expect("valid vector");
            exact.push_identity([v.as_slice()]).expect("valid vector");
        }
        let query = rng.vector();
        // Sanity: both find the same identity, else the timing compares different work.
        let a = int8.search(&query).expect("query").expect("non-empty");
        let b = exact.search(&query).expect("query").expect("non-empty");
        assert_eq!(a.identity, b.identity, "int8 and f32 disagree at N={n}");

        group.throughput(Throughput::Elements(n as u64));
        if n >= 100_000 {
            group.sample_size(10);
        } else {
            group.sample_size(30);
        }
        group.bench_with_input(BenchmarkId::new("int8", n), &query, |bch, q| {
            bch.iter(|| int8.search(std::hint::black_box(q)))
        });
        group.bench_with_input(BenchmarkId::new("f32", n), &query, |bch, q| {
            bch.iter(|| exact.search(std::hint::black_box(q)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
