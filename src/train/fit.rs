//! The training loop of one split: AdamW with warm-up and cosine decay, gradient
//! accumulation, validation every epoch, early stopping, the best and the last checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::Event;
use super::checkpoint::{self, LoopState};
use super::finite::{Place, likely_cause, poisoned};
use super::parallel::{Parallel, Reducer, shares};
use super::plan::{self, Prepared};
use super::schedule::learning_rate;
use crate::data::{
    BagBatcher, BagLoader, CohortColumns, CohortDataset, Normalization, Split, evaluation_bags,
    training_bags, write_split_csv,
};
use crate::eval::EpochRow;
use crate::eval::Metrics;
use crate::eval::plot;
use crate::eval::{
    Predictions, SurvivalEval, non_finite_patients, predict, task_metrics as metrics,
    with_intervals,
};
use crate::eval::{batch_loss, inverse_frequency};
use crate::model::{MedCrossViT, MedCrossViTConfig};
use crate::run::{DataSource, RunConfig, RunFileError, files};
use crate::run::{Error, RunError};
use crate::run::{Select, Task, TrainSettings};

/// One split to fit into one run folder.
#[derive(Debug, Clone)]
pub struct Fit<'a> {
    /// The cohort and outcomes.
    pub prepared: &'a Prepared,
    /// Training, validation (and test) slides.
    pub split: &'a Split,
    /// The model, with widths already filled from the data.
    pub model: MedCrossViTConfig,
    /// Training settings.
    pub settings: &'a TrainSettings,
    /// CSV column names.
    pub columns: &'a CohortColumns,
    /// Where the data came from.
    pub data: &'a DataSource,
    /// The run folder.
    pub out: PathBuf,
    /// Continue from the folder's last checkpoint.
    pub resume: bool,
    /// Stop after this many completed epochs, as if interrupted (for tests and demos).
    pub stop_after: Option<usize>,
    /// A label for progress messages (e.g. `fold 1 (2 of 5)`).
    pub label: String,
}

/// What a fit ended with.
#[derive(Debug, Clone)]
pub struct FitReport {
    /// The run folder.
    pub out: PathBuf,
    /// The best epoch (from 1), chosen on the validation metric.
    pub best_epoch: usize,
    /// The epoch whose weights the run keeps and reports (`settings.select`): the best or
    /// the last.
    pub epoch: usize,
    /// Validation metrics of the kept checkpoint.
    pub val: Metrics,
    /// Test metrics of the kept checkpoint, when the split has a test side.
    pub test: Option<Metrics>,
    /// One row per epoch.
    pub history: Vec<EpochRow>,
    /// Whether the run has finished (false when stopped by `stop_after`).
    pub finished: bool,
    /// The kept checkpoint's validation predictions and the targets (by patient) they are
    /// scored against, once the run has finished: the fold's out-of-fold predictions.
    pub out_of_fold: Option<(
        Predictions,
        Vec<crate::data::Target>,
        Option<crate::data::TimeBins>,
    )>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| RunFileError::io(path)(e).into()
}

