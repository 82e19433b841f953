//! Reader for PyTorch `torch.save` files that hold one 2-D floating-point tensor.
//!
//! CLAM writes each slide's tile features as `pt_files/{slide}.pt`: a `torch.save` of a
//! single `[tiles, dim]` tensor (usually float32, sometimes float16). Since PyTorch 1.6 such
//! a file is a zip archive with uncompressed ("stored") entries:
//!
//! * `{archive}/data.pkl`: a pickle whose root is
//!   `torch._utils._rebuild_tensor_v2(persistent_load(('storage', torch.FloatStorage, key,
//!   location, numel)), storage_offset, size, stride, requires_grad, backward_hooks)`;
//! * `{archive}/data/{key}`: the raw little-endian bytes of the storage;
//! * `{archive}/byteorder` (`little`), `{archive}/version` and a few other small entries.
//!
//! [`PtMatrix::open`] reads only the zip directory and the pickle; the tensor bytes are read
//! on demand by [`PtMatrix::read_rows`] and [`PtMatrix::read_all`], straight from the file
//! for stored entries. The input is treated as untrusted: every size is checked against the
//! file's length before it is used, and malformed files give a [`PtError`], never a panic.
//!
//! The legacy (non-zip) format written by PyTorch < 1.6 or with
//! `_use_new_zipfile_serialization=False` is detected and rejected with a clear message.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use half::{bf16, f16};
use zip::CompressionMethod;
use zip::ZipArchive;
use zip::result::ZipError;

/// Largest `data.pkl` accepted (a bare tensor's pickle is about 150 bytes).
const MAX_PICKLE_BYTES: u64 = 4 << 20;
/// Largest number of pickle opcodes executed; bounds the stack, the memo and all values.
const MAX_PICKLE_OPS: usize = 1 << 20;
/// Deepest nesting of tuples accepted in the pickle (keeps drops and recursion shallow).
const MAX_TUPLE_DEPTH: u32 = 64;
/// Largest `byteorder` entry read.
const MAX_BYTEORDER_BYTES: u64 = 64;
/// Largest plausible deflate expansion ratio (the format's limit is about 1032:1).
const MAX_DEFLATE_RATIO: u64 = 1100;
/// Number of dict keys quoted in error messages.
const MAX_KEYS_SHOWN: usize = 8;

/// Element type of the stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PtDtype {
    /// 32-bit IEEE float (`torch.float32`, `FloatStorage`).
    F32,
    /// 16-bit IEEE float (`torch.float16`, `HalfStorage`).
    F16,
    /// bfloat16 (`torch.bfloat16`, `BFloat16Storage`).
    BF16,
    /// 64-bit IEEE float (`torch.float64`, `DoubleStorage`).
    F64,
}

impl PtDtype {
    /// Bytes per element.
    fn size(self) -> usize {
        match self {
            PtDtype::F32 => 4,
            PtDtype::F16 | PtDtype::BF16 => 2,
            PtDtype::F64 => 8,
        }
    }

    /// PyTorch's name for the dtype.
    fn name(self) -> &'static str {
        match self {
            PtDtype::F32 => "float32",
            PtDtype::F16 => "float16",
            PtDtype::BF16 => "bfloat16",
            PtDtype::F64 => "float64",
        }
    }

    /// Appends the little-endian elements in `bytes` to `out` as `f32`.
    fn convert(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            PtDtype::F32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            PtDtype::F16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
            ),
            PtDtype::BF16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
            ),
            PtDtype::F64 => out.extend(bytes.chunks_exact(8).map(|c| {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            })),
        }
    }
}

/// Why a .pt file cannot be used.
#[derive(Debug)]
pub enum PtError {
    /// The file could not be read (OS error).
    Io(std::io::Error),
    /// Not a readable torch.save file (not a zip, no data.pkl, bad pickle, legacy format,
    /// missing storage, truncated data...). The string says what, in a short lowercase phrase.
    Format(String),
    /// A readable torch.save file that does not hold a 2-D floating-point tensor (a dict, a
    /// 1-D or 3-D tensor, an integer tensor, ...). The string says what it found.
    NotMatrix(String),
}

impl fmt::Display for PtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PtError::Io(e) => write!(f, "{e}"),
            PtError::Format(m) | PtError::NotMatrix(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for PtError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PtError::Io(e) => Some(e),
            PtError::Format(_) | PtError::NotMatrix(_) => None,
        }
    }
}

type Result<T> = std::result::Result<T, PtError>;

fn format_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(PtError::Format(msg.into()))
}

/// OS errors stay [`PtError::Io`]; errors made up by the zip/deflate code (bad data, early
/// end of file, checksum mismatch) mean the file is malformed.
fn io_err(e: io::Error, what: &str) -> PtError {
    if e.raw_os_error().is_some() {
        PtError::Io(e)
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        PtError::Format(format!("{what}: unexpected end of file (truncated?)"))
    } else {
        PtError::Format(format!("{what}: {e}"))
    }
}

fn zip_err(e: ZipError, what: &str) -> PtError {
    match e {
        ZipError::Io(e) => io_err(e, what),
        other => PtError::Format(format!("{what}: {other}")),
    }
}

fn to_usize(v: u64, what: &str) -> Result<usize> {
    usize::try_from(v).or_else(|_| format_err(format!("{what} is too large ({v})")))
}

/// Where the storage bytes are in the file.
#[derive(Debug, Clone)]
enum DataLoc {
    /// An uncompressed entry whose bytes start at this file offset.
    Stored { start: u64 },
    /// A deflated entry: the zip entry with this index is decompressed on each read.
    Deflated { index: usize },
}

/// A 2-D floating-point tensor saved with `torch.save`, opened lazily.
///
/// Only the shape and layout are read by [`PtMatrix::open`]; each read reopens the file, so
/// one `PtMatrix` can be read from several threads at once and holds no file descriptor.
#[derive(Debug, Clone)]
pub struct PtMatrix {
    path: PathBuf,
    rows: usize,
    cols: usize,
    dtype: PtDtype,
    /// Element offset of `[0, 0]` in the storage.
    offset: usize,
    /// Element strides of the two dimensions.
    row_stride: usize,
    col_stride: usize,
    data: DataLoc,
}

