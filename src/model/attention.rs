//! [`Attention`]: pre-norm multi-head attention with an optional context, as in CrossViT.

use super::attention_nystrom::{AttentionKind, pinv, segment_means};
use crate::kernels::activation::softmax_last;
use crate::kernels::attention::{WeightDropout, attention};
use crate::kernels::device::on_flex;
use crate::kernels::dropout::{active, dropout};
use crate::kernels::fused::layer_norm;
use crate::kernels::linear::linear;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::Device;
use burn::tensor::{Bool, DType, Tensor};

/// Most attention scores computed at once (4 Mi elements, 16 MB of `f32`): small enough that
/// the blocks stay below the allocator's mmap threshold and are reused, large enough for
/// efficient products (2^22 took 6.0 s, 2^24 8.5 s for `per_gene` at 2,000 genes, batch 4).
pub const SCORE_BLOCK: usize = 1 << 22;

/// Added to the scores of padded keys: far below any real score, yet finite, so that a row
/// whose keys were all padded would still not produce NaN.
const PAD_SCORE: f32 = -1.0e30;

/// Configuration of an [`Attention`] layer.
#[derive(Config, Debug)]
pub struct AttentionConfig {
    /// Token width.
    pub dim: usize,
    /// Number of heads. Default 8.
    #[config(default = 8)]
    pub heads: usize,
    /// Width of one head. Default 64.
    #[config(default = 64)]
    pub dim_head: usize,
    /// Dropout on the attention weights and on the output. Default 0.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Most attention scores computed at once by tensor operations (devices other than
    /// flex); longer sequences are attended in blocks of queries. Default 2^22 (16 MB of
    /// `f32`). (The fused core of flex blocks its own work: `docs/attention.md`.)
    #[config(default = "SCORE_BLOCK")]
    pub score_block: usize,
    /// Exact attention, or its Nyström approximation (self-attention only). Default exact.
    #[config(default = "AttentionKind::Exact")]
    pub kind: AttentionKind,
}

/// Multi-head attention: pre-LayerNorm, bias-free query and joint key/value projections,
/// scaled dot-product softmax, and an output projection with bias.
///
/// Create with [`AttentionConfig::init`].
#[derive(Module, Debug)]
pub struct Attention {
    /// LayerNorm over the query tokens (`dim`).
    pub norm: LayerNorm,
    /// Query projection, `dim → heads · dim_head`, no bias.
    pub to_q: Linear,
    /// Key and value projection, `dim → 2 · heads · dim_head` (keys first), no bias.
    pub to_kv: Linear,
    /// Output projection, `heads · dim_head → dim`.
    pub to_out: Linear,
    /// Dropout on the attention weights.
    pub attn_dropout: Dropout,
    /// Dropout on the output.
    pub out_dropout: Dropout,
    heads: usize,
    dim_head: usize,
    score_block: usize,
    #[module(skip)]
    kind: AttentionKind,
}

impl AttentionConfig {
    /// Initializes an [`Attention`] layer on `device`.
    pub fn init(&self, device: &Device) -> Attention {
        let inner = self.heads * self.dim_head;
        Attention {
            norm: LayerNormConfig::new(self.dim).init(device),
            to_q: LinearConfig::new(self.dim, inner)
                .with_bias(false)
                .init(device),
            to_kv: LinearConfig::new(self.dim, 2 * inner)
                .with_bias(false)
                .init(device),
            to_out: LinearConfig::new(inner, self.dim).init(device),
            attn_dropout: DropoutConfig::new(self.dropout).init(),
            out_dropout: DropoutConfig::new(self.dropout).init(),
            heads: self.heads,
            dim_head: self.dim_head,
            score_block: self.score_block.max(1),
            kind: self.kind,
        }
    }
}

