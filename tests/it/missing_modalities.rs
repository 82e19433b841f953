//! Samples without one modality (`ModelInput::with_modalities`): what is missing contributes
//! nothing, and complete samples are computed as before.

use burn::module::Module;
use burn::tensor::{Bool, Device, Tensor, TensorData};
use med_crossvit::{InputError, MedCrossViT, MedCrossViTConfig, ModelInput};

fn tiny() -> MedCrossViTConfig {
    MedCrossViTConfig {
        num_classes: 3,
        depth: 2,
        wsi_num_tiles: 12,
        wsi_enc_depth: 1,
        wsi_enc_heads: 2,
        wsi_enc_mlp_dim: 16,
        wsi_enc_dim_head: 4,
        rna_num_genes: 6,
        rna_enc_depth: 1,
        rna_enc_heads: 2,
        rna_enc_mlp_dim: 16,
        rna_enc_dim_head: 4,
        cross_attn_depth: 2,
        cross_attn_heads: 3,
        cross_attn_dim_head: 4,
        ..MedCrossViTConfig::new(3, 8, 8)
    }
}

/// Deterministic values in [-1, 1).
fn values(n: usize, salt: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let x = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5)) >> 40;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn batch(device: &Device, salt: u64) -> (Tensor<3>, Tensor<2>) {
    (
        Tensor::from_data(
            TensorData::new(values(4 * 10 * 8, salt), [4, 10, 8]),
            device,
        ),
        Tensor::from_data(TensorData::new(values(4 * 6, salt + 1), [4, 6]), device),
    )
}

fn flags(values: &[bool], device: &Device) -> Tensor<1, Bool> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, c] = t.dims();
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .chunks(c)
        .map(<[f32]>::to_vec)
        .collect()
}

fn model(seed: u64, device: &Device) -> MedCrossViT {
    device.seed(seed);
    let m = tiny().init(device).unwrap();
    m.initialize_weights();
    m
}

#[test]
fn complete_samples_are_computed_as_without_the_marks() {
    let _serial = support::serial();
    let device = Device::flex();
    let m = model(1, &device);
    let (tiles, expression) = batch(&device, 3);
    let plain = m
        .forward(ModelInput::new(tiles.clone(), expression.clone()))
        .unwrap();
    let all = flags(&[true; 4], &device);
    let marked = m
        .forward(ModelInput::new(tiles, expression).with_modalities(all.clone(), all))
        .unwrap();
    assert_eq!(rows(plain.logits), rows(marked.logits), "bit for bit");
}

#[test]
fn a_missing_modality_contributes_nothing() {
    let _serial = support::serial();
    let device = Device::flex();
    let m = model(2, &device);
    let (tiles, expression) = batch(&device, 5);
    // Sample 1 has no expression, sample 2 no tiles; 0 and 3 are complete.
    let wsi = flags(&[true, true, false, true], &device);
    let rna = flags(&[true, false, true, true], &device);
    let out = m
        .forward(
            ModelInput::new(tiles.clone(), expression.clone())
                .with_modalities(wsi.clone(), rna.clone()),
        )
        .unwrap();
    let logits = rows(out.logits.clone());
    // Attention: the sample without tiles has no tile scores, the one without expression
    // no gene scores; the others' sum to 1.
    let with_attention = m
        .forward(
            ModelInput::new(tiles.clone(), expression.clone())
                .with_modalities(wsi.clone(), rna.clone())
                .with_attention(),
        )
        .unwrap();
    let attention = with_attention.attention.unwrap();
    let (tile_scores, gene_scores) = (rows(attention.tile_scores()), rows(attention.gene_scores()));
    for s in 0..4 {
        let (t, g): (f32, f32) = (tile_scores[s].iter().sum(), gene_scores[s].iter().sum());
        assert!(
            (t - if s == 2 { 0.0 } else { 1.0 }).abs() < 1e-5,
            "{tile_scores:?}"
        );
        assert!(
            (g - if s == 1 { 0.0 } else { 1.0 }).abs() < 1e-5,
            "{gene_scores:?}"
        );
    }
    // The missing head is left out of the sum.
    assert_eq!(logits[1], rows(out.wsi_logits.clone())[1]);
    assert_eq!(logits[2], rows(out.rna_logits.clone())[2]);
    assert!(rows(out.rna_logits)[1].iter().all(|&v| v == 0.0));

    // Whatever fills the missing modality (NaN here) changes nothing: the same batch with
    // sample 2's tiles and sample 1's expression replaced by NaN.
    let keep_tiles = Tensor::cat(
        vec![
            tiles.clone().narrow(0, 0, 2),
            Tensor::<3>::full([1, 10, 8], f32::NAN, &device),
            tiles.narrow(0, 3, 1),
        ],
        0,
    );
    let keep_expression = Tensor::cat(
        vec![
            expression.clone().narrow(0, 0, 1),
            Tensor::<2>::full([1, 6], f32::NAN, &device),
            expression.narrow(0, 2, 2),
        ],
        0,
    );
    let again = m
        .forward(ModelInput::new(keep_tiles, keep_expression).with_modalities(wsi, rna))
        .unwrap();
    let again = rows(again.logits);
    assert!(again.iter().flatten().all(|v| v.is_finite()), "{again:?}");
    assert_eq!((again.len(), logits.len()), (4, 4));
    for s in 0..4 {
        assert!(!logits[s].is_empty() && again[s].len() == logits[s].len());
        for (a, b) in again[s].iter().zip(&logits[s]) {
            assert!((a - b).abs() < 1e-5, "sample {s}: {again:?} vs {logits:?}");
        }
    }
}

