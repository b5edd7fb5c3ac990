//! `trainer import mtcnn`: facenet-pytorch 2.6.0's P-, R- and O-Net state dicts to three ONNX files.
//!
//! The architecture is facenet-pytorch's `models/mtcnn.py`. What the graphs change, and why:
//! - The input is raw RGB pixels in 0..=255 (contract mean 0, std 1). facenet-pytorch feeds
//!   `(p - 127.5) * 0.0078125`; that affine map is folded into conv1 (no padding anywhere, so the
//!   fold is exact) instead of costing two passes over the image.
//! - R-/O-Net flatten after `permute(0, 3, 2, 1)` (W, H, C order, a leftover of the TensorFlow
//!   port); the dense weights are permuted once here so the graph flattens plain NCHW.
//! - PReLU is `Max(x, a*x)` when every slope is at most 1, `Min(x, a*x)` when every slope is at
//!   least 1 (both exact, and about twice as fast in tract as its PReLU), else
//!   `x + (a - 1) * Min(x, 0)`.
//! - Outputs, in order: `probs` (softmax over [background, face], written as a Sigmoid of the
//!   logit difference, which tract runs much faster), `boxes` (4 regression offsets), and for O-Net
//!   `landmarks` (5 x then 5 y, relative to the box).

use std::path::Path;

use anyhow::Context;
use lanewatch::vision::contract::{Contract, InputSpec, Role};
use lanewatch::vision::model::ModelFile;
use lanewatch::vision::onnx_writer::{Attr, GraphBuilder};
use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::mtcnn_reference as reference;
use super::torch_pt::{PtError, StateDict};

/// facenet-pytorch's input normalisation: `(p - MEAN) * SCALE`.
pub const MEAN: f32 = 127.5;
pub const SCALE: f32 = 0.0078125;
pub const SOURCE: &str = "PyPI facenet-pytorch==2.6.0";
pub const LICENCE: &str = "MIT";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    P,
    R,
    O,
}

/// One layer of a network body, named as in the PyTorch state dict.
#[derive(Clone, Copy, Debug)]
enum Layer {
    Conv {
        name: &'static str,
        cin: usize,
        cout: usize,
        k: usize,
    },
    Prelu {
        name: &'static str,
        c: usize,
    },
    /// Max pool, stride `s`, ceil mode (as `nn.MaxPool2d(k, s, ceil_mode=True)`).
    Pool {
        k: usize,
        s: usize,
    },
    /// `permute(0, 3, 2, 1)` then flatten, on a `[N, c, h, w]` map.
    Flatten {
        c: usize,
        h: usize,
        w: usize,
    },
    Dense {
        name: &'static str,
        fin: usize,
        fout: usize,
    },
}

/// An output head: a 1x1 conv (P-Net) or dense layer (R/O-Net) on the body's last features.
#[derive(Clone, Copy, Debug)]
struct Head {
    name: &'static str,
    output: &'static str,
    fout: usize,
    softmax: bool,
}

use Layer::*;

const PNET: &[Layer] = &[
    Conv {
        name: "conv1",
        cin: 3,
        cout: 10,
        k: 3,
    },
    Prelu {
        name: "prelu1",
        c: 10,
    },
    Pool { k: 2, s: 2 },
    Conv {
        name: "conv2",
        cin: 10,
        cout: 16,
        k: 3,
    },
    Prelu {
        name: "prelu2",
        c: 16,
    },
    Conv {
        name: "conv3",
        cin: 16,
        cout: 32,
        k: 3,
    },
    Prelu {
        name: "prelu3",
        c: 32,
    },
];
const PNET_HEADS: &[Head] = &[
    Head {
        name: "conv4_1",
        output: "probs",
        fout: 2,
        softmax: true,
    },
    Head {
        name: "conv4_2",
        output: "boxes",
        fout: 4,
        softmax: false,
    },
];

