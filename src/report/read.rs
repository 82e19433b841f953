//! Reading a run folder into what the page shows: its `config.json` and `cv.json`, the
//! fold folders, metrics as table columns, counts of its CSV files (cohort, splits,
//! predictions) and the most attended tiles of its attention exports. A file that is missing
//! is `None` (or [`Column::Missing`]); one that cannot be read is the reason, as text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::run::{Error, RunError, files};

/// Most folds a report lists.
const MAX_FOLDS: usize = 1000;

/// The task of a run, as its `config.json` says (classification when it does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskKind {
    /// Classes, by AUC.
    Classification,
    /// Survival times, by concordance.
    Survival,
}

/// A run folder: a single run (one "fold", the folder itself) or a cross-validation.
pub(super) struct Run {
    /// The folder.
    pub(super) dir: PathBuf,
    /// Its `config.json`.
    pub(super) config: Map<String, Value>,
    /// `training.task` of the configuration.
    pub(super) task: TaskKind,
    /// `Some(K)` for a cross-validation of K folds.
    pub(super) folds: Option<usize>,
    /// `cv.json`, when there is one.
    pub(super) cv: Option<Result<Value, String>>,
}

/// One fitted model's folder: a fold of a cross-validation or the single run.
pub(super) struct FoldDir {
    /// `fold 0`, or `run` for a single run.
    pub(super) label: String,
    /// The fold's number (0 for a single run).
    pub(super) index: usize,
    /// The folder.
    pub(super) dir: PathBuf,
}

