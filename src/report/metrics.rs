//! The page's metrics tables (the headline's and the per-fold section's): every field of
//! `metrics.json`, `test_metrics.json` and `cv.json`, known metrics first, a value's
//! interval beside it; a `by_modality` of one group (the same patients as the whole) left
//! out.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use crate::run::files;

use super::html::{Page, esc, inline_value, number};
use super::read::{Column, Run, cv_columns, cv_other_fields, flatten, test_columns};

impl Run {
    /// The headline metrics: of a single run its validation (and test) metrics, of a
    /// cross-validation the pooled results of `cv.json`.
    pub(super) fn headline_metrics(&self, page: &mut Page) {
        let folds = self.fold_dirs();
        match self.folds {
            None => {
                let val = self.validation_columns(&folds);
                let test = test_columns(&folds);
                let any_test = test.iter().any(|(_, c)| !matches!(c, Column::Missing));
                single_run_metrics(page, val, test, any_test);
            }
            Some(_) => {
                page.push("<h3>Pooled out-of-fold predictions</h3>\n");
                self.pooled_metrics(page);
            }
        }
    }

    /// The per-fold section of a cross-validation: each fold's validation (and test)
    /// metrics; nothing for a single run, whose metrics are the headline.
    pub(super) fn fold_metrics(&self, page: &mut Page) {
        if self.folds.is_none() {
            return;
        }
        page.push("<section id=\"metrics\">\n<h2>Per-fold metrics</h2>\n");
        let folds = self.fold_dirs();
        let val = self.validation_columns(&folds);
        let test = test_columns(&folds);
        page.push("<h3>Validation, per fold</h3>\n");
        metric_tables(page, &val);
        if test.iter().any(|(_, c)| !matches!(c, Column::Missing)) {
            page.push("<h3>Test, per fold</h3>\n");
            metric_tables(page, &test);
        }
        page.push("</section>\n");
    }

    /// The pooled results of a cross-validation from its `cv.json`, or why there are none.
    fn pooled_metrics(&self, page: &mut Page) {
        match &self.cv {
            None => page.push(&format!(
                "<p class=\"note\"><code>{}</code>: not present (written when every fold has \
                 finished).</p>\n",
                files::CV_JSON
            )),
            Some(Err(why)) => {
                page.push(&format!("<p class=\"note\">{}</p>\n", esc(why)));
                page.problem(why.clone());
            }
            Some(Ok(cv)) => {
                metric_tables(page, &cv_columns(cv));
                let other = cv_other_fields(cv);
                if !other.is_empty() {
                    page.kv_table(&other);
                }
            }
        }
    }
}

/// A single run's table: its validation column, and a test column when it has test
/// metrics.
fn single_run_metrics(
    page: &mut Page,
    val: Vec<(String, Column)>,
    test: Vec<(String, Column)>,
    any_test: bool,
) {
    let mut columns = vec![("validation".to_string(), val.into_iter().next())];
    if any_test {
        columns.push(("test".to_string(), test.into_iter().next()));
    }
    let columns: Vec<(String, Column)> = columns
        .into_iter()
        .map(|(name, c)| (name, c.map_or(Column::Missing, |c| c.1)))
        .collect();
    if columns.iter().all(|(_, c)| matches!(c, Column::Missing)) {
        page.push(&format!(
            "<p class=\"note\"><code>{}</code>: not present (the run has not finished).</p>\n",
            files::METRICS_JSON
        ));
    } else {
        metric_tables(page, &columns);
    }
}

/// The metrics of each group of patients by the modalities they have; shown only with two
/// groups or more.
const BY_MODALITY: &str = "by_modality";

/// Metrics in this order first, then the others by name.
const METRIC_ORDER: [&str; 14] = [
    "loss",
    "accuracy",
    "balanced_accuracy",
    "auc",
    "c_index",
    "c_index_ipcw",
    "logrank_p",
    "td_times",
    "td_auc",
    "td_auc_mean",
    "ibs",
    "ipcw_censoring",
    "ipcw_beyond",
    "confusion_matrix",
];

/// What a known metric is.
fn metric_description(key: &str) -> &'static str {
    match key {
        "loss" => "mean loss",
        "accuracy" => "accuracy",
        "balanced_accuracy" => "balanced accuracy (mean recall)",
        "auc" => "ROC AUC (macro one-vs-rest)",
        "c_index" => "Harrell's concordance index",
        "c_index_ipcw" => "Uno's concordance index (IPCW)",
        "logrank_p" => "log-rank p between risk groups",
        "td_times" => "times of the time-dependent AUC",
        "td_auc" => "time-dependent (cumulative/dynamic) AUC",
        "td_auc_mean" => "mean time-dependent AUC",
        "ibs" => "integrated Brier score",
        "ipcw_censoring" => "patients the censoring distribution was estimated on",
        "ipcw_beyond" => "patients beyond the censoring estimate",
        "confusion_matrix" => "confusion matrix [true][predicted]",
        _ => "",
    }
}

