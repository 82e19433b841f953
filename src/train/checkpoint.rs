//! Resumable checkpoints, written so that a run killed at any moment leaves a complete one.
//!
//! Each epoch's checkpoint is a folder `checkpoints/epoch-NNNN/` (weights, optimizer state,
//! loop state); it becomes current only when `checkpoints/latest.json`, naming it, is renamed
//! into place. Older folders are removed after that. A crash before the rename leaves the
//! previous checkpoint current.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use crate::error::{PersistError, RunError};
use crate::model::MedCrossViT;

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Learning rate of the epoch's last optimizer step.
    pub lr: f64,
    /// Mean training loss over the epoch's bags.
    pub train_loss: f64,
    /// Validation metrics.
    pub val: Metrics,
}

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
    std::fs::create_dir_all(&folder).map_err(|e| err(&folder, e))?;
    model
        .save_weights(folder.join(WEIGHTS))
        .map_err(|e| err(&folder.join(WEIGHTS), e))?;
    optimizer
        .save(folder.join(OPTIMIZER))
        .map_err(|e| err(&folder.join(OPTIMIZER), format!("{e:?}")))?;
    let state_json = serde_json::to_string_pretty(state).expect("the loop state serializes");
    std::fs::write(folder.join(STATE), state_json).map_err(|e| err(&folder.join(STATE), e))?;
    let pointer = root.join(POINTER);
    crate::model::write_atomic(&pointer, |tmp| {
        let text = serde_json::to_string(&Pointer {
            folder: name.clone(),
        })
        .expect("serializes");
        std::fs::write(tmp, text).map_err(|source| PersistError::Io {
            path: tmp.to_path_buf(),
            source,
        })
    })
    .map_err(|e| err(&pointer, e))?;
    // Only now are the older checkpoints superseded.
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && entry.file_name() != name.as_str() {
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }
    Ok(())
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
    let state = serde_json::from_str(&text).map_err(|e| err(&folder.join(STATE), e))?;
    Ok((optimizer, state))
}
