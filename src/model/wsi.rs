//! [`TileEmbedder`]: turns a bag of tile features into WSI tokens.

use crate::kernels::dropout::dropout;
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Initializer};
use burn::tensor::{Device, Tensor};

/// Configuration of a [`TileEmbedder`].
#[derive(Config, Debug)]
pub struct TileEmbedderConfig {
    /// Width of a tile feature vector.
    pub dim: usize,
    /// Most tiles per bag (the positional embedding covers `num_tiles + 1` positions).
    pub num_tiles: usize,
    /// Whether to add the learned positional embedding. Default true.
    #[config(default = true)]
    pub pos_embedding: bool,
    /// Dropout on the tokens. Default 0.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// Prepends a learned CLS token to the bag, adds a learned positional embedding (unless
/// turned off) and applies dropout.
///
/// Create with [`TileEmbedderConfig::init`].
#[derive(Module, Debug)]
pub struct TileEmbedder {
    /// The CLS token, `[1, 1, dim]`, initialized from N(0, 1).
    pub cls_token: Param<Tensor<3>>,
    /// Positional embedding `[1, num_tiles + 1, dim]`, initialized from N(0, 1).
    pub pos_embedding: Option<Param<Tensor<3>>>,
    /// Dropout on the tokens.
    pub dropout: Dropout,
}

impl TileEmbedderConfig {
    /// Initializes a [`TileEmbedder`] on `device`.
    pub fn init(&self, device: &Device) -> TileEmbedder {
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 1.0,
        };
        TileEmbedder {
            cls_token: normal.init([1, 1, self.dim], device),
            pos_embedding: self
                .pos_embedding
                .then(|| normal.init([1, self.num_tiles + 1, self.dim], device)),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl TileEmbedder {
    /// # Shapes
    /// - tiles: `[batch, tiles, dim]`, with `tiles ≤ num_tiles` when the positional embedding
    ///   is on (the caller checks)
    /// - output: `[batch, 1 + tiles, dim]`, the CLS token first
    pub fn forward(&self, tiles: Tensor<3>) -> Tensor<3> {
        let [batch, n, dim] = tiles.dims();
        let cls = self.cls_token.val().expand([batch, 1, dim]); // [b, 1, d]
        let mut x = Tensor::cat(vec![cls, tiles], 1); // [b, 1 + n, d]
        if let Some(pos) = &self.pos_embedding {
            x = x + pos.val().narrow(1, 0, n + 1);
        }
        dropout(&self.dropout, x)
    }
}
