//! The embedder architectures the trainer builds in burn. Each outputs raw features; [`EmbedNet::embed`]
//! L2-normalises them, inside the graph, so the exported file gives unit vectors too.

pub mod dlib_resnet;
pub mod mobilefacenet;

use burn::module::Module;
use burn::prelude::*;

pub use dlib_resnet::DlibResnetNet;
pub use mobilefacenet::{MobileFaceNet, MobileFaceNetConfig};

/// Which network a run trains, with its shape; stored in every checkpoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "arch", rename_all = "kebab-case")]
pub enum ArchConfig {
    Mobilefacenet(MobileFaceNetConfig),
    /// dlib's ResNet (150x150, 128-d), fine-tuned from its published weights.
    DlibResnet,
}

impl ArchConfig {
    pub fn name(&self) -> &'static str {
        match self {
            ArchConfig::Mobilefacenet(_) => "mobilefacenet",
            ArchConfig::DlibResnet => "dlib-resnet",
        }
    }

    /// Chip side the network takes.
    pub fn input(&self) -> usize {
        match self {
            ArchConfig::Mobilefacenet(c) => c.input,
            ArchConfig::DlibResnet => crate::import::dlib::resnet::INPUT_SIZE,
        }
    }

    pub fn embedding(&self) -> usize {
        match self {
            ArchConfig::Mobilefacenet(c) => c.embedding,
            ArchConfig::DlibResnet => crate::import::dlib::resnet::EMBEDDING_DIM,
        }
    }
}

/// A network that maps normalised chips `[n, 3, s, s]` to features `[n, dim]`.
pub trait EmbedNet: Module + Clone + std::fmt::Debug + Send + 'static {
    fn features(&self, x: Tensor<4>) -> Tensor<2>;

    /// Unit-length embeddings: FaceNet's constraint `||f(x)|| = 1`.
    fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        l2_normalise(self.features(x))
    }
}

impl EmbedNet for MobileFaceNet {
    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        MobileFaceNet::features(self, x)
    }
}

impl EmbedNet for DlibResnetNet {
    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        DlibResnetNet::features(self, x)
    }
}

/// Rows divided by their L2 norm (with a small floor so a zero row stays finite).
pub fn l2_normalise(x: Tensor<2>) -> Tensor<2> {
    let norm = (x.clone().powi_scalar(2).sum_dim(1) + 1e-10).sqrt();
    x / norm
}
