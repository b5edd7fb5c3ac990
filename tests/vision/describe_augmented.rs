//! Test-time augmentation in `FaceAnalyzer` (what `trainer eval lfw --jitter/--mirror` measures):
//! a mirrored descriptor is exactly the mean of the chip's and its mirror's, and jittered ones are
//! reproducible and stay near the plain one. Real faces from `../shared/data/lfw/calib`.

use std::path::Path;

use crate::common::calib::calib_photos;
use lanewatch::vision::align::{RgbChip, mirror_chip};
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::embed::{Embedder, distance};
use lanewatch::vision::faces::{Augmentation, FaceAnalyzer, FaceModels, read_rgb};

fn analyzer(augmentation: Augmentation) -> FaceAnalyzer {
    let config = DetectorConfig {
        min_face: 20.0,
        ..DetectorConfig::default()
    };
    let mut a = FaceAnalyzer::open(&FaceModels::bundled(), 250, 250, config).unwrap();
    a.set_augmentation(augmentation);
    a
}

fn descriptor(a: &mut FaceAnalyzer, photo: &Path) -> Vec<f32> {
    let face = a.main_face(&read_rgb(photo).unwrap()).unwrap();
    face.and_then(|f| f.embedding)
        .unwrap_or_else(|| panic!("no face in {}", photo.display()))
}

#[test]
fn augmented_descriptors_average_their_views() {
    let mut plain = analyzer(Augmentation::default());
    let mut mirrored = analyzer(Augmentation {
        jitter: 0,
        mirror: true,
    });
    let jittered = Augmentation {
        jitter: 3,
        mirror: false,
    };
    let (mut j1, mut j2) = (analyzer(jittered), analyzer(jittered));
    let mut e = Embedder::load(&FaceModels::bundled().embedder).unwrap();
    let metric = e.spec().metric;
    for photo in calib_photos(2) {
        let base = descriptor(&mut plain, &photo);
        let chip: RgbChip = plain
            .main_face_chip(&read_rgb(&photo).unwrap())
            .unwrap()
            .unwrap();
        let mut flipped = chip.clone();
        mirror_chip(&mut flipped);
        assert_ne!(flipped, chip);
        // The views' raw network outputs are averaged, then put in the metric's terms (unit
        // length for a cosine embedder).
        let direct = e
            .embed_raw_packed(&chip.data, chip.width, chip.height)
            .unwrap();
        let mirror = e
            .embed_raw_packed(&flipped.data, flipped.width, flipped.height)
            .unwrap();
        let mean: Vec<f32> = direct
            .iter()
            .zip(&mirror)
            .map(|(a, b)| (a + b) / 2.0)
            .collect();
        let expected = match metric {
            lanewatch::vision::contract::Metric::Cosine => {
                lanewatch::vision::embed::l2_normalised(mean)
            }
            lanewatch::vision::contract::Metric::Euclidean => mean,
        };

        let got = descriptor(&mut mirrored, &photo);
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{}: {worst}", photo.display());
        // A face and its mirror image are different pictures to the network.
        assert!(
            distance(
                lanewatch::vision::contract::Metric::Euclidean,
                &direct,
                &mirror
            ) > 0.02
        );

        let (a, b) = (descriptor(&mut j1, &photo), descriptor(&mut j2, &photo));
        assert_eq!(a, b, "jitter must be reproducible");
        let d = distance(metric, &a, &base);
        assert!((1e-4..0.3).contains(&d), "{}: {d}", photo.display());
    }
}
