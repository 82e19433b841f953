//! Data-parallel training: how a global batch is shared out, and how the gradients computed on
//! its shares are combined into one step.
//!
//! A step runs on `R` processes (MPI ranks; 1 without MPI), each with `N` devices (`--devices`).
//! Every process draws the same global batch (same seed, same order); process `r` reads only
//! its contiguous share of it ([`shares`]), and splits that share again over its devices. Each
//! share's loss is scaled by its part of the batch's normalizer (the number of bags, or the
//! sum of their class weights), so the gradients of the shares *sum* to the gradient of the
//! whole batch: a [`Reducer`] sums them (on the main device, through NCCL, or across processes
//! with an all-reduce) and every process takes the same optimizer step. With dropout off, the
//! run is the single-device run up to the order of float summation.

use std::ops::Range;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::MedCrossViT;
use crate::run::Error;

/// `n` items cut into `parts` contiguous shares in order, the first `n % parts` one larger
/// (a share may be empty when `n < parts`).
pub fn shares(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.max(1);
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|p| {
            let len = base + usize::from(p < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

/// The processes a run is spread over, and the collective operations between them. Every
/// process must call the operations in the same order (they are collective).
pub trait ProcessGroup {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// Replaces `values` on every process by their element-wise sum over the processes.
    ///
    /// # Errors
    ///
    /// A failure of the transport.
    fn sum(&self, values: &mut [f64]) -> Result<(), Error>;
    /// Every process's `bytes`, in rank order, on every process.
    ///
    /// # Errors
    ///
    /// A failure of the transport.
    fn all_gather(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error>;
    /// Whether this process writes the run's files (rank 0).
    fn is_writer(&self) -> bool {
        self.rank() == 0
    }
}

/// One process: the collectives are the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

impl ProcessGroup for Alone {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum(&self, _values: &mut [f64]) -> Result<(), Error> {
        Ok(())
    }
    fn all_gather(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        Ok(vec![bytes.to_vec()])
    }
}

/// Where a run computes: its processes, and this process's devices (the first is the main
/// device, which holds the model, the optimizer state and the combined gradients).
pub struct Parallel<'a> {
    /// This process's devices (without autodiff), the main one first.
    pub devices: Vec<Device>,
    /// The processes of the run.
    pub group: &'a dyn ProcessGroup,
    /// The devices are CUDA devices: their gradients are summed by NCCL on the devices
    /// (builds with the `cuda` feature) instead of through the main device.
    pub nccl: bool,
}

impl std::fmt::Debug for Parallel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("devices", &self.devices)
            .field("rank", &self.group.rank())
            .field("size", &self.group.size())
            .finish()
    }
}

impl<'a> Parallel<'a> {
    /// One process on one device.
    pub fn single(device: &Device) -> Parallel<'static> {
        Parallel {
            devices: vec![device.clone()],
            group: &Alone,
            nccl: false,
        }
    }

    /// The main device.
    pub fn main(&self) -> &Device {
        &self.devices[0]
    }

    /// Whether the work is spread at all (several devices or processes).
    pub fn is_spread(&self) -> bool {
        self.devices.len() > 1 || self.group.size() > 1
    }

    /// The reducer for these devices and processes: [`OneDevice`] when the work is not
    /// spread, else [`OnMainDevice`] (or NCCL) over the devices, [`AcrossProcesses`] over the
    /// processes.
    pub fn reducer(&self) -> Box<dyn Reducer + '_> {
        if !self.is_spread() {
            return Box::new(OneDevice);
        }
        let local: Box<dyn Reducer + '_> = match () {
            #[cfg(feature = "cuda")]
            () if self.devices.len() > 1 && self.nccl => {
                Box::new(nccl::Nccl::new(self.devices.clone()))
            }
            () => Box::new(OnMainDevice {
                main: self.devices[0].clone(),
            }),
        };
        if self.group.size() > 1 {
            Box::new(AcrossProcesses {
                local,
                group: self.group,
                main: self.devices[0].clone(),
            })
        } else {
            local
        }
    }
}

/// Combines the gradients of a step's shares into the gradients of the whole step.
pub trait Reducer {
    /// `parts[i]` are the gradients computed on this process's device `i` (empty shares give
    /// no part); the result is their sum over every device of every process, on the main
    /// device, the same on every process.
    ///
    /// # Errors
    ///
    /// A failure of the transport between processes.
    fn reduce(
        &mut self,
        parts: Vec<GradientsParams>,
        model: &MedCrossViT,
    ) -> Result<GradientsParams, Error>;
}

/// One device of one process: its part is the step's gradients.
#[derive(Debug, Clone, Copy, Default)]
pub struct OneDevice;

