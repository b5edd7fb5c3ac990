//! dlib's face-recognition ResNet (`anet_type`, 29 convolutions, 5.6 M parameters, 150x150) in burn,
//! for fine-tuning from the published weights.
//!
//! The layer list comes from the importer's expected architecture
//! ([`crate::import::dlib::resnet::anet_type`]) so a checkpoint can be rebuilt without the .dat; the
//! weights come from the importer's parser. dlib's quirks are kept: stride-2 convolutions and pools
//! without padding, `add_prev` zero-extending the smaller tensor, `affine` as a per-channel
//! scale+shift (dlib's inference batch norm, trainable here), a bias-free fc stored `[in, out]`.

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

use crate::import::dlib::resnet::{DlibResnet, Layer, Spec, anet_type};
use crate::train::data::augment::{PIXEL_MEAN, PIXEL_STD};

/// One step of the forward pass; convolutions and affines index into the module's vectors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Conv(usize),
    Affine(usize),
    Relu,
    MaxPool { size: usize, stride: usize },
    AvgPool { size: usize, stride: usize },
    GlobalAvgPool,
    Tag(u8),
    Skip(u8),
    AddPrev(u8),
    Fc,
}

/// Per-channel `x * gamma + beta`.
#[derive(Module, Debug)]
pub struct Affine {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct DlibResnetNet {
    pub convs: Vec<Conv2d>,
    pub affines: Vec<Affine>,
    /// `[inputs, outputs]`, as dlib stores it.
    pub fc: Param<Tensor<2>>,
    #[module(skip)]
    pub ops: Vec<Op>,
    /// dlib's input channel means (R, G, B): its input is `(p - mean) / 256`.
    #[module(skip)]
    pub mean: [f32; 3],
}

/// dlib's padding rule: `size / 2` at stride 1, none otherwise.
fn padding(size: usize, stride: usize) -> usize {
    if stride == 1 { size / 2 } else { 0 }
}

impl DlibResnetNet {
    /// The architecture with default-initialised weights (a checkpoint's weights are loaded over
    /// them); the input means are dlib's published ones.
    pub fn new(device: &Device) -> Self {
        let mut convs = Vec::new();
        let mut affines = Vec::new();
        let mut ops = Vec::new();
        let mut channels = 3;
        let mut fc_in = 0;
        let mut fc_out = 0;
        // Channel count at each tag, to follow skips.
        let mut tags: Vec<(u8, usize)> = Vec::new();
        for spec in anet_type() {
            ops.push(match spec {
                Spec::Conv {
                    filters,
                    size,
                    stride,
                } => {
                    let p = padding(size, stride);
                    convs.push(
                        Conv2dConfig::new([channels, filters], [size, size])
                            .with_stride([stride, stride])
                            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                            .init(device),
                    );
                    channels = filters;
                    Op::Conv(convs.len() - 1)
                }
                Spec::Affine => {
                    affines.push(Affine {
                        gamma: Param::from_tensor(Tensor::ones([channels], device)),
                        beta: Param::from_tensor(Tensor::zeros([channels], device)),
                    });
                    Op::Affine(affines.len() - 1)
                }
                Spec::Relu => Op::Relu,
                Spec::MaxPool { size, stride } => Op::MaxPool { size, stride },
                Spec::AvgPool { size: 0, .. } => Op::GlobalAvgPool,
                Spec::AvgPool { size, stride } => Op::AvgPool { size, stride },
                Spec::Tag(id) => {
                    tags.push((id, channels));
                    Op::Tag(id)
                }
                Spec::Skip(id) => {
                    if let Some(&(_, c)) = tags.iter().rev().find(|(t, _)| *t == id) {
                        channels = c;
                    }
                    Op::Skip(id)
                }
                Spec::AddPrev(id) => {
                    if let Some(&(_, c)) = tags.iter().rev().find(|(t, _)| *t == id) {
                        channels = channels.max(c);
                    }
                    Op::AddPrev(id)
                }
                Spec::FcNoBias { outputs } => {
                    fc_in = channels;
                    fc_out = outputs;
                    Op::Fc
                }
            });
        }
        let bound = (1.0 / fc_in.max(1) as f64).sqrt();
        DlibResnetNet {
            convs,
            affines,
            fc: Param::from_tensor(Tensor::random(
                [fc_in, fc_out],
                burn::tensor::Distribution::Uniform(-bound, bound),
                device,
            )),
            ops,
            mean: [122.782, 117.001, 104.298],
        }
    }

