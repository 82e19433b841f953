//! The core of multi-head attention, `softmax(scale · Q·Kᵀ + bias) · V` for every (bag, head)
//! pair, as one operation of the flex backend with its own backward pass.
//!
//! Written with tensor operations, the core splits the key/value projection in two
//! (`narrow`, whose backward pass writes each half's gradient into a zero tensor of the full
//! size and adds the two), scales the strided query view on one thread, and merges the heads
//! back with a copy; each product's output is allocated by the backend with two writes.
//! Here the product kernel reads every head where it lies in the projections (strides
//! instead of copies) and writes each head's output where it belongs in `[bag, query,
//! heads · dim_head]`:
//!
//! - forward, for a block of query rows of one pair against all its keys: `S = scale ·
//!   Q·Kᵀ` (+ the padding bias), the softmax of its rows, optionally dropout on those
//!   weights (the masks of [`dropout`](super::dropout), drawn as if over all the weights as
//!   one tensor, as the unfused path draws them), then `P·V`;
//! - backward, block by block from the weights `P` (and the dropout mask): `dV += P̃ᵀ·dO`,
//!   `dP̃ = dO·Vᵀ`, the softmax's backward pass `dS = P ⊙ (dP − Σ dP ⊙ P)`, `dQ = scale ·
//!   dS·K` and `dK += scale · dSᵀ·Q`, the key and value gradients written side by side into
//!   one gradient of the joint projection.
//!
//! What the backward pass gets its weights from depends on their size (`docs/attention.md`):
//! when all pairs' weights together hold at most [`KEEP_WEIGHTS`] elements, the forward
//! pass keeps them (one block per pair); above, it keeps nothing but its inputs, and the
//! backward pass recomputes the scores and their softmax in blocks of query rows, each
//! `rows × keys` with at most [`BLOCK_SCORES`] elements. A block spans every key, so each
//! row's softmax and the sum `Σ dP ⊙ P` of its backward pass are complete within the block:
//! no running maximum or log-sum-exp is needed, and the recomputed weights equal the
//! forward's bit for bit. The dropout mask is never kept: each block draws its part again
//! ([`mask_values`]). Peak memory is then `O(bags · queries · heads · dim_head)` plus a few
//! blocks per thread, never `queries × keys` per pair.
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
use super::mask::mask_values;
use super::product::{View, product};

#[cfg(target_arch = "x86_64")]
mod tiled;
#[cfg(target_arch = "x86_64")]
mod tiles;

/// Most weights, over all (bag, head) pairs, that the forward pass keeps for the backward
/// pass (4 Mi elements, 16 MB of `f32`); above, the backward pass recomputes them in
/// blocks. Below it, keeping them saves the backward pass one product and a softmax.
pub(crate) const KEEP_WEIGHTS: usize = 1 << 22;

/// Most scores of one block of query rows (1 Mi elements, 4 MB of `f32`): 372 rows at
/// 2,815 keys, 52 at 20,001. Long blocks keep the products efficient (each block packs its
/// keys again); 2^16 made the forward pass at 2,814 genes half again as slow.
pub(crate) const BLOCK_SCORES: usize = 1 << 20;

/// Most scores of one block of the tiled path (AVX-512, `tiled.rs`; 128 Ki elements, 512 KB):
/// its keys are packed once per pair, not per block, so its blocks can be short enough for
/// a block's weights and their gradient to stay in a core's cache. Never fewer than
/// [`TILED_MIN_ROWS`] rows (a block's rows are the inner dimension of `dK` and `dV`).
const TILED_BLOCK_SCORES: usize = 1 << 17;
/// Fewest query rows of a block of the tiled path (unless [`Blocking`] asks for fewer).
const TILED_MIN_ROWS: usize = 24;
/// The attention core, implemented for flex and for autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait AttentionOps: Backend {
    /// `softmax(scale · Q·Kᵀ + bias) · V` per (bag, head), for `q` `[bags, queries, heads ·
    /// dim_head]` and `kv` `[bags, keys, 2 · heads · dim_head]` (keys first, then values, as
    /// the joint projection writes them); `bias` `[bags, keys]` is added to every query's
    /// scores (an empty tensor for none). With `keep < 1` the weights go through dropout
    /// with the mask drawn from `seed`. In a graph, at most `keep_limit` weights are kept
    /// for the backward pass (else none, and it recomputes them); blocks of query rows hold
    /// at most `block_scores` scores. Returns `[bags, queries, heads · dim_head]`.
    #[allow(clippy::too_many_arguments)]
    fn fused_attention(
        q: FloatTensor<Self>,
        kv: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        heads: usize,
        scale: f64,
        seed: u64,
        keep: f64,
        keep_limit: usize,
        block_scores: usize,
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

/// How the core blocks its work: the most weights kept for the backward pass, and the most
/// scores in one block of query rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocking {
    /// Most weights, over all pairs, kept in a graph ([`KEEP_WEIGHTS`]).
    pub keep_limit: usize,
    /// Most scores in one block of query rows ([`BLOCK_SCORES`]).
    pub block_scores: usize,
}

