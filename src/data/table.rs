//! [`CohortTable`]: the cohort CSV, one row per slide, with its expression values; the
//! [`GeneRule`] that tells gene columns by name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DataError, Modalities};

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
    /// Gene columns are those whose name starts with this prefix (`rna_`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gene_prefix: Option<String>,
    /// Gene columns are those whose name ends with this suffix (`_rnaseq`, as in the MCAT,
    /// PORPOISE and SurvPath tables).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gene_suffix: Option<String>,
    /// Gene columns are those whose name this regular expression matches (anywhere in the
    /// name, unless anchored with `^`/`$`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gene_regex: Option<String>,
}

impl Default for CohortColumns {
    fn default() -> Self {
        Self {
            slide: "wsi_file_name".into(),
            project: "project".into(),
            label: "label".into(),
            patient: "patient_id".into(),
            gene_prefix: None,
            gene_suffix: None,
            gene_regex: None,
        }
    }
}

/// The default gene-column prefix (the original's layout).
pub const DEFAULT_GENE_PREFIX: &str = "rna_";
/// The gene-column suffix of the MCAT, PORPOISE and SurvPath tables, taken when a table has no
/// [`DEFAULT_GENE_PREFIX`] column and no rule is given.
pub const DEFAULT_GENE_SUFFIX: &str = "_rnaseq";

/// How gene columns are recognized by name.
#[derive(Debug, Clone)]
pub enum GeneRule {
    /// Names starting with the prefix.
    Prefix(String),
    /// Names ending with the suffix.
    Suffix(String),
    /// Names the expression matches.
    Regex(regex::Regex),
}

impl GeneRule {
    /// Whether `column` is a gene column.
    pub fn matches(&self, column: &str) -> bool {
        match self {
            Self::Prefix(p) => column.starts_with(p.as_str()),
            Self::Suffix(s) => column.ends_with(s.as_str()),
            Self::Regex(r) => r.is_match(column),
        }
    }

    /// The gene symbol a column names: the column without the prefix or suffix (`rna_TP53`
    /// and `TP53_rnaseq` are `TP53`); the whole name under a regular expression.
    pub fn symbol<'a>(&self, column: &'a str) -> &'a str {
        match self {
            Self::Prefix(p) => column.strip_prefix(p.as_str()).unwrap_or(column),
            Self::Suffix(s) => column.strip_suffix(s.as_str()).unwrap_or(column),
            Self::Regex(_) => column,
        }
    }
}

impl std::fmt::Display for GeneRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Prefix(p) => write!(f, "`{p}*`"),
            Self::Suffix(s) => write!(f, "`*{s}`"),
            Self::Regex(r) => write!(f, "regex `{}`", r.as_str()),
        }
    }
}

impl CohortColumns {
    /// The gene rule these columns ask for, or `None` for the automatic choice (see
    /// [`CohortTable::read`]).
    ///
    /// # Errors
    ///
    /// [`DataError::Setting`] when more than one rule is given, or the regular expression does
    /// not compile.
    pub fn gene_rule(&self) -> Result<Option<GeneRule>, DataError> {
        let given = [&self.gene_prefix, &self.gene_suffix, &self.gene_regex]
            .iter()
            .filter(|r| r.is_some())
            .count();
        if given > 1 {
            return Err(DataError::Setting {
                setting: "gene columns",
                message: "give one of a gene prefix, suffix or regex, not several".into(),
            });
        }
        Ok(
            match (&self.gene_prefix, &self.gene_suffix, &self.gene_regex) {
                (Some(p), _, _) => Some(GeneRule::Prefix(p.clone())),
                (_, Some(s), _) => Some(GeneRule::Suffix(s.clone())),
                (_, _, Some(r)) => Some(GeneRule::Regex(regex::Regex::new(r).map_err(|e| {
                    DataError::Setting {
                        setting: "gene_regex",
                        message: format!("`{r}` is not a regular expression: {e}"),
                    }
                })?)),
                _ => None,
            },
        )
    }

