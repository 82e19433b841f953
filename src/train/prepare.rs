//! Prepare, the first step of a fit: the job ([`Fit`]); what it trains and validates on
//! (targets, normalization, time bins and datasets: [`FitData`]), fitted on the training
//! patients and written into a new run folder, or read back from a resumed one; and the model
//! with its optimizer, initialized or loaded from the last checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;

use super::Event;
use super::checkpoint::{self, LoopState};
use super::plan::{self, Prepared};
use super::saved::{SavedJob, saved};
use crate::data::{
    BagSource, CohortColumns, CohortDataset, Normalization, Split, Target, TimeBins,
    evaluation_bags, training_bags, write_split_csv,
};
use crate::eval::{inverse_frequency, usable_sources};
use crate::kernels::adamw::{GradientWatch, adamw_watched};
use crate::model::{MedCrossViT, MedCrossViTConfig};
use crate::run::{DataSource, Error, RunConfig, RunFileError, Task, TrainSettings, files};

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
    /// The folders its TensorBoard event files go to (see
    /// [`tensorboard`](super::tensorboard)): the run's `tensorboard/` (`tensorboard/fold_K`
    /// for a fold), and the same under `settings.tensorboard` when set.
    pub tensorboard: Vec<PathBuf>,
}

/// What a fit scores its predictions against, fixed when it starts.
pub(super) struct Inputs {
    /// Each patient's target.
    pub targets: Vec<Target>,
    /// The expression normalization, fitted on the training patients.
    pub normalization: Normalization,
    /// The survival time bins (survival only).
    pub bins: Option<TimeBins>,
}

/// What a fit trains and validates on, fixed when it starts.
pub(super) struct FitData {
    /// Targets, normalization and time bins.
    pub inputs: Inputs,
    /// The training patients' bag sources.
    pub train_sources: Vec<BagSource>,
    /// The training dataset; each epoch replaces its bags.
    pub train_base: CohortDataset,
    /// The validation dataset.
    pub val_dataset: Arc<CohortDataset>,
    /// The class weights of the loss (classification with class weights only).
    pub class_weights: Option<Vec<f32>>,
}

/// The model, its optimizer with the watch of its gradients, and the loop state: new, or
/// those of the checkpoint a resumed fit continues from.
pub(super) struct Start {
    /// The model, on the main device (with autodiff).
    pub model: MedCrossViT,
    /// The optimizer.
    pub optimizer: ModuleOptimizer,
    /// Whether the optimizer met a gradient that is not finite.
    pub watch: GradientWatch,
    /// Epochs done, steps taken, the best epoch, the history.
    pub state: LoopState,
}

/// The error closure for I/O on `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| RunFileError::io(path)(e).into()
}

/// The checkpoint a fit continues from: the folder's current one when resuming.
pub(super) fn checkpoint_folder(job: &Fit<'_>) -> Result<Option<PathBuf>, Error> {
    Ok(if job.resume {
        checkpoint::current(&job.out)?
    } else {
        None
    })
}

