//! Import of the Python original's checkpoint (tests/fixtures/parity) and prediction with
//! attention maps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;

use burn::tensor::Device;
use med_crossvit::MedCrossViT;
use med_crossvit::data::TileOptions;
use med_crossvit::eval::EvaluateRequest;
use med_crossvit::inference::{HEATMAP_SIZE, predict_cohort};
use med_crossvit::interop::{ImportError, import_torch};
use med_crossvit::run::ModelBundle;
use med_crossvit::train;

pub(crate) fn parity(file: &str) -> PathBuf {
    support::manifest_dir()
        .join("tests/fixtures/parity")
        .join(file)
}

/// `slide → logits` from a CSV with `wsi_file_name,logit_0,logit_1,…` first.
pub(crate) fn logits_csv(path: &Path) -> HashMap<String, Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let logit_cols: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].starts_with("logit_"))
        .collect();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (
                cells[0].to_string(),
                logit_cols
                    .iter()
                    .map(|&i| cells[i].parse().unwrap())
                    .collect(),
            )
        })
        .collect()
}

pub(crate) fn assert_parity(got: &HashMap<String, Vec<f64>>) {
    let expected = logits_csv(&parity("expected_logits.csv"));
    assert_eq!(got.len(), expected.len());
    assert!(!expected.is_empty(), "the fixture has slides");
    for (slide, want) in &expected {
        let have = &got[slide];
        assert!(!want.is_empty(), "{slide}: the fixture has logits");
        assert_eq!(have.len(), want.len(), "{slide}: {have:?} vs {want:?}");
        for (a, b) in have.iter().zip(want) {
            assert!(
                (a - b).abs() < 1e-4,
                "{slide}: {have:?} vs the original's {want:?}"
            );
        }
    }
}

/// The reference checkpoint imported into `dir/imported`, loaded.
pub(crate) fn imported(dir: &Path) -> ModelBundle {
    let out = dir.join("imported");
    let device = Device::flex();
    import_torch(
        &parity("reference.pt"),
        &parity("reference_args.json"),
        None,
        &out,
        &device,
    )
    .unwrap();
    ModelBundle::load(&out, &device).unwrap()
}

pub(crate) fn parity_request() -> EvaluateRequest {
    EvaluateRequest {
        csv: parity("cohort.csv"),
        tiles: TileOptions::new(parity("features")),
        require_targets: false,
    }
}

#[test]
fn imported_checkpoint_reproduces_the_originals_logits() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imported");
    let device = Device::flex();
    let model = import_torch(
        &parity("reference.pt"),
        &parity("reference_args.json"),
        None,
        &out,
        &device,
    )
    .unwrap();
    // The original's defect, reproduced: cross_atnn_depth = 1 head, not cross_attn_heads = 4.
    assert_eq!(model.config().cross_attn_heads, 1);
    let bundle = ModelBundle::load(&out, &device).unwrap();
    let (evaluation, _) = predict_cohort(&bundle, &parity_request(), &device, None).unwrap();
    let table = evaluation.cohort.table();
    let got = evaluation
        .predictions
        .slides
        .iter()
        .map(|p| (table.slides()[p.slide].slide.clone(), p.logits.clone()))
        .collect();
    assert_parity(&got);

    // Saved and reloaded, the model gives the same logits.
    let copy = dir.path().join("copy");
    model.save(&copy).unwrap();
    let reloaded = MedCrossViT::load(&copy, &device).unwrap();
    let a = bundle
        .model
        .forward(batch(&device))
        .unwrap()
        .logits
        .into_data();
    let b = reloaded.forward(batch(&device)).unwrap().logits.into_data();
    assert_eq!(a, b);
}

fn batch(device: &Device) -> med_crossvit::ModelInput {
    let tiles: Vec<f32> = (0..2 * 8 * 32)
        .map(|i| ((i * 37) % 17) as f32 / 17.0 - 0.5)
        .collect();
    let genes: Vec<f32> = (0..2 * 10).map(|i| ((i * 13) % 7) as f32 / 7.0).collect();
    med_crossvit::ModelInput::new(
        burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(tiles, [2, 8, 32]), device),
        burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(genes, [2, 10]), device),
    )
}

#[test]
fn the_commands_reproduce_the_originals_logits() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_med-crossvit");
    // Runs the tool with `args` (paths as they are), asserting success.
    let run = |args: &[&std::ffi::OsStr]| {
        let o = Command::new(bin).args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let model = dir.path().join("model");
    let (checkpoint, args) = (parity("reference.pt"), parity("reference_args.json"));
    run(&[
        "import-torch".as_ref(),
        "--checkpoint".as_ref(),
        checkpoint.as_ref(),
        "--args".as_ref(),
        args.as_ref(),
        "--out".as_ref(),
        model.as_ref(),
    ]);
    let (csv, features) = (parity("cohort.csv"), parity("features"));
    let apply = |command: &str, out: &Path| {
        run(&[
            command.as_ref(),
            "--model".as_ref(),
            model.as_ref(),
            "--csv".as_ref(),
            csv.as_ref(),
            "--features".as_ref(),
            features.as_ref(),
            "--out".as_ref(),
            out.as_ref(),
            "--per-slide".as_ref(),
        ]);
    };
    // The original predicts slides: compared on the per-slide file. Each patient of the
    // parity cohort has one slide, so the per-patient file holds the same logits.
    let predictions = dir.path().join("predictions.csv");
    apply("predict", &predictions);
    assert_parity(&logits_csv(&dir.path().join("predictions_slides.csv")));
    let by_patient = logits_csv(&predictions);
    assert_eq!(by_patient.len(), 6);
    assert!(by_patient.keys().all(|p| p.starts_with("TCGA-XX-")));
    // The parity cohort has labels: evaluate writes metrics beside predictions.
    let eval = dir.path().join("eval");
    apply("evaluate", &eval);
    assert_parity(&logits_csv(&eval.join("predictions_slides.csv")));
    assert!(eval.join("metrics.json").is_file());
}