const RNET: &[Layer] = &[
    Conv {
        name: "conv1",
        cin: 3,
        cout: 28,
        k: 3,
    },
    Prelu {
        name: "prelu1",
        c: 28,
    },
    Pool { k: 3, s: 2 },
    Conv {
        name: "conv2",
        cin: 28,
        cout: 48,
        k: 3,
    },
    Prelu {
        name: "prelu2",
        c: 48,
    },
    Pool { k: 3, s: 2 },
    Conv {
        name: "conv3",
        cin: 48,
        cout: 64,
        k: 2,
    },
    Prelu {
        name: "prelu3",
        c: 64,
    },
    Flatten { c: 64, h: 3, w: 3 },
    Dense {
        name: "dense4",
        fin: 576,
        fout: 128,
    },
    Prelu {
        name: "prelu4",
        c: 128,
    },
];
const RNET_HEADS: &[Head] = &[
    Head {
        name: "dense5_1",
        output: "probs",
        fout: 2,
        softmax: true,
    },
    Head {
        name: "dense5_2",
        output: "boxes",
        fout: 4,
        softmax: false,
    },
];

const ONET: &[Layer] = &[
    Conv {
        name: "conv1",
        cin: 3,
        cout: 32,
        k: 3,
    },
    Prelu {
        name: "prelu1",
        c: 32,
    },
    Pool { k: 3, s: 2 },
    Conv {
        name: "conv2",
        cin: 32,
        cout: 64,
        k: 3,
    },
    Prelu {
        name: "prelu2",
        c: 64,
    },
    Pool { k: 3, s: 2 },
    Conv {
        name: "conv3",
        cin: 64,
        cout: 64,
        k: 3,
    },
    Prelu {
        name: "prelu3",
        c: 64,
    },
    Pool { k: 2, s: 2 },
    Conv {
        name: "conv4",
        cin: 64,
        cout: 128,
        k: 2,
    },
    Prelu {
        name: "prelu4",
        c: 128,
    },
    Flatten { c: 128, h: 3, w: 3 },
    Dense {
        name: "dense5",
        fin: 1152,
        fout: 256,
    },
    Prelu {
        name: "prelu5",
        c: 256,
    },
];
const ONET_HEADS: &[Head] = &[
    Head {
        name: "dense6_1",
        output: "probs",
        fout: 2,
        softmax: true,
    },
    Head {
        name: "dense6_2",
        output: "boxes",
        fout: 4,
        softmax: false,
    },
    Head {
        name: "dense6_3",
        output: "landmarks",
        fout: 10,
        softmax: false,
    },
];

impl Net {
    pub const ALL: [Net; 3] = [Net::P, Net::R, Net::O];

    /// facenet-pytorch's weights file name.
    pub fn weights_file(self) -> &'static str {
        match self {
            Net::P => "pnet.pt",
            Net::R => "rnet.pt",
            Net::O => "onet.pt",
        }
    }

    /// The ONNX file name the box looks for.
    pub fn model_file(self) -> &'static str {
        match self {
            Net::P => "mtcnn_pnet.onnx",
            Net::R => "mtcnn_rnet.onnx",
            Net::O => "mtcnn_onet.onnx",
        }
    }

    pub fn role(self) -> Role {
        match self {
            Net::P => Role::MtcnnPnet,
            Net::R => Role::MtcnnRnet,
            Net::O => Role::MtcnnOnet,
        }
    }

    /// Fixed input side, or `None` for the fully convolutional P-Net.
    pub fn input_size(self) -> Option<usize> {
        match self {
            Net::P => None,
            Net::R => Some(24),
            Net::O => Some(48),
        }
    }

    fn layers(self) -> (&'static [Layer], &'static [Head]) {
        match self {
            Net::P => (PNET, PNET_HEADS),
            Net::R => (RNET, RNET_HEADS),
            Net::O => (ONET, ONET_HEADS),
        }
    }

    pub fn contract(self) -> Contract {
        let size = self.input_size();
        Contract {
            role: self.role(),
            name: format!("{}-facenet-pytorch-2.6.0", self.role()),
            source: SOURCE.into(),
            licence: LICENCE.into(),
            precision: "fp32".into(),
            input: InputSpec {
                height: size,
                width: size,
                color: "RGB".into(),
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            embedding: None,
        }
    }
}

