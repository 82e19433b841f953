//! Resumable checkpoints, written so that a run killed at any moment leaves a complete one.
//!
//! Each epoch's checkpoint is a folder `checkpoints/epoch-NNNN/` (weights, optimizer state,
//! loop state); it becomes current only when `checkpoints/latest.json`, naming it, is renamed
//! into place. Older folders are removed after that. A crash before the rename leaves the
//! previous checkpoint current.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{BurnpackStore, ModuleAdapter, ModuleContext, ModuleSnapshot};
use serde::{Deserialize, Serialize};

use crate::eval::EpochRow;
use crate::model::{MedCrossViT, PersistError};
use crate::run::RunError;

/// The training loop's state after a complete epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub step: usize,
    /// The best epoch so far (from 1), its monitored metric and its validation loss.
    pub best: Option<(usize, f64, f64)>,
    /// Epochs since the best one.
    pub bad_epochs: usize,
    /// One row per completed epoch.
    pub history: Vec<EpochRow>,
    /// Whether the run has ended (all epochs, or stopped early).
    pub finished: bool,
}

#[derive(Serialize, Deserialize)]
struct Pointer {
    folder: String,
}

const DIR: &str = "checkpoints";
const POINTER: &str = "latest.json";
const WEIGHTS: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bin";
const STATE: &str = "state.json";

