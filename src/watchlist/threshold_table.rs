//! The match threshold by watchlist size: a table measured by `trainer eval lfw --thresholds-out`
//! for one embedder file, read by `lanewatch enroll --fpir`.
//!
//! Why: a 1:1 threshold is the wrong one for a watchlist. Each stranger is compared with every
//! entry, so the chance of a false alert (FPIR) grows with the list: dlib's recommended 0.6, about
//! 1% false accepts per comparison on LFW, alerts on most strangers once a list holds 100 people.
//! The table says, for each size and FPIR target, the threshold that keeps to the target and how many
//! listed people it then misses (FNIR).
//!
//! The file is JSON, bound to the embedder by its sha256, and parsed strictly: an unknown field, a
//! missing one or a table made for another model is an error naming the file.

use std::path::Path;

use anyhow::{Context, bail, ensure};

use super::format::{DecisionMode, Views};
use crate::vision::model::Fingerprint;

pub const FORMAT: &str = "lanewatch-thresholds/1";

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdTable {
    pub format: String,
    /// sha256 (hex) of the embedder file the table was measured with.
    pub embedder_sha256: String,
    /// What it was measured on, for people reading the file.
    pub measured_on: String,
    /// How the descriptors were made (`trainer eval lfw --mirror`); absent means `chip`.
    #[serde(default)]
    pub views: Views,
    pub rows: Vec<ThresholdRow>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRow {
    pub watchlist_size: usize,
    /// The FPIR the threshold keeps to; `None` for a row measured at a given threshold.
    pub fpir_target: Option<f64>,
    /// Alert iff the distance is below this.
    pub threshold: f32,
    /// FPIR reached at `threshold`.
    pub fpir: f64,
    /// FNIR at `threshold`.
    pub fnir: f64,
    /// "measured" or "modelled" (see `trainer eval lfw`).
    pub method: String,
    /// False alerts in the evaluation behind `fpir`: a handful means the threshold is uncertain.
    pub false_alerts: usize,
    /// What FPIR and FNIR count: single searches (`trainer eval lfw`, one photo each) or passers
    /// (`trainer eval lane`, walk-through clips through the lane's own tracks and decisions).
    /// Absent: `search`.
    #[serde(default)]
    pub per: RateUnit,
    /// How the lane decided (`trainer eval lane` rows; `frame` for per-search rows). Absent: `frame`.
    #[serde(default)]
    pub decision: DecisionMode,
}

/// What one count of FPIR or FNIR is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateUnit {
    /// One 1:N search (one photo or one frame's face).
    #[default]
    Search,
    /// One person walking past the lane, however many frames they were seen in.
    Passer,
}

impl RateUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            RateUnit::Search => "search",
            RateUnit::Passer => "passer",
        }
    }
}

/// Below this many false alerts a row's threshold rests on too few faces to trust.
pub const FEW_FALSE_ALERTS: usize = 10;

/// The threshold chosen for a list, and the row it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub threshold: f32,
    pub row: ThresholdRow,
}

