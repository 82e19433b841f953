//! End-to-end training and evaluation on tiny synthetic cohorts.

use std::path::Path;
use std::process::Command;

use burn::tensor::Device;
use med_crossvit::data::CohortColumns;
use med_crossvit::eval::EvaluateRequest;
use med_crossvit::eval::metrics::concordance_index;
use med_crossvit::run::{DataSource, ModelBundle, ModelSpec, Task, TrainSettings};
use med_crossvit::train::{self, TrainRequest};
use med_crossvit::{Error, RunError};

use crate::support;

use crate::support::request;

fn cohort(dir: &Path, survival: bool) -> DataSource {
    support::synth(dir, 40, 24, 6, 3, survival)
}

/// A known-signal cohort (the synthetic generator's class prototypes in the tiles, class
/// effects in a quarter of the genes) of 128 slides, cut by patient into a training cohort
/// of the first patients (about 48 slides) and a held-out CSV of the other 80 or so, whose
/// slides neither training nor checkpoint selection ever sees. Held-out slides cost only
/// inference, and 80 of them put chance at 0.5 ± 0.07 (AUC or c-index, one standard
/// deviation) instead of ± 0.1 for 32.
fn held_out_cohort(dir: &Path, survival: bool, genes: usize) -> (DataSource, std::path::PathBuf) {
    held_out_cohort_of(dir, survival, genes, 128, 48)
}

/// [`held_out_cohort`] of `slides` slides, the first `cut` (or so) for training.
fn held_out_cohort_of(
    dir: &Path,
    survival: bool,
    genes: usize,
    slides: usize,
    cut: usize,
) -> (DataSource, std::path::PathBuf) {
    let options = med_crossvit::data::SynthOptions {
        slides,
        tiles: 24,
        dim: 8,
        genes,
        survival,
        seed: 11,
        ..Default::default()
    };
    let written = med_crossvit::data::write_synthetic_cohort(dir, &options).unwrap();
    let text = std::fs::read_to_string(&written.csv).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let patient = header.split(',').position(|c| c == "patient_id").unwrap();
    let rows: Vec<&str> = lines.collect();
    let id = |i: usize| rows[i].split(',').nth(patient).unwrap();
    // The first row from `cut` on that starts a new patient.
    let cut = (cut..rows.len()).find(|&i| id(i) != id(i - 1)).unwrap();
    let csv = |rows: &[&str]| format!("{header}\n{}\n", rows.join("\n"));
    let (train, held_out) = (csv(&rows[..cut]), csv(&rows[cut..]));
    let train_csv = dir.join("train.csv");
    let held_out_csv = dir.join("held_out.csv");
    std::fs::write(&train_csv, train).unwrap();
    std::fs::write(&held_out_csv, held_out).unwrap();
    let data = DataSource {
        csv: train_csv,
        features_dir: written.features_dir,
        features_key: None,
        skip_missing: false,
    };
    (data, held_out_csv)
}

/// The run in `out` applied to the slides of `csv` (tiles from `data`'s features folder).
fn evaluate_on(
    out: &Path,
    csv: &Path,
    data: &DataSource,
    device: &Device,
) -> (ModelBundle, med_crossvit::eval::Evaluation) {
    let bundle = ModelBundle::load(out, device).unwrap();
    let request = EvaluateRequest {
        csv: csv.to_path_buf(),
        tiles: med_crossvit::data::TileOptions::new(&data.features_dir),
        require_targets: true,
    };
    let evaluation = med_crossvit::eval::evaluate(&bundle, &request, device, false, None).unwrap();
    (bundle, evaluation)
}

fn settings(task: Task) -> TrainSettings {
    TrainSettings {
        task,
        epochs: 6,
        batch_size: 8,
        bags: med_crossvit::data::BagSettings {
            bag_size: 8,
            ..Default::default()
        },
        lr: 1e-3,
        warmup_epochs: 0.5,
        patience: 0,
        ..Default::default()
    }
}

