//! The attention core's recomputing path on the AVX-512 [`tiles`](super::tiles): the same
//! blocks of query rows as the general path (each spanning every key), with each pair's
//! keys and values packed once per task instead of once per product, and the forward pass
//! keeping each row's softmax statistics (its maximum and `1 / Σ exp`, 8 bytes a row), so
//! that the backward pass gets the weights back in one pass, bit for bit.
//!
//! Tasks are (pair, run of blocks): whole pairs when there are enough of them for the
//! threads, else pairs cut into runs. Each task adds its share of `dK` and `dV` into the
//! pair's gradient under the pair's lock (uncontended when a task is a whole pair).

use std::ops::Range;
use std::sync::Mutex;

use rayon::prelude::*;

use super::tiles::{self, KEY_PAD, ROW_PAD};
use crate::kernels::elementwise as kernels;
use crate::kernels::mask::mask_values;

/// The attention core's inputs and sizes, as the tiled passes read them.
pub(super) struct Pairs<'a> {
    /// `[bags, queries, heads · d]`.
    pub q: &'a [f32],
    /// `[bags, keys, 2 · heads · d]`: keys, then values.
    pub kv: &'a [f32],
    /// `[bags, keys]`, added to every query's scores.
    pub bias: Option<&'a [f32]>,
    pub bags: usize,
    pub queries: usize,
    pub keys: usize,
    pub heads: usize,
    /// `dim_head`.
    pub d: usize,
    pub scale: f32,
    /// Query rows per block.
    pub rows: usize,
    /// Dropout on the weights: keep probability and seed.
    pub drop: Option<(f64, u64)>,
}

/// A pointer to a buffer whose parts parallel tasks write, each its own.
#[derive(Clone, Copy)]
struct Out(*mut f32);
impl Out {
    /// The pointer (a method, so that closures capture the whole `Out`).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: every task writes only its own pair's rows (see the callers).
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

/// Whether the tiled path runs here for heads of width `d`.
pub(super) fn applies(d: usize) -> bool {
    tiles::available(d)
}

/// One thread's buffers: a pair's packed keys and values, and one block's rows and weights.
#[derive(Default)]
struct Scratch {
    /// The pair whose keys are packed.
    pair: Option<usize>,
    /// Keys as panels of 16 (the scores' operand).
    kt: Vec<f32>,
    /// Values as panels of 16 (`dP̃ = dO·Vᵀ`), backward only.
    vt: Vec<f32>,
    /// Values `[keys, d]` (forward) or keys `[keys, d]` (backward's `dQ = dS·K`).
    x: Vec<f32>,
    /// The block's queries `[rows + ROW_PAD, d]`.
    qb: Vec<f32>,
    /// The block's output gradient `[rows + ROW_PAD, d]`, backward only.
    gb: Vec<f32>,
    /// Scores, then weights.
    s: Vec<f32>,
    /// The weights after dropout, backward only.
    used: Vec<f32>,
    /// The weights' gradient, then the scores'.
    grad: Vec<f32>,
    /// The dropout mask.
    mask: Vec<f32>,
    /// A block's product `[rows + ROW_PAD, d]`.
    out: Vec<f32>,
    /// This task's `dK` and `dV`, `[keys, d]` each.
    dk: Vec<f32>,
    dv: Vec<f32>,
}

impl Pairs<'_> {
    fn inner(&self) -> usize {
        self.heads * self.d
    }

    fn pairs(&self) -> usize {
        self.bags * self.heads
    }

    fn blocks(&self) -> usize {
        self.queries.div_ceil(self.rows)
    }

    /// (pair, blocks) of each task.
    fn tasks(&self) -> Vec<(usize, Range<usize>)> {
        let (pairs, blocks) = (self.pairs(), self.blocks());
        let runs = (4 * rayon::current_num_threads())
            .div_ceil(pairs.max(1))
            .clamp(1, blocks.max(1));
        let per = blocks.div_ceil(runs).max(1);
        (0..pairs)
            .flat_map(|p| {
                (0..blocks)
                    .step_by(per)
                    .map(move |b| (p, b..(b + per).min(blocks)))
            })
            .collect()
    }