fn err(path: &Path, message: impl ToString) -> RunError {
    RunError::Checkpoint {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Writes the checkpoint of `state` and makes it current.
///
/// # Errors
///
/// [`RunError::Checkpoint`] naming the file that could not be written.
pub fn save(
    run: &Path,
    model: &MedCrossViT,
    optimizer: &ModuleOptimizer,
    state: &LoopState,
) -> Result<(), RunError> {
    let root = run.join(DIR);
    let name = format!("epoch-{:04}", state.epochs_done);
    let folder = root.join(&name);
    // A folder of this name is what a run killed while writing it left behind: never current,
    // and its files must not mix with the new ones.
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(|e| err(&folder, e))?;
    }
    std::fs::create_dir_all(&folder).map_err(|e| err(&folder, e))?;
    model
        .save_weights(folder.join(WEIGHTS))
        .map_err(|e| err(&folder.join(WEIGHTS), e))?;
    pause_point("weights", state.epochs_done);
    optimizer
        .save(folder.join(OPTIMIZER))
        .map_err(|e| err(&folder.join(OPTIMIZER), format!("{e:?}")))?;
    let state_json = serde_json::to_string_pretty(state).expect("the loop state serializes");
    std::fs::write(folder.join(STATE), state_json).map_err(|e| err(&folder.join(STATE), e))?;
    pause_point("state", state.epochs_done);
    let pointer = root.join(POINTER);
    let text = serde_json::to_string(&Pointer {
        folder: name.clone(),
    })
    .expect("serializes");
    crate::util::atomic::write(&pointer, text.as_bytes()).map_err(|e| err(&pointer, e))?;
    pause_point("pointer", state.epochs_done);
    // Only now are the older checkpoints superseded.
    prune(&folder);
    Ok(())
}

/// Removes every checkpoint folder beside `current`: superseded ones, and those a killed run
/// left behind (older ones it had not removed yet, a newer one it had not finished).
/// Best effort: a folder that cannot be removed is never read again either.
pub(crate) fn prune(current: &Path) {
    let (Some(root), Some(name)) = (current.parent(), current.file_name()) else {
        return;
    };
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && entry.file_name() != name {
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }
}

/// Checks that a loop state read back is one the loop could have written: the fit indexes its
/// history by the best epoch.
fn check_state(state: &LoopState) -> Result<(), String> {
    if state.history.len() != state.epochs_done {
        return Err(format!(
            "field `history`: {} rows for epochs_done = {}",
            state.history.len(),
            state.epochs_done
        ));
    }
    if let Some((i, row)) = (1..).zip(&state.history).find(|(i, row)| row.epoch != *i) {
        return Err(format!(
            "field `history`: row {i} is for epoch {}",
            row.epoch
        ));
    }
    match state.best {
        Some((epoch, _, _)) if epoch == 0 || epoch > state.epochs_done => Err(format!(
            "field `best`: epoch {epoch}, but epochs 1 to {} are done",
            state.epochs_done
        )),
        None if state.epochs_done > 0 => {
            Err("field `best`: missing, but epochs are done".to_string())
        }
        _ => Ok(()),
    }
}

/// Drops each tensor's parameter id when saving. Ids are drawn at random when a model is
/// built, so files with them differ between two runs with equal weights (and between a run
/// and its resumed twin); the best weights are read for inference only, where ids mean
/// nothing. Checkpoint weights keep theirs: the optimizer state is keyed by them.
#[derive(Clone)]
struct WithoutParamIds;

impl ModuleAdapter for WithoutParamIds {
    fn adapt(&self, mut tensor: PackTensor, _: ModuleContext<'_>) -> PackTensor {
        tensor.param_id = None;
        tensor
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Writes the best epoch's weights to `path` (the run folder's `model.bpk`) through a
/// temporary file and a rename, without parameter ids: equal weights give equal bytes.
///
/// # Errors
///
/// [`PersistError`] naming the file.
pub(crate) fn save_best(model: &MedCrossViT, path: &Path) -> Result<(), PersistError> {
    let tmp = crate::util::atomic::temp_path(path);
    crate::util::atomic::with_temp(
        path,
        &tmp,
        |tmp| {
            let mut store = BurnpackStore::from_file(tmp)
                .auto_extension(false)
                .overwrite(true)
                .with_to_adapter(WithoutParamIds);
            model
                .save_into(&mut store)
                .map_err(|e| PersistError::Weights {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
        },
        PersistError::io(path),
    )
}

/// The current checkpoint's folder, if the run has one.
///
/// # Errors
///
/// [`RunError::Checkpoint`] for a pointer that cannot be read or names a missing folder.
pub fn current(run: &Path) -> Result<Option<PathBuf>, RunError> {
    let pointer = run.join(DIR).join(POINTER);
    if !pointer.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&pointer).map_err(|e| err(&pointer, e))?;
    let p: Pointer = serde_json::from_str(&text).map_err(|e| err(&pointer, e))?;
    let named = p
        .folder
        .strip_prefix("epoch-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if !named {
        return Err(err(
            &pointer,
            format!(
                "field `folder`: `{}` is not a checkpoint folder name (epoch-NNNN)",
                p.folder
            ),
        ));
    }
    let folder = run.join(DIR).join(p.folder);
    if !folder.join(STATE).is_file() {
        return Err(err(&folder, "the checkpoint folder is incomplete"));
    }
    Ok(Some(folder))
}

/// Loads the checkpoint in `folder` into `model` and `optimizer`, returning its loop state.
///
/// # Errors
///
/// [`RunError::Checkpoint`] naming the file that could not be read.
pub fn load(
    folder: &Path,
    model: &mut MedCrossViT,
    optimizer: ModuleOptimizer,
) -> Result<(ModuleOptimizer, LoopState), RunError> {
    model
        .load_weights(folder.join(WEIGHTS))
        .map_err(|e| err(&folder.join(WEIGHTS), e))?;
    let optimizer = optimizer
        .load(folder.join(OPTIMIZER))
        .map_err(|e| err(&folder.join(OPTIMIZER), format!("{e:?}")))?;
    let text =
        std::fs::read_to_string(folder.join(STATE)).map_err(|e| err(&folder.join(STATE), e))?;
    let state: LoopState = serde_json::from_str(&text).map_err(|e| err(&folder.join(STATE), e))?;
    check_state(&state).map_err(|message| err(&folder.join(STATE), message))?;
    Ok((optimizer, state))
}

/// Names the test-only environment variable `MED_CROSSVIT_TEST_PAUSE`: `STAGE@EPOCH` makes a
/// training process stop at that point of writing its run folder, so that a test can kill it
/// exactly there (tests/it/crash_safety.rs). Stages: `files` (epoch 0: the run's files are written, no
/// checkpoint yet), `best` (the epoch's `model.bpk` is written, its checkpoint is not),
/// `weights` and `state` (inside the checkpoint folder, before its pointer), `pointer` (the
/// checkpoint is current, older ones are not removed yet, and after the last epoch
/// `metrics.json` is not written yet).
pub const PAUSE_VAR: &str = "MED_CROSSVIT_TEST_PAUSE";
/// Names the test-only environment variable `MED_CROSSVIT_TEST_PAUSE_MARKER`: the file that a
/// process stopped by [`PAUSE_VAR`] creates once it has stopped.
pub const PAUSE_MARKER_VAR: &str = "MED_CROSSVIT_TEST_PAUSE_MARKER";

/// Test-only: when [`PAUSE_VAR`] names this point, creates the marker file and waits to be
/// killed. Not for users: a paused run never goes on by itself (it gives up after ten
/// minutes, so a test that fails to kill it leaves no process behind for long).
pub(crate) fn pause_point(stage: &str, epoch: usize) {
    static PAUSE: std::sync::OnceLock<Option<(String, PathBuf)>> = std::sync::OnceLock::new();
    let pause = PAUSE.get_or_init(|| {
        let at = std::env::var(PAUSE_VAR).ok()?;
        let marker = std::env::var_os(PAUSE_MARKER_VAR)?;
        Some((at, PathBuf::from(marker)))
    });
    let Some((at, marker)) = pause else { return };
    if *at != format!("{stage}@{epoch}") {
        return;
    }
    let _ = std::fs::write(marker, at);
    std::thread::sleep(std::time::Duration::from_secs(600));
    std::process::exit(3);
}
