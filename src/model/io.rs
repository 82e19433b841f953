//! The inputs and outputs of [`MedCrossViT::forward`](super::MedCrossViT::forward).

use burn::tensor::{Bool, Tensor};

/// One batch for the model, built step by step:
///
/// ```
/// use burn::tensor::{Bool, Device, Tensor, TensorData};
/// use med_crossvit::ModelInput;
///
/// let device = Device::flex();
/// let tiles = Tensor::<3>::zeros([2, 40, 768], &device);
/// let expression = Tensor::<2>::zeros([2, 100], &device);
/// // The second bag has 25 real tiles, padded to 40.
/// let padded: Vec<bool> = (0..80).map(|i| i >= 40 + 25).collect();
/// let mask = Tensor::<2, Bool>::from_data(TensorData::new(padded, [2, 40]), &device);
/// let input = ModelInput::new(tiles, expression).mask_pad(mask).with_attention();
/// assert!(input.return_attention && input.padding_mask.is_some());
/// ```
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// Tile features `[batch, tiles, wsi_dim]`.
    pub tiles: Tensor<3>,
    /// Expression `[batch, rna_num_genes]`.
    pub expression: Tensor<2>,
    /// Padding mask `[batch, tiles]`, `true` = padded tile.
    pub padding_mask: Option<Tensor<2, Bool>>,
    /// Whether to return the cross-attention weights.
    pub return_attention: bool,
    /// Which samples have their tiles `[batch]` (`true` = present); `None`: all do.
    pub wsi_present: Option<Tensor<1, Bool>>,
    /// Which samples have their expression `[batch]` (`true` = present); `None`: all do.
    pub rna_present: Option<Tensor<1, Bool>>,
}

impl ModelInput {
    /// A batch of bags `[batch, tiles, wsi_dim]` and expression vectors `[batch, genes]`.
    pub fn new(tiles: Tensor<3>, expression: Tensor<2>) -> Self {
        Self {
            tiles,
            expression,
            padding_mask: None,
            return_attention: false,
            wsi_present: None,
            rna_present: None,
        }
    }

    /// Marks which samples have each modality (`[batch]` each, `true` = present; every
    /// sample needs at least one). A missing modality contributes nothing: whatever its input
    /// holds is replaced by zeros, the other modality's CLS token attends only to itself in
    /// cross-attention, and its head is left out of the summed logits (its own logits and
    /// embedding in the output are zeros). A complete sample's output is what it would be
    /// without the marks.
    pub fn with_modalities(mut self, wsi: Tensor<1, Bool>, rna: Tensor<1, Bool>) -> Self {
        self.wsi_present = Some(wsi);
        self.rna_present = Some(rna);
        self
    }

    /// Marks padded tiles (`[batch, tiles]`, `true` = padded): they are neither attended to
    /// nor pooled.
    pub fn mask_pad(mut self, mask: Tensor<2, Bool>) -> Self {
        self.padding_mask = Some(mask);
        self
    }

    /// Asks for the cross-attention weights in the output.
    pub fn with_attention(mut self) -> Self {
        self.return_attention = true;
        self
    }
}

/// What the model computes for a batch.
#[derive(Debug, Clone)]
pub struct MedCrossViTOutput {
    /// Fused logits `[batch, num_classes]`: `wsi_logits + rna_logits` (a missing modality's
    /// logits are zeros, see [`ModelInput::with_modalities`]).
    pub logits: Tensor<2>,
    /// The WSI head's logits `[batch, num_classes]`.
    pub wsi_logits: Tensor<2>,
    /// The RNA head's logits `[batch, num_classes]`.
    pub rna_logits: Tensor<2>,
    /// The pooled WSI token `[batch, wsi_dim]` (the first of what the original returned as
    /// "attn").
    pub wsi_embedding: Tensor<2>,
    /// The pooled RNA token `[batch, rna_dim]` (the second of the original's "attn").
    pub rna_embedding: Tensor<2>,
    /// Cross-attention weights, when asked for with [`ModelInput::with_attention`].
    pub attention: Option<FusionAttention>,
}

/// The cross-attention weights of every fusion layer (`depth · cross_attn_depth` of them) and
/// head, after softmax and before dropout.
///
/// In each, a CLS token attends to itself and to the other modality's tokens; index 0 of the
/// last axis is the CLS token itself.
#[derive(Debug, Clone)]
pub struct FusionAttention {
    /// RNA CLS token over `[itself, tiles…]`: `[batch, layers, heads, 1 + tiles]`. Rows sum to
    /// 1; padded tiles get 0.
    pub rna_cls_over_tiles: Tensor<4>,
    /// WSI CLS token over `[itself, genes…]`: `[batch, layers, heads, 1 + genes]`. Rows sum
    /// to 1.
    pub wsi_cls_over_genes: Tensor<4>,
}

impl FusionAttention {
    /// Per-tile scores `[batch, tiles]`: the RNA CLS token's weights over the tiles, averaged
    /// over layers and heads and renormalized over the tiles (the CLS token's weight on
    /// itself left out), so each bag's scores sum to 1. Padded tiles score 0.
    pub fn tile_scores(&self) -> Tensor<2> {
        over_others(self.rna_cls_over_tiles.clone())
    }

    /// Per-gene scores `[batch, genes]`: the WSI CLS token's weights over the genes, averaged
    /// and renormalized like [`tile_scores`](Self::tile_scores).
    pub fn gene_scores(&self) -> Tensor<2> {
        over_others(self.wsi_cls_over_genes.clone())
    }
}

/// `[b, layers, heads, 1 + n]` → `[b, n]`: mean over layers and heads, self left out, rows
/// renormalized to sum to 1 (rows of a sample without the other modality stay 0).
fn over_others(weights: Tensor<4>) -> Tensor<2> {
    let [batch, layers, heads, keys] = weights.dims();
    let others = weights
        .narrow(3, 1, keys - 1)
        .reshape([batch, layers * heads, keys - 1])
        .mean_dim(1)
        .reshape([batch, keys - 1]); // [b, n]
    // A sample without the other modality has no weight on it: its scores stay 0.
    let total = others.clone().sum_dim(1).clamp_min(f32::MIN_POSITIVE); // [b, 1]
    others / total
}
