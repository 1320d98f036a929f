//! Checkpoint values the checkpoint tests build.

use neuron_host::checkpoint::pickle::{TensorValue, Value};
use neuron_plugin_api::DType;

/// A little-endian f32 tensor of `shape`.
pub fn f32_tensor(shape: &[u64], values: impl IntoIterator<Item = f32>) -> Value {
    Value::Tensor(TensorValue {
        dtype: DType::F32,
        shape: shape.to_vec(),
        data: values.into_iter().flat_map(f32::to_le_bytes).collect(),
    })
}
