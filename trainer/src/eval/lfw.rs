//! The standard LFW verification protocol: `pairs.txt` in 10 (or any number of) folds, a threshold chosen
//! on the other folds and tested on each one, mean accuracy ± std, and TAR at a fixed FAR.
//!
//! Accepts any LFW-layout folder (`DIR/NAME/NAME_NNNN.jpg`) and any pairs file in the standard format
//! (header `FOLDS<TAB>N`, then per fold N matched and N mismatched lines).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub a: PathBuf,
    pub b: PathBuf,
    pub same: bool,
    pub fold: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PairsFile {
    pub folds: usize,
    pub pairs: Vec<Pair>,
}

fn image_path(
    dir: &Path,
    name: &str,
    index: &str,
    file: &Path,
    line: usize,
) -> anyhow::Result<PathBuf> {
    let n: u32 = index.parse().with_context(|| {
        format!(
            "{}:{line}: image number {index:?} is not a number",
            file.display()
        )
    })?;
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!(
            "{}:{line}: {name:?} is not a person's folder name",
            file.display()
        );
    }
    Ok(dir.join(name).join(format!("{name}_{n:04}.jpg")))
}

impl PairsFile {
    /// Parses a pairs file; image paths are resolved against `images` (not checked for existence here).
    pub fn parse(text: &str, file: &Path, images: &Path) -> anyhow::Result<PairsFile> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty());
        let (_, header) = lines
            .next()
            .with_context(|| format!("{} is empty", file.display()))?;
        let head: Vec<&str> = header.split_whitespace().collect();
        let parse_num = |s: &str| {
            s.parse::<usize>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
        };
        let (folds, per_class) = match head.as_slice() {
            [f, n] => match (parse_num(f), parse_num(n)) {
                (Some(f), Some(n)) => (f, n),
                _ => bail!(
                    "{}:1: header {header:?} must be `FOLDS<TAB>PAIRS_PER_CLASS`",
                    file.display()
                ),
            },
            _ => bail!(
                "{}:1: header {header:?} must be `FOLDS<TAB>PAIRS_PER_CLASS`",
                file.display()
            ),
        };
        let mut pairs = Vec::with_capacity((folds * per_class * 2).min(1 << 20));
        for fold in 0..folds {
            for same in [true, false] {
                for _ in 0..per_class {
                    let Some((line, text)) = lines.next() else {
                        bail!(
                            "{} ends early: the header promises {folds} folds of {per_class} matched and {per_class} mismatched pairs",
                            file.display()
                        );
                    };
                    let f: Vec<&str> = text.split_whitespace().collect();
                    let pair = match (same, f.as_slice()) {
                        (true, [name, i, j]) => Pair {
                            a: image_path(images, name, i, file, line)?,
                            b: image_path(images, name, j, file, line)?,
                            same,
                            fold,
                        },
                        (false, [n1, i, n2, j]) => Pair {
                            a: image_path(images, n1, i, file, line)?,
                            b: image_path(images, n2, j, file, line)?,
                            same,
                            fold,
                        },
                        _ => bail!(
                            "{}:{line}: expected a {} pair, found {text:?}",
                            file.display(),
                            if same {
                                "matched `NAME i j`"
                            } else {
                                "mismatched `NAME1 i NAME2 j`"
                            }
                        ),
                    };
                    pairs.push(pair);
                }
            }
        }
        if let Some((line, extra)) = lines.next() {
            bail!(
                "{}:{line}: unexpected line {extra:?} after the last fold",
                file.display()
            );
        }
        Ok(PairsFile { folds, pairs })
    }

    pub fn read(file: &Path, images: &Path) -> anyhow::Result<PairsFile> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read pairs file {}", file.display()))?;
        Self::parse(&text, file, images)
    }

    /// Every distinct image the pairs need, in a stable order.
    pub fn images(&self) -> Vec<PathBuf> {
        let mut set: Vec<PathBuf> = self
            .pairs
            .iter()
            .flat_map(|p| [p.a.clone(), p.b.clone()])
            .collect();
        set.sort();
        set.dedup();
        set
    }
}

