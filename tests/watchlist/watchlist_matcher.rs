//! The int8 matcher against the f32 reference on synthetic, seeded embeddings: distances within the
//! stated bound, the same best identity whenever the f32 result is not a near-tie within that
//! bound, and margins measured to the second-best *identity*.

use crate::common::watchlist::*;
use lanewatch::matcher::{ExactIndex, Index};
use lanewatch::vision::contract::Metric;
use lanewatch::watchlist::LoadedWatchlist;

const D: usize = 128;

fn build(metric: Metric, identities: usize, rng: &mut Rng) -> (Index, ExactIndex, Vec<Vec<f32>>) {
    let mut int8 = Index::new(D, metric);
    let mut exact = ExactIndex::new(D, metric);
    let mut all = Vec::new();
    for i in 0..identities {
        // A person: a centre and 1..=3 nearby shots of it.
        let centre = rng.vector(D, 0.09);
        let shots: Vec<Vec<f32>> = (0..1 + i % 3)
            .map(|_| {
                centre
                    .iter()
                    .map(|c| c + 0.02 * rng.0.gaussian_f32())
                    .collect()
            })
            .collect();
        int8.push_identity(shots.iter().map(Vec::as_slice)).unwrap();
        exact
            .push_identity(shots.iter().map(Vec::as_slice))
            .unwrap();
        all.extend(shots);
    }
    (int8, exact, all)
}

fn compare(metric: Metric, seed: u64) {
    let mut rng = Rng::new(seed);
    let (int8, exact, stored) = build(metric, 1000, &mut rng);
    let (mut worst_err, mut worst_bound, mut clear) = (0.0f32, 0.0f32, 0);
    let queries = 200;
    for q in 0..queries {
        // Even queries are noisy probes of a stored face, odd ones strangers.
        let probe = q % 2 == 0;
        let query: Vec<f32> = if probe {
            let s = &stored[(rng.0.next_u64() % stored.len() as u64) as usize];
            s.iter().map(|x| x + 0.03 * rng.0.gaussian_f32()).collect()
        } else {
            rng.vector(D, 0.09)
        };
        let a = int8.search(&query).unwrap().unwrap();
        let e = exact.search(&query).unwrap().unwrap();
        let bound = int8.distance_error_bound(&query, a.distance).unwrap() + 1e-5;
        worst_bound = worst_bound.max(bound);
        // The reported distance is the exact distance to the identity it picked, within the bound.
        let exact_to_pick = exact_distance_to(&exact, &query, a.identity);
        let err = (a.distance - exact_to_pick).abs();
        worst_err = worst_err.max(err);
        assert!(err <= bound, "query {q}: error {err} > bound {bound}");
        let (_, second) = e.second.unwrap();
        // The bound shrinks with distance, so the one at the pick covers every farther row.
        if second - e.distance > 2.0 * bound {
            assert_eq!(a.identity, e.identity, "query {q}");
            assert!((a.margin - e.margin).abs() <= 2.0 * bound, "query {q}");
            assert!((a.similarity - e.similarity).abs() <= 0.02, "query {q}");
            clear += 1;
        } else {
            // A near-tie: a probe of a stored face never is one with this data.
            assert!(!probe, "query {q}: probe with gap {}", second - e.distance);
            assert!(exact_to_pick - e.distance <= 2.0 * bound, "query {q}");
        }
    }
    println!(
        "{metric:?}: worst |int8 - f32| distance error {worst_err:.2e}, worst bound {worst_bound:.2e}, \
         {clear}/{queries} queries with a clear winner, all agreeing"
    );
}

/// Exact distance from `query` to the closest embedding of `identity`, by a one-identity index.
fn exact_distance_to(exact: &ExactIndex, query: &[f32], identity: usize) -> f32 {
    exact
        .distance_to_identity(query, identity)
        .unwrap()
        .unwrap()
}

#[test]
fn int8_agrees_with_f32_euclidean() {
    compare(Metric::Euclidean, 1);
}

#[test]
fn int8_agrees_with_f32_cosine() {
    compare(Metric::Cosine, 2);
}

#[test]
fn a_loaded_watchlist_finds_its_own_people() {
    let verified = verifier().verify_at(&file(1), NOW).unwrap();
    let body = verified.body.clone();
    let loaded = LoadedWatchlist::from_verified("mem".into(), verified).unwrap();
    for (i, entry) in body.entries.iter().enumerate() {
        for v in &entry.embeddings {
            let m = loaded.index.search(v).unwrap().unwrap();
            assert_eq!(m.identity, i);
            let bound = loaded.index.distance_error_bound(v, 0.0).unwrap();
            assert!(m.distance <= bound, "{m:?} bound {bound}");
            assert!(m.similarity > 0.99);
            assert!(m.margin > 0.1);
        }
    }
}
