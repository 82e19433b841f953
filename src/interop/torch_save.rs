//! Writing a state dict as `torch.save` writes it, for `torch.load(path, weights_only=True)`.
//!
//! The file is a zip archive of stored (uncompressed) entries under one folder, `archive/`:
//!
//! - `archive/data.pkl`: a pickle (protocol 2) of an `OrderedDict` from key to tensor, each
//!   tensor rebuilt by `torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False,
//!   OrderedDict())`, its storage a persistent id `('storage', torch.FloatStorage, 'N',
//!   'cpu', numel)`. The dict's `_metadata` attribute (set by `BUILD`, as `state_dict()`
//!   sets it) carries the export's metadata under the key `med_crossvit`: `load_state_dict`
//!   looks there only for module names, so the entry is inert;
//! - `archive/data/N`: storage `N`, the tensor's values as little-endian `f32`, aligned to 64
//!   bytes in the file as PyTorch aligns them;
//! - `archive/version` (`3`) and `archive/byteorder` (`little`).
//!
//! Only the pickle opcodes that `torch.save` itself emits are used, so both PyTorch's
//! weights-only unpickler and the crate's own reader ([`load_checkpoint`](super::load_checkpoint))
//! read the file.

use std::collections::BTreeMap;
use std::io::{self, Seek, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::tensor::{ExportTensor, write_f32_le};

/// The folder inside the archive (any name works; PyTorch uses the file's stem).
const ARCHIVE: &str = "archive";

/// Writes `tensors` (in their order) with `metadata` as a `torch.save` zip archive to `out`.
///
/// # Errors
///
/// The writer's error.
pub(crate) fn write_torch<W: Write + Seek>(
    out: W,
    tensors: &[ExportTensor],
    metadata: &BTreeMap<String, String>,
) -> io::Result<()> {
    let mut zip = ZipWriter::new(out);
    let options = |bytes: usize| {
        SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(DateTime::default())
            .large_file(bytes >= u32::MAX as usize)
    };
    zip.start_file(format!("{ARCHIVE}/data.pkl"), options(0))
        .map_err(io::Error::other)?;
    zip.write_all(&pickle(tensors, metadata))?;
    zip.start_file(format!("{ARCHIVE}/byteorder"), options(0))
        .map_err(io::Error::other)?;
    zip.write_all(b"little")?;
    for (i, tensor) in tensors.iter().enumerate() {
        let bytes = 4 * tensor.values.len();
        zip.start_file(
            format!("{ARCHIVE}/data/{i}"),
            options(bytes).with_alignment(64),
        )
        .map_err(io::Error::other)?;
        write_f32_le(&mut zip, &tensor.values)?;
    }
    zip.start_file(format!("{ARCHIVE}/version"), options(0))
        .map_err(io::Error::other)?;
    zip.write_all(b"3\n")?;
    zip.finish().map_err(io::Error::other)?;
    Ok(())
}

/// Pickle opcodes (protocol 2), by their names in Python's `pickletools`.
mod op {
    pub const PROTO: u8 = 0x80;
    pub const GLOBAL: u8 = b'c';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const EMPTY_DICT: u8 = b'}';
    pub const MARK: u8 = b'(';
    pub const TUPLE: u8 = b't';
    pub const REDUCE: u8 = b'R';
    pub const BINUNICODE: u8 = b'X';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const BININT: u8 = b'J';
    pub const LONG1: u8 = 0x8a;
    pub const NEWFALSE: u8 = 0x89;
    pub const BINPERSID: u8 = b'Q';
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const BUILD: u8 = b'b';
    pub const STOP: u8 = b'.';
}

/// A pickle being written.
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, op: u8) {
        self.0.push(op);
    }

    fn global(&mut self, module: &str, name: &str) {
        self.op(op::GLOBAL);
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn str(&mut self, s: &str) {
        self.op(op::BINUNICODE);
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, v: usize) {
        if v < 1 << 8 {
            self.op(op::BININT1);
            self.0.push(v as u8);
        } else if v < 1 << 16 {
            self.op(op::BININT2);
            self.0.extend((v as u16).to_le_bytes());
        } else if v <= i32::MAX as usize {
            self.op(op::BININT);
            self.0.extend((v as i32).to_le_bytes());
        } else {
            // Two's complement, little-endian, with a zero byte on top to keep it positive.
            self.op(op::LONG1);
            self.0.push(9);
            self.0.extend((v as u64).to_le_bytes());
            self.0.push(0);
        }
    }

    fn tuple(&mut self, values: &[usize]) {
        if values.is_empty() {
            self.op(op::EMPTY_TUPLE);
            return;
        }
        self.op(op::MARK);
        for &v in values {
            self.int(v);
        }
        self.op(op::TUPLE);
    }

    /// `collections.OrderedDict()`.
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(op::EMPTY_TUPLE);
        self.op(op::REDUCE);
    }

    /// `_rebuild_tensor_v2(storage N, 0, shape, contiguous strides, False, OrderedDict())`.
    fn tensor(&mut self, storage: usize, shape: &[usize]) {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(op::MARK);
        self.op(op::MARK);
        self.str("storage");
        self.global("torch", "FloatStorage");
        self.str(&storage.to_string());
        self.str("cpu");
        self.int(shape.iter().product());
        self.op(op::TUPLE);
        self.op(op::BINPERSID);
        self.int(0);
        self.tuple(shape);
        let mut strides = vec![1usize; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        self.tuple(&strides);
        self.op(op::NEWFALSE);
        self.ordered_dict();
        self.op(op::TUPLE);
        self.op(op::REDUCE);
    }
}

