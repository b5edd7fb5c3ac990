//! The tract-friendly int8 graph: every (non-grouped) convolution becomes a `QLinearConv`, which
//! tract runs with integer kernels (uint8 activations, per-channel int8 weights, int32 bias).
//! A ReLU that is a convolution's only reader is fused into it (a uint8 output with zero point 0
//! saturates negatives to 0, which is ReLU exactly). Everything else stays float between
//! `DequantizeLinear` / `QuantizeLinear`, because tract has no `QLinearAdd` and the residual adds,
//! pools and the fc layer are a small share of the work.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, bail, ensure};
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

use super::graph::{consumers, f32_tensor, prune_initializers, raw_tensor, tensor_f32};
use super::table::CalibrationTable;

/// Per-output-channel symmetric int8 weights: `w ≈ scale[o] * q`, q in -127..=127.
pub fn quantize_weights(w: &[f32], filters: usize) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / filters.max(1);
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(filters);
    for f in 0..filters {
        let row = &w[f * per..(f + 1) * per];
        let m = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        // An all-zero filter keeps scale 1 so that no scale is 0 (a DequantizeLinear requirement).
        let s = if m > 0.0 { m / 127.0 } else { 1.0 };
        scales.push(s);
        q.extend(
            row.iter()
                .map(|v| (v / s).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

/// int32 bias in the accumulator's units (`x_scale * w_scale[o]`).
pub fn quantize_bias(b: &[f32], x_scale: f32, w_scales: &[f32]) -> Vec<i32> {
    b.iter()
        .zip(w_scales)
        .map(|(b, ws)| {
            (f64::from(*b) / (f64::from(x_scale) * f64::from(*ws)))
                .round()
                .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
        })
        .collect()
}

/// A convolution the rewriters quantise: constant weights (and bias), one group.
pub struct ConvParts {
    pub weights: Vec<f32>,
    pub dims: Vec<i64>,
    pub bias: Vec<f32>,
}

pub fn conv_parts(
    node: &pb::NodeProto,
    inits: &HashMap<&str, &pb::TensorProto>,
) -> anyhow::Result<Option<ConvParts>> {
    if node.op_type != "Conv" {
        return Ok(None);
    }
    let group = super::graph::attr_int(node, "group").unwrap_or(1);
    // tract has no int8 depthwise kernel: grouped convolutions are faster left in float.
    if group != 1 {
        return Ok(None);
    }
    let Some(w) = node.input.get(1).and_then(|n| inits.get(n.as_str())) else {
        return Ok(None);
    };
    let weights = tensor_f32(w)?;
    let filters = *w.dims.first().context("a conv weight without dims")? as usize;
    ensure!(
        w.dims.len() == 4 && filters > 0,
        "conv weight `{}` has dims {:?}",
        w.name,
        w.dims
    );
    let bias = match node.input.get(2).filter(|n| !n.is_empty()) {
        Some(name) => match inits.get(name.as_str()) {
            Some(t) => tensor_f32(t)?,
            None => return Ok(None),
        },
        None => vec![0.0; filters],
    };
    ensure!(bias.len() == filters, "conv bias `{}` length", node.name);
    Ok(Some(ConvParts {
        weights,
        dims: w.dims.clone(),
        bias,
    }))
}

/// Tensor names new nodes add must not collide with the graph's own.
pub struct Names {
    taken: HashSet<String>,
}

impl Names {
    pub fn of(graph: &pb::GraphProto) -> Names {
        let mut taken: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
        taken.extend(graph.input.iter().map(|i| i.name.clone()));
        for n in &graph.node {
            taken.extend(n.output.iter().cloned());
            taken.insert(n.name.clone());
        }
        Names { taken }
    }

    pub fn derive(&mut self, base: &str, suffix: &str) -> anyhow::Result<String> {
        let name = format!("{base}{suffix}");
        if !self.taken.insert(name.clone()) {
            bail!("the graph already has a tensor named `{name}`; cannot rewrite it");
        }
        Ok(name)
    }
}

pub fn node(op: &str, name: String, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name,
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        ..Default::default()
    }
}

pub fn axis_attr(axis: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: "axis".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: axis,
        ..Default::default()
    }
}

pub fn i8_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|x| *x as u8).collect()
}

