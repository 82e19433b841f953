//! [`ProjectInOut`] and [`CrossTransformer`]: each modality's CLS token attends to the other
//! modality's tokens.

use crate::kernels::linear::linear;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::attention::{Attention, AttentionConfig, AttentionInput, KeyPadding};

/// Configuration of a [`ProjectInOut`] wrapper around an attention layer.
#[derive(Config, Debug)]
pub struct ProjectInOutConfig {
    /// Width of the tokens coming in and going out.
    pub dim_in: usize,
    /// Width the wrapped attention works at.
    pub dim_out: usize,
    /// The wrapped attention (its `dim` is set to `dim_out`).
    pub attention: AttentionConfig,
}

/// Projects tokens from `dim_in` to `dim_out`, attends there, and projects back; with equal
/// widths both projections are the identity (and hold no weights).
///
/// Create with [`ProjectInOutConfig::init`].
#[derive(Module, Debug)]
pub struct ProjectInOut {
    /// `dim_in → dim_out`, absent when the widths are equal.
    pub project_in: Option<Linear>,
    /// The attention, at width `dim_out`.
    pub attn: Attention,
    /// `dim_out → dim_in`, absent when the widths are equal.
    pub project_out: Option<Linear>,
}

impl ProjectInOutConfig {
    /// Initializes a [`ProjectInOut`] on `device`.
    pub fn init(&self, device: &Device) -> ProjectInOut {
        let project = self.dim_in != self.dim_out;
        ProjectInOut {
            project_in: project.then(|| LinearConfig::new(self.dim_in, self.dim_out).init(device)),
            attn: AttentionConfig {
                dim: self.dim_out,
                ..self.attention.clone()
            }
            .init(device),
            project_out: project.then(|| LinearConfig::new(self.dim_out, self.dim_in).init(device)),
        }
    }
}

impl ProjectInOut {
    /// Attends from `cls` to itself and `context`.
    ///
    /// # Shapes
    /// - cls: `[batch, 1, dim_in]`
    /// - context: `[batch, keys, dim_out]`
    /// - padding: over `1 + keys` (the CLS token first)
    /// - output: `[batch, 1, dim_in]`
    /// - weights: `[batch, heads, 1 + keys]`
    pub fn forward(
        &self,
        cls: Tensor<3>,
        context: Tensor<3>,
        padding: Option<&KeyPadding>,
        return_weights: bool,
    ) -> (Tensor<3>, Option<Tensor<3>>) {
        let cls = match &self.project_in {
            Some(project) => linear(project, cls),
            None => cls,
        };
        let mut input = AttentionInput::cross_attn(cls, context).kv_include_self();
        if let Some(padding) = padding {
            input = input.padding(padding);
        }
        if return_weights {
            input = input.return_weights();
        }
        let (out, weights) = self.attn.forward(input);
        let out = match &self.project_out {
            Some(project) => linear(project, out),
            None => out,
        };
        let weights = weights.map(|w| {
            let [batch, heads, _, keys] = w.dims();
            w.reshape([batch, heads, keys]) // [b, h, 1 + keys]
        });
        (out, weights)
    }
}

