//! `trainer train`: the command-line arguments and the settings a run records in its checkpoints.

use std::path::PathBuf;

use super::arch::{ArchConfig, MobileFaceNetConfig};
use super::data::augment::Augment;
use super::loss::Mining;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// MobileFaceNet (depthwise-separable, ~1 M parameters at 112x112), trained from scratch.
    Mobilefacenet,
    /// dlib's face-recognition ResNet (150x150), fine-tuned from --dlib-dat.
    DlibResnet,
}

/// Where training runs. GPU backends exist only in builds with the matching cargo feature.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Backend {
    /// burn's pure-Rust CPU backend (always built).
    Cpu,
    /// wgpu on Vulkan (`cargo build --release -p trainer --features vulkan`).
    Vulkan,
    /// CUDA (`cargo build --release -p trainer --features cuda`).
    Cuda,
}

#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// Training images, one folder per identity (LFW layout DIR/NAME/NAME_0001.jpg, VGGFace2 layout
    /// DIR/n000002/0001_01.jpg).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Run folder: checkpoints, the chip cache and metrics.jsonl.
    #[arg(long, value_name = "RUN")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "mobilefacenet")]
    pub arch: Arch,
    /// dlib's dlib_face_recognition_resnet_model_v1.dat: the starting weights of --arch dlib-resnet.
    #[arg(long, value_name = "FILE")]
    pub dlib_dat: Option<PathBuf>,
    /// Chip side in pixels (MobileFaceNet: a multiple of 16; dlib-resnet is always 150).
    #[arg(long, default_value_t = 112)]
    pub input: usize,
    /// Channel multiplier of MobileFaceNet (1 = the paper's network).
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// Embedding dimension.
    #[arg(long, default_value_t = 128)]
    pub embedding: usize,
    /// Optimizer steps in total (a resumed run continues up to this many).
    #[arg(long, default_value_t = 20_000)]
    pub steps: u64,
    /// Identities with fewer usable images are left out; 1 also trains one-photo identities (their
    /// positives are augmented views of the photo).
    #[arg(long, default_value_t = 2)]
    pub min_images: usize,
    /// Identities per batch.
    #[arg(long, default_value_t = 16)]
    pub p: usize,
    /// Images per identity per batch.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Triplet margin α on squared distances between unit embeddings (FaceNet: 0.2).
    #[arg(long, default_value_t = 0.2)]
    pub margin: f32,
    #[arg(long, value_enum, default_value = "semi-hard")]
    pub mining: Mining,
    /// Curriculum mining: the share of hardest negatives reached at the last step.
    #[arg(long, default_value_t = 0.5)]
    pub hard_share: f64,
    /// Peak learning rate (Adam), reached after the warm-up, then cosine decay to 1% of it.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Warm-up steps (linear from 0).
    #[arg(long)]
    pub warmup: Option<u64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Turn off flip, scale/shift jitter and brightness/contrast changes.
    #[arg(long)]
    pub no_augment: bool,
    /// Validation pairs file (standard LFW format); needs --images.
    #[arg(long, value_name = "FILE", requires = "images")]
    pub pairs: Option<PathBuf>,
    /// LFW-layout folder the pairs file refers to.
    #[arg(long, value_name = "DIR", requires = "pairs")]
    pub images: Option<PathBuf>,
    /// Without --pairs: hold this share of the identities (with 2+ images) out of training and
    /// validate on pairs made from them.
    #[arg(long, default_value_t = 0.0)]
    pub hold_out: f64,
    /// Validate every N steps (and before the first and after the last), when there are pairs.
    #[arg(long, default_value_t = 1000)]
    pub validate_every: u64,
    /// Write the checkpoint every N steps (and after the last).
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// Continue from RUN/checkpoint.lwck.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this step, checkpointed, as if interrupted (a GPU host's time slot); a later
    /// `--resume` continues exactly where it stopped.
    #[arg(long, value_name = "STEP")]
    pub stop_at: Option<u64>,
    /// CPU threads for burn's kernels and for alignment.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: Backend,
    /// Folder with the detector and landmark models used to align the data.
    #[arg(long, value_name = "DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Padding of the face chip around dlib's 5-point template (dlib's 0.25).
    #[arg(long, default_value_t = 0.25)]
    pub chip_padding: f64,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

/// The hyper-parameters of a run, recorded in its checkpoints.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub steps: u64,
    pub p: usize,
    pub k: usize,
    #[serde(default = "two")]
    pub min_images: usize,
    pub margin: f32,
    pub mining: Mining,
    pub hard_share: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup: u64,
    pub seed: u64,
    pub augment: Augment,
    pub validate_every: u64,
    pub checkpoint_every: u64,
}

fn two() -> usize {
    2
}

impl Settings {
    /// Learning rate at `step` (0-based): linear warm-up, then cosine decay to 1% of the peak.
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup).max(1) as f64;
        let t = ((step - self.warmup) as f64 / span).min(1.0);
        let floor = 0.01 * self.lr;
        floor + (self.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

impl TrainArgs {
    pub fn arch_config(&self) -> anyhow::Result<ArchConfig> {
        match self.arch {
            Arch::Mobilefacenet => {
                let c = MobileFaceNetConfig {
                    input: self.input,
                    width: self.width,
                    embedding: self.embedding,
                };
                c.check()?;
                Ok(ArchConfig::Mobilefacenet(c))
            }
            Arch::DlibResnet => Ok(ArchConfig::DlibResnet),
        }
    }

    pub fn settings(&self) -> Settings {
        Settings {
            steps: self.steps,
            p: self.p,
            k: self.k,
            min_images: self.min_images.max(1),
            margin: self.margin,
            mining: self.mining,
            hard_share: self.hard_share,
            lr: self.lr,
            weight_decay: self.weight_decay,
            warmup: self.warmup.unwrap_or((self.steps / 20).min(500)),
            seed: self.seed,
            augment: if self.no_augment {
                Augment::NONE
            } else {
                Augment::DEFAULT
            },
            validate_every: self.validate_every.max(1),
            checkpoint_every: self.checkpoint_every.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: TrainArgs,
    }

    #[test]
    fn defaults_and_learning_rate_schedule() {
        let cli = Cli::parse_from([
            "t",
            "--data",
            "d",
            "--out",
            "r",
            "--steps",
            "100",
            "--mining",
            "batch-hard",
        ]);
        let s = cli.args.settings();
        assert_eq!(s.mining, Mining::BatchHard);
        assert_eq!(s.warmup, 5);
        assert!((s.lr_at(4) - 1e-3).abs() < 1e-12);
        assert!(s.lr_at(50) < 1e-3 && s.lr_at(50) > 1e-5);
        assert!((s.lr_at(100) - 1e-5).abs() < 1e-12);
        assert!(Cli::try_parse_from(["t", "--data", "d", "--out", "r", "--pairs", "p"]).is_err());
    }
}
