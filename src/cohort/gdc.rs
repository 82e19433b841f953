//! [`build`]: a GDC portal download into a cohort CSV (`med-crossvit cohort gdc`).
//!
//! Inputs, as the portal delivers them (see `docs/cohorts.md` for the formats and rules):
//! the sample sheet (`gdc_sample_sheet.*.tsv`), the expression download
//! (`{File ID}/{File Name}`, STAR "augmented gene counts" TSVs), the clinical export
//! (`clinical.tsv`, old or new column names) and a folder of slide feature files named by
//! slide barcode. The output has one row per kept slide: `patient_id`, `wsi_file_name`,
//! `survival_months`, `censorship`, an optional `label`, then `rna_{gene}` columns; the
//! [`GdcReport`] lists every case left out and why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The header of a STAR augmented gene-counts file.
pub const STAR_HEADER: [&str; 9] = [
    "gene_id",
    "gene_name",
    "gene_type",
    "unstranded",
    "stranded_first",
    "stranded_second",
    "tpm_unstranded",
    "fpkm_unstranded",
    "fpkm_uq_unstranded",
];

/// The sample sheet's `Data Type` of expression files.
const EXPRESSION_TYPE: &str = "Gene Expression Quantification";

/// Days per month in `survival_months` (365.25 / 12).
pub const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

/// GDC sample type names and their two-digit codes in a TCGA barcode (characters 14–15).
pub const SAMPLE_TYPES: [(&str, &str); 14] = [
    ("Primary Tumor", "01"),
    ("Recurrent Tumor", "02"),
    ("Primary Blood Derived Cancer - Peripheral Blood", "03"),
    ("Recurrent Blood Derived Cancer - Bone Marrow", "04"),
    ("Additional - New Primary", "05"),
    ("Metastatic", "06"),
    ("Additional Metastatic", "07"),
    ("Human Tumor Original Cells", "08"),
    ("Primary Blood Derived Cancer - Bone Marrow", "09"),
    ("Blood Derived Normal", "10"),
    ("Solid Tissue Normal", "11"),
    ("Buccal Cell Normal", "12"),
    ("EBV Immortalized Normal", "13"),
    ("Bone Marrow Normal", "14"),
];

/// Which expression value a cohort takes from the STAR files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ValueColumn {
    /// `tpm_unstranded` (the default).
    #[default]
    Tpm,
    /// `unstranded`: raw counts.
    Unstranded,
    /// `fpkm_unstranded`.
    Fpkm,
    /// `fpkm_uq_unstranded`.
    FpkmUq,
}

impl ValueColumn {
    /// The column's name in the STAR file.
    pub fn column(self) -> &'static str {
        match self {
            Self::Tpm => "tpm_unstranded",
            Self::Unstranded => "unstranded",
            Self::Fpkm => "fpkm_unstranded",
            Self::FpkmUq => "fpkm_uq_unstranded",
        }
    }
}

/// Which genes are kept, by the STAR file's `gene_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeneTypes {
    /// Every gene.
    All,
    /// Genes of these types (`protein_coding`, `lncRNA`, …).
    Only(Vec<String>),
}

/// How gene columns are named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GeneId {
    /// By symbol (`gene_name`); the values of ids sharing a symbol are summed.
    #[default]
    Symbol,
    /// By unversioned Ensembl id (`ENSG00000141510`; a `_PAR_Y` copy keeps its suffix).
    Ensembl,
}

/// What to build a cohort from, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct GdcOptions {
    /// The sample sheet (`gdc_sample_sheet.*.tsv`).
    pub sample_sheet: PathBuf,
    /// The expression download: `{File ID}/{File Name}` (or the files flat).
    pub expression_dir: PathBuf,
    /// The clinical export (`clinical.tsv`).
    pub clinical: PathBuf,
    /// The slide feature files (`{slide}.h5` or `.pt`, flat or in `h5_files/`, `pt_files/`).
    pub features_dir: PathBuf,
    /// The expression value taken. Default TPM.
    pub value: ValueColumn,
    /// The gene types kept. Default `protein_coding`.
    pub gene_types: GeneTypes,
    /// Gene column names. Default symbols.
    pub gene_id: GeneId,
    /// The sample types kept (GDC names). Default `Primary Tumor`.
    pub sample_types: Vec<String>,
    /// Keep frozen-section (`TS`, `BS`) slides too, not only diagnostic (`DX`) ones.
    pub all_slides: bool,
    /// A table of one label per case, and the column holding it.
    pub labels: Option<(PathBuf, String)>,
}