impl PtMatrix {
    /// Opens the file and reads its zip directory and pickle only (not the tensor data).
    pub fn open(path: &Path) -> std::result::Result<PtMatrix, PtError> {
        let file = File::open(path).map_err(PtError::Io)?;
        let file_len = file.metadata().map_err(PtError::Io)?.len();
        let mut reader = BufReader::new(file);
        check_magic(&mut reader)?;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| io_err(e, "cannot rewind the file"))?;
        let mut zip = ZipArchive::new(reader).map_err(|e| zip_err(e, "not a valid zip archive"))?;

        let (prefix, pkl_index) = find_data_pkl(&zip)?;
        check_byteorder(&mut zip, &prefix)?;
        let pickle = read_small_entry(&mut zip, pkl_index, MAX_PICKLE_BYTES, file_len, "data.pkl")?;
        let root = Unpickler::new(&pickle).load()?;
        let tensor = match root {
            Val::Tensor(t) => t,
            other => {
                return Err(PtError::NotMatrix(format!(
                    "{}, not a tensor",
                    describe(&other)
                )));
            }
        };
        let dtype = tensor_dtype(&tensor)?;
        let (rows, cols, row_stride, col_stride) = match (&tensor.size[..], &tensor.stride[..]) {
            (&[r, c], &[sr, sc]) => (r, c, sr, sc),
            _ => {
                let shape = shape_string(&tensor.size);
                let dt = if dtype == PtDtype::F32 {
                    String::new()
                } else {
                    format!(" {}", dtype.name())
                };
                return Err(PtError::NotMatrix(format!(
                    "a {}-D{dt} tensor of shape {shape}",
                    tensor.size.len()
                )));
            }
        };

        // The storage entry.
        let name = format!("{prefix}/data/{}", tensor.storage.key);
        let index = zip.index_for_name(&name).ok_or_else(|| {
            PtError::Format(format!("missing storage entry '{name}' in the zip archive"))
        })?;
        let entry = zip
            .by_index_raw(index)
            .map_err(|e| zip_err(e, "cannot read the storage entry"))?;
        if entry.encrypted() {
            return format_err("the storage entry is encrypted");
        }
        let size = entry.size();
        let csize = entry.compressed_size();
        let start = entry
            .data_start()
            .ok_or_else(|| PtError::Format("storage entry has no data offset".into()))?;
        if start.checked_add(csize).is_none_or(|end| end > file_len) {
            return format_err("storage entry extends past the end of the file (truncated?)");
        }
        let data = match entry.compression() {
            CompressionMethod::Stored => {
                if size != csize {
                    return format_err("stored storage entry has inconsistent sizes");
                }
                DataLoc::Stored { start }
            }
            CompressionMethod::Deflated => {
                if size > csize.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1024) {
                    return format_err("storage entry has an implausible compression ratio");
                }
                DataLoc::Deflated { index }
            }
            other => {
                return format_err(format!(
                    "storage entry uses unsupported compression method {other}"
                ));
            }
        };
        drop(entry);

        // Storage size: declared in the pickle, and present in the file.
        let elem = dtype.size() as u64;
        let declared_bytes = if tensor.storage.untyped {
            tensor.storage.numel
        } else {
            tensor
                .storage
                .numel
                .checked_mul(elem)
                .ok_or_else(|| PtError::Format("storage size in data.pkl overflows".into()))?
        };
        if declared_bytes > size {
            return format_err(format!(
                "storage entry holds {size} bytes but data.pkl declares {declared_bytes} (truncated or inconsistent file)"
            ));
        }
        let available = to_usize(declared_bytes / elem, "storage size")?;

        let rows = to_usize(rows, "row count")?;
        let cols = to_usize(cols, "column count")?;
        let row_stride = to_usize(row_stride, "row stride")?;
        let col_stride = to_usize(col_stride, "column stride")?;
        let offset = to_usize(tensor.offset, "storage offset")?;
        let numel = rows
            .checked_mul(cols)
            .ok_or_else(|| PtError::Format("tensor shape overflows".into()))?;
        if numel > 0 {
            let last = (rows - 1)
                .checked_mul(row_stride)
                .and_then(|a| {
                    (cols - 1)
                        .checked_mul(col_stride)
                        .and_then(|b| a.checked_add(b))
                })
                .and_then(|a| a.checked_add(offset))
                .ok_or_else(|| PtError::Format("tensor extent overflows".into()))?;
            if last >= available {
                return format_err(format!(
                    "tensor of shape [{rows}, {cols}] at offset {offset} with strides [{row_stride}, {col_stride}] does not fit in its storage of {available} elements (truncated or inconsistent file)"
                ));
            }
            if numel > available {
                return format_err(format!(
                    "tensor of shape [{rows}, {cols}] has more elements than its storage of {available} (overlapping strides are not supported)"
                ));
            }
        }
        Ok(PtMatrix {
            path: path.to_path_buf(),
            rows,
            cols,
            dtype,
            offset,
            row_stride,
            col_stride,
            data,
        })
    }

    /// Number of rows (tiles).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (feature dimension).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element type stored in the file (values are always returned as `f32`).
    #[allow(dead_code)] // The tile reader converts every type; the tests check it.
    pub fn dtype(&self) -> PtDtype {
        self.dtype
    }

    /// The given rows (any order, repeats allowed), row-major, converted to f32.
    ///
    /// A row index `>= rows()` is an `Err(PtError::Format(..))` naming the row.
    pub fn read_rows(&self, rows: &[usize]) -> std::result::Result<Vec<f32>, PtError> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.rows) {
            return format_err(format!(
                "row {bad} is out of range (the tensor has {} rows)",
                self.rows
            ));
        }
        let total = rows
            .len()
            .checked_mul(self.cols)
            .ok_or_else(|| PtError::Format("too many rows requested".into()))?;
        if total == 0 {
            return Ok(Vec::new());
        }
        let es = self.dtype.size();
        let mut source = match self.data {
            DataLoc::Stored { start } => {
                let file = File::open(&self.path).map_err(PtError::Io)?;
                Source::File { file, start }
            }
            DataLoc::Deflated { index } => {
                // Decompress up to the last element needed.
                let max_row = rows.iter().copied().max().unwrap_or(0);
                let end = self.elem_index(max_row, self.cols - 1) + 1;
                Source::Memory(self.read_deflated_prefix(index, end * es)?)
            }
        };

        let mut out = Vec::with_capacity(total);
        let mut buf = Vec::new();
        if self.col_stride == 1 || self.cols == 1 {
            // Each row is contiguous; consecutive rows are too when row_stride == cols.
            let merge = self.row_stride == self.cols;
            let mut i = 0;
            while i < rows.len() {
                let first = rows[i];
                let mut n = 1;
                while merge && i + n < rows.len() && rows[i + n] == first + n {
                    n += 1;
                }
                let lo = self.elem_index(first, 0);
                let count = if merge { n * self.cols } else { self.cols };
                source.read(lo * es, count * es, &mut buf)?;
                self.dtype.convert(&buf, &mut out);
                i += if merge { n } else { 1 };
            }
        } else {
            // General strides: read the span covering all requested rows once, then gather.
            let min_row = rows.iter().copied().min().unwrap_or(0);
            let max_row = rows.iter().copied().max().unwrap_or(0);
            let lo = self.elem_index(min_row, 0);
            let hi = self.elem_index(max_row, self.cols - 1);
            source.read(lo * es, (hi - lo + 1) * es, &mut buf)?;
            for &r in rows {
                for c in 0..self.cols {
                    let at = (self.elem_index(r, c) - lo) * es;
                    let bytes = buf
                        .get(at..at + es)
                        .ok_or_else(|| PtError::Format("internal: gather out of range".into()))?;
                    self.dtype.convert(bytes, &mut out);
                }
            }
        }
        Ok(out)
    }

    /// All rows, row-major, converted to f32.
    pub fn read_all(&self) -> std::result::Result<Vec<f32>, PtError> {
        let all: Vec<usize> = (0..self.rows).collect();
        self.read_rows(&all)
    }

    /// Storage element index of `[row, col]`. Cannot overflow for in-range indices: `open`
    /// checked that the last element's index fits in the storage.
    fn elem_index(&self, row: usize, col: usize) -> usize {
        self.offset + row * self.row_stride + col * self.col_stride
    }

    /// Decompresses the first `len` bytes of a deflated storage entry.
    fn read_deflated_prefix(&self, index: usize, len: usize) -> Result<Vec<u8>> {
        let file = File::open(&self.path).map_err(PtError::Io)?;
        let mut zip = ZipArchive::new(BufReader::new(file))
            .map_err(|e| zip_err(e, "not a valid zip archive"))?;
        let entry = zip
            .by_index(index)
            .map_err(|e| zip_err(e, "cannot read the storage entry"))?;
        // `len` is bounded by the storage size checked in `open`.
        let mut buf = Vec::with_capacity(len);
        entry
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| io_err(e, "cannot decompress the storage entry"))?;
        if buf.len() < len {
            return format_err("storage entry is shorter than its tensor (truncated?)");
        }
        Ok(buf)
    }
}

