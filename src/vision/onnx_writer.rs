//! A small builder for ONNX `ModelProto`s over `tract_onnx::pb`: the trainer's importers and
//! exporters write every model through it, and tests build tiny models with it.

use prost::Message;
use tract_onnx::pb;

use super::contract::Contract;

/// Opset written into every model; tract is tested against 9..=18.
pub const OPSET: i64 = 17;

pub struct GraphBuilder {
    graph: pb::GraphProto,
    next_id: usize,
}

fn attr_f(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

fn attr_i(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

/// A node attribute, in the few kinds our graphs use.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

fn value_info(
    name: &str,
    elem: pb::tensor_proto::DataType,
    dims: &[Option<i64>],
) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .enumerate()
        .map(|(i, d)| Dimension {
            value: Some(match d {
                Some(v) => Value::DimValue(*v),
                None => Value::DimParam(format!("d{i}")),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl GraphBuilder {
    /// `input_dims`: `None` marks a symbolic dimension.
    pub fn new(name: &str, input: &str, input_dims: &[Option<i64>]) -> GraphBuilder {
        let graph = pb::GraphProto {
            name: name.into(),
            input: vec![value_info(
                input,
                pb::tensor_proto::DataType::Float,
                input_dims,
            )],
            ..Default::default()
        };
        GraphBuilder { graph, next_id: 0 }
    }

    /// A fresh tensor name with a readable prefix.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}", self.next_id)
    }

    pub fn initializer_f32(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        assert_eq!(
            dims.iter().product::<usize>(),
            data.len(),
            "initializer {name}: dims and data disagree"
        );
        self.graph.initializer.push(pb::TensorProto {
            name: name.into(),
            dims: dims.iter().map(|d| *d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.to_string()
    }

    pub fn initializer_i64(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        assert_eq!(
            dims.iter().product::<usize>(),
            data.len(),
            "initializer {name}: dims and data disagree"
        );
        self.graph.initializer.push(pb::TensorProto {
            name: name.into(),
            dims: dims.iter().map(|d| *d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.to_string()
    }

    /// Adds a node and returns the name of its (first) output.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.node_with_outputs(op, inputs, std::slice::from_ref(&out), attrs);
        out
    }

    pub fn node_with_outputs(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[String],
        attrs: &[(&str, Attr)],
    ) {
        let attribute = attrs
            .iter()
            .map(|(n, a)| match a {
                Attr::Int(i) => attr_i(n, *i),
                Attr::Ints(v) => attr_ints(n, v),
                Attr::Float(f) => attr_f(n, *f),
            })
            .collect();
        let name = self.fresh(&format!("n_{}", op.to_ascii_lowercase()));
        self.graph.node.push(pb::NodeProto {
            op_type: op.into(),
            name,
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.to_vec(),
            attribute,
            ..Default::default()
        });
    }

    /// Declares a graph output (float32) with optional known dims.
    pub fn output(&mut self, name: &str, dims: &[Option<i64>]) {
        self.graph
            .output
            .push(value_info(name, pb::tensor_proto::DataType::Float, dims));
    }

    /// Wraps the graph into a model carrying the contract in `metadata_props`.
    pub fn into_model(self, contract: &Contract, producer: &str) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: 8,
            producer_name: producer.into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            graph: Some(self.graph),
            metadata_props: contract
                .to_metadata()
                .into_iter()
                .map(|(key, value)| pb::StringStringEntryProto { key, value })
                .collect(),
            ..Default::default()
        }
    }
}

pub fn encode(model: &pb::ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}