/// Which keys are padding, prepared once and shared by every layer that attends to them.
///
/// Built from a boolean mask `[batch, keys]` with `true` = padded.
#[derive(Debug, Clone)]
pub struct KeyPadding {
    /// Additive score bias `[batch, 1, 1, keys]`: 0 for real keys, a huge negative for padding.
    bias: Tensor<4>,
    /// 1 for real keys, 0 for padding, `[batch, keys]`.
    keep: Tensor<2>,
}

impl KeyPadding {
    /// Prepares the padding of `mask` (`[batch, keys]`, `true` = padded).
    pub fn new(mask: Tensor<2, Bool>) -> Self {
        let [batch, keys] = mask.dims();
        let keep = mask.bool_not().float();
        let bias = (keep.clone() - 1.0)
            .mul_scalar(-PAD_SCORE)
            .reshape([batch, 1, 1, keys]);
        Self { bias, keep }
    }

    /// 1 for real keys and 0 for padded ones, `[batch, keys]`.
    pub fn keep(&self) -> Tensor<2> {
        self.keep.clone()
    }
}

/// The inputs of [`Attention::forward`], built step by step.
#[derive(Debug, Clone)]
pub struct AttentionInput<'a> {
    x: Tensor<3>,
    context: Option<Tensor<3>>,
    kv_include_self: bool,
    padding: Option<&'a KeyPadding>,
    return_weights: bool,
}

impl<'a> AttentionInput<'a> {
    /// Self-attention over `x` (`[batch, tokens, dim]`).
    pub fn self_attn(x: Tensor<3>) -> Self {
        Self {
            x,
            context: None,
            kv_include_self: false,
            padding: None,
            return_weights: false,
        }
    }

    /// Attention from `x` (`[batch, queries, dim]`) to `context` (`[batch, keys, dim]`).
    /// The context is not normalized: it comes out of its own encoder's final LayerNorm.
    pub fn cross_attn(x: Tensor<3>, context: Tensor<3>) -> Self {
        Self {
            context: Some(context),
            ..Self::self_attn(x)
        }
    }

    /// Prepends the (normalized) query tokens to the keys and values, so that a CLS token
    /// attends to itself as well as to the other modality.
    pub fn kv_include_self(mut self) -> Self {
        self.kv_include_self = true;
        self
    }

    /// Excludes padded keys. The padding must cover the keys as attended, that is including
    /// the query tokens when [`kv_include_self`](Self::kv_include_self) is set.
    pub fn padding(mut self, padding: &'a KeyPadding) -> Self {
        self.padding = Some(padding);
        self
    }

    /// Also returns the attention weights (after softmax, before dropout).
    pub fn return_weights(mut self) -> Self {
        self.return_weights = true;
        self
    }
}

impl Attention {
    /// Attends from the query tokens to the keys.
    ///
    /// # Shapes
    /// - x: `[batch, queries, dim]`
    /// - context: `[batch, context, dim]`; keys = `context` (+ `queries` with
    ///   `kv_include_self`), or `queries` for self-attention
    /// - output: `[batch, queries, dim]`
    /// - weights: `[batch, heads, queries, keys]`, each row summing to 1 (approximately, for
    ///   Nyström attention)
    pub fn forward(&self, input: AttentionInput<'_>) -> (Tensor<3>, Option<Tensor<4>>) {
        let self_attention = input.context.is_none();
        let x = layer_norm(&self.norm, input.x);
        let context = match (input.context, input.kv_include_self) {
            (None, _) => x.clone(),
            (Some(context), true) => Tensor::cat(vec![x.clone(), context], 1),
            (Some(context), false) => context,
        };
        let keys = context.dims()[1];
        let q = linear(&self.to_q, x); // [b, q, h · d]
        let kv = linear(&self.to_kv, context); // [b, k, 2 · h · d]
        let scale = (self.dim_head as f64).powf(-0.5);
        let (out, returned) = match self.kind {
            AttentionKind::Nystrom {
                landmarks,
                pinv_iterations,
            } if self_attention && landmarks < keys => self.attend_nystrom(
                q,
                kv,
                scale,
                input.padding,
                (landmarks, pinv_iterations),
                input.return_weights,
            ),
            _ => self.core(q, kv, scale, input.padding, true, input.return_weights),
        };
        let out = dropout(&self.out_dropout, linear(&self.to_out, out));
        (out, returned)
    }

