//! `export`: a trained model's weights in a file that PyTorch opens, a `.safetensors` file or
//! a `torch.save` state dict, with everything needed to rebuild the module in its metadata.
//!
//! # Key maps
//!
//! - **native** (the default): the keys and shapes of `med_crossvit.torch.MedCrossViT`'s
//!   `state_dict()` (`python/med_crossvit/torch.py`): our module paths, with LayerNorm
//!   `gamma`/`beta` named `weight`/`bias` and linear weights stored `[out, in]` as PyTorch
//!   stores them (ours are `[in, out]`). Every model can be exported so.
//! - **original**: the keys of the Python original's `state_dict()`, the inverse of
//!   [`import_torch`](super::import_torch)'s mapping (`src/interop/torch.rs`). Its class
//!   cannot express every model: see [`original_tensors`].
//!
//! `docs/export.md` lists every key with its shape.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

use super::safetensors::write_safetensors;
use super::tensor::ExportTensor;
use super::torch::torch_key;
use super::torch_save::write_torch;
use crate::model::{AttentionKind, MedCrossViT, RnaTokenizer};
use crate::run::{Error, ModelBundle, OutputKind, Task, check_output};

/// The version of the export's layout (metadata keys and key maps), written as
/// `med_crossvit_format_version`; raised when either changes incompatibly.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A `.safetensors` file (header JSON with metadata, then little-endian `f32` data).
    Safetensors,
    /// A `torch.save` zip archive of an `OrderedDict` state dict (`.pt`).
    Torch,
}

impl ExportFormat {
    /// The format a file name implies: `.safetensors`, or `.pt`/`.pth`/`.bin` for torch;
    /// `None` for any other name.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "safetensors" => Some(Self::Safetensors),
            "pt" | "pth" | "bin" => Some(Self::Torch),
            _ => None,
        }
    }

    /// The format's name on the command line (`safetensors`, `torch`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Safetensors => "safetensors",
            Self::Torch => "torch",
        }
    }
}

/// Whose key names (and quirks) the export uses: see `docs/export.md` and
/// [`original_tensors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyMap {
    /// `med_crossvit.torch.MedCrossViT`'s.
    #[default]
    Native,
    /// The Python original's.
    Original,
}

impl KeyMap {
    /// The name written as `med_crossvit_keys` (`native`, `original`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Original => "original",
        }
    }
}

/// A model that cannot be exported as asked, or a file that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No `--format` and a file name that implies none.
    #[error(
        "{path}: cannot tell the format from the file name (.safetensors, .pt or .pth); \
         give --format safetensors or --format torch"
    )]
    UnknownFormat {
        /// The output file.
        path: PathBuf,
    },
    /// `--keys original` for a model the original's class cannot express.
    #[error(
        "the Python original's class cannot express this model ({field}: {reason}); \
         export it with --keys native and load it with med_crossvit.torch.MedCrossViT"
    )]
    NotOriginal {
        /// The configuration field (or head) that the original cannot express.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The file could not be written.
    #[error("{path}: cannot write the export: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The run or model folder cannot be read, or the output is refused (boxed, as the
    /// crate's other large errors).
    #[error(transparent)]
    Run(Box<Error>),
}

impl<E: Into<Error>> From<E> for ExportError {
    fn from(e: E) -> Self {
        Self::Run(Box::new(e.into()))
    }
}

/// A parameter as visited: our module path (`encoder.blocks.0.wsi_enc.norm.gamma`), its
/// shape in PyTorch's layout and its values, transposed for linear weights.
struct Visited {
    path: Vec<String>,
    tensor: ExportTensor,
}

/// Collects every float parameter of a model, in the module's order.
#[derive(Default)]
struct Collector {
    path: Vec<(String, String)>,
    out: Vec<Visited>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let mut shape = tensor.dims().to_vec();
        let mut values: Vec<f32> = tensor.into_data().iter::<f32>().collect();
        let linear_weight = self
            .path
            .last()
            .is_some_and(|(n, t)| n == "weight" && t.ends_with("Linear"));
        if linear_weight && shape.len() == 2 {
            // [in, out] row-major → [out, in] row-major.
            let (rows, cols) = (shape[0], shape[1]);
            let mut t = vec![0.0; values.len()];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = values[r * cols + c];
                }
            }
            values = t;
            shape.reverse();
        }
        let path: Vec<String> = self.path.iter().map(|(n, _)| n.clone()).collect();
        self.out.push(Visited {
            path,
            tensor: ExportTensor {
                key: String::new(),
                shape,
                values,
            },
        });
    }
}