fn quiet() -> impl FnMut(train::Event<'_>) {
    |_| {}
}

#[test]
fn classification_learns_and_writes_its_files() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let (data, held_out) = held_out_cohort(&dir.path().join("cohort"), false, 32);
    let out = dir.path().join("run");
    let device = Device::flex();
    // More and larger steps than the other tests: 6 epochs of batches of 8 at 1e-3 only
    // reach a held-out AUC of about 0.7 on this cohort.
    let mut s = settings(Task::Classification);
    s.epochs = 10;
    s.batch_size = 4;
    s.lr = 3e-3;
    let summary = train::train(
        &request(data.clone(), s, out.clone()),
        &device,
        &mut quiet(),
    )
    .unwrap();
    assert!(summary.finished);
    let history: Vec<String> = std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        history[0],
        "epoch,lr,train_loss,val_loss,val_accuracy,val_balanced_accuracy,val_auc"
    );
    assert_eq!(history.len(), 11);
    let loss = |line: &str| line.split(',').nth(2).unwrap().parse::<f64>().unwrap();
    assert!(
        loss(&history[10]) < loss(&history[1]),
        "training loss falls: {history:#?}"
    );
    for file in [
        "config.json",
        "model.bpk",
        "normalization.json",
        "labels.json",
        "metrics.json",
        "loss.png",
        "metric.png",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "loss",
        "accuracy",
        "balanced_accuracy",
        "auc",
        "confusion_matrix",
        "auc_ci",
        "balanced_accuracy_ci",
    ] {
        assert!(
            metrics.get(key).is_some(),
            "metrics.json has {key}: {metrics}"
        );
    }
    for picture in ["loss.png", "roc.png", "confusion.png"] {
        let png = std::fs::read(out.join(picture)).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{picture}");
    }
    // A new run of a preset is position-free, and its folder says so.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["wsi_pos_embedding"], false, "{config}");

    // Evaluate the run on the held-out patients: the planted signal is found in slides the
    // model never saw (0.86 with this seed; chance is 0.5 ± 0.07).
    let (bundle, evaluation) = evaluate_on(&out, &held_out, &data, &device);
    let slides = std::fs::read_to_string(&held_out).unwrap().lines().count() - 1;
    assert_eq!(evaluation.predictions.slides.len(), slides);
    // Every fourth synthetic patient has two slides: metrics and rows are per patient.
    let patients = evaluation.patients.len();
    assert!(
        patients < slides && patients > slides * 3 / 4,
        "{patients} of {slides}"
    );
    assert_eq!(evaluation.predictions.patients.len(), patients);
    let m = evaluation.metrics.clone().unwrap();
    assert!(m.auc.unwrap() > 0.75, "held-out {m:?}");
    assert!(!bundle.model.config().wsi_pos_embedding);
    assert!(bundle.model.wsi_embedder.pos_embedding.is_none());
    let csv = dir.path().join("predictions.csv");
    med_crossvit::eval::write_predictions(&csv, &bundle, &evaluation).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "patient_id,slides,modalities,logit_0,logit_1,prob_0,prob_1,pred,label"
    );
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    let p: f64 = first[5].parse::<f64>().unwrap() + first[6].parse::<f64>().unwrap();
    assert!((p - 1.0).abs() < 1e-4, "probabilities sum to 1: {first:?}");
    assert_eq!(text.lines().count(), patients + 1);
}

