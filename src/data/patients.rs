//! [`Patients`]: the cohort's slides grouped by patient, and the checks that a patient's rows
//! agree.

use std::collections::HashMap;

use super::error::PatientMismatch;
use super::{CohortTable, DataError, parse_finite};

/// The patients of a cohort table, in order of first appearance, each with its slides in CSV
/// order. Without a patient column each slide is its own patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patients {
    ids: Vec<String>,
    slides: Vec<Vec<usize>>,
    of_slide: Vec<usize>,
}

impl Patients {
    /// Groups the slides of `table` by patient.
    pub fn of(table: &CohortTable) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut ids = Vec::new();
        let mut slides: Vec<Vec<usize>> = Vec::new();
        let mut of_slide = Vec::with_capacity(table.len());
        for (i, record) in table.slides().iter().enumerate() {
            let p = *index.entry(record.patient.as_str()).or_insert_with(|| {
                ids.push(record.patient.clone());
                slides.push(Vec::new());
                ids.len() - 1
            });
            slides[p].push(i);
            of_slide.push(p);
        }
        Self {
            ids,
            slides,
            of_slide,
        }
    }

    /// Number of patients.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is no patient.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Patient `p`'s id.
    pub fn id(&self, p: usize) -> &str {
        &self.ids[p]
    }

    /// Every patient id, in order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Patient `p`'s slides (indices into the table), in CSV order.
    pub fn slides(&self, p: usize) -> &[usize] {
        &self.slides[p]
    }

    /// The patient of slide `s`.
    pub fn of_slide(&self, s: usize) -> usize {
        self.of_slide[s]
    }

    /// The patients (in order) with a slide among `slides`.
    pub fn among(&self, slides: &[usize]) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut out = Vec::new();
        for &s in slides {
            let p = self.of_slide[s];
            if !seen[p] {
                seen[p] = true;
                out.push(p);
            }
        }
        out.sort_unstable();
        out
    }

    /// Checks that every patient's rows agree on the expression and on the cells of
    /// `columns` (the label, survival time and censorship: what belongs to the patient, not
    /// to a slide). Cells are compared as numbers when both are numbers (`12` and `12.0`
    /// agree), else as written; an empty cell is a value not given, which disagrees with
    /// nothing. Columns the table lacks are not compared.
    ///
    /// # Errors
    ///
    /// [`DataError::PatientMismatch`] naming the first patient, in CSV order, and the first
    /// column (the named columns first, then the genes) that differs (see
    /// [`mismatches`](Self::mismatches) for all of them).
    pub fn check_agreement(&self, table: &CohortTable, columns: &[&str]) -> Result<(), DataError> {
        match self.mismatches(table, columns).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every patient whose rows disagree (see [`check_agreement`](Self::check_agreement)), in
    /// CSV order, each as a [`DataError::PatientMismatch`] naming the first column that
    /// differs.
    pub fn mismatches(&self, table: &CohortTable, columns: &[&str]) -> Vec<DataError> {
        let cells: Vec<(&str, &[String])> = columns
            .iter()
            .filter_map(|&c| table.column(c).map(|cells| (c, cells)))
            .collect();
        (0..self.len())
            .filter_map(|p| self.mismatch(table, &cells, p))
            .collect()
    }

    /// The first disagreement among patient `p`'s rows.
    fn mismatch(
        &self,
        table: &CohortTable,
        cells: &[(&str, &[String])],
        p: usize,
    ) -> Option<DataError> {
        let records = table.slides();
        let (&first, rest) = self.slides[p].split_first()?;
        for &other in rest {
            let mismatch = |column: &str, a: String, b: String| {
                DataError::PatientMismatch(Box::new(PatientMismatch {
                    path: table.path().to_path_buf(),
                    patient: self.ids[p].clone(),
                    column: column.to_string(),
                    first_line: records[first].line,
                    first: a,
                    second_line: records[other].line,
                    second: b,
                }))
            };
            for (column, values) in cells {
                let (a, b) = (values[first].trim(), values[other].trim());
                if a.is_empty() || b.is_empty() {
                    continue;
                }
                let same = match (parse_finite(a), parse_finite(b)) {
                    (Ok(x), Ok(y)) => x == y,
                    _ => a == b,
                };
                if !same {
                    return Some(mismatch(column, a.to_string(), b.to_string()));
                }
            }
            // Rows without expression (a missing modality) agree with any.
            if !(table.has_rna(first) && table.has_rna(other)) {
                continue;
            }
            let (a, b) = (table.expression(first), table.expression(other));
            if let Some(g) = (0..a.len()).find(|&g| a[g] != b[g]) {
                return Some(mismatch(
                    &table.genes()[g],
                    a[g].to_string(),
                    b[g].to_string(),
                ));
            }
        }
        None
    }

    /// Whether patient `p` has expression (a row of it does).
    pub fn has_rna(&self, table: &CohortTable, p: usize) -> bool {
        self.slides[p].iter().any(|&s| table.has_rna(s))
    }

    /// Patient `p`'s expression row: its first row that has expression, else its first.
    pub fn rna_row(&self, table: &CohortTable, p: usize) -> usize {
        let slides = &self.slides[p];
        slides
            .iter()
            .copied()
            .find(|&s| table.has_rna(s))
            .unwrap_or(slides[0])
    }

    /// One expression row ([`rna_row`](Self::rna_row)) per patient of `patients` that has
    /// expression, in their order: the rows a normalization is fitted on or measured over (a
    /// patient's rows agree on the expression; patients without it take no part).
    pub fn rna_rows(
        &self,
        table: &CohortTable,
        patients: impl IntoIterator<Item = usize>,
    ) -> Vec<usize> {
        patients
            .into_iter()
            .filter(|&p| self.has_rna(table, p))
            .map(|p| self.rna_row(table, p))
            .collect()
    }

    /// How many patients have more than one slide.
    pub fn multi_slide(&self) -> usize {
        self.slides.iter().filter(|s| s.len() > 1).count()
    }
}
