//! Run and model folders as user input: hand-edited files fail on load, naming file and
//! field; cross-validation folds resume on their own split; `predict` takes unlabeled rows;
//! one `train` process per run folder.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::tensor::Device;
use med_crossvit::train::{self, DataSource, ModelSpec, TrainSettings};
use serde_json::{Value, json};

mod common;

/// Trainings in one process share Burn's random generator (see tests/train.rs).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const GENES: usize = 4;

fn cohort(dir: &Path) -> DataSource {
    common::synth(&dir.join("cohort"), 16, 8, GENES, 5, false)
}

fn tiny_settings(epochs: usize) -> TrainSettings {
    TrainSettings {
        epochs,
        batch_size: 4,
        bag_size: 4,
        max_patches_total: 8,
        lr: 1e-3,
        warmup_epochs: 0.5,
        patience: 0,
        workers: 1,
        ..Default::default()
    }
}

fn tiny_request(dir: &Path, data: DataSource, epochs: usize, out: PathBuf) -> train::TrainRequest {
    let model = dir.join("tiny.json");
    std::fs::write(
        &model,
        serde_json::to_string(&common::tiny_model(2, GENES)).unwrap(),
    )
    .unwrap();
    train::TrainRequest {
        model: ModelSpec::File(model),
        ..common::request(data, tiny_settings(epochs), out)
    }
}

