//! `report.html`: one self-contained page per run folder, for a reader or a reviewer.
//!
//! [`write_report`] reads what a run folder holds (a single run, or a cross-validation folder
//! with `cv.json` and `fold_0` … `fold_{K-1}`) and writes `report.html` beside it: the
//! settings, a data summary, the metrics with their intervals, the plots and the most attended
//! tiles of each exported slide. The page is one file: its images are embedded as
//! `data:image/png;base64,…` URIs, it loads nothing over a network (its content security
//! policy forbids it), runs no script, and has a print stylesheet.
//!
//! Metrics are read as plain JSON, so fields that newer versions add are shown too: every
//! field of `metrics.json`, `test_metrics.json` and `cv.json` appears, a number `x` beside an
//! `x_ci` interval as `0.713 [0.620, 0.801]`. Files that are missing are left out, with a
//! "not present" note where a reader would look for them; a file that cannot be read is named
//! with the reason, and the rest of the page is written all the same.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::run::files;
use crate::run::{Error, RunError};

/// The report's file name in the run folder.
pub const REPORT_HTML: &str = "report.html";

/// Most-attended tiles listed per slide.
pub const TOP_TILES: usize = 10;

/// Most folds a report lists.
const MAX_FOLDS: usize = 1000;

/// The folder of attention exports that the report looks for in a run folder and in each
/// `fold_K` folder (`med-crossvit predict --attention RUN/attention`).
pub const ATTENTION_DIR: &str = "attention";

/// Writes `run_dir/report.html` (see the [module documentation](self)) through a temporary
/// file renamed into place, and returns its path.
///
/// # Errors
///
/// [`RunError::NotARun`] naming `run_dir` when it is not a folder with a readable
/// `config.json` (a JSON object); [`PersistError::Io`](crate::PersistError::Io) naming the
/// file when the report cannot be written. Other files of the folder that are missing or
/// unreadable are noted in the report, not errors.
pub fn write_report(run_dir: &Path) -> Result<PathBuf, Error> {
    Ok(write_report_checked(run_dir)?.path)
}

/// A report written, with the run's files it could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenReport {
    /// `run_dir/report.html`.
    pub path: PathBuf,
    /// Each file of the run folder that exists but could not be read or understood (a
    /// truncated `metrics.json`, a PNG that is not one), with the reason, as the page
    /// notes it. Missing files are not problems; neither is a cohort CSV no longer at its
    /// recorded place.
    pub problems: Vec<String>,
}

/// [`write_report`], also returning the run's files that could not be read
/// ([`WrittenReport::problems`]): `report` warns about each and exits with an error.
///
/// # Errors
///
/// As [`write_report`].
pub fn write_report_checked(run_dir: &Path) -> Result<WrittenReport, Error> {
    let (html, problems) = render(run_dir)?;
    let path = run_dir.join(REPORT_HTML);
    crate::util::atomic::write(&path, html.as_bytes())
        .map_err(crate::model::PersistError::io(&path))?;
    Ok(WrittenReport { path, problems })
}

/// The text of the report of `run_dir`, as [`write_report`] writes it.
///
/// # Errors
///
/// [`RunError::NotARun`] naming `run_dir` when it is not a folder with a readable
/// `config.json` (a JSON object).
pub fn render_report(run_dir: &Path) -> Result<String, Error> {
    Ok(render(run_dir)?.0)
}

/// The report's text and the problems met writing it.
fn render(run_dir: &Path) -> Result<(String, Vec<String>), Error> {
    let run = Run::open(run_dir)?;
    let mut page = Page::default();
    run.header(&mut page);
    run.settings(&mut page);
    run.data(&mut page);
    run.metrics(&mut page);
    run.plots(&mut page);
    run.attention(&mut page);
    let problems = std::mem::take(&mut page.problems);
    Ok((page.finish(&run.title()), problems))
}

/// The task of a run, as its `config.json` says (classification when it does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskKind {
    Classification,
    Survival,
}

/// A run folder: a single run (one "fold", the folder itself) or a cross-validation.
struct Run {
    dir: PathBuf,
    config: Map<String, Value>,
    task: TaskKind,
    /// `Some(K)` for a cross-validation of K folds.
    folds: Option<usize>,
    /// `cv.json`, when there is one.
    cv: Option<Result<Value, String>>,
}

/// One fitted model's folder: a fold of a cross-validation or the single run.
struct FoldDir {
    /// `fold 0`, or `run` for a single run.
    label: String,
    /// The fold's number (0 for a single run).
    index: usize,
    dir: PathBuf,
}