impl Default for Blocking {
    fn default() -> Self {
        Self {
            keep_limit: KEEP_WEIGHTS,
            block_scores: BLOCK_SCORES,
        }
    }
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
    attention_blocked(q, kv, bias, heads, scale, dropout, Blocking::default())
}

/// [`attention`] with the given [`Blocking`].
pub(crate) fn attention_blocked(
    q: Tensor<3>,
    kv: Tensor<3>,
    bias: Option<Tensor<2>>,
    heads: usize,
    scale: f64,
    dropout: Option<WeightDropout>,
    blocking: Blocking,
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
        blocking.keep_limit,
        blocking.block_scores,
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
        _keep_limit: usize,
        block_scores: usize,
    ) -> FlexTensor {
        let drop = Dropping { keep, seed };
        let core = Core::new(owned(q), owned(kv), bias, heads, scale as f32, block_scores);
        if core.tiled() {
            core.forward_tiled(drop, false).0
        } else {
            core.forward_in_blocks(drop)
        }
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
        keep_limit: usize,
        block_scores: usize,
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
                    block_scores,
                );
                let drop = Dropping { keep, seed };
                let mut kept = Kept {
                    weights: None,
                    stats: None,
                    drop,
                };
                let out = if core.pairs() * core.queries * core.keys <= keep_limit {
                    let (out, weights) = core.forward_keeping_weights(drop);
                    kept.weights = Some(weights);
                    out
                } else if core.tiled() {
                    let (out, stats) = core.forward_tiled(drop, true);
                    kept.stats = stats;
                    out
                } else {
                    core.forward_in_blocks(drop)
                };
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
                keep_limit,
                block_scores,
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

// SAFETY: every task writes only the elements of its own (bag, head) pair, or of its own
// rows of it.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// Dropout on the weights: keep probability (1 for none) and seed of the mask.
#[derive(Debug, Clone, Copy)]
struct Dropping {
    keep: f64,
    seed: u64,
}

impl Dropping {
    fn active(self) -> bool {
        self.keep < 1.0
    }

    /// The mask's values (`1 / keep` or 0) for `out.len()` weights from element `start` of
    /// all the weights `[pairs, queries, keys]`.
    fn mask_into(self, out: &mut [f32], start: usize) {
        mask_values(out, self.keep, (1.0 / self.keep) as f32, self.seed, start);
    }
}

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
    /// Query rows per block of the recomputing path.
    rows: usize,
}

/// What the backward pass needs besides the inputs: the weights after the softmax (before
/// dropout), `[bags, heads, queries, keys]`, when the forward pass kept them, or else the
/// softmax statistics of every row (`[bags, heads, queries, 2]`) when it took the tiled
/// path, and the dropout (whose mask each block draws again).
#[derive(Debug, Clone)]
struct Kept {
    weights: Option<Vec<f32>>,
    stats: Option<Vec<f32>>,
    drop: Dropping,
}

/// One block of query rows of one (bag, head) pair.
#[derive(Debug, Clone, Copy)]
struct Rows {
    /// The pair.
    pair: usize,
    /// The first query row.
    first: usize,
    /// Rows in the block.
    len: usize,
}

