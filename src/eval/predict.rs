//! Running a model over a dataset: bag outputs averaged per slide (each bag weighted by its
//! tiles) and per patient, the mean bag loss, and the task's metrics (per patient).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor};

use super::loss::batch_loss;
use super::metrics::{
    Metrics, accuracy, balanced_accuracy, concordance_index, confusion_matrix, macro_auc,
};
use super::survival::risk_from_hazards;
use crate::data::{BagBatcher, BagLoader, CohortDataset, Patients, Target, TimeBins, Unit};
use crate::model::MedCrossViT;
use crate::run::{Error, RunError, Task, TrainSettings};

/// One slide's prediction: the means over its bags, each bag weighted by its number of tiles
/// (so that a slide's short last bag counts for its few tiles, not as much as a full bag).
#[derive(Debug, Clone, PartialEq)]
pub struct SlidePrediction {
    /// The slide's index in the cohort.
    pub slide: usize,
    /// Tile-weighted mean logits `[classes]`.
    pub logits: Vec<f64>,
    /// Tile-weighted mean probabilities `[classes]` (softmax; for survival the hazards
    /// σ(logit)).
    pub probs: Vec<f64>,
    /// Bags averaged.
    pub bags: usize,
    /// Tiles covered by those bags.
    pub tiles: usize,
    /// Survival risk `−Σ S_k` from the mean hazards (survival task).
    pub risk: Option<f64>,
    /// Whether the prediction saw tiles (false: the slide's tile file is missing).
    pub wsi: bool,
    /// Whether it saw expression.
    pub rna: bool,
    /// The class a fold ensemble's majority vote chose (`--ensemble vote`); `None`: the class
    /// of highest probability.
    pub voted: Option<usize>,
}

/// One patient's prediction, from its slides' (see [`patient_predictions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PatientPrediction {
    /// The patient's index in [`Patients`].
    pub patient: usize,
    /// Logits `[classes]`.
    pub logits: Vec<f64>,
    /// Probabilities `[classes]` (for survival the hazards).
    pub probs: Vec<f64>,
    /// Slides predicted.
    pub slides: usize,
    /// Bags averaged, over all its slides.
    pub bags: usize,
    /// Survival risk `−Σ S_k` from the hazards (survival task).
    pub risk: Option<f64>,
    /// Whether the prediction saw tiles.
    pub wsi: bool,
    /// Whether it saw expression.
    pub rna: bool,
    /// The class a fold ensemble's majority vote chose (`--ensemble vote`); `None`: the class
    /// of highest probability.
    pub voted: Option<usize>,
}

impl PatientPrediction {
    /// Which modalities the prediction saw: `both`, `wsi_only` or `rna_only`.
    pub fn modalities(&self) -> &'static str {
        modality_group(self.wsi, self.rna)
    }
}

/// `both`, `wsi_only` or `rna_only`.
pub(crate) fn modality_group(wsi: bool, rna: bool) -> &'static str {
    match (wsi, rna) {
        (true, true) => "both",
        (true, false) => "wsi_only",
        _ => "rna_only",
    }
}

/// The class with the highest probability.
pub(crate) fn argmax(probs: &[f64]) -> usize {
    probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(c, _)| c)
        .unwrap_or(0)
}

impl SlidePrediction {
    /// The class predicted: the voted one, else the one with the highest mean probability.
    pub fn predicted_class(&self) -> usize {
        self.voted.unwrap_or_else(|| argmax(&self.probs))
    }

    /// What a predictions file shows of it.
    pub(crate) fn shown(&self) -> Shown<'_> {
        Shown {
            logits: &self.logits,
            probs: &self.probs,
            risk: self.risk,
            predicted: self.predicted_class(),
        }
    }
}

impl PatientPrediction {
    /// The class predicted: the voted one, else the one with the highest probability.
    pub fn predicted_class(&self) -> usize {
        self.voted.unwrap_or_else(|| argmax(&self.probs))
    }