/// The `data.pkl` of the state dict `tensors` with `metadata` in its `_metadata`.
fn pickle(tensors: &[ExportTensor], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut p = Pickle(Vec::new());
    p.op(op::PROTO);
    p.0.push(2);
    p.ordered_dict();
    if !tensors.is_empty() {
        p.op(op::MARK);
        for (i, tensor) in tensors.iter().enumerate() {
            p.str(&tensor.key);
            p.tensor(i, &tensor.shape);
        }
        p.op(op::SETITEMS);
    }
    // BUILD with {'_metadata': {'med_crossvit': {key: value, …}}}.
    p.op(op::EMPTY_DICT);
    p.str("_metadata");
    p.op(op::EMPTY_DICT);
    p.str("med_crossvit");
    p.op(op::EMPTY_DICT);
    if !metadata.is_empty() {
        p.op(op::MARK);
        for (k, v) in metadata {
            p.str(k);
            p.str(v);
        }
        p.op(op::SETITEMS);
    }
    p.op(op::SETITEM);
    p.op(op::SETITEM);
    p.op(op::BUILD);
    p.op(op::STOP);
    p.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_take_the_smallest_opcode_that_holds_them() {
        let mut p = Pickle(Vec::new());
        for v in [7, 300, 70_000, 1 << 40] {
            p.int(v);
        }
        let mut want = vec![op::BININT1, 7, op::BININT2, 44, 1, op::BININT];
        want.extend(70_000i32.to_le_bytes());
        want.extend([op::LONG1, 9]);
        want.extend((1u64 << 40).to_le_bytes());
        want.push(0);
        assert_eq!(p.0, want);
    }

    #[test]
    fn strides_are_row_major() {
        let mut p = Pickle(Vec::new());
        p.tensor(0, &[2, 3, 4]);
        let text = &p.0;
        // (2, 3, 4) then (12, 4, 1) follow the storage's offset 0.
        let shape = [
            op::MARK,
            op::BININT1,
            2,
            op::BININT1,
            3,
            op::BININT1,
            4,
            op::TUPLE,
        ];
        let strides = [
            op::MARK,
            op::BININT1,
            12,
            op::BININT1,
            4,
            op::BININT1,
            1,
            op::TUPLE,
        ];
        let at = text.windows(8).position(|w| w == shape).unwrap();
        assert_eq!(&text[at + 8..at + 16], strides);
    }
}
