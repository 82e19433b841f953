//! Helpers shared by the integration tests: small synthetic cohorts and training requests,
//! the binary run as a user would, the lock around Burn's process-wide random generator, and
//! the skip notice.
//!
//! - [`folders`]: the run-folder tests' tiny trained run, snapshots and edits;
//! - `fuzz/`: the fuzzing targets, mutations and counting allocator, shared by the seeded
//!   corpus (`tests/fuzz.rs`) and the harness (`examples/fuzz.rs`), which include it with
//!   `#[path]` (it is no module here: its allocator is that binary's global one).
//!
//! `tests/it/main.rs` declares this module; `tests/wgpu.rs` and `tests/mpi.rs` include it with
//! `#[path = "it/support/mod.rs"]`.
#![allow(dead_code)]

#[cfg(feature = "cli")]
pub mod folders;

use std::path::{Path, PathBuf};
use std::process::Output;

use med_crossvit::MedCrossViTConfig;
use med_crossvit::data::{CohortColumns, SynthOptions, write_synthetic_cohort};
use med_crossvit::run::{DataSource, ModelSpec, TrainSettings};
use med_crossvit::train::TrainRequest;

/// The crate's folder, read when the test runs: the test binaries may have been built from
/// another checkout sharing the target folder (CI reuses one), so the compile-time
/// `env!("CARGO_MANIFEST_DIR")` could name a folder that is gone.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("a working directory"))
}

/// A synthetic cohort of `slides` slides of up to `tiles` 8-wide tiles and `genes` genes in
/// `dir`.
pub fn synth(
    dir: &Path,
    slides: usize,
    tiles: usize,
    genes: usize,
    seed: u64,
    survival: bool,
) -> DataSource {
    let options = SynthOptions {
        slides,
        tiles,
        dim: 8,
        genes,
        survival,
        seed,
        ..Default::default()
    };
    let written = write_synthetic_cohort(dir, &options).unwrap();
    DataSource {
        csv: written.csv,
        features_dir: written.features_dir,
        features_key: None,
        skip_missing: false,
    }
}

/// Training of the small preset on `data` into `out`, dense tokenizer, one split.
pub fn request(data: DataSource, settings: TrainSettings, out: PathBuf) -> TrainRequest {
    TrainRequest {
        data,
        columns: CohortColumns::default(),
        model: ModelSpec::Preset("small".into()),
        tokenizer: None,
        settings,
        folds: None,
        out,
        stop_after: None,
        force: false,
    }
}

/// A one-block model for bags of up to 6 tiles of width 8 and `genes` genes, with 6-wide gene
/// tokens, 2 heads of 4 everywhere and MLPs of 16.
pub fn tiny_model(num_classes: usize, genes: usize) -> MedCrossViTConfig {
    MedCrossViTConfig {
        depth: 1,
        wsi_num_tiles: 6,
        wsi_enc_depth: 1,
        wsi_enc_heads: 2,
        wsi_enc_mlp_dim: 16,
        wsi_enc_dim_head: 4,
        rna_num_genes: genes,
        rna_enc_depth: 1,
        rna_enc_heads: 2,
        rna_enc_mlp_dim: 16,
        rna_enc_dim_head: 4,
        cross_attn_depth: 1,
        cross_attn_heads: 2,
        cross_attn_dim_head: 4,
        ..MedCrossViTConfig::new(num_classes, 8, 6)
    }
}

/// Runs the `med-crossvit` binary with `args`, as a user would (built with the `cli`
/// feature only).
#[cfg(feature = "cli")]
pub fn bin(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_med-crossvit"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The slide ids of a cohort CSV (its first column), in row order.
pub fn slide_ids(csv: &Path) -> Vec<String> {
    std::fs::read_to_string(csv)
        .expect("the cohort CSV reads")
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or_default().to_string())
        .collect()
}

/// The standard output and error of a run, as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A JSON array of numbers.
pub fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The batch, bag and optimizer flags of the tiny runs driven through the binary: batches and
/// bags of 4, at most 8 tiles per patient, a fast learning rate with a short warm-up, no early
/// stopping, one loader worker.
pub const TINY_STEP_FLAGS: [&str; 14] = [
    "--batch-size",
    "4",
    "--bag-size",
    "4",
    "--max-patches-total",
    "8",
    "--lr",
    "1e-3",
    "--warmup-epochs",
    "0.5",
    "--patience",
    "0",
    "--workers",
    "1",
];

/// A short training run to compare ways of running it: a synthetic cohort of 24 slides, the
/// tiny model without dropout (so that runs spread differently compute the same) written to
/// `tiny.json`, and the `train` arguments of 3 epochs of batches of 5.
pub struct TinyRun {
    /// The folder everything is in.
    pub dir: PathBuf,
    /// The cohort CSV.
    pub csv: PathBuf,
    /// The cohort's tile-feature folder.
    pub features: PathBuf,
    /// The model configuration.
    pub model: PathBuf,
}

impl TinyRun {
    /// Writes the cohort and the model configuration into `dir`.
    pub fn new(dir: &Path) -> Self {
        let data = synth(&dir.join("cohort"), 24, 8, 5, 3, false);
        let model = dir.join("tiny.json");
        let mut config = tiny_model(2, 5);
        config.dropout = 0.0;
        config.emb_dropout = 0.0;
        std::fs::write(&model, serde_json::to_string(&config).unwrap()).unwrap();
        Self {
            dir: dir.to_path_buf(),
            csv: data.csv,
            features: data.features_dir,
            model,
        }
    }

    /// `train` into `dir/out`, reading the tiles from `features`, then `extra`.
    pub fn args(&self, out: &str, features: &Path, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "train",
            "--csv",
            self.csv.to_str().unwrap(),
            "--features",
            features.to_str().unwrap(),
            "--config",
            self.model.to_str().unwrap(),
            "--out",
            self.dir.join(out).to_str().unwrap(),
            "--epochs",
            "3",
            "--batch-size",
            "5",
            "--bag-size",
            "4",
            "--lr",
            "1e-3",
            "--workers",
            "1",
            "--bootstrap",
            "20",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// Tells the person running the tests that a test was skipped, why, and how to make the skip
/// an error. Written straight to the process's standard error: the test harness captures
/// what `println!` and `eprintln!` print (and shows it only for a failed test), but not
/// writes to the `std::io::stderr()` handle, so a plain `cargo test` shows this line.
pub fn skipped(test: &str, why: &str, hint: &str) {
    use std::io::Write;
    let line = format!("SKIPPED: {test}: {why} ({hint})\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

std::thread_local! {
    /// Whether this thread holds [`SERIAL`] through a [`Serial`].
    static HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// [`serial`]'s hold on the lock; released when dropped (a nested hold releases nothing).
pub struct Serial(Option<std::sync::MutexGuard<'static, ()>>);

impl Drop for Serial {
    fn drop(&mut self) {
        if self.0.is_some() {
            HELD.with(|held| held.set(false));
        }
    }
}

/// Burn's flex backend draws initial weights, random tensors and dropout masks from one
/// process-wide generator, and the tests of every module run in parallel threads of one
/// process: a test that draws from it in process (a model built, a training, a reseeded
/// pass) holds this lock for its whole length, so that the runs that must repeat exactly
/// are not interleaved with another test's draws. Tests that only run the binary need not.
/// A thread that holds it already (a helper called by a test that holds it) gets it again
/// at once.
pub fn serial() -> Serial {
    if HELD.with(std::cell::Cell::get) {
        return Serial(None);
    }
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    HELD.with(|held| held.set(true));
    Serial(Some(guard))
}
