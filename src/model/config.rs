//! [`MedCrossViTConfig`]: every hyperparameter of the original, validated up front.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::attention_nystrom::AttentionKind;
use super::rna::RnaTokenizer;
use crate::model::ConfigError;

/// How a modality's tokens are pooled into the vector its head classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// Mean over all tokens, the CLS token included (the original's default).
    /// Padded tiles are left out.
    #[default]
    Mean,
    /// The CLS token alone.
    Cls,
}

/// The hyperparameters of a [`MedCrossViT`](super::MedCrossViT) model.
///
/// Field names are the original's keyword arguments, except `cross_attn_depth`, which the
/// original spells `cross_atnn_depth` (that spelling is accepted when reading JSON). Defaults
/// are the original's; `num_classes`, `wsi_dim` and `rna_dim` have none and must be given.
///
/// The WSI branch works at width `wsi_dim` (the tile-feature width), the RNA branch at
/// `rna_dim`; the two may differ.
///
/// ```
/// use med_crossvit::MedCrossViTConfig;
///
/// let config = MedCrossViTConfig::seed();
/// assert_eq!(config.cross_attn_heads, 8);
/// config.validate().unwrap();
///
/// let json = config.to_json();
/// assert_eq!(MedCrossViTConfig::from_json(&json).unwrap(), config);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedCrossViTConfig {
    /// Number of output classes (or survival time bins). No default.
    pub num_classes: usize,
    /// Number of fusion blocks, each a WSI encoder, an RNA encoder and a cross-transformer.
    /// Default 3.
    #[serde(default = "defaults::depth")]
    pub depth: usize,
    /// Width of a tile feature vector, and of the WSI branch. No default.
    pub wsi_dim: usize,
    /// Width of a gene token, and of the RNA branch. No default.
    pub rna_dim: usize,
    /// Most tiles per bag; the WSI positional embedding covers `wsi_num_tiles + 1` positions.
    /// Default 50.
    #[serde(default = "defaults::wsi_num_tiles")]
    pub wsi_num_tiles: usize,
    /// Whether each tile gets a learned embedding of its slot in the bag (the original: yes).
    /// A bag is an unordered sample of tiles, so turning it off loses nothing, makes the
    /// attention depend on the tiles alone (permuting a bag permutes its scores and keeps the
    /// prediction) and lifts the `wsi_num_tiles` limit.
    /// Default true here and when read from JSON: the original's, which imported checkpoints
    /// and saved runs keep. New runs resolved from a preset, or from a config file that leaves
    /// the field out, get false: see [`resolve_model`](crate::run::resolve_model).
    #[serde(default = "defaults::yes")]
    pub wsi_pos_embedding: bool,
    /// Layers of each WSI transformer encoder. Default 4.
    #[serde(default = "defaults::enc_depth")]
    pub wsi_enc_depth: usize,
    /// Attention heads in the WSI encoder. Default 8.
    #[serde(default = "defaults::heads")]
    pub wsi_enc_heads: usize,
    /// Hidden width of the WSI encoder's feed-forward layers. Default 2048.
    #[serde(default = "defaults::mlp_dim")]
    pub wsi_enc_mlp_dim: usize,
    /// Width of one WSI attention head. Default 64.
    #[serde(default = "defaults::dim_head")]
    pub wsi_enc_dim_head: usize,
    /// Number of genes in an expression vector. Default 100.
    #[serde(default = "defaults::rna_num_genes")]
    pub rna_num_genes: usize,
    /// Layers of each RNA transformer encoder. Default 4.
    #[serde(default = "defaults::enc_depth")]
    pub rna_enc_depth: usize,
    /// Attention heads in the RNA encoder. Default 8.
    #[serde(default = "defaults::heads")]
    pub rna_enc_heads: usize,
    /// Hidden width of the RNA encoder's feed-forward layers. Default 2048.
    #[serde(default = "defaults::mlp_dim")]
    pub rna_enc_mlp_dim: usize,
    /// Width of one RNA attention head. Default 64.
    #[serde(default = "defaults::dim_head")]
    pub rna_enc_dim_head: usize,
    /// Cross-attention layers per fusion block (the original's `cross_atnn_depth`). Default 2.
    #[serde(default = "defaults::cross_attn_depth", alias = "cross_atnn_depth")]
    pub cross_attn_depth: usize,
    /// Heads of each cross-attention. Default 8. (The original ignored this value and used
    /// `cross_atnn_depth` heads; see `docs/architecture.md`.)
    #[serde(default = "defaults::heads")]
    pub cross_attn_heads: usize,
    /// Width of one cross-attention head. Default 64.
    #[serde(default = "defaults::dim_head")]
    pub cross_attn_dim_head: usize,
    /// Dropout in attention and feed-forward layers, in `[0, 1)`. Default 0.1.
    #[serde(default = "defaults::dropout")]
    pub dropout: f64,
    /// Dropout after the token embeddings, in `[0, 1)`. Default 0.1.
    #[serde(default = "defaults::dropout")]
    pub emb_dropout: f64,
    /// Token pooling before the heads. Default [`Pool::Mean`].
    #[serde(default)]
    pub pool: Pool,
    /// How expression becomes RNA tokens. Default the original's dense tokenizer; `per_gene`
    /// and `pathways` scale to whole transcriptomes.
    #[serde(default)]
    pub rna_tokenizer: RnaTokenizer,
    /// How the RNA encoder's self-attention weighs its gene tokens: exact (the default, and
    /// what a config without the field gets) or the sub-quadratic Nyström approximation,
    /// `{"kind": "nystrom", "landmarks": 256}` (`docs/attention.md`). Left out of the JSON
    /// when exact, so that such configs read as before.
    #[serde(default, skip_serializing_if = "AttentionKind::is_exact")]
    pub rna_attention: AttentionKind,
}