    /// What a predictions file shows of it.
    pub(crate) fn shown(&self) -> Shown<'_> {
        Shown {
            logits: &self.logits,
            probs: &self.probs,
            risk: self.risk,
            predicted: self.predicted_class(),
        }
    }
}

/// The values of one prediction that a predictions file shows (see
/// [`output_cells`](super::output_cells)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown<'a> {
    /// Logits `[classes]`.
    pub logits: &'a [f64],
    /// Probabilities (for survival the hazards) `[classes]`.
    pub probs: &'a [f64],
    /// Survival risk.
    pub risk: Option<f64>,
    /// The class predicted.
    pub predicted: usize,
}

/// Per-batch callback of [`predict`]: the batch's bags and the model's output for them.
pub type BatchHook<'a> =
    dyn FnMut(&crate::data::BagBatch, &crate::model::MedCrossViTOutput) -> Result<(), Error> + 'a;

/// What [`predict`] returns.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// One per slide, in slide order.
    pub slides: Vec<SlidePrediction>,
    /// One per patient with a predicted slide, in patient order: what metrics are computed on.
    pub patients: Vec<PatientPrediction>,
    /// Mean loss over the bags, when every bag has a target.
    pub loss: Option<f64>,
}

/// Runs `model` (in inference mode, on `device`) over every bag of `dataset`, averaging each
/// slide's bag logits and probabilities weighted by the bags' tile counts, then each
/// patient's slides by `settings.unit` (see [`patient_predictions`]). `hook` sees every batch
/// (e.g. to collect attention; it then must ask for it through `with_attention`).
///
/// # Errors
///
/// Read errors of the bags; input errors of the model.
pub fn predict(
    model: &MedCrossViT,
    dataset: Arc<CohortDataset>,
    settings: &TrainSettings,
    device: &Device,
    with_attention: bool,
    hook: Option<&mut BatchHook<'_>>,
) -> Result<Predictions, Error> {
    let patients = dataset.patients().clone();
    let order: Vec<usize> = (0..dataset.bags().len()).collect();
    let partial = predict_bags(
        model,
        dataset,
        order,
        settings,
        device,
        with_attention,
        hook,
    )?;
    Ok(partial.finish(&patients, settings))
}

/// The sums of a prediction pass over some of the bags: what shares of a pass add up.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PartialPredictions {
    sums: BTreeMap<usize, SlideSums>,
    loss_sum: f64,
    loss_bags: usize,
    all_have_loss: bool,
}

impl PartialPredictions {
    pub(crate) fn new() -> Self {
        Self {
            sums: BTreeMap::new(),
            loss_sum: 0.0,
            loss_bags: 0,
            all_have_loss: true,
        }
    }

    /// Adds another share's sums.
    pub(crate) fn merge(&mut self, other: Self) {
        for (slide, sums) in other.sums {
            self.sums.entry(slide).or_default().merge(sums);
        }
        self.loss_sum += other.loss_sum;
        self.loss_bags += other.loss_bags;
        self.all_have_loss &= other.all_have_loss;
    }

    /// The slides' and patients' predictions.
    pub(crate) fn finish(self, patients: &Patients, settings: &TrainSettings) -> Predictions {
        let slides: Vec<SlidePrediction> = self
            .sums
            .into_iter()
            .map(|(slide, sums)| {
                let (logits, probs) = sums.means();
                SlidePrediction {
                    slide,
                    logits,
                    risk: (settings.task == Task::Survival).then(|| risk_from_hazards(&probs)),
                    probs,
                    bags: sums.bags,
                    tiles: sums.weight as usize,
                    wsi: sums.wsi,
                    rna: sums.rna,
                    voted: None,
                }
            })
            .collect();
        let patients = patient_predictions(&slides, patients, settings.unit, settings.task);
        Predictions {
            slides,
            patients,
            loss: (self.all_have_loss && self.loss_bags > 0)
                .then(|| self.loss_sum / self.loss_bags as f64),
        }
    }
}

