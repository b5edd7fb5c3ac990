//! Per-stage latency samples for `lanewatch bench` and the run loop's status line: a fixed ring of
//! the most recent samples per stage (allocated once), summarised as median and 95th percentile.

use std::time::Duration;

/// The stages of the pipeline, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Taking a frame from the source: reading the file or buffer and decoding/converting pixels.
    Decode,
    /// MTCNN over the frame (whichever search it got).
    Detect,
    /// Detection of frames searched whole, and of frames searched only near the followed faces
    /// (a near search followed by a full one counts as full).
    DetectFull,
    DetectNear,
    /// Inside detection: P-Net (with the image planes and the candidates' merging), R-Net and
    /// O-Net, per frame.
    Pnet,
    Rnet,
    Onet,
    /// Landmarks and the face chip, per embedded face.
    Align,
    /// The embedder, per embedded face.
    Embed,
    /// Associating the frame's faces with tracks (prediction, assignment), per frame with faces.
    Track,
    /// 1:N searches of a frame (fused descriptors or single faces), per frame that searched.
    Match,
    /// The rest of the per-passer work of a frame with faces: quality, fusion, decisions, best
    /// shots, closing records.
    Passage,
    /// Frame taken off the source to all its faces decided (alerts included).
    Frame,
}

impl Stage {
    pub const ALL: [Stage; 13] = [
        Stage::Decode,
        Stage::Detect,
        Stage::DetectFull,
        Stage::DetectNear,
        Stage::Pnet,
        Stage::Rnet,
        Stage::Onet,
        Stage::Align,
        Stage::Embed,
        Stage::Track,
        Stage::Match,
        Stage::Passage,
        Stage::Frame,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Detect => "detect",
            Stage::DetectFull => "detect_full",
            Stage::DetectNear => "detect_near",
            Stage::Pnet => "pnet",
            Stage::Rnet => "rnet",
            Stage::Onet => "onet",
            Stage::Align => "align",
            Stage::Embed => "embed",
            Stage::Track => "track",
            Stage::Match => "match",
            Stage::Passage => "passage",
            Stage::Frame => "frame",
        }
    }
}

/// Median, 95th percentile and count of one stage's samples, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub samples: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

/// A ring of the last `capacity` samples of one stage.
#[derive(Clone, Debug)]
struct Ring {
    samples: Vec<Duration>,
    next: usize,
    total: u64,
}

impl Ring {
    fn new(capacity: usize) -> Ring {
        Ring {
            samples: Vec::with_capacity(capacity.max(1)),
            next: 0,
            total: 0,
        }
    }

    fn push(&mut self, d: Duration) {
        if self.samples.len() < self.samples.capacity() {
            self.samples.push(d);
        } else {
            self.samples[self.next] = d;
            self.next = (self.next + 1) % self.samples.len();
        }
        self.total += 1;
    }

    fn summary(&self) -> Summary {
        if self.samples.is_empty() {
            return Summary::default();
        }
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let at = |q: f64| {
            let i = ((sorted.len() - 1) as f64 * q).round() as usize;
            sorted[i].as_secs_f64() * 1e3
        };
        Summary {
            samples: sorted.len(),
            median_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: at(1.0),
        }
    }
}

/// Recent samples of every stage.
#[derive(Clone, Debug)]
pub struct Latencies {
    rings: [Ring; Stage::ALL.len()],
}

impl Latencies {
    /// Keeps the last `capacity` samples per stage.
    pub fn new(capacity: usize) -> Latencies {
        Latencies {
            rings: std::array::from_fn(|_| Ring::new(capacity)),
        }
    }

    fn slot(stage: Stage) -> usize {
        Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0)
    }

    pub fn record(&mut self, stage: Stage, d: Duration) {
        self.rings[Self::slot(stage)].push(d);
    }

    /// Samples recorded since start (not only those still held).
    pub fn count(&self, stage: Stage) -> u64 {
        self.rings[Self::slot(stage)].total
    }

    pub fn summary(&self, stage: Stage) -> Summary {
        self.rings[Self::slot(stage)].summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p95_of_known_samples() {
        let mut l = Latencies::new(1000);
        for ms in 1..=100 {
            l.record(Stage::Detect, Duration::from_millis(ms));
        }
        let s = l.summary(Stage::Detect);
        assert_eq!(s.samples, 100);
        assert!((s.median_ms - 51.0).abs() < 1e-9, "{s:?}");
        assert!((s.p95_ms - 95.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.max_ms, 100.0);
        assert_eq!(l.summary(Stage::Embed), Summary::default());
    }

    #[test]
    fn ring_keeps_only_the_most_recent_samples() {
        let mut l = Latencies::new(10);
        for ms in 0..25 {
            l.record(Stage::Match, Duration::from_millis(ms));
        }
        let s = l.summary(Stage::Match);
        assert_eq!(s.samples, 10);
        assert_eq!(l.count(Stage::Match), 25);
        assert_eq!(s.max_ms, 24.0);
        assert!((s.median_ms - 20.0).abs() < 1.0, "{s:?}");
    }
}
