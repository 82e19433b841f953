//! Where a command may write: never over a run or model folder, never into someone else's
//! folder.
//!
//! The rule every writing command follows (`train`, `import-torch`, `evaluate`, `predict`):
//!
//! - A **run or model folder** is a folder holding any of `config.json`, `model.bpk`,
//!   `cv.json`, `metrics.csv` or `checkpoints/` (what `train` and `import-torch` write).
//! - An output folder may not **be** a run or model folder, nor **lie inside** one (a folder
//!   below it), and an output file may not lie inside one: those folders are a run's results,
//!   and `train --resume` and `report` read them. `train --out` on an existing run says to use
//!   `--resume`.
//! - An output folder that exists must be empty or hold only the command's **own** files
//!   ([`OutputKind::own`]; names starting with `.` are not counted): `evaluate` may write
//!   again where it wrote before, `train` and `import-torch` only into an empty folder.
//! - An output file that exists must have been written by the same command
//!   ([`OutputKind::PredictionsFile`]: a predictions CSV, recognized by its header).
//! - `--force` (the `force` argument) lifts every refusal except `train --out` on an existing
//!   run, which `--resume` continues (or which must be removed by hand).
//!
//! An export (`export --out FILE`) may lie inside a run folder, beside the model it holds,
//! but replaces an existing file only with `--force`.
//!
//! Attention exports (`predict --attention DIR`) and heatmaps (`heatmap --out DIR`) may lie
//! inside a run or fold folder (the report looks for them in `RUN/attention/` and
//! `RUN/heatmaps/`), but not be one.

use std::path::{Path, PathBuf};

use super::RunFileError;
use super::bundle::files;
use crate::run::{Error, RunError};

/// What is about to be written, and by which command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// `train --out`: a new run folder.
    Run,
    /// `import-torch --out`: a new model folder.
    Model,
    /// `evaluate --out`: a folder of `metrics.json` and the predictions CSVs.
    Evaluation,
    /// `predict --attention`: a folder of per-slide attention files.
    Attention,
    /// `predict --out`: one predictions CSV file.
    PredictionsFile,
    /// `heatmap --out`: a folder of slide overlays, GeoJSON files and top tiles.
    Heatmaps,
    /// `export --out`: one weights file (safetensors or `torch.save`).
    ExportFile,
}

impl OutputKind {
    /// The command that writes it, for messages.
    pub fn command(self) -> &'static str {
        match self {
            Self::Run => "train",
            Self::Model => "import-torch",
            Self::Evaluation => "evaluate",
            Self::Attention | Self::PredictionsFile => "predict",
            Self::Heatmaps => "heatmap",
            Self::ExportFile => "export",
        }
    }

    /// Whether a file named `name` in an existing output folder is one this command writes
    /// (and may write again). The slide heatmaps (`.png` overlays, `.geojson`, the
    /// `heatmaps.csv` manifest; the `topk` folder is judged by [`own_folder`](Self::own_folder))
    /// may join attention files, as `predict --attention DIR --slides …` writes both.
    pub fn own(self, name: &str) -> bool {
        let heatmap =
            name == HEATMAPS_CSV || [".png", ".geojson"].iter().any(|s| name.ends_with(s));
        match self {
            Self::Run | Self::Model | Self::PredictionsFile | Self::ExportFile => false,
            Self::Heatmaps => heatmap,
            Self::Evaluation => [
                files::METRICS_JSON,
                files::PREDICTIONS_CSV,
                files::PREDICTIONS_SLIDES_CSV,
                files::PREDICTIONS_FOLDS_CSV,
                files::METRICS_FOLDS_JSON,
            ]
            .contains(&name),
            Self::Attention => {
                heatmap
                    || [".tiles.csv", ".genes.csv"]
                        .iter()
                        .any(|suffix| name.ends_with(suffix))
            }
        }
    }

    /// Whether a folder named `name` in an existing output folder is one this command writes:
    /// the heatmaps' `topk` folder, when it holds only PNG crops and their CSVs.
    pub fn own_folder(self, dir: &Path, name: &str) -> bool {
        matches!(self, Self::Heatmaps | Self::Attention)
            && name == TOPK_DIR
            && std::fs::read_dir(dir.join(name)).is_ok_and(|entries| {
                entries.flatten().all(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    e.file_type().is_ok_and(|t| t.is_file())
                        && (n.ends_with(".png") || n.ends_with(".csv") || n.starts_with('.'))
                })
            })
    }
}

