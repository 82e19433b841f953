//! Forward-pass time of the model at the seed size and at the small preset, on flex.
//!
//! `cargo bench --bench model`

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use med_crossvit::{MedCrossViTConfig, ModelInput};

fn time_forward(name: &str, config: &MedCrossViTConfig, batch: usize, iters: usize) {
    let device = Device::flex();
    let model = config.init(&device).expect("valid config");
    let tiles = Tensor::<3>::random(
        [batch, config.wsi_num_tiles, config.wsi_dim],
        Distribution::Default,
        &device,
    );
    let expression = Tensor::<2>::random(
        [batch, config.rna_num_genes],
        Distribution::Default,
        &device,
    );
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters + 1 {
        let start = Instant::now();
        let out = model
            .forward(ModelInput::new(tiles.clone(), expression.clone()))
            .expect("valid input");
        let _ = out.logits.into_data();
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.remove(0); // warm-up
    times.sort_by(f64::total_cmp);
    println!(
        "{name:<28} batch {batch:>3}: median {:>8.1} ms, min {:>8.1} ms ({iters} iters)",
        times[times.len() / 2],
        times[0]
    );
}

fn main() {
    time_forward(
        "small preset (768 dims)",
        &MedCrossViTConfig::small(2, 768, 64),
        16,
        10,
    );
    time_forward("seed", &MedCrossViTConfig::seed(), 16, 5);
}
