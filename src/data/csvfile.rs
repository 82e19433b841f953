//! [`CsvFile`]: the one way the data layer reads a CSV file (cohort table, splits files,
//! signatures), so that every such file gets the same checks and messages: real file line
//! numbers (the header is line 1, whatever the line endings, blank lines and multi-line quoted
//! cells), "empty file", "a header but no rows", a hint when the delimiter is not a comma,
//! duplicated column names, and long cells cut in messages ([`cut`](super::cut)).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::DataError;

/// A CSV file read into memory, with its header checked.
pub(crate) struct CsvFile {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Byte offsets of the `\n`s.
    newlines: Vec<usize>,
}

impl CsvFile {
    /// Reads `path`.
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] for an unreadable file, [`DataError::EmptyFile`] for a file with no
    /// text (blank space aside).
    pub(crate) fn read(path: &Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let text = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
        if text.iter().all(u8::is_ascii_whitespace) {
            return Err(DataError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        let newlines = bytes
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i)
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            newlines,
        })
    }

    /// A reader of the file's text (after a byte-order mark) built by `builder`.
    pub(crate) fn reader(&self, builder: &csv::ReaderBuilder) -> csv::Reader<&[u8]> {
        builder.from_reader(&self.bytes[self.bom_len()..])
    }

    /// The length of the file's UTF-8 byte-order mark: 3, or 0 without one.
    fn bom_len(&self) -> usize {
        if self.bytes.starts_with("\u{feff}".as_bytes()) {
            3
        } else {
            0
        }
    }

    /// The header of `reader`, checked.
    ///
    /// # Errors
    ///
    /// [`DataError::Csv`] for a header that cannot be parsed; [`DataError::Delimiter`] for a
    /// header of one column that holds a `;` or a tab (the file is not comma-separated);
    /// [`DataError::DuplicateColumn`] for a name on two columns.
    pub(crate) fn header(&self, reader: &mut csv::Reader<&[u8]>) -> Result<Vec<String>, DataError> {
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| self.error(e))?
            .iter()
            .map(str::to_string)
            .collect();
        if let [only] = header.as_slice()
            && let Some(found) = [';', '\t'].into_iter().find(|&c| only.contains(c))
        {
            return Err(DataError::Delimiter {
                path: self.path.clone(),
                found,
            });
        }
        // Each name's positions (from 1); the first name, in header order, found twice.
        let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            positions.entry(name).or_default().push(i + 1);
        }
        if let Some(name) = header.iter().find(|n| positions[n.as_str()].len() > 1) {
            return Err(DataError::DuplicateColumn {
                path: self.path.clone(),
                column: name.clone(),
                positions: positions[name.as_str()].clone(),
            });
        }
        Ok(header)
    }

    /// The file line (1-based, the header is line 1) at which a record read at `position`
    /// starts: the csv crate's own line count is one short after `\r\n` line ends and blank
    /// lines, so the line is counted here from the byte offset.
    pub(crate) fn line(&self, position: Option<&csv::Position>) -> u64 {
        let Some(position) = position else { return 0 };
        let mut start = self.bom_len() + position.byte() as usize;
        while start < self.bytes.len() && matches!(self.bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        1 + self.newlines.partition_point(|&n| n < start) as u64
    }

    /// A CSV parse error as a [`DataError::Csv`] naming the real file line.
    pub(crate) fn error(&self, e: csv::Error) -> DataError {
        let line = self.line(e.position()).max(1);
        let message = match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!(
                "{len} field(s), but the header has {expected_len} (is a cell with a comma \
                 unquoted?)"
            ),
            csv::ErrorKind::Utf8 { err, .. } => {
                format!("field {} is not valid UTF-8 text", err.field() + 1)
            }
            _ => e.to_string(),
        };
        DataError::Csv {
            path: self.path.clone(),
            line,
            message,
        }
    }

    /// The error for a file with a header and no row.
    pub(crate) fn no_rows(&self) -> DataError {
        DataError::NoRows {
            path: self.path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<u64> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        let file = CsvFile::read(&path).unwrap();
        let mut reader = file.reader(&csv::ReaderBuilder::new());
        file.header(&mut reader).unwrap();
        reader
            .records()
            .map(|r| file.line(r.unwrap().position()))
            .collect()
    }

    #[test]
    fn lines_are_file_lines_whatever_the_line_ends() {
        assert_eq!(lines("a,b\n1,2\n3,4\n5,6\n"), [2, 3, 4]);
        // The csv crate says 1, 2, 3 here.
        assert_eq!(lines("a,b\r\n1,2\r\n3,4\r\n5,6\r\n"), [2, 3, 4]);
        // A blank line is a line (the csv crate says 3 for `3,4`).
        assert_eq!(lines("a,b\n1,2\n\n3,4\n5,6\n"), [2, 4, 5]);
        // A quoted cell over two lines: the next row starts on line 4.
        assert_eq!(lines("a,b\n1,\"x\ny\"\n3,4\n"), [2, 4]);
        assert_eq!(lines("\u{feff}a,b\r\n1,2\r\n"), [2]);
    }
}
