//! Helpers of the run-folder tests (tests/folders.rs, tests/runs.rs): a tiny model trained
//! once, folder snapshots and copies, JSON and CSV edits, the commands run as a user would.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use burn::tensor::Device;
use med_crossvit::run::{DataSource, ModelSpec, TrainSettings};
use med_crossvit::train;
use serde_json::{Value, json};

use super::common;

/// Trainings in one process share Burn's random generator (see tests/train.rs).
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub const GENES: usize = 4;

pub fn cohort(dir: &Path) -> DataSource {
    common::synth(&dir.join("cohort"), 16, 8, GENES, 5, false)
}

pub fn tiny_settings(epochs: usize) -> TrainSettings {
    TrainSettings {
        epochs,
        batch_size: 4,
        bags: med_crossvit::data::BagSettings {
            bag_size: 4,
            max_patches_total: 8,
        },
        lr: 1e-3,
        warmup_epochs: 0.5,
        patience: 0,
        workers: 1,
        ..Default::default()
    }
}

pub fn tiny_request(
    dir: &Path,
    data: DataSource,
    epochs: usize,
    out: PathBuf,
) -> train::TrainRequest {
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
pub fn base_run(dir: &Path, data: &DataSource) -> PathBuf {
    let _serial = serial();
    let out = dir.join("base");
    let request = tiny_request(dir, data.clone(), 1, out.clone());
    train::train(&request, &Device::flex(), &mut |_| {}).unwrap();
    out
}

pub use super::common::bin;

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir` with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
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

pub fn copy_dir(from: &Path, to: &Path) {
    for (rel, bytes) in snapshot(from) {
        let path = to.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

pub fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

#[derive(Debug, Clone, Copy)]
pub enum Cmd {
    Evaluate,
    Predict,
    Resume,
}

/// Runs `cmd` on the model folder `model`; the output it would write is `out` (`predict`
/// also writes its per-slide rows, `X_slides.csv` beside `X.csv`).
pub fn apply(cmd: Cmd, model: &Path, data: &DataSource, out: &Path) -> Output {
    let (model, csv, features, out) = (
        model.to_str().unwrap(),
        data.csv.to_str().unwrap(),
        data.features_dir.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let common = ["--model", model, "--csv", csv, "--features", features];
    match cmd {
        Cmd::Evaluate => bin(&[&["evaluate"], &common[..], &["--out", out]].concat()),
        Cmd::Predict => bin(&[&["predict"], &common[..], &["--out", out, "--per-slide"]].concat()),
        Cmd::Resume => bin(&["train", "--resume", model]),
    }
}

/// The survival variant of a classification folder: 2 time bins for its 2 outputs.
pub fn as_survival(config: &mut Value) {
    config["training"]["task"] = json!("survival");
    config["training"]["survival"]["bins"] = json!(2);
    config["survival_bins"] = json!({"edges": [0.0, 10.0, 20.0]});
}

/// The CSV of `data` written to `path` with the cells `(row from 0, column, value)` replaced;
/// returns the slides of the edited rows.
pub fn edit_cells(data: &DataSource, edits: &[(usize, &str, &str)], path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(&data.csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let header: Vec<String> = lines[0].split(',').map(String::from).collect();
    let mut slides = Vec::new();
    for &(row, column, value) in edits {
        let at = header.iter().position(|h| h == column).unwrap();
        let mut cells: Vec<&str> = lines[row + 1].split(',').collect();
        cells[at] = value;
        slides.push(cells[0].to_string());
        lines[row + 1] = cells.join(",");
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    slides
}

pub fn relabel(data: &DataSource, rows: &[(usize, &str)], path: &Path) -> Vec<String> {
    let edits: Vec<(usize, &str, &str)> = rows.iter().map(|&(r, v)| (r, "label", v)).collect();
    edit_cells(data, &edits, path)
}