/// The manifest of a heatmaps folder (`heatmap --out`): one row per slide, columns
/// [`HEATMAPS_HEADER`].
pub const HEATMAPS_CSV: &str = "heatmaps.csv";
/// The folder of top-tile crops and their CSVs in a heatmaps folder.
pub const TOPK_DIR: &str = "topk";
/// The heatmaps folder that the report looks for in a run folder (and in each `fold_K`).
pub const HEATMAPS_DIR: &str = "heatmaps";
/// The manifest's columns, in order: the slide id; the overlay PNG, the GeoJSON of the
/// tiles and the top-tiles CSV (empty when none were asked for), relative to the folder; the
/// caption of the model's prediction (`class 1 (p = 0.83)`, `risk 1.234`).
pub const HEATMAPS_HEADER: [&str; 5] = ["slide", "overlay", "geojson", "top_tiles", "prediction"];
/// The columns of a slide's top-tiles CSV (`topk/{slide}.csv`), in order: `most` or `least`,
/// the rank (1 …), the tile's row in the feature file, its square in level-0 slide pixels
/// (`x`, `y`, `size`), its attention score and its crop (a PNG, relative to the folder).
pub const TOP_TILES_HEADER: [&str; 8] = ["kind", "rank", "tile", "x", "y", "size", "score", "crop"];

/// The names whose presence makes a folder a run or model folder.
const RUN_MARKERS: [&str; 5] = [
    files::CONFIG,
    crate::model::WEIGHTS_FILE,
    files::CV_JSON,
    files::METRICS_CSV,
    "checkpoints",
];

/// Whether `dir` is a run or model folder (see the [module documentation](self)).
pub fn is_run_folder(dir: &Path) -> bool {
    dir.is_dir() && RUN_MARKERS.iter().any(|m| dir.join(m).exists())
}

/// The run or model folder that `path` lies inside (a strict ancestor), if any. The path is
/// made absolute first, so `..` and relative paths are judged by where they lead.
pub fn enclosing_run_folder(path: &Path) -> Option<PathBuf> {
    let path = resolved(path);
    path.ancestors()
        .skip(1)
        .find(|a| is_run_folder(a))
        .map(Path::to_path_buf)
}

/// `path` made absolute, with the part that exists resolved through links and `..`.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // The longest existing ancestor, canonicalized, with the rest appended.
    for ancestor in absolute.ancestors() {
        if let Ok(real) = ancestor.canonicalize() {
            let rest = absolute.strip_prefix(ancestor).unwrap_or(Path::new(""));
            return real.join(rest);
        }
    }
    absolute
}

/// Checks that `kind`'s output at `path` (a folder, or a file for
/// [`OutputKind::PredictionsFile`]) overwrites nothing it should not (see the [module
/// documentation](self)).
///
/// # Errors
///
/// [`RunError::RunExists`] for `train` into an existing run (even with `force`);
/// [`RunError::Overwrite`] naming the output, what it would overwrite and the way out
/// (another path, or `--force`); [`RunFileError::Io`] when an existing folder cannot be listed.
pub fn check_output(path: &Path, kind: OutputKind, force: bool) -> Result<(), Error> {
    let refuse = |reason: String| -> Error {
        RunError::Overwrite {
            path: path.to_path_buf(),
            command: kind.command(),
            reason,
        }
        .into()
    };
    if kind == OutputKind::ExportFile {
        return check_export_file(path, force, refuse);
    }
    if kind == OutputKind::PredictionsFile {
        if path.is_dir() {
            return Err(refuse(
                "it is a folder; --out names the predictions CSV file to write".into(),
            ));
        }
    } else if is_run_folder(path) {
        if kind == OutputKind::Run {
            return Err(RunError::RunExists {
                path: path.to_path_buf(),
            }
            .into());
        }
        if !force {
            return Err(refuse("it is a run or model folder".into()));
        }
    }
    if force {
        return Ok(());
    }
    if !matches!(kind, OutputKind::Attention | OutputKind::Heatmaps)
        && let Some(run) = enclosing_run_folder(path)
    {
        return Err(refuse(format!(
            "it lies inside the run or model folder {}",
            run.display()
        )));
    }
    if kind == OutputKind::PredictionsFile {
        if path.is_file() && !is_predictions_csv(path) {
            return Err(refuse(
                "the file exists and is not a predictions CSV written by `predict`".into(),
            ));
        }
        return Ok(());
    }
    if !path.is_dir() {
        if path.exists() {
            return Err(refuse("it is a file, not a folder".into()));
        }
        return Ok(());
    }
    let foreign = foreign_entries(path, kind)?;
    if let Some(first) = foreign.first() {
        return Err(refuse(format!(
            "the folder is not empty and holds {} file(s) that `{}` does not write (such as `{first}`)",
            foreign.len(),
            kind.command()
        )));
    }
    Ok(())
}

/// An export file may lie in a run folder (it is the run's model, written beside it, and no
/// command reads it), but it replaces an existing file only with `force`.
fn check_export_file(
    path: &Path,
    force: bool,
    refuse: impl Fn(String) -> Error,
) -> Result<(), Error> {
    if path.is_dir() {
        return Err(refuse(
            "it is a folder; --out names the file to write".into(),
        ));
    }
    if path.exists() && !force {
        return Err(refuse("the file exists".into()));
    }
    Ok(())
}

/// The entries of the folder `dir` that are not `kind`'s own, hidden names left out, sorted.
fn foreign_entries(dir: &Path, kind: OutputKind) -> Result<Vec<String>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| RunFileError::io(dir)(e))?;
    let mut foreign = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RunFileError::io(dir)(e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let hidden = name.starts_with('.');
        let own = (is_file && kind.own(&name)) || kind.own_folder(dir, &name);
        if !hidden && !own {
            foreign.push(name);
        }
    }
    foreign.sort();
    Ok(foreign)
}