impl Run {
    /// Reads the run folder `dir`: its configuration, `cv.json` and number of folds.
    ///
    /// # Errors
    ///
    /// [`RunError::NotARun`] naming `dir` when it is not a folder with a readable
    /// `config.json` (a JSON object).
    pub(super) fn open(dir: &Path) -> Result<Self, Error> {
        let config = read_config(dir)?;
        let task = match config
            .get("training")
            .and_then(|t| t.get("task"))
            .and_then(Value::as_str)
        {
            Some("survival") => TaskKind::Survival,
            _ => TaskKind::Classification,
        };
        let cv = read_json(&dir.join(files::CV_JSON));
        let folds = fold_count(dir, &config, cv.as_ref().and_then(|cv| cv.as_ref().ok()));
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            task,
            folds,
            cv,
        })
    }

    /// The page's title: the report and the run folder's name ([`folder_name`]).
    pub(super) fn title(&self) -> String {
        format!("med-crossvit report: {}", folder_name(&self.dir))
    }

    /// The folders of the fitted models: `fold_0` … of a cross-validation, or the run's own.
    pub(super) fn fold_dirs(&self) -> Vec<FoldDir> {
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

    /// The title of a fold's group of plots or tiles: `Fold 0`, or `Run` for a single run.
    pub(super) fn group_title(&self, fold: &FoldDir) -> String {
        match self.folds {
            Some(_) => format!("Fold {}", fold.index),
            None => "Run".into(),
        }
    }

    /// Which checkpoint the metrics are of, as the run's files say: `checkpoint` and
    /// `selection_metric` of `cv.json`, else `training.select` of `config.json` (absent in
    /// runs written before it could be chosen: the best) and the task's metric.
    pub(super) fn selection(&self) -> (String, String) {
        let cv = self.cv_value();
        let select = cv
            .and_then(|cv| cv.get("checkpoint"))
            .or_else(|| self.config.get("training").and_then(|t| t.get("select")))
            .and_then(Value::as_str)
            .unwrap_or("best");
        let metric = match cv
            .and_then(|cv| cv.get("selection_metric"))
            .and_then(Value::as_str)
        {
            Some(m) => m.to_string(),
            None => match self.task {
                TaskKind::Classification => "val_auc".into(),
                TaskKind::Survival => "val_c_index".into(),
            },
        };
        (select.to_string(), metric)
    }

    /// The epoch of each fold's kept checkpoint: `epoch` of each fold in `cv.json`, else (a
    /// single run) the best epoch its checkpoint records, or for `--select last` the rows
    /// of its `metrics.csv`.
    pub(super) fn kept_epochs(&self, select: &str) -> Vec<u64> {
        let from_cv: Vec<u64> = self
            .cv_value()
            .and_then(|cv| cv.get("folds"))
            .and_then(Value::as_array)
            .map(|folds| {
                folds
                    .iter()
                    .filter_map(|f| f.get("epoch").and_then(Value::as_u64))
                    .collect()
            })
            .unwrap_or_default();
        if !from_cv.is_empty() || self.folds.is_some() {
            return from_cv;
        }
        let epoch = match select {
            "last" => epoch_rows(&self.dir.join(files::METRICS_CSV)).map(|n| n as u64),
            _ => checkpoint_best_epoch(&self.dir),
        };
        epoch.into_iter().collect()
    }

    /// `cv.json`, when it was read.
    pub(super) fn cv_value(&self) -> Option<&Value> {
        self.cv.as_ref().and_then(|cv| cv.as_ref().ok())
    }

    /// Each fold's `best_epoch` as `cv.json` records it, by fold number.
    pub(super) fn cv_best_epochs(&self) -> BTreeMap<usize, Value> {
        self.cv_value()
            .and_then(|cv| cv.get("folds"))
            .and_then(Value::as_array)
            .map(|folds| {
                folds
                    .iter()
                    .filter_map(|f| {
                        let k = usize::try_from(f.get("fold")?.as_u64()?).ok()?;
                        Some((k, f.get("best_epoch")?.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Each fold's validation metrics: its `metrics.json`, or where that is missing, the
    /// fold's `metrics` in `cv.json`.
    pub(super) fn validation_columns(&self, folds: &[FoldDir]) -> Vec<(String, Column)> {
        folds
            .iter()
            .map(|f| {
                let mut column = Column::load(&f.dir, files::METRICS_JSON);
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
            .collect()
    }
}

/// Each fold's test metrics (`test_metrics.json`).
pub(super) fn test_columns(folds: &[FoldDir]) -> Vec<(String, Column)> {
    folds
        .iter()
        .map(|f| {
            (
                f.label.clone(),
                Column::load(&f.dir, files::TEST_METRICS_JSON),
            )
        })
        .collect()
}

/// The columns of the pooled table of a cross-validation, from its `cv.json`: the pooled
/// out-of-fold metrics, the folds' mean ± std, and (where the checkpoint could be chosen)
/// the means of the best and of the last epochs.
pub(super) fn cv_columns(cv: &Value) -> Vec<(String, Column)> {
    let object = |key: &str| match cv.get(key) {
        Some(Value::Object(m)) => Column::Values(m.clone()),
        _ => Column::Missing,
    };
    let spread =
        |v: Option<&Value>| match (v.and_then(|v| v.get("mean")), v.and_then(|v| v.get("std"))) {
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
    // cv.json of runs that can choose the checkpoint: both means, from each fold's
    // metrics.csv rows.
    for (key, title) in [
        ("best", "best epochs (metrics.csv)"),
        ("last", "last epochs (metrics.csv)"),
    ] {
        if cv.get(key).is_some() {
            columns.push((title.to_string(), spread(cv.get(key))));
        }
    }
    columns
}

/// The fields of `cv.json` that no metrics table shows.
pub(super) fn cv_other_fields(cv: &Value) -> Vec<(String, Value)> {
    cv.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !["folds", "mean", "std", "pooled", "best", "last"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The name of the run folder `dir` as a reader knows it: the last part of its canonical
/// path, so that `.` (or `runs/luad_run/fold_0/..`) names the folder it leads to; the path as
/// given when it cannot be resolved or has no last part.
pub(super) fn folder_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().ok();
    canonical
        .as_deref()
        .unwrap_or(dir)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// The `config.json` of `dir`, which must be a JSON object.
fn read_config(dir: &Path) -> Result<Map<String, Value>, Error> {
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
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(not_a_run(format!("{} is not a JSON object", path.display())).into()),
        Err(e) => Err(not_a_run(format!("{}: {e}", path.display())).into()),
    }
}

/// The folds of a cross-validation in `dir`: `folds` of its configuration, else the folds
/// `cv.json` lists, else the `fold_0`, `fold_1` … folders there are; `None` for a single run.
fn fold_count(dir: &Path, config: &Map<String, Value>, cv: Option<&Value>) -> Option<usize> {
    config
        .get("folds")
        .and_then(Value::as_u64)
        .and_then(|k| usize::try_from(k).ok())
        // A hand-edited count beyond any real cross-validation is not trusted.
        .filter(|&k| (1..=MAX_FOLDS).contains(&k))
        .or_else(|| {
            cv.and_then(|cv| cv.get("folds"))
                .and_then(Value::as_array)
                .map(Vec::len)
                .filter(|&k| (1..=MAX_FOLDS).contains(&k))
        })
        .or_else(|| {
            let k = (0..MAX_FOLDS)
                .take_while(|k| dir.join(format!("fold_{k}")).is_dir())
                .count();
            (k > 0).then_some(k)
        })
}

/// A column of a metrics table.
pub(super) enum Column {
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
    /// The JSON object `dir/name`.
    fn load(dir: &Path, name: &str) -> Self {
        match read_json(&dir.join(name)) {
            None => Self::Missing,
            Some(Ok(Value::Object(map))) => Self::Values(map),
            Some(Ok(_)) => {
                Self::Broken(format!("{} is not a JSON object", dir.join(name).display()))
            }
            Some(Err(why)) => Self::Broken(why),
        }
    }

    /// The metrics' names.
    pub(super) fn keys(&self) -> Vec<&String> {
        match self {
            Self::Values(m) | Self::MeanStd(m, _) => m.keys().collect(),
            _ => Vec::new(),
        }
    }

    /// The value of metric `key`.
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Values(m) | Self::MeanStd(m, _) => m.get(key),
            _ => None,
        }
    }
}

/// An object's fields, nested objects as `outer.inner`.
pub(super) fn flatten(map: &Map<String, Value>) -> Vec<(String, Value)> {
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
pub(super) fn read_json(path: &Path) -> Option<Result<Value, String>> {
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
pub(super) fn cohort_counts(
    path: &Path,
    slide: &str,
    patient: &str,
) -> Result<(usize, usize), String> {
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
pub(super) fn split_counts(path: &Path) -> Result<Option<[usize; 3]>, String> {
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
pub(super) fn epoch_rows(path: &Path) -> Option<usize> {
    let mut reader = csv_reader(path).ok()?;
    Some(reader.records().filter(Result::is_ok).count())
}

/// The best epoch that the fold's current checkpoint records (`checkpoints/latest.json`
/// names the checkpoint folder, whose `state.json` has `best: [epoch, metric, loss]`).
pub(super) fn checkpoint_best_epoch(dir: &Path) -> Option<u64> {
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
pub(super) struct PredictionCounts {
    /// Rows (one per patient).
    pub(super) patients: usize,
    /// Slides in all, from the `slides` column; `None` without one.
    pub(super) slides: Option<usize>,
    /// Patients by `modalities` value.
    pub(super) modalities: BTreeMap<String, usize>,
    /// Patients by `fold` value.
    pub(super) folds: BTreeMap<String, usize>,
}

/// Counts of a predictions CSV (`predictions.csv`, `cv_predictions.csv`); `None` when there
/// is none.
pub(super) fn prediction_counts(path: &Path) -> Result<Option<PredictionCounts>, String> {
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
pub(super) fn tile_csvs(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
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
pub(super) struct TopTiles {
    /// Tiles of the slide.
    pub(super) tiles: usize,
    /// Whether the file has `x` and `y` columns.
    pub(super) coords: bool,
    /// `(tile, x, y, score)`, best first.
    pub(super) top: Vec<(String, String, String, f64)>,
    /// Rows whose score is not a number.
    pub(super) skipped: usize,
}

/// The `n` tiles of largest score of a `*.tiles.csv` (`tile,x,y,score` or `tile,score`),
/// ties by file order.
pub(super) fn top_tiles(path: &Path, n: usize) -> Result<TopTiles, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_named_by_its_canonical_path_never_dot() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("luad_run");
        std::fs::create_dir_all(run.join("fold_0")).unwrap();
        assert_eq!(folder_name(&run), "luad_run");
        assert_eq!(folder_name(&run.join(".")), "luad_run");
        // `..` has no file name of its own: only the canonical path names the folder.
        assert_eq!(folder_name(&run.join("fold_0").join("..")), "luad_run");
        assert_eq!(folder_name(&run.join("fold_0/../.")), "luad_run");
        let here = std::env::current_dir().unwrap();
        let name = here.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(folder_name(Path::new(".")), name);
        assert_ne!(name, ".");
        // A folder that does not exist keeps the name it was given.
        assert_eq!(folder_name(&run.join("gone")), "gone");
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
}
