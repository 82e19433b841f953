//! The choices a run makes about its cohort: which [`Modalities`] a model uses, whether rows
//! may lack one ([`MissingModality`]), and the [`Unit`] bags are drawn from (a patient's
//! slides pooled or kept apart). A leaf: it imports nothing from the rest of `data/`.

use serde::{Deserialize, Serialize};

/// Whether rows may lack a modality (expression, or the slide's tile file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingModality {
    /// A row without expression or tile file is an error (all listed at once).
    #[default]
    Error,
    /// Such rows are kept: a patient is predicted from what it has.
    Allow,
}

/// Which modalities a model uses: both, or one alone (a unimodal baseline on the same
/// splits; the other is treated as missing everywhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modalities {
    /// Tiles and expression.
    #[default]
    Both,
    /// Tiles alone.
    Wsi,
    /// Expression alone.
    Rna,
}

/// What training samples bags from. Either way every metric and prediction is per patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// All slides of a patient form one tile pool: training samples bags from the union,
    /// evaluation covers every tile of every slide and weighs each bag by its tiles (the
    /// MCAT/SurvPath convention).
    Patient,
    /// Slides are separate bag sources; a patient's prediction is the mean of its slides'
    /// (of the logits; for survival, of the hazards).
    Slide,
}

impl Unit {
    /// The unit's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Slide => "slide",
        }
    }
}