impl Run {
    fn open(dir: &Path) -> Result<Self, Error> {
        let not_a_run = |reason: String| RunError::NotARun {
            path: dir.to_path_buf(),
            reason,
        };
        if !dir.is_dir() {
            return Err(not_a_run("no such folder".into()).into());
        }
        let path = dir.join(files::CONFIG);
        if !path.is_file() {
            return Err(not_a_run(format!("it has no {}", files::CONFIG)).into());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| not_a_run(format!("cannot read {}: {e}", path.display())))?;
        let config = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(not_a_run(format!("{} is not a JSON object", path.display())).into());
            }
            Err(e) => return Err(not_a_run(format!("{}: {e}", path.display())).into()),
        };
        let task = match config
            .get("training")
            .and_then(|t| t.get("task"))
            .and_then(Value::as_str)
        {
            Some("survival") => TaskKind::Survival,
            _ => TaskKind::Classification,
        };
        let cv = read_json(&dir.join(files::CV_JSON));
        let folds = config
            .get("folds")
            .and_then(Value::as_u64)
            .and_then(|k| usize::try_from(k).ok())
            // A hand-edited count beyond any real cross-validation is not trusted.
            .filter(|&k| (1..=MAX_FOLDS).contains(&k))
            .or_else(|| {
                cv.as_ref()
                    .and_then(|cv| cv.as_ref().ok())
                    .and_then(|cv| cv.get("folds"))
                    .and_then(Value::as_array)
                    .map(Vec::len)
                    .filter(|&k| (1..=MAX_FOLDS).contains(&k))
            })
            .or_else(|| {
                let k = (0..MAX_FOLDS)
                    .take_while(|k| dir.join(format!("fold_{k}")).is_dir())
                    .count();
                (k > 0).then_some(k)
            });
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            task,
            folds,
            cv,
        })
    }

    fn title(&self) -> String {
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.dir.display().to_string());
        format!("med-crossvit report: {name}")
    }

    fn fold_dirs(&self) -> Vec<FoldDir> {
        match self.folds {
            Some(k) => (0..k)
                .map(|i| FoldDir {
                    label: format!("fold {i}"),
                    index: i,
                    dir: self.dir.join(format!("fold_{i}")),
                })
                .collect(),
            None => vec![FoldDir {
                label: "run".into(),
                index: 0,
                dir: self.dir.clone(),
            }],
        }
    }

    /// Which checkpoint the metrics are of: `training.select` of `config.json` (absent in
    /// runs written before it could be chosen: the best), with the selection metric.
    fn checkpoint_note(&self) -> String {
        let training = self.config.get("training");
        let select = training
            .and_then(|t| t.get("select"))
            .and_then(Value::as_str)
            .unwrap_or("best");
        let metric = match self.task {
            TaskKind::Classification => "val_auc",
            TaskKind::Survival => "val_c_index",
        };
        match select {
            "last" => "the checkpoint of the last epoch (--select last)".to_string(),
            _ => format!(
                "the checkpoint of the best epoch on {metric} (--select best: chosen on the \
                 validation patients reported here)"
            ),
        }
    }

    fn cv_value(&self) -> Option<&Value> {
        self.cv.as_ref().and_then(|cv| cv.as_ref().ok())
    }

    fn header(&self, page: &mut Page) {
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
        page.kv_row("Folder", &esc(&self.dir.display().to_string()));
        page.kv_row("Kind", &esc(&kind));
        page.kv_row("Task", task);
        page.kv_row(
            "Written by",
            &format!("med-crossvit {}", esc(env!("CARGO_PKG_VERSION"))),
        );
        page.push("</table>\n</header>\n");
        page.push(
            "<nav><ul>\
             <li><a href=\"#settings\">Settings</a></li>\
             <li><a href=\"#data\">Data</a></li>\
             <li><a href=\"#metrics\">Metrics</a></li>\
             <li><a href=\"#plots\">Plots</a></li>\
             <li><a href=\"#attention\">Top-attended tiles</a></li>\
             </ul></nav>\n",
        );
    }

    fn settings(&self, page: &mut Page) {
        page.push("<section id=\"settings\">\n<h2>Settings</h2>\n");
        page.push(&format!(
            "<p class=\"note\">From <code>{}</code>.</p>\n",
            files::CONFIG
        ));
        let sections = [
            ("training", "Training"),
            ("model", "Model"),
            ("data", "Data source"),
            ("columns", "Cohort columns"),
        ];
        let mut shown: BTreeSet<&str> = BTreeSet::new();
        page.push("<div class=\"blocks\">\n");
        for (key, title) in sections {
            shown.insert(key);
            match self.config.get(key) {
                Some(Value::Object(map)) => {
                    page.push(&format!("<div class=\"block\">\n<h3>{title}</h3>\n"));
                    page.kv_table(&flatten(map));
                    page.push("</div>\n");
                }
                Some(Value::Null) | None => {
                    if key == "data" {
                        page.push(&format!(
                            "<div class=\"block\">\n<h3>{title}</h3>\n<p class=\"note\">Not \
                             recorded (an imported model).</p>\n</div>\n"
                        ));
                    }
                }
                Some(other) => {
                    page.push(&format!("<div class=\"block\">\n<h3>{title}</h3>\n"));
                    page.kv_table(&[(key.to_string(), other.clone())]);
                    page.push("</div>\n");
                }
            }
        }
        let rest: Vec<(String, Value)> = self
            .config
            .iter()
            .filter(|(k, v)| !shown.contains(k.as_str()) && !v.is_null())
            .flat_map(|(k, v)| match v {
                Value::Object(map) => flatten(map)
                    .into_iter()
                    .map(|(sub, v)| (format!("{k}.{sub}"), v))
                    .collect(),
                _ => vec![(k.clone(), v.clone())],
            })
            .collect();
        if !rest.is_empty() {
            page.push("<div class=\"block\">\n<h3>Other</h3>\n");
            page.kv_table(&rest);
            page.push("</div>\n");
        }
        page.push("</div>\n</section>\n");
    }

    fn data(&self, page: &mut Page) {
        page.push("<section id=\"data\">\n<h2>Data</h2>\n");
        // The cohort table, when it can still be read from here.
        let data = self.config.get("data").and_then(Value::as_object);
        let columns = self.config.get("columns").and_then(Value::as_object);
        match data.and_then(|d| d.get("csv")).and_then(Value::as_str) {
            Some(csv) => {
                let slide = columns
                    .and_then(|c| c.get("slide"))
                    .and_then(Value::as_str)
                    .unwrap_or("wsi_file_name");
                let patient = columns
                    .and_then(|c| c.get("patient"))
                    .and_then(Value::as_str)
                    .unwrap_or("patient_id");
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

        // Split sizes, from each fold's splits.csv.
        page.push("<h3>Splits</h3>\n");
        let best: BTreeMap<usize, String> = self
            .cv_value()
            .and_then(|cv| cv.get("folds"))
            .and_then(Value::as_array)
            .map(|folds| {
                folds
                    .iter()
                    .filter_map(|f| {
                        let k = usize::try_from(f.get("fold")?.as_u64()?).ok()?;
                        Some((k, inline_value(f.get("best_epoch")?)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut rows = Vec::new();
        for fold in self.fold_dirs() {
            let mut cells = vec![esc(&fold.label)];
            if !fold.dir.is_dir() {
                cells.push(format!(
                    "<span class=\"note\">fold_{} not present</span>",
                    fold.index
                ));
                rows.push(cells);
                continue;
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
                        .cloned()
                        .or_else(|| checkpoint_best_epoch(&fold.dir).map(|e| e.to_string()))
                        .unwrap_or_else(|| "—".into()),
                );
            }
            rows.push(cells);
        }
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

        // The predictions written: out-of-fold for a cross-validation.
        let (name, what) = match self.folds {
            Some(_) => (
                files::CV_PREDICTIONS_CSV,
                "Validation predictions of every fold (out-of-fold, each patient once)",
            ),
            None => (files::PREDICTIONS_CSV, "Predictions in the run folder"),
        };
        match prediction_counts(&self.dir.join(name)) {
            Ok(Some(counts)) => {
                page.push(&format!(
                    "<h3>{what}</h3>\n<p>From <code>{name}</code>: {} patient(s), {} \
                     slide(s).</p>\n",
                    counts.patients,
                    counts
                        .slides
                        .map_or_else(|| "—".to_string(), |s| s.to_string()),
                ));
                let mut rows: Vec<Vec<String>> = counts
                    .modalities
                    .iter()
                    .map(|(m, n)| vec![esc(m), n.to_string()])
                    .collect();
                if !rows.is_empty() {
                    page.table(&["modalities", "patients"], &rows);
                }
                rows = counts
                    .folds
                    .iter()
                    .map(|(f, n)| vec![esc(f), n.to_string()])
                    .collect();
                if !rows.is_empty() {
                    page.table(&["fold", "patients"], &rows);
                }
            }
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
        page.push("</section>\n");
    }

    fn metrics(&self, page: &mut Page) {
        page.push("<section id=\"metrics\">\n<h2>Metrics</h2>\n");
        page.push(&format!(
            "<p class=\"note\">Of {}, per patient. A value followed by <code>[low, high]</code> \
             carries its 95 % bootstrap percentile interval.</p>\n",
            esc(&self.checkpoint_note())
        ));
        let folds = self.fold_dirs();
        let load = |dir: &Path, name: &str| -> Column {
            match read_json(&dir.join(name)) {
                None => Column::Missing,
                Some(Ok(Value::Object(map))) => Column::Values(map),
                Some(Ok(_)) => {
                    Column::Broken(format!("{} is not a JSON object", dir.join(name).display()))
                }
                Some(Err(why)) => Column::Broken(why),
            }
        };
        let val: Vec<(String, Column)> = folds
            .iter()
            .map(|f| {
                let mut column = load(&f.dir, files::METRICS_JSON);
                if matches!(column, Column::Missing) {
                    // cv.json keeps each fold's validation metrics as well.
                    if let Some(Value::Object(map)) = self
                        .cv_value()
                        .and_then(|cv| cv.get("folds"))
                        .and_then(Value::as_array)
                        .and_then(|a| a.get(f.index))
                        .and_then(|f| f.get("metrics"))
                    {
                        column = Column::Values(map.clone());
                    }
                }
                (f.label.clone(), column)
            })
            .collect();
        let test: Vec<(String, Column)> = folds
            .iter()
            .map(|f| (f.label.clone(), load(&f.dir, files::TEST_METRICS_JSON)))
            .collect();
        let any_test = test.iter().any(|(_, c)| !matches!(c, Column::Missing));
        match self.folds {
            None => {
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
                        "<p class=\"note\"><code>{}</code>: not present (the run has not \
                         finished).</p>\n",
                        files::METRICS_JSON
                    ));
                } else {
                    metric_tables(page, &columns);
                }
            }
            Some(_) => {
                page.push("<h3>Pooled out-of-fold predictions</h3>\n");
                match &self.cv {
                    None => page.push(&format!(
                        "<p class=\"note\"><code>{}</code>: not present (written when every \
                         fold has finished).</p>\n",
                        files::CV_JSON
                    )),
                    Some(Err(why)) => {
                        page.push(&format!("<p class=\"note\">{}</p>\n", esc(why)));
                        page.problem(why.clone());
                    }
                    Some(Ok(cv)) => {
                        let object = |key: &str| match cv.get(key) {
                            Some(Value::Object(m)) => Column::Values(m.clone()),
                            _ => Column::Missing,
                        };
                        let spread = |v: Option<&Value>| match (
                            v.and_then(|v| v.get("mean")),
                            v.and_then(|v| v.get("std")),
                        ) {
                            (Some(Value::Object(m)), Some(Value::Object(s))) => {
                                Column::MeanStd(m.clone(), s.clone())
                            }
                            (Some(Value::Object(m)), _) => Column::Values(m.clone()),
                            _ => Column::Missing,
                        };
                        let mut columns = vec![
                            ("pooled".to_string(), object("pooled")),
                            ("mean ± std of the folds".to_string(), spread(Some(cv))),
                        ];
                        // cv.json of runs that can choose the checkpoint: both means, from
                        // each fold's metrics.csv rows.
                        for (key, title) in [
                            ("best", "best epochs (metrics.csv)"),
                            ("last", "last epochs (metrics.csv)"),
                        ] {
                            if cv.get(key).is_some() {
                                columns.push((title.to_string(), spread(cv.get(key))));
                            }
                        }
                        metric_tables(page, &columns);
                        let other: Vec<(String, Value)> = cv
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .filter(|(k, _)| {
                                        !["folds", "mean", "std", "pooled", "best", "last"]
                                            .contains(&k.as_str())
                                    })
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        if !other.is_empty() {
                            page.kv_table(&other);
                        }
                    }
                }
                page.push("<h3>Validation, per fold</h3>\n");
                metric_tables(page, &val);
                if any_test {
                    page.push("<h3>Test, per fold</h3>\n");
                    metric_tables(page, &test);
                }
            }
        }
        page.push("</section>\n");
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

    fn plots(&self, page: &mut Page) {
        page.push("<section id=\"plots\">\n<h2>Plots</h2>\n");
        let all = [
            files::LOSS_PNG,
            files::METRIC_PNG,
            files::KM_PNG,
            files::ROC_PNG,
            files::CONFUSION_PNG,
        ];
        let mut groups: Vec<(String, PathBuf, Vec<&str>)> = Vec::new();
        if self.folds.is_some() {
            groups.push((
                "Pooled out-of-fold predictions".into(),
                self.dir.clone(),
                self.expected_plots(true),
            ));
        }
        for fold in self.fold_dirs() {
            let title = match self.folds {
                Some(_) => format!("Fold {}", fold.index),
                None => "Run".into(),
            };
            groups.push((title, fold.dir, self.expected_plots(false)));
        }
        for (title, dir, expected) in groups {
            page.push(&format!(
                "<div class=\"group\">\n<h3>{}</h3>\n<div class=\"figures\">\n",
                esc(&title)
            ));
            let mut missing = Vec::new();
            for name in all {
                let path = dir.join(name);
                if !path.is_file() {
                    if expected.contains(&name) {
                        missing.push(name);
                    }
                    continue;
                }
                let caption = format!("{title}: {}", plot_caption(name));
                page.figure(&path, &caption);
            }
            page.push("</div>\n");
            if !missing.is_empty() {
                let names: Vec<String> = missing
                    .iter()
                    .map(|n| format!("<code>{n}</code>"))
                    .collect();
                page.push(&format!(
                    "<p class=\"note\">{}: not present.</p>\n",
                    names.join(", ")
                ));
            }
            page.push("</div>\n");
        }
        page.push("</section>\n");
    }

    fn attention(&self, page: &mut Page) {
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
            let title = match self.folds {
                Some(_) => format!("Fold {}", fold.index),
                None => "Run".into(),
            };
            places.push((title, fold.dir.join(ATTENTION_DIR)));
        }
        let mut found = false;
        let mut absent = Vec::new();
        for (title, dir) in places {
            if !dir.is_dir() {
                absent.push(title);
                continue;
            }
            found = true;
            page.push(&format!(
                "<div class=\"group\">\n<h3>{}</h3>\n",
                esc(&title)
            ));
            let tile_files = match tile_csvs(&dir) {
                Ok(f) => f,
                Err(why) => {
                    page.push(&format!("<p class=\"note\">{}</p>\n</div>\n", esc(&why)));
                    page.problem(why);
                    continue;
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
        if !found {
            page.push("<p>No attention exported: not present.</p>\n");
        } else if !absent.is_empty() {
            page.push(&format!(
                "<p class=\"note\">No <code>{ATTENTION_DIR}/</code> folder: {}.</p>\n",
                esc(&absent.join(", "))
            ));
        }
        page.push("</section>\n");
    }
}

/// A caption for a plot file.
fn plot_caption(name: &str) -> String {
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

/// A column of a metrics table.
enum Column {
    /// The file is not there.
    Missing,
    /// The file could not be read: why.
    Broken(String),
    /// A metrics object.
    Values(Map<String, Value>),
    /// `cv.json`'s `mean` and `std`.
    MeanStd(Map<String, Value>, Map<String, Value>),
}

impl Column {
    fn keys(&self) -> Vec<&String> {
        match self {
            Self::Values(m) | Self::MeanStd(m, _) => m.keys().collect(),
            _ => Vec::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Values(m) | Self::MeanStd(m, _) => m.get(key),
            _ => None,
        }
    }
}

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

    let mut header = vec!["metric".to_string()];
    header.extend(columns.iter().map(|(t, _)| esc(t)));
    let mut rows = Vec::new();
    for key in &order {
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
        rows.push(row);
    }
    let notes: Vec<(&String, String)> = columns
        .iter()
        .filter_map(|(t, c)| match c {
            Column::Missing => Some((t, "not present".to_string())),
            Column::Broken(why) => Some((t, why.clone())),
            _ => None,
        })
        .collect();
    if !rows.is_empty() {
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        page.table(&header, &rows);
    }
    for (_, column) in columns {
        if let Column::Broken(why) = column {
            page.problem(why.clone());
        }
    }
    for (title, why) in notes {
        page.push(&format!(
            "<p class=\"note\">{}: {}</p>\n",
            esc(title),
            esc(&why)
        ));
    }
    for key in objects {
        for (title, column) in columns {
            let Some(Value::Object(object)) = column.get(key) else {
                continue;
            };
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

/// A measured number as the report shows it: three decimals, or three significant digits in
/// scientific notation for very small or large values.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        "0.000".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// A JSON value as escaped inline HTML: numbers by [`number`], `null` as a dash, lists in
/// brackets (long ones cut), objects as compact JSON (long ones cut).
fn inline_value(v: &Value) -> String {
    const MAX_ITEMS: usize = 12;
    const MAX_CHARS: usize = 240;
    match v {
        Value::Null => "<span class=\"none\">—</span>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(f)) => number(f),
            _ => esc(&n.to_string()),
        },
        Value::String(s) => esc(s),
        Value::Array(items) if items.iter().any(Value::is_object) => compact_json(v, MAX_CHARS),
        Value::Array(items) => {
            let mut parts: Vec<String> = items.iter().take(MAX_ITEMS).map(inline_value).collect();
            if items.len() > MAX_ITEMS {
                parts.push(format!("… {} in all", items.len()));
            }
            format!("[{}]", parts.join(", "))
        }
        Value::Object(_) => compact_json(v, MAX_CHARS),
    }
}

/// A value as compact JSON in `<code>`, cut after `max` characters.
fn compact_json(v: &Value, max: usize) -> String {
    let text = v.to_string();
    let count = text.chars().count();
    if count > max {
        let cut: String = text.chars().take(max).collect();
        format!("<code>{}</code>… ({count} characters)", esc(&cut))
    } else {
        format!("<code>{}</code>", esc(&text))
    }
}

/// An object's fields, nested objects as `outer.inner`.
fn flatten(map: &Map<String, Value>) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (k, v) in map {
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                for (sub, v) in flatten(inner) {
                    out.push((format!("{k}.{sub}"), v));
                }
            }
            _ => out.push((k.clone(), v.clone())),
        }
    }
    out
}

/// A JSON file: `None` when it is not there, the reason when it cannot be read.
fn read_json(path: &Path) -> Option<Result<Value, String>> {
    if !path.exists() {
        return None;
    }
    Some(
        std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("{}: {e}", path.display()))),
    )
}

/// Opens a CSV file (headers on its first line, rows of any length).
fn csv_reader(path: &Path) -> Result<csv::Reader<std::fs::File>, String> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Slides and distinct patients of a cohort CSV (each slide its own patient without a
/// patient column).
fn cohort_counts(path: &Path, slide: &str, patient: &str) -> Result<(usize, usize), String> {
    if !path.is_file() {
        return Err("no such file".into());
    }
    let mut reader = csv_reader(path)?;
    let header = reader
        .byte_headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let find = |name: &str| header.iter().position(|h| h == name.as_bytes());
    let slide_col = find(slide).ok_or_else(|| format!("no column `{slide}`"))?;
    let patient_col = find(patient).unwrap_or(slide_col);
    let mut slides = 0;
    let mut patients = BTreeSet::new();
    for record in reader.byte_records() {
        let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
        let Some(id) = record.get(patient_col).or_else(|| record.get(slide_col)) else {
            continue;
        };
        slides += 1;
        patients.insert(id.to_vec());
    }
    Ok((slides, patients.len()))
}

/// Patients on each side (`train`, `val`, `test`) of a splits CSV; `None` when there is none.
fn split_counts(path: &Path) -> Result<Option<[usize; 3]>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let mut reader = csv_reader(path)?;
    let header = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let columns: Vec<Option<usize>> = ["train", "val", "test"]
        .iter()
        .map(|side| header.iter().position(|h| h == *side))
        .collect();
    let mut counts = [0; 3];
    for record in reader.records() {
        let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
        for (count, column) in counts.iter_mut().zip(&columns) {
            if column
                .and_then(|c| record.get(c))
                .is_some_and(|cell| !cell.trim().is_empty())
            {
                *count += 1;
            }
        }
    }
    Ok(Some(counts))
}

/// Epoch rows of a `metrics.csv`.
fn epoch_rows(path: &Path) -> Option<usize> {
    let mut reader = csv_reader(path).ok()?;
    Some(reader.records().filter(Result::is_ok).count())
}

/// The best epoch that the fold's current checkpoint records (`checkpoints/latest.json`
/// names the checkpoint folder, whose `state.json` has `best: [epoch, metric, loss]`).
fn checkpoint_best_epoch(dir: &Path) -> Option<u64> {
    let checkpoints = dir.join("checkpoints");
    let latest = read_json(&checkpoints.join("latest.json"))?.ok()?;
    let folder = latest.get("folder")?.as_str()?;
    // A folder name, not a path that leads elsewhere.
    if folder.is_empty() || folder.contains(['/', '\\']) || folder.starts_with('.') {
        return None;
    }
    let state = read_json(&checkpoints.join(folder).join("state.json"))?.ok()?;
    state.get("best")?.get(0)?.as_u64()
}

/// What a predictions CSV holds.
struct PredictionCounts {
    patients: usize,
    slides: Option<usize>,
    /// Patients by `modalities` value.
    modalities: BTreeMap<String, usize>,
    /// Patients by `fold` value.
    folds: BTreeMap<String, usize>,
}

/// Counts of a predictions CSV (`predictions.csv`, `cv_predictions.csv`); `None` when there
/// is none.
fn prediction_counts(path: &Path) -> Result<Option<PredictionCounts>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let mut reader = csv_reader(path)?;
    let header = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let find = |name: &str| header.iter().position(|h| h == name);
    let (slides_col, modalities_col, fold_col) = (find("slides"), find("modalities"), find("fold"));
    let mut counts = PredictionCounts {
        patients: 0,
        slides: slides_col.map(|_| 0),
        modalities: BTreeMap::new(),
        folds: BTreeMap::new(),
    };
    for record in reader.records() {
        let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
        counts.patients += 1;
        if let (Some(total), Some(n)) = (
            counts.slides.as_mut(),
            slides_col
                .and_then(|c| record.get(c))
                .and_then(|s| s.trim().parse::<usize>().ok()),
        ) {
            *total += n;
        }
        if let Some(m) = modalities_col.and_then(|c| record.get(c)) {
            *counts.modalities.entry(m.to_string()).or_default() += 1;
        }
        if let Some(f) = fold_col.and_then(|c| record.get(c)) {
            *counts.folds.entry(f.to_string()).or_default() += 1;
        }
    }
    Ok(Some(counts))
}

/// The `*.tiles.csv` files of an attention folder, by slide (the file name's stem), sorted.
fn tile_csvs(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_name()?.to_str()?.to_string();
            let slide = name.strip_suffix(".tiles.csv")?.to_string();
            path.is_file().then_some((slide, path))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The most attended tiles of one slide.
#[derive(Debug)]
struct TopTiles {
    /// Tiles of the slide.
    tiles: usize,
    /// Whether the file has `x` and `y` columns.
    coords: bool,
    /// `(tile, x, y, score)`, best first.
    top: Vec<(String, String, String, f64)>,
    /// Rows whose score is not a number.
    skipped: usize,
}

impl TopTiles {
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

/// The `n` tiles of largest score of a `*.tiles.csv` (`tile,x,y,score` or `tile,score`),
/// ties by file order.
fn top_tiles(path: &Path, n: usize) -> Result<TopTiles, String> {
    let mut reader = csv_reader(path)?;
    let header = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let find = |name: &str| header.iter().position(|h| h == name);
    let (Some(tile), Some(score)) = (find("tile"), find("score")) else {
        return Err(format!(
            "{}: needs `tile` and `score` columns",
            path.display()
        ));
    };
    let (x, y) = (find("x"), find("y"));
    let coords = x.is_some() && y.is_some();
    let mut rows = Vec::new();
    let mut skipped = 0;
    let mut tiles = 0;
    for record in reader.records() {
        let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
        tiles += 1;
        let cell = |c: Option<usize>| {
            c.and_then(|c| record.get(c))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        match cell(Some(score)).parse::<f64>() {
            Ok(s) if s.is_finite() => rows.push((cell(Some(tile)), cell(x), cell(y), s)),
            _ => skipped += 1,
        }
    }
    // Stable: equal scores keep the file's order.
    rows.sort_by(|a, b| b.3.total_cmp(&a.3));
    rows.truncate(n);
    Ok(TopTiles {
        tiles,
        coords,
        top: rows,
        skipped,
    })
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn esc(text: &str) -> String {
    escape_html(text)
}

/// Standard base64 (RFC 4648, with `=` padding) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |i: u32| char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
        out.push(sextet(0));
        out.push(sextet(1));
        out.push(if chunk.len() > 1 { sextet(2) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(3) } else { '=' });
    }
    out
}

/// The width and height of a PNG file's bytes (from its IHDR chunk); `None` when the bytes
/// are not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    if bytes.len() < 24 || bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let (w, h) = (word(16), word(20));
    (w > 0 && h > 0).then_some((w, h))
}

/// The HTML being written.
#[derive(Default)]
struct Page {
    body: String,
    /// The run's files that could not be read, with the reason.
    problems: Vec<String>,
}

impl Page {
    /// Records a file that could not be read (noted on the page by the caller).
    fn problem(&mut self, why: String) {
        if !self.problems.contains(&why) {
            self.problems.push(why);
        }
    }

    fn push(&mut self, html: &str) {
        self.body.push_str(html);
    }

    fn kv_row(&mut self, key: &str, value_html: &str) {
        let _ = writeln!(
            self.body,
            "<tr><th scope=\"row\">{}</th><td>{value_html}</td></tr>",
            esc(key)
        );
    }

    /// A two-column table of names and values (numbers as they are written).
    fn kv_table(&mut self, rows: &[(String, Value)]) {
        self.push("<table class=\"kv\">\n");
        for (k, v) in rows {
            let html = match v {
                Value::Number(n) => esc(&n.to_string()),
                v => inline_value(v),
            };
            self.kv_row(k, &html);
        }
        self.push("</table>\n");
    }

    /// A table; `header` and the cells are HTML already.
    fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        self.push("<table>\n<thead><tr>");
        for h in header {
            let _ = write!(self.body, "<th scope=\"col\">{h}</th>");
        }
        self.push("</tr></thead>\n<tbody>\n");
        for row in rows {
            self.push("<tr>");
            for (i, cell) in row.iter().enumerate() {
                if i == 0 {
                    let _ = write!(self.body, "<th scope=\"row\">{cell}</th>");
                } else {
                    let _ = write!(self.body, "<td>{cell}</td>");
                }
            }
            self.push("</tr>\n");
        }
        self.push("</tbody>\n</table>\n");
    }

    /// A figure of a PNG file embedded as a data URI; a note when it is not a readable PNG.
    fn figure(&mut self, path: &Path, caption: &str) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let _ = writeln!(
                    self.body,
                    "<p class=\"note\">{}: {}</p>",
                    esc(&name),
                    esc(&e.to_string())
                );
                self.problem(format!("{}: {e}", path.display()));
                return;
            }
        };
        let Some((w, h)) = png_size(&bytes) else {
            let _ = writeln!(
                self.body,
                "<p class=\"note\">{}: not a PNG image.</p>",
                esc(&path.display().to_string())
            );
            self.problem(format!("{}: not a PNG image", path.display()));
            return;
        };
        let _ = writeln!(
            self.body,
            "<figure><img src=\"data:image/png;base64,{}\" width=\"{w}\" height=\"{h}\" \
             alt=\"{}\"><figcaption>{}</figcaption></figure>",
            base64(&bytes),
            esc(caption),
            esc(caption)
        );
    }

    fn finish(self, title: &str) -> String {
        let mut html = String::with_capacity(self.body.len() + 4096);
        html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        // Nothing may be fetched and nothing run: images come as data URIs, style inline.
        html.push_str(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             img-src data:; style-src 'unsafe-inline'\">\n",
        );
        html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        let _ = writeln!(html, "<title>{}</title>", esc(title));
        html.push_str(STYLE);
        html.push_str("</head>\n<body>\n<main>\n");
        html.push_str(&self.body);
        html.push_str(
            "</main>\n<footer id=\"end\"><p>Written by <code>med-crossvit report</code>: one \
             file, images embedded, nothing loaded from elsewhere.</p></footer>\n</body>\n\
             </html>\n",
        );
        html
    }
}

