//! The training loop: data → P×K batches → triplet loss with online mining → Adam, with validation,
//! checkpoints, resume and progress.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use lanewatch::vision::align::ChipSpec;

use super::arch::{ArchConfig, DlibResnetNet, EmbedNet, MobileFaceNet};
use super::checkpoint::{self, Checkpoint, CheckpointError, Header};
use super::command::{Backend, Settings, TrainArgs};
use super::data::Dataset;
use super::data::augment::render;
use super::data::chips::{self, Chips};
use super::loss::{StepStats, hard_share, triplet_loss};
use super::progress::Progress;
use super::rng::Rng;
use super::sampler::{Pool, Sampler};
use super::validate::{self, Validation};
use crate::eval::lfw::PairsFile;

/// Validation pairs, if any.
pub enum ValidationSource {
    /// A standard pairs file over an LFW-layout folder.
    Pairs { pairs: PathBuf, images: PathBuf },
    /// This share of the training identities (2+ images) held out, pairs made from them.
    HeldOut(f64),
}

/// Everything a run needs; `trainer train` builds it from its arguments, tests build it directly.
pub struct Job {
    pub data: PathBuf,
    pub run: PathBuf,
    pub models_dir: PathBuf,
    pub arch: ArchConfig,
    /// Starting weights for `ArchConfig::DlibResnet` (dlib's .dat); not needed to resume.
    pub dlib_dat: Option<PathBuf>,
    pub chip_padding: f64,
    pub settings: Settings,
    pub validation: Option<ValidationSource>,
    pub resume: bool,
    /// Stop after this step as if interrupted (checkpoint written); `--resume` continues.
    pub stop_at: Option<u64>,
    pub threads: usize,
    pub backend: Backend,
    pub quiet: bool,
}

impl Job {
    pub fn from_args(a: &TrainArgs) -> anyhow::Result<Job> {
        let validation = match (&a.pairs, &a.images) {
            (Some(pairs), Some(images)) => Some(ValidationSource::Pairs {
                pairs: pairs.clone(),
                images: images.clone(),
            }),
            _ if a.hold_out > 0.0 => {
                anyhow::ensure!(a.hold_out < 1.0, "--hold-out must be below 1");
                Some(ValidationSource::HeldOut(a.hold_out))
            }
            _ => None,
        };
        Ok(Job {
            data: a.data.clone(),
            run: a.out.clone(),
            models_dir: a.models_dir.clone(),
            arch: a.arch_config()?,
            dlib_dat: a.dlib_dat.clone(),
            chip_padding: a.chip_padding,
            settings: a.settings(),
            validation,
            resume: a.resume,
            stop_at: a.stop_at,
            threads: a.threads,
            backend: a.backend,
            quiet: a.quiet,
        })
    }
}

/// What a run did: per-step figures of this process's steps, every validation, the data counts.
#[derive(Debug)]
pub struct Outcome {
    pub first_step: u64,
    pub history: Vec<StepStats>,
    pub validations: Vec<Validation>,
    pub checkpoint: PathBuf,
    pub images: usize,
    pub images_without_face: usize,
    pub identities_used: usize,
    pub identities_skipped: usize,
}

/// The burn device for a backend; GPU backends only in builds with their cargo feature.
pub fn device(backend: Backend) -> anyhow::Result<Device> {
    match backend {
        Backend::Cpu => Ok(Device::flex()),
        #[cfg(feature = "vulkan")]
        Backend::Vulkan => Ok(Device::vulkan(Default::default())),
        #[cfg(feature = "cuda")]
        Backend::Cuda => Ok(Device::cuda(0)),
        #[allow(unreachable_patterns)]
        other => anyhow::bail!(
            "this trainer was built without the {other:?} backend: rebuild with `cargo build --release -p trainer --features {}`",
            format!("{other:?}").to_lowercase()
        ),
    }
}

