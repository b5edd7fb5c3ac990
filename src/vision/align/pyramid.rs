//! dlib's `pyramid_down<2>`: a separable 5-tap [1 4 6 4 1] Gaussian with 2:1 decimation in integer
//! arithmetic, applied to each channel alike. Output pixel (c, r) is centred on input pixel
//! (2c + 2, 2r + 2); dlib's `point_down` (`p / 2 - (1.25, 0.75)`) is the mapping it pairs with.

/// dlib's `pyramid_down<2>::point_down`.
#[inline]
pub fn point_down(p: [f64; 2]) -> [f64; 2] {
    [p[0] / 2.0 - 1.25, p[1] / 2.0 - 0.75]
}

/// A packed image buffer owned by the alignment scratch and reused between calls.
#[derive(Default)]
pub struct Plane {
    pub data: Vec<u8>,
    pub width: usize,
    pub height: usize,
}

/// Downsamples `src` (`width` x `height` pixels of `channels` bytes, rows `stride` bytes apart)
/// into `dst`. Like dlib, an input 8 pixels or less on a side gives an empty image.
/// `tmp` is the horizontal pass, kept by the caller so that nothing is allocated per call.
pub fn pyramid_down(
    src: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    channels: usize,
    dst: &mut Plane,
    tmp: &mut Vec<u16>,
) {
    dst.data.clear();
    if width <= 8 || height <= 8 {
        dst.width = 0;
        dst.height = 0;
        return;
    }
    let tw = (width - 3) / 2;
    let (dw, dh) = (tw, (height - 3) / 2);
    let trow = tw * channels;
    tmp.clear();
    tmp.resize(height * trow, 0);
    for r in 0..height {
        let row = &src[r * stride..r * stride + width * channels];
        let out = &mut tmp[r * trow..(r + 1) * trow];
        for c in 0..tw {
            for k in 0..channels {
                let px = |i: usize| u16::from(row[(2 * c + i) * channels + k]);
                // At most 16 * 255: fits u16, as dlib's uint16 accumulator.
                out[c * channels + k] = px(0) + 4 * px(1) + 6 * px(2) + 4 * px(3) + px(4);
            }
        }
    }
    dst.data.resize(dh * dw * channels, 0);
    dst.width = dw;
    dst.height = dh;
    for dr in 0..dh {
        let r = 2 * dr + 2;
        let rows: [&[u16]; 5] =
            std::array::from_fn(|i| &tmp[(r + i - 2) * trow..(r + i - 1) * trow]);
        let out = &mut dst.data[dr * trow..(dr + 1) * trow];
        for (i, o) in out.iter_mut().enumerate() {
            // At most 256 * 255 = 65280: still fits u16, as in dlib.
            let sum = rows[0][i] + 4 * rows[1][i] + 6 * rows[2][i] + 4 * rows[3][i] + rows[4][i];
            *o = (sum / 256) as u8;
        }
    }
}

/// dlib's `rect_down` on a real rectangle given as (left, top, right, bottom).
#[inline]
pub fn rect_down(r: [f64; 4]) -> [f64; 4] {
    let tl = point_down([r[0], r[1]]);
    let br = point_down([r[2], r[3]]);
    [tl[0], tl[1], br[0], br[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_image_stays_flat_and_sizes_follow_dlib() {
        let (w, h) = (21, 12);
        let src = vec![200u8; w * h * 3];
        let mut dst = Plane::default();
        let mut tmp = Vec::new();
        pyramid_down(&src, w, h, w * 3, 3, &mut dst, &mut tmp);
        assert_eq!((dst.width, dst.height), ((21 - 3) / 2, (12 - 3) / 2));
        assert!(dst.data.iter().all(|&v| v == 200));
    }

    #[test]
    fn small_images_vanish() {
        let src = vec![1u8; 8 * 30];
        let mut dst = Plane::default();
        pyramid_down(&src, 8, 30, 8, 1, &mut dst, &mut Vec::new());
        assert_eq!((dst.width, dst.height, dst.data.len()), (0, 0, 0));
    }

    #[test]
    fn filter_weights_are_binomial() {
        // One bright pixel at (6, 6) of a 13x13 image lands in output (2, 2) with weight 36/256.
        let (w, h) = (13, 13);
        let mut src = vec![0u8; w * h];
        src[6 * w + 6] = 255;
        let mut dst = Plane::default();
        pyramid_down(&src, w, h, w, 1, &mut dst, &mut Vec::new());
        assert_eq!(dst.data[2 * dst.width + 2], (255u32 * 36 / 256) as u8);
        assert_eq!(dst.data[2 * dst.width + 1], (255u32 * 6 / 256) as u8);
    }
}
