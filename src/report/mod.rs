//! `report.html`: one self-contained page per run folder, for a reader or a reviewer.
//!
//! [`write_report`] reads what a run folder holds (a single run, or a cross-validation folder
//! with `cv.json` and `fold_0` … `fold_{K-1}`) and writes `report.html` beside it, in the
//! order of a paper: the headline results (the pooled metrics with their intervals, the
//! Kaplan–Meier or ROC plot, and which checkpoint they are of), the data, the per-fold
//! tables, the other plots, the heatmaps and the most attended tiles of each exported slide,
//! and the settings last (long values cut, so the page never scrolls sideways). Its title
//! names the run folder by its canonical path (`report .` names the folder, not `.`). The
//! page is one file: its images are embedded as `data:image/png;base64,…` URIs, it loads
//! nothing over a network (its content security policy forbids it), runs no script, and has
//! a print stylesheet.
//!
//! Metrics are read as plain JSON, so fields that newer versions add are shown too: every
//! field of `metrics.json`, `test_metrics.json` and `cv.json` appears, a number `x` beside an
//! `x_ci` interval as `0.713 [0.620, 0.801]` (a `by_modality` of one group, every patient,
//! is left out). Files that are missing are left out, with a "not present" note where a
//! reader would look for them; a file that cannot be read is named with the reason, and the
//! rest of the page is written all the same.
//!
//! Heatmaps come from `RUN_DIR/heatmaps/` (and each fold's) and from the folders of
//! [`ReportOptions::heatmaps`]: each a [`HEATMAPS_CSV`] manifest with overlays and top-tile
//! crops, embedded like every other image (see [`HEATMAPS_HEADER`]).
//!
//! Inside: `read` turns the run folder into data (its configuration, folds, metrics columns
//! and the counts of its CSV files); `results`, `sections`, `metrics`, `heatmaps` and
//! `settings` write the page's sections from it; `html` holds the page being written with
//! its escaping, tables and embedded images.

mod heatmaps;
mod html;
mod metrics;
mod read;
mod results;
mod sections;
mod settings;

use std::path::{Path, PathBuf};

use crate::run::Error;

pub use heatmaps::{
    HEATMAP_CROPS, HEATMAP_SLIDES, HEATMAPS_CSV, HEATMAPS_DIR, HEATMAPS_HEADER, TOP_TILES_HEADER,
};
use html::Page;
pub use html::{base64, escape_html, png_size};
use read::Run;

/// The report's file name in the run folder.
pub const REPORT_HTML: &str = "report.html";

/// Most-attended tiles listed per slide.
pub const TOP_TILES: usize = 10;

/// The folder of attention exports that the report looks for in a run folder and in each
/// `fold_K` folder (`med-crossvit predict --attention RUN/attention`).
pub const ATTENTION_DIR: &str = "attention";

/// Writes `run_dir/report.html` (see the [module documentation](self)) through a temporary
/// file renamed into place, and returns its path.
///
/// # Errors
///
/// [`RunError::NotARun`](crate::RunError::NotARun) naming `run_dir` when it is not a folder
/// with a readable `config.json` (a JSON object); [`PersistError::Io`](crate::PersistError::Io)
/// naming the file when the report cannot be written. Other files of the folder that are
/// missing or unreadable are noted in the report, not errors.
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

/// What a report shows beyond the run folder's own files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// Folders written by `med-crossvit heatmap` (each with a [`HEATMAPS_CSV`]) to show
    /// besides the run's own `heatmaps/` folder (`report --heatmaps DIR`). A folder given
    /// here without a readable manifest is a [problem](WrittenReport::problems).
    pub heatmaps: Vec<PathBuf>,
}

/// [`write_report`], also returning the run's files that could not be read
/// ([`WrittenReport::problems`]): `report` warns about each and exits with an error.
///
/// # Errors
///
/// As [`write_report`].
pub fn write_report_checked(run_dir: &Path) -> Result<WrittenReport, Error> {
    write_report_with(run_dir, &ReportOptions::default())
}

/// [`write_report_checked`] with `options`: heatmaps from other folders.
///
/// # Errors
///
/// As [`write_report`]; a heatmaps folder that cannot be read is a problem, not an error.
pub fn write_report_with(run_dir: &Path, options: &ReportOptions) -> Result<WrittenReport, Error> {
    let (html, problems) = render(run_dir, options)?;
    let path = run_dir.join(REPORT_HTML);
    crate::util::atomic::write(&path, html.as_bytes())
        .map_err(crate::model::PersistError::io(&path))?;
    Ok(WrittenReport { path, problems })
}

/// The text of the report of `run_dir`, as [`write_report`] writes it.
///
/// # Errors
///
/// [`RunError::NotARun`](crate::RunError::NotARun) naming `run_dir` when it is not a folder
/// with a readable `config.json` (a JSON object).
pub fn render_report(run_dir: &Path) -> Result<String, Error> {
    Ok(render(run_dir, &ReportOptions::default())?.0)
}

/// The report's text and the problems met writing it: the headline results first, then the
/// data, the per-fold tables, the plots, heatmaps and tiles, and the settings last.
fn render(run_dir: &Path, options: &ReportOptions) -> Result<(String, Vec<String>), Error> {
    let run = Run::open(run_dir)?;
    let mut page = Page::default();
    run.header(&mut page);
    run.results(&mut page);
    run.data(&mut page);
    run.fold_metrics(&mut page);
    run.plots(&mut page);
    run.heatmaps(&mut page, &options.heatmaps);
    run.attention(&mut page);
    run.settings(&mut page);
    let problems = std::mem::take(&mut page.problems);
    Ok((page.finish(&run.title()), problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunError;

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
