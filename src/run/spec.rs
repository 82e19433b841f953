//! Where a new run's model comes from: a preset or a config file, and a gene tokenizer, with
//! the widths the data decides filled in.

use std::path::{Path, PathBuf};

use crate::model::{ConfigError, MedCrossViTConfig};
use crate::run::{Error, RunError};

/// Where the model's hyperparameters come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    /// A named preset: `seed` (the original's published arguments) or `small` (CPU demos).
    Preset(String),
    /// A JSON file of [`MedCrossViTConfig`] fields; the widths the data decides may be left
    /// out.
    File(PathBuf),
}

/// Which gene tokenizer a new run uses.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenizerSpec {
    /// The original's dense tokenizer.
    Dense,
    /// One learned vector pair per gene.
    PerGene,
    /// One token per group of a signatures CSV (MCAT/SurvPath format).
    Pathways(PathBuf),
}

/// Sets `config`'s RNA tokenizer for a cohort whose gene columns name the gene `symbols` (the
/// column names without their prefix or suffix, see
/// [`CohortTable::gene_symbols`](crate::data::CohortTable::gene_symbols)); returns the
/// signature genes the cohort lacks (pathways only).
///
/// # Errors
///
/// The errors of [`read_signatures`](crate::data::read_signatures).
pub fn apply_tokenizer(
    config: &mut MedCrossViTConfig,
    spec: &TokenizerSpec,
    symbols: &[String],
) -> Result<Vec<String>, Error> {
    config.rna_tokenizer = match spec {
        TokenizerSpec::Dense => crate::model::RnaTokenizer::Dense,
        TokenizerSpec::PerGene => crate::model::RnaTokenizer::PerGene,
        TokenizerSpec::Pathways(path) => {
            let signatures = crate::data::read_signatures(path, symbols, "")?;
            config.rna_tokenizer = crate::model::RnaTokenizer::Pathways {
                groups: signatures.groups,
            };
            config.validate()?;
            return Ok(signatures.unknown);
        }
    };
    config.validate()?;
    Ok(Vec::new())
}

/// The WSI branch's width in a run on expression alone without a configured `wsi_dim` (see
/// [`resolve_model`]): its tiles are always marked missing, so the smallest width does.
pub const RNA_ONLY_WSI_DIM: usize = 1;

/// The preset names.
pub const PRESETS: [&str; 2] = ["seed", "small"];

/// The model configuration for data of `wsi_dim`-wide tiles, `genes` genes and `classes`
/// outputs, with bags of `bag_size` tiles.
///
/// `wsi_dim` 0 is data without tiles (a run on expression alone, whose WSI branch only ever
/// sees tiles marked missing): a config file's `wsi_dim` is then kept, and otherwise the
/// WSI branch is [`RNA_ONLY_WSI_DIM`] wide (the smallest valid model); a config file without
/// `rna_dim` then takes its `wsi_dim`, or 64 (the `small` preset's).
///
/// New runs are position-free: a preset, and a config file that leaves `wsi_pos_embedding`
/// out, get `wsi_pos_embedding = false`, since a bag is an unordered sample of a slide's
/// tiles and a learned embedding of a tile's slot in it only adds a pattern by slot to the
/// attention. A config file that states the field keeps what it states (`true` is the
/// original's slot embedding). Saved runs and imported checkpoints are not resolved here:
/// they keep what their `config.json` says.
///
/// # Errors
///
/// [`RunError::Unknown`] for an unknown preset; [`RunError::ConfigMismatch`] when a config
/// file's `wsi_dim`, `rna_num_genes` or `num_classes` contradicts the data;
/// [`ConfigError`] for an unreadable or malformed file. The result is not validated yet: see
/// [`check_model`].
pub fn resolve_model(
    spec: &ModelSpec,
    wsi_dim: usize,
    genes: usize,
    classes: usize,
    bag_size: usize,
) -> Result<MedCrossViTConfig, Error> {
    let data_wsi_dim = if wsi_dim == 0 {
        RNA_ONLY_WSI_DIM
    } else {
        wsi_dim
    };
    match spec {
        ModelSpec::Preset(name) => preset(name, data_wsi_dim, genes, classes, bag_size),
        ModelSpec::File(path) => from_file(path, wsi_dim, data_wsi_dim, genes, classes),
    }
}

