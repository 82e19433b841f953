//! The Med-CrossViT model: a transformer encoder per modality, fused by cross-attention
//! between the CLS tokens.
//!
//! - WSI branch: a bag of tile features → [`TileEmbedder`] → [`Transformer`].
//! - RNA branch: an expression vector → [`RnaEmbedder`] → [`Transformer`].
//! - Fusion: [`CrossTransformer`] (each CLS token attends to the other modality's tokens),
//!   repeated in `depth` [`FusionBlock`]s of the [`BiModalEncoder`].
//! - Heads: one [`ClassifierHead`] per modality on the pooled tokens; the logits are summed.
//!
//! The architecture follows CrossViT (Chen, Fan & Panda, 2021,
//! <https://arxiv.org/abs/2103.14899>), with two modalities in the place of two patch sizes.
//! `docs/architecture.md` sets each part beside the Python original.

mod activation;
mod attention;
mod config;
mod cross;
mod dropout;
mod encoder;
mod feedforward;
mod head;
mod io;
mod persist;
mod recompute;
mod rna;
mod transformer;
mod wsi;

/// Weights (4 M, 16 MB as f32) a model may have beyond what its weights file or checkpoint
/// holds before a loader refuses it without building it: a small excess is built and then
/// reported tensor by tensor, a gross one (a damaged `config.json`) never allocated.
pub(crate) const SMALL_MODEL_WEIGHTS: u128 = 4 << 20;

pub use attention::{Attention, AttentionConfig, AttentionInput, KeyPadding};
pub use config::{MedCrossViTConfig, Pool};
pub use cross::{
    CrossLayer, CrossTransformer, CrossTransformerConfig, CrossWeights, ProjectInOut,
    ProjectInOutConfig,
};
pub use encoder::{BiModalEncoder, BiModalEncoderConfig, FusionBlock};
pub use feedforward::{FeedForward, FeedForwardConfig};
pub use head::{ClassifierHead, ClassifierHeadConfig};
pub use io::{FusionAttention, MedCrossViTOutput, ModelInput};
pub use persist::{CONFIG_FILE, WEIGHTS_FILE};
pub(crate) use persist::{write_atomic, write_text_atomic};
pub use recompute::RecomputedStep;
pub use rna::{GeneGroup, PathwayNet, RnaEmbedder, RnaEmbedderConfig, RnaTokenizer};
pub use transformer::{Transformer, TransformerConfig, TransformerLayer};
pub use wsi::{TileEmbedder, TileEmbedderConfig};

use burn::module::Module;
use burn::tensor::{Bool, Device, Tensor, TensorData};

use crate::error::{ConfigError, InputError};

/// The Med-CrossViT model.
///
/// Create with [`MedCrossViTConfig::init`]; run with [`forward`](Self::forward).
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use med_crossvit::{MedCrossViTConfig, ModelInput};
///
/// let device = Device::flex();
/// let mut config = MedCrossViTConfig::small(3, 16, 8);
/// config.rna_num_genes = 12;
/// let model = config.init(&device)?;
///
/// let tiles = Tensor::<3>::random([2, 20, 16], Distribution::Default, &device);
/// let expression = Tensor::<2>::random([2, 12], Distribution::Default, &device);
/// let out = model.forward(ModelInput::new(tiles, expression).with_attention())?;
/// assert_eq!(out.logits.dims(), [2, 3]);
/// assert_eq!(out.attention.unwrap().tile_scores().dims(), [2, 20]);
/// # Ok::<(), med_crossvit::Error>(())
/// ```
#[derive(Module, Debug)]
pub struct MedCrossViT {
    /// Tile bag → WSI tokens.
    pub wsi_embedder: TileEmbedder,
    /// Expression → gene tokens.
    pub rna_embedder: RnaEmbedder,
    /// The fusion blocks.
    pub encoder: BiModalEncoder,
    /// Head on the pooled WSI token.
    pub wsi_head: ClassifierHead,
    /// Head on the pooled RNA token.
    pub rna_head: ClassifierHead,
    #[module(skip)]
    config: MedCrossViTConfig,
}