/// The sums of `model` over the bags `order` of `dataset`.
pub(crate) fn predict_bags(
    model: &MedCrossViT,
    dataset: Arc<CohortDataset>,
    order: Vec<usize>,
    settings: &TrainSettings,
    device: &Device,
    with_attention: bool,
    mut hook: Option<&mut BatchHook<'_>>,
) -> Result<PartialPredictions, Error> {
    let total = order.len();
    let loader = BagLoader::new(dataset, order, settings.batch_size, settings.workers, 2);
    let mut partial = PartialPredictions::new();
    let mut done = 0;
    for items in loader {
        let batch = BagBatcher.batch(items?, device);
        let mut input = batch.input();
        if with_attention {
            input = input.with_attention();
        }
        let out = model.forward(input)?;
        let n = batch.bags.len();
        done += n;
        crate::progress::report("bags predicted", done, total);
        match batch_loss(out.logits.clone(), &batch, settings, None) {
            Some(loss) => {
                partial.loss_sum += loss.into_scalar::<f32>() as f64 * n as f64;
                partial.loss_bags += n;
            }
            None => partial.all_have_loss = false,
        }
        let probs = match settings.task {
            Task::Classification => softmax(out.logits.clone(), 1),
            Task::Survival => sigmoid(out.logits.clone()),
        };
        let logits = to_rows(out.logits.clone());
        let probs = to_rows(probs);
        for (i, bag) in batch.bags.iter().enumerate() {
            // Evaluation bags hold one slide each; a pooled bag counts for each of its slides
            // by its tiles there.
            for (slide, rows, _) in bag.by_slide() {
                let sums = partial.sums.entry(slide).or_default();
                sums.add(rows.len() as f64, &logits[i], &probs[i]);
                sums.wsi |= batch.wsi[i];
                sums.rna |= batch.rna[i];
            }
        }
        if let Some(hook) = hook.as_mut() {
            hook(&batch, &out)?;
        }
    }
    Ok(partial)
}

/// Each patient's prediction from its slides' predictions.
///
/// - [`Unit::Patient`]: the slides are one pool, so the logits and probabilities are the
///   means over all the patient's bags weighted by their tiles, i.e. the slides' weighted by
///   their tile counts.
/// - [`Unit::Slide`]: the mean over the slides, each counting once: of the logits, the
///   probabilities then being their softmax; for survival of the hazards (the logits are
///   averaged too, for the record).
///
/// Survival risk is `−Σ S_k` from the patient's hazards.
pub fn patient_predictions(
    slides: &[SlidePrediction],
    patients: &Patients,
    unit: Unit,
    task: Task,
) -> Vec<PatientPrediction> {
    let mut by_patient: BTreeMap<usize, Vec<&SlidePrediction>> = BTreeMap::new();
    for s in slides {
        by_patient
            .entry(patients.of_slide(s.slide))
            .or_default()
            .push(s);
    }
    by_patient
        .into_iter()
        .map(|(patient, slides)| {
            let weight = |s: &SlidePrediction| match unit {
                Unit::Patient => s.tiles as f64,
                Unit::Slide => 1.0,
            };
            let total: f64 = slides
                .iter()
                .map(|s| weight(s))
                .sum::<f64>()
                .max(f64::MIN_POSITIVE);
            let mean = |values: fn(&SlidePrediction) -> &Vec<f64>| {
                let width = values(slides[0]).len();
                (0..width)
                    .map(|c| slides.iter().map(|s| weight(s) * values(s)[c]).sum::<f64>() / total)
                    .collect::<Vec<f64>>()
            };
            let logits = mean(|s| &s.logits);
            let probs = match (unit, task) {
                (Unit::Slide, Task::Classification) => softmax_of(&logits),
                _ => mean(|s| &s.probs),
            };
            PatientPrediction {
                patient,
                risk: (task == Task::Survival).then(|| risk_from_hazards(&probs)),
                logits,
                probs,
                slides: slides.len(),
                bags: slides.iter().map(|s| s.bags).sum(),
                wsi: slides.iter().any(|s| s.wsi),
                rna: slides.iter().any(|s| s.rna),
                voted: None,
            }
        })
        .collect()
}

