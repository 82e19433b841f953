//! GELU and the softmax as single operations with backward passes of their own on the CPU
//! backend.
//!
//! Burn differentiates a softmax written with tensor operations as its parts (maximum,
//! subtraction, exponential, sum, division: about ten element-wise passes forward and back,
//! each on one thread), and a GELU built outside the graph needs extra products to carry its
//! slope. Through Burn's `#[backend_extension]` this module adds two operations to the flex
//! backend and to its autodiff wrapper:
//!
//! - **GELU**: forward, one parallel pass writes GELU(x) and keeps GELU′(x) for the backward
//!   pass, which is one parallel product `grad ⊙ GELU′(x)`;
//! - **softmax over the last dimension**: forward, the row kernel of
//!   [`activation`](super::activation) in place; backward, one parallel pass per row
//!   `grad ← y ⊙ (grad − Σ grad ⊙ y)` from the kept output `y`;
//! - **dropout**: forward, the mask of [`mask`](super::mask) applied in the pass that
//!   draws it and kept as one bit per element (a 32nd of an f32 mask); backward, one
//!   parallel pass applying those bits.
//!
//! Buffers that nothing else holds are updated in place. Only f32 tensors on flex devices
//! come here; the callers in [`activation`](super::activation) and
//! [`dropout`](super::dropout) route the rest to Burn.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::nn::LayerNorm;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::device::on_flex;
use super::elementwise as kernels;
use super::mask::{apply_bits, apply_mask, apply_mask_keeping_bits};

/// Elements per parallel block.
const BLOCK: usize = 1 << 14;

/// The fused operations, implemented for flex and for autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// GELU(x), the exact (erf) form.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The softmax over the last dimension.
    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Dropout: each element kept with probability `keep` and scaled by `1 / keep`, or
    /// zeroed, by the mask [`apply_mask`] draws from `seed`.
    fn fused_dropout(x: FloatTensor<Self>, seed: u64, keep: f64) -> FloatTensor<Self>;
    /// LayerNorm over the last dimension: `(x − μ) / √(σ² + ε) · γ + β` per row.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// The ε of every LayerNorm of the model: all are built by `LayerNormConfig::new`, whose
/// default it is (Burn keeps a module's ε private).
pub(crate) const LAYER_NORM_EPSILON: f64 = 1e-5;

/// `norm.forward(x)`, as one operation with its own backward pass for f32 tensors on flex
/// devices (a LayerNorm with a bias, built with the default ε, as all of the model's are).
pub(crate) fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    match &norm.beta {
        Some(beta)
            if on_flex(&x.device())
                && x.dtype() == DType::F32
                && norm.gamma.val().dtype() == DType::F32 =>
        {
            Tensor::from_dispatch(<Dispatch as FusedOps>::fused_layer_norm(
                x.into_dispatch(),
                norm.gamma.val().into_dispatch(),
                beta.val().into_dispatch(),
                LAYER_NORM_EPSILON,
            ))
        }
        _ => norm.forward(x),
    }
}

/// Dropout of an f32 tensor on a flex device with the mask drawn from `seed`.
pub(crate) fn dropout<const D: usize>(x: Tensor<D>, seed: u64, keep: f64) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_dropout(
        x.into_dispatch(),
        seed,
        keep,
    ))
}

/// GELU(x) of an f32 tensor on a flex device (plain or autodiff).
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_gelu(x.into_dispatch()))
}

/// The softmax over the last dimension of an f32 tensor on a flex device.
pub(crate) fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_softmax(x.into_dispatch()))
}

impl FusedOps for Flex {
    fn fused_gelu(x: FlexTensor) -> FlexTensor {
        in_place(x, |v| v.par_chunks_mut(BLOCK).for_each(kernels::gelu))
    }

    fn fused_softmax(x: FlexTensor) -> FlexTensor {
        softmax(x)
    }

    fn fused_dropout(x: FlexTensor, seed: u64, keep: f64) -> FlexTensor {
        masked(x, seed, keep)
    }

