//! The backend's matrix-product rate on the shapes of the seed model's linear layers (batch
//! 16: 816 tile rows, 1616 gene rows) against its 2048² rate, in GFLOP/s, two rounds.
//!
//! `cargo run --release --example product_shapes`; `benches/torch/product_shapes.py` times
//! PyTorch's products on the same shapes. Used in docs/performance.md to tell the product
//! kernel's efficiency apart from the work around the products.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// `(rows, inner, columns)`: the 2048² reference, then the seed model's linear layers
/// (query, key/value, output, MLP in and out) for tiles and genes, and two weight-gradient
/// shapes of the backward pass.
const SHAPES: [(usize, usize, usize); 13] = [
    (2048, 2048, 2048),
    (816, 768, 512),
    (816, 768, 1024),
    (816, 512, 768),
    (816, 768, 2048),
    (816, 2048, 768),
    (1616, 768, 512),
    (1616, 768, 1024),
    (1616, 512, 768),
    (1616, 768, 2048),
    (1616, 2048, 768),
    (768, 816, 2048),
    (2048, 816, 768),
];

/// GFLOP/s of `[m, k] · [k, n]`, median of `iters` after one warm-up.
fn rate(m: usize, k: usize, n: usize, iters: usize, device: &Device) -> f64 {
    let a = Tensor::<2>::random([m, k], Distribution::Default, device);
    let b = Tensor::<2>::random([k, n], Distribution::Default, device);
    let mut times = Vec::new();
    for i in 0..=iters {
        let start = Instant::now();
        let _ = a.clone().matmul(b.clone()).into_data();
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    2.0 * (m * k * n) as f64 / times[times.len() / 2] / 1e9
}

fn main() {
    let device = Device::flex();
    for round in 1..=2 {
        for &(m, k, n) in &SHAPES {
            let r = rate(m, k, n, 8, &device);
            println!("round {round}  {m:>4} × {k:>4} · {k:>4} × {n:>4}  {r:6.1} GFLOP/s");
        }
    }
}
