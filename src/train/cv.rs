//! A training run, new or resumed: the cohort read and checked, the model resolved against
//! it, the splits (one, or the cross-validation folds) made, the run folder locked, each
//! split fitted, and a cross-validation's pooled out-of-fold predictions written.

use super::parallel::Parallel;
use super::plan::{self, Prepared, prepare, splits};
use super::pooled::OutOfFold;
use super::prepare::Fit;
use super::trainer::fit_parallel;
use super::{Event, FoldResult, TrainRequest, TrainSummary, is_run};
use crate::data::{CohortColumns, DataError, Modalities, Split};
use crate::eval::Metrics;
use crate::model::MedCrossViTConfig;
use crate::run::{
    Error, RunConfig, RunError, RunFileError, RunLock, Task, TokenizerSpec, TrainSettings,
    apply_tokenizer, check_model, files, resolve_model, save_json,
};

/// How a run is started: new, or resumed with its folder's lock (the writing process's) and
/// `model` configuration, and `only` a fold when one fold is resumed.
#[derive(Debug, Default)]
pub(super) struct Resumed {
    /// Whether the run is resumed.
    pub resume: bool,
    /// The folder's lock, already taken.
    pub lock: Option<RunLock>,
    /// The run's model configuration.
    pub model: Option<MedCrossViTConfig>,
    /// The one fold to continue.
    pub only: Option<usize>,
}

