//! Runs: cross-validation folds resume on their own split; `predict` takes rows without a
//! target; one `train` process per run folder.

use std::fs::File;
use std::path::Path;

use burn::tensor::Device;
use med_crossvit::run::DataSource;
use med_crossvit::train;
use serde_json::Value;

mod common;
#[path = "support/folders.rs"]
mod folders;

use folders::{
    Cmd, GENES, apply, as_survival, base_run, bin, cohort, copy_dir, edit_cells, edit_json,
    relabel, serial, snapshot, stderr, tiny_request,
};

#[test]
fn predict_takes_rows_without_a_target_and_names_the_slide_of_an_unknown_label() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let base = base_run(dir.path(), &data);
    let csv = dir.path().join("partly.csv");
    // Rows 1 and 5 are patients of one slide each.
    let unlabeled = relabel(&data, &[(1, ""), (5, "")], &csv);
    let partly = DataSource {
        csv,
        ..data.clone()
    };
    let out = dir.path().join("pred.csv");
    let o = apply(Cmd::Predict, &base, &partly, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    // Progress with the time elapsed and left, ending with every bag predicted.
    let err = stderr(&o);
    let last = err
        .lines()
        .rfind(|l| l.starts_with("bags predicted "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        last.contains(", elapsed ") && last.contains(", ETA 0s"),
        "{err}"
    );
    let slides_out = dir.path().join("pred_slides.csv");
    let mut reader = csv::Reader::from_path(&slides_out).unwrap();
    let header = reader.headers().unwrap().clone();
    let label = header.iter().position(|h| h == "label").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 16, "every slide is predicted");
    for row in &rows {
        let empty = row[label].is_empty();
        assert_eq!(empty, unlabeled.contains(&row[0].to_string()), "{row:?}");
    }
    // One row per patient: the 16 slides are 13 patients (every fourth has two slides).
    let patients = csv::Reader::from_path(&out).unwrap().records().count();
    assert_eq!(patients, 13);
    // A patient whose second slide has no label takes the first's: missing is not a
    // disagreement.
    let csv = dir.path().join("half-labeled.csv");
    relabel(&data, &[(4, "")], &csv);
    let o = apply(
        Cmd::Predict,
        &base,
        &DataSource {
            csv,
            ..data.clone()
        },
        &dir.path().join("pred-half-labeled.csv"),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // `evaluate` needs every label: the first empty one is named by its line.
    let o = apply(Cmd::Evaluate, &base, &partly, &dir.path().join("eval"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 3"), "{}", stderr(&o));

    let csv = dir.path().join("unknown.csv");
    let slides = relabel(&data, &[(6, "7")], &csv);
    let out = dir.path().join("pred-unknown.csv");
    let o = apply(Cmd::Predict, &base, &DataSource { csv, ..data }, &out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("slide `{}`", slides[0])) && err.contains("`7`"),
        "{err}"
    );
    assert!(!out.exists());

    // Survival: a row without time and censorship is predicted without them; a row with one
    // of the two is an error naming its line and the empty column.
    let survival = dir.path().join("survival");
    copy_dir(&base, &survival);
    edit_json(&survival.join("config.json"), as_survival);
    let timed = common::synth(&dir.path().join("timed"), 16, 8, GENES, 5, true);
    let csv = dir.path().join("untimed.csv");
    let untimed = edit_cells(
        &timed,
        &[(2, "survival_months", ""), (2, "censorship", "")],
        &csv,
    );
    let out = dir.path().join("pred-survival.csv");
    let o = apply(
        Cmd::Predict,
        &survival,
        &DataSource {
            csv,
            ..timed.clone()
        },
        &out,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut reader = csv::Reader::from_path(dir.path().join("pred-survival_slides.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let time = header.iter().position(|h| h == "survival_months").unwrap();
    let risk = header.iter().position(|h| h == "risk").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 16);
    for row in &rows {
        assert_eq!(row[time].is_empty(), row[0] == untimed[0], "{row:?}");
        assert!(row[risk].parse::<f64>().unwrap() < 0.0, "{row:?}");
    }
    let csv = dir.path().join("half.csv");
    edit_cells(&timed, &[(3, "censorship", "")], &csv);
    let out = dir.path().join("pred-half.csv");
    let o = apply(Cmd::Predict, &survival, &DataSource { csv, ..timed }, &out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 5 (slide `SYN-0003-01Z-00-DX1`), column `censorship`"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_second_train_on_a_locked_run_refuses_at_once_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let base = base_run(dir.path(), &data);
    let before = snapshot(&base);
    let lock = File::options()
        .write(true)
        .open(base.join(med_crossvit::run::LOCK_FILE))
        .unwrap();
    lock.try_lock().unwrap();

    let o = bin(&["train", "--resume", base.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("in use by another `train` process"),
        "{}",
        stderr(&o)
    );
    assert!(snapshot(&base) == before, "the locked run changed");
    let train_into = |out: &Path| {
        bin(&[
            "train",
            "--csv",
            data.csv.to_str().unwrap(),
            "--features",
            data.features_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = train_into(&base);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("in use by another"), "{}", stderr(&o));
    assert!(snapshot(&base) == before, "the locked run changed");

    // A new run into a folder whose lock is held (a first process that has not written its
    // config yet) refuses too.
    let fresh = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let fresh_lock = File::create(fresh.join(med_crossvit::run::LOCK_FILE)).unwrap();
    fresh_lock.try_lock().unwrap();
    let o = train_into(&fresh);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("in use by another"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(&fresh).unwrap().count(),
        1,
        "only the lock file"
    );

    // Released (as by the death of the first process), the run resumes.
    drop(lock);
    let o = bin(&["train", "--resume", base.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// `cv.json` without the folders' paths, which differ between runs.
fn cv_summary(dir: &Path) -> Value {
    let mut v: Value = serde_json::from_str(&read(dir, "cv.json")).unwrap();
    for fold in v["folds"].as_array_mut().unwrap() {
        fold.as_object_mut().unwrap().remove("out");
    }
    v
}

#[test]
fn an_interrupted_cross_validation_resumes_by_fold_or_by_run_like_an_uninterrupted_one() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let device = Device::flex();
    let request = |out: &str| {
        let mut r = tiny_request(dir.path(), data.clone(), 2, dir.path().join(out));
        r.folds = Some(2);
        r
    };
    train::train(&request("whole"), &device, &mut |_| {}).unwrap();
    for way in ["by-fold", "by-run"] {
        let cut = dir.path().join(way);
        let mut interrupted = request(way);
        interrupted.stop_after = Some(1);
        assert!(
            !train::train(&interrupted, &device, &mut |_| {})
                .unwrap()
                .finished
        );
        if way == "by-fold" {
            let fold = train::resume(&cut.join("fold_0"), None, &device, &mut |_| {}).unwrap();
            assert!(fold.finished && fold.folds.len() == 1 && fold.folds[0].fold == 0);
            assert!(cut.join("fold_0/metrics.json").is_file());
            assert!(!cut.join("fold_1").exists() && !cut.join("cv.json").exists());
        }
        assert!(
            train::resume(&cut, None, &device, &mut |_| {})
                .unwrap()
                .finished
        );
        for file in [
            "fold_0/metrics.csv",
            "fold_1/metrics.csv",
            "fold_0/metrics.json",
        ] {
            let whole = dir.path().join("whole");
            assert_eq!(read(&whole, file), read(&cut, file), "{way}: {file}");
        }
        assert_eq!(
            cv_summary(&dir.path().join("whole")),
            cv_summary(&cut),
            "{way}"
        );
    }
}

/// `train` of the tiny model on `data` into `out` for `epochs` epochs, by the binary, then
/// `extra`; `env` set for the process.
fn train_bin(
    dir: &Path,
    data: &DataSource,
    out: &Path,
    epochs: usize,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let model = dir.join("tiny.json");
    std::fs::write(
        &model,
        serde_json::to_string(&common::tiny_model(2, GENES)).unwrap(),
    )
    .unwrap();
    let epochs = epochs.to_string();
    let mut args = vec![
        "train",
        "--csv",
        data.csv.to_str().unwrap(),
        "--features",
        data.features_dir.to_str().unwrap(),
        "--config",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        &epochs,
        "--bootstrap",
        "20",
    ];
    args.extend_from_slice(&common::TINY_STEP_FLAGS);
    args.extend_from_slice(extra);
    std::process::Command::new(env!("CARGO_BIN_EXE_med-crossvit"))
        .args(&args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `med-crossvit ARGS` run in the folder `cwd`.
fn bin_in(cwd: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_med-crossvit"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

/// Expression far beyond what the model takes (3·10³⁸ in every gene, passed as is by
/// `--normalize none`) makes the loss overflow: training stops in batch 1 of epoch 1 with an error naming the
/// fit, epoch, batch, the gene and patient of the largest value and the fix; exit 1; the
/// folder keeps its settings and nothing of the epoch; `--resume` starts it again and stops
/// the same way.
#[test]
fn a_loss_that_overflows_stops_training_at_once_naming_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let csv = dir.path().join("huge.csv");
    let genes: Vec<String> = (0..GENES).map(|g| format!("rna_{g}")).collect();
    let edits: Vec<(usize, &str, &str)> = (0..16)
        .flat_map(|r| genes.iter().map(move |g| (r, g.as_str(), "3e38")))
        .collect();
    edit_cells(&data, &edits, &csv);
    let huge = DataSource { csv, ..data };
    let out = dir.path().join("run");
    let o = train_bin(dir.path(), &huge, &out, 2, &["--normalize", "none"], &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("training, epoch 1, batch 1 of "), "{err}");
    assert!(err.contains("is not a finite number"), "{err}");
    assert!(
        err.contains("likely cause: expression far outside"),
        "{err}"
    );
    assert!(err.contains("rna_0 = 3.000e38 (patient SYN-"), "{err}");
    assert!(err.contains("after --normalize none"), "{err}");
    assert!(err.contains("--normalize zscore"), "{err}");
    assert!(err.contains("no checkpoint"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.join("config.json").is_file());
    for nothing in ["metrics.csv", "model.bpk", "metrics.json", "checkpoints"] {
        assert!(!out.join(nothing).exists(), "{nothing}");
    }
    let o = bin(&["train", "--resume", out.to_str().unwrap()]);
    let again = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{again}");
    assert!(again.contains("training, epoch 1, batch 1 of "), "{again}");
    assert!(!out.join("metrics.csv").exists());
}

/// A batch whose inputs turn NaN in epoch 2 (the test hook) stops training there: exit 1,
/// the error names epoch 2, batch 1 and the checkpoint of epoch 1 the folder keeps; nothing
/// of epoch 2 is written. `--resume` without the fault then ends where an uninterrupted
/// run does.
#[test]
fn a_non_finite_loss_in_epoch_2_leaves_the_run_resumable_from_epoch_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let whole = dir.path().join("whole");
    let o = train_bin(dir.path(), &data, &whole, 3, &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cut = dir.path().join("cut");
    let o = train_bin(
        dir.path(),
        &data,
        &cut,
        3,
        &[],
        &[(train::POISON_VAR, "2@1")],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("training, epoch 2, batch 1 of "), "{err}");
    assert!(
        err.contains(": the training loss is not a finite number (NaN)"),
        "{err}"
    );
    // The batch's inputs as read are ordinary (the hook spoils them after reading).
    assert!(
        err.contains("likely cause: the inputs look ordinary"),
        "{err}"
    );
    assert!(err.contains("try a lower --lr"), "{err}");
    assert!(err.contains("keeps the checkpoint of epoch 1"), "{err}");
    let rows = read(&cut, "metrics.csv");
    assert_eq!(rows.lines().count(), 2, "{rows}");
    assert!(rows.lines().nth(1).unwrap().starts_with("1,"), "{rows}");
    assert!(!cut.join("metrics.json").exists());
    let o = apply(Cmd::Resume, &cut, &data, &cut);
    assert!(o.status.success(), "{}", stderr(&o));
    for file in ["metrics.csv", "metrics.json"] {
        assert_eq!(read(&whole, file), read(&cut, file), "{file}");
    }
}

/// `--select last`: each fold keeps and reports its last epoch (model.bpk, metrics.json,
/// cv.json, cv_predictions.csv say so), and cv.json gives the means of the best and of the
/// last epochs' validation rows, as metrics.csv has them.
#[test]
fn select_last_reports_the_last_epoch_and_both_means() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let out = dir.path().join("cv");
    let mut request = tiny_request(dir.path(), data, 3, out.clone());
    request.folds = Some(2);
    request.settings.select = med_crossvit::run::Select::Last;
    let summary = train::train(&request, &Device::flex(), &mut |_| {}).unwrap();
    let cv = cv_summary(&out);
    assert_eq!(cv["checkpoint"], "last");
    assert_eq!(cv["selection_metric"], "val_auc");
    // metrics.csv rows by epoch: (val_loss, val_auc).
    let rows = |k: usize| -> Vec<(f64, f64)> {
        read(&out.join(format!("fold_{k}")), "metrics.csv")
            .lines()
            .skip(1)
            .map(|l| {
                let c: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
                (c[3], c[6])
            })
            .collect()
    };
    let mut best = Vec::new();
    let mut last = Vec::new();
    for k in 0..2 {
        let fold = &cv["folds"][k];
        assert_eq!(fold["fold"], k);
        assert_eq!(fold["checkpoint"], "last");
        assert_eq!(fold["epoch"], 3);
        assert_eq!(fold["last_epoch"], 3);
        let rows = rows(k);
        assert_eq!(rows.len(), 3);
        // The best epoch: highest AUC, ties to the lower loss, first wins.
        let mut b = 0;
        for (i, r) in rows.iter().enumerate() {
            if r.1 > rows[b].1 || (r.1 == rows[b].1 && r.0 < rows[b].0) {
                b = i;
            }
        }
        assert_eq!(fold["best_epoch"], b + 1, "fold {k}");
        best.push(rows[b].1);
        last.push(rows[2].1);
        // The kept checkpoint's metrics are the last epoch's.
        let m: Value =
            serde_json::from_str(&read(&out.join(format!("fold_{k}")), "metrics.json")).unwrap();
        assert!((m["auc"].as_f64().unwrap() - rows[2].1).abs() < 1e-6);
        assert_eq!(summary.folds[k].epoch, 3);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!((cv["last"]["mean"]["auc"].as_f64().unwrap() - mean(&last)).abs() < 1e-6);
    assert!((cv["best"]["mean"]["auc"].as_f64().unwrap() - mean(&best)).abs() < 1e-6);
    assert!((cv["mean"]["auc"].as_f64().unwrap() - mean(&last)).abs() < 1e-6);
    let mut reader = csv::Reader::from_path(out.join("cv_predictions.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (checkpoint, epoch) = (at("checkpoint"), at("epoch"));
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(!records.is_empty());
    for r in &records {
        assert_eq!((&r[checkpoint], &r[epoch]), ("last", "3"));
    }
    let config: Value = serde_json::from_str(&read(&out, "config.json")).unwrap();
    assert_eq!(config["training"]["select"], "last");
    // Interrupted after one epoch and resumed (the selection read back from config.json):
    // the same cv.json.
    let cut = dir.path().join("cut");
    let mut interrupted = tiny_request(
        dir.path(),
        cohort(&dir.path().join("again")),
        3,
        cut.clone(),
    );
    interrupted.folds = Some(2);
    interrupted.settings.select = med_crossvit::run::Select::Last;
    interrupted.stop_after = Some(1);
    assert!(
        !train::train(&interrupted, &Device::flex(), &mut |_| {})
            .unwrap()
            .finished
    );
    assert!(
        train::resume(&cut, None, &Device::flex(), &mut |_| {})
            .unwrap()
            .finished
    );
    assert_eq!(cv_summary(&cut), cv);
    let report =
        std::fs::read_to_string(med_crossvit::report::write_report(&out).unwrap()).unwrap();
    assert!(report.contains("the checkpoint of the last epoch (--select last)"));
    assert!(report.contains("last epochs (metrics.csv)"));
}

/// Validation patients whose expression overflows the model (training patients are
/// ordinary): their predictions are NaN, which is an error naming them at epoch 1, never a
/// c-index or AUC of 0 and never a "best" epoch; nothing of the epoch is written.
#[test]
fn non_finite_validation_predictions_stop_training_and_are_never_best() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let text = std::fs::read_to_string(&data.csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let patient = header.iter().position(|h| *h == "patient_id").unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let mut patients: Vec<&str> = rows.iter().map(|r| r[patient]).collect();
    patients.dedup();
    // The first two patients validate, with every gene at 3·10³⁸.
    let val = &patients[..2];
    let edits: Vec<(usize, String)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| val.contains(&r[patient]))
        .flat_map(|(i, _)| (0..GENES).map(move |g| (i, format!("rna_{g}"))))
        .collect();
    let edits: Vec<(usize, &str, &str)> = edits
        .iter()
        .map(|(i, g)| (*i, g.as_str(), "3e38"))
        .collect();
    let csv = dir.path().join("huge-val.csv");
    edit_cells(&data, &edits, &csv);
    let splits = dir.path().join("splits.csv");
    let mut lines = vec!["train,val,test".to_string()];
    for (i, p) in patients[2..].iter().enumerate() {
        lines.push(format!("{p},{},", val.get(i).copied().unwrap_or("")));
    }
    std::fs::write(&splits, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("run");
    let o = train_bin(
        dir.path(),
        &DataSource { csv, ..data },
        &out,
        2,
        &["--normalize", "none", "--splits", splits.to_str().unwrap()],
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let expected = format!(
        "training, epoch 1, validation: a validation prediction is not a finite number (2 of 2 \
         patients, first {})",
        val[0]
    );
    assert!(err.contains(&expected), "{err}");
    assert!(
        err.contains(&format!("rna_0 = 3.000e38 (patient {}", val[0]))
            || err.contains(&format!("rna_0 = 3.000e38 (patient {}", val[1])),
        "{err}"
    );
    assert!(!err.contains("(best"), "{err}");
    for nothing in ["metrics.csv", "model.bpk", "checkpoints"] {
        assert!(!out.join(nothing).exists(), "{nothing}");
    }
}

#[test]
fn no_command_writes_over_a_run_or_into_a_folder_that_is_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let base = base_run(dir.path(), &data);
    let before = snapshot(&base);
    let parity = common::manifest_dir().join("tests/fixtures/parity");
    let (csv, features) = (
        data.csv.to_str().unwrap(),
        data.features_dir.to_str().unwrap(),
    );
    let b = base.to_str().unwrap();
    let refused = |o: &std::process::Output, what: &str| {
        let err = stderr(o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains("refusing to write") && err.contains(what),
            "{err}"
        );
        assert!(err.contains("--force"), "{err}");
        assert!(snapshot(&base) == before, "the run changed: {err}");
    };
    // import-torch over a trained run (it used to replace model.bpk and config.json).
    let import = |out: &Path, force: bool| {
        let mut args = vec![
            "import-torch".to_string(),
            "--checkpoint".into(),
            parity.join("reference.pt").to_str().unwrap().into(),
            "--args".into(),
            parity.join("reference_args.json").to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ];
        if force {
            args.push("--force".into());
        }
        bin(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    refused(&import(&base, false), "it is a run or model folder");
    refused(
        &import(&base.join("imported"), false),
        "lies inside the run",
    );
    // evaluate into its own model's folder (it used to overwrite metrics.json), or inside it.
    let model = ["--model", b, "--csv", csv, "--features", features];
    let evaluate = |out: &Path, extra: &[&str]| {
        let out = ["--out", out.to_str().unwrap()];
        bin(&[&["evaluate"], &model[..], &out[..], extra].concat())
    };
    refused(&evaluate(&base, &[]), "it is a run or model folder");
    refused(&evaluate(&base.join("eval"), &[]), "lies inside the run");
    // predict over a run's file (it used to overwrite metrics.csv).
    let predict = |out: &Path, extra: &[&str]| {
        let out = ["--out", out.to_str().unwrap()];
        bin(&[&["predict"], &model[..], &out[..], extra].concat())
    };
    refused(
        &predict(&base.join("metrics.csv"), &[]),
        "lies inside the run",
    );
    // A file that is not a predictions CSV: the cohort itself.
    let cohort_copy = dir.path().join("cohort_copy.csv");
    std::fs::copy(&data.csv, &cohort_copy).unwrap();
    let o = predict(&cohort_copy, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a predictions CSV"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(&cohort_copy).unwrap(),
        std::fs::read(&data.csv).unwrap()
    );
    // train into a run says --resume; into someone's folder, refused, its file untouched.
    let o = bin(&["train", "--csv", csv, "--features", features, "--out", b]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("pass --resume"), "{}", stderr(&o));
    let notes = dir.path().join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    std::fs::write(notes.join("todo.txt"), "mine").unwrap();
    let n = notes.to_str().unwrap();
    let o = bin(&["train", "--csv", csv, "--features", features, "--out", n]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("holds 1 file(s) that `train` does not write (such as `todo.txt`)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(&notes).unwrap().count(), 1);
    assert!(snapshot(&base) == before);

    // What a command wrote, it may write again; --force writes where it is told.
    let eval = dir.path().join("eval");
    for _ in 0..2 {
        let o = evaluate(&eval, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let pred = dir.path().join("pred.csv");
    for _ in 0..2 {
        let o = predict(&pred, &["--per-slide"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = evaluate(&notes, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(notes.join("metrics.json").is_file() && notes.join("todo.txt").is_file());
    let copy = dir.path().join("copy");
    copy_dir(&base, &copy);
    let o = import(&copy, true);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(
        std::fs::read(copy.join("model.bpk")).unwrap(),
        before[Path::new("model.bpk")]
    );
}

#[test]
fn a_run_started_with_relative_paths_resumes_from_anywhere_and_follows_a_moved_cohort() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    cohort(&root);
    std::fs::write(
        root.join("tiny.json"),
        serde_json::to_string(&common::tiny_model(2, GENES)).unwrap(),
    )
    .unwrap();
    // Started in `root` with paths relative to it; stopped after epoch 1 of 3.
    let o = bin_in(
        &root,
        &[
            "train",
            "--csv",
            "cohort/cohort.csv",
            "--features",
            "cohort/features",
            "--config",
            "tiny.json",
            "--out",
            "run",
            "--epochs",
            "3",
            "--batch-size",
            "4",
            "--bag-size",
            "4",
            "--max-patches-total",
            "8",
            "--workers",
            "1",
            "--bootstrap",
            "0",
            "--stop-after-epoch",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let config = |run: &Path| -> Value { serde_json::from_str(&read(run, "config.json")).unwrap() };
    let run = root.join("run");
    assert_eq!(
        config(&run)["data"]["csv"],
        root.join("cohort/cohort.csv").to_str().unwrap()
    );
    // Resumed from another folder, the run finds its cohort.
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let o = bin_in(
        &elsewhere,
        &["train", "--resume", "../run", "--stop-after-epoch", "2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read(&run, "metrics.csv").lines().count(),
        3,
        "epochs 1 and 2"
    );
    // The cohort moved: the error names the recorded place; --csv/--features relocate it,
    // and the run records the new place.
    std::fs::rename(root.join("cohort"), root.join("moved")).unwrap();
    let o = bin_in(&elsewhere, &["train", "--resume", "../run"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cohort/cohort.csv"), "{}", stderr(&o));
    let o = bin_in(
        &elsewhere,
        &[
            "train",
            "--resume",
            "../run",
            "--csv",
            "../moved/cohort.csv",
            "--features",
            "../moved/features",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&run, "metrics.csv").lines().count(), 4, "all 3 epochs");
    let data = &config(&run)["data"];
    assert_eq!(data["csv"], root.join("moved/cohort.csv").to_str().unwrap());
    assert_eq!(
        data["features_dir"],
        root.join("moved/features").to_str().unwrap()
    );
}