    /// The attention core `softmax(scale · Q·Kᵀ + bias) · V` for `q` `[b, q, h · d]` and
    /// `kv` `[b, k, 2 · h · d]`: `[b, q, h · d]`, and the weights `[b, h, q, k]` when asked.
    /// With `drop`, the weights go through the layer's attention dropout.
    ///
    /// One operation on flex (kernels/attention.rs), which keeps the weights for the
    /// backward pass only where they are small and else recomputes them in blocks, so that
    /// long sequences never hold `q × k` scores per head. Returning the weights does not
    /// change the path: the output is the same bit for bit with or without them (`predict
    /// --attention` predicts as `predict` does).
    fn core(
        &self,
        q: Tensor<3>,
        kv: Tensor<3>,
        scale: f64,
        padding: Option<&KeyPadding>,
        drop: bool,
        return_weights: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let device = q.device();
        if !(on_flex(&device) && q.dtype() == DType::F32 && kv.dtype() == DType::F32) {
            return self.attend_with_tensors(q, kv, scale, padding, drop, return_weights);
        }
        let [batch, _, _] = q.dims();
        let keys = kv.dims()[1];
        let bias = padding.map(|p| p.bias.clone().reshape([batch, keys]));
        let dropout = drop
            .then(|| active(&self.attn_dropout, &device))
            .flatten()
            .map(|(keep, seed)| WeightDropout { keep, seed });
        let returned = return_weights
            .then(|| self.weights_with_tensors(q.clone(), kv.clone(), scale, padding));
        (attention(q, kv, bias, self.heads, scale, dropout), returned)
    }

    /// Nyström attention (see [`AttentionKind::Nystrom`]) of `q` `[b, n, h · d]` over `kv`
    /// `[b, n, 2 · h · d]` with `landmarks < n` landmarks and `iterations` of the
    /// pseudo-inverse: `[b, n, h · d]`, and the approximate weights `[b, h, n, n]` when
    /// asked. Both `n × m` attentions go through [`core`](Self::core).
    fn attend_nystrom(
        &self,
        q: Tensor<3>,
        kv: Tensor<3>,
        scale: f64,
        padding: Option<&KeyPadding>,
        (landmarks, iterations): (usize, usize),
        return_weights: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let [batch, _, inner] = q.dims();
        let keep = padding.map(KeyPadding::keep);
        let (q_l, counts) = segment_means(q.clone(), landmarks, keep.clone()); // [b, m, h · d]
        let (k_l, _) = segment_means(kv.clone().narrow(2, 0, inner), landmarks, keep);
        let m = q_l.dims()[1];
        // Landmarks of padding alone are no keys.
        let empty = KeyPadding::new(counts.lower_equal_elem(0.0));
        // softmax(Q̃·Kᵀ) · V: each landmark query attends to every key.
        let (bv, b_weights) = self.core(q_l.clone(), kv, scale, padding, false, return_weights);
        // softmax(Q̃·K̃ᵀ) and its pseudo-inverse: [b, h, m, m].
        let scores = self
            .split_heads(q_l, batch, m)
            .matmul(self.split_heads(k_l.clone(), batch, m).swap_dims(2, 3))
            .mul_scalar(scale);
        let a_pinv = pinv(softmax_last(scores + empty.bias.clone()), iterations);
        let z = a_pinv.clone().matmul(self.split_heads(bv, batch, m)); // [b, h, m, d]
        let z = z.swap_dims(1, 2).reshape([batch, m, inner]); // [b, m, h · d]
        // softmax(Q·K̃ᵀ) · Z: each query attends to the landmark keys, with Z as values.
        let kv_l = Tensor::cat(vec![k_l, z], 2); // [b, m, 2 · h · d]
        let (out, f_weights) = self.core(q, kv_l, scale, Some(&empty), false, return_weights);
        let returned = f_weights
            .zip(b_weights)
            .map(|(f, b)| f.matmul(a_pinv).matmul(b)); // [b, h, n, n]
        (out, returned)
    }

