//! Validation predictions of a fit spread over its devices and processes.

use std::sync::Arc;

use burn::module::Module;

use super::parallel::{Parallel, shares};
use crate::data::CohortDataset;
use crate::eval::Predictions;
use crate::model::MedCrossViT;
use crate::run::{Error, RunError, TrainSettings};

/// [`predict`] spread over the devices and processes of `parallel`: each process takes a
/// contiguous share of the bags and splits it over its devices; the shares' sums are gathered
/// on every process, so each ends with the same predictions.
///
/// # Errors
///
/// As [`predict`]; a failure of the transport between processes.
pub(crate) fn predict_parallel(
    model: &MedCrossViT,
    dataset: Arc<CohortDataset>,
    settings: &TrainSettings,
    parallel: &Parallel<'_>,
) -> Result<Predictions, Error> {
    if !parallel.is_spread() {
        return crate::eval::predict(model, dataset, settings, parallel.main(), false, None);
    }
    let patients = dataset.patients().clone();
    let group = parallel.group;
    let mine = shares(dataset.bags().len(), group.size())[group.rank()].clone();
    let mut partial = crate::eval::PartialPredictions::new();
    for (device, range) in parallel
        .devices
        .iter()
        .zip(shares(mine.len(), parallel.devices.len()))
    {
        if range.is_empty() {
            continue;
        }
        let order: Vec<usize> = (mine.start + range.start..mine.start + range.end).collect();
        let replica = model.clone().to_device(device);
        partial.merge(crate::eval::predict_bags(
            &replica,
            dataset.clone(),
            order,
            settings,
            device,
            false,
            None,
        )?);
    }
    if group.size() > 1 {
        let bytes = serde_json::to_vec(&partial).expect("sums serialize");
        let mut all = crate::eval::PartialPredictions::new();
        for (rank, part) in group.all_gather(&bytes)?.into_iter().enumerate() {
            let part: crate::eval::PartialPredictions =
                serde_json::from_slice(&part).map_err(|e| RunError::Distributed {
                    message: format!("unreadable predictions from rank {rank}: {e}"),
                })?;
            all.merge(part);
        }
        partial = all;
    }
    Ok(partial.finish(&patients, settings))
}