    /// The network with dlib's published weights (parsed by `trainer import dlib`'s parser).
    pub fn from_dlib(net: &DlibResnet, device: &Device) -> anyhow::Result<Self> {
        let mut model = Self::new(device);
        model.mean = net.mean;
        let (mut ci, mut ai) = (0, 0);
        for layer in &net.layers {
            match layer {
                Layer::Conv(c) => {
                    let conv = model.convs.get_mut(ci).ok_or_else(|| {
                        anyhow::anyhow!("more convolutions in the .dat than in anet_type")
                    })?;
                    anyhow::ensure!(
                        conv.weight.dims() == [c.filters, c.channels, c.size, c.size]
                            && conv.stride == [c.stride, c.stride]
                            && padding(c.size, c.stride) == c.padding,
                        "convolution {ci} of the .dat ({}x{}x{}x{} stride {} padding {}) does not match anet_type",
                        c.filters,
                        c.channels,
                        c.size,
                        c.size,
                        c.stride,
                        c.padding
                    );
                    conv.weight = Param::from_tensor(Tensor::from_data(
                        TensorData::new(c.weights.clone(), [c.filters, c.channels, c.size, c.size]),
                        device,
                    ));
                    conv.bias = Some(Param::from_tensor(Tensor::from_data(
                        TensorData::new(c.bias.clone(), [c.filters]),
                        device,
                    )));
                    ci += 1;
                }
                Layer::Affine { gamma, beta } => {
                    let a = model.affines.get_mut(ai).ok_or_else(|| {
                        anyhow::anyhow!("more affine layers in the .dat than in anet_type")
                    })?;
                    anyhow::ensure!(
                        a.gamma.dims() == [gamma.len()],
                        "affine {ai}: channel count differs"
                    );
                    a.gamma = Param::from_tensor(Tensor::from_data(
                        TensorData::new(gamma.clone(), [gamma.len()]),
                        device,
                    ));
                    a.beta = Param::from_tensor(Tensor::from_data(
                        TensorData::new(beta.clone(), [beta.len()]),
                        device,
                    ));
                    ai += 1;
                }
                Layer::Fc {
                    inputs,
                    outputs,
                    weights,
                } => {
                    anyhow::ensure!(model.fc.dims() == [*inputs, *outputs], "fc shape differs");
                    model.fc = Param::from_tensor(Tensor::from_data(
                        TensorData::new(weights.clone(), [*inputs, *outputs]),
                        device,
                    ));
                }
                _ => {}
            }
        }
        anyhow::ensure!(
            ci == model.convs.len() && ai == model.affines.len(),
            "the .dat holds {ci} convolutions and {ai} affines, anet_type {} and {}",
            model.convs.len(),
            model.affines.len()
        );
        Ok(model)
    }

    /// dlib's raw 128-d descriptor of chips normalised as every trained network's input,
    /// `(p - 127.5) / 128`: the first step turns that into dlib's `(p - mean) / 256`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let device = x.device();
        let scale = PIXEL_STD / 256.0;
        let shift: Vec<f32> = self.mean.iter().map(|m| (PIXEL_MEAN - m) / 256.0).collect();
        let mut x = x * scale
            + Tensor::<1>::from_data(TensorData::new(shift, [3]), &device).reshape([1, 3, 1, 1]);
        let mut tags: Vec<(u8, Tensor<4>)> = Vec::new();
        let tagged = |tags: &[(u8, Tensor<4>)], id: u8| {
            tags.iter()
                .rev()
                .find(|(t, _)| *t == id)
                .map(|(_, a)| a.clone())
                .expect("anet_type tags every id before using it")
        };
        for op in &self.ops {
            x = match *op {
                Op::Conv(i) => self.convs[i].forward(x),
                Op::Affine(i) => {
                    let a = &self.affines[i];
                    let c = a.gamma.dims()[0];
                    x * a.gamma.val().reshape([1, c, 1, 1]) + a.beta.val().reshape([1, c, 1, 1])
                }
                Op::Relu => relu(x),
                Op::MaxPool { size, stride } => max_pool2d(
                    x,
                    MaxPoolOptions::new([size, size]).with_stride([stride, stride]),
                ),
                Op::AvgPool { size, stride } => avg_pool2d(
                    x,
                    AvgPoolOptions::new([size, size]).with_stride([stride, stride]),
                ),
                Op::GlobalAvgPool => {
                    // A pool over the whole map (not `mean_dim`, which burn-onnx cannot export).
                    let [_, _, h, w] = x.dims();
                    avg_pool2d(x, AvgPoolOptions::new([h, w]))
                }
                Op::Tag(id) => {
                    tags.push((id, x.clone()));
                    x
                }
                Op::Skip(id) => tagged(&tags, id),
                Op::AddPrev(id) => add_zero_extended(x, tagged(&tags, id)),
                Op::Fc => {
                    let [n, c, h, w] = x.dims();
                    let flat = x.reshape([n, c * h * w]);
                    let y = flat.matmul(self.fc.val());
                    let out = y.dims()[1];
                    y.reshape([n, out, 1, 1])
                }
            };
        }
        let [n, c, _, _] = x.dims();
        x.reshape([n, c])
    }
}

/// dlib's `add_prev` for tensors of different shapes: each is zero-padded (channels, then bottom and
/// right) to the larger size before adding.
fn add_zero_extended(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let [_, ca, ha, wa] = a.dims();
    let [_, cb, hb, wb] = b.dims();
    let (c, h, w) = (ca.max(cb), ha.max(hb), wa.max(wb));
    let grow = |t: Tensor<4>, tc: usize, th: usize, tw: usize| {
        if (tc, th, tw) == (c, h, w) {
            return t;
        }
        let [n, ..] = t.dims();
        let device = t.device();
        let mut t = t;
        if tc < c {
            t = Tensor::cat(vec![t, Tensor::zeros([n, c - tc, th, tw], &device)], 1);
        }
        if th < h {
            t = Tensor::cat(vec![t, Tensor::zeros([n, c, h - th, tw], &device)], 2);
        }
        if tw < w {
            t = Tensor::cat(vec![t, Tensor::zeros([n, c, h, w - tw], &device)], 3);
        }
        t
    };
    grow(a, ca, ha, wa) + grow(b, cb, hb, wb)
}
