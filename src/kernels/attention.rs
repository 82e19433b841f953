//! The core of multi-head attention, `softmax(scale · Q·Kᵀ + bias) · V` for every (bag, head)
//! pair, as one operation of the flex backend with its own backward pass.
//!
//! Written with tensor operations, the core splits the key/value projection in two
//! (`narrow`, whose backward pass writes each half's gradient into a zero tensor of the full
//! size and adds the two), scales the strided query view on one thread, and merges the heads
//! back with a copy; each product's output is allocated by the backend with two writes.
//! Here the product kernel reads every head where it lies in the projections (strides
//! instead of copies) and writes each head's output where it belongs in `[bag, query,
//! heads · dim_head]`; the (bag, head) pairs run in parallel, each product on one thread:
//!
//! - forward: `S = scale · Q·Kᵀ` (+ the padding bias), the softmax of its rows, optionally
//!   dropout on those weights (the masks of [`dropout`](super::dropout), drawn over all the
//!   weights as one tensor, as the unfused path draws them), then `P·V`. Outside a graph no
//!   weights are kept: each pair works in a scratch buffer;
//! - backward, from the kept weights `P` (and the dropout bits): `dV = P̃ᵀ·dO`,
//!   `dP̃ = dO·Vᵀ`, the softmax's backward pass `dS = P ⊙ (dP − Σ dP ⊙ P)`, `dQ = scale · dS·K`
//!   and `dK = scale · dSᵀ·Q`, the key and value gradients written side by side into one
//!   gradient of the joint projection.
//!
//! Only f32 tensors on flex devices come here (the caller in
//! [`attention`](crate::model::attention) keeps the tensor path for other devices and for
//! returning the weights).

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::elementwise as kernels;
use super::fused::{len, owned};
use super::mask::apply_mask_keeping_bits;
use super::product::{View, product};

/// The attention core, implemented for flex and for autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait AttentionOps: Backend {
    /// `softmax(scale · Q·Kᵀ + bias) · V` per (bag, head), for `q` `[bags, queries, heads ·
    /// dim_head]` and `kv` `[bags, keys, 2 · heads · dim_head]` (keys first, then values, as
    /// the joint projection writes them); `bias` `[bags, keys]` is added to every query's
    /// scores (an empty tensor for none). With `keep < 1` the weights go through dropout
    /// with the mask drawn from `seed`. Returns `[bags, queries, heads · dim_head]`.
    #[allow(clippy::too_many_arguments)]
    fn fused_attention(
        q: FloatTensor<Self>,
        kv: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        heads: usize,
        scale: f64,
        seed: u64,
        keep: f64,
    ) -> FloatTensor<Self>;
}

/// Dropout on the attention weights: the keep probability and the mask's seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WeightDropout {
    /// Probability of keeping a weight.
    pub keep: f64,
    /// Seed of the mask.
    pub seed: u64,
}

/// The attention core of f32 tensors on a flex device: `q` `[bags, queries, heads ·
/// dim_head]`, `kv` `[bags, keys, 2 · heads · dim_head]`, `bias` `[bags, keys]`.
pub(crate) fn attention(
    q: Tensor<3>,
    kv: Tensor<3>,
    bias: Option<Tensor<2>>,
    heads: usize,
    scale: f64,
    dropout: Option<WeightDropout>,
) -> Tensor<3> {
    let bias = bias.unwrap_or_else(|| Tensor::<2>::empty([0, 0], &q.device()));
    let (seed, keep) = dropout.map_or((0, 1.0), |d| (d.seed, d.keep));
    Tensor::from_dispatch(<Dispatch as AttentionOps>::fused_attention(
        q.into_dispatch(),
        kv.into_dispatch(),
        bias.into_dispatch(),
        heads,
        scale,
        seed,
        keep,
    ))
}

impl AttentionOps for Flex {
    fn fused_attention(
        q: FlexTensor,
        kv: FlexTensor,
        bias: FlexTensor,
        heads: usize,
        scale: f64,
        seed: u64,
        keep: f64,
    ) -> FlexTensor {
        let core = Core::new(owned(q), owned(kv), bias, heads, scale as f32);
        core.forward(keep, seed, false).0
    }
}

