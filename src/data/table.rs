//! [`CohortTable`]: the cohort CSV, one row per slide, with its expression values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DataError;

/// Which CSV columns hold what. Defaults follow the original's CSV layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CohortColumns {
    /// Slide id, also the tile-feature file's stem. Default `wsi_file_name`.
    pub slide: String,
    /// Project (sub-folder of the features directory), optional. Default `project`.
    pub project: String,
    /// Class label, integer or string. Default `label`.
    pub label: String,
    /// Patient id, optional; without it each slide is its own patient. Default `patient_id`.
    pub patient: String,
    /// Gene columns are those whose name starts with this prefix. Default `rna_`.
    pub gene_prefix: String,
}

impl Default for CohortColumns {
    fn default() -> Self {
        Self {
            slide: "wsi_file_name".into(),
            project: "project".into(),
            label: "label".into(),
            patient: "patient_id".into(),
            gene_prefix: "rna_".into(),
        }
    }
}

/// One slide's row of the cohort CSV (its expression values live in the table).
#[derive(Debug, Clone, PartialEq)]
pub struct SlideRecord {
    /// Slide id.
    pub slide: String,
    /// Project, when the CSV has the column.
    pub project: Option<String>,
    /// Patient id (the slide id when the CSV has no patient column).
    pub patient: String,
    /// Label as written, when the CSV has the column.
    pub label: Option<String>,
    /// CSV line number (the header is line 1).
    pub line: u64,
}

/// The cohort CSV: slides, their labels and patients, and the expression matrix
/// `[slides, genes]` as `f32`, validated cell by cell.
#[derive(Debug, Clone)]
pub struct CohortTable {
    path: PathBuf,
    columns: CohortColumns,
    genes: Vec<String>,
    slides: Vec<SlideRecord>,
    expression: Vec<f32>,
    /// Every non-gene column, by name, as written.
    other: HashMap<String, Vec<String>>,
}

fn csv_error(path: &Path, e: csv::Error) -> DataError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    DataError::Csv {
        path: path.to_path_buf(),
        line,
        message: e.to_string(),
    }
}

/// Parses a finite number, or says why the cell is not one.
pub(crate) fn parse_finite(cell: &str) -> Result<f64, &'static str> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Err("empty cell");
    }
    let value: f64 = cell.parse().map_err(|_| "not a number")?;
    if !value.is_finite() {
        return Err("not a finite number");
    }
    Ok(value)
}