impl Reducer for OneDevice {
    fn reduce(
        &mut self,
        mut parts: Vec<GradientsParams>,
        _model: &MedCrossViT,
    ) -> Result<GradientsParams, Error> {
        Ok(parts.pop().unwrap_or_default())
    }
}

/// Several devices of one process (or one): each part moved to the main device and summed
/// there. Works on every backend.
#[derive(Debug)]
pub struct OnMainDevice {
    main: Device,
}

impl Reducer for OnMainDevice {
    fn reduce(
        &mut self,
        parts: Vec<GradientsParams>,
        model: &MedCrossViT,
    ) -> Result<GradientsParams, Error> {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Ok(GradientsParams::new());
        };
        let mut sum = GradientsAccumulator::<MedCrossViT>::new();
        sum.accumulate(model, first.to_device(&self.main, model));
        for part in parts {
            sum.accumulate(model, part.to_device(&self.main, model));
        }
        Ok(sum.grads())
    }
}

/// Several processes: this process's parts combined by `local`, then flattened into one
/// buffer, summed over the processes and laid back into gradients.
pub struct AcrossProcesses<'a> {
    local: Box<dyn Reducer + 'a>,
    group: &'a dyn ProcessGroup,
    main: Device,
}

impl Reducer for AcrossProcesses<'_> {
    fn reduce(
        &mut self,
        parts: Vec<GradientsParams>,
        model: &MedCrossViT,
    ) -> Result<GradientsParams, Error> {
        let local = self.local.reduce(parts, model)?;
        let (mut flat, layout) = flatten(&local, model);
        self.group.sum(&mut flat)?;
        Ok(unflatten(&flat, &layout, model, &self.main))
    }
}

/// Where each parameter's gradient lies in a flat buffer.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Elements of each float parameter, in the model's visiting order.
    sizes: Vec<usize>,
}

/// The gradients of every float parameter of `model`, in its visiting order (the same on every
/// process), as one `f64` buffer: each parameter's values, then one presence entry per
/// parameter (1 when this process has its gradient, else 0 and zeros for the values). The
/// host copy of `flat_tensor`.
pub fn flatten(grads: &GradientsParams, model: &MedCrossViT) -> (Vec<f64>, Layout) {
    let device = model
        .devices()
        .into_iter()
        .next()
        .expect("a model lives on a device")
        .without_autodiff();
    let (flat, layout) = flat_tensor(grads, model, &device);
    let values: Vec<f32> = flat
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("f32 data");
    (values.into_iter().map(f64::from).collect(), layout)
}

/// The gradients of a buffer written by [`flatten`] (and summed), on `device`: a parameter
/// gets a gradient when some process had one.
pub fn unflatten(
    flat: &[f64],
    layout: &Layout,
    model: &MedCrossViT,
    device: &Device,
) -> GradientsParams {
    let values: Vec<f32> = flat.iter().map(|&v| v as f32).collect();
    let n = values.len();
    let flat = Tensor::<1>::from_data(TensorData::new(values, [n]), device);
    from_flat_tensor(flat, layout, model, device)
}

/// Checks that every process starts from the same weights (a different build, backend or
/// checkpoint on one node would make the ranks step apart unnoticed): the sum and the sum of
/// squares of every parameter value are compared with rank 0's.
///
/// # Errors
///
/// [`RunError::Distributed`](crate::run::RunError::Distributed) naming the first rank
/// that differs; a failure of the transport.
pub fn check_same_weights(model: &MedCrossViT, group: &dyn ProcessGroup) -> Result<(), Error> {
    struct Fingerprint(f64, f64);
    impl ModuleVisitor for Fingerprint {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values: Vec<f32> = param
                .val()
                .into_data()
                .convert::<f32>()
                .try_into_vec()
                .expect("f32 data");
            for v in values {
                self.0 += f64::from(v);
                self.1 += f64::from(v) * f64::from(v);
            }
        }
    }
    if group.size() < 2 {
        return Ok(());
    }
    let mut mine = Fingerprint(0.0, 0.0);
    model.visit(&mut mine);
    let bytes: Vec<u8> = [mine.0, mine.1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let all = group.all_gather(&bytes)?;
    if let Some(rank) = all.iter().position(|b| *b != all[0]) {
        return Err(crate::run::RunError::Distributed {
            message: format!(
                "rank {rank} starts from other weights than rank 0: every rank must run the \
                 same build on the same kind of device with the same settings"
            ),
        }
        .into());
    }
    Ok(())
}

#[cfg(feature = "cuda")]
mod nccl {
    //! Several CUDA devices of one process: the gradients are summed by NCCL on the devices.

