//! 1:N identification figures, in the terms of NIST's FRVT 1:N reports (NISTIR 8271), from the same
//! per-image embeddings as the LFW pairs protocol.
//!
//! Each person is enrolled with one image (their first image in which a face was found); their other
//! images are mated searches. A non-mated search is one person's enrolled image searched against a
//! watchlist of N other people.
//! - FPIR(N, T): share of non-mated searches whose closest watchlist entry is nearer than T (an alert
//!   for someone not on the list).
//! - FNIR(N, T): share of mated searches where the person's own entry is not the closest one, or is
//!   not nearer than T (a missed alert). A mated image in which no face was found is a miss.
//!
//! Measured: for N well below the number of people in the set, R random watchlists of N people are
//! drawn and searched. Modelled, for any N (LFW has 5,749 people, a watchlist may hold 10,000): each
//! search's impostor distances to every other enrolled person give its own chance F(T) of one impostor
//! entry falling nearer than T; a list of N people then alerts falsely with 1 - (1 - F(T))^N, the
//! watchlist being taken as N people drawn like LFW's. The model is printed beside the measured
//! figures where both exist, so its error is visible.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::train::rng::Rng;

/// How many nearest impostor entries each search keeps. Thresholds of interest put at most a few
/// impostors nearer than T, and a mated search with this many impostors nearer than its mate fails at
/// any N used here (its success chance is below 1e-4 for N = 100 among 5,749 people).
const NEAREST_KEPT: usize = 512;

/// One search: its distance to its own entry (mated only) and its nearest impostor entries.
#[derive(Clone, Debug)]
struct Search {
    /// Index of the searched person.
    person: usize,
    /// Distance to the person's own enrolled image; `None` for non-mated searches.
    mate: Option<f32>,
    /// The nearest impostor entries, ascending: (distance, person).
    nearest: Vec<(f32, u32)>,
    /// Impostor entries searched (everyone enrolled but the person).
    impostors: usize,
    /// Exact count of impostor entries nearer than `mate` (mated only; capped at `NEAREST_KEPT`).
    nearer_than_mate: usize,
}

impl Search {
    /// The distance of the nearest impostor among the people with `on_list[p]`, or `None` when none of
    /// the kept nearest is on the list (it is then farther than every kept distance).
    fn nearest_on(&self, on_list: &[bool]) -> Option<f32> {
        self.nearest
            .iter()
            .find(|(_, p)| on_list[*p as usize])
            .map(|(d, _)| *d)
    }

    fn farthest_kept(&self) -> f32 {
        self.nearest.last().map_or(f32::INFINITY, |(d, _)| *d)
    }

    /// Share of impostor entries nearer than `t` (a lower bound once `t` passes the kept ones).
    fn impostor_share_below(&self, t: f32) -> f64 {
        let below = self.nearest.partition_point(|(d, _)| *d < t);
        below as f64 / self.impostors.max(1) as f64
    }
}

