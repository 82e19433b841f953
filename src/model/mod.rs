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

mod attention;
mod attention_nystrom;
mod config;
pub mod cost;
mod cross;
mod encoder;
mod error;
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
pub use attention_nystrom::{AttentionKind, DEFAULT_PINV_ITERATIONS};
pub use config::{MedCrossViTConfig, Pool};
pub use cross::{
    CrossLayer, CrossTransformer, CrossTransformerConfig, CrossWeights, ProjectInOut,
    ProjectInOutConfig,
};
pub use encoder::{BiModalEncoder, BiModalEncoderConfig, FusionBlock};
pub use error::{ConfigError, InputError, LoadError, PersistError};
pub use feedforward::{FeedForward, FeedForwardConfig};
pub use head::{ClassifierHead, ClassifierHeadConfig};
pub use io::{FusionAttention, MedCrossViTOutput, ModelInput};
pub use persist::{CONFIG_FILE, WEIGHTS_FILE};
pub use recompute::RecomputedStep;
pub use rna::{GeneGroup, PathwayNet, RnaEmbedder, RnaEmbedderConfig, RnaTokenizer};
pub use transformer::{Transformer, TransformerConfig, TransformerLayer};
pub use wsi::{TileEmbedder, TileEmbedderConfig};

use burn::module::Module;
use burn::tensor::{Bool, Device, Tensor, TensorData};

/// The modality marks of a batch, read to the host: `None` where the input has none.
pub(crate) struct Presence {
    wsi: Option<Vec<bool>>,
    rna: Option<Vec<bool>>,
}

/// What a forward pass masks (see [`MedCrossViT::forward`]).
pub(crate) struct Masks {
    /// Over `[CLS, tiles]`: padded tiles, and every tile of a sample without tiles.
    wsi: Option<KeyPadding>,
    /// Over `[CLS, RNA tokens]`: every token of a sample without expression (cross-attention
    /// keys of the WSI CLS token).
    rna: Option<KeyPadding>,
    /// `[batch, 1]`, true = the sample has no tiles.
    wsi_missing: Option<Tensor<2, Bool>>,
    /// `[batch, 1]`, true = the sample has no expression.
    rna_missing: Option<Tensor<2, Bool>>,
}

