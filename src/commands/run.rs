//! `lanewatch run`: the lane box's main job, camera to alert, for months unattended.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, ModelsConfig};
use crate::pipeline::{RunOptions, lane_from_config, run};

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (TOML); every setting has a documented default (`--print-config`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Frame source: `v4l2:/dev/videoN`, `frames:DIR` or `mjpeg:FILE` (overrides source.uri).
    #[arg(long, value_name = "SPEC")]
    pub source: Option<String>,
    /// Watchlist state directory (as `watchlist install --dir`) or one signed watchlist file
    /// (overrides watchlist.dir).
    #[arg(long, value_name = "DIR|FILE")]
    pub watchlist: Option<PathBuf>,
    /// Public key the watchlist must be signed with (overrides watchlist.pubkey).
    #[arg(long, value_name = "PUB")]
    pub pubkey: Option<PathBuf>,
    /// Alert journal directory (overrides alerts.journal_dir).
    #[arg(long, value_name = "DIR")]
    pub alerts: Option<PathBuf>,
    /// Folder with the bundled models (overrides the [models] paths).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Stop after this many frames (default: run until the source ends; a camera never does).
    #[arg(long, value_name = "N")]
    pub max_frames: Option<u64>,
    /// Seconds between status lines on stderr (0: none).
    #[arg(long, default_value_t = 60)]
    pub status_every: u64,
    /// Print the summary at the end as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print the effective configuration (defaults, file, flags) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// The configuration file with the command-line overrides applied.
pub fn effective_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::read(path)?,
        None => Config::default(),
    };
    if let Some(s) = &args.source {
        config.source.uri = s.clone();
    }
    if let Some(w) = &args.watchlist {
        config.watchlist.dir = w.clone();
    }
    if let Some(p) = &args.pubkey {
        config.watchlist.pubkey = p.clone();
    }
    if let Some(a) = &args.alerts {
        config.alerts.journal_dir = a.clone();
    }
    if let Some(dir) = &args.models_dir {
        config.models = ModelsConfig::in_dir(dir);
    }
    config.validate()?;
    Ok(config)
}

pub fn execute(args: Args) -> anyhow::Result<()> {
    let config = effective_config(&args)?;
    if args.print_config {
        print!("{}", toml::to_string(&config)?);
        return Ok(());
    }
    let rig = lane_from_config(&config)?;
    eprintln!(
        "lanewatch: running on {} (watchlist {}, alerts in {})",
        config.source.uri,
        config.watchlist.dir.display(),
        config.alerts.journal_dir.display()
    );
    let options = RunOptions {
        max_frames: args.max_frames,
        status_every: (args.status_every > 0).then(|| Duration::from_secs(args.status_every)),
    };
    let summary = run(rig, options, |_| {})?;
    eprintln!("lanewatch: {}: {}", summary.ended, summary.line());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}
