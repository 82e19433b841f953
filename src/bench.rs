//! Timing the model on random inputs: what `med-crossvit bench` reports.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use serde::Serialize;

/// The FLOPs of one forward pass (kept here for the benchmark's callers; it lives with the
/// training cost estimate).
pub use crate::model::cost::forward_flops;
use crate::model::{MedCrossViT, MedCrossViTConfig, ModelInput};
use crate::run::Error;

/// What to time.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// The model.
    pub config: MedCrossViTConfig,
    /// Bags per batch.
    pub batch: usize,
    /// Timed iterations (after one warm-up).
    pub iters: usize,
    /// Also time training steps (forward, backward, AdamW update).
    pub train: bool,
    /// Recompute each layer in the backward pass and update its weights as soon as their
    /// gradients are known ([`MedCrossViT::backward_recomputed`](crate::model::MedCrossViT::backward_recomputed)).
    pub checkpointing: bool,
}

/// Timings and sizes, as `med-crossvit bench --json` prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Median milliseconds per forward pass (inference mode).
    pub forward_ms: f64,
    /// Fastest forward pass.
    pub forward_min_ms: f64,
    /// Median milliseconds of CPU time per forward pass, all the process's threads together
    /// (Linux with glibc; wall time elsewhere): on a machine shared with other work, the
    /// figure that compares two runs (a kernel's idle waits are not counted, other
    /// processes' time neither).
    pub forward_cpu_ms: f64,
    /// Median milliseconds per training step, with `train`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_step_ms: Option<f64>,
    /// Fastest training step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_step_min_ms: Option<f64>,
    /// The median training step cut into its parts (without checkpointing, where the parts
    /// interleave). On the CPU backends operations run when called, so the parts are exact;
    /// GPU backends queue work, so there a part may be billed for work queued before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_phases: Option<TrainPhases>,
    /// Floating-point operations of one forward pass, from the configuration.
    pub flops: f64,
    /// Achieved GFLOP/s of the median forward pass.
    pub gflops: f64,
    /// Parameters.
    pub params: usize,
    /// Peak resident memory of the process so far, in MB (Linux; 0 elsewhere).
    pub peak_rss_mb: f64,
}

/// Median milliseconds of each part of a training step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainPhases {
    /// The forward pass with its graph, and the loss.
    pub forward_ms: f64,
    /// The backward pass, up to the gradients of the parameters.
    pub backward_ms: f64,
    /// The AdamW update of every parameter.
    pub update_ms: f64,
}

/// Peak resident set size of this process in MB, from `/proc/self/status` (0 where
/// unavailable).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The median and the smallest of `v` (not empty).
fn median_min(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0])
}