impl Masks {
    /// The inputs with a missing modality's values replaced by zeros, so that nothing a
    /// caller padded it with (NaN included) can reach the output.
    fn zero_missing(&self, tiles: Tensor<3>, expression: Tensor<2>) -> (Tensor<3>, Tensor<2>) {
        let tiles = match &self.wsi_missing {
            Some(m) => {
                let [b, n, d] = tiles.dims();
                tiles.mask_fill(m.clone().reshape([b, 1, 1]).expand([b, n, d]), 0.0)
            }
            None => tiles,
        };
        let expression = match &self.rna_missing {
            Some(m) => {
                let [b, g] = expression.dims();
                expression.mask_fill(m.clone().expand([b, g]), 0.0)
            }
            None => expression,
        };
        (tiles, expression)
    }
}

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
            )
            .with_attention(self.rna_attention),
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
        let presence = self.check(&input)?;
        let masks = self.masks(&input, &presence);
        let (tiles, expression) = masks.zero_missing(input.tiles, input.expression);
        let wsi = self.wsi_embedder.forward(tiles);
        let rna = self.rna_embedder.forward(expression);
        let mut weights = input.return_attention.then(CrossWeights::default);
        let (wsi, rna) = self.encoder.forward(
            wsi,
            rna,
            masks.wsi.as_ref(),
            masks.rna.as_ref(),
            weights.as_mut(),
        );
        let mut out = self.heads(wsi, rna, &masks);
        out.attention = weights.map(|w| FusionAttention {
            rna_cls_over_tiles: Tensor::stack(w.rna_cls, 1),
            wsi_cls_over_genes: Tensor::stack(w.wsi_cls, 1),
        });
        Ok(out)
    }

    /// The masks of a batch: padded tiles, and the tokens of missing modalities. A mask is
    /// built only when something is masked, so a batch without padding or missing modality
    /// runs exactly as it would without the marks.
    fn masks(&self, input: &ModelInput, presence: &Presence) -> Masks {
        let [batch, tiles, _] = input.tiles.dims();
        let device = input.tiles.device();
        // `[batch, 1]`, true = missing; None when no sample misses the modality.
        let missing = |marks: &Option<Tensor<1, Bool>>, values: &Option<Vec<bool>>| {
            marks.as_ref().zip(values.as_ref()).and_then(|(p, values)| {
                values
                    .iter()
                    .any(|present| !present)
                    .then(|| p.clone().bool_not().reshape([batch, 1]))
            })
        };
        let wsi_missing = missing(&input.wsi_present, &presence.wsi);
        let rna_missing = missing(&input.rna_present, &presence.rna);
        let tile_mask = match (input.padding_mask.clone(), &wsi_missing) {
            (None, None) => None,
            (Some(mask), None) => Some(mask),
            (mask, Some(gone)) => {
                let gone = gone.clone().expand([batch, tiles]);
                Some(match mask {
                    Some(mask) => mask.bool_or(gone),
                    None => gone,
                })
            }
        };
        let rna_tokens = self.config.rna_tokenizer.tokens(self.config.rna_num_genes);
        let with_cls = |mask: Tensor<2, Bool>| {
            let cls = Tensor::<2, Bool>::from_data(
                TensorData::new(vec![false; batch], [batch, 1]),
                &device,
            );
            KeyPadding::new(Tensor::cat(vec![cls, mask], 1))
        };
        Masks {
            wsi: tile_mask.map(with_cls),
            rna: rna_missing
                .clone()
                .map(|gone| with_cls(gone.expand([batch, rna_tokens]))),
            wsi_missing,
            rna_missing,
        }
    }

    fn heads(&self, wsi: Tensor<3>, rna: Tensor<3>, masks: &Masks) -> MedCrossViTOutput {
        let wsi_embedding = self.pool(wsi, masks.wsi.as_ref());
        let rna_embedding = self.pool(rna, None);
        let wsi_logits = self.wsi_head.forward(wsi_embedding.clone());
        let rna_logits = self.rna_head.forward(rna_embedding.clone());
        // A missing modality's head is left out of the sum (zeros, also in the gradient).
        let zero = |x: Tensor<2>, missing: &Option<Tensor<2, Bool>>| match missing {
            Some(m) => {
                let [b, c] = x.dims();
                x.mask_fill(m.clone().expand([b, c]), 0.0)
            }
            None => x,
        };
        let (wsi_logits, wsi_embedding) = (
            zero(wsi_logits, &masks.wsi_missing),
            zero(wsi_embedding, &masks.wsi_missing),
        );
        let (rna_logits, rna_embedding) = (
            zero(rna_logits, &masks.rna_missing),
            zero(rna_embedding, &masks.rna_missing),
        );
        MedCrossViTOutput {
            logits: wsi_logits.clone() + rna_logits.clone(),
            wsi_logits,
            rna_logits,
            wsi_embedding,
            rna_embedding,
            attention: None,
        }
    }

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

    /// Checks the input's shapes and marks; returns the marks as read (once) to the host.
    fn check(&self, input: &ModelInput) -> Result<Presence, InputError> {
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
        for (tensor, present) in [
            ("wsi_present", &input.wsi_present),
            ("rna_present", &input.rna_present),
        ] {
            if let Some(p) = present {
                let [p_batch] = p.dims();
                problems.push(dim(tensor, 0, "batch size of the tiles", batch, p_batch));
            }
        }
        if let Some(problem) = problems.into_iter().flatten().next() {
            return Err(problem);
        }
        let read = |p: &Option<Tensor<1, Bool>>| {
            p.as_ref().map(|p| {
                p.clone()
                    .into_data()
                    .try_to_vec::<bool>()
                    .expect("a boolean tensor")
            })
        };
        let presence = Presence {
            wsi: read(&input.wsi_present),
            rna: read(&input.rna_present),
        };
        if let (Some(wsi), Some(rna)) = (&presence.wsi, &presence.rna)
            && let Some(sample) = (0..batch).find(|&i| !wsi[i] && !rna[i])
        {
            return Err(InputError::NoModality { sample });
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
        Ok(presence)
    }
}