/// Softmax of logits, computed stably.
fn softmax_of(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// One slide's bag outputs, summed with weights.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SlideSums {
    logits: Vec<f64>,
    probs: Vec<f64>,
    weight: f64,
    bags: usize,
    wsi: bool,
    rna: bool,
}

impl SlideSums {
    /// Adds a bag's logits and probabilities with `weight` (its tile count).
    fn add(&mut self, weight: f64, logits: &[f64], probs: &[f64]) {
        for (sums, values) in [(&mut self.logits, logits), (&mut self.probs, probs)] {
            sums.resize(values.len(), 0.0);
            sums.iter_mut()
                .zip(values)
                .for_each(|(s, v)| *s += weight * v);
        }
        self.weight += weight;
        self.bags += 1;
    }

    /// Adds another share's sums of the same slide.
    fn merge(&mut self, other: Self) {
        for (sums, values) in [
            (&mut self.logits, other.logits),
            (&mut self.probs, other.probs),
        ] {
            sums.resize(values.len().max(sums.len()), 0.0);
            sums.iter_mut().zip(values).for_each(|(s, v)| *s += v);
        }
        self.weight += other.weight;
        self.bags += other.bags;
        self.wsi |= other.wsi;
        self.rna |= other.rna;
    }

    /// The weighted means of the logits and of the probabilities.
    fn means(&self) -> (Vec<f64>, Vec<f64>) {
        let mean = |v: &[f64]| v.iter().map(|x| x / self.weight).collect::<Vec<_>>();
        (mean(&self.logits), mean(&self.probs))
    }
}

/// A `[rows, columns]` tensor as rows of `f64`.
pub(crate) fn to_rows(t: Tensor<2>) -> Vec<Vec<f64>> {
    let [_, c] = t.dims();
    let values: Vec<f32> = t
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("f32 data");
    values
        .chunks(c.max(1))
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect()
}

/// The task's metrics over the patients of `predictions` that have a target (`targets` is
/// indexed by patient): one patient counts once, however many slides it has. When some
/// patients lack a modality, `by_modality` holds the same metrics for each group present
/// (`both`, `wsi_only`, `rna_only`).
///
/// # Errors
///
/// [`RunError::NonFinitePredictions`] when a patient's logits, probabilities or risk are
/// not all finite: no metric is computed over them (a NaN risk would give a c-index of 0).
pub fn metrics(
    predictions: &Predictions,
    targets: &[Target],
    task: Task,
    classes: usize,
) -> Result<Metrics, RunError> {
    let bad = non_finite_patients(&predictions.patients);
    if let Some(&first) = bad.first() {
        return Err(RunError::NonFinitePredictions {
            count: bad.len(),
            total: predictions.patients.len(),
            first: format!("#{}", predictions.patients[first].patient),
        });
    }
    let all: Vec<&PatientPrediction> = predictions.patients.iter().collect();
    let mut m = metrics_of(&all, predictions.loss, targets, task, classes);
    if all.iter().any(|p| !(p.wsi && p.rna)) {
        let mut groups: BTreeMap<String, Metrics> = BTreeMap::new();
        for group in ["both", "wsi_only", "rna_only"] {
            let members: Vec<&PatientPrediction> = all
                .iter()
                .copied()
                .filter(|p| p.modalities() == group)
                .collect();
            if !members.is_empty() {
                groups.insert(
                    group.to_string(),
                    metrics_of(&members, None, targets, task, classes),
                );
            }
        }
        m.by_modality = Some(groups);
    }
    Ok(m)
}

/// The positions in `patients` of those whose logits, probabilities or risk are not all
/// finite numbers.
pub fn non_finite_patients(patients: &[PatientPrediction]) -> Vec<usize> {
    patients
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            !(p.logits.iter().chain(&p.probs).all(|v| v.is_finite())
                && p.risk.is_none_or(f64::is_finite))
        })
        .map(|(i, _)| i)
        .collect()
}

