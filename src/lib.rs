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
//! features choose what is compiled.
//!
//! # Modules, by layer
//!
//! Each module imports only those below it (checked by the test suite; see
//! `docs/architecture.md`, "Where things live and who may import whom"):
//!
//! | layer | module | what it holds |
//! |---|---|---|
//! | top | [`error`] | every error type of the crate, re-exported in one place |
//! | tools | [`bench`](mod@bench), [`cohort`], [`report`], [`interop`], [`inference`] | timing; cohort tables from GDC downloads; `report.html`; importing the Python original's checkpoints; attention export and heatmaps (over the slide images too) |
//! | training | [`train`] | the training loop, cross-validation, resume, multi-device and MPI reducers |
//! | evaluation | [`eval`] | predictions, losses, metrics, survival, plots, applying a saved run |
//! | run folders | [`run`] | `config.json`, [`TrainSettings`](run::TrainSettings), model bundles, the run lock, the output rule; [`Error`] |
//! | slides | [`slide`] | whole-slide images: finding, opening (OpenSlide), thumbnails, regions |
//! | data | [`data`] | cohort CSVs, tile files (HDF5, `.pt`) and their tile geometry, bags, patients, splits, normalization |
//! | model | [`model`] | the network as Burn modules, its config, saving and loading, cost |
//! | base | [`progress`], [`runtime`] | progress observers; the allocator setting of the binary |
//!
//! **Stable API**: [`model`] (the network, its config and folder format), [`data`] (readers of
//! cohort files), [`run`] (the run-folder format and settings), [`eval`], [`train`] (the
//! entry points [`train::train`], [`train::resume`], [`eval::evaluate`],
//! [`eval::evaluate_ensemble`] and their request types), [`inference`] and the errors. [`bench`](mod@bench), [`report`], [`cohort`] and [`interop`]
//! serve the command-line tool first; their items may change with it.
//!
//! # Features
//!
//! - `flex` (default): Burn's CPU backend, with this crate's fused kernels.
//! - `ndarray`, `wgpu` (Vulkan, Metal, DX12), `cuda`: other backends.
//! - `mpi`: training across processes and nodes (needs an MPI library).
//! - `openslide`: reading whole-slide images ([`slide`], heatmaps over the slides; needs
//!   libopenslide).
//! - `cli`: the `med-crossvit` command-line tool (clap, indicatif); off for a library user, so
//!   `cargo add med-crossvit` builds the library alone. `cargo install med-crossvit
//!   --features cli` installs the tool.
//! - `fuzz`: builds the fuzzing harness example.
//!
//! # Training from Rust
//!
//! A synthetic cohort (CSV + one HDF5 tile file per slide), a small model trained for one
//! epoch on it, and the validation metrics; the run folder holds `config.json`, `model.bpk`,
//! `metrics.csv` and the rest, ready for [`eval::evaluate`] or `med-crossvit predict`.
//!
//! ```
//! use burn::tensor::Device;
//! use med_crossvit::data::{BagSettings, CohortColumns, SynthOptions, write_synthetic_cohort};
//! use med_crossvit::run::{DataSource, ModelSpec, TrainSettings};
//! use med_crossvit::train::{TrainRequest, train};
//!
//! let dir = std::env::temp_dir().join(format!("med-crossvit-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let options = SynthOptions { slides: 16, tiles: 8, dim: 8, genes: 5, ..Default::default() };
//! let cohort = write_synthetic_cohort(&dir.join("cohort"), &options)?;
//! let request = TrainRequest {
//!     data: DataSource {
//!         csv: cohort.csv,
//!         features_dir: cohort.features_dir,
//!         features_key: None,
//!         skip_missing: false,
//!     },
//!     columns: CohortColumns::default(),
//!     model: ModelSpec::Preset("small".into()),
//!     tokenizer: None,
//!     settings: TrainSettings {
//!         epochs: 1,
//!         batch_size: 4,
//!         bags: BagSettings { bag_size: 4, max_patches_total: 8 },
//!         bootstrap: 0,
//!         ..TrainSettings::default()
//!     },
//!     folds: None,
//!     out: dir.join("run"),
//!     stop_after: None,
//!     force: false,
//! };
//! let summary = train(&request, &Device::flex(), &mut |_event| {})?;
//! assert_eq!(summary.folds.len(), 1);
//! assert!(summary.mean["loss"].is_finite());
//! assert!(dir.join("run/model.bpk").exists());
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), med_crossvit::Error>(())
//! ```
//!
//! # The model alone
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
pub mod slide;
pub mod train;
mod util;

pub use data::DataError;
pub use error::{ConfigError, Error, InputError, LoadError, PersistError, Result, RunError};
pub use model::{
    FusionAttention, MedCrossViT, MedCrossViTConfig, MedCrossViTOutput, ModelInput, Pool,
};