impl GdcOptions {
    /// The defaults for these four inputs.
    pub fn new(
        sample_sheet: impl Into<PathBuf>,
        expression_dir: impl Into<PathBuf>,
        clinical: impl Into<PathBuf>,
        features_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            sample_sheet: sample_sheet.into(),
            expression_dir: expression_dir.into(),
            clinical: clinical.into(),
            features_dir: features_dir.into(),
            value: ValueColumn::Tpm,
            gene_types: GeneTypes::Only(vec!["protein_coding".into()]),
            gene_id: GeneId::Symbol,
            sample_types: vec!["Primary Tumor".into()],
            all_slides: false,
            labels: None,
        }
    }
}

/// What a build kept, left out and why. Serializes to `--report`'s JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GdcReport {
    /// The GENCODE version of the expression files (`v36`), when they say.
    pub gencode: Option<String>,
    /// Cases kept.
    pub cases: usize,
    /// Slides kept (rows of the cohort).
    pub slides: usize,
    /// Gene columns.
    pub genes: usize,
    /// Kept cases with an observed death (censorship 0).
    pub events: usize,
    /// Kept cases censored at their last follow-up (censorship 1).
    pub censored: usize,
    /// Cases with expression but no kept slide.
    pub rna_only: Vec<String>,
    /// Cases with a kept slide but no expression.
    pub slide_only: Vec<String>,
    /// Cases with expression and a slide but no usable survival.
    pub no_survival: Vec<String>,
    /// Expression samples dropped, by sample type.
    pub dropped_samples: BTreeMap<String, usize>,
    /// Slides dropped, by reason (`not diagnostic`, `sample type 11`).
    pub dropped_slides: BTreeMap<String, usize>,
    /// Cases whose several tumour aliquots were averaged.
    pub averaged_aliquots: Vec<String>,
    /// Kept cases the labels table has no label for (their label cell is empty).
    pub unlabeled: Vec<String>,
    /// Feature files whose name is not a slide barcode (left out).
    pub unrecognized_slides: Vec<String>,
}

impl GdcReport {
    /// Writes the report as pretty JSON.
    ///
    /// # Errors
    ///
    /// [`GdcError::Io`] naming the file.
    pub fn save(&self, path: &Path) -> Result<(), GdcError> {
        let text = serde_json::to_string_pretty(self).expect("a report serializes") + "\n";
        write_text(path, &text)
    }
}

impl std::fmt::Display for GdcReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |ids: &[String]| {
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        };
        let counts = |m: &BTreeMap<String, usize>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter()
                    .map(|(k, n)| format!("{k}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(
            f,
            "kept           {} case(s), {} slide(s), {} gene(s) (GENCODE {})",
            self.cases,
            self.slides,
            self.genes,
            self.gencode.as_deref().unwrap_or("not stated")
        )?;
        writeln!(
            f,
            "survival       {} event(s), {} censored",
            self.events, self.censored
        )?;
        writeln!(f, "rna only       {}", list(&self.rna_only))?;
        writeln!(f, "slide only     {}", list(&self.slide_only))?;
        writeln!(f, "no survival    {}", list(&self.no_survival))?;
        writeln!(f, "dropped samples {}", counts(&self.dropped_samples))?;
        writeln!(f, "dropped slides {}", counts(&self.dropped_slides))?;
        write!(f, "averaged       {}", list(&self.averaged_aliquots))?;
        if !self.unlabeled.is_empty() {
            write!(f, "\nunlabeled      {}", list(&self.unlabeled))?;
        }
        if !self.unrecognized_slides.is_empty() {
            write!(f, "\nunrecognized   {}", list(&self.unrecognized_slides))?;
        }
        Ok(())
    }
}

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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GdcError + '_ {
    move |source| GdcError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A built cohort: the CSV's header and rows, and the report.
