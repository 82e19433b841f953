//! [`CohortSummary`]: what `med-crossvit check` reports about a cohort.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::Cohort;

/// A cohort at a glance. Serializes to exactly the keys `med-crossvit check --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CohortSummary {
    /// Slides with a usable tile-feature file.
    pub slides: usize,
    /// Distinct patients among them.
    pub patients: usize,
    /// Gene columns.
    pub genes: usize,
    /// Feature width.
    pub feature_dim: usize,
    /// Fewest tiles of a slide.
    pub tiles_min: usize,
    /// Median tiles per slide (the lower middle value for an even count).
    pub tiles_median: usize,
    /// Most tiles of a slide.
    pub tiles_max: usize,
    /// Slides per label, over the usable slides (empty without a label column).
    pub labels: BTreeMap<String, usize>,
}

impl CohortSummary {
    /// Summarizes the usable slides of `cohort`.
    pub fn of(cohort: &Cohort) -> Self {
        let usable = cohort.usable();
        let records = cohort.table().slides();
        let mut tiles: Vec<usize> = usable
            .iter()
            .filter_map(|&i| cohort.tiles(i).map(|t| t.tiles))
            .collect();
        tiles.sort_unstable();
        let patients: HashSet<&str> = usable
            .iter()
            .map(|&i| records[i].patient.as_str())
            .collect();
        let mut labels = BTreeMap::new();
        for &i in &usable {
            if let Some(label) = &records[i].label {
                *labels.entry(label.clone()).or_default() += 1;
            }
        }
        Self {
            slides: usable.len(),
            patients: patients.len(),
            genes: cohort.table().genes().len(),
            feature_dim: cohort.feature_dim(),
            tiles_min: tiles.first().copied().unwrap_or(0),
            tiles_median: tiles
                .get(tiles.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or(0),
            tiles_max: tiles.last().copied().unwrap_or(0),
            labels,
        }
    }
}

impl std::fmt::Display for CohortSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "slides        {}", self.slides)?;
        writeln!(f, "patients      {}", self.patients)?;
        writeln!(f, "genes         {}", self.genes)?;
        writeln!(f, "feature width {}", self.feature_dim)?;
        writeln!(
            f,
            "tiles/slide   min {}, median {}, max {}",
            self.tiles_min, self.tiles_median, self.tiles_max
        )?;
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
