//! dlib's face-recognition ResNet (`anet_type` of dlib's `examples/dnn_face_recognition_ex.cpp`):
//! the expected architecture, and a parser that reads `dlib_face_recognition_resnet_model_v1.dat`
//! against it, layer by layer, following each layer type's `serialize()` in dlib/dnn.
//!
//! A dlib network file is the loss layer, then the nested `add_layer`/`add_tag_layer`/
//! `add_skip_layer` wrappers from the outermost in: each writes its version number, then its inner
//! network, then (for `add_layer`) its own layer's details and state. So the file holds all the
//! wrapper versions first (outer to inner), then the input layer, then each layer's details from the
//! input outwards. Tags carry no ids in the file: the architecture below supplies them.

use super::serialize::{Cursor, DecodeError, Tensor};

/// One layer of the expected architecture, in forward order (input side first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spec {
    Conv {
        filters: usize,
        size: usize,
        stride: usize,
    },
    Affine,
    Relu,
    MaxPool {
        size: usize,
        stride: usize,
    },
    /// `size == 0`: `avg_pool_everything`.
    AvgPool {
        size: usize,
        stride: usize,
    },
    Tag(u8),
    Skip(u8),
    AddPrev(u8),
    FcNoBias {
        outputs: usize,
    },
}

/// Input side length of `input_rgb_image_sized<150>`.
pub const INPUT_SIZE: usize = 150;
/// Output dimension of `fc_no_bias<128>`.
pub const EMBEDDING_DIM: usize = 128;

/// `block<N,affine,stride>`: con(stride), affine, relu, con(1), affine.
fn block(out: &mut Vec<Spec>, n: usize, stride: usize) {
    out.extend([
        Spec::Conv {
            filters: n,
            size: 3,
            stride,
        },
        Spec::Affine,
        Spec::Relu,
        Spec::Conv {
            filters: n,
            size: 3,
            stride: 1,
        },
        Spec::Affine,
    ]);
}

/// `ares<N>`: relu(add_prev1(block<N,1>(tag1(x)))).
fn ares(out: &mut Vec<Spec>, n: usize) {
    out.push(Spec::Tag(1));
    block(out, n, 1);
    out.extend([Spec::AddPrev(1), Spec::Relu]);
}

/// `ares_down<N>`: relu(add_prev2(avg_pool<2,2,2,2>(skip1(tag2(block<N,2>(tag1(x))))))).
fn ares_down(out: &mut Vec<Spec>, n: usize) {
    out.push(Spec::Tag(1));
    block(out, n, 2);
    out.extend([
        Spec::Tag(2),
        Spec::Skip(1),
        Spec::AvgPool { size: 2, stride: 2 },
        Spec::AddPrev(2),
        Spec::Relu,
    ]);
}

/// `anet_type` below the loss, input side first.
pub fn anet_type() -> Vec<Spec> {
    let mut s = vec![
        Spec::Conv {
            filters: 32,
            size: 7,
            stride: 2,
        },
        Spec::Affine,
        Spec::Relu,
        Spec::MaxPool { size: 3, stride: 2 },
    ];
    // alevel4 .. alevel0
    for _ in 0..3 {
        ares(&mut s, 32);
    }
    ares_down(&mut s, 64);
    for _ in 0..3 {
        ares(&mut s, 64);
    }
    for n in [128, 256] {
        ares_down(&mut s, n);
        for _ in 0..2 {
            ares(&mut s, n);
        }
    }
    ares_down(&mut s, 256);
    s.push(Spec::AvgPool { size: 0, stride: 1 });
    s.push(Spec::FcNoBias {
        outputs: EMBEDDING_DIM,
    });
    s
}

/// A convolution with dlib's cross-correlation semantics. `weights` is `[filters, channels, size, size]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub filters: usize,
    pub channels: usize,
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A pooling window; `size == 0` pools the whole input (`*_pool_everything`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
}

