//! [`CohortDataset`]: bags of a cohort as a Burn [`Dataset`], and the [`BagBatcher`] that pads
//! them into batches.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::bags::BagRef;
use super::{Cohort, DataError, Modalities, Normalization, Patients};
use crate::model::ModelInput;

/// What a patient is to be predicted as: a class (or survival time bin), and for survival
/// tasks the time and censorship.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Target {
    /// Class index, or survival bin.
    pub class: Option<usize>,
    /// Survival time.
    pub time: Option<f32>,
    /// Whether the time is censored (1 = no event observed).
    pub censored: Option<bool>,
}

/// One bag read from disk: its tiles' features, its patient's normalized expression and
/// target.
#[derive(Debug, Clone)]
pub struct BagItem {
    /// The patient and tiles.
    pub bag: BagRef,
    /// Features `[tiles, dim]`, row-major.
    pub features: Vec<f32>,
    /// Feature width.
    pub dim: usize,
    /// Normalized expression `[genes]`.
    pub expression: Vec<f32>,
    /// The patient's target.
    pub target: Target,
    /// Whether the bag has tiles (else `features` is one row of zeros: the model sees the
    /// tiles as missing).
    pub wsi: bool,
    /// Whether the patient has expression (else `expression` is zeros, seen as missing).
    pub rna: bool,
}

/// The bags of a cohort (one epoch's, or the evaluation bags). `get` reads only the bag's tile
/// rows from their files.
#[derive(Debug, Clone)]
pub struct CohortDataset {
    cohort: Arc<Cohort>,
    patients: Arc<Patients>,
    bags: Vec<BagRef>,
    expression: Arc<Vec<Vec<f32>>>,
    /// Per patient: whether its expression is used.
    rna: Arc<Vec<bool>>,
    targets: Arc<Vec<Target>>,
    modalities: Modalities,
}

impl CohortDataset {
    /// The dataset of `bags` from `cohort`, with expression normalized by `normalization` and
    /// `targets` indexed by patient. A patient's expression is that of its first slide's row
    /// (its rows agree: see [`Patients::check_agreement`]).
    ///
    /// # Errors
    ///
    /// The errors of [`Normalization::columns_in`] and [`Normalization::transform`].
    pub fn new(
        cohort: Arc<Cohort>,
        patients: Arc<Patients>,
        bags: Vec<BagRef>,
        normalization: &Normalization,
        targets: Vec<Target>,
    ) -> Result<Self, DataError> {
        let table = cohort.table();
        let mut used = vec![false; patients.len()];
        for bag in &bags {
            used[bag.patient] = true;
        }
        let rna: Vec<bool> = (0..patients.len())
            .map(|p| patients.has_rna(table, p))
            .collect();
        // Without expression anywhere (tiles alone) the table's genes are not looked up: every
        // patient is served zeros of the model's width.
        let columns = if (0..used.len()).any(|p| used[p] && rna[p]) {
            normalization.columns_in(table)?
        } else {
            Vec::new()
        };
        let width = normalization.mean.len();
        let expression = (0..used.len())
            .map(|p| {
                if !used[p] {
                    Ok(Vec::new())
                } else if rna[p] {
                    normalization.transform(table, patients.rna_row(table, p), &columns)
                } else {
                    Ok(vec![0.0; width])
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            cohort,
            patients,
            bags,
            expression: Arc::new(expression),
            rna: Arc::new(rna),
            targets: Arc::new(targets),
            modalities: Modalities::Both,
        })
    }

    /// The same dataset using only `modalities` (a unimodal baseline: the other is served
    /// as missing for every bag).
    pub fn with_modalities(mut self, modalities: Modalities) -> Self {
        self.modalities = modalities;
        self
    }

    /// The same cohort, normalization and targets with other bags (of the same patients), e.g.
    /// the next epoch's.
    pub fn with_bags(&self, bags: Vec<BagRef>) -> Self {
        debug_assert!(bags.iter().all(|b| !self.expression[b.patient].is_empty()));
        Self {
            bags,
            ..self.clone()
        }
    }

    /// The bags.
    pub fn bags(&self) -> &[BagRef] {
        &self.bags
    }

    /// The cohort.
    pub fn cohort(&self) -> &Cohort {
        &self.cohort
    }

    /// The cohort's patients (what the bags' `patient` indexes).
    pub fn patients(&self) -> &Arc<Patients> {
        &self.patients
    }
}

impl Dataset<BagItem, DataError> for CohortDataset {
    fn get(&self, index: usize) -> Result<BagItem, DataError> {
        let bag = self.bags[index].clone();
        let dim = self.cohort.feature_dim();
        let wsi = bag.wsi && self.modalities != Modalities::Rna;
        let rna = self.rna[bag.patient] && self.modalities != Modalities::Wsi;
        let groups = bag.by_slide();
        let features = if !wsi {
            vec![0.0; bag.len() * dim]
        } else if let [(slide, rows, _)] = &groups[..] {
            self.cohort.open_file(*slide)?.read_rows(rows)?
        } else {
            let mut features = vec![0.0; bag.len() * dim];
            for (slide, rows, positions) in &groups {
                let values = self.cohort.open_file(*slide)?.read_rows(rows)?;
                for (k, &at) in positions.iter().enumerate() {
                    features[at * dim..(at + 1) * dim]
                        .copy_from_slice(&values[k * dim..(k + 1) * dim]);
                }
            }
            features
        };
        let expression = if rna {
            self.expression[bag.patient].clone()
        } else {
            vec![0.0; self.expression[bag.patient].len()]
        };
        Ok(BagItem {
            features,
            dim,
            expression,
            target: self.targets[bag.patient],
            wsi,
            rna,
            bag,
        })
    }