#[test]
fn a_missing_modalitys_weights_do_not_reach_the_output() {
    let _serial = support::serial();
    let device = Device::flex();
    let a = model(3, &device);
    let b = model(4, &device);
    let (tiles, expression) = batch(&device, 7);
    let run = |m: &MedCrossViT, wsi: [bool; 4], rna: [bool; 4]| {
        rows(
            m.forward(
                ModelInput::new(tiles.clone(), expression.clone())
                    .with_modalities(flags(&wsi, &device), flags(&rna, &device)),
            )
            .unwrap()
            .logits,
        )
    };
    // The RNA branch of `b` (embedder, encoders, head) in `a`: samples without expression
    // are computed from the tiles alone, by `a`'s WSI branch and cross-attention.
    let mut rna_swapped = a.clone();
    rna_swapped.rna_embedder = b.rna_embedder.clone();
    rna_swapped.rna_head = b.rna_head.clone();
    for (block, other) in rna_swapped.encoder.blocks.iter_mut().zip(&b.encoder.blocks) {
        block.rna_enc = other.rna_enc.clone();
    }
    let none = [false; 4];
    let all = [true; 4];
    let close = |x: &[Vec<f32>], y: &[Vec<f32>]| {
        let sizes = |r: &[Vec<f32>]| r.iter().map(Vec::len).collect::<Vec<_>>();
        assert!(!x.is_empty() && sizes(x) == sizes(y), "{x:?} vs {y:?}");
        x.iter()
            .flatten()
            .zip(y.iter().flatten())
            .all(|(p, q)| (p - q).abs() < 1e-5)
    };
    assert!(close(&run(&a, all, none), &run(&rna_swapped, all, none)));
    assert!(!close(&run(&a, all, all), &run(&rna_swapped, all, all)));
    // Symmetrically, the WSI branch.
    let mut wsi_swapped = a.clone();
    wsi_swapped.wsi_embedder = b.wsi_embedder.clone();
    wsi_swapped.wsi_head = b.wsi_head.clone();
    for (block, other) in wsi_swapped.encoder.blocks.iter_mut().zip(&b.encoder.blocks) {
        block.wsi_enc = other.wsi_enc.clone();
    }
    assert!(close(&run(&a, none, all), &run(&wsi_swapped, none, all)));
    assert!(!close(&run(&a, all, all), &run(&wsi_swapped, all, all)));
}

#[test]
fn the_recomputed_pass_honours_the_marks() {
    let _serial = support::serial();
    let device = Device::flex().autodiff();
    device.seed(5);
    // Without dropout, the reseeded pass (training mode) and the ordinary one agree.
    let config = MedCrossViTConfig {
        dropout: 0.0,
        emb_dropout: 0.0,
        ..tiny()
    };
    let m = config.init(&device).unwrap();
    m.initialize_weights();
    let (tiles, expression) = batch(&device, 11);
    let input = ModelInput::new(tiles, expression).with_modalities(
        flags(&[true, false, true, true], &device),
        flags(&[true, true, true, false], &device),
    );
    let ordinary = rows(m.forward(input.clone()).unwrap().logits);
    let reseeded = rows(m.forward_reseeded(input, 9).unwrap());
    assert_eq!(ordinary.len(), 4);
    assert_eq!(
        ordinary.iter().map(Vec::len).collect::<Vec<_>>(),
        reseeded.iter().map(Vec::len).collect::<Vec<_>>()
    );
    for (a, b) in ordinary.iter().flatten().zip(reseeded.iter().flatten()) {
        assert!((a - b).abs() < 1e-5, "{ordinary:?} vs {reseeded:?}");
    }
}

