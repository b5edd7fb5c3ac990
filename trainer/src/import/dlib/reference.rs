//! An independent forward pass of the parsed dlib ResNet in plain loops (no tract, no ONNX), written
//! from dlib's layer definitions: the yardstick the imported ONNX graph is checked against.
//!
//! Sums are accumulated in f64, so this is at least as accurate as dlib's own float kernels and a
//! parity gap measures the ONNX graph, not this code.

use super::resnet::{Conv, DlibResnet, Layer, Pool};

/// A batch-1 activation tensor: `data[(c * h + y) * w + x]`.
#[derive(Clone, Debug)]
struct Act {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

impl Act {
    fn zeros(c: usize, h: usize, w: usize) -> Act {
        Act {
            c,
            h,
            w,
            data: vec![0.0; c * h * w],
        }
    }
}

/// Runs the network on one RGB image given as three planes (R, G, B) of `size * size` raw pixel
/// values in 0..=255, and returns the 128-d descriptor exactly as dlib's `loss_metric` reports it.
pub fn forward(net: &DlibResnet, rgb_planes: &[f32]) -> anyhow::Result<Vec<f32>> {
    let s = net.input_size;
    anyhow::ensure!(
        rgb_planes.len() == 3 * s * s,
        "the reference forward pass needs 3x{s}x{s} = {} pixel values, got {}",
        3 * s * s,
        rgb_planes.len()
    );
    // input_rgb_image_sized::to_tensor: (pixel - avg) / 256.
    let mut x = Act::zeros(3, s, s);
    for (ch, mean) in net.mean.iter().enumerate() {
        for i in 0..s * s {
            x.data[ch * s * s + i] = (rgb_planes[ch * s * s + i] - mean) / 256.0;
        }
    }
    let mut tags: Vec<(u8, Act)> = Vec::new();
    let tagged = |tags: &[(u8, Act)], id: u8| {
        tags.iter()
            .rev()
            .find(|(t, _)| *t == id)
            .map(|(_, a)| a.clone())
            .ok_or_else(|| anyhow::anyhow!("no tag{id} before a layer that refers to it"))
    };
    for layer in &net.layers {
        x = match layer {
            Layer::Conv(c) => conv(&x, c)?,
            Layer::Affine { gamma, beta } => {
                anyhow::ensure!(gamma.len() == x.c && beta.len() == x.c, "affine size");
                let plane = x.h * x.w;
                for ch in 0..x.c {
                    for v in &mut x.data[ch * plane..(ch + 1) * plane] {
                        *v = *v * gamma[ch] + beta[ch];
                    }
                }
                x
            }
            Layer::Relu => {
                for v in &mut x.data {
                    *v = v.max(0.0);
                }
                x
            }
            Layer::MaxPool(p) => pool(&x, p, true),
            Layer::AvgPool(p) => pool(&x, p, false),
            Layer::Tag(id) => {
                tags.push((*id, x.clone()));
                x
            }
            Layer::Skip(id) => tagged(&tags, *id)?,
            Layer::AddPrev(id) => add_zero_extended(&x, &tagged(&tags, *id)?),
            Layer::Fc {
                inputs,
                outputs,
                weights,
            } => {
                anyhow::ensure!(x.data.len() == *inputs, "fc input size");
                let mut out = vec![0f64; *outputs];
                for (i, xi) in x.data.iter().enumerate() {
                    let row = &weights[i * outputs..(i + 1) * outputs];
                    for (o, wv) in out.iter_mut().zip(row) {
                        *o += f64::from(*xi) * f64::from(*wv);
                    }
                }
                Act {
                    c: *outputs,
                    h: 1,
                    w: 1,
                    data: out.into_iter().map(|v| v as f32).collect(),
                }
            }
        };
    }
    Ok(x.data)
}

/// Output length of a window, as dlib computes it.
fn out_len(len: usize, size: usize, stride: usize, padding: usize) -> anyhow::Result<usize> {
    let padded = len + 2 * padding;
    anyhow::ensure!(
        padded >= size && stride > 0,
        "a window of {size} does not fit {len}"
    );
    Ok((padded - size) / stride + 1)
}

fn conv(x: &Act, c: &Conv) -> anyhow::Result<Act> {
    anyhow::ensure!(x.c == c.channels, "conv input channels");
    let (k, s, p) = (c.size, c.stride, c.padding);
    let oh = out_len(x.h, k, s, p)?;
    let ow = out_len(x.w, k, s, p)?;
    let mut out = Act::zeros(c.filters, oh, ow);
    let mut acc = vec![0f64; oh * ow];
    for f in 0..c.filters {
        acc.fill(f64::from(c.bias[f]));
        for ch in 0..c.channels {
            let plane = &x.data[ch * x.h * x.w..(ch + 1) * x.h * x.w];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = f64::from(c.weights[((f * c.channels + ch) * k + ky) * k + kx]);
                    for oy in 0..oh {
                        // Input row oy*s + ky - p; outside the image counts as zero padding.
                        let Some(iy) = (oy * s + ky).checked_sub(p).filter(|iy| *iy < x.h) else {
                            continue;
                        };
                        let row = &plane[iy * x.w..(iy + 1) * x.w];
                        let arow = &mut acc[oy * ow..(oy + 1) * ow];
                        for (ox, a) in arow.iter_mut().enumerate() {
                            if let Some(ix) = (ox * s + kx).checked_sub(p).filter(|ix| *ix < x.w) {
                                *a += wv * f64::from(row[ix]);
                            }
                        }
                    }
                }
            }
        }
        for (o, a) in out.data[f * oh * ow..(f + 1) * oh * ow]
            .iter_mut()
            .zip(&acc)
        {
            *o = *a as f32;
        }
    }
    Ok(out)
}