#[test]
fn survival_learns_and_reports_a_c_index() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    // Survival times carry less of the planted signal than labels do (exponential times,
    // a third censored): a larger cohort than the classification test's, about 140 slides
    // for training and 100 held out.
    let (data, held_out) = held_out_cohort_of(&dir.path().join("cohort"), true, 16, 240, 140);
    let out = dir.path().join("run");
    let device = Device::flex();
    let mut s = settings(Task::Survival);
    s.epochs = 8;
    // Weight on the uncensored term: the events alone carry the signal more steadily here.
    s.survival.alpha = 0.5;
    let summary = train::train(
        &request(data.clone(), s, out.clone()),
        &device,
        &mut quiet(),
    )
    .unwrap();
    assert!(summary.folds[0].metrics.c_index.is_some());
    // On the held-out patients, the model's risks order survival times better than chance.
    let (bundle, evaluation) = evaluate_on(&out, &held_out, &data, &device);
    let c = evaluation.metrics.clone().unwrap().c_index.unwrap();
    // The generator draws times from the class alone, so the class itself is the best risk
    // there is; its c-index on these slides is the most any model can reach.
    let text = std::fs::read_to_string(&held_out).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let (label, months, censored) = (
        column("label"),
        column("survival_months"),
        column("censorship"),
    );
    // One row per patient: a patient's rows repeat its outcome.
    let patient = column("patient_id");
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<&str>>())
        .filter(|r| seen.insert(r[patient]))
        .collect();
    let event: Vec<bool> = rows.iter().map(|r| r[censored] == "0").collect();
    let time: Vec<f64> = rows.iter().map(|r| r[months].parse().unwrap()).collect();
    let class: Vec<f64> = rows.iter().map(|r| r[label].parse().unwrap()).collect();
    let best = concordance_index(&event, &time, &class).unwrap();
    assert!(best > 0.6, "the planted signal: {best}");
    // Eight epochs on about 110 training patients learn part of it (0.62 with this seed,
    // against the classes' 0.69; other generator seeds give 0.49 to 0.62: the margin is the
    // synthetic signal's, not the model's), clearly more than nothing; a risk of the wrong
    // sign or censorship read the wrong way round would land below 0.5.
    assert!(
        c > 0.55 && c < best + 0.05,
        "held-out c-index {c}; the classes themselves reach {best}"
    );
    // The bar not tuned to one seed: chance on these very patients. The model's risks,
    // shuffled among the patients 1000 times, give the c-indices of a risk that knows
    // nothing (0.50 ± 0.05 for these 80 patients: 95% of them below 0.59, against the
    // model's 0.62); the model must beat 95% of them (one-sided p < 0.05), whatever cohort
    // size or generator seed sets the spread.
    let written = dir.path().join("predictions.csv");
    med_crossvit::eval::write_predictions(&written, &bundle, &evaluation).unwrap();
    let mut reader = csv::Reader::from_path(&written).unwrap();
    let names: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let at = |name: &str| names.iter().position(|h| h == name).unwrap();
    let (risk_at, time_at, censored_at) = (at("risk"), at("survival_months"), at("censorship"));
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), evaluation.patients.len());
    let cell = |r: &csv::StringRecord, i: usize| r[i].parse::<f64>().unwrap();
    let event: Vec<bool> = records
        .iter()
        .map(|r| cell(r, censored_at) == 0.0)
        .collect();
    let time: Vec<f64> = records.iter().map(|r| cell(r, time_at)).collect();
    let mut risk: Vec<f64> = records.iter().map(|r| cell(r, risk_at)).collect();
    let again = concordance_index(&event, &time, &risk).unwrap();
    assert!((again - c).abs() < 1e-4, "{again} vs {c}");
    let (median, bar) = shuffled_risk_bar(&event, &time, &mut risk);
    assert!(
        (0.5 - median).abs() < 0.03 && c > bar,
        "held-out c-index {c}; 95% of shuffled risks reach {bar} (median {median})"
    );
    let history = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(
        history.starts_with("epoch,lr,train_loss,val_loss,val_c_index\n"),
        "{history}"
    );
    let losses: Vec<f64> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert!(losses.last().unwrap() < &losses[0], "{losses:?}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["survival_bins"]["edges"].as_array().unwrap().len(),
        5
    );
    assert_eq!(config["model"]["num_classes"], 4);
}

