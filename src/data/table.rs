//! [`CohortTable`]: the cohort CSV, one row per slide, with its expression values; the
//! [`GeneRule`] that tells gene columns by name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::text::cut;
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

/// How many bad cells a scan lists one by one; the rest are counted in one more problem.
const LISTED_BAD_CELLS: usize = 1000;

/// The columns of a cohort CSV, found from its header.
struct Layout {
    columns: CohortColumns,
    header: Vec<String>,
    /// Absent only for expression alone, where rows may be named by their patient.
    slide: Option<usize>,
    project: Option<usize>,
    label: Option<usize>,
    patient: Option<usize>,
    genes: Vec<usize>,
    others: Vec<usize>,
    rule: GeneRule,
    gene_note: String,
    modalities: Modalities,
}

impl Layout {
    /// Finds the columns of `columns` in `header` for a run that uses `modalities`: tiles
    /// alone look for no gene column; expression alone needs no slide column when there is a
    /// patient column.
    fn of(
        path: &Path,
        header: Vec<String>,
        columns: &CohortColumns,
        modalities: Modalities,
    ) -> Result<Self, DataError> {
        let (rna_only, wsi_only) = (modalities == Modalities::Rna, modalities == Modalities::Wsi);
        let find = |name: &str| header.iter().position(|h| h == name);
        let columns = alternative_names(&header, columns);
        let (project, label, patient) = (
            find(&columns.project),
            find(&columns.label),
            find(&columns.patient),
        );
        // Expression alone reads no tiles: a patient id is enough to name a row.
        let slide = find(&columns.slide);
        if slide.is_none() && !(rna_only && patient.is_some()) {
            return Err(DataError::MissingColumn {
                path: path.to_path_buf(),
                column: columns.slide.clone(),
                available: super::text::cut_list(&header, 20),
            });
        }
        let (rule, automatic) = gene_rule(&header, &columns)?;
        let roles = [slide, project, label, patient];
        let genes: Vec<usize> = (0..header.len())
            .filter(|&i| !wsi_only && !roles.contains(&Some(i)) && rule.matches(&header[i]))
            .collect();
        if genes.is_empty() && !wsi_only {
            return Err(no_gene_columns(path, &rule, automatic));
        }
        let gene_note = gene_note(&rule, automatic, wsi_only);
        let others = (0..header.len()).filter(|i| !genes.contains(i)).collect();
        Ok(Self {
            columns: columns.with_rule(&rule),
            header,
            slide,
            project,
            label,
            patient,
            genes,
            others,
            rule,
            gene_note,
            modalities,
        })
    }
}

/// `columns` with the MCAT/PORPOISE/SurvPath names of the slide and patient columns,
/// `slide_id` and `case_id`, taken where the default names are absent from `header`.
fn alternative_names(header: &[String], columns: &CohortColumns) -> CohortColumns {
    let find = |name: &str| header.iter().position(|h| h == name);
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
    columns
}

/// The gene rule of `columns`, or the automatic one (`rna_*`, else `*_rnaseq` when only
/// that is in `header`), and whether it is automatic.
fn gene_rule(header: &[String], columns: &CohortColumns) -> Result<(GeneRule, bool), DataError> {
    Ok(match columns.gene_rule()? {
        Some(rule) => (rule, false),
        None => {
            let prefix = GeneRule::Prefix(DEFAULT_GENE_PREFIX.into());
            let suffix = GeneRule::Suffix(DEFAULT_GENE_SUFFIX.into());
            if header.iter().any(|h| prefix.matches(h)) || !header.iter().any(|h| suffix.matches(h))
            {
                (prefix, true)
            } else {
                (suffix, true)
            }
        }
    })
}

/// The error for a header with no column of the gene `rule`.
fn no_gene_columns(path: &Path, rule: &GeneRule, automatic: bool) -> DataError {
    DataError::NoGeneColumns {
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
    }
}

/// How a summary names the gene columns found by `rule`.
fn gene_note(rule: &GeneRule, automatic: bool, wsi_only: bool) -> String {
    match (rule, automatic) {
        _ if wsi_only => "none (tiles alone: expression is not read)".to_string(),
        (GeneRule::Suffix(_), true) => {
            format!("{rule} (there is no `{DEFAULT_GENE_PREFIX}*` column)")
        }
        (_, true) => format!("{rule} (the default)"),
        (_, false) => format!("{rule}"),
    }
}

