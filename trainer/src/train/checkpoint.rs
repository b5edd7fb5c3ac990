//! Checkpoints: everything a run needs to resume or export, in one file written atomically.
//!
//! Layout: magic `LWCKPT01`, u32 header length, the JSON header ([`Header`]: architecture, chip,
//! step, settings, last validation), u64 length + burn's record of the model, u64 length + the
//! optimizer's record, then the sha256 of everything before it. A checkpoint that is truncated,
//! damaged or for another network is refused with an error naming the file, never a panic.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use sha2::{Digest, Sha256};

use super::arch::ArchConfig;
use super::command::Settings;
use super::validate::Validation;

const MAGIC: &[u8; 8] = b"LWCKPT01";
pub const FILE_NAME: &str = "checkpoint.lwck";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a lanewatch trainer checkpoint (wrong magic bytes)")]
    NotACheckpoint { path: PathBuf },
    #[error(
        "checkpoint {path} is truncated or corrupt ({why}); resume from an earlier copy or train again"
    )]
    Corrupt { path: PathBuf, why: String },
    #[error("checkpoint {path} does not fit this network: {why}")]
    Mismatch { path: PathBuf, why: String },
}

/// What a checkpoint says about itself, besides the weights.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    pub arch: ArchConfig,
    pub chip_size: usize,
    pub chip_padding: f64,
    /// Steps completed.
    pub step: u64,
    pub settings: Settings,
    /// The latest validation, if the run had validation pairs.
    pub validation: Option<Validation>,
}

/// A checkpoint as read from disk: header and the two burn records.
pub struct Checkpoint {
    pub path: PathBuf,
    pub header: Header,
    model: Vec<u8>,
    optimizer: Vec<u8>,
}

