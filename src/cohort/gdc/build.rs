//! [`build`]: the steps from a GDC download to a cohort — sample codes, expression files,
//! expression, slides, survival, labels, the cases kept, then one row per kept slide.

use std::collections::{BTreeMap, HashMap};

use super::clinical::{Survival, read_labels, read_survival};
use super::error::GdcError;
use super::options::{DAYS_PER_MONTH, GdcOptions};
use super::output::{GdcCohort, GdcReport};
use super::sheet::{expression_files, sample_codes};
use super::slides::kept_slides;
use super::star::read_expression;

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
    let codes = sample_codes(options)?;
    let files = expression_files(options, &mut report)?;
    let (genes, expression) = read_expression(&files, options, &mut report)?;
    let slides = kept_slides(options, &codes, &mut report)?;
    let survival = read_survival(&options.clinical)?;
    let labels = match &options.labels {
        Some((path, column)) => Some(read_labels(path, column)?),
        None => None,
    };
    let kept = kept_cases(&expression, &slides, &survival, &mut report);
    let header = header(&genes, labels.is_some());
    let sources = Sources {
        expression: &expression,
        slides: &slides,
        survival: &survival,
        labels: labels.as_ref(),
    };
    let rows = sources.rows(&kept, &mut report);
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

/// The cases with expression, a kept slide and survival, in case order. The others are
/// listed in the report: `rna_only`, `no_survival`, and `slide_only` for the cases with a
/// kept slide and no expression.
fn kept_cases<'a>(
    expression: &'a BTreeMap<String, Vec<f64>>,
    slides: &BTreeMap<String, Vec<String>>,
    survival: &BTreeMap<String, Option<Survival>>,
    report: &mut GdcReport,
) -> Vec<&'a String> {
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
    kept
}

/// The cohort CSV's header: the case, slide and survival columns, `label` when `labelled`,
/// then one `rna_{gene}` column per gene.
fn header(genes: &[String], labelled: bool) -> Vec<String> {
    let mut header: Vec<String> = [
        "patient_id",
        "wsi_file_name",
        "survival_months",
        "censorship",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if labelled {
        header.push("label".into());
    }
    header.extend(genes.iter().map(|g| format!("rna_{g}")));
    header
}

/// What a row is made of, per case.
struct Sources<'a> {
    /// Each case's (averaged) expression.
    expression: &'a BTreeMap<String, Vec<f64>>,
    /// Each case's kept slides.
    slides: &'a BTreeMap<String, Vec<String>>,
    /// Each case's survival.
    survival: &'a BTreeMap<String, Option<Survival>>,
    /// Each case's label, when a labels table was given.
    labels: Option<&'a HashMap<String, String>>,
}

impl Sources<'_> {
    /// One row per kept slide of the `kept` cases; counts events and censored cases, and
    /// lists the cases without a label, in the report.
    fn rows(&self, kept: &[&String], report: &mut GdcReport) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for case in kept {
            let s = self.survival[*case].expect("kept cases have survival");
            if s.censored {
                report.censored += 1;
            } else {
                report.events += 1;
            }
            let label = self.labels.map(|l| match l.get(*case) {
                Some(label) => label.clone(),
                None => {
                    report.unlabeled.push((*case).clone());
                    String::new()
                }
            });
            for slide in &self.slides[*case] {
                let mut row = vec![
                    (*case).clone(),
                    slide.clone(),
                    format!("{}", s.days / DAYS_PER_MONTH),
                    u8::from(s.censored).to_string(),
                ];
                row.extend(label.clone());
                row.extend(self.expression[*case].iter().map(|v| format!("{v}")));
                rows.push(row);
            }
        }
        rows
    }
}