/// The fit's targets, normalization and time bins: those saved in its folder when it resumes
/// (`resuming`), else fitted on the training patients and written with the run's files by
/// the writing process (`writer`).
pub(super) fn inputs(
    job: &Fit<'_>,
    resuming: bool,
    writer: bool,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<Inputs, Error> {
    let (prepared, settings) = (job.prepared, job.settings);
    if resuming {
        let (normalization, bins) = saved(&SavedJob {
            out: &job.out,
            settings,
            model: &job.model,
            prepared,
        })?;
        let (targets, _) = plan::targets_with(prepared, job.split, settings, bins.clone())?;
        return Ok(Inputs {
            targets,
            normalization,
            bins,
        });
    }
    let (targets, bins) = plan::targets(prepared, job.split, settings)?;
    let (normalization, scale) = plan::fit_normalization(prepared, job.split, settings)?;
    if let Some(scale) = scale {
        events(Event::Message(format!("{}: {scale}", job.label)));
        if let Some(warning) = scale.warning() {
            events(Event::Message(format!("warning: {}: {warning}", job.label)));
        }
    }
    let inputs = Inputs {
        targets,
        normalization,
        bins,
    };
    if writer {
        write_run_files(job, &inputs)?;
    }
    Ok(inputs)
}

/// Writes a new run folder's files: the split, `config.json`, the normalization and the
/// classes.
fn write_run_files(job: &Fit<'_>, inputs: &Inputs) -> Result<(), Error> {
    let out = &job.out;
    std::fs::create_dir_all(out).map_err(io(out))?;
    write_split_csv(
        &out.join(files::SPLITS_CSV),
        job.split,
        &job.prepared.patients,
    )?;
    RunConfig {
        model: job.model.clone(),
        training: job.settings.clone(),
        columns: job.columns.clone(),
        data: Some(job.data.clone()),
        survival_bins: inputs.bins.clone(),
        folds: None,
    }
    .save(out)?;
    inputs.normalization.save(out.join(files::NORMALIZATION))?;
    job.prepared.labels.save(out.join(files::LABELS))?;
    checkpoint::pause_point("files", 0);
    Ok(())
}

/// The model on `device` and its optimizer: initialized, or loaded from the checkpoint in
/// `folder` (whose older siblings are pruned).
pub(super) fn start(
    job: &Fit<'_>,
    device: &Device,
    folder: Option<&Path>,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<Start, Error> {
    let settings = job.settings;
    let mut model = job.model.init(device)?;
    if folder.is_none() {
        model.initialize_weights();
    }
    let (mut optimizer, watch) = adamw_watched(settings.weight_decay as f32);
    let mut state = LoopState::default();
    if let Some(folder) = folder {
        (optimizer, state) = checkpoint::load(folder, &mut model, optimizer)?;
        checkpoint::prune(folder);
        events(Event::Message(format!(
            "{}: resuming after epoch {} of {}",
            job.label, state.epochs_done, settings.epochs
        )));
    }
    Ok(Start {
        model,
        optimizer,
        watch,
        state,
    })
}

/// The training and validation datasets of `inputs`, after a line on each side's patients
/// that lack a modality.
pub(super) fn datasets(
    job: &Fit<'_>,
    inputs: Inputs,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<FitData, Error> {
    let (prepared, settings) = (job.prepared, job.settings);
    let cohort = &prepared.cohort;
    let patients = &prepared.patients;
    let sources = |slides: &[usize]| usable_sources(cohort, patients, slides, settings);
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
    let dataset = |bags| {
        Ok::<_, Error>(
            CohortDataset::new(
                cohort.clone(),
                patients.clone(),
                bags,
                &inputs.normalization,
                inputs.targets.clone(),
            )?
            .with_modalities(settings.modalities),
        )
    };
    let train_base = dataset(training_bags(
        &train_sources,
        &settings.bags,
        settings.seed,
        0,
    ))?;
    let val_dataset = Arc::new(dataset(evaluation_bags(
        &sources(&job.split.val),
        settings.bags.bag_size,
    ))?);
    let class_weights = class_weights(&train_base, &inputs.targets, job);
    Ok(FitData {
        inputs,
        train_sources,
        train_base,
        val_dataset,
        class_weights,
    })
}

/// The loss's class weights, by inverse frequency over the training bags (classification
/// with `settings.class_weights` only).
fn class_weights(train: &CohortDataset, targets: &[Target], job: &Fit<'_>) -> Option<Vec<f32>> {
    let settings = job.settings;
    (settings.class_weights && settings.task == Task::Classification).then(|| {
        let classes = train.bags().iter().filter_map(|b| targets[b.patient].class);
        inverse_frequency(classes, job.prepared.labels.len())
    })
}

/// The evaluation dataset of `slides` (the test side).
pub(super) fn evaluation_dataset(
    job: &Fit<'_>,
    inputs: &Inputs,
    slides: &[usize],
) -> Result<Arc<CohortDataset>, Error> {
    let (prepared, settings) = (job.prepared, job.settings);
    let sources = usable_sources(&prepared.cohort, &prepared.patients, slides, settings);
    Ok(Arc::new(
        CohortDataset::new(
            prepared.cohort.clone(),
            prepared.patients.clone(),
            evaluation_bags(&sources, settings.bags.bag_size),
            &inputs.normalization,
            inputs.targets.clone(),
        )?
        .with_modalities(settings.modalities),
    ))
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
