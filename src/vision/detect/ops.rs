//! The cascade's arithmetic, as facenet-pytorch does it: area resampling of image planes, crops of
//! candidate boxes, box regression and squaring, and the two non-maximum suppressions.

/// A candidate box with its score and regression offsets.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cand {
    pub b: [f32; 4],
    pub score: f32,
    pub reg: [f32; 4],
}

/// The image as three f32 planes (R, G, B), values 0..=255.
pub(super) struct Planes {
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Planes {
    pub(super) fn from_rgb(img: &image::RgbImage) -> Planes {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut data = vec![0.0f32; 3 * h * w];
        for (i, px) in img.pixels().enumerate() {
            for c in 0..3 {
                data[c * h * w + i] = px.0[c] as f32;
            }
        }
        Planes { h, w, data }
    }

    /// `interpolate(mode="area")` of rows `y0..y1`, columns `x0..x1` to `oh` x `ow`, CHW: each
    /// output pixel is the mean of the input window `[floor(i*in/out), ceil((i+1)*in/out))`.
    pub(super) fn resample(
        &self,
        y0: usize,
        x0: usize,
        y1: usize,
        x1: usize,
        oh: usize,
        ow: usize,
    ) -> Vec<f32> {
        let mut out = vec![0.0f32; 3 * oh * ow];
        self.resample_into(y0, x0, y1, x1, oh, ow, &mut out);
        out
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn resample_into(
        &self,
        y0: usize,
        x0: usize,
        y1: usize,
        x1: usize,
        oh: usize,
        ow: usize,
        out: &mut [f32],
    ) {
        let (ih, iw) = (y1 - y0, x1 - x0);
        let ys = windows(ih, oh);
        let xs = windows(iw, ow);
        // Horizontal pass over the needed rows, then vertical: the window is a rectangle of
        // uniform weight, so the mean separates.
        let mut rows = vec![0.0f32; ih * ow];
        for c in 0..3 {
            let plane = &self.data[c * self.h * self.w..(c + 1) * self.h * self.w];
            for r in 0..ih {
                let line = &plane[(y0 + r) * self.w + x0..(y0 + r) * self.w + x1];
                for (o, (s, e)) in xs.iter().enumerate() {
                    rows[r * ow + o] = line[*s..*e].iter().sum::<f32>() / (e - s) as f32;
                }
            }
            let dst = &mut out[c * oh * ow..(c + 1) * oh * ow];
            for (o, (s, e)) in ys.iter().enumerate() {
                for x in 0..ow {
                    let sum: f32 = (*s..*e).map(|r| rows[r * ow + x]).sum();
                    dst[o * ow + x] = sum / (e - s) as f32;
                }
            }
        }
    }
}

/// Adaptive-average-pool windows for `input` -> `output` samples (both >= 1).
pub(super) fn windows(input: usize, output: usize) -> Vec<(usize, usize)> {
    (0..output)
        .map(|i| ((i * input) / output, ((i + 1) * input).div_ceil(output)))
        .collect()
}

/// facenet-pytorch's `pad` + crop + `imresample`: truncates the box to integers, clips it to the
/// image (1-based, as in the MATLAB original) and resamples what is left. Boxes with nothing
/// inside the image are dropped here (facenet-pytorch skips them too but then misaligns its lists).
pub(super) fn crops(img: &Planes, cands: Vec<Cand>, side: usize) -> (Vec<Cand>, Vec<f32>) {
    let per = 3 * side * side;
    let mut kept = Vec::with_capacity(cands.len());
    let mut data = vec![0.0f32; cands.len() * per];
    for c in cands {
        if !c.b.iter().all(|v| v.is_finite()) {
            continue;
        }
        // `trunc().int()`: toward zero; f32 -> i64 saturates, so huge values cannot wrap.
        let [x, y, ex, ey] = c.b.map(|v| v.trunc() as i64);
        let (x, y) = (x.max(1), y.max(1));
        let (ex, ey) = (ex.min(img.w as i64), ey.min(img.h as i64));
        if ey > y - 1 && ex > x - 1 {
            let at = kept.len() * per;
            img.resample_into(
                (y - 1) as usize,
                (x - 1) as usize,
                ey as usize,
                ex as usize,
                side,
                side,
                &mut data[at..at + per],
            );
            kept.push(c);
        }
    }
    data.truncate(kept.len() * per);
    (kept, data)
}

/// facenet-pytorch's `bbreg`: offsets scaled by the inclusive width/height.
pub(super) fn regress(b: [f32; 4], reg: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

/// facenet-pytorch's `rerec`: a square of the longer side, same centre.
pub(super) fn square(b: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let l = w.max(h);
    let x1 = b[0] + w * 0.5 - l * 0.5;
    let y1 = b[1] + h * 0.5 - l * 0.5;
    [x1, y1, x1 + l, y1 + l]
}

/// torchvision `nms`: highest score first, drop boxes whose IoU (no +1 on widths) with a kept one
/// exceeds `th`.
pub(super) fn nms(mut c: Vec<Cand>, th: f32) -> Vec<Cand> {
    c.sort_by(|a, b| b.score.total_cmp(&a.score));
    let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut keep: Vec<Cand> = Vec::with_capacity(c.len());
    let mut dead = vec![false; c.len()];
    for i in 0..c.len() {
        if dead[i] {
            continue;
        }
        keep.push(c[i]);
        let a = &c[i].b;
        for j in i + 1..c.len() {
            if dead[j] {
                continue;
            }
            let b = &c[j].b;
            let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
            let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
            let inter = iw * ih;
            let iou = inter / (area(a) + area(b) - inter);
            if iou > th {
                dead[j] = true;
            }
        }
    }
    keep
}

/// facenet-pytorch's `nms_numpy(.., 'Min')`: overlap is the intersection over the smaller box, with
/// +1 inclusive widths. Returns indices into `c`, highest score first.
pub(super) fn nms_min(c: &[Cand], th: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..c.len()).collect();
    order.sort_by(|a, b| c[*b].score.total_cmp(&c[*a].score));
    let area = |b: &[f32; 4]| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut keep = Vec::new();
    while let Some((&i, rest)) = order.split_first() {
        keep.push(i);
        let a = &c[i].b;
        order = rest
            .iter()
            .copied()
            .filter(|&j| {
                let b = &c[j].b;
                let iw = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
                let ih = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
                iw * ih / area(a).min(area(b)) <= th
            })
            .collect();
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(b: [f32; 4], score: f32) -> Cand {
        Cand {
            b,
            score,
            reg: [0.0; 4],
        }
    }

    #[test]
    fn area_windows_are_adaptive_pooling() {
        assert_eq!(windows(5, 2), [(0, 3), (2, 5)]);
        assert_eq!(windows(2, 4), [(0, 1), (0, 1), (1, 2), (1, 2)]);
        assert_eq!(windows(4, 2), [(0, 2), (2, 4)]);
    }

    #[test]
    fn resample_averages_each_window() {
        let (h, w) = (4, 6);
        let data: Vec<f32> = (0..3 * h * w).map(|i| i as f32).collect();
        let img = Planes { h, w, data };
        let out = img.resample(0, 0, 4, 6, 2, 3);
        // Channel 0, output (0,0): mean of rows 0..2, cols 0..2 = mean(0,1,6,7) = 3.5.
        assert_eq!(out[0], 3.5);
        // Channel 2, output (1,2): rows 2..4, cols 4..6 of plane 2 (offset 48): mean(64,65,70,71).
        assert_eq!(out[2 * 6 + 5], 67.5);
        // A sub-rectangle upsampled: every output is one input pixel.
        let up = img.resample(1, 2, 2, 3, 2, 2);
        assert!(up[..4].iter().all(|v| *v == 8.0), "{up:?}");
    }

    #[test]
    fn nms_keeps_best_and_drops_overlaps() {
        let c = vec![
            cand([0.0, 0.0, 10.0, 10.0], 0.8),
            cand([1.0, 1.0, 11.0, 11.0], 0.9),
            cand([20.0, 20.0, 30.0, 30.0], 0.7),
        ];
        let k = nms(c, 0.5);
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].score, 0.9);
        assert_eq!(k[1].score, 0.7);
        // IoU of the first two is 81/119 = 0.68: kept apart at 0.7.
        let c = vec![
            cand([0.0, 0.0, 10.0, 10.0], 0.8),
            cand([1.0, 1.0, 11.0, 11.0], 0.9),
        ];
        assert_eq!(nms(c, 0.7).len(), 2);
    }

    #[test]
    fn nms_min_drops_nested_boxes() {
        let c = [
            cand([0.0, 0.0, 99.0, 99.0], 0.8),
            cand([10.0, 10.0, 39.0, 39.0], 0.95),
            cand([200.0, 0.0, 220.0, 20.0], 0.5),
        ];
        // The small box lies inside the big one: overlap 1 over the smaller area.
        assert_eq!(nms_min(&c, 0.7), [1, 2]);
    }

    #[test]
    fn crops_clip_and_drop_outside_boxes() {
        let img = Planes {
            h: 10,
            w: 10,
            data: vec![1.0; 300],
        };
        let cands = vec![
            cand([-5.0, -5.0, 4.0, 4.0], 0.9),
            cand([50.0, 50.0, 60.0, 60.0], 0.9),
            cand([f32::NAN, 0.0, 5.0, 5.0], 0.9),
            cand([2.0, 2.0, 1e30, 1e30], 0.9),
        ];
        let (kept, data) = crops(&img, cands, 24);
        assert_eq!(kept.len(), 2);
        assert_eq!(data.len(), 2 * 3 * 24 * 24);
        assert!(data.iter().all(|v| *v == 1.0));
    }

    #[test]
    fn square_and_regress_follow_facenet_pytorch() {
        assert_eq!(square([0.0, 0.0, 10.0, 20.0]), [-5.0, 0.0, 15.0, 20.0]);
        assert_eq!(
            regress([0.0, 0.0, 9.0, 9.0], [0.1, -0.1, 0.2, 0.0]),
            [1.0, -1.0, 11.0, 9.0]
        );
    }
}
