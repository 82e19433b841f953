//! Building a cohort table from what a data portal delivers.
//!
//! - [`gdc`]: a GDC download (sample sheet, STAR gene-count files, `clinical.tsv`) and a
//!   folder of slide feature files into one cohort CSV, with a report of every case left out
//!   and why (`med-crossvit cohort gdc`). The rules are in `docs/cohorts.md`.

pub mod gdc;
