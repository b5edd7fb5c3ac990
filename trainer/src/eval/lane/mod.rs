//! `trainer eval lane`: accuracy the way a lane's users live it, per passer.
//!
//! Passers are people with at least `--min-photos` images. Each is enrolled with one image (their
//! first in which a face is found, as in `trainer eval lfw`); each passer's clip is made from their
//! other images ([`synth`]) and played through the lane's own code: detection, tracks, quality,
//! fusion and the decision points of both decision modes ([`lanewatch::passage`]). Only the
//! passer's own face counts (its track is the one whose boxes sit where the face was put).
//!
//! Then, for each watchlist size, `--draws` random lists are drawn from everyone enrolled; a passer
//! on the list is a listed passer, one off it an unlisted passer. A passage alerts at its first
//! decision point whose nearest entry is nearer than the threshold (as a lane stops deciding once
//! it alerted): for an unlisted passer that is a false alert; a listed passer is found only if that
//! first alert names them.
//! - FPIR per passer: share of unlisted passers with a false alert.
//! - FNIR per passer: share of listed passers not found (no alert, or a wrong name first).
//!
//! Thresholds for FPIR targets are chosen on the unlisted passers of all draws; the held-out FPIR
//! (threshold chosen on half the people, measured on the other half, both ways) shows whether the
//! promise holds for people the threshold was not tuned on.

pub mod seen;
pub mod synth;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use image::RgbImage;
use lanewatch::config::Config;
use lanewatch::fsio::write_atomically;
use lanewatch::matcher::Index;
use lanewatch::passage::{PassageConfig, Passages};
use lanewatch::vision::contract::Metric;
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::embed::Embedder;
use lanewatch::vision::faces::{
    Augmentation, FaceAnalyzer, FaceModels, FaceObservation, FaceView, read_rgb,
};
use lanewatch::watchlist::format::{DecisionMode, Views};
use lanewatch::watchlist::threshold_table::{RateUnit, ThresholdRow, ThresholdTable};
use sha2::{Digest, Sha256};

use self::seen::{ClipSettings, SeenCache, SeenClip, SeenFace, SeenFrame};
use self::synth::{ClipFrame, SourcePhoto, walk_through};
use super::cache::EmbeddingCache;
use super::det;
use super::lfw_run::{all_images, embed_all};
use crate::pool;
use crate::train::rng::Rng;

#[derive(clap::Args, Clone)]
pub struct LaneArgs {
    /// LFW-layout folder: one sub-folder per person (IMAGES/NAME/NAME_NNNN.jpg).
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,
    /// The embedder ONNX to evaluate.
    #[arg(long, value_name = "M.onnx")]
    pub model: PathBuf,
    /// Folder holding the detector and landmark models.
    #[arg(long, value_name = "DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Watchlist sizes.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub watchlist_sizes: Vec<usize>,
    /// FPIR targets (per passer) for the table rows.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.001")]
    pub fpir: Vec<f64>,
    /// Frames per passer.
    #[arg(long, default_value_t = 12)]
    pub frames: usize,
    /// People need at least this many images to pass (one is enrolled, the others make the clip).
    #[arg(long, default_value_t = 3)]
    pub min_photos: usize,
    /// At most this many of a passer's other images make the clip.
    #[arg(long, default_value_t = 3)]
    pub clip_photos: usize,
    /// Random watchlists per size.
    #[arg(long, default_value_t = 10)]
    pub draws: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Describe faces by the mean of the chip and its mirror image (lists made with --mirror).
    #[arg(long)]
    pub mirror: bool,
    /// Evaluate only the first N passers (quick runs).
    #[arg(long)]
    pub max_passers: Option<usize>,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Draw DET curves (FNIR against FPIR per passer, log axes) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Add the per-passer rows to this threshold table (its per-search rows from `trainer eval
    /// lfw` are kept), e.g. models/dlib_resnet_v1.thresholds.json.
    #[arg(long, value_name = "FILE")]
    pub thresholds_out: Option<PathBuf>,
    /// Enrolment embeddings cache (the same file as `trainer eval lfw --cache` with the same
    /// models and views).
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// Lane settings (the `[passage]` and `[detect]` sections of a `lanewatch run` config);
    /// default: the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also print how each quality factor of the passers' own aligned faces relates to the
    /// distance to the passer's enrolled descriptor (to set the quality model).
    #[arg(long)]
    pub quality_report: bool,
    /// Keep what the lane saw of each clip (faces, quality, descriptors) in this file, so that
    /// runs with other `[passage]` settings replay the decisions without detecting again. Keyed
    /// by the models, `[detect]` settings, clip settings and views.
    #[arg(long, value_name = "FILE")]
    pub faces_cache: Option<PathBuf>,
}