fn visit(model: &MedCrossViT) -> Vec<Visited> {
    let mut collector = Collector::default();
    model.visit(&mut collector);
    collector.out
}

/// PyTorch's name of a LayerNorm leaf.
fn torch_leaf(name: &str) -> &str {
    match name {
        "gamma" => "weight",
        "beta" => "bias",
        other => other,
    }
}

/// The model's parameters under the native key map, in the module's order.
pub fn native_tensors(model: &MedCrossViT) -> Vec<ExportTensor> {
    visit(model)
        .into_iter()
        .map(|v| {
            let mut path = v.path;
            if let Some(last) = path.last_mut() {
                *last = torch_leaf(last).to_string();
            }
            ExportTensor {
                key: path.join("."),
                ..v.tensor
            }
        })
        .collect()
}

/// Refuses a model the original's class cannot express, naming the first field that
/// differs from what the class builds.
fn check_original(model: &MedCrossViT) -> Result<(), ExportError> {
    let c = model.config();
    let refuse = |field, reason: &str| {
        Err(ExportError::NotOriginal {
            field,
            reason: reason.to_string(),
        })
    };
    if !c.wsi_pos_embedding {
        return refuse(
            "wsi_pos_embedding",
            "false, but the original always adds a positional embedding to the tiles",
        );
    }
    if c.rna_tokenizer != RnaTokenizer::Dense {
        return refuse(
            "rna_tokenizer",
            &format!(
                "`{}`, but the original has only the dense tokenizer",
                c.rna_tokenizer.name()
            ),
        );
    }
    if c.rna_attention != AttentionKind::Exact {
        return refuse(
            "rna_attention",
            "Nyström, but the original computes exact attention",
        );
    }
    if c.cross_attn_heads != c.cross_attn_depth {
        return refuse(
            "cross_attn_heads",
            &format!(
                "{} heads, but the original builds its cross-attention with cross_atnn_depth \
                 = {} heads",
                c.cross_attn_heads, c.cross_attn_depth
            ),
        );
    }
    if c.wsi_dim != c.rna_dim {
        return refuse(
            "rna_dim",
            &format!(
                "{} differs from wsi_dim = {}, but the original applies its WSI head to the \
                 RNA tokens too",
                c.rna_dim, c.wsi_dim
            ),
        );
    }
    Ok(())
}

/// The model's parameters under the original's key map.
///
/// The original computed both modalities' logits with its WSI head (`wsi_mlp_head`); its
/// `rna_mlp_head` existed but was never used. The WSI head is written as `wsi_mlp_head`, and
/// the RNA head as `rna_mlp_head`, so that `load_state_dict(strict=True)` finds every key of
/// the class; the two heads must be equal (as in every imported model) for the original's
/// class to compute our logits.
///
/// # Errors
///
/// [`ExportError::NotOriginal`] naming the field the original cannot express: no WSI
/// positional embedding, a tokenizer other than the dense one, Nyström attention, a
/// cross-attention head count other than `cross_attn_depth` (the original used its depth
/// there), `rna_dim ≠ wsi_dim`, or RNA and WSI heads that differ.
pub fn original_tensors(model: &MedCrossViT) -> Result<Vec<ExportTensor>, ExportError> {
    check_original(model)?;
    let visited = visit(model);
    let head = |name: &str| -> Vec<&ExportTensor> {
        visited
            .iter()
            .filter(|v| v.path[0] == name)
            .map(|v| &v.tensor)
            .collect()
    };
    if head("wsi_head") != head("rna_head") {
        return Err(ExportError::NotOriginal {
            field: "rna_head",
            reason: "the RNA head's weights differ from the WSI head's, but the original \
                     computes the RNA logits with its WSI head"
                .into(),
        });
    }
    Ok(visited
        .into_iter()
        .map(|v| {
            let ours = v.path.join(".");
            let key = torch_key(&ours).unwrap_or_else(|| panic!("no mapping for `{ours}`"));
            let key = if v.path[0] == "rna_head" {
                key.replacen("wsi_mlp_head", "rna_mlp_head", 1)
            } else {
                key
            };
            ExportTensor { key, ..v.tensor }
        })
        .collect())
}