/// One scored pair: `distance` is `None` when either image had no usable face (counted as an error).
#[derive(Clone, Copy, Debug)]
pub struct Scored {
    pub distance: Option<f32>,
    pub same: bool,
    pub fold: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct FoldResult {
    pub fold: usize,
    pub threshold: f32,
    pub accuracy: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub pairs: usize,
    pub folds: Vec<FoldResult>,
    pub mean_accuracy: f64,
    pub std_accuracy: f64,
    /// Threshold chosen on all pairs (what a deployment would use at this operating point).
    pub threshold: f32,
    pub far_target: f64,
    /// TAR over all matched pairs at the largest threshold whose FAR over all mismatched pairs is <= the target.
    pub tar_at_far: f64,
    pub threshold_at_far: f32,
    pub pairs_without_face: usize,
}

/// Number of correct decisions at `threshold` (same iff distance < threshold; no face = wrong).
fn correct(scored: &[&Scored], threshold: f32) -> usize {
    scored
        .iter()
        .filter(|s| matches!(s.distance, Some(d) if (d < threshold) == s.same))
        .count()
}

/// The threshold that maximises accuracy on `scored`, searched exactly over midpoints of sorted distances.
fn best_threshold(scored: &[&Scored]) -> f32 {
    let mut d: Vec<f32> = scored.iter().filter_map(|s| s.distance).collect();
    d.sort_by(f32::total_cmp);
    d.dedup();
    let mut candidates: Vec<f32> = d.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
    if let (Some(first), Some(last)) = (d.first(), d.last()) {
        candidates.push(first - 1e-6);
        candidates.push(last + 1e-6);
    }
    // Count incrementally: sort the scored pairs by distance and sweep.
    let mut sorted: Vec<(f32, bool)> = scored
        .iter()
        .filter_map(|s| s.distance.map(|d| (d, s.same)))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total_diff = sorted.iter().filter(|(_, same)| !*same).count();
    let mut best = (0usize, 0.0f32);
    let mut below_same = 0usize;
    let mut below_diff = 0usize;
    let mut i = 0;
    candidates.sort_by(f32::total_cmp);
    for t in candidates {
        while i < sorted.len() && sorted[i].0 < t {
            if sorted[i].1 {
                below_same += 1
            } else {
                below_diff += 1
            }
            i += 1;
        }
        let c = below_same + (total_diff - below_diff);
        if c > best.0 {
            best = (c, t);
        }
    }
    best.1
}

/// The number of folds to evaluate `scored` with: the pairs file's own, except that a one-fold file
/// (such as LFW's fold 1 alone) would choose and test the threshold on the same pairs, so its pairs
/// are split into 10 interleaved folds and the threshold is still chosen on held-out pairs.
pub fn split_folds(scored: &mut [Scored], folds: usize) -> usize {
    if folds != 1 {
        return folds;
    }
    scored
        .iter_mut()
        .enumerate()
        .for_each(|(i, s)| s.fold = i % 10);
    10
}

pub fn evaluate(scored: &[Scored], folds: usize, far_target: f64) -> anyhow::Result<Report> {
    anyhow::ensure!(folds >= 2 || folds == 1, "need at least one fold");
    let mut fold_results = Vec::with_capacity(folds);
    for fold in 0..folds {
        let test: Vec<&Scored> = scored.iter().filter(|s| s.fold == fold).collect();
        let train: Vec<&Scored> = scored
            .iter()
            .filter(|s| s.fold != fold || folds == 1)
            .collect();
        anyhow::ensure!(!test.is_empty(), "fold {fold} has no pairs");
        let threshold = best_threshold(&train);
        let accuracy = correct(&test, threshold) as f64 / test.len() as f64;
        fold_results.push(FoldResult {
            fold,
            threshold,
            accuracy,
        });
    }
    let n = fold_results.len() as f64;
    let mean = fold_results.iter().map(|f| f.accuracy).sum::<f64>() / n;
    let var = fold_results
        .iter()
        .map(|f| (f.accuracy - mean).powi(2))
        .sum::<f64>()
        / n;
    let all: Vec<&Scored> = scored.iter().collect();
    let (tar, threshold_at_far) = tar_at_far(scored, far_target);
    Ok(Report {
        pairs: scored.len(),
        folds: fold_results,
        mean_accuracy: mean,
        std_accuracy: var.sqrt(),
        threshold: best_threshold(&all),
        far_target,
        tar_at_far: tar,
        threshold_at_far,
        pairs_without_face: scored.iter().filter(|s| s.distance.is_none()).count(),
    })
}

/// TAR at the largest threshold that keeps FAR <= target. Pairs without a face are rejections:
/// they count against TAR and never as false accepts.
pub fn tar_at_far(scored: &[Scored], far_target: f64) -> (f64, f32) {
    let mut impostor: Vec<f32> = scored
        .iter()
        .filter(|s| !s.same)
        .filter_map(|s| s.distance)
        .collect();
    impostor.sort_by(f32::total_cmp);
    let n_impostor = scored.iter().filter(|s| !s.same).count();
    let allowed = (far_target * n_impostor as f64).floor() as usize;
    // Accept iff distance < t: at most `allowed` impostors may be below t.
    let threshold = impostor.get(allowed).copied().unwrap_or(f32::INFINITY);
    let genuine: Vec<&Scored> = scored.iter().filter(|s| s.same).collect();
    let accepted = genuine
        .iter()
        .filter(|s| matches!(s.distance, Some(d) if d < threshold))
        .count();
    (accepted as f64 / genuine.len().max(1) as f64, threshold)
}

/// Scores every pair from per-image embeddings (`None` = no face found in that image).
pub fn score_pairs(
    pairs: &PairsFile,
    embeddings: &BTreeMap<PathBuf, Option<Vec<f32>>>,
    distance: impl Fn(&[f32], &[f32]) -> f32,
) -> Vec<Scored> {
    pairs
        .pairs
        .iter()
        .map(|p| {
            let d = match (embeddings.get(&p.a), embeddings.get(&p.b)) {
                (Some(Some(a)), Some(Some(b))) => Some(distance(a, b)),
                _ => None,
            };
            Scored {
                distance: d,
                same: p.same,
                fold: p.fold,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_standard_format_and_rejects_broken_files() {
        let text = "2\t1\nA\t1\t2\nB\t1\tC\t3\nD\t2\t3\nE\t1\tF\t10\n";
        let p = PairsFile::parse(text, Path::new("p.txt"), Path::new("/lfw")).unwrap();
        assert_eq!(p.folds, 2);
        assert_eq!(p.pairs.len(), 4);
        assert_eq!(p.pairs[1].b, Path::new("/lfw/C/C_0003.jpg"));
        assert!(!p.pairs[3].same && p.pairs[3].fold == 1);
        for (bad, why) in [
            ("", "empty"),
            ("2\t1\nA\t1\t2\n", "ends early"),
            ("1\t1\nA\t1\nB\t1\tC\t3\n", "expected a matched"),
            ("1\t1\nA\tx\t2\nB\t1\tC\t3\n", "not a number"),
            ("1\t1\nA\t1\t2\nB\t1\tC\t3\nextra\n", "unexpected line"),
            ("1\t1\n..\t1\t2\nB\t1\tC\t3\n", "folder name"),
        ] {
            let err = PairsFile::parse(bad, Path::new("p.txt"), Path::new("/lfw"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(why) && err.contains("p.txt"), "{bad:?}: {err}");
        }
    }

    fn s(d: f32, same: bool, fold: usize) -> Scored {
        Scored {
            distance: Some(d),
            same,
            fold,
        }
    }

    #[test]
    fn ten_fold_accuracy_and_tar_are_computed_as_defined() {
        // Two folds; genuine distances below 0.5 except one, impostors above except one.
        let mut v = vec![];
        for fold in 0..2 {
            v.extend([
                s(0.1, true, fold),
                s(0.2, true, fold),
                s(0.3, true, fold),
                s(0.7, true, fold),
            ]);
            v.extend([
                s(0.8, false, fold),
                s(0.9, false, fold),
                s(1.0, false, fold),
                s(0.25, false, fold),
            ]);
        }
        let r = evaluate(&v, 2, 0.25).unwrap();
        // The best threshold lies in (0.7, 0.8): every genuine pair and 3 of 4 impostors right per fold.
        assert_eq!(r.mean_accuracy, 0.875);
        assert_eq!(r.std_accuracy, 0.0);
        assert!(r.threshold > 0.7 && r.threshold < 0.8, "{}", r.threshold);
        // FAR 0.25 over 8 impostors allows 2 below the threshold: threshold = 3rd smallest impostor (0.8).
        assert_eq!(r.threshold_at_far, 0.8);
        assert_eq!(r.tar_at_far, 1.0);
        let (tar, t) = tar_at_far(&v, 0.0);
        assert_eq!(t, 0.25);
        assert_eq!(tar, 0.5); // 0.1 and 0.2 in each fold
    }

    #[test]
    fn pairs_without_a_face_are_errors_not_skipped() {
        let mut v = vec![
            s(0.1, true, 0),
            s(0.9, false, 0),
            s(0.1, true, 1),
            s(0.9, false, 1),
        ];
        v.push(Scored {
            distance: None,
            same: false,
            fold: 0,
        });
        v.push(Scored {
            distance: None,
            same: true,
            fold: 1,
        });
        let r = evaluate(&v, 2, 0.001).unwrap();
        assert_eq!(r.pairs_without_face, 2);
        assert!(
            (r.mean_accuracy - 2.0 / 3.0).abs() < 1e-12,
            "{}",
            r.mean_accuracy
        );
    }
}
