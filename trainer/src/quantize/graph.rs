//! Reading the fp32 embedder and folding batch norm into its convolutions, on plain
//! `tract_onnx::pb` protos: the rewriters and the calibrator all start from the folded graph.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use lanewatch::vision::contract::{Contract, Role};
use lanewatch::vision::model::{Fingerprint, ModelFile};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

/// The fp32 model a quantisation starts from.
pub struct SourceModel {
    pub path: PathBuf,
    pub fingerprint: Fingerprint,
    pub contract: Contract,
    pub proto: pb::ModelProto,
}

impl SourceModel {
    /// Reads an fp32 lanewatch embedder; refuses anything else with an error naming the file.
    pub fn read(path: &Path) -> anyhow::Result<SourceModel> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the model {}", path.display()))?;
        // The box's own loader checks the contract, so a model it would refuse is refused here too.
        let file = ModelFile::from_bytes(path, &bytes)?;
        file.expect_role(Role::Embedder)?;
        ensure!(
            file.contract.precision == "fp32",
            "{} is already quantised (lanewatch.precision = {}); quantise the fp32 model",
            path.display(),
            file.contract.precision
        );
        let proto = pb::ModelProto::decode(bytes.as_slice())
            .with_context(|| format!("{} is not an ONNX model", path.display()))?;
        let graph = proto.graph.as_ref().context("no graph")?;
        ensure!(
            graph.input.len() == 1 && graph.output.len() == 1,
            "{}: an embedder has one input and one output, this graph has {} and {}",
            path.display(),
            graph.input.len(),
            graph.output.len()
        );
        Ok(SourceModel {
            path: path.to_path_buf(),
            fingerprint: file.fingerprint,
            contract: file.contract,
            proto,
        })
    }

    pub fn graph(&self) -> &pb::GraphProto {
        self.proto.graph.as_ref().expect("checked in read")
    }
}

/// An initializer's values as f32 (raw little-endian or `float_data`).
pub fn tensor_f32(t: &pb::TensorProto) -> anyhow::Result<Vec<f32>> {
    ensure!(
        t.data_type == DataType::Float as i32,
        "initializer `{}` is not float32 (data type {})",
        t.name,
        t.data_type
    );
    let n: i64 = t.dims.iter().product();
    let v: Vec<f32> = if !t.raw_data.is_empty() {
        ensure!(
            t.raw_data.len().is_multiple_of(4),
            "initializer `{}`: raw data is not a whole number of floats",
            t.name
        );
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    ensure!(
        v.len() as i64 == n,
        "initializer `{}`: {} values for dims {:?}",
        t.name,
        v.len(),
        t.dims
    );
    Ok(v)
}

pub fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn raw_tensor(name: &str, dims: &[i64], elem: DataType, raw: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: elem as i32,
        raw_data: raw,
        ..Default::default()
    }
}

pub fn attr_int(node: &pb::NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// How many nodes read each tensor (graph outputs count as readers).
pub fn consumers(graph: &pb::GraphProto) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for node in &graph.node {
        for i in &node.input {
            *n.entry(i.clone()).or_default() += 1;
        }
    }
    for o in &graph.output {
        *n.entry(o.name.clone()).or_default() += 1;
    }
    n
}

/// A per-channel constant (`[C]`, `[C,1,1]` or `[1,C,1,1]`) of length `channels`.
fn per_channel(t: &pb::TensorProto, channels: usize) -> Option<Vec<f32>> {
    let ones = t.dims.iter().filter(|d| **d == 1).count();
    let big: Vec<i64> = t.dims.iter().copied().filter(|d| *d != 1).collect();
    let shape_ok = match t.dims.len() {
        1 => t.dims[0] as usize == channels,
        3 => big.len() <= 1 && t.dims[0] as usize == channels && ones >= 2,
        4 => t.dims[0] == 1 && t.dims[1] as usize == channels && t.dims[2] == 1 && t.dims[3] == 1,
        _ => false,
    };
    shape_ok.then(|| tensor_f32(t).ok()).flatten()
}

