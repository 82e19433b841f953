//! [`TrainingCost`]: the memory and time of training a configuration, estimated from its sizes
//! before any tensor exists, so that `train` can warn before an epoch that will not fit or
//! will take hours (the `per_gene` tokenizer over 2,814 genes: 11.6 min and 5.4 GB per epoch
//! of 298 patients on 2 cores).
//!
//! The formulas (every value an `f32`, 4 bytes):
//! - **parameters**: counted layer by layer as [`MedCrossViTConfig::init`] builds them (exact:
//!   [`parameter_count`]).
//! - **weights**: 16 bytes per parameter: the weights, their gradients and AdamW's two moments.
//! - **activations** kept for the backward pass, per sample: for each transformer layer over
//!   `n` tokens of width `d` (`h` heads of width `e`, inner width `i = h·e`, feed-forward width
//!   `m`), `n·(4d + 4i + 2m)` values (the normalized input, queries, keys, values, the heads'
//!   output, the projected output, the second normalization, the feed-forward's hidden layer
//!   before and after its activation) plus the attention weights `h·n²`. Over the RNA tokens
//!   (`n = genes + 1` with the dense and per_gene tokenizers) that `h·n²` grows with the
//!   square of the gene count and dominates: the **gene-token attention**. With Nyström
//!   attention over `m < n` landmarks ([`AttentionKind::Nystrom`]; `m` counts the segments
//!   actually formed, `⌈n / ⌈n / m⌉⌉`) the RNA layers keep instead its two `n × m` weight
//!   matrices and about `5·it + 2` matrices `m × m` of the landmark softmax and its
//!   pseudo-inverse's `it` iterations, per head: [`attention_values`]. With gradient
//!   checkpointing only each layer's input tokens `n·d` are kept, plus one layer's
//!   activations while it is recomputed. The cross-attention (one query per layer) is left out.
//! - **peak memory**: weights + batch × activations per sample.
//! - **FLOPs per epoch**: a training sample costs 3 forward passes (forward, and a backward
//!   pass of about twice its cost; 4 with checkpointing), a validation bag one;
//!   [`forward_flops`] counts a forward pass's matrix products (with Nyström attention
//!   `8·h·n·m·e + 4·h·m²·e + 8·it·h·m³` per RNA layer instead of `4·h·n²·e`: the two
//!   `n × m` attentions, the landmark scores, the pseudo-inverse's four `m × m` products
//!   per iteration, and its product with the landmark values).
//! - **time**: FLOPs ÷ a throughput; [`CPU_GFLOPS_PER_THREAD`] per CPU thread is what the
//!   flex backend reaches on these shapes (`docs/performance.md`): a rough figure.

use super::rna::RnaTokenizer;
use super::{AttentionKind, MedCrossViTConfig};

/// GFLOP/s per CPU thread assumed by the time estimate: the flex backend measured 185 GFLOP/s
/// on the `per_gene` forward pass at 2,000 genes on a 2-core AVX-512 machine whose 2048² matrix
/// product ran at 405–454, and half that product rate on a 2-core Zen 4 (`docs/performance.md`).
pub const CPU_GFLOPS_PER_THREAD: f64 = 40.0;

/// RNA tokens from which attention over them is called large (with the dense or per_gene
/// tokenizer, one token per gene).
pub const MANY_GENE_TOKENS: usize = 1000;

/// An epoch estimated longer than this (seconds) is called slow: attention over one token
/// per gene then costs what the rest of the model does not (the pathways tokenizer trains the
/// same epochs in seconds).
pub const SLOW_EPOCH_SECONDS: f64 = 60.0;

/// What the estimate needs besides the model: the run's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostInputs {
    /// Bags per batch.
    pub batch: usize,
    /// Tiles per bag.
    pub bag_size: usize,
    /// Training bags per epoch.
    pub train_bags: usize,
    /// Validation bags per epoch.
    pub val_bags: usize,
    /// Whether layers are recomputed in the backward pass (`--gradient-checkpointing`).
    pub gradient_checkpointing: bool,
}

/// The estimated cost of training (see the module documentation for the formulas).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingCost {
    /// The tokenizer's name.
    pub tokenizer: &'static str,
    /// RNA tokens (without the CLS token).
    pub rna_tokens: usize,
    /// Parameters.
    pub parameters: u64,
    /// Weights, gradients and AdamW's moments.
    pub weight_bytes: u64,
    /// Activations kept for the backward pass of one batch.
    pub activation_bytes: u64,
    /// Of those, the attention weights over the RNA tokens.
    pub gene_attention_bytes: u64,
    /// Weights and one batch's activations.
    pub peak_bytes: u64,
    /// FLOPs of one epoch: training and validation.
    pub flops_per_epoch: f64,
}

