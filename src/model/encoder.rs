//! [`BiModalEncoder`]: the stack of fusion blocks.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::attention::KeyPadding;
use super::cross::{CrossTransformer, CrossTransformerConfig, CrossWeights};
use super::transformer::{Transformer, TransformerConfig};

/// Configuration of a [`BiModalEncoder`].
#[derive(Config, Debug)]
pub struct BiModalEncoderConfig {
    /// Number of fusion blocks.
    pub depth: usize,
    /// The WSI encoder of each block.
    pub wsi: TransformerConfig,
    /// The RNA encoder of each block.
    pub rna: TransformerConfig,
    /// The cross-transformer of each block.
    pub cross: CrossTransformerConfig,
}

/// One fusion block: a WSI encoder, an RNA encoder, then cross-attention between them.
#[derive(Module, Debug)]
pub struct FusionBlock {
    /// WSI transformer encoder.
    pub wsi_enc: Transformer,
    /// RNA transformer encoder.
    pub rna_enc: Transformer,
    /// Cross-attention between the CLS tokens and the other modality.
    pub cross: CrossTransformer,
}

/// `depth` × (WSI Transformer, RNA Transformer, CrossTransformer); the original's
/// `MultiScaleEncoder`, with the WSI branch in the place of CrossViT's small patches.
///
/// Create with [`BiModalEncoderConfig::init`].
#[derive(Module, Debug)]
pub struct BiModalEncoder {
    /// The fusion blocks.
    pub blocks: Vec<FusionBlock>,
}

impl BiModalEncoderConfig {
    /// Initializes a [`BiModalEncoder`] on `device`.
    pub fn init(&self, device: &Device) -> BiModalEncoder {
        let blocks = (0..self.depth)
            .map(|_| FusionBlock {
                wsi_enc: self.wsi.init(device),
                rna_enc: self.rna.init(device),
                cross: self.cross.init(device),
            })
            .collect();
        BiModalEncoder { blocks }
    }
}

impl BiModalEncoder {
    /// # Shapes
    /// - wsi: `[batch, 1 + tiles, wsi_dim]`; wsi_padding over `1 + tiles`
    /// - rna: `[batch, 1 + genes, rna_dim]`; rna_padding over `1 + genes` (the keys the WSI
    ///   CLS token may attend to in cross-attention: all of a sample's genes are masked when
    ///   its expression is missing)
    /// - outputs: the same shapes
    pub fn forward(
        &self,
        mut wsi: Tensor<3>,
        mut rna: Tensor<3>,
        wsi_padding: Option<&KeyPadding>,
        rna_padding: Option<&KeyPadding>,
        mut weights: Option<&mut CrossWeights>,
    ) -> (Tensor<3>, Tensor<3>) {
        for block in &self.blocks {
            wsi = block.wsi_enc.forward(wsi, wsi_padding);
            rna = block.rna_enc.forward(rna, None);
            (wsi, rna) =
                block
                    .cross
                    .forward(wsi, rna, wsi_padding, rna_padding, weights.as_deref_mut());
        }
        (wsi, rna)
    }
}
