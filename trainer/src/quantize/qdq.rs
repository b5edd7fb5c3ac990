//! The QDQ graph for NPU toolchains: the fp32 graph with `QuantizeLinear`→`DequantizeLinear` on
//! every activation read by a convolution, add or pool, int8 per-channel weights and int32 biases
//! behind `DequantizeLinear` (axis 0). The toolchain fuses each pattern into an integer op; tract
//! runs it in float (weights dequantised at load), so it simulates the int8 arithmetic.
//! A ReLU after a convolution is left between them unquantised, as NPU compilers expect to fuse it.

use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

use super::graph::{f32_tensor, prune_initializers, raw_tensor};
use super::qlinear::{
    Names, axis_attr, conv_parts, i8_bytes, i32_bytes, node, quantize_bias, quantize_weights,
};
use super::table::CalibrationTable;

/// Ops whose activation inputs get a Q/DQ pair.
const QUANTISED_INPUTS: &[&str] = &["Conv", "Add", "MaxPool", "AveragePool", "GlobalAveragePool"];

pub fn rewrite(graph: &pb::GraphProto, table: &CalibrationTable) -> anyhow::Result<pb::GraphProto> {
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut names = Names::of(graph);
    let mut out = pb::GraphProto {
        name: graph.name.clone(),
        input: graph.input.clone(),
        output: graph.output.clone(),
        initializer: graph.initializer.clone(),
        ..Default::default()
    };
    // Activation name -> its fake-quantised (Q then DQ) name.
    let mut qdq: HashMap<String, String> = HashMap::new();
    for n in &graph.node {
        let mut node_out = n.clone();
        if QUANTISED_INPUTS.contains(&n.op_type.as_str()) {
            for (k, input) in n.input.iter().enumerate() {
                if input.is_empty() || inits.contains_key(input.as_str()) {
                    continue;
                }
                if !qdq.contains_key(input) {
                    let r = table.range(input)?;
                    let s = names.derive(input, "_scale")?;
                    let z = names.derive(input, "_zero_point")?;
                    out.initializer.push(f32_tensor(&s, &[], &[r.scale]));
                    out.initializer
                        .push(raw_tensor(&z, &[], DataType::Uint8, vec![r.zero_point]));
                    let q = names.derive(input, "_q")?;
                    let dq = names.derive(input, "_dq")?;
                    out.node.push(node(
                        "QuantizeLinear",
                        names.derive(input, "_quantize")?,
                        &[input, &s, &z],
                        &q,
                    ));
                    out.node.push(node(
                        "DequantizeLinear",
                        names.derive(input, "_dequantize")?,
                        &[&q, &s, &z],
                        &dq,
                    ));
                    qdq.insert(input.clone(), dq);
                }
                node_out.input[k] = qdq[input].clone();
            }
        }
        if let Some(conv) = conv_parts(n, &inits)? {
            let x = &n.input[0];
            let x_scale = table.range(x)?.scale;
            let y = &n.output[0];
            let filters = conv.dims[0] as usize;
            let (wq, ws) = quantize_weights(&conv.weights, filters);
            let bq = quantize_bias(&conv.bias, x_scale, &ws);
            let bs: Vec<f32> = ws.iter().map(|w| w * x_scale).collect();
            let f = filters as i64;
            let wn = names.derive(y, "_w_int8")?;
            let wsn = names.derive(y, "_w_scale")?;
            let wzn = names.derive(y, "_w_zero_point")?;
            let bn = names.derive(y, "_b_int32")?;
            let bsn = names.derive(y, "_b_scale")?;
            let bzn = names.derive(y, "_b_zero_point")?;
            out.initializer
                .push(raw_tensor(&wn, &conv.dims, DataType::Int8, i8_bytes(&wq)));
            out.initializer.push(f32_tensor(&wsn, &[f], &ws));
            out.initializer
                .push(raw_tensor(&wzn, &[f], DataType::Int8, vec![0; filters]));
            out.initializer
                .push(raw_tensor(&bn, &[f], DataType::Int32, i32_bytes(&bq)));
            out.initializer.push(f32_tensor(&bsn, &[f], &bs));
            out.initializer.push(raw_tensor(
                &bzn,
                &[f],
                DataType::Int32,
                i32_bytes(&vec![0; filters]),
            ));
            let wdq = names.derive(y, "_w_dq")?;
            let bdq = names.derive(y, "_b_dq")?;
            let mut d = node(
                "DequantizeLinear",
                names.derive(y, "_w_dequantize")?,
                &[&wn, &wsn, &wzn],
                &wdq,
            );
            d.attribute.push(axis_attr(0));
            out.node.push(d);
            let mut d = node(
                "DequantizeLinear",
                names.derive(y, "_b_dequantize")?,
                &[&bn, &bsn, &bzn],
                &bdq,
            );
            d.attribute.push(axis_attr(0));
            out.node.push(d);
            node_out.input.truncate(1);
            node_out.input.push(wdq);
            node_out.input.push(bdq);
        }
        out.node.push(node_out);
    }
    prune_initializers(&mut out);
    Ok(out)
}