/// A parsed layer, in forward order.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    Conv(Conv),
    /// Per-channel `x * gamma + beta` (dlib's `affine_` in CONV_MODE: inference batch norm).
    Affine {
        gamma: Vec<f32>,
        beta: Vec<f32>,
    },
    Relu,
    MaxPool(Pool),
    AvgPool(Pool),
    /// Identity that marks its output for a later `AddPrev`/`Skip` with the same id.
    Tag(u8),
    /// Replaces the running tensor with the output of the most recent `Tag` with this id.
    Skip(u8),
    /// Adds the output of the most recent `Tag` with this id, zero-extending the smaller tensor.
    AddPrev(u8),
    /// `out[j] = sum_i x[i] * weights[i * outputs + j]` (dlib stores `[inputs, outputs]`), no bias.
    Fc {
        inputs: usize,
        outputs: usize,
        weights: Vec<f32>,
    },
}

/// The parsed network.
#[derive(Clone, Debug, PartialEq)]
pub struct DlibResnet {
    /// `input_rgb_image_sized`'s channel means (R, G, B); the input is `(p - mean) / 256`.
    pub mean: [f32; 3],
    pub input_size: usize,
    pub layers: Vec<Layer>,
    /// `loss_metric_`'s training settings (informational).
    pub margin: f32,
    pub distance_threshold: f32,
}

/// A parse failure: which part of the network, and the decoding error (with its byte offset).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {cause}")]
pub struct ParseError {
    /// e.g. "layer 5 of 130 (con 32 3x3 stride 1)" or "the loss layer".
    pub location: String,
    pub cause: DecodeError,
}

impl Spec {
    fn describe(&self) -> String {
        match *self {
            Spec::Conv {
                filters,
                size,
                stride,
            } => format!("con {filters} {size}x{size} stride {stride}"),
            Spec::Affine => "affine".into(),
            Spec::Relu => "relu".into(),
            Spec::MaxPool { size, stride } => format!("max_pool {size}x{size} stride {stride}"),
            Spec::AvgPool { size: 0, .. } => "avg_pool_everything".into(),
            Spec::AvgPool { size, stride } => format!("avg_pool {size}x{size} stride {stride}"),
            Spec::Tag(id) => format!("tag{id}"),
            Spec::Skip(id) => format!("skip{id}"),
            Spec::AddPrev(id) => format!("add_prev{id}"),
            Spec::FcNoBias { outputs } => format!("fc_no_bias {outputs}"),
        }
    }

    /// Layers wrapped in `add_layer` (the rest are `add_tag_layer`/`add_skip_layer`).
    fn is_add_layer(&self) -> bool {
        !matches!(self, Spec::Tag(_) | Spec::Skip(_))
    }
}

/// dlib's default padding: none for strided windows, "same" otherwise.
fn default_padding(size: usize, stride: usize) -> usize {
    if stride != 1 { 0 } else { size / 2 }
}

/// Output length of a window over `len` inputs, as dlib computes it; `None` if the window does
/// not fit.
fn window_out(len: usize, size: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = len + 2 * padding;
    (padded >= size && stride > 0).then(|| (padded - size) / stride + 1)
}

/// Tensor shape (channels, rows, columns) during parsing; batch is always 1.
type Shape = [usize; 3];