pub fn run(job: &Job) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&job.run)
        .with_context(|| format!("cannot create the run folder {}", job.run.display()))?;
    // burn's CPU kernels and gemm run on rayon's global pool; a second call keeps the first size.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(job.threads.max(1))
        .build_global();
    let ckpt_path = job.run.join(checkpoint::FILE_NAME);
    let resumed = if job.resume {
        let ckpt = Checkpoint::read(&ckpt_path)?;
        if ckpt.header.arch != job.arch {
            return Err(CheckpointError::Mismatch {
                path: ckpt_path.clone(),
                why: format!(
                    "it holds {:?} but this run asks for {:?}",
                    ckpt.header.arch, job.arch
                ),
            }
            .into());
        }
        Some(ckpt)
    } else {
        None
    };
    // A resumed run keeps its hyper-parameters; only the step count and the cadences may change.
    let settings = match &resumed {
        Some(c) => Settings {
            steps: job.settings.steps,
            validate_every: job.settings.validate_every,
            checkpoint_every: job.settings.checkpoint_every,
            ..c.header.settings.clone()
        },
        None => job.settings.clone(),
    };
    let spec = ChipSpec {
        size: job.arch.input(),
        padding: job.chip_padding,
    };

    let dataset = Dataset::scan(&job.data)?;
    let (train_set, val) = match &job.validation {
        None => (dataset, None),
        Some(ValidationSource::HeldOut(share)) => {
            let (train, held) = dataset.split_identities(*share, settings.seed);
            let pairs = validate::held_out_pairs(&held, settings.seed);
            (train, Some(pairs))
        }
        Some(ValidationSource::Pairs { pairs, images }) => {
            (dataset, Some(PairsFile::read(pairs, images)?))
        }
    };
    // Identities with fewer images than `min_images` are not aligned, only counted. With
    // `min_images == 1` a one-photo identity still trains: its positives are differently augmented
    // views of that photo, and it is a negative for everyone else.
    let min_images = settings.min_images.max(1);
    let singles = train_set
        .identities
        .iter()
        .filter(|i| i.images.len() < min_images)
        .count();
    let train_set = Dataset {
        root: train_set.root,
        identities: train_set
            .identities
            .into_iter()
            .filter(|i| i.images.len() >= min_images)
            .collect(),
    };
    let train_images = train_set.images();
    let val_images = val.as_ref().map(PairsFile::images).unwrap_or_default();
    let mut all_images = train_images.clone();
    all_images.extend(val_images.iter().cloned());
    let cache = chips::cache_path(&job.run, spec);
    let Chips { chips, .. } = {
        let c = chips::align_all(
            &all_images,
            &job.models_dir,
            spec,
            Some(&cache),
            job.threads,
        )?;
        if !job.quiet {
            eprintln!(
                "trainer: {} images ({} from the cache {}), {} without a usable face (left out)",
                c.chips.len(),
                c.cached,
                cache.display(),
                c.without_face()
            );
        }
        c
    };
    let images_without_face = chips[..train_images.len()]
        .iter()
        .filter(|c| c.is_none())
        .count();
    let mut next = 0;
    let images_of: Vec<Vec<usize>> = train_set
        .identities
        .iter()
        .map(|id| {
            let v: Vec<usize> = (next..next + id.images.len()).collect();
            next += id.images.len();
            v
        })
        .collect();
    let mut pool = Pool::new(&images_of, min_images, |j| chips[j].is_some());
    pool.skipped_identities += singles;
    let sampler =
        Sampler::new(&pool, settings.p, settings.k, settings.seed).with_context(|| {
            format!(
                "dataset {}: {} identities with 2+ aligned images",
                job.data.display(),
                pool.identities.len()
            )
        })?;
    if !job.quiet {
        eprintln!(
            "trainer: training on {} identities ({} images); {} identities with fewer than {} aligned images left out; batches of {}x{}",
            pool.identities.len(),
            pool.num_images(),
            pool.skipped_identities,
            min_images,
            sampler.p,
            sampler.k
        );
    }

    let base = device(job.backend)?;
    base.seed(settings.seed);
    let ad = base.clone().autodiff();
    let ctx = Ctx {
        job,
        settings,
        spec,
        chips: &chips,
        pool: &pool,
        sampler: &sampler,
        val: val
            .as_ref()
            .map(|p| (p, &val_images[..], &chips[train_images.len()..])),
        device: ad,
        ckpt_path,
    };
    let mut outcome = match &job.arch {
        ArchConfig::Mobilefacenet(c) => {
            let model = MobileFaceNet::new(c, &ctx.device);
            train_loop(&ctx, model, resumed.as_ref())?
        }
        ArchConfig::DlibResnet => {
            let model = match (&job.dlib_dat, &resumed) {
                (Some(dat), None) => {
                    DlibResnetNet::from_dlib(&crate::import::dlib::load(dat)?, &ctx.device)?
                }
                // The checkpoint's weights replace these.
                (_, Some(_)) => DlibResnetNet::new(&ctx.device),
                (None, None) => anyhow::bail!(
                    "--arch dlib-resnet fine-tunes dlib's published network: give its weights with --dlib-dat dlib_face_recognition_resnet_model_v1.dat"
                ),
            };
            train_loop(&ctx, model, resumed.as_ref())?
        }
    };
    outcome.images = train_images.len();
    outcome.images_without_face = images_without_face;
    outcome.identities_used = pool.identities.len();
    outcome.identities_skipped = pool.skipped_identities;
    Ok(outcome)
}