/// `m` with the intervals of the final metrics added, from `patients`' predictions: for
/// survival the bootstrap interval of the c-index and the log-rank p-value between risk
/// groups; for classification the bootstrap intervals of the AUC and the balanced accuracy
/// (`settings.bootstrap` resamples of the patients, seeded from `settings.seed`; see
/// [`bootstrap_ci`](super::metrics::bootstrap_ci), [`logrank`](super::metrics::logrank)).
pub fn with_intervals(
    mut m: Metrics,
    patients: &[PatientPrediction],
    targets: &[Target],
    settings: &TrainSettings,
    classes: usize,
    weighted: Option<&SurvivalEval<'_>>,
) -> Metrics {
    use super::metrics::{bootstrap_ci, logrank, risk_groups};
    let known: Vec<&PatientPrediction> = patients
        .iter()
        .filter(|p| targets[p.patient].class.is_some())
        .collect();
    let n = known.len();
    let seed = crate::data::mix_seed(settings.seed, 0xb007, n as u64);
    match settings.task {
        Task::Survival => {
            let event: Vec<bool> = known
                .iter()
                .map(|p| !targets[p.patient].censored.unwrap_or(true))
                .collect();
            let time: Vec<f64> = known
                .iter()
                .map(|p| time_f64(targets[p.patient].time.unwrap_or(0.0)))
                .collect();
            let risk: Vec<f64> = known.iter().map(|p| p.risk.unwrap_or(0.0)).collect();
            if settings.bootstrap > 0 {
                m.c_index_ci = bootstrap_ci(n, settings.bootstrap, seed, |idx| {
                    let e: Vec<bool> = idx.iter().map(|&i| event[i]).collect();
                    let t: Vec<f64> = idx.iter().map(|&i| time[i]).collect();
                    let r: Vec<f64> = idx.iter().map(|&i| risk[i]).collect();
                    concordance_index(&e, &t, &r)
                });
            }
            let groups = risk_groups(&risk, settings.risk_groups);
            m.logrank_p = logrank(&time, &event, &groups, settings.risk_groups).map(|(_, p)| p);
            if let Some(w) = weighted {
                let bins: Vec<&TimeBins> = patients
                    .iter()
                    .zip(&w.bins)
                    .filter(|(p, _)| targets[p.patient].class.is_some())
                    .map(|(_, b)| *b)
                    .collect();
                m = with_weighted(m, &known, &bins, &event, &time, &risk, w);
            }
        }
        Task::Classification if settings.bootstrap > 0 => {
            let truth: Vec<usize> = known
                .iter()
                .map(|p| targets[p.patient].class.expect("filtered"))
                .collect();
            let probs: Vec<Vec<f64>> = known.iter().map(|p| p.probs.clone()).collect();
            let pred: Vec<usize> = known.iter().map(|p| p.predicted_class()).collect();
            m.auc_ci = bootstrap_ci(n, settings.bootstrap, seed, |idx| {
                let t: Vec<usize> = idx.iter().map(|&i| truth[i]).collect();
                let p: Vec<Vec<f64>> = idx.iter().map(|&i| probs[i].clone()).collect();
                macro_auc(&t, &p)
            });
            m.balanced_accuracy_ci = bootstrap_ci(n, settings.bootstrap, seed, |idx| {
                let t: Vec<usize> = idx.iter().map(|&i| truth[i]).collect();
                let p: Vec<usize> = idx.iter().map(|&i| pred[i]).collect();
                Some(balanced_accuracy(&t, &p, classes))
            });
        }
        Task::Classification => {}
    }
    m
}