/// Reads `bytes` (a whole .dat file) as dlib's `anet_type`.
pub fn parse(bytes: &[u8]) -> Result<DlibResnet, ParseError> {
    let specs = anet_type();
    let n = specs.len();
    let mut c = Cursor::new(bytes);
    let at = |location: String| {
        move |source: DecodeError| ParseError {
            location,
            cause: source,
        }
    };
    let layer_name = |i: usize| format!("layer {} of {n} ({})", i + 1, specs[i].describe());

    // The loss layer: add_loss_layer version, then loss_metric_.
    let loss = || "the loss layer (loss_metric)".to_string();
    let version = c.i32("the add_loss_layer version").map_err(at(loss()))?;
    if version != 1 {
        return Err(at(loss())(c.error(
            "the add_loss_layer version",
            format!("expected 1, found {version} (is this a dlib network file?)"),
        )));
    }
    let tag_at = c.offset();
    let tag = c.string("the loss layer's type tag").map_err(at(loss()))?;
    let (margin, distance_threshold) = match tag.as_str() {
        "loss_metric_2" => (
            c.finite_f32("loss_metric margin").map_err(at(loss()))?,
            c.finite_f32("loss_metric distance threshold")
                .map_err(at(loss()))?,
        ),
        "loss_metric_" => (0.1, 0.75),
        other => {
            return Err(ParseError {
                location: loss(),
                cause: DecodeError {
                    offset: tag_at,
                    expected: "the loss layer's type tag".into(),
                    problem: format!(
                        "found {other:?}, but dlib's face-recognition ResNet ends in loss_metric_ \
                         (this is a different dlib network; use dlib_face_recognition_resnet_model_v1.dat)"
                    ),
                },
            });
        }
    };

    // Wrapper versions, outermost first.
    let mut versions = vec![0i32; n];
    for i in (0..n).rev() {
        let spec = &specs[i];
        let what = "the layer wrapper's version";
        let v = c.i32(what).map_err(at(layer_name(i)))?;
        let ok = match (spec.is_add_layer(), i) {
            (true, 0) => (2..=3).contains(&v),
            (true, _) => (1..=2).contains(&v),
            (false, _) => v == 1,
        };
        if !ok {
            return Err(at(layer_name(i))(c.error(
                what,
                format!(
                    "version {v} is not valid here: the file's layer structure differs from dlib's face-recognition ResNet"
                ),
            )));
        }
        versions[i] = v;
    }

    // The input layer.
    let input = || "the input layer (input_rgb_image_sized)".to_string();
    c.expect_tag("input_rgb_image_sized", "the input layer's type tag")
        .map_err(at(input()))?;
    let mut mean = [0f32; 3];
    for (m, name) in mean.iter_mut().zip(["avg_red", "avg_green", "avg_blue"]) {
        *m = c.finite_f32(name).map_err(at(input()))?;
    }
    for name in ["input rows", "input columns"] {
        let v = c.u64(name).map_err(at(input()))?;
        if v != INPUT_SIZE as u64 {
            return Err(at(input())(
                c.error(name, format!("expected {INPUT_SIZE}, found {v}")),
            ));
        }
    }

    // Each layer's details and add_layer state, input side first, tracking the tensor shape.
    let mut shape: Shape = [3, INPUT_SIZE, INPUT_SIZE];
    let mut tags: Vec<(u8, Shape)> = Vec::new();
    let mut layers = Vec::with_capacity(n);
    for (i, spec) in specs.iter().enumerate() {
        let mut p = LayerParser {
            c: &mut c,
            location: layer_name(i),
        };
        let layer = p.layer(spec, &mut shape, &mut tags)?;
        if spec.is_add_layer() {
            p.add_layer_state(i == 0, versions[i])?;
        }
        layers.push(layer);
    }
    if shape != [EMBEDDING_DIM, 1, 1] {
        return Err(ParseError {
            location: "the network output".into(),
            cause: c.error(
                "the output shape",
                format!("expected {EMBEDDING_DIM}x1x1, the layers give {shape:?}"),
            ),
        });
    }
    c.expect_end("the end of the network file")
        .map_err(at("after the last layer".into()))?;
    Ok(DlibResnet {
        mean,
        input_size: INPUT_SIZE,
        layers,
        margin,
        distance_threshold,
    })
}

struct LayerParser<'c, 'a> {
    c: &'c mut Cursor<'a>,
    location: String,
}

impl LayerParser<'_, '_> {
    fn wrap(&self, source: DecodeError) -> ParseError {
        ParseError {
            location: self.location.clone(),
            cause: source,
        }
    }

