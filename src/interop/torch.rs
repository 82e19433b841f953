//! Loading a `state_dict` saved by the Python original (`torch.save(model.state_dict(), p)`).
//!
//! # Key mapping (the original's name → ours)
//!
//! Linear weights are stored `[out, in]` by PyTorch and `[in, out]` here: they are transposed.
//! LayerNorm `weight`/`bias` are our `gamma`/`beta`. `{b}` is a fusion block, `{l}` a layer.
//!
//! | original | ours |
//! |---|---|
//! | `wsi_embedder.cls_token`, `.pos_embedding` | `wsi_embedder.cls_token`, `.pos_embedding` |
//! | `rna_embedder.cls_token`, `.pos_embedding` | `rna_embedder.cls_token`, `.pos_embedding` |
//! | `rna_embedder.to_rna_embedding.0` (LayerNorm) | `rna_embedder.input_norm` |
//! | `rna_embedder.to_rna_embedding.1` (Linear) | `rna_embedder.project` |
//! | `rna_embedder.to_rna_embedding.3` (LayerNorm) | `rna_embedder.token_norm` |
//! | `bimodal_encoder.layers.{b}.0` (WSI `Transformer`) | `encoder.blocks.{b}.wsi_enc` |
//! | `bimodal_encoder.layers.{b}.1` (RNA `Transformer`) | `encoder.blocks.{b}.rna_enc` |
//! | `….layers.{l}.0.norm`, `.to_q`, `.to_kv`, `.to_out.0` | `….layers.{l}.attn.norm`, `.to_q`, `.to_kv`, `.to_out` |
//! | `….layers.{l}.1.net.0`, `.net.1`, `.net.4` | `….layers.{l}.ff.norm`, `.fc1`, `.fc2` |
//! | `….norm` (final LayerNorm) | `….norm` |
//! | `bimodal_encoder.layers.{b}.2.layers.{l}.0.fn.*` | `encoder.blocks.{b}.cross.layers.{l}.wsi_attend_rna.attn.*` |
//! | `bimodal_encoder.layers.{b}.2.layers.{l}.0.project_in`, `.project_out` | `….wsi_attend_rna.project_in`, `.project_out` |
//! | `bimodal_encoder.layers.{b}.2.layers.{l}.1.*` | `….rna_attend_wsi.*` (same pattern) |
//! | `wsi_mlp_head.0`, `.1` | `wsi_head.norm`, `.linear` **and** `rna_head.norm`, `.linear` |
//! | `rna_mlp_head.*` | not used (the original never used it) |
//!
//! `to_kv` holds keys then values (the original splits its output with `chunk(2)`), as ours
//! does. The query and key/value projections have no bias in either.
//!
//! # The original's defects, reproduced for its checkpoints
//!
//! The original built its cross-attention with `cross_atnn_depth` heads (not
//! `cross_attn_heads`) and computed the RNA logits with the WSI head. An imported model must
//! compute what the original computed, so the head count is read from the checkpoint (rows
//! of a cross-attention `to_q` divided by `cross_attn_dim_head`) and the WSI head's weights
//! fill both heads.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::store::pytorch_reader::{DType as PtDType, PytorchReader, Tensor as PtTensor};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use crate::data::{LabelMap, Normalization};
use crate::model::{MedCrossViT, MedCrossViTConfig, Pool};
use crate::run::{Error, RunConfig, files};

