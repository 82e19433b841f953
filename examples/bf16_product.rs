//! The model's product kernel at f32 and at bf16 on square products (2048² first), in
//! GFLOP/s, alternating the two precisions, two rounds; the CPU's bf16 flags first.
//!
//! `cargo run --release --example bf16_product`. Used in docs/precision.md. Without
//! AVX512_BF16 the bf16 figures are the emulation's.

use med_crossvit::bench::product_gflops;
use med_crossvit::runtime::{Precision, missing_bf16_flags};

fn main() {
    let missing = missing_bf16_flags();
    if missing.is_empty() {
        println!("CPU: AVX512_BF16 present");
    } else {
        println!("CPU: lacks {} (bf16 is emulated)", missing.join(", "));
    }
    for round in 1..=2 {
        for n in [2048, 1024, 512] {
            for precision in [Precision::F32, Precision::Bf16] {
                let r = product_gflops(n, 8, precision);
                println!("round {round}  {n:>4}²  {precision:<5} {r:7.1} GFLOP/s");
            }
        }
    }
}