impl<C: CheckpointStrategy> AttentionOps for Autodiff<Flex, C> {
    fn fused_attention(
        q: FloatTensor<Self>,
        kv: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        heads: usize,
        scale: f64,
        seed: u64,
        keep: f64,
    ) -> FloatTensor<Self> {
        match AttentionBackward
            .prepare::<C>([q.node(), kv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let core = Core::new(
                    owned(q.into_primitive()),
                    owned(kv.into_primitive()),
                    bias.into_primitive(),
                    heads,
                    scale as f32,
                );
                let (out, kept) = core.forward(keep, seed, true);
                let kept = kept.expect("weights are kept when asked");
                prep.finish((core, kept), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_attention(
                q.into_primitive(),
                kv.into_primitive(),
                bias.into_primitive(),
                heads,
                scale,
                seed,
                keep,
            )),
        }
    }
}

/// A raw pointer handed to parallel tasks that write disjoint parts of its buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);

impl Shared {
    /// The pointer (a method, so that closures capture the whole `Shared`).
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: every task writes only the elements of its own (bag, head) pair.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// The inputs of the core and their sizes.
#[derive(Debug, Clone)]
struct Core {
    /// `[bags, queries, inner]`, contiguous.
    q: FlexTensor,
    /// `[bags, keys, 2 · inner]`, contiguous.
    kv: FlexTensor,
    /// `[bags, keys]` contiguous, or none.
    bias: Option<FlexTensor>,
    bags: usize,
    queries: usize,
    keys: usize,
    heads: usize,
    dim_head: usize,
    scale: f32,
}

/// What the backward pass needs besides the inputs: the weights after the softmax (before
/// dropout), `[bags, heads, queries, keys]`, and the dropout mask as bits (empty without
/// dropout) with its keep probability.
#[derive(Debug, Clone)]
struct Kept {
    weights: Vec<f32>,
    bits: Vec<u64>,
    keep: f64,
}

impl Core {
    fn new(q: FlexTensor, kv: FlexTensor, bias: FlexTensor, heads: usize, scale: f32) -> Self {
        let qs = q.layout().shape();
        let (bags, queries, inner) = (qs[0], qs[1], qs[2]);
        let keys = kv.layout().shape()[1];
        let bias = (len(&bias) > 0).then(|| owned(bias));
        Self {
            q,
            kv,
            bias,
            bags,
            queries,
            keys,
            heads,
            dim_head: inner / heads.max(1),
            scale,
        }
    }

    fn inner(&self) -> usize {
        self.heads * self.dim_head
    }

    fn pairs(&self) -> usize {
        self.bags * self.heads
    }

    /// Pair `p`'s offsets: in the queries' layout `[bags, queries, inner]` (shared by the
    /// queries, the output and their gradients) and of its keys in `[bags, keys, 2 · inner]`
    /// (its values follow `inner` later).
    fn offsets(&self, p: usize) -> (usize, usize) {
        let (b, h) = (p / self.heads, p % self.heads);
        let inner = self.inner();
        (
            b * self.queries * inner + h * self.dim_head,
            b * self.keys * 2 * inner + h * self.dim_head,
        )
    }

    /// Pair `p`'s queries, keys and values, where they lie in `q` and `kv`.
    fn operands(&self, p: usize) -> (View, View, View) {
        let (q, k) = self.offsets(p);
        let inner = self.inner();
        (
            View::rows(&self.q, q, inner),
            View::rows(&self.kv, k, 2 * inner),
            View::rows(&self.kv, k + inner, 2 * inner),
        )
    }

    /// Pair `p`'s scores `scale · Q·Kᵀ + bias`, softmaxed by rows, into `s` (`queries ×
    /// keys`).
    fn weights_into(&self, p: usize, s: &mut [f32]) {
        let (q, k, _) = self.operands(p);
        let (nq, nk) = (self.queries, self.keys);
        // SAFETY: q and kv are contiguous with the shapes of `new`; `s` holds nq × nk.
        unsafe {
            product(
                nq,
                nk,
                self.dim_head,
                s.as_mut_ptr(),
                nk,
                false,
                q,
                k.t(),
                self.scale,
                false,
            )
        };
        if let Some(bias) = &self.bias {
            let b = p / self.heads;
            let row = &bias.storage::<f32>()[b * nk..(b + 1) * nk];
            for scores in s.chunks_exact_mut(nk) {
                scores.iter_mut().zip(row).for_each(|(s, b)| *s += b);
            }
        }
        kernels::softmax_rows(s, nk);
    }

    /// Pair `p`'s output `P·V` from its weights `w`, into `out` (`[bags, queries, inner]`).
    fn output_into(&self, p: usize, w: &[f32], out: Shared) {
        let (_, _, v) = self.operands(p);
        let (offset, _) = self.offsets(p);
        let weights = View::rows_at(w.as_ptr(), self.keys);
        // SAFETY: `w` holds queries × keys; the output block of pair p (its bag's rows, its
        // head's columns) is written by this task alone.
        unsafe {
            product(
                self.queries,
                self.dim_head,
                self.keys,
                out.get().add(offset),
                self.inner(),
                false,
                weights,
                v,
                1.0,
                false,
            )
        };
    }

