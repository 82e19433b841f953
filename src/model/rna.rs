//! [`RnaEmbedder`]: turns an expression vector into gene tokens.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{
    Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::{Device, Tensor};

/// Configuration of an [`RnaEmbedder`].
#[derive(Config, Debug)]
pub struct RnaEmbedderConfig {
    /// Number of genes.
    pub num_genes: usize,
    /// Width of a gene token.
    pub dim: usize,
    /// Dropout on the tokens. Default 0.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// The original's dense gene tokenizer: LayerNorm(genes) → Linear(genes → genes · dim) →
/// reshape to one token per gene → LayerNorm(dim); then a CLS token, a positional embedding
/// over `genes + 1` positions, and dropout.
///
/// Create with [`RnaEmbedderConfig::init`].
#[derive(Module, Debug)]
pub struct RnaEmbedder {
    /// LayerNorm over the expression vector (`num_genes`).
    pub input_norm: LayerNorm,
    /// `num_genes → num_genes · dim`.
    pub project: Linear,
    /// LayerNorm over each gene token (`dim`).
    pub token_norm: LayerNorm,
    /// The CLS token, `[1, 1, dim]`, initialized from N(0, 1).
    pub cls_token: Param<Tensor<3>>,
    /// Positional embedding `[1, num_genes + 1, dim]`, initialized from N(0, 1).
    pub pos_embedding: Param<Tensor<3>>,
    /// Dropout on the tokens.
    pub dropout: Dropout,
}

impl RnaEmbedderConfig {
    /// Initializes an [`RnaEmbedder`] on `device`.
    pub fn init(&self, device: &Device) -> RnaEmbedder {
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 1.0,
        };
        RnaEmbedder {
            input_norm: LayerNormConfig::new(self.num_genes).init(device),
            project: LinearConfig::new(self.num_genes, self.num_genes * self.dim).init(device),
            token_norm: LayerNormConfig::new(self.dim).init(device),
            cls_token: normal.init([1, 1, self.dim], device),
            pos_embedding: normal.init([1, self.num_genes + 1, self.dim], device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl RnaEmbedder {
    /// # Shapes
    /// - expression: `[batch, num_genes]`
    /// - output: `[batch, 1 + num_genes, dim]`, the CLS token first
    pub fn forward(&self, expression: Tensor<2>) -> Tensor<3> {
        let [batch, genes] = expression.dims();
        let x = self.project.forward(self.input_norm.forward(expression)); // [b, g · d]
        let dim = x.dims()[1] / genes;
        let x = self.token_norm.forward(x.reshape([batch, genes, dim])); // [b, g, d]
        let cls = self.cls_token.val().expand([batch, 1, dim]); // [b, 1, d]
        let x = Tensor::cat(vec![cls, x], 1) + self.pos_embedding.val(); // [b, 1 + g, d]
        self.dropout.forward(x)
    }
}
