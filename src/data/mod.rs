//! Cohort data: tile bags (HDF5 or CLAM `.pt` files) joined with CSV expression rows.
//!
//! - [`CohortTable`] reads the cohort CSV (one row per slide: slide id, project, label,
//!   patient id, gene columns chosen by a [`GeneRule`]: `rna_*`, MCAT's `*_rnaseq`, or any
//!   prefix, suffix or regex), checking every cell.
//! - [`TileFile`] reads a slide's tile features (and coordinates) from HDF5, in the layouts of
//!   the Python original, CLAM, TRIDENT and STAMP, or from a CLAM `.pt` file, reading only
//!   the rows a bag needs; [`locate`] finds it by the slide id's stem.
//! - [`Cohort`] joins the two, finding each slide's file and listing every problem.
//! - [`validate()`] is the one validation of a cohort (CSV, outcome, patients, tile files) that
//!   `check` and training share; it returns every problem as [`CohortProblems`], grouped by
//!   [`ProblemKind`] with a hint for each kind.
//! - [`Patients`] groups slides by patient and checks that a patient's rows agree; the
//!   [`Unit`] says whether a patient's slides are pooled into one bag source.
//! - [`training_bags`] and [`evaluation_bags`] cut bag sources into bags; [`CohortDataset`]
//!   serves them as a Burn `Dataset`, [`BagBatcher`] pads them into batches with a padding
//!   mask, and [`BagLoader`] reads ahead in parallel workers.
//! - [`Normalization`] scales expression (the original's log2 + z-score, or another
//!   [`NormalizeMethod`]) and selects the top-K genes, fitted on training patients;
//!   [`scale_report`] measures the result and names the genes far outside what the model
//!   expects.
//! - [`kfold`], [`by_fractions`], [`from_csv`] and [`split_files`] make patient-level splits;
//!   [`write_split_csv`] records one.
//! - [`write_synthetic_cohort`] writes a learnable synthetic cohort.

mod bags;
mod check;
mod choices;
mod cohort;
mod csvfile;
mod dataset;
mod error;
mod geometry;
mod h5;
pub(crate) mod json;
mod labels;
mod loader;
mod normalize;
mod patients;
mod pt;
mod scale;
mod signatures;
mod split;
mod synth;
mod table;
mod text;
mod tiles;
mod validate;

pub use crate::util::seed::mix as mix_seed;
pub use bags::{BagRef, BagSettings, BagSource, evaluation_bags, training_bags};
pub use check::CohortSummary;
pub use choices::{MissingModality, Modalities, Unit};
pub use cohort::{Cohort, SlideTiles, TileOptions};
pub use dataset::{BagBatch, BagBatcher, BagItem, CohortDataset, Target};
pub use error::{CohortProblems, DataError, PatientMismatch, Problem, ProblemKind, ProblemReport};
pub use geometry::{AttrValue, Attributes, CoordUnit, TileGeometry, TileSide, read_tile_geometry};
pub use h5::{COORDS_DATASET, FEATURE_DATASETS};
pub use labels::{LabelMap, TimeBins};
pub use loader::BagLoader;
pub use normalize::{Normalization, NormalizeMethod};
pub use patients::Patients;
pub use scale::{GeneExtreme, SCALE_LIMIT, ScaleReport, WORST_SHOWN, cohort_scale, scale_report};
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
pub use text::{SHOWN_CHARS, cut, cut_list};
pub use tiles::{PT_KEY, SLIDE_EXTENSIONS, TileFile, candidate_paths, locate, slide_stem};
pub use validate::{CohortCheck, Outcome, some_modality, validate};