/// The c-indices of `risk` shuffled among the patients 1000 times (a fixed xorshift
/// sequence): their median and their 95th percentile.
fn shuffled_risk_bar(event: &[bool], time: &[f64], risk: &mut [f64]) -> (f64, f64) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut null: Vec<f64> = (0..1000)
        .map(|_| {
            for i in (1..risk.len()).rev() {
                risk.swap(i, next(i + 1));
            }
            concordance_index(event, time, risk).unwrap()
        })
        .collect();
    null.sort_by(f64::total_cmp);
    (null[499], null[949])
}

#[test]
fn resuming_after_an_interruption_ends_where_the_whole_run_does() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(&dir.path().join("cohort"), false);
    let device = Device::flex();
    let whole = dir.path().join("whole");
    let mut s = settings(Task::Classification);
    s.epochs = 4;
    s.grad_accumulation = 2;
    s.test_fraction = 0.2;
    train::train(
        &request(data.clone(), s.clone(), whole.clone()),
        &device,
        &mut quiet(),
    )
    .unwrap();
    let cut = dir.path().join("cut");
    let mut interrupted = request(data, s, cut.clone());
    interrupted.stop_after = Some(2);
    let partial = train::train(&interrupted, &device, &mut quiet()).unwrap();
    assert!(!partial.finished);
    assert!(!cut.join("metrics.json").exists());
    let resumed = train::resume(&cut, None, &device, &mut quiet()).unwrap();
    assert!(resumed.finished);
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    assert_eq!(read(&whole, "metrics.csv"), read(&cut, "metrics.csv"));
    assert_eq!(read(&whole, "metrics.json"), read(&cut, "metrics.json"));
    assert_eq!(
        read(&whole, "test_metrics.json"),
        read(&cut, "test_metrics.json")
    );
    // Same seed, same data, same device: the same metrics.csv, run again from scratch.
    let again = dir.path().join("again");
    let mut s = settings(Task::Classification);
    s.epochs = 4;
    s.grad_accumulation = 2;
    s.test_fraction = 0.2;
    train::train(
        &request(cohort(&dir.path().join("cohort2"), false), s, again.clone()),
        &device,
        &mut quiet(),
    )
    .unwrap();
    assert_eq!(read(&whole, "metrics.csv"), read(&again, "metrics.csv"));
}

/// A stop asked for in the middle of the second epoch (as the Python package does on
/// Ctrl-C) drops that epoch, keeps the first one's checkpoint, says so as
/// `RunError::Stopped`, and the run resumes to the uninterrupted run's results.
#[test]
fn a_stop_request_leaves_a_run_that_resumes_to_the_same_end() {
    use med_crossvit::progress::{StopRequest, stoppable};
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = support::folders::cohort(dir.path());
    let device = Device::flex();
    let whole = dir.path().join("whole");
    let request = support::folders::tiny_request(dir.path(), data.clone(), 3, whole.clone());
    train::train(&request, &device, &mut quiet()).unwrap();

    let cut = dir.path().join("cut");
    let request = support::folders::tiny_request(dir.path(), data, 3, cut.clone());
    let stop = StopRequest::new();
    let mut batches = 0;
    let err = stoppable(&stop, || {
        train::train(&request, &device, &mut |e| {
            if let train::Event::Batch { epoch: 2, .. } = e {
                batches += 1;
                stop.request();
            }
        })
    })
    .unwrap_err();
    assert_eq!(batches, 1, "the loop stops after the batch that asked");
    match err {
        Error::Run(RunError::Stopped { path, epochs_done }) => {
            assert_eq!((path, epochs_done), (cut.clone(), 1));
        }
        other => panic!("{other}"),
    }
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    assert_eq!(
        read(&cut, "metrics.csv").lines().count(),
        2,
        "header and epoch 1"
    );
    assert!(!cut.join("metrics.json").exists());
    let resumed = train::resume(&cut, None, &device, &mut quiet()).unwrap();
    assert!(resumed.finished);
    assert_eq!(read(&whole, "metrics.csv"), read(&cut, "metrics.csv"));
    assert_eq!(read(&whole, "metrics.json"), read(&cut, "metrics.json"));
}