/// The tables of `columns` (each a metrics object, by column title): one of the scalar and
/// list fields, with `x_ci` beside `x`; then one per object field (such as `by_modality`) and
/// column.
fn metric_tables(page: &mut Page, columns: &[(String, Column)]) {
    let (order, objects) = metric_keys(columns);
    let rows: Vec<Vec<String>> = order.iter().map(|key| metric_row(key, columns)).collect();
    if !rows.is_empty() {
        let mut header = vec!["metric".to_string()];
        header.extend(columns.iter().map(|(t, _)| esc(t)));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        page.table(&header, &rows);
    }
    column_notes(page, columns);
    for key in objects {
        object_tables(page, columns, key);
    }
}

/// The rows of the table of `columns`, in order ([`METRIC_ORDER`] first, then by name,
/// intervals merged into their metric's row), and the object fields, each shown in tables
/// of its own.
fn metric_keys(columns: &[(String, Column)]) -> (Vec<&str>, BTreeSet<&str>) {
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for (_, c) in columns {
        keys.extend(c.keys().into_iter().map(String::as_str));
    }
    let objects: BTreeSet<&str> = keys
        .iter()
        .copied()
        .filter(|k| {
            columns
                .iter()
                .any(|(_, c)| matches!(c.get(k), Some(Value::Object(_))))
        })
        .collect();
    // An interval goes beside its metric, when there is one.
    let merged: BTreeSet<&str> = keys
        .iter()
        .copied()
        .filter(|k| {
            k.strip_suffix("_ci")
                .is_some_and(|base| keys.contains(base))
        })
        .collect();
    let mut order: Vec<&str> = METRIC_ORDER
        .iter()
        .copied()
        .filter(|k| keys.contains(k))
        .collect();
    order.extend(keys.iter().copied().filter(|k| !METRIC_ORDER.contains(k)));
    order.retain(|k| !objects.contains(k) && !merged.contains(k));
    (order, objects)
}

/// The row of metric `key`: its name (with what it is, when known) and one cell per column.
fn metric_row(key: &str, columns: &[(String, Column)]) -> Vec<String> {
    let description = metric_description(key);
    let mut row = vec![if description.is_empty() {
        format!("<code>{}</code>", esc(key))
    } else {
        format!(
            "<code>{}</code> <span class=\"what\">{description}</span>",
            esc(key)
        )
    }];
    for (_, column) in columns {
        row.push(metric_cell(column, key));
    }
    row
}

/// Under a table, a note for each column whose file is missing or could not be read (the
/// latter also recorded as a problem).
fn column_notes(page: &mut Page, columns: &[(String, Column)]) {
    for (_, column) in columns {
        if let Column::Broken(why) = column {
            page.problem(why.clone());
        }
    }
    for (title, column) in columns {
        let why = match column {
            Column::Missing => "not present",
            Column::Broken(why) => why.as_str(),
            _ => continue,
        };
        page.push(&format!(
            "<p class=\"note\">{}: {}</p>\n",
            esc(title),
            esc(why)
        ));
    }
}

/// The tables of object field `key` of each column: a metrics table when its values are
/// groups of metrics (such as `by_modality`), else its fields.
fn object_tables(page: &mut Page, columns: &[(String, Column)], key: &str) {
    for (title, column) in columns {
        let Some(Value::Object(object)) = column.get(key) else {
            continue;
        };
        if key == BY_MODALITY && object.len() < 2 {
            // One group is every patient: its table would repeat the one above.
            continue;
        }
        page.push(&format!(
            "<h4><code>{}</code> — {}</h4>\n",
            esc(key),
            esc(title)
        ));
        if object.values().all(Value::is_object) {
            // Groups of metrics (such as `by_modality`): one column per group.
            let sub: Vec<(String, Column)> = object
                .iter()
                .map(|(group, v)| {
                    (
                        group.clone(),
                        Column::Values(v.as_object().cloned().unwrap_or_default()),
                    )
                })
                .collect();
            metric_tables(page, &sub);
        } else {
            page.kv_table(&flatten(object));
        }
    }
}