/// What the inverse-probability-of-censoring-weighted survival metrics need besides the
/// predictions.
#[derive(Debug, Clone)]
pub struct SurvivalEval<'a> {
    /// The time bins of each prediction (parallel to the patients; folds bin differently).
    pub bins: Vec<&'a TimeBins>,
    /// The `(time, event)` pairs the censoring distribution is estimated on.
    pub censoring: Vec<(f64, bool)>,
    /// Whose pairs those are: `training`, `all` or `evaluated` (see
    /// [`Metrics::ipcw_censoring`]).
    pub source: &'static str,
}

impl<'a> SurvivalEval<'a> {
    /// The context of `patients` scored with one model's `bins`, the censoring estimated on
    /// the known outcomes of `censoring_patients` (patient indices into `targets`).
    pub fn new(
        bins: &'a TimeBins,
        patients: usize,
        targets: &[Target],
        censoring_patients: impl IntoIterator<Item = usize>,
        source: &'static str,
    ) -> Self {
        Self {
            bins: vec![bins; patients],
            censoring: outcome_pairs(targets, censoring_patients),
            source,
        }
    }
}

/// The `(time, event)` pairs of the given patients that have an outcome.
pub(crate) fn outcome_pairs(
    targets: &[Target],
    patients: impl IntoIterator<Item = usize>,
) -> Vec<(f64, bool)> {
    patients
        .into_iter()
        .filter_map(|p| {
            let t = targets.get(p)?;
            Some((time_f64(t.time?), !t.censored?))
        })
        .collect()
}

/// A time as the cohort CSV wrote it: the shortest decimal that reads back as the stored
/// `f32`, in `f64` (so `49.79` is 49.79, as other tools reading the CSV see it, not
/// 49.790000915…).
pub(crate) fn time_f64(t: f32) -> f64 {
    t.to_string().parse().unwrap_or(f64::from(t))
}

/// The model's survival probability at `t`: `S_b = Π_{k≤b} (1 − h_k)` of the bin `b` holding
/// `t` (constant within a bin: the probability of outliving the bin).
pub fn survival_at(hazards: &[f64], bins: &TimeBins, t: f64) -> f64 {
    let b = bins.bin(t).min(hazards.len().saturating_sub(1));
    hazards[..=b].iter().map(|h| 1.0 - h).product()
}

/// `m` with Uno's c-index, the time-dependent AUC and the integrated Brier score of `known`.
fn with_weighted(
    mut m: Metrics,
    known: &[&PatientPrediction],
    bins: &[&TimeBins],
    event: &[bool],
    time: &[f64],
    risk: &[f64],
    w: &SurvivalEval<'_>,
) -> Metrics {
    use super::metrics::{Censoring, concordance_index_ipcw, evaluation_times, ipcw_time_metrics};
    let (ct, ce): (Vec<f64>, Vec<bool>) = w.censoring.iter().copied().unzip();
    if ct.is_empty() || known.is_empty() {
        return m;
    }
    let censoring = Censoring::fit(&ct, &ce);
    m.ipcw_censoring = Some(w.source.to_string());
    m.c_index_ipcw = concordance_index_ipcw(&censoring, event, time, risk);
    let times = evaluation_times(time, event);
    if !times.is_empty() {
        let survival: Vec<Vec<f64>> = known
            .iter()
            .zip(bins)
            .map(|(p, b)| times.iter().map(|&t| survival_at(&p.probs, b, t)).collect())
            .collect();
        let r = ipcw_time_metrics(&censoring, event, time, &times, &survival);
        m.td_times = Some(r.times);
        m.td_auc = Some(r.auc);
        m.td_auc_mean = r.mean_auc;
        m.ibs = r.ibs;
        m.ipcw_beyond = (r.beyond > 0).then_some(r.beyond);
    }
    m
}

