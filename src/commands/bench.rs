//! `lanewatch bench`: per-stage latency (decode, detect, align, embed, track, match, passage:
//! median and p95), frames per second end to end, embeddings saved by the per-passer embed policy,
//! and resident memory over the run, on the bundled lane clip or a given source. Frames are taken and analysed in one thread, one after the other, so that each
//! stage is timed alone; the same command runs on an aarch64 box.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::camera::{Frame, SourceError};
use crate::fsio::TempDir;
use crate::pipeline::latency::{Latencies, Stage, Summary};
use crate::pipeline::memory::{Resident, resident};
use crate::pipeline::setup::open_source;
use crate::pipeline::{WatchlistSlot, lane_from_config};
use crate::samples::{
    bundled_dir, bundled_models_dir, clip_spec, demo_config, install_demo_watchlist,
};
use crate::vision::detect::guided::GuidanceStats;
use crate::vision::faces::FaceModels;
use crate::watchlist::format::Views;

#[derive(clap::Args)]
pub struct Args {
    /// Frame source (default: the bundled lane clip, replayed as often as needed).
    #[arg(long, value_name = "SPEC")]
    pub source: Option<String>,
    /// Frames to measure, after the warm-up.
    #[arg(long, default_value_t = 240)]
    pub frames: u64,
    /// Frames analysed before measuring (plans, caches, allocator pools settle).
    #[arg(long, default_value_t = 24)]
    pub warmup: u64,
    /// Folder with the bundled models.
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Folder with the demo samples (the watchlist enrolled for the match stage).
    #[arg(long, value_name = "DIR")]
    pub samples: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Instead of the pipeline, time each bundled network alone (tract) at the shapes the lane runs
    /// it with, for comparison with another runtime (`tools/bench_tract_vs_onnxruntime.py`).
    #[arg(long)]
    pub models: bool,
    /// Enrol the bench watchlist with `lanewatch enroll --mirror`'s descriptors, so that the lane
    /// embeds every face twice (the chip and its mirror image), as it does for such a list.
    #[arg(long)]
    pub mirror: bool,
    /// Runs per network with --models.
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// With --models: also print where each network's time goes in tract, by kind of operation.
    #[arg(long, requires = "models")]
    pub profile: bool,
    /// Search the whole frame at least every N frames, near the followed faces in between
    /// (`[detect] full_frame_every`; 1: every frame whole). Default: the configuration's.
    #[arg(long, value_name = "N")]
    pub full_frame_every: Option<u32>,
    /// Leave an empty lane unsearched while no 8x8 cell changed by this many grey levels
    /// (`[detect] skip_unchanged_level`; 0: search every frame). Default: the configuration's.
    #[arg(long, value_name = "LEVEL")]
    pub skip_unchanged_level: Option<f32>,
}

/// The shapes each network runs at in the lane: the embedder on one chip, P-Net on the first pyramid
/// level of a 640x480 frame at the default 40 px minimum face (scale 12/40), R-Net on a batch of 16
/// candidates and O-Net on 4.
pub fn model_shapes(models: &FaceModels) -> Vec<(String, PathBuf, [usize; 4])> {
    vec![
        ("embedder".into(), models.embedder.clone(), [1, 3, 150, 150]),
        ("pnet".into(), models.pnet.clone(), [1, 3, 144, 192]),
        ("rnet".into(), models.rnet.clone(), [16, 3, 24, 24]),
        ("onet".into(), models.onet.clone(), [4, 3, 48, 48]),
    ]
}

/// Median and p95 of `runs` tract runs of each network on a fixed pseudo-image input.
fn time_models(models: &FaceModels, runs: usize, json: bool, profile: bool) -> anyhow::Result<()> {
    use tract_onnx::prelude::Tensor;
    let mut out = Vec::new();
    for (name, path, [n, c, h, w]) in model_shapes(models) {
        let file = crate::vision::model::ModelFile::open(&path)?;
        let model = file.plan(n, h, w)?;
        // Smooth, image-like values in the network's input range; timing does not depend on them.
        let data: Vec<f32> = (0..n * c * h * w)
            .map(|i| ((i % 251) as f32 / 250.0 - 0.5) * 2.0)
            .collect();
        let input = Tensor::from_shape(&[n, c, h, w], &data)?;
        for _ in 0..3 {
            model.run(input.clone())?;
        }
        let mut lat = Latencies::new(runs);
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            model.run(input.clone())?;
            lat.record(Stage::Embed, t.elapsed());
        }
        if profile {
            let ops = model.profile(&input, runs)?;
            let total: f64 = ops.iter().map(|(_, d)| d.as_secs_f64()).sum();
            eprintln!(
                "  {name} {:?}: time by operation over {runs} runs",
                [n, c, h, w]
            );
            for (op, d) in ops.iter().take(8) {
                eprintln!(
                    "    {op:<24} {:>8.3} ms/run {:>5.1}%",
                    1e3 * d.as_secs_f64() / runs.max(1) as f64,
                    100.0 * d.as_secs_f64() / total.max(f64::MIN_POSITIVE)
                );
            }
        }
        out.push((name, [n, c, h, w], lat.summary(Stage::Embed)));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("  network   input shape        median ms    p95 ms  (tract, {runs} runs)");
        for (name, shape, s) in &out {
            println!(
                "  {name:<9} {:<18} {:>9.2} {:>9.2}",
                format!("{shape:?}"),
                s.median_ms,
                s.p95_ms
            );
        }
    }
    Ok(())
}

