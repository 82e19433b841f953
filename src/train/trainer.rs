//! The training loop of one split: AdamW with warm-up and cosine decay, gradient
//! accumulation, validation every epoch, early stopping, the best and the last checkpoint.
//!
//! A [`Trainer`] is made by the *prepare* step ([`prepare`](super::prepare): data, files,
//! model, optimizer); each epoch then reads as its steps:
//!
//! 1. *draw* the epoch's bags and global batches, the same on every process;
//! 2. for each batch, *share/step* and *reduce* ([`step`](super::step)): the gradients of its
//!    shares on every device of every process, summed by the run's reducer (one device,
//!    several devices and MPI processes take this one path; only the reducer differs);
//! 3. the *optimizer* step, every `grad_accumulation` batches;
//! 4. *validate*, and *select* the best epoch;
//! 5. *checkpoint*: `model.bpk`, `metrics.csv`, the curves and the resumable checkpoint;
//! 6. *report* the epoch.
//!
//! The fit then *finishes* ([`finish`](super::finish)) with the kept checkpoint's evaluation.

use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, ModuleOptimizer};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::Event;
use super::checkpoint::{self, LoopState};
use super::finish::{FitReport, finish};
use super::finite::{Place, check_validation, likely_cause};
use super::parallel::{Parallel, check_same_weights, shares};
use super::prepare::{self, Fit, FitData};
use super::schedule::Schedule;
use super::step::{Replicas, batch_items};
use super::tensorboard;
use super::validate::predict_parallel;
use crate::data::{BagBatcher, BagItem, BagLoader, CohortDataset, mix_seed, training_bags};
use crate::eval::{EpochRow, Metrics, batch_loss, plot, task_metrics as metrics};
use crate::kernels::adamw::GradientWatch;
use crate::model::MedCrossViT;
use crate::run::{Error, RunError, Select, Task, TrainSettings, files};

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
    let writer = parallel.group.is_writer();
    // Only the writing process reports progress.
    let mut silent = |_: Event<'_>| {};
    let events: &mut dyn FnMut(Event<'_>) = if writer { events } else { &mut silent };
    let (mut trainer, mut model) = Trainer::prepare(&job, parallel, events)?;
    while trainer.wants_epoch() {
        trainer.check_stop()?;
        model = trainer.epoch(model, events)?;
    }
    finish(&job, &trainer.data, trainer.state, parallel.main(), writer)
}

/// The state of a fit between its steps (the model itself goes through each epoch).
struct Trainer<'a> {
    /// The fit.
    job: &'a Fit<'a>,
    /// Its devices and processes.
    parallel: &'a Parallel<'a>,
    /// What it trains and validates on.
    data: FitData,
    /// Batches, steps and learning rates.
    schedule: Schedule,
    /// Where the gradients are computed, and their reducer.
    replicas: Replicas<'a>,
    /// AdamW.
    optimizer: ModuleOptimizer,
    /// Whether a step met a gradient that is not finite.
    watch: GradientWatch,
    /// Epochs done, steps taken, the best epoch, the history.
    state: LoopState,
    /// The learning rate of the last step.
    lr: f64,
    /// One device, one process, recomputation without accumulation: each layer is updated
    /// as soon as its gradients are known, inside the backward pass.
    in_backward: bool,
}

/// An epoch's training bags and global batches.
struct Drawn {
    /// The training dataset with the epoch's bags.
    dataset: Arc<CohortDataset>,
    /// The global batches (indices into the bags), the same on every process.
    global: Vec<Vec<usize>>,
    /// This process's share of each global batch: where it starts, and its bags.
    mine: Vec<(usize, Vec<usize>)>,
}

