//! [`CohortSummary`]: what `med-crossvit check` reports about a cohort.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Cohort, Patients, Unit};

/// A cohort at a glance. Serializes to exactly the keys `med-crossvit check --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortSummary {
    /// Slides that take part: those with a usable tile-feature file, and with missing
    /// modalities allowed those without one (see [`Cohort::counts`], the count training
    /// reports too).
    pub slides: usize,
    /// Distinct patients among them.
    pub patients: usize,
    /// Patients with more than one of those slides.
    pub patients_multi_slide: usize,
    /// What metrics and bags are counted by: `patient` (a patient's slides pooled).
    pub unit: String,
    /// Gene columns.
    pub genes: usize,
    /// How the gene columns were chosen (e.g. ``"`*_rnaseq` (there is no `rna_*` column)"``).
    pub gene_rule: String,
    /// Columns that are neither genes nor a column the task reads (slide, patient, project,
    /// label, survival time and censorship), in CSV order: `_cnv` and `_mut` columns, clinical
    /// variables.
    pub ignored_columns: Vec<String>,
    /// Feature width.
    pub feature_dim: usize,
    /// Fewest tiles of a slide.
    pub tiles_min: usize,
    /// Median tiles per slide: the middle value, or for an even count the mean of the two
    /// middle values (0 without slides).
    pub tiles_median: f64,
    /// Most tiles of a slide.
    pub tiles_max: usize,
    /// Slides per label, over the slides that take part (empty without a label column).
    pub labels: BTreeMap<String, usize>,
    /// With missing modalities allowed: slide rows by what they have (`both`, `wsi_only`,
    /// `rna_only`); see [`count_modalities`](Self::count_modalities).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modalities: Option<BTreeMap<String, usize>>,
}

impl CohortSummary {
    /// Summarizes the slides of `cohort` that take part, taking the survival columns to be the
    /// default `survival_months` and `censorship`.
    pub fn of(cohort: &Cohort) -> Self {
        Self::with_outcomes(cohort, &["survival_months", "censorship"])
    }

    /// Summarizes the slides of `cohort` that take part, whose outcome columns (beside the label) are
    /// `outcomes`.
    pub fn with_outcomes(cohort: &Cohort, outcomes: &[&str]) -> Self {
        let usable = cohort.usable();
        let members = cohort.members();
        let (slides, patients) = cohort.counts();
        let table = cohort.table();
        let records = table.slides();
        let grouped = Patients::of(table);
        let mut per_patient = vec![0usize; grouped.len()];
        for &i in &members {
            per_patient[grouped.of_slide(i)] += 1;
        }
        let c = table.columns();
        let roles = [
            c.slide.as_str(),
            c.project.as_str(),
            c.label.as_str(),
            c.patient.as_str(),
        ];
        let ignored_columns = table
            .other_columns()
            .iter()
            .filter(|n| !roles.contains(&n.as_str()) && !outcomes.contains(&n.as_str()))
            .cloned()
            .collect();
        let mut tiles: Vec<usize> = usable
            .iter()
            .filter_map(|&i| cohort.tiles(i).map(|t| t.tiles))
            .collect();
        tiles.sort_unstable();
        let mut labels = BTreeMap::new();
        for &i in &members {
            if let Some(label) = &records[i].label {
                *labels.entry(label.clone()).or_default() += 1;
            }
        }
        Self {
            slides,
            patients,
            patients_multi_slide: per_patient.iter().filter(|&&n| n > 1).count(),
            unit: Unit::Patient.name().to_string(),
            genes: table.genes().len(),
            gene_rule: table.gene_note().to_string(),
            ignored_columns,
            feature_dim: cohort.feature_dim(),
            tiles_min: tiles.first().copied().unwrap_or(0),
            tiles_median: median(&tiles),
            tiles_max: tiles.last().copied().unwrap_or(0),
            labels,
            modalities: None,
        }
    }

    /// Counts the slide rows of `cohort` (read with missing modalities allowed) by the
    /// modalities they have, into [`modalities`](Self::modalities).
    pub fn count_modalities(&mut self, cohort: &Cohort) {
        let mut counts: BTreeMap<String, usize> = ["both", "wsi_only", "rna_only"]
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        for i in cohort.members() {
            let key = match (cohort.has_wsi(i), cohort.table().has_rna(i)) {
                (true, true) => "both",
                (true, false) => "wsi_only",
                (false, true) => "rna_only",
                (false, false) => continue,
            };
            *counts.get_mut(key).expect("every group has an entry") += 1;
        }
        self.modalities = Some(counts);
    }
}

/// The median of sorted counts; 0 for none.
fn median(sorted: &[usize]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2] as f64,
        n => (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0,
    }
}

impl std::fmt::Display for CohortSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "slides        {}", self.slides)?;
        writeln!(
            f,
            "patients      {} ({} with several slides)",
            self.patients, self.patients_multi_slide
        )?;
        let how = if self.unit == Unit::Slide.name() {
            "each slide a bag source, predictions averaged per patient"
        } else {
            "a patient's slides pooled into one bag source"
        };
        writeln!(
            f,
            "unit          {} ({how}; metrics per patient)",
            self.unit
        )?;
        writeln!(f, "genes         {} by {}", self.genes, self.gene_rule)?;
        let shown: Vec<&str> = self
            .ignored_columns
            .iter()
            .take(5)
            .map(|c| {
                if c.is_empty() {
                    "(unnamed)"
                } else {
                    c.as_str()
                }
            })
            .collect();
        writeln!(
            f,
            "ignored       {} column(s){}{}",
            self.ignored_columns.len(),
            if shown.is_empty() { "" } else { ": " },
            shown.join(", ")
                + if self.ignored_columns.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
        )?;
        if self.feature_dim == 0 && self.tiles_max == 0 {
            // Expression alone (`--modalities rna`), or no tile file found at all.
            writeln!(f, "tiles         none read")?;
        } else {
            writeln!(f, "feature width {}", self.feature_dim)?;
            writeln!(
                f,
                "tiles/slide   min {}, median {}, max {}",
                self.tiles_min, self.tiles_median, self.tiles_max
            )?;
        }
        if let Some(m) = &self.modalities {
            writeln!(
                f,
                "modalities    {} with both, {} slides only, {} RNA only",
                m["both"], m["wsi_only"], m["rna_only"]
            )?;
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(l, n)| format!("{l}: {n}"))
            .collect();
        write!(
            f,
            "labels        {}",
            if labels.is_empty() {
                "none".into()
            } else {
                labels.join(", ")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[7]), 7.0);
        assert_eq!(median(&[1, 2, 9]), 2.0);
        assert_eq!(median(&[10, 20, 33, 40, 50, 60]), 36.5);
        assert_eq!(median(&[4, 6]), 5.0);
    }
}
