//! How many photos per listed person, and how to combine them: one embedding per photo searched by
//! the closest one (`closest`, what the matcher does with several embeddings per entry), or their
//! mean (`mean`, one embedding per entry).
//!
//! Protocol (`trainer eval lfw --enrolment-rules`): people with at least `MAX_PHOTOS + 1` images are
//! enrolled from their first 1, 2 or 3 images with a face; everybody else from their first. Their
//! later images (at most `PROBES_PER_PERSON` each, so a few much-photographed people do not dominate)
//! are the searches: mated when the person is on the drawn list, non-mated when not. The same
//! people, lists and searches for every rule, so the rows differ by the rule alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lanewatch::enrollment::mean_descriptor;
use lanewatch::vision::contract::Metric;
use lanewatch::vision::embed::distance;

use crate::train::rng::Rng;

pub const MAX_PHOTOS: usize = 3;
const PROBES_PER_PERSON: usize = 10;

#[derive(Clone, Debug, serde::Serialize)]
pub struct RuleRow {
    pub photos: usize,
    pub rule: &'static str,
    pub watchlist_size: usize,
    pub fpir: f64,
    pub threshold: f32,
    pub fnir: f64,
}

struct Person {
    /// Embeddings of the images with a face, in order.
    faces: Vec<Vec<f32>>,
    multi: bool,
}

/// FNIR at FPIR `target` for each number of photos and rule, per list size.
pub fn report(
    embeddings: &BTreeMap<PathBuf, Option<Vec<f32>>>,
    metric: Metric,
    sizes: &[usize],
    target: f64,
    draws: usize,
    seed: u64,
) -> Vec<RuleRow> {
    let mut by_person: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
    for (path, e) in embeddings {
        if let Some(e) = e {
            by_person
                .entry(person_of(path))
                .or_default()
                .push(e.clone());
        }
    }
    let people: Vec<Person> = by_person
        .into_values()
        .map(|faces| Person {
            multi: faces.len() > MAX_PHOTOS,
            faces,
        })
        .collect();
    let mut rows = Vec::new();
    for &n in sizes {
        if n + 10 > people.len() {
            continue;
        }
        for photos in 1..=MAX_PHOTOS {
            for (rule, mean) in [("closest", false), ("mean", true)] {
                if photos == 1 && mean {
                    continue; // the same as closest with one photo
                }
                let gallery: Vec<Vec<Vec<f32>>> = people
                    .iter()
                    .map(|p| {
                        let k = if p.multi { photos } else { 1 };
                        let chosen = &p.faces[..k.min(p.faces.len())];
                        if mean {
                            vec![mean_descriptor(chosen, metric)]
                        } else {
                            chosen.to_vec()
                        }
                    })
                    .collect();
                let (threshold, fpir, fnir) =
                    measure(&people, &gallery, metric, n, target, draws, seed);
                rows.push(RuleRow {
                    photos,
                    rule,
                    watchlist_size: n,
                    fpir,
                    threshold,
                    fnir,
                });
            }
        }
    }
    rows
}

/// Over `draws` lists of `n` people: the threshold that keeps non-mated searches' FPIR at `target`,
/// the FPIR reached and the FNIR of mated searches (wrong person first or too far = miss).
fn measure(
    people: &[Person],
    gallery: &[Vec<Vec<f32>>],
    metric: Metric,
    n: usize,
    target: f64,
    draws: usize,
    seed: u64,
) -> (f32, f64, f64) {
    let mut non_mated: Vec<f32> = Vec::new();
    let mut mated: Vec<(bool, f32)> = Vec::new(); // (right person first, its distance)
    for draw in 0..draws {
        let mut rng = Rng::for_step(seed, 0xe4_0000 + n as u64, draw as u64);
        let mut order: Vec<usize> = (0..people.len()).collect();
        for i in 0..n {
            let j = i + rng.below(order.len() - i);
            order.swap(i, j);
        }
        let listed = &order[..n];
        let mut on_list = vec![false; people.len()];
        listed.iter().for_each(|&p| on_list[p] = true);
        for (p, person) in people.iter().enumerate().filter(|(_, p)| p.multi) {
            for probe in person.faces.iter().skip(MAX_PHOTOS).take(PROBES_PER_PERSON) {
                let (best, d) = listed
                    .iter()
                    .map(|&q| {
                        let d = gallery[q]
                            .iter()
                            .map(|g| distance(metric, probe, g))
                            .fold(f32::INFINITY, f32::min);
                        (q, d)
                    })
                    .fold(
                        (usize::MAX, f32::INFINITY),
                        |a, b| if b.1 < a.1 { b } else { a },
                    );
                if on_list[p] {
                    mated.push((best == p, d));
                } else {
                    non_mated.push(d);
                }
            }
        }
    }
    non_mated.sort_by(f32::total_cmp);
    let allowed = (target * non_mated.len() as f64).floor() as usize;
    let t = non_mated.get(allowed).copied().unwrap_or(f32::INFINITY);
    let fpir = non_mated.partition_point(|&d| d < t) as f64 / non_mated.len().max(1) as f64;
    let misses = mated
        .iter()
        .filter(|(right, d)| !(*right && *d < t))
        .count();
    (t, fpir, misses as f64 / mated.len().max(1) as f64)
}

fn person_of(path: &Path) -> String {
    path.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// People as noisy copies of a centre: more photos (either rule) must not find fewer people.
    #[test]
    fn more_photos_find_more_people_on_separated_synthetic_identities() {
        let mut rng = lanewatch::rng::SplitMix64::new(3);
        let mut embeddings = BTreeMap::new();
        for p in 0..150 {
            let centre: Vec<f32> = (0..16).map(|_| rng.gaussian_f32()).collect();
            let images = if p % 2 == 0 { 8 } else { 1 };
            for i in 0..images {
                let v: Vec<f32> = centre
                    .iter()
                    .map(|c| c + 0.6 * rng.gaussian_f32())
                    .collect();
                embeddings.insert(
                    PathBuf::from(format!("lfw/p{p:03}/p{p:03}_{i:04}.jpg")),
                    Some(lanewatch::vision::embed::l2_normalised(v)),
                );
            }
        }
        let rows = report(&embeddings, Metric::Cosine, &[50], 0.05, 5, 1);
        let fnir = |k, rule| {
            rows.iter()
                .find(|r| r.photos == k && r.rule == rule)
                .unwrap()
                .fnir
        };
        assert_eq!(rows.len(), 5);
        assert!(fnir(3, "mean") <= fnir(1, "closest"), "{rows:?}");
        assert!(fnir(3, "closest") <= fnir(1, "closest"), "{rows:?}");
    }
}
