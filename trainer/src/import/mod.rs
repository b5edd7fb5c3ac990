//! `trainer import`: published weights in, lanewatch ONNX models out.

pub mod dlib;

pub mod mtcnn;
pub mod mtcnn_reference;
pub mod torch_pt;