/// Builds the ONNX model for `net` from its state dict. Every tensor of the file must be used.
pub fn build(net: Net, sd: &StateDict) -> Result<pb::ModelProto, PtError> {
    let (layers, heads) = net.layers();
    let mut used: Vec<String> = Vec::new();
    let mut get = |name: String, shape: &[usize]| -> Result<Vec<f32>, PtError> {
        let t = sd.get(&name, shape)?;
        used.push(name);
        Ok(t.data.clone())
    };
    let side = net.input_size().map(|s| s as i64);
    let mut g = GraphBuilder::new(
        &format!("mtcnn_{}", net.weights_file().trim_end_matches(".pt")),
        "image",
        &[
            if net == Net::P { Some(1) } else { None },
            Some(3),
            side,
            side,
        ],
    );
    let mut x = "image".to_string();
    let mut first_conv = true;
    for layer in layers {
        x = match *layer {
            Conv { name, cin, cout, k } => {
                let mut w = get(format!("{name}.weight"), &[cout, cin, k, k])?;
                let mut b = get(format!("{name}.bias"), &[cout])?;
                if first_conv {
                    fold_normalisation(&mut w, &mut b, cin * k * k);
                    first_conv = false;
                }
                conv(&mut g, &x, name, &w, &b, [cout, cin, k, k])
            }
            Prelu { name, c } => {
                let a = get(format!("{name}.weight"), &[c])?;
                prelu(&mut g, &x, name, &a, is_conv_prelu(layers, name))
            }
            Pool { k, s } => g.node(
                "MaxPool",
                &[&x],
                &[
                    ("kernel_shape", Attr::Ints(vec![k as i64; 2])),
                    ("strides", Attr::Ints(vec![s as i64; 2])),
                    ("ceil_mode", Attr::Int(1)),
                ],
            ),
            Flatten { .. } => g.node("Flatten", &[&x], &[("axis", Attr::Int(1))]),
            Dense { name, fin, fout } => {
                let w = get(format!("{name}.weight"), &[fout, fin])?;
                let b = get(format!("{name}.bias"), &[fout])?;
                let w = match previous_flatten(layers, name) {
                    Some((c, h, wd)) => permute_whc_to_chw(&w, fout, c, h, wd),
                    None => w,
                };
                dense(&mut g, &x, name, &w, &b, fin, fout)
            }
        };
    }
    let dims_of = |fout: usize| -> Vec<Option<i64>> {
        if net == Net::P {
            vec![Some(1), Some(fout as i64), None, None]
        } else {
            vec![None, Some(fout as i64)]
        }
    };
    let fin = match layers.last() {
        Some(Prelu { c, .. }) => *c,
        _ => unreachable!("every body ends with a PReLU"),
    };
    for head in heads {
        let mut w = get(
            format!("{}.weight", head.name),
            &if net == Net::P {
                vec![head.fout, fin, 1, 1]
            } else {
                vec![head.fout, fin]
            },
        )?;
        let mut b = get(format!("{}.bias", head.name), &[head.fout])?;
        if head.softmax {
            two_class_softmax_as_sigmoid(&mut w, &mut b);
        }
        let y = if net == Net::P {
            conv(&mut g, &x, head.name, &w, &b, [head.fout, fin, 1, 1])
        } else {
            dense(&mut g, &x, head.name, &w, &b, fin, head.fout)
        };
        let out = head.output.to_string();
        if head.softmax {
            g.node_with_outputs("Sigmoid", &[&y], std::slice::from_ref(&out), &[]);
        } else {
            g.node_with_outputs("Identity", &[&y], std::slice::from_ref(&out), &[]);
        }
        g.output(&out, &dims_of(head.fout));
    }
    if let Some(extra) = sd.names().find(|n| !used.iter().any(|u| u == n)) {
        return Err(PtError {
            path: sd.path.clone(),
            what: format!(
                "unexpected tensor `{extra}`: this is not facenet-pytorch's {}",
                net.weights_file()
            ),
        });
    }
    Ok(g.into_model(&net.contract(), "lanewatch-trainer"))
}

