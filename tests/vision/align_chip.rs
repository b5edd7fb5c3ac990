//! The face chip on synthetic images whose correct chip is known in closed form, and on every kind
//! of bad input (landmarks off the image, NaN, tiny images): no panic, black where dlib is black.

use lanewatch::vision::align::chip::FACE_TEMPLATE_5;
use lanewatch::vision::align::mtcnn::MTCNN_TEMPLATE;
use lanewatch::vision::align::{
    AlignError, CHIP_PADDING, CHIP_SIZE, ChipDetails, ChipScratch, RgbChip, chip_from_mtcnn_points,
    extract_image_chip, face_chip_details,
};
use lanewatch::vision::image::ImageView;
use lanewatch::vision::landmarks::Point;
use proptest::prelude::*;

/// Where chip pixel (c, r) samples the image, from the chip's definition (a `rows` x `cols` grid
/// spread over `rect`, rotated by `angle` about the rectangle's centre), computed independently.
fn image_point(d: &ChipDetails, c: usize, r: usize) -> [f64; 2] {
    let cx = (d.rect.left + d.rect.right) / 2.0;
    let cy = (d.rect.top + d.rect.bottom) / 2.0;
    let x = d.rect.left + c as f64 * (d.rect.right - d.rect.left) / (d.cols - 1) as f64 - cx;
    let y = d.rect.top + r as f64 * (d.rect.bottom - d.rect.top) / (d.rows - 1) as f64 - cy;
    let (s, co) = d.angle.sin_cos();
    [co * x - s * y + cx, s * x + co * y + cy]
}

/// Landmarks of a face of `scale` (template units -> pixels), rotated by `angle`, centred at `at`.
fn face(template: &[[f64; 2]; 5], scale: f64, angle: f64, at: [f64; 2]) -> [Point; 5] {
    let (s, c) = angle.sin_cos();
    std::array::from_fn(|i| {
        let (x, y) = (template[i][0] - 0.5, template[i][1] - 0.5);
        Point::new(
            (scale * (c * x - s * y) + at[0]) as f32,
            (scale * (s * x + c * y) + at[1]) as f32,
        )
    })
}

#[test]
fn chip_of_a_linear_ramp_is_the_ramp_at_the_mapped_points() {
    // Bilinear interpolation reproduces a linear image exactly, so every chip pixel must be the
    // ramp's value at the point the chip definition maps it to (truncated, as dlib truncates).
    let (w, h) = (160usize, 140usize);
    let gray: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x + y / 2) as u8))
        .collect();
    let img = ImageView::gray(&gray, w, h).unwrap();
    // A face about 60 px across, tilted by 0.2 rad: the chip region stays small, so no pyramid.
    let pts = face(&FACE_TEMPLATE_5, 60.0, 0.2, [80.0, 70.0]);
    let d = face_chip_details(&pts, CHIP_SIZE, CHIP_PADDING);
    assert!((d.angle - 0.2).abs() < 1e-6, "angle {}", d.angle);
    let mut chip = RgbChip::default();
    extract_image_chip(&img, &d, &mut ChipScratch::default(), &mut chip).unwrap();
    let (mut exact, mut inside) = (0, 0);
    for r in 0..CHIP_SIZE {
        for c in 0..CHIP_SIZE {
            let [x, y] = image_point(&d, c, r);
            let got = chip.pixel(c, r).unwrap();
            assert!(got[0] == got[1] && got[1] == got[2]);
            if x < 1.0 || y < 1.0 || x > (w - 2) as f64 || y > (h - 2) as f64 {
                continue; // near or past the border
            }
            inside += 1;
            // The ramp is x + floor(y / 2): linear within each pair of rows.
            let (y0, fy) = (y.floor(), y - y.floor());
            let v0 = x + (y0 / 2.0).floor();
            let v1 = x + ((y0 + 1.0) / 2.0).floor();
            let want = v0 + fy * (v1 - v0);
            let diff = f64::from(got[0]) - want.floor();
            assert!(
                diff.abs() <= 1.0,
                "({c}, {r}) -> ({x}, {y}): {} vs {want}",
                got[0]
            );
            exact += usize::from(diff == 0.0);
        }
    }
    assert!(
        inside > 15_000,
        "the chip should lie mostly inside the image"
    );
    assert!(exact * 100 > inside * 99, "{exact} of {inside} exact");
}

