//! Cohort data: HDF5 tile bags joined with CSV expression rows.
//!
//! - [`CohortTable`] reads the cohort CSV (one row per slide: slide id, project, label,
//!   optional patient id, `rna_*` gene columns), checking every cell.
//! - [`TileFile`] reads a slide's tile features (and coordinates) from HDF5, in the layouts of
//!   the Python original, CLAM, TRIDENT and STAMP, reading only the rows a bag needs.
//! - [`Cohort`] joins the two, finding each slide's file and listing every problem.
//! - [`training_bags`] and [`evaluation_bags`] cut slides into bags; [`CohortDataset`] serves
//!   them as a Burn `Dataset`, [`BagBatcher`] pads them into batches with a padding mask, and
//!   [`BagLoader`] reads ahead in parallel workers.
//! - [`Normalization`] is the original's expression normalization, fitted on training slides.
//! - [`kfold`], [`by_fractions`] and [`from_csv`] make patient-level splits.
//! - [`write_synthetic_cohort`] writes a learnable synthetic cohort.

mod bags;
mod check;
mod cohort;
mod dataset;
mod error;
mod h5;
pub(crate) mod json;
mod labels;
mod loader;
mod normalize;
mod patients;
mod signatures;
mod split;
mod synth;
mod table;
mod tiles;
mod pt;

pub use bags::{
    BagRef, BagSettings, BagSource, evaluation_bags, mix as mix_seed, training_bags,
};
pub use check::CohortSummary;
pub use cohort::{Cohort, SlideTiles, TileOptions};
pub use dataset::{BagBatch, BagBatcher, BagItem, CohortDataset, Target};
pub use error::DataError;
pub use h5::{COORDS_DATASET, FEATURE_DATASETS};
pub use tiles::{PT_KEY, SLIDE_EXTENSIONS, TileFile, candidate_paths, locate, slide_stem};
pub use labels::LabelMap;
pub use loader::BagLoader;
pub use normalize::{NormalizeMethod, Normalization};
pub use patients::{Patients, Unit};
pub use signatures::{Signatures, read_signatures};
pub use split::{
    Split, SplitRead, by_fractions, check_patients, from_csv, kfold, split_files, write_split_csv,
};
pub use synth::{
    SYNTH_PROJECT, SynthCohort, SynthOptions, write_synthetic_cohort, write_tile_file,
};
pub(crate) use table::parse_finite;
pub use table::{
    CohortColumns, CohortTable, DEFAULT_GENE_PREFIX, DEFAULT_GENE_SUFFIX, GeneRule, SlideRecord,
};