#[derive(Debug, Clone, PartialEq)]
pub struct GdcCohort {
    /// Column names.
    pub header: Vec<String>,
    /// One row per kept slide.
    pub rows: Vec<Vec<String>>,
    /// What was kept and left out.
    pub report: GdcReport,
}

impl GdcCohort {
    /// Writes the cohort CSV (through a temporary file renamed into place).
    ///
    /// # Errors
    ///
    /// [`GdcError::Io`] naming the file.
    pub fn write_csv(&self, path: &Path) -> Result<(), GdcError> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let failed = |e: csv::Error| GdcError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        };
        writer.write_record(&self.header).map_err(failed)?;
        for row in &self.rows {
            writer.write_record(row).map_err(failed)?;
        }
        let bytes = writer.into_inner().map_err(|e| GdcError::Io {
            path: path.to_path_buf(),
            source: e.into_error(),
        })?;
        let text = String::from_utf8(bytes).expect("cells read as UTF-8 text");
        write_text(path, &text)
    }
}

/// Writes `text` to `path` atomically; a failure names the file once.
fn write_text(path: &Path, text: &str) -> Result<(), GdcError> {
    crate::util::atomic::write(path, text.as_bytes()).map_err(|source| GdcError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A tab-separated table: its header and its rows with their line numbers.
struct Table {
    path: PathBuf,
    header: Vec<String>,
    rows: Vec<(u64, Vec<String>)>,
}

impl Table {
    /// Reads a table separated by `delimiter`, unquoted (GDC exports do not quote).
    fn read(path: &Path, delimiter: u8) -> Result<Self, GdcError> {
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
    fn column(&self, names: &[&'static str]) -> Result<(usize, &'static str), GdcError> {
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
fn missing(cell: &str) -> bool {
    matches!(
        cell.trim(),
        "" | "'--" | "--" | "Not Reported" | "not reported" | "Unknown" | "unknown"
    )
}

/// The one id of a cell that may list several comma-separated ids (all must be equal).
fn one_id(path: &Path, line: u64, column: &str, cell: &str) -> Result<String, GdcError> {
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

/// One STAR file's genes: `(key, value)` in file order, values of equal keys summed.
#[derive(Debug, Clone, PartialEq)]
struct StarFile {
    gencode: Option<String>,
    genes: Vec<(String, f64)>,
}

/// The unversioned Ensembl id: `ENSG00000002586.20_PAR_Y` → `ENSG00000002586_PAR_Y`.
pub fn unversioned(id: &str) -> String {
    match id.split_once('.') {
        Some((base, rest)) => {
            let suffix = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{base}{suffix}")
        }
        None => id.to_string(),
    }
}

/// Reads one STAR augmented gene-counts file.
fn read_star(path: &Path, options: &GdcOptions) -> Result<StarFile, GdcError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let value_col = STAR_HEADER
        .iter()
        .position(|&c| c == options.value.column())
        .expect("the value column is a STAR column");
    let mut gencode = None;
    let mut header_seen = false;
    let mut genes: Vec<(String, f64)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| GdcError::Table {
            path: path.to_path_buf(),
            line: line_no,
            message: e.to_string(),
        })?;
        let line = line.trim_end_matches('\r');
        if !header_seen {
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(at) = comment.find("GENCODE") {
                    gencode = comment[at + "GENCODE".len()..]
                        .split_whitespace()
                        .next()
                        .map(str::to_string);
                }
                continue;
            }
            let cells: Vec<&str> = line.split('\t').map(str::trim).collect();
            if cells != STAR_HEADER {
                return Err(GdcError::Header {
                    path: path.to_path_buf(),
                    line: line_no,
                    got: cells.join(" "),
                });
            }
            header_seen = true;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split('\t').map(str::trim).collect();
        if cells.len() != STAR_HEADER.len() {
            return Err(GdcError::Table {
                path: path.to_path_buf(),
                line: line_no,
                message: format!(
                    "{} cells, but the header has {}",
                    cells.len(),
                    STAR_HEADER.len()
                ),
            });
        }
        // The four summary rows (N_unmapped, …) are not genes.
        if cells[0].starts_with("N_") {
            continue;
        }
        if let GeneTypes::Only(types) = &options.gene_types
            && !types.iter().any(|t| t == cells[2])
        {
            continue;
        }
        let bad = |column: usize, reason| GdcError::BadValue {
            path: path.to_path_buf(),
            line: line_no,
            column: STAR_HEADER[column].to_string(),
            value: cells[column].to_string(),
            reason,
        };
        let key = match options.gene_id {
            GeneId::Symbol if cells[1].is_empty() => return Err(bad(1, "a gene without a name")),
            GeneId::Symbol => cells[1].to_string(),
            GeneId::Ensembl => unversioned(cells[0]),
        };
        let value: f64 =
            crate::data::parse_finite(cells[value_col]).map_err(|r| bad(value_col, r))?;
        if value < 0.0 {
            return Err(bad(value_col, "expression cannot be negative"));
        }
        match index.get(&key) {
            Some(&at) => genes[at].1 += value,
            None => {
                index.insert(key.clone(), genes.len());
                genes.push((key, value));
            }
        }
    }
    if !header_seen {
        return Err(GdcError::Header {
            path: path.to_path_buf(),
            line: 1,
            got: "(no header: the file is empty)".into(),
        });
    }
    Ok(StarFile { gencode, genes })
}

/// A slide feature file's barcode parts: the case, the sample type code, whether diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlideBarcode {
    /// The case (patient) barcode: the first three fields (`TCGA-05-4244`).
    pub case: String,
    /// The sample type code (`01`).
    pub sample_code: String,
    /// Whether the slide is diagnostic (its slide field starts with `DX`).
    pub diagnostic: bool,
}

/// Parses a slide barcode such as `TCGA-05-4244-01Z-00-DX1.8F4C…`: `None` when the name has
/// not that shape.
pub fn parse_slide_barcode(stem: &str) -> Option<SlideBarcode> {
    let fields: Vec<&str> = stem.split('-').collect();
    if fields.len() < 6 || fields[..3].iter().any(|f| f.is_empty()) {
        return None;
    }
    let code = fields[3]
        .get(..2)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))?;
    let slide = fields[5].split('.').next().unwrap_or("");
    if slide.is_empty() {
        return None;
    }
    Some(SlideBarcode {
        case: fields[..3].join("-"),
        sample_code: code.to_string(),
        diagnostic: slide.starts_with("DX"),
    })
}

/// The stems of the `.h5` and `.pt` files in `dir`, `dir/h5_files` and `dir/pt_files`.
fn slide_stems(dir: &Path) -> Result<BTreeSet<String>, GdcError> {
    let mut stems = BTreeSet::new();
    for folder in [
        dir.to_path_buf(),
        dir.join("h5_files"),
        dir.join("pt_files"),
    ] {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(_) if folder != dir => continue,
            Err(e) => return Err(io(dir)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io(&folder))?.path();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if path.is_file()
                && matches!(ext.as_deref(), Some("h5" | "pt"))
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                stems.insert(stem.to_string());
            }
        }
    }
    Ok(stems)
}