    fn fused_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        // Outside a graph no statistics are needed: the backend's own fused pass.
        <Flex as ModuleOps<Flex>>::layer_norm(x, gamma, Some(beta), epsilon)
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                // Overwritten in place unless the graph holds x (then copied on write).
                let mut slope = Vec::new();
                let y = in_place(x.into_primitive(), |y| {
                    slope = vec![0.0f32; y.len()];
                    y.par_chunks_mut(BLOCK)
                        .zip(slope.par_chunks_mut(BLOCK))
                        .for_each(|(y, s)| kernels::value_and_slope(y, s));
                });
                let shape = y.layout().shape().clone();
                prep.finish(FlexTensor::from_data(TensorData::new(slope, shape)), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_gelu(x.into_primitive())),
        }
    }

    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SoftmaxBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = softmax(x.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(softmax(x.into_primitive())),
        }
    }

    fn fused_dropout(x: FloatTensor<Self>, seed: u64, keep: f64) -> FloatTensor<Self> {
        match DropoutBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let mut bits = Vec::new();
                let y = in_place(x.into_primitive(), |v| {
                    bits = apply_mask_keeping_bits(v, keep, scale(keep), seed);
                });
                prep.finish((bits, keep), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(masked(x.into_primitive(), seed, keep)),
        }
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = owned(x.primitive().clone());
                let gamma = owned(gamma.into_primitive());
                let (y, stats) = normalized(input.clone(), &gamma, beta.primitive(), epsilon);
                prep.finish((input, gamma, stats), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_layer_norm(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                epsilon,
            )),
        }
    }
}

/// Each row's mean and `1 / √(σ² + ε)`.
#[derive(Debug, Clone)]
struct RowStats {
    mean: Vec<f32>,
    rstd: Vec<f32>,
}

/// The LayerNorm of `x` over its last dimension, and the statistics of its rows; in place
/// when nothing else holds `x`.
fn normalized(
    x: FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, RowStats) {
    let mut x = owned(x);
    let d = row_len(&x);
    let n = len(&x);
    let rows = n.checked_div(d).unwrap_or(0);
    let mut stats = RowStats {
        mean: vec![0.0; rows],
        rstd: vec![0.0; rows],
    };
    if rows == 0 {
        return (x, stats);
    }
    let gamma = owned(gamma.clone());
    let beta = owned(beta.clone());
    let (gamma, beta) = (&gamma.storage::<f32>()[..d], &beta.storage::<f32>()[..d]);
    let eps = epsilon as f32;
    let per = rows_per_block(d);
    x.storage_mut::<f32>()[..n]
        .par_chunks_mut(per * d)
        .zip(stats.mean.par_chunks_mut(per))
        .zip(stats.rstd.par_chunks_mut(per))
        .for_each(|((block, mean), rstd)| {
            for ((row, m), r) in block.chunks_exact_mut(d).zip(mean).zip(rstd) {
                let mu = lane_sum(row, |v| v) / d as f32;
                let var = lane_sum(row, |v| (v - mu) * (v - mu)) / d as f32;
                let inv = 1.0 / (var + eps).sqrt();
                for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                    *v = (*v - mu) * inv * g + b;
                }
                (*m, *r) = (mu, inv);
            }
        });
    (x, stats)
}

/// Lanes of the row reductions: independent partial sums the compiler keeps in vector
/// registers.
const LANES: usize = 16;

/// `Σ f(v)` over `row`, in [`LANES`] partial sums.
#[inline]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += f(*v);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|v| f(*v)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `Σᵢ a[i] · b[i] · w(i)`, in [`LANES`] partial sums.
#[inline]
fn lane_dot(a: &[f32], b: &[f32], w: impl Fn(usize) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let full = a.len() / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for (l, lane) in lanes.iter_mut().enumerate() {
            let i = base + l;
            *lane += a[i] * b[i] * w(i);
        }
    }
    let tail: f32 = (full..a.len()).map(|i| a[i] * b[i] * w(i)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// The backward pass of LayerNorm; its state is the input, γ and the rows' statistics.
#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = (FlexTensor, FlexTensor, RowStats);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, gamma, stats) = ops.state;
        let d = row_len(&x);
        let n = len(&x);
        let mut grad = owned(grad);
        let (d_gamma, d_beta) = if d == 0 {
            (Vec::new(), Vec::new())
        } else {
            let per = rows_per_block(d);
            let gamma = &gamma.storage::<f32>()[..d];
            grad.storage_mut::<f32>()[..n]
                .par_chunks_mut(per * d)
                .zip(x.storage::<f32>()[..n].par_chunks(per * d))
                .zip(stats.mean.par_chunks(per))
                .zip(stats.rstd.par_chunks(per))
                .map(|(((dy, x), mean), rstd)| {
                    let (mut dg, mut db) = (vec![0.0f32; d], vec![0.0f32; d]);
                    for (((dy, x), mu), inv) in dy
                        .chunks_exact_mut(d)
                        .zip(x.chunks_exact(d))
                        .zip(mean)
                        .zip(rstd)
                    {
                        // ĝ = dy ⊙ γ; dx = (ĝ − mean ĝ − x̂ · mean(ĝ ⊙ x̂)) / σ.
                        for i in 0..d {
                            let xhat = (x[i] - mu) * inv;
                            db[i] += dy[i];
                            dg[i] += dy[i] * xhat;
                        }
                        let a = lane_dot(dy, gamma, |_| 1.0) / d as f32;
                        let b = lane_dot(dy, gamma, |i| (x[i] - mu) * inv) / d as f32;
                        for i in 0..d {
                            let xhat = (x[i] - mu) * inv;
                            dy[i] = inv * (dy[i] * gamma[i] - a - xhat * b);
                        }
                    }
                    (dg, db)
                })
                .reduce(
                    || (vec![0.0f32; d], vec![0.0f32; d]),
                    |(mut g1, mut b1), (g2, b2)| {
                        g1.iter_mut().zip(&g2).for_each(|(a, b)| *a += b);
                        b1.iter_mut().zip(&b2).for_each(|(a, b)| *a += b);
                        (g1, b1)
                    },
                )
        };
        let vector = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, [d]));
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, vector(d_gamma));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, vector(d_beta));
        }
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, grad);
        }
    }
}

