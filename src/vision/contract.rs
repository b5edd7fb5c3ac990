//! The model contract: what an ONNX file promises the box, stored as `metadata_props` under `lanewatch.*`.
//!
//! The trainer writes these keys with [`Contract::to_metadata`]; the box reads them back with
//! [`Contract::from_metadata`] and refuses a file that lacks one or carries a value it cannot use.
//! The fingerprint is not stored: it is the sha256 of the file, computed when the file is read.

use std::collections::BTreeMap;
use std::fmt;

/// Version of the key set below; bump when a key changes meaning.
pub const CONTRACT_VERSION: &str = "1";

pub mod keys {
    pub const CONTRACT: &str = "lanewatch.contract";
    pub const ROLE: &str = "lanewatch.role";
    pub const NAME: &str = "lanewatch.name";
    pub const SOURCE: &str = "lanewatch.source";
    pub const LICENCE: &str = "lanewatch.licence";
    pub const INPUT_LAYOUT: &str = "lanewatch.input.layout";
    pub const INPUT_COLOR: &str = "lanewatch.input.color";
    pub const INPUT_HEIGHT: &str = "lanewatch.input.height";
    pub const INPUT_WIDTH: &str = "lanewatch.input.width";
    pub const INPUT_MEAN: &str = "lanewatch.input.mean";
    pub const INPUT_STD: &str = "lanewatch.input.std";
    pub const ALIGNMENT: &str = "lanewatch.alignment";
    pub const EMBEDDING_DIM: &str = "lanewatch.embedding.dim";
    pub const EMBEDDING_METRIC: &str = "lanewatch.embedding.metric";
    pub const THRESHOLD_DISTANCE: &str = "lanewatch.threshold.distance";
    pub const THRESHOLD_FAR: &str = "lanewatch.threshold.far";
    pub const PRECISION: &str = "lanewatch.precision";
}

/// What a network does in the pipeline. MTCNN's three stages are separate files with separate roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Embedder,
    MtcnnPnet,
    MtcnnRnet,
    MtcnnOnet,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Embedder => "embedder",
            Role::MtcnnPnet => "mtcnn-pnet",
            Role::MtcnnRnet => "mtcnn-rnet",
            Role::MtcnnOnet => "mtcnn-onet",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [
            Role::Embedder,
            Role::MtcnnPnet,
            Role::MtcnnRnet,
            Role::MtcnnOnet,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How embeddings are compared. Distances are always "smaller is closer".
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// Plain L2 distance between raw descriptors (dlib's convention).
    Euclidean,
    /// 1 - cosine similarity, i.e. distances over L2-normalised descriptors.
    Cosine,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Euclidean => "euclidean",
            Metric::Cosine => "cosine",
        }
    }
    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "euclidean" => Some(Metric::Euclidean),
            "cosine" => Some(Metric::Cosine),
            _ => None,
        }
    }
}

/// Input tensor: always NCHW f32, batch first. A size of `None` means the network is fully
/// convolutional (MTCNN's P-Net) and the caller fixes it when building a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub height: Option<usize>,
    pub width: Option<usize>,
    /// Channel order of the 3 input planes: "RGB" or "BGR".
    pub color: String,
    /// The box feeds `(pixel - mean) / std` per channel, pixel in 0..=255. Identity (0 and 1) when the
    /// normalisation is part of the graph.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingSpec {
    pub dim: usize,
    pub metric: Metric,
    /// Recommended match threshold on the distance, and the false accept rate it was chosen for.
    pub threshold: f32,
    pub far: f32,
    /// Name of the face chip the network was trained on (see `vision::align`), e.g. "dlib-5pt-150-0.25".
    pub alignment: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Contract {
    pub role: Role,
    pub name: String,
    pub source: String,
    pub licence: String,
    /// "fp32" or "int8": informational, shown by `lanewatch probe` and `bench`.
    pub precision: String,
    pub input: InputSpec,
    /// Present exactly when `role == Embedder`.
    pub embedding: Option<EmbeddingSpec>,
}

/// A contract field that is missing or unusable. The loader adds the file name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "the model contract field `{0}` is missing (is this a lanewatch model? re-export it with `trainer`)"
    )]
    Missing(&'static str),
    #[error("the model contract field `{field}` has the unusable value {value:?}: {why}")]
    Invalid {
        field: &'static str,
        value: String,
        why: String,
    },
}

