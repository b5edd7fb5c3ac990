//! The `.lwsp` container for a shape predictor: magic `LWSP`, u32 version (little endian), the
//! sha256 of the body, then the postcard-encoded [`ShapePredictorModel`].
//!
//! The digest sits before the body so that a damaged or truncated file is refused before any of it
//! is decoded; the model is then checked for internal consistency so that inference can never index
//! out of bounds.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ShapePredictorModel;
use super::predict::{InvalidModel, validate};

pub const MAGIC: [u8; 4] = *b"LWSP";
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 4 + 4 + 32;
/// dlib's 5-point model is about 9 MB; anything far larger is not a shape predictor we made.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

const REMEDY: &str =
    "re-create it with `trainer import dlib-landmarks` or restore it from the repository";

#[derive(Debug, thiserror::Error)]
pub enum LandmarkFileError {
    #[error("cannot read landmark model {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write landmark model {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "landmark model {path} is {size} bytes, more than the {max} a shape predictor can be; is it the right file?"
    )]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error(
        "landmark model {path} is only {size} bytes, shorter than its {HEADER_LEN}-byte header; {REMEDY}"
    )]
    Truncated { path: PathBuf, size: usize },
    #[error(
        "{path} is not a lanewatch landmark model (it does not start with \"LWSP\"); a dlib .dat file must first be converted with `trainer import dlib-landmarks`"
    )]
    BadMagic { path: PathBuf },
    #[error(
        "landmark model {path} has format version {found}, this build reads version {VERSION}; use a matching lanewatch or re-import the model"
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error("landmark model {path} is corrupt: its sha256 does not match its contents; {REMEDY}")]
    Checksum { path: PathBuf },
    #[error("landmark model {path} cannot be decoded ({source}); {REMEDY}")]
    Decode {
        path: PathBuf,
        source: postcard::Error,
    },
    #[error("landmark model {path} has {count} unexpected bytes after the model; {REMEDY}")]
    TrailingBytes { path: PathBuf, count: usize },
    #[error("landmark model {path} is inconsistent: {reason}; {REMEDY}")]
    Invalid { path: PathBuf, reason: InvalidModel },
    #[error("cannot encode landmark model: {0}")]
    Encode(postcard::Error),
}

/// Reads, checks and validates a `.lwsp` file.
pub fn load_lwsp(path: &Path) -> Result<ShapePredictorModel, LandmarkFileError> {
    let io = |source| LandmarkFileError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(LandmarkFileError::TooLarge {
            path: path.to_owned(),
            size,
            max: MAX_FILE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    read_lwsp(&bytes, path)
}

/// Decodes a `.lwsp` image held in memory; `path` only names it in errors.
pub fn read_lwsp(bytes: &[u8], path: &Path) -> Result<ShapePredictorModel, LandmarkFileError> {
    let path = || path.to_owned();
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(LandmarkFileError::TooLarge {
            path: path(),
            size: bytes.len() as u64,
            max: MAX_FILE_BYTES,
        });
    }
    // Check the magic on whatever is there first: a short foreign file is "not ours", not "truncated".
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
            return Err(LandmarkFileError::Truncated {
                path: path(),
                size: bytes.len(),
            });
        }
        return Err(LandmarkFileError::BadMagic { path: path() });
    }
    let Some((header, body)) = bytes.split_at_checked(HEADER_LEN) else {
        return Err(LandmarkFileError::Truncated {
            path: path(),
            size: bytes.len(),
        });
    };
    let mut version = [0u8; 4];
    version.copy_from_slice(&header[4..8]);
    let found = u32::from_le_bytes(version);
    if found != VERSION {
        return Err(LandmarkFileError::UnsupportedVersion {
            path: path(),
            found,
        });
    }
    if Sha256::digest(body).as_slice() != &header[8..HEADER_LEN] {
        return Err(LandmarkFileError::Checksum { path: path() });
    }
    let (model, rest): (ShapePredictorModel, &[u8]) =
        postcard::take_from_bytes(body).map_err(|source| LandmarkFileError::Decode {
            path: path(),
            source,
        })?;
    if !rest.is_empty() {
        return Err(LandmarkFileError::TrailingBytes {
            path: path(),
            count: rest.len(),
        });
    }
    validate(&model).map_err(|reason| LandmarkFileError::Invalid {
        path: path(),
        reason,
    })?;
    Ok(model)
}

/// Encodes a model as a `.lwsp` image. The model is validated first so that no file is written
/// that the box would refuse.
pub fn encode_lwsp(model: &ShapePredictorModel) -> Result<Vec<u8>, LandmarkFileError> {
    validate(model).map_err(|reason| LandmarkFileError::Invalid {
        path: PathBuf::from("<model being written>"),
        reason,
    })?;
    let body = postcard::to_stdvec(model).map_err(LandmarkFileError::Encode)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    Ok(out)
}

/// Writes a model to `path` (through a temporary file and a rename, so a crash leaves no half file).
pub fn write_lwsp(path: &Path, model: &ShapePredictorModel) -> Result<(), LandmarkFileError> {
    let bytes = encode_lwsp(model)?;
    let write = |source| LandmarkFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, &bytes).map_err(write)?;
    std::fs::rename(&tmp, path).map_err(write)
}