/// The backward pass of dropout: the same mask, kept as one bit per element; its state is
/// the bits and the keep probability.
#[derive(Debug)]
struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    type State = (Vec<u64>, f64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (bits, keep) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            in_place(grad, |g| apply_bits(g, &bits, scale(keep)))
        });
    }
}

/// The factor of a kept element.
fn scale(keep: f64) -> f32 {
    (1.0 / keep) as f32
}

/// `x ⊙ m` with the dropout mask `m` of `seed` (`1 / keep` where kept), in place when
/// nothing else holds `x`.
fn masked(x: FlexTensor, seed: u64, keep: f64) -> FlexTensor {
    in_place(x, |v| apply_mask(v, keep, scale(keep), seed))
}

/// The backward pass of GELU; its state is GELU′(x).
#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let slope = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            in_place(grad, |g| {
                let n = g.len();
                g.par_chunks_mut(BLOCK)
                    .zip(slope.storage::<f32>()[..n].par_chunks(BLOCK))
                    .for_each(|(g, s)| kernels::mul(g, s))
            })
        });
    }
}

/// The backward pass of the softmax; its state is the softmax's output.
#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let y = ops.state;
        let row = row_len(&y);
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            in_place(grad, |g| {
                if row > 0 {
                    let (n, rows) = (g.len(), rows_per_block(row) * row);
                    g.par_chunks_mut(rows)
                        .zip(y.storage::<f32>()[..n].par_chunks(rows))
                        .for_each(|(g, y)| kernels::softmax_backward_rows(g, y, row));
                }
            })
        });
    }
}

/// The softmax over the last dimension, in place when nothing else holds `x`.
fn softmax(x: FlexTensor) -> FlexTensor {
    let row = row_len(&x);
    in_place(x, |v| {
        if row > 0 {
            let rows = rows_per_block(row) * row;
            v.par_chunks_mut(rows)
                .for_each(|block| kernels::softmax_rows(block, row));
        }
    })
}

/// `f` applied to the values of `x` (contiguous f32), in place when nothing else holds them
/// and on a copy otherwise.
fn in_place(x: FlexTensor, f: impl FnOnce(&mut [f32])) -> FlexTensor {
    let mut x = owned(x);
    let n = len(&x);
    f(&mut x.storage_mut::<f32>()[..n]);
    x
}

/// `x` contiguous from the start of its buffer (moved when it already is, copied otherwise);
/// its buffer is copied on write when something else holds it.
pub(super) fn owned(x: FlexTensor) -> FlexTensor {
    let n = len(&x);
    match x.layout().contiguous_offsets() {
        Some((0, end)) if end == n => x,
        _ => x.to_contiguous(),
    }
}

/// Elements of `x`.
pub(super) fn len(x: &FlexTensor) -> usize {
    x.layout().shape().num_elements()
}

/// Length of the last dimension (1 for a scalar).
fn row_len(x: &FlexTensor) -> usize {
    let shape = x.layout().shape();
    let dims = shape.num_dims();
    if dims == 0 { 1 } else { shape[dims - 1] }
}