    /// Offsets of pair `p`'s first query (in `[bags, queries, inner]`) and first key (in
    /// `[bags, keys, 2 · inner]`; its values follow `inner` later).
    fn offsets(&self, p: usize) -> (usize, usize) {
        let (b, h) = (p / self.heads, p % self.heads);
        let inner = self.inner();
        (
            b * self.queries * inner + h * self.d,
            b * self.keys * 2 * inner + h * self.d,
        )
    }

    /// Rows `first .. first + n` of block `b`.
    fn block(&self, b: usize) -> (usize, usize) {
        let first = b * self.rows;
        (first, self.rows.min(self.queries - first))
    }

    /// The bias of pair `p`'s bag.
    fn bias(&self, p: usize) -> Option<&[f32]> {
        let (b, nk) = (p / self.heads, self.keys);
        self.bias.map(|bias| &bias[b * nk..(b + 1) * nk])
    }

    /// Copies `n` rows of `d` values, `stride` apart in `src` from `from`, into `dst`.
    fn gather(&self, src: &[f32], from: usize, stride: usize, n: usize, dst: &mut [f32]) {
        let d = self.d;
        for (i, row) in dst.chunks_exact_mut(d).take(n).enumerate() {
            row.copy_from_slice(&src[from + i * stride..][..d]);
        }
    }

    /// Sizes `s`'s buffers for this core (once per thread) and packs pair `p`'s keys (and
    /// for the backward pass its values as panels, and its keys as rows) unless they are.
    fn prepare(&self, s: &mut Scratch, p: usize, backward: bool) {
        let (nk, d, inner) = (self.keys, self.d, self.inner());
        let block = (self.rows + ROW_PAD) * nk + KEY_PAD;
        let panels = nk.div_ceil(16) * d * 16;
        if s.s.len() != block {
            let drop = if self.drop.is_some() { block } else { 0 };
            let more = if backward { block } else { 0 };
            *s = Scratch {
                kt: vec![0.0; panels],
                vt: vec![0.0; if backward { panels } else { 0 }],
                x: vec![0.0; nk * d],
                qb: vec![0.0; (self.rows + ROW_PAD) * d],
                gb: vec![
                    0.0;
                    if backward {
                        (self.rows + ROW_PAD) * d
                    } else {
                        0
                    }
                ],
                s: vec![0.0; block],
                used: vec![0.0; if backward { drop } else { 0 }],
                grad: vec![0.0; more],
                mask: vec![0.0; drop],
                out: vec![0.0; (self.rows + ROW_PAD) * d],
                dk: vec![0.0; if backward { nk * d } else { 0 }],
                dv: vec![0.0; if backward { nk * d } else { 0 }],
                pair: None,
            };
        }
        if s.pair == Some(p) {
            return;
        }
        let (_, k) = self.offsets(p);
        let kv = self.kv[k..].as_ptr();
        // SAFETY: the pair's keys and values are rows of `kv`, 2 · inner apart.
        unsafe {
            tiles::pack_panels(kv, 2 * inner, nk, d, &mut s.kt);
            if backward {
                tiles::pack_panels(kv.add(inner), 2 * inner, nk, d, &mut s.vt);
            }
        }
        let x = if backward { k } else { k + inner };
        self.gather(self.kv, x, 2 * inner, nk, &mut s.x);
        s.pair = Some(p);
    }