impl ThresholdTable {
    /// Parses and checks a table; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &Path) -> anyhow::Result<ThresholdTable> {
        let t: ThresholdTable = serde_json::from_slice(bytes)
            .with_context(|| format!("threshold table {} is not valid", file.display()))?;
        ensure!(
            t.format == FORMAT,
            "threshold table {}: format {:?}, expected {FORMAT:?}",
            file.display(),
            t.format
        );
        ensure!(
            t.embedder_sha256.len() == 64
                && t.embedder_sha256.bytes().all(|b| b.is_ascii_hexdigit()),
            "threshold table {}: embedder_sha256 is not a sha256 in hex",
            file.display()
        );
        ensure!(
            !t.rows.is_empty(),
            "threshold table {} has no rows",
            file.display()
        );
        for (i, r) in t.rows.iter().enumerate() {
            let ok = r.watchlist_size > 0
                && r.threshold.is_finite()
                && r.threshold > 0.0
                && (0.0..=1.0).contains(&r.fpir)
                && (0.0..=1.0).contains(&r.fnir)
                && r.fpir_target.is_none_or(|f| f > 0.0 && f < 1.0);
            ensure!(
                ok,
                "threshold table {}: row {} is out of range (size > 0, threshold > 0, rates in [0, 1])",
                file.display(),
                i + 1
            );
        }
        Ok(t)
    }

    pub fn read(file: &Path) -> anyhow::Result<ThresholdTable> {
        let bytes = std::fs::read(file)
            .with_context(|| format!("cannot read threshold table {}", file.display()))?;
        Self::parse(&bytes, file)
    }

    /// Refuses a table measured with another embedder file.
    pub fn check_embedder(&self, embedder: &Fingerprint, file: &Path) -> anyhow::Result<()> {
        ensure!(
            self.embedder_sha256
                .eq_ignore_ascii_case(&embedder.to_hex()),
            "threshold table {} was measured with embedder sha256:{}, not the one in use ({embedder}): re-run `trainer eval lfw --thresholds-out` for this model",
            file.display(),
            self.embedder_sha256
        );
        Ok(())
    }

    /// Refuses a table measured with descriptors made another way than the list's: distances
    /// between mirror-averaged descriptors are shorter, and so are their thresholds.
    pub fn check_views(&self, views: Views, file: &Path) -> anyhow::Result<()> {
        ensure!(
            self.views == views,
            "threshold table {} was measured with {} descriptors, but this list is made with {}: pass the table for {} (`trainer eval lfw{} --thresholds-out`)",
            file.display(),
            self.views.as_str(),
            views.as_str(),
            views.as_str(),
            if views == Views::ChipAndMirror {
                " --mirror"
            } else {
                ""
            }
        );
        Ok(())
    }

    /// The threshold for a list of `people` at `fpir`: the row for the smallest tabled size that is
    /// at least `people` (a longer list needs a stricter threshold, so rounding up keeps to the
    /// target).
    pub fn choose(
        &self,
        people: usize,
        fpir: f64,
        decision: DecisionMode,
    ) -> anyhow::Result<Choice> {
        let same_target = |r: &&ThresholdRow| {
            r.fpir_target
                .is_some_and(|t| (t - fpir).abs() <= 1e-12 * fpir.max(1.0))
        };
        // A lane's users count passers: per-passer rows for the lane's decision mode; per-search
        // rows only for frame decisions in a table that has nothing better.
        let mut rows: Vec<&ThresholdRow> = self
            .rows
            .iter()
            .filter(same_target)
            .filter(|r| r.per == RateUnit::Passer && r.decision == decision)
            .collect();
        if rows.is_empty() && decision == DecisionMode::Frame {
            rows = self
                .rows
                .iter()
                .filter(same_target)
                .filter(|r| r.per == RateUnit::Search)
                .collect();
        }
        if rows.is_empty() {
            let mut targets: Vec<String> = self
                .rows
                .iter()
                .filter_map(|r| {
                    r.fpir_target.map(|t| {
                        format!(
                            "{t} per {} ({} decisions)",
                            r.per.as_str(),
                            r.decision.as_str()
                        )
                    })
                })
                .collect();
            targets.sort();
            targets.dedup();
            bail!(
                "the threshold table has no per-passer rows for FPIR {fpir} with {} decisions; it has {targets:?} (`trainer eval lane --thresholds-out` adds per-passer rows)",
                decision.as_str()
            );
        }
        rows.sort_by_key(|r| r.watchlist_size);
        let Some(row) = rows.iter().find(|r| r.watchlist_size >= people) else {
            // Extrapolating a threshold would promise a false-alert rate nobody measured.
            bail!(
                "the threshold table covers lists of up to {} people at FPIR {fpir} per {} ({} decisions), this one has {people}: measure that size with `trainer eval {} --watchlist-sizes {people} --thresholds-out TABLE`, or set the distance with --max-distance",
                rows.last().map_or(0, |r| r.watchlist_size),
                rows[0].per.as_str(),
                decision.as_str(),
                if rows[0].per == RateUnit::Passer {
                    "lane"
                } else {
                    "lfw"
                },
            );
        };
        Ok(Choice {
            threshold: row.threshold,
            row: (*row).clone(),
        })
    }

    /// The measured row at a given threshold for the smallest tabled size of at least `people`, if
    /// the table has one: what a threshold chosen by hand costs.
    pub fn at_threshold(&self, people: usize, threshold: f32) -> Option<&ThresholdRow> {
        let mut rows: Vec<&ThresholdRow> = self
            .rows
            .iter()
            .filter(|r| {
                r.fpir_target.is_none() && r.threshold == threshold && r.per == RateUnit::Search
            })
            .collect();
        rows.sort_by_key(|r| r.watchlist_size);
        rows.into_iter().find(|r| r.watchlist_size >= people)
    }
}