/// The keyword arguments that built the original's model, with its names and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct OriginalArgs {
    pub num_classes: usize,
    #[serde(default = "d3")]
    pub depth: usize,
    pub wsi_dim: usize,
    pub rna_dim: usize,
    #[serde(default = "d50")]
    pub wsi_num_tiles: usize,
    #[serde(default = "d4")]
    pub wsi_enc_depth: usize,
    #[serde(default = "d8")]
    pub wsi_enc_heads: usize,
    #[serde(default = "d2048")]
    pub wsi_enc_mlp_dim: usize,
    #[serde(default = "d64")]
    pub wsi_enc_dim_head: usize,
    #[serde(default = "d100")]
    pub rna_num_genes: usize,
    #[serde(default = "d4")]
    pub rna_enc_depth: usize,
    #[serde(default = "d8")]
    pub rna_enc_heads: usize,
    #[serde(default = "d2048")]
    pub rna_enc_mlp_dim: usize,
    #[serde(default = "d64")]
    pub rna_enc_dim_head: usize,
    /// The original's spelling of the cross-attention depth.
    #[serde(default = "d2")]
    pub cross_atnn_depth: usize,
    #[serde(default = "d8")]
    pub cross_attn_heads: usize,
    #[serde(default = "d64")]
    pub cross_attn_dim_head: usize,
    #[serde(default = "d01")]
    pub dropout: f64,
    #[serde(default = "d01")]
    pub emb_dropout: f64,
    #[serde(default)]
    pub pool: Pool,
    /// Accepted and ignored: the original returned the pooled tokens under this flag.
    #[serde(default)]
    pub return_attn: bool,
}

fn d2() -> usize {
    2
}
fn d3() -> usize {
    3
}
fn d4() -> usize {
    4
}
fn d8() -> usize {
    8
}
fn d50() -> usize {
    50
}
fn d64() -> usize {
    64
}
fn d100() -> usize {
    100
}
fn d2048() -> usize {
    2048
}
fn d01() -> f64 {
    0.1
}

/// A checkpoint that cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The checkpoint file cannot be read as a PyTorch file.
    #[error("{path}: cannot read the checkpoint: {message}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// The arguments file cannot be read or parsed.
    #[error("{path}: {message}")]
    Args {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor the arguments call for is not in the checkpoint.
    #[error("{path}: missing tensor `{key}` (the arguments call for it)")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The original's key.
        key: String,
    },
    /// A tensor whose shape does not fit the arguments.
    #[error("{path}: tensor `{key}` has shape {got:?}, but the arguments give {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The original's key.
        key: String,
        /// The shape the arguments imply.
        expected: Vec<usize>,
        /// The shape in the checkpoint.
        got: Vec<usize>,
    },
    /// A tensor the arguments do not account for.
    #[error("{path}: unexpected tensor `{key}` (the arguments do not call for it)")]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The original's key.
        key: String,
    },
    /// Arguments that describe a far bigger model than the checkpoint holds, refused before
    /// the model is built.
    #[error(
        "{path}: the arguments describe a model of at least {needed} weights, but the checkpoint \
         holds {held} values"
    )]
    TooSmall {
        /// The checkpoint.
        path: PathBuf,
        /// The lower bound on the weights the arguments call for.
        needed: u128,
        /// The values in all of the checkpoint's tensors.
        held: u128,
    },
    /// A tensor that is not floating point.
    #[error("{path}: tensor `{key}` is not floating point ({dtype})")]
    DType {
        /// The file.
        path: PathBuf,
        /// The original's key.
        key: String,
        /// Its type.
        dtype: String,
    },
    /// The model the checkpoint describes could not be built, or the model folder not
    /// written (boxed, as the crate's other large errors).
    #[error(transparent)]
    Model(Box<Error>),
}

impl<E: Into<Error>> From<E> for ImportError {
    fn from(e: E) -> Self {
        Self::Model(Box::new(e.into()))
    }
}

