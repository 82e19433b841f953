//! The page's sections other than the results, the metrics and the settings: the header,
//! the data, the plots and the most attended tiles.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::run::files;

use super::html::{Page, esc, inline_value, number};
use super::read::{
    FoldDir, PredictionCounts, Run, TaskKind, TopTiles, checkpoint_best_epoch, cohort_counts,
    epoch_rows, prediction_counts, split_counts, tile_csvs, top_tiles,
};
use super::{ATTENTION_DIR, TOP_TILES};

impl Run {
    /// The page's header: the run's name, folder, kind and task, and the navigation.
    pub(super) fn header(&self, page: &mut Page) {
        let kind = match self.folds {
            Some(k) => format!("cross-validation, {k} folds"),
            None => "single run".into(),
        };
        let task = match self.task {
            TaskKind::Classification => "classification",
            TaskKind::Survival => "survival",
        };
        page.push(&format!("<header>\n<h1>{}</h1>\n", esc(&self.title())));
        page.push("<table class=\"kv\">\n");
        let folder = self.dir.canonicalize().unwrap_or_else(|_| self.dir.clone());
        page.kv_row("Folder", &esc(&folder.display().to_string()));
        page.kv_row("Kind", &esc(&kind));
        page.kv_row("Task", task);
        page.kv_row(
            "Written by",
            &format!("med-crossvit {}", esc(env!("CARGO_PKG_VERSION"))),
        );
        page.push("</table>\n</header>\n");
        let mut nav = vec![("results", "Results"), ("data", "Data")];
        if self.folds.is_some() {
            nav.push(("metrics", "Per fold"));
        }
        nav.extend([
            ("plots", "Plots"),
            ("heatmaps", "Heatmaps"),
            ("attention", "Top-attended tiles"),
            ("settings", "Settings"),
        ]);
        page.push("<nav><ul>");
        for (id, title) in nav {
            page.push(&format!("<li><a href=\"#{id}\">{title}</a></li>"));
        }
        page.push("</ul></nav>\n");
    }

    /// The data section: the cohort, the modalities used, the patients of each split and
    /// the predictions written.
    pub(super) fn data(&self, page: &mut Page) {
        page.push("<section id=\"data\">\n<h2>Data</h2>\n");
        self.cohort(page);
        self.splits(page);
        self.predictions(page);
        page.push("</section>\n");
    }

    /// The cohort table, when it can still be read from here, and the modalities used.
    fn cohort(&self, page: &mut Page) {
        let data = self.config.get("data").and_then(Value::as_object);
        let columns = self.config.get("columns").and_then(Value::as_object);
        match data.and_then(|d| d.get("csv")).and_then(Value::as_str) {
            Some(csv) => {
                let column = |key: &str, default: &'static str| {
                    columns
                        .and_then(|c| c.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or(default)
                };
                let (slide, patient) = (
                    column("slide", "wsi_file_name"),
                    column("patient", "patient_id"),
                );
                let line = match cohort_counts(Path::new(csv), slide, patient) {
                    Ok((slides, patients)) => format!(
                        "Cohort CSV <code>{}</code>: {slides} slide(s) of {patients} patient(s).",
                        esc(csv)
                    ),
                    Err(why) => format!(
                        "Cohort CSV <code>{}</code>: not readable from here ({}).",
                        esc(csv),
                        esc(&why)
                    ),
                };
                page.push(&format!("<p>{line}</p>\n"));
            }
            None => page.push("<p class=\"note\">Cohort CSV: not recorded.</p>\n"),
        }
        let training = self.config.get("training").and_then(Value::as_object);
        let setting = |key: &str| {
            training
                .and_then(|t| t.get(key))
                .map(inline_value)
                .unwrap_or_else(|| "—".into())
        };
        page.push(&format!(
            "<p>Modalities used: {}; rows missing a modality: {}; bags drawn per {}.</p>\n",
            setting("modalities"),
            setting("missing_modality"),
            setting("unit"),
        ));
    }

    /// The split sizes of each fold, from its `splits.csv`, with the epochs run and the best.
    fn splits(&self, page: &mut Page) {
        page.push("<h3>Splits</h3>\n");
        let best = self.cv_best_epochs();
        let rows: Vec<Vec<String>> = self
            .fold_dirs()
            .iter()
            .map(|fold| split_row(page, fold, &best))
            .collect();
        page.table(
            &[
                "",
                "training patients",
                "validation patients",
                "test patients",
                "epochs run",
                "best epoch",
            ],
            &rows,
        );
    }

    /// The predictions written: out-of-fold for a cross-validation.
    fn predictions(&self, page: &mut Page) {
        let (name, what) = match self.folds {
            Some(_) => (
                files::CV_PREDICTIONS_CSV,
                "Validation predictions of every fold (out-of-fold, each patient once)",
            ),
            None => (files::PREDICTIONS_CSV, "Predictions in the run folder"),
        };
        match prediction_counts(&self.dir.join(name)) {
            Ok(Some(counts)) => prediction_tables(page, name, what, &counts),
            Ok(None) => {
                if self.folds.is_some() {
                    page.push(&format!(
                        "<p class=\"note\"><code>{name}</code>: not present (written when every \
                         fold has finished).</p>\n"
                    ));
                }
            }
            Err(why) => {
                page.push(&format!(
                    "<p class=\"note\"><code>{name}</code>: {}</p>\n",
                    esc(&why)
                ));
                page.problem(why);
            }
        }
    }