impl LaneArgs {
    /// The command's defaults (as `trainer eval lane --images .. --model .. --models-dir ..`).
    pub fn new(images: PathBuf, model: PathBuf, models_dir: PathBuf) -> LaneArgs {
        LaneArgs {
            images,
            model,
            models_dir,
            watchlist_sizes: vec![100, 1000],
            fpir: vec![0.01, 0.001],
            frames: 12,
            min_photos: 3,
            clip_photos: 3,
            draws: 10,
            seed: 1,
            mirror: false,
            max_passers: None,
            threads: 2,
            json: false,
            plot: None,
            thresholds_out: None,
            cache: None,
            config: None,
            quality_report: false,
            faces_cache: None,
        }
    }
}

/// One search of a passage: what the list is searched with.
#[derive(Clone, Debug)]
struct Point {
    descriptor: Vec<f32>,
}

/// One passer's clip through the lane.
#[derive(Clone, Debug, Default)]
struct Passer {
    person: usize,
    /// Decision points of the passer's own track(s), in order, per mode.
    frame_points: Vec<Point>,
    passage_points: Vec<Point>,
    /// Embeddings computed for the whole clip, per mode.
    frame_embeddings: usize,
    passage_embeddings: usize,
    /// Frames in which the passer's face was found, and own tracks (more than one: a split).
    frames_found: usize,
    own_tracks_passage: usize,
    /// (quality components, quality score, distance to the enrolled descriptor) per own face.
    quality_samples: Vec<([f32; 4], f32, f32)>,
}