/// The original's key of our parameter `ours` (a dotted path with LayerNorm `gamma`/`beta`),
/// or `None` for a path outside the mapping (a programmer error).
pub(super) fn torch_key(ours: &str) -> Option<String> {
    let p: Vec<&str> = ours.split('.').collect();
    let key = match p.as_slice() {
        ["wsi_embedder", t @ ("cls_token" | "pos_embedding")] => format!("wsi_embedder.{t}"),
        ["rna_embedder", t @ ("cls_token" | "pos_embedding")] => format!("rna_embedder.{t}"),
        ["rna_embedder", m, w] => {
            let i = match *m {
                "input_norm" => 0,
                "project" => 1,
                "token_norm" => 3,
                _ => return None,
            };
            format!("rna_embedder.to_rna_embedding.{i}.{}", leaf(w))
        }
        [
            "encoder",
            "blocks",
            b,
            enc @ ("wsi_enc" | "rna_enc"),
            rest @ ..,
        ] => encoder_key(b, enc, rest)?,
        [
            "encoder",
            "blocks",
            b,
            "cross",
            "layers",
            l,
            side,
            rest @ ..,
        ] => cross_key(b, l, side, rest)?,
        // The original computed both modalities' logits with its WSI head.
        ["wsi_head" | "rna_head", m, w] => {
            let i = match *m {
                "norm" => 0,
                "linear" => 1,
                _ => return None,
            };
            format!("wsi_mlp_head.{i}.{}", leaf(w))
        }
        _ => return None,
    };
    Some(key)
}

/// The original's name of a LayerNorm or linear leaf (`gamma`/`beta` → `weight`/`bias`).
fn leaf(name: &str) -> &str {
    match name {
        "gamma" => "weight",
        "beta" => "bias",
        other => other,
    }
}

/// The original's key below an attention module, from ours below it.
fn attention_key(rest: &[&str]) -> Option<String> {
    match rest {
        [m @ ("norm" | "to_q" | "to_kv"), w] => Some(format!("{m}.{}", leaf(w))),
        ["to_out", w] => Some(format!("to_out.0.{}", leaf(w))),
        _ => None,
    }
}

/// The original's key of a tensor of block `b`'s encoder `enc` (`wsi_enc`, `rna_enc`).
fn encoder_key(b: &str, enc: &str, rest: &[&str]) -> Option<String> {
    let e = if enc == "wsi_enc" { 0 } else { 1 };
    let base = format!("bimodal_encoder.layers.{b}.{e}");
    Some(match rest {
        ["norm", w] => format!("{base}.norm.{}", leaf(w)),
        ["layers", l, "attn", inner @ ..] => {
            format!("{base}.layers.{l}.0.{}", attention_key(inner)?)
        }
        ["layers", l, "ff", m, w] => {
            let i = match *m {
                "norm" => 0,
                "fc1" => 1,
                "fc2" => 4,
                _ => return None,
            };
            format!("{base}.layers.{l}.1.net.{i}.{}", leaf(w))
        }
        _ => return None,
    })
}

/// The original's key of a tensor of block `b`'s cross-attention layer `l`, `side` being
/// which modality attends to which.
fn cross_key(b: &str, l: &str, side: &str, rest: &[&str]) -> Option<String> {
    let s = match side {
        "wsi_attend_rna" => 0,
        "rna_attend_wsi" => 1,
        _ => return None,
    };
    let base = format!("bimodal_encoder.layers.{b}.2.layers.{l}.{s}");
    Some(match rest {
        [m @ ("project_in" | "project_out"), w] => format!("{base}.{m}.{}", leaf(w)),
        ["attn", inner @ ..] => format!("{base}.fn.{}", attention_key(inner)?),
        _ => return None,
    })
}

/// A checkpoint's tensors (read on use), by key.
pub struct Checkpoint {
    path: PathBuf,
    tensors: HashMap<String, (Vec<usize>, PtTensor)>,
}

