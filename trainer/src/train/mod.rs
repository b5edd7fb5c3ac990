//! `trainer train`: FaceNet-style training (Schroff et al., 2015) of the embedder the boxes run: a
//! CNN whose unit-length output is trained with the triplet loss over triplets mined online in P×K
//! batches, on burn (CPU by default; `vulkan` and `cuda` cargo features for GPUs).

pub mod arch;
pub mod checkpoint;
pub mod command;
pub mod data;
pub mod loss;
pub mod progress;
pub mod rng;
pub mod run;
pub mod sampler;
pub mod validate;

pub use command::TrainArgs;