/// Fits one split. See the module documentation.
///
/// Reproducible: the same settings, data and device give the same `metrics.csv`, and a run
/// resumed from a checkpoint ends where the uninterrupted run would have. Initial weights and
/// dropout come from Burn's device random generator, which the flex backend shares across the
/// process: fits running in parallel threads of one process interleave their draws and lose
/// this reproducibility (separate processes do not).
///
/// # Errors
///
/// Data, model, checkpoint and I/O errors, each naming what is at fault.
pub fn fit(
    job: Fit<'_>,
    device: &Device,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<FitReport, Error> {
    fit_parallel(job, &Parallel::single(device), events)
}

/// [`fit`] spread over the devices and processes of `parallel` (see
/// [`parallel`](super::parallel)): each global batch is shared out, the gradients are summed
/// into one optimizer step, validation is shared out and gathered. Only the writing process
/// (rank 0) writes the run folder; every process must see the same folder when resuming.
///
/// # Errors
///
/// As [`fit`]; a failure of the transport between processes.
pub fn fit_parallel(
    job: Fit<'_>,
    parallel: &Parallel<'_>,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<FitReport, Error> {
    let device = parallel.main();
    let group = parallel.group;
    let writer = group.is_writer();
    // Only the writing process reports progress.
    let mut silent = |_: Event<'_>| {};
    let events: &mut dyn FnMut(Event<'_>) = if writer { events } else { &mut silent };
    let settings = job.settings;
    let prepared = job.prepared;
    let cohort = prepared.cohort.clone();
    let out = job.out.clone();
    let checkpoint_folder = if job.resume {
        checkpoint::current(&out)?
    } else {
        None
    };
    let (targets, normalization, bins) = match &checkpoint_folder {
        Some(_) => {
            let (normalization, bins) = super::saved::saved(&super::saved::SavedJob {
                out: &job.out,
                settings: job.settings,
                model: &job.model,
                prepared: job.prepared,
            })?;
            let (targets, _) = plan::targets_with(prepared, job.split, settings, bins.clone())?;
            (targets, normalization, bins)
        }
        None => {
            let (targets, bins) = plan::targets(prepared, job.split, settings)?;
            let (normalization, scale) = plan::fit_normalization(prepared, job.split, settings)?;
            if let Some(scale) = scale {
                events(Event::Message(format!("{}: {scale}", job.label)));
                if let Some(warning) = scale.warning() {
                    events(Event::Message(format!("warning: {}: {warning}", job.label)));
                }
            }
            if writer {
                std::fs::create_dir_all(&out).map_err(io(&out))?;
                write_split_csv(&out.join(files::SPLITS_CSV), job.split, &prepared.patients)?;
                RunConfig {
                    model: job.model.clone(),
                    training: settings.clone(),
                    columns: job.columns.clone(),
                    data: Some(job.data.clone()),
                    survival_bins: bins.clone(),
                    folds: None,
                }
                .save(&out)?;
                normalization.save(out.join(files::NORMALIZATION))?;
                prepared.labels.save(out.join(files::LABELS))?;
                checkpoint::pause_point("files", 0);
            }
            (targets, normalization, bins)
        }
    };

    let devices: Vec<Device> = parallel
        .devices
        .iter()
        .map(|d| d.clone().autodiff())
        .collect();
    let autodiff = devices[0].clone();
    autodiff.seed(settings.seed);

    let mut model = job.model.init(&autodiff)?;
    if checkpoint_folder.is_none() {
        model.initialize_weights();
    }
    let (mut optimizer, watch) = crate::kernels::adamw::adamw_watched(settings.weight_decay as f32);
    let mut state = LoopState::default();
    if let Some(folder) = &checkpoint_folder {
        (optimizer, state) = checkpoint::load(folder, &mut model, optimizer)?;
        checkpoint::prune(folder);
        events(Event::Message(format!(
            "{}: resuming after epoch {} of {}",
            job.label, state.epochs_done, settings.epochs
        )));
    }

    super::parallel::check_same_weights(&model, group)?;
    let bag_settings = settings.bags;
    let patients = &prepared.patients;
    let sources =
        |slides: &[usize]| crate::eval::usable_sources(&cohort, patients, slides, settings);
    let train_sources = sources(&job.split.train);
    for (side, slides) in [
        ("training", &job.split.train),
        ("validation", &job.split.val),
        ("test", &job.split.test),
    ] {
        if let Some(line) = availability(prepared, slides, side) {
            events(Event::Message(format!("{}: {line}", job.label)));
        }
    }
    let first_bags = training_bags(&train_sources, &bag_settings, settings.seed, 0);
    let bags_per_epoch = first_bags.len();
    let train_base = CohortDataset::new(
        cohort.clone(),
        patients.clone(),
        first_bags,
        &normalization,
        targets.clone(),
    )?
    .with_modalities(settings.modalities);
    let val_dataset = Arc::new(
        CohortDataset::new(
            cohort.clone(),
            patients.clone(),
            evaluation_bags(&sources(&job.split.val), settings.bags.bag_size),
            &normalization,
            targets.clone(),
        )?
        .with_modalities(settings.modalities),
    );
    let batches = bags_per_epoch.div_ceil(settings.batch_size);
    let steps_per_epoch = batches.div_ceil(settings.grad_accumulation);
    let total_steps = steps_per_epoch * settings.epochs;
    let warmup = (settings.warmup_epochs * steps_per_epoch as f64).round() as usize;
    let class_weight_values = (settings.class_weights && settings.task == Task::Classification)
        .then(|| {
            let classes = train_base
                .bags()
                .iter()
                .filter_map(|b| targets[b.patient].class);
            inverse_frequency(classes, prepared.labels.len())
        });
    // On each device (none without class weights).
    let class_weights: Vec<Tensor<1>> = match &class_weight_values {
        Some(w) => devices
            .iter()
            .map(|d| Tensor::<1>::from_data(TensorData::new(w.clone(), [w.len()]), d))
            .collect(),
        None => Vec::new(),
    };
    events(Event::FitStart {
        label: &job.label,
        epochs: settings.epochs,
        batches,
        train_slides: job.split.train.len(),
        val_slides: job.split.val.len(),
        train_patients: patients.among(&job.split.train).len(),
        val_patients: patients.among(&job.split.val).len(),
        monitor: settings.monitor_column(),
        select: settings.select,
        patience: settings.patience,
        epochs_done: state.epochs_done,
    });

    let mut step = ShareStep {
        settings,
        devices: &devices,
        class_weights: &class_weights,
        reducer: parallel.reducer(),
        parallel,
    };
    let mut lr = 0.0;
    while !state.finished && state.epochs_done < settings.epochs {
        if job.stop_after.is_some_and(|n| state.epochs_done >= n) {
            break;
        }
        let epoch = state.epochs_done;
        autodiff.seed(crate::data::mix_seed(settings.seed, epoch as u64, 2));
        let bags = training_bags(&train_sources, &bag_settings, settings.seed, epoch as u64);
        let mut order: Vec<usize> = (0..bags.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(crate::data::mix_seed(
            settings.seed,
            epoch as u64,
            1,
        )));
        let dataset = Arc::new(train_base.with_bags(bags));
        // Every process draws the same global batches and reads only its share of each.
        let global: Vec<Vec<usize>> = order
            .chunks(settings.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        let mine: Vec<(usize, Vec<usize>)> = global
            .iter()
            .map(|batch| {
                let r = shares(batch.len(), group.size())[group.rank()].clone();
                (r.start, batch[r].to_vec())
            })
            .collect();
        let loader = BagLoader::with_batches(
            dataset.clone(),
            mine.iter().map(|(_, b)| b.clone()).collect(),
            settings.workers,
            4,
        );
        let mut accumulator = GradientsAccumulator::<MedCrossViT>::new();
        let mut pending = 0;
        let mut loss_sum = 0.0;
        let mut seen = 0usize;
        let start = Instant::now();
        for (b, items) in loader.enumerate() {
            let mut items = items?;
            if poisoned(epoch + 1, b + 1) {
                for item in &mut items {
                    item.expression.fill(f32::NAN);
                    item.features.fill(f32::NAN);
                }
            }
            let (offset, indices) = &mine[b];
            if settings.modality_dropout > 0.0 {
                drop_modalities(&mut items, settings, epoch, b, *offset);
            }
            let n = global[b].len();
            let scale = settings.grad_accumulation as f32;
            let last_of_step = pending + 1 == settings.grad_accumulation || b + 1 == batches;
            // What the batch's loss is divided by: its bags, or their class weights.
            let norm = |bags: &[usize]| -> f64 {
                match &class_weight_values {
                    Some(w) => bags
                        .iter()
                        .filter_map(|&i| targets[dataset.bags()[i].patient].class)
                        .map(|c| f64::from(w[c]))
                        .sum(),
                    None => bags.len() as f64,
                }
            };
            let batch_norm = norm(&global[b]);
            let loss = if !parallel.is_spread()
                && settings.gradient_checkpointing
                && settings.grad_accumulation == 1
            {
                // One device, one process: each layer is updated as soon as its gradients
                // are known.
                let batch = BagBatcher.batch(items, &autodiff);
                let loss_of = |logits| {
                    batch_loss(logits, &batch, settings, class_weights.first())
                        .expect("training bags all have targets")
                        / scale
                };
                lr = learning_rate(state.step, total_steps, warmup, settings.lr);
                let step_seed = crate::data::mix_seed(settings.seed, state.step as u64, 3);
                let step =
                    model.backward_recomputed(batch.input(), step_seed, loss_of, |m, g| {
                        optimizer.step(lr, m, g)
                    })?;
                model = step.model;
                step.loss.into_scalar::<f32>() as f64 * f64::from(scale)
            } else {
                // The shares of this process's devices; each share's loss is its part of the
                // batch's, so the shares' gradients sum to the batch's.
                let mut rest = items;
                let mut share_start = 0;
                let mut device_shares = Vec::with_capacity(devices.len());
                for range in shares(indices.len(), devices.len()) {
                    let share: Vec<_> = rest.drain(..range.len()).collect();
                    let part = norm(&indices[share_start..share_start + range.len()]) / batch_norm;
                    share_start += range.len();
                    device_shares.push((share, part));
                }
                let seed = crate::data::mix_seed(settings.seed, (epoch * batches + b) as u64, 4);
                let (grads, loss) = step.gradients(&model, device_shares, scale, seed)?;
                accumulator.accumulate(&model, grads);
                loss
            };
            let place = Place {
                label: &job.label,
                epoch: epoch + 1,
                batch: Some((b + 1, batches)),
                out: &out,
                epochs_done: state.epochs_done,
            };
            let cause = || {
                likely_cause(
                    &dataset,
                    &global[b],
                    &normalization,
                    cohort.table(),
                    settings,
                )
            };
            if !loss.is_finite() {
                return Err(place.error("the training loss", loss.to_string(), cause()));
            }
            loss_sum += loss * n as f64;
            seen += n;
            pending += 1;
            if last_of_step {
                if parallel.is_spread()
                    || !(settings.gradient_checkpointing && settings.grad_accumulation == 1)
                {
                    lr = learning_rate(state.step, total_steps, warmup, settings.lr);
                    model = optimizer.step(lr, model, accumulator.grads());
                }
                if watch.take() {
                    let what = "a gradient of the optimizer step";
                    return Err(place.error(what, "NaN or infinite".into(), cause()));
                }
                state.step += 1;
                pending = 0;
            }
            if group.is_writer() {
                events(Event::Batch {
                    epoch: epoch + 1,
                    batch: b + 1,
                    batches,
                    loss: loss_sum / seen as f64,
                    bags_per_sec: seen as f64 / start.elapsed().as_secs_f64().max(1e-9),
                });
            }
        }

        let inference = model.valid();
        let predictions =
            super::validate::predict_parallel(&inference, val_dataset.clone(), settings, parallel)?;
        let place = Place {
            label: &job.label,
            epoch: epoch + 1,
            batch: None,
            out: &out,
            epochs_done: state.epochs_done,
        };
        check_validation(&predictions, &place, &val_dataset, &normalization, settings)?;
        let val = metrics(&predictions, &targets, settings.task, prepared.labels.len())?;
        let row = EpochRow {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            val,
        };
        let score = score(&row.val, settings);
        let loss = if row.val.loss.is_finite() {
            row.val.loss
        } else {
            f64::INFINITY
        };
        // A better metric wins; an equal one (AUC saturates on small cohorts) wins with a
        // lower validation loss.
        let improved = state
            .best
            .is_none_or(|(_, best, best_loss)| score > best || (score == best && loss < best_loss));
        if improved {
            state.best = Some((epoch + 1, score, loss));
            state.bad_epochs = 0;
        } else {
            state.bad_epochs += 1;
        }
        // model.bpk: the best epoch's weights, or every epoch's with `select last`.
        if writer && (improved || settings.select == Select::Last) {
            checkpoint::save_best(&inference, &out.join(crate::model::WEIGHTS_FILE))?;
            checkpoint::pause_point("best", epoch + 1);
        }
        state.history.push(row);
        state.epochs_done = epoch + 1;
        state.finished = state.epochs_done == settings.epochs
            || (settings.patience > 0 && state.bad_epochs >= settings.patience);
        if writer {
            write_metrics_csv(&out, &state.history, settings)?;
            plot::curves(&out, &state.history, settings)?;
            checkpoint::save(&out, &model, &optimizer, &state)?;
            events(Event::Epoch {
                label: &job.label,
                row: state.history.last().expect("just pushed"),
                best: improved,
            });
        }
    }

    let (best_epoch, _, _) = state.best.ok_or_else(|| RunError::Checkpoint {
        path: out.clone(),
        message: "no epoch has completed".into(),
    })?;
    let kept = match settings.select {
        Select::Best => best_epoch,
        Select::Last => state.epochs_done,
    };
    let mut val = state.history[kept - 1].val.clone();
    let mut test = None;
    let mut out_of_fold = None;
    // The final evaluation of the kept checkpoint and its files: the writing process's.
    if state.finished && writer {
        let mut best = job.model.init(device)?;
        best.load_weights(out.join(crate::model::WEIGHTS_FILE))?;
        let predictions = predict(&best, val_dataset.clone(), settings, device, false, None)?;
        let classes = prepared.labels.len();
        // The weighted survival metrics estimate censoring on the training patients.
        let training = prepared.patients.among(&job.split.train);
        let weighted = |n: usize| {
            bins.as_ref()
                .map(|b| SurvivalEval::new(b, n, &targets, training.iter().copied(), "training"))
        };
        let w = weighted(predictions.patients.len());
        val = with_intervals(
            val,
            &predictions.patients,
            &targets,
            settings,
            classes,
            w.as_ref(),
        );
        crate::run::save_json(&val, &out.join(files::METRICS_JSON))?;
        match settings.task {
            Task::Survival => crate::eval::km_png(
                &out.join(files::KM_PNG),
                &predictions.patients,
                &targets,
                settings,
                "validation",
            )?,
            Task::Classification => crate::eval::classification_png(
                &out,
                &predictions.patients,
                &targets,
                &prepared.labels.classes,
                &val,
                "validation",
            )?,
        }
        out_of_fold = Some((predictions, targets.clone(), bins.clone()));
        if !job.split.test.is_empty() {
            let test_dataset = Arc::new(
                CohortDataset::new(
                    cohort.clone(),
                    patients.clone(),
                    evaluation_bags(&sources(&job.split.test), settings.bags.bag_size),
                    &normalization,
                    targets.clone(),
                )?
                .with_modalities(settings.modalities),
            );
            let predictions = predict(&best, test_dataset, settings, device, false, None)?;
            let m = metrics(&predictions, &targets, settings.task, prepared.labels.len())?;
            let w = weighted(predictions.patients.len());
            let m = with_intervals(
                m,
                &predictions.patients,
                &targets,
                settings,
                classes,
                w.as_ref(),
            );
            crate::run::save_json(&m, &out.join(files::TEST_METRICS_JSON))?;
            test = Some(m);
        }
    }
    Ok(FitReport {
        out,
        best_epoch,
        epoch: kept,
        val,
        test,
        history: state.history,
        finished: state.finished,
        out_of_fold,
    })
}

/// Stops training when the validation `predictions` or their loss are not finite, naming the
/// patients and the likely cause from their inputs.
fn check_validation(
    predictions: &Predictions,
    place: &Place<'_>,
    dataset: &CohortDataset,
    normalization: &Normalization,
    settings: &TrainSettings,
) -> Result<(), Error> {
    let bad = non_finite_patients(&predictions.patients);
    let loss = predictions.loss.unwrap_or(0.0);
    if bad.is_empty() && loss.is_finite() {
        return Ok(());
    }
    let patients: std::collections::HashSet<usize> = if bad.is_empty() {
        predictions.patients.iter().map(|p| p.patient).collect()
    } else {
        bad.iter()
            .map(|&i| predictions.patients[i].patient)
            .collect()
    };
    let bags: Vec<usize> = (0..dataset.bags().len())
        .filter(|&i| patients.contains(&dataset.bags()[i].patient))
        .collect();
    let cause = likely_cause(
        dataset,
        &bags,
        normalization,
        dataset.cohort().table(),
        settings,
    );
    Err(if bad.is_empty() {
        place.error("the validation loss", loss.to_string(), cause)
    } else {
        let first = dataset.patients().id(predictions.patients[bad[0]].patient);
        let value = format!(
            "{} of {} patients, first {first}",
            bad.len(),
            predictions.patients.len()
        );
        place.error("a validation prediction", value, cause)
    })
}

/// One step's gradients when a batch is shared out: over this process's devices, then over
/// the processes (see [`parallel`](super::parallel)).
struct ShareStep<'a> {
    settings: &'a TrainSettings,
    /// This process's devices, with autodiff; the first holds the model.
    devices: &'a [Device],
    /// The class weights on each device (empty without).
    class_weights: &'a [Tensor<1>],
    reducer: Box<dyn Reducer + 'a>,
    parallel: &'a Parallel<'a>,
}

impl ShareStep<'_> {
    /// The gradients of a batch, summed over every device of every process, and the batch's
    /// loss: `shares[d]` are device `d`'s bags with their part of the batch's loss
    /// normalizer; each share's loss is weighted by its part and divided by `scale` (gradient
    /// accumulation). `seed` draws the dropout of a recomputed pass.
    fn gradients(
        &mut self,
        model: &MedCrossViT,
        shares: Vec<(Vec<crate::data::BagItem>, f64)>,
        scale: f32,
        seed: u64,
    ) -> Result<(GradientsParams, f64), Error> {
        let settings = self.settings;
        let mut parts = Vec::with_capacity(shares.len());
        let mut local_loss = 0.0;
        for (d, (share, part)) in shares.into_iter().enumerate() {
            if share.is_empty() {
                continue;
            }
            let device = &self.devices[d];
            let replica = if d == 0 {
                model.clone()
            } else {
                model.clone().fork(device)
            };
            let batch = BagBatcher.batch(share, device);
            let loss_of = |logits| {
                batch_loss(logits, &batch, settings, self.class_weights.get(d))
                    .expect("training bags all have targets")
                    * part as f32
                    / scale
            };
            let (grads, loss) = if !settings.gradient_checkpointing {
                let loss = loss_of(replica.forward(batch.input())?.logits);
                (GradientsParams::from_grads(loss.backward(), &replica), loss)
            } else {
                let mut share_grads = GradientsAccumulator::<MedCrossViT>::new();
                let step = replica.backward_recomputed(batch.input(), seed, loss_of, |m, g| {
                    share_grads.accumulate(&m, g);
                    m
                })?;
                (share_grads.grads(), step.loss)
            };
            parts.push(grads);
            local_loss += loss.into_scalar::<f32>() as f64 * f64::from(scale);
        }
        let grads = if self.parallel.is_spread() {
            self.reducer.reduce(parts, model)?
        } else {
            parts.pop().unwrap_or_default()
        };
        let mut loss = [local_loss];
        self.parallel.group.sum(&mut loss)?;
        Ok((grads, loss[0]))
    }
}

/// Patients of `slides` by the modalities they have (`None` when all have both).
fn availability(prepared: &Prepared, slides: &[usize], side: &str) -> Option<String> {
    let table = prepared.cohort.table();
    let mut counts = [0usize; 3];
    for p in prepared.patients.among(slides) {
        let wsi = prepared
            .patients
            .slides(p)
            .iter()
            .any(|&s| prepared.cohort.has_wsi(s));
        let rna = prepared.patients.has_rna(table, p);
        counts[match (wsi, rna) {
            (true, true) => 0,
            (true, false) => 1,
            _ => 2,
        }] += 1;
    }
    (counts[1] + counts[2] > 0).then(|| {
        format!(
            "{side} patients: {} with both modalities, {} slides only, {} RNA only",
            counts[0], counts[1], counts[2]
        )
    })
}

/// Modality dropout: each complete item of the batch loses its tiles with probability P/2,
/// else its expression with probability P/2 (never both), reproducibly from the seed, epoch
/// and batch.
fn drop_modalities(
    items: &mut [crate::data::BagItem],
    settings: &TrainSettings,
    epoch: usize,
    batch: usize,
    offset: usize,
) {
    use rand::Rng;
    let p = settings.modality_dropout;
    let mut rng = ChaCha8Rng::seed_from_u64(crate::data::mix_seed(
        settings.seed,
        epoch as u64,
        0x6d6f_6400 + batch as u64,
    ));
    // The draws of the batch's bags before this share (another process's).
    for _ in 0..offset {
        let _: f64 = rng.random();
    }
    for item in items.iter_mut() {
        let u: f64 = rng.random();
        if !(item.wsi && item.rna) {
            continue;
        }
        if u < p / 2.0 {
            item.wsi = false;
            item.features.fill(0.0);
        } else if u < p {
            item.rna = false;
            item.expression.fill(0.0);
        }
    }
}

/// The monitored metric (higher is better); the negative loss when it is undefined.
fn score(m: &Metrics, settings: &TrainSettings) -> f64 {
    m.scalar(settings.monitor())
        .filter(|v| v.is_finite())
        .unwrap_or(-m.loss)
}

fn write_metrics_csv(
    out: &Path,
    history: &[EpochRow],
    settings: &TrainSettings,
) -> Result<(), Error> {
    let names: Vec<&str> = match settings.task {
        Task::Classification => vec!["loss", "accuracy", "balanced_accuracy", "auc"],
        Task::Survival => vec!["loss", "c_index"],
    };
    let mut text = String::from("epoch,lr,train_loss");
    for n in &names {
        text.push_str(&format!(",val_{n}"));
    }
    text.push('\n');
    for row in history {
        text.push_str(&format!(
            "{},{:.6e},{:.6}",
            row.epoch, row.lr, row.train_loss
        ));
        for n in &names {
            match row.val.scalar(n) {
                Some(v) => text.push_str(&format!(",{v:.6}")),
                None => text.push(','),
            }
        }
        text.push('\n');
    }
    let path = out.join(files::METRICS_CSV);
    crate::util::atomic::write(&path, text.as_bytes())
        .map_err(|e| crate::model::PersistError::io(&path)(e).into())
}