    fn fail(&self, what: &str, problem: impl Into<String>) -> ParseError {
        self.wrap(self.c.error(what, problem))
    }

    fn i32(&mut self, what: &str) -> Result<i32, ParseError> {
        self.c.i32(what).map_err(|e| self.wrap(e))
    }
    fn i64(&mut self, what: &str) -> Result<i64, ParseError> {
        self.c.i64(what).map_err(|e| self.wrap(e))
    }
    fn u64(&mut self, what: &str) -> Result<u64, ParseError> {
        self.c.u64(what).map_err(|e| self.wrap(e))
    }
    fn f64(&mut self, what: &str) -> Result<f64, ParseError> {
        self.c.f64(what).map_err(|e| self.wrap(e))
    }
    fn bool(&mut self, what: &str) -> Result<bool, ParseError> {
        self.c.bool(what).map_err(|e| self.wrap(e))
    }
    fn tensor(&mut self, what: &str) -> Result<Tensor, ParseError> {
        self.c.tensor(what).map_err(|e| self.wrap(e))
    }
    fn alias(&mut self, what: &str) -> Result<[usize; 4], ParseError> {
        self.c.alias_tensor(what).map_err(|e| self.wrap(e))
    }

    /// Reads the type tag and returns it; it must be one of `accepted`.
    fn tag(&mut self, accepted: &[&str]) -> Result<String, ParseError> {
        let at = self.c.offset();
        let tag = self
            .c
            .string("the layer's type tag")
            .map_err(|e| self.wrap(e))?;
        if accepted.contains(&tag.as_str()) {
            Ok(tag)
        } else {
            Err(self.wrap(DecodeError {
                offset: at,
                expected: "the layer's type tag".into(),
                problem: format!(
                    "expected {}, found {tag:?}: the file's layers differ from dlib's face-recognition ResNet",
                    accepted.join(" or ")
                ),
            }))
        }
    }

    /// An integer field that must equal what the architecture says.
    fn expect_i64(&mut self, what: &str, want: usize) -> Result<(), ParseError> {
        let v = self.i64(what)?;
        if v != want as i64 {
            return Err(self.fail(what, format!("expected {want}, found {v}")));
        }
        Ok(())
    }

    fn expect_i32(&mut self, what: &str, want: usize) -> Result<(), ParseError> {
        let v = self.i32(what)?;
        if i64::from(v) != want as i64 {
            return Err(self.fail(what, format!("expected {want}, found {v}")));
        }
        Ok(())
    }

    fn expect_alias(&mut self, what: &str, want: [usize; 4]) -> Result<(), ParseError> {
        let got = self.alias(what)?;
        if got != want {
            return Err(self.fail(what, format!("expected shape {want:?}, found {got:?}")));
        }
        Ok(())
    }

    /// A parameter tensor that must hold exactly `len` finite values.
    fn params(&mut self, len: usize) -> Result<Vec<f32>, ParseError> {
        let what = "the layer's parameter tensor";
        let t = self.tensor(what)?;
        if t.len() != len {
            return Err(self.fail(what, format!("expected {len} values, found {}", t.len())));
        }
        if let Some(i) = t.data.iter().position(|x| !x.is_finite()) {
            return Err(self.fail(what, format!("parameter {i} is not finite ({})", t.data[i])));
        }
        Ok(t.data)
    }

    /// The learning-rate and weight-decay multipliers: training settings, read and dropped.
    fn multipliers(&mut self, count: usize) -> Result<(), ParseError> {
        for _ in 0..count {
            self.f64("a learning-rate or weight-decay multiplier")?;
        }
        Ok(())
    }

