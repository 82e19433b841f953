//! `train --resume`: which run or fold a folder is, and what a checkpointed fit continues
//! with.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::cv::{Resumed, train_splits};
use super::parallel::Parallel;
use super::{Event, TrainRequest, TrainSummary, is_run};
use crate::run::{DataSource, Error, ModelSpec, RunConfig, RunError, RunLock, files};

/// Continues the run in `out` from its last complete epoch, with the settings it was
/// started with; it ends where the uninterrupted run would have.
///
/// `out` may be a cross-validation run (its unfinished folds are continued) or one of its
/// `fold_K` folders (that fold alone is continued, on that fold's split). A checkpointed fit
/// goes on with the normalization, classes and time bins saved in its folder.
///
/// # Errors
///
/// [`RunError::NotARun`] when `out` holds no run; [`RunError::Locked`] when another process
/// is training the run; the errors of [`RunConfig::load`] for a bad `config.json`; the errors
/// of [`train`](super::train).
pub fn resume(
    out: &Path,
    stop_after: Option<usize>,
    device: &Device,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<TrainSummary, Error> {
    resume_parallel(out, stop_after, &Parallel::single(device), events)
}

/// [`resume`] spread over the devices and processes of `parallel`; the writing process takes
/// the folder's lock.
///
/// # Errors
///
/// As [`resume`]; a failure of the transport between processes.
pub fn resume_parallel(
    out: &Path,
    stop_after: Option<usize>,
    parallel: &Parallel<'_>,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<TrainSummary, Error> {
    resume_relocated(out, &Relocation::default(), stop_after, parallel, events)
}

/// New places of a resumed run's data (`train --resume RUN --csv … --features …`), for a
/// cohort that was moved since the run started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relocation {
    /// The cohort CSV's new path.
    pub csv: Option<PathBuf>,
    /// The features directory's new path.
    pub features_dir: Option<PathBuf>,
}

/// [`resume_parallel`] with the cohort read from where `relocation` says (the rest of its
/// data source as recorded). The new places, made absolute, are written into the run's
/// `config.json` files (the run's and each started fold's) so that later resumes and
/// reports find them.
///
/// # Errors
///
/// As [`resume_parallel`]; [`RunFileError::Io`](crate::run::RunFileError::Io) naming a `config.json` that cannot be written.
pub fn resume_relocated(
    out: &Path,
    relocation: &Relocation,
    stop_after: Option<usize>,
    parallel: &Parallel<'_>,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<TrainSummary, Error> {
    let config = RunConfig::load(out)?;
    let (root, top, only) = match fold_of(out, &config)? {
        Some((parent, top, k)) => (parent, top, Some(k)),
        None => (out.to_path_buf(), config, None),
    };
    let mut data = top.data.clone().ok_or_else(|| RunError::NotARun {
        path: out.to_path_buf(),
        reason: "it records no training data (an imported model?)".into(),
    })?;
    let lock = if parallel.group.is_writer() {
        Some(RunLock::acquire(&root)?)
    } else {
        None
    };
    if relocation != &Relocation::default() {
        if let Some(csv) = &relocation.csv {
            data.csv = csv.clone();
        }
        if let Some(features) = &relocation.features_dir {
            data.features_dir = features.clone();
        }
        data.absolutize();
        if parallel.group.is_writer() {
            record_data(&root, top.folds, &data)?;
        }
    }
    let request = TrainRequest {
        data,
        columns: top.columns.clone(),
        model: ModelSpec::Preset(String::new()),
        tokenizer: None,
        settings: top.training.clone(),
        folds: top.folds,
        out: root,
        stop_after,
        force: false,
    };
    let resumed = Resumed {
        resume: true,
        lock,
        model: Some(top.model),
        only,
    };
    train_splits(&request, resumed, parallel, events)
}

/// Writes `data` into the `config.json` of the run `root` and of each of its `folds` that
/// has one.
fn record_data(root: &Path, folds: Option<usize>, data: &DataSource) -> Result<(), Error> {
    let mut dirs = vec![root.to_path_buf()];
    if let Some(n) = folds {
        dirs.extend(
            (0..n)
                .map(|k| root.join(format!("fold_{k}")))
                .filter(|d| is_run(d)),
        );
    }
    for dir in dirs {
        let mut config = RunConfig::load(&dir)?;
        config.data = Some(data.clone());
        config.save(&dir)?;
    }
    Ok(())
}

/// When `dir` is fold `k` of a cross-validation run (a `fold_k` folder inside a run whose
/// `config.json` records the folds): the run's folder, its configuration and `k`. Its split
/// can only be made again from the whole run's settings.
fn fold_of(dir: &Path, config: &RunConfig) -> Result<Option<(PathBuf, RunConfig, usize)>, Error> {
    if config.folds.is_some() {
        return Ok(None);
    }
    let Some(k) = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("fold_"))
        .and_then(|k| k.parse::<usize>().ok())
    else {
        return Ok(None);
    };
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !is_run(&parent) {
        return Ok(None);
    }
    let top = RunConfig::load(&parent)?;
    let Some(n) = top.folds else {
        return Ok(None);
    };
    let path = dir.join(files::CONFIG);
    if k >= n {
        return Err(RunError::NotARun {
            path: dir.to_path_buf(),
            reason: format!(
                "it is named as fold {k}, but its run has {n} folds (0 to {})",
                n - 1
            ),
        }
        .into());
    }
    for (field, same) in [
        ("training", top.training == config.training),
        ("model", top.model == config.model),
    ] {
        if !same {
            return Err(crate::data::DataError::bad_field(
                &path,
                field,
                format!(
                    "differs from that of its cross-validation run, {}; a fold trains as its run does",
                    parent.join(files::CONFIG).display()
                ),
            )
            .into());
        }
    }
    Ok(Some((parent, top, k)))
}