    use burn::optim::GradientsParams;
    use burn::tensor::distributed::{ReduceOperation, all_reduce};
    use burn::tensor::{Device, Tensor};

    use super::{Layout, Reducer, flat_tensor, from_flat_tensor};
    use crate::model::MedCrossViT;
    use crate::run::Error;

    /// All-reduces each device's flattened gradients with NCCL.
    pub(super) struct Nccl {
        devices: Vec<Device>,
    }

    impl Nccl {
        pub(super) fn new(devices: Vec<Device>) -> Self {
            Self { devices }
        }
    }

    impl Reducer for Nccl {
        fn reduce(
            &mut self,
            parts: Vec<GradientsParams>,
            model: &MedCrossViT,
        ) -> Result<GradientsParams, Error> {
            // Every device takes part (an empty share contributes zeros).
            let mut flats: Vec<(Tensor<1>, Layout)> = Vec::with_capacity(self.devices.len());
            let mut parts = parts.into_iter();
            for device in &self.devices {
                let grads = parts.next().unwrap_or_default();
                flats.push(flat_tensor(&grads, model, device));
            }
            let reduced: Vec<_> = flats
                .into_iter()
                .map(|(flat, layout)| {
                    (
                        all_reduce(flat, ReduceOperation::Sum, self.devices.clone()),
                        layout,
                    )
                })
                .collect();
            let mut first = None;
            for (collective, layout) in reduced {
                let t = collective.resolve();
                if first.is_none() {
                    first = Some((t, layout));
                }
            }
            let (flat, layout) = first.expect("at least one device");
            Ok(from_flat_tensor(flat, &layout, model, &self.devices[0]))
        }
    }
}

/// The layout of [`flatten`] as one tensor on `device` (the form collectives that run on the
/// devices take).
fn flat_tensor(
    grads: &GradientsParams,
    model: &MedCrossViT,
    device: &Device,
) -> (Tensor<1>, Layout) {
    struct Flatten<'g> {
        grads: &'g GradientsParams,
        parts: Vec<Tensor<1>>,
        present: Vec<f32>,
        sizes: Vec<usize>,
        device: Device,
    }
    impl ModuleVisitor for Flatten<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let n = param.lazy_shape().num_elements();
            self.sizes.push(n);
            match self.grads.get::<D>(param.id) {
                Some(g) => {
                    self.parts.push(g.reshape([n]).to_device(&self.device));
                    self.present.push(1.0);
                }
                None => {
                    self.parts.push(Tensor::zeros([n], &self.device));
                    self.present.push(0.0);
                }
            }
        }
    }
    let mut visitor = Flatten {
        grads,
        parts: Vec::new(),
        present: Vec::new(),
        sizes: Vec::new(),
        device: device.clone(),
    };
    model.visit(&mut visitor);
    let n = visitor.present.len();
    visitor.parts.push(Tensor::from_data(
        TensorData::new(visitor.present, [n]),
        device,
    ));
    (
        Tensor::cat(visitor.parts, 0),
        Layout {
            sizes: visitor.sizes,
        },
    )
}

/// The gradients of a tensor written by [`flat_tensor`] (and summed), cut into the parameters
/// on its device and moved to `device`; only the presence flags are read to the host.
fn from_flat_tensor(
    flat: Tensor<1>,
    layout: &Layout,
    model: &MedCrossViT,
    device: &Device,
) -> GradientsParams {
    struct Unflatten {
        flat: Tensor<1>,
        present: Vec<f32>,
        offset: usize,
        index: usize,
        device: Device,
        out: GradientsParams,
    }
    impl ModuleVisitor for Unflatten {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let shape = param.lazy_shape();
            let n = shape.num_elements();
            if self.present[self.index] > 0.0 {
                let g = self.flat.clone().narrow(0, self.offset, n).reshape(shape);
                self.out.register::<D>(param.id, g.to_device(&self.device));
            }
            self.offset += n;
            self.index += 1;
        }
    }
    let total: usize = layout.sizes.iter().sum();
    let present: Vec<f32> = flat
        .clone()
        .narrow(0, total, layout.sizes.len())
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("f32 data");
    let mut visitor = Unflatten {
        flat,
        present,
        offset: 0,
        index: 0,
        device: device.clone(),
        out: GradientsParams::new(),
    };
    model.visit(&mut visitor);
    visitor.out
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_are_contiguous_and_cover_everything() {
        assert_eq!(shares(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(shares(2, 3), vec![0..1, 1..2, 2..2]);
        assert_eq!(shares(5, 1), vec![0..5]);
    }
}
