//! `lanewatch demo`: the real pipeline on the bundled sample, no camera, no network. It enrols the
//! bundled face into a signed watchlist (fresh key), installs it, plays the bundled lane clip
//! through `lanewatch run`'s own loop and prints what it decided for every face.

use std::path::PathBuf;

use anyhow::Context;

use crate::alerts::Alert;
use crate::fsio::TempDir;
use crate::passage::episode::{Episode, Outcome};
use crate::pipeline::{FrameReport, RunOptions, Verdict, lane_from_config, run};
use crate::samples::{
    bundled_dir, bundled_models_dir, clip_spec, demo_config, install_demo_watchlist,
};
use crate::vision::faces::FaceModels;
use crate::watchlist::format::Views;

#[derive(clap::Args)]
pub struct Args {
    /// Folder with the demo samples (`watchlist/<person>/` photos and `lane_clip.mjpeg`).
    #[arg(long, value_name = "DIR")]
    pub samples: Option<PathBuf>,
    /// Folder with the bundled models.
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Keep the key, watchlist and alert journal here instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn describe(report: &FrameReport<'_>) {
    let seq = report.frame.seq;
    if report.decisions.is_empty() {
        println!("frame {seq:>3}: no face");
    }
    let name = |entry: usize| {
        report.watchlist.map_or("?".to_string(), |l| {
            l.body().entries[entry].display_name.clone()
        })
    };
    for d in report.decisions {
        let size = d.face_size_px;
        let track = d.track.map_or("-".to_string(), |t| t.to_string());
        let quality = d.quality.map_or("-".to_string(), |q| format!("{q:.2}"));
        let what = match d.verdict {
            Verdict::TooSmall => "too small to match (counted)".to_string(),
            Verdict::Gathering { good_faces } => {
                format!("gathering evidence ({good_faces} good face(s) so far)")
            }
            Verdict::NoWatchlist => "no watchlist active".to_string(),
            Verdict::NoMatch { best: None } => "no match (empty watchlist)".to_string(),
            Verdict::NoMatch { best: Some(c) } => format!(
                "no match: closest is {} at distance {:.3}",
                name(c.entry),
                c.distance
            ),
            Verdict::Match { candidate: c, new } => format!(
                "{} {} at distance {:.3} (similarity {:.3})",
                if new { "MATCH" } else { "matched" },
                name(c.entry),
                c.distance,
                c.similarity
            ),
        };
        let embedded = if d.embedded { "embedded" } else { "        " };
        println!(
            "frame {seq:>3}: track {track:>3}, face {size:>3.0} px, quality {quality}, {embedded}: {what}"
        );
    }
    report.alerts.iter().for_each(print_alert);
    for e in report.ended {
        print_episode(e);
    }
}

fn print_alert(a: &Alert) {
    let passage = a.passage.as_ref().map_or(String::new(), |p| {
        format!(
            " (passage {}: {} face(s), combined distance {:.3}, best single {})",
            p.track,
            p.faces_used,
            p.combined_distance,
            p.best_single_distance
                .map_or("-".to_string(), |d| format!("{d:.3}"))
        )
    });
    let late = a
        .passage
        .as_ref()
        .filter(|p| p.at_track_end)
        .map_or("", |_| " [at the track's end]");
    println!(
        "           ALERT {} [{} / {}] id {}{passage}{late}",
        a.identity.name, a.identity.list, a.identity.severity, a.id
    );
}

/// One line per closed passage: who passed, when, how sure.
fn print_episode(e: &Episode) {
    let who = match (&e.outcome, &e.matched) {
        (_, Some(m)) => format!(
            "matched {} (combined distance {:.3}, best single {})",
            m.id,
            m.distance,
            m.best_single_distance
                .map_or("-".to_string(), |d| format!("{d:.3}"))
        ),
        (Outcome::Undecided, _) => "undecided: too few good faces".to_string(),
        (Outcome::NoWatchlist, _) => "no watchlist active".to_string(),
        _ => "matched nobody".to_string(),
    };
    println!(
        "passage {}: frames {}-{}, {} face(s), {} good, {} embedded ({} saved): {who}",
        e.track, e.first_frame, e.last_frame, e.faces, e.good_faces, e.embedded, e.embeddings_saved
    );
}

pub fn execute(args: Args) -> anyhow::Result<()> {
    let samples = args.samples.unwrap_or_else(bundled_dir);
    let models_dir = args.models_dir.unwrap_or_else(bundled_models_dir);
    let models = FaceModels::in_dir(&models_dir);
    let temp;
    let work = match args.out {
        Some(dir) => dir,
        None => {
            temp = TempDir::new("lanewatch-demo")?;
            temp.path().to_path_buf()
        }
    };
    println!(
        "lanewatch demo: enrolling {} into a signed watchlist",
        samples.join("watchlist").display()
    );
    let list = install_demo_watchlist(&samples, &models, &work, Views::Chip)
        .context("preparing the demo watchlist")?;
    println!(
        "  {} person(s), sequence {}, installed in {}",
        list.people,
        list.sequence,
        list.state_dir.display()
    );

    let mut config = demo_config(clip_spec(&samples), &models_dir, &list, &work);
    config.source.lane = Some("demo-lane".into());

    println!("lanewatch demo: playing {}", config.source.uri);
    let rig = lane_from_config(&config)?;
    let summary = run(rig, RunOptions::default(), describe)?;
    summary.alerts_at_stop.iter().for_each(print_alert);
    for e in &summary.closed_at_stop {
        print_episode(e);
    }
    println!("lanewatch demo: {}", summary.line());
    println!(
        "  alerts journal: {} ({} alert(s) raised, one per passage; a person alerts at most once per {} s cool-down)",
        config.alerts.journal_dir.display(),
        summary.lane.alerts_raised,
        config.alerts.cooldown_s
    );
    Ok(())
}