impl<'a> Trainer<'a> {
    /// Prepare: the fit's data and files, the model (initialized or resumed) on the main
    /// device, its optimizer; reports the start of the fit.
    fn prepare(
        job: &'a Fit<'a>,
        parallel: &'a Parallel<'a>,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(Self, MedCrossViT), Error> {
        let settings = job.settings;
        let folder = prepare::checkpoint_folder(job)?;
        let writer = parallel.group.is_writer();
        let inputs = prepare::inputs(job, folder.is_some(), writer, events)?;
        let mut replicas = Replicas::new(settings, parallel);
        replicas.main().seed(settings.seed);
        let start = prepare::start(job, replicas.main(), folder.as_deref(), events)?;
        check_same_weights(&start.model, parallel.group)?;
        if writer && start.state.epochs_done == 0 {
            for dir in &job.tensorboard {
                tensorboard::check_fresh(dir)?;
            }
        }
        let data = prepare::datasets(job, inputs, events)?;
        replicas.weigh_classes(data.class_weights.as_deref());
        let trainer = Self {
            job,
            parallel,
            schedule: Schedule::new(data.train_base.bags().len(), settings),
            data,
            replicas,
            optimizer: start.optimizer,
            watch: start.watch,
            state: start.state,
            lr: 0.0,
            in_backward: !parallel.is_spread()
                && settings.gradient_checkpointing
                && settings.grad_accumulation == 1,
        };
        trainer.report_start(events);
        Ok((trainer, start.model))
    }

    /// Reports the start of the fit.
    fn report_start(&self, events: &mut dyn FnMut(Event<'_>)) {
        let (job, settings) = (self.job, self.job.settings);
        let patients = &job.prepared.patients;
        events(Event::FitStart {
            label: &job.label,
            epochs: settings.epochs,
            batches: self.schedule.batches,
            train_slides: job.split.train.len(),
            val_slides: job.split.val.len(),
            train_patients: patients.among(&job.split.train).len(),
            val_patients: patients.among(&job.split.val).len(),
            monitor: settings.monitor_column(),
            select: settings.select,
            patience: settings.patience,
            epochs_done: self.state.epochs_done,
        });
    }

    /// Whether another epoch is due: the fit has not finished, nor reached `stop_after`.
    fn wants_epoch(&self) -> bool {
        let (state, job) = (&self.state, self.job);
        !state.finished
            && state.epochs_done < job.settings.epochs
            && job.stop_after.is_none_or(|n| state.epochs_done < n)
    }

    /// A stop asked for by the caller ([`progress::StopRequest`](crate::progress::StopRequest)),
    /// as an error that leaves the epoch in progress undone: the folder keeps the checkpoint
    /// of the last complete epoch. One process only: the ranks of a group stop together or
    /// not at all.
    fn check_stop(&self) -> Result<(), Error> {
        if self.parallel.group.size() == 1 && crate::progress::stop_requested() {
            return Err(RunError::Stopped {
                path: self.job.out.clone(),
                epochs_done: self.state.epochs_done,
            }
            .into());
        }
        Ok(())
    }

    /// One epoch, its steps in order; returns the model it leaves.
    fn epoch(
        &mut self,
        model: MedCrossViT,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<MedCrossViT, Error> {
        let epoch = self.state.epochs_done;
        let drawn = self.draw(epoch);
        let (model, train_loss) = self.train(model, &drawn, events)?;
        let inference = model.valid();
        let row = self.validate(&inference, epoch, train_loss)?;
        let improved = self.select(&row.val);
        self.checkpoint(&model, &inference, row, improved)?;
        self.report(improved, events);
        Ok(model)
    }

    /// Draw: the epoch's bags in a shuffled order, cut into global batches, and this
    /// process's share of each; seeds the device generator for the epoch's dropout.
    fn draw(&self, epoch: usize) -> Drawn {
        let settings = self.job.settings;
        self.replicas
            .main()
            .seed(mix_seed(settings.seed, epoch as u64, 2));
        let data = &self.data;
        let bags = training_bags(
            &data.train_sources,
            &settings.bags,
            settings.seed,
            epoch as u64,
        );
        let mut order: Vec<usize> = (0..bags.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(
            settings.seed,
            epoch as u64,
            1,
        )));
        let dataset = Arc::new(data.train_base.with_bags(bags));
        // Every process draws the same global batches and reads only its share of each.
        let global: Vec<Vec<usize>> = order
            .chunks(settings.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        let group = self.parallel.group;
        let mine = global
            .iter()
            .map(|batch| {
                let r = shares(batch.len(), group.size())[group.rank()].clone();
                (r.start, batch[r].to_vec())
            })
            .collect();
        Drawn {
            dataset,
            global,
            mine,
        }
    }

    /// The epoch's batches: each one's gradient step, an optimizer step every
    /// `grad_accumulation` batches and after the last; returns the model and the mean
    /// training loss.
    fn train(
        &mut self,
        mut model: MedCrossViT,
        drawn: &Drawn,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(MedCrossViT, f64), Error> {
        let settings = self.job.settings;
        let epoch = self.state.epochs_done;
        let batches = self.schedule.batches;
        let mine = drawn.mine.iter().map(|(_, b)| b.clone()).collect();
        let loader = BagLoader::with_batches(drawn.dataset.clone(), mine, settings.workers, 4);
        let mut accumulator = GradientsAccumulator::<MedCrossViT>::new();
        let mut pending = 0;
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        let start = Instant::now();
        for (b, items) in loader.enumerate() {
            let items = batch_items(items?, settings, epoch, b, drawn.mine[b].0);
            let loss;
            (model, loss) = self.step(model, items, drawn, b, &mut accumulator)?;
            if !loss.is_finite() {
                return Err(self.not_finite(drawn, b, "the training loss", loss.to_string()));
            }
            let n = drawn.global[b].len();
            loss_sum += loss * n as f64;
            seen += n;
            pending += 1;
            if pending == settings.grad_accumulation || b + 1 == batches {
                model = self.optimizer_step(model, &mut accumulator, drawn, b)?;
                pending = 0;
            }
            events(Event::Batch {
                epoch: epoch + 1,
                batch: b + 1,
                batches,
                loss: loss_sum / seen as f64,
                bags_per_sec: seen as f64 / start.elapsed().as_secs_f64().max(1e-9),
            });
            self.check_stop()?;
        }
        Ok((model, loss_sum / seen.max(1) as f64))
    }

    /// Share/step and reduce: batch `b`'s gradients over every device of every process,
    /// added to `accumulator` (or, `in_backward`, applied at once); returns the model and
    /// the batch's loss.
    fn step(
        &mut self,
        model: MedCrossViT,
        items: Vec<BagItem>,
        drawn: &Drawn,
        b: usize,
        accumulator: &mut GradientsAccumulator<MedCrossViT>,
    ) -> Result<(MedCrossViT, f64), Error> {
        let settings = self.job.settings;
        let scale = settings.grad_accumulation as f32;
        if self.in_backward {
            return self.step_in_backward(model, items, scale);
        }
        // What a batch's loss is divided by: its bags, or their class weights.
        let (weights, targets) = (&self.data.class_weights, &self.data.inputs.targets);
        let norm = |bags: &[usize]| -> f64 {
            match weights {
                Some(w) => bags
                    .iter()
                    .filter_map(|&i| targets[drawn.dataset.bags()[i].patient].class)
                    .map(|c| f64::from(w[c]))
                    .sum(),
                None => bags.len() as f64,
            }
        };
        // Each share's loss is its part of the batch's, so the shares' gradients sum to the
        // batch's.
        let batch_norm = norm(&drawn.global[b]);
        let shares = self
            .replicas
            .share(items, &drawn.mine[b].1, norm, batch_norm);
        let epoch = self.state.epochs_done;
        let seed = mix_seed(settings.seed, (epoch * self.schedule.batches + b) as u64, 4);
        let (grads, loss) = self.replicas.gradients(&model, shares, scale, seed)?;
        accumulator.accumulate(&model, grads);
        Ok((model, loss))
    }

    /// The step of one device and one process with recomputation and no accumulation: each
    /// layer is updated by the optimizer as soon as its gradients are known.
    fn step_in_backward(
        &mut self,
        model: MedCrossViT,
        items: Vec<BagItem>,
        scale: f32,
    ) -> Result<(MedCrossViT, f64), Error> {
        let settings = self.job.settings;
        let batch = BagBatcher.batch(items, self.replicas.main());
        let class_weights = self.replicas.main_class_weights();
        let loss_of = |logits| {
            batch_loss(logits, &batch, settings, class_weights)
                .expect("training bags all have targets")
                / scale
        };
        self.lr = self.schedule.lr(self.state.step);
        let lr = self.lr;
        let seed = mix_seed(settings.seed, self.state.step as u64, 3);
        let optimizer = &mut self.optimizer;
        let step = model.backward_recomputed(batch.input(), seed, loss_of, |m, g| {
            optimizer.step(lr, m, g)
        })?;
        let loss = step.loss.into_scalar::<f32>() as f64 * f64::from(scale);
        Ok((step.model, loss))
    }

    /// Optimizer: the step of the accumulated gradients (taken already `in_backward`);
    /// stops when one of them was not finite.
    fn optimizer_step(
        &mut self,
        model: MedCrossViT,
        accumulator: &mut GradientsAccumulator<MedCrossViT>,
        drawn: &Drawn,
        b: usize,
    ) -> Result<MedCrossViT, Error> {
        let model = if self.in_backward {
            model
        } else {
            self.lr = self.schedule.lr(self.state.step);
            self.optimizer.step(self.lr, model, accumulator.grads())
        };
        if self.watch.take() {
            let what = "a gradient of the optimizer step";
            return Err(self.not_finite(drawn, b, what, "NaN or infinite".into()));
        }
        self.state.step += 1;
        Ok(model)
    }

    /// The error for `what` of batch `b` being `value`, with the likely cause from the
    /// batch's inputs.
    fn not_finite(&self, drawn: &Drawn, b: usize, what: &str, value: String) -> Error {
        let cause = likely_cause(
            &drawn.dataset,
            &drawn.global[b],
            &self.data.inputs.normalization,
            self.job.prepared.cohort.table(),
            self.job.settings,
        );
        let epoch = self.state.epochs_done + 1;
        self.place(epoch, Some((b + 1, self.schedule.batches)))
            .error(what, value, cause)
    }

    /// Where in the fit: epoch `epoch` (from 1), batch `batch` of the batches or the
    /// validation.
    fn place(&self, epoch: usize, batch: Option<(usize, usize)>) -> Place<'_> {
        Place {
            label: &self.job.label,
            epoch,
            batch,
            out: &self.job.out,
            epochs_done: self.state.epochs_done,
        }
    }

    /// Validate: the epoch's row of `metrics.csv`, from the validation predictions of
    /// `inference` (shared out over the devices and processes); stops when they are not
    /// finite.
    fn validate(
        &self,
        inference: &MedCrossViT,
        epoch: usize,
        train_loss: f64,
    ) -> Result<EpochRow, Error> {
        let (settings, data) = (self.job.settings, &self.data);
        let predictions =
            predict_parallel(inference, data.val_dataset.clone(), settings, self.parallel)?;
        let place = self.place(epoch + 1, None);
        let normalization = &data.inputs.normalization;
        check_validation(
            &predictions,
            &place,
            &data.val_dataset,
            normalization,
            settings,
        )?;
        let classes = self.job.prepared.labels.len();
        let val = metrics(&predictions, &data.inputs.targets, settings.task, classes)?;
        Ok(EpochRow {
            epoch: epoch + 1,
            lr: self.lr,
            train_loss,
            val,
        })
    }

    /// Select: records the epoch's validation `val` in the loop state; whether it is the
    /// best so far. A better metric wins; an equal one (AUC saturates on small cohorts) wins
    /// with a lower validation loss.
    fn select(&mut self, val: &Metrics) -> bool {
        let score = score(val, self.job.settings);
        let loss = if val.loss.is_finite() {
            val.loss
        } else {
            f64::INFINITY
        };
        let state = &mut self.state;
        let improved = state
            .best
            .is_none_or(|(_, best, best_loss)| score > best || (score == best && loss < best_loss));
        if improved {
            state.best = Some((state.epochs_done + 1, score, loss));
            state.bad_epochs = 0;
        } else {
            state.bad_epochs += 1;
        }
        improved
    }

    /// Checkpoint: `row` joins the history; the writing process saves `model.bpk` (the best
    /// epoch's weights, or every epoch's with `select last`), `metrics.csv`, the curves and
    /// the resumable checkpoint of `model` and the optimizer.
    fn checkpoint(
        &mut self,
        model: &MedCrossViT,
        inference: &MedCrossViT,
        row: EpochRow,
        improved: bool,
    ) -> Result<(), Error> {
        let (settings, out) = (self.job.settings, &self.job.out);
        let writer = self.parallel.group.is_writer();
        let epoch = row.epoch;
        if writer && (improved || settings.select == Select::Last) {
            checkpoint::save_best(inference, &out.join(crate::model::WEIGHTS_FILE))?;
            checkpoint::pause_point("best", epoch);
        }
        let state = &mut self.state;
        state.history.push(row);
        state.epochs_done = epoch;
        state.finished = state.epochs_done == settings.epochs
            || (settings.patience > 0 && state.bad_epochs >= settings.patience);
        if writer {
            write_metrics_csv(out, &state.history, settings)?;
            plot::curves(out, &state.history, settings)?;
            checkpoint::save(out, model, &self.optimizer, state)?;
            // After the checkpoint: the events never run ahead of what a resumed run keeps
            // (and `sync` would cut them back if they did).
            write_tensorboard(self.job, &state.history)?;
        }
        Ok(())
    }

    /// Report: the epoch's row, and whether it is the best so far.
    fn report(&self, improved: bool, events: &mut dyn FnMut(Event<'_>)) {
        if self.parallel.group.is_writer() {
            events(Event::Epoch {
                label: &self.job.label,
                row: self.state.history.last().expect("just pushed"),
                best: improved,
            });
        }
    }
}

/// The monitored metric (higher is better); the negative loss when it is undefined.
fn score(m: &Metrics, settings: &TrainSettings) -> f64 {
    m.scalar(settings.monitor())
        .filter(|v| v.is_finite())
        .unwrap_or(-m.loss)
}

/// The columns of a row of `metrics.csv` after `epoch`: `lr`, `train_loss` and the task's
/// validation metrics (`val_loss`, `val_accuracy`, `val_balanced_accuracy`, `val_auc`, or
/// `val_loss`, `val_c_index`), `None` for a metric the epoch does not define. The CSV and
/// the TensorBoard events both take their values from here.
pub(crate) fn epoch_scalars(
    row: &EpochRow,
    settings: &TrainSettings,
) -> Vec<(String, Option<f64>)> {
    let names: &[&str] = match settings.task {
        Task::Classification => &["loss", "accuracy", "balanced_accuracy", "auc"],
        Task::Survival => &["loss", "c_index"],
    };
    let mut columns = vec![
        ("lr".to_string(), Some(row.lr)),
        ("train_loss".to_string(), Some(row.train_loss)),
    ];
    columns.extend(
        names
            .iter()
            .map(|n| (format!("val_{n}"), row.val.scalar(n))),
    );
    columns
}

/// Writes the history as `metrics.csv`: one row per epoch, the task's validation metrics.
fn write_metrics_csv(
    out: &std::path::Path,
    history: &[EpochRow],
    settings: &TrainSettings,
) -> Result<(), Error> {
    let mut text = String::from("epoch");
    let Some(first) = history.first() else {
        return Ok(());
    };
    for (name, _) in epoch_scalars(first, settings) {
        text.push_str(&format!(",{name}"));
    }
    text.push('\n');
    for row in history {
        text.push_str(&row.epoch.to_string());
        for (name, value) in epoch_scalars(row, settings) {
            match (name.as_str(), value) {
                ("lr", Some(v)) => text.push_str(&format!(",{v:.6e}")),
                (_, Some(v)) => text.push_str(&format!(",{v:.6}")),
                (_, None) => text.push(','),
            }
        }
        text.push('\n');
    }
    let path = out.join(files::METRICS_CSV);
    crate::util::atomic::write(&path, text.as_bytes())
        .map_err(|e| crate::model::PersistError::io(&path)(e).into())
}

/// Brings the fit's TensorBoard event files up to `history` (see
/// [`tensorboard`](super::tensorboard)): every scalar of `metrics.csv`, the epoch as step.
fn write_tensorboard(job: &Fit<'_>, history: &[EpochRow]) -> Result<(), Error> {
    let scalars = |row: &EpochRow| -> Vec<(String, f64)> {
        epoch_scalars(row, job.settings)
            .into_iter()
            .filter_map(|(name, v)| Some((name, v?)))
            .collect()
    };
    for dir in &job.tensorboard {
        tensorboard::sync(dir, history, scalars)?;
    }
    Ok(())
}