impl MedCrossViTConfig {
    /// Validates the configuration and initializes a model on `device`.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of [`validate`](Self::validate).
    pub fn init(&self, device: &Device) -> Result<MedCrossViT, ConfigError> {
        self.validate()?;
        let transformer = |depth, heads, dim_head, mlp_dim, dim| {
            TransformerConfig::new(dim, depth, heads, dim_head, mlp_dim).with_dropout(self.dropout)
        };
        let encoder = BiModalEncoderConfig::new(
            self.depth,
            transformer(
                self.wsi_enc_depth,
                self.wsi_enc_heads,
                self.wsi_enc_dim_head,
                self.wsi_enc_mlp_dim,
                self.wsi_dim,
            ),
            transformer(
                self.rna_enc_depth,
                self.rna_enc_heads,
                self.rna_enc_dim_head,
                self.rna_enc_mlp_dim,
                self.rna_dim,
            ),
            CrossTransformerConfig::new(
                self.wsi_dim,
                self.rna_dim,
                self.cross_attn_depth,
                self.cross_attn_heads,
                self.cross_attn_dim_head,
            )
            .with_dropout(self.dropout),
        );
        Ok(MedCrossViT {
            wsi_embedder: TileEmbedderConfig::new(self.wsi_dim, self.wsi_num_tiles)
                .with_pos_embedding(self.wsi_pos_embedding)
                .with_dropout(self.emb_dropout)
                .init(device),
            rna_embedder: RnaEmbedderConfig::new(self.rna_num_genes, self.rna_dim)
                .with_tokenizer(self.rna_tokenizer.clone())
                .with_dropout(self.emb_dropout)
                .init(device),
            encoder: encoder.init(device),
            wsi_head: ClassifierHeadConfig::new(self.wsi_dim, self.num_classes).init(device),
            rna_head: ClassifierHeadConfig::new(self.rna_dim, self.num_classes).init(device),
            config: self.clone(),
        })
    }
}

impl MedCrossViT {
    /// The configuration the model was built from.
    pub fn config(&self) -> &MedCrossViTConfig {
        &self.config
    }

    /// Runs the model on a batch.
    ///
    /// Dropout is active only when the model's device has autodiff enabled and the model is in
    /// training mode; on a plain device, or after [`Module::valid`], the forward pass is
    /// deterministic.
    ///
    /// # Shapes
    /// - tiles: `[batch, tiles, wsi_dim]` (`tiles ≤ wsi_num_tiles` with the positional
    ///   embedding on)
    /// - expression: `[batch, rna_num_genes]`
    /// - padding mask: `[batch, tiles]`, `true` = padded
    /// - logits: `[batch, num_classes]`; embeddings `[batch, wsi_dim]` and `[batch, rna_dim]`;
    ///   attention `[batch, depth · cross_attn_depth, cross_attn_heads, 1 + tiles]` and
    ///   `[…, 1 + RNA tokens]` (one token per gene, or per group with the pathways tokenizer)
    ///
    /// # Errors
    ///
    /// [`InputError`] naming the tensor and dimension whose size is wrong, an empty bag, or a
    /// bag longer than the positional embedding.
    pub fn forward(&self, input: ModelInput) -> Result<MedCrossViTOutput, InputError> {
        self.check(&input)?;
        let padding = self.padding(input.padding_mask);
        let wsi = self.wsi_embedder.forward(input.tiles);
        let rna = self.rna_embedder.forward(input.expression);
        let mut weights = input.return_attention.then(CrossWeights::default);
        let (wsi, rna) = self
            .encoder
            .forward(wsi, rna, padding.as_ref(), weights.as_mut());
        let mut out = self.heads(wsi, rna, padding.as_ref());
        out.attention = weights.map(|w| FusionAttention {
            rna_cls_over_tiles: Tensor::stack(w.rna_cls, 1),
            wsi_cls_over_genes: Tensor::stack(w.wsi_cls, 1),
        });
        Ok(out)
    }