mod defaults {
    pub fn depth() -> usize {
        3
    }
    pub fn wsi_num_tiles() -> usize {
        50
    }
    pub fn yes() -> bool {
        true
    }
    pub fn enc_depth() -> usize {
        4
    }
    pub fn heads() -> usize {
        8
    }
    pub fn mlp_dim() -> usize {
        2048
    }
    pub fn dim_head() -> usize {
        64
    }
    pub fn rna_num_genes() -> usize {
        100
    }
    pub fn cross_attn_depth() -> usize {
        2
    }
    pub fn dropout() -> f64 {
        0.1
    }
}

impl MedCrossViTConfig {
    /// A configuration with the original's defaults for everything but the three values that
    /// have none.
    pub fn new(num_classes: usize, wsi_dim: usize, rna_dim: usize) -> Self {
        Self {
            num_classes,
            depth: defaults::depth(),
            wsi_dim,
            rna_dim,
            wsi_num_tiles: defaults::wsi_num_tiles(),
            wsi_pos_embedding: true,
            wsi_enc_depth: defaults::enc_depth(),
            wsi_enc_heads: defaults::heads(),
            wsi_enc_mlp_dim: defaults::mlp_dim(),
            wsi_enc_dim_head: defaults::dim_head(),
            rna_num_genes: defaults::rna_num_genes(),
            rna_enc_depth: defaults::enc_depth(),
            rna_enc_heads: defaults::heads(),
            rna_enc_mlp_dim: defaults::mlp_dim(),
            rna_enc_dim_head: defaults::dim_head(),
            cross_attn_depth: defaults::cross_attn_depth(),
            cross_attn_heads: defaults::heads(),
            cross_attn_dim_head: defaults::dim_head(),
            dropout: defaults::dropout(),
            emb_dropout: defaults::dropout(),
            pool: Pool::Mean,
            rna_tokenizer: RnaTokenizer::Dense,
            rna_attention: AttentionKind::Exact,
        }
    }

    /// The arguments of the original's published usage snippet: 2 classes, 768-wide tiles and
    /// gene tokens, 50 tiles, 100 genes, 4 fusion blocks of 2-layer encoders (8 heads of 64,
    /// MLP 2048) and 2 cross-attention layers of 8 heads.
    pub fn seed() -> Self {
        Self {
            depth: 4,
            wsi_enc_depth: 2,
            rna_enc_depth: 2,
            ..Self::new(2, 768, 768)
        }
    }

    /// A small model for CPU demos and quick experiments: 2 fusion blocks of 1-layer encoders,
    /// 4 heads of 32, MLP 256, one cross-attention layer. The input widths are the caller's.
    pub fn small(num_classes: usize, wsi_dim: usize, rna_dim: usize) -> Self {
        Self {
            depth: 2,
            wsi_enc_depth: 1,
            wsi_enc_heads: 4,
            wsi_enc_mlp_dim: 256,
            wsi_enc_dim_head: 32,
            rna_enc_depth: 1,
            rna_enc_heads: 4,
            rna_enc_mlp_dim: 256,
            rna_enc_dim_head: 32,
            cross_attn_depth: 1,
            cross_attn_heads: 4,
            cross_attn_dim_head: 32,
            ..Self::new(num_classes, wsi_dim, rna_dim)
        }
    }