    /// The state `add_layer` writes after the layer's details (gradients and caches, all dropped).
    fn add_layer_state(&mut self, over_input: bool, version: i32) -> Result<(), ParseError> {
        self.bool("add_layer this_layer_setup_called")?;
        self.bool("add_layer gradient_input_is_stale")?;
        self.bool("add_layer get_output_and_gradient_input_disabled")?;
        self.tensor("add_layer x_grad")?;
        self.tensor("add_layer cached_output")?;
        if over_input {
            self.tensor("add_layer grad_final")?;
            if version >= 3 {
                self.c
                    .u32("add_layer sample_expansion_factor")
                    .map_err(|e| self.wrap(e))?;
            }
        } else if version == 2 {
            self.tensor("add_layer params_grad")?;
        }
        Ok(())
    }

    fn layer(
        &mut self,
        spec: &Spec,
        shape: &mut Shape,
        tags: &mut Vec<(u8, Shape)>,
    ) -> Result<Layer, ParseError> {
        let find_tag = |id: u8, this: &Self| {
            tags.iter()
                .rev()
                .find(|(t, _)| *t == id)
                .map(|(_, s)| *s)
                .ok_or_else(|| this.fail("the layer", format!("no tag{id} below this layer")))
        };
        match *spec {
            Spec::Conv {
                filters,
                size,
                stride,
            } => {
                let conv = self.conv(filters, size, stride, shape[0])?;
                let out = |len| window_out(len, size, stride, conv.padding);
                match (out(shape[1]), out(shape[2])) {
                    (Some(h), Some(w)) => *shape = [filters, h, w],
                    _ => {
                        return Err(self.fail(
                            "the layer",
                            format!("a {size}x{size} filter does not fit a {shape:?} input"),
                        ));
                    }
                }
                Ok(Layer::Conv(conv))
            }
            Spec::Affine => self.affine(shape[0]),
            Spec::Relu => {
                let tag = self.tag(&["relu_", "relu_2"])?;
                if tag == "relu_2" && self.bool("relu disabled")? {
                    return Err(self.fail("relu disabled", "a disabled relu is not supported"));
                }
                Ok(Layer::Relu)
            }
            Spec::MaxPool { size, stride } => {
                self.tag(&["max_pool_2"])?;
                let pool = self.pool(size, stride)?;
                *shape = self.pooled(*shape, pool)?;
                Ok(Layer::MaxPool(pool))
            }
            Spec::AvgPool { size, stride } => {
                self.tag(&["avg_pool_2"])?;
                let pool = self.pool(size, stride)?;
                *shape = self.pooled(*shape, pool)?;
                Ok(Layer::AvgPool(pool))
            }
            Spec::Tag(id) => {
                tags.push((id, *shape));
                Ok(Layer::Tag(id))
            }
            Spec::Skip(id) => {
                *shape = find_tag(id, self)?;
                Ok(Layer::Skip(id))
            }
            Spec::AddPrev(id) => {
                self.tag(&["add_prev_"])?;
                let other = find_tag(id, self)?;
                for (d, o) in shape.iter_mut().zip(other) {
                    *d = (*d).max(o);
                }
                Ok(Layer::AddPrev(id))
            }
            Spec::FcNoBias { outputs } => {
                let inputs = shape.iter().product::<usize>();
                let fc = self.fc(inputs, outputs)?;
                *shape = [outputs, 1, 1];
                Ok(fc)
            }
        }
    }

