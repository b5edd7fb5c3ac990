//! Face vision: the ONNX model runtime and its contract, detection, alignment and embedding.

pub mod contract;
pub mod detect;
pub mod landmarks;
pub mod model;
pub mod onnx_writer;