    /// Checks every field; the first bad one is named in the error.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Zero`] for a size or count of 0, [`ConfigError::Probability`] for a
    /// dropout outside `[0, 1)`, [`ConfigError::Inconsistent`] for `rna_num_genes · rna_dim`
    /// too large to address.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sizes = [
            ("num_classes", self.num_classes),
            ("depth", self.depth),
            ("wsi_dim", self.wsi_dim),
            ("rna_dim", self.rna_dim),
            ("wsi_num_tiles", self.wsi_num_tiles),
            ("wsi_enc_depth", self.wsi_enc_depth),
            ("wsi_enc_heads", self.wsi_enc_heads),
            ("wsi_enc_mlp_dim", self.wsi_enc_mlp_dim),
            ("wsi_enc_dim_head", self.wsi_enc_dim_head),
            ("rna_num_genes", self.rna_num_genes),
            ("rna_enc_depth", self.rna_enc_depth),
            ("rna_enc_heads", self.rna_enc_heads),
            ("rna_enc_mlp_dim", self.rna_enc_mlp_dim),
            ("rna_enc_dim_head", self.rna_enc_dim_head),
            ("cross_attn_depth", self.cross_attn_depth),
            ("cross_attn_heads", self.cross_attn_heads),
            ("cross_attn_dim_head", self.cross_attn_dim_head),
        ];
        if let Some((field, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Zero { field });
        }
        for (field, value) in [("dropout", self.dropout), ("emb_dropout", self.emb_dropout)] {
            if !(0.0..1.0).contains(&value) {
                return Err(ConfigError::Probability { field, value });
            }
        }
        if let AttentionKind::Nystrom {
            landmarks,
            pinv_iterations,
        } = self.rna_attention
        {
            if landmarks == 0 {
                return Err(ConfigError::Zero {
                    field: "rna_attention.landmarks",
                });
            }
            if pinv_iterations == 0 {
                return Err(ConfigError::Zero {
                    field: "rna_attention.pinv_iterations",
                });
            }
        }
        if let RnaTokenizer::Pathways { groups } = &self.rna_tokenizer {
            let inconsistent = |reason: String| ConfigError::Inconsistent {
                field: "rna_tokenizer",
                reason,
            };
            if groups.is_empty() {
                return Err(inconsistent(
                    "the pathways tokenizer needs at least one group".into(),
                ));
            }
            for group in groups {
                if group.genes.is_empty() {
                    return Err(inconsistent(format!("group `{}` has no gene", group.name)));
                }
                if let Some(g) = group.genes.iter().find(|&&g| g >= self.rna_num_genes) {
                    return Err(inconsistent(format!(
                        "group `{}` names gene {g}, but there are rna_num_genes = {}",
                        group.name, self.rna_num_genes
                    )));
                }
            }
        }
        // The dense RNA embedder holds a [genes, genes · rna_dim] matrix.
        let dense = self
            .rna_num_genes
            .checked_mul(self.rna_num_genes)
            .and_then(|g2| g2.checked_mul(self.rna_dim));
        if self.rna_tokenizer == RnaTokenizer::Dense && dense.is_none_or(|n| n > i32::MAX as usize)
        {
            return Err(ConfigError::Inconsistent {
                field: "rna_num_genes",
                reason: format!(
                    "the dense RNA tokenizer would need rna_num_genes² · rna_dim = {}² · {} \
                     weights, more than one tensor can hold (use the per_gene or pathways \
                     tokenizer)",
                    self.rna_num_genes, self.rna_dim
                ),
            });
        }
        Ok(())
    }

    /// A lower bound on the number of weights the model holds (its attention, feed-forward,
    /// embedding and head matrices; biases and norms left out), computed without building it.
    ///
    /// Loaders compare it with the size of the weights file before allocating anything, so
    /// that a `config.json` claiming billions of weights beside a small file is refused
    /// instead of exhausting memory.
    pub fn min_weights(&self) -> u128 {
        let n = |v: usize| v as u128;
        let mul = |a: u128, b: u128| a.saturating_mul(b);
        let encoder = |depth: usize, heads: usize, dim_head: usize, mlp: usize, dim: usize| {
            let attention = mul(4, mul(n(dim), mul(n(heads), n(dim_head))));
            let feed_forward = mul(2, mul(n(dim), n(mlp)));
            mul(n(depth), attention.saturating_add(feed_forward))
        };
        let cross_inner = mul(n(self.cross_attn_heads), n(self.cross_attn_dim_head));
        let cross = mul(
            n(self.cross_attn_depth),
            mul(
                4,
                mul(cross_inner, n(self.wsi_dim).saturating_add(n(self.rna_dim))),
            ),
        );
        let block = encoder(
            self.wsi_enc_depth,
            self.wsi_enc_heads,
            self.wsi_enc_dim_head,
            self.wsi_enc_mlp_dim,
            self.wsi_dim,
        )
        .saturating_add(encoder(
            self.rna_enc_depth,
            self.rna_enc_heads,
            self.rna_enc_dim_head,
            self.rna_enc_mlp_dim,
            self.rna_dim,
        ))
        .saturating_add(cross);
        let positions = if self.wsi_pos_embedding {
            mul(n(self.wsi_num_tiles).saturating_add(1), n(self.wsi_dim))
        } else {
            0
        };
        let dense = if self.rna_tokenizer == RnaTokenizer::Dense {
            mul(
                n(self.rna_num_genes),
                mul(n(self.rna_num_genes), n(self.rna_dim)),
            )
        } else {
            0
        };
        let heads = mul(
            n(self.num_classes),
            n(self.wsi_dim).saturating_add(n(self.rna_dim)),
        );
        mul(n(self.depth), block)
            .saturating_add(positions)
            .saturating_add(dense)
            .saturating_add(heads)
    }

    /// Number of cross-attention layers in the whole model: `depth · cross_attn_depth`.
    pub fn fusion_layers(&self) -> usize {
        self.depth * self.cross_attn_depth
    }

    /// The configuration as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config always serializes")
    }

    /// Parses and validates a configuration from JSON text. Missing fields take their defaults.
    /// A run folder's `config.json` (the model config under `"model"`) is accepted too.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Json`] (with an empty path) for malformed JSON, an unknown field or a
    /// missing required field; the errors of [`validate`](Self::validate).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let json = |source| ConfigError::Json {
            path: Default::default(),
            source,
        };
        // A run folder's config.json holds the model config under "model".
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(json)?;
        if let Some(model) = value.get_mut("model").filter(|m| m.is_object()) {
            value = model.take();
        }
        let config: Self = serde_json::from_value(value).map_err(json)?;
        config.validate()?;
        Ok(config)
    }

    /// Writes the configuration as JSON to `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] naming the file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json() + "\n").map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and validates a configuration from a JSON file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] or [`ConfigError::Json`] naming the file; the errors of
    /// [`validate`](Self::validate).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            ConfigError::Json { source, .. } => ConfigError::Json {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_matches_the_published_snippet() {
        let c = MedCrossViTConfig::seed();
        assert_eq!(
            (
                c.num_classes,
                c.depth,
                c.wsi_dim,
                c.rna_dim,
                c.wsi_num_tiles
            ),
            (2, 4, 768, 768, 50)
        );
        assert_eq!(
            (c.wsi_enc_depth, c.rna_enc_depth, c.rna_num_genes),
            (2, 2, 100)
        );
        assert_eq!((c.cross_attn_depth, c.cross_attn_heads), (2, 8));
    }

    #[test]
    fn json_fills_defaults_and_accepts_the_original_spelling() {
        let c = MedCrossViTConfig::from_json(
            r#"{"num_classes": 3, "wsi_dim": 16, "rna_dim": 8, "cross_atnn_depth": 5}"#,
        )
        .unwrap();
        assert_eq!(c.cross_attn_depth, 5);
        assert_eq!(c.depth, 3);
        assert_eq!(c.wsi_enc_mlp_dim, 2048);
        assert_eq!(c.pool, Pool::Mean);
        assert!(c.wsi_pos_embedding);
    }

    #[test]
    fn json_errors_name_the_field() {
        let err = MedCrossViTConfig::from_json(r#"{"num_classes": 3, "wsi_dim": 16}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rna_dim"), "{err}");
        let err = MedCrossViTConfig::from_json(
            r#"{"num_classes": 3, "wsi_dim": 16, "rna_dim": 8, "dept": 2}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("dept"), "{err}");
    }
}