/// Where `lanewatch enroll` looks for an embedder's table: beside it, `NAME.thresholds.json`, or
/// `NAME.mirror.thresholds.json` for mirror-averaged descriptors.
pub fn default_path(embedder: &Path, views: Views) -> std::path::PathBuf {
    let stem = embedder
        .file_stem()
        .map_or_else(|| "embedder".into(), |s| s.to_string_lossy().into_owned());
    let views = match views {
        Views::Chip => "",
        Views::ChipAndMirror => ".mirror",
    };
    embedder.with_file_name(format!("{stem}{views}.thresholds.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, target: Option<f64>, t: f32) -> ThresholdRow {
        ThresholdRow {
            watchlist_size: n,
            fpir_target: target,
            threshold: t,
            fpir: target.unwrap_or(0.5),
            fnir: 0.3,
            method: "measured".into(),
            false_alerts: 50,
            per: RateUnit::Search,
            decision: DecisionMode::Frame,
        }
    }

    fn table() -> ThresholdTable {
        ThresholdTable {
            views: Views::Chip,
            format: FORMAT.into(),
            embedder_sha256: "ab".repeat(32),
            measured_on: "test".into(),
            rows: vec![
                row(100, Some(0.01), 0.45),
                row(1000, Some(0.01), 0.42),
                row(100, Some(0.001), 0.40),
                row(100, None, 0.6),
                row(1000, None, 0.6),
            ],
        }
    }

    #[test]
    fn per_passer_rows_are_chosen_for_their_own_decision_mode() {
        let mut t = table();
        let passer = |n, target, th, decision| ThresholdRow {
            per: RateUnit::Passer,
            decision,
            ..row(n, Some(target), th)
        };
        t.rows.push(passer(1000, 0.01, 0.30, DecisionMode::Passage));
        t.rows.push(passer(1000, 0.01, 0.25, DecisionMode::Frame));
        assert_eq!(
            t.choose(500, 0.01, DecisionMode::Passage)
                .unwrap()
                .threshold,
            0.30
        );
        // Per passer beats per search for frame decisions too.
        assert_eq!(
            t.choose(500, 0.01, DecisionMode::Frame).unwrap().threshold,
            0.25
        );
        // No per-search fallback for passage decisions: a per-search threshold would break the
        // per-passer promise.
        let err = t
            .choose(500, 0.001, DecisionMode::Passage)
            .unwrap_err()
            .to_string();
        assert!(err.contains("trainer eval lane"), "{err}");
        assert_eq!(
            t.choose(50, 0.001, DecisionMode::Frame).unwrap().threshold,
            0.40
        );
    }

    #[test]
    fn chooses_the_row_for_the_next_larger_list() {
        let t = table();
        assert_eq!(
            t.choose(1, 0.01, DecisionMode::Frame).unwrap().threshold,
            0.45
        );
        assert_eq!(
            t.choose(100, 0.01, DecisionMode::Frame).unwrap().threshold,
            0.45
        );
        assert_eq!(
            t.choose(101, 0.01, DecisionMode::Frame).unwrap().threshold,
            0.42
        );
        assert_eq!(
            t.choose(50, 0.001, DecisionMode::Frame).unwrap().threshold,
            0.40
        );
        let err = t
            .choose(1001, 0.01, DecisionMode::Frame)
            .unwrap_err()
            .to_string();
        assert!(err.contains("up to 1000 people"), "{err}");
        let err = t
            .choose(10, 0.05, DecisionMode::Frame)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no per-passer rows for FPIR 0.05") && err.contains("0.001"),
            "{err}"
        );
        assert_eq!(t.at_threshold(500, 0.6).unwrap().watchlist_size, 1000);
        assert!(t.at_threshold(500, 0.5).is_none());
    }

    #[test]
    fn round_trips_and_rejects_bad_files_by_name() {
        let f = Path::new("m.thresholds.json");
        let bytes = serde_json::to_vec(&table()).unwrap();
        assert_eq!(ThresholdTable::parse(&bytes, f).unwrap(), table());
        let good = serde_json::to_value(table()).unwrap();
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (serde_json::json!({"format": FORMAT}), "not valid"),
            (
                {
                    let mut v = good.clone();
                    v["format"] = "other/1".into();
                    v
                },
                "expected",
            ),
            (
                {
                    let mut v = good.clone();
                    v["embedder_sha256"] = "xyz".into();
                    v
                },
                "sha256",
            ),
            (
                {
                    let mut v = good.clone();
                    v["rows"][0]["threshold"] = (-1.0).into();
                    v
                },
                "row 1",
            ),
            (
                {
                    let mut v = good.clone();
                    v["rows"] = serde_json::json!([]);
                    v
                },
                "no rows",
            ),
            (
                {
                    let mut v = good.clone();
                    v["extra"] = 1.into();
                    v
                },
                "not valid",
            ),
        ];
        for (v, why) in cases {
            let err = ThresholdTable::parse(&serde_json::to_vec(&v).unwrap(), f).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains(why) && msg.contains("m.thresholds.json"),
                "{msg}"
            );
        }
        assert!(ThresholdTable::parse(b"\xff\x00", f).is_err());
    }

    #[test]
    fn the_shipped_tables_fit_the_shipped_embedder() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let embedder = models.join("dlib_resnet_v1.onnx");
        let model = std::fs::read(&embedder).unwrap();
        let mut at_100 = Vec::new();
        for views in [Views::Chip, Views::ChipAndMirror] {
            let file = default_path(&embedder, views);
            let t = ThresholdTable::read(&file).unwrap();
            t.check_embedder(&Fingerprint::of(&model), &file).unwrap();
            t.check_views(views, &file).unwrap();
            let search = |n: usize, fpir: f64| {
                t.rows
                    .iter()
                    .find(|r| {
                        r.per == RateUnit::Search
                            && r.watchlist_size == n
                            && r.fpir_target == Some(fpir)
                    })
                    .unwrap()
                    .clone()
            };
            for fpir in [0.01, 0.001] {
                let (a, b, c) = (search(100, fpir), search(1000, fpir), search(10_000, fpir));
                assert!(a.threshold > b.threshold && b.threshold >= c.threshold);
                assert!(a.fpir <= fpir && b.fpir <= fpir && c.fpir <= fpir);
            }
            // The model's own 1:1 threshold is tabled, and costs many strangers a false alert.
            let fixed = t
                .rows
                .iter()
                .find(|r| r.fpir_target.is_none() && r.watchlist_size == 100)
                .unwrap();
            assert!(fixed.fpir > 0.1, "{fixed:?}");
            at_100.push(search(100, 0.01).fnir);
        }
        // Mirror averaging misses fewer listed people at the same FPIR (the reason to offer it).
        assert!(at_100[1] < at_100[0], "{at_100:?}");

        // Per-passer rows (`trainer eval lane`): stricter for longer lists, and deciding per
        // passage misses fewer listed passers than per frame at the same per-passer FPIR.
        let t = ThresholdTable::read(&default_path(&embedder, Views::Chip)).unwrap();
        let passer = |n: usize, decision: DecisionMode| {
            t.rows
                .iter()
                .find(|r| {
                    r.per == RateUnit::Passer
                        && r.decision == decision
                        && r.watchlist_size == n
                        && r.fpir_target == Some(0.01)
                })
                .unwrap_or_else(|| panic!("no per-passer row for {n} ({decision:?})"))
                .clone()
        };
        let (a, b) = (
            passer(100, DecisionMode::Passage),
            passer(1000, DecisionMode::Passage),
        );
        assert!(a.threshold > b.threshold, "{a:?} {b:?}");
        for n in [100, 1000] {
            let (frame, passage) = (
                passer(n, DecisionMode::Frame),
                passer(n, DecisionMode::Passage),
            );
            assert!(passage.fnir < frame.fnir, "{frame:?} {passage:?}");
            assert!(passage.fpir <= 0.01 && frame.fpir <= 0.01);
        }
        let chosen = t.choose(1000, 0.01, DecisionMode::Passage).unwrap();
        assert_eq!(chosen.threshold, b.threshold);
        let err = t
            .choose(1_000_000, 0.01, DecisionMode::Passage)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--watchlist-sizes 1000000"), "{err}");
    }

    #[test]
    fn a_table_for_another_model_is_refused() {
        let t = table();
        let f = Path::new("m.thresholds.json");
        assert!(t.check_embedder(&Fingerprint([0xab; 32]), f).is_ok());
        let err = t
            .check_embedder(&Fingerprint([0; 32]), f)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("another") || err.contains("not the one in use"),
            "{err}"
        );
        assert_eq!(
            default_path(Path::new("models/dlib_resnet_v1.onnx"), Views::Chip),
            Path::new("models/dlib_resnet_v1.thresholds.json")
        );
    }

    #[test]
    fn a_table_for_other_views_is_refused() {
        let t = table();
        let f = Path::new("m.thresholds.json");
        assert_eq!(t.views, Views::Chip);
        t.check_views(Views::Chip, f).unwrap();
        let err = t
            .check_views(Views::ChipAndMirror, f)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m.thresholds.json") && err.contains("--mirror"),
            "{err}"
        );
        // Written and read back with its views; a name it does not know is refused.
        let mirrored = ThresholdTable {
            views: Views::ChipAndMirror,
            ..table()
        };
        let json = serde_json::to_string(&mirrored).unwrap();
        assert!(json.contains("\"views\":\"chip-and-mirror\""), "{json}");
        assert_eq!(ThresholdTable::parse(json.as_bytes(), f).unwrap(), mirrored);
        let odd = json.replace("chip-and-mirror", "chip-and-jitter");
        assert!(ThresholdTable::parse(odd.as_bytes(), f).is_err());
        assert_eq!(
            default_path(
                Path::new("models/dlib_resnet_v1.onnx"),
                Views::ChipAndMirror
            ),
            Path::new("models/dlib_resnet_v1.mirror.thresholds.json")
        );
    }
}