/// A table being read: what the rows read so far hold, and their problems.
struct Rows<'a> {
    path: &'a Path,
    layout: &'a Layout,
    missing_rna: bool,
    slides: Vec<SlideRecord>,
    expression: Vec<f32>,
    rna_present: Vec<bool>,
    other: Vec<Vec<String>>,
    seen: HashMap<String, u64>,
    no_rna: Vec<String>,
    problems: Vec<DataError>,
    bad_cells: usize,
}

impl Rows<'_> {
    /// Adds one record on file line `line`, or records its problems. A row without a slide
    /// or patient id, or repeating a slide id, is left out; a row with a bad expression cell
    /// is kept (its bad cells read as 0) so that the rest of the cohort can still be checked.
    fn push(&mut self, record: &csv::StringRecord, line: u64) {
        let layout = self.layout;
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let Some((slide, patient)) = self.ids(record, line) else {
            return;
        };
        self.push_expression(record, line, &slide);
        for (k, &i) in layout.others.iter().enumerate() {
            self.other[k].push(cell(i).to_string());
        }
        let non_empty = |i: Option<usize>| i.map(|i| cell(i).to_string()).filter(|v| !v.is_empty());
        self.slides.push(SlideRecord {
            slide,
            project: non_empty(layout.project),
            patient,
            label: non_empty(layout.label),
            line,
        });
    }

    /// The slide and patient ids of `record`, the slide id recorded as seen on `line`;
    /// `None`, with the problem recorded, for an empty id or a repeated slide.
    fn ids(&mut self, record: &csv::StringRecord, line: u64) -> Option<(String, String)> {
        let (path, layout) = (self.path, self.layout);
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let empty = |column: &str| DataError::EmptyCell {
            path: path.to_path_buf(),
            line,
            column: column.to_string(),
        };
        let given = layout.slide.map_or("", |i| cell(i)).to_string();
        let patient = match layout.patient {
            Some(i) if cell(i).is_empty() => {
                self.problems.push(empty(&layout.columns.patient));
                return None;
            }
            Some(i) => cell(i).to_string(),
            None => given.clone(),
        };
        let slide = if !given.is_empty() {
            given
        } else if layout.modalities == Modalities::Rna && layout.patient.is_some() {
            // Expression alone: a row without a slide id is named by its patient (the
            // patient's later rows by `{patient}@{line}`).
            if self.seen.contains_key(&patient) {
                format!("{patient}@{line}")
            } else {
                patient.clone()
            }
        } else {
            self.problems.push(empty(&layout.columns.slide));
            return None;
        };
        if let Some(&first) = self.seen.get(&slide) {
            self.problems.push(DataError::DuplicateSlide {
                path: path.to_path_buf(),
                slide,
                first,
                second: line,
            });
            return None;
        }
        self.seen.insert(slide.clone(), line);
        Some((slide, patient))
    }

    /// Adds the expression cells of `record` (of `slide`, on `line`): a row with every gene
    /// cell empty has none (0s); a bad cell reads as 0 and is a problem (the first
    /// [`LISTED_BAD_CELLS`] listed).
    fn push_expression(&mut self, record: &csv::StringRecord, line: u64, slide: &str) {
        let (path, layout) = (self.path, self.layout);
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        // A row whose gene cells are all empty has no expression: allowed as a missing
        // modality, else listed with the others in one problem.
        let has_rna = !layout.genes.iter().all(|&i| cell(i).is_empty());
        self.rna_present.push(has_rna);
        if !has_rna && !self.missing_rna && layout.modalities != Modalities::Wsi {
            self.no_rna
                .push(format!("line {line} (slide `{}`)", cut(slide)));
        }
        for &i in &layout.genes {
            let value = if has_rna {
                parse_finite(cell(i)).unwrap_or_else(|reason| {
                    self.bad_cells += 1;
                    if self.bad_cells <= LISTED_BAD_CELLS {
                        self.problems.push(DataError::BadValue {
                            path: path.to_path_buf(),
                            line,
                            slide: slide.to_string(),
                            column: layout.header[i].clone(),
                            value: cell(i).to_string(),
                            reason,
                        });
                    }
                    0.0
                })
            } else {
                0.0
            };
            self.expression.push(value as f32);
        }
    }

    /// The problems of the whole file: those of its rows, the rows without expression, the
    /// bad cells beyond those listed.
    fn finish(&mut self) {
        if !self.no_rna.is_empty() {
            self.problems.push(DataError::MissingRna {
                path: self.path.to_path_buf(),
                rows: std::mem::take(&mut self.no_rna),
            });
        }
        if self.bad_cells > LISTED_BAD_CELLS {
            self.problems.push(DataError::Setting {
                setting: "csv",
                message: format!(
                    "{}: {} more expression cell(s) are not finite numbers (the first \
                     {LISTED_BAD_CELLS} are listed)",
                    self.path.display(),
                    self.bad_cells - LISTED_BAD_CELLS
                ),
            });
        }
    }
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
    /// or malformed file, an empty file or one without rows, a column name on two columns, a
    /// missing slide column, no gene column, an empty slide id or patient id, an expression
    /// cell that is empty, not a number, NaN or infinite, or a slide id on two rows. Several
    /// row problems come as one [`DataError::Problems`] listing them all.
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
        let (table, mut problems) = Self::scan_for(path, columns, missing_rna, modalities)?;
        match problems.len() {
            0 => Ok(table),
            1 => Err(problems.remove(0)),
            _ => Err(DataError::Problems(problems)),
        }
    }

    /// Like [`read_with`](Self::read_with), but returns the table with every row problem
    /// instead of failing on them: rows without a slide or patient id and repeated slide ids
    /// are left out, bad expression cells read as 0, rows without expression (when not
    /// allowed) are kept without expression. For reports such as `med-crossvit check`.
    ///
    /// # Errors
    ///
    /// What leaves no table to check: an unreadable, malformed, empty or row-less file, a
    /// column name on two columns, no slide column, no gene column, a bad gene rule.
    pub fn scan(
        path: impl AsRef<Path>,
        columns: &CohortColumns,
        missing_rna: bool,
    ) -> Result<(Self, Vec<DataError>), DataError> {
        Self::scan_for(path, columns, missing_rna, Modalities::Both)
    }

    /// [`scan`](Self::scan) for a run that uses `modalities` (as [`read_for`](Self::read_for)).
    ///
    /// # Errors
    ///
    /// As [`scan`](Self::scan).
    pub fn scan_for(
        path: impl AsRef<Path>,
        columns: &CohortColumns,
        missing_rna: bool,
        modalities: Modalities,
    ) -> Result<(Self, Vec<DataError>), DataError> {
        let path = path.as_ref();
        let file = super::csvfile::CsvFile::read(path)?;
        let mut reader = file.reader(csv::ReaderBuilder::new().trim(csv::Trim::Headers));
        let header = file.header(&mut reader)?;
        let layout = Layout::of(path, header, columns, modalities)?;
        let mut rows = Rows {
            path,
            layout: &layout,
            missing_rna,
            slides: Vec::new(),
            expression: Vec::new(),
            rna_present: Vec::new(),
            other: vec![Vec::new(); layout.others.len()],
            seen: HashMap::new(),
            no_rna: Vec::new(),
            problems: Vec::new(),
            bad_cells: 0,
        };
        let mut any = false;
        for record in reader.records() {
            let record = record.map_err(|e| file.error(e))?;
            any = true;
            rows.push(&record, file.line(record.position()));
        }
        if !any {
            return Err(file.no_rows());
        }
        rows.finish();
        let Rows {
            slides,
            expression,
            rna_present,
            other,
            problems,
            ..
        } = rows;
        let header = &layout.header;
        let table = Self {
            path: path.to_path_buf(),
            columns: layout.columns.clone(),
            rna_present,
            genes: layout.genes.iter().map(|&i| header[i].clone()).collect(),
            gene_note: layout.gene_note.clone(),
            rule: layout.rule.clone(),
            slides,
            expression,
            other_names: layout.others.iter().map(|&i| header[i].clone()).collect(),
            other: layout
                .others
                .iter()
                .map(|&i| header[i].clone())
                .zip(other)
                .collect(),
            has_patient_column: layout.patient.is_some(),
        };
        Ok((table, problems))
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
        let cells = self.column(name).ok_or_else(|| self.missing_column(name))?;
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
            return Err(self.missing_column(&self.columns.label));
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

    /// The error for a column the table lacks, listing (some of) those it has.
    pub(crate) fn missing_column(&self, column: &str) -> DataError {
        let mut available: Vec<String> = self.other.keys().cloned().collect();
        available.sort();
        DataError::MissingColumn {
            path: self.path.clone(),
            column: column.to_string(),
            available: super::text::cut_list(&available, 20),
        }
    }
}