#[test]
fn marks_of_the_wrong_size_or_a_sample_with_nothing_are_errors() {
    let _serial = support::serial();
    let device = Device::flex();
    let m = model(6, &device);
    let (tiles, expression) = batch(&device, 13);
    let err = m
        .forward(
            ModelInput::new(tiles.clone(), expression.clone())
                .with_modalities(flags(&[true; 3], &device), flags(&[true; 4], &device)),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            InputError::Dimension {
                tensor: "wsi_present",
                expected: 4,
                got: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = m
        .forward(ModelInput::new(tiles, expression).with_modalities(
            flags(&[true, true, false, true], &device),
            flags(&[true, true, false, true], &device),
        ))
        .unwrap_err();
    assert!(matches!(err, InputError::NoModality { sample: 2 }), "{err}");
    assert_eq!(
        err.to_string(),
        "sample 2 of the batch has neither tiles nor expression"
    );
    let _ = m.num_params();
}

use crate::support;

/// Runs `train` on `csv` into `out` with the arguments of the missing-modality runs.
fn train_allowing(cohort: &std::path::Path, out: &std::path::Path, extra: &[&str]) {
    let csv = cohort.join("cohort.csv");
    let features = cohort.join("features");
    let base = [
        "train",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--missing-modality",
        "allow",
        "--test-fraction",
        "0.25",
        "--bag-size",
        "8",
        "--batch-size",
        "4",
        "--lr",
        "3e-3",
        "--seed",
        "1",
        "--patience",
        "0",
        "--workers",
        "1",
    ];
    let o = support::bin(&[&base[..], extra].concat());
    let (_, stderr) = support::text(&o);
    assert!(o.status.success(), "{stderr}");
}

fn test_metrics(run: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("test_metrics.json")).unwrap()).unwrap()
}