    /// The output `[bags, queries, inner]`, and with `keep_weights` (or dropout) the
    /// weights and mask for the backward pass.
    fn forward(&self, keep: f64, seed: u64, keep_weights: bool) -> (FlexTensor, Option<Kept>) {
        let (pairs, block) = (self.pairs(), self.queries * self.keys);
        let mut out = vec![0.0f32; self.bags * self.queries * self.inner()];
        let dst = Shared(out.as_mut_ptr());
        let kept = if keep_weights || keep < 1.0 {
            let mut weights = vec![0.0f32; pairs * block];
            if block > 0 {
                weights
                    .par_chunks_mut(block)
                    .enumerate()
                    .for_each(|(p, s)| self.weights_into(p, s));
            }
            let (dropped, bits) = if keep < 1.0 {
                let mut dropped = weights.clone();
                let bits = apply_mask_keeping_bits(&mut dropped, keep, (1.0 / keep) as f32, seed);
                (Some(dropped), bits)
            } else {
                (None, Vec::new())
            };
            let used = dropped.as_deref().unwrap_or(&weights);
            if block > 0 {
                used.par_chunks(block)
                    .enumerate()
                    .for_each(|(p, w)| self.output_into(p, w, dst));
            }
            Some(Kept {
                weights,
                bits,
                keep,
            })
        } else {
            (0..pairs).into_par_iter().for_each_init(
                || vec![0.0f32; block],
                |s, p| {
                    self.weights_into(p, s);
                    self.output_into(p, s, dst);
                },
            );
            None
        };
        let shape = [self.bags, self.queries, self.inner()];
        (FlexTensor::from_data(TensorData::new(out, shape)), kept)
    }
}

/// The backward pass of the attention core; its state is the core's inputs and the kept
/// weights.
#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 2> for AttentionBackward {
    type State = (Core, Kept);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_kv] = ops.parents;
        let grad = owned(grads.consume::<Flex>(&ops.node));
        let (core, kept) = ops.state;
        let (nq, nk, d, inner) = (core.queries, core.keys, core.dim_head, core.inner());
        let block = nq * nk;
        let mut dq = vec![0.0f32; core.bags * nq * inner];
        let mut dkv = vec![0.0f32; core.bags * nk * 2 * inner];
        let (dq_ptr, dkv_ptr) = (Shared(dq.as_mut_ptr()), Shared(dkv.as_mut_ptr()));
        let dropout = !kept.bits.is_empty();
        let factor = (1.0 / kept.keep) as f32;
        if block > 0 {
            kept.weights.par_chunks(block).enumerate().for_each_init(
                || {
                    (
                        vec![0.0f32; if dropout { block } else { 0 }],
                        vec![0.0f32; block],
                    )
                },
                |(dropped, ds), (p, w)| {
                    let (q, k, v) = core.operands(p);
                    let (q_offset, k_offset) = core.offsets(p);
                    // dO of pair p: its bag's rows, its head's columns of the gradient.
                    let d_out = View::rows(&grad, q_offset, inner);
                    let mask = |i: usize| {
                        let bit = p * block + i;
                        kept.bits[bit / 64] >> (bit % 64) & 1 == 1
                    };
                    // The weights as used: after dropout.
                    let used: &[f32] = if dropout {
                        for (i, (u, w)) in dropped.iter_mut().zip(w).enumerate() {
                            *u = if mask(i) { w * factor } else { 0.0 };
                        }
                        dropped
                    } else {
                        w
                    };
                    let used = View::rows_at(used.as_ptr(), nk);
                    // SAFETY (every product below): the operands address live matrices
                    // of the stated sizes in q, kv, the gradient and this task's
                    // scratch; the destinations are pair p's own blocks of dq and dkv
                    // (its bag's rows, its head's columns) and this task's scratch.
                    unsafe {
                        // dV = P̃ᵀ · dO: [keys, queries] · [queries, d].
                        let dv = dkv_ptr.get().add(k_offset + inner);
                        product(nk, d, nq, dv, 2 * inner, false, used.t(), d_out, 1.0, false);
                        // dP̃ = dO · Vᵀ: [queries, d] · [d, keys].
                        let dp = ds.as_mut_ptr();
                        product(nq, nk, d, dp, nk, false, d_out, v.t(), 1.0, false);
                    }
                    if dropout {
                        for (i, g) in ds.iter_mut().enumerate() {
                            *g = if mask(i) { *g * factor } else { 0.0 };
                        }
                    }
                    // dS = P ⊙ (dP − Σ dP ⊙ P), row by row.
                    kernels::softmax_backward_rows(ds, w, nk);
                    let d_scores = View::rows_at(ds.as_ptr(), nk);
                    // SAFETY: as above.
                    unsafe {
                        // dQ = scale · dS · K: [queries, keys] · [keys, d].
                        let dq = dq_ptr.get().add(q_offset);
                        product(nq, d, nk, dq, inner, false, d_scores, k, core.scale, false);
                        // dK = scale · dSᵀ · Q: [keys, queries] · [queries, d].
                        let dk = dkv_ptr.get().add(k_offset);
                        product(
                            nk,
                            d,
                            nq,
                            dk,
                            2 * inner,
                            false,
                            d_scores.t(),
                            q,
                            core.scale,
                            false,
                        );
                    }
                },
            );
        }
        if let Some(node) = node_q {
            let shape = [core.bags, nq, inner];
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dq, shape)));
        }
        if let Some(node) = node_kv {
            let shape = [core.bags, nk, 2 * inner];
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dkv, shape)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::values;
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// The core with tensor operations: heads split, scaled scores, softmax, weighted sum,
    /// heads merged.
    fn reference(
        q: Tensor<3>,
        kv: Tensor<3>,
        bias: Option<Tensor<2>>,
        heads: usize,
        scale: f64,
        dropout: Option<WeightDropout>,
    ) -> Tensor<3> {
        let [b, nq, inner] = q.dims();
        let nk = kv.dims()[1];
        let d = inner / heads;
        let split = |t: Tensor<3>, n: usize| t.reshape([b, n, heads, d]).swap_dims(1, 2);
        let k = split(kv.clone().narrow(2, 0, inner), nk);
        let v = split(kv.narrow(2, inner, inner), nk);
        let mut s = split(q, nq).matmul(k.swap_dims(2, 3)).mul_scalar(scale);
        if let Some(bias) = bias {
            s = s + bias.reshape([b, 1, 1, nk]);
        }
        let mut p = burn::tensor::activation::softmax(s, 3);
        if let Some(d) = dropout {
            p = crate::kernels::fused::dropout(p, d.seed, d.keep);
        }
        p.matmul(v).swap_dims(1, 2).reshape([b, nq, inner])
    }

    /// Values and the gradients of `q` and `kv` equal those of tensor operations (Burn's
    /// softmax and products, the fused dropout with the same seed), with a padding bias
    /// (keys padded in each bag), with and without dropout on the weights.
    #[test]
    fn equals_tensor_operations_with_gradients() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let (b, nq, nk, heads, d) = (2, 3, 5, 2, 4);
        let q = Tensor::<3>::random([b, nq, heads * d], Distribution::Normal(0.0, 1.0), &device);
        let kv = Tensor::<3>::random(
            [b, nk, 2 * heads * d],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let w = Tensor::<3>::random([b, nq, heads * d], Distribution::Normal(0.0, 1.0), &device);
        let bias = Some(Tensor::<2>::from_data(
            TensorData::new(
                vec![0.0f32, 0.0, 0.0, -1e30, -1e30, 0.0, -1e30, 0.0, 0.0, 0.0],
                [2, 5],
            ),
            &device,
        ));
        for drop in [
            None,
            Some(WeightDropout {
                keep: 0.6,
                seed: 77,
            }),
        ] {
            let run = |fused: bool| {
                let (q, kv) = (q.clone().require_grad(), kv.clone().require_grad());
                let out = if fused {
                    attention(q.clone(), kv.clone(), bias.clone(), heads, 0.5, drop)
                } else {
                    reference(q.clone(), kv.clone(), bias.clone(), heads, 0.5, drop)
                };
                let grads = (out.clone() * w.clone()).sum().backward();
                [
                    values(out),
                    values(q.grad(&grads).unwrap()),
                    values(kv.grad(&grads).unwrap()),
                ]
            };
            let (a, r) = (run(true), run(false));
            for (i, (a, r)) in a.iter().zip(&r).enumerate() {
                for (j, (x, y)) in a.iter().zip(r).enumerate() {
                    assert!(
                        (x - y).abs() < 1e-5,
                        "{drop:?}, value {i}, element {j}: {x} vs {y}"
                    );
                }
                assert!(
                    a.iter().any(|v| v.abs() > 1e-3),
                    "{drop:?}, value {i}: trivial"
                );
            }
        }
    }
}