/// Times the forward pass (and, with `train`, training steps) on random inputs.
///
/// # Errors
///
/// The model's configuration and input errors; [`ConfigError::Zero`](crate::model::ConfigError::Zero) for a batch or a count of iterations of 0.
pub fn run(options: &BenchOptions, device: &Device) -> Result<BenchReport, Error> {
    let c = &options.config;
    let tiles = c.wsi_num_tiles;
    for (field, value) in [("batch", options.batch), ("iters", options.iters)] {
        if value == 0 {
            return Err(crate::model::ConfigError::Zero { field }.into());
        }
    }
    let (batch, iters) = (options.batch, options.iters);
    let (params, forward) = time_forward(c, batch, iters, device)?;
    let ((forward_ms, forward_min_ms), (forward_cpu_ms, _)) = forward;
    let train = if options.train {
        Some(time_training(options, batch, iters, device)?)
    } else {
        None
    };
    let flops = forward_flops(c, batch, tiles);
    Ok(BenchReport {
        forward_ms,
        forward_min_ms,
        forward_cpu_ms,
        train_step_ms: train.as_ref().map(|t| t.median),
        train_step_min_ms: train.as_ref().map(|t| t.min),
        train_phases: train.and_then(|t| t.phases),
        flops,
        gflops: flops / forward_ms / 1e6,
        params,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// A batch of `batch` random bags of the model's tile count and genes on `device`.
fn random_input(c: &MedCrossViTConfig, batch: usize, device: &Device) -> ModelInput {
    ModelInput::new(
        Tensor::<3>::random(
            [batch, c.wsi_num_tiles, c.wsi_dim],
            Distribution::Default,
            device,
        ),
        Tensor::<2>::random([batch, c.rna_num_genes], Distribution::Default, device),
    )
}

/// The median and the fastest of two clocks.
type Spans = ((f64, f64), (f64, f64));

/// The model's parameters, and the median and fastest of `iters` forward passes (after one
/// warm-up) in milliseconds: wall time, then the process's CPU time.
fn time_forward(
    c: &MedCrossViTConfig,
    batch: usize,
    iters: usize,
    device: &Device,
) -> Result<(usize, Spans), Error> {
    let model = c.init(device)?;
    let params = model.num_params();
    let x = random_input(c, batch, device);
    let (mut wall, mut cpu) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for i in 0..=iters {
        let (start, start_cpu) = (Instant::now(), crate::runtime::cpu_seconds());
        let out = model.forward(x.clone())?;
        let _ = out.logits.into_data();
        if i > 0 {
            wall.push(start.elapsed().as_secs_f64() * 1e3);
            cpu.push((crate::runtime::cpu_seconds() - start_cpu) * 1e3);
        }
    }
    Ok((params, (median_min(wall), median_min(cpu))))
}

/// The timings of the training steps.
struct TrainTimes {
    /// Median milliseconds per step.
    median: f64,
    /// Fastest step.
    min: f64,
    /// The median step's parts, without checkpointing.
    phases: Option<TrainPhases>,
}

/// Times `iters` training steps (after one warm-up) on one random batch.
fn time_training(
    options: &BenchOptions,
    batch: usize,
    iters: usize,
    device: &Device,
) -> Result<TrainTimes, Error> {
    let c = &options.config;
    let autodiff = device.clone().autodiff();
    let mut model = c.init(&autodiff)?;
    // Burn's default weight decay (1e-4), as before the fused update.
    let mut optimizer = crate::kernels::adamw::adamw(1e-4);
    let labels: Vec<i64> = (0..batch as i64)
        .map(|i| i % c.num_classes as i64)
        .collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &autodiff);
    let x = random_input(c, batch, &autodiff);
    let mut times = Vec::with_capacity(iters);
    let mut phases: [Vec<f64>; 3] = Default::default();
    for i in 0..=iters {
        let start = Instant::now();
        let split;
        (model, split) = train_step(model, &mut optimizer, &x, &labels, options, i)?;
        // Wait for the update to finish before stopping the clock.
        let _ = model.valid().rna_head.linear.weight.val().into_data();
        let end = Instant::now();
        if i > 0 {
            let ms = |from: Instant, to: Instant| (to - from).as_secs_f64() * 1e3;
            times.push(ms(start, end));
            if let Some((forward_done, backward_done)) = split {
                phases[0].push(ms(start, forward_done));
                phases[1].push(ms(forward_done, backward_done));
                phases[2].push(ms(backward_done, end));
            }
        }
    }
    let (median, min) = median_min(times);
    let [f, b, u] = phases.map(|p| (!p.is_empty()).then(|| median_min(p).0));
    let phases = f
        .zip(b)
        .zip(u)
        .map(|((forward_ms, backward_ms), update_ms)| TrainPhases {
            forward_ms,
            backward_ms,
            update_ms,
        });
    Ok(TrainTimes {
        median,
        min,
        phases,
    })
}

/// One training step (step `i`) of `model` on `x`: the model after the update, and the ends
/// of its forward and backward passes (not taken with checkpointing, where they interleave).
fn train_step(
    model: MedCrossViT,
    optimizer: &mut ModuleOptimizer,
    x: &ModelInput,
    labels: &Tensor<1, Int>,
    options: &BenchOptions,
    i: usize,
) -> Result<(MedCrossViT, Option<(Instant, Instant)>), Error> {
    let batch = labels.dims()[0];
    let loss = |logits| {
        log_softmax(logits, 1)
            .gather(1, labels.clone().reshape([batch, 1]))
            .mean()
            .neg()
    };
    if options.checkpointing {
        let step = model
            .backward_recomputed(x.clone(), i as u64, loss, |m, g| optimizer.step(1e-4, m, g))?;
        return Ok((step.model, None));
    }
    let loss = loss(model.forward(x.clone())?.logits);
    let forward_done = Instant::now();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let split = Some((forward_done, Instant::now()));
    Ok((optimizer.step(1e-4, model, grads), split))
}

/// GFLOP/s of one `n × n` by `n × n` matrix product on `device` (median of `iters`).
pub fn matmul_gflops(n: usize, iters: usize, device: &Device) -> f64 {
    let a = Tensor::<2>::random([n, n], Distribution::Default, device);
    let b = Tensor::<2>::random([n, n], Distribution::Default, device);
    let mut times = Vec::new();
    for i in 0..=iters.max(1) {
        let start = Instant::now();
        let _ = a.clone().matmul(b.clone()).into_data();
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let (median, _) = median_min(times);
    2.0 * (n as f64).powi(3) / median / 1e9
}

/// GFLOP/s of an `n × n` product through the model's product kernel (the one under the
/// linear layers and the attention core, on the calling thread's pool) at `precision`:
/// median of `iters` after one warm-up. Where `precision` is `Bf16` on a CPU without
/// AVX512_BF16 this times the emulation.
pub fn product_gflops(n: usize, iters: usize, precision: crate::runtime::Precision) -> f64 {
    product_rate((n, n, n), iters, precision, Clock::Wall)
}

/// What [`product_rate`] times with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock: what a user waits.
    Wall,
    /// The process's CPU time (Linux with glibc; the wall clock elsewhere): on one thread
    /// (`RAYON_NUM_THREADS=1`), the kernel's own rate even while other processes share the
    /// cores.
    Cpu,
}

/// GFLOP/s of the model's product kernel on `[m, k] · [k, n]` (`shape = (m, k, n)`) at
/// `precision`, the median of `iters` products after one warm-up, on the clock `clock`.
pub fn product_rate(
    (m, k, n): (usize, usize, usize),
    iters: usize,
    precision: crate::runtime::Precision,
    clock: Clock,
) -> f64 {
    let clock = match clock {
        Clock::Wall => wall_seconds,
        Clock::Cpu => crate::runtime::cpu_seconds,
    };
    let times = precision.scope(|| crate::kernels::time_product((m, k, n), iters.max(1), clock));
    let (median, _) = median_min(times);
    2.0 * (m * k * n) as f64 / median / 1e9
}

/// Seconds since the first call.
fn wall_seconds() -> f64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_forward_flops_by_hand() {
        // One WSI layer at the seed size, per bag: q 51·768·512, kv 51·768·1024, scores and
        // weighted sum 2 · 8 · 51 · 64 · 51, out 51·512·768, MLP 2 · 51·768·2048 (× 2 FLOPs).
        let c = MedCrossViTConfig::seed();
        let wsi_layer = 2.0
            * (51.0 * 768.0 * 512.0
                + 51.0 * 768.0 * 1024.0
                + 2.0 * 8.0 * 51.0 * 64.0 * 51.0
                + 51.0 * 512.0 * 768.0
                + 2.0 * 51.0 * 768.0 * 2048.0);
        let one_wsi_layer_less = MedCrossViTConfig {
            wsi_enc_depth: 1,
            ..c.clone()
        };
        let diff = forward_flops(&c, 1, 50) - forward_flops(&one_wsi_layer_less, 1, 50);
        assert!(
            (diff - 4.0 * wsi_layer).abs() < 1.0,
            "{diff} vs {}",
            4.0 * wsi_layer
        );
        // About 13 GFLOP per bag at the seed size.
        let total = forward_flops(&c, 16, 50) / 16.0;
        assert!((12e9..14e9).contains(&total), "{total}");
    }
}
