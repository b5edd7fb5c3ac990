//! A plain-Rust forward pass of facenet-pytorch's MTCNN nets, straight over the PyTorch state dict.
//!
//! It follows `models/mtcnn.py` line by line (explicit input normalisation, PyTorch weight layouts,
//! the literal `permute(0, 3, 2, 1)` before the dense layers, PReLU as written) and shares nothing
//! with the ONNX writer in [`super::mtcnn`], so that agreement between the two means something.
//! Sums are accumulated in f64. It is slow and only meant for checking.

use super::mtcnn::Net;
use super::torch_pt::{PtError, StateDict};

/// One image's feature map, CHW.
struct Map {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

impl Map {
    fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }
}

/// The outputs for one CHW image of raw pixels (0..=255), flattened in the ONNX output order:
/// probs, boxes, then landmarks for O-Net. P-Net's are CHW maps.
pub fn forward(
    net: Net,
    sd: &StateDict,
    pixels: &[f32],
    h: usize,
    w: usize,
) -> Result<Vec<Vec<f32>>, PtError> {
    if pixels.len() != 3 * h * w {
        return Err(PtError {
            path: sd.path.clone(),
            what: format!("reference input is {} values, not 3x{h}x{w}", pixels.len()),
        });
    }
    let x = Map {
        c: 3,
        h,
        w,
        data: pixels.iter().map(|p| (p - 127.5) * 0.0078125).collect(),
    };
    match net {
        Net::P => pnet(sd, x),
        Net::R => rnet(sd, x),
        Net::O => onet(sd, x),
    }
}

fn pnet(sd: &StateDict, x: Map) -> Result<Vec<Vec<f32>>, PtError> {
    let x = conv(sd, "conv1", &x, 10, 3)?;
    let x = prelu_map(sd, "prelu1", x)?;
    let x = maxpool_ceil(&x, 2, 2);
    let x = conv(sd, "conv2", &x, 16, 3)?;
    let x = prelu_map(sd, "prelu2", x)?;
    let x = conv(sd, "conv3", &x, 32, 3)?;
    let x = prelu_map(sd, "prelu3", x)?;
    let a = conv(sd, "conv4_1", &x, 2, 1)?;
    let b = conv(sd, "conv4_2", &x, 4, 1)?;
    // Softmax over the channel axis, per pixel.
    let n = a.h * a.w;
    let mut probs = a.data.clone();
    for p in 0..n {
        let (v0, v1) = (a.data[p] as f64, a.data[n + p] as f64);
        let m = v0.max(v1);
        let (e0, e1) = ((v0 - m).exp(), (v1 - m).exp());
        probs[p] = (e0 / (e0 + e1)) as f32;
        probs[n + p] = (e1 / (e0 + e1)) as f32;
    }
    Ok(vec![probs, b.data])
}

fn rnet(sd: &StateDict, x: Map) -> Result<Vec<Vec<f32>>, PtError> {
    let x = conv(sd, "conv1", &x, 28, 3)?;
    let x = prelu_map(sd, "prelu1", x)?;
    let x = maxpool_ceil(&x, 3, 2);
    let x = conv(sd, "conv2", &x, 48, 3)?;
    let x = prelu_map(sd, "prelu2", x)?;
    let x = maxpool_ceil(&x, 3, 2);
    let x = conv(sd, "conv3", &x, 64, 2)?;
    let x = prelu_map(sd, "prelu3", x)?;
    let v = permute_whc_flatten(&x);
    let v = linear(sd, "dense4", &v, 128)?;
    let v = prelu_vec(sd, "prelu4", v)?;
    let a = softmax(&linear(sd, "dense5_1", &v, 2)?);
    let b = linear(sd, "dense5_2", &v, 4)?;
    Ok(vec![a, b])
}

fn onet(sd: &StateDict, x: Map) -> Result<Vec<Vec<f32>>, PtError> {
    let x = conv(sd, "conv1", &x, 32, 3)?;
    let x = prelu_map(sd, "prelu1", x)?;
    let x = maxpool_ceil(&x, 3, 2);
    let x = conv(sd, "conv2", &x, 64, 3)?;
    let x = prelu_map(sd, "prelu2", x)?;
    let x = maxpool_ceil(&x, 3, 2);
    let x = conv(sd, "conv3", &x, 64, 3)?;
    let x = prelu_map(sd, "prelu3", x)?;
    let x = maxpool_ceil(&x, 2, 2);
    let x = conv(sd, "conv4", &x, 128, 2)?;
    let x = prelu_map(sd, "prelu4", x)?;
    let v = permute_whc_flatten(&x);
    let v = linear(sd, "dense5", &v, 256)?;
    let v = prelu_vec(sd, "prelu5", v)?;
    let a = softmax(&linear(sd, "dense6_1", &v, 2)?);
    let b = linear(sd, "dense6_2", &v, 4)?;
    let c = linear(sd, "dense6_3", &v, 10)?;
    Ok(vec![a, b, c])
}