/// The bytes of a storage, read on demand.
enum Source {
    File { file: File, start: u64 },
    Memory(Vec<u8>),
}

impl Source {
    /// Fills `buf` with `len` bytes starting `at` bytes into the storage.
    fn read(&mut self, at: usize, len: usize, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        match self {
            Source::File { file, start } => {
                let pos = start
                    .checked_add(at as u64)
                    .ok_or_else(|| PtError::Format("storage offset overflows".into()))?;
                file.seek(SeekFrom::Start(pos))
                    .map_err(|e| io_err(e, "cannot seek to the tensor data"))?;
                buf.resize(len, 0);
                file.read_exact(buf)
                    .map_err(|e| io_err(e, "cannot read the tensor data"))?;
            }
            Source::Memory(data) => {
                let bytes = at
                    .checked_add(len)
                    .and_then(|end| data.get(at..end))
                    .ok_or_else(|| PtError::Format("tensor data truncated".into()))?;
                buf.extend_from_slice(bytes);
            }
        }
        Ok(())
    }
}

/// Rejects files that are clearly not zip archives, recognising the legacy pickle format.
fn check_magic(reader: &mut impl Read) -> Result<()> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match reader.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e, "cannot read the file")),
        }
    }
    let magic = &magic[..n];
    if magic.is_empty() {
        format_err("empty file")
    } else if magic.starts_with(b"PK") {
        Ok(())
    } else if magic[0] == 0x80 {
        format_err(
            "not a zip-format torch.save file (legacy PyTorch < 1.6 format?): re-save it with a current PyTorch",
        )
    } else {
        format_err("not a torch.save file (not a zip archive)")
    }
}

/// Finds the single `{archive}/data.pkl` entry; returns the archive prefix and entry index.
fn find_data_pkl<R: Read + Seek>(zip: &ZipArchive<R>) -> Result<(String, usize)> {
    let mut found: Option<(String, usize)> = None;
    for (index, name) in zip.file_names_raw().enumerate() {
        let Some(prefix) = name.strip_suffix(b"/data.pkl") else {
            continue;
        };
        if prefix.is_empty() || prefix.contains(&b'/') {
            continue;
        }
        let Ok(prefix) = std::str::from_utf8(prefix) else {
            return format_err("the archive name is not valid utf-8");
        };
        if found.is_some() {
            return format_err("the zip archive holds several data.pkl entries");
        }
        found = Some((prefix.to_owned(), index));
    }
    found.ok_or_else(|| {
        PtError::Format("no data.pkl in the zip archive (not a torch.save file?)".into())
    })
}