/// The exact number of parameters of `c`'s model.
pub fn parameter_count(c: &MedCrossViTConfig) -> u64 {
    let n = |v: usize| v as u64;
    let norm = |d: u64| 2 * d;
    let linear = |a: u64, b: u64, bias: bool| a * b + if bias { b } else { 0 };
    let attention = |d: u64, heads: usize, dim_head: usize| {
        let inner = n(heads * dim_head);
        norm(d) + linear(d, inner, false) + linear(d, 2 * inner, false) + linear(inner, d, true)
    };
    let transformer = |d: usize, depth: usize, heads: usize, dim_head: usize, mlp: usize| {
        let d = n(d);
        let feed_forward = norm(d) + linear(d, n(mlp), true) + linear(n(mlp), d, true);
        n(depth) * (attention(d, heads, dim_head) + feed_forward) + norm(d)
    };
    let (w, r) = (n(c.wsi_dim), n(c.rna_dim));
    // Each cross layer: WSI CLS → RNA tokens at rna_dim, RNA CLS → tiles at wsi_dim, with
    // projections in and out when the widths differ.
    let projections = if w != r {
        2 * (linear(w, r, true) + linear(r, w, true))
    } else {
        0
    };
    let cross = n(c.cross_attn_depth)
        * (attention(r, c.cross_attn_heads, c.cross_attn_dim_head)
            + attention(w, c.cross_attn_heads, c.cross_attn_dim_head)
            + projections);
    let block = transformer(
        c.wsi_dim,
        c.wsi_enc_depth,
        c.wsi_enc_heads,
        c.wsi_enc_dim_head,
        c.wsi_enc_mlp_dim,
    ) + transformer(
        c.rna_dim,
        c.rna_enc_depth,
        c.rna_enc_heads,
        c.rna_enc_dim_head,
        c.rna_enc_mlp_dim,
    ) + cross;
    let g = n(c.rna_num_genes);
    let tokens = n(c.rna_tokenizer.tokens(c.rna_num_genes));
    let tokenizer = match &c.rna_tokenizer {
        RnaTokenizer::Dense => norm(g) + linear(g, g * r, true) + norm(r),
        RnaTokenizer::PerGene => norm(g) + 2 * g * r,
        RnaTokenizer::Pathways { groups } => groups
            .iter()
            .map(|group| linear(n(group.genes.len()), r, true))
            .sum(),
    };
    let rna_embedder = tokenizer + r + (tokens + 1) * r;
    let positions = if c.wsi_pos_embedding {
        (n(c.wsi_num_tiles) + 1) * w
    } else {
        0
    };
    let wsi_embedder = w + positions;
    let heads =
        norm(w) + linear(w, n(c.num_classes), true) + norm(r) + linear(r, n(c.num_classes), true);
    wsi_embedder + rna_embedder + n(c.depth) * block + heads
}

/// Values kept for the backward pass by one transformer layer over `tokens` tokens, without
/// (`.0`) and of (`.1`) its attention weights.
fn layer_values(
    tokens: u64,
    dim: usize,
    (heads, dim_head): (usize, usize),
    mlp: usize,
    kind: AttentionKind,
) -> (u64, u64) {
    let (d, i, m) = (dim as u64, (heads * dim_head) as u64, mlp as u64);
    (
        tokens * (4 * d + 4 * i + 2 * m),
        attention_values(kind, tokens, heads),
    )
}

/// The landmarks Nyström attention forms over `tokens` tokens (`⌈n / ⌈n / m⌉⌉` segments of
/// `⌈n / m⌉` tokens), with its iterations; `None` where it attends exactly (`m ≥ n`).
fn landmarks(kind: AttentionKind, tokens: u64) -> Option<(u64, u64)> {
    match kind {
        AttentionKind::Nystrom {
            landmarks,
            pinv_iterations,
        } if (landmarks as u64) < tokens => {
            let segment = tokens.div_ceil((landmarks as u64).max(1));
            Some((tokens.div_ceil(segment), pinv_iterations as u64))
        }
        _ => None,
    }
}

/// Attention weights (and, for Nyström, the landmark matrices) kept by one self-attention
/// layer of `heads` heads over `tokens` tokens: `h·n²` exact; `h·(2·n·m + (5·it + 2)·m²)`
/// Nyström (the two `n × m` weights; the landmark scores' softmax, and per iteration of
/// the pseudo-inverse its `AZ`, three intermediate sums and the new `Z`).
pub fn attention_values(kind: AttentionKind, tokens: u64, heads: usize) -> u64 {
    let h = heads as u64;
    match landmarks(kind, tokens) {
        Some((m, it)) => h * (2 * tokens * m + (5 * it + 2) * m * m),
        None => h * tokens * tokens,
    }
}