/// Rewrites a 2-output layer `[z0, z1]` (rows of `w`, entries of `b`) as `[z0 - z1, z1 - z0]`, so
/// that a Sigmoid after it gives exactly the softmax of `[z0, z1]` (`softmax_0 = 1 / (1 + e^(z1 - z0))`).
/// tract runs a Softmax across the channel axis of P-Net's maps slowly (44% of P-Net's time); an
/// element-wise Sigmoid is cheap.
fn two_class_softmax_as_sigmoid(w: &mut [f32], b: &mut [f32]) {
    assert_eq!(b.len(), 2, "a softmax head has two outputs");
    let per_row = w.len() / 2;
    let (r0, r1) = w.split_at_mut(per_row);
    for (a, c) in r0.iter_mut().zip(r1.iter_mut()) {
        let d = *a - *c;
        (*a, *c) = (d, -d);
    }
    let d = b[0] - b[1];
    b.copy_from_slice(&[d, -d]);
}

fn is_conv_prelu(layers: &[Layer], prelu_name: &str) -> bool {
    // A PReLU acts on a 4-D map unless a Flatten came before it.
    let at = layers
        .iter()
        .position(|l| matches!(l, Prelu { name, .. } if *name == prelu_name));
    let flatten = layers.iter().position(|l| matches!(l, Flatten { .. }));
    match (at, flatten) {
        (Some(a), Some(f)) => a < f,
        _ => true,
    }
}

fn previous_flatten(layers: &[Layer], dense_name: &str) -> Option<(usize, usize, usize)> {
    let at = layers
        .iter()
        .position(|l| matches!(l, Dense { name, .. } if *name == dense_name))?;
    match layers.get(at.checked_sub(1)?) {
        Some(Flatten { c, h, w }) => Some((*c, *h, *w)),
        _ => None,
    }
}

/// conv1 on `(p - MEAN) * SCALE` equals conv1' on `p` with `w' = w * SCALE` and
/// `b' = b - MEAN * SCALE * sum(w)` per output channel (valid padding: every tap sees a pixel).
fn fold_normalisation(w: &mut [f32], b: &mut [f32], per_out: usize) {
    for (o, bias) in b.iter_mut().enumerate() {
        let taps = &mut w[o * per_out..(o + 1) * per_out];
        let sum: f64 = taps.iter().map(|v| *v as f64).sum();
        *bias = (*bias as f64 - (MEAN * SCALE) as f64 * sum) as f32;
        for t in taps {
            *t *= SCALE;
        }
    }
}

/// Reorders dense weights whose inputs are in torch's (w, h, c) order into NCHW flatten (c, h, w).
fn permute_whc_to_chw(w: &[f32], fout: usize, c: usize, h: usize, wd: usize) -> Vec<f32> {
    let fin = c * h * wd;
    let mut out = vec![0.0; w.len()];
    for o in 0..fout {
        for ci in 0..c {
            for hi in 0..h {
                for wi in 0..wd {
                    out[o * fin + (ci * h + hi) * wd + wi] = w[o * fin + (wi * h + hi) * c + ci];
                }
            }
        }
    }
    out
}

fn conv(
    g: &mut GraphBuilder,
    x: &str,
    name: &str,
    w: &[f32],
    b: &[f32],
    shape: [usize; 4],
) -> String {
    let wn = g.initializer_f32(&format!("{name}.weight"), &shape, w);
    let bn = g.initializer_f32(&format!("{name}.bias"), &shape[..1], b);
    g.node(
        "Conv",
        &[x, &wn, &bn],
        &[(
            "kernel_shape",
            Attr::Ints(vec![shape[2] as i64, shape[3] as i64]),
        )],
    )
}

fn dense(
    g: &mut GraphBuilder,
    x: &str,
    name: &str,
    w: &[f32],
    b: &[f32],
    fin: usize,
    fout: usize,
) -> String {
    // MatMul wants [fin, fout]; torch stores [fout, fin].
    let mut wt = vec![0.0; w.len()];
    for o in 0..fout {
        for i in 0..fin {
            wt[i * fout + o] = w[o * fin + i];
        }
    }
    let wn = g.initializer_f32(&format!("{name}.weight"), &[fin, fout], &wt);
    let bn = g.initializer_f32(&format!("{name}.bias"), &[fout], b);
    let y = g.node("MatMul", &[x, &wn], &[]);
    g.node("Add", &[&y, &bn], &[])
}