/// The page's style: system fonts, tables and a grid of figures on screen; A4 pages,
/// figures and tables kept whole, no navigation in print.
const STYLE: &str = "<style>
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif;
  color: #1b1b1b; background: #fff; margin: 0; line-height: 1.4; }
main { max-width: 1140px; margin: 0 auto; padding: 1.5rem 1.5rem 0; }
footer { max-width: 1140px; margin: 2rem auto 1rem; padding: 0 1.5rem; color: #666;
  font-size: 0.85rem; }
h1 { font-size: 1.7rem; margin: 0 0 0.6rem; }
h2 { font-size: 1.35rem; border-bottom: 2px solid #2a5d8f; padding-bottom: 0.2rem;
  margin-top: 2.2rem; }
h3 { font-size: 1.1rem; margin: 1.4rem 0 0.5rem; }
h4 { font-size: 0.95rem; margin: 1rem 0 0.3rem; }
code { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 0.9em; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 1.2rem; }
nav a { color: #2a5d8f; }
table { border-collapse: collapse; margin: 0.4rem 0 0.8rem; font-size: 0.9rem; }
th, td { border: 1px solid #cfd6de; padding: 0.25rem 0.55rem; text-align: left;
  vertical-align: top; }
thead th { background: #eef2f6; }
tbody th { font-weight: normal; background: #f8f9fb; }
td { font-variant-numeric: tabular-nums; }
table.kv th { background: #f8f9fb; font-weight: normal; min-width: 12rem; }
.what { color: #666; font-size: 0.85em; }
.ci { color: #444; white-space: nowrap; }
.none { color: #999; }
.note { color: #666; font-size: 0.9rem; }
.blocks { display: flex; flex-wrap: wrap; gap: 0 2rem; align-items: flex-start; }
.block { flex: 0 1 auto; }
.slide table { margin-bottom: 0.2rem; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; flex: 0 1 540px; }
figure img { display: block; width: 100%; height: auto; border: 1px solid #e3e7ec; }
figcaption { font-size: 0.85rem; color: #444; margin-top: 0.25rem; }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  body { font-size: 9.5pt; }
  main, footer { max-width: none; padding: 0; }
  nav { display: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  section:not(#settings) { break-before: page; page-break-before: always; }
  h3, h4 { break-after: avoid; page-break-after: avoid; }
  .blocks { display: block; column-count: 2; column-gap: 8mm; column-fill: auto; }
  .block { break-inside: avoid; page-break-inside: avoid; margin-bottom: 3mm; }
  table.kv th { min-width: 0; }
  table, figure, tr { break-inside: avoid; page-break-inside: avoid; }
  table { font-size: 8.5pt; }
  figure { flex: 0 1 48%; }
  figure img { border: none; }
  a { color: inherit; text-decoration: none; }
  thead th, tbody th, table.kv th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
</style>
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">R&D's</a>"),
            "&lt;a href=&quot;x&quot;&gt;R&amp;D&#39;s&lt;/a&gt;"
        );
    }

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
                    "orphan_ci": [1, 2], "by_modality": {"both": {"c_index": 0.75}}}"#,
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
            html.contains("by_modality") && html.contains("0.750"),
            "{html}"
        );
        let loss = html.find("<code>loss</code>").unwrap();
        let c = html.find("<code>c_index</code>").unwrap();
        let new = html.find("<code>new_score</code>").unwrap();
        assert!(loss < c && c < new, "{html}");
    }

    #[test]
    fn the_top_tiles_are_the_largest_scores_with_their_coordinates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tiles.csv");
        let mut text = String::from("tile,x,y,score\n");
        for i in 0..15 {
            let score = if i == 7 {
                0.5
            } else {
                0.5 / 14.0 * (i as f64 + 1.0) / 15.0
            };
            text.push_str(&format!("{i},{},{},{score:.7e}\n", i * 256, i * 128));
        }
        text.push_str("15,0,0,not-a-number\n");
        std::fs::write(&path, text).unwrap();
        let top = top_tiles(&path, 10).unwrap();
        assert_eq!(top.tiles, 16);
        assert_eq!(top.skipped, 1);
        assert!(top.coords);
        assert_eq!(top.top.len(), 10);
        assert_eq!(top.top[0].0, "7");
        assert_eq!(
            (top.top[0].1.as_str(), top.top[0].2.as_str()),
            ("1792", "896")
        );
        assert_eq!(top.top[1].0, "14");
        assert!(top.top.windows(2).all(|w| w[0].3 >= w[1].3));

        std::fs::write(&path, "tile,score\n3,0.9\n1,0.1\n").unwrap();
        let top = top_tiles(&path, 10).unwrap();
        assert!(!top.coords);
        assert_eq!(top.top[0].0, "3");
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        assert!(
            top_tiles(&path, 10)
                .unwrap_err()
                .contains("`tile` and `score`")
        );
    }

    #[test]
    fn png_sizes_come_from_the_header() {
        let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
        bytes.extend(b"IHDR");
        bytes.extend(800u32.to_be_bytes());
        bytes.extend(500u32.to_be_bytes());
        assert_eq!(png_size(&bytes), Some((800, 500)));
        assert_eq!(png_size(b"GIF89a"), None);
        bytes[1] = b'X';
        assert_eq!(png_size(&bytes), None);
    }

    #[test]
    fn a_folder_without_config_is_not_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_report(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Run(RunError::NotARun { path, .. }) if path == dir.path()),
            "{err}"
        );
        assert!(err.to_string().contains("config.json"), "{err}");
        let missing = dir.path().join("nowhere");
        let err = write_report(&missing).unwrap_err();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        std::fs::write(dir.path().join("config.json"), "[1, 2]").unwrap();
        let err = write_report(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        assert!(!dir.path().join(REPORT_HTML).exists());
    }

    #[test]
    fn a_bare_config_makes_a_report_that_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model": {"depth": 1}, "training": {"task": "survival", "note": "<i>"}}"#,
        )
        .unwrap();
        let path = write_report(dir.path()).unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        assert!(
            html.contains("&lt;i&gt;") && !html.contains("<i>"),
            "{html}"
        );
        assert!(html.contains("not present"), "{html}");
        assert!(html.contains("<code>km.png</code>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<script"));
    }
}