    /// The key padding of `[CLS, tiles…]` for a tile mask `[batch, tiles]`. The CLS token is
    /// never padding: one mask serves the WSI self-attention, the RNA CLS token's
    /// cross-attention and the pooling.
    fn padding(&self, mask: Option<Tensor<2, Bool>>) -> Option<KeyPadding> {
        mask.map(|mask| {
            let [batch, _] = mask.dims();
            let cls = Tensor::<2, Bool>::from_data(
                TensorData::new(vec![false; batch], [batch, 1]),
                &mask.device(),
            );
            KeyPadding::new(Tensor::cat(vec![cls, mask], 1))
        })
    }

    /// Pools both token sequences and applies the heads (no attention weights).
    fn heads(
        &self,
        wsi: Tensor<3>,
        rna: Tensor<3>,
        padding: Option<&KeyPadding>,
    ) -> MedCrossViTOutput {
        let wsi_embedding = self.pool(wsi, padding);
        let rna_embedding = self.pool(rna, None);
        let wsi_logits = self.wsi_head.forward(wsi_embedding.clone());
        let rna_logits = self.rna_head.forward(rna_embedding.clone());
        MedCrossViTOutput {
            logits: wsi_logits.clone() + rna_logits.clone(),
            wsi_logits,
            rna_logits,
            wsi_embedding,
            rna_embedding,
            attention: None,
        }
    }

    /// `[b, 1 + n, d]` → `[b, d]`, by the configured [`Pool`]; padded tokens left out.
    fn pool(&self, tokens: Tensor<3>, padding: Option<&KeyPadding>) -> Tensor<2> {
        let [batch, len, dim] = tokens.dims();
        match (self.config.pool, padding) {
            (Pool::Cls, _) => tokens.narrow(1, 0, 1).reshape([batch, dim]),
            (Pool::Mean, None) => tokens.mean_dim(1).reshape([batch, dim]),
            (Pool::Mean, Some(padding)) => {
                let keep = padding.keep(); // [b, 1 + n]
                let count = keep.clone().sum_dim(1); // [b, 1]
                let summed = (tokens * keep.reshape([batch, len, 1]))
                    .sum_dim(1)
                    .reshape([batch, dim]);
                summed / count
            }
        }
    }

    fn check(&self, input: &ModelInput) -> Result<(), InputError> {
        let c = &self.config;
        let [batch, tiles, width] = input.tiles.dims();
        let [e_batch, genes] = input.expression.dims();
        let dim = |tensor, dim, meaning, expected, got| {
            (expected != got).then_some(InputError::Dimension {
                tensor,
                dim,
                meaning,
                expected,
                got,
            })
        };
        let mut problems = vec![
            dim("tiles", 2, "tile feature width, wsi_dim", c.wsi_dim, width),
            dim(
                "expression",
                1,
                "genes, rna_num_genes",
                c.rna_num_genes,
                genes,
            ),
            dim("expression", 0, "batch size of the tiles", batch, e_batch),
        ];
        if let Some(mask) = &input.padding_mask {
            let [m_batch, m_tiles] = mask.dims();
            problems.push(dim(
                "padding mask",
                0,
                "batch size of the tiles",
                batch,
                m_batch,
            ));
            problems.push(dim("padding mask", 1, "tiles per bag", tiles, m_tiles));
        }
        if let Some(problem) = problems.into_iter().flatten().next() {
            return Err(problem);
        }
        if tiles == 0 {
            return Err(InputError::EmptyBag);
        }
        if c.wsi_pos_embedding && tiles > c.wsi_num_tiles {
            return Err(InputError::TooManyTiles {
                got: tiles,
                max: c.wsi_num_tiles,
            });
        }
        Ok(())
    }
}