#[test]
fn bad_checkpoints_name_the_first_mismatching_key() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let out = dir.path().join("out");
    let args: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(parity("reference_args.json")).unwrap())
            .unwrap();
    let write_args = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut a = args.clone();
        change(&mut a);
        let path = dir.path().join("args.json");
        std::fs::write(&path, a.to_string()).unwrap();
        path
    };
    let import =
        |ckpt: &Path, args: &Path| import_torch(ckpt, args, None, &out, &device).unwrap_err();

    let wide = write_args(&|a| a["wsi_dim"] = 64.into());
    match import(&parity("reference.pt"), &wide) {
        ImportError::Shape {
            key, expected, got, ..
        } => {
            assert_eq!(key, "wsi_embedder.cls_token");
            assert_eq!((expected, got), (vec![1, 1, 64], vec![1, 1, 32]));
        }
        other => panic!("{other}"),
    }
    let deeper = write_args(&|a| a["depth"] = 3.into());
    match import(&parity("reference.pt"), &deeper) {
        ImportError::Missing { key, .. } => {
            assert!(key.starts_with("bimodal_encoder.layers.2."), "{key}")
        }
        other => panic!("{other}"),
    }
    let shallower = write_args(&|a| a["depth"] = 1.into());
    match import(&parity("reference.pt"), &shallower) {
        ImportError::Unexpected { key, .. } => {
            assert!(key.starts_with("bimodal_encoder.layers.1."), "{key}")
        }
        other => panic!("{other}"),
    }
    let typo = write_args(&|a| a["dept"] = 1.into());
    assert!(matches!(
        import(&parity("reference.pt"), &typo),
        ImportError::Args { .. }
    ));

    let bytes = std::fs::read(parity("reference.pt")).unwrap();
    let truncated = dir.path().join("truncated.pt");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = import(&truncated, &parity("reference_args.json"));
    assert!(matches!(err, ImportError::Unreadable { .. }), "{err}");
    assert!(err.to_string().contains("truncated.pt"));
    assert!(
        !out.join("model.bpk").exists(),
        "nothing is written for a failed import"
    );
}

#[test]
fn attention_maps_for_a_cohort_with_coordinates() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = support::synth(&dir.path().join("cohort"), 12, 30, 6, 5, false);
    let device = Device::flex();
    let run = dir.path().join("run");
    let settings = med_crossvit::run::TrainSettings {
        epochs: 1,
        bags: med_crossvit::data::BagSettings {
            bag_size: 8,
            ..Default::default()
        },
        batch_size: 4,
        ..Default::default()
    };
    let request = support::request(data.clone(), settings, run.clone());
    train::train(&request, &device, &mut |_| {}).unwrap();
    let bundle = ModelBundle::load(&run, &device).unwrap();
    let att = dir.path().join("attention");
    let eval_request = EvaluateRequest {
        csv: data.csv.clone(),
        tiles: TileOptions::new(&data.features_dir),
        require_targets: false,
    };
    let (evaluation, files) = predict_cohort(&bundle, &eval_request, &device, Some(&att)).unwrap();
    assert_eq!(files.len(), 12);
    assert_eq!(evaluation.predictions.slides.len(), files.len());
    for (f, p) in files.iter().zip(&evaluation.predictions.slides) {
        let text = std::fs::read_to_string(&f.tiles_csv).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), "tile,x,y,score");
        let rows: Vec<Vec<f64>> = lines
            .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
            .collect();
        let tiles = evaluation.cohort.tiles(p.slide).unwrap().tiles;
        assert_eq!(rows.len(), tiles, "one row per tile");
        // Bags are 8 consecutive tiles; each bag's scores sum to its share of the tiles.
        for bag in rows.chunks(8) {
            let sum: f64 = bag.iter().map(|r| r[3]).sum();
            let share = bag.len() as f64 / tiles as f64;
            assert!((sum - share).abs() < 1e-5, "{}: bag sums to {sum}", f.slide);
        }
        assert_eq!(p.bags, tiles.div_ceil(8));
        // Coordinates come from the file.
        let coords = evaluation
            .cohort
            .open_file(p.slide)
            .unwrap()
            .read_coords(&[1])
            .unwrap()
            .unwrap();
        assert_eq!((rows[1][1], rows[1][2]), (coords[0][0], coords[0][1]));
        let genes = std::fs::read_to_string(&f.genes_csv).unwrap();
        assert!(genes.starts_with("gene,score\nrna_0,"), "{genes}");
        let gene_sum: f64 = genes
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse::<f64>().unwrap())
            .sum();
        assert!((gene_sum - 1.0).abs() < 1e-5);
        let png = std::fs::read(f.heatmap.as_ref().unwrap()).unwrap();
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), HEATMAP_SIZE);
    }
}