    /// The block's weights (after the softmax, before dropout) into `s.s`, its queries
    /// into `s.qb`; `stats` are its rows' softmax statistics, written or read.
    fn weights(&self, s: &mut Scratch, p: usize, b: usize, stats: Stats<'_>) {
        let (first, n) = self.block(b);
        let (nk, d) = (self.keys, self.d);
        let (q, _) = self.offsets(p);
        self.gather(self.q, q + first * self.inner(), self.inner(), n, &mut s.qb);
        let w = &mut s.s[..n * nk];
        // SAFETY: `qb` holds rows + ROW_PAD ≥ n rounded up to SCORE_ROWS rows, `kt` the
        // pair's panels, `w` n × nk; `applies(d)` chose this path.
        unsafe { tiles::scores(&s.qb, n, d, &s.kt, nk, self.scale, self.bias(p), w) };
        match stats {
            Stats::None => kernels::softmax_rows(w, nk),
            Stats::Keep(out) => kernels::softmax_rows_keeping(w, nk, out),
            Stats::From(kept) => kernels::softmax_rows_from(w, nk, kept),
        }
    }

    /// The dropout mask of block `b` of pair `p` into `s.mask`, when there is dropout.
    fn mask(&self, s: &mut Scratch, p: usize, b: usize) -> bool {
        let Some((keep, seed)) = self.drop else {
            return false;
        };
        let (first, n) = self.block(b);
        let start = (p * self.queries + first) * self.keys;
        mask_values(
            &mut s.mask[..n * self.keys],
            keep,
            (1.0 / keep) as f32,
            seed,
            start,
        );
        true
    }
}

/// The softmax statistics of a block's rows (two values a row): none, to write, or to
/// read.
enum Stats<'a> {
    None,
    Keep(&'a mut [f32]),
    From(&'a [f32]),
}

/// The forward pass: the output `[bags, queries, inner]` into `out`; each row's softmax
/// statistics into `stats` (`[pairs, queries, 2]`) when given.
pub(super) fn forward(c: &Pairs<'_>, out: &mut [f32], stats: Option<&mut [f32]>) {
    let dst = Out(out.as_mut_ptr());
    let kept = stats.map(|s| Out(s.as_mut_ptr()));
    c.tasks()
        .into_par_iter()
        .for_each_init(Scratch::default, |s, (p, blocks)| {
            c.prepare(s, p, false);
            for b in blocks {
                let (first, n) = c.block(b);
                let stats = match kept {
                    // SAFETY: the statistics of this block's rows, written by this task alone.
                    Some(k) => Stats::Keep(unsafe {
                        std::slice::from_raw_parts_mut(
                            k.ptr().add(2 * (p * c.queries + first)),
                            2 * n,
                        )
                    }),
                    None => Stats::None,
                };
                c.weights(s, p, b, stats);
                let nk = c.keys;
                if c.mask(s, p, b) {
                    kernels::mul(&mut s.s[..n * nk], &s.mask[..n * nk]);
                }
                // SAFETY: `s.s` holds (rows + ROW_PAD) × nk, `x` the pair's values, `out`
                // (rows + ROW_PAD) × d; `applies(d)`.
                unsafe { tiles::rows_times(&s.s, n, nk, &s.x, c.d, &mut s.out) };
                let (q, _) = c.offsets(p);
                for (i, row) in s.out.chunks_exact(c.d).take(n).enumerate() {
                    let at = q + (first + i) * c.inner();
                    // SAFETY: row first + i of pair p, written by this task alone.
                    unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), dst.ptr().add(at), c.d) };
                }
            }
        });
}

/// Gradients of the backward pass: of `q` `[bags, queries, inner]` and of `kv` `[bags,
/// keys, 2 · inner]`, both zero on entry.
pub(super) struct Grads<'a> {
    pub dq: &'a mut [f32],
    pub dkv: &'a mut [f32],
}

/// The backward pass from the output's gradient `d_out` and the statistics the forward
/// pass kept.
pub(super) fn backward(c: &Pairs<'_>, stats: &[f32], d_out: &[f32], g: Grads<'_>) {
    let dq = Out(g.dq.as_mut_ptr());
    let locks: Vec<Mutex<Out>> = (0..c.pairs())
        .map(|_| Mutex::new(Out(g.dkv.as_mut_ptr())))
        .collect();
    c.tasks()
        .into_par_iter()
        .for_each_init(Scratch::default, |s, (p, blocks)| {
            c.prepare(s, p, true);
            s.dk.fill(0.0);
            s.dv.fill(0.0);
            for b in blocks {
                let (first, n) = c.block(b);
                let rows = 2 * (p * c.queries + first)..2 * (p * c.queries + first + n);
                c.weights(s, p, b, Stats::From(&stats[rows]));
                c.backward_block(s, p, b, d_out, dq);
            }
            let dkv = locks[p].lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: pair p's rows of dkv, while this task holds the pair's lock.
            unsafe { c.add_key_grads(s, p, *dkv) };
        });
}