/// What `lanewatch bench` measured.
#[derive(Debug, serde::Serialize)]
pub struct BenchReport {
    pub source: String,
    /// How faces were described: `chip`, or `chip-and-mirror` with --mirror.
    pub views: String,
    pub frames: u64,
    pub faces: u64,
    /// Faces large enough to be aligned (and so candidates for an embedding).
    pub aligned: u64,
    /// Aligned faces embedded, and those whose embedding the per-passer policy skipped (the
    /// track's view did not improve; `[passage]` reembed_gain, embed_every, max_embeddings).
    pub embedded: u64,
    pub embeddings_saved: u64,
    /// Tracks started and searches of the watchlist made over the measured frames.
    pub tracks: u64,
    pub searches: u64,
    /// Frames searched whole and near the followed faces (`[detect] full_frame_every`).
    pub full_frame_every: u32,
    pub detection: GuidanceStats,
    /// Crops given to R-Net and O-Net, per frame on average.
    pub rnet_crops_per_frame: f64,
    pub onet_crops_per_frame: f64,
    pub seconds: f64,
    pub frames_per_second: f64,
    pub stages_ms: Vec<(String, Summary)>,
    /// Resident memory after the warm-up, then at each tenth of the run.
    pub resident_after_warmup: Option<Resident>,
    pub resident_samples: Vec<(u64, u64)>,
    pub resident_growth_bytes: Option<i64>,
    pub peak_resident_bytes: Option<u64>,
    pub threads: usize,
}