/// The original's constructor arguments for the model (under `--keys original`).
fn original_args(model: &MedCrossViT) -> serde_json::Value {
    let c = model.config();
    serde_json::json!({
        "num_classes": c.num_classes,
        "depth": c.depth,
        "wsi_dim": c.wsi_dim,
        "rna_dim": c.rna_dim,
        "wsi_num_tiles": c.wsi_num_tiles,
        "wsi_enc_depth": c.wsi_enc_depth,
        "wsi_enc_heads": c.wsi_enc_heads,
        "wsi_enc_mlp_dim": c.wsi_enc_mlp_dim,
        "wsi_enc_dim_head": c.wsi_enc_dim_head,
        "rna_num_genes": c.rna_num_genes,
        "rna_enc_depth": c.rna_enc_depth,
        "rna_enc_heads": c.rna_enc_heads,
        "rna_enc_mlp_dim": c.rna_enc_mlp_dim,
        "rna_enc_dim_head": c.rna_enc_dim_head,
        "cross_atnn_depth": c.cross_attn_depth,
        "cross_attn_heads": c.cross_attn_heads,
        "cross_attn_dim_head": c.cross_attn_dim_head,
        "dropout": c.dropout,
        "emb_dropout": c.emb_dropout,
        "pool": c.pool,
    })
}

/// The metadata written beside the tensors (string values; JSON where structured), enough
/// to rebuild and use the model with no other file. The keys are listed in `docs/export.md`.
pub fn export_metadata(bundle: &ModelBundle, keys: KeyMap) -> BTreeMap<String, String> {
    let json = |v: serde_json::Value| v.to_string();
    let model = &bundle.model;
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: String| m.insert(k.to_string(), v);
    // What Hugging Face's tools expect of a PyTorch safetensors file.
    put("format", "pt".into());
    put(
        "med_crossvit_format_version",
        EXPORT_FORMAT_VERSION.to_string(),
    );
    put("med_crossvit_version", env!("CARGO_PKG_VERSION").into());
    put("med_crossvit_keys", keys.name().into());
    put(
        "med_crossvit_config",
        json(serde_json::to_value(model.config()).expect("a config always serializes")),
    );
    let task = match bundle.task() {
        Task::Classification => "classification",
        Task::Survival => "survival",
    };
    put("med_crossvit_task", task.into());
    put(
        "med_crossvit_classes",
        json(serde_json::json!(bundle.labels.classes)),
    );
    put(
        "med_crossvit_genes",
        json(serde_json::json!(bundle.normalization.genes)),
    );
    put(
        "med_crossvit_normalization",
        json(serde_json::to_value(&bundle.normalization).expect("numbers and strings")),
    );
    if let Some(bins) = &bundle.config.survival_bins {
        put(
            "med_crossvit_survival_bins",
            json(serde_json::json!(bins.edges)),
        );
    }
    if keys == KeyMap::Original {
        put("med_crossvit_original_args", json(original_args(model)));
    }
    m
}