impl Core {
    fn new(
        q: FlexTensor,
        kv: FlexTensor,
        bias: FlexTensor,
        heads: usize,
        scale: f32,
        block_scores: usize,
    ) -> Self {
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
            rows: (block_scores / keys.max(1)).clamp(1, queries.max(1)),
        }
    }

    fn inner(&self) -> usize {
        self.heads * self.dim_head
    }

    fn pairs(&self) -> usize {
        self.bags * self.heads
    }

    /// Blocks of query rows per pair.
    fn blocks(&self) -> usize {
        self.queries.div_ceil(self.rows)
    }

    /// Block `b` of pair `p`.
    fn block(&self, p: usize, b: usize) -> Rows {
        let first = b * self.rows;
        Rows {
            pair: p,
            first,
            len: self.rows.min(self.queries - first),
        }
    }

    /// The whole of pair `p`, as one block.
    fn whole(&self, p: usize) -> Rows {
        Rows {
            pair: p,
            first: 0,
            len: self.queries,
        }
    }

    /// Element of the block's first weight in all the weights `[pairs, queries, keys]`.
    fn weight_start(&self, r: Rows) -> usize {
        (r.pair * self.queries + r.first) * self.keys
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

    /// Offset of the block's first row in the queries' layout.
    fn row_offset(&self, r: Rows) -> usize {
        self.offsets(r.pair).0 + r.first * self.inner()
    }

    /// The block's queries and its pair's keys and values, where they lie in `q` and `kv`.
    fn operands(&self, r: Rows) -> (View, View, View) {
        let (_, k) = self.offsets(r.pair);
        let inner = self.inner();
        (
            View::rows(&self.q, self.row_offset(r), inner),
            View::rows(&self.kv, k, 2 * inner),
            View::rows(&self.kv, k + inner, 2 * inner),
        )
    }

    /// The block's scores `scale · Q·Kᵀ + bias`, softmaxed by rows, into `s` (`r.len ×
    /// keys`).
    fn weights_into(&self, r: Rows, s: &mut [f32]) {
        let (q, k, _) = self.operands(r);
        let nk = self.keys;
        // SAFETY: q and kv are contiguous with the shapes of `new`; `s` holds r.len × nk.
        unsafe {
            product(
                r.len,
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
            let b = r.pair / self.heads;
            let row = &bias.storage::<f32>()[b * nk..(b + 1) * nk];
            for scores in s.chunks_exact_mut(nk) {
                scores.iter_mut().zip(row).for_each(|(s, b)| *s += b);
            }
        }
        kernels::softmax_rows(s, nk);
    }

    /// The block's output `P̃·V` from its weights `w` (after dropout), into `out` (`[bags,
    /// queries, inner]`).
    fn output_into(&self, r: Rows, w: &[f32], out: Shared) {
        let (_, _, v) = self.operands(r);
        let weights = View::rows_at(w.as_ptr(), self.keys);
        // SAFETY: `w` holds r.len × keys; the output block of these rows (its bag's rows,
        // its head's columns) is written by this task alone.
        unsafe {
            product(
                r.len,
                self.dim_head,
                self.keys,
                out.get().add(self.row_offset(r)),
                self.inner(),
                false,
                weights,
                v,
                1.0,
                false,
            )
        };
    }

    /// The output `[bags, queries, inner]` from a buffer.
    fn output_tensor(&self, out: Vec<f32>) -> FlexTensor {
        let shape = [self.bags, self.queries, self.inner()];
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    /// The output, block by block of query rows (in parallel), keeping nothing.
    fn forward_in_blocks(&self, drop: Dropping) -> FlexTensor {
        let mut out = vec![0.0f32; self.bags * self.queries * self.inner()];
        let dst = Shared(out.as_mut_ptr());
        if self.queries * self.keys > 0 {
            let blocks = self.blocks();
            let size = self.rows * self.keys;
            (0..self.pairs() * blocks).into_par_iter().for_each_init(
                || {
                    (
                        vec![0.0f32; size],
                        vec![0.0f32; if drop.active() { size } else { 0 }],
                    )
                },
                |(s, mask), t| {
                    let r = self.block(t / blocks, t % blocks);
                    let (s, mask) = (&mut s[..r.len * self.keys], &mut mask[..]);
                    self.weights_into(r, s);
                    if drop.active() {
                        let mask = &mut mask[..s.len()];
                        drop.mask_into(mask, self.weight_start(r));
                        kernels::mul(s, mask);
                    }
                    self.output_into(r, s, dst);
                },
            );
        }
        self.output_tensor(out)
    }

    /// The output, and the weights of every pair (before dropout) for the backward pass.
    fn forward_keeping_weights(&self, drop: Dropping) -> (FlexTensor, Vec<f32>) {
        let block = self.queries * self.keys;
        let mut out = vec![0.0f32; self.bags * self.queries * self.inner()];
        let dst = Shared(out.as_mut_ptr());
        let mut weights = vec![0.0f32; self.pairs() * block];
        if block > 0 {
            weights.par_chunks_mut(block).enumerate().for_each_init(
                || vec![0.0f32; if drop.active() { 2 * block } else { 0 }],
                |scratch, (p, w)| {
                    let r = self.whole(p);
                    self.weights_into(r, w);
                    if drop.active() {
                        let (dropped, mask) = scratch.split_at_mut(block);
                        drop.mask_into(mask, self.weight_start(r));
                        dropped.copy_from_slice(w);
                        kernels::mul(dropped, mask);
                        self.output_into(r, dropped, dst);
                    } else {
                        self.output_into(r, w, dst);
                    }
                },
            );
        }
        (self.output_tensor(out), weights)
    }
}

/// Scratch buffers of one task of the backward pass, each of one block's weights.
struct Scratch {
    /// The weights as used: after dropout.
    used: Vec<f32>,
    /// The weights' gradient, then the scores'.
    grad: Vec<f32>,
    /// The dropout mask.
    mask: Vec<f32>,
}

impl Scratch {
    fn new(size: usize, drop: Dropping) -> Self {
        let dropped = if drop.active() { size } else { 0 };
        Self {
            used: vec![0.0f32; dropped],
            grad: vec![0.0f32; size],
            mask: vec![0.0f32; dropped],
        }
    }
}

/// Where the backward pass writes: the gradients of `q` and of `kv`, and the output's
/// gradient it reads.
struct Grads<'a> {
    d_out: &'a FlexTensor,
    dq: Shared,
    dkv: Shared,
}

impl Core {
    /// The backward pass of one block of query rows with weights `w` (before dropout):
    /// writes the block's rows of `dQ` and adds its share to its pair's `dK` and `dV`.
    fn backward_rows(&self, r: Rows, w: &[f32], drop: Dropping, s: &mut Scratch, g: &Grads<'_>) {
        let (nr, nk, d, inner) = (r.len, self.keys, self.dim_head, self.inner());
        let (q, k, v) = self.operands(r);
        let (_, k_offset) = self.offsets(r.pair);
        let row = self.row_offset(r);
        // dO of these rows: their bag's rows, their head's columns of the gradient.
        let d_out = View::rows(g.d_out, row, inner);
        let used: &[f32] = if drop.active() {
            let (used, mask) = (&mut s.used[..w.len()], &mut s.mask[..w.len()]);
            drop.mask_into(mask, self.weight_start(r));
            used.copy_from_slice(w);
            kernels::mul(used, mask);
            used
        } else {
            w
        };
        let used = View::rows_at(used.as_ptr(), nk);
        let ds = &mut s.grad[..w.len()];
        // SAFETY (every product below): the operands address live matrices of the stated
        // sizes in q, kv, the gradient and this task's scratch; the destinations are these
        // rows of dq and this pair's block of dkv (its bag's rows, its head's columns),
        // written by this task alone, and this task's scratch.
        unsafe {
            // dV += P̃ᵀ · dO: [keys, rows] · [rows, d].
            let dv = g.dkv.get().add(k_offset + inner);
            product(nk, d, nr, dv, 2 * inner, true, used.t(), d_out, 1.0, false);
            // dP̃ = dO · Vᵀ: [rows, d] · [d, keys].
            product(
                nr,
                nk,
                d,
                ds.as_mut_ptr(),
                nk,
                false,
                d_out,
                v.t(),
                1.0,
                false,
            );
        }
        if drop.active() {
            kernels::mul(ds, &s.mask[..w.len()]);
        }
        // dS = P ⊙ (dP − Σ dP ⊙ P), row by row: each row spans all keys.
        kernels::softmax_backward_rows(ds, w, nk);
        let d_scores = View::rows_at(ds.as_ptr(), nk);
        // SAFETY: as above.
        unsafe {
            // dQ = scale · dS · K: [rows, keys] · [keys, d].
            let dq = g.dq.get().add(row);
            product(nr, d, nk, dq, inner, false, d_scores, k, self.scale, false);
            // dK += scale · dSᵀ · Q: [keys, rows] · [rows, d].
            let dk = g.dkv.get().add(k_offset);
            let scale = self.scale;
            product(
                nk,
                d,
                nr,
                dk,
                2 * inner,
                true,
                d_scores.t(),
                q,
                scale,
                false,
            );
        }
    }
}

impl Core {
    /// The backward pass on the general path: from the kept weights, pair by pair, or
    /// recomputing them block by block. Writes `dq` and adds into `dkv` (zero on entry).
    fn backward_general(&self, kept: &Kept, d_out: &FlexTensor, dq: &mut [f32], dkv: &mut [f32]) {
        let g = Grads {
            d_out,
            dq: Shared(dq.as_mut_ptr()),
            dkv: Shared(dkv.as_mut_ptr()),
        };
        let (drop, nk) = (kept.drop, self.keys);
        let block = self.queries * nk;
        match &kept.weights {
            Some(weights) => weights.par_chunks(block).enumerate().for_each_init(
                || Scratch::new(block, drop),
                |s, (p, w)| self.backward_rows(self.whole(p), w, drop, s, &g),
            ),
            // Pairs in parallel, each pair's blocks in turn (they add to its dK, dV).
            None => (0..self.pairs()).into_par_iter().for_each_init(
                || {
                    let size = self.rows * nk;
                    (vec![0.0f32; size], Scratch::new(size, drop))
                },
                |(w, s), p| {
                    for b in 0..self.blocks() {
                        let r = self.block(p, b);
                        let w = &mut w[..r.len * nk];
                        self.weights_into(r, w);
                        self.backward_rows(r, w, drop, s, &g);
                    }
                },
            ),
        }
    }

    /// Whether the tiled path (`attention/tiled.rs`: AVX-512, `dim_head` a multiple of 16
    /// up to 64, f32 products) computes this core's recomputing path.
    fn tiled(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.queries * self.keys > 0
                && !crate::runtime::Precision::current().is_bf16()
                && tiled::applies(self.dim_head)
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Query rows per block of the tiled path: about [`TILED_BLOCK_SCORES`] scores, at least
    /// [`TILED_MIN_ROWS`], at most the general path's.
    fn tiled_rows(&self) -> usize {
        let rows = (TILED_BLOCK_SCORES / self.keys.max(1)).max(TILED_MIN_ROWS);
        rows.min(self.rows)
    }

    /// The core as the tiled path reads it.
    #[cfg(target_arch = "x86_64")]
    fn tiled_pairs(&self, drop: Dropping) -> tiled::Pairs<'_> {
        tiled::Pairs {
            q: self.q.storage::<f32>(),
            kv: self.kv.storage::<f32>(),
            bias: self.bias.as_ref().map(|b| b.storage::<f32>()),
            bags: self.bags,
            queries: self.queries,
            keys: self.keys,
            heads: self.heads,
            d: self.dim_head,
            scale: self.scale,
            rows: self.tiled_rows(),
            drop: drop.active().then_some((drop.keep, drop.seed)),
        }
    }

    /// The output on the tiled path, and with `keep_stats` every row's softmax statistics.
    #[cfg(target_arch = "x86_64")]
    fn forward_tiled(&self, drop: Dropping, keep_stats: bool) -> (FlexTensor, Option<Vec<f32>>) {
        let mut out = vec![0.0f32; self.bags * self.queries * self.inner()];
        let mut stats = keep_stats.then(|| vec![0.0f32; 2 * self.pairs() * self.queries]);
        tiled::forward(&self.tiled_pairs(drop), &mut out, stats.as_deref_mut());
        (self.output_tensor(out), stats)
    }

    /// Elsewhere the tiled path does not run ([`tiled`](Self::tiled)): the general one.
    #[cfg(not(target_arch = "x86_64"))]
    fn forward_tiled(&self, drop: Dropping, _keep_stats: bool) -> (FlexTensor, Option<Vec<f32>>) {
        (self.forward_in_blocks(drop), None)
    }

    /// The backward pass on the tiled path, from the forward pass's statistics: writes `dq`
    /// and adds into `dkv` (zero on entry).
    fn backward_tiled(
        &self,
        stats: &[f32],
        drop: Dropping,
        d_out: &FlexTensor,
        dq: &mut [f32],
        dkv: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            let grads = tiled::Grads { dq, dkv };
            tiled::backward(
                &self.tiled_pairs(drop),
                stats,
                d_out.storage::<f32>(),
                grads,
            );
        }
        // Elsewhere no forward pass kept statistics (`tiled` is false): the general path.
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = stats;
            let kept = Kept {
                weights: None,
                stats: None,
                drop,
            };
            self.backward_general(&kept, d_out, dq, dkv);
        }
    }
}

