//! [`Table`]: the tab- (or comma-) separated tables of a GDC download, with their lines; the
//! portal's missing values ([`missing`]) and cells that list one id several times
//! ([`one_id`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::error::{GdcError, io};

/// A tab-separated table: its header and its rows with their line numbers.
pub(super) struct Table {
    /// The file.
    pub(super) path: PathBuf,
    /// The column names.
    pub(super) header: Vec<String>,
    /// Each row with its line.
    pub(super) rows: Vec<(u64, Vec<String>)>,
}

impl Table {
    /// Reads a table separated by `delimiter`, unquoted (GDC exports do not quote).
    pub(super) fn read(path: &Path, delimiter: u8) -> Result<Self, GdcError> {
        let file = std::fs::File::open(path).map_err(io(path))?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .quoting(delimiter != b'\t')
            .trim(csv::Trim::All)
            .from_reader(file);
        let table_error = |e: csv::Error| GdcError::Table {
            path: path.to_path_buf(),
            line: e.position().map(|p| p.line()).unwrap_or(1),
            message: e.to_string(),
        };
        let header: Vec<String> = reader
            .headers()
            .map_err(table_error)?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(table_error)?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            rows.push((line, record.iter().map(str::to_string).collect()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    /// The first of `names` the header has.
    pub(super) fn column(&self, names: &[&'static str]) -> Result<(usize, &'static str), GdcError> {
        names
            .iter()
            .find_map(|&n| self.header.iter().position(|h| h == n).map(|i| (i, n)))
            .ok_or_else(|| GdcError::MissingColumn {
                path: self.path.clone(),
                column: names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                available: self.header.join(", "),
            })
    }
}

/// A GDC missing value: `'--` (the portal's), `--`, empty, `Not Reported`, `Unknown`.
pub(super) fn missing(cell: &str) -> bool {
    matches!(
        cell.trim(),
        "" | "'--" | "--" | "Not Reported" | "not reported" | "Unknown" | "unknown"
    )
}

/// The one id of a cell that may list several comma-separated ids (all must be equal).
pub(super) fn one_id(path: &Path, line: u64, column: &str, cell: &str) -> Result<String, GdcError> {
    let ids: BTreeSet<&str> = cell
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    match ids.len() {
        1 => Ok(ids.into_iter().next().expect("one id").to_string()),
        0 => Err(GdcError::BadValue {
            path: path.to_path_buf(),
            line,
            column: column.to_string(),
            value: cell.to_string(),
            reason: "empty cell",
        }),
        _ => Err(GdcError::Inconsistent {
            path: path.to_path_buf(),
            message: format!(
                "line {line}, column `{column}`: one expression file names several: `{cell}`"
            ),
        }),
    }
}