pub fn execute(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.frames >= 1, "--frames must be at least 1");
    let samples = args.samples.unwrap_or_else(bundled_dir);
    let models_dir = args.models_dir.unwrap_or_else(bundled_models_dir);
    let models = FaceModels::in_dir(&models_dir);
    if args.models {
        return time_models(&models, args.runs, args.json, args.profile);
    }
    let work = TempDir::new("lanewatch-bench")?;
    let views = Views::with_mirror(args.mirror);
    let list = install_demo_watchlist(&samples, &models, work.path(), views)
        .context("preparing the watchlist for the match stage")?;

    let source = args.source.clone().unwrap_or_else(|| clip_spec(&samples));
    let mut config = demo_config(source, &models_dir, &list, work.path());
    if let Some(n) = args.full_frame_every {
        config.detect.full_frame_every = n;
    }
    if let Some(level) = args.skip_unchanged_level {
        config.detect.skip_unchanged_level = level;
    }

    let rig = lane_from_config(&config)?;
    let mut source = rig.source;
    let mut lane = rig.lane;
    let slot: std::sync::Arc<WatchlistSlot> = lane.watchlist().clone();
    if let Some(mut watcher) = rig.watcher {
        watcher.check(&slot);
    }
    anyhow::ensure!(slot.current().is_some(), "the bench watchlist did not load");

    let total = args.warmup + args.frames;
    let mut frame = Frame::empty();
    let mut done = 0u64;
    let mut started = Instant::now();
    let mut after_warmup = None;
    let mut rss = Vec::new();
    let (mut faces, mut aligned) = (0u64, 0u64);
    let (mut rnet_crops, mut onet_crops) = (0usize, 0usize);
    let mut passages_at_warmup = lane.stats().passages;
    let mut detection_at_warmup = lane.stats().detection;
    let step = (args.frames / 10).max(1);
    while done < total {
        if done == args.warmup {
            *lane.latencies_mut() = Latencies::new(args.frames as usize);
            after_warmup = resident();
            passages_at_warmup = lane.stats().passages;
            detection_at_warmup = lane.stats().detection;
            started = Instant::now();
        }
        let t = Instant::now();
        match source.next_frame(&mut frame, Duration::from_secs(5)) {
            Ok(()) => {}
            Err(SourceError::EndOfStream { .. }) => {
                // Replay the clip (or folder) from the start.
                source = open_source(&config, Default::default())?.0;
                continue;
            }
            Err(e @ (SourceError::Timeout { .. } | SourceError::Corrupt { .. })) => {
                eprintln!("lanewatch bench: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let decode = t.elapsed();
        let report = lane.process(&frame);
        if done >= args.warmup {
            faces += report.decisions.len() as u64;
            aligned += report
                .decisions
                .iter()
                .filter(|d| !matches!(d.verdict, crate::pipeline::Verdict::TooSmall))
                .count() as u64;
        }
        lane.latencies_mut().record(Stage::Decode, decode);
        if done >= args.warmup {
            let work = lane.last_detect_work();
            rnet_crops += work.rnet_crops;
            onet_crops += work.onet_crops;
        }
        done += 1;
        let measured = done.saturating_sub(args.warmup);
        if measured > 0
            && (measured.is_multiple_of(step) || measured == args.frames)
            && let Some(r) = resident()
        {
            rss.push((measured, r.current_bytes));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let end = resident();
    let passages = lane.stats().passages;
    let detection = lane.stats().detection;
    let report = BenchReport {
        source: config.source.uri.clone(),
        views: views.as_str().to_string(),
        frames: args.frames,
        faces,
        aligned,
        embedded: passages.embedded - passages_at_warmup.embedded,
        embeddings_saved: passages.embeddings_saved - passages_at_warmup.embeddings_saved,
        tracks: passages.tracks_started - passages_at_warmup.tracks_started,
        searches: passages.searches - passages_at_warmup.searches,
        full_frame_every: config.detect.full_frame_every,
        detection: GuidanceStats {
            full: detection.full - detection_at_warmup.full,
            near: detection.near - detection_at_warmup.near,
            near_then_full: detection.near_then_full - detection_at_warmup.near_then_full,
            skipped_unchanged: detection.skipped_unchanged - detection_at_warmup.skipped_unchanged,
        },
        rnet_crops_per_frame: rnet_crops as f64 / args.frames as f64,
        onet_crops_per_frame: onet_crops as f64 / args.frames as f64,
        seconds,
        frames_per_second: args.frames as f64 / seconds,
        stages_ms: Stage::ALL
            .iter()
            .filter(|s| **s != Stage::Frame)
            .map(|s| (s.name().to_string(), lane.latencies().summary(*s)))
            .collect(),
        resident_growth_bytes: match (after_warmup, end) {
            (Some(a), Some(b)) => Some(b.current_bytes as i64 - a.current_bytes as i64),
            _ => None,
        },
        resident_after_warmup: after_warmup,
        resident_samples: rss,
        peak_resident_bytes: end.map(|r| r.peak_bytes),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &BenchReport) {
    println!(
        "lanewatch bench: {} frames of {} ({} faces, {} aligned, {} embedded as {}), {} CPU threads available",
        r.frames, r.source, r.faces, r.aligned, r.embedded, r.views, r.threads
    );
    let candidates = r.embedded + r.embeddings_saved;
    println!(
        "  per passer: {} tracks started, {} searches; {} embeddings saved of {} ({:.0}%)",
        r.tracks,
        r.searches,
        r.embeddings_saved,
        candidates,
        100.0 * r.embeddings_saved as f64 / candidates.max(1) as f64
    );
    println!(
        "  detection: {} frames searched whole, {} near the followed faces ({} of them then whole), {} of an unchanged empty lane not searched; full_frame_every {}",
        r.detection.full,
        r.detection.near,
        r.detection.near_then_full,
        r.detection.skipped_unchanged,
        r.full_frame_every
    );
    println!(
        "  detector crops per frame: {:.1} to R-Net, {:.1} to O-Net",
        r.rnet_crops_per_frame, r.onet_crops_per_frame
    );
    println!(
        "  stage         median ms    p95 ms   samples   (align, embed: per face; track, passage: per frame with faces; match: per frame that searched)"
    );
    for (name, s) in &r.stages_ms {
        println!(
            "  {name:<12} {:>10.3} {:>9.3} {:>9}",
            s.median_ms, s.p95_ms, s.samples
        );
    }
    println!(
        "  end to end: {:.2} frames/s ({:.1} s)",
        r.frames_per_second, r.seconds
    );
    let mb = |b: u64| b as f64 / 1048576.0;
    if let (Some(a), Some(g), Some(p)) = (
        r.resident_after_warmup,
        r.resident_growth_bytes,
        r.peak_resident_bytes,
    ) {
        println!(
            "  resident memory: {:.1} MB after warm-up, {:+.2} MB over the run, peak {:.1} MB",
            mb(a.current_bytes),
            g as f64 / 1048576.0,
            mb(p)
        );
        let trace: Vec<String> = r
            .resident_samples
            .iter()
            .map(|(f, b)| format!("{f}:{:.1}", mb(*b)))
            .collect();
        println!("  resident MB by frame: {}", trace.join(" "));
    }
}
