//! [`FeedForward`]: the pre-norm MLP of each transformer layer.

use crate::kernels::{activation::gelu, dropout::dropout, fused::layer_norm, linear::linear};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Configuration of a [`FeedForward`] block.
#[derive(Config, Debug)]
pub struct FeedForwardConfig {
    /// Token width.
    pub dim: usize,
    /// Hidden width.
    pub hidden_dim: usize,
    /// Dropout after the activation and after the output. Default 0.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// LayerNorm → Linear(dim → hidden) → GELU (exact, erf form) → Dropout → Linear(hidden → dim)
/// → Dropout.
///
/// Create with [`FeedForwardConfig::init`].
#[derive(Module, Debug)]
pub struct FeedForward {
    /// Input LayerNorm.
    pub norm: LayerNorm,
    /// First projection, `dim → hidden_dim`.
    pub fc1: Linear,
    /// Second projection, `hidden_dim → dim`.
    pub fc2: Linear,
    /// Dropout, used after the activation and after `fc2`.
    pub dropout: Dropout,
}

impl FeedForwardConfig {
    /// Initializes a [`FeedForward`] block on `device`.
    pub fn init(&self, device: &Device) -> FeedForward {
        FeedForward {
            norm: LayerNormConfig::new(self.dim).init(device),
            fc1: LinearConfig::new(self.dim, self.hidden_dim).init(device),
            fc2: LinearConfig::new(self.hidden_dim, self.dim).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl FeedForward {
    /// # Shapes
    /// - x: `[batch, tokens, dim]`
    /// - output: `[batch, tokens, dim]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = layer_norm(&self.norm, x);
        let x = dropout(&self.dropout, gelu(linear(&self.fc1, x)));
        dropout(&self.dropout, linear(&self.fc2, x))
    }
}