type ValData<'a> = (&'a PairsFile, &'a [PathBuf], &'a [chips::Chip]);

struct Ctx<'a> {
    job: &'a Job,
    settings: Settings,
    spec: ChipSpec,
    chips: &'a [chips::Chip],
    pool: &'a Pool,
    sampler: &'a Sampler,
    val: Option<ValData<'a>>,
    device: Device,
    ckpt_path: PathBuf,
}

fn validate_now<M: EmbedNet>(
    ctx: &Ctx<'_>,
    model: &M,
    step: u64,
) -> anyhow::Result<Option<Validation>> {
    let Some((pairs, images, chips)) = ctx.val else {
        return Ok(None);
    };
    let inference = model.valid();
    let refs: Vec<&chips::Chip> = chips.iter().collect();
    let emb = validate::embed_chips(
        &inference,
        &refs,
        ctx.spec.size,
        &inference_device(&ctx.device),
    );
    Ok(Some(validate::score(step, pairs, images, emb)?))
}

/// The plain (no autodiff) device under `d`.
fn inference_device(d: &Device) -> Device {
    d.clone().without_autodiff()
}

fn train_loop<M: EmbedNet>(
    ctx: &Ctx<'_>,
    model: M,
    resumed: Option<&Checkpoint>,
) -> anyhow::Result<Outcome> {
    let s = &ctx.settings;
    let mut optim: ModuleOptimizer = AdamConfig::new()
        .with_weight_decay(Some(WeightDecayConfig::new(s.weight_decay as f32)))
        .init();
    let (mut model, first, mut last_val) = match resumed {
        Some(c) => (
            c.load_model(model)?,
            c.header.step,
            c.header.validation.clone(),
        ),
        None => (model, 0, None),
    };
    if let Some(c) = resumed {
        optim = c.load_optimizer(optim)?;
    }
    let progress = Progress::new(first, s.steps, ctx.job.quiet);
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ctx.job.run.join("metrics.jsonl"))
        .context("cannot open metrics.jsonl in the run folder")?;
    let mut validations = Vec::new();
    let mut record_val = |v: Validation,
                          progress: &Progress,
                          metrics: &mut std::fs::File|
     -> anyhow::Result<Validation> {
        progress.note(&format!(
            "validation at step {}: accuracy {:.2}% ± {:.2} on {} pairs, threshold {:.4} (FAR {:.4})",
            v.step,
            100.0 * v.accuracy,
            100.0 * v.std,
            v.pairs,
            v.threshold,
            v.far
        ));
        writeln!(metrics, "{}", serde_json::json!({ "validation": v }))?;
        validations.push(v.clone());
        Ok(v)
    };
    if first == 0
        && let Some(v) = validate_now(ctx, &model, 0)?
    {
        last_val = Some(record_val(v, &progress, &mut metrics)?);
    }
    let header = |step: u64, validation: Option<Validation>| Header {
        arch: ctx.job.arch.clone(),
        chip_size: ctx.spec.size,
        chip_padding: ctx.spec.padding,
        step,
        settings: s.clone(),
        validation,
    };
    let size = ctx.spec.size;
    let per = 3 * size * size;
    let mut history = Vec::new();
    let end = ctx.job.stop_at.map_or(s.steps, |n| n.clamp(first, s.steps));
    for step in first..end {
        let batch = ctx.sampler.batch(ctx.pool, step);
        let mut buf = vec![0.0f32; batch.images.len() * per];
        for (slot, &img) in batch.images.iter().enumerate() {
            let chip = ctx.chips[img]
                .as_ref()
                .expect("the pool holds only aligned images");
            let mut rng = Rng::for_step(s.seed, 0xA06 + slot as u64, step);
            render(
                chip,
                size,
                &s.augment,
                &mut rng,
                &mut buf[slot * per..(slot + 1) * per],
            );
        }
        let n = batch.images.len();
        let x = Tensor::<4>::from_data(TensorData::new(buf, [n, 3, size, size]), &ctx.device);
        let e = model.embed(x);
        let progress_share = step as f64 / s.steps.saturating_sub(1).max(1) as f64;
        let mut mine_rng = Rng::for_step(s.seed, 0x313E, step);
        let (loss, stats) = triplet_loss(
            e,
            &batch.labels,
            s.mining,
            s.margin,
            hard_share(progress_share, s.hard_share),
            &mut mine_rng,
        );
        anyhow::ensure!(
            stats.loss.is_finite(),
            "the loss became {} at step {}: lower --lr",
            stats.loss,
            step + 1
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = s.lr_at(step);
        model = optim.step(lr, model, grads);
        let done = step + 1;
        progress.step(done, &stats, lr);
        writeln!(
            metrics,
            "{}",
            serde_json::json!({ "step": done, "lr": lr, "loss": stats.loss, "active": stats.active,
                "triplets": stats.triplets, "pos_dist": stats.pos_dist, "neg_dist": stats.neg_dist })
        )?;
        history.push(stats);
        if (done.is_multiple_of(s.validate_every) || done == s.steps)
            && let Some(v) = validate_now(ctx, &model, done)?
        {
            last_val = Some(record_val(v, &progress, &mut metrics)?);
        }
        if done.is_multiple_of(s.checkpoint_every) || done == s.steps || done == end {
            Checkpoint::write(
                &ctx.ckpt_path,
                &header(done, last_val.clone()),
                &model,
                &optim,
            )?;
        }
    }
    if first >= s.steps {
        progress.note(&format!(
            "the checkpoint is already at step {first} of {}: nothing to do (raise --steps to train on)",
            s.steps
        ));
    }
    Ok(Outcome {
        first_step: first,
        history,
        validations,
        checkpoint: ctx.ckpt_path.clone(),
        images: 0,
        images_without_face: 0,
        identities_used: 0,
        identities_skipped: 0,
    })
}

/// Used by `trainer export` and tests: the MobileFaceNet of a checkpoint, in inference mode.
pub fn load_mobilefacenet(ckpt: &Checkpoint, device: &Device) -> anyhow::Result<MobileFaceNet> {
    let ArchConfig::Mobilefacenet(cfg) = &ckpt.header.arch else {
        anyhow::bail!(
            "{} holds a {} network, not a MobileFaceNet",
            ckpt.path.display(),
            ckpt.header.arch.name()
        );
    };
    Ok(ckpt.load_model(MobileFaceNet::new(cfg, device))?.valid())
}

/// The dlib ResNet of a checkpoint, in inference mode.
pub fn load_dlib_resnet(ckpt: &Checkpoint, device: &Device) -> anyhow::Result<DlibResnetNet> {
    anyhow::ensure!(
        ckpt.header.arch == ArchConfig::DlibResnet,
        "{} holds a {} network, not dlib's ResNet",
        ckpt.path.display(),
        ckpt.header.arch.name()
    );
    Ok(ckpt.load_model(DlibResnetNet::new(device))?.valid())
}
