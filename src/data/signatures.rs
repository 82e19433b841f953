//! Gene signatures (pathways) from a CSV in the MCAT/SurvPath format: one column per group,
//! gene names below it.

use std::path::{Path, PathBuf};

use crate::model::GeneGroup;

use super::DataError;

/// Groups matched against a cohort's genes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures {
    /// The groups, by gene column index, in CSV column order.
    pub groups: Vec<GeneGroup>,
    /// Gene names in the signatures that the cohort does not have (each once, in file order).
    pub unknown: Vec<String>,
}

/// Reads a signatures CSV and matches its gene names against `genes` (the cohort's gene
/// columns) with `prefix` removed from the latter (`rna_TP53` matches `TP53`). Unknown genes
/// are reported in [`Signatures::unknown`], not an error.
///
/// # Errors
///
/// [`DataError::Csv`]/[`DataError::Io`] for an unreadable file; [`DataError::Setting`] naming
/// a group none of whose genes the cohort has, or a file without groups.
pub fn read_signatures(
    path: &Path,
    genes: &[String],
    prefix: &str,
) -> Result<Signatures, DataError> {
    let csv_error = |e: csv::Error| DataError::Csv {
        path: PathBuf::from(path),
        line: e.position().map(|p| p.line()).unwrap_or(0),
        message: e.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(csv_error)?;
    let names: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(str::to_string)
        .collect();
    let mut members: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        for (c, cell) in record.iter().enumerate().take(names.len()) {
            if !cell.is_empty() {
                members[c].push(cell.to_string());
            }
        }
    }
    let stripped: Vec<&str> = genes
        .iter()
        .map(|g| g.strip_prefix(prefix).unwrap_or(g))
        .collect();
    let index: std::collections::HashMap<&str, usize> =
        stripped.iter().enumerate().map(|(i, g)| (*g, i)).collect();
    let mut unknown = Vec::new();
    let mut seen_unknown = std::collections::HashSet::new();
    let mut groups = Vec::new();
    for (name, list) in names.into_iter().zip(members) {
        let mut found = Vec::new();
        for gene in &list {
            match index.get(gene.as_str()) {
                Some(&i) if !found.contains(&i) => found.push(i),
                Some(_) => {}
                None => {
                    if seen_unknown.insert(gene.clone()) {
                        unknown.push(gene.clone());
                    }
                }
            }
        }
        if found.is_empty() {
            return Err(DataError::Setting {
                setting: "signatures",
                message: format!(
                    "{}: group `{name}` has none of the cohort's genes ({} listed)",
                    path.display(),
                    list.len()
                ),
            });
        }
        groups.push(GeneGroup { name, genes: found });
    }
    if groups.is_empty() {
        return Err(DataError::Setting {
            setting: "signatures",
            message: format!("{}: no group columns", path.display()),
        });
    }
    Ok(Signatures { groups, unknown })
}
