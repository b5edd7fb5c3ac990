//! LFW-style verification during training: embed every image of a pairs list with the network as it
//! is (inference mode, no augmentation), then the same 10-fold protocol as `trainer eval lfw`.
//!
//! The pairs come from a standard pairs file (`--pairs` with `--images`) or are made from identities
//! held out of training (`--hold-out`): every same-person pair plus as many different-person pairs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::prelude::*;

use super::arch::EmbedNet;
use super::data::Dataset;
use super::data::augment::{Augment, render};
use super::data::chips::Chip;
use super::rng::Rng;
use crate::eval::lfw::{Pair, PairsFile, evaluate, score_pairs, split_folds};

/// What one validation measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Validation {
    pub step: u64,
    pub pairs: usize,
    /// Mean 10-fold accuracy and its spread.
    pub accuracy: f64,
    pub std: f64,
    /// Best threshold on all pairs (Euclidean distance between unit embeddings) and the share of
    /// different-person pairs it accepts there.
    pub threshold: f32,
    pub far: f64,
    pub pairs_without_face: usize,
}

/// Same-person pairs of every held-out identity and an equal number of different-person pairs,
/// drawn with `seed`, in 10 interleaved folds.
pub fn held_out_pairs(held: &Dataset, seed: u64) -> PairsFile {
    let mut same = Vec::new();
    for id in &held.identities {
        for i in 0..id.images.len() {
            for j in (i + 1)..id.images.len() {
                same.push((id.images[i].clone(), id.images[j].clone()));
            }
        }
    }
    let mut rng = Rng::for_step(seed, 0x9A1E, 0);
    let n = held.identities.len();
    let mut diff = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut tries = 0;
    while n >= 2 && diff.len() < same.len() && tries < 100 * same.len().max(1) {
        tries += 1;
        let (a, b) = (rng.below(n), rng.below(n));
        if a == b {
            continue;
        }
        let ia = &held.identities[a].images;
        let ib = &held.identities[b].images;
        let pa = ia[rng.below(ia.len())].clone();
        let pb = ib[rng.below(ib.len())].clone();
        let key = if pa < pb { (pa, pb) } else { (pb, pa) };
        if seen.insert(key.clone()) {
            diff.push(key);
        }
    }
    let pairs: Vec<Pair> = same
        .into_iter()
        .map(|(a, b)| (a, b, true))
        .chain(diff.into_iter().map(|(a, b)| (a, b, false)))
        .enumerate()
        .map(|(i, (a, b, same))| Pair {
            a,
            b,
            same,
            fold: i % 10,
        })
        .collect();
    PairsFile { folds: 10, pairs }
}

/// Unit embeddings of `chips` (packed RGB `size`²·3, `None` = no face) by `model` in inference mode.
pub fn embed_chips<M: EmbedNet>(
    model: &M,
    chips: &[&Chip],
    size: usize,
    device: &Device,
) -> Vec<Option<Vec<f32>>> {
    let mut out = vec![None; chips.len()];
    let present: Vec<usize> = (0..chips.len()).filter(|&i| chips[i].is_some()).collect();
    let per = 3 * size * size;
    for batch in present.chunks(32) {
        let mut buf = vec![0.0f32; batch.len() * per];
        for (slot, &i) in batch.iter().enumerate() {
            let chip = chips[i].as_ref().expect("present");
            render(
                chip,
                size,
                &Augment::NONE,
                &mut Rng::new(0),
                &mut buf[slot * per..(slot + 1) * per],
            );
        }
        let x = Tensor::<4>::from_data(TensorData::new(buf, [batch.len(), 3, size, size]), device);
        let e: Vec<f32> = model
            .embed(x)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 embeddings");
        let dim = e.len() / batch.len();
        for (slot, &i) in batch.iter().enumerate() {
            out[i] = Some(e[slot * dim..(slot + 1) * dim].to_vec());
        }
    }
    out
}

/// Scores `pairs` with the embeddings of their images (`images[i]` ↔ `embeddings[i]`).
pub fn score(
    step: u64,
    pairs: &PairsFile,
    images: &[PathBuf],
    embeddings: Vec<Option<Vec<f32>>>,
) -> anyhow::Result<Validation> {
    let map: BTreeMap<PathBuf, Option<Vec<f32>>> = images.iter().cloned().zip(embeddings).collect();
    let euclid = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt()
    };
    let mut scored = score_pairs(pairs, &map, euclid);
    let folds = split_folds(&mut scored, pairs.folds);
    let report = evaluate(&scored, folds, 1e-3)?;
    let impostors: Vec<_> = scored.iter().filter(|s| !s.same).collect();
    let accepted = impostors
        .iter()
        .filter(|s| matches!(s.distance, Some(d) if d < report.threshold))
        .count();
    Ok(Validation {
        step,
        pairs: report.pairs,
        accuracy: report.mean_accuracy,
        std: report.std_accuracy,
        threshold: report.threshold,
        far: accepted as f64 / impostors.len().max(1) as f64,
        pairs_without_face: report.pairs_without_face,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::Identity;

    #[test]
    fn held_out_pairs_are_balanced_and_deterministic() {
        let id = |n: &str, k: usize| Identity {
            name: n.into(),
            images: (0..k)
                .map(|i| PathBuf::from(format!("{n}/{i}.jpg")))
                .collect(),
        };
        let ds = Dataset {
            root: PathBuf::from("x"),
            identities: vec![id("a", 3), id("b", 2), id("c", 2)],
        };
        let p = held_out_pairs(&ds, 3);
        let same = p.pairs.iter().filter(|p| p.same).count();
        assert_eq!(same, 3 + 1 + 1);
        assert_eq!(p.pairs.len(), 2 * same);
        assert_eq!(p, held_out_pairs(&ds, 3));
        for pair in p.pairs.iter().filter(|p| !p.same) {
            assert_ne!(pair.a.parent(), pair.b.parent());
        }
    }
}