    /// The attention core with tensor operations, for `q` `[b, q, h · d]` and `kv` `[b, k,
    /// 2 · h · d]`: `[b, q, h · d]`, and the weights when asked; dropout on the weights
    /// with `drop`.
    fn attend_with_tensors(
        &self,
        q: Tensor<3>,
        kv: Tensor<3>,
        scale: f64,
        padding: Option<&KeyPadding>,
        drop: bool,
        return_weights: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let [batch, queries, inner] = q.dims();
        let keys = kv.dims()[1];
        let pairs = batch * self.heads;
        let q = self.split_heads(q, batch, queries); // [b, h, q, d]
        let k = self.split_heads(kv.clone().narrow(2, 0, inner), batch, keys); // [b, h, k, d]
        let v = self.split_heads(kv.narrow(2, inner, inner), batch, keys); // [b, h, k, d]

        let q = q.mul_scalar(scale);
        let k_t = k.swap_dims(2, 3); // [b, h, d, k]
        let bias = padding.map(|p| p.bias.clone()); // [b, 1, 1, k]
        let (out, returned) = if pairs * queries * keys <= self.score_block {
            let mut scores = q.matmul(k_t); // [b, h, q, k]
            if let Some(bias) = bias {
                scores = scores + bias;
            }
            let weights = softmax_last(scores);
            let returned = return_weights.then(|| weights.clone());
            (self.weight_dropout(weights, drop).matmul(v), returned) // [b, h, q, d]
        } else {
            self.attend_in_blocks(q, k_t, v, bias, drop, return_weights)
        };
        let out = out.swap_dims(1, 2).reshape([batch, queries, inner]); // [b, q, h · d]
        (out, returned)
    }

    /// The attention weights alone (after the softmax, before dropout), `[b, h, q, k]`, for
    /// `q` `[b, q, h · d]` and `kv` `[b, k, 2 · h · d]`: what the fused path returns beside
    /// its output.
    fn weights_with_tensors(
        &self,
        q: Tensor<3>,
        kv: Tensor<3>,
        scale: f64,
        padding: Option<&KeyPadding>,
    ) -> Tensor<4> {
        let [batch, queries, inner] = q.dims();
        let keys = kv.dims()[1];
        let q = self.split_heads(q, batch, queries).mul_scalar(scale); // [b, h, q, d]
        let k_t = self
            .split_heads(kv.narrow(2, 0, inner), batch, keys)
            .swap_dims(2, 3); // [b, h, d, k]
        let mut scores = q.matmul(k_t); // [b, h, q, k]
        if let Some(p) = padding {
            scores = scores + p.bias.clone();
        }
        softmax_last(scores)
    }

