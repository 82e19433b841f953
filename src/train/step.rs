//! Share and reduce, the gradient step of a batch: the batch's items as the model sees them
//! (modality dropout), shared out over this process's devices, each share's gradients
//! computed on a replica of the model, and the parts summed over every device of every
//! process by the run's [`Reducer`]: one device, several devices, several processes (MPI)
//! differ only in that reducer (see [`parallel`](super::parallel)).

use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::finite::poisoned;
use super::parallel::{Parallel, ProcessGroup, Reducer, shares};
use crate::data::{BagBatcher, BagItem};
use crate::eval::batch_loss;
use crate::model::MedCrossViT;
use crate::run::{Error, TrainSettings};

/// Where a batch's gradients are computed and how they are combined.
pub(super) struct Replicas<'a> {
    /// The training settings.
    settings: &'a TrainSettings,
    /// This process's devices, with autodiff; the first holds the model.
    devices: Vec<Device>,
    /// The class weights on each device (empty without).
    class_weights: Vec<Tensor<1>>,
    /// Sums the parts of the devices and processes.
    reducer: Box<dyn Reducer + 'a>,
    /// The processes of the run.
    group: &'a dyn ProcessGroup,
}

impl<'a> Replicas<'a> {
    /// The devices of `parallel` (with autodiff) and its reducer; no class weights yet.
    pub(super) fn new(settings: &'a TrainSettings, parallel: &'a Parallel<'a>) -> Self {
        Self {
            settings,
            devices: parallel
                .devices
                .iter()
                .map(|d| d.clone().autodiff())
                .collect(),
            class_weights: Vec::new(),
            reducer: parallel.reducer(),
            group: parallel.group,
        }
    }

    /// Puts the loss's class `weights` (if any) on each device.
    pub(super) fn weigh_classes(&mut self, weights: Option<&[f32]>) {
        self.class_weights = match weights {
            Some(w) => self
                .devices
                .iter()
                .map(|d| Tensor::<1>::from_data(TensorData::new(w.to_vec(), [w.len()]), d))
                .collect(),
            None => Vec::new(),
        };
    }

    /// The main device, with autodiff: it holds the model and the optimizer state.
    pub(super) fn main(&self) -> &Device {
        &self.devices[0]
    }

    /// The class weights on the main device, if any.
    pub(super) fn main_class_weights(&self) -> Option<&Tensor<1>> {
        self.class_weights.first()
    }

    /// Shares this process's part of a batch (`items`, the bags `indices`) out over its
    /// devices: each share with its part of the batch's loss normalizer `batch_norm`, as
    /// `norm` gives it for the share's bags.
    pub(super) fn share(
        &self,
        items: Vec<BagItem>,
        indices: &[usize],
        norm: impl Fn(&[usize]) -> f64,
        batch_norm: f64,
    ) -> Vec<(Vec<BagItem>, f64)> {
        let mut rest = items;
        let mut start = 0;
        let mut device_shares = Vec::with_capacity(self.devices.len());
        for range in shares(indices.len(), self.devices.len()) {
            let share: Vec<_> = rest.drain(..range.len()).collect();
            let part = norm(&indices[start..start + range.len()]) / batch_norm;
            start += range.len();
            device_shares.push((share, part));
        }
        device_shares
    }

    /// The gradients of a batch, summed over every device of every process, and the batch's
    /// loss: `shares[d]` are device `d`'s bags with their part of the batch's loss
    /// normalizer; each share's loss is weighted by its part and divided by `scale` (gradient
    /// accumulation). `seed` draws the dropout of a recomputed pass.
    pub(super) fn gradients(
        &mut self,
        model: &MedCrossViT,
        shares: Vec<(Vec<BagItem>, f64)>,
        scale: f32,
        seed: u64,
    ) -> Result<(GradientsParams, f64), Error> {
        let mut parts = Vec::with_capacity(shares.len());
        let mut local_loss = 0.0;
        for (d, (share, part)) in shares.into_iter().enumerate() {
            if share.is_empty() {
                continue;
            }
            let (grads, loss) = self.share_gradients(model, d, share, (part, scale), seed)?;
            parts.push(grads);
            local_loss += loss * f64::from(scale);
        }
        let grads = self.reducer.reduce(parts, model)?;
        let mut loss = [local_loss];
        self.group.sum(&mut loss)?;
        Ok((grads, loss[0]))
    }

    /// The gradients and the loss of one device's `share`, on a replica of `model` on device
    /// `d`, its loss multiplied by `part` and divided by `scale`.
    fn share_gradients(
        &self,
        model: &MedCrossViT,
        d: usize,
        share: Vec<BagItem>,
        (part, scale): (f64, f32),
        seed: u64,
    ) -> Result<(GradientsParams, f64), Error> {
        let settings = self.settings;
        let device = &self.devices[d];
        let replica = if d == 0 {
            model.clone()
        } else {
            model.clone().fork(device)
        };
        let batch = BagBatcher.batch(share, device);
        let loss_of = |logits| {
            batch_loss(logits, &batch, settings, self.class_weights.get(d))
                .expect("training bags all have targets")
                * part as f32
                / scale
        };
        let (grads, loss) = if !settings.gradient_checkpointing {
            let loss = loss_of(replica.forward(batch.input())?.logits);
            (GradientsParams::from_grads(loss.backward(), &replica), loss)
        } else {
            let mut share_grads = GradientsAccumulator::<MedCrossViT>::new();
            let step = replica.backward_recomputed(batch.input(), seed, loss_of, |m, g| {
                share_grads.accumulate(&m, g);
                m
            })?;
            (share_grads.grads(), step.loss)
        };
        Ok((grads, loss.into_scalar::<f32>() as f64))
    }
}

/// The items of batch `batch` (from 0) of epoch `epoch` (from 0) as the model sees them: made
/// not finite where the test-only poison asks, with modality dropout; `offset` is the
/// position of this process's share in the global batch.
pub(super) fn batch_items(
    mut items: Vec<BagItem>,
    settings: &TrainSettings,
    epoch: usize,
    batch: usize,
    offset: usize,
) -> Vec<BagItem> {
    if poisoned(epoch + 1, batch + 1) {
        for item in &mut items {
            item.expression.fill(f32::NAN);
            item.features.fill(f32::NAN);
        }
    }
    if settings.modality_dropout > 0.0 {
        drop_modalities(&mut items, settings, epoch, batch, offset);
    }
    items
}

/// Modality dropout: each complete item of the batch loses its tiles with probability P/2,
/// else its expression with probability P/2 (never both), reproducibly from the seed, epoch
/// and batch.
fn drop_modalities(
    items: &mut [BagItem],
    settings: &TrainSettings,
    epoch: usize,
    batch: usize,
    offset: usize,
) {
    use rand::Rng;
    let p = settings.modality_dropout;
    let mut rng = ChaCha8Rng::seed_from_u64(crate::data::mix_seed(
        settings.seed,
        epoch as u64,
        0x6d6f_6400 + batch as u64,
    ));
    // The draws of the batch's bags before this share (another process's).
    for _ in 0..offset {
        let _: f64 = rng.random();
    }
    for item in items.iter_mut() {
        let u: f64 = rng.random();
        if !(item.wsi && item.rna) {
            continue;
        }
        if u < p / 2.0 {
            item.wsi = false;
            item.features.fill(0.0);
        } else if u < p {
            item.rna = false;
            item.expression.fill(0.0);
        }
    }
}
