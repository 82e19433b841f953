//! [`ExportTensor`]: one tensor of an export, and its bytes as both file formats store them.

use std::io::{self, Write};

/// One tensor to write: its key, shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportTensor {
    /// The key in the written state dict.
    pub key: String,
    /// The shape, PyTorch's layout.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<f32>,
}

/// Writes `values` as little-endian `f32`, in blocks (one small buffer, whatever the size).
pub(crate) fn write_f32_le(out: &mut impl Write, values: &[f32]) -> io::Result<()> {
    let mut buffer = Vec::with_capacity(4 * 8192);
    for block in values.chunks(8192) {
        buffer.clear();
        buffer.extend(block.iter().flat_map(|v| v.to_le_bytes()));
        out.write_all(&buffer)?;
    }
    Ok(())
}
