//! Loading ONNX networks with tract: read the file once, check its contract, fix the input shape,
//! optimise, and hand back a runnable plan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::contract::{Contract, ContractError, Role};

/// sha256 of the model file: binds watchlists to the embedder that made them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(bytes).into())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "model file {path} is not a valid ONNX file ({why}); it may be truncated or not a model at all"
    )]
    NotOnnx { path: PathBuf, why: String },
    #[error("model file {path}: {source}")]
    Contract {
        path: PathBuf,
        source: ContractError,
    },
    #[error("model file {path} is a {found} network, but a {expected} is needed here")]
    WrongRole {
        path: PathBuf,
        expected: Role,
        found: Role,
    },
    #[error("model file {path}: {what}")]
    Shape { path: PathBuf, what: String },
    #[error("model file {path} could not be prepared by tract: {why}")]
    Tract { path: PathBuf, why: String },
}

/// Largest model file read (the bundled embedder is 22 MB).
pub const MAX_MODEL_BYTES: u64 = 512 << 20;

/// The parsed file: contract, fingerprint and ONNX graph, before any input shape is fixed.
/// MTCNN's P-Net is planned once per pyramid scale from one `ModelFile`.
pub struct ModelFile {
    pub path: PathBuf,
    pub fingerprint: Fingerprint,
    pub contract: Contract,
    proto: pb::ModelProto,
}

impl ModelFile {
    pub fn open(path: &Path) -> Result<ModelFile, ModelError> {
        // Bounded, regular files only: `/dev/zero` or a FIFO given as a model is refused, not read.
        let bytes =
            crate::fsio::read_regular(path, MAX_MODEL_BYTES).map_err(|source| ModelError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_bytes(path, &bytes)
    }

    /// `path` is only used to name the file in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<ModelFile, ModelError> {
        let path = path.to_path_buf();
        let proto = pb::ModelProto::decode(bytes).map_err(|e| ModelError::NotOnnx {
            path: path.clone(),
            why: e.to_string(),
        })?;
        if proto.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
            return Err(ModelError::NotOnnx {
                path,
                why: "it holds no graph".into(),
            });
        }
        let meta: BTreeMap<String, String> = proto
            .metadata_props
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();
        let contract = Contract::from_metadata(&meta).map_err(|source| ModelError::Contract {
            path: path.clone(),
            source,
        })?;
        Ok(ModelFile {
            path,
            fingerprint: Fingerprint::of(bytes),
            contract,
            proto,
        })
    }

    pub fn expect_role(&self, expected: Role) -> Result<(), ModelError> {
        if self.contract.role != expected {
            return Err(ModelError::WrongRole {
                path: self.path.clone(),
                expected,
                found: self.contract.role,
            });
        }
        Ok(())
    }

    /// Builds an optimised plan for input `[batch, 3, height, width]`. For fixed-size networks
    /// `height`/`width` must equal the contract's.
    pub fn plan(&self, batch: usize, height: usize, width: usize) -> Result<Model, ModelError> {
        let shape_err = |what: String| ModelError::Shape {
            path: self.path.clone(),
            what,
        };
        let tract_err = |e: anyhow::Error| ModelError::Tract {
            path: self.path.clone(),
            why: format!("{e:#}"),
        };
        let input = &self.contract.input;
        if let (Some(h), Some(w)) = (input.height, input.width)
            && (h, w) != (height, width)
        {
            return Err(shape_err(format!(
                "the contract says the input is {h}x{w} (lanewatch.input.height/width) but {height}x{width} was asked for"
            )));
        }
        if batch == 0 || height == 0 || width == 0 {
            return Err(shape_err(format!(
                "cannot plan for an empty input {batch}x3x{height}x{width}"
            )));
        }
        let graph = self.proto.graph.as_ref().expect("checked in from_bytes");
        if graph.input.len() != 1 {
            return Err(shape_err(format!(
                "the graph must have exactly one input, it has {}",
                graph.input.len()
            )));
        }
        check_declared_input(&graph.input[0], batch, height, width).map_err(shape_err)?;

        let mut model = tract_onnx::onnx()
            .model_for_proto_model(&self.proto)
            .map_err(tract_err)?;
        model
            .set_input_fact(0, f32::fact([batch, 3, height, width]).into())
            .map_err(tract_err)?;
        let typed = model.into_optimized().map_err(tract_err)?;
        let outputs: Vec<TypedFact> = typed
            .output_outlets()
            .map_err(tract_err)?
            .iter()
            .map(|o| typed.outlet_fact(*o).cloned())
            .collect::<TractResult<_>>()
            .map_err(tract_err)?;
        let output_shapes: Vec<Vec<usize>> = outputs
            .iter()
            .map(|f| f.shape.as_concrete().map(|s| s.to_vec()))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                shape_err("the output shapes are not fixed by the input shape".into())
            })?;
        if let Some(e) = &self.contract.embedding {
            let want = vec![batch, e.dim];
            if output_shapes.len() != 1 || output_shapes[0] != want {
                return Err(shape_err(format!(
                    "the contract says lanewatch.embedding.dim = {} but the network outputs {:?}",
                    e.dim, output_shapes
                )));
            }
        }
        let plan = typed.into_runnable().map_err(tract_err)?;
        Ok(Model {
            plan,
            input_shape: [batch, 3, height, width],
            output_shapes,
            contract: Arc::new(self.contract.clone()),
            fingerprint: self.fingerprint,
            path: self.path.clone(),
        })
    }

    /// Plans a fixed-size network at its contract size.
    pub fn plan_fixed(&self, batch: usize) -> Result<Model, ModelError> {
        match (self.contract.input.height, self.contract.input.width) {
            (Some(h), Some(w)) => self.plan(batch, h, w),
            _ => Err(ModelError::Shape {
                path: self.path.clone(),
                what: "the network has a dynamic input size; give one explicitly".into(),
            }),
        }
    }
}