fn invalid(field: &'static str, value: &str, why: impl Into<String>) -> ContractError {
    ContractError::Invalid {
        field,
        value: value.to_string(),
        why: why.into(),
    }
}

fn required<'a>(
    meta: &'a BTreeMap<String, String>,
    key: &'static str,
) -> Result<&'a str, ContractError> {
    meta.get(key)
        .map(String::as_str)
        .ok_or(ContractError::Missing(key))
}

fn parse_size(
    meta: &BTreeMap<String, String>,
    key: &'static str,
) -> Result<Option<usize>, ContractError> {
    let v = required(meta, key)?;
    if v == "dynamic" {
        return Ok(None);
    }
    match v.parse::<usize>() {
        Ok(n) if (1..=8192).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(
            key,
            v,
            "expected a size in 1..=8192 or \"dynamic\"",
        )),
    }
}

fn parse_triple(
    meta: &BTreeMap<String, String>,
    key: &'static str,
) -> Result<[f32; 3], ContractError> {
    let v = required(meta, key)?;
    let parts: Vec<f32> = v
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| invalid(key, v, "expected three comma-separated numbers"))?;
    match parts.as_slice() {
        [a, b, c] if parts.iter().all(|x| x.is_finite()) => Ok([*a, *b, *c]),
        _ => Err(invalid(
            key,
            v,
            "expected three finite comma-separated numbers",
        )),
    }
}

fn parse_positive(
    meta: &BTreeMap<String, String>,
    key: &'static str,
) -> Result<f32, ContractError> {
    let v = required(meta, key)?;
    match v.parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(invalid(key, v, "expected a finite positive number")),
    }
}

impl Contract {
    pub fn from_metadata(meta: &BTreeMap<String, String>) -> Result<Contract, ContractError> {
        let version = required(meta, keys::CONTRACT)?;
        if version != CONTRACT_VERSION {
            return Err(invalid(
                keys::CONTRACT,
                version,
                format!("this lanewatch reads contract version {CONTRACT_VERSION}"),
            ));
        }
        let role_text = required(meta, keys::ROLE)?;
        let role = Role::parse(role_text).ok_or_else(|| {
            invalid(
                keys::ROLE,
                role_text,
                "expected embedder, mtcnn-pnet, mtcnn-rnet or mtcnn-onet",
            )
        })?;
        let layout = required(meta, keys::INPUT_LAYOUT)?;
        if layout != "NCHW" {
            return Err(invalid(
                keys::INPUT_LAYOUT,
                layout,
                "only NCHW is supported",
            ));
        }
        let color = required(meta, keys::INPUT_COLOR)?;
        if color != "RGB" && color != "BGR" {
            return Err(invalid(keys::INPUT_COLOR, color, "expected RGB or BGR"));
        }
        let std = parse_triple(meta, keys::INPUT_STD)?;
        if std.iter().any(|s| *s <= 0.0) {
            return Err(invalid(
                keys::INPUT_STD,
                &meta[keys::INPUT_STD],
                "every std must be positive",
            ));
        }
        let input = InputSpec {
            height: parse_size(meta, keys::INPUT_HEIGHT)?,
            width: parse_size(meta, keys::INPUT_WIDTH)?,
            color: color.to_string(),
            mean: parse_triple(meta, keys::INPUT_MEAN)?,
            std,
        };
        if input.height.is_some() != input.width.is_some() {
            return Err(invalid(
                keys::INPUT_WIDTH,
                required(meta, keys::INPUT_WIDTH)?,
                "height and width must both be fixed or both dynamic",
            ));
        }
        let embedding = if role == Role::Embedder {
            let dim_text = required(meta, keys::EMBEDDING_DIM)?;
            let dim = match dim_text.parse::<usize>() {
                Ok(d) if (1..=4096).contains(&d) => d,
                _ => {
                    return Err(invalid(
                        keys::EMBEDDING_DIM,
                        dim_text,
                        "expected a dimension in 1..=4096",
                    ));
                }
            };
            let metric_text = required(meta, keys::EMBEDDING_METRIC)?;
            let metric = Metric::parse(metric_text).ok_or_else(|| {
                invalid(
                    keys::EMBEDDING_METRIC,
                    metric_text,
                    "expected euclidean or cosine",
                )
            })?;
            if input.height.is_none() {
                return Err(invalid(
                    keys::INPUT_HEIGHT,
                    "dynamic",
                    "an embedder needs a fixed input size",
                ));
            }
            Some(EmbeddingSpec {
                dim,
                metric,
                threshold: parse_positive(meta, keys::THRESHOLD_DISTANCE)?,
                far: parse_positive(meta, keys::THRESHOLD_FAR)?,
                alignment: required(meta, keys::ALIGNMENT)?.to_string(),
            })
        } else {
            None
        };
        Ok(Contract {
            role,
            name: required(meta, keys::NAME)?.to_string(),
            source: meta.get(keys::SOURCE).cloned().unwrap_or_default(),
            licence: meta.get(keys::LICENCE).cloned().unwrap_or_default(),
            precision: meta
                .get(keys::PRECISION)
                .cloned()
                .unwrap_or_else(|| "fp32".into()),
            input,
            embedding,
        })
    }

