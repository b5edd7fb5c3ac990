//! The progress line: step, a bar, ETA, and the step's loss, active-triplet share and mean
//! positive/negative distances. On a terminal it redraws one line; otherwise (CI, `nohup`) it prints a
//! line now and then. Every step also goes to `RUN/metrics.jsonl` for plotting.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::loss::StepStats;

pub struct Progress {
    total: u64,
    first: u64,
    started: Instant,
    tty: bool,
    quiet: bool,
    every: u64,
}

impl Progress {
    /// `first` is the step this process starts at (after a resume), `total` the last step.
    pub fn new(first: u64, total: u64, quiet: bool) -> Progress {
        Progress {
            total,
            first,
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            quiet,
            every: (total.saturating_sub(first) / 20).max(1),
        }
    }

    /// Seconds per step so far and the estimated time left after `step` (1-based, completed).
    pub fn rate(&self, step: u64) -> (f64, Duration) {
        let done = step.saturating_sub(self.first).max(1) as f64;
        let per = self.started.elapsed().as_secs_f64() / done;
        let left = per * self.total.saturating_sub(step) as f64;
        (per, Duration::from_secs_f64(left.max(0.0)))
    }

    pub fn line(&self, step: u64, s: &StepStats, lr: f64) -> String {
        let (per, eta) = self.rate(step);
        let width = 24usize;
        let filled = (width as u64 * step / self.total.max(1)) as usize;
        format!(
            "[{}{}] {step}/{} loss {:.4} active {:>3.0}% d+ {:.3} d- {:.3} lr {lr:.1e} {per:.2} s/step ETA {}",
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.total,
            s.loss,
            100.0 * s.active,
            s.pos_dist,
            s.neg_dist,
            hms(eta)
        )
    }

    pub fn step(&self, step: u64, s: &StepStats, lr: f64) {
        if self.quiet {
            return;
        }
        let line = self.line(step, s, lr);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
            if step == self.total {
                let _ = writeln!(err);
            }
        } else if step.is_multiple_of(self.every) || step == self.total || step == self.first + 1 {
            let _ = writeln!(err, "{line}");
        }
    }

    /// A message on its own line (validation results, checkpoints), not overwritten by the bar.
    pub fn note(&self, msg: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(err, "{msg}");
    }
}

fn hms(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_the_metrics_and_an_eta() {
        let p = Progress::new(0, 10, true);
        let s = StepStats {
            loss: 0.25,
            active: 0.5,
            triplets: 8,
            pos_dist: 0.8,
            neg_dist: 1.2,
        };
        let line = p.line(5, &s, 1e-3);
        assert!(
            line.starts_with(
                "[############------------] 5/10 loss 0.2500 active  50% d+ 0.800 d- 1.200"
            ),
            "{line}"
        );
        assert!(line.contains("ETA "), "{line}");
        assert_eq!(hms(Duration::from_secs(3725)), "1h02m");
    }
}