/// `nn.Conv2d(cin, cout, k)`: stride 1, no padding.
fn conv(sd: &StateDict, name: &str, x: &Map, cout: usize, k: usize) -> Result<Map, PtError> {
    let w = &sd.get(&format!("{name}.weight"), &[cout, x.c, k, k])?.data;
    let b = &sd.get(&format!("{name}.bias"), &[cout])?.data;
    let (oh, ow) = (x.h + 1 - k, x.w + 1 - k);
    let mut out = vec![0.0f32; cout * oh * ow];
    for o in 0..cout {
        for y in 0..oh {
            for xx in 0..ow {
                let mut acc = b[o] as f64;
                for c in 0..x.c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let wv = w[((o * x.c + c) * k + ky) * k + kx] as f64;
                            acc += wv * x.at(c, y + ky, xx + kx) as f64;
                        }
                    }
                }
                out[(o * oh + y) * ow + xx] = acc as f32;
            }
        }
    }
    Ok(Map {
        c: cout,
        h: oh,
        w: ow,
        data: out,
    })
}

/// PyTorch's PReLU: `max(0, x) + a * min(0, x)`, one slope per channel.
fn prelu_map(sd: &StateDict, name: &str, mut x: Map) -> Result<Map, PtError> {
    let a = &sd.get(&format!("{name}.weight"), &[x.c])?.data;
    let plane = x.h * x.w;
    for (i, v) in x.data.iter_mut().enumerate() {
        let s = a[i / plane];
        *v = v.max(0.0) + s * v.min(0.0);
    }
    Ok(x)
}

fn prelu_vec(sd: &StateDict, name: &str, mut v: Vec<f32>) -> Result<Vec<f32>, PtError> {
    let a = &sd.get(&format!("{name}.weight"), &[v.len()])?.data;
    for (x, s) in v.iter_mut().zip(a) {
        *x = x.max(0.0) + s * x.min(0.0);
    }
    Ok(v)
}

/// `nn.MaxPool2d(k, s, ceil_mode=True)` without padding: the output length is
/// `ceil((n - k) / s) + 1`, less one if the last window would start past the input; windows that
/// run off the end are clipped.
fn maxpool_ceil(x: &Map, k: usize, s: usize) -> Map {
    let len = |n: usize| {
        let mut o = (n - k).div_ceil(s) + 1;
        if (o - 1) * s >= n {
            o -= 1;
        }
        o
    };
    let (oh, ow) = (len(x.h), len(x.w));
    let mut out = Vec::with_capacity(x.c * oh * ow);
    for c in 0..x.c {
        for y in 0..oh {
            for xx in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for yy in y * s..(y * s + k).min(x.h) {
                    for xi in xx * s..(xx * s + k).min(x.w) {
                        m = m.max(x.at(c, yy, xi));
                    }
                }
                out.push(m);
            }
        }
    }
    Map {
        c: x.c,
        h: oh,
        w: ow,
        data: out,
    }
}

/// `x.permute(0, 3, 2, 1).contiguous().view(n, -1)` for one image: (w, h, c) order.
fn permute_whc_flatten(x: &Map) -> Vec<f32> {
    let mut v = Vec::with_capacity(x.data.len());
    for xx in 0..x.w {
        for y in 0..x.h {
            for c in 0..x.c {
                v.push(x.at(c, y, xx));
            }
        }
    }
    v
}

/// `nn.Linear`: weight `[out, in]`.
fn linear(sd: &StateDict, name: &str, v: &[f32], fout: usize) -> Result<Vec<f32>, PtError> {
    let w = &sd.get(&format!("{name}.weight"), &[fout, v.len()])?.data;
    let b = &sd.get(&format!("{name}.bias"), &[fout])?.data;
    Ok((0..fout)
        .map(|o| {
            let row = &w[o * v.len()..(o + 1) * v.len()];
            let acc: f64 = row.iter().zip(v).map(|(a, b)| *a as f64 * *b as f64).sum();
            (acc + b[o] as f64) as f32
        })
        .collect())
}

fn softmax(v: &[f32]) -> Vec<f32> {
    let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = v.iter().map(|x| (*x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| (x / s) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(h: usize, w: usize) -> Map {
        Map {
            c: 1,
            h,
            w,
            data: (0..h * w).map(|i| i as f32).collect(),
        }
    }

    #[test]
    fn maxpool_ceil_mode_matches_pytorch_sizes() {
        // PyTorch: MaxPool2d(3, 2, ceil_mode=True) on 22 -> 11, on 10 -> 5; MaxPool2d(2, 2) on 5 -> 3.
        assert_eq!(maxpool_ceil(&map(22, 22), 3, 2).h, 11);
        assert_eq!(maxpool_ceil(&map(10, 10), 3, 2).h, 5);
        let p = maxpool_ceil(&map(5, 5), 2, 2);
        assert_eq!((p.h, p.w), (3, 3));
        // The clipped last window of the last row holds only element 24.
        assert_eq!(p.data[8], 24.0);
        assert_eq!(p.data[0], 6.0);
    }

    #[test]
    fn permute_flatten_is_w_h_c() {
        let x = Map {
            c: 2,
            h: 1,
            w: 2,
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        // (c, h, w): c0 = [1, 2], c1 = [3, 4] -> (w0: c0, c1), (w1: c0, c1)
        assert_eq!(permute_whc_flatten(&x), [1.0, 3.0, 2.0, 4.0]);
    }
}