    /// `con_` (versions 4 to 6).
    fn conv(
        &mut self,
        filters: usize,
        size: usize,
        stride: usize,
        channels: usize,
    ) -> Result<Conv, ParseError> {
        let tag = self.tag(&["con_4", "con_5", "con_6"])?;
        let what = "the layer's parameter tensor";
        let params = self.tensor(what)?;
        self.expect_i64("con num_filters", filters)?;
        self.expect_i64("con nr", size)?;
        self.expect_i64("con nc", size)?;
        self.expect_i32("con stride_y", stride)?;
        self.expect_i32("con stride_x", stride)?;
        let padding = default_padding(size, stride);
        self.expect_i32("con padding_y", padding)?;
        self.expect_i32("con padding_x", padding)?;
        self.expect_alias("con filters", [filters, channels, size, size])?;
        let biases = self.alias("con biases")?;
        self.multipliers(4)?;
        let use_bias = if tag == "con_4" {
            true
        } else {
            self.bool("con use_bias")?
        };
        if tag == "con_6" && self.bool("con use_relu")? {
            return Err(self.fail(
                "con use_relu",
                "a convolution with a fused relu is not part of this network",
            ));
        }
        let want_bias = if use_bias {
            [1, filters, 1, 1]
        } else {
            [0, 0, 0, 0]
        };
        if biases != want_bias {
            return Err(self.fail(
                "con biases",
                format!("expected shape {want_bias:?}, found {biases:?}"),
            ));
        }
        let n_weights = filters * channels * size * size;
        let n_bias = if use_bias { filters } else { 0 };
        if params.len() != n_weights + n_bias {
            return Err(self.fail(
                what,
                format!(
                    "expected {} values ({n_weights} weights + {n_bias} biases), found {}",
                    n_weights + n_bias,
                    params.len()
                ),
            ));
        }
        if let Some(i) = params.data.iter().position(|x| !x.is_finite()) {
            return Err(self.fail(what, format!("parameter {i} is not finite")));
        }
        let mut weights = params.data;
        let mut bias = weights.split_off(n_weights);
        if !use_bias {
            bias = vec![0.0; filters];
        }
        Ok(Conv {
            filters,
            channels,
            size,
            stride,
            padding,
            weights,
            bias,
        })
    }

    /// `affine_` in CONV_MODE (per-channel scale and shift).
    fn affine(&mut self, channels: usize) -> Result<Layer, ParseError> {
        let tag = self.tag(&["affine_", "affine_2"])?;
        let mut params = self.params(2 * channels)?;
        self.expect_alias("affine gamma", [1, channels, 1, 1])?;
        self.expect_alias("affine beta", [1, channels, 1, 1])?;
        let mode = self.i32("affine mode")?;
        if mode != 0 {
            return Err(self.fail(
                "affine mode",
                format!("expected CONV_MODE (0), found {mode}"),
            ));
        }
        if tag == "affine_2" && self.bool("affine disabled")? {
            return Err(self.fail("affine disabled", "a disabled affine is not supported"));
        }
        let beta = params.split_off(channels);
        Ok(Layer::Affine {
            gamma: params,
            beta,
        })
    }

    /// `max_pool_2`/`avg_pool_2` fields after the tag.
    fn pool(&mut self, size: usize, stride: usize) -> Result<Pool, ParseError> {
        self.expect_i64("pool nr", size)?;
        self.expect_i64("pool nc", size)?;
        self.expect_i32("pool stride_y", stride)?;
        self.expect_i32("pool stride_x", stride)?;
        let padding = default_padding(size, stride);
        self.expect_i32("pool padding_y", padding)?;
        self.expect_i32("pool padding_x", padding)?;
        Ok(Pool {
            size,
            stride,
            padding,
        })
    }

    fn pooled(&self, shape: Shape, pool: Pool) -> Result<Shape, ParseError> {
        if pool.size == 0 {
            return Ok([shape[0], 1, 1]);
        }
        let out = |len| window_out(len, pool.size, pool.stride, pool.padding);
        match (out(shape[1]), out(shape[2])) {
            (Some(h), Some(w)) => Ok([shape[0], h, w]),
            _ => Err(self.fail(
                "the layer",
                format!("a {0}x{0} window does not fit a {shape:?} input", pool.size),
            )),
        }
    }