impl Checkpoint {
    /// Encodes and writes (temporary file, fsync, rename) `model` and `optim` under `header`.
    pub fn write<M: Module>(
        path: &Path,
        header: &Header,
        model: &M,
        optim: &ModuleOptimizer,
    ) -> anyhow::Result<()> {
        let header_json = serde_json::to_vec(header)?;
        // `valid()` first: batch norm's running statistics are updated lazily and only a synced
        // snapshot records their current values.
        let model_bytes = model
            .valid()
            .into_record()
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("cannot encode the model weights: {e:?}"))?;
        let optim_bytes = optim
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("cannot encode the optimizer state: {e:?}"))?;
        let mut out = MAGIC.to_vec();
        out.extend((header_json.len() as u32).to_le_bytes());
        out.extend(&header_json);
        for part in [&model_bytes[..], &optim_bytes[..]] {
            out.extend((part.len() as u64).to_le_bytes());
            out.extend(part);
        }
        let digest = Sha256::digest(&out);
        out.extend(digest);
        lanewatch::fsio::write_atomically(path, &out)
            .map_err(|e| anyhow::anyhow!("cannot write checkpoint {}: {e}", path.display()))
    }

    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let corrupt = |why: &str| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            why: why.to_string(),
        };
        if !bytes.starts_with(MAGIC) {
            if MAGIC.starts_with(bytes) {
                return Err(corrupt("the file ends inside its magic bytes"));
            }
            return Err(CheckpointError::NotACheckpoint {
                path: path.to_path_buf(),
            });
        }
        let Some(body_len) = bytes.len().checked_sub(32).filter(|&n| n >= MAGIC.len()) else {
            return Err(corrupt("the file is shorter than its checksum"));
        };
        let (body, digest) = bytes.split_at(body_len);
        if Sha256::digest(body).as_slice() != digest {
            return Err(corrupt("its sha256 does not match its content"));
        }
        let mut rest = &body[MAGIC.len()..];
        let mut take = |n: usize, what: &str| -> Result<&[u8], CheckpointError> {
            let (a, b) = rest
                .split_at_checked(n)
                .ok_or_else(|| corrupt(&format!("the {what} runs past the end")))?;
            rest = b;
            Ok(a)
        };
        let header_len = u32::from_le_bytes(take(4, "header length")?.try_into().expect("4"));
        let header: Header = serde_json::from_slice(take(header_len as usize, "header")?)
            .map_err(|e| corrupt(&format!("unreadable header: {e}")))?;
        let mut part = |what: &str| -> Result<Vec<u8>, CheckpointError> {
            let n = u64::from_le_bytes(take(8, what)?.try_into().expect("8"));
            let n = usize::try_from(n).map_err(|_| corrupt(&format!("the {what} is too large")))?;
            Ok(take(n, what)?.to_vec())
        };
        let model = part("model record")?;
        let optimizer = part("optimizer record")?;
        Ok(Checkpoint {
            path: path.to_path_buf(),
            header,
            model,
            optimizer,
        })
    }

    /// `model` (built from `self.header.arch`) with the checkpoint's weights.
    pub fn load_model<M: Module>(&self, model: M) -> Result<M, CheckpointError> {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.model.clone()))
            .map_err(|e| self.corrupt(format!("unreadable model record: {e:?}")))?;
        model
            .try_load_record(record)
            .map_err(|e| CheckpointError::Mismatch {
                path: self.path.clone(),
                why: format!("{e:?}"),
            })
    }

    pub fn load_optimizer(
        &self,
        optim: ModuleOptimizer,
    ) -> Result<ModuleOptimizer, CheckpointError> {
        optim
            .from_bytes(Bytes::from_bytes_vec(self.optimizer.clone()))
            .map_err(|e| self.corrupt(format!("unreadable optimizer record: {e:?}")))
    }

    fn corrupt(&self, why: String) -> CheckpointError {
        CheckpointError::Corrupt {
            path: self.path.clone(),
            why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::arch::{EmbedNet, MobileFaceNet, MobileFaceNetConfig};
    use crate::train::command::Settings;
    use crate::train::data::augment::Augment;
    use crate::train::loss::Mining;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::prelude::*;

    fn probe<M: EmbedNet>(m: &M, device: &Device) -> Vec<f32> {
        let x = Tensor::<4>::from_data(
            TensorData::new(
                (0..2 * 3 * 32 * 32)
                    .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
                    .collect::<Vec<f32>>(),
                [2, 3, 32, 32],
            ),
            device,
        );
        m.valid()
            .features(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn weights_running_statistics_and_adam_state_survive_a_round_trip() {
        let cfg = MobileFaceNetConfig {
            input: 32,
            width: 0.25,
            embedding: 8,
        };
        let base = Device::flex();
        let ad = base.clone().autodiff();
        let mut model = MobileFaceNet::new(&cfg, &ad);
        let mut optim = AdamConfig::new().init();
        let x = || {
            Tensor::<4>::from_data(
                TensorData::new(
                    (0..4 * 3 * 32 * 32)
                        .map(|i| ((i % 29) as f32 - 14.0) / 14.0)
                        .collect::<Vec<f32>>(),
                    [4, 3, 32, 32],
                ),
                &ad,
            )
        };
        let step = |model: MobileFaceNet, optim: &mut ModuleOptimizer| {
            let loss = model.embed(x()).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            optim.step(1e-2, model, grads)
        };
        model = step(model, &mut optim);
        let header = Header {
            arch: ArchConfig::Mobilefacenet(cfg.clone()),
            chip_size: 32,
            chip_padding: 0.25,
            step: 1,
            settings: Settings {
                steps: 2,
                p: 2,
                k: 2,
                min_images: 2,
                margin: 0.2,
                mining: Mining::SemiHard,
                hard_share: 0.0,
                lr: 1e-2,
                weight_decay: 0.0,
                warmup: 0,
                seed: 0,
                augment: Augment::NONE,
                validate_every: 1,
                checkpoint_every: 1,
            },
            validation: None,
        };
        let path = std::env::temp_dir().join(format!("lw-ckpt-rt-{}.lwck", std::process::id()));
        Checkpoint::write(&path, &header, &model, &optim).unwrap();
        let ckpt = Checkpoint::read(&path).unwrap();
        let loaded = ckpt.load_model(MobileFaceNet::new(&cfg, &ad)).unwrap();
        assert_eq!(
            probe(&model, &base),
            probe(&loaded, &base),
            "weights or running statistics lost"
        );
        let mut optim2 = ckpt.load_optimizer(AdamConfig::new().init()).unwrap();
        let a = step(model, &mut optim);
        let b = step(loaded, &mut optim2);
        assert_eq!(probe(&a, &base), probe(&b, &base), "Adam state lost");
        std::fs::remove_file(&path).unwrap();
    }
}