/// Whether the file at `path` is a predictions CSV as `predict` writes it: its header has the
/// `slides` or `modalities` column, `pred`, and `logit_0`.
fn is_predictions_csv(path: &Path) -> bool {
    let Ok(mut reader) = csv::ReaderBuilder::new().flexible(true).from_path(path) else {
        return false;
    };
    let Ok(header) = reader.headers() else {
        return false;
    };
    let has = |name: &str| header.iter().any(|h| h == name);
    has("modalities") && has("pred") && has("logit_0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn refused(result: Result<(), Error>) -> String {
        match result {
            Err(Error::Run(e @ RunError::Overwrite { .. })) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn run_folders_are_recognized_by_their_files() {
        let dir = tempfile::tempdir().unwrap();
        for marker in RUN_MARKERS {
            let run = dir.path().join(format!("run_{marker}"));
            touch(&run.join(marker).join("x"), "");
            assert!(is_run_folder(&run), "{marker}");
            assert_eq!(
                enclosing_run_folder(&run.join("a/b")),
                Some(run.canonicalize().unwrap())
            );
        }
        // An evaluation's folder (metrics.json and predictions) is not a run.
        let eval = dir.path().join("eval");
        touch(&eval.join("metrics.json"), "{}");
        touch(&eval.join("predictions.csv"), "");
        assert!(!is_run_folder(&eval));
        assert_eq!(enclosing_run_folder(&eval.join("x.csv")), None);
    }

    #[test]
    fn folders_are_refused_by_the_rule_and_force_lifts_it() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        touch(&run.join("config.json"), "{}");
        // Train into a run: --resume, even with force.
        for force in [false, true] {
            assert!(matches!(
                check_output(&run, OutputKind::Run, force),
                Err(Error::Run(RunError::RunExists { .. }))
            ));
        }
        for kind in [
            OutputKind::Model,
            OutputKind::Evaluation,
            OutputKind::Attention,
        ] {
            let why = refused(check_output(&run, kind, false));
            assert!(
                why.contains("is a run or model folder") && why.contains("--force"),
                "{why}"
            );
            assert!(check_output(&run, kind, true).is_ok());
        }
        // Inside a run (through `..` too): refused but for attention exports.
        let inside = run.join("sub/../eval");
        for kind in [OutputKind::Run, OutputKind::Model, OutputKind::Evaluation] {
            let why = refused(check_output(&inside, kind, false));
            assert!(why.contains("lies inside the run or model folder"), "{why}");
            assert!(check_output(&inside, kind, true).is_ok());
        }
        assert!(check_output(&run.join("attention"), OutputKind::Attention, false).is_ok());
        let why = refused(check_output(
            &run.join("metrics.csv"),
            OutputKind::PredictionsFile,
            false,
        ));
        assert!(why.contains("lies inside"), "{why}");

        // A folder of someone else's: refused; an evaluation's own files: written again.
        let other = dir.path().join("other");
        touch(&other.join("notes.txt"), "mine");
        touch(&other.join(".hidden"), "");
        for kind in [OutputKind::Run, OutputKind::Model, OutputKind::Evaluation] {
            let why = refused(check_output(&other, kind, false));
            assert!(
                why.contains("1 file(s)") && why.contains("`notes.txt`"),
                "{why}"
            );
        }
        let eval = dir.path().join("eval");
        touch(&eval.join("metrics.json"), "{}");
        touch(&eval.join("predictions_slides.csv"), "");
        assert!(check_output(&eval, OutputKind::Evaluation, false).is_ok());
        assert!(check_output(&eval, OutputKind::Run, false).is_err());
        // Empty, hidden-only and absent folders are free.
        let lock_only = dir.path().join("lock_only");
        touch(&lock_only.join(".lock"), "");
        for free in [lock_only, dir.path().join("new")] {
            assert!(check_output(&free, OutputKind::Run, false).is_ok());
        }
    }

    #[test]
    fn a_predictions_file_overwrites_only_a_predictions_file() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("p.csv");
        touch(
            &ours,
            "case_id,slides,modalities,logit_0,logit_1,prob_0,prob_1,pred\nc,1,both,0,0,0.5,0.5,a\n",
        );
        assert!(check_output(&ours, OutputKind::PredictionsFile, false).is_ok());
        let theirs = dir.path().join("cohort.csv");
        touch(&theirs, "slide_id,label\ns,a\n");
        let why = refused(check_output(&theirs, OutputKind::PredictionsFile, false));
        assert!(why.contains("not a predictions CSV"), "{why}");
        assert!(check_output(&theirs, OutputKind::PredictionsFile, true).is_ok());
        let why = refused(check_output(dir.path(), OutputKind::PredictionsFile, true));
        assert!(why.contains("is a folder"), "{why}");
        assert!(
            check_output(
                &dir.path().join("new.csv"),
                OutputKind::PredictionsFile,
                false
            )
            .is_ok()
        );
    }
}
