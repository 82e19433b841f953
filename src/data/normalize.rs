//! [`Normalization`]: expression scaling (the original's `log2(x + 1)` then z-score, or a
//! z-score, a min-max scaling or none) and the top-K gene selection, fitted on the training
//! split only.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CohortTable, DataError};

/// How expression values are scaled, per gene, with statistics of the training patients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormalizeMethod {
    /// `log2(x + 1)`, then a z-score (the original's; for counts, TPM or FPKM).
    #[default]
    Log2Zscore,
    /// A z-score (for values already on a log scale).
    Zscore,
    /// Min-max scaling of the training range to `[-1, 1]` (SurvPath's); later values may fall
    /// outside it.
    Minmax,
    /// The values as they are (tables already z-scored; MCAT's `*_rnaseq` columns are not
    /// all: some reach thousands, see the README).
    None,
}

impl NormalizeMethod {
    /// The method's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Log2Zscore => "log2-zscore",
            Self::Zscore => "zscore",
            Self::Minmax => "minmax",
            Self::None => "none",
        }
    }
}

/// Expression normalization: `log2(x + 1)` when `log2` is on, then per gene
/// `(x − mean) / std`. `mean` and `std` are a centre and a scale: the training mean and
/// population deviation for a z-score, the midpoint and half-range of the training values
/// for min-max scaling, 0 and 1 for none. A gene constant on the training patients gets scale
/// 1, so it normalizes to 0 rather than NaN. Statistics come from one row per training
/// patient, so a patient with several slides counts once.
///
/// `genes` are the genes the model takes, by column name, in CSV order: all gene columns, or
/// the `--top-genes` selection. Saved as `normalization.json` beside a model and applied
/// unchanged to every later cohort, whose gene columns are found by these names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// The method fitted (absent in folders written before methods could be chosen: then
    /// `log2` tells log2-zscore from zscore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<NormalizeMethod>,
    /// Whether `log2(x + 1)` is applied first.
    pub log2: bool,
    /// Gene column names, in column order; empty when unknown (see
    /// [`identity_for`](Self::identity_for)).
    pub genes: Vec<String>,
    /// Per-gene centre (after the log, when on).
    pub mean: Vec<f32>,
    /// Per-gene scale (after the log, when on); never 0.
    pub std: Vec<f32>,
    /// Normalized values are clipped to `[-clip, clip]` (`--clip`); absent (files written
    /// before the option, or no clipping): not clipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<f32>,
}

impl Normalization {
    /// The identity: no log, mean 0, deviation 1.
    pub fn identity(genes: &[String]) -> Self {
        Self {
            method: Some(NormalizeMethod::None),
            log2: false,
            genes: genes.to_vec(),
            mean: vec![0.0; genes.len()],
            std: vec![1.0; genes.len()],
            clip: None,
        }
    }

    /// The identity for `genes` genes whose names are not known (an imported model): any gene
    /// columns of that count are accepted.
    pub fn identity_for(genes: usize) -> Self {
        Self {
            method: Some(NormalizeMethod::None),
            log2: false,
            genes: Vec::new(),
            mean: vec![0.0; genes],
            std: vec![1.0; genes],
            clip: None,
        }
    }

    /// Fits `method` on the rows `rows` of `table` (one per training patient), keeping, with
    /// `top_genes` K, only the K genes of largest median absolute deviation on those rows
    /// (after `log2(x + 1)` when the method takes it; ties go to the earlier column), in
    /// CSV order.
    ///
    /// # Errors
    ///
    /// [`DataError::Setting`] for an empty training set, or K of 0 or above the number of gene
    /// columns; [`DataError::BadValue`] for a value below -1 with `log2` on (its logarithm is
    /// undefined).
    pub fn fit(
        table: &CohortTable,
        rows: &[usize],
        method: NormalizeMethod,
        top_genes: Option<usize>,
    ) -> Result<Self, DataError> {
        if rows.is_empty() {
            return Err(DataError::Setting {
                setting: "normalization",
                message: "no training slide to fit the expression normalization on".into(),
            });
        }
        let all = table.genes().len();
        let log2 = method == NormalizeMethod::Log2Zscore;
        let raw = Self {
            method: Some(method),
            log2,
            ..Self::identity(table.genes())
        };
        let columns: Vec<usize> = (0..all).collect();
        // values[g][r]: gene g of training row r, after the log when on.
        let mut values = vec![Vec::with_capacity(rows.len()); all];
        for &row in rows {
            for (g, v) in raw.transform(table, row, &columns)?.into_iter().enumerate() {
                values[g].push(v as f64);
            }
        }
        let keep = kept_genes(&values, top_genes, table)?;
        let (mut mean, mut std) = (
            Vec::with_capacity(keep.len()),
            Vec::with_capacity(keep.len()),
        );
        for &g in &keep {
            let (centre, scale) = centre_and_scale(method, &values[g]);
            mean.push(centre as f32);
            std.push(if scale > 1e-8 { scale as f32 } else { 1.0 });
        }
        Ok(Self {
            method: Some(method),
            log2,
            genes: keep.iter().map(|&g| table.genes()[g].clone()).collect(),
            mean,
            std,
            clip: None,
        })
    }

