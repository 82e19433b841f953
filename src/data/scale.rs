//! [`ScaleReport`]: the range of expression values after normalization, and the genes that lie
//! far outside what the model expects (MCAT's tables are not all z-scores: a gene reaching
//! 14,070 under `--normalize none` makes the losses NaN).

use std::fmt;

use super::{CohortTable, DataError, Normalization};

/// Normalized values beyond `±SCALE_LIMIT` are far outside what the model expects (its
/// LayerNorms and initial weights assume values of order 1).
pub const SCALE_LIMIT: f32 = 10.0;

/// How many of the genes with the largest absolute values a report names.
pub const WORST_SHOWN: usize = 5;

/// A gene and its value of largest absolute size (signed), before clipping.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneExtreme {
    /// The gene column.
    pub gene: String,
    /// Its value of largest absolute size over the rows measured.
    pub value: f32,
}

/// The range of normalized expression over some rows (one per patient), before clipping.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleReport {
    /// The normalization's method name (`zscore`, `none`, …).
    pub method: &'static str,
    /// Its clipping bound, if any.
    pub clip: Option<f32>,
    /// Rows measured.
    pub rows: usize,
    /// Genes measured.
    pub genes: usize,
    /// Smallest normalized value (before clipping).
    pub min: f32,
    /// Largest normalized value (before clipping).
    pub max: f32,
    /// Genes with a value beyond `±SCALE_LIMIT` once clipped.
    pub genes_beyond: usize,
    /// Values that clipping changed.
    pub clipped: usize,
    /// The [`WORST_SHOWN`] genes of largest absolute value, largest first (ties: the earlier
    /// gene first).
    pub worst: Vec<GeneExtreme>,
}

/// Normalizes the rows `rows` of `table` with `normalization` and measures them.
///
/// # Errors
///
/// The errors of [`Normalization::columns_in`] and [`Normalization::transform`].
pub fn scale_report(
    table: &CohortTable,
    rows: &[usize],
    normalization: &Normalization,
) -> Result<ScaleReport, DataError> {
    let columns = normalization.columns_in(table)?;
    let unclipped = normalization.clone().with_clip(None);
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    let mut extreme = vec![0.0f32; columns.len()];
    let mut clipped = 0;
    for &row in rows {
        for (g, x) in unclipped
            .transform(table, row, &columns)?
            .into_iter()
            .enumerate()
        {
            min = min.min(x);
            max = max.max(x);
            if x.abs() > extreme[g].abs() {
                extreme[g] = x;
            }
            clipped += usize::from(normalization.clip.is_some_and(|c| x.abs() > c));
        }
    }
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by(|&a, &b| {
        extreme[b]
            .abs()
            .total_cmp(&extreme[a].abs())
            .then(a.cmp(&b))
    });
    let worst = order
        .iter()
        .take(WORST_SHOWN)
        .map(|&g| GeneExtreme {
            gene: table.genes()[columns[g]].clone(),
            value: extreme[g],
        })
        .collect();
    Ok(ScaleReport {
        method: normalization.method().name(),
        clip: normalization.clip,
        rows: rows.len(),
        genes: columns.len(),
        min: if rows.is_empty() { 0.0 } else { min },
        max: if rows.is_empty() { 0.0 } else { max },
        genes_beyond: extreme
            .iter()
            .filter(|x| normalization.clip.map_or(x.abs(), |c| x.abs().min(c)) > SCALE_LIMIT)
            .count(),
        clipped,
        worst,
    })
}

impl ScaleReport {
    /// A warning (without a `warning:` prefix) when values lie beyond `±SCALE_LIMIT` even after
    /// clipping, naming the worst genes and what to do; `None` when every value is within it.
    pub fn warning(&self) -> Option<String> {
        if self.genes_beyond == 0 {
            return None;
        }
        let advice = match self.method {
            "zscore" | "log2-zscore" => {
                "genes nearly constant on the training patients scale others' values far out: \
                 bound them with --clip C (e.g. --clip 10)"
            }
            _ => {
                "choose --normalize zscore (values already on a log scale) or log2-zscore \
                 (counts, TPM, FPKM), or bound the values with --clip C"
            }
        };
        Some(format!(
            "expression after `{}` normalization lies far outside what the model expects \
             (|x| up to {}): {} of {} gene(s) exceed ±{SCALE_LIMIT}, the largest {}; {advice}",
            self.method,
            number(self.min.abs().max(self.max.abs())),
            self.genes_beyond,
            self.genes,
            self.worst_list(),
        ))
    }

    fn worst_list(&self) -> String {
        let shown: Vec<String> = self
            .worst
            .iter()
            .map(|w| format!("{} {}", w.gene, number(w.value)))
            .collect();
        shown.join(", ")
    }
}

/// A value with up to two decimals, without trailing zeros.
fn number(x: f32) -> String {
    let text = format!("{x:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expression after `{}`: min {}, max {} over {} patient(s) × {} gene(s); largest |x|: {}",
            self.method,
            number(self.min),
            number(self.max),
            self.rows,
            self.genes,
            self.worst_list()
        )?;
        if let Some(c) = self.clip {
            write!(f, "; clipped to ±{} ({} value(s))", number(c), self.clipped)?;
        }
        Ok(())
    }
}

/// The [`ScaleReport`] of a whole cohort, for `med-crossvit check`: `method` fitted on one row
/// per patient with expression (what `train` fits on its training patients), clipped at `clip`;
/// `None` when no row has expression.
///
/// # Errors
///
/// The errors of [`Normalization::fit`] (such as a value below -1 under `log2-zscore`).
pub fn cohort_scale(
    table: &CohortTable,
    method: super::NormalizeMethod,
    clip: Option<f32>,
) -> Result<Option<ScaleReport>, DataError> {
    let patients = super::Patients::of(table);
    let rows = patients.rna_rows(table, 0..patients.len());
    if rows.is_empty() {
        return Ok(None);
    }
    let normalization = Normalization::fit(table, &rows, method, None)?.with_clip(clip);
    scale_report(table, &rows, &normalization).map(Some)
}