#[test]
fn face_chip_details_undo_a_known_similarity() {
    // Landmarks that are the padded template scaled by k, rotated and moved: the chip must be a
    // k-times-larger square, rotated by the same angle, centred where the template's centre went.
    let k = 2.7;
    let angle = -0.35;
    let s = CHIP_SIZE as f64;
    let padded = FACE_TEMPLATE_5.map(|t| {
        [
            (CHIP_PADDING + t[0]) / (2.0 * CHIP_PADDING + 1.0),
            (CHIP_PADDING + t[1]) / (2.0 * CHIP_PADDING + 1.0),
        ]
    });
    let pts = face(&padded, k * s, angle, [400.0, 300.0]);
    let d = face_chip_details(&pts, CHIP_SIZE, CHIP_PADDING);
    assert!((d.angle - angle).abs() < 1e-6);
    assert!((d.rect.width() - k * s).abs() < 1e-3, "{:?}", d.rect);
    assert!((d.rect.height() - k * s).abs() < 1e-3);
    let centre = [
        (d.rect.left + d.rect.right) / 2.0,
        (d.rect.top + d.rect.bottom) / 2.0,
    ];
    assert!((centre[0] - 400.0).abs() < 1e-3 && (centre[1] - 300.0).abs() < 1e-3);

    // MTCNN's points placed on MTCNN_TEMPLATE the same way give the same chip.
    let padded = MTCNN_TEMPLATE.map(|t| {
        [
            (CHIP_PADDING + t[0]) / (2.0 * CHIP_PADDING + 1.0),
            (CHIP_PADDING + t[1]) / (2.0 * CHIP_PADDING + 1.0),
        ]
    });
    let m = chip_from_mtcnn_points(
        &face(&padded, k * s, angle, [400.0, 300.0]),
        CHIP_SIZE,
        CHIP_PADDING,
    );
    assert!((m.angle - d.angle).abs() < 1e-6);
    assert!(
        (m.rect.left - d.rect.left).abs() < 1e-3 && (m.rect.bottom - d.rect.bottom).abs() < 1e-3
    );
}

#[test]
fn gray_and_replicated_rgb_give_the_same_chip_at_every_pyramid_depth() {
    let (w, h) = (900usize, 800usize);
    let gray: Vec<u8> = (0..w * h)
        .map(|i| ((i * 7919) % 251) as u8 ^ ((i / w) as u8))
        .collect();
    let rgb: Vec<u8> = gray.iter().flat_map(|&v| [v, v, v]).collect();
    let g = ImageView::gray(&gray, w, h).unwrap();
    let c = ImageView::rgb(&rgb, w, h).unwrap();
    let mut scratch = ChipScratch::default();
    for size in [50.0, 200.0, 450.0, 1500.0] {
        let pts = face(&FACE_TEMPLATE_5, size, 0.1, [450.0, 400.0]);
        let d = face_chip_details(&pts, CHIP_SIZE, CHIP_PADDING);
        let (mut a, mut b) = (RgbChip::default(), RgbChip::default());
        extract_image_chip(&g, &d, &mut scratch, &mut a).unwrap();
        extract_image_chip(&c, &d, &mut scratch, &mut b).unwrap();
        assert_eq!(a, b, "face size {size}");
    }
}