/// A case's survival.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Survival {
    days: f64,
    censored: bool,
}

/// Survival per case from the clinical export; cases without usable survival map to `None`.
fn read_survival(path: &Path) -> Result<BTreeMap<String, Option<Survival>>, GdcError> {
    let table = Table::read(path, b'\t')?;
    let (case_col, _) = table.column(&["case_submitter_id", "cases.submitter_id"])?;
    let (vital_col, vital_name) = table.column(&["vital_status", "demographic.vital_status"])?;
    let (death_col, death_name) = table.column(&["days_to_death", "demographic.days_to_death"])?;
    let (follow_col, follow_name) =
        table.column(&["days_to_last_follow_up", "diagnoses.days_to_last_follow_up"])?;
    #[derive(Default)]
    struct Facts {
        vital: Option<(u64, String)>,
        death: Option<(u64, f64, String)>,
        follow_up: Option<f64>,
    }
    let mut facts: BTreeMap<String, Facts> = BTreeMap::new();
    for (line, row) in &table.rows {
        let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
        let case = cell(case_col);
        if missing(case) {
            continue;
        }
        let days = |col: usize, name: &'static str| -> Result<Option<f64>, GdcError> {
            let value = cell(col);
            if missing(value) {
                return Ok(None);
            }
            let bad = |reason| GdcError::BadValue {
                path: path.to_path_buf(),
                line: *line,
                column: name.to_string(),
                value: value.to_string(),
                reason,
            };
            let days = crate::data::parse_finite(value).map_err(bad)?;
            if days < 0.0 {
                return Err(bad("a time cannot be negative"));
            }
            Ok(Some(days))
        };
        let death = days(death_col, death_name)?;
        let follow = days(follow_col, follow_name)?;
        let f = facts.entry(case.to_string()).or_default();
        let contradiction =
            |column, first_line, first: &str, second: &str| GdcError::Contradiction {
                path: path.to_path_buf(),
                case: case.to_string(),
                column,
                lines: [first_line, *line],
                values: Box::new([first.to_string(), second.to_string()]),
            };
        let vital = cell(vital_col);
        if !missing(vital) {
            match &f.vital {
                Some((first_line, first)) if !first.eq_ignore_ascii_case(vital) => {
                    return Err(contradiction(vital_name, *first_line, first, vital));
                }
                Some(_) => {}
                None => f.vital = Some((*line, vital.to_string())),
            }
        }
        if let Some(d) = death {
            match &f.death {
                Some((first_line, first, text)) if *first != d => {
                    return Err(contradiction(
                        death_name,
                        *first_line,
                        text,
                        cell(death_col),
                    ));
                }
                Some(_) => {}
                None => f.death = Some((*line, d, cell(death_col).to_string())),
            }
        }
        if let Some(d) = follow {
            f.follow_up = Some(f.follow_up.map_or(d, |m: f64| m.max(d)));
        }
    }
    Ok(facts
        .into_iter()
        .map(|(case, f)| {
            let vital = f.vital.map(|(_, v)| v.to_ascii_lowercase());
            let survival = match (vital.as_deref(), f.death, f.follow_up) {
                (Some("dead"), Some((_, days, _)), _) => Some(Survival {
                    days,
                    censored: false,
                }),
                (Some("alive"), _, Some(days)) => Some(Survival {
                    days,
                    censored: true,
                }),
                _ => None,
            };
            (case, survival)
        })
        .collect())
}