/// Rejects big-endian files; a missing `byteorder` entry (old PyTorch) means little-endian.
fn check_byteorder<R: Read + Seek>(zip: &mut ZipArchive<R>, prefix: &str) -> Result<()> {
    let Some(index) = zip.index_for_name(&format!("{prefix}/byteorder")) else {
        return Ok(());
    };
    let bytes = read_small_entry(zip, index, MAX_BYTEORDER_BYTES, u64::MAX, "byteorder")?;
    match bytes.trim_ascii() {
        b"little" => Ok(()),
        b"big" => format_err("big-endian .pt files are not supported"),
        _ => format_err("unknown byteorder in the zip archive"),
    }
}

/// Reads a whole entry of at most `max` bytes.
fn read_small_entry<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    index: usize,
    max: u64,
    file_len: u64,
    what: &str,
) -> Result<Vec<u8>> {
    let entry = zip
        .by_index(index)
        .map_err(|e| zip_err(e, &format!("cannot read {what}")))?;
    if entry.size() > max {
        return format_err(format!("{what} is too large ({} bytes)", entry.size()));
    }
    let cap = entry.size().min(file_len).min(max);
    let mut buf = Vec::with_capacity(to_usize(cap, what)?);
    entry
        .take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(e, &format!("cannot read {what}")))?;
    if buf.len() as u64 > max {
        return format_err(format!("{what} is too large"));
    }
    Ok(buf)
}

fn shape_string(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

fn article(word: &str) -> &'static str {
    match word.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o') => "an",
        _ => "a",
    }
}

/// The tensor's element type, or `NotMatrix` naming a non-floating-point one.
fn tensor_dtype(t: &TensorRef) -> Result<PtDtype> {
    let name: &str = match &t.dtype_name {
        Some(name) => name,
        None => match t.storage.class.as_str() {
            "FloatStorage" => return Ok(PtDtype::F32),
            "HalfStorage" => return Ok(PtDtype::F16),
            "BFloat16Storage" => return Ok(PtDtype::BF16),
            "DoubleStorage" => return Ok(PtDtype::F64),
            "LongStorage" => "int64",
            "IntStorage" => "int32",
            "ShortStorage" => "int16",
            "CharStorage" => "int8",
            "ByteStorage" => "uint8",
            "BoolStorage" => "bool",
            "ComplexFloatStorage" => "complex64",
            "ComplexDoubleStorage" => "complex128",
            "ComplexHalfStorage" => "complex32",
            "QInt8Storage" => "qint8",
            "QUInt8Storage" => "quint8",
            "QInt32Storage" => "qint32",
            "QUInt4x2Storage" => "quint4x2",
            "QUInt2x4Storage" => "quint2x4",
            other => other,
        },
    };
    match name {
        "float32" | "float" => Ok(PtDtype::F32),
        "float16" | "half" => Ok(PtDtype::F16),
        "bfloat16" => Ok(PtDtype::BF16),
        "float64" | "double" => Ok(PtDtype::F64),
        _ => {
            let shape = shape_string(&t.size);
            Err(PtError::NotMatrix(format!(
                "{} {name} tensor of shape {shape}",
                article(name)
            )))
        }
    }
}

/// A short description of a pickle value for error messages.
fn describe(v: &Val) -> String {
    match v {
        Val::None => "None".into(),
        Val::Bool => "a bool".into(),
        Val::Int(_) | Val::BigInt => "an int".into(),
        Val::Float => "a float".into(),
        Val::Str(_) => "a string".into(),
        Val::Bytes => "a bytes object".into(),
        Val::Tuple(t) => format!("a tuple of {} items", t.items.len()),
        Val::List(n) => format!("a list of {n} items"),
        Val::Set => "a set".into(),
        Val::Dict(d) => {
            if d.keys.is_empty() {
                format!("a dict of {} items", d.len)
            } else {
                let keys: Vec<String> = d.keys.iter().map(|k| format!("'{k}'")).collect();
                let more = if d.len > d.keys.len() { ", ..." } else { "" };
                format!("a dict (keys {}{more})", keys.join(", "))
            }
        }
        Val::Global(g) => format!("a reference to {}.{}", g.module, g.name),
        Val::Storage(_) => "a bare storage".into(),
        Val::Tensor(_) => "a tensor".into(),
        Val::Object(name) => format!("a {name} object"),
    }
}

// ---------------------------------------------------------------------------------------
// Pickle interpreter (the subset of opcodes `torch.save` emits, plus a few harmless others).

/// An immutable tuple with its nesting depth.
#[derive(Debug)]
struct Tuple {
    items: Vec<Val>,
    depth: u32,
}

/// What we remember about a dict: its length and its first few string keys.
#[derive(Debug, Clone, Default)]
struct DictInfo {
    len: usize,
    keys: Vec<String>,
}

#[derive(Debug)]
struct Global {
    module: String,
    name: String,
}

/// A `persistent_load(('storage', class, key, location, numel))` result.
#[derive(Debug)]
struct StorageRef {
    class: String,
    key: String,
    /// Elements for typed storages, bytes for `UntypedStorage`.
    numel: u64,
    untyped: bool,
}

/// The arguments of a `_rebuild_tensor*` call.
#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: u64,
    size: Vec<u64>,
    stride: Vec<u64>,
    /// The explicit dtype of `_rebuild_tensor_v3` (e.g. `float32`).
    dtype_name: Option<String>,
}

