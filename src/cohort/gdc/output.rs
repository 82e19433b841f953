//! What a build gives: the cohort's rows ([`GdcCohort`]) and the [`GdcReport`] of every case
//! left out and why.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::error::{GdcError, write_text};

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
