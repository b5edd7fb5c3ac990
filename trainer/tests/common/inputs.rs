//! Test inputs that are not in the repository: the published source weights, downloaded from PyPI.
//! One rule for every test that reads them: under CI (`CI` set, not `false`/`0`) a missing input is a
//! failure that says how to get it (`.ci/run` provides them all); elsewhere the test prints a SKIPPED
//! notice and does without.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// An input named by an environment variable.
pub struct Input {
    /// The environment variable that names it.
    pub var: &'static str,
    /// A file that must exist: the path itself (`""`) or this name inside the directory.
    pub must_hold: &'static str,
    /// What it is and how to get it.
    pub how: &'static str,
}

macro_rules! from_sdist {
    ($file:literal) => {
        concat!(
            "face_recognition_models/models/",
            $file,
            " from the PyPI sdist face-recognition-models==0.3.0: `python3 -m pip download --no-deps \
             --no-binary :all: face-recognition-models==0.3.0` and unpack the .tar.gz (.ci/run does both)"
        )
    };
}

/// dlib's face-recognition ResNet weights.
pub const DLIB_DAT: Input = Input {
    var: "LANEWATCH_DLIB_DAT",
    must_hold: "",
    how: from_sdist!("dlib_face_recognition_resnet_model_v1.dat"),
};

/// dlib's 5-point shape predictor.
pub const DLIB_SP5_DAT: Input = Input {
    var: "LANEWATCH_DLIB_SP5_DAT",
    must_hold: "",
    how: from_sdist!("shape_predictor_5_face_landmarks.dat"),
};

/// facenet-pytorch's MTCNN weights (`pnet.pt`, `rnet.pt`, `onet.pt`).
pub const MTCNN_WEIGHTS: Input = Input {
    var: "LANEWATCH_MTCNN_WEIGHTS",
    must_hold: "pnet.pt",
    how: "the directory facenet_pytorch/data of the PyPI wheel facenet-pytorch==2.6.0: `python3 -m pip \
          download --no-deps facenet-pytorch==2.6.0` and unzip the wheel (.ci/run does both)",
};

/// Whether this is a CI run, where no test may pass by skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The path in `input.var` when it holds what it should. Otherwise a panic under CI, or a SKIPPED
/// notice naming `skipped` (what the test leaves unchecked) and `None`.
pub fn require(input: &Input, skipped: &str) -> Option<PathBuf> {
    let path = std::env::var_os(input.var).map(PathBuf::from);
    let found = path.as_deref().filter(|p| holds(p, input.must_hold));
    if let Some(p) = found {
        return Some(p.to_owned());
    }
    let problem = match &path {
        None => format!("{} is not set", input.var),
        Some(p) if input.must_hold.is_empty() => {
            format!("{}={} is not a file", input.var, p.display())
        }
        Some(p) => format!("{}={} holds no {}", input.var, p.display(), input.must_hold),
    };
    let how = format!("set {} to {}", input.var, input.how);
    assert!(!in_ci(), "CI is set but {problem}: {how}");
    eprintln!("SKIPPED: {skipped}: {problem} ({how})");
    None
}

fn holds(path: &Path, must_hold: &str) -> bool {
    if must_hold.is_empty() {
        path.is_file()
    } else {
        path.join(must_hold).is_file()
    }
}