/// A pickle value. Containers other than tuples keep only what error messages need, so no
/// value is ever copied deeply and mutation through the memo is irrelevant.
#[derive(Debug, Clone)]
enum Val {
    None,
    Bool,
    Int(i64),
    BigInt,
    Float,
    Str(Rc<str>),
    Bytes,
    Tuple(Rc<Tuple>),
    List(usize),
    Dict(Rc<DictInfo>),
    Set,
    Global(Rc<Global>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    Object(Rc<str>),
}

impl Val {
    fn depth(&self) -> u32 {
        match self {
            Val::Tuple(t) => t.depth,
            _ => 0,
        }
    }
}

fn make_tuple(items: Vec<Val>) -> Result<Val> {
    let depth = 1 + items.iter().map(Val::depth).max().unwrap_or(0);
    if depth > MAX_TUPLE_DEPTH {
        return format_err("pickle nests tuples too deeply");
    }
    Ok(Val::Tuple(Rc::new(Tuple { items, depth })))
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Val>,
    marks: Vec<usize>,
    memo: HashMap<u32, Val>,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8]) -> Self {
        Unpickler {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let bytes = self
            .pos
            .checked_add(n)
            .and_then(|end| data.get(self.pos..end))
            .ok_or_else(|| PtError::Format("data.pkl is truncated".into()))?;
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn len_u32(&mut self) -> Result<usize> {
        let n = self.u32()?;
        to_usize(u64::from(n), "pickle length")
    }

    fn len_u64(&mut self) -> Result<usize> {
        let n = u64::from_le_bytes(self.array()?);
        to_usize(n, "pickle length")
    }

    fn len_i32(&mut self) -> Result<usize> {
        let n = i32::from_le_bytes(self.array()?);
        usize::try_from(n).or_else(|_| format_err("negative length in data.pkl"))
    }

    /// A `\n`-terminated line (GLOBAL arguments).
    fn line(&mut self) -> Result<String> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| PtError::Format("data.pkl is truncated".into()))?;
        let line = self.take(n)?;
        self.pos += 1;
        Ok(String::from_utf8_lossy(line).into_owned())
    }

    fn string(&mut self, n: usize) -> Result<Val> {
        let bytes = self.take(n)?;
        Ok(Val::Str(Rc::from(String::from_utf8_lossy(bytes).as_ref())))
    }

    fn push(&mut self, v: Val) {
        // The stack cannot outgrow MAX_PICKLE_OPS: every opcode pushes at most one value.
        self.stack.push(v);
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Val> {
        if self.stack.len() <= self.floor() {
            return format_err("data.pkl pops from an empty stack");
        }
        self.stack
            .pop()
            .ok_or_else(|| PtError::Format("data.pkl pops from an empty stack".into()))
    }

    fn top(&mut self) -> Result<&mut Val> {
        if self.stack.len() <= self.floor() {
            return format_err("data.pkl uses an empty stack");
        }
        self.stack
            .last_mut()
            .ok_or_else(|| PtError::Format("data.pkl uses an empty stack".into()))
    }

    fn pop_mark(&mut self) -> Result<Vec<Val>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| PtError::Format("data.pkl has no MARK to pop to".into()))?;
        if mark > self.stack.len() {
            return format_err("data.pkl has an invalid MARK");
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<()> {
        let v =
            self.memo.get(&key).cloned().ok_or_else(|| {
                PtError::Format(format!("data.pkl reads missing memo entry {key}"))
            })?;
        self.push(v);
        Ok(())
    }

    fn int(&mut self, bytes: &[u8]) -> Val {
        if bytes.len() > 8 {
            return Val::BigInt;
        }
        let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
        let mut le = if negative { [0xff; 8] } else { [0; 8] };
        le[..bytes.len()].copy_from_slice(bytes);
        Val::Int(i64::from_le_bytes(le))
    }

    /// Runs the pickle to its STOP opcode and returns the root value.
    fn load(mut self) -> Result<Val> {
        for _ in 0..MAX_PICKLE_OPS {
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let proto = self.u8()?;
                    if proto > 5 {
                        return format_err(format!("unsupported pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    // FRAME
                    self.take(8)?;
                }
                b'.' => return self.pop(), // STOP
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Val::Global(Rc::new(Global { module, name })));
                }
                0x93 => {
                    // STACK_GLOBAL
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Val::Str(module), Val::Str(name)) = (module, name) else {
                        return format_err("STACK_GLOBAL arguments are not strings in data.pkl");
                    };
                    self.push(Val::Global(Rc::new(Global {
                        module: module.to_string(),
                        name: name.to_string(),
                    })));
                }
                0x8c | b'U' => {
                    // SHORT_BINUNICODE, SHORT_BINSTRING
                    let n = usize::from(self.u8()?);
                    let v = self.string(n)?;
                    self.push(v);
                }
                b'X' => {
                    let n = self.len_u32()?;
                    let v = self.string(n)?;
                    self.push(v);
                }
                0x8d => {
                    // BINUNICODE8
                    let n = self.len_u64()?;
                    let v = self.string(n)?;
                    self.push(v);
                }
                b'T' => {
                    // BINSTRING
                    let n = self.len_i32()?;
                    let v = self.string(n)?;
                    self.push(v);
                }
                b'C' => {
                    // SHORT_BINBYTES
                    let n = usize::from(self.u8()?);
                    self.take(n)?;
                    self.push(Val::Bytes);
                }
                b'B' => {
                    let n = self.len_u32()?;
                    self.take(n)?;
                    self.push(Val::Bytes);
                }
                0x8e | 0x96 => {
                    // BINBYTES8, BYTEARRAY8
                    let n = self.len_u64()?;
                    self.take(n)?;
                    self.push(Val::Bytes);
                }
                b')' => self.push(make_tuple(Vec::new())?),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(make_tuple(items)?);
                }
                0x85..=0x87 => {
                    // TUPLE1, TUPLE2, TUPLE3
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(make_tuple(items)?);
                }
                b']' => self.push(Val::List(0)),
                b'l' => {
                    let n = self.pop_mark()?.len();
                    self.push(Val::List(n));
                }
                b'}' => self.push(Val::Dict(Rc::default())),
                b'd' => {
                    let items = self.pop_mark()?;
                    let mut dict = DictInfo::default();
                    add_items(&mut dict, &items)?;
                    self.push(Val::Dict(Rc::new(dict)));
                }
                0x8f => self.push(Val::Set), // EMPTY_SET
                0x90 => {
                    // ADDITEMS
                    self.pop_mark()?;
                    self.top()?;
                }
                0x91 => {
                    // FROZENSET
                    self.pop_mark()?;
                    self.push(Val::Set);
                }
                b'a' => {
                    self.pop()?;
                    if let Val::List(n) = self.top()? {
                        *n += 1;
                    }
                }
                b'e' => {
                    let k = self.pop_mark()?.len();
                    if let Val::List(n) = self.top()? {
                        *n += k;
                    }
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    if let Val::Dict(d) = self.top()? {
                        add_items(Rc::make_mut(d), &[key, value])?;
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if let Val::Dict(d) = self.top()? {
                        add_items(Rc::make_mut(d), &items)?;
                    } else if !items.len().is_multiple_of(2) {
                        return format_err("SETITEMS with an odd number of items in data.pkl");
                    }
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Val::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Val::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Val::Int(i64::from(v)));
                }
                0x8a => {
                    // LONG1
                    let n = usize::from(self.u8()?);
                    let bytes = self.take(n)?;
                    let v = self.int(bytes);
                    self.push(v);
                }
                0x8b => {
                    // LONG4
                    let n = self.len_i32()?;
                    let bytes = self.take(n)?;
                    let v = self.int(bytes);
                    self.push(v);
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Val::Float);
                }
                0x88 | 0x89 => self.push(Val::Bool), // NEWTRUE, NEWFALSE
                b'N' => self.push(Val::None),
                b'Q' => {
                    // BINPERSID
                    let pid = self.pop()?;
                    let storage = persistent_load(&pid)?;
                    self.push(storage);
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = reduce(&callable, &args, 0)?;
                    self.push(v);
                }
                b'b' => {
                    // BUILD: the state is not needed.
                    self.pop()?;
                    self.top()?;
                }
                0x81 => {
                    // NEWOBJ
                    self.pop()?;
                    let cls = self.pop()?;
                    self.push(new_object(&cls));
                }
                0x92 => {
                    // NEWOBJ_EX
                    self.pop()?;
                    self.pop()?;
                    let cls = self.pop()?;
                    self.push(new_object(&cls));
                }
                b'q' => {
                    let key = self.u8()?;
                    self.memo_put(u32::from(key))?;
                }
                b'r' => {
                    let key = self.u32()?;
                    self.memo_put(key)?;
                }
                0x94 => {
                    // MEMOIZE
                    let key = u32::try_from(self.memo.len())
                        .or_else(|_| format_err("data.pkl memo is too large"))?;
                    self.memo_put(key)?;
                }
                b'h' => {
                    let key = self.u8()?;
                    self.memo_get(u32::from(key))?;
                }
                b'j' => {
                    let key = self.u32()?;
                    self.memo_get(key)?;
                }
                other => {
                    let shown = if other.is_ascii_graphic() {
                        format!(" ('{}')", char::from(other))
                    } else {
                        String::new()
                    };
                    return format_err(format!(
                        "unsupported pickle opcode 0x{other:02x}{shown} in data.pkl"
                    ));
                }
            }
        }
        format_err("data.pkl is too complex")
    }
}