/// Compares the graph's own declared input dims (where concrete) with what we are about to feed.
fn check_declared_input(
    input: &pb::ValueInfoProto,
    batch: usize,
    h: usize,
    w: usize,
) -> Result<(), String> {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as TypeValue;
    let Some(TypeValue::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Ok(());
    };
    if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err(format!("input `{}` must be float32", input.name));
    }
    let Some(shape) = &t.shape else { return Ok(()) };
    if shape.dim.len() != 4 {
        return Err(format!(
            "input `{}` has rank {}, an NCHW image needs rank 4",
            input.name,
            shape.dim.len()
        ));
    }
    for (i, (d, want)) in shape.dim.iter().zip([batch, 3, h, w]).enumerate() {
        if let Some(Value::DimValue(v)) = d.value
            && v > 0
            && v as usize != want
        {
            let field = [
                "batch",
                "channels",
                "lanewatch.input.height",
                "lanewatch.input.width",
            ][i];
            return Err(format!(
                "input `{}` is declared with {field} = {v} in the graph, but {want} is needed",
                input.name
            ));
        }
    }
    Ok(())
}

/// An optimised, runnable network with a fixed input shape. Cheap to share across threads.
#[derive(Clone)]
pub struct Model {
    plan: Arc<TypedRunnableModel>,
    pub input_shape: [usize; 4],
    pub output_shapes: Vec<Vec<usize>>,
    pub contract: Arc<Contract>,
    pub fingerprint: Fingerprint,
    pub path: PathBuf,
}

impl Model {
    /// Loads a fixed-size network and checks its role.
    pub fn load(path: &Path, role: Role, batch: usize) -> Result<Model, ModelError> {
        let file = ModelFile::open(path)?;
        file.expect_role(role)?;
        file.plan_fixed(batch)
    }

    /// Runs on one NCHW input tensor whose shape must be `input_shape`.
    pub fn run(&self, input: Tensor) -> anyhow::Result<TVec<TValue>> {
        anyhow::ensure!(
            input.shape() == self.input_shape,
            "input shape {:?} does not match the planned {:?}",
            input.shape(),
            self.input_shape
        );
        self.plan.run(tvec!(input.into()))
    }

    /// Time spent in each kind of operation over `runs` runs of `input`, largest first: where a
    /// network's time goes in tract (`lanewatch bench --models --profile`).
    pub fn profile(
        &self,
        input: &Tensor,
        runs: usize,
    ) -> anyhow::Result<Vec<(String, std::time::Duration)>> {
        let mut by_op: BTreeMap<String, std::time::Duration> = BTreeMap::new();
        let mut state = self.plan.spawn()?;
        for _ in 0..runs.max(1) {
            state.run_plan_with_eval(
                tvec!(input.clone().into()),
                |ctx, op_state, node, inputs| {
                    let started = std::time::Instant::now();
                    let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                    *by_op.entry(node.op().name().to_string()).or_default() += started.elapsed();
                    out
                },
            )?;
        }
        let mut v: Vec<_> = by_op.into_iter().collect();
        v.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        Ok(v)
    }
}