impl Pairs<'_> {
    /// Block `b` of pair `p` from its weights in `s.s` and its queries in `s.qb`: writes
    /// the block's rows of `dQ` and adds its share of the pair's `dK` and `dV` into `s.dk`
    /// and `s.dv`.
    fn backward_block(&self, s: &mut Scratch, p: usize, b: usize, d_out: &[f32], dq: Out) {
        let (first, n) = self.block(b);
        let (nk, d, inner) = (self.keys, self.d, self.inner());
        let (q, _) = self.offsets(p);
        let row = q + first * inner;
        self.gather(d_out, row, inner, n, &mut s.gb);
        let dropped = self.mask(s, p, b);
        let w = &s.s[..n * nk];
        if dropped {
            let used = &mut s.used[..n * nk];
            used.copy_from_slice(w);
            kernels::mul(used, &s.mask[..n * nk]);
        }
        let used = if dropped { &s.used } else { &s.s };
        // SAFETY (the products): the buffers have the sizes `prepare` gave them, which the
        // tiles ask for; `applies(d)` chose this path.
        unsafe {
            // dV += P̃ᵀ · dO.
            tiles::add_transposed(used, n, nk, &s.gb, d, 1.0, &mut s.dv);
            // dP̃ = dO · Vᵀ.
            tiles::scores(&s.gb, n, d, &s.vt, nk, 1.0, None, &mut s.grad[..n * nk]);
        }
        let ds = &mut s.grad[..n * nk];
        if dropped {
            kernels::mul(ds, &s.mask[..n * nk]);
        }
        // dS = P ⊙ (dP − Σ dP ⊙ P), row by row: each row spans all keys.
        kernels::softmax_backward_rows(ds, w, nk);
        // SAFETY: as above.
        unsafe {
            // dQ = scale · dS · K.
            tiles::rows_times(&s.grad, n, nk, &s.x, d, &mut s.out);
            // dK += scale · dSᵀ · Q.
            tiles::add_transposed(&s.grad, n, nk, &s.qb, d, self.scale, &mut s.dk);
        }
        for (i, out) in s.out.chunks_exact(d).take(n).enumerate() {
            // SAFETY: row first + i of pair p of dq, written by this task alone.
            let dst = unsafe { std::slice::from_raw_parts_mut(dq.ptr().add(row + i * inner), d) };
            dst.iter_mut()
                .zip(out)
                .for_each(|(g, o)| *g = self.scale * o);
        }
    }

    /// Adds the task's `dK` and `dV` (`s.dk`, `s.dv`) into pair `p`'s rows of `dkv`.
    ///
    /// # Safety
    /// `dkv` is the gradient of `kv`; no other thread touches pair `p`'s part meanwhile.
    unsafe fn add_key_grads(&self, s: &Scratch, p: usize, dkv: Out) {
        let (d, inner) = (self.d, self.inner());
        let (_, k) = self.offsets(p);
        for (j, (dk, dv)) in s.dk.chunks_exact(d).zip(s.dv.chunks_exact(d)).enumerate() {
            for (from, at) in [(dk, k + j * 2 * inner), (dv, k + j * 2 * inner + inner)] {
                // SAFETY: key j of pair p, key or value half (caller).
                let to = unsafe { std::slice::from_raw_parts_mut(dkv.ptr().add(at), d) };
                to.iter_mut().zip(from).for_each(|(t, f)| *t += f);
            }
        }
    }
}
