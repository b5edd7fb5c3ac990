//! Face vision: the ONNX model runtime and its contract, detection, alignment and embedding.

pub mod align;
pub mod chipper;
pub mod contract;
pub mod detect;
pub mod embed;
pub mod faces;
pub mod geometry;
pub mod image;
pub mod landmarks;
pub mod model;
pub mod onnx_writer;
pub mod quality;