    /// This normalization with its values clipped to `[-clip, clip]` (`None`: not clipped).
    pub fn with_clip(self, clip: Option<f32>) -> Self {
        Self { clip, ..self }
    }

    /// The method, also for folders that predate its field.
    pub fn method(&self) -> NormalizeMethod {
        self.method.unwrap_or(if self.log2 {
            NormalizeMethod::Log2Zscore
        } else {
            NormalizeMethod::Zscore
        })
    }

    /// The columns of `table` holding this normalization's genes, in its order: found by name,
    /// wherever they are among the table's gene columns; by position when the names are not
    /// known.
    ///
    /// # Errors
    ///
    /// [`DataError::MissingGenes`] listing the genes the table lacks;
    /// [`DataError::GeneCount`] when names are unknown and the counts differ.
    pub fn columns_in(&self, table: &CohortTable) -> Result<Vec<usize>, DataError> {
        if self.genes.is_empty() {
            table.check_genes(self.mean.len(), None)?;
            return Ok((0..self.mean.len()).collect());
        }
        let index: HashMap<&str, usize> = table
            .genes()
            .iter()
            .enumerate()
            .map(|(i, g)| (g.as_str(), i))
            .collect();
        let missing: Vec<String> = self
            .genes
            .iter()
            .filter(|g| !index.contains_key(g.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(DataError::MissingGenes {
                path: table.path().to_path_buf(),
                expected: self.genes.len(),
                missing,
            });
        }
        Ok(self.genes.iter().map(|g| index[g.as_str()]).collect())
    }

    /// Row `row` of `table`, normalized: the values of `columns` (from
    /// [`columns_in`](Self::columns_in)), clipped to `[-clip, clip]` when
    /// [`clip`](Self::clip) is set.
    ///
    /// # Errors
    ///
    /// [`DataError::BadValue`] naming the line and gene of a value below -1 with `log2` on.
    pub fn transform(
        &self,
        table: &CohortTable,
        row: usize,
        columns: &[usize],
    ) -> Result<Vec<f32>, DataError> {
        let values = table.expression(row);
        columns
            .iter()
            .enumerate()
            .map(|(g, &c)| {
                let x = values[c];
                self.value(g, x).ok_or_else(|| DataError::BadValue {
                    path: table.path().to_path_buf(),
                    line: table.slides()[row].line,
                    slide: table.slides()[row].slide.clone(),
                    column: table.genes()[c].clone(),
                    value: x.to_string(),
                    reason: "log2(x + 1) needs x > -1 (choose another --normalize for \
                             expression that is already on a log scale)",
                })
            })
            .collect()
    }

    /// One sample's raw expression `values` (one per gene, in this normalization's order)
    /// normalized as [`transform`](Self::transform) does a cohort row: for callers that hold
    /// expression in memory rather than in a cohort CSV.
    ///
    /// # Errors
    ///
    /// [`DataError::Setting`] (setting `expression`) for a count of values other than the
    /// genes', or naming the gene of a value below -1 with `log2` on.
    pub fn apply(&self, values: &[f32]) -> Result<Vec<f32>, DataError> {
        let bad = |message: String| DataError::Setting {
            setting: "expression",
            message,
        };
        if values.len() != self.mean.len() {
            return Err(bad(format!(
                "{} values, but the model takes {} genes",
                values.len(),
                self.mean.len()
            )));
        }
        values
            .iter()
            .enumerate()
            .map(|(g, &x)| {
                self.value(g, x).ok_or_else(|| {
                    let name = self
                        .genes
                        .get(g)
                        .map_or(String::new(), |n| format!(" `{n}`"));
                    bad(format!(
                        "gene {g}{name}: log2(x + 1) needs x > -1, got {x} (this model \
                         takes raw expression: counts, TPM or FPKM)"
                    ))
                })
            })
            .collect()
    }

    /// Gene `g`'s value `x` normalized (logged when on, centred, scaled, clipped); `None`
    /// when the log is on and `x` is not above -1.
    fn value(&self, g: usize, x: f32) -> Option<f32> {
        let x = if self.log2 {
            if x <= -1.0 {
                return None;
            }
            (x + 1.0).log2()
        } else {
            x
        };
        let z = (x - self.mean[g]) / self.std[g];
        Some(match self.clip {
            Some(c) => z.clamp(-c, c),
            None => z,
        })
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
        if let Some(c) = norm.clip
            && !(c.is_finite() && c > 0.0)
        {
            return bad(
                "clip".into(),
                format!("must be a finite number above 0, got {c}"),
            );
        }
        if norm
            .method
            .is_some_and(|m| (m == NormalizeMethod::Log2Zscore) != norm.log2)
        {
            return bad(
                "log2".into(),
                format!("{}, but the method is {}", norm.log2, norm.method().name()),
            );
        }
        Ok(norm)
    }
}

/// The median of `|x − median(x)|` (medians of an even count are the mean of the middle
/// two); 0 for no value.
pub(crate) fn median_absolute_deviation(values: &[f64]) -> f64 {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    let m = median(values.to_vec());
    median(values.iter().map(|x| (x - m).abs()).collect())
}

/// The genes kept with `top_genes` K (all without): the K of largest median absolute
/// deviation over `values` (one list per gene; ties go to the earlier column), in CSV order.
///
/// # Errors
///
/// [`DataError::Setting`] for K of 0 or above the number of gene columns of `table`.
fn kept_genes(
    values: &[Vec<f64>],
    top_genes: Option<usize>,
    table: &CohortTable,
) -> Result<Vec<usize>, DataError> {
    let all = values.len();
    Ok(match top_genes {
        None => (0..all).collect(),
        Some(k) if k == 0 || k > all => {
            return Err(DataError::Setting {
                setting: "top_genes",
                message: format!(
                    "must lie between 1 and the {all} gene columns of {}, got {k}",
                    table.path().display()
                ),
            });
        }
        Some(k) => {
            let mad: Vec<f64> = values
                .iter()
                .map(|v| median_absolute_deviation(v))
                .collect();
            let mut order: Vec<usize> = (0..all).collect();
            order.sort_by(|&a, &b| mad[b].total_cmp(&mad[a]).then(a.cmp(&b)));
            let mut keep = order[..k].to_vec();
            keep.sort_unstable();
            keep
        }
    })
}

/// The centre and scale `method` takes from one gene's training values `v`: mean and
/// standard deviation, midrange and half-range, or 0 and 1.
fn centre_and_scale(method: NormalizeMethod, v: &[f64]) -> (f64, f64) {
    match method {
        NormalizeMethod::Log2Zscore | NormalizeMethod::Zscore => {
            let n = v.len() as f64;
            let m = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
            (m, var.sqrt())
        }
        NormalizeMethod::Minmax => {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            ((lo + hi) / 2.0, (hi - lo) / 2.0)
        }
        NormalizeMethod::None => (0.0, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::median_absolute_deviation as mad;

    #[test]
    fn median_absolute_deviation_by_hand() {
        // Median 3; deviations 2, 1, 0, 1, 97 → median 1.
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 100.0]), 1.0);
        // Median 2.5; deviations 1.5, 0.5, 0.5, 1.5 → median 1.
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0]), 1.0);
        assert_eq!(mad(&[7.0, 7.0, 7.0]), 0.0);
        assert_eq!(mad(&[]), 0.0);
    }
}
