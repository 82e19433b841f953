//! Model timings with divan: the seed-size forward pass and training step (the targets of
//! `med-crossvit bench`), and the forward pass per gene tokenizer at larger gene counts.
//!
//! `cargo bench --bench model` (flex).

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use med_crossvit::model::{GeneGroup, RnaTokenizer};
use med_crossvit::{MedCrossViT, MedCrossViTConfig, ModelInput};

fn main() {
    // As the command-line tool does.
    med_crossvit::runtime::keep_freed_memory();
    divan::main();
}

fn input(c: &MedCrossViTConfig, batch: usize, device: &Device) -> ModelInput {
    ModelInput::new(
        Tensor::<3>::random(
            [batch, c.wsi_num_tiles, c.wsi_dim],
            Distribution::Default,
            device,
        ),
        Tensor::<2>::random([batch, c.rna_num_genes], Distribution::Default, device),
    )
}

fn forward(model: &MedCrossViT, x: &ModelInput) {
    let out = model.forward(x.clone()).expect("valid input");
    divan::black_box(out.logits.into_data());
}

/// The original's published arguments, batch 16.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn seed_forward(bencher: divan::Bencher) {
    let device = Device::flex();
    let c = MedCrossViTConfig::seed();
    let model = c.init(&device).expect("valid");
    let x = input(&c, 16, &device);
    bencher.bench_local(|| forward(&model, &x));
}

/// Forward, backward and AdamW update at the seed size, batch 16: the ordinary backward
/// pass (`false`) or each layer recomputed and updated at once (`true`, as
/// `train --gradient-checkpointing`).
#[divan::bench(args = [false, true], sample_count = 3, sample_size = 1)]
fn seed_train_step(bencher: divan::Bencher, recompute: bool) {
    let device = Device::flex().autodiff();
    let c = MedCrossViTConfig::seed();
    let mut model = Some(c.init(&device).expect("valid"));
    let mut optimizer = AdamWConfig::new().init();
    let x = input(&c, 16, &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64; 16], [16]), &device);
    bencher.bench_local(|| {
        let m = model.take().expect("a model");
        let loss = |logits| {
            log_softmax(logits, 1)
                .gather(1, labels.clone().reshape([16, 1]))
                .mean()
                .neg()
        };
        let m = if recompute {
            m.backward_recomputed(x.clone(), 0, loss, |m, g| optimizer.step(1e-4, m, g))
                .expect("valid")
                .model
        } else {
            let loss = loss(m.forward(x.clone()).expect("valid").logits);
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            optimizer.step(1e-4, m, grads)
        };
        divan::black_box(m.valid().rna_head.linear.weight.val().into_data());
        model = Some(m);
    });
}

/// The seed model with each gene tokenizer at 2,000 genes, batch 2 (the dense tokenizer
/// would need 3 billion weights there and is left out).
#[divan::bench(args = ["per_gene", "pathways"], sample_count = 3, sample_size = 1)]
fn tokenizer_2000_genes(bencher: divan::Bencher, tokenizer: &str) {
    let device = Device::flex();
    let genes = 2000;
    let mut c = MedCrossViTConfig {
        rna_num_genes: genes,
        ..MedCrossViTConfig::seed()
    };
    c.rna_tokenizer = match tokenizer {
        "per_gene" => RnaTokenizer::PerGene,
        _ => RnaTokenizer::Pathways {
            groups: (0..genes / 50)
                .map(|k| GeneGroup {
                    name: format!("g{k}"),
                    genes: (k * 50..(k + 1) * 50).collect(),
                })
                .collect(),
        },
    };
    let model = c.init(&device).expect("valid");
    divan::black_box(model.num_params());
    let x = input(&c, 2, &device);
    bencher.bench_local(|| forward(&model, &x));
}