fn prelu(g: &mut GraphBuilder, x: &str, name: &str, a: &[f32], rank4: bool) -> String {
    let dims: Vec<usize> = if rank4 {
        vec![a.len(), 1, 1]
    } else {
        vec![a.len()]
    };
    // a <= 1: x >= 0 gives a*x <= x, x < 0 gives a*x >= x; so max(x, a*x) = prelu(x).
    // a >= 1: the same argument the other way round gives min(x, a*x).
    let bound = if a.iter().all(|&s| s <= 1.0) {
        Some("Max")
    } else if a.iter().all(|&s| s >= 1.0) {
        Some("Min")
    } else {
        None
    };
    if let Some(op) = bound {
        let an = g.initializer_f32(&format!("{name}.slope"), &dims, a);
        let ax = g.node("Mul", &[x, &an], &[]);
        g.node(op, &[x, &ax], &[])
    } else {
        // Mixed slopes: prelu(x) = x + (a - 1) * min(x, 0), three cheap element-wise passes.
        let am1: Vec<f32> = a.iter().map(|v| v - 1.0).collect();
        let an = g.initializer_f32(&format!("{name}.slope_minus_one"), &dims, &am1);
        let zero = g.initializer_f32(&format!("{name}.zero"), &[1], &[0.0]);
        let neg_part = g.node("Min", &[x, &zero], &[]);
        let scaled = g.node("Mul", &[&neg_part, &an], &[]);
        g.node("Add", &[x, &scaled], &[])
    }
}

/// The largest difference between tract running the written file and the plain-Rust reference.
pub struct Parity {
    pub net: Net,
    pub max_abs_err: f32,
}

/// Largest error allowed between tract and the reference.
pub const PARITY_TOLERANCE: f32 = 1e-4;

/// Runs the written file in tract and the reference on one deterministic pseudo-random image and
/// fails unless every output agrees within [`PARITY_TOLERANCE`].
pub fn check_parity(net: Net, sd: &StateDict, model: &Path) -> anyhow::Result<Parity> {
    let (h, w) = match net.input_size() {
        Some(s) => (s, s),
        None => (31, 40),
    };
    let mut state = 0x2545_f491_u32;
    let pixels: Vec<f32> = (0..3 * h * w)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 256) as f32
        })
        .collect();
    let err = max_error(net, sd, model, &[pixels], h, w)?;
    anyhow::ensure!(
        err <= PARITY_TOLERANCE,
        "{}: tract and the reference differ by {err:.2e} (> {PARITY_TOLERANCE:.0e}); the import is wrong",
        model.display()
    );
    Ok(Parity {
        net,
        max_abs_err: err,
    })
}

/// Max abs difference over all outputs between tract (file `model`) and the reference, for a batch
/// of CHW images of raw pixels (0..=255) of size h x w.
pub fn max_error(
    net: Net,
    sd: &StateDict,
    model: &Path,
    images: &[Vec<f32>],
    h: usize,
    w: usize,
) -> anyhow::Result<f32> {
    let file = ModelFile::open(model)?;
    file.expect_role(net.role())?;
    let plan = file.plan(images.len(), h, w)?;
    let mut flat = Vec::with_capacity(images.len() * 3 * h * w);
    for im in images {
        anyhow::ensure!(im.len() == 3 * h * w, "image is not 3x{h}x{w}");
        flat.extend_from_slice(im);
    }
    let input = tract_ndarray::Array4::from_shape_vec((images.len(), 3, h, w), flat)?;
    let outs = plan.run(input.into_tensor())?;
    let mut worst = 0.0f32;
    for (i, im) in images.iter().enumerate() {
        let want = reference::forward(net, sd, im, h, w)?;
        anyhow::ensure!(
            outs.len() == want.len(),
            "tract gave {} outputs, the reference {}",
            outs.len(),
            want.len()
        );
        for (got, want) in outs.iter().zip(&want) {
            let got = got.to_plain_array_view::<f32>()?;
            let per_image = got.len() / images.len();
            let got = got.as_slice().context("non-contiguous output")?;
            let got = &got[i * per_image..(i + 1) * per_image];
            anyhow::ensure!(
                got.len() == want.len(),
                "output sizes differ: {} vs {}",
                got.len(),
                want.len()
            );
            for (a, b) in got.iter().zip(want) {
                worst = worst.max((a - b).abs());
            }
        }
    }
    Ok(worst)
}
