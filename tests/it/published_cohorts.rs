//! Real cohorts as TCGA studies ship them: the MCAT-style fixture (`tests/fixtures/mcat`,
//! written by its `make_mcat_fixture.py`): `case_id`/`slide_id` with `.svs`, `_rnaseq` genes
//! beside `_cnv` and `_mut` columns, patients with two slides, CLAM `pt_files/` (and
//! `h5_files/` for three slides), published splits.

use std::path::{Path, PathBuf};

use med_crossvit::data::{
    CohortColumns, CohortTable, DataError, Normalization, NormalizeMethod, Patients, TileFile,
    Unit, locate, split_files,
};
use med_crossvit::eval::metrics::{binary_auc, concordance_index};
use med_crossvit::eval::{SlidePrediction, patient_predictions};
use med_crossvit::run::Task;

use crate::support;

use crate::support::{bin, numbers, text};

fn fixture() -> PathBuf {
    support::manifest_dir().join("tests/fixtures/mcat")
}

fn table() -> CohortTable {
    CohortTable::read(fixture().join("cohort.csv"), &CohortColumns::default()).unwrap()
}

/// Rows of a CSV file, split on commas (the fixture's cells hold no commas).
fn rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn an_mcat_table_is_read_without_flags() {
    let t = table();
    // `slide_id` and `case_id` stand in for the default column names, `*_rnaseq` for `rna_*`.
    assert_eq!(t.columns().slide, "slide_id");
    assert_eq!(t.columns().patient, "case_id");
    assert_eq!(t.columns().gene_suffix.as_deref(), Some("_rnaseq"));
    assert!(
        t.gene_note().contains("no `rna_*` column"),
        "{}",
        t.gene_note()
    );
    let genes: Vec<String> = (0..8).map(|g| format!("GENE{g}_rnaseq")).collect();
    assert_eq!(t.genes(), genes);
    assert_eq!(t.gene_symbols()[3], "GENE3");
    assert_eq!(t.len(), 16);
    let patients = Patients::of(&t);
    assert_eq!(patients.len(), 12);
    assert_eq!(patients.multi_slide(), 4);
    assert_eq!(patients.id(1), "TCGA-MC-0001");
    assert_eq!(patients.slides(1), [1, 2]);

    // Explicit rules: a suffix, a regex; an automatic choice prefers `rna_*`.
    let with = |columns: CohortColumns| {
        CohortTable::read(fixture().join("cohort.csv"), &columns).map(|t| t.genes().to_vec())
    };
    let cnv = with(CohortColumns {
        gene_suffix: Some("_cnv".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(cnv, ["TP53_cnv", "KRAS_cnv", "EGFR_cnv"]);
    let regex = with(CohortColumns {
        gene_regex: Some("^GENE[0-2]_".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(regex, ["GENE0_rnaseq", "GENE1_rnaseq", "GENE2_rnaseq"]);
    let err = with(CohortColumns {
        gene_regex: Some("GENE(".into()),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("`GENE(` is not a regular expression"), "{err}");
    let err = with(CohortColumns {
        gene_prefix: Some("rna_".into()),
        gene_suffix: Some("_rnaseq".into()),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("not several"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("both.csv");
    std::fs::write(&both, "wsi_file_name,rna_a,b_rnaseq\ns,1,2\n").unwrap();
    let t = CohortTable::read(&both, &CohortColumns::default()).unwrap();
    assert_eq!(t.genes(), ["rna_a"]);
    assert_eq!(t.other_columns(), ["wsi_file_name", "b_rnaseq"]);
    let none = dir.path().join("none.csv");
    std::fs::write(&none, "wsi_file_name,a\ns,1\n").unwrap();
    let err = CohortTable::read(&none, &CohortColumns::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("none.csv") && err.contains("`rna_`") && err.contains("`_rnaseq`"),
        "{err}"
    );
}

#[test]
fn check_summarizes_an_mcat_cohort_by_patient() {
    let f = fixture();
    let csv = f.join("cohort.csv");
    let args = [
        "check",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        f.to_str().unwrap(),
    ];
    let o = bin(&[&args[..], &["--json"]].concat());
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["slides"], 16);
    assert_eq!(v["patients"], 12);
    assert_eq!(v["patients_multi_slide"], 4);
    assert_eq!(v["genes"], 8);
    assert_eq!(v["feature_dim"], 8);
    assert_eq!(v["unit"], "patient");
    assert!(v["gene_rule"].as_str().unwrap().contains("_rnaseq"));
    // No label column: the survival columns make it a survival cohort, and they are not
    // reported as ignored.
    assert_eq!(v["labels"], serde_json::json!({}));
    let ignored: Vec<&str> = v["ignored_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        ignored,
        [
            "",
            "site",
            "is_female",
            "oncotree_code",
            "age",
            "train",
            "TP53_cnv",
            "KRAS_cnv",
            "EGFR_cnv",
            "TP53_mut",
            "KRAS_mut"
        ]
    );
    // 6 to 16 tiles per slide (the fixture's 6 + (i·5 mod 11)).
    assert_eq!(v["tiles_min"], 6);
    assert_eq!(v["tiles_max"], 16);

    let o = bin(&args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    for expected in [
        "task          survival",
        "12 (4 with several slides)",
        "unit          patient",
        "genes         8 by `*_rnaseq` (there is no `rna_*` column)",
        "ignored       11 column(s): (unnamed), site, is_female, oncotree_code, age, …",
        "ok: the cohort is usable",
    ] {
        assert!(stdout.contains(expected), "`{expected}` in:\n{stdout}");
    }
    // As a classification cohort it has no label column: a problem, named.
    let o = bin(&[&args[..], &["--task", "classification"]].concat());
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(stderr.contains("no column `label`"), "{stderr}");
}

#[test]
fn pt_and_h5_files_of_one_matrix_give_identical_bags() {
    let f = fixture();
    let t = table();
    // Slide 0 has both files: the HDF5 file is found first (it carries coordinates).
    let s0 = &t.slides()[0];
    let h5 = locate(&f, None, &s0.slide).unwrap();
    assert!(h5.ends_with(format!("h5_files/{}.h5", s0.slide.trim_end_matches(".svs"))));
    let pt = f
        .join("pt_files")
        .join(h5.file_name().unwrap())
        .with_extension("pt");
    let (h5, pt) = (
        TileFile::open(&h5, None).unwrap(),
        TileFile::open(&pt, None).unwrap(),
    );
    assert_eq!((pt.tiles(), pt.dim()), (h5.tiles(), h5.dim()));
    assert_eq!(pt.read_all().unwrap(), h5.read_all().unwrap());
    let rows = [3, 0, 3, h5.tiles() - 1];
    assert_eq!(pt.read_rows(&rows).unwrap(), h5.read_rows(&rows).unwrap());
    assert!(h5.has_coords() && !pt.has_coords());
    assert_eq!(pt.read_coords(&[0]).unwrap(), None);
    let err = pt.read_rows(&[pt.tiles()]).unwrap_err().to_string();
    assert!(err.contains("row 6 asked for"), "{err}");
    // Slide 1 has only its `.pt` file; slide 2's is float16.
    assert!(
        locate(&f, None, &t.slides()[1].slide)
            .unwrap()
            .starts_with(f.join("pt_files"))
    );
    let half = TileFile::open(locate(&f, None, &t.slides()[2].slide).unwrap(), None).unwrap();
    assert_eq!(half.dim(), 8);
    assert!(half.read_all().unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn top_genes_are_those_of_largest_median_absolute_deviation() {
    let t = table();
    let patients = Patients::of(&t);
    let one_row = |ps: &[usize]| {
        ps.iter()
            .map(|&p| patients.slides(p)[0])
            .collect::<Vec<_>>()
    };
    // The fixture's genes are scale × pattern: GENE3 (3.0), GENE1 (2.0), GENE5 (1.5) lead on
    // any set of patients. They are kept in CSV order.
    for ps in [(0..12).collect::<Vec<_>>(), vec![0, 2, 3, 5, 9, 11]] {
        let n = Normalization::fit(&t, &one_row(&ps), NormalizeMethod::Zscore, Some(3)).unwrap();
        assert_eq!(n.genes, ["GENE1_rnaseq", "GENE3_rnaseq", "GENE5_rnaseq"]);
        let columns = n.columns_in(&t).unwrap();
        assert_eq!(columns, [1, 3, 5]);
        assert_eq!(n.transform(&t, 0, &columns).unwrap().len(), 3);
    }
    // Min-max scaling maps the training range onto [-1, 1]: GENE3 runs from -4.5 (patient 0)
    // to 4.5 (patient 11).
    let all = one_row(&(0..12).collect::<Vec<_>>());
    let n = Normalization::fit(&t, &all, NormalizeMethod::Minmax, None).unwrap();
    let columns = n.columns_in(&t).unwrap();
    let last = *patients.slides(11).first().unwrap();
    assert_eq!(n.transform(&t, 0, &columns).unwrap()[3], -1.0);
    assert_eq!(n.transform(&t, last, &columns).unwrap()[3], 1.0);
    // None keeps the values; log2-zscore refuses the negative z-scores, naming the cell.
    let none = Normalization::fit(&t, &all, NormalizeMethod::None, None).unwrap();
    assert_eq!(none.transform(&t, 0, &columns).unwrap()[3], -4.5);
    let err = Normalization::fit(&t, &all, NormalizeMethod::Log2Zscore, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("--normalize"),
        "{err}"
    );
    let err = Normalization::fit(&t, &all, NormalizeMethod::Zscore, Some(9))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("8 gene columns") && err.contains("got 9"),
        "{err}"
    );
    // A later cohort lacking a selected gene is refused, naming it.
    let dir = tempfile::tempdir().unwrap();
    let fewer = dir.path().join("fewer.csv");
    std::fs::write(&fewer, "slide_id,GENE1_rnaseq,GENE5_rnaseq\na.svs,1,2\n").unwrap();
    let fewer = CohortTable::read(&fewer, &CohortColumns::default()).unwrap();
    let top = Normalization::fit(&t, &all, NormalizeMethod::Zscore, Some(3)).unwrap();
    let err = top.columns_in(&fewer).unwrap_err().to_string();
    assert!(
        err.contains("1 of the model's 3 genes") && err.contains("`GENE3_rnaseq`"),
        "{err}"
    );
}

/// A prediction of slide `slide` over `tiles` tiles.
fn slide(slide: usize, tiles: usize, logits: [f64; 2], probs: [f64; 2]) -> SlidePrediction {
    SlidePrediction {
        slide,
        logits: logits.to_vec(),
        probs: probs.to_vec(),
        bags: 1,
        tiles,
        risk: None,
        wsi: true,
        rna: true,
        voted: None,
    }
}

#[test]
fn patient_predictions_and_metrics_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("c.csv");
    // Patients A (slides 0, 1), B (2), C (3, 4), D (5).
    std::fs::write(
        &csv,
        "wsi_file_name,patient_id,label,rna_g\na1,A,0,1\na2,A,0,1\nb1,B,1,2\nc1,C,1,3\nc2,C,1,3\nd1,D,0,4\n",
    )
    .unwrap();
    let t = CohortTable::read(&csv, &CohortColumns::default()).unwrap();
    let patients = Patients::of(&t);
    let slides = [
        slide(0, 10, [0.0, 2.0], [0.2, 0.8]),
        slide(1, 30, [0.0, -2.0], [0.9, 0.1]),
        slide(2, 20, [0.0, 1.0], [0.3, 0.7]),
        slide(3, 5, [0.0, 0.0], [0.5, 0.5]),
        slide(4, 15, [0.0, 4.0], [0.1, 0.9]),
        slide(5, 8, [0.0, 0.5], [0.4, 0.6]),
    ];
    let close = |got: &[f64], want: &[f64]| {
        assert!(
            got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12),
            "{got:?} vs {want:?}"
        );
    };
    // Patient unit: tile-weighted. A: logits (10·2 + 30·(−2))/40 = −1, P(1) = (10·0.8 +
    // 30·0.1)/40 = 0.275; C: logits 15·4/20 = 3, P(1) = (5·0.5 + 15·0.9)/20 = 0.8.
    let pooled = patient_predictions(&slides, &patients, Unit::Patient, Task::Classification);
    assert_eq!(pooled.len(), 4);
    close(&pooled[0].logits, &[0.0, -1.0]);
    close(&pooled[0].probs, &[0.725, 0.275]);
    close(&pooled[2].logits, &[0.0, 3.0]);
    close(&pooled[2].probs, &[0.2, 0.8]);
    assert_eq!((pooled[0].slides, pooled[1].slides), (2, 1));
    // Slide unit: the logits' plain mean, then softmax. A: [0, 0] → 0.5; C: [0, 2] →
    // P(1) = 1 / (1 + e^−2) = 0.880797…
    let averaged = patient_predictions(&slides, &patients, Unit::Slide, Task::Classification);
    close(&averaged[0].logits, &[0.0, 0.0]);
    close(&averaged[0].probs, &[0.5, 0.5]);
    close(&averaged[2].logits, &[0.0, 2.0]);
    let p = 1.0 / (1.0 + (-2.0f64).exp());
    close(&averaged[2].probs, &[1.0 - p, p]);
    // AUC over patients, class 1 positive (B, C) against A, D:
    // pooled P(1): A 0.275, B 0.7, C 0.8, D 0.6 → every positive above every negative: 1.
    // Per slide it would be otherwise: of the 9 pairs of 3 positive and 3 negative slides,
    // a1 (0.8, patient A) beats b1 and c1, and d1 (0.6) beats c1: 6/9.
    let score = |ps: &[med_crossvit::eval::PatientPrediction]| {
        let s: Vec<f64> = ps.iter().map(|p| p.probs[1]).collect();
        binary_auc(&s, &[false, true, true, false]).unwrap()
    };
    assert_eq!(score(&pooled), 1.0);
    let per_slide: Vec<f64> = slides.iter().map(|s| s.probs[1]).collect();
    assert_eq!(
        binary_auc(&per_slide, &[false, false, true, true, true, false]).unwrap(),
        6.0 / 9.0
    );
    // Averaged: A 0.5, B 0.731, C 0.881, D 0.622 → also 1 (D below B).
    assert_eq!(score(&averaged), 1.0);

    // Survival: two bins of hazards. Risk −(S1 + S2), S1 = 1 − h1, S2 = S1 (1 − h2).
    let hazard = |s: usize, tiles: usize, h: [f64; 2]| SlidePrediction {
        probs: h.to_vec(),
        ..slide(s, tiles, [0.0, 0.0], [0.0, 0.0])
    };
    let slides = [
        hazard(0, 10, [0.1, 0.1]),
        hazard(1, 30, [0.5, 0.5]),
        hazard(2, 20, [0.2, 0.2]),
        hazard(3, 5, [0.9, 0.9]),
        hazard(4, 15, [0.1, 0.1]),
        hazard(5, 8, [0.3, 0.3]),
    ];
    let risk = |h: f64| -((1.0 - h) + (1.0 - h) * (1.0 - h));
    // Pooled hazards: A (10·0.1 + 30·0.5)/40 = 0.4, B 0.2, C (5·0.9 + 15·0.1)/20 = 0.3, D 0.3.
    let pooled = patient_predictions(&slides, &patients, Unit::Patient, Task::Survival);
    for (p, h) in pooled.iter().zip([0.4, 0.2, 0.3, 0.3]) {
        assert!((p.risk.unwrap() - risk(h)).abs() < 1e-12, "{p:?}");
    }
    // Averaged hazards: A 0.3, B 0.2, C 0.5, D 0.3.
    let averaged = patient_predictions(&slides, &patients, Unit::Slide, Task::Survival);
    for (p, h) in averaged.iter().zip([0.3, 0.2, 0.5, 0.3]) {
        assert!((p.risk.unwrap() - risk(h)).abs() < 1e-12, "{p:?}");
    }
    // Times A 5 (event), B 20 (event), C 10 (censored), D 30 (event). Comparable pairs: A
    // with B, C, D; B with D. Pooled risks A > C = D > B: A-B, A-C, A-D concordant, B-D
    // discordant (B, earlier, has the lower risk) → 3/4. Averaged C > A = D > B: A-C
    // discordant, A-B concordant, A-D tied (½), B-D discordant → 1.5/4.
    let event = [true, true, false, true];
    let time = [5.0, 20.0, 10.0, 30.0];
    let c = |ps: &[med_crossvit::eval::PatientPrediction]| {
        let r: Vec<f64> = ps.iter().map(|p| p.risk.unwrap()).collect();
        concordance_index(&event, &time, &r).unwrap()
    };
    assert_eq!(c(&pooled), 0.75);
    assert_eq!(c(&averaged), 0.375);
}

/// `train --task survival --bins 2` on the fixture into `out`, with `extra` arguments.
fn train_survival(out: &Path, extra: &[&str]) -> std::process::Output {
    let f = fixture();
    let csv = f.join("cohort.csv");
    let base = [
        "train",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        f.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--task",
        "survival",
        "--bins",
        "2",
    ];
    bin(&[&base[..], extra].concat())
}

#[test]
fn training_on_published_splits_and_evaluating_are_per_patient() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let csv = f.join("cohort.csv");
    let o = train_survival(
        &run,
        &[
            "--splits-dir",
            f.join("splits").to_str().unwrap(),
            "--unit",
            "patient",
            "--normalize",
            "zscore",
            "--top-genes",
            "6",
            "--epochs",
            "2",
            "--bag-size",
            "8",
            "--batch-size",
            "4",
            "--lr",
            "1e-3",
            "--workers",
            "1",
        ],
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("splits_0.csv: 1 id(s) are not in the cohort and are left out: TCGA-MC-9999"),
        "{stderr}"
    );
    assert!(stderr.contains("by `*_rnaseq`"), "{stderr}");
    let cv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("cv.json")).unwrap()).unwrap();
    assert_eq!(cv["folds"].as_array().unwrap().len(), 3, "{stdout}");
    // Each fold's validation patients include an event: every fold has a c-index.
    for fold in cv["folds"].as_array().unwrap() {
        assert!(fold["metrics"]["c_index"].is_f64(), "{fold}");
    }
    assert_eq!(split_files(&f.join("splits")).unwrap().len(), 3);
    for k in 0..3 {
        let fold = run.join(format!("fold_{k}"));
        // The split the fold used, by patient: the published one, less the unknown case.
        let used = rows(&fold.join("splits.csv"));
        assert_eq!(used[0], ["", "train", "val", "test"]);
        let side = |c: usize| -> Vec<String> {
            used[1..]
                .iter()
                .map(|r| r[c].clone())
                .filter(|id| !id.is_empty())
                .collect()
        };
        let published = rows(&f.join(format!("splits/splits_{k}.csv")));
        let val: Vec<String> = published[1..]
            .iter()
            .filter_map(|r| r.get(2).filter(|v| !v.is_empty()).cloned())
            .collect();
        assert_eq!(side(2), val);
        assert_eq!(side(1).len(), 8);
        assert!(side(3).is_empty() && !side(1).contains(&"TCGA-MC-9999".to_string()));
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fold.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["columns"]["gene_suffix"], "_rnaseq");
        assert_eq!(config["columns"]["patient"], "case_id");
        assert_eq!(config["training"]["unit"], "patient");
        assert_eq!(config["model"]["rna_num_genes"], 6);
        let norm: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fold.join("normalization.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(norm["method"], "zscore");
        assert_eq!(norm["genes"].as_array().unwrap().len(), 6);
    }
    // The run folder says which patients it held out; Kaplan–Meier plots of each fold's
    // validation patients and of the pooled predictions.
    assert!(run.join("fold_0/splits.csv").is_file());
    for km in [run.join("km.png"), run.join("fold_2/km.png")] {
        let png = std::fs::read(&km).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{}", km.display());
    }
    // Every fold's validation patients pooled: the 12 patients once each, with survival
    // curves S_k = Π (1 − h_j) at the bins' ends, and `pooled` is their c-index.
    let pooled = rows(&run.join("cv_predictions.csv"));
    let header = &pooled[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(pooled.len(), 13);
    for row in &pooled[1..] {
        let h: Vec<f64> = (0..2)
            .map(|c| row[col(&format!("hazard_{}", c + 1))].parse().unwrap())
            .collect();
        let s1: f64 = row[col("S_1")].parse().unwrap();
        let s2: f64 = row[col("S_2")].parse().unwrap();
        assert!((s1 - (1.0 - h[0])).abs() < 1e-6 && (s2 - s1 * (1.0 - h[1])).abs() < 1e-6);
    }
    let value = |name: &str| -> Vec<f64> {
        pooled[1..]
            .iter()
            .map(|r| r[col(name)].parse().unwrap())
            .collect()
    };
    let event: Vec<bool> = value("censorship").iter().map(|&c| c == 0.0).collect();
    let c = concordance_index(&event, &value("survival_months"), &value("risk")).unwrap();
    assert!(
        (cv["pooled"]["c_index"].as_f64().unwrap() - c).abs() < 1e-5,
        "{cv}"
    );
    // Its bootstrap interval holds it; the log-rank p of the median split is a probability.
    let ci = &cv["pooled"]["c_index_ci"];
    let (low, high) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(low <= c + 1e-5 && c - 1e-5 <= high, "{cv}");
    let p = cv["pooled"]["logrank_p"].as_f64().unwrap();
    assert!(p > 0.0 && p <= 1.0, "{cv}");
    // And it is the p-value of the pooled rows' median split, computed here by hand.
    let by_hand = logrank_p_by_hand(&value("survival_months"), &event, &value("risk"), 2);
    assert!(
        (p - by_hand).abs() <= 1e-6 * by_hand,
        "{p} vs {by_hand}: {cv}"
    );
    // The weighted metrics of the pooled rows: censoring estimated on all of them, each
    // patient's survival at a time read from its own fold's bins (`S_k` of the bin).
    use med_crossvit::eval::metrics::{
        Censoring, concordance_index_ipcw, evaluation_times, ipcw_time_metrics,
    };
    let time = value("survival_months");
    let g = Censoring::fit(&time, &event);
    let pooled_metrics = &cv["pooled"];
    assert_eq!(pooled_metrics["ipcw_censoring"], "all");
    let uno = concordance_index_ipcw(&g, &event, &time, &value("risk")).unwrap();
    assert!((pooled_metrics["c_index_ipcw"].as_f64().unwrap() - uno).abs() < 1e-5);
    let times = evaluation_times(&time, &event);
    let edges: Vec<Vec<f64>> = (0..3)
        .map(|k| {
            let config: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(run.join(format!("fold_{k}/config.json"))).unwrap(),
            )
            .unwrap();
            numbers(&config["survival_bins"]["edges"])
        })
        .collect();
    let survival: Vec<Vec<f64>> = pooled[1..]
        .iter()
        .map(|r| {
            let e = &edges[r[col("fold")].parse::<usize>().unwrap()];
            times
                .iter()
                .map(|&t| {
                    let bin = e[1..e.len() - 1].iter().filter(|&&x| x <= t).count();
                    r[col(&format!("S_{}", bin + 1))].parse::<f64>().unwrap()
                })
                .collect()
        })
        .collect();
    let m = ipcw_time_metrics(&g, &event, &time, &times, &survival);
    assert_eq!(numbers(&pooled_metrics["td_times"]), times);
    let ibs = m
        .ibs
        .expect("the pooled rows have an integrated Brier score");
    let reported = pooled_metrics["ibs"]
        .as_f64()
        .unwrap_or_else(|| panic!("ibs: {cv}"));
    assert!((reported - ibs).abs() < 1e-5, "{reported} vs {ibs}");
    for (k, a) in m.auc.iter().enumerate() {
        match a {
            Some(a) => assert!((pooled_metrics["td_auc"][k].as_f64().unwrap() - a).abs() < 1e-5),
            None => assert!(pooled_metrics["td_auc"][k].is_null()),
        }
    }

    let out = dir.path().join("eval");
    let o = bin(&[
        "evaluate",
        "--model",
        run.join("fold_1").to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        f.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--per-slide",
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("12 patient(s), 16 slide(s)"), "{stdout}");
    let patients = rows(&out.join("predictions.csv"));
    assert_eq!(
        patients[0],
        [
            "case_id",
            "slides",
            "modalities",
            "logit_0",
            "logit_1",
            "hazard_1",
            "hazard_2",
            "pred",
            "label",
            "risk",
            "survival_months",
            "censorship",
            "S_1",
            "S_2"
        ]
    );
    // The per-bin values are hazards (not a distribution over the bins) and
    // S_k = Π_{j≤k} (1 − hazard_j), as in cv_predictions.csv; risk = −Σ S_k.
    for row in &patients[1..] {
        let cell = |i: usize| row[i].parse::<f64>().unwrap();
        let h = [cell(5), cell(6)];
        let (s1, s2) = (cell(12), cell(13));
        assert!((s1 - (1.0 - h[0])).abs() < 1e-6 && (s2 - s1 * (1.0 - h[1])).abs() < 1e-6);
        assert!((cell(9) + s1 + s2).abs() < 1e-5, "{row:?}");
    }
    assert_eq!(patients.len(), 13, "one row per patient");
    let slides: usize = patients[1..]
        .iter()
        .map(|r| r[1].parse::<usize>().unwrap())
        .sum();
    assert_eq!(slides, 16);
    assert_eq!(patients[2][..3], ["TCGA-MC-0001", "2", "both"]);
    let per_slide = rows(&out.join("predictions_slides.csv"));
    assert_eq!(
        per_slide[0][..4],
        ["slide_id", "case_id", "modalities", "logit_0"]
    );
    assert_eq!(per_slide.len(), 17);
    // metrics.json's c-index is that of the patient rows: each patient counts once.
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let column = |rows: &[Vec<String>], name: &str| -> Vec<f64> {
        let c = rows[0].iter().position(|h| h == name).unwrap();
        rows[1..].iter().map(|r| r[c].parse().unwrap()).collect()
    };
    let event: Vec<bool> = column(&patients, "censorship")
        .iter()
        .map(|&c| c == 0.0)
        .collect();
    let c = concordance_index(
        &event,
        &column(&patients, "survival_months"),
        &column(&patients, "risk"),
    )
    .unwrap();
    let reported = metrics["c_index"].as_f64().unwrap();
    assert!((reported - c).abs() < 1e-5, "{reported} vs {c}");

    // A hand-edited gene count that contradicts the model is named.
    let config_path = run.join("fold_1/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["training"]["top_genes"] = serde_json::json!(5);
    std::fs::write(&config_path, config.to_string()).unwrap();
    let o = bin(&[
        "evaluate",
        "--model",
        run.join("fold_1").to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        f.to_str().unwrap(),
        "--out",
        dir.path().join("eval2").to_str().unwrap(),
    ]);
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(
        stderr.contains("field `training.top_genes`") && stderr.contains("rna_num_genes = 6"),
        "{stderr}"
    );
}

#[test]
fn a_patient_whose_rows_disagree_is_refused_by_name() {
    let f = fixture();
    let text = std::fs::read_to_string(f.join("cohort.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Line 4 is patient TCGA-MC-0001's second slide (lines 3 and 4).
    for (name, value) in [
        ("survival_months", "12.5"),
        ("censorship", "1"),
        ("GENE4_rnaseq", "0.5"),
    ] {
        let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let mut cells: Vec<&str> = lines[3].split(',').collect();
        cells[column(name)] = value;
        edited[3] = cells.join(",");
        let csv = dir.path().join(format!("{name}.csv"));
        std::fs::write(&csv, edited.join("\n") + "\n").unwrap();
        let o = bin(&[
            "check",
            "--csv",
            csv.to_str().unwrap(),
            "--features",
            f.to_str().unwrap(),
        ]);
        let (_, stderr) = self::text(&o);
        assert!(!o.status.success());
        assert!(
            stderr.contains("patient `TCGA-MC-0001`")
                && stderr.contains(&format!("column `{name}`"))
                && stderr.contains("line 3")
                && stderr.contains("line 4"),
            "{name}: {stderr}"
        );
    }
    // Labels are compared as written; a training run refuses the same disagreement.
    let csv = dir.path().join("labels.csv");
    std::fs::write(
        &csv,
        "wsi_file_name,patient_id,label,rna_a\ns1,P,LUAD,1\ns2,P,LUSC,1\ns3,Q,LUAD,2\n",
    )
    .unwrap();
    let t = CohortTable::read(&csv, &CohortColumns::default()).unwrap();
    let err = Patients::of(&t)
        .check_agreement(&t, &["label"])
        .unwrap_err();
    assert!(
        matches!(&err, DataError::PatientMismatch(m) if m.patient == "P" && m.column == "label"),
        "{err}"
    );
    // Numbers agree by value: 12 and 12.0 are one time.
    std::fs::write(
        &csv,
        "wsi_file_name,patient_id,survival_months,rna_a\ns1,P,12,1\ns2,P,12.0,1\n",
    )
    .unwrap();
    let t = CohortTable::read(&csv, &CohortColumns::default()).unwrap();
    Patients::of(&t)
        .check_agreement(&t, &["survival_months"])
        .unwrap();
}

#[test]
fn bad_splits_folders_and_pt_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = split_files(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no splits_K.csv"), "{err}");
    std::fs::write(dir.path().join("splits_0.csv"), ",train,val\n").unwrap();
    std::fs::write(dir.path().join("splits_2.csv"), ",train,val\n").unwrap();
    let err = split_files(dir.path()).unwrap_err().to_string();
    assert!(err.contains("splits_1.csv is missing"), "{err}");
    // An id in two columns of one file.
    let t = table();
    let both = dir.path().join("both.csv");
    std::fs::write(
        &both,
        ",train,val\n0,TCGA-MC-0001,TCGA-MC-0002\n1,TCGA-MC-0003,TCGA-MC-0001\n",
    )
    .unwrap();
    let err = med_crossvit::data::from_csv(&both, &t)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TCGA-MC-0001")
            && err.contains("`train` on line 2")
            && err.contains("`val` on line 3"),
        "{err}"
    );
    // A `.pt` file that is not a torch.save file, or holds no 2-D float tensor, named.
    let bad = dir.path().join("bad.pt");
    std::fs::write(&bad, b"not a zip").unwrap();
    let err = TileFile::open(&bad, None).unwrap_err().to_string();
    assert!(
        err.contains("bad.pt") && err.contains("not a readable PyTorch"),
        "{err}"
    );
    let pt = support::manifest_dir().join("tests/fixtures/pt");
    for (file, found) in [
        ("one_d.pt", "a 1-D tensor of shape [7]"),
        ("int64.pt", "an int64 tensor"),
        ("dict.pt", "a dict"),
    ] {
        let err = TileFile::open(pt.join(file), None).unwrap_err().to_string();
        assert!(
            err.contains(file)
                && err.contains("expected a 2-D [tiles, features] floating-point tensor")
                && err.contains(found),
            "{err}"
        );
    }
    let err = TileFile::open(pt.join("legacy.pt"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("legacy.pt") && err.contains("legacy"), "{err}");
}

#[test]
fn gene_selections_that_cannot_work_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let train = |extra: &[&str]| {
        let out = dir.path().join("run");
        let o = train_survival(&out, &[&["--epochs", "1"][..], extra].concat());
        assert!(!o.status.success());
        assert!(!out.join("config.json").exists());
        text(&o).1
    };
    let err = train(&["--top-genes", "9"]);
    assert!(
        err.contains("9 genes asked for") && err.contains("8 gene columns"),
        "{err}"
    );
    let signatures = dir.path().join("signatures.csv");
    std::fs::write(&signatures, "a,b\nGENE1,GENE3\nGENE5,\n").unwrap();
    let err = train(&[
        "--top-genes",
        "4",
        "--tokenizer",
        "pathways",
        "--signatures",
        signatures.to_str().unwrap(),
    ]);
    assert!(
        err.contains("pathways tokenizer") && err.contains("--top-genes"),
        "{err}"
    );
    let err = train(&["--gene-regex", "GENE("]);
    assert!(err.contains("not a regular expression"), "{err}");
}

/// Risk groups as `--risk-groups` cuts them, by hand: cut at the `1/groups`, … quantiles of
/// the risks (numpy's linear interpolation), a risk equal to a cut in the lower group.
fn risk_groups_by_hand(risk: &[f64], groups: usize) -> Vec<usize> {
    let mut sorted = risk.to_vec();
    sorted.sort_by(f64::total_cmp);
    let cuts: Vec<f64> = (1..groups)
        .map(|g| {
            let at = g as f64 / groups as f64 * (sorted.len() - 1) as f64;
            let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
        })
        .collect();
    risk.iter()
        .map(|r| cuts.iter().filter(|&&c| r > &c).count())
        .collect()
}

/// erfc(x) for x ≥ 0 by Numerical Recipes' Chebyshev fit (`erfcc`, fractional error below
/// 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ];
    let sum = poly.iter().rev().fold(0.0, |acc, c| c + t * acc);
    t * (-x * x + sum).exp()
}

/// The log-rank test's p-value for the risk groups of `risk` (2 or 3), by hand: at each
/// distinct event time, each group's deaths minus its expected share, with the
/// hypergeometric (co)variance; the statistic zᵀV⁻¹z over all groups but the last, whose
/// chi-square tail with 1 degree of freedom is erfc(√(x/2)) and with 2 is exp(−x/2).
fn logrank_p_by_hand(time: &[f64], event: &[bool], risk: &[f64], groups: usize) -> f64 {
    let group = risk_groups_by_hand(risk, groups);
    let k = groups - 1;
    let mut z = vec![0.0; k];
    let mut v = vec![vec![0.0; k]; k];
    let mut times: Vec<f64> = (0..time.len())
        .filter(|&i| event[i])
        .map(|i| time[i])
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    for t in times {
        let at_risk: Vec<f64> = (0..groups)
            .map(|g| {
                (0..time.len())
                    .filter(|&i| group[i] == g && time[i] >= t)
                    .count() as f64
            })
            .collect();
        let deaths: Vec<f64> = (0..groups)
            .map(|g| {
                (0..time.len())
                    .filter(|&i| group[i] == g && time[i] == t && event[i])
                    .count() as f64
            })
            .collect();
        let n: f64 = at_risk.iter().sum();
        let d: f64 = deaths.iter().sum();
        let c = if n > 1.0 {
            d * (n - d) / (n - 1.0)
        } else {
            0.0
        };
        for a in 0..k {
            z[a] += deaths[a] - d * at_risk[a] / n;
            for b in 0..k {
                let same = if a == b { at_risk[a] / n } else { 0.0 };
                v[a][b] += c * (same - at_risk[a] * at_risk[b] / (n * n));
            }
        }
    }
    if k == 1 {
        let x = z[0] * z[0] / v[0][0];
        erfc((x / 2.0).sqrt())
    } else {
        let det = v[0][0] * v[1][1] - v[0][1] * v[1][0];
        let x = (z[0] * z[0] * v[1][1] - z[0] * z[1] * (v[0][1] + v[1][0]) + z[1] * z[1] * v[0][0])
            / det;
        (-x / 2.0).exp()
    }
}

#[test]
fn the_hand_computed_logrank_p_is_the_textbook_value() {
    // erfc at known points (Abramowitz & Stegun): erfc(0) = 1, erfc(1) = 0.157299207.
    assert!((erfc(0.0) - 1.0).abs() < 1e-7);
    assert!((erfc(1.0) - 0.157_299_207).abs() < 1e-7);
    // Two groups of three, all events, no ties: group 0 (low risk) dies at 4, 5, 6 and
    // group 1 at 1, 2, 3. Group 0's observed minus expected deaths are 3 − 4.85 = −1.85,
    // the variance 0.6775, the statistic 5.0517 and p = erfc(√(5.0517/2)) = 0.0246023
    // (worked out in Python with math.erfc).
    let time = [4.0, 5.0, 6.0, 1.0, 2.0, 3.0];
    let event = [true; 6];
    let risk = [0.0, 0.1, 0.2, 1.0, 1.1, 1.2];
    let p = logrank_p_by_hand(&time, &event, &risk, 2);
    assert!((p - 0.024_602_349_95).abs() < 1e-8, "{p}");
}

/// `--risk-groups 3`: the log-rank p of the pooled rows is that of their tertiles, with two
/// degrees of freedom, and the run records the setting.
#[test]
fn three_risk_groups_test_the_tertiles() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = train_survival(
        &run,
        &[
            "--splits-dir",
            fixture().join("splits").to_str().unwrap(),
            "--risk-groups",
            "3",
            "--normalize",
            "zscore",
            "--epochs",
            "1",
            "--bag-size",
            "8",
            "--batch-size",
            "4",
            "--bootstrap",
            "0",
            "--workers",
            "1",
        ],
    );
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("fold_0/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["training"]["risk_groups"], 3, "{config}");
    let cv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("cv.json")).unwrap()).unwrap();
    let p = cv["pooled"]["logrank_p"]
        .as_f64()
        .unwrap_or_else(|| panic!("logrank_p: {cv}"));
    let pooled = rows(&run.join("cv_predictions.csv"));
    let col = |name: &str| -> Vec<f64> {
        let c = pooled[0].iter().position(|h| h == name).unwrap();
        pooled[1..].iter().map(|r| r[c].parse().unwrap()).collect()
    };
    let event: Vec<bool> = col("censorship").iter().map(|&c| c == 0.0).collect();
    let (time, risk) = (col("survival_months"), col("risk"));
    assert_eq!(risk_groups_by_hand(&risk, 3).iter().max(), Some(&2));
    let by_hand = logrank_p_by_hand(&time, &event, &risk, 3);
    assert!(
        (p - by_hand).abs() <= 1e-6 * by_hand,
        "{p} vs {by_hand}: {cv}"
    );
    // Not the median split's p (the two tests differ on these rows).
    let median = logrank_p_by_hand(&time, &event, &risk, 2);
    assert!((p - median).abs() > 1e-6 * median, "{p} vs {median}");
}

/// `--splits-dir` that cannot be used: exit 1 naming the folder or file, before any run
/// file is written, and no panic.
#[test]
fn bad_splits_dirs_are_named_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let published = fixture().join("splits");
    let gap = dir.path().join("gap");
    std::fs::create_dir(&gap).unwrap();
    for k in [0, 2] {
        let name = format!("splits_{k}.csv");
        std::fs::copy(published.join(&name), gap.join(&name)).unwrap();
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let twice = dir.path().join("twice");
    std::fs::create_dir(&twice).unwrap();
    std::fs::write(
        twice.join("splits_0.csv"),
        ",train,val\n0,TCGA-MC-0001,TCGA-MC-0001\n",
    )
    .unwrap();
    let unknown = dir.path().join("unknown");
    std::fs::create_dir(&unknown).unwrap();
    std::fs::write(
        unknown.join("splits_0.csv"),
        ",train,val\n0,NOBODY-1,NOBODY-2\n",
    )
    .unwrap();
    let missing = dir.path().join("missing");
    for (folder, needles) in [
        (&missing, vec!["missing", "No such file"]),
        (&empty, vec!["empty", "no splits_K.csv"]),
        (&gap, vec!["gap", "splits_1.csv is missing"]),
        (
            &twice,
            vec!["twice/splits_0.csv", "TCGA-MC-0001", "`train`", "`val`"],
        ),
        (
            &unknown,
            vec!["unknown/splits_0.csv", "NOBODY-1", "0 training"],
        ),
    ] {
        let out = dir.path().join("run");
        let o = train_survival(
            &out,
            &["--splits-dir", folder.to_str().unwrap(), "--epochs", "1"],
        );
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{}: {stderr}", folder.display());
        for needle in needles {
            assert!(stderr.contains(needle), "`{needle}` in {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.join("config.json").exists() && !out.join("cv.json").exists());
        // The error line itself names the file at fault (not only a warning before it).
        if folder == &unknown {
            let error = stderr
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or("");
            assert!(error.contains("unknown/splits_0.csv"), "{stderr}");
        }
    }
    // With --folds the folder is refused by the parser (exit 2), naming both flags.
    let o = train_survival(
        &dir.path().join("run"),
        &["--splits-dir", published.to_str().unwrap(), "--folds", "3"],
    );
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--splits-dir") && stderr.contains("--folds"),
        "{stderr}"
    );
}