    /// The key/value pairs to store in an ONNX file's `metadata_props`.
    pub fn to_metadata(&self) -> Vec<(String, String)> {
        let size = |s: Option<usize>| s.map_or_else(|| "dynamic".to_string(), |n| n.to_string());
        let triple = |t: [f32; 3]| format!("{},{},{}", t[0], t[1], t[2]);
        let mut out = vec![
            (keys::CONTRACT, CONTRACT_VERSION.to_string()),
            (keys::ROLE, self.role.as_str().to_string()),
            (keys::NAME, self.name.clone()),
            (keys::SOURCE, self.source.clone()),
            (keys::LICENCE, self.licence.clone()),
            (keys::PRECISION, self.precision.clone()),
            (keys::INPUT_LAYOUT, "NCHW".to_string()),
            (keys::INPUT_COLOR, self.input.color.clone()),
            (keys::INPUT_HEIGHT, size(self.input.height)),
            (keys::INPUT_WIDTH, size(self.input.width)),
            (keys::INPUT_MEAN, triple(self.input.mean)),
            (keys::INPUT_STD, triple(self.input.std)),
        ];
        if let Some(e) = &self.embedding {
            out.extend([
                (keys::EMBEDDING_DIM, e.dim.to_string()),
                (keys::EMBEDDING_METRIC, e.metric.as_str().to_string()),
                (keys::THRESHOLD_DISTANCE, e.threshold.to_string()),
                (keys::THRESHOLD_FAR, e.far.to_string()),
                (keys::ALIGNMENT, e.alignment.clone()),
            ]);
        }
        out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedder() -> Contract {
        Contract {
            role: Role::Embedder,
            name: "t".into(),
            source: "s".into(),
            licence: "CC0".into(),
            precision: "fp32".into(),
            input: InputSpec {
                height: Some(150),
                width: Some(150),
                color: "RGB".into(),
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            embedding: Some(EmbeddingSpec {
                dim: 128,
                metric: Metric::Euclidean,
                threshold: 0.6,
                far: 1e-3,
                alignment: "dlib-5pt-150-0.25".into(),
            }),
        }
    }

    fn meta(c: &Contract) -> BTreeMap<String, String> {
        c.to_metadata().into_iter().collect()
    }

    #[test]
    fn round_trips_through_metadata() {
        let c = embedder();
        assert_eq!(Contract::from_metadata(&meta(&c)).unwrap(), c);
    }

    #[test]
    fn each_required_key_is_named_when_missing() {
        let full = meta(&embedder());
        for key in full
            .keys()
            .filter(|k| ![keys::SOURCE, keys::LICENCE, keys::PRECISION].contains(&k.as_str()))
        {
            let mut m = full.clone();
            m.remove(key);
            let err = Contract::from_metadata(&m).unwrap_err();
            assert!(
                matches!(err, ContractError::Missing(k) if k == key),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn rejects_bad_values_naming_the_field() {
        for (key, value) in [
            (keys::ROLE, "classifier"),
            (keys::INPUT_LAYOUT, "NHWC"),
            (keys::INPUT_HEIGHT, "0"),
            (keys::INPUT_STD, "1,0,1"),
            (keys::INPUT_MEAN, "1,2"),
            (keys::EMBEDDING_DIM, "-3"),
            (keys::EMBEDDING_METRIC, "manhattan"),
            (keys::THRESHOLD_DISTANCE, "NaN"),
            (keys::CONTRACT, "99"),
        ] {
            let mut m = meta(&embedder());
            m.insert(key.to_string(), value.to_string());
            match Contract::from_metadata(&m).unwrap_err() {
                ContractError::Invalid { field, .. } => assert_eq!(field, key),
                other => panic!("{key}: unexpected {other}"),
            }
        }
    }
}