/// Rows handed to one parallel task.
fn rows_per_block(row: usize) -> usize {
    (BLOCK / row).max(1)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, values};
    use super::*;
    use burn::module::Module;
    use burn::tensor::activation;
    use burn::tensor::{Device, Distribution};

    /// Values and gradients of both operations equal Burn's own within float error, for a
    /// weighted sum of the outputs (so every element's gradient differs), on a shape whose
    /// rows (37) do not fill the lanes of the row kernel and span several blocks.
    #[test]
    fn equal_burns_values_and_gradients() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let x = Tensor::<3>::random([5, 300, 37], Distribution::Normal(0.0, 2.0), &device);
        let w = Tensor::<3>::random([5, 300, 37], Distribution::Normal(0.0, 1.0), &device);
        type Op = fn(Tensor<3>) -> Tensor<3>;
        let cases: [(&str, Op, Op); 2] = [
            ("gelu", gelu, activation::gelu),
            ("softmax", softmax_last, |x| activation::softmax(x, 2)),
        ];
        for (name, ours, burns) in cases {
            let run = |op: Op| {
                let x = x.clone().detach().require_grad();
                let y = op(x.clone());
                let grads = (y.clone() * w.clone()).sum().backward();
                (values(y), x.grad(&grads).map(values).unwrap())
            };
            let (y, g) = run(ours);
            let (y_ref, g_ref) = run(burns);
            close(&y, &y_ref, 2e-6);
            close(&g, &g_ref, 2e-5);
            assert!(
                g.iter().any(|v| v.abs() > 1e-3),
                "{name}: the gradient is not trivial"
            );
        }
    }

    /// LayerNorm: values and the gradients of the input, γ and β equal Burn's module's
    /// (with γ and β away from their initial 1 and 0), also outside a graph.
    #[test]
    fn layer_norm_equals_burns_module() {
        use burn::module::Param;
        use burn::nn::LayerNormConfig;
        let device = Device::flex().autodiff();
        device.seed(9);
        let mut norm = LayerNormConfig::new(37).init(&device);
        norm.gamma = Param::from_tensor(Tensor::random(
            [37],
            Distribution::Normal(1.0, 0.5),
            &device,
        ));
        norm.beta = Some(Param::from_tensor(Tensor::random(
            [37],
            Distribution::Normal(0.0, 0.5),
            &device,
        )));
        let x = Tensor::<3>::random([5, 300, 37], Distribution::Normal(0.5, 2.0), &device);
        let w = Tensor::<3>::random([5, 300, 37], Distribution::Normal(0.0, 1.0), &device);
        let run = |ours: bool| {
            let x = x.clone().detach().require_grad();
            let y = if ours {
                layer_norm(&norm, x.clone())
            } else {
                norm.forward(x.clone())
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            let beta = norm.beta.as_ref().unwrap();
            (
                values(y),
                values(x.grad(&grads).unwrap()),
                values(norm.gamma.grad(&grads).unwrap()),
                values(beta.grad(&grads).unwrap()),
            )
        };
        let (ours, burns) = (run(true), run(false));
        close(&ours.0, &burns.0, 2e-5);
        close(&ours.1, &burns.1, 2e-4);
        close(&ours.2, &burns.2, 2e-4);
        close(&ours.3, &burns.3, 2e-4);
        let plain = norm.valid();
        let xp = x.inner();
        close(
            &values(layer_norm(&plain, xp.clone())),
            &values(plain.forward(xp)),
            2e-5,
        );
    }

    /// Outside a graph, and on a transposed (non-contiguous) input.
    #[test]
    fn plain_and_strided_inputs() {
        let device = Device::flex();
        let x = Tensor::<2>::random([33, 20], Distribution::Normal(0.0, 1.5), &device);
        let t = x.clone().transpose();
        close(
            &values(gelu(t.clone())),
            &values(activation::gelu(t.clone())),
            2e-6,
        );
        close(
            &values(softmax_last(t.clone())),
            &values(activation::softmax(t, 1)),
            2e-6,
        );
        // x itself is untouched by the in-place paths (it was shared).
        let before = values(x.clone());
        let _ = gelu(x.clone());
        assert_eq!(values(x), before);
    }

    /// The softmax's backward pass by hand: y = softmax([0, ln 2, ln 3]) = [1, 2, 3] / 6 and
    /// output gradient [1, 0, 0] give dx = y ⊙ (e₁ − y₁) = [5/36, −2/36, −3/36].
    #[test]
    fn softmax_gradient_by_hand() {
        let device = Device::flex().autodiff();
        let x = Tensor::<1>::from_floats([0.0, 2f32.ln(), 3f32.ln()], &device).require_grad();
        let y = softmax_last(x.clone());
        close(&values(y.clone()), &[1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0], 1e-6);
        let picked = y * Tensor::<1>::from_floats([1.0, 0.0, 0.0], &device);
        let grads = picked.sum().backward();
        let g = values(x.grad(&grads).unwrap());
        close(&g, &[5.0 / 36.0, -2.0 / 36.0, -3.0 / 36.0], 1e-6);
    }
}