/// Records `key, value` pairs into a dict summary.
fn add_items(dict: &mut DictInfo, items: &[Val]) -> Result<()> {
    if !items.len().is_multiple_of(2) {
        return format_err("dict with an odd number of items in data.pkl");
    }
    for pair in items.chunks_exact(2) {
        dict.len += 1;
        if dict.keys.len() < MAX_KEYS_SHOWN
            && let Val::Str(key) = &pair[0]
        {
            let key: String = key.chars().take(64).collect();
            dict.keys.push(key);
        }
    }
    Ok(())
}

fn new_object(cls: &Val) -> Val {
    match cls {
        Val::Global(g) => Val::Object(Rc::from(format!("{}.{}", g.module, g.name).as_str())),
        _ => Val::Object(Rc::from("python")),
    }
}

/// `persistent_load(('storage', class, key, location, numel))`.
fn persistent_load(pid: &Val) -> Result<Val> {
    let Val::Tuple(t) = pid else {
        return format_err("persistent id in data.pkl is not a tuple");
    };
    let items = &t.items;
    match items.first() {
        Some(Val::Str(s)) if &**s == "storage" => {}
        _ => return format_err("unsupported persistent id in data.pkl"),
    }
    let (Some(Val::Global(class)), Some(key), Some(Val::Int(numel))) =
        (items.get(1), items.get(2), items.get(4))
    else {
        return format_err("malformed storage reference in data.pkl");
    };
    let key = match key {
        Val::Str(s) => s.to_string(),
        Val::Int(i) => i.to_string(),
        _ => return format_err("malformed storage key in data.pkl"),
    };
    let numel =
        u64::try_from(*numel).or_else(|_| format_err("negative storage size in data.pkl"))?;
    Ok(Val::Storage(Rc::new(StorageRef {
        class: class.name.clone(),
        key,
        numel,
        untyped: class.name == "UntypedStorage",
    })))
}

/// Applies `callable(*args)` for the callables that matter; anything else is an opaque object.
fn reduce(callable: &Val, args: &Val, depth: u32) -> Result<Val> {
    let Val::Tuple(args) = args else {
        return format_err("REDUCE arguments in data.pkl are not a tuple");
    };
    let Val::Global(g) = callable else {
        return Ok(Val::Object(Rc::from("python")));
    };
    let args = &args.items;
    match (g.module.as_str(), g.name.as_str()) {
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3") => {
            rebuild_tensor(args, g.name == "_rebuild_tensor_v3")
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => args
            .first()
            .cloned()
            .ok_or_else(|| PtError::Format("parameter without data in data.pkl".into())),
        ("torch._tensor", "_rebuild_from_type_v2") if depth < 4 => {
            // (func, new_type, args, state): a tensor subclass; rebuild the plain tensor.
            match (args.first(), args.get(2)) {
                (Some(func), Some(inner)) => reduce(func, inner, depth + 1),
                _ => format_err("malformed tensor subclass in data.pkl"),
            }
        }
        ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => {
            Ok(Val::Dict(Rc::default()))
        }
        ("builtins" | "__builtin__", "list") => Ok(Val::List(0)),
        ("builtins" | "__builtin__", "set" | "frozenset") => Ok(Val::Set),
        (module, name) => Ok(Val::Object(Rc::from(format!("{module}.{name}").as_str()))),
    }
}

