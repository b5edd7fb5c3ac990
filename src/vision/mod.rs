//! Face vision: the ONNX model runtime and its contract, detection, alignment and embedding.

pub mod align;
pub mod contract;
<<<<<<< HEAD
pub mod embed;
=======
pub mod geometry;
pub mod image;
>>>>>>> align
pub mod landmarks;
pub mod model;
pub mod onnx_writer;
