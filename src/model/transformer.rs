//! [`Transformer`]: the per-modality encoder.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};

use super::attention::{Attention, AttentionConfig, AttentionInput, KeyPadding};
use super::attention_nystrom::AttentionKind;
use super::feedforward::{FeedForward, FeedForwardConfig};
use crate::kernels::fused::layer_norm;

/// Configuration of a [`Transformer`] encoder.
#[derive(Config, Debug)]
pub struct TransformerConfig {
    /// Token width.
    pub dim: usize,
    /// Number of layers.
    pub depth: usize,
    /// Attention heads per layer.
    pub heads: usize,
    /// Width of one head.
    pub dim_head: usize,
    /// Hidden width of the feed-forward blocks.
    pub mlp_dim: usize,
    /// Dropout in attention and feed-forward blocks. Default 0.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// How the self-attention weighs its keys. Default exact.
    #[config(default = "AttentionKind::Exact")]
    pub attention: AttentionKind,
}

/// One encoder layer: residual attention, then residual feed-forward.
#[derive(Module, Debug)]
pub struct TransformerLayer {
    /// Self-attention.
    pub attn: Attention,
    /// Feed-forward block.
    pub ff: FeedForward,
}

/// `depth` × (x = x + Attention(x); x = x + FeedForward(x)), then a final LayerNorm.
///
/// Create with [`TransformerConfig::init`].
#[derive(Module, Debug)]
pub struct Transformer {
    /// The layers.
    pub layers: Vec<TransformerLayer>,
    /// Final LayerNorm.
    pub norm: LayerNorm,
}

impl TransformerLayer {
    /// `x + Attention(x)`, then `x + FeedForward(x)`.
    ///
    /// # Shapes
    /// - x: `[batch, tokens, dim]`; padding over `tokens`
    /// - output: `[batch, tokens, dim]`
    pub fn forward(&self, x: Tensor<3>, padding: Option<&KeyPadding>) -> Tensor<3> {
        let mut input = AttentionInput::self_attn(x.clone());
        if let Some(padding) = padding {
            input = input.padding(padding);
        }
        let x = self.attn.forward(input).0 + x;
        self.ff.forward(x.clone()) + x
    }
}

impl TransformerConfig {
    /// Initializes a [`Transformer`] on `device`.
    pub fn init(&self, device: &Device) -> Transformer {
        let layers = (0..self.depth)
            .map(|_| TransformerLayer {
                attn: AttentionConfig::new(self.dim)
                    .with_heads(self.heads)
                    .with_dim_head(self.dim_head)
                    .with_dropout(self.dropout)
                    .with_kind(self.attention)
                    .init(device),
                ff: FeedForwardConfig::new(self.dim, self.mlp_dim)
                    .with_dropout(self.dropout)
                    .init(device),
            })
            .collect();
        Transformer {
            layers,
            norm: LayerNormConfig::new(self.dim).init(device),
        }
    }
}

impl Transformer {
    /// Encodes the tokens; padded tokens (when `padding` is given) are not attended to.
    ///
    /// # Shapes
    /// - x: `[batch, tokens, dim]`
    /// - padding: over `tokens`
    /// - output: `[batch, tokens, dim]`
    pub fn forward(&self, mut x: Tensor<3>, padding: Option<&KeyPadding>) -> Tensor<3> {
        for layer in &self.layers {
            x = layer.forward(x, padding);
        }
        layer_norm(&self.norm, x)
    }
}