/// FLOPs of the products of one self-attention core (scores and weighted sum, no
/// projections) over `n` tokens: `4·h·n²·e` exact, `8·h·n·m·e + 4·h·m²·e + 8·it·h·m³`
/// Nyström (see the module documentation).
pub fn attention_core_flops(
    kind: AttentionKind,
    tokens: usize,
    heads: usize,
    dim_head: usize,
) -> f64 {
    let (n, h, e) = (tokens as f64, heads as f64, dim_head as f64);
    match landmarks(kind, tokens as u64) {
        Some((m, it)) => {
            let (m, it) = (m as f64, it as f64);
            8.0 * h * n * m * e + 4.0 * h * m * m * e + 8.0 * it * h * m * m * m
        }
        None => 4.0 * h * n * n * e,
    }
}

/// Estimates the cost of training `c` with `inputs` (see the module documentation).
pub fn training_cost(c: &MedCrossViTConfig, inputs: &CostInputs) -> TrainingCost {
    let parameters = parameter_count(c);
    let rna_tokens = c.rna_tokenizer.tokens(c.rna_num_genes);
    let (tw, tr) = (inputs.bag_size as u64 + 1, rna_tokens as u64 + 1);
    let wsi = layer_values(
        tw,
        c.wsi_dim,
        (c.wsi_enc_heads, c.wsi_enc_dim_head),
        c.wsi_enc_mlp_dim,
        AttentionKind::Exact,
    );
    let rna = layer_values(
        tr,
        c.rna_dim,
        (c.rna_enc_heads, c.rna_enc_dim_head),
        c.rna_enc_mlp_dim,
        c.rna_attention,
    );
    let wsi_layers = (c.depth * c.wsi_enc_depth) as u64;
    let rna_layers = (c.depth * c.rna_enc_depth) as u64;
    let batch = inputs.batch as u64;
    let (per_sample, gene_attention) = if inputs.gradient_checkpointing {
        let inputs_kept = wsi_layers * tw * c.wsi_dim as u64 + rna_layers * tr * c.rna_dim as u64;
        let one_layer = (wsi.0 + wsi.1).max(rna.0 + rna.1);
        let attention = if rna.0 + rna.1 >= wsi.0 + wsi.1 {
            rna.1
        } else {
            0
        };
        (inputs_kept + one_layer, attention)
    } else {
        (
            wsi_layers * (wsi.0 + wsi.1) + rna_layers * (rna.0 + rna.1),
            rna_layers * rna.1,
        )
    };
    let weight_bytes = 16 * parameters;
    let activation_bytes = 4 * batch * per_sample;
    let forward = forward_flops(c, 1, inputs.bag_size);
    let passes = if inputs.gradient_checkpointing {
        4.0
    } else {
        3.0
    };
    TrainingCost {
        tokenizer: c.rna_tokenizer.name(),
        rna_tokens,
        parameters,
        weight_bytes,
        activation_bytes,
        gene_attention_bytes: 4 * batch * gene_attention,
        peak_bytes: weight_bytes + activation_bytes,
        flops_per_epoch: forward * (passes * inputs.train_bags as f64 + inputs.val_bags as f64),
    }
}

impl TrainingCost {
    /// Seconds per epoch at `gflops` GFLOP/s.
    pub fn seconds_per_epoch(&self, gflops: f64) -> f64 {
        self.flops_per_epoch / (gflops.max(1e-9) * 1e9)
    }

    /// A warning (without a `warning:` prefix) when attention over one token per gene, over
    /// at least [`MANY_GENE_TOKENS`] genes, will not fit `memory` bytes (when known) or will
    /// take longer than [`SLOW_EPOCH_SECONDS`] per epoch at `gflops`; `None` otherwise.
    pub fn warning(&self, memory: Option<u64>, gflops: f64) -> Option<String> {
        if self.tokenizer == "pathways" || self.rna_tokens < MANY_GENE_TOKENS {
            return None;
        }
        let too_big = memory.filter(|&m| self.peak_bytes > m);
        let seconds = self.seconds_per_epoch(gflops);
        let slow = seconds > SLOW_EPOCH_SECONDS;
        if too_big.is_none() && !slow {
            return None;
        }
        let mut why = Vec::new();
        if let Some(m) = too_big {
            why.push(format!(
                "needs about {} GB, more than the {} GB of memory",
                gb(self.peak_bytes),
                gb(m)
            ));
        }
        if slow {
            why.push(format!("takes {} or more per epoch", duration(seconds)));
        }
        Some(format!(
            "the {} tokenizer attends over {} gene tokens ({} GB of attention weights per \
             batch): training {}; use --tokenizer pathways --signatures FILE (one token per \
             gene group), or fewer genes with --top-genes K, or a smaller --batch-size",
            self.tokenizer,
            self.rna_tokens,
            gb(self.gene_attention_bytes),
            why.join(" and ")
        ))
    }