/// Reads the tensor names and shapes of a checkpoint (data is read on use). A `state_dict`
/// nested under `state_dict` and DataParallel's `module.` prefix are unwrapped.
///
/// # Errors
///
/// [`ImportError::Unreadable`] naming the file.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, ImportError> {
    let unreadable = |e: &dyn std::fmt::Display| ImportError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut reader = PytorchReader::new(path).map_err(|e| unreadable(&e))?;
    if !reader
        .keys()
        .iter()
        .any(|k| k.starts_with("wsi_embedder.") || k.starts_with("module."))
        && reader.keys().iter().any(|k| k.starts_with("state_dict."))
    {
        reader =
            PytorchReader::with_top_level_key(path, "state_dict").map_err(|e| unreadable(&e))?;
    }
    // torch.save stores tensors uncompressed: one that claims more bytes than the whole file
    // is damaged, and must be refused before anything is sized by its shape.
    let file_len = std::fs::metadata(path).map_err(|e| unreadable(&e))?.len();
    let mut tensors = HashMap::new();
    for (k, t) in reader.into_tensors() {
        let bytes = t
            .shape()
            .iter()
            .try_fold(t.dtype().size() as u64, |acc, &d| acc.checked_mul(d as u64));
        if bytes.is_none_or(|b| b > file_len) {
            return Err(unreadable(&format!(
                "tensor `{k}` claims shape {:?} of {:?}, more bytes than the file's {file_len}",
                t.shape(),
                t.dtype()
            )));
        }
        let k = k.strip_prefix("module.").map(str::to_string).unwrap_or(k);
        tensors.insert(k, (t.shape().to_vec(), t));
    }
    Ok(Checkpoint {
        path: path.to_path_buf(),
        tensors,
    })
}

impl Checkpoint {
    /// The checkpoint's keys (DataParallel's `module.` prefix removed), sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// The shape of the tensor `key`.
    ///
    /// # Errors
    ///
    /// [`ImportError::Missing`] when the checkpoint has no such tensor.
    pub fn shape(&self, key: &str) -> Result<&[usize], ImportError> {
        self.tensors
            .get(key)
            .map(|(s, _)| s.as_slice())
            .ok_or_else(|| ImportError::Missing {
                path: self.path.clone(),
                key: key.to_string(),
            })
    }

