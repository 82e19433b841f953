//! The expression download: STAR augmented gene-counts files ([`read_star`]), and the
//! expression of each case, its tumour aliquots averaged ([`read_expression`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::error::{GdcError, io};
use super::options::{GdcOptions, GeneId, GeneTypes, STAR_HEADER};
use super::output::GdcReport;

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
    let mut types_seen: BTreeSet<String> = BTreeSet::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| GdcError::Table {
            path: path.to_path_buf(),
            line: line_no,
            message: e.to_string(),
        })?;
        let line = line.trim_end_matches('\r');
        if !header_seen {
            header_seen = star_preamble(path, line_no, line, &mut gencode)?;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(kind) = line.split('\t').nth(2).map(str::trim)
            && !kind.is_empty()
            && !types_seen.contains(kind)
        {
            types_seen.insert(kind.to_string());
        }
        let Some((key, value)) = star_gene(path, line_no, line, options, value_col)? else {
            continue;
        };
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
    check_gene_types(path, options, &types_seen)?;
    Ok(StarFile { gencode, genes })
}

/// Refuses a gene type asked for that no gene of the file has (a typo would otherwise
/// leave its genes out without a word), naming the types the file has.
fn check_gene_types(
    path: &Path,
    options: &GdcOptions,
    seen: &BTreeSet<String>,
) -> Result<(), GdcError> {
    let GeneTypes::Only(types) = &options.gene_types else {
        return Ok(());
    };
    let missing: Vec<&str> = types
        .iter()
        .filter(|t| !seen.contains(t.as_str()))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(GdcError::Inconsistent {
        path: path.to_path_buf(),
        message: format!(
            "no gene has the gene type(s) asked for: {} (the file's types: {})",
            missing.join(", "),
            seen.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// A line before a STAR file's genes: a `#` comment (whose `GENCODE vN` sets `gencode`),
/// `false`; or the header, `true`.
///
/// # Errors
///
/// [`GdcError::Header`] for any other line.
fn star_preamble(
    path: &Path,
    line_no: u64,
    line: &str,
    gencode: &mut Option<String>,
) -> Result<bool, GdcError> {
    if let Some(comment) = line.strip_prefix('#') {
        if let Some(at) = comment.find("GENCODE") {
            *gencode = comment[at + "GENCODE".len()..]
                .split_whitespace()
                .next()
                .map(str::to_string);
        }
        return Ok(false);
    }
    let cells: Vec<&str> = line.split('\t').map(str::trim).collect();
    if cells != STAR_HEADER {
        return Err(GdcError::Header {
            path: path.to_path_buf(),
            line: line_no,
            got: cells.join(" "),
        });
    }
    Ok(true)
}

/// A gene line of a STAR file: its key (by `options.gene_id`) and the value of the column
/// `value_col`; `None` for the summary rows (`N_unmapped`, …) and genes of a type not kept.
fn star_gene(
    path: &Path,
    line_no: u64,
    line: &str,
    options: &GdcOptions,
    value_col: usize,
) -> Result<Option<(String, f64)>, GdcError> {
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
        return Ok(None);
    }
    if let GeneTypes::Only(types) = &options.gene_types
        && !types.iter().any(|t| t == cells[2])
    {
        return Ok(None);
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
    let value: f64 = crate::data::parse_finite(cells[value_col]).map_err(|r| bad(value_col, r))?;
    if value < 0.0 {
        return Err(bad(value_col, "expression cannot be negative"));
    }
    Ok(Some((key, value)))
}

/// The genes of the first STAR file read, which every other file must have.
struct GeneModel {
    /// The first file.
    first: PathBuf,
    /// Its GENCODE version.
    gencode: Option<String>,
    /// Its genes, in file order.
    genes: Vec<String>,
    /// Each gene's position in `genes`.
    index: HashMap<String, usize>,
}

impl GeneModel {
    /// The gene model of `star`, read from `path`.
    fn of(path: &Path, star: &StarFile) -> Self {
        let mut model = Self {
            first: path.to_path_buf(),
            gencode: star.gencode.clone(),
            genes: Vec::new(),
            index: HashMap::new(),
        };
        for (key, _) in &star.genes {
            model.index.insert(key.clone(), model.genes.len());
            model.genes.push(key.clone());
        }
        model
    }

    /// Checks that `star`, read from `path`, has this GENCODE version and as many genes.
    fn check(&self, path: &Path, star: &StarFile) -> Result<(), GdcError> {
        if star.gencode != self.gencode {
            return Err(GdcError::Inconsistent {
                path: path.to_path_buf(),
                message: format!(
                    "GENCODE {}, but {} is GENCODE {}: one cohort takes one gene model",
                    star.gencode.as_deref().unwrap_or("not stated"),
                    self.first.display(),
                    self.gencode.as_deref().unwrap_or("not stated")
                ),
            });
        }
        if star.genes.len() != self.genes.len() {
            return Err(GdcError::Inconsistent {
                path: path.to_path_buf(),
                message: format!(
                    "{} genes kept, but {} has {}",
                    star.genes.len(),
                    self.first.display(),
                    self.genes.len()
                ),
            });
        }
        Ok(())
    }

    /// Adds the values of `star`, read from `path`, to `sums`, each at its gene's position.
    fn add(&self, path: &Path, star: &StarFile, sums: &mut [f64]) -> Result<(), GdcError> {
        for (key, value) in &star.genes {
            let at = *self.index.get(key).ok_or_else(|| GdcError::Inconsistent {
                path: path.to_path_buf(),
                message: format!("gene `{key}` is not in {}", self.first.display()),
            })?;
            sums[at] += value;
        }
        Ok(())
    }
}

/// Each case's expression (averaged over its files), in the order of the genes.
pub(super) type CaseExpression = BTreeMap<String, Vec<f64>>;

/// The genes and each case's expression from `files` (`(sample-sheet line, case, path)`):
/// the files must share one gene model; a case's several files are averaged (and listed in
/// the report's `averaged_aliquots`). Sets the report's `gencode`.
pub(super) fn read_expression(
    files: &[(u64, String, PathBuf)],
    options: &GdcOptions,
    report: &mut GdcReport,
) -> Result<(Vec<String>, CaseExpression), GdcError> {
    let mut model: Option<GeneModel> = None;
    let mut by_case: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
    for (i, (_, case, path)) in files.iter().enumerate() {
        crate::progress::report("expression files read", i, files.len());
        let star = read_star(path, options)?;
        match &model {
            Some(first) => first.check(path, &star)?,
            None => model = Some(GeneModel::of(path, &star)),
        }
        let genes = model.as_ref().expect("the first file set the gene model");
        let (sums, count) = by_case
            .entry(case.clone())
            .or_insert_with(|| (vec![0.0; genes.genes.len()], 0));
        genes.add(path, &star, sums)?;
        *count += 1;
    }
    crate::progress::report("expression files read", files.len(), files.len());
    let expression = by_case
        .into_iter()
        .map(|(case, (sums, n))| {
            if n > 1 {
                report.averaged_aliquots.push(case.clone());
            }
            let mean = sums.into_iter().map(|s| s / n as f64).collect();
            (case, mean)
        })
        .collect();
    report.gencode = model.as_ref().and_then(|m| m.gencode.clone());
    Ok((model.map(|m| m.genes).unwrap_or_default(), expression))
}
