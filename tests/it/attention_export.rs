//! Attention export on slides cut into bags of different sizes: tile scores must show the
//! model's attention, not how the slide was cut.

use crate::support;

use std::path::Path;

use burn::tensor::Device;
use med_crossvit::data::{SYNTH_PROJECT, TileOptions, write_tile_file};
use med_crossvit::eval::EvaluateRequest;
use med_crossvit::inference::{predict_cohort, tile_colours};
use med_crossvit::run::{ModelBundle, ModelSpec, TrainSettings};
use med_crossvit::train;

/// Replaces `slide`'s tile file with `n` copies of one feature vector on a grid.
fn identical_tiles(features_dir: &Path, slide: &str, n: usize) {
    let tile = [0.3f32, -1.2, 0.8, 0.0, 2.1, -0.4, 1.0, -0.7];
    let features: Vec<f32> = (0..n).flat_map(|_| tile).collect();
    let coords: Vec<i64> = (0..n as i64)
        .flat_map(|i| [256 * (i % 4), 256 * (i / 4)])
        .collect();
    let path = features_dir.join(SYNTH_PROJECT).join(format!("{slide}.h5"));
    write_tile_file(&path, &features, n, 8, Some(&coords), false).unwrap();
}

/// `(tile row, score)` of a tiles CSV `tile,x,y,score`.
fn read_scores(path: &Path) -> Vec<(usize, f64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "tile,x,y,score");
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[0].parse().unwrap(), cells[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn identical_tiles_score_evenly_whatever_the_bags() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = support::synth(&dir.path().join("cohort"), 8, 16, 6, 7, false);
    // Without the tile positional embedding, identical tiles are identical tokens: the model
    // cannot tell them apart, so its attention over them is even. Cross-attention heads of 6
    // (a scale 6^-1/2 that rounds, unlike 4^-1/2 = 0.5) show any difference between the
    // paths with and without the attention weights.
    let model = dir.path().join("model.json");
    std::fs::write(
        &model,
        r#"{"rna_dim": 6, "depth": 1, "wsi_enc_depth": 1, "rna_enc_depth": 1,
            "wsi_enc_heads": 2, "wsi_enc_dim_head": 4, "wsi_enc_mlp_dim": 16,
            "rna_enc_heads": 2, "rna_enc_dim_head": 4, "rna_enc_mlp_dim": 16,
            "cross_attn_depth": 1, "cross_attn_heads": 2, "cross_attn_dim_head": 6,
            "wsi_num_tiles": 5, "wsi_pos_embedding": false}"#,
    )
    .unwrap();
    let run = dir.path().join("run");
    let settings = TrainSettings {
        epochs: 1,
        bags: med_crossvit::data::BagSettings {
            bag_size: 5,
            ..Default::default()
        },
        batch_size: 3,
        ..Default::default()
    };
    let mut request = support::request(data.clone(), settings, run.clone());
    request.model = ModelSpec::File(model);
    let device = Device::flex();
    train::train(&request, &device, &mut |_| {}).unwrap();

    // Bags of 5: 13 tiles → 5, 5, 3; 7 → 5, 2; 3 → one bag of 3. With batches of 3 bags,
    // these bags are padded next to bags of other sizes and other slides.
    let slides = support::slide_ids(&data.csv);
    let sizes = [(0, 13), (2, 7), (5, 3)];
    for (i, n) in sizes {
        identical_tiles(&data.features_dir, &slides[i], n);
    }
    let bundle = ModelBundle::load(&run, &device).unwrap();
    let eval_request = EvaluateRequest {
        csv: data.csv.clone(),
        tiles: TileOptions::new(&data.features_dir),
        require_targets: false,
    };
    let out = dir.path().join("attention");
    let (with, files) = predict_cohort(&bundle, &eval_request, &device, Some(&out)).unwrap();
    // Asking for the attention changes no prediction: the same predictions.csv, bit for bit.
    let (without, _) = predict_cohort(&bundle, &eval_request, &device, None).unwrap();
    let written = |evaluation: &med_crossvit::eval::Evaluation, name: &str| {
        let path = dir.path().join(name);
        med_crossvit::eval::write_predictions(&path, &bundle, evaluation).unwrap();
        std::fs::read_to_string(path).unwrap()
    };
    assert_eq!(written(&with, "with.csv"), written(&without, "without.csv"));
    assert!(!with.predictions.slides.is_empty());
    assert_eq!(
        with.predictions.slides.len(),
        without.predictions.slides.len()
    );
    for (a, b) in with
        .predictions
        .slides
        .iter()
        .zip(&without.predictions.slides)
    {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(!a.logits.is_empty(), "slide {}", a.slide);
        assert_eq!(bits(&a.logits), bits(&b.logits), "slide {}", a.slide);
    }
    for (i, n) in sizes {
        let file = files.iter().find(|f| f.slide == slides[i]).unwrap();
        let scores = read_scores(&file.tiles_csv);
        assert_eq!(
            scores.iter().map(|s| s.0).collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>()
        );
        for &(row, score) in &scores {
            assert!(
                (score - 1.0 / n as f64).abs() < 1e-6,
                "{}: tile {row} of {n} scores {score}, not 1/{n}",
                file.slide
            );
        }
        // The heatmap draws them all in one colour, the middle of the colour map.
        let values: Vec<f64> = scores.iter().map(|s| s.1).collect();
        let colours = tile_colours(&values);
        assert!(colours.iter().all(|&c| c == colours[0]), "{colours:?}");
        assert!(file.heatmap.as_ref().unwrap().is_file());
    }
    // Slides of distinct tiles: each bag's scores add up to its share of the slide's tiles.
    for file in files
        .iter()
        .filter(|f| !sizes.iter().any(|&(i, _)| slides[i] == f.slide))
    {
        let scores = read_scores(&file.tiles_csv);
        let n = scores.len() as f64;
        for bag in scores.chunks(5) {
            let sum: f64 = bag.iter().map(|s| s.1).sum();
            let share = bag.len() as f64 / n;
            assert!(
                (sum - share).abs() < 1e-5,
                "{}: a bag of {} of {n} tiles sums to {sum}, not {share}",
                file.slide,
                bag.len()
            );
        }
        let spread = scores.iter().map(|s| s.1).fold(0.0f64, f64::max)
            - scores.iter().map(|s| s.1).fold(1.0f64, f64::min);
        assert!(
            spread > 1e-4,
            "{}: distinct tiles, distinct scores",
            file.slide
        );
    }
}
