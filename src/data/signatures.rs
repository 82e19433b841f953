//! Gene signatures (pathways) from a CSV in the MCAT/SurvPath format: one column per group,
//! gene names below it.

use std::path::Path;

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
/// [`DataError::Csv`]/[`DataError::Io`] for an unreadable file; [`DataError::EmptyFile`],
/// [`DataError::NoRows`], [`DataError::Delimiter`] or [`DataError::DuplicateColumn`] for a
/// file without groups, without genes, not comma-separated, or naming a group twice;
/// [`DataError::Setting`] naming a group none of whose genes the cohort has.
pub fn read_signatures(
    path: &Path,
    genes: &[String],
    prefix: &str,
) -> Result<Signatures, DataError> {
    let file = super::csvfile::CsvFile::read(path)?;
    let mut reader = file.reader(
        csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All),
    );
    let names = file.header(&mut reader)?;
    let mut members: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let mut any = false;
    for record in reader.records() {
        let record = record.map_err(|e| file.error(e))?;
        any = true;
        for (c, cell) in record.iter().enumerate().take(names.len()) {
            if !cell.is_empty() {
                members[c].push(cell.to_string());
            }
        }
    }
    if !any {
        return Err(file.no_rows());
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