    /// `fc_` (versions 2 and 3) in FC_NO_BIAS mode.
    fn fc(&mut self, inputs: usize, outputs: usize) -> Result<Layer, ParseError> {
        let tag = self.tag(&["fc_2", "fc_3"])?;
        let n_out = self.u64("fc num_outputs")?;
        if n_out != outputs as u64 {
            return Err(self.fail(
                "fc num_outputs",
                format!("expected {outputs}, found {n_out}"),
            ));
        }
        let n_in = self.u64("fc num_inputs")?;
        if n_in != inputs as u64 {
            return Err(self.fail(
                "fc num_inputs",
                format!("expected {inputs} (the previous layer's output size), found {n_in}"),
            ));
        }
        let weights = self.params(inputs * outputs)?;
        self.expect_alias("fc weights", [inputs, outputs, 1, 1])?;
        let biases = self.alias("fc biases")?;
        if biases.iter().product::<usize>() != 0 {
            return Err(self.fail(
                "fc biases",
                format!("fc_no_bias must have no bias, found shape {biases:?}"),
            ));
        }
        let mode = self.i32("fc bias mode")?;
        if mode != 1 {
            return Err(self.fail(
                "fc bias mode",
                format!("expected FC_NO_BIAS (1), found {mode}"),
            ));
        }
        self.multipliers(4)?;
        if tag == "fc_3" {
            self.bool("fc use_bias")?;
        }
        Ok(Layer::Fc {
            inputs,
            outputs,
            weights,
        })
    }
}

/// Parameter and multiply-accumulate counts of a parsed network (for the README).
pub fn cost(net: &DlibResnet) -> (usize, usize) {
    let mut params = 0;
    let mut macs = 0;
    let mut shape: Shape = [3, net.input_size, net.input_size];
    let mut tags: Vec<(u8, Shape)> = Vec::new();
    for layer in &net.layers {
        match layer {
            Layer::Conv(c) => {
                let out = |len| window_out(len, c.size, c.stride, c.padding).unwrap_or(0);
                shape = [c.filters, out(shape[1]), out(shape[2])];
                params += c.weights.len() + c.bias.len();
                macs += c.weights.len() * shape[1] * shape[2];
            }
            Layer::Affine { gamma, beta } => params += gamma.len() + beta.len(),
            Layer::MaxPool(p) | Layer::AvgPool(p) => {
                if p.size == 0 {
                    shape = [shape[0], 1, 1];
                } else {
                    let out = |len| window_out(len, p.size, p.stride, p.padding).unwrap_or(0);
                    shape = [shape[0], out(shape[1]), out(shape[2])];
                }
            }
            Layer::Tag(id) => tags.push((*id, shape)),
            Layer::Skip(id) => {
                if let Some((_, s)) = tags.iter().rev().find(|(t, _)| t == id) {
                    shape = *s;
                }
            }
            Layer::AddPrev(id) => {
                if let Some((_, s)) = tags.iter().rev().find(|(t, _)| t == id) {
                    for (d, o) in shape.iter_mut().zip(s) {
                        *d = (*d).max(*o);
                    }
                }
            }
            Layer::Fc { weights, .. } => {
                params += weights.len();
                macs += weights.len();
            }
            Layer::Relu => {}
        }
    }
    (params, macs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_matches_dlib_counts() {
        let s = anet_type();
        let count = |f: fn(&Spec) -> bool| s.iter().filter(|x| f(x)).count();
        // As counted in dlib_face_recognition_resnet_model_v1.dat's type tags.
        assert_eq!(count(|x| matches!(x, Spec::Conv { .. })), 29);
        assert_eq!(count(|x| matches!(x, Spec::Affine)), 29);
        assert_eq!(count(|x| matches!(x, Spec::Relu)), 29);
        assert_eq!(count(|x| matches!(x, Spec::AddPrev(_))), 14);
        assert_eq!(count(|x| matches!(x, Spec::AvgPool { .. })), 5);
        assert_eq!(s.len(), 130);
    }

    #[test]
    fn window_sizes_follow_dlib() {
        assert_eq!(window_out(150, 7, 2, 0), Some(72));
        assert_eq!(window_out(72, 3, 2, 0), Some(35));
        // The 3x3-vs-4x4 case of add_prev.
        assert_eq!(window_out(8, 3, 2, 0), Some(3));
        assert_eq!(window_out(8, 2, 2, 0), Some(4));
        assert_eq!(window_out(2, 3, 2, 0), None);
    }
}
