//! [`AttentionKind`]: exact softmax attention, or its Nyström approximation for long
//! sequences (the RNA encoder at transcriptome scale).
//!
//! Nyström attention (Xiong et al., 2021, <https://arxiv.org/abs/2102.03902>; the attention
//! of SurvPath's transcriptome encoder) approximates the weights `softmax(S)`, `S = scale ·
//! Q·Kᵀ`, from `m` landmarks, the means of `m` segments of consecutive queries (`Q̃`) and
//! keys (`K̃`):
//!
//! `softmax(scale · Q·K̃ᵀ) · pinv(softmax(scale · Q̃·K̃ᵀ)) · softmax(scale · Q̃·Kᵀ) · V`,
//!
//! computed right to left, so that no `n × n` matrix appears: `O(n · m)` time and memory
//! instead of `O(n²)`. The two `n × m` attentions go through the attention core (the fused
//! one on flex, with its memory-efficient backward pass), the `m × m` part through tensor
//! operations, and Burn's autodiff differentiates the whole. `docs/attention.md` gives its
//! accuracy cost.

use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// How a self-attention layer weighs its keys.
///
/// In JSON: `{"kind": "exact"}` or `{"kind": "nystrom", "landmarks": 256}` (with an
/// optional `"pinv_iterations"`, default 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttentionKind {
    /// Softmax attention over every key: `O(n²)` scores per head (computed in blocks, never
    /// all kept, on flex).
    #[default]
    Exact,
    /// The Nyström approximation from `landmarks` segment means; sequences of at most
    /// `landmarks` tokens are attended exactly. No dropout acts on its weights (the output's
    /// dropout still does).
    Nystrom {
        /// Landmarks (segments of consecutive tokens); at least 1.
        landmarks: usize,
        /// Iterations of the pseudo-inverse; at least 1. Default 6.
        #[serde(default = "default_pinv_iterations")]
        pinv_iterations: usize,
    },
}

/// The pseudo-inverse's iterations unless told: Nyströmformer's 6.
pub const DEFAULT_PINV_ITERATIONS: usize = 6;

fn default_pinv_iterations() -> usize {
    DEFAULT_PINV_ITERATIONS
}

impl AttentionKind {
    /// Nyström attention with `landmarks` landmarks and the default iterations.
    pub fn nystrom(landmarks: usize) -> Self {
        Self::Nystrom {
            landmarks,
            pinv_iterations: DEFAULT_PINV_ITERATIONS,
        }
    }

    /// Whether this is [`AttentionKind::Exact`] (for `skip_serializing_if`).
    pub fn is_exact(&self) -> bool {
        *self == Self::Exact
    }
}

/// Means of `x` (`[b, n, c]`) over segments of `s = ⌈n / m⌉` consecutive tokens (the last
/// may be shorter): `[b, segments, c]` with `segments = ⌈n / s⌉ ≤ m`, and the number of
/// tokens each mean counts, `[b, segments]`. With `keep` (`[b, n]`, 1 for real tokens, 0 for
/// padding) only real tokens count; a segment without any has mean 0 and count 0.
pub(super) fn segment_means(
    x: Tensor<3>,
    m: usize,
    keep: Option<Tensor<2>>,
) -> (Tensor<3>, Tensor<2>) {
    let [b, n, c] = x.dims();
    let device = x.device();
    let s = n.div_ceil(m.max(1)).max(1);
    let segments = n.div_ceil(s);
    let pad = segments * s - n;
    let x = match &keep {
        Some(k) => x * k.clone().reshape([b, n, 1]),
        None => x,
    };
    let x = if pad > 0 {
        Tensor::cat(vec![x, Tensor::zeros([b, pad, c], &device)], 1) // [b, segments · s, c]
    } else {
        x
    };
    let sums = x
        .reshape([b, segments, s, c])
        .sum_dim(2)
        .reshape([b, segments, c]);
    let counts = match keep {
        Some(k) => {
            let k = if pad > 0 {
                Tensor::cat(vec![k, Tensor::zeros([b, pad], &device)], 1)
            } else {
                k
            };
            k.reshape([b, segments, s])
                .sum_dim(2)
                .reshape([b, segments])
        }
        None => {
            let one: Vec<f32> = (0..segments).map(|j| (s.min(n - j * s)) as f32).collect();
            Tensor::<2>::from_data(TensorData::new(one, [1, segments]), &device)
                .expand([b, segments])
        }
    };
    let means = sums / counts.clone().clamp_min(1.0).reshape([b, segments, 1]);
    (means, counts)
}