    /// The plots a fold folder (or a cross-validation's own folder) is expected to hold.
    fn expected_plots(&self, pooled: bool) -> Vec<&'static str> {
        let mut names = Vec::new();
        if !pooled {
            names.extend([files::LOSS_PNG, files::METRIC_PNG]);
        }
        match self.task {
            TaskKind::Survival => names.push(files::KM_PNG),
            TaskKind::Classification => names.extend([files::ROC_PNG, files::CONFUSION_PNG]),
        }
        names
    }

    /// The plots section: each fold's PNGs (and a cross-validation's pooled ones), with a
    /// note naming those expected but missing; the headline plot is in the results.
    pub(super) fn plots(&self, page: &mut Page) {
        page.push("<section id=\"plots\">\n<h2>Plots</h2>\n");
        let (_, headline) = self.headline_plot();
        let mut groups: Vec<(String, PathBuf, Vec<&str>)> = Vec::new();
        if self.folds.is_some() {
            groups.push((
                "Pooled out-of-fold predictions".into(),
                self.dir.clone(),
                self.expected_plots(true),
            ));
        }
        for fold in self.fold_dirs() {
            let title = self.group_title(&fold);
            groups.push((title, fold.dir, self.expected_plots(false)));
        }
        for (title, dir, expected) in groups {
            let skip = (dir == self.dir).then_some(headline);
            plot_group(page, &title, &dir, &expected, skip);
        }
        page.push("</section>\n");
    }

    /// The top-attended tiles section: for each `attention/` folder of the run (or of its
    /// folds), the best tiles of each slide exported there.
    pub(super) fn attention(&self, page: &mut Page) {
        page.push("<section id=\"attention\">\n<h2>Top-attended tiles</h2>\n");
        page.push(&format!(
            "<p class=\"note\">The {TOP_TILES} tiles of largest attention score of each slide \
             exported with <code>med-crossvit predict --attention</code> into an \
             <code>{ATTENTION_DIR}/</code> folder of the run{}. A tile's score is its share \
             of the slide's attention (the scores of a slide sum to 1); “× uniform” is the \
             score times the slide's tile count, 1 for a tile of an evenly attended \
             slide.</p>\n",
            if self.folds.is_some() {
                " or of a fold"
            } else {
                ""
            }
        ));
        let mut places: Vec<(String, PathBuf)> = Vec::new();
        if self.folds.is_some() {
            places.push((
                "Cross-validation folder".into(),
                self.dir.join(ATTENTION_DIR),
            ));
        }
        for fold in self.fold_dirs() {
            places.push((self.group_title(&fold), fold.dir.join(ATTENTION_DIR)));
        }
        let (present, absent): (Vec<_>, Vec<_>) =
            places.into_iter().partition(|(_, dir)| dir.is_dir());
        for (title, dir) in &present {
            attention_group(page, title, dir);
        }
        if present.is_empty() {
            page.push("<p>No attention exported: not present.</p>\n");
        } else if !absent.is_empty() {
            let absent: Vec<String> = absent.into_iter().map(|(title, _)| title).collect();
            page.push(&format!(
                "<p class=\"note\">No <code>{ATTENTION_DIR}/</code> folder: {}.</p>\n",
                esc(&absent.join(", "))
            ));
        }
        page.push("</section>\n");
    }
}

/// One fold's row of the splits table: its patients per split, epochs run and best epoch;
/// a note in place of the counts when its folder or `splits.csv` is missing or unreadable.
fn split_row(page: &mut Page, fold: &FoldDir, best: &BTreeMap<usize, Value>) -> Vec<String> {
    let mut cells = vec![esc(&fold.label)];
    if !fold.dir.is_dir() {
        cells.push(format!(
            "<span class=\"note\">fold_{} not present</span>",
            fold.index
        ));
        return cells;
    }
    match split_counts(&fold.dir.join(files::SPLITS_CSV)) {
        Ok(Some([train, val, test])) => {
            cells.extend([train, val, test].iter().map(usize::to_string));
        }
        Ok(None) => cells.push(format!(
            "<span class=\"note\">{} not present</span>",
            files::SPLITS_CSV
        )),
        Err(why) => {
            cells.push(format!("<span class=\"note\">{}</span>", esc(&why)));
            page.problem(why);
        }
    }
    if cells.len() == 4 {
        cells.push(match epoch_rows(&fold.dir.join(files::METRICS_CSV)) {
            Some(n) => n.to_string(),
            None => "—".into(),
        });
        cells.push(
            best.get(&fold.index)
                .map(inline_value)
                .or_else(|| checkpoint_best_epoch(&fold.dir).map(|e| e.to_string()))
                .unwrap_or_else(|| "—".into()),
        );
    }
    cells
}

