//! `med_crossvit._native`: the extension module under the Python package `med_crossvit`.
//!
//! A thin layer, as the command-line tool is: each function builds the library's request
//! and calls the same library code as the matching `med-crossvit` command (training,
//! evaluation, prediction, the cohort check), with the GIL released while it computes.
//! `med_crossvit/__init__.py` holds the Python API (keyword checks, pandas, [`Run`]), and
//! `_native.pyi` the types of what is here.
//!
//! [`Run`]: ../med_crossvit/_run.py

mod commands;
mod errors;
mod model;
mod progress;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use med_crossvit::run::{TrainSettings, files};

/// The module: the functions, the `Model` class, the exceptions and the run files' names.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_function(wrap_pyfunction!(commands::train, m)?)?;
    m.add_function(wrap_pyfunction!(commands::resume, m)?)?;
    m.add_function(wrap_pyfunction!(commands::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(commands::predict, m)?)?;
    m.add_function(wrap_pyfunction!(commands::check, m)?)?;
    m.add_function(wrap_pyfunction!(commands::synth, m)?)?;
    m.add_function(wrap_pyfunction!(model::read_tiles, m)?)?;
    m.add_function(wrap_pyfunction!(settings_defaults, m)?)?;
    m.add_class::<model::Model>()?;
    m.add("FILES", run_files(m.py())?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The default training settings as JSON (`config.json`'s `training` object): their names
/// are the keywords `train` takes.
#[pyfunction]
fn settings_defaults() -> String {
    serde_json::to_string(&TrainSettings::default()).expect("settings serialize")
}

/// The names of a run folder's files, from the library's constants (`run::files`).
fn run_files(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in [
        ("config", files::CONFIG),
        ("normalization", files::NORMALIZATION),
        ("labels", files::LABELS),
        ("metrics_csv", files::METRICS_CSV),
        ("metrics_json", files::METRICS_JSON),
        ("test_metrics_json", files::TEST_METRICS_JSON),
        ("cv_json", files::CV_JSON),
        ("cv_predictions_csv", files::CV_PREDICTIONS_CSV),
        ("splits_csv", files::SPLITS_CSV),
        ("predictions_csv", files::PREDICTIONS_CSV),
        ("predictions_slides_csv", files::PREDICTIONS_SLIDES_CSV),
        ("weights", med_crossvit::model::WEIGHTS_FILE),
    ] {
        d.set_item(k, v)?;
    }
    Ok(d)
}
