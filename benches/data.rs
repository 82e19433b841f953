//! Loader throughput on a realistic cohort, beside one seed-size forward pass.
//!
//! `cargo bench --bench data`. Generates, in a temporary folder, a cohort of
//! `BENCH_SLIDES` (default 50) slides × `BENCH_TILES` (5000) tiles × `BENCH_DIM` (1024)
//! features, once contiguous and once chunked + shuffle + gzip, then reads one epoch of
//! training bags (40 random tiles, up to 2000 per slide) and the evaluation bags (every tile,
//! file order) through the parallel loader, and reports bags/s and MB/s. The page cache is
//! warm for the second pass of each layout; the first pass's figures are printed too.

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use med_crossvit::data::*;
use med_crossvit::{MedCrossViTConfig, ModelInput};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let slides = env("BENCH_SLIDES", 50);
    let tiles = env("BENCH_TILES", 5000);
    let dim = env("BENCH_DIM", 1024);
    let workers = env("BENCH_WORKERS", 2);
    let bag_size = 40;
    println!("cohort: {slides} slides × {tiles} tiles × {dim} features, {workers} loader workers");
    for compress in [false, true] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let start = Instant::now();
        let features = dir.path().join("features");
        std::fs::create_dir_all(&features).unwrap();
        let mut csv = String::from("wsi_file_name,label,rna_0\n");
        let mut seed = 1u32;
        let data: Vec<f32> = (0..tiles * dim)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1 << 24) as f32
            })
            .collect();
        for s in 0..slides {
            write_tile_file(
                &features.join(format!("s{s}.h5")),
                &data,
                tiles,
                dim,
                None,
                compress,
            )
            .unwrap();
            csv.push_str(&format!("s{s},{},1\n", s % 2));
        }
        std::fs::write(dir.path().join("c.csv"), csv).unwrap();
        let layout = if compress {
            "chunked+gzip"
        } else {
            "contiguous"
        };
        println!(
            "{layout}: wrote the cohort in {:.1} s",
            start.elapsed().as_secs_f64()
        );

        let table = CohortTable::read(dir.path().join("c.csv"), &CohortColumns::default()).unwrap();
        let cohort = Arc::new(Cohort::open(table, &TileOptions::new(&features)).unwrap());
        let patients = Arc::new(Patients::of(cohort.table()));
        let sources = cohort.bag_sources(&cohort.usable(), &patients, Unit::Slide);
        let norm = Normalization::identity(cohort.table().genes());
        let targets = vec![Target::default(); patients.len()];
        let settings = BagSettings {
            bag_size,
            max_patches_total: 2000,
        };
        for (name, bags) in [
            ("training bags", training_bags(&sources, &settings, 0, 0)),
            ("evaluation bags", evaluation_bags(&sources, bag_size)),
        ] {
            let dataset = Arc::new(
                CohortDataset::new(
                    cohort.clone(),
                    patients.clone(),
                    bags,
                    &norm,
                    targets.clone(),
                )
                .unwrap(),
            );
            for pass in ["pass 1", "pass 2"] {
                let start = Instant::now();
                let order: Vec<usize> = (0..dataset.bags().len()).collect();
                let mut n = 0usize;
                let mut floats = 0usize;
                for batch in BagLoader::new(dataset.clone(), order, 16, workers, 4) {
                    for item in batch.unwrap() {
                        n += 1;
                        floats += item.features.len();
                    }
                }
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "  {layout:<13} {name:<16} {pass}: {n:>6} bags in {secs:>6.2} s = {:>8.0} bags/s, {:>7.0} MB/s",
                    n as f64 / secs,
                    floats as f64 * 4.0 / 1e6 / secs
                );
            }
        }
    }
    // The model's appetite: one seed-size forward pass on a batch of 16 bags of 40 tiles.
    let device = Device::flex();
    let config = MedCrossViTConfig {
        wsi_dim: dim,
        wsi_num_tiles: bag_size,
        ..MedCrossViTConfig::seed()
    };
    let model = config.init(&device).unwrap();
    let tiles = Tensor::<3>::random([16, bag_size, dim], Distribution::Default, &device);
    let expression =
        Tensor::<2>::random([16, config.rna_num_genes], Distribution::Default, &device);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        let out = model
            .forward(ModelInput::new(tiles.clone(), expression.clone()))
            .unwrap();
        let _ = out.logits.into_data();
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "seed-size forward, 16 bags × {bag_size} tiles × {dim}: {:.0} ms = {:.0} bags/s the model consumes",
        best * 1e3,
        16.0 / best
    );
}
