//! [`GdcError`]: why a GDC download cannot be turned into a cohort, and the one atomic write
//! of the build's outputs.

use std::path::{Path, PathBuf};

use super::options::STAR_HEADER;

/// Why a GDC download cannot be turned into a cohort. Each names the file, and where it
/// applies the line, column and value.
#[derive(Debug, thiserror::Error)]
pub enum GdcError {
    /// A file or folder that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A table that cannot be parsed (ragged rows, not UTF-8).
    #[error("{path}: line {line}: {message}")]
    Table {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A column the file needs is absent.
    #[error("{path}: no column {column} (columns: {available})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column (or its accepted spellings).
        column: String,
        /// The columns the header has.
        available: String,
    },
    /// An expression file whose header is not a STAR gene-counts header.
    #[error("{path}: line {line}: not a STAR gene-counts file: the header is `{got}`, expected `{}`", STAR_HEADER.join(" "))]
    Header {
        /// The file.
        path: PathBuf,
        /// The header's line.
        line: u64,
        /// The header found (tab-separated cells joined by spaces).
        got: String,
    },
    /// Expression files the sample sheet lists that the folder lacks.
    #[error(
        "{} expression file(s) of {sheet} are not in {dir}:\n{}",
        missing.len(),
        missing.iter().map(|(line, p)| format!("  line {line}: {}", p.display())).collect::<Vec<_>>().join("\n")
    )]
    MissingFiles {
        /// The sample sheet.
        sheet: PathBuf,
        /// The expression folder.
        dir: PathBuf,
        /// `(sample-sheet line, path looked for)` of each.
        missing: Vec<(u64, PathBuf)>,
    },
    /// A cell whose value cannot be used.
    #[error("{path}: line {line}, column `{column}`: {reason}: `{value}`")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// The column.
        column: String,
        /// The cell as written.
        value: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A case whose rows contradict each other.
    #[error(
        "{path}: case `{case}`: column `{column}` is `{}` on line {} but `{}` on line {}",
        values[0], lines[0], values[1], lines[1]
    )]
    Contradiction {
        /// The file.
        path: PathBuf,
        /// The case.
        case: String,
        /// The column.
        column: &'static str,
        /// The lines of the two rows.
        lines: [u64; 2],
        /// The two values, as written (boxed to keep the error small).
        values: Box<[String; 2]>,
    },
    /// Files that do not fit together (GENCODE versions, gene lists), or a cell naming
    /// several cases.
    #[error("{path}: {message}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// An option that cannot work.
    #[error("{0}")]
    Setting(String),
}

/// The [`GdcError::Io`] of a failed read or write of `path`.
pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GdcError + '_ {
    move |source| GdcError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `text` to `path` atomically; a failure names the file once.
pub(super) fn write_text(path: &Path, text: &str) -> Result<(), GdcError> {
    crate::util::atomic::write(path, text.as_bytes()).map_err(|source| GdcError::Io {
        path: path.to_path_buf(),
        source,
    })
}