/// The searches built from an LFW-layout set of embeddings.
pub struct SearchSet {
    people: usize,
    non_mated: Vec<Search>,
    mated: Vec<Search>,
    /// Mated images in which no face was found: misses at every threshold.
    mated_without_face: usize,
    /// The same, per enrolled person.
    faceless_by_person: Vec<usize>,
    /// People none of whose images had a face (not enrolled).
    people_without_face: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub watchlist_size: usize,
    /// The FPIR the threshold was chosen for; `None` on a row for a given threshold.
    pub fpir_target: Option<f64>,
    /// Accept (alert) iff the distance is below this.
    pub threshold: f32,
    pub fnir: f64,
    /// "measured" (random watchlists drawn from the set) or "modelled" (more people than the set has).
    pub method: &'static str,
    /// FPIR actually reached at `threshold` (measured rows: over the draws; modelled: by the model).
    pub fpir: f64,
    /// False alerts behind `fpir` (modelled: non-mated searches with an impostor nearer than the
    /// threshold). A handful means the threshold rests on a handful of faces.
    pub false_alerts: usize,
    /// The model's threshold, FPIR and FNIR for the same row, beside a measured row.
    pub model_threshold: f32,
    pub model_fpir: f64,
    pub model_fnir: f64,
    /// Non-mated and mated searches behind a measured row (summed over the draws).
    pub non_mated_searches: usize,
    pub mated_searches: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct IdentificationReport {
    pub people_enrolled: usize,
    pub people_without_face: usize,
    pub mated_searches: usize,
    pub mated_without_face: usize,
    pub draws: usize,
    pub rows: Vec<Row>,
}

/// The person (folder) an LFW image belongs to.
fn person_of(path: &Path) -> String {
    path.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl SearchSet {
    /// Enrols each person's first image with a face and builds every search. `distance` is the
    /// embedder's metric; the work is split over `threads`.
    pub fn build(
        embeddings: &BTreeMap<PathBuf, Option<Vec<f32>>>,
        distance: impl Fn(&[f32], &[f32]) -> f32 + Sync,
        threads: usize,
    ) -> SearchSet {
        // BTreeMap order: by folder, then image number, so "first" is stable.
        let mut by_person: BTreeMap<String, Vec<Option<&[f32]>>> = BTreeMap::new();
        for (path, e) in embeddings {
            by_person
                .entry(person_of(path))
                .or_default()
                .push(e.as_deref());
        }
        let mut gallery: Vec<&[f32]> = Vec::new();
        let mut probes: Vec<(usize, &[f32])> = Vec::new();
        let mut faceless_by_person: Vec<usize> = Vec::new();
        let mut people_without_face = 0;
        for images in by_person.values() {
            let Some(first) = images.iter().position(Option::is_some) else {
                people_without_face += 1;
                continue;
            };
            let person = gallery.len();
            gallery.push(images[first].expect("position found a face"));
            faceless_by_person.push(images.iter().filter(|e| e.is_none()).count());
            for (i, e) in images.iter().enumerate() {
                if let (Some(e), false) = (e, i == first) {
                    probes.push((person, e));
                }
            }
        }
        let search = |person: usize, probe: &[f32], mated: bool| {
            let mut all: Vec<(f32, u32)> = gallery
                .iter()
                .enumerate()
                .filter(|(p, _)| *p != person)
                .map(|(p, g)| (distance(probe, g), p as u32))
                .collect();
            let mate = mated.then(|| distance(probe, gallery[person]));
            let nearer_than_mate = mate.map_or(0, |m| all.iter().filter(|(d, _)| *d < m).count());
            let impostors = all.len();
            let keep = NEAREST_KEPT.min(all.len());
            if keep > 0 && keep < all.len() {
                all.select_nth_unstable_by(keep - 1, |a, b| a.0.total_cmp(&b.0));
            }
            all.truncate(keep);
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            Search {
                person,
                mate,
                nearest: all,
                impostors,
                nearer_than_mate,
            }
        };
        let jobs: Vec<(usize, &[f32], bool)> = (0..gallery.len())
            .map(|p| (p, gallery[p], false))
            .chain(probes.iter().map(|&(p, e)| (p, e, true)))
            .collect();
        let threads = threads.clamp(1, 64);
        let chunk = jobs.len().div_ceil(threads).max(1);
        let searches: Vec<Search> = std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .chunks(chunk)
                .map(|part| {
                    let search = &search;
                    scope.spawn(move || {
                        part.iter()
                            .map(|&(p, e, mated)| search(p, e, mated))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a search worker panicked"))
                .collect()
        });
        let (mated, non_mated) = searches.into_iter().partition(|s| s.mate.is_some());
        SearchSet {
            people: gallery.len(),
            non_mated,
            mated,
            mated_without_face: faceless_by_person.iter().sum(),
            faceless_by_person,
            people_without_face,
        }
    }

    pub fn people(&self) -> usize {
        self.people
    }

    /// Modelled FPIR for a list of `n` people at threshold `t`.
    fn model_fpir(&self, n: usize, t: f32) -> f64 {
        let sum: f64 = self
            .non_mated
            .iter()
            .map(|s| 1.0 - (1.0 - s.impostor_share_below(t)).powf(n as f64))
            .sum();
        sum / self.non_mated.len().max(1) as f64
    }

    /// Modelled FNIR for a list of `n` people at threshold `t`: a mated search succeeds when its mate
    /// is nearer than `t` and none of the other `n - 1` entries is nearer than the mate.
    fn model_fnir(&self, n: usize, t: f32) -> f64 {
        let total = self.mated.len() + self.mated_without_face;
        let hits: f64 = self
            .mated
            .iter()
            .filter(|s| s.mate.is_some_and(|m| m < t))
            .map(|s| {
                let share = s.nearer_than_mate as f64 / s.impostors.max(1) as f64;
                (1.0 - share).powf(n.saturating_sub(1) as f64)
            })
            .sum();
        1.0 - hits / total.max(1) as f64
    }

    /// The largest threshold whose modelled FPIR stays at or below `target`, searched over the kept
    /// impostor distances (the only places the model changes).
    fn model_threshold(&self, n: usize, target: f64) -> f32 {
        let mut candidates: Vec<f32> = self
            .non_mated
            .iter()
            .flat_map(|s| s.nearest.iter().map(|(d, _)| *d))
            .collect();
        candidates.sort_by(f32::total_cmp);
        candidates.dedup();
        // FPIR(t) only grows with t: binary search for the last candidate that keeps it in bounds.
        // Accepting iff d < t, t = candidate keeps that candidate itself out.
        let ok = candidates.partition_point(|&t| self.model_fpir(n, t) <= target);
        if ok == 0 {
            return candidates.first().copied().unwrap_or(0.0);
        }
        candidates[ok - 1]
    }

    /// Draws `draws` random lists of `n` people. `None` when fewer than ten people would be left off
    /// the list to make non-mated searches.
    fn draw(&self, n: usize, draws: usize, seed: u64) -> Option<Draws> {
        if n == 0 || draws == 0 || self.people < n + 10 {
            return None;
        }
        let mut nearest_non_mated: Vec<f32> = Vec::new();
        let mut lists: Vec<Vec<bool>> = Vec::with_capacity(draws);
        for draw in 0..draws {
            let mut rng = Rng::for_step(seed, n as u64, draw as u64);
            let mut people: Vec<usize> = (0..self.people).collect();
            // Partial Fisher-Yates: the first n are a uniform sample.
            for i in 0..n {
                let j = i + rng.below(self.people - i);
                people.swap(i, j);
            }
            let mut on_list = vec![false; self.people];
            people[..n].iter().for_each(|&p| on_list[p] = true);
            for s in self.non_mated.iter().filter(|s| !on_list[s.person]) {
                // Beyond the kept entries means farther than any threshold the kept ones can set.
                nearest_non_mated.push(s.nearest_on(&on_list).unwrap_or(f32::INFINITY));
            }
            lists.push(on_list);
        }
        nearest_non_mated.sort_by(f32::total_cmp);
        Some(Draws {
            nearest_non_mated,
            lists,
        })
    }

    /// The largest threshold whose FPIR over the draws stays at or below `target`.
    fn measured_threshold(d: &Draws, target: f64) -> f32 {
        let allowed = (target * d.nearest_non_mated.len() as f64).floor() as usize;
        d.nearest_non_mated
            .get(allowed)
            .copied()
            .unwrap_or(f32::INFINITY)
    }

    /// FPIR, FNIR, false alerts and mated searches over the draws at threshold `t`.
    fn measure_at(&self, d: &Draws, t: f32) -> Measured {
        let false_alerts = d.nearest_non_mated.partition_point(|&x| x < t);
        let (mut searches, mut misses) = (0usize, 0usize);
        for on_list in &d.lists {
            let without_face = self.mated_without_face_on(on_list);
            searches += without_face;
            misses += without_face;
            for s in self.mated.iter().filter(|s| on_list[s.person]) {
                searches += 1;
                let mate = s.mate.expect("mated searches have a mate");
                let nearest = s.nearest_on(on_list);
                // Undecidable (mate beyond every kept impostor) counts as a miss; see NEAREST_KEPT.
                let decided = nearest.is_some() || mate < s.farthest_kept();
                if !(decided && mate < t && mate < nearest.unwrap_or(f32::INFINITY)) {
                    misses += 1;
                }
            }
        }
        Measured {
            threshold: t,
            fpir: false_alerts as f64 / d.nearest_non_mated.len().max(1) as f64,
            fnir: misses as f64 / searches.max(1) as f64,
            false_alerts,
            non_mated_searches: d.nearest_non_mated.len(),
            mated_searches: searches,
        }
    }

    /// The model's figures at `t`: the non-mated searches with any impostor nearer than `t` stand in
    /// for the false-alert count (what the modelled FPIR rests on).
    fn model_at(&self, n: usize, t: f32) -> Measured {
        Measured {
            threshold: t,
            fpir: self.model_fpir(n, t),
            fnir: self.model_fnir(n, t),
            false_alerts: self
                .non_mated
                .iter()
                .filter(|s| s.nearest.first().is_some_and(|(d, _)| *d < t))
                .count(),
            non_mated_searches: self.non_mated.len(),
            mated_searches: self.mated.len() + self.mated_without_face,
        }
    }

    /// Mated images without a face whose person is on the list.
    fn mated_without_face_on(&self, on_list: &[bool]) -> usize {
        self.faceless_by_person
            .iter()
            .zip(on_list)
            .filter(|(_, listed)| **listed)
            .map(|(n, _)| n)
            .sum()
    }

    /// The table: for each watchlist size and FPIR target, the threshold and FNIR, measured where the
    /// set holds enough people and modelled otherwise; then, with `fixed`, what that one threshold
    /// (the model's recommended one) gives at each size.
    /// DET points (FPIR, FNIR) of a measured size over its draws: one per threshold step through
    /// the non-mated searches' nearest distances. `None` when the size cannot be measured.
    pub fn det(&self, n: usize, draws: usize, seed: u64) -> Option<Vec<(f64, f64)>> {
        let d = self.draw(n, draws, seed)?;
        let finite: Vec<f32> = d
            .nearest_non_mated
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        let steps = 150.min(finite.len());
        let mut out: Vec<(f64, f64)> = (1..=steps)
            .map(|k| {
                let t = finite[(k * finite.len() / (steps + 1)).min(finite.len() - 1)];
                let m = self.measure_at(&d, t);
                (m.fpir, m.fnir)
            })
            .filter(|(fpir, _)| *fpir > 0.0)
            .collect();
        out.dedup();
        Some(out)
    }

    pub fn report(
        &self,
        sizes: &[usize],
        fpir_targets: &[f64],
        fixed: Option<f32>,
        draws: usize,
        seed: u64,
    ) -> IdentificationReport {
        let mut rows = Vec::new();
        for &n in sizes {
            let drawn = self.draw(n, draws, seed);
            let targets = fpir_targets.iter().map(|&t| (Some(t), None));
            for (target, threshold) in targets.chain(fixed.map(|t| (None, Some(t)))) {
                let model_threshold = match (target, threshold) {
                    (_, Some(t)) => t,
                    (Some(target), None) => self.model_threshold(n, target),
                    (None, None) => unreachable!("each row has a target or a threshold"),
                };
                let model = self.model_at(n, model_threshold);
                let (m, method) = match &drawn {
                    Some(d) => {
                        let t = threshold
                            .unwrap_or_else(|| Self::measured_threshold(d, target.unwrap_or(0.0)));
                        (self.measure_at(d, t), "measured")
                    }
                    None => (model.clone(), "modelled"),
                };
                rows.push(Row {
                    watchlist_size: n,
                    fpir_target: target,
                    threshold: m.threshold,
                    fnir: m.fnir,
                    method,
                    fpir: m.fpir,
                    false_alerts: m.false_alerts,
                    model_threshold,
                    model_fpir: model.fpir,
                    model_fnir: model.fnir,
                    non_mated_searches: m.non_mated_searches,
                    mated_searches: m.mated_searches,
                });
            }
        }
        IdentificationReport {
            people_enrolled: self.people,
            people_without_face: self.people_without_face,
            mated_searches: self.mated.len() + self.mated_without_face,
            mated_without_face: self.mated_without_face,
            draws,
            rows,
        }
    }
}

struct Draws {
    /// Each non-mated search's nearest listed entry, over all draws, ascending.
    nearest_non_mated: Vec<f32>,
    lists: Vec<Vec<bool>>,
}

#[derive(Clone)]
struct Measured {
    threshold: f32,
    fpir: f64,
    fnir: f64,
    false_alerts: usize,
    non_mated_searches: usize,
    mated_searches: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn euclid(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt()
    }

    /// People on a line 1.0 apart; each has images at offsets `jitter`.
    fn line_set(people: usize, images: &[f32]) -> BTreeMap<PathBuf, Option<Vec<f32>>> {
        let mut m = BTreeMap::new();
        for p in 0..people {
            for (i, off) in images.iter().enumerate() {
                let path = PathBuf::from(format!("lfw/P{p:04}/P{p:04}_{:04}.jpg", i + 1));
                m.insert(path, Some(vec![p as f32 + off, 0.0]));
            }
        }
        m
    }

    #[test]
    fn well_separated_people_are_found_and_strangers_are_not() {
        // Mates at 0.1, the nearest impostor at 1.0 (or 0.9 from the probe): any threshold in between
        // gives FNIR 0 and FPIR 0.
        let set = SearchSet::build(&line_set(200, &[0.0, 0.1]), euclid, 2);
        assert_eq!(set.people(), 200);
        let r = set.report(&[50, 1000], &[0.01], Some(0.5), 5, 7);
        assert_eq!(r.rows.len(), 4);
        let fixed = &r.rows[1];
        assert_eq!((fixed.threshold, fixed.fpir_target), (0.5, None));
        assert_eq!((fixed.fnir, fixed.fpir, fixed.false_alerts), (0.0, 0.0, 0));
        let measured = &r.rows[0];
        assert_eq!(measured.method, "measured");
        assert_eq!(measured.fnir, 0.0);
        assert_eq!(measured.fpir, 0.0);
        assert!(
            measured.threshold > 0.1 && measured.threshold <= 1.0,
            "{}",
            measured.threshold
        );
        assert_eq!(measured.non_mated_searches, 5 * 150);
        let modelled = &r.rows[2];
        assert_eq!(modelled.method, "modelled");
        assert!(modelled.fpir <= 0.01);
        assert_eq!(modelled.fnir, 0.0);
    }

    #[test]
    fn a_mate_farther_than_an_impostor_is_a_miss_and_no_face_is_a_miss() {
        // Second images sit 0.6 off, nearer to the next person (0.4 away) than to their own entry.
        let mut m = line_set(40, &[0.0, 0.6]);
        m.insert(PathBuf::from("lfw/P0000/P0000_0003.jpg"), None);
        let set = SearchSet::build(&m, euclid, 1);
        let r = set.report(&[20], &[0.5], None, 20, 1);
        assert_eq!(r.mated_without_face, 1);
        assert_eq!(r.mated_searches, 41);
        let row = &r.rows[0];
        // Each probe's mate is at 0.6 and the next person's entry at 0.4: a rank-1 miss whenever the
        // next person is on the list, and a miss by threshold whenever the threshold is <= 0.6.
        assert!(row.fnir > 0.4, "{row:?}");
        // Model: the next person is one of 39 impostors, listed with chance 1 - (38/39)^19 = 0.39
        // (the model draws with replacement; the measured lists do not, hence 0.46 there).
        assert!(row.model_fnir > 0.35, "{row:?}");
    }

    #[test]
    fn modelled_fpir_grows_with_the_watchlist_and_the_threshold_falls() {
        // Random-ish embeddings in 8-d from a fixed generator: impostor distances spread out.
        let mut rng = Rng::new(3);
        let mut m = BTreeMap::new();
        for p in 0..300 {
            let base: Vec<f32> = (0..8).map(|_| rng.range(-1.0, 1.0)).collect();
            for i in 0..2 {
                let e: Vec<f32> = base.iter().map(|x| x + rng.range(-0.1, 0.1)).collect();
                m.insert(
                    PathBuf::from(format!("lfw/P{p:03}/P{p:03}_{:04}.jpg", i + 1)),
                    Some(e),
                );
            }
        }
        let set = SearchSet::build(&m, euclid, 2);
        let t = 0.9;
        assert!(set.model_fpir(10, t) < set.model_fpir(100, t));
        assert!(set.model_fpir(100, t) < set.model_fpir(1000, t));
        let t10 = set.model_threshold(10, 0.01);
        let t1000 = set.model_threshold(1000, 0.01);
        assert!(t1000 < t10, "{t1000} vs {t10}");
        assert!(set.model_fpir(1000, t1000) <= 0.01);
        // Measured and modelled agree roughly where both exist.
        let r = set.report(&[100], &[0.05], None, 30, 9);
        let row = &r.rows[0];
        assert!(
            (row.threshold - row.model_threshold).abs() < 0.15,
            "{row:?}"
        );
    }
}