/// Trains `request`, new or `resumed`. A new run takes its lock once the data has been read,
/// so that bad data leaves no folder behind.
pub(super) fn train_splits(
    request: &TrainRequest,
    resumed: Resumed,
    parallel: &Parallel<'_>,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<TrainSummary, Error> {
    let writer = parallel.group.is_writer();
    let mut silent = |_: Event<'_>| {};
    let events: &mut dyn FnMut(Event<'_>) = if writer { events } else { &mut silent };
    let settings = &request.settings;
    let prepared = prepare(&request.data, &request.columns, settings)?;
    describe(&prepared, settings, events);
    // The columns as read: an automatic gene rule or column name is written out, so that the
    // folder reads later cohorts the same way.
    let columns = prepared.cohort.table().columns().clone();
    let genes = gene_count(request, &prepared)?;
    let model = match resumed.model {
        Some(m) => m,
        None => resolve(request, &prepared, genes, events)?,
    };
    let prepared = fit_to_model(prepared, &model, genes, settings)?;
    let folds = match (&settings.splits_dir, request.folds) {
        (Some(dir), None) => Some(crate::data::split_files(dir)?.len()),
        (_, folds) => folds,
    };
    let splits = splits(&prepared, settings, folds, &mut |w| {
        events(Event::Message(w));
    })?;
    if let Some(split) = splits.first() {
        estimate_cost(&plan::cost_of(&prepared, split, &model, settings), events);
    }
    let _lock = match resumed.lock {
        Some(lock) => Some(lock),
        None if resumed.resume || !writer => None,
        None => Some(lock_new_run(request)?),
    };
    if folds.is_some() && !resumed.resume && writer {
        RunConfig {
            model: model.clone(),
            training: settings.clone(),
            columns: columns.clone(),
            data: Some(request.data.clone()),
            survival_bins: None,
            folds,
        }
        .save(&request.out)?;
    }
    let run = Run {
        request,
        prepared: &prepared,
        model: &model,
        columns: &columns,
        folds,
        resume: resumed.resume,
    };
    run.fit(&splits, resumed.only, parallel, events)
}

/// Reports what was read: the gene columns, the patients, the slides, those skipped.
fn describe(prepared: &Prepared, settings: &TrainSettings, events: &mut dyn FnMut(Event<'_>)) {
    let cohort = &prepared.cohort;
    let table = cohort.table();
    // The count `check` reports too.
    let (slides, patients) = cohort.counts();
    events(Event::Message(format!(
        "{} gene column(s) by {}; {patients} patient(s), {slides} slide(s), unit {}",
        table.genes().len(),
        table.gene_note(),
        settings.unit.name()
    )));
    if !cohort.skipped().is_empty() {
        events(Event::Message(format!(
            "skipped {} slide(s) whose tile file is missing",
            cohort.skipped().len()
        )));
    }
}

/// The genes the model reads: the top-K selection, all the cohort's gene columns, or the one
/// placeholder of a run on tiles alone; checked against the cohort and the tokenizer.
fn gene_count(request: &TrainRequest, prepared: &Prepared) -> Result<usize, Error> {
    let settings = &request.settings;
    let table = prepared.cohort.table();
    let wsi_only = settings.modalities == Modalities::Wsi;
    let genes = match settings.top_genes {
        // Tiles alone: the RNA branch takes one placeholder gene, always missing.
        None if wsi_only => plan::PLACEHOLDER_GENES,
        top => top.unwrap_or(table.genes().len()),
    };
    if settings.top_genes.is_some() && wsi_only {
        return Err(DataError::Setting {
            setting: "top_genes",
            message: "--modalities wsi reads no expression: drop --top-genes".into(),
        }
        .into());
    }
    if genes > table.genes().len() && !wsi_only {
        return Err(DataError::Setting {
            setting: "top_genes",
            message: format!(
                "{genes} genes asked for, but {} has {} gene columns",
                table.path().display(),
                table.genes().len()
            ),
        }
        .into());
    }
    if settings.top_genes.is_some() && matches!(request.tokenizer, Some(TokenizerSpec::Pathways(_)))
    {
        return Err(pathways_with_top_genes().into());
    }
    Ok(genes)
}

/// The model of a new run: the request's, with its widths from the data (no tile width for
/// expression alone: see [`resolve_model`]) and its gene tokenizer, checked.
fn resolve(
    request: &TrainRequest,
    prepared: &Prepared,
    genes: usize,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<MedCrossViTConfig, Error> {
    let settings = &request.settings;
    let table = prepared.cohort.table();
    let mut model = resolve_model(
        &request.model,
        prepared.cohort.feature_dim(),
        genes,
        prepared.labels.len(),
        settings.bags.bag_size,
    )?;
    let wsi_only = settings.modalities == Modalities::Wsi;
    if let Some(spec) = request.tokenizer.as_ref().filter(|_| !wsi_only) {
        let unknown = apply_tokenizer(&mut model, spec, &table.gene_symbols())?;
        if !unknown.is_empty() {
            let shown: Vec<&str> = unknown.iter().take(10).map(String::as_str).collect();
            events(Event::Message(format!(
                "{} signature gene(s) are not in the cohort and are left out: {}{}",
                unknown.len(),
                shown.join(", "),
                if unknown.len() > 10 { ", …" } else { "" }
            )));
        }
    }
    check_model(&model, settings.bags.bag_size)?;
    Ok(model)
}

/// The cohort with `model`'s tile width, after checking that the model reads what the cohort
/// has: its tile width, `genes` genes, and no pathways tokenizer with a top-K selection.
fn fit_to_model(
    prepared: Prepared,
    model: &MedCrossViTConfig,
    genes: usize,
    settings: &TrainSettings,
) -> Result<Prepared, Error> {
    if settings.top_genes.is_some()
        && matches!(
            model.rna_tokenizer,
            crate::model::RnaTokenizer::Pathways { .. }
        )
    {
        return Err(pathways_with_top_genes().into());
    }
    let prepared = prepared.with_feature_dim(model.wsi_dim);
    prepared.cohort.check_feature_dim(model.wsi_dim)?;
    if model.rna_num_genes != genes {
        return Err(DataError::GeneCount {
            path: prepared.cohort.table().path().to_path_buf(),
            expected: model.rna_num_genes,
            got: genes,
        }
        .into());
    }
    Ok(prepared)
}

/// Takes the lock of a new run's folder (made if need be).
///
/// # Errors
///
/// [`RunError::RunExists`] when another process has started the run since `train` first
/// looked; the errors of [`RunLock::acquire`].
fn lock_new_run(request: &TrainRequest) -> Result<RunLock, Error> {
    std::fs::create_dir_all(&request.out).map_err(RunFileError::io(&request.out))?;
    let lock = RunLock::acquire(&request.out)?;
    // Another process may have started the run since `train` first looked.
    if is_run(&request.out) {
        return Err(RunError::RunExists {
            path: request.out.clone(),
        }
        .into());
    }
    Ok(lock)
}

/// What every split of a run is fitted with.
struct Run<'a> {
    /// The request.
    request: &'a TrainRequest,
    /// The cohort, with the model's tile width.
    prepared: &'a Prepared,
    /// The model.
    model: &'a MedCrossViTConfig,
    /// The columns as read.
    columns: &'a CohortColumns,
    /// Cross-validation folds (`None` for a single split).
    folds: Option<usize>,
    /// Whether the run is resumed.
    resume: bool,
}

impl Run<'_> {
    /// Fits each of `splits` (`only` one, when given) in its folder, until one stops
    /// unfinished; then writes a finished cross-validation's pooled results.
    fn fit(
        &self,
        splits: &[Split],
        only: Option<usize>,
        parallel: &Parallel<'_>,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<TrainSummary, Error> {
        let settings = &self.request.settings;
        let mut results = Vec::new();
        let mut out_of_fold = OutOfFold::default();
        let mut finished = true;
        for (k, split) in splits.iter().enumerate() {
            if only.is_some_and(|o| o != k) {
                continue;
            }
            let report = fit_parallel(self.fit_of(k, split), parallel, events)?;
            finished &= report.finished;
            if let Some((predictions, targets, bins)) = &report.out_of_fold {
                out_of_fold.add(k, report.epoch, predictions, targets, bins.clone());
            }
            let row = |epoch: usize| report.history[epoch - 1].val.clone();
            results.push(FoldResult {
                fold: k,
                checkpoint: settings.select,
                epoch: report.epoch,
                best_epoch: report.best_epoch,
                last_epoch: report.history.len(),
                best: row(report.best_epoch),
                last: row(report.history.len()),
                out: report.out,
                metrics: report.val,
                test: report.test,
            });
            if !finished {
                break;
            }
        }
        let mut summary = TrainSummary::of(results, settings, finished);
        if self.folds.is_some() && finished && only.is_none() && parallel.group.is_writer() {
            summary.pooled = self.write_pooled(&out_of_fold)?;
            save_json(&summary, &self.request.out.join(files::CV_JSON))?;
        }
        Ok(summary)
    }

    /// The fit of split `k`: in `fold_K` for cross-validation, else in the run folder.
    fn fit_of<'s>(&'s self, k: usize, split: &'s Split) -> Fit<'s> {
        let request = self.request;
        let (out, label) = match self.folds {
            Some(n) => (
                request.out.join(format!("fold_{k}")),
                format!("fold {k} ({} of {n})", k + 1),
            ),
            None => (request.out.clone(), "training".to_string()),
        };
        // A fold's curves in `fold_K` beside the others', so TensorBoard shows each as a run.
        let tensorboard = std::iter::once(request.out.join(files::TENSORBOARD))
            .chain(request.settings.tensorboard.clone())
            .map(|dir| match self.folds {
                Some(_) => dir.join(format!("fold_{k}")),
                None => dir,
            })
            .collect();
        Fit {
            prepared: self.prepared,
            split,
            model: self.model.clone(),
            settings: &request.settings,
            columns: self.columns,
            data: &request.data,
            resume: self.resume && is_run(&out),
            out,
            stop_after: request.stop_after,
            label,
            tensorboard,
        }
    }

    /// Writes the folds' pooled out-of-fold predictions, their plots, and returns their
    /// metrics (`None` when there are none).
    fn write_pooled(&self, out_of_fold: &OutOfFold) -> Result<Option<Metrics>, Error> {
        if out_of_fold.is_empty() {
            return Ok(None);
        }
        let (settings, out) = (&self.request.settings, &self.request.out);
        let prepared = self.prepared;
        out_of_fold.write_csv(&out.join(files::CV_PREDICTIONS_CSV), prepared, settings)?;
        let pooled = out_of_fold.metrics(settings, prepared.labels.len())?;
        match settings.task {
            Task::Survival => out_of_fold.km_png(&out.join(files::KM_PNG), settings)?,
            Task::Classification => {
                out_of_fold.classification_png(out, &prepared.labels.classes, &pooled)?
            }
        }
        Ok(Some(pooled))
    }
}

/// Reports `cost` (for the CPU: [`CPU_GFLOPS_PER_THREAD`](crate::model::cost::CPU_GFLOPS_PER_THREAD)
/// per available thread), and warns when attention over the genes will not fit in memory or
/// will be slow.
fn estimate_cost(cost: &crate::model::cost::TrainingCost, events: &mut dyn FnMut(Event<'_>)) {
    use crate::model::cost::{CPU_GFLOPS_PER_THREAD, total_memory};
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let gflops = CPU_GFLOPS_PER_THREAD * threads as f64;
    events(Event::Message(format!(
        "{} on {threads} CPU thread(s)",
        cost.describe(gflops)
    )));
    if let Some(warning) = cost.warning(total_memory(), gflops) {
        events(Event::Message(format!("warning: {warning}")));
    }
}

/// The pathways tokenizer indexes the cohort's gene columns; a top-K selection differs from
/// fold to fold.
fn pathways_with_top_genes() -> DataError {
    DataError::Setting {
        setting: "top_genes",
        message: "the pathways tokenizer groups the cohort's genes by name; it cannot take a \
                  gene selection that differs from fold to fold (drop --top-genes)"
            .into(),
    }
}