/// The Moore–Penrose pseudo-inverse of each `[m, m]` matrix of `a` (`[b, h, m, m]`), by
/// `iterations` steps of the cubically converging iteration of Razavi et al. (2014),
/// `Z ← ¼ Z (13 I − AZ (15 I − AZ (7 I − AZ)))`, from `Z₀ = Aᵀ / (‖A‖₁ ‖A‖∞)` (each
/// matrix's own norms).
pub(super) fn pinv(a: Tensor<4>, iterations: usize) -> Tensor<4> {
    let m = a.dims()[2];
    let device = a.device();
    let abs = a.clone().abs();
    let rows = abs.clone().sum_dim(3).max_dim(2); // [b, h, 1, 1]
    let cols = abs.sum_dim(2).max_dim(3); // [b, h, 1, 1]
    let mut z = a.clone().swap_dims(2, 3) / (rows * cols).clamp_min(1e-30);
    let eye: Vec<f32> = (0..m * m)
        .map(|i| if i / m == i % m { 1.0 } else { 0.0 })
        .collect();
    let eye = Tensor::<4>::from_data(TensorData::new(eye, [1, 1, m, m]), &device);
    let times = |k: f32| eye.clone().mul_scalar(k);
    for _ in 0..iterations {
        let az = a.clone().matmul(z.clone());
        let t = times(7.0) - az.clone();
        let t = times(15.0) - az.clone().matmul(t);
        let t = times(13.0) - az.matmul(t);
        z = z.matmul(t).mul_scalar(0.25);
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{close_named, values};
    use burn::tensor::{Device, Distribution};

    #[test]
    fn segment_means_of_uneven_and_padded_segments() {
        let device = Device::flex();
        // 7 tokens in 3 landmarks: segments of 3, 3 and 1.
        let x = Tensor::<3>::from_data(
            TensorData::new((0..14).map(|v| v as f32).collect(), [1, 7, 2]),
            &device,
        );
        let (means, counts) = segment_means(x.clone(), 3, None);
        close_named(
            "means",
            &values(means),
            &[2.0, 3.0, 8.0, 9.0, 12.0, 13.0],
            1e-6,
        );
        close_named("counts", &values(counts), &[3.0, 3.0, 1.0], 0.0);
        // Tokens 1 and 6 padded: the first segment averages tokens 0 and 2, the last none.
        let keep = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0], [1, 7]),
            &device,
        );
        let (means, counts) = segment_means(x, 3, Some(keep));
        close_named(
            "padded means",
            &values(means),
            &[2.0, 3.0, 8.0, 9.0, 0.0, 0.0],
            1e-6,
        );
        close_named("padded counts", &values(counts), &[2.0, 3.0, 0.0], 0.0);
    }

    #[test]
    fn pinv_inverts_softmax_matrices() {
        let device = Device::flex();
        device.seed(3);
        let s = Tensor::<4>::random([2, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device);
        let a = burn::tensor::activation::softmax(s, 3);
        let z = pinv(a.clone(), 20);
        let eye: Vec<f32> = (0..2 * 3 * 36)
            .map(|i| if (i % 36) / 6 == i % 6 { 1.0 } else { 0.0 })
            .collect();
        close_named("A · pinv(A)", &values(a.matmul(z)), &eye, 1e-3);
    }

    #[test]
    fn json_forms() {
        let exact: AttentionKind = serde_json::from_str(r#"{"kind": "exact"}"#).unwrap();
        assert_eq!(exact, AttentionKind::Exact);
        let n: AttentionKind =
            serde_json::from_str(r#"{"kind": "nystrom", "landmarks": 64}"#).unwrap();
        assert_eq!(n, AttentionKind::nystrom(64));
        let json = serde_json::to_string(&AttentionKind::nystrom(8)).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"nystrom","landmarks":8,"pinv_iterations":6}"#
        );
        assert!(
            serde_json::from_str::<AttentionKind>(r#"{"kind": "nystrom", "landmark": 64}"#)
                .is_err()
        );
    }
}
