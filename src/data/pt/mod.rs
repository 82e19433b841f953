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
//!
//! The reader is in two parts: `archive.rs` opens the zip archive, checks the storage entry
//! and reads the tensor's rows ([`PtMatrix`]); `pickle.rs` runs the `data.pkl` pickle (the
//! subset of opcodes `torch.save` emits) to find the tensor's storage, shape and strides.

use std::fmt;
use std::io;

use half::{bf16, f16};

mod archive;
mod pickle;
#[cfg(test)]
mod tests;

pub use archive::PtMatrix;

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
    pub(super) fn size(self) -> usize {
        match self {
            PtDtype::F32 => 4,
            PtDtype::F16 | PtDtype::BF16 => 2,
            PtDtype::F64 => 8,
        }
    }

    /// PyTorch's name for the dtype.
    pub(super) fn name(self) -> &'static str {
        match self {
            PtDtype::F32 => "float32",
            PtDtype::F16 => "float16",
            PtDtype::BF16 => "bfloat16",
            PtDtype::F64 => "float64",
        }
    }

    /// Appends the little-endian elements in `bytes` to `out` as `f32`.
    pub(super) fn convert(self, bytes: &[u8], out: &mut Vec<f32>) {
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

/// The result of the reader's steps.
type Result<T> = std::result::Result<T, PtError>;

/// A [`PtError::Format`] saying `msg`.
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

/// `v` as a `usize`, or a format error naming `what` when it does not fit.
fn to_usize(v: u64, what: &str) -> Result<usize> {
    usize::try_from(v).or_else(|_| format_err(format!("{what} is too large ({v})")))
}

/// A shape as PyTorch prints it: `[2, 3]`.
fn shape_string(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}