/// Folds inference batch norm into the convolution before it: `BatchNormalization` nodes, and the
/// `Mul`/`Add` per-channel affine pairs dlib's `affine_con` becomes when not folded at import.
/// Returns how many were folded. Exact up to float rounding; the result is deterministic.
pub fn fold_batch_norm(graph: &mut pb::GraphProto) -> anyhow::Result<usize> {
    let mut folded = 0;
    loop {
        let inits: BTreeMap<String, usize> = graph
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let readers = consumers(graph);
        let producer: HashMap<&str, usize> = graph
            .node
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
            .collect();
        // One fold per pass keeps the bookkeeping trivial; graphs have tens of convolutions.
        let mut found = None;
        for (ni, node) in graph.node.iter().enumerate() {
            let Some(&ci) = node.input.first().and_then(|x| producer.get(x.as_str())) else {
                continue;
            };
            let conv = &graph.node[ci];
            if conv.op_type != "Conv" || readers.get(&conv.output[0]) != Some(&1) {
                continue;
            }
            let Some(&wi) = conv.input.get(1).and_then(|w| inits.get(w)) else {
                continue;
            };
            let filters = graph.initializer[wi].dims.first().copied().unwrap_or(0) as usize;
            let init = |k: usize| {
                node.input
                    .get(k)
                    .and_then(|n| inits.get(n))
                    .map(|i| &graph.initializer[*i])
            };
            let affine = match node.op_type.as_str() {
                "BatchNormalization" => {
                    let eps = node
                        .attribute
                        .iter()
                        .find(|a| a.name == "epsilon")
                        .map_or(1e-5, |a| a.f);
                    let get = |k| init(k).and_then(|t| per_channel(t, filters));
                    match (get(1), get(2), get(3), get(4)) {
                        (Some(s), Some(b), Some(m), Some(v)) => {
                            let g: Vec<f32> = s
                                .iter()
                                .zip(&v)
                                .map(|(s, v)| s / (v + eps).sqrt())
                                .collect();
                            let beta = (0..filters).map(|f| b[f] - m[f] * g[f]).collect();
                            Some((g, beta, ni, None))
                        }
                        _ => None,
                    }
                }
                "Mul" => {
                    let gamma = init(1).and_then(|t| per_channel(t, filters));
                    // The Add that follows, if it adds a per-channel constant to this Mul alone.
                    let add = (readers.get(&node.output[0]) == Some(&1))
                        .then(|| {
                            graph.node.iter().enumerate().find(|(_, n)| {
                                n.op_type == "Add" && n.input.first() == Some(&node.output[0])
                            })
                        })
                        .flatten()
                        .and_then(|(ai, a)| {
                            a.input
                                .get(1)
                                .and_then(|n| inits.get(n))
                                .and_then(|i| per_channel(&graph.initializer[*i], filters))
                                .map(|b| (ai, b))
                        });
                    gamma.map(|g| match add {
                        Some((ai, b)) => (g, b, ni, Some(ai)),
                        None => (g, vec![0.0; filters], ni, None),
                    })
                }
                _ => None,
            };
            if let Some((gamma, beta, first, second)) = affine {
                found = Some((ci, wi, gamma, beta, first, second));
                break;
            }
        }
        let Some((ci, wi, gamma, beta, first, second)) = found else {
            return Ok(folded);
        };
        let mut w = tensor_f32(&graph.initializer[wi])?;
        let per_filter = w.len() / gamma.len();
        for (f, g) in gamma.iter().enumerate() {
            w[f * per_filter..(f + 1) * per_filter]
                .iter_mut()
                .for_each(|v| *v *= g);
        }
        let mut b = match graph.node[ci].input.get(2) {
            Some(name) => {
                let t = inits
                    .get(name)
                    .map(|i| &graph.initializer[*i])
                    .with_context(|| format!("conv bias `{name}` is not an initializer"))?;
                tensor_f32(t)?
            }
            None => vec![0.0; gamma.len()],
        };
        for f in 0..gamma.len() {
            b[f] = b[f] * gamma[f] + beta[f];
        }
        // New initializer names: the originals may be shared with other nodes.
        let conv_name = graph.node[ci].output[0].clone();
        let wdims = graph.initializer[wi].dims.clone();
        let wn = format!("{conv_name}_w_folded");
        let bn = format!("{conv_name}_b_folded");
        graph.initializer.push(f32_tensor(&wn, &wdims, &w));
        graph
            .initializer
            .push(f32_tensor(&bn, &[gamma.len() as i64], &b));
        let last = second.unwrap_or(first);
        let out = graph.node[last].output[0].clone();
        let conv = &mut graph.node[ci];
        conv.input.truncate(1);
        conv.input.push(wn);
        conv.input.push(bn);
        conv.output[0] = out;
        let mut drop = vec![first];
        drop.extend(second);
        drop.sort_unstable();
        for i in drop.into_iter().rev() {
            graph.node.remove(i);
        }
        prune_initializers(graph);
        folded += 1;
        if folded > 10_000 {
            bail!("batch-norm folding does not terminate");
        }
    }
}

/// Drops initializers no node reads.
pub fn prune_initializers(graph: &mut pb::GraphProto) {
    let used: std::collections::HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    graph.initializer.retain(|t| used.contains(&t.name));
}

/// Every float tensor the graph computes, in node order: what calibration observes.
pub fn activation_names(graph: &pb::GraphProto) -> Vec<String> {
    graph
        .node
        .iter()
        .filter(|n| !matches!(n.op_type.as_str(), "Constant" | "Shape"))
        .flat_map(|n| n.output.iter().cloned())
        .collect()
}
