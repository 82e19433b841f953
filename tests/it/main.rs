//! The integration tests, in one binary (one link of the library and Burn instead of one per
//! file). Each module covers one behaviour:
//!
//! - `attention_export`: attention maps of slides cut into bags of different sizes;
//! - `attention_memory`: the RNA encoder's Nyström attention against exact attention;
//! - `cohort_files`: cohort CSVs, HDF5 and `.pt` tile files, splits, normalization, batching;
//! - `commands`: the binary as a user runs it (`synth`, `check`, `bench`, `train` flags);
//! - `crash_safety`: a run killed at every writing stage resumes to the same files;
//! - `ensemble`: the folds of a cross-validation run applied together (`--model CV_RUN`);
//! - `export`: models exported as safetensors and `torch.save` files, read back;
//! - `gdc_download`: `cohort gdc` against a fake GDC download and its reference cohorts;
//! - `gene_tokenizers`: dense, per-gene and pathway tokenizers;
//! - `hand_edited_folders`: model and run folders edited by hand fail on load, by name;
//! - `html_report`: `report.html` as text and in headless Chromium;
//! - `interop`: the Python original's checkpoint imported, predictions and attention maps;
//! - `layering`: the import check of `docs/architecture.md` (no import up a layer, no circle);
//! - `missing_modalities`: samples without slides or expression;
//! - `model_behaviour`: shapes, padding, attention, gradients, dropout, persistence, errors;
//! - `multi_device`: a batch shared out over several devices of one process;
//! - `precision`: bf16 products against f32 (parity cohort), the precision scope and option;
//! - `published_cohorts`: TCGA-style cohorts (MCAT fixture), published splits, log-rank;
//! - `recomputation`: the recomputed backward pass against the ordinary one;
//! - `report_layout`: `report.html` read as a paper, and the heatmaps it embeds;
//! - `run_lifecycle`: resuming folds, `predict` without targets, one process per run folder;
//! - `slide_heatmaps`: heatmaps over a pyramidal TIFF (OpenSlide), tile conventions, QuPath;
//! - `survival_statistics`: survival metrics against lifelines, numpy and scikit-survival;
//! - `tensorboard`: the event files of the training curves, decoded by hand and by TensorBoard;
//! - `training`: end-to-end training and evaluation on synthetic cohorts.
//!
//! Modules that run the binary need the `cli` feature (`make test` turns it on). The fuzzing
//! corpus (`tests/fuzz.rs`, its own counting allocator), the wgpu and the MPI tests are the
//! other test binaries; [`support`] is shared by all.

mod support;

mod attention_export;
mod attention_memory;
mod cohort_files;
#[cfg(feature = "cli")]
mod commands;
#[cfg(feature = "cli")]
mod crash_safety;
#[cfg(feature = "cli")]
mod ensemble;
#[cfg(feature = "cli")]
mod export;
#[cfg(feature = "cli")]
mod gdc_download;
mod gene_tokenizers;
#[cfg(feature = "cli")]
mod hand_edited_folders;
#[cfg(feature = "cli")]
mod html_report;
#[cfg(feature = "cli")]
mod interop;
mod layering;
#[cfg(feature = "cli")]
mod missing_modalities;
mod model_behaviour;
#[cfg(feature = "cli")]
mod multi_device;
mod precision;
#[cfg(feature = "cli")]
mod published_cohorts;
mod recomputation;
mod report_layout;
#[cfg(feature = "cli")]
mod run_lifecycle;
mod slide_heatmaps;
mod survival_statistics;
#[cfg(feature = "cli")]
mod tensorboard;
#[cfg(feature = "cli")]
mod training;
