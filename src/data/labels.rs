//! [`LabelMap`]: class labels as written in the CSV ↔ class indices.

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
}