impl CohortTable {
    /// Reads and validates a cohort CSV.
    ///
    /// # Errors
    ///
    /// [`DataError`] naming the file and, where it applies, the line and column: an unreadable
    /// or malformed file, a missing slide column, no gene column, an empty slide id or
    /// patient id, an expression cell that is empty, not a number, NaN or infinite, or a slide
    /// id on two rows.
    pub fn read(path: impl AsRef<Path>, columns: &CohortColumns) -> Result<Self, DataError> {
        let path = path.as_ref();
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::Headers)
            .from_path(path)
            .map_err(|e| match e.kind() {
                csv::ErrorKind::Io(_) => match e.into_kind() {
                    csv::ErrorKind::Io(source) => DataError::io(path, source),
                    _ => unreachable!("matched an I/O error"),
                },
                _ => csv_error(path, e),
            })?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| csv_error(path, e))?
            .iter()
            .map(str::to_string)
            .collect();
        let find = |name: &str| header.iter().position(|h| h == name);
        let slide_col = find(&columns.slide).ok_or_else(|| DataError::MissingColumn {
            path: path.to_path_buf(),
            column: columns.slide.clone(),
            available: header.join(", "),
        })?;
        let project_col = find(&columns.project);
        let label_col = find(&columns.label);
        let patient_col = find(&columns.patient);
        let gene_cols: Vec<usize> = (0..header.len())
            .filter(|&i| header[i].starts_with(&columns.gene_prefix))
            .collect();
        if gene_cols.is_empty() {
            return Err(DataError::NoGeneColumns {
                path: path.to_path_buf(),
                prefix: columns.gene_prefix.clone(),
            });
        }
        let other_cols: Vec<usize> = (0..header.len())
            .filter(|i| !gene_cols.contains(i))
            .collect();

        let mut slides = Vec::new();
        let mut expression = Vec::new();
        let mut other: HashMap<String, Vec<String>> = other_cols
            .iter()
            .map(|&i| (header[i].clone(), Vec::new()))
            .collect();
        let mut seen: HashMap<String, u64> = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(path, e))?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let cell = |i: usize| record.get(i).unwrap_or("").trim();
            let required = |i: usize, column: &str| {
                let value = cell(i);
                if value.is_empty() {
                    Err(DataError::EmptyCell {
                        path: path.to_path_buf(),
                        line,
                        column: column.to_string(),
                    })
                } else {
                    Ok(value.to_string())
                }
            };
            let slide = required(slide_col, &columns.slide)?;
            if let Some(first) = seen.insert(slide.clone(), line) {
                return Err(DataError::DuplicateSlide {
                    path: path.to_path_buf(),
                    slide,
                    first,
                    second: line,
                });
            }
            let patient = match patient_col {
                Some(i) => required(i, &columns.patient)?,
                None => slide.clone(),
            };
            let project = project_col
                .map(|i| cell(i).to_string())
                .filter(|p| !p.is_empty());
            let label = label_col
                .map(|i| cell(i).to_string())
                .filter(|l| !l.is_empty());
            for &i in &gene_cols {
                let value = parse_finite(cell(i)).map_err(|reason| DataError::BadValue {
                    path: path.to_path_buf(),
                    line,
                    slide: slide.clone(),
                    column: header[i].clone(),
                    value: cell(i).to_string(),
                    reason,
                })?;
                expression.push(value as f32);
            }
            for &i in &other_cols {
                other
                    .get_mut(&header[i])
                    .expect("every other column has an entry")
                    .push(cell(i).to_string());
            }
            slides.push(SlideRecord {
                slide,
                project,
                patient,
                label,
                line,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            columns: columns.clone(),
            genes: gene_cols.iter().map(|&i| header[i].clone()).collect(),
            slides,
            expression,
            other,
        })
    }

    /// The CSV file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The column names used to read it.
    pub fn columns(&self) -> &CohortColumns {
        &self.columns
    }

    /// Gene column names, in CSV order.
    pub fn genes(&self) -> &[String] {
        &self.genes
    }

    /// The slides, in CSV order.
    pub fn slides(&self) -> &[SlideRecord] {
        &self.slides
    }

    /// Number of slides.
    pub fn len(&self) -> usize {
        self.slides.len()
    }

    /// Whether the CSV has no slide rows.
    pub fn is_empty(&self) -> bool {
        self.slides.is_empty()
    }

    /// Slide `index`'s expression values, `[genes]`, as read (not normalized).
    pub fn expression(&self, index: usize) -> &[f32] {
        let g = self.genes.len();
        &self.expression[index * g..(index + 1) * g]
    }

    /// The whole expression matrix, row-major `[slides, genes]`.
    pub fn expression_matrix(&self) -> &[f32] {
        &self.expression
    }

    /// Whether the CSV has a column of this name (gene columns excluded).
    pub fn has_column(&self, name: &str) -> bool {
        self.other.contains_key(name)
    }

    /// A non-gene column's cells, as written.
    pub fn column(&self, name: &str) -> Option<&[String]> {
        self.other.get(name).map(Vec::as_slice)
    }

    /// A non-gene column parsed as finite numbers.
    ///
    /// # Errors
    ///
    /// [`DataError::MissingColumn`], or [`DataError::BadValue`] naming the line of the first
    /// cell that is not a finite number.
    pub fn numeric_column(&self, name: &str) -> Result<Vec<f64>, DataError> {
        let cells = self.column(name).ok_or_else(|| self.missing(name))?;
        cells
            .iter()
            .zip(&self.slides)
            .map(|(cell, slide)| {
                parse_finite(cell).map_err(|reason| DataError::BadValue {
                    path: self.path.clone(),
                    line: slide.line,
                    slide: slide.slide.clone(),
                    column: name.to_string(),
                    value: cell.clone(),
                    reason,
                })
            })
            .collect()
    }

    /// Every slide's label.
    ///
    /// # Errors
    ///
    /// [`DataError::MissingColumn`] when there is no label column, [`DataError::EmptyCell`]
    /// naming the line of the first slide without a label.
    pub fn labels(&self) -> Result<Vec<&str>, DataError> {
        if !self.has_column(&self.columns.label) {
            return Err(self.missing(&self.columns.label));
        }
        self.slides
            .iter()
            .map(|s| {
                s.label.as_deref().ok_or_else(|| DataError::EmptyCell {
                    path: self.path.clone(),
                    line: s.line,
                    column: self.columns.label.clone(),
                })
            })
            .collect()
    }

    /// Checks that the cohort has exactly `expected` genes, and, when `names` is given and not
    /// empty, that they are those genes in that order.
    ///
    /// # Errors
    ///
    /// [`DataError::GeneCount`] or [`DataError::GeneNames`].
    pub fn check_genes(&self, expected: usize, names: Option<&[String]>) -> Result<(), DataError> {
        if self.genes.len() != expected {
            return Err(DataError::GeneCount {
                path: self.path.clone(),
                expected,
                got: self.genes.len(),
            });
        }
        let Some(names) = names.filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        if names.len() != expected {
            return Err(DataError::GeneCount {
                path: self.path.clone(),
                expected: names.len(),
                got: self.genes.len(),
            });
        }
        if let Some(index) = (0..expected).find(|&i| names[i] != self.genes[i]) {
            return Err(DataError::GeneNames {
                path: self.path.clone(),
                index,
                expected: names[index].clone(),
                got: self.genes[index].clone(),
            });
        }
        Ok(())
    }

    fn missing(&self, column: &str) -> DataError {
        let mut available: Vec<&str> = self.other.keys().map(String::as_str).collect();
        available.sort();
        DataError::MissingColumn {
            path: self.path.clone(),
            column: column.to_string(),
            available: available.join(", "),
        }
    }
}
