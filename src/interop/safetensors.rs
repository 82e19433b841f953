//! Writing a `.safetensors` file: the format of Hugging Face's `safetensors` library, which
//! PyTorch, NumPy and JAX users load without running any code from the file.
//!
//! # Layout
//!
//! - 8 bytes: `N`, the length of the header, a little-endian `u64`;
//! - `N` bytes: the header, UTF-8 JSON: one entry per tensor,
//!   `"key": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}`, offsets relative
//!   to the start of the data and in the order of the data, plus `"__metadata__"`, a map of
//!   strings to strings. Padded with spaces to a multiple of 8 bytes, so that every tensor
//!   starts aligned;
//! - the data: each tensor's values, row-major, little-endian `f32`, one after the other.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::tensor::{ExportTensor, write_f32_le};

/// Writes `tensors` (in their order) and `metadata` as a safetensors file to `out`.
///
/// # Errors
///
/// The writer's error.
pub(crate) fn write_safetensors(
    out: &mut impl Write,
    tensors: &[ExportTensor],
    metadata: &BTreeMap<String, String>,
) -> io::Result<()> {
    let header = header(tensors, metadata);
    out.write_all(&(header.len() as u64).to_le_bytes())?;
    out.write_all(&header)?;
    for tensor in tensors {
        write_f32_le(out, &tensor.values)?;
    }
    Ok(())
}

/// The header's JSON bytes, padded with spaces to a multiple of 8.
fn header(tensors: &[ExportTensor], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    map.insert("__metadata__".into(), serde_json::json!(metadata));
    let mut offset = 0usize;
    for tensor in tensors {
        let end = offset + 4 * tensor.values.len();
        map.insert(
            tensor.key.clone(),
            serde_json::json!({
                "dtype": "F32",
                "shape": tensor.shape,
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
    }
    let mut bytes = serde_json::to_vec(&map).expect("strings and numbers always serialize");
    while !bytes.len().is_multiple_of(8) {
        bytes.push(b' ');
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_padded_and_the_offsets_follow_the_data() {
        let tensors = vec![
            ExportTensor {
                key: "a".into(),
                shape: vec![2],
                values: vec![1.0, 2.0],
            },
            ExportTensor {
                key: "b".into(),
                shape: vec![1, 1],
                values: vec![-0.5],
            },
        ];
        let metadata = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let mut bytes = Vec::new();
        write_safetensors(&mut bytes, &tensors, &metadata).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(header["__metadata__"]["k"], "v");
        assert_eq!(header["a"]["data_offsets"], serde_json::json!([0, 8]));
        assert_eq!(header["b"]["data_offsets"], serde_json::json!([8, 12]));
        assert_eq!(header["b"]["shape"], serde_json::json!([1, 1]));
        let data = &bytes[8 + n..];
        assert_eq!(data.len(), 12);
        assert_eq!(f32::from_le_bytes(data[8..12].try_into().unwrap()), -0.5);
    }
}