/// A person: their images (sorted) and the enrolled one.
struct Person {
    /// Folder name.
    name: String,
    images: Vec<PathBuf>,
    enrolled: Option<(usize, Vec<f32>)>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ModeFigures {
    pub decision: &'static str,
    /// Threshold and FNIR at each FPIR target (all draws), and the held-out FPIR at a threshold
    /// chosen on the other half of the people.
    pub at_targets: Vec<AtTarget>,
    pub embeddings_per_passer: f64,
    pub det: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct AtTarget {
    pub fpir_target: f64,
    pub threshold: f32,
    pub fpir: f64,
    pub fnir: f64,
    pub false_alerts: usize,
    pub held_out_fpir: f64,
    pub held_out_fnir: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SizeReport {
    pub watchlist_size: usize,
    pub listed_passers: usize,
    pub unlisted_passers: usize,
    pub frame: ModeFigures,
    pub passage: ModeFigures,
    /// Per-passer FPIR of frame decisions at the per-search threshold `trainer eval lfw` chose
    /// for FPIR 1% (today's `enroll --fpir 0.01`), when the table has it.
    pub frame_fpir_at_per_search_threshold: Option<(f32, f64)>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LaneReport {
    pub people_enrolled: usize,
    pub passers: usize,
    pub passers_without_own_face: usize,
    /// Frames in which the passer's own face was detected, of `passers` x `frames_per_passer`:
    /// the detector's recall on the clips (track-guided detection must keep it).
    pub own_face_frames: usize,
    pub track_splits: usize,
    pub frames_per_passer: usize,
    pub sizes: Vec<SizeReport>,
}

/// Runs the evaluation, prints its report, and writes the plot and threshold rows asked for.
pub fn execute(args: &LaneArgs) -> anyhow::Result<LaneReport> {
    let config = match &args.config {
        Some(f) => Config::read(f)?,
        None => Config::default(),
    };
    let mut models = FaceModels::in_dir(&args.models_dir);
    models.embedder = args.model.clone();
    let views = Views::with_mirror(args.mirror);
    let metric = Embedder::load(&models.embedder)?.spec().metric;
    let people = enrol(args, &models, views.augmentation())?;
    let passers = play_passers(
        args,
        &models,
        &config,
        &people,
        views.augmentation(),
        metric,
    )?;
    let report = score(args, &people, &passers, metric)?;
    print(args, &report, &passers);
    if let Some(plot) = &args.plot {
        let curves: Vec<det::Curve> = report
            .sizes
            .iter()
            .flat_map(|s| {
                [
                    det::Curve {
                        label: format!("frame decisions, {} listed", s.watchlist_size),
                        points: s.frame.det.clone(),
                        dashed: true,
                    },
                    det::Curve {
                        label: format!("passage decisions, {} listed", s.watchlist_size),
                        points: s.passage.det.clone(),
                        dashed: false,
                    },
                ]
            })
            .collect();
        det::write_svg(
            plot,
            "lanewatch lane evaluation: FNIR against FPIR per passer",
            "FPIR per passer (unlisted passers alerted)",
            "FNIR per passer (listed passers missed)",
            &curves,
        )?;
        eprintln!(
            "trainer eval lane: DET curves written to {}",
            plot.display()
        );
    }
    if let Some(out) = &args.thresholds_out {
        write_rows(args, &report, views, out)?;
    }
    Ok(report)
}

/// Groups the images by person and enrols each with their first image in which a face is found.
fn enrol(
    args: &LaneArgs,
    models: &FaceModels,
    augmentation: Augmentation,
) -> anyhow::Result<Vec<Person>> {
    let mut by_person: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for image in all_images(&args.images)? {
        let name = image
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        by_person.entry(name).or_default().push(image);
    }
    let config = DetectorConfig {
        min_face: 20.0,
        ..DetectorConfig::default()
    };
    let mut cache = match &args.cache {
        Some(file) => EmbeddingCache::open(file, &args.images, models, &config, augmentation)?,
        None => EmbeddingCache::in_memory(),
    };
    let mut people: Vec<Person> = by_person
        .into_iter()
        .map(|(name, images)| Person {
            name,
            images,
            enrolled: None,
        })
        .collect();
    // Round k tries every not-yet-enrolled person's k-th image (most are enrolled in round 0).
    for k in 0.. {
        let todo: Vec<PathBuf> = people
            .iter()
            .filter(|p| p.enrolled.is_none())
            .filter_map(|p| p.images.get(k).cloned())
            .filter(|img| !cache.contains(img))
            .collect();
        let waiting = people
            .iter()
            .any(|p| p.enrolled.is_none() && p.images.len() > k);
        if !waiting {
            break;
        }
        if !todo.is_empty() {
            eprintln!(
                "trainer eval lane: embedding {} enrolment images (round {k})",
                todo.len()
            );
            let fresh = embed_all(&todo, models, &config, augmentation, args.threads)?;
            cache.extend(fresh);
            cache.save()?;
        }
        for p in people.iter_mut().filter(|p| p.enrolled.is_none()) {
            if let Some(Some(e)) = p.images.get(k).and_then(|img| cache.get(img)) {
                p.enrolled = Some((k, e.clone()));
            }
        }
    }
    Ok(people)
}

/// Per worker: one analyser for photos (their own size) and one planned for lane frames.
struct Worker {
    photos: FaceAnalyzer,
    lane: FaceAnalyzer,
}

/// Plays every passer's clip through the lane: what it sees (from `--faces-cache` when it has it),
/// then both decision modes on that.
fn play_passers(
    args: &LaneArgs,
    models: &FaceModels,
    config: &Config,
    people: &[Person],
    augmentation: Augmentation,
    metric: Metric,
) -> anyhow::Result<Vec<Passer>> {
    let mut candidates: Vec<usize> = (0..people.len())
        .filter(|&i| {
            people[i].images.len() >= args.min_photos.max(2) && people[i].enrolled.is_some()
        })
        .collect();
    if let Some(max) = args.max_passers {
        candidates.truncate(max);
    }
    anyhow::ensure!(
        !candidates.is_empty(),
        "{} has no person with at least {} images",
        args.images.display(),
        args.min_photos
    );
    eprintln!(
        "trainer eval lane: {} passers, {} frames each",
        candidates.len(),
        args.frames
    );
    let detector = config.detect.detector();
    let mut cache = match &args.faces_cache {
        Some(file) => SeenCache::open(
            file,
            models,
            &detector,
            augmentation,
            &ClipSettings {
                detect: &config.detect,
                frames: args.frames,
                clip_photos: args.clip_photos,
                seed: args.seed,
            },
        )?,
        None => SeenCache::in_memory(),
    };
    let todo: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&p| cache.get(&people[p].name).is_none())
        .collect();
    let total = todo.len();
    let seen = pool::map_with(
        &todo,
        args.threads,
        || {
            let mut photos = FaceAnalyzer::open(models, 250, 250, DetectorConfig::default())?;
            photos.set_augmentation(augmentation);
            let mut lane =
                FaceAnalyzer::open(models, synth::FRAME_W, synth::FRAME_H, detector.clone())?;
            lane.set_augmentation(augmentation);
            lane.guide_detection(
                config.detect.full_frame_every,
                config.detect.skip_unchanged_level,
            );
            Ok(Worker { photos, lane })
        },
        |w, _, &person| see_one(args, config, w, &people[person], person),
        |n| {
            if n % 100 == 0 {
                eprintln!("trainer eval lane: {n}/{total} clips played");
            }
        },
    )?;
    for (&person, clip) in todo.iter().zip(seen) {
        cache.insert(people[person].name.clone(), clip);
    }
    cache.save()?;
    candidates
        .iter()
        .map(|&person| {
            let p = &people[person];
            let clip = cache.get(&p.name).expect("every candidate was seen");
            let enrolled = p.enrolled.as_ref().map(|(_, e)| e.as_slice());
            decide_one(args, config, metric, clip, person, enrolled)
        })
        .collect()
}

/// What the lane sees of one passer's clip: detection, alignment, quality, and a descriptor for
/// every aligned face.
fn see_one(
    args: &LaneArgs,
    config: &Config,
    w: &mut Worker,
    p: &Person,
    person: usize,
) -> anyhow::Result<SeenClip> {
    let enrolled_at = p.enrolled.as_ref().map_or(usize::MAX, |(k, _)| *k);
    let mut photos = Vec::new();
    for (k, path) in p.images.iter().enumerate() {
        if k == enrolled_at {
            continue;
        }
        if photos.len() >= args.clip_photos {
            break;
        }
        let image = read_rgb(path)?;
        if let Some(face) = w.photos.main_face_box(&image)? {
            photos.push(SourcePhoto { image, face });
        }
    }
    if photos.is_empty() {
        return Ok(SeenClip::default());
    }
    let seed = args.seed ^ (person as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let clip = walk_through(&photos, args.frames, seed);
    let min_match = config.detect.min_match_face_px as f32;
    let mut frames = Vec::with_capacity(clip.len());
    // Each clip is another passer in an empty lane: nothing is followed from the last one.
    w.lane.reset_guidance();
    for frame in &clip {
        let faces = w.lane.detect(&frame.image)?;
        let own_face = own_face_index(frame, faces.iter().map(|f| f.bbox));
        let obs = w
            .lane
            .observe_faces(&frame.image, &faces, min_match, |_| true)?;
        frames.push(SeenFrame {
            faces: obs.iter().map(SeenFace::of).collect(),
            own_face,
        });
    }
    Ok(SeenClip { frames })
}

/// Both decision modes on what the lane saw of one passer, as `lanewatch run` decides: each
/// mode's engine plans, embeds only the faces it asks for, tracks and decides.
fn decide_one(
    args: &LaneArgs,
    config: &Config,
    metric: Metric,
    clip: &SeenClip,
    person: usize,
    enrolled: Option<&[f32]>,
) -> anyhow::Result<Passer> {
    let mut passer = Passer {
        person,
        ..Passer::default()
    };
    let mut engines = [
        (DecisionMode::Frame, engine(&config.passage, metric)),
        (DecisionMode::Passage, engine(&config.passage, metric)),
    ];
    let mut own: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let mut points: [Vec<(u64, Point)>; 2] = [Vec::new(), Vec::new()];
    let mut embeddings = [0usize; 2];
    // Best shots keep no crop here: only the frame's size is read.
    let blank = RgbImage::new(synth::FRAME_W, synth::FRAME_H);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (i, frame) in clip.frames.iter().enumerate() {
        let seq = i as u64 + 1;
        let time = t0 + Duration::from_millis(100 * seq);
        if frame.own_face.is_some() {
            passer.frames_found += 1;
        }
        let boxes: Vec<[f32; 4]> = frame.faces.iter().map(|f| f.bbox).collect();
        for (m, (mode, engine)) in engines.iter_mut().enumerate() {
            let plan = engine.plan_boxes(seq, &boxes, *mode);
            let obs: Vec<FaceObservation> = frame
                .faces
                .iter()
                .enumerate()
                .map(|(index, f)| {
                    let wanted = f.quality.as_ref().is_some_and(|quality| {
                        let view = FaceView {
                            index,
                            bbox: f.bbox,
                            quality,
                        };
                        engine.wants_embedding(&plan, &view, seq)
                    });
                    f.observation(wanted)
                })
                .collect();
            embeddings[m] += obs.iter().filter(|o| o.embedding.is_some()).count();
            let outcome = engine.update(seq, time, &blank, &obs, None, *mode)?;
            if let Some(track) = frame.own_face.and_then(|i| outcome.faces[i].track)
                && !own[m].contains(&track)
            {
                own[m].push(track);
            }
            points[m].extend(outcome.decision_points.into_iter().map(|d| {
                (
                    d.track,
                    Point {
                        descriptor: d.descriptor,
                    },
                )
            }));
        }
        if args.quality_report
            && let (Some(own_face), Some(enrolled)) = (frame.own_face, enrolled)
            && let Some(SeenFace {
                quality: Some(q),
                embedding: Some(e),
                ..
            }) = frame.faces.get(own_face)
        {
            let model = &config.passage.quality;
            let d = lanewatch::vision::embed::distance(metric, e, enrolled);
            passer
                .quality_samples
                .push((model.components(q), model.score(q), d));
        }
    }
    // The clip is over: tracks end, and passage tracks take their last look.
    for (m, (_, engine)) in engines.iter_mut().enumerate() {
        let outcome = engine.finish(None);
        points[m].extend(outcome.decision_points.into_iter().map(|d| {
            (
                d.track,
                Point {
                    descriptor: d.descriptor,
                },
            )
        }));
    }
    let keep = |m: usize, pts: &mut Vec<(u64, Point)>| -> Vec<Point> {
        pts.drain(..)
            .filter(|(t, _)| own[m].contains(t))
            .map(|(_, p)| p)
            .collect()
    };
    passer.frame_points = keep(0, &mut points[0]);
    passer.passage_points = keep(1, &mut points[1]);
    passer.frame_embeddings = embeddings[0];
    passer.passage_embeddings = embeddings[1];
    passer.own_tracks_passage = own[1].len();
    Ok(passer)
}

fn engine(config: &PassageConfig, metric: Metric) -> Passages {
    let mut e = Passages::new(config.clone(), false, metric);
    e.record_decision_points(true);
    e
}

/// The detected face that is the passer's: its box centre within half a face of where the face
/// was put.
fn own_face_index(frame: &ClipFrame, boxes: impl Iterator<Item = [f32; 4]>) -> Option<usize> {
    let (cx, cy) = frame.face_centre;
    boxes
        .enumerate()
        .map(|(i, [x1, y1, x2, y2])| {
            let d = ((x1 + x2) / 2.0 - cx).hypot((y1 + y2) / 2.0 - cy);
            (i, d)
        })
        .filter(|(_, d)| *d < 0.5 * frame.face_px)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// For one list: per passer, the (nearest entry's person, distance) of each decision point.
type Searched = Vec<Vec<(usize, f32)>>;

fn search_all(index: &Index, members: &[usize], points: &[Vec<Point>]) -> anyhow::Result<Searched> {
    points
        .iter()
        .map(|pts| {
            pts.iter()
                .filter_map(|p| match index.search(&p.descriptor) {
                    Ok(Some(m)) => Some(Ok((members[m.identity], m.distance))),
                    Ok(None) => None,
                    Err(e) => Some(Err(anyhow::anyhow!("searching a passage: {e}"))),
                })
                .collect()
        })
        .collect()
}

/// One list's passers for one mode: unlisted passers' alert scores, listed passers' searches.
struct Drawn {
    /// Per unlisted passer: (person, nearest distance over its decision points; infinite when it
    /// was never decided).
    unlisted: Vec<(usize, f32)>,
    /// Per listed passer: (person, its searches in order).
    listed: Vec<(usize, Vec<(usize, f32)>)>,
}

/// A listed passer is found at threshold `t` when its first search nearer than `t` names them.
fn found(person: usize, searches: &[(usize, f32)], t: f32) -> bool {
    searches
        .iter()
        .find(|(_, d)| *d < t)
        .is_some_and(|(who, _)| *who == person)
}

/// The largest threshold that alerts on at most `target` of `scores` (sorted ascending).
fn threshold_for(scores: &[f32], target: f64) -> f32 {
    let allowed = (target * scores.len() as f64).floor() as usize;
    scores.get(allowed).copied().unwrap_or(f32::INFINITY)
}

fn rates(drawn: &[Drawn], t: f32, keep: impl Fn(usize) -> bool) -> (f64, f64, usize) {
    let (mut un, mut fa, mut li, mut miss) = (0usize, 0usize, 0usize, 0usize);
    for d in drawn {
        for (p, s) in d.unlisted.iter().filter(|(p, _)| keep(*p)) {
            let _ = p;
            un += 1;
            fa += usize::from(*s < t);
        }
        for (p, searches) in d.listed.iter().filter(|(p, _)| keep(*p)) {
            li += 1;
            miss += usize::from(!found(*p, searches, t));
        }
    }
    (
        fa as f64 / un.max(1) as f64,
        miss as f64 / li.max(1) as f64,
        fa,
    )
}

fn sorted_unlisted(drawn: &[Drawn], keep: impl Fn(usize) -> bool) -> Vec<f32> {
    let mut s: Vec<f32> = drawn
        .iter()
        .flat_map(|d| d.unlisted.iter().filter(|(p, _)| keep(*p)).map(|(_, s)| *s))
        .collect();
    s.sort_by(f32::total_cmp);
    s
}

fn figures(
    mode: DecisionMode,
    drawn: &[Drawn],
    targets: &[f64],
    embeddings_per_passer: f64,
) -> ModeFigures {
    let all = sorted_unlisted(drawn, |_| true);
    let at_targets = targets
        .iter()
        .map(|&target| {
            let t = threshold_for(&all, target);
            let (fpir, fnir, false_alerts) = rates(drawn, t, |_| true);
            // Held out: choose on even people, measure on odd ones, and the other way round.
            let mut held = (0.0, 0.0);
            for half in 0..2 {
                let tuned = sorted_unlisted(drawn, |p| p % 2 == half);
                let t = threshold_for(&tuned, target);
                let (f, n, _) = rates(drawn, t, |p| p % 2 != half);
                held.0 += f / 2.0;
                held.1 += n / 2.0;
            }
            AtTarget {
                fpir_target: target,
                threshold: t,
                fpir,
                fnir,
                false_alerts,
                held_out_fpir: held.0,
                held_out_fnir: held.1,
            }
        })
        .collect();
    // DET: one point per distinct FPIR, from the unlisted scores.
    let mut det = Vec::new();
    let finite: Vec<f32> = all.iter().copied().filter(|s| s.is_finite()).collect();
    let steps = 200.min(finite.len());
    for k in 1..=steps {
        let t = finite[(k * finite.len() / (steps + 1)).min(finite.len() - 1)];
        let (fpir, fnir, _) = rates(drawn, t, |_| true);
        if fpir > 0.0 {
            det.push((fpir, fnir));
        }
    }
    det.dedup();
    ModeFigures {
        decision: mode.as_str(),
        at_targets,
        embeddings_per_passer,
        det,
    }
}

fn score(
    args: &LaneArgs,
    people: &[Person],
    passers: &[Passer],
    metric: Metric,
) -> anyhow::Result<LaneReport> {
    let enrolled: Vec<usize> = (0..people.len())
        .filter(|&i| people[i].enrolled.is_some())
        .collect();
    let played: Vec<&Passer> = passers.iter().filter(|p| p.frames_found > 0).collect();
    let per_passer = |f: fn(&Passer) -> usize| {
        played.iter().map(|p| f(p)).sum::<usize>() as f64 / played.len().max(1) as f64
    };
    let frame_points: Vec<Vec<Point>> = played.iter().map(|p| p.frame_points.clone()).collect();
    let passage_points: Vec<Vec<Point>> = played.iter().map(|p| p.passage_points.clone()).collect();
    let dim = people
        .iter()
        .find_map(|p| p.enrolled.as_ref().map(|(_, e)| e.len()))
        .unwrap_or(0);
    let mut sizes = Vec::new();
    for &n in &args.watchlist_sizes {
        if n + 10 > enrolled.len() {
            eprintln!(
                "trainer eval lane: skipping size {n}: only {} people are enrolled",
                enrolled.len()
            );
            continue;
        }
        let mut drawn: [Vec<Drawn>; 2] = [Vec::new(), Vec::new()];
        for draw in 0..args.draws {
            let mut rng = Rng::for_step(args.seed, n as u64, draw as u64);
            let mut pool = enrolled.clone();
            for i in 0..n {
                let j = i + rng.below(pool.len() - i);
                pool.swap(i, j);
            }
            let members = &pool[..n];
            let mut index = Index::new(dim, metric);
            for &m in members {
                let e = &people[m].enrolled.as_ref().expect("drawn from enrolled").1;
                index
                    .push_identity([e.as_slice()])
                    .context("building a watchlist index")?;
            }
            let mut on_list = vec![false; people.len()];
            members.iter().for_each(|&m| on_list[m] = true);
            for (m, pts) in [&frame_points, &passage_points].into_iter().enumerate() {
                let searched = search_all(&index, members, pts)?;
                let mut d = Drawn {
                    unlisted: Vec::new(),
                    listed: Vec::new(),
                };
                for (p, s) in played.iter().zip(searched) {
                    if on_list[p.person] {
                        d.listed.push((p.person, s));
                    } else {
                        let nearest = s.iter().map(|(_, d)| *d).fold(f32::INFINITY, f32::min);
                        d.unlisted.push((p.person, nearest));
                    }
                }
                drawn[m].push(d);
            }
        }
        let listed = drawn[0].iter().map(|d| d.listed.len()).sum();
        let unlisted = drawn[0].iter().map(|d| d.unlisted.len()).sum();
        let frame = figures(
            DecisionMode::Frame,
            &drawn[0],
            &args.fpir,
            per_passer(|p| p.frame_embeddings),
        );
        let passage = figures(
            DecisionMode::Passage,
            &drawn[1],
            &args.fpir,
            per_passer(|p| p.passage_embeddings),
        );
        let per_search = per_search_threshold(args, n);
        sizes.push(SizeReport {
            watchlist_size: n,
            listed_passers: listed,
            unlisted_passers: unlisted,
            frame_fpir_at_per_search_threshold: per_search
                .map(|t| (t, rates(&drawn[0], t, |_| true).0)),
            frame,
            passage,
        });
    }
    Ok(LaneReport {
        people_enrolled: enrolled.len(),
        passers: passers.len(),
        passers_without_own_face: passers.len() - played.len(),
        own_face_frames: passers.iter().map(|p| p.frames_found).sum(),
        track_splits: played.iter().filter(|p| p.own_tracks_passage > 1).count(),
        frames_per_passer: args.frames,
        sizes,
    })
}

/// The per-search FPIR-1% threshold of the table `enroll` would read today (`--thresholds-out`'s
/// file, if it has one), for comparison.
fn per_search_threshold(args: &LaneArgs, n: usize) -> Option<f32> {
    let file = args.thresholds_out.as_ref()?;
    let table = ThresholdTable::read(file).ok()?;
    table
        .rows
        .iter()
        .filter(|r| r.per == RateUnit::Search && r.fpir_target == Some(0.01))
        .filter(|r| r.watchlist_size >= n)
        .min_by_key(|r| r.watchlist_size)
        .map(|r| r.threshold)
}

fn print(args: &LaneArgs, r: &LaneReport, passers: &[Passer]) {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).expect("plain data serialises")
        );
        return;
    }
    println!(
        "Lane evaluation per passer: {} ({} passers of {} frames, {} people enrolled; {} passers whose face was never found, {} whose track split; own face found in {} of {} frames)",
        args.model.display(),
        r.passers,
        r.frames_per_passer,
        r.people_enrolled,
        r.passers_without_own_face,
        r.track_splits,
        r.own_face_frames,
        r.passers * r.frames_per_passer
    );
    for s in &r.sizes {
        println!(
            "  list of {}: {} listed and {} unlisted passers over {} draws",
            s.watchlist_size, s.listed_passers, s.unlisted_passers, args.draws
        );
        println!(
            "    {:<8} {:>11} {:>9} {:>7} {:>8} {:>6}  {:>16} {:>16}  {:>10}",
            "decision",
            "FPIR target",
            "threshold",
            "FNIR",
            "FPIR",
            "alerts",
            "held-out FPIR",
            "held-out FNIR",
            "embeds/passer"
        );
        for m in [&s.frame, &s.passage] {
            for a in &m.at_targets {
                println!(
                    "    {:<8} {:>11} {:>9.4} {:>6.2}% {:>7.3}% {:>6}  {:>15.3}% {:>15.2}%  {:>10.1}",
                    m.decision,
                    a.fpir_target,
                    a.threshold,
                    100.0 * a.fnir,
                    100.0 * a.fpir,
                    a.false_alerts,
                    100.0 * a.held_out_fpir,
                    100.0 * a.held_out_fnir,
                    m.embeddings_per_passer
                );
            }
        }
        if let Some((t, fpir)) = s.frame_fpir_at_per_search_threshold {
            println!(
                "    frame decisions at the per-search FPIR-1% threshold {t:.4}: {:.2}% of unlisted passers alerted",
                100.0 * fpir
            );
        }
    }
    if args.quality_report {
        quality_report(passers);
    }
}

/// How each quality factor and the score relate to the distance between a passer's face and
/// their enrolled descriptor: the measurement behind the quality model's cut-offs.
fn quality_report(passers: &[Passer]) {
    let samples: Vec<&([f32; 4], f32, f32)> =
        passers.iter().flat_map(|p| &p.quality_samples).collect();
    println!(
        "  quality factors against the genuine distance ({} faces):",
        samples.len()
    );
    let names = ["size", "sharpness", "pose", "detector"];
    for (k, name) in names.iter().enumerate().chain([(4, &"score")]) {
        let value = |s: &([f32; 4], f32, f32)| if k < 4 { s.0[k] } else { s.1 };
        let mut sorted: Vec<(f32, f32)> = samples.iter().map(|s| (value(s), s.2)).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let bins = 5;
        let line: Vec<String> = (0..bins)
            .map(|b| {
                let part = &sorted[b * sorted.len() / bins..(b + 1) * sorted.len() / bins];
                let mean = part.iter().map(|x| x.1).sum::<f32>() / part.len().max(1) as f32;
                let lo = part.first().map_or(0.0, |x| x.0);
                format!("≥{lo:.2}: {mean:.3}")
            })
            .collect();
        println!(
            "    {name:<10} quintiles (component ≥ → mean distance): {}",
            line.join(", ")
        );
    }
}

fn write_rows(args: &LaneArgs, r: &LaneReport, views: Views, out: &Path) -> anyhow::Result<()> {
    let model = std::fs::read(&args.model)
        .with_context(|| format!("cannot read model file {}", args.model.display()))?;
    let sha = hex::encode(Sha256::digest(&model));
    let mut table = ThresholdTable::read(out).with_context(|| {
        format!(
            "{} must hold the per-search table of `trainer eval lfw --thresholds-out` first",
            out.display()
        )
    })?;
    anyhow::ensure!(
        table.embedder_sha256.eq_ignore_ascii_case(&sha) && table.views == views,
        "{} was measured with another embedder or other views; run `trainer eval lfw --thresholds-out` for this model first",
        out.display()
    );
    table.rows.retain(|row| row.per != RateUnit::Passer);
    for s in &r.sizes {
        for (mode, m) in [
            (DecisionMode::Frame, &s.frame),
            (DecisionMode::Passage, &s.passage),
        ] {
            for a in &m.at_targets {
                table.rows.push(ThresholdRow {
                    watchlist_size: s.watchlist_size,
                    fpir_target: Some(a.fpir_target),
                    threshold: a.threshold,
                    fpir: a.fpir,
                    fnir: a.fnir,
                    method: "measured".into(),
                    false_alerts: a.false_alerts,
                    per: RateUnit::Passer,
                    decision: mode,
                });
            }
        }
    }
    table.measured_on = format!(
        "{}; per-passer rows: trainer eval lane, {} passers of {} frames, {} random lists per size",
        table
            .measured_on
            .split("; per-passer rows")
            .next()
            .unwrap_or(""),
        r.passers,
        r.frames_per_passer,
        args.draws
    );
    let mut bytes = serde_json::to_vec_pretty(&table).expect("plain data serialises");
    bytes.push(b'\n');
    ThresholdTable::parse(&bytes, out)?;
    write_atomically(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "trainer eval lane: per-passer rows written to {}",
        out.display()
    );
    Ok(())
}