#[test]
fn a_flat_image_gives_a_flat_chip_through_the_pyramid() {
    let (w, h) = (1200usize, 1000usize);
    let gray = vec![77u8; w * h];
    let img = ImageView::gray(&gray, w, h).unwrap();
    // ~600 px face: the chip region is 4x the chip, so dlib samples from a pyramid level.
    let pts = face(&FACE_TEMPLATE_5, 600.0, 0.0, [600.0, 500.0]);
    let d = face_chip_details(&pts, CHIP_SIZE, CHIP_PADDING);
    let mut chip = RgbChip::default();
    extract_image_chip(&img, &d, &mut ChipScratch::default(), &mut chip).unwrap();
    // Truncation of 76.999... may give 76 where the weights do not sum to exactly 1.
    assert!(chip.data.iter().all(|&v| v == 77 || v == 76));
    assert!(chip.data.iter().filter(|&&v| v == 77).count() * 2 > chip.data.len());
}

#[test]
fn a_face_off_the_image_gives_a_black_chip() {
    let gray = vec![200u8; 100 * 100];
    let img = ImageView::gray(&gray, 100, 100).unwrap();
    let pts = face(&FACE_TEMPLATE_5, 50.0, 0.0, [5000.0, -3000.0]);
    let d = face_chip_details(&pts, CHIP_SIZE, CHIP_PADDING);
    let mut chip = RgbChip::default();
    extract_image_chip(&img, &d, &mut ChipScratch::default(), &mut chip).unwrap();
    assert_eq!(chip.data.len(), CHIP_SIZE * CHIP_SIZE * 3);
    assert!(chip.data.iter().all(|&v| v == 0));
}

#[test]
fn bad_geometry_is_an_error_not_a_panic() {
    let gray = vec![1u8; 64 * 64];
    let img = ImageView::gray(&gray, 64, 64).unwrap();
    let mut pts = face(&FACE_TEMPLATE_5, 30.0, 0.0, [32.0, 32.0]);
    pts[2].x = f32::NAN;
    let d = face_chip_details(&pts, CHIP_SIZE, CHIP_PADDING);
    let mut chip = RgbChip::default();
    let mut scratch = ChipScratch::default();
    assert!(matches!(
        extract_image_chip(&img, &d, &mut scratch, &mut chip),
        Err(AlignError::NotFinite { .. })
    ));
    let ok = face_chip_details(
        &face(&FACE_TEMPLATE_5, 30.0, 0.0, [32.0, 32.0]),
        CHIP_SIZE,
        CHIP_PADDING,
    );
    for (rows, cols) in [(0, 150), (1, 150), (150, 100_000)] {
        let d = ChipDetails { rows, cols, ..ok };
        assert!(matches!(
            extract_image_chip(&img, &d, &mut scratch, &mut chip),
            Err(AlignError::BadSize { .. })
        ));
    }
    // All landmarks on one point: a zero-size face.
    let d = face_chip_details(&[Point::new(10.0, 10.0); 5], CHIP_SIZE, CHIP_PADDING);
    let _ = extract_image_chip(&img, &d, &mut scratch, &mut chip);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_landmarks_on_any_image_never_panic(
        w in 0usize..40, h in 0usize..40, rgb in any::<bool>(),
        coords in proptest::array::uniform10(-1e4f32..1e4f32),
        tiny in proptest::array::uniform10(-3f32..3f32),
        use_tiny in any::<bool>(),
    ) {
        let data = vec![128u8; w * h * if rgb { 3 } else { 1 }];
        let img = if rgb { ImageView::rgb(&data, w, h) } else { ImageView::gray(&data, w, h) }.unwrap();
        let c = if use_tiny { tiny } else { coords };
        let pts: [Point; 5] = std::array::from_fn(|i| Point::new(c[2 * i], c[2 * i + 1]));
        let mut chip = RgbChip::default();
        let mut scratch = ChipScratch::default();
        for d in [
            face_chip_details(&pts, CHIP_SIZE, CHIP_PADDING),
            chip_from_mtcnn_points(&pts, CHIP_SIZE, CHIP_PADDING),
        ] {
            if extract_image_chip(&img, &d, &mut scratch, &mut chip).is_ok() {
                prop_assert_eq!(chip.data.len(), CHIP_SIZE * CHIP_SIZE * 3);
            }
        }
    }
}