#[test]
fn cross_validation_folds_keep_patients_apart() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(&dir.path().join("cohort"), false);
    let out = dir.path().join("cv");
    let mut s = settings(Task::Classification);
    s.epochs = 1;
    let mut r = request(data, s, out.clone());
    r.folds = Some(3);
    let summary = train::train(&r, &Device::flex(), &mut quiet()).unwrap();
    assert_eq!(summary.folds.len(), 3);
    let cv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cv.json")).unwrap()).unwrap();
    assert_eq!(cv["folds"].as_array().unwrap().len(), 3);
    let table =
        med_crossvit::data::CohortTable::read(&r.data.csv, &CohortColumns::default()).unwrap();
    let prepared = train::prepare(&r.data, &CohortColumns::default(), &r.settings).unwrap();
    for split in train::splits(&prepared, &r.settings, Some(3), &mut |_| {}).unwrap() {
        let patients = |s: &[usize]| {
            s.iter()
                .map(|&i| table.slides()[i].patient.clone())
                .collect::<std::collections::HashSet<_>>()
        };
        assert!(patients(&split.train).is_disjoint(&patients(&split.val)));
    }
    let written = check_written_folds(&out, &table, &prepared, &r.settings);
    // The summary's mean and population standard deviation are those of the AUCs each fold
    // wrote, and cv.json says the same.
    let aucs: Vec<f64> = (0..3)
        .map(|k| {
            let text = std::fs::read_to_string(out.join(format!("fold_{k}/metrics.json")));
            let m: serde_json::Value = serde_json::from_str(&text.unwrap()).unwrap();
            m["auc"].as_f64().unwrap()
        })
        .collect();
    let mean = aucs.iter().sum::<f64>() / 3.0;
    let std = (aucs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
    assert!((summary.mean["auc"] - mean).abs() < 1e-12, "{aucs:?}");
    assert!((summary.std["auc"] - std).abs() < 1e-12, "{aucs:?}");
    assert!(
        (cv["mean"]["auc"].as_f64().unwrap() - mean).abs() < 1e-12,
        "{cv}"
    );
    // The pooled out-of-fold predictions: every patient once, in the fold that validated it,
    // and `pooled` is the AUC of those rows.
    let mut reader = csv::Reader::from_path(out.join("cv_predictions.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[..4], ["patient_id", "fold", "slides", "modalities"]);
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(ids.len(), rows.len(), "each patient once");
    assert_eq!(rows.len(), prepared.patients.len());
    let splits = train::splits(&prepared, &r.settings, Some(3), &mut |_| {}).unwrap();
    for row in &rows {
        let fold: usize = row[1].parse().unwrap();
        assert!(written[fold][1].contains(&row[0]), "{row:?}");
        assert!(
            splits[fold]
                .val
                .iter()
                .any(|&i| table.slides()[i].patient == row[0]),
            "{row:?}"
        );
    }
    let scores: Vec<f64> = rows
        .iter()
        .map(|r| r[column("prob_1")].parse().unwrap())
        .collect();
    let positive: Vec<bool> = rows.iter().map(|r| &r[column("label")] == "1").collect();
    let pooled = med_crossvit::eval::metrics::binary_auc(&scores, &positive).unwrap();
    assert!(out.join("roc.png").is_file() && out.join("confusion.png").is_file());
    assert!(
        (cv["pooled"]["auc"].as_f64().unwrap() - pooled).abs() < 1e-6,
        "{cv}"
    );
}

/// Checks each fold's splits.csv in the cross-validation run `out` against the cohort
/// `table` and the splits recomputed from `prepared`; the sides it read, by fold.
fn check_written_folds(
    out: &Path,
    table: &med_crossvit::data::CohortTable,
    prepared: &train::Prepared,
    settings: &TrainSettings,
) -> Vec<[std::collections::HashSet<String>; 3]> {
    // What each fold wrote: its fold_k/splits.csv names train, val and test patients
    // (columns 1, 2, 3) that no two sides share; the three validation sides are apart and
    // together the whole cohort, and each fold trains on all the others' patients.
    let cohort: std::collections::HashSet<String> =
        table.slides().iter().map(|s| s.patient.clone()).collect();
    let written: Vec<[std::collections::HashSet<String>; 3]> = (0..3)
        .map(|k| fold_split(&out.join(format!("fold_{k}/splits.csv"))))
        .collect();
    for (k, [train_side, val, test]) in written.iter().enumerate() {
        assert!(!train_side.is_empty() && !val.is_empty(), "fold {k}");
        assert!(
            train_side.is_disjoint(val),
            "fold {k}: {train_side:?} / {val:?}"
        );
        assert!(
            train_side.is_disjoint(test) && val.is_disjoint(test),
            "fold {k}"
        );
        let all: std::collections::HashSet<String> =
            train_side.iter().chain(val).chain(test).cloned().collect();
        assert_eq!(all, cohort, "fold {k} covers the cohort");
        // The written split is the one the fold was trained on.
        let recomputed = &train::splits(prepared, settings, Some(3), &mut |_| {}).unwrap()[k];
        let ids = |s: &[usize]| -> std::collections::HashSet<String> {
            s.iter()
                .map(|&i| table.slides()[i].patient.clone())
                .collect()
        };
        assert_eq!(ids(&recomputed.val), *val, "fold {k}");
        assert_eq!(ids(&recomputed.train), *train_side, "fold {k}");
    }
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        assert!(written[a][1].is_disjoint(&written[b][1]), "folds {a}, {b}");
    }
    let validated: std::collections::HashSet<String> =
        written.iter().flat_map(|w| w[1].iter().cloned()).collect();
    assert_eq!(validated, cohort, "every patient validated once");
    written
}

/// The patient ids of a fold's splits.csv: its train, val and test columns.
fn fold_split(path: &Path) -> [std::collections::HashSet<String>; 3] {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, ["", "train", "val", "test"], "{}", path.display());
    let mut sides: [std::collections::HashSet<String>; 3] = Default::default();
    for record in reader.records() {
        let record = record.unwrap();
        for (side, ids) in sides.iter_mut().enumerate() {
            let id = &record[side + 1];
            if !id.is_empty() {
                assert!(
                    ids.insert(id.to_string()),
                    "{id} twice in {}",
                    path.display()
                );
            }
        }
    }
    sides
}