/// The backward pass of the attention core; its state is the core's inputs and what the
/// forward pass kept.
#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 2> for AttentionBackward {
    type State = (Core, Kept);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_kv] = ops.parents;
        let d_out = owned(grads.consume::<Flex>(&ops.node));
        let (core, kept) = ops.state;
        let (nq, nk, inner) = (core.queries, core.keys, core.inner());
        let mut dq = vec![0.0f32; core.bags * nq * inner];
        let mut dkv = vec![0.0f32; core.bags * nk * 2 * inner];
        if nq * nk > 0 {
            match &kept.stats {
                Some(stats) => core.backward_tiled(stats, kept.drop, &d_out, &mut dq, &mut dkv),
                None => core.backward_general(&kept, &d_out, &mut dq, &mut dkv),
            }
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
    use super::super::testing::{close_named, values};
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

    /// Outputs and the gradients of `q` and `kv` of `Σ out ⊙ w`: through the fused core with
    /// `blocking`, or through tensor operations (`None`).
    /// Asserts that the core run in blocks of `blocking` gives `reference` (the tensor path)
    /// and `whole` (the weights-keeping path) within 1e-5, and, without dropout, that the
    /// forward pass outside a graph gives the reference's output; `what` names the case.
    #[allow(clippy::too_many_arguments)]
    fn check_blocked(
        inputs: &[Tensor<3>; 3],
        bias: &Option<Tensor<2>>,
        heads: usize,
        drop: Option<WeightDropout>,
        blocking: Blocking,
        what: &str,
        reference: &[Vec<f32>; 3],
        whole: &[Vec<f32>; 3],
    ) {
        let blocked = run_core(inputs, bias, heads, drop, Some(blocking));
        for (i, name) in ["output", "dq", "dkv"].iter().enumerate() {
            let what = format!("{what}, {drop:?}: {name}");
            close_named(
                &format!("{what} vs tensors"),
                &blocked[i],
                &reference[i],
                1e-5,
            );
            close_named(&format!("{what} vs kept"), &blocked[i], &whole[i], 1e-5);
        }
        if drop.is_none() {
            let [q, kv, _] = inputs;
            let plain = attention_blocked(
                q.clone().inner(),
                kv.clone().inner(),
                bias.clone().map(|b| b.inner()),
                heads,
                0.7,
                None,
                blocking,
            );
            let what = format!("{what}: outside a graph");
            close_named(&what, &values(plain), &reference[0], 1e-5);
        }
    }

    fn run_core(
        inputs: &[Tensor<3>; 3],
        bias: &Option<Tensor<2>>,
        heads: usize,
        drop: Option<WeightDropout>,
        blocking: Option<Blocking>,
    ) -> [Vec<f32>; 3] {
        let [q, kv, w] = inputs;
        let (q, kv) = (q.clone().require_grad(), kv.clone().require_grad());
        let out = match blocking {
            Some(b) => attention_blocked(q.clone(), kv.clone(), bias.clone(), heads, 0.7, drop, b),
            None => reference(q.clone(), kv.clone(), bias.clone(), heads, 0.7, drop),
        };
        let grads = (out.clone() * w.clone()).sum().backward();
        [
            values(out),
            values(q.grad(&grads).unwrap()),
            values(kv.grad(&grads).unwrap()),
        ]
    }

    /// The recomputing path (nothing kept, blocks of query rows) equals the path that keeps
    /// the weights and the tensor operations, in values and in the gradients of `q` and
    /// `kv`: on awkward sizes (one query, one key, odd counts, more rows than a block, a
    /// last block of fewer rows), with keys padded (one bag wholly), with and without
    /// dropout, in a graph and outside one.
    #[test]
    fn recomputing_blocks_equal_kept_weights_and_tensor_operations() {
        let device = Device::flex().autodiff();
        device.seed(9);
        let (b, heads, d) = (3, 2, 3);
        let kept = Blocking::default();
        for (nq, nk) in [(1, 1), (1, 6), (5, 1), (7, 7), (9, 13), (13, 11)] {
            let normal = Distribution::Normal(0.0, 1.0);
            let inputs = [
                Tensor::<3>::random([b, nq, heads * d], normal, &device),
                Tensor::<3>::random([b, nk, 2 * heads * d], normal, &device),
                Tensor::<3>::random([b, nq, heads * d], normal, &device),
            ];
            // Bag 0 unpadded, bag 1 padded from key 1 on (when there is one), bag 2 wholly.
            let pad: Vec<f32> = (0..b * nk)
                .map(|i| match (i / nk, i % nk) {
                    (0, _) => 0.0,
                    (1, 0) => 0.0,
                    _ => -1e30,
                })
                .collect();
            let bias = Some(Tensor::<2>::from_data(
                TensorData::new(pad, [b, nk]),
                &device,
            ));
            for drop in [None, Some(WeightDropout { keep: 0.7, seed: 5 })] {
                let reference = run_core(&inputs, &bias, heads, drop, None);
                let whole = run_core(&inputs, &bias, heads, drop, Some(kept));
                for rows in [1, 2, 4, nq] {
                    let recompute = Blocking {
                        keep_limit: 0,
                        block_scores: rows * nk,
                    };
                    let what = format!("{nq}×{nk}, {rows} rows");
                    check_blocked(
                        &inputs, &bias, heads, drop, recompute, &what, &reference, &whole,
                    );
                }
                // (With one key the weights are constant: dq is 0.)
                assert!(
                    nk == 1 || reference[1].iter().any(|v| v.abs() > 1e-3),
                    "{nq}×{nk}: trivial dq"
                );
            }
        }
    }

    /// The tiled path (heads of 16 and 32, AVX-512) equals the tensor operations and the
    /// path that keeps the weights, in values and gradients: one query, one key, key counts
    /// around the tiles' 16 and 64, blocks of one row, of odd row counts and whole pairs,
    /// keys padded (one bag wholly), with and without dropout, in a graph and outside one.
    /// Six pairs on two or more threads cut each pair of several blocks into runs, so the
    /// runs' shares of `dK` and `dV` are added under the pair's lock.
    #[test]
    fn tiled_path_equals_tensor_operations_and_kept_weights() {
        let device = Device::flex().autodiff();
        device.seed(11);
        let (b, heads) = (3, 2);
        for d in [16, 32] {
            #[cfg(target_arch = "x86_64")]
            assert_eq!(tiled::applies(d), is_x86_feature_detected!("avx512f"));
            for (nq, nk) in [(1, 1), (1, 17), (6, 1), (9, 16), (13, 65), (30, 47)] {
                let normal = Distribution::Normal(0.0, 1.0);
                let inputs = [
                    Tensor::<3>::random([b, nq, heads * d], normal, &device),
                    Tensor::<3>::random([b, nk, 2 * heads * d], normal, &device),
                    Tensor::<3>::random([b, nq, heads * d], normal, &device),
                ];
                let pad: Vec<f32> = (0..b * nk)
                    .map(|i| match (i / nk, i % nk) {
                        (0, _) | (1, 0) => 0.0,
                        (1, j) if j % 3 == 1 => 0.0,
                        _ => -1e30,
                    })
                    .collect();
                let bias = Some(Tensor::<2>::from_data(
                    TensorData::new(pad, [b, nk]),
                    &device,
                ));
                for drop in [
                    None,
                    Some(WeightDropout {
                        keep: 0.8,
                        seed: 21,
                    }),
                ] {
                    let reference = run_core(&inputs, &bias, heads, drop, None);
                    let whole = run_core(&inputs, &bias, heads, drop, Some(Blocking::default()));
                    for rows in [1, 7, nq] {
                        let tiled = Blocking {
                            keep_limit: 0,
                            block_scores: rows * nk,
                        };
                        let what = format!("d {d}, {nq}×{nk}, {rows} rows");
                        check_blocked(
                            &inputs, &bias, heads, drop, tiled, &what, &reference, &whole,
                        );
                    }
                }
            }
        }
    }
}