/// The metrics of `patients`; the loss is the batches' (NaN for a group).
fn metrics_of(
    patients: &[&PatientPrediction],
    loss: Option<f64>,
    targets: &[Target],
    task: Task,
    classes: usize,
) -> Metrics {
    let mut m = Metrics {
        loss: loss.unwrap_or(f64::NAN),
        ..Default::default()
    };
    let known: Vec<&PatientPrediction> = patients
        .iter()
        .copied()
        .filter(|p| targets[p.patient].class.is_some())
        .collect();
    if known.is_empty() {
        return m;
    }
    let target = |p: &PatientPrediction| targets[p.patient];
    match task {
        Task::Classification => {
            let truth: Vec<usize> = known
                .iter()
                .map(|p| target(p).class.expect("filtered"))
                .collect();
            let pred: Vec<usize> = known.iter().map(|p| p.predicted_class()).collect();
            let probs: Vec<Vec<f64>> = known.iter().map(|p| p.probs.clone()).collect();
            m.accuracy = Some(accuracy(&truth, &pred));
            m.balanced_accuracy = Some(balanced_accuracy(&truth, &pred, classes));
            m.auc = macro_auc(&truth, &probs);
            m.confusion_matrix = Some(confusion_matrix(&truth, &pred, classes));
        }
        Task::Survival => {
            let event: Vec<bool> = known
                .iter()
                .map(|p| !target(p).censored.unwrap_or(true))
                .collect();
            let time: Vec<f64> = known
                .iter()
                .map(|p| time_f64(target(p).time.unwrap_or(0.0)))
                .collect();
            let risk: Vec<f64> = known.iter().map(|p| p.risk.unwrap_or(0.0)).collect();
            m.c_index = concordance_index(&event, &time, &risk);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::SlideSums;

    /// A survival prediction of `risk` for patient `patient`.
    fn survival(patient: usize, risk: f64) -> super::PatientPrediction {
        super::PatientPrediction {
            patient,
            logits: vec![0.0; 2],
            probs: vec![0.5; 2],
            slides: 1,
            bags: 1,
            risk: Some(risk),
            wsi: true,
            rna: true,
            voted: None,
        }
    }

    /// A NaN risk would be scored as discordant with every patient (a c-index of 0): the
    /// metrics are an error instead, naming how many patients and the first.
    #[test]
    fn metrics_over_non_finite_predictions_are_an_error() {
        use crate::data::Target;
        use crate::run::RunError;
        let target = |time: f32, censored: bool| Target {
            class: Some(0),
            time: Some(time),
            censored: Some(censored),
        };
        let targets = [target(1.0, false), target(2.0, false), target(3.0, true)];
        let predictions = |risks: [f64; 3]| super::Predictions {
            slides: Vec::new(),
            patients: (0..3).map(|p| survival(p, risks[p])).collect(),
            loss: None,
        };
        let task = crate::run::Task::Survival;
        // Finite risks in the order of the times: every comparable pair concordant.
        let m = super::metrics(&predictions([3.0, 2.0, 1.0]), &targets, task, 2).unwrap();
        assert_eq!(m.c_index, Some(1.0));
        for bad in [f64::NAN, f64::INFINITY] {
            match super::metrics(&predictions([3.0, bad, bad]), &targets, task, 2) {
                Err(RunError::NonFinitePredictions {
                    count: 2,
                    total: 3,
                    first,
                }) => assert_eq!(first, "#1"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let mut nan_probs = predictions([3.0, 2.0, 1.0]);
        nan_probs.patients[0].probs[1] = f64::NAN;
        assert!(super::metrics(&nan_probs, &targets, task, 2).is_err());
    }

    #[test]
    fn a_slides_bags_count_by_their_tiles() {
        // A slide of 34 tiles in bags of 32 and 2: the short bag's outputs weigh 2/34.
        let mut sums = SlideSums::default();
        sums.add(32.0, &[1.0, -1.0], &[0.75, 0.25]);
        sums.add(2.0, &[-16.0, 16.0], &[0.0, 1.0]);
        let (logits, probs) = sums.means();
        let expect = |got: &[f64], want: &[f64]| {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
            }
        };
        expect(&logits, &[0.0, 0.0]);
        expect(&probs, &[24.0 / 34.0, 10.0 / 34.0]);
        assert_eq!(sums.bags, 2);
    }
}
