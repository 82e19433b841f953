//! The model's product kernel at f32 and at bf16, in GFLOP/s, alternating the two
//! precisions shape by shape, two rounds; the CPU's bf16 flags first. Shapes: squares, then
//! the seed preset's linear layers (`m` = 16 bags × 51 or 101 tokens) and an attention
//! head's products.
//!
//! `cargo run --release --example bf16_product`. `PRODUCT_CLOCK=cpu` times with the
//! process's CPU time: with `RAYON_NUM_THREADS=1`, the kernels' own rates even while other
//! processes share the cores. Used in docs/precision.md. Without AVX512_BF16 the bf16
//! figures are the emulation's.

use med_crossvit::bench::{Clock, product_rate};
use med_crossvit::runtime::{Precision, missing_bf16_flags};

/// `(m, k, n)` of `[m, k] · [k, n]`.
const SHAPES: [(usize, usize, usize); 10] = [
    (2048, 2048, 2048),
    (1024, 1024, 1024),
    (512, 512, 512),
    (816, 768, 512),
    (816, 768, 1024),
    (816, 512, 768),
    (816, 768, 2048),
    (816, 2048, 768),
    (1616, 768, 2048),
    (51, 64, 51),
];

fn main() {
    let missing = missing_bf16_flags();
    if missing.is_empty() {
        println!("CPU: AVX512_BF16 present");
    } else {
        println!("CPU: lacks {} (bf16 is emulated)", missing.join(", "));
    }
    let cpu = std::env::var("PRODUCT_CLOCK").is_ok_and(|v| v == "cpu");
    let clock = if cpu { Clock::Cpu } else { Clock::Wall };
    println!(
        "clock: {}; threads: {}",
        if cpu { "process CPU time" } else { "wall" },
        rayon::current_num_threads()
    );
    for round in 1..=2 {
        for (m, k, n) in SHAPES {
            let iters = if m * k * n < 1 << 20 { 200 } else { 8 };
            let f32 = product_rate((m, k, n), iters, Precision::F32, clock);
            let bf16 = product_rate((m, k, n), iters, Precision::Bf16, clock);
            println!(
                "round {round}  {m:>4} × {k:>4} · {k:>4} × {n:>4}  f32 {f32:7.1}  bf16 {bf16:7.1} GFLOP/s  ({:.2}×)",
                bf16 / f32
            );
        }
    }
}