/// One label per case from a CSV or TSV (tab-separated when its header has a tab): the case
/// column is the first of `case_submitter_id`, `cases.submitter_id`, `patient_id`, `case_id`,
/// `bcr_patient_barcode`, `patient`, `case`; TCGA barcodes longer than a case's are cut to
/// its 12 characters.
fn read_labels(path: &Path, column: &str) -> Result<HashMap<String, String>, GdcError> {
    // The header line alone tells the separator.
    let mut first = String::new();
    std::io::BufReader::new(std::fs::File::open(path).map_err(io(path))?)
        .read_line(&mut first)
        .map_err(io(path))?;
    let table = Table::read(path, if first.contains('\t') { b'\t' } else { b',' })?;
    let (case_col, _) = table.column(&[
        "case_submitter_id",
        "cases.submitter_id",
        "patient_id",
        "case_id",
        "bcr_patient_barcode",
        "patient",
        "case",
    ])?;
    let label_col = table
        .header
        .iter()
        .position(|h| h == column)
        .ok_or_else(|| GdcError::MissingColumn {
            path: path.to_path_buf(),
            column: format!("`{column}`"),
            available: table.header.join(", "),
        })?;
    let mut labels: HashMap<String, (u64, String)> = HashMap::new();
    for (line, row) in &table.rows {
        let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
        let mut case = cell(case_col).to_string();
        if case.starts_with("TCGA-") && case.len() > 12 {
            case.truncate(12);
        }
        let label = cell(label_col);
        if missing(&case) || missing(label) {
            continue;
        }
        match labels.get(&case) {
            Some((first_line, first)) if first != label => {
                return Err(GdcError::Contradiction {
                    path: path.to_path_buf(),
                    case,
                    column: "label",
                    lines: [*first_line, *line],
                    values: Box::new([first.clone(), label.to_string()]),
                });
            }
            Some(_) => {}
            None => {
                labels.insert(case, (*line, label.to_string()));
            }
        }
    }
    Ok(labels.into_iter().map(|(c, (_, l))| (c, l)).collect())
}