#[test]
fn bad_requests_fail_clearly_and_overwrite_nothing() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(&dir.path().join("cohort"), false);
    let device = Device::flex();
    let run = |r: &TrainRequest| train::train(r, &device, &mut quiet()).unwrap_err();
    let out = dir.path().join("run");

    let mut r = request(data.clone(), settings(Task::Classification), out.clone());
    r.model = ModelSpec::Preset("huge".into());
    assert!(matches!(
        run(&r),
        Error::Run(RunError::Unknown { what: "preset", .. })
    ));

    let config = dir.path().join("model.json");
    std::fs::write(&config, r#"{"wsi_dim": 768, "rna_dim": 16}"#).unwrap();
    r.model = ModelSpec::File(config);
    let err = run(&r);
    assert!(
        matches!(
            err,
            Error::Run(RunError::ConfigMismatch {
                field: "wsi_dim",
                config: 768,
                data: 8
            })
        ),
        "{err}"
    );

    let mut r = request(data.clone(), settings(Task::Survival), out.clone());
    let err = run(&r);
    assert!(err.to_string().contains("survival_months"), "{err}");

    r.settings = settings(Task::Classification);
    r.folds = Some(40);
    let err = run(&r);
    assert!(err.to_string().contains("40 folds"), "{err}");

    // Negative survival times.
    let neg = dir.path().join("neg.csv");
    let text = std::fs::read_to_string(&data.csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[0].push_str(",survival_months,censorship");
    for (i, l) in lines.iter_mut().enumerate().skip(1) {
        l.push_str(if i == 3 { ",-1,0" } else { ",5,0" });
    }
    std::fs::write(&neg, lines.join("\n")).unwrap();
    let mut r = request(
        DataSource {
            csv: neg,
            ..data.clone()
        },
        settings(Task::Survival),
        out.clone(),
    );
    let err = run(&r);
    assert!(
        err.to_string().contains("line 4") && err.to_string().contains("negative"),
        "{err}"
    );

    // An existing run is never overwritten.
    r = request(data.clone(), settings(Task::Classification), out.clone());
    r.settings.epochs = 1;
    train::train(&r, &device, &mut quiet()).unwrap();
    let before = std::fs::read(out.join("model.bpk")).unwrap();
    assert!(matches!(run(&r), Error::Run(RunError::RunExists { .. })));
    assert_eq!(std::fs::read(out.join("model.bpk")).unwrap(), before);

    let err = train::resume(&dir.path().join("cohort"), None, &device, &mut quiet()).unwrap_err();
    assert!(matches!(err, Error::Run(RunError::NotARun { .. })), "{err}");

    // An unwritable run folder: a path under a regular file.
    let blocked = dir.path().join("model.json").join("run");
    let r = request(data, settings(Task::Classification), blocked);
    assert!(run(&r).to_string().contains("model.json"));
}

#[test]
fn the_cli_reports_bad_input_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(&dir.path().join("cohort"), false);
    let bin = env!("CARGO_BIN_EXE_med-crossvit");
    let run_dir = dir.path().join("run");
    let base = [
        "train",
        "--csv",
        data.csv.to_str().unwrap(),
        "--features",
        data.features_dir.to_str().unwrap(),
        "--out",
        run_dir.to_str().unwrap(),
    ];
    for (extra, needle) in [
        (vec!["--preset", "huge"], "unknown preset `huge`"),
        (vec!["--device", "tpu"], "unknown device `tpu`"),
        (vec!["--folds", "99"], "99 folds"),
    ] {
        let o = Command::new(bin).args(base).args(&extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(needle) && !stderr.contains("panicked"),
            "{extra:?}: {stderr}"
        );
    }
    let o = Command::new(bin)
        .args(["train", "--resume", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a med-crossvit run"));
}

/// Recomputing each layer in the backward pass (and, without gradient accumulation, updating
/// each layer's weights as soon as its gradients are known) trains as the ordinary step
/// does: without dropout the two runs' metrics agree up to float rounding.
#[test]
fn recomputing_layers_trains_like_the_ordinary_step() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(&dir.path().join("cohort"), false);
    let model = dir.path().join("model.json");
    std::fs::write(
        &model,
        r#"{"rna_dim": 8, "depth": 2, "wsi_enc_depth": 2, "rna_enc_depth": 1,
            "wsi_enc_heads": 2, "wsi_enc_dim_head": 4, "wsi_enc_mlp_dim": 16,
            "rna_enc_heads": 2, "rna_enc_dim_head": 4, "rna_enc_mlp_dim": 16,
            "cross_attn_depth": 1, "cross_attn_heads": 2, "cross_attn_dim_head": 4,
            "wsi_num_tiles": 8, "dropout": 0.0, "emb_dropout": 0.0}"#,
    )
    .unwrap();
    let device = Device::flex();
    let rows = |accumulation: usize, recompute: bool| {
        let out = dir.path().join(format!("run-{accumulation}-{recompute}"));
        let mut s = settings(Task::Classification);
        s.epochs = 3;
        s.grad_accumulation = accumulation;
        s.gradient_checkpointing = recompute;
        let mut r = request(data.clone(), s, out.clone());
        r.model = med_crossvit::run::ModelSpec::File(model.clone());
        train::train(&r, &device, &mut quiet()).unwrap();
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        csv.lines()
            .skip(1)
            .map(|line| {
                line.split(',')
                    .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    for accumulation in [1, 2] {
        let plain = rows(accumulation, false);
        let recomputed = rows(accumulation, true);
        assert_eq!(plain.len(), 3);
        assert_eq!(plain.len(), recomputed.len());
        for (a, b) in plain.iter().zip(&recomputed) {
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
                    "accumulation {accumulation}: {a:?} vs {b:?}"
                );
            }
        }
    }
}

/// Which models have the original's learned slot embedding: a new run's config file keeps
/// what it states and is position-free when it leaves the field out (as presets are, see
/// `model_behaviour`); an imported checkpoint keeps the embedding its weights hold, and so
/// does a new run configured from the imported folder's `config.json`; a saved run with the
/// embedding keeps it when resumed, even from a `config.json` written before the field
/// existed.
#[test]
fn only_models_that_ask_for_it_have_the_slot_embedding() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let resolve = |text: &str, wsi_dim: usize, genes: usize, classes: usize| {
        let path = dir.path().join("model.json");
        std::fs::write(&path, text).unwrap();
        med_crossvit::run::resolve_model(&ModelSpec::File(path), wsi_dim, genes, classes, 8)
            .unwrap()
    };
    let base = r#""rna_dim": 8, "wsi_num_tiles": 8"#;
    assert!(!resolve(&format!("{{{base}}}"), 8, 6, 2).wsi_pos_embedding);
    for stated in [true, false] {
        let text = format!(r#"{{{base}, "wsi_pos_embedding": {stated}}}"#);
        assert_eq!(resolve(&text, 8, 6, 2).wsi_pos_embedding, stated, "{text}");
    }

    let parity = support::manifest_dir().join("tests/fixtures/parity");
    let imported = dir.path().join("imported");
    let device = Device::flex();
    let model = med_crossvit::interop::import_torch(
        &parity.join("reference.pt"),
        &parity.join("reference_args.json"),
        None,
        &imported,
        &device,
    )
    .unwrap();
    assert!(model.config().wsi_pos_embedding);
    let saved = std::fs::read_to_string(imported.join("config.json")).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved["model"]["wsi_pos_embedding"], true, "{saved}");
    let loaded = ModelBundle::load(&imported, &device).unwrap();
    assert!(loaded.model.config().wsi_pos_embedding);
    let slots = loaded.model.wsi_embedder.pos_embedding.as_ref().unwrap();
    assert_eq!(
        slots.dims(),
        [1, model.config().wsi_num_tiles + 1, model.config().wsi_dim]
    );
    // Loading the folder keeps the imported embedding, value for value.
    let fresh = model.wsi_embedder.pos_embedding.as_ref().unwrap().val();
    assert_eq!(slots.val().into_data(), fresh.into_data());

    let c = model.config();
    let again = med_crossvit::run::resolve_model(
        &ModelSpec::File(imported.join("config.json")),
        c.wsi_dim,
        c.rna_num_genes,
        c.num_classes,
        c.wsi_num_tiles,
    )
    .unwrap();
    assert!(again.wsi_pos_embedding);

    let data = support::folders::cohort(dir.path());
    let run = dir.path().join("run");
    let mut request = support::folders::tiny_request(dir.path(), data, 2, run.clone());
    request.stop_after = Some(1);
    assert!(
        !train::train(&request, &device, &mut quiet())
            .unwrap()
            .finished
    );
    let path = run.join("config.json");
    let mut saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        saved["model"]["wsi_pos_embedding"], true,
        "tiny_model states it"
    );
    saved["model"]
        .as_object_mut()
        .unwrap()
        .remove("wsi_pos_embedding");
    std::fs::write(&path, serde_json::to_string_pretty(&saved).unwrap()).unwrap();
    assert!(
        train::resume(&run, None, &device, &mut quiet())
            .unwrap()
            .finished
    );
    let resumed = ModelBundle::load(&run, &device).unwrap();
    assert!(resumed.model.config().wsi_pos_embedding);
    assert!(resumed.model.wsi_embedder.pos_embedding.is_some());
}