/// One cell of a metrics table: the value, with its interval when there is one.
fn metric_cell(column: &Column, key: &str) -> String {
    let Some(value) = column.get(key) else {
        return "<span class=\"none\">—</span>".into();
    };
    if let Column::MeanStd(_, std) = column
        && let (Some(m), Some(s)) = (value.as_f64(), std.get(key).and_then(Value::as_f64))
    {
        return format!("{} ± {}", number(m), number(s));
    }
    let mut text = inline_value(value);
    if let Some(Value::Array(ci)) = column.get(&format!("{key}_ci"))
        && ci.len() == 2
    {
        let _ = write!(
            text,
            " <span class=\"ci\">[{}, {}]</span>",
            inline_value(&ci[0]),
            inline_value(&ci[1])
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_intervals_read_as_papers_print_them() {
        assert_eq!(number(0.7134), "0.713");
        assert_eq!(number(3.0), "3.000");
        assert_eq!(number(0.0), "0.000");
        assert_eq!(number(1.2e-5), "1.20e-5");
        let column = Column::Values(
            serde_json::from_str(
                r#"{"c_index": 0.71, "c_index_ci": [0.62, 0.8], "td_auc": [0.6, null],
                    "note": "<b>"}"#,
            )
            .unwrap(),
        );
        assert_eq!(
            metric_cell(&column, "c_index"),
            "0.710 <span class=\"ci\">[0.620, 0.800]</span>"
        );
        assert_eq!(
            metric_cell(&column, "td_auc"),
            "[0.600, <span class=\"none\">—</span>]"
        );
        assert_eq!(metric_cell(&column, "note"), "&lt;b&gt;");
        let mean = Column::MeanStd(
            serde_json::from_str(r#"{"auc": 0.7}"#).unwrap(),
            serde_json::from_str(r#"{"auc": 0.05}"#).unwrap(),
        );
        assert_eq!(metric_cell(&mean, "auc"), "0.700 ± 0.050");
    }

    #[test]
    fn unknown_metric_fields_are_shown_and_intervals_merged() {
        let mut page = Page::default();
        let column = Column::Values(
            serde_json::from_str(
                r#"{"loss": 0.5, "c_index": 0.7, "c_index_ci": [0.6, 0.8], "new_score": 0.25,
                    "orphan_ci": [1, 2],
                    "by_modality": {"both": {"c_index": 0.75}, "rna": {"c_index": 0.5}}}"#,
            )
            .unwrap(),
        );
        metric_tables(&mut page, &[("pooled".into(), column)]);
        let html = page.body;
        assert!(
            html.contains("new_score") && html.contains("0.250"),
            "{html}"
        );
        assert!(html.contains("orphan_ci"), "{html}");
        assert!(!html.contains("<code>c_index_ci</code>"), "{html}");
        assert!(
            html.contains("<h4><code>by_modality</code> — pooled</h4>")
                && html.contains("<th scope=\"col\">both</th>")
                && html.contains("<th scope=\"col\">rna</th>")
                && html.contains("0.750")
                && html.contains("0.500"),
            "{html}"
        );
        let loss = html.find("<code>loss</code>").unwrap();
        let c = html.find("<code>c_index</code>").unwrap();
        let new = html.find("<code>new_score</code>").unwrap();
        assert!(loss < c && c < new, "{html}");
    }

    #[test]
    fn a_by_modality_of_one_group_is_left_out() {
        let column = |by: &str| {
            Column::Values(
                serde_json::from_str(&format!(r#"{{"auc": 0.7, "by_modality": {by}}}"#)).unwrap(),
            )
        };
        let mut page = Page::default();
        let one = column(r#"{"both": {"auc": 0.7}}"#);
        metric_tables(&mut page, &[("validation".into(), one)]);
        assert!(page.body.contains("<code>auc</code>"), "{}", page.body);
        assert!(!page.body.contains("by_modality"), "{}", page.body);
        assert!(!page.body.contains("both"), "{}", page.body);

        // Per fold: a fold of one group has no table, a fold of two has one.
        let mut page = Page::default();
        let two = column(r#"{"both": {"auc": 0.75}, "wsi": {"auc": 0.625}}"#);
        let one = column(r#"{"both": {"auc": 0.7}}"#);
        metric_tables(&mut page, &[("fold 0".into(), one), ("fold 1".into(), two)]);
        let html = &page.body;
        assert!(
            !html.contains("<h4><code>by_modality</code> — fold 0</h4>"),
            "{html}"
        );
        assert!(
            html.contains("<h4><code>by_modality</code> — fold 1</h4>"),
            "{html}"
        );
        assert!(
            html.contains("0.625") && html.contains("<th scope=\"col\">wsi</th>"),
            "{html}"
        );
    }
}