/// The named preset with the data's widths and classes, position-free (see
/// [`resolve_model`]); its `wsi_num_tiles` still covers `bag_size` tiles, so that turning the
/// slot embedding back on in a copy of its config needs no other change.
fn preset(
    name: &str,
    wsi_dim: usize,
    genes: usize,
    classes: usize,
    bag_size: usize,
) -> Result<MedCrossViTConfig, Error> {
    let base = match name {
        "seed" => MedCrossViTConfig::seed(),
        "small" => MedCrossViTConfig::small(classes, wsi_dim, 64),
        _ => {
            return Err(RunError::Unknown {
                what: "preset",
                name: name.to_string(),
                choices: PRESETS.join(", "),
            }
            .into());
        }
    };
    Ok(MedCrossViTConfig {
        num_classes: classes,
        wsi_dim,
        rna_num_genes: genes,
        wsi_num_tiles: base.wsi_num_tiles.max(bag_size),
        wsi_pos_embedding: false,
        ..base
    })
}

/// The configuration in the JSON file `path` (a config, or a run's `config.json` whose
/// `model` it takes), with the widths the data decides filled in where the file leaves them
/// out, and refused where it contradicts them (`wsi_dim` is the data's tile width, 0 for
/// none; `data_wsi_dim` the width the model gets).
fn from_file(
    path: &Path,
    wsi_dim: usize,
    data_wsi_dim: usize,
    genes: usize,
    classes: usize,
) -> Result<MedCrossViTConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let json = |source| ConfigError::Json {
        path: path.to_path_buf(),
        source,
    };
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(json)?;
    if let Some(model) = value.get_mut("model").filter(|m| m.is_object()) {
        value = model.take();
    }
    let object = value
        .as_object_mut()
        .ok_or_else(|| ConfigError::Inconsistent {
            field: "config",
            reason: format!("{} must hold a JSON object", path.display()),
        })?;
    let configured_wsi = object.get("wsi_dim").and_then(serde_json::Value::as_u64);
    for (field, data) in [
        ("wsi_dim", data_wsi_dim),
        ("rna_num_genes", genes),
        ("num_classes", classes),
    ] {
        match object.get(field).and_then(serde_json::Value::as_u64) {
            // Without tiles, the file's tile width stands.
            Some(_) if field == "wsi_dim" && wsi_dim == 0 => {}
            Some(v) if v as usize != data => {
                return Err(RunError::ConfigMismatch {
                    field,
                    config: v as usize,
                    data,
                }
                .into());
            }
            Some(_) => {}
            None => {
                object.insert(field.into(), data.into());
            }
        }
    }
    // A new run is position-free unless its file says otherwise (see `resolve_model`).
    if !object.contains_key("wsi_pos_embedding") {
        object.insert("wsi_pos_embedding".into(), false.into());
    }
    if !object.contains_key("rna_dim") {
        let rna_dim = match (wsi_dim, configured_wsi) {
            (0, Some(w)) => w as usize,
            (0, None) => 64,
            (w, _) => w,
        };
        object.insert("rna_dim".into(), rna_dim.into());
    }
    Ok(serde_json::from_value(value).map_err(json)?)
}

/// Validates a resolved model configuration for bags of `bag_size` tiles (after the gene
/// tokenizer is set: the dense one's size limit depends on it).
///
/// # Errors
///
/// The [`ConfigError`] of [`MedCrossViTConfig::validate`]; `wsi_num_tiles` below the bag size
/// with the positional embedding on (the one place this rule is checked: new runs and saved
/// `config.json` files alike).
pub fn check_model(config: &MedCrossViTConfig, bag_size: usize) -> Result<(), ConfigError> {
    config.validate()?;
    if config.wsi_pos_embedding && config.wsi_num_tiles < bag_size {
        return Err(ConfigError::Inconsistent {
            field: "wsi_num_tiles",
            reason: format!(
                "bags of {bag_size} tiles need wsi_num_tiles ≥ {bag_size} with the positional embedding on (got {})",
                config.wsi_num_tiles
            ),
        });
    }
    Ok(())
}