#[test]
fn a_cohort_with_missing_modalities_trains_and_reports_metrics_by_modality() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = dir.path().join("cohort");
    let c = cohort.to_str().unwrap();
    let o = support::bin(&[
        "synth",
        "--out",
        c,
        "--slides",
        "240",
        "--tiles",
        "24",
        "--dim",
        "8",
        "--genes",
        "32",
        "--seed",
        "11",
        "--missing",
        "0.2",
    ]);
    assert!(o.status.success(), "{}", support::text(&o).1);
    // Without --missing-modality allow, every row without expression is named at once.
    let csv = cohort.join("cohort.csv");
    let features = cohort.join("features");
    let o = support::bin(&[
        "check",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
    ]);
    let (_, stderr) = support::text(&o);
    assert!(!o.status.success());
    assert!(
        stderr.contains("row(s) have no expression") && stderr.contains("--missing-modality allow"),
        "{stderr}"
    );
    let o = support::bin(&[
        "check",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--missing-modality",
        "allow",
        "--json",
    ]);
    let (stdout, stderr) = support::text(&o);
    assert!(o.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let count = |k: &str| summary["modalities"][k].as_u64().unwrap();
    assert_eq!(count("both") + count("wsi_only") + count("rna_only"), 240);
    assert!(
        count("wsi_only") > 20 && count("rna_only") > 20,
        "{summary}"
    );

    // A patient with neither modality (its tile file gone and its expression blanked) is an
    // error naming it.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let first_gene = header.iter().position(|h| h.starts_with("rna_")).unwrap();
    let gone = (1..lines.len())
        .find(|&i| {
            let slide = lines[i].split(',').next().unwrap();
            !features
                .join("TCGA-SYN")
                .join(format!("{slide}.h5"))
                .exists()
        })
        .unwrap();
    let mut cells: Vec<String> = lines[gone].split(',').map(String::from).collect();
    let patient = cells[3].clone();
    for cell in &mut cells[first_gene..] {
        cell.clear();
    }
    lines[gone] = cells.join(",");
    let neither = dir.path().join("neither.csv");
    std::fs::write(&neither, lines.join("\n") + "\n").unwrap();
    let o = support::bin(&[
        "train",
        "--csv",
        neither.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--out",
        dir.path().join("never").to_str().unwrap(),
        "--missing-modality",
        "allow",
    ]);
    let (_, stderr) = support::text(&o);
    assert!(!o.status.success());
    assert!(
        stderr.contains("neither a tile file nor expression") && stderr.contains(&patient),
        "{stderr}"
    );

    // Fusion with modality dropout: every group of held-out patients is predicted.
    let fused = dir.path().join("fused");
    train_allowing(
        &cohort,
        &fused,
        &["--modality-dropout", "0.3", "--epochs", "8"],
    );
    let m = test_metrics(&fused);
    let groups = m["by_modality"].as_object().unwrap();
    assert_eq!(
        groups.keys().collect::<Vec<_>>(),
        ["both", "rna_only", "wsi_only"]
    );
    // The model learned: some 48 held-out patients put chance at 0.5 ± 0.08.
    assert!(m["auc"].as_f64().unwrap() > 0.7, "{m}");
    let predictions = std::fs::read_to_string(fused.join("metrics.json")).unwrap();
    assert!(predictions.contains("by_modality"));
    // Each group's metrics are those of its own held-out patients. A group's AUC on a few
    // patients says little about the model, so it is checked against the same metrics
    // computed here from the group's rows, not against chance.
    let eval = dir.path().join("fused-eval");
    let o = support::bin(&[
        "evaluate",
        "--model",
        fused.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--out",
        eval.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", support::text(&o).1);
    check_metrics_by_group(&m, &cohort, &fused, &eval.join("predictions.csv"));

    // Unimodal baselines on the same split: each sees its modality alone.
    for (modality, group) in [("wsi", "wsi_only"), ("rna", "rna_only")] {
        let run = dir.path().join(modality);
        train_allowing(&cohort, &run, &["--modalities", modality, "--epochs", "2"]);
        let m = test_metrics(&run);
        assert_eq!(
            m["by_modality"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            [group],
            "{m}"
        );
    }
}

/// A held-out patient's prediction, and its modality group.
struct HeldOut {
    /// `both`, `wsi_only` or `rna_only`.
    group: &'static str,
    /// Whether its label is class 1.
    positive: bool,
    /// Its predicted probability of class 1.
    score: f64,
    /// Whether its predicted class is its label.
    right: bool,
}

/// The held-out patients of `run` (its `splits.csv`), with their predictions (`label`,
/// `prob_1` and `pred` of `predictions`) and their group, found from the synthetic `cohort`
/// itself: no expression when its gene cells are empty, no tiles when none of its tile files
/// exists.
fn held_out_rows(
    cohort: &std::path::Path,
    run: &std::path::Path,
    predictions: &std::path::Path,
) -> Vec<HeldOut> {
    let table = |path: &std::path::Path| -> Vec<Vec<String>> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| l.split(',').map(String::from).collect())
            .collect()
    };
    let column = |rows: &[Vec<String>], name: &str| rows[0].iter().position(|h| h == name);
    let rows = table(&cohort.join("cohort.csv"));
    let slide = column(&rows, "wsi_file_name").unwrap();
    let patient = column(&rows, "patient_id").unwrap();
    let first_gene = rows[0].iter().position(|h| h.starts_with("rna_")).unwrap();
    let mut has: std::collections::HashMap<String, (bool, bool)> = Default::default();
    for row in &rows[1..] {
        let tiles = cohort
            .join("features/TCGA-SYN")
            .join(format!("{}.h5", row[slide]))
            .exists();
        let expression = row[first_gene..].iter().any(|c| !c.is_empty());
        let entry = has.entry(row[patient].clone()).or_default();
        *entry = (entry.0 || tiles, expression);
    }
    let split = table(&run.join("splits.csv"));
    let test = column(&split, "test").unwrap();
    let predicted = table(predictions);
    let at = |name: &str| column(&predicted, name).unwrap();
    let (id, label, prob, pred) = (at("patient_id"), at("label"), at("prob_1"), at("pred"));
    let held_out: Vec<&str> = split[1..]
        .iter()
        .filter_map(|r| r.get(test).filter(|c| !c.is_empty()).map(String::as_str))
        .collect();
    held_out
        .iter()
        .map(|&p| {
            let row = predicted[1..].iter().find(|r| r[id] == p).unwrap();
            let group = match has[p] {
                (true, true) => "both",
                (true, false) => "wsi_only",
                (false, true) => "rna_only",
                (false, false) => panic!("{p} has neither modality"),
            };
            assert_eq!(row[at("modalities")], group, "{p}");
            HeldOut {
                group,
                positive: row[label] == "1",
                score: row[prob].parse().unwrap(),
                right: row[pred] == row[label],
            }
        })
        .collect()
}

/// The AUC of `(positive, score)` pairs by counting: the share of (positive, negative) pairs
/// ordered rightly, ties counting half.
fn auc_by_counting(rows: &[(bool, f64)]) -> f64 {
    let negatives: Vec<f64> = rows.iter().filter(|r| !r.0).map(|r| r.1).collect();
    let positives: Vec<f64> = rows.iter().filter(|r| r.0).map(|r| r.1).collect();
    let mut right = 0.0;
    for a in &positives {
        for b in &negatives {
            right += match a.partial_cmp(b) {
                Some(std::cmp::Ordering::Greater) => 1.0,
                Some(std::cmp::Ordering::Equal) => 0.5,
                _ => 0.0,
            };
        }
    }
    right / (positives.len() * negatives.len()) as f64
}

/// Checks the test metrics `m` of `run` (pooled and `by_modality`) against the AUC and
/// accuracy counted here from the held-out rows of `predictions` (an evaluation of the same
/// model on the whole cohort).
fn check_metrics_by_group(
    m: &serde_json::Value,
    cohort: &std::path::Path,
    run: &std::path::Path,
    predictions: &std::path::Path,
) {
    let rows = held_out_rows(cohort, run, predictions);
    let of = |group: Option<&str>| -> (usize, f64, f64) {
        let members: Vec<_> = rows
            .iter()
            .filter(|r| group.is_none_or(|g| r.group == g))
            .collect();
        let scored: Vec<(bool, f64)> = members.iter().map(|r| (r.positive, r.score)).collect();
        let right = members.iter().filter(|r| r.right).count();
        let n = members.len();
        (n, auc_by_counting(&scored), right as f64 / n as f64)
    };
    let close = |a: f64, b: &serde_json::Value| (a - b.as_f64().unwrap()).abs() < 1e-9;
    // The evaluation reproduces the test predictions: the pooled metrics agree.
    let (n, auc, accuracy) = of(None);
    assert!(
        close(auc, &m["auc"]) && close(accuracy, &m["accuracy"]),
        "{m}"
    );
    let mut counted = 0;
    for (group, g) in m["by_modality"].as_object().unwrap() {
        let (n, auc, accuracy) = of(Some(group));
        let total: u64 = g["confusion_matrix"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()))
            .sum();
        assert_eq!(total as usize, n, "{group}: {g}");
        assert!(
            close(auc, &g["auc"]) && close(accuracy, &g["accuracy"]),
            "{group}: counted AUC {auc}, accuracy {accuracy} of {n} patients; reported {g}"
        );
        counted += n;
    }
    assert_eq!(counted, n, "every held-out patient is in one group");
}