/// What a predictions CSV `name` holds: its patients and slides, and its patients by
/// modalities and by fold.
fn prediction_tables(page: &mut Page, name: &str, what: &str, counts: &PredictionCounts) {
    page.push(&format!(
        "<h3>{what}</h3>\n<p>From <code>{name}</code>: {} patient(s), {} slide(s).</p>\n",
        counts.patients,
        counts
            .slides
            .map_or_else(|| "—".to_string(), |s| s.to_string()),
    ));
    for (title, by) in [("modalities", &counts.modalities), ("fold", &counts.folds)] {
        let rows: Vec<Vec<String>> = by
            .iter()
            .map(|(k, n)| vec![esc(k), n.to_string()])
            .collect();
        if !rows.is_empty() {
            page.table(&[title, "patients"], &rows);
        }
    }
}

/// One group of the plots section: the PNGs of `dir` that are there (but `skip`, shown
/// elsewhere), and a note naming those of `expected` that are not; nothing when that leaves
/// neither.
fn plot_group(page: &mut Page, title: &str, dir: &Path, expected: &[&str], skip: Option<&str>) {
    let all = [
        files::LOSS_PNG,
        files::METRIC_PNG,
        files::KM_PNG,
        files::ROC_PNG,
        files::CONFUSION_PNG,
    ];
    let names = all.into_iter().filter(|n| Some(*n) != skip);
    let (present, absent): (Vec<&str>, Vec<&str>) = names.partition(|n| dir.join(n).is_file());
    let missing: Vec<String> = absent
        .into_iter()
        .filter(|n| expected.contains(n))
        .map(|n| format!("<code>{n}</code>"))
        .collect();
    if present.is_empty() && missing.is_empty() {
        return;
    }
    page.push(&format!(
        "<div class=\"group\">\n<h3>{}</h3>\n<div class=\"figures\">\n",
        esc(title)
    ));
    for name in present {
        let caption = format!("{title}: {}", plot_caption(name));
        page.figure(&dir.join(name), &caption);
    }
    page.push("</div>\n");
    if !missing.is_empty() {
        page.push(&format!(
            "<p class=\"note\">{}: not present.</p>\n",
            missing.join(", ")
        ));
    }
    page.push("</div>\n");
}

/// One group of the tiles section: the top tiles of each `*.tiles.csv` in the attention
/// folder `dir`.
fn attention_group(page: &mut Page, title: &str, dir: &Path) {
    page.push(&format!("<div class=\"group\">\n<h3>{}</h3>\n", esc(title)));
    let tile_files = match tile_csvs(dir) {
        Ok(f) => f,
        Err(why) => {
            page.push(&format!("<p class=\"note\">{}</p>\n</div>\n", esc(&why)));
            page.problem(why);
            return;
        }
    };
    if tile_files.is_empty() {
        page.push(&format!(
            "<p class=\"note\">No <code>*.tiles.csv</code> in <code>{}</code>.</p>\n",
            esc(&dir.display().to_string())
        ));
    }
    page.push("<div class=\"blocks tiles\">\n");
    for (slide, path) in tile_files {
        page.push(&format!(
            "<div class=\"block slide\">\n<h4>{}</h4>\n",
            esc(&slide)
        ));
        match top_tiles(&path, TOP_TILES) {
            Ok(top) => top.render(page),
            Err(why) => {
                page.push(&format!("<p class=\"note\">{}</p>\n", esc(&why)));
                page.problem(why);
            }
        }
        page.push("</div>\n");
    }
    page.push("</div>\n</div>\n");
}

/// A caption for a plot file.
pub(super) fn plot_caption(name: &str) -> String {
    let what = match name {
        n if n == files::LOSS_PNG => "loss per epoch",
        n if n == files::METRIC_PNG => "validation metric per epoch",
        n if n == files::KM_PNG => "Kaplan–Meier curves of the risk groups",
        n if n == files::ROC_PNG => "ROC curves",
        n if n == files::CONFUSION_PNG => "confusion matrix",
        _ => "",
    };
    format!("{what} ({name})")
}

impl TopTiles {
    /// The tiles as a table, with a note of the slide's tile count and the rows left out.
    fn render(&self, page: &mut Page) {
        let mut header = vec!["rank", "tile"];
        if self.coords {
            header.extend(["x", "y"]);
        }
        header.extend(["score", "× uniform"]);
        let rows: Vec<Vec<String>> = self
            .top
            .iter()
            .enumerate()
            .map(|(i, (tile, x, y, score))| {
                let mut row = vec![(i + 1).to_string(), esc(tile)];
                if self.coords {
                    row.extend([esc(x), esc(y)]);
                }
                row.push(number(*score));
                row.push(format!("{:.2}", score * self.tiles as f64));
                row
            })
            .collect();
        page.table(&header, &rows);
        let mut note = format!("{} tile(s) in all", self.tiles);
        if !self.coords {
            note.push_str("; no coordinates in the file");
        }
        if self.skipped > 0 {
            let _ = write!(
                note,
                "; {} row(s) without a numeric score left out",
                self.skipped
            );
        }
        page.push(&format!("<p class=\"note\">{note}.</p>\n"));
    }
}