/// A finished one-epoch run of the tiny model in `dir/base`.
fn base_run(dir: &Path, data: &DataSource) -> PathBuf {
    let _serial = serial();
    let out = dir.join("base");
    let request = tiny_request(dir, data.clone(), 1, out.clone());
    train::train(&request, &Device::flex(), &mut |_| {}).unwrap();
    out
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_med-crossvit"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

fn copy_dir(from: &Path, to: &Path) {
    for (rel, bytes) in snapshot(from) {
        let path = to.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

#[derive(Debug, Clone, Copy)]
enum Cmd {
    Evaluate,
    Predict,
    Resume,
}

/// Runs `cmd` on the model folder `model`; the output it would write is `out`.
fn apply(cmd: Cmd, model: &Path, data: &DataSource, out: &Path) -> Output {
    let (model, csv, features, out) = (
        model.to_str().unwrap(),
        data.csv.to_str().unwrap(),
        data.features_dir.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let common = ["--model", model, "--csv", csv, "--features", features];
    match cmd {
        Cmd::Evaluate => bin(&[&["evaluate"], &common[..], &["--out", out]].concat()),
        Cmd::Predict => bin(&[&["predict"], &common[..], &["--out", out]].concat()),
        Cmd::Resume => bin(&["train", "--resume", model]),
    }
}

/// The survival variant of a classification folder: 2 time bins for its 2 outputs.
fn as_survival(config: &mut Value) {
    config["training"]["task"] = json!("survival");
    config["training"]["survival"]["bins"] = json!(2);
    config["survival_bins"] = json!({"edges": [0.0, 10.0, 20.0]});
}

#[test]
fn hand_edited_model_folders_fail_on_load_naming_file_and_field_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let base = base_run(dir.path(), &data);
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, Cmd, &str)> = vec![
        (
            "config.json",
            |c| c["training"]["batch_size"] = json!(0),
            Cmd::Evaluate,
            "training.batch_size",
        ),
        (
            "config.json",
            |c| c["training"]["workers"] = json!(0),
            Cmd::Predict,
            "training.workers",
        ),
        (
            "config.json",
            |c| c["training"]["bag_size"] = json!(0),
            Cmd::Predict,
            "training.bag_size",
        ),
        (
            "config.json",
            |c| c["training"]["lr"] = json!(0.0),
            Cmd::Resume,
            "training.lr",
        ),
        (
            "config.json",
            |c| c["training"]["lr"] = json!(-1e-3),
            Cmd::Evaluate,
            "training.lr",
        ),
        (
            "config.json",
            |c| c["training"]["epochs"] = json!(0),
            Cmd::Resume,
            "training.epochs",
        ),
        (
            "config.json",
            |c| c["training"]["val_fraction"] = json!(1.5),
            Cmd::Resume,
            "training.val_fraction",
        ),
        (
            "config.json",
            |c| c["model"]["dropout"] = json!(1.0),
            Cmd::Evaluate,
            "model.dropout",
        ),
        (
            "config.json",
            |c| c["model"]["depth"] = json!(0),
            Cmd::Predict,
            "model.depth",
        ),
        (
            "config.json",
            |c| c["model"]["wsi_num_tiles"] = json!(2),
            Cmd::Evaluate,
            "model.wsi_num_tiles",
        ),
        (
            "config.json",
            |c| c["folds"] = json!(1),
            Cmd::Resume,
            "`folds`",
        ),
        (
            "config.json",
            |c| {
                as_survival(c);
                c["survival_bins"]["edges"] = json!([0.0])
            },
            Cmd::Predict,
            "survival_bins.edges",
        ),
        (
            "config.json",
            |c| {
                as_survival(c);
                c["survival_bins"]["edges"] = json!([0.0, 20.0, 10.0])
            },
            Cmd::Predict,
            "survival_bins.edges",
        ),
        (
            "config.json",
            |c| {
                as_survival(c);
                c["survival_bins"]["edges"] = json!([0.0, 5.0, 10.0, 20.0])
            },
            Cmd::Evaluate,
            "survival_bins.edges",
        ),
        (
            "config.json",
            |c| {
                as_survival(c);
                c["training"]["survival"]["bins"] = json!(3)
            },
            Cmd::Predict,
            "training.survival.bins",
        ),
        (
            "config.json",
            |c| {
                as_survival(c);
                c["survival_bins"] = Value::Null
            },
            Cmd::Predict,
            "`survival_bins`",
        ),
        (
            "normalization.json",
            |n| {
                for k in ["genes", "mean", "std"] {
                    n[k].as_array_mut().unwrap().pop();
                }
            },
            Cmd::Predict,
            "`mean`",
        ),
        (
            "normalization.json",
            |n| {
                n["std"].as_array_mut().unwrap().pop();
            },
            Cmd::Evaluate,
            "`std`",
        ),
        (
            "normalization.json",
            |n| n["std"][1] = json!(-1.0),
            Cmd::Predict,
            "std[1]",
        ),
        (
            "normalization.json",
            |n| n["std"][0] = json!(0.0),
            Cmd::Resume,
            "std[0]",
        ),
        (
            "labels.json",
            |l| l["classes"] = json!(["0"]),
            Cmd::Evaluate,
            "`classes`",
        ),
        (
            "labels.json",
            |l| l["classes"] = json!(["0", "0"]),
            Cmd::Predict,
            "`classes`",
        ),
        (
            "labels.json",
            |l| l["classes"] = json!([]),
            Cmd::Resume,
            "`classes`",
        ),
        (
            "checkpoints/epoch-0001/state.json",
            |s| s["best"][0] = json!(5),
            Cmd::Resume,
            "`best`",
        ),
        (
            "checkpoints/epoch-0001/state.json",
            |s| s["history"] = json!([]),
            Cmd::Resume,
            "`history`",
        ),
        (
            "checkpoints/latest.json",
            |p| p["folder"] = json!("../../elsewhere"),
            Cmd::Resume,
            "`folder`",
        ),
    ];
    // The unedited folder, and its survival variant, work with each command: the failures
    // below come from the edits alone.
    let survival = dir.path().join("survival");
    copy_dir(&base, &survival);
    edit_json(&survival.join("config.json"), as_survival);
    for (model, cmd) in [
        (&base, Cmd::Evaluate),
        (&base, Cmd::Predict),
        (&survival, Cmd::Predict),
    ] {
        let out = dir.path().join(format!("ok-{cmd:?}"));
        let o = apply(cmd, model, &data, &out);
        assert!(
            o.status.success(),
            "{cmd:?} {}: {}",
            model.display(),
            stderr(&o)
        );
        assert!(out.exists());
    }
    let resumed = dir.path().join("resumed");
    copy_dir(&base, &resumed);
    let o = apply(Cmd::Resume, &resumed, &data, &resumed);
    assert!(o.status.success(), "{}", stderr(&o));

    for (i, (file, edit, cmd, field)) in cases.into_iter().enumerate() {
        let folder = dir.path().join(format!("case-{i}"));
        copy_dir(&base, &folder);
        edit_json(&folder.join(file), edit);
        let before = snapshot(&folder);
        let out = dir.path().join(format!("out-{i}"));
        let o = apply(cmd, &folder, &data, &out);
        let err = stderr(&o);
        let what = format!("case {i}: {file} {field} with {cmd:?}");
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        let named = folder.join(file).display().to_string();
        assert!(err.contains(&named) && err.contains(field), "{what}: {err}");
        assert!(!out.exists(), "{what}: output written");
        assert!(
            snapshot(&folder) == before,
            "{what}: the run folder changed"
        );
    }
}

/// The CSV of `data` with the label cell of row `row` (from 0) replaced by `label`.
fn relabel(data: &DataSource, rows: &[(usize, &str)], path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(&data.csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    assert!(lines[0].starts_with("wsi_file_name,project,label,"));
    let mut slides = Vec::new();
    for &(row, label) in rows {
        let mut cells: Vec<&str> = lines[row + 1].split(',').collect();
        cells[2] = label;
        slides.push(cells[0].to_string());
        lines[row + 1] = cells.join(",");
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    slides
}

#[test]
fn predict_takes_rows_without_a_label_and_names_the_slide_of_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let base = base_run(dir.path(), &data);
    let csv = dir.path().join("partly.csv");
    let unlabeled = relabel(&data, &[(1, ""), (4, "")], &csv);
    let partly = DataSource {
        csv,
        ..data.clone()
    };
    let out = dir.path().join("pred.csv");
    let o = apply(Cmd::Predict, &base, &partly, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let header = reader.headers().unwrap().clone();
    let label = header.iter().position(|h| h == "label").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 16, "every slide is predicted");
    for row in &rows {
        let empty = row[label].is_empty();
        assert_eq!(empty, unlabeled.contains(&row[0].to_string()), "{row:?}");
    }

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
}

#[test]
fn a_second_train_on_a_locked_run_refuses_at_once_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let base = base_run(dir.path(), &data);
    let before = snapshot(&base);
    let lock = File::options()
        .write(true)
        .open(base.join(train::LOCK_FILE))
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

    // A new run into a folder whose lock is held (a first process that has not written its
    // config yet) refuses too.
    let fresh = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let fresh_lock = File::create(fresh.join(train::LOCK_FILE)).unwrap();
    fresh_lock.try_lock().unwrap();
    let o = bin(&[
        "train",
        "--csv",
        data.csv.to_str().unwrap(),
        "--features",
        data.features_dir.to_str().unwrap(),
        "--out",
        fresh.to_str().unwrap(),
    ]);
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
