//! FaceNet's triplet loss over L2-normalised embeddings, `max(0, ||a-p||² - ||a-n||² + α)`, with the
//! triplets mined online inside each P×K batch.
//!
//! Mining reads the batch's squared-distance matrix once (detached, on the CPU: B² numbers) and picks
//! index triplets; the loss is then computed on the autodiff tensor by gathering those entries, so
//! gradients flow only through the chosen triplets.

use burn::prelude::*;
use burn::tensor::activation::relu;

use super::rng::Rng;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
pub enum Mining {
    /// Every valid triplet; the loss averages over those with a positive loss.
    BatchAll,
    /// FaceNet's choice: for each anchor-positive pair, the closest negative that is still farther
    /// than the positive (inside the margin when one exists).
    SemiHard,
    /// For each anchor, its farthest positive and closest negative.
    BatchHard,
    /// Semi-hard negatives at first, a rising share of hardest negatives over training.
    Curriculum,
}

impl Mining {
    pub fn as_str(self) -> &'static str {
        match self {
            Mining::BatchAll => "batch-all",
            Mining::SemiHard => "semi-hard",
            Mining::BatchHard => "batch-hard",
            Mining::Curriculum => "curriculum",
        }
    }
}

/// The share of hardest-negative triplets in curriculum mining at `progress` (0 at the first step,
/// 1 at the last): rises linearly from 0 to `max_hard`.
pub fn hard_share(progress: f64, max_hard: f64) -> f64 {
    progress.clamp(0.0, 1.0) * max_hard
}

/// Index triplets `(anchor, positive, negative)` into the batch.
pub type Triplet = (usize, usize, usize);

/// Picks triplets from the squared distances `d` (row-major `n`x`n`) of a batch labelled `labels`.
/// `hard` is the curriculum's share of hardest negatives (ignored by the other strategies).
pub fn mine(mining: Mining, d: &[f32], labels: &[usize], hard: f64, rng: &mut Rng) -> Vec<Triplet> {
    let n = labels.len();
    let at = |i: usize, j: usize| d[i * n + j];
    let positives = |a: usize| (0..n).filter(move |&p| p != a && labels[p] == labels[a]);
    let negatives = |a: usize| (0..n).filter(move |&m| labels[m] != labels[a]);
    let mut out = Vec::new();
    match mining {
        Mining::BatchAll => {
            for a in 0..n {
                for p in positives(a) {
                    out.extend(negatives(a).map(|m| (a, p, m)));
                }
            }
        }
        Mining::BatchHard => {
            for a in 0..n {
                let hardest_p = positives(a).max_by(|&x, &y| at(a, x).total_cmp(&at(a, y)));
                let hardest_n = negatives(a).min_by(|&x, &y| at(a, x).total_cmp(&at(a, y)));
                if let (Some(p), Some(m)) = (hardest_p, hardest_n) {
                    out.push((a, p, m));
                }
            }
        }
        Mining::SemiHard | Mining::Curriculum => {
            for a in 0..n {
                for p in positives(a) {
                    let dap = at(a, p);
                    let take_hardest = mining == Mining::Curriculum && f64::from(rng.unit()) < hard;
                    let m = if take_hardest {
                        negatives(a).min_by(|&x, &y| at(a, x).total_cmp(&at(a, y)))
                    } else {
                        // The closest negative farther than the positive; when every negative is
                        // closer than the positive, the farthest one (the easiest violation), as
                        // in FaceNet's reference implementation.
                        negatives(a)
                            .filter(|&m| at(a, m) > dap)
                            .min_by(|&x, &y| at(a, x).total_cmp(&at(a, y)))
                            .or_else(|| negatives(a).max_by(|&x, &y| at(a, x).total_cmp(&at(a, y))))
                    };
                    if let Some(m) = m {
                        out.push((a, p, m));
                    }
                }
            }
        }
    }
    out
}

/// Per-step figures: the mean triplet loss over the mined triplets, the share of chosen triplets with a positive loss, and the mean
/// anchor-positive and anchor-negative (Euclidean) distances over all pairs of the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepStats {
    pub loss: f32,
    pub active: f32,
    pub triplets: usize,
    pub pos_dist: f32,
    pub neg_dist: f32,
}

/// Squared Euclidean distances between the rows of `e` (`[n, dim]`), clamped at 0.
pub fn squared_distances(e: Tensor<2>) -> Tensor<2> {
    let sq = e.clone().powi_scalar(2).sum_dim(1); // [n, 1]
    let gram = e.clone().matmul(e.transpose());
    (sq.clone() + sq.transpose() - gram * 2.0).clamp_min(0.0)
}

