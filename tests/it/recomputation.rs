//! Training steps that recompute each segment's activations in the backward pass
//! (`MedCrossViT::backward_recomputed`) against the ordinary backward pass.
//!
//! One test function: Burn's generator is process-wide, and the dropout check needs it to
//! itself between reseeding and drawing.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Distribution, Int, Tensor, TensorData};

use med_crossvit::{MedCrossViT, MedCrossViTConfig, ModelInput};

use crate::support;

fn config(dropout: f64) -> MedCrossViTConfig {
    let mut c = MedCrossViTConfig::small(3, 12, 8);
    c.rna_num_genes = 6;
    c.wsi_num_tiles = 5;
    c.depth = 2;
    c.wsi_enc_depth = 2;
    c.dropout = dropout;
    c.emb_dropout = dropout;
    c
}

fn batch(device: &Device) -> (ModelInput, Tensor<1, Int>) {
    let tiles = Tensor::<3>::random([3, 5, 12], Distribution::Default, device);
    let expression = Tensor::<2>::random([3, 6], Distribution::Default, device);
    let mask = Tensor::<2, Bool>::from_data(
        TensorData::new(
            vec![
                false, false, false, false, false, false, false, false, true, true, false, false,
                false, false, true,
            ],
            [3, 5],
        ),
        device,
    );
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2, 1], [3]), device);
    (ModelInput::new(tiles, expression).mask_pad(mask), labels)
}

fn nll(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let n = labels.dims()[0];
    log_softmax(logits, 1)
        .gather(1, labels.reshape([n, 1]))
        .mean()
        .neg()
}

/// Every parameter's value by id.
struct Values(HashMap<ParamId, Vec<f32>>);
impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v = param
            .val()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        self.0.insert(param.id, v);
    }
}
fn values(model: &MedCrossViT) -> HashMap<ParamId, Vec<f32>> {
    let mut v = Values(HashMap::new());
    model.visit(&mut v);
    v.0
}

/// Every parameter's gradient by id.
struct Grads<'a>(&'a mut GradientsParams, HashMap<ParamId, Vec<f32>>);
impl ModuleVisitor for Grads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.0.get::<D>(param.id) {
            let v = g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
            self.1.insert(param.id, v);
        }
    }
}
fn grads(model: &MedCrossViT, mut g: GradientsParams) -> HashMap<ParamId, Vec<f32>> {
    let mut v = Grads(&mut g, HashMap::new());
    model.visit(&mut v);
    v.1
}

fn assert_close(a: &HashMap<ParamId, Vec<f32>>, b: &HashMap<ParamId, Vec<f32>>, tol: f32) {
    assert_eq!(a.len(), b.len(), "parameter count");
    for (id, x) in a {
        let y = &b[id];
        assert!(
            !x.is_empty() && x.len() == y.len(),
            "{id}: {} vs {} values",
            x.len(),
            y.len()
        );
        for (u, v) in x.iter().zip(y) {
            assert!((u - v).abs() <= tol * (1.0 + u.abs()), "{id}: {u} vs {v}");
        }
    }
}

/// The gradients collected segment by segment equal the ordinary backward pass's.
fn check_gradients(dropout: f64) {
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = config(dropout).init(&device).unwrap();
    let (input, labels) = batch(&device);

    let logits = if dropout == 0.0 {
        // Without dropout the reference is the model's own forward pass.
        model.forward(input.clone()).unwrap().logits
    } else {
        model.forward_reseeded(input.clone(), 11).unwrap()
    };
    let reference_loss = nll(logits, labels.clone());
    let reference = grads(
        &model,
        GradientsParams::from_grads(reference_loss.backward(), &model),
    );

    let mut accumulator = GradientsAccumulator::<MedCrossViT>::new();
    let step = model
        .clone()
        .backward_recomputed(
            input,
            11,
            |l| nll(l, labels),
            |m, g| {
                accumulator.accumulate(&m, g);
                m
            },
        )
        .unwrap();
    let loss_a = reference_loss.into_scalar::<f32>();
    let loss_b = step.loss.into_scalar::<f32>();
    assert!((loss_a - loss_b).abs() < 1e-6, "{loss_a} vs {loss_b}");
    let recomputed = grads(&model, accumulator.grads());
    assert_close(&reference, &recomputed, 1e-5);
}

/// With AdamW stepping each group of weights as soon as its gradients are final, two steps
/// leave the same weights as two ordinary steps.
fn check_updates_during_the_backward_pass() {
    let device = Device::flex().autodiff();
    device.seed(5);
    let model = config(0.0).init(&device).unwrap();
    let (input, labels) = batch(&device);
    let mut plain = model.clone();
    let mut fused = model;
    let mut opt_plain = AdamWConfig::new().init();
    let mut opt_fused = AdamWConfig::new().init();
    for _ in 0..2 {
        let loss = nll(plain.forward(input.clone()).unwrap().logits, labels.clone());
        let g = GradientsParams::from_grads(loss.backward(), &plain);
        plain = opt_plain.step(1e-3, plain, g);
        let l = labels.clone();
        fused = fused
            .backward_recomputed(
                input.clone(),
                0,
                |x| nll(x, l),
                |m, g| opt_fused.step(1e-3, m, g),
            )
            .unwrap()
            .model;
    }
    assert_close(&values(&plain), &values(&fused), 1e-5);
}

#[test]
fn recomputed_backward_pass() {
    let _serial = support::serial();
    // Without dropout the reference is the model's own forward pass.
    check_gradients(0.0);
    // With dropout, the forward pass drawing the same masks in one graph.
    check_gradients(0.3);
    check_updates_during_the_backward_pass();
}