    /// Long sequences (thousands of gene tokens): the scores are computed for blocks of
    /// (bag, head) pairs and queries holding at most `score_block` elements, as many queries
    /// per block as fit (long row blocks keep the matrix products efficient: each block
    /// re-packs its keys), then as many pairs as fit.
    fn attend_in_blocks(
        &self,
        q: Tensor<4>,
        k_t: Tensor<4>,
        v: Tensor<4>,
        bias: Option<Tensor<4>>,
        drop: bool,
        return_weights: bool,
    ) -> (Tensor<4>, Option<Tensor<4>>) {
        let [batch, heads, queries, d] = q.dims();
        let keys = k_t.dims()[3];
        let pairs = batch * heads;
        let rows = (self.score_block / keys).clamp(1, queries);
        let pair_block = (self.score_block / (rows * keys)).clamp(1, pairs);
        let q = q.reshape([pairs, queries, d]);
        let k_t = k_t.reshape([pairs, d, keys]);
        let v = v.reshape([pairs, keys, d]);
        let bias = bias.map(|b| b.expand([batch, heads, 1, keys]).reshape([pairs, 1, keys]));
        let (mut outs, mut returned) = (Vec::new(), Vec::new());
        for p0 in (0..pairs).step_by(pair_block) {
            let np = pair_block.min(pairs - p0);
            let k_t = k_t.clone().narrow(0, p0, np);
            let v = v.clone().narrow(0, p0, np);
            let bias = bias.clone().map(|b| b.narrow(0, p0, np));
            let (mut row_outs, mut row_weights) = (Vec::new(), Vec::new());
            for r0 in (0..queries).step_by(rows) {
                let nr = rows.min(queries - r0);
                let q = q.clone().narrow(0, p0, np).narrow(1, r0, nr);
                let mut scores = q.matmul(k_t.clone()); // [np, nr, k]
                if let Some(bias) = &bias {
                    scores = scores + bias.clone();
                }
                let weights = softmax_last(scores);
                if return_weights {
                    row_weights.push(weights.clone());
                }
                row_outs.push(self.weight_dropout(weights, drop).matmul(v.clone()));
            }
            outs.push(Tensor::cat(row_outs, 1)); // [np, q, d]
            if return_weights {
                returned.push(Tensor::cat(row_weights, 1)); // [np, q, k]
            }
        }
        let out = Tensor::cat(outs, 0).reshape([batch, heads, queries, d]);
        let returned =
            return_weights.then(|| Tensor::cat(returned, 0).reshape([batch, heads, queries, keys]));
        (out, returned)
    }

    /// The attention dropout on `weights` with `drop`, else the weights.
    fn weight_dropout<const D: usize>(&self, weights: Tensor<D>, drop: bool) -> Tensor<D> {
        if drop {
            dropout(&self.attn_dropout, weights)
        } else {
            weights
        }
    }

