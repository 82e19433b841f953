//! The sample sheet (`gdc_sample_sheet.*.tsv`): which expression files belong to which case,
//! of the sample types kept.

use std::path::PathBuf;

use super::error::GdcError;
use super::options::{EXPRESSION_TYPE, GdcOptions, SAMPLE_TYPES};
use super::output::GdcReport;
use super::table::{Table, one_id};

/// The barcode codes of `options.sample_types`.
///
/// # Errors
///
/// [`GdcError::Setting`] for a name that is not a GDC sample type.
pub(super) fn sample_codes(options: &GdcOptions) -> Result<Vec<&'static str>, GdcError> {
    options
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
        .collect()
}

/// The sample sheet's expression files of the kept sample types, as `(sample-sheet line,
/// case, path)`, found at `{File ID}/{File Name}` or `{File Name}` under the expression
/// folder; the samples of other types are counted in the report's `dropped_samples`.
///
/// # Errors
///
/// [`GdcError::MissingFiles`] listing every file not found; the errors of [`Table::read`],
/// [`Table::column`] and [`one_id`].
pub(super) fn expression_files(
    options: &GdcOptions,
    report: &mut GdcReport,
) -> Result<Vec<(u64, String, PathBuf)>, GdcError> {
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
    Ok(files)
}