/// Builds the cohort. See the module documentation and `docs/cohorts.md`.
///
/// # Errors
///
/// [`GdcError`] naming the file (and line, column, value) at fault: an unreadable or ragged
/// table, a missing column, an expression file the sample sheet lists that the folder lacks
/// (all listed), a STAR file with another header, a negative or non-numeric value, a case
/// whose clinical rows contradict each other (vital status, days to death), expression files
/// of different GENCODE versions or gene lists, an unknown sample type.
pub fn build(options: &GdcOptions) -> Result<GdcCohort, GdcError> {
    let mut report = GdcReport::default();
    let codes: Vec<&str> = options
        .sample_types
        .iter()
        .map(|name| {
            SAMPLE_TYPES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|&(_, code)| code)
                .ok_or_else(|| {
                    GdcError::Setting(format!(
                        "unknown sample type `{name}`; the GDC's are: {}",
                        SAMPLE_TYPES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
        })
        .collect::<Result<_, _>>()?;

    // Expression: the sample sheet's expression files of the kept sample types.
    let sheet = Table::read(&options.sample_sheet, b'\t')?;
    let (id_col, _) = sheet.column(&["File ID"])?;
    let (name_col, _) = sheet.column(&["File Name"])?;
    let (type_col, _) = sheet.column(&["Data Type"])?;
    let (case_col, case_name) = sheet.column(&["Case ID"])?;
    let (sample_type_col, sample_type_name) = sheet.column(&["Sample Type"])?;
    let mut files: Vec<(u64, String, PathBuf)> = Vec::new();
    let mut missing_files = Vec::new();
    for (line, row) in &sheet.rows {
        let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
        if cell(type_col) != EXPRESSION_TYPE {
            continue;
        }
        let case = one_id(&sheet.path, *line, case_name, cell(case_col))?;
        let sample_type = one_id(&sheet.path, *line, sample_type_name, cell(sample_type_col))?;
        if !options
            .sample_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&sample_type))
        {
            *report.dropped_samples.entry(sample_type).or_default() += 1;
            continue;
        }
        let nested = options
            .expression_dir
            .join(cell(id_col))
            .join(cell(name_col));
        let flat = options.expression_dir.join(cell(name_col));
        let found = [&nested, &flat].into_iter().find(|p| p.is_file()).cloned();
        match found {
            Some(path) => files.push((*line, case, path)),
            None => missing_files.push((*line, nested)),
        }
    }
    if !missing_files.is_empty() {
        return Err(GdcError::MissingFiles {
            sheet: options.sample_sheet.clone(),
            dir: options.expression_dir.clone(),
            missing: missing_files,
        });
    }
    let mut genes: Vec<String> = Vec::new();
    let mut gene_index: HashMap<String, usize> = HashMap::new();
    let mut first_file: Option<PathBuf> = None;
    let mut by_case: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
    for (i, (_, case, path)) in files.iter().enumerate() {
        crate::progress::report("expression files read", i, files.len());
        let star = read_star(path, options)?;
        match &first_file {
            None => {
                report.gencode = star.gencode.clone();
                for (key, _) in &star.genes {
                    gene_index.insert(key.clone(), genes.len());
                    genes.push(key.clone());
                }
                first_file = Some(path.clone());
            }
            Some(first) => {
                if star.gencode != report.gencode {
                    return Err(GdcError::Inconsistent {
                        path: path.clone(),
                        message: format!(
                            "GENCODE {}, but {} is GENCODE {}: one cohort takes one gene model",
                            star.gencode.as_deref().unwrap_or("not stated"),
                            first.display(),
                            report.gencode.as_deref().unwrap_or("not stated")
                        ),
                    });
                }
                if star.genes.len() != genes.len() {
                    return Err(GdcError::Inconsistent {
                        path: path.clone(),
                        message: format!(
                            "{} genes kept, but {} has {}",
                            star.genes.len(),
                            first.display(),
                            genes.len()
                        ),
                    });
                }
            }
        }
        let (sums, count) = by_case
            .entry(case.clone())
            .or_insert_with(|| (vec![0.0; genes.len()], 0));
        for (key, value) in &star.genes {
            let at = *gene_index.get(key).ok_or_else(|| GdcError::Inconsistent {
                path: path.clone(),
                message: format!(
                    "gene `{key}` is not in {}",
                    first_file.as_deref().unwrap_or(path).display()
                ),
            })?;
            sums[at] += value;
        }
        *count += 1;
    }
    crate::progress::report("expression files read", files.len(), files.len());
    let expression: BTreeMap<String, Vec<f64>> = by_case
        .into_iter()
        .map(|(case, (sums, n))| {
            if n > 1 {
                report.averaged_aliquots.push(case.clone());
            }
            let mean = sums.into_iter().map(|s| s / n as f64).collect();
            (case, mean)
        })
        .collect();

    // Slides.
    let mut slides: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for stem in slide_stems(&options.features_dir)? {
        let Some(barcode) = parse_slide_barcode(&stem) else {
            report.unrecognized_slides.push(stem);
            continue;
        };
        let reason = if !codes.contains(&barcode.sample_code.as_str()) {
            Some(format!("sample type {}", barcode.sample_code))
        } else if !barcode.diagnostic && !options.all_slides {
            Some("not diagnostic".to_string())
        } else {
            None
        };
        match reason {
            Some(reason) => *report.dropped_slides.entry(reason).or_default() += 1,
            None => slides.entry(barcode.case).or_default().push(stem),
        }
    }

    let survival = read_survival(&options.clinical)?;
    let labels = match &options.labels {
        Some((path, column)) => Some(read_labels(path, column)?),
        None => None,
    };

    let mut kept: Vec<&String> = Vec::new();
    for case in expression.keys() {
        if !slides.contains_key(case) {
            report.rna_only.push(case.clone());
        } else if survival.get(case).copied().flatten().is_none() {
            report.no_survival.push(case.clone());
        } else {
            kept.push(case);
        }
    }
    report.slide_only = slides
        .keys()
        .filter(|c| !expression.contains_key(*c))
        .cloned()
        .collect();

    let mut header: Vec<String> = [
        "patient_id",
        "wsi_file_name",
        "survival_months",
        "censorship",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if labels.is_some() {
        header.push("label".into());
    }
    header.extend(genes.iter().map(|g| format!("rna_{g}")));
    let mut rows = Vec::new();
    for case in &kept {
        let s = survival[*case].expect("kept cases have survival");
        if s.censored {
            report.censored += 1;
        } else {
            report.events += 1;
        }
        let label = labels.as_ref().map(|l| match l.get(*case) {
            Some(label) => label.clone(),
            None => {
                report.unlabeled.push((*case).clone());
                String::new()
            }
        });
        for slide in &slides[*case] {
            let mut row = vec![
                (*case).clone(),
                slide.clone(),
                format!("{}", s.days / DAYS_PER_MONTH),
                u8::from(s.censored).to_string(),
            ];
            row.extend(label.clone());
            row.extend(expression[*case].iter().map(|v| format!("{v}")));
            rows.push(row);
        }
    }
    report.cases = kept.len();
    report.slides = rows.len();
    report.genes = genes.len();
    if rows.is_empty() {
        return Err(GdcError::Setting(format!(
            "no case has expression, a kept slide and survival:\n{report}"
        )));
    }
    Ok(GdcCohort {
        header,
        rows,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barcodes_and_ensembl_ids() {
        let b = parse_slide_barcode("TCGA-05-4244-01Z-00-DX1.8F4C1B2A-AAAA").unwrap();
        assert_eq!(
            b,
            SlideBarcode {
                case: "TCGA-05-4244".into(),
                sample_code: "01".into(),
                diagnostic: true
            }
        );
        let ts = parse_slide_barcode("TCGA-05-4244-11A-01-TS1.X").unwrap();
        assert_eq!((ts.sample_code.as_str(), ts.diagnostic), ("11", false));
        assert_eq!(parse_slide_barcode("slide_7"), None);
        assert_eq!(parse_slide_barcode("TCGA-05-4244-XYZ-00-DX1"), None);
        assert_eq!(unversioned("ENSG00000141510.18"), "ENSG00000141510");
        assert_eq!(
            unversioned("ENSG00000002586.20_PAR_Y"),
            "ENSG00000002586_PAR_Y"
        );
        assert_eq!(unversioned("N_unmapped"), "N_unmapped");
    }
}
