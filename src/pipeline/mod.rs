//! `lanewatch run`: camera → bounded queue → detect → align → embed → 1:N match → decision → alerts.
//!
//! * [`capture`]: the capture thread and frame-buffer reuse (live cameras drop the oldest frame,
//!   replayed sources wait);
//! * [`lane`]: one frame's analysis, decisions and alerts;
//! * [`decide`]: the decision for one face;
//! * [`watch`]: the active watchlist and its hot reload;
//! * [`alerting`]: alerts and their destinations;
//! * [`run`]: the loop, status line and summary; [`setup`]: building it all from the configuration;
//! * [`latency`], [`memory`]: what `lanewatch bench` and the status line report.

pub mod alerting;
pub mod capture;
pub mod decide;
pub mod lane;
pub mod latency;
pub mod memory;
pub mod run;
pub mod setup;
pub mod watch;

pub use capture::Pacing;
pub use decide::{Candidate, Decision, Verdict};
pub use lane::{FrameReport, Lane, LaneSettings, LaneStats};
pub use run::{LaneRig, RunOptions, RunSummary, run};
pub use setup::lane_from_config;
pub use watch::{Watcher, WatchlistSlot};
