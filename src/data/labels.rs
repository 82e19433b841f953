//! [`LabelMap`]: class labels as written in the CSV ↔ class indices; [`TimeBins`]: the
//! discrete time bins of survival labels.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DataError;

/// The classes of a cohort, in index order. Integer labels are ordered numerically
/// (`0, 1, 2` map to themselves), other labels alphabetically. Saved as `labels.json` beside
/// a model so that predictions map back to the names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelMap {
    /// Class names; class `i` is `classes[i]`.
    pub classes: Vec<String>,
}

impl LabelMap {
    /// The classes occurring in `labels`.
    pub fn fit<'a>(labels: impl IntoIterator<Item = &'a str>) -> Self {
        let mut classes: Vec<String> = labels.into_iter().map(str::to_string).collect();
        classes.sort();
        classes.dedup();
        if classes.iter().all(|c| c.parse::<i64>().is_ok()) {
            classes.sort_by_key(|c| c.parse::<i64>().expect("checked to parse"));
        }
        Self { classes }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there is no class.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The index of `label`, if it is a known class.
    pub fn index(&self, label: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == label)
    }

    /// The index of `slide`'s `label`.
    ///
    /// # Errors
    ///
    /// [`DataError::UnseenLabel`] when the label is not a known class.
    pub fn encode(&self, slide: &str, label: &str) -> Result<usize, DataError> {
        self.index(label).ok_or_else(|| DataError::UnseenLabel {
            slide: slide.to_string(),
            label: label.to_string(),
            known: self.classes.join(", "),
        })
    }

    /// Writes the map as JSON.
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] naming the file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), DataError> {
        super::json::save_json(self, path.as_ref())
    }

    /// Reads a map written by [`save`](Self::save), checking that it names at least one class,
    /// none empty and none twice (a repeated name would make predictions ambiguous).
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] or [`DataError::Json`] naming the file; [`DataError::BadField`] for
    /// an empty list, an empty or a repeated name.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let map: Self = super::json::load_json(path)?;
        let bad = |reason: String| Err(DataError::bad_field(path, "classes", reason));
        if map.classes.is_empty() {
            return bad("names no class".into());
        }
        for (i, name) in map.classes.iter().enumerate() {
            if name.trim().is_empty() {
                return bad(format!("class {i} has an empty name"));
            }
            if let Some(j) = map.classes[..i].iter().position(|c| c == name) {
                return bad(format!("`{name}` is both class {j} and class {i}"));
            }
        }
        Ok(map)
    }
}

/// Time-bin edges: bin `k` holds times in `[edges[k], edges[k + 1])`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeBins {
    /// `bins + 1` increasing edges.
    pub edges: Vec<f64>,
}

/// The `q`-quantile of sorted `values`, interpolating linearly (numpy's default, which pandas'
/// `qcut` uses).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl TimeBins {
    /// Bins at the quantiles of the uncensored times (`bins` of them; quartiles for 4), with
    /// the outer edges widened to cover every time in `all_times`: the first edge is the
    /// smallest time, the last is just above the largest.
    ///
    /// Returns `None` when there are no uncensored times, or when the quantiles do not give
    /// `bins` distinct bins (too few distinct event times).
    pub fn fit(uncensored: &[f64], all_times: &[f64], bins: usize) -> Option<Self> {
        if uncensored.is_empty() || bins == 0 {
            return None;
        }
        let mut sorted = uncensored.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = (0..=bins)
            .map(|k| quantile(&sorted, k as f64 / bins as f64))
            .collect();
        let min = all_times.iter().copied().fold(f64::INFINITY, f64::min);
        let max = all_times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        edges[0] = edges[0].min(min);
        edges[bins] = edges[bins].max(max) + 1e-6;
        edges
            .windows(2)
            .all(|w| w[0] < w[1])
            .then_some(Self { edges })
    }

    /// Number of bins.
    pub fn len(&self) -> usize {
        self.edges.len() - 1
    }

    /// Whether there is no bin.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bin of `time`; times outside the edges go to the first or last bin.
    pub fn bin(&self, time: f64) -> usize {
        let k = self.edges.partition_point(|&e| e <= time);
        k.saturating_sub(1).min(self.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_sort_numerically_and_strings_alphabetically() {
        let m = LabelMap::fit(["10", "2", "0", "2"]);
        assert_eq!(m.classes, ["0", "2", "10"]);
        assert_eq!(m.index("10"), Some(2));
        let m = LabelMap::fit(["LUSC", "LUAD", "LUSC"]);
        assert_eq!(m.classes, ["LUAD", "LUSC"]);
        let err = m.encode("s1", "BRCA").unwrap_err().to_string();
        assert!(
            err.contains("s1") && err.contains("BRCA") && err.contains("LUAD, LUSC"),
            "{err}"
        );
    }

    #[test]
    fn bins_at_quartiles_with_widened_edges() {
        // Uncensored 1..=9: quartiles 1, 3, 5, 7, 9; a censored time 12 widens the last edge.
        let uncensored: Vec<f64> = (1..=9).map(f64::from).collect();
        let mut all = uncensored.clone();
        all.extend([12.0, 0.5]);
        let bins = TimeBins::fit(&uncensored, &all, 4).unwrap();
        assert_eq!(bins.edges[..4], [0.5, 3.0, 5.0, 7.0]);
        assert!((bins.edges[4] - 12.0).abs() < 1e-5 && bins.edges[4] > 12.0);
        assert_eq!(
            [0.5, 2.9, 3.0, 6.99, 7.0, 12.0].map(|t| bins.bin(t)),
            [0, 0, 1, 2, 3, 3]
        );
        assert_eq!(bins.bin(100.0), 3);
        assert!(
            TimeBins::fit(&[1.0, 1.0], &[1.0], 4).is_none(),
            "too few distinct times"
        );
    }
}