/// The triplet loss of a batch of L2-normalised embeddings `e` (autodiff tensor) and its figures.
pub fn triplet_loss(
    e: Tensor<2>,
    labels: &[usize],
    mining: Mining,
    margin: f32,
    hard: f64,
    rng: &mut Rng,
) -> (Tensor<1>, StepStats) {
    let n = labels.len();
    let device = e.device();
    let d = squared_distances(e);
    let values: Vec<f32> = d
        .clone()
        .detach()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 distances");
    let mut stats = batch_distances(&values, labels);
    let triplets = mine(mining, &values, labels, hard, rng);
    stats.triplets = triplets.len();
    let active = triplets
        .iter()
        .filter(|&&(a, p, m)| values[a * n + p] - values[a * n + m] + margin > 0.0)
        .count();
    stats.active = active as f32 / triplets.len().max(1) as f32;
    if triplets.is_empty() {
        return ((d.sum() * 0.0).reshape([1]), stats);
    }
    let index = |f: &dyn Fn(&Triplet) -> usize| {
        let v: Vec<i64> = triplets.iter().map(|t| f(t) as i64).collect();
        Tensor::<1, Int>::from_data(TensorData::new(v, [triplets.len()]), &device)
    };
    let flat = d.reshape([n * n]);
    let dap = flat.clone().select(0, index(&|&(a, p, _)| a * n + p));
    let dan = flat.select(0, index(&|&(a, _, m)| a * n + m));
    let per = relu(dap - dan + margin);
    // Batch-all averages over the triplets that still violate the margin (the usual choice: the
    // easy majority would otherwise dilute the gradient to nothing); the others over the chosen set.
    let denom = match mining {
        Mining::BatchAll => active.max(1),
        _ => triplets.len(),
    } as f32;
    let total = per.sum();
    let sum = total
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32")[0];
    // Reported: the mean over the mined triplets, comparable across steps and strategies (batch-all's
    // objective divides the same sum by the shrinking number of active triplets instead).
    stats.loss = sum / triplets.len() as f32;
    (total / denom, stats)
}

fn batch_distances(d: &[f32], labels: &[usize]) -> StepStats {
    let n = labels.len();
    let (mut pos, mut np, mut neg, mut nn) = (0.0f64, 0usize, 0.0f64, 0usize);
    for a in 0..n {
        for b in (a + 1)..n {
            let dist = f64::from(d[a * n + b].max(0.0)).sqrt();
            if labels[a] == labels[b] {
                pos += dist;
                np += 1;
            } else {
                neg += dist;
                nn += 1;
            }
        }
    }
    StepStats {
        pos_dist: (pos / np.max(1) as f64) as f32,
        neg_dist: (neg / nn.max(1) as f64) as f32,
        ..StepStats::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 samples, labels [0,0,1,1], distances chosen so each strategy's pick is unambiguous.
    fn setup() -> (Vec<f32>, Vec<usize>) {
        #[rustfmt::skip]
        let d = vec![
            0.0, 0.5, 0.3, 0.9,
            0.5, 0.0, 0.7, 0.6,
            0.3, 0.7, 0.0, 0.4,
            0.9, 0.6, 0.4, 0.0,
        ];
        (d, vec![0, 0, 1, 1])
    }

    #[test]
    fn each_strategy_picks_the_expected_triplets() {
        let (d, labels) = setup();
        let mut rng = Rng::new(0);
        let all = mine(Mining::BatchAll, &d, &labels, 0.0, &mut rng);
        assert_eq!(all.len(), 8);
        let hard = mine(Mining::BatchHard, &d, &labels, 0.0, &mut rng);
        // anchor 0: positive 1 (0.5), closest negative 2 (0.3).
        assert_eq!(hard[0], (0, 1, 2));
        let semi = mine(Mining::SemiHard, &d, &labels, 0.0, &mut rng);
        // anchor 0, positive 1 at 0.5: negatives 2 (0.3, closer) and 3 (0.9): semi-hard is 3.
        assert_eq!(semi[0], (0, 1, 3));
        // anchor 1, positive 0 at 0.5: negatives 2 (0.7) and 3 (0.6): the closest farther one is 3.
        assert_eq!(semi[1], (1, 0, 3));
        let cur = mine(Mining::Curriculum, &d, &labels, 1.0, &mut rng);
        assert_eq!(cur[0], (0, 1, 2));
        assert_eq!(hard_share(0.5, 0.6), 0.3);
    }

    #[test]
    fn loss_matches_a_hand_computation() {
        let device = Device::flex();
        let e = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]], &device);
        let labels = [0, 0, 1, 1];
        let d: Vec<f32> = squared_distances(e.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!((d[1] - 2.0).abs() < 1e-6 && d[2].abs() < 1e-6);
        let (loss, stats) = triplet_loss(e, &labels, Mining::BatchHard, 0.2, 0.0, &mut Rng::new(0));
        // Per anchor (hardest p, closest n): a0: 2-0+.2; a1: 2-min(2, 0.4)+.2; a2: 0.8-0+.2; a3: 0.8-0.4+.2.
        let want = ((2.2 + 1.8 + 1.0 + 0.6) / 4.0) as f32;
        let got = loss.into_data().try_to_vec::<f32>().unwrap()[0];
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert_eq!(stats.active, 1.0);
        assert!(stats.pos_dist > 0.0 && stats.neg_dist > 0.0);
    }
}