/// An expression-only cohort of 24 patients, one row each: `patient_id`, `label` (1 when the
/// first gene is high) and 4 genes; with `slides`, a `wsi_file_name` column whose every other
/// cell is empty.
fn rna_only_cohort(path: &std::path::Path, slides: bool) {
    let mut text = String::from(if slides {
        "wsi_file_name,patient_id,label,rna_a,rna_b,rna_c,rna_d\n"
    } else {
        "patient_id,label,rna_a,rna_b,rna_c,rna_d\n"
    });
    for p in 0..24 {
        let label = p % 2;
        let slide = if slides && p % 3 != 0 {
            format!("S{p:02},")
        } else if slides {
            ",".into()
        } else {
            String::new()
        };
        text.push_str(&format!(
            "{slide}P{p:02},{label},{},{},{},{}\n",
            10 + 40 * label + p,
            5 + p % 7,
            20 - p % 5,
            3 + p % 4
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// `train` of the small preset for 2 epochs, with `extra`.
fn train_small(csv: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let base = [
        "train",
        "--csv",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--bag-size",
        "4",
        "--patience",
        "0",
        "--bootstrap",
        "0",
        "--workers",
        "1",
    ];
    let o = support::bin(&[&base[..], extra].concat());
    (o.status.success(), support::text(&o).1)
}

#[test]
fn an_rna_only_cohort_without_slides_or_features_trains_evaluates_and_predicts() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("rna.csv");
    rna_only_cohort(&csv, false);
    // Tiles are needed unless the run is on expression alone.
    let (ok, stderr) = train_small(&csv, &dir.path().join("never"), &[]);
    assert!(
        !ok && stderr.contains("--features") && stderr.contains("--modalities rna"),
        "{stderr}"
    );

    let run = dir.path().join("run");
    let (ok, stderr) = train_small(&csv, &run, &["--modalities", "rna"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("estimate:") && stderr.contains("GB at peak"),
        "{stderr}"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["model"]["wsi_dim"], 1,
        "the unused WSI branch is 1 wide"
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert!(
        metrics["auc"].as_f64().is_some_and(f64::is_finite),
        "{metrics}"
    );

    // Evaluation and prediction need no features folder either: every patient is predicted.
    let eval = dir.path().join("eval");
    let model = run.to_str().unwrap();
    let o = support::bin(&[
        "evaluate",
        "--model",
        model,
        "--csv",
        csv.to_str().unwrap(),
        "--out",
        eval.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", support::text(&o).1);
    let rows = std::fs::read_to_string(eval.join("predictions.csv")).unwrap();
    assert_eq!(rows.lines().count(), 25, "{rows}");
    assert!(rows.lines().nth(1).unwrap().starts_with("P00,"), "{rows}");
    let predictions = dir.path().join("p.csv");
    let o = support::bin(&[
        "predict",
        "--model",
        model,
        "--csv",
        csv.to_str().unwrap(),
        "--out",
        predictions.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", support::text(&o).1);
    let predicted = std::fs::read_to_string(&predictions).unwrap();
    assert_eq!(predicted.lines().count(), 25);

    // Each fit reports the expression range after its normalization, and warns, naming the
    // largest genes, when values lie beyond ±10: rna_a reaches 10 + 40 + 23 = 73 as is.
    assert!(
        stderr.contains("training: expression after `log2-zscore`"),
        "{stderr}"
    );
    assert!(!stderr.contains("lies far outside"), "{stderr}");
    let (ok, stderr) = train_small(
        &csv,
        &dir.path().join("raw"),
        &["--modalities", "rna", "--normalize", "none"],
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: training: expression after `none` normalization lies far")
            && stderr.contains(
                "3 of 4 gene(s) exceed ±10, the largest rna_a 73, rna_c 20, rna_b 11, rna_d 6"
            ),
        "{stderr}"
    );
    let clipped = dir.path().join("clipped");
    let (ok, stderr) = train_small(
        &csv,
        &clipped,
        &["--modalities", "rna", "--normalize", "none", "--clip", "5"],
    );
    assert!(ok && !stderr.contains("lies far outside"), "{stderr}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(clipped.join("normalization.json")).unwrap())
            .unwrap();
    assert_eq!(saved["clip"], 5.0);

    // Interrupted and resumed from its folder alone (its `features_dir` is empty).
    let resumed = dir.path().join("resumed");
    let (ok, stderr) = train_small(
        &csv,
        &resumed,
        &["--modalities", "rna", "--stop-after-epoch", "1"],
    );
    assert!(ok, "{stderr}");
    let o = support::bin(&["train", "--resume", resumed.to_str().unwrap()]);
    assert!(o.status.success(), "{}", support::text(&o).1);
    assert!(resumed.join("metrics.json").exists());

    // A slide column with empty cells: those rows are named by their patient.
    let with_slides = dir.path().join("slides.csv");
    rna_only_cohort(&with_slides, true);
    let (ok, stderr) = train_small(
        &with_slides,
        &dir.path().join("slides"),
        &["--modalities", "rna"],
    );
    assert!(ok, "{stderr}");
}

#[test]
fn a_wsi_only_cohort_without_gene_columns_trains_and_evaluates() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = support::synth(&dir.path().join("cohort"), 16, 8, 4, 3, false);
    // The cohort without its gene columns.
    let text = std::fs::read_to_string(&data.csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !header[i].starts_with("rna_"))
        .collect();
    let stripped: String = text
        .lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            keep.iter().map(|&i| cells[i]).collect::<Vec<_>>().join(",") + "\n"
        })
        .collect();
    let csv = dir.path().join("tiles_only.csv");
    std::fs::write(&csv, stripped).unwrap();
    let features = data.features_dir.to_str().unwrap();
    let run = dir.path().join("run");
    let (ok, stderr) = train_small(&csv, &run, &["--modalities", "wsi", "--features", features]);
    assert!(ok, "{stderr}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["model"]["rna_num_genes"], 1,
        "one placeholder gene, always missing"
    );
    let o = support::bin(&[
        "evaluate",
        "--model",
        run.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features,
        "--out",
        dir.path().join("eval").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", support::text(&o).1);
    // With both modalities the gene columns are still required.
    let (ok, stderr) = train_small(&csv, &dir.path().join("never"), &["--features", features]);
    assert!(!ok && stderr.contains("rna_"), "{stderr}");
}
