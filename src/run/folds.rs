//! The fold models of a cross-validation run, loaded together: [`FoldEnsemble`], each
//! `fold_K` folder's [`ModelBundle`], checked to agree on what their outputs mean (what
//! [`eval::evaluate_ensemble`](crate::eval::evaluate_ensemble) applies and combines).

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::bundle::{ModelBundle, RunConfig};
use super::error::{Error, RunError};
use super::settings::Task;
use crate::data::TimeBins;

/// The fold models of a cross-validation run, checked to agree on everything that decides
/// what their outputs mean.
#[derive(Debug)]
pub struct FoldEnsemble {
    /// The cross-validation run folder.
    pub dir: PathBuf,
    /// Each fold's folder and model, in fold order.
    pub folds: Vec<(PathBuf, ModelBundle)>,
}

impl FoldEnsemble {
    /// Whether `dir` is a cross-validation run folder (its `config.json` counts folds), whose
    /// `fold_K` models [`load`](Self::load) reads; `false` for a single model folder or
    /// anything unreadable (left to [`ModelBundle::load`] to explain).
    pub fn is_cross_validation(dir: &Path) -> bool {
        RunConfig::load(dir).is_ok_and(|c| c.folds.is_some())
    }

    /// Loads every fold model `dir/fold_0 … fold_{K−1}` of the cross-validation run `dir`
    /// onto `device`, and checks that each agrees with the first.
    ///
    /// # Errors
    ///
    /// [`RunError::NotARun`] when `dir` is no cross-validation run or a fold folder is
    /// missing; the errors of [`ModelBundle::load`] for each fold; [`RunError::FoldMismatch`]
    /// naming the fold and what differs: the task, the classes (or bin count), the genes
    /// and their order, the gene tokenizer, the tile width, the modalities, the treatment
    /// of a missing modality, the CSV columns.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, Error> {
        let config = RunConfig::load(dir)?;
        let Some(k) = config.folds else {
            return Err(RunError::NotARun {
                path: dir.to_path_buf(),
                reason: "it is not a cross-validation run (its config.json counts no folds)".into(),
            }
            .into());
        };
        let mut folds: Vec<(PathBuf, ModelBundle)> = Vec::with_capacity(k);
        for fold in 0..k {
            let path = dir.join(format!("fold_{fold}"));
            if !path.is_dir() {
                return Err(RunError::NotARun {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "fold {fold} of {k} is missing: no folder {}",
                        path.display()
                    ),
                }
                .into());
            }
            let bundle = ModelBundle::load(&path, device)?;
            if let Some((first, reference)) = folds.first() {
                check_agreement(first, reference, &path, &bundle)?;
            }
            folds.push((path, bundle));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            folds,
        })
    }

    /// The first fold's model: what every fold agrees with (task, classes, columns).
    pub fn first(&self) -> &ModelBundle {
        &self.folds[0].1
    }
}

/// `RunError::FoldMismatch` unless `expected` and `found` (each fold's `what`) are equal.
pub(crate) fn same<T: std::fmt::Debug + PartialEq>(
    reference: &Path,
    fold: &Path,
    what: &str,
    expected: &T,
    found: &T,
) -> Result<(), RunError> {
    if expected == found {
        return Ok(());
    }
    Err(RunError::FoldMismatch {
        fold: fold.to_path_buf(),
        reference: reference.to_path_buf(),
        what: what.into(),
        expected: format!("{expected:?}"),
        found: format!("{found:?}"),
    })
}

/// Checks that fold `b` (in `b_dir`) reads its input and writes its outputs as fold `a`.
fn check_agreement(
    a_dir: &Path,
    a: &ModelBundle,
    b_dir: &Path,
    b: &ModelBundle,
) -> Result<(), RunError> {
    let check = |what: &str, x: String, y: String| same(a_dir, b_dir, what, &x, &y);
    let (ta, tb) = (&a.config.training, &b.config.training);
    let (ma, mb) = (&a.config.model, &b.config.model);
    same(a_dir, b_dir, "task", &ta.task, &tb.task)?;
    same(
        a_dir,
        b_dir,
        "classes",
        &a.labels.classes,
        &b.labels.classes,
    )?;
    same(
        a_dir,
        b_dir,
        "gene order",
        &a.normalization.genes,
        &b.normalization.genes,
    )?;
    same(
        a_dir,
        b_dir,
        "gene tokenizer",
        &ma.rna_tokenizer,
        &mb.rna_tokenizer,
    )?;
    same(a_dir, b_dir, "tile width", &ma.wsi_dim, &mb.wsi_dim)?;
    same(a_dir, b_dir, "modalities", &ta.modalities, &tb.modalities)?;
    same(
        a_dir,
        b_dir,
        "missing-modality setting",
        &ta.missing_modality,
        &tb.missing_modality,
    )?;
    same(
        a_dir,
        b_dir,
        "CSV columns",
        &a.config.columns,
        &b.config.columns,
    )?;
    if ta.task == Task::Survival {
        let (sa, sb) = (&ta.survival, &tb.survival);
        check(
            "survival columns",
            format!("{} / {}", sa.time_column, sa.censorship_column),
            format!("{} / {}", sb.time_column, sb.censorship_column),
        )?;
        let bins = |m: &ModelBundle| m.config.survival_bins.as_ref().map(TimeBins::len);
        same(a_dir, b_dir, "survival bin count", &bins(a), &bins(b))?;
    }
    Ok(())
}
