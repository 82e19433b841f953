//! The zip side of a `.pt` file: [`PtMatrix::open`] finds `data.pkl`, checks the byte order
//! and the storage entry against the tensor the pickle describes; [`PtMatrix::read_rows`]
//! reads rows straight from a stored entry or from a deflated one's decompressed prefix.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use zip::CompressionMethod;
use zip::ZipArchive;
use zip::result::ZipError;

use super::pickle::{self, TensorRef};
use super::{PtDtype, PtError, Result, format_err, io_err, shape_string, to_usize};

/// Largest `data.pkl` accepted (a bare tensor's pickle is about 150 bytes).
const MAX_PICKLE_BYTES: u64 = 4 << 20;
/// Largest `byteorder` entry read.
const MAX_BYTEORDER_BYTES: u64 = 64;
/// Largest plausible deflate expansion ratio (the format's limit is about 1032:1).
const MAX_DEFLATE_RATIO: u64 = 1100;

/// A zip error as a [`PtError`] about `what` (OS errors stay [`PtError::Io`]).
fn zip_err(e: ZipError, what: &str) -> PtError {
    match e {
        ZipError::Io(e) => io_err(e, what),
        other => PtError::Format(format!("{what}: {other}")),
    }
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
        let mut zip = open_zip(file)?;
        let (prefix, pkl_index) = find_data_pkl(&zip)?;
        check_byteorder(&mut zip, &prefix)?;
        let pickle = read_small_entry(&mut zip, pkl_index, MAX_PICKLE_BYTES, file_len, "data.pkl")?;
        let tensor = pickle::tensor(&pickle)?;
        let dtype = tensor.dtype()?;
        let [rows, cols, row_stride, col_stride] = matrix_shape(&tensor, dtype)?;
        let name = format!("{prefix}/data/{}", tensor.storage.key);
        let (data, size) = storage_entry(&mut zip, &name, file_len)?;
        let available = storage_elements(&tensor, dtype, size)?;
        let rows = to_usize(rows, "row count")?;
        let cols = to_usize(cols, "column count")?;
        let row_stride = to_usize(row_stride, "row stride")?;
        let col_stride = to_usize(col_stride, "column stride")?;
        let offset = to_usize(tensor.offset, "storage offset")?;
        let matrix = PtMatrix {
            path: path.to_path_buf(),
            rows,
            cols,
            dtype,
            offset,
            row_stride,
            col_stride,
            data,
        };
        matrix.check_fits(available)?;
        Ok(matrix)
    }

    /// Checks that every element of the matrix lies inside a storage of `available`
    /// elements, and that the strides do not make elements overlap.
    fn check_fits(&self, available: usize) -> Result<()> {
        let (rows, cols, offset) = (self.rows, self.cols, self.offset);
        let (row_stride, col_stride) = (self.row_stride, self.col_stride);
        let numel = rows
            .checked_mul(cols)
            .ok_or_else(|| PtError::Format("tensor shape overflows".into()))?;
        if numel == 0 {
            return Ok(());
        }
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
        Ok(())
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

/// The zip archive of `file`, after checking that it starts like one.
fn open_zip(file: File) -> Result<ZipArchive<BufReader<File>>> {
    let mut reader = BufReader::new(file);
    check_magic(&mut reader)?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| io_err(e, "cannot rewind the file"))?;
    ZipArchive::new(reader).map_err(|e| zip_err(e, "not a valid zip archive"))
}

/// The tensor's `[rows, cols, row stride, col stride]`, or `NotMatrix` naming a tensor that
/// is not 2-D.
fn matrix_shape(tensor: &TensorRef, dtype: PtDtype) -> Result<[u64; 4]> {
    match (&tensor.size[..], &tensor.stride[..]) {
        (&[r, c], &[sr, sc]) => Ok([r, c, sr, sc]),
        _ => {
            let shape = shape_string(&tensor.size);
            let dt = if dtype == PtDtype::F32 {
                String::new()
            } else {
                format!(" {}", dtype.name())
            };
            Err(PtError::NotMatrix(format!(
                "a {}-D{dt} tensor of shape {shape}",
                tensor.size.len()
            )))
        }
    }
}

/// Where the storage entry `name` keeps its bytes, and its uncompressed size: checked to lie
/// inside the file of `file_len` bytes, unencrypted, stored or plausibly deflated.
fn storage_entry<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
    file_len: u64,
) -> Result<(DataLoc, u64)> {
    let index = zip.index_for_name(name).ok_or_else(|| {
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
    Ok((data, size))
}

/// The elements of `dtype` the pickle declares for the tensor's storage, checked against the
/// `size` bytes its entry holds.
fn storage_elements(tensor: &TensorRef, dtype: PtDtype, size: u64) -> Result<usize> {
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
    to_usize(declared_bytes / elem, "storage size")
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