/// dlib's pooling; a window of size 0 covers the whole input. Windows only cover real pixels
/// (padding, when present, is excluded from both the max and the average's count).
fn pool(x: &Act, p: &Pool, max: bool) -> Act {
    let (kh, kw, stride, pad) = if p.size == 0 {
        (x.h, x.w, 1, 0)
    } else {
        (p.size, p.size, p.stride, p.padding)
    };
    let oh = (x.h + 2 * pad).saturating_sub(kh) / stride + 1;
    let ow = (x.w + 2 * pad).saturating_sub(kw) / stride + 1;
    let mut out = Act::zeros(x.c, oh, ow);
    for ch in 0..x.c {
        let plane = &x.data[ch * x.h * x.w..(ch + 1) * x.h * x.w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = f32::NEG_INFINITY;
                let mut sum = 0f64;
                let mut n = 0usize;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * stride + ky).checked_sub(pad).filter(|v| *v < x.h);
                        let ix = (ox * stride + kx).checked_sub(pad).filter(|v| *v < x.w);
                        if let (Some(iy), Some(ix)) = (iy, ix) {
                            let v = plane[iy * x.w + ix];
                            best = best.max(v);
                            sum += f64::from(v);
                            n += 1;
                        }
                    }
                }
                out.data[(ch * oh + oy) * ow + ox] = if max {
                    best
                } else {
                    (sum / n.max(1) as f64) as f32
                };
            }
        }
    }
    out
}

/// dlib's `tt::add(dest, src1, src2)` when shapes differ: the output takes the larger size in each
/// dimension and each source contributes zero outside its own extent.
fn add_zero_extended(a: &Act, b: &Act) -> Act {
    let (c, h, w) = (a.c.max(b.c), a.h.max(b.h), a.w.max(b.w));
    let mut out = Act::zeros(c, h, w);
    for src in [a, b] {
        for ch in 0..src.c {
            for y in 0..src.h {
                for x in 0..src.w {
                    out.data[(ch * h + y) * w + x] += src.data[(ch * src.h + y) * src.w + x];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_extended_add_matches_dlib() {
        // 1 channel 3x3 plus 2 channels 4x4: the 3x3-vs-4x4 case with a channel change.
        let a = Act {
            c: 1,
            h: 3,
            w: 3,
            data: (1..=9).map(|v| v as f32).collect(),
        };
        let b = Act {
            c: 2,
            h: 4,
            w: 4,
            data: vec![100.0; 32],
        };
        let o = add_zero_extended(&a, &b);
        assert_eq!((o.c, o.h, o.w), (2, 4, 4));
        assert_eq!(o.data[0], 101.0);
        assert_eq!(o.data[2 * 4 + 2], 109.0);
        assert_eq!(o.data[3], 100.0); // column 3 is outside a
        assert_eq!(o.data[3 * 4], 100.0); // row 3 is outside a
        assert_eq!(o.data[16], 100.0); // channel 1 is outside a
    }

    #[test]
    fn strided_conv_without_padding_by_hand() {
        // 1 input channel 5x5 = 0..25, one 3x3 filter of ones, stride 2, bias 1: 2x2 output.
        let x = Act {
            c: 1,
            h: 5,
            w: 5,
            data: (0..25).map(|v| v as f32).collect(),
        };
        let c = Conv {
            filters: 1,
            channels: 1,
            size: 3,
            stride: 2,
            padding: 0,
            weights: vec![1.0; 9],
            bias: vec![1.0],
        };
        let o = conv(&x, &c).unwrap();
        let window = |y0: usize, x0: usize| -> f32 {
            let mut s = 1.0;
            for y in y0..y0 + 3 {
                for xx in x0..x0 + 3 {
                    s += (y * 5 + xx) as f32;
                }
            }
            s
        };
        assert_eq!(
            o.data,
            vec![window(0, 0), window(0, 2), window(2, 0), window(2, 2)]
        );
    }

    #[test]
    fn padded_conv_treats_outside_as_zero() {
        let x = Act {
            c: 1,
            h: 2,
            w: 2,
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        let c = Conv {
            filters: 1,
            channels: 1,
            size: 3,
            stride: 1,
            padding: 1,
            weights: vec![1.0; 9],
            bias: vec![0.0],
        };
        // Every 3x3 window around a pixel of a 2x2 image covers the whole image.
        assert_eq!(conv(&x, &c).unwrap().data, vec![10.0; 4]);
    }

    #[test]
    fn pools() {
        let x = Act {
            c: 1,
            h: 3,
            w: 3,
            data: vec![1.0, 5.0, 2.0, 0.0, 3.0, 9.0, 4.0, 8.0, 7.0],
        };
        let p = Pool {
            size: 2,
            stride: 2,
            padding: 0,
        };
        assert_eq!(pool(&x, &p, true).data, vec![5.0]);
        assert_eq!(pool(&x, &p, false).data, vec![2.25]);
        let all = Pool {
            size: 0,
            stride: 1,
            padding: 0,
        };
        assert_eq!(pool(&x, &all, false).data, vec![39.0 / 9.0]);
    }
}