pub fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Builds the QLinearConv graph from a folded fp32 graph and a calibration table.
pub fn rewrite(graph: &pb::GraphProto, table: &CalibrationTable) -> anyhow::Result<pb::GraphProto> {
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let readers = consumers(graph);
    let mut names = Names::of(graph);
    let mut out = pb::GraphProto {
        name: graph.name.clone(),
        input: graph.input.clone(),
        output: graph.output.clone(),
        initializer: graph.initializer.clone(),
        ..Default::default()
    };
    // Tensors available as uint8: original name -> (uint8 tensor, scale initializer, zero point initializer).
    let mut quantised: HashMap<String, (String, String, String)> = HashMap::new();
    // Tensors available as f32 under their original name.
    let mut float: HashSet<String> = graph.input.iter().map(|i| i.name.clone()).collect();
    float.extend(inits.keys().map(|k| k.to_string()));
    let mut fused: HashSet<usize> = HashSet::new();

    // scale / zero point initializers of a tensor, made once.
    let params = |tensor: &str,
                  out: &mut pb::GraphProto,
                  names: &mut Names|
     -> anyhow::Result<(String, String)> {
        let r = table.range(tensor)?;
        let s = names.derive(tensor, "_scale")?;
        let z = names.derive(tensor, "_zero_point")?;
        out.initializer.push(f32_tensor(&s, &[], &[r.scale]));
        out.initializer
            .push(raw_tensor(&z, &[], DataType::Uint8, vec![r.zero_point]));
        Ok((s, z))
    };

    for (i, n) in graph.node.iter().enumerate() {
        if fused.contains(&i) {
            continue;
        }
        if let Some(conv) = conv_parts(n, &inits)? {
            let x = &n.input[0];
            if !quantised.contains_key(x) {
                let (s, z) = params(x, &mut out, &mut names)?;
                let q = names.derive(x, "_q")?;
                out.node.push(node(
                    "QuantizeLinear",
                    names.derive(x, "_quantize")?,
                    &[x, &s, &z],
                    &q,
                ));
                quantised.insert(x.clone(), (q, s, z));
            }
            let (xq, xs, xz) = quantised[x].clone();
            let x_scale = table.range(x)?.scale;
            // Fuse a ReLU that reads this convolution alone.
            let y = &n.output[0];
            let relu = (readers.get(y) == Some(&1))
                .then(|| {
                    graph
                        .node
                        .iter()
                        .enumerate()
                        .skip(i + 1)
                        .find(|(_, m)| m.op_type == "Relu" && m.input.first() == Some(y))
                })
                .flatten();
            let y = match relu {
                Some((j, r)) => {
                    fused.insert(j);
                    r.output[0].clone()
                }
                None => y.clone(),
            };
            let filters = conv.dims[0] as usize;
            let (wq, ws) = quantize_weights(&conv.weights, filters);
            let bq = quantize_bias(&conv.bias, x_scale, &ws);
            let wn = names.derive(&y, "_w_int8")?;
            let wsn = names.derive(&y, "_w_scale")?;
            let wzn = names.derive(&y, "_w_zero_point")?;
            let bn = names.derive(&y, "_b_int32")?;
            out.initializer
                .push(raw_tensor(&wn, &conv.dims, DataType::Int8, i8_bytes(&wq)));
            out.initializer
                .push(f32_tensor(&wsn, &[filters as i64], &ws));
            out.initializer
                .push(raw_tensor(&wzn, &[], DataType::Int8, vec![0]));
            out.initializer.push(raw_tensor(
                &bn,
                &[filters as i64],
                DataType::Int32,
                i32_bytes(&bq),
            ));
            let (ys, yz) = params(&y, &mut out, &mut names)?;
            let yq = names.derive(&y, "_q")?;
            let mut qc = node(
                "QLinearConv",
                n.name.clone(),
                &[&xq, &xs, &xz, &wn, &wsn, &wzn, &ys, &yz, &bn],
                &yq,
            );
            qc.attribute = n.attribute.clone();
            out.node.push(qc);
            quantised.insert(y, (yq, ys, yz));
            continue;
        }
        // A float node: dequantise what it reads that only exists as uint8, under the original name.
        for input in n.input.iter().filter(|s| !s.is_empty()) {
            if float.contains(input) {
                continue;
            }
            let (q, s, z) = quantised.get(input).cloned().with_context(|| {
                format!("node `{}` reads `{input}`, which nothing computes", n.name)
            })?;
            out.node.push(node(
                "DequantizeLinear",
                names.derive(input, "_dequantize")?,
                &[&q, &s, &z],
                input,
            ));
            float.insert(input.clone());
        }
        out.node.push(n.clone());
        float.extend(n.output.iter().cloned());
    }
    for o in &graph.output {
        if float.contains(&o.name) {
            continue;
        }
        let (q, s, z) = quantised
            .get(&o.name)
            .cloned()
            .with_context(|| format!("the graph output `{}` is computed by no node", o.name))?;
        out.node.push(node(
            "DequantizeLinear",
            names.derive(&o.name, "_dequantize")?,
            &[&q, &s, &z],
            &o.name,
        ));
    }
    prune_initializers(&mut out);
    Ok(out)
}