    /// `[b, n, h · d]` → `[b, h, n, d]`.
    fn split_heads(&self, t: Tensor<3>, batch: usize, tokens: usize) -> Tensor<4> {
        t.reshape([batch, tokens, self.heads, self.dim_head])
            .swap_dims(1, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    fn device() -> Device {
        Device::flex()
    }

    #[test]
    fn matches_a_hand_computed_single_head() {
        let device = device();
        let mut attn = AttentionConfig::new(2)
            .with_heads(1)
            .with_dim_head(2)
            .init(&device);
        // Identity query/key/value projections and output; LayerNorm of [a, b] is ±1.
        let eye = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]),
            &device,
        );
        let kv = Tensor::cat(vec![eye.clone(), eye.clone()], 1);
        attn.to_q.weight = attn.to_q.weight.map(|_| eye.clone());
        attn.to_kv.weight = attn.to_kv.weight.map(|_| kv);
        attn.to_out.weight = attn.to_out.weight.map(|_| eye.clone());
        attn.to_out.bias = attn.to_out.bias.map(|b| b.map(|t| t.zeros_like()));
        // Two tokens normalize to [1, -1] and [-1, 1].
        let x = Tensor::<3>::from_data(
            TensorData::new(vec![3.0f32, 1.0, 0.0, 5.0], [1, 2, 2]),
            &device,
        );
        let (out, weights) = attn.forward(AttentionInput::self_attn(x).return_weights());
        // Scores: q·k / √2 = ±2/√2 = ±√2; softmax([√2, -√2]) = [s, 1 - s].
        let s = 1.0 / (1.0 + (-2.0f32 * 2f32.sqrt()).exp());
        let expected_w = vec![s, 1.0 - s, 1.0 - s, s];
        weights.unwrap().into_data().assert_approx_eq::<f32>(
            &TensorData::new(expected_w, [1, 1, 2, 2]),
            Tolerance::absolute(1e-5),
        );
        let a = s - (1.0 - s);
        let expected = vec![a, -a, -a, a];
        out.into_data().assert_approx_eq::<f32>(
            &TensorData::new(expected, [1, 2, 2]),
            Tolerance::absolute(1e-4),
        );
    }

    #[test]
    fn blocks_of_queries_give_the_same_result() {
        let device = device();
        let whole = AttentionConfig::new(8)
            .with_heads(2)
            .with_dim_head(4)
            .init(&device);
        let x = Tensor::<3>::random([2, 10, 8], Distribution::Default, &device);
        let mask = Tensor::<2, Bool>::from_data(
            TensorData::new(
                (0..20).map(|i| i == 8 || i == 9 || i == 19).collect(),
                [2, 10],
            ),
            &device,
        );
        let padding = KeyPadding::new(mask);
        let input = || {
            AttentionInput::self_attn(x.clone())
                .padding(&padding)
                .return_weights()
        };
        let (a, wa) = whole.forward(input());
        // 2 bags · 2 heads · 10 queries · 10 keys = 400 scores. The same weights, in blocks of
        // 2 query rows of one pair (25), 10 rows of one pair (120), 10 rows of 2 pairs (200),
        // 10 rows of 3 pairs (the last block holds 1).
        for block in [25, 120, 200, 300] {
            let mut blocked = AttentionConfig::new(8)
                .with_heads(2)
                .with_dim_head(4)
                .with_score_block(block)
                .init(&device);
            blocked.norm = whole.norm.clone();
            blocked.to_q = whole.to_q.clone();
            blocked.to_kv = whole.to_kv.clone();
            blocked.to_out = whole.to_out.clone();
            let (b, wb) = blocked.forward(input());
            a.clone()
                .into_data()
                .assert_approx_eq::<f32>(&b.into_data(), Tolerance::absolute(1e-6));
            wa.clone()
                .unwrap()
                .into_data()
                .assert_approx_eq::<f32>(&wb.unwrap().into_data(), Tolerance::absolute(1e-6));
        }
    }

    #[test]
    fn padded_keys_get_zero_weight() {
        let device = device();
        let attn = AttentionConfig::new(8)
            .with_heads(2)
            .with_dim_head(4)
            .init(&device);
        let x = Tensor::<3>::random([2, 5, 8], Distribution::Default, &device);
        let mask = Tensor::<2, Bool>::from_data(
            TensorData::new(
                vec![
                    false, false, false, true, true, false, false, false, false, false,
                ],
                [2, 5],
            ),
            &device,
        );
        let padding = KeyPadding::new(mask);
        let (_, w) = attn.forward(
            AttentionInput::self_attn(x)
                .padding(&padding)
                .return_weights(),
        );
        let w = w.unwrap();
        let padded: f32 = w
            .clone()
            .narrow(0, 0, 1)
            .narrow(3, 3, 2)
            .abs()
            .max()
            .into_scalar();
        assert!(padded < 1e-12, "padded weight {padded}");
        let sums = w.sum_dim(3).into_data();
        sums.assert_approx_eq::<f32>(
            &TensorData::new(vec![1.0f32; 20], [2, 2, 5, 1]),
            Tolerance::absolute(1e-5),
        );
    }

    /// The output of `attn` over `x` (attending to `context` and itself when given, else
    /// self-attention), padded by `padding`, and the gradients of `Σ out ⊙ w` with respect to
    /// the input, the context and every parameter; through the tensor path (weights
    /// returned) or the fused core.
    fn outputs_and_grads(
        attn: &Attention,
        x: &Tensor<3>,
        context: Option<&Tensor<3>>,
        padding: &KeyPadding,
        w: &Tensor<3>,
        tensor_path: bool,
    ) -> Vec<(&'static str, Vec<f32>)> {
        use crate::kernels::testing::values;
        let x = x.clone().require_grad();
        let context = context.map(|c| c.clone().require_grad());
        let mut input = match &context {
            Some(c) => AttentionInput::cross_attn(x.clone(), c.clone())
                .kv_include_self()
                .padding(padding),
            None => AttentionInput::self_attn(x.clone()).padding(padding),
        };
        if tensor_path {
            input = input.return_weights();
        }
        let (out, _) = attn.forward(input);
        let grads = (out.clone() * w.clone()).sum().backward();
        let mut g = vec![
            ("output", values(out)),
            ("d input", values(x.grad(&grads).unwrap())),
        ];
        if let Some(c) = &context {
            g.push(("d context", values(c.grad(&grads).unwrap())));
        }
        for (name, p) in [
            ("d W_q", &attn.to_q.weight),
            ("d W_kv", &attn.to_kv.weight),
            ("d W_out", &attn.to_out.weight),
        ] {
            g.push((name, values(p.grad(&grads).unwrap())));
        }
        g.push(("d γ", values(attn.norm.gamma.grad(&grads).unwrap())));
        g
    }

    /// The fused core (flex, no weights returned) equals the tensor path (taken when the
    /// weights are returned) in values and in the gradients of the input, the context and
    /// every parameter: self-attention over padded bags, and a CLS token attending to itself
    /// and a padded context; in a graph and outside one. (Dropout draws its seeds from the
    /// backend's global generator, which tests running beside this one also draw from; the
    /// core's dropout is tested with explicit seeds in `kernels::attention`.)
    #[test]
    fn fused_core_equals_the_tensor_path() {
        use crate::kernels::testing::close_named;
        let device = Device::flex().autodiff();
        device.seed(21);
        let attn = AttentionConfig::new(12)
            .with_heads(3)
            .with_dim_head(5)
            .init(&device);
        let x = Tensor::<3>::random([2, 7, 12], Distribution::Normal(0.0, 1.0), &device);
        let cls = Tensor::<3>::random([2, 1, 12], Distribution::Normal(0.0, 1.0), &device);
        let context = Tensor::<3>::random([2, 6, 12], Distribution::Normal(0.0, 1.0), &device);
        let padded = |n: usize, pad: &[usize]| {
            let mask = (0..2 * n).map(|i| pad.contains(&i)).collect();
            KeyPadding::new(Tensor::<2, Bool>::from_data(
                TensorData::new(mask, [2, n]),
                &device,
            ))
        };
        let w_self = Tensor::<3>::random([2, 7, 12], Distribution::Default, &device);
        let w_cross = Tensor::<3>::random([2, 1, 12], Distribution::Default, &device);
        let self_padding = padded(7, &[5, 6, 13]);
        let cross_padding = padded(7, &[6, 12, 13]);
        for (case, cross) in [("self", false), ("cross", true)] {
            let (x, w, padding) = if cross {
                (&cls, &w_cross, &cross_padding)
            } else {
                (&x, &w_self, &self_padding)
            };
            let run = |tensor_path| {
                outputs_and_grads(&attn, x, cross.then_some(&context), padding, w, tensor_path)
            };
            let (fused, reference) = (run(false), run(true));
            assert_eq!(
                fused.len(),
                reference.len(),
                "{case}: the same values compared"
            );
            for ((name, a), (_, b)) in fused.iter().zip(&reference) {
                assert!(a.iter().any(|v| v.abs() > 1e-4), "{case} {name}: trivial");
                close_named(&format!("{case} {name}"), a, b, 1e-5);
            }
        }
        // Outside a graph.
        let plain = Device::flex();
        let attn = attn.valid();
        let x = Tensor::<3>::from_data(x.into_data(), &plain);
        let padding = padded(7, &[5, 6, 13]);
        let padding = KeyPadding::new(
            padding
                .bias
                .clone()
                .reshape([2, 7])
                .lower_elem(-1.0)
                .to_device(&plain),
        );
        let fused = attn
            .forward(AttentionInput::self_attn(x.clone()).padding(&padding))
            .0;
        let reference = attn
            .forward(
                AttentionInput::self_attn(x)
                    .padding(&padding)
                    .return_weights(),
            )
            .0;
        fused
            .into_data()
            .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-5));
    }
}
