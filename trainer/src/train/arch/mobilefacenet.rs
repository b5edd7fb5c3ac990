//! MobileFaceNet (Chen et al., 2018): a depthwise-separable face embedder, ~1 M parameters at
//! 112x112, ending in a global depthwise ("GDConv") layer instead of average pooling.
//!
//! PReLU is written as `relu(x) - a * relu(-x)` (exact for any slope): burn-onnx cannot export
//! `nn::PRelu`, and tract runs this form about twice as fast as ONNX PRelu.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// The network's shape. `paper()` is the published network; smaller widths and inputs train on a
/// laptop CPU in minutes (the CI test uses one).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MobileFaceNetConfig {
    /// Chip side in pixels; a multiple of 16 (four stride-2 stages).
    pub input: usize,
    /// Channel multiplier over the paper's widths (64/128/512).
    pub width: f32,
    /// Embedding dimension (the paper's 128).
    pub embedding: usize,
}

impl MobileFaceNetConfig {
    pub fn paper() -> Self {
        MobileFaceNetConfig {
            input: 112,
            width: 1.0,
            embedding: 128,
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.input >= 32 && self.input.is_multiple_of(16),
            "the MobileFaceNet input must be a multiple of 16, at least 32 (got {})",
            self.input
        );
        anyhow::ensure!(
            (0.125..=4.0).contains(&self.width),
            "the MobileFaceNet width multiplier must be in 0.125..=4 (got {})",
            self.width
        );
        anyhow::ensure!(
            (2..=4096).contains(&self.embedding),
            "the embedding dimension must be in 2..=4096 (got {})",
            self.embedding
        );
        Ok(())
    }

    /// Scaled channel count, rounded to a multiple of 8 (at least 8).
    fn ch(&self, c: usize) -> usize {
        (((c as f32 * self.width) / 8.0).round() as usize).max(1) * 8
    }
}

/// Per-channel PReLU slopes.
#[derive(Module, Debug)]
pub struct Prelu {
    pub alpha: Param<Tensor<1>>,
}

impl Prelu {
    fn new(channels: usize, device: &Device) -> Self {
        Prelu {
            alpha: Param::from_tensor(Tensor::full([channels], 0.25, device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, c, _, _] = x.dims();
        let a = self.alpha.val().reshape([1, c, 1, 1]);
        relu(x.clone()) - relu(x.neg()) * a
    }
}

/// Convolution (no bias), batch norm, optional PReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    pub act: Option<Prelu>,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        act: bool,
        device: &Device,
    ) -> Self {
        let pad = if kernel == 3 { 1 } else { 0 };
        ConvBn {
            conv: Conv2dConfig::new([cin, cout], [kernel, kernel])
                .with_stride([stride, stride])
                .with_groups(groups)
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(cout).init(device),
            act: act.then(|| Prelu::new(cout, device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.bn.forward(self.conv.forward(x));
        match &self.act {
            Some(a) => a.forward(y),
            None => y,
        }
    }
}

/// Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 linear projection; a shortcut when the
/// shape is kept.
#[derive(Module, Debug)]
pub struct Bottleneck {
    pub expand: ConvBn,
    pub depthwise: ConvBn,
    pub project: ConvBn,
    pub residual: bool,
}

impl Bottleneck {
    fn new(cin: usize, cout: usize, stride: usize, t: usize, device: &Device) -> Self {
        let mid = cin * t;
        Bottleneck {
            expand: ConvBn::new(cin, mid, 1, 1, 1, true, device),
            depthwise: ConvBn::new(mid, mid, 3, stride, mid, true, device),
            project: ConvBn::new(mid, cout, 1, 1, 1, false, device),
            residual: stride == 1 && cin == cout,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self
            .project
            .forward(self.depthwise.forward(self.expand.forward(x.clone())));
        if self.residual { x + y } else { y }
    }
}

#[derive(Module, Debug)]
pub struct MobileFaceNet {
    pub stem: ConvBn,
    pub stem_dw: ConvBn,
    pub blocks: Vec<Bottleneck>,
    pub conv_last: ConvBn,
    /// The global depthwise convolution over the final (input/16)² map: learns where to look,
    /// unlike average pooling.
    pub gdconv: ConvBn,
    pub embed: ConvBn,
}

impl MobileFaceNet {
    pub fn new(cfg: &MobileFaceNetConfig, device: &Device) -> Self {
        let (c64, c128, c512) = (cfg.ch(64), cfg.ch(128), cfg.ch(512));
        // (expansion t, output channels, repeats n, first stride s): the paper's table 1.
        let stages = [
            (2, c64, 5, 2),
            (4, c128, 1, 2),
            (2, c128, 6, 1),
            (4, c128, 1, 2),
            (2, c128, 2, 1),
        ];
        let mut blocks = Vec::new();
        let mut cin = c64;
        for (t, c, n, s) in stages {
            for i in 0..n {
                blocks.push(Bottleneck::new(
                    cin,
                    c,
                    if i == 0 { s } else { 1 },
                    t,
                    device,
                ));
                cin = c;
            }
        }
        let k = cfg.input / 16;
        MobileFaceNet {
            stem: ConvBn::new(3, c64, 3, 2, 1, true, device),
            stem_dw: ConvBn::new(c64, c64, 3, 1, c64, true, device),
            blocks,
            conv_last: ConvBn::new(cin, c512, 1, 1, 1, true, device),
            gdconv: ConvBn::new(c512, c512, k, 1, c512, false, device),
            embed: ConvBn::new(c512, cfg.embedding, 1, 1, 1, false, device),
        }
    }

    /// Raw (not normalised) embeddings of normalised chips `[n, 3, input, input]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem_dw.forward(self.stem.forward(x));
        for b in &self.blocks {
            x = b.forward(x);
        }
        let x = self
            .embed
            .forward(self.gdconv.forward(self.conv_last.forward(x)));
        let [n, c, _, _] = x.dims();
        x.reshape([n, c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_network_has_about_a_million_parameters() {
        let device = Device::flex();
        let net = MobileFaceNet::new(&MobileFaceNetConfig::paper(), &device);
        let n = net.num_params();
        assert!((900_000..1_300_000).contains(&n), "{n} parameters");
        let small = MobileFaceNetConfig {
            input: 32,
            width: 0.25,
            embedding: 16,
        };
        small.check().unwrap();
        let net = MobileFaceNet::new(&small, &device);
        let out = net.features(Tensor::zeros([2, 3, 32, 32], &device));
        assert_eq!(out.dims(), [2, 16]);
        assert!(MobileFaceNetConfig { input: 40, ..small }.check().is_err());
    }
}
