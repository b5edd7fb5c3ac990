//! `trainer import dlib`: dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`)
//! to a lanewatch ONNX embedder.

pub mod landmarks;
pub mod serialize;
