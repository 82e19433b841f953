//! # med-crossvit
//!
//! Cross-attention fusion of whole-slide-image (WSI) tile bags and RNA-Seq expression,
//! built on [Burn](https://burn.dev): a Rust rebuild of the Python Med-CrossViT.
//!
//! Each modality has its own transformer encoder; in every fusion block each modality's CLS
//! token attends to the other modality's tokens; one head per modality classifies its pooled
//! token and the logits are summed. Beyond the original: variable-size bags with a padding
//! mask, the real cross-attention weights (for heatmaps), typed errors for every bad
//! configuration or input shape, and a model folder (config JSON + weights) that rebuilds the
//! model.
//!
//! The library runs on whatever Burn [`Device`](burn::tensor::Device) it is given; Cargo
//! features choose which backends are compiled (`flex`, the default CPU backend; `ndarray`;
//! `wgpu`).
//!
//! ```
//! use burn::tensor::{Device, Distribution, Tensor, TensorData, Bool};
//! use med_crossvit::{MedCrossViTConfig, ModelInput};
//!
//! let device = Device::flex();
//! let mut config = MedCrossViTConfig::small(2, 32, 16);
//! config.rna_num_genes = 10;
//! config.wsi_num_tiles = 8;
//! let model = config.init(&device)?;
//!
//! // Two bags of up to 8 tiles; the second has only 5 real tiles.
//! let tiles = Tensor::<3>::random([2, 8, 32], Distribution::Default, &device);
//! let expression = Tensor::<2>::random([2, 10], Distribution::Default, &device);
//! let padded: Vec<bool> = (0..16).map(|i| i >= 13).collect();
//! let mask = Tensor::<2, Bool>::from_data(TensorData::new(padded, [2, 8]), &device);
//!
//! let out = model.forward(ModelInput::new(tiles, expression).mask_pad(mask).with_attention())?;
//! assert_eq!(out.logits.dims(), [2, 2]);
//! assert_eq!(out.wsi_embedding.dims(), [2, 32]);
//! let scores = out.attention.unwrap().tile_scores(); // [2, 8], padded tiles 0
//! assert_eq!(scores.dims(), [2, 8]);
//! # Ok::<(), med_crossvit::Error>(())
//! ```
#![warn(missing_docs)]

pub mod bench;
pub mod cohort;
pub mod data;
pub mod error;
pub mod eval;
pub mod inference;
pub mod interop;
mod kernels;
pub mod model;
pub mod progress;
pub mod report;
pub mod run;
pub mod runtime;
pub mod train;
mod util;

pub use data::DataError;
pub use error::{ConfigError, Error, InputError, LoadError, PersistError, Result, RunError};
pub use model::{
    FusionAttention, MedCrossViT, MedCrossViTConfig, MedCrossViTOutput, ModelInput, Pool,
};
