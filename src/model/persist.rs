//! Saving and loading a model folder: `config.json` beside the weights in Burn's own
//! format (burnpack), so that one folder rebuilds the model.

use std::path::Path;

use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Bytes, Device};

use super::error::{LoadError, PersistError};
use super::{MedCrossViT, MedCrossViTConfig};
use crate::util::atomic;

/// Name of the configuration file in a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the weights file in a model folder.
pub const WEIGHTS_FILE: &str = "model.bpk";

impl MedCrossViT {
    /// Writes `config.json` and `model.bpk` into `dir`, creating it if needed. Each file is
    /// written to a temporary name first and renamed, so an interrupted save leaves the
    /// previous files intact.
    ///
    /// # Errors
    ///
    /// [`PersistError`] naming the file that could not be written.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), PersistError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(PersistError::io(dir))?;
        let config_path = dir.join(CONFIG_FILE);
        write_through_temp(&config_path, |tmp| {
            self.config().save(tmp).map_err(|e| PersistError::Weights {
                path: config_path.clone(),
                message: e.to_string(),
            })
        })?;
        self.save_weights(dir.join(WEIGHTS_FILE))
    }

    /// Writes the weights alone (burnpack) to `path`, through a temporary file and a rename.
    ///
    /// # Errors
    ///
    /// [`PersistError`] naming the file.
    pub fn save_weights(&self, path: impl AsRef<Path>) -> Result<(), PersistError> {
        let path = path.as_ref();
        write_through_temp(path, |tmp| {
            let mut store = BurnpackStore::from_file(tmp)
                .auto_extension(false)
                .overwrite(true);
            self.save_into(&mut store)
                .map_err(|e| PersistError::Weights {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
        })
    }

    /// Rebuilds a model saved with [`save`](Self::save) on `device`.
    ///
    /// # Errors
    ///
    /// [`LoadError::Config`] for a missing or invalid `config.json`; [`PersistError`] for an
    /// unreadable weights file or one whose tensors do not fit the configuration.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self, LoadError> {
        let dir = dir.as_ref();
        let config = MedCrossViTConfig::load(dir.join(CONFIG_FILE))?;
        Self::from_weights_file(&config, dir.join(WEIGHTS_FILE), device)
    }

    /// Builds the model of `config` on `device` and fills it with the weights saved at
    /// `weights` by [`save_weights`](Self::save_weights). A configuration that calls for far
    /// more weights than the file can hold is refused before anything is built, so that a
    /// damaged or hand-edited configuration beside a small file never allocates gigabytes.
    ///
    /// # Errors
    ///
    /// [`LoadError::Config`] for an invalid configuration; [`PersistError`] for a configuration
    /// too large for the file, an unreadable file, or tensors that do not fit.
    pub fn from_weights_file(
        config: &MedCrossViTConfig,
        weights: impl AsRef<Path>,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let weights = weights.as_ref();
        check_weights_fit(config, weights)?;
        let mut model = config.init(device)?;
        model.load_weights(weights)?;
        Ok(model)
    }

    /// Replaces the weights with those saved at `path` by [`save_weights`](Self::save_weights).
    ///
    /// # Errors
    ///
    /// [`PersistError`] for a missing or unreadable file, or one whose tensors do not fit this
    /// model (naming the first missing, unexpected or misshapen tensors).
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<(), PersistError> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(PersistError::Io {
                path,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        // Read the whole file now: a store opened on the file loads tensors lazily, and a model
        // must not depend on its file after loading (a run overwrites its checkpoints).
        let bytes = std::fs::read(&path).map_err(PersistError::io(&path))?;
        let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes)));
        let result = self
            .load_from(&mut store)
            .map_err(|e| PersistError::Weights {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let mut problems: Vec<String> = Vec::new();
        problems.extend(result.errors.iter().map(|e| e.to_string()));
        problems.extend(
            result
                .missing
                .iter()
                .map(|(p, _)| format!("missing tensor {p}")),
        );
        problems.extend(
            result
                .unused
                .iter()
                .map(|p| format!("unexpected tensor {p}")),
        );
        if !problems.is_empty() {
            problems.truncate(5);
            return Err(PersistError::Mismatch {
                path,
                message: problems.join("; "),
            });
        }
        Ok(())
    }
}

/// Bytes a layer takes in a weights file at the least: four or more tensors, each with its
/// name, shape and values.
const MIN_FILE_BYTES_PER_LAYER: u128 = 128;

/// Layers a model may have beyond what its weights file can hold before it is refused
/// unbuilt (a few more are built and then reported tensor by tensor).
const SMALL_MODEL_LAYERS: u128 = 64;

/// Refuses a configuration whose weights cannot fit in the weights file (at two bytes a
/// weight, the smallest float type), before the model is built: a damaged or hand-edited
/// `config.json` must not make a small folder allocate gigabytes. Only a gross excess is
/// refused here (more than the file and a small model); a smaller one is built and then named
/// tensor by tensor by [`MedCrossViT::load_weights`], which also reports a missing file.
fn check_weights_fit(config: &MedCrossViTConfig, weights: &Path) -> Result<(), PersistError> {
    let Ok(meta) = std::fs::metadata(weights) else {
        return Ok(());
    };
    let needed = config.min_weights().saturating_mul(2);
    let room = u128::from(meta.len()).saturating_add(super::SMALL_MODEL_WEIGHTS.saturating_mul(2));
    // Each layer is several tensors, each with its name, shape and data in the file, and costs
    // far more in memory than its few weights when the widths are tiny: many thin layers are
    // bounded by the file's size as well.
    let n = |v: usize| v as u128;
    let layers = n(config.depth).saturating_mul(
        n(config.wsi_enc_depth)
            .saturating_add(n(config.rna_enc_depth))
            .saturating_add(n(config.cross_attn_depth)),
    );
    let layer_room = u128::from(meta.len()) / MIN_FILE_BYTES_PER_LAYER + SMALL_MODEL_LAYERS;
    if layers > layer_room {
        return Err(PersistError::Mismatch {
            path: weights.to_path_buf(),
            message: format!(
                "its config.json describes {layers} layers, more than a file of {} bytes can \
                 hold",
                meta.len()
            ),
        });
    }
    if needed > room {
        return Err(PersistError::Mismatch {
            path: weights.to_path_buf(),
            message: format!(
                "its config.json describes at least {} weights ({needed} bytes or more), but the \
                 file has {} bytes",
                config.min_weights(),
                meta.len()
            ),
        });
    }
    Ok(())
}

/// Writes through `write` to a temporary file beside `path` (`path` with `.tmp` appended),
/// then renames it into place; a failure removes the temporary file.
fn write_through_temp(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), PersistError>,
) -> Result<(), PersistError> {
    atomic::with_temp(
        path,
        &atomic::temp_path(path),
        write,
        PersistError::io(path),
    )
}