/// Configuration of a [`CrossTransformer`].
#[derive(Config, Debug)]
pub struct CrossTransformerConfig {
    /// Width of the WSI tokens.
    pub wsi_dim: usize,
    /// Width of the RNA tokens.
    pub rna_dim: usize,
    /// Number of cross-attention layers.
    pub depth: usize,
    /// Heads per cross-attention.
    pub heads: usize,
    /// Width of one head.
    pub dim_head: usize,
    /// Dropout. Default 0.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// One cross-attention layer: the WSI CLS token attends to the genes, then the RNA CLS token
/// attends to the tiles.
#[derive(Module, Debug)]
pub struct CrossLayer {
    /// WSI CLS → RNA tokens, attending at `rna_dim`.
    pub wsi_attend_rna: ProjectInOut,
    /// RNA CLS → WSI tokens, attending at `wsi_dim`.
    pub rna_attend_wsi: ProjectInOut,
}

/// The attention weights of one [`CrossTransformer`] pass, one entry per layer.
#[derive(Debug, Clone, Default)]
pub struct CrossWeights {
    /// WSI CLS over `[itself, genes…]`: `[batch, heads, 1 + genes]` per layer.
    pub wsi_cls: Vec<Tensor<3>>,
    /// RNA CLS over `[itself, tiles…]`: `[batch, heads, 1 + tiles]` per layer.
    pub rna_cls: Vec<Tensor<3>>,
}

/// `depth` cross-attention layers; in each, both CLS tokens are updated residually and the
/// other tokens pass through unchanged.
///
/// Create with [`CrossTransformerConfig::init`].
#[derive(Module, Debug)]
pub struct CrossTransformer {
    /// The layers.
    pub layers: Vec<CrossLayer>,
}

impl CrossTransformerConfig {
    /// Initializes a [`CrossTransformer`] on `device`.
    pub fn init(&self, device: &Device) -> CrossTransformer {
        let attention = AttentionConfig::new(0)
            .with_heads(self.heads)
            .with_dim_head(self.dim_head)
            .with_dropout(self.dropout);
        let layers = (0..self.depth)
            .map(|_| CrossLayer {
                wsi_attend_rna: ProjectInOutConfig::new(
                    self.wsi_dim,
                    self.rna_dim,
                    attention.clone(),
                )
                .init(device),
                rna_attend_wsi: ProjectInOutConfig::new(
                    self.rna_dim,
                    self.wsi_dim,
                    attention.clone(),
                )
                .init(device),
            })
            .collect();
        CrossTransformer { layers }
    }
}

impl CrossTransformer {
    /// Fuses the two token sequences.
    ///
    /// # Shapes
    /// - wsi: `[batch, 1 + tiles, wsi_dim]` (CLS first)
    /// - rna: `[batch, 1 + genes, rna_dim]` (CLS first)
    /// - wsi_padding: over `1 + tiles`
    /// - outputs: the same shapes as the inputs
    pub fn forward(
        &self,
        wsi: Tensor<3>,
        rna: Tensor<3>,
        wsi_padding: Option<&KeyPadding>,
        rna_padding: Option<&KeyPadding>,
        weights: Option<&mut CrossWeights>,
    ) -> (Tensor<3>, Tensor<3>) {
        let [batch, wsi_len, wsi_dim] = wsi.dims();
        let [_, rna_len, rna_dim] = rna.dims();
        let mut wsi_cls = wsi.clone().narrow(1, 0, 1); // [b, 1, wsi_dim]
        let wsi_tiles = wsi.narrow(1, 1, wsi_len - 1); // [b, tiles, wsi_dim]
        let mut rna_cls = rna.clone().narrow(1, 0, 1); // [b, 1, rna_dim]
        let rna_genes = rna.narrow(1, 1, rna_len - 1); // [b, genes, rna_dim]
        let mut weights = weights;
        let want = weights.is_some();
        for layer in &self.layers {
            let (out, w_wsi) =
                layer
                    .wsi_attend_rna
                    .forward(wsi_cls.clone(), rna_genes.clone(), rna_padding, want);
            wsi_cls = out + wsi_cls;
            let (out, w_rna) =
                layer
                    .rna_attend_wsi
                    .forward(rna_cls.clone(), wsi_tiles.clone(), wsi_padding, want);
            rna_cls = out + rna_cls;
            if let Some(weights) = weights.as_deref_mut() {
                weights.wsi_cls.extend(w_wsi);
                weights.rna_cls.extend(w_rna);
            }
        }
        debug_assert_eq!(wsi_cls.dims(), [batch, 1, wsi_dim]);
        debug_assert_eq!(rna_cls.dims(), [batch, 1, rna_dim]);
        (
            Tensor::cat(vec![wsi_cls, wsi_tiles], 1),
            Tensor::cat(vec![rna_cls, rna_genes], 1),
        )
    }
}
