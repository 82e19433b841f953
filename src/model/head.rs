//! [`ClassifierHead`]: LayerNorm and Linear on a pooled token.

use crate::kernels::{fused::layer_norm, linear::linear};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Configuration of a [`ClassifierHead`].
#[derive(Config, Debug)]
pub struct ClassifierHeadConfig {
    /// Width of the pooled token.
    pub dim: usize,
    /// Number of outputs.
    pub num_classes: usize,
}

/// LayerNorm(dim) → Linear(dim → num_classes): the original's `mlp_head`.
///
/// Create with [`ClassifierHeadConfig::init`].
#[derive(Module, Debug)]
pub struct ClassifierHead {
    /// Input LayerNorm.
    pub norm: LayerNorm,
    /// Output projection.
    pub linear: Linear,
}

impl ClassifierHeadConfig {
    /// Initializes a [`ClassifierHead`] on `device`.
    pub fn init(&self, device: &Device) -> ClassifierHead {
        ClassifierHead {
            norm: LayerNormConfig::new(self.dim).init(device),
            linear: LinearConfig::new(self.dim, self.num_classes).init(device),
        }
    }
}

impl ClassifierHead {
    /// # Shapes
    /// - x: `[batch, dim]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        linear(&self.linear, layer_norm(&self.norm, x))
    }
}
