//! Attention at transcriptome scale: the RNA encoder's Nyström option against exact
//! attention (outputs, a short training run), and its configuration.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use med_crossvit::model::{
    Attention, AttentionConfig, AttentionInput, AttentionKind, MedCrossViTConfig, RnaTokenizer,
};
use med_crossvit::{MedCrossViT, ModelInput};

use crate::support;

/// An attention layer of `kind` with the weights of `like` (or fresh ones).
fn layer(kind: AttentionKind, like: Option<&Attention>, device: &Device) -> Attention {
    let mut a = AttentionConfig::new(32)
        .with_heads(4)
        .with_dim_head(8)
        .with_kind(kind)
        .init(device);
    if let Some(like) = like {
        a.norm = like.norm.clone();
        a.to_q = like.to_q.clone();
        a.to_kv = like.to_kv.clone();
        a.to_out = like.to_out.clone();
    }
    a
}

/// `‖a − b‖ / ‖b‖`.
fn relative_error(a: Tensor<3>, b: Tensor<3>) -> f32 {
    let diff: f32 = (a - b.clone()).powf_scalar(2.0).sum().sqrt().into_scalar();
    let norm: f32 = b.powf_scalar(2.0).sum().sqrt().into_scalar();
    diff / norm
}

/// Tokens with structure, as gene tokens have (smooth along the sequence plus noise), for
/// `n` tokens of width 32 in 2 bags.
fn tokens(n: usize, device: &Device) -> Tensor<3> {
    let smooth: Vec<f32> = (0..2 * n * 32)
        .map(|i| {
            let (t, c) = ((i / 32) % n, i % 32);
            ((t as f32 / n as f32) * (1.0 + c as f32 / 8.0) * 6.0).sin()
        })
        .collect();
    let smooth = Tensor::<3>::from_data(TensorData::new(smooth, [2, n, 32]), device);
    smooth + Tensor::<3>::random([2, n, 32], Distribution::Normal(0.0, 0.3), device)
}

/// Nyström attention approaches exact attention as landmarks grow, and is exact where they
/// cover every token; its error on random tokens is printed (`--nocapture`) for
/// `docs/attention.md`.
#[test]
fn nystrom_approaches_exact_attention() {
    let _serial = crate::support::serial();
    let device = Device::flex();
    device.seed(12);
    let n = 257;
    let exact = layer(AttentionKind::Exact, None, &device);
    for (name, x) in [
        ("structured", tokens(n, &device)),
        (
            "random",
            Tensor::<3>::random([2, n, 32], Distribution::Normal(0.0, 1.0), &device),
        ),
    ] {
        let reference = exact.forward(AttentionInput::self_attn(x.clone())).0;
        let mut errors = Vec::new();
        for m in [16, 64, 128, n] {
            let ny = layer(AttentionKind::nystrom(m), Some(&exact), &device);
            let out = ny.forward(AttentionInput::self_attn(x.clone())).0;
            errors.push(relative_error(out, reference.clone()));
        }
        println!("{name} tokens, n = {n}: relative error at 16, 64, 128, n landmarks: {errors:?}");
        assert!(
            errors[3] < 1e-6,
            "{name}: exact with n landmarks: {errors:?}"
        );
        assert!(
            errors[2] < errors[0],
            "{name}: more landmarks, less error: {errors:?}"
        );
        assert!(errors.iter().all(|e| e.is_finite()), "{errors:?}");
    }
}

/// A config without `rna_attention` (every config written before it) reads as exact, and
/// an exact config writes no such field; the Nyström form round-trips; zero landmarks are
/// refused by name.
#[test]
fn rna_attention_in_config_files() {
    let old = r#"{"num_classes": 2, "wsi_dim": 8, "rna_dim": 8}"#;
    let config = MedCrossViTConfig::from_json(old).unwrap();
    assert_eq!(config.rna_attention, AttentionKind::Exact);
    assert!(!config.to_json().contains("rna_attention"));
    let mut ny = config.clone();
    ny.rna_attention = AttentionKind::nystrom(64);
    let json = ny.to_json();
    assert!(json.contains(r#""kind": "nystrom""#), "{json}");
    assert_eq!(MedCrossViTConfig::from_json(&json).unwrap(), ny);
    let zero = r#"{"num_classes": 2, "wsi_dim": 8, "rna_dim": 8,
        "rna_attention": {"kind": "nystrom", "landmarks": 0}}"#;
    let err = MedCrossViTConfig::from_json(zero).unwrap_err().to_string();
    assert!(err.contains("rna_attention.landmarks"), "{err}");
}

/// A per-gene model of `genes` genes with the RNA attention of `kind`, no dropout.
fn model(kind: AttentionKind, genes: usize, device: &Device) -> MedCrossViT {
    let config = MedCrossViTConfig {
        rna_tokenizer: RnaTokenizer::PerGene,
        rna_attention: kind,
        dropout: 0.0,
        emb_dropout: 0.0,
        ..support::tiny_model(2, genes)
    };
    config.init(device).unwrap()
}

/// A batch of `n` samples whose class (the sign of the mean of genes 0..4) only the RNA
/// branch can see: tiles are noise.
fn batch(n: usize, genes: usize, device: &Device) -> (ModelInput, Tensor<1, Int>) {
    let expr = Tensor::<2>::random([n, genes], Distribution::Normal(0.0, 1.0), device);
    let signal = expr.clone().narrow(1, 0, 4).mean_dim(1);
    let labels = signal.greater_elem(0.0).int().reshape([n]);
    let tiles = Tensor::<3>::random([n, 4, 8], Distribution::Normal(0.0, 1.0), device);
    (ModelInput::new(tiles, expr), labels)
}

/// Trains a model of `kind` for `steps` AdamW steps on fresh batches and returns its
/// accuracy on 256 held-out samples.
fn train_accuracy(kind: AttentionKind, steps: usize, seed: u64) -> f64 {
    let (genes, device) = (96, Device::flex().autodiff());
    device.seed(seed);
    let mut net = model(kind, genes, &device);
    let mut optim = AdamWConfig::new().init();
    for _ in 0..steps {
        let (input, labels) = batch(32, genes, &device);
        let logits = net.forward(input).unwrap().logits;
        let loss = -log_softmax(logits, 1)
            .gather(1, labels.reshape([32, 1]))
            .mean();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(1e-2, net, grads);
    }
    let net = net.valid();
    let plain = Device::flex();
    plain.seed(seed + 1000);
    let (input, labels) = batch(256, genes, &plain);
    let predicted = net.forward(input).unwrap().logits.argmax(1).reshape([256]);
    let correct: i64 = predicted.equal(labels).int().sum().into_scalar();
    correct as f64 / 256.0
}

/// A short training run learns the RNA signal with either attention; the accuracies are
/// printed (`--nocapture`) for `docs/attention.md`.
#[test]
fn nystrom_trains_as_exact_attention_does() {
    let _serial = crate::support::serial();
    let steps = 80;
    let exact = train_accuracy(AttentionKind::Exact, steps, 5);
    let ny = train_accuracy(AttentionKind::nystrom(16), steps, 5);
    println!("held-out accuracy after {steps} steps: exact {exact:.3}, nystrom:16 {ny:.3}");
    // Chance is 0.5 ± 0.03 on 256 samples.
    assert!(exact > 0.6 && ny > 0.6, "exact {exact}, nystrom {ny}");
}