    /// These columns with the gene rule set to `rule` (what an automatic choice took).
    fn with_rule(&self, rule: &GeneRule) -> Self {
        let mut columns = Self {
            gene_prefix: None,
            gene_suffix: None,
            gene_regex: None,
            ..self.clone()
        };
        match rule {
            GeneRule::Prefix(p) => columns.gene_prefix = Some(p.clone()),
            GeneRule::Suffix(s) => columns.gene_suffix = Some(s.clone()),
            GeneRule::Regex(r) => columns.gene_regex = Some(r.as_str().to_string()),
        }
        columns
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
    /// How the gene columns were chosen, for reports.
    gene_note: String,
    /// Per row: whether it has expression (see [`CohortTable::read_with`]).
    rna_present: Vec<bool>,
    rule: GeneRule,
    /// Every non-gene column, by name, as written.
    other: HashMap<String, Vec<String>>,
    /// The non-gene column names, in CSV order.
    other_names: Vec<String>,
    has_patient_column: bool,
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
    /// Gene columns are those of `columns`' gene rule; without one, the `rna_*` columns, or
    /// when there are none the `*_rnaseq` columns (the MCAT, PORPOISE and SurvPath tables),
    /// [`gene_note`](Self::gene_note) saying which was taken. The slide and patient columns
    /// default to `wsi_file_name` and `patient_id`; when the CSV lacks a default name but has
    /// `slide_id` or `case_id` (those tables' names), that column is taken. The slide,
    /// project, label and patient columns are never genes.
    ///
    /// # Errors
    ///
    /// [`DataError`] naming the file and, where it applies, the line and column: an unreadable
    /// or malformed file, a missing slide column, no gene column, an empty slide id or
    /// patient id, an expression cell that is empty, not a number, NaN or infinite, or a slide
    /// id on two rows.
    pub fn read(path: impl AsRef<Path>, columns: &CohortColumns) -> Result<Self, DataError> {
        Self::read_with(path, columns, false)
    }

    /// [`read`](Self::read), and with `missing_rna` a row whose gene cells are all empty is
    /// a slide without expression ([`has_rna`](Self::has_rna) is false; its values read as
    /// 0). Without it such rows are one error that lists them all. A row with only some gene
    /// cells empty is an error either way.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read); [`DataError::MissingRna`] listing the rows without expression
    /// when they are not allowed.
    pub fn read_with(
        path: impl AsRef<Path>,
        columns: &CohortColumns,
        missing_rna: bool,
    ) -> Result<Self, DataError> {
        Self::read_for(path, columns, missing_rna, Modalities::Both)
    }

    /// [`read_with`](Self::read_with) for a run that uses `modalities`:
    /// - [`Modalities::Rna`] (no tiles are read): the slide column may be absent and a slide
    ///   cell empty when the row has a patient id; such a row's slide id is its patient id
    ///   (`{patient}@{line}` for a patient's later rows without one).
    /// - [`Modalities::Wsi`] (no expression is read): gene columns are not looked for; the
    ///   table has no gene and no row has expression.
    ///
    /// # Errors
    ///
    /// As [`read_with`](Self::read_with); for RNA alone a table with neither a slide nor a
    /// patient column is [`DataError::MissingColumn`] naming the slide column, a row with
    /// neither id [`DataError::EmptyCell`].
    pub fn read_for(
        path: impl AsRef<Path>,
        columns: &CohortColumns,
        missing_rna: bool,
        modalities: Modalities,
    ) -> Result<Self, DataError> {
        let rna_only = modalities == Modalities::Rna;
        let wsi_only = modalities == Modalities::Wsi;
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
        // The MCAT/PORPOISE/SurvPath tables name the slide and patient columns `slide_id` and
        // `case_id`: taken when the default names are absent.
        let defaults = CohortColumns::default();
        let mut columns = columns.clone();
        for (name, default, alternative) in [
            (&mut columns.slide, &defaults.slide, "slide_id"),
            (&mut columns.patient, &defaults.patient, "case_id"),
        ] {
            if name == default && find(name).is_none() && find(alternative).is_some() {
                *name = alternative.to_string();
            }
        }
        let columns = &columns;
        let project_col = find(&columns.project);
        let label_col = find(&columns.label);
        let patient_col = find(&columns.patient);
        // RNA alone reads no tiles: a patient id is enough to name a row.
        let slide_col = find(&columns.slide);
        if slide_col.is_none() && !(rna_only && patient_col.is_some()) {
            return Err(DataError::MissingColumn {
                path: path.to_path_buf(),
                column: columns.slide.clone(),
                available: header.join(", "),
            });
        }
        let (rule, automatic) = match columns.gene_rule()? {
            Some(rule) => (rule, false),
            None => {
                let prefix = GeneRule::Prefix(DEFAULT_GENE_PREFIX.into());
                let suffix = GeneRule::Suffix(DEFAULT_GENE_SUFFIX.into());
                if header.iter().any(|h| prefix.matches(h))
                    || !header.iter().any(|h| suffix.matches(h))
                {
                    (prefix, true)
                } else {
                    (suffix, true)
                }
            }
        };
        let roles = [slide_col, project_col, label_col, patient_col];
        let gene_cols: Vec<usize> = (0..header.len())
            .filter(|&i| !wsi_only && !roles.contains(&Some(i)) && rule.matches(&header[i]))
            .collect();
        if gene_cols.is_empty() && !wsi_only {
            return Err(DataError::NoGeneColumns {
                path: path.to_path_buf(),
                rule: if automatic {
                    format!(
                        "no column name starts with `{DEFAULT_GENE_PREFIX}` or ends with \
                         `{DEFAULT_GENE_SUFFIX}` (name them with --gene-prefix, --gene-suffix or \
                         --gene-regex)"
                    )
                } else {
                    format!("no column matches {rule}")
                },
            });
        }
        let gene_note = match (&rule, automatic) {
            _ if wsi_only => "none (tiles alone: expression is not read)".to_string(),
            (GeneRule::Suffix(_), true) => {
                format!("{rule} (there is no `{DEFAULT_GENE_PREFIX}*` column)")
            }
            (_, true) => format!("{rule} (the default)"),
            (_, false) => format!("{rule}"),
        };
        let columns = &columns.with_rule(&rule);
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
        let mut rna_present: Vec<bool> = Vec::new();
        let mut no_rna: Vec<String> = Vec::new();
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
            let given = slide_col.map_or("", |i| cell(i));
            // Expression alone: a row without a slide id is named by its patient.
            let by_patient = patient_col.filter(|_| given.is_empty() && rna_only);
            let (slide, patient) = if let Some(i) = by_patient {
                let patient = required(i, &columns.patient)?;
                let slide = if seen.contains_key(&patient) {
                    format!("{patient}@{line}")
                } else {
                    patient.clone()
                };
                (slide, patient)
            } else {
                let slide = required(slide_col.expect("checked above"), &columns.slide)?;
                let patient = match patient_col {
                    Some(i) => required(i, &columns.patient)?,
                    None => slide.clone(),
                };
                (slide, patient)
            };
            if let Some(first) = seen.insert(slide.clone(), line) {
                return Err(DataError::DuplicateSlide {
                    path: path.to_path_buf(),
                    slide,
                    first,
                    second: line,
                });
            }
            let project = project_col
                .map(|i| cell(i).to_string())
                .filter(|p| !p.is_empty());
            let label = label_col
                .map(|i| cell(i).to_string())
                .filter(|l| !l.is_empty());
            // A row whose gene cells are all empty has no expression: allowed as a missing
            // modality, else listed with the others in one error.
            let has_rna = !gene_cols.iter().all(|&i| cell(i).is_empty());
            rna_present.push(has_rna);
            if !has_rna {
                if !missing_rna && !wsi_only {
                    no_rna.push(format!("line {line} (slide `{slide}`)"));
                }
                expression.extend(std::iter::repeat_n(0.0, gene_cols.len()));
            }
            for &i in gene_cols.iter().filter(|_| has_rna) {
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
        if !no_rna.is_empty() {
            return Err(DataError::MissingRna {
                path: path.to_path_buf(),
                rows: no_rna,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            columns: columns.clone(),
            rna_present,
            genes: gene_cols.iter().map(|&i| header[i].clone()).collect(),
            gene_note,
            rule,
            slides,
            expression,
            other_names: other_cols.iter().map(|&i| header[i].clone()).collect(),
            other,
            has_patient_column: patient_col.is_some(),
        })
    }

    /// The CSV file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The column names used to read it, with the gene rule that was taken (an automatic
    /// choice is written out, so that a saved run reads later cohorts the same way).
    pub fn columns(&self) -> &CohortColumns {
        &self.columns
    }

    /// The rule that chose the gene columns.
    pub fn gene_rule(&self) -> &GeneRule {
        &self.rule
    }

    /// How the gene columns were chosen, e.g. ``"`*_rnaseq` (there is no `rna_*` column)"``.
    pub fn gene_note(&self) -> &str {
        &self.gene_note
    }

    /// The gene symbols: the gene columns without the rule's prefix or suffix.
    pub fn gene_symbols(&self) -> Vec<String> {
        self.genes
            .iter()
            .map(|g| self.rule.symbol(g).to_string())
            .collect()
    }

    /// The non-gene column names, in CSV order.
    pub fn other_columns(&self) -> &[String] {
        &self.other_names
    }

    /// The column that names patients in outputs: the patient column, or the slide column
    /// when the CSV has none (each slide then being its own patient).
    pub fn patient_id_column(&self) -> &str {
        if self.has_patient_column {
            &self.columns.patient
        } else {
            &self.columns.slide
        }
    }

    /// Whether the CSV has a patient column (without one each slide is its own patient).
    pub fn has_patient_column(&self) -> bool {
        self.has_patient_column
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

    /// Whether slide `index`'s row has expression (always, unless read with missing
    /// expression allowed).
    pub fn has_rna(&self, index: usize) -> bool {
        self.rna_present[index]
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