    /// One line: parameters, peak memory and its gene-attention share, and the time per epoch
    /// at `gflops`.
    pub fn describe(&self, gflops: f64) -> String {
        format!(
            "estimate: {:.1} M parameters, about {} GB at peak ({} GB weights and optimizer \
             state, {} GB activations, of which {} GB attention over {} RNA tokens), {:.1} \
             GFLOP and {} or more per epoch (matrix products at {gflops:.0} GFLOP/s)",
            self.parameters as f64 / 1e6,
            gb(self.peak_bytes),
            gb(self.weight_bytes),
            gb(self.activation_bytes),
            gb(self.gene_attention_bytes),
            self.rna_tokens,
            self.flops_per_epoch / 1e9,
            duration(self.seconds_per_epoch(gflops)),
        )
    }
}

/// Bytes in GB (10⁹), two significant decimals.
fn gb(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1e9)
}

/// A duration: seconds below a minute, else minutes with one decimal.
fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        format!("{:.1} min", seconds / 60.0)
    }
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`; `None` elsewhere).
pub fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Floating-point operations (a multiply-add counts 2) of one forward pass over `batch`
/// bags of `tiles` tiles: every matrix product of the model; normalizations, activations
/// and softmax are left out (a few percent).
pub fn forward_flops(c: &MedCrossViTConfig, batch: usize, tiles: usize) -> f64 {
    let b = batch as f64;
    let mm = |m: f64, k: f64, n: f64| 2.0 * m * k * n;
    let attention = |tokens: f64, queries: f64, dim: f64, heads: f64, dim_head: f64| {
        let inner = heads * dim_head;
        mm(queries, dim, inner)
            + mm(tokens, dim, 2.0 * inner)
            + 2.0 * heads * mm(queries, dim_head, tokens)
            + mm(queries, inner, dim)
    };
    // A self-attention layer's products; `kind` replaces its core's.
    let self_attention = |tokens: f64, dim: f64, heads: usize, dim_head: usize, kind| {
        let exact = attention_core_flops(AttentionKind::Exact, tokens as usize, heads, dim_head);
        let core = attention_core_flops(kind, tokens as usize, heads, dim_head);
        attention(tokens, tokens, dim, heads as f64, dim_head as f64) - exact + core
    };
    let encoder = |tokens: f64,
                   dim: f64,
                   depth: usize,
                   (heads, dim_head): (usize, usize),
                   mlp: usize,
                   kind: AttentionKind| {
        depth as f64
            * (self_attention(tokens, dim, heads, dim_head, kind)
                + 2.0 * mm(tokens, dim, mlp as f64))
    };
    let tokens = c.rna_tokenizer.tokens(c.rna_num_genes) as f64;
    let (tw, tr) = (tiles as f64 + 1.0, tokens + 1.0);
    let (dw, dr) = (c.wsi_dim as f64, c.rna_dim as f64);
    let project = if c.wsi_dim != c.rna_dim {
        2.0 * mm(1.0, dw, dr)
    } else {
        0.0
    };
    let cross = c.cross_attn_depth as f64
        * (attention(
            tr,
            1.0,
            dr,
            c.cross_attn_heads as f64,
            c.cross_attn_dim_head as f64,
        ) + attention(
            tw,
            1.0,
            dw,
            c.cross_attn_heads as f64,
            c.cross_attn_dim_head as f64,
        ) + 2.0 * project);
    let block = encoder(
        tw,
        dw,
        c.wsi_enc_depth,
        (c.wsi_enc_heads, c.wsi_enc_dim_head),
        c.wsi_enc_mlp_dim,
        AttentionKind::Exact,
    ) + encoder(
        tr,
        dr,
        c.rna_enc_depth,
        (c.rna_enc_heads, c.rna_enc_dim_head),
        c.rna_enc_mlp_dim,
        c.rna_attention,
    ) + cross;
    let g = c.rna_num_genes as f64;
    let embed = match c.rna_tokenizer {
        crate::model::RnaTokenizer::Dense => mm(1.0, g, g * dr),
        // One multiply-add per gene and token width, for both.
        _ => 2.0 * g * dr,
    };
    let heads = mm(1.0, dw, c.num_classes as f64) + mm(1.0, dr, c.num_classes as f64);
    b * (embed + c.depth as f64 * block + heads)
}