    fn len(&self) -> usize {
        self.bags.len()
    }
}

/// A padded batch of bags, on a device.
#[derive(Debug, Clone)]
pub struct BagBatch {
    /// Tiles `[batch, max_tiles, dim]`, zero-padded.
    pub tiles: Tensor<3>,
    /// `[batch, max_tiles]`, `true` = padded; `None` when every bag is full.
    pub padding: Option<Tensor<2, Bool>>,
    /// Normalized expression `[batch, genes]`.
    pub expression: Tensor<2>,
    /// Class indices `[batch]`, when every bag has one.
    pub classes: Option<Tensor<1, Int>>,
    /// The bags, in batch order.
    pub bags: Vec<BagRef>,
    /// Their targets, in batch order.
    pub targets: Vec<Target>,
    /// Per bag: whether it has tiles.
    pub wsi: Vec<bool>,
    /// Per bag: whether it has expression.
    pub rna: Vec<bool>,
}

impl BagBatch {
    /// The model input of this batch.
    pub fn input(&self) -> ModelInput {
        let input = ModelInput::new(self.tiles.clone(), self.expression.clone());
        let input = match &self.padding {
            Some(mask) => input.mask_pad(mask.clone()),
            None => input,
        };
        if self.wsi.iter().chain(&self.rna).all(|&p| p) {
            return input;
        }
        let device = self.tiles.device();
        let flags = |v: &[bool]| {
            Tensor::<1, Bool>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device)
        };
        input.with_modalities(flags(&self.wsi), flags(&self.rna))
    }
}

/// Pads the bags of a batch to the longest and builds the padding mask.
#[derive(Debug, Clone, Copy, Default)]
pub struct BagBatcher;

impl Batcher<BagItem, BagBatch> for BagBatcher {
    /// # Panics
    ///
    /// On an empty batch, or items of different widths (a programmer error: the dataset
    /// checks widths when the cohort is opened).
    fn batch(&self, items: Vec<BagItem>, device: &Device) -> BagBatch {
        assert!(!items.is_empty(), "a batch needs at least one bag");
        let batch = items.len();
        let dim = items[0].dim;
        let genes = items[0].expression.len();
        let longest = items.iter().map(|i| i.bag.len()).max().unwrap_or(0);
        let mut tiles = vec![0.0f32; batch * longest * dim];
        let mut mask = vec![false; batch * longest];
        let mut expression = Vec::with_capacity(batch * genes);
        for (b, item) in items.iter().enumerate() {
            assert_eq!(item.dim, dim, "bags of one batch share the feature width");
            let n = item.bag.len();
            tiles[b * longest * dim..(b * longest + n) * dim].copy_from_slice(&item.features);
            mask[b * longest + n..(b + 1) * longest].fill(true);
            expression.extend_from_slice(&item.expression);
        }
        let padded = mask.iter().any(|&m| m);
        let classes: Option<Vec<i64>> = items
            .iter()
            .map(|i| i.target.class.map(|c| c as i64))
            .collect();
        BagBatch {
            tiles: Tensor::from_data(TensorData::new(tiles, [batch, longest, dim]), device),
            padding: padded
                .then(|| Tensor::from_data(TensorData::new(mask, [batch, longest]), device)),
            expression: Tensor::from_data(TensorData::new(expression, [batch, genes]), device),
            classes: classes.map(|c| Tensor::from_data(TensorData::new(c, [batch]), device)),
            targets: items.iter().map(|i| i.target).collect(),
            wsi: items.iter().map(|i| i.wsi).collect(),
            rna: items.iter().map(|i| i.rna).collect(),
            bags: items.into_iter().map(|i| i.bag).collect(),
        }
    }
}