fn uint_tuple(v: Option<&Val>, what: &str) -> Result<Vec<u64>> {
    let Some(Val::Tuple(t)) = v else {
        return format_err(format!("tensor {what} in data.pkl is not a tuple"));
    };
    t.items
        .iter()
        .map(|item| match item {
            Val::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        })
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| PtError::Format(format!("bad tensor {what} in data.pkl")))
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`.
fn rebuild_tensor(args: &[Val], v3: bool) -> Result<Val> {
    let Some(Val::Storage(storage)) = args.first() else {
        return format_err("tensor in data.pkl is not built from a storage");
    };
    let offset = match args.get(1) {
        Some(Val::Int(i)) => u64::try_from(*i).ok(),
        _ => None,
    }
    .ok_or_else(|| PtError::Format("bad tensor storage offset in data.pkl".into()))?;
    let size = uint_tuple(args.get(2), "size")?;
    let stride = uint_tuple(args.get(3), "stride")?;
    if size.len() != stride.len() {
        return format_err("tensor size and stride differ in length in data.pkl");
    }
    let dtype_name = if v3 {
        match args.get(6) {
            Some(Val::Global(g)) => Some(g.name.clone()),
            _ => return format_err("tensor without a dtype in data.pkl"),
        }
    } else {
        None
    };
    Ok(Val::Tensor(Rc::new(TensorRef {
        storage: Rc::clone(storage),
        offset,
        size,
        stride,
        dtype_name,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixture directory, relative to the crate root (written by its
    /// `make_pt_fixtures.py`).
    const FIXTURES: &str = "tests/fixtures/pt";

    fn fixture(name: &str) -> PathBuf {
        // Read when the test runs: the binary may have been built from another checkout.
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
            .join(FIXTURES)
            .join(name)
    }

    /// A temporary file path unique to this process and `tag`.
    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("pt-test-{}-{tag}.pt", std::process::id()))
    }

    /// `expected.json` has one line per file:
    /// `"name.pt": {"shape": [r, c], "values": [[...], ...]}`. Parsed by hand to avoid a
    /// dev-dependency; returns (rows, cols, flat values).
    fn expected(name: &str) -> (usize, usize, Vec<f32>) {
        let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
        let key = format!("\"{name}\":");
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&key))
            .unwrap_or_else(|| panic!("{name} not in expected.json"));
        let numbers = |field: &str| -> Vec<f64> {
            let at = line.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
            let rest = line[at..].trim_start();
            let mut depth = 0;
            let mut end = 0;
            for (i, ch) in rest.char_indices() {
                match ch {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            rest[..end]
                .split([',', '[', ']'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect()
        };
        let shape = numbers("shape");
        let values = numbers("values").into_iter().map(|v| v as f32).collect();
        (shape[0] as usize, shape[1] as usize, values)
    }

    #[test]
    fn send_sync() {
        fn check<T: Send + Sync>() {}
        check::<PtMatrix>();
        check::<PtError>();
    }

    #[test]
    fn readable_files_match_expected() {
        for (name, dtype) in [
            ("f32.pt", PtDtype::F32),
            ("f16.pt", PtDtype::F16),
            ("bf16.pt", PtDtype::BF16),
            ("f64.pt", PtDtype::F64),
            ("offset.pt", PtDtype::F32),
            ("transposed.pt", PtDtype::F32),
            ("empty.pt", PtDtype::F32),
            ("sliced.pt", PtDtype::F32),
            ("param.pt", PtDtype::F32),
            ("deflated.pt", PtDtype::F32),
        ] {
            let m = PtMatrix::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (rows, cols, values) = expected(name);
            assert_eq!(
                (m.rows(), m.cols(), m.dtype()),
                (rows, cols, dtype),
                "{name}"
            );
            assert_eq!(values.len(), rows * cols, "{name}");
            assert_eq!(m.read_all().unwrap(), values, "{name}");
        }
    }

    #[test]
    fn read_rows_any_order() {
        for name in [
            "f32.pt",
            "f16.pt",
            "bf16.pt",
            "f64.pt",
            "offset.pt",
            "transposed.pt",
            "sliced.pt",
            "deflated.pt",
        ] {
            let m = PtMatrix::open(&fixture(name)).unwrap();
            let (_, cols, values) = expected(name);
            let rows = [3, 1, 1, 4, 0, 2, 3, 4];
            let got = m.read_rows(&rows).unwrap();
            let want: Vec<f32> = rows
                .iter()
                .flat_map(|&r| values[r * cols..(r + 1) * cols].iter().copied())
                .collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(m.read_rows(&[]).unwrap(), Vec::<f32>::new());
        }
    }

    #[test]
    fn out_of_range_row_is_an_error() {
        let m = PtMatrix::open(&fixture("f32.pt")).unwrap();
        match m.read_rows(&[0, 5]) {
            Err(PtError::Format(msg)) => assert!(msg.contains("row 5"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            m.read_rows(&[usize::MAX]),
            Err(PtError::Format(_))
        ));
        let empty = PtMatrix::open(&fixture("empty.pt")).unwrap();
        assert!(matches!(empty.read_rows(&[0]), Err(PtError::Format(_))));
    }

    #[test]
    fn bad_files_give_the_right_error() {
        for name in ["one_d.pt", "three_d.pt", "int64.pt", "dict.pt"] {
            match PtMatrix::open(&fixture(name)) {
                Err(PtError::NotMatrix(msg)) => eprintln!("{name}: {msg}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        match PtMatrix::open(&fixture("legacy.pt")) {
            Err(PtError::Format(msg)) => assert!(msg.contains("legacy"), "{msg}"),
            other => panic!("{other:?}"),
        }
        match PtMatrix::open(&fixture("big_endian.pt")) {
            Err(PtError::Format(msg)) => assert!(msg.contains("big-endian"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            PtMatrix::open(&fixture("expected.json")),
            Err(PtError::Format(_))
        ));
        assert!(matches!(
            PtMatrix::open(&fixture("does-not-exist.pt")),
            Err(PtError::Io(_))
        ));
    }

    #[test]
    fn messages_name_what_was_found() {
        let msg = |name| PtMatrix::open(&fixture(name)).unwrap_err().to_string();
        assert_eq!(msg("one_d.pt"), "a 1-D tensor of shape [7]");
        assert_eq!(msg("three_d.pt"), "a 3-D tensor of shape [2, 3, 4]");
        assert_eq!(msg("int64.pt"), "an int64 tensor of shape [5, 4]");
        assert_eq!(msg("dict.pt"), "a dict (keys 'features'), not a tensor");
    }

    #[test]
    fn threads_share_one_matrix() {
        let m = PtMatrix::open(&fixture("f32.pt")).unwrap();
        let all = m.read_all().unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (m, all) = (&m, &all);
                s.spawn(move || {
                    for _ in 0..50 {
                        let r = t % m.rows();
                        let got = m.read_rows(&[r]).unwrap();
                        assert_eq!(got, all[r * m.cols()..(r + 1) * m.cols()]);
                    }
                });
            }
        });
    }

    /// Opens and fully reads `bytes` written to `path`; must never panic.
    fn try_bytes(path: &Path, bytes: &[u8]) -> Option<Vec<f32>> {
        std::fs::write(path, bytes).unwrap();
        let m = PtMatrix::open(path).ok()?;
        let _ = m.read_rows(&[m.rows().saturating_sub(1), 0]);
        m.read_all().ok()
    }

    #[test]
    fn truncated_files_never_panic() {
        let bytes = std::fs::read(fixture("f32.pt")).unwrap();
        let path = temp_path("truncated");
        for len in 0..bytes.len() {
            if let Some(values) = try_bytes(&path, &bytes[..len]) {
                // Only the zip's trailing entries may go missing without an error.
                assert_eq!(values.len(), 20, "prefix {len}");
            }
        }
        assert!(try_bytes(&path, &bytes).is_some());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn flipped_bytes_never_panic() {
        // Each case writes a file, so keep the count moderate (about 8000 files).
        let cases: [(&str, &[u8]); 4] = [
            ("f32.pt", &[0x01, 0xff]),
            ("transposed.pt", &[0xff]),
            ("dict.pt", &[0xff]),
            ("deflated.pt", &[0x01, 0xff]),
        ];
        for (name, masks) in cases {
            let bytes = std::fs::read(fixture(name)).unwrap();
            let path = temp_path(&format!("flipped-{name}"));
            let mut copy = bytes.clone();
            for i in 0..bytes.len() {
                for &mask in masks {
                    copy[i] = bytes[i] ^ mask;
                    try_bytes(&path, &copy);
                }
                copy[i] = bytes[i];
            }
            let _ = std::fs::remove_file(&path);
        }
    }

    /// The entries of a fixture, in order.
    fn entries(name: &str) -> Vec<(String, Vec<u8>)> {
        let mut zip = ZipArchive::new(File::open(fixture(name)).unwrap()).unwrap();
        (0..zip.len())
            .map(|i| {
                let mut entry = zip.by_index(i).unwrap();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                (entry.name().unwrap().into_owned(), bytes)
            })
            .collect()
    }

    /// A stored zip of `entries`, with `pickle` in place of the `data.pkl` entry.
    fn zip_with_pickle(entries: &[(String, Vec<u8>)], pickle: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let options =
            zip::write::SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            w.start_file(name.as_str(), options).unwrap();
            let bytes = if name.ends_with("/data.pkl") {
                pickle
            } else {
                bytes
            };
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// Mutated pickles inside a well-formed zip (the zip's CRC would otherwise catch most
    /// flips): every truncation and every byte flipped, through `open` and the reads.
    #[test]
    fn mutated_pickles_never_panic() {
        for name in ["f32.pt", "transposed.pt", "offset.pt"] {
            let entries = entries(name);
            let pickle = &entries
                .iter()
                .find(|(n, _)| n.ends_with("/data.pkl"))
                .unwrap()
                .1;
            let path = temp_path(&format!("pickle-{name}"));
            let (mut ok, mut failed) = (0, 0);
            let mut check = |p: &[u8]| match try_bytes(&path, &zip_with_pickle(&entries, p)) {
                Some(_) => ok += 1,
                None => failed += 1,
            };
            check(pickle);
            for len in 0..pickle.len() {
                check(&pickle[..len]);
            }
            let mut copy = pickle.clone();
            for i in 0..pickle.len() {
                for mask in [0x01, 0x02, 0x10, 0x80, 0xff] {
                    copy[i] = pickle[i] ^ mask;
                    check(&copy);
                }
                copy[i] = pickle[i];
            }
            assert!(
                ok > 1 && failed > pickle.len(),
                "{name}: {ok} ok, {failed} failed"
            );
            let _ = std::fs::remove_file(&path);
        }
    }

    #[test]
    fn hostile_pickles_are_format_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"\x80\x02",
            b"\x80\x02.",
            b"\x80\x02t.",
            b"\x80\x02X\xff\xff\xff\xff",
            b"\x80\x02\x8a\xff",
            b"\x80\x02K\x01q\x00h\x01.",
            b"\x80\x02I1\n.",
            b"\x80\x02Q.",
            b"\x80\x02(0.",
        ];
        for &case in cases {
            assert!(matches!(
                Unpickler::new(case).load(),
                Err(PtError::Format(_))
            ));
        }
        // Deeply nested tuples are refused, not recursed into.
        let mut deep = b"\x80\x02)".to_vec();
        deep.extend(std::iter::repeat_n(0x85u8, 100_000));
        deep.push(b'.');
        assert!(matches!(
            Unpickler::new(&deep).load(),
            Err(PtError::Format(_))
        ));
        // Endless memo growth stops at the opcode limit.
        let mut big = b"\x80\x02N".to_vec();
        for _ in 0..(MAX_PICKLE_OPS / 2 + 10) {
            big.push(0x94);
            big.push(b'2');
        }
        assert!(matches!(
            Unpickler::new(&big).load(),
            Err(PtError::Format(_))
        ));
    }
}
