//! [`Normalization`]: the original's `normalize_rna`, fitted on the training split only.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CohortTable, DataError};

/// Expression normalization: `log2(x + 1)` (unless turned off for data already normalized),
/// then per-gene standardization with means and deviations fitted on the training slides.
/// Saved as `normalization.json` beside a model and applied unchanged to every later cohort.
///
/// Deviations are population deviations (divisor `n`); a gene with zero variance in the
/// training data gets deviation 1, so it normalizes to 0 rather than NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// Whether `log2(x + 1)` is applied first.
    pub log2: bool,
    /// Gene names, in column order; empty when unknown (see [`identity_for`](Self::identity_for)).
    pub genes: Vec<String>,
    /// Per-gene mean (after the log, when on).
    pub mean: Vec<f32>,
    /// Per-gene standard deviation (after the log, when on); never 0.
    pub std: Vec<f32>,
}

impl Normalization {
    /// The identity: no log, mean 0, deviation 1.
    pub fn identity(genes: &[String]) -> Self {
        Self {
            log2: false,
            genes: genes.to_vec(),
            mean: vec![0.0; genes.len()],
            std: vec![1.0; genes.len()],
        }
    }

    /// The identity for `genes` genes whose names are not known (an imported model): any gene
    /// columns of that count are accepted.
    pub fn identity_for(genes: usize) -> Self {
        Self {
            log2: false,
            genes: Vec::new(),
            mean: vec![0.0; genes],
            std: vec![1.0; genes],
        }
    }

    /// Fits the means and deviations on the slides `rows` of `table`.
    ///
    /// # Errors
    ///
    /// [`DataError::Setting`] for an empty training set; [`DataError::BadValue`] for a value
    /// below -1 with `log2` on (its logarithm is undefined).
    pub fn fit(table: &CohortTable, rows: &[usize], log2: bool) -> Result<Self, DataError> {
        if rows.is_empty() {
            return Err(DataError::Setting {
                setting: "normalization",
                message: "no training slide to fit the expression normalization on".into(),
            });
        }
        let genes = table.genes().len();
        let mut sum = vec![0.0f64; genes];
        let mut sum_sq = vec![0.0f64; genes];
        let identity = Self {
            log2,
            ..Self::identity(table.genes())
        };
        for &row in rows {
            for (g, v) in identity.transform(table, row)?.into_iter().enumerate() {
                sum[g] += v as f64;
                sum_sq[g] += (v as f64) * (v as f64);
            }
        }
        let n = rows.len() as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(sq, m)| {
                let var = (sq / n - m * m).max(0.0);
                let sd = var.sqrt();
                if sd > 1e-8 { sd as f32 } else { 1.0 }
            })
            .collect();
        Ok(Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
            ..identity
        })
    }

    /// Slide `row` of `table`, normalized.
    ///
    /// # Errors
    ///
    /// [`DataError::BadValue`] naming the line and gene of a value below -1 with `log2` on.
    pub fn transform(&self, table: &CohortTable, row: usize) -> Result<Vec<f32>, DataError> {
        table
            .expression(row)
            .iter()
            .enumerate()
            .map(|(g, &x)| {
                let x = if self.log2 {
                    if x <= -1.0 {
                        return Err(DataError::BadValue {
                            path: table.path().to_path_buf(),
                            line: table.slides()[row].line,
                            slide: table.slides()[row].slide.clone(),
                            column: table.genes()[g].clone(),
                            value: x.to_string(),
                            reason: "log2(x + 1) needs x > -1 (pass --no-log for expression \
                                     that is already normalized)",
                        });
                    }
                    (x + 1.0).log2()
                } else {
                    x
                };
                Ok((x - self.mean[g]) / self.std[g])
            })
            .collect()
    }

    /// Writes the normalization as JSON.
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] naming the file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), DataError> {
        super::json::save_json(self, path.as_ref())
    }

    /// Reads a normalization written by [`save`](Self::save), checking every field: the file is
    /// often copied and edited by hand, and a short list would index out of bounds later.
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] or [`DataError::Json`] naming the file; [`DataError::BadField`] when
    /// the gene, mean and deviation lists differ in length, a mean is not finite or a deviation
    /// is not a finite positive number.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let norm: Self = super::json::load_json(path)?;
        let bad = |field: String, reason: String| Err(DataError::bad_field(path, field, reason));
        if norm.std.len() != norm.mean.len() {
            return bad(
                "std".into(),
                format!(
                    "{} deviations for {} means; there must be one of each per gene",
                    norm.std.len(),
                    norm.mean.len()
                ),
            );
        }
        if !norm.genes.is_empty() && norm.genes.len() != norm.mean.len() {
            return bad(
                "genes".into(),
                format!(
                    "{} gene names for {} means (leave the list empty for unnamed genes)",
                    norm.genes.len(),
                    norm.mean.len()
                ),
            );
        }
        if let Some((g, m)) = norm.mean.iter().enumerate().find(|(_, m)| !m.is_finite()) {
            return bad(
                format!("mean[{g}]"),
                format!("must be a finite number, got {m}"),
            );
        }
        if let Some((g, sd)) = norm
            .std
            .iter()
            .enumerate()
            .find(|(_, sd)| !(sd.is_finite() && **sd > 0.0))
        {
            return bad(
                format!("std[{g}]"),
                format!("must be a finite number above 0, got {sd}"),
            );
        }
        Ok(norm)
    }
}
