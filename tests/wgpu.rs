//! The GPU code path: a forward pass and a training step on wgpu agree with flex.
//!
//! Runs with `--features wgpu` on any Vulkan, Metal or DX12 device, including a software one
//! (Mesa's lavapipe, Debian package `mesa-vulkan-drivers`), which is how CI runs it.
#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, DeviceKind, Int, Tensor, TensorData};
use med_crossvit::{MedCrossViT, MedCrossViTConfig, ModelInput};

#[path = "it/support/mod.rs"]
mod support;

fn tiny() -> MedCrossViTConfig {
    MedCrossViTConfig {
        dropout: 0.0,
        emb_dropout: 0.0,
        ..support::tiny_model(3, 5)
    }
}

fn input(device: &Device) -> ModelInput {
    let tiles: Vec<f32> = (0..2 * 6 * 8)
        .map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.5)
        .collect();
    let expr: Vec<f32> = (0..2 * 5)
        .map(|i| ((i * 5) % 13) as f32 / 13.0 - 0.5)
        .collect();
    let mask: Vec<bool> = (0..12).map(|i| i == 5 || i == 4).collect();
    ModelInput::new(
        Tensor::from_data(TensorData::new(tiles, [2, 6, 8]), device),
        Tensor::from_data(TensorData::new(expr, [2, 5]), device),
    )
    .mask_pad(Tensor::<2, Bool>::from_data(
        TensorData::new(mask, [2, 6]),
        device,
    ))
    .with_attention()
}

fn close(a: Tensor<2>, b: Tensor<2>) {
    let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
    let b: Vec<f32> = b.into_data().try_to_vec().unwrap();
    assert!(!b.is_empty(), "nothing to compare");
    assert_eq!(a.len(), b.len(), "wgpu {a:?} vs flex {b:?}");
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "wgpu {a:?} vs flex {b:?}");
    }
}

/// The same weights on both devices: saved from flex, loaded on wgpu.
fn pair(gpu: &Device, cpu: &Device) -> (MedCrossViT, MedCrossViT) {
    // The same weights every run (this binary holds one test, so nothing else draws).
    cpu.seed(42);
    let model = tiny().init(cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    (MedCrossViT::load(dir.path(), gpu).unwrap(), model)
}

/// One training step: returns the loss, the gradient of the RNA head's weight, and the
/// updated model. (AdamW's first step moves each weight by about ±lr whatever the gradient's
/// size, so a small learning rate keeps backend rounding in near-zero gradients from showing.)
fn step(model: MedCrossViT, device: &Device) -> (f32, Tensor<2>, MedCrossViT) {
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), device);
    let logits = model.forward(input(device)).unwrap().logits;
    let loss = log_softmax(logits, 1)
        .gather(1, labels.reshape([2, 1]))
        .mean()
        .neg();
    let value = loss.clone().into_scalar::<f32>();
    let gradients = loss.backward();
    let head = model
        .rna_head
        .linear
        .weight
        .val()
        .grad(&gradients)
        .expect("a gradient");
    let grads = GradientsParams::from_grads(gradients, &model);
    (
        value,
        head,
        AdamWConfig::new().init().step(1e-3, model, grads),
    )
}

#[test]
fn forward_and_a_training_step_agree_with_flex() {
    let gpu = Device::wgpu(DeviceKind::DefaultDevice);
    let cpu = Device::flex();
    let (on_gpu, on_cpu) = pair(&gpu, &cpu);
    let a = on_gpu.forward(input(&gpu)).unwrap();
    let b = on_cpu.forward(input(&cpu)).unwrap();
    close(a.logits, b.logits);
    close(
        a.attention.unwrap().tile_scores(),
        b.attention.unwrap().tile_scores(),
    );

    let (on_gpu, on_cpu) = pair(&gpu.clone().autodiff(), &cpu.clone().autodiff());
    let (loss_gpu, grad_gpu, on_gpu) = step(on_gpu, &gpu.clone().autodiff());
    let (loss_cpu, grad_cpu, on_cpu) = step(on_cpu, &cpu.clone().autodiff());
    assert!(
        (loss_gpu - loss_cpu).abs() < 1e-4,
        "loss {loss_gpu} vs {loss_cpu}"
    );
    close(grad_gpu, grad_cpu);
    let (on_gpu, on_cpu) = (on_gpu.valid(), on_cpu.valid());
    close(
        on_gpu.forward(input(&gpu)).unwrap().logits,
        on_cpu.forward(input(&cpu)).unwrap().logits,
    );
}