/// Writes the bundle's model to `out` in `format` under `keys`.
///
/// The file is written through a temporary file beside it and renamed into place. `out`
/// follows the rule of [`run::outputs`](crate::run::outputs) for
/// [`OutputKind::ExportFile`]: not a folder, not over an existing file unless `force`.
///
/// # Errors
///
/// [`ExportError::NotOriginal`] (see [`original_tensors`]); the refusal of
/// [`check_output`]; [`ExportError::Write`] naming the file.
pub fn export_model(
    bundle: &ModelBundle,
    format: ExportFormat,
    keys: KeyMap,
    out: &Path,
    force: bool,
) -> Result<(), ExportError> {
    check_output(out, OutputKind::ExportFile, force)?;
    let tensors = match keys {
        KeyMap::Native => native_tensors(&bundle.model),
        KeyMap::Original => original_tensors(&bundle.model)?,
    };
    let metadata = export_metadata(bundle, keys);
    let write_error = |source| ExportError::Write {
        path: out.to_path_buf(),
        source,
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    crate::util::atomic::with_temp(
        out,
        &crate::util::atomic::temp_path(out),
        |tmp| {
            let file = std::fs::File::create(tmp)?;
            let mut writer = std::io::BufWriter::new(file);
            match format {
                ExportFormat::Safetensors => write_safetensors(&mut writer, &tensors, &metadata)?,
                ExportFormat::Torch => write_torch(&mut writer, &tensors, &metadata)?,
            }
            let file = writer.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()
        },
        |e| e,
    )
    .map_err(write_error)
}

/// `export`: loads the run or model folder `run` (as `predict --model` does) and writes its
/// model to `out`. `format` defaults to the one `out`'s extension implies.
///
/// # Errors
///
/// [`ExportError::UnknownFormat`] for no format and an extension that implies none; the
/// errors of [`ModelBundle::load`] (a folder that is not a run, a cross-validation summary)
/// and of [`export_model`].
pub fn export_run(
    run: &Path,
    format: Option<ExportFormat>,
    keys: KeyMap,
    out: &Path,
    force: bool,
    device: &Device,
) -> Result<ExportFormat, ExportError> {
    let format = format
        .or_else(|| ExportFormat::from_path(out))
        .ok_or_else(|| ExportError::UnknownFormat {
            path: out.to_path_buf(),
        })?;
    // Refused before the model is read.
    check_output(out, OutputKind::ExportFile, force)?;
    let bundle = ModelBundle::load(run, device)?;
    export_model(&bundle, format, keys, out, force)?;
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MedCrossViTConfig;

    fn tiny() -> MedCrossViTConfig {
        let mut c = MedCrossViTConfig::small(2, 8, 8);
        c.rna_num_genes = 3;
        c.wsi_num_tiles = 4;
        c
    }

    #[test]
    fn native_keys_are_torch_names_and_linear_weights_are_out_by_in() {
        let model = tiny().init(&Device::flex()).unwrap();
        let tensors = native_tensors(&model);
        let get = |k: &str| tensors.iter().find(|t| t.key == k).unwrap();
        // project: Linear(3 → 3 · 8), PyTorch's [out, in].
        assert_eq!(get("rna_embedder.project.weight").shape, vec![24, 3]);
        assert_eq!(get("rna_embedder.input_norm.weight").shape, vec![3]);
        assert!(tensors.iter().all(|t| !t.key.contains("gamma")));
        let ours = model.rna_embedder.project.as_ref().unwrap().weight.val();
        let ours: Vec<f32> = ours.into_data().iter::<f32>().collect(); // [3, 24]
        let theirs = &get("rna_embedder.project.weight").values; // [24, 3]
        assert_eq!(theirs[5 * 3 + 2], ours[2 * 24 + 5]);
    }

    #[test]
    fn models_the_original_cannot_express_are_refused_by_field() {
        let device = Device::flex();
        let mut c = tiny();
        c.wsi_pos_embedding = false;
        let refused = |c: &MedCrossViTConfig| match original_tensors(&c.init(&device).unwrap()) {
            Err(ExportError::NotOriginal { field, .. }) => field,
            other => panic!("{:?}", other.map(|t| t.len())),
        };
        assert_eq!(refused(&c), "wsi_pos_embedding");
        c.wsi_pos_embedding = true;
        c.rna_tokenizer = RnaTokenizer::PerGene;
        assert_eq!(refused(&c), "rna_tokenizer");
        c.rna_tokenizer = RnaTokenizer::Dense;
        assert_eq!(refused(&c), "cross_attn_heads");
        c.cross_attn_heads = c.cross_attn_depth;
        // Heads initialized apart.
        assert_eq!(refused(&c), "rna_head");
    }

    #[test]
    fn formats_follow_the_extension() {
        let f = |p: &str| ExportFormat::from_path(Path::new(p));
        assert_eq!(f("m.safetensors"), Some(ExportFormat::Safetensors));
        assert_eq!(f("m.PT"), Some(ExportFormat::Torch));
        assert_eq!(f("m.pth"), Some(ExportFormat::Torch));
        assert_eq!(f("m.json"), None);
        assert_eq!(f("m"), None);
    }
}