    /// The values of the tensor `key`, row-major, converted to `f32`.
    ///
    /// # Errors
    ///
    /// [`ImportError::Missing`] when the checkpoint has no such tensor;
    /// [`ImportError::Unreadable`] when its data cannot be read; [`ImportError::DType`] for a
    /// tensor that is not floating point.
    pub fn values(&self, key: &str) -> Result<Vec<f32>, ImportError> {
        let Some((_, tensor)) = self.tensors.get(key) else {
            return Err(ImportError::Missing {
                path: self.path.clone(),
                key: key.to_string(),
            });
        };
        let bytes = tensor.read().map_err(|e| ImportError::Unreadable {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        Ok(match tensor.dtype() {
            PtDType::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            PtDType::F64 => bytes
                .chunks_exact(8)
                .map(|b| f64::from_ne_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            PtDType::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_ne_bytes([b[0], b[1]]).to_f32())
                .collect(),
            PtDType::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_ne_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(ImportError::DType {
                    path: self.path.clone(),
                    key: key.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        })
    }
}

/// Fills every parameter from the checkpoint, recording the first problem.
struct Filler<'a> {
    checkpoint: &'a Checkpoint,
    path: Vec<(String, String)>,
    used: HashSet<String>,
    error: Option<ImportError>,
}

impl ModuleMapper for Filler<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let ours: Vec<&str> = self.path.iter().map(|(n, _)| n.as_str()).collect();
        let key = torch_key(&ours.join("."))
            .unwrap_or_else(|| panic!("no mapping for `{}`", ours.join(".")));
        let linear_weight = self
            .path
            .last()
            .is_some_and(|(n, t)| n == "weight" && t.ends_with("Linear"));
        let dims = param.val().dims();
        let mut expected: Vec<usize> = dims.to_vec();
        if linear_weight {
            expected.reverse();
        }
        let result = self.checkpoint.shape(&key).and_then(|got| {
            if got != expected.as_slice() {
                return Err(ImportError::Shape {
                    path: self.checkpoint.path.clone(),
                    key: key.clone(),
                    expected: expected.clone(),
                    got: got.to_vec(),
                });
            }
            self.checkpoint.values(&key)
        });
        let result = result.and_then(|values| {
            // The reader sizes a read by the shape, but a short read must not reach
            // `TensorData::new`, which panics on a length mismatch.
            if values.len() == expected.iter().product::<usize>() {
                Ok(values)
            } else {
                Err(ImportError::Unreadable {
                    path: self.checkpoint.path.clone(),
                    message: format!(
                        "tensor `{key}` holds {} values, its shape {expected:?} calls for {}",
                        values.len(),
                        expected.iter().product::<usize>()
                    ),
                })
            }
        });
        match result {
            Ok(mut values) => {
                if linear_weight {
                    // [out, in] row-major → [in, out] row-major.
                    let (rows, cols) = (expected[0], expected[1]);
                    let mut t = vec![0.0; values.len()];
                    for r in 0..rows {
                        for c in 0..cols {
                            t[c * rows + r] = values[r * cols + c];
                        }
                    }
                    values = t;
                }
                self.used.insert(key);
                param.map(|t| Tensor::from_data(TensorData::new(values, dims), &t.device()))
            }
            Err(e) => {
                self.error = Some(e);
                param
            }
        }
    }
}

/// The model configuration equivalent to the original's arguments, with the cross-attention
/// head count the checkpoint was built with.
///
/// # Errors
///
/// [`ImportError`] when the checkpoint lacks the first cross-attention query projection or its
/// width is not a multiple of `cross_attn_dim_head`.
fn config_for(
    args: &OriginalArgs,
    checkpoint: &Checkpoint,
) -> Result<MedCrossViTConfig, ImportError> {
    let key = "bimodal_encoder.layers.0.2.layers.0.0.fn.to_q.weight";
    let shape = checkpoint.shape(key)?;
    // A damaged checkpoint may hold this key as a scalar: no rows is a misshapen tensor.
    let inner = shape.first().copied().unwrap_or(0);
    if shape.len() != 2
        || inner == 0
        || args.cross_attn_dim_head == 0
        || inner % args.cross_attn_dim_head != 0
    {
        return Err(ImportError::Shape {
            path: checkpoint.path.clone(),
            key: key.into(),
            expected: vec![
                args.cross_atnn_depth * args.cross_attn_dim_head,
                args.rna_dim,
            ],
            got: shape.to_vec(),
        });
    }
    Ok(MedCrossViTConfig {
        num_classes: args.num_classes,
        depth: args.depth,
        wsi_dim: args.wsi_dim,
        rna_dim: args.rna_dim,
        wsi_num_tiles: args.wsi_num_tiles,
        wsi_pos_embedding: true,
        wsi_enc_depth: args.wsi_enc_depth,
        wsi_enc_heads: args.wsi_enc_heads,
        wsi_enc_mlp_dim: args.wsi_enc_mlp_dim,
        wsi_enc_dim_head: args.wsi_enc_dim_head,
        rna_num_genes: args.rna_num_genes,
        rna_enc_depth: args.rna_enc_depth,
        rna_enc_heads: args.rna_enc_heads,
        rna_enc_mlp_dim: args.rna_enc_mlp_dim,
        rna_enc_dim_head: args.rna_enc_dim_head,
        cross_attn_depth: args.cross_atnn_depth,
        cross_attn_heads: inner / args.cross_attn_dim_head,
        cross_attn_dim_head: args.cross_attn_dim_head,
        dropout: args.dropout,
        emb_dropout: args.emb_dropout,
        pool: args.pool,
        rna_tokenizer: crate::model::RnaTokenizer::Dense,
        rna_attention: crate::model::AttentionKind::Exact,
    })
}

/// Builds our model from the original's checkpoint and arguments, on `device`.
///
/// # Errors
///
/// [`ImportError`] naming the first missing, misshapen or unexpected tensor; the
/// configuration's [`ConfigError`](crate::ConfigError).
pub fn import_model(
    checkpoint: &Checkpoint,
    args: &OriginalArgs,
    device: &Device,
) -> Result<MedCrossViT, ImportError> {
    let config = config_for(args, checkpoint)?;
    // Arguments that call for more weights than the checkpoint has values would fail on a
    // missing or misshapen tensor anyway; refusing them first keeps a typo such as
    // `"wsi_dim": 76800` from building a model of gigabytes. Only a gross excess is refused
    // here: a model a few times the checkpoint's size is cheap to build, and the filling
    // below then names the first tensor that does not fit.
    let held: u128 = checkpoint
        .tensors
        .values()
        .map(|(shape, _)| {
            shape
                .iter()
                .fold(1u128, |a, &d| a.saturating_mul(d as u128))
        })
        .fold(0u128, u128::saturating_add);
    if config.min_weights()
        > held
            .saturating_mul(4)
            .saturating_add(crate::model::SMALL_MODEL_WEIGHTS)
    {
        return Err(ImportError::TooSmall {
            path: checkpoint.path.clone(),
            needed: config.min_weights(),
            held,
        });
    }
    let model = config.init(device)?;
    let mut filler = Filler {
        checkpoint,
        path: Vec::new(),
        used: HashSet::new(),
        error: None,
    };
    let model = model.map(&mut filler);
    if let Some(e) = filler.error {
        return Err(e);
    }
    let mut extra: Vec<&String> = checkpoint
        .tensors
        .keys()
        .filter(|k| !filler.used.contains(*k) && !k.starts_with("rna_mlp_head."))
        .collect();
    extra.sort();
    if let Some(key) = extra.first() {
        return Err(ImportError::Unexpected {
            path: checkpoint.path.clone(),
            key: (*key).clone(),
        });
    }
    Ok(model)
}

/// `import-torch`: writes a model folder (config, weights, normalization, labels) that
/// `predict` and `evaluate` accept.
///
/// Expression normalization is the identity unless `normalization` names a JSON file (as
/// [`Normalization::save`] writes).
///
/// `out` must be absent or an empty folder, and lie in no run or model folder (the rule of
/// [`run::outputs`](crate::run::outputs)): an existing model is never replaced.
///
/// # Errors
///
/// [`RunError::Overwrite`](crate::RunError::Overwrite) for an `out` that holds files or lies
/// in a run folder, before anything is read; [`ImportError`] for the checkpoint or arguments; the errors of writing
/// the folder.
pub fn import_torch(
    checkpoint: &Path,
    args: &Path,
    normalization: Option<&Path>,
    out: &Path,
    device: &Device,
) -> Result<MedCrossViT, ImportError> {
    import_torch_with(checkpoint, args, normalization, out, false, device)
}

/// [`import_torch`], writing into `out` whatever it holds when `force` is set
/// (`import-torch --force`).
///
/// # Errors
///
/// As [`import_torch`].
pub fn import_torch_with(
    checkpoint: &Path,
    args: &Path,
    normalization: Option<&Path>,
    out: &Path,
    force: bool,
    device: &Device,
) -> Result<MedCrossViT, ImportError> {
    crate::run::check_output(out, crate::run::OutputKind::Model, force)?;
    let text = std::fs::read_to_string(args).map_err(|e| ImportError::Args {
        path: args.to_path_buf(),
        message: e.to_string(),
    })?;
    let args_value: OriginalArgs = serde_json::from_str(&text).map_err(|e| ImportError::Args {
        path: args.to_path_buf(),
        message: e.to_string(),
    })?;
    let checkpoint = load_checkpoint(checkpoint)?;
    let model = import_model(&checkpoint, &args_value, device)?;
    let config = model.config().clone();
    let normalization = match normalization {
        Some(path) => {
            let n = Normalization::load(path)?;
            if n.mean.len() != config.rna_num_genes {
                return Err(crate::run::RunError::ConfigMismatch {
                    field: "rna_num_genes",
                    config: config.rna_num_genes,
                    data: n.mean.len(),
                }
                .into());
            }
            n
        }
        None => Normalization::identity_for(config.rna_num_genes),
    };
    std::fs::create_dir_all(out).map_err(|e| crate::run::RunFileError::io(out)(e))?;
    RunConfig::for_model(config.clone()).save(out)?;
    model.save_weights(out.join(crate::model::WEIGHTS_FILE))?;
    normalization.save(out.join(files::NORMALIZATION))?;
    LabelMap {
        classes: (0..config.num_classes).map(|c| c.to_string()).collect(),
    }
    .save(out.join(files::LABELS))?;
    Ok(model)
}
