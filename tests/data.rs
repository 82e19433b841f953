//! Cohort data against files written by h5py (tests/fixtures) and hand-written CSVs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod common;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use med_crossvit::data::*;

fn fixture(path: &str) -> PathBuf {
    common::manifest_dir().join("tests/fixtures/h5").join(path)
}

/// Files copied from the Python original's repository and its parity run
/// (tests/fixtures/README.md says where each comes from).
fn original(path: &str) -> PathBuf {
    common::manifest_dir().join("tests/fixtures").join(path)
}

/// `features[i, j] = i + j / 10` for the standard 7 × 4 fixtures.
fn expected_rows(rows: &[usize], scale: f32) -> Vec<f32> {
    rows.iter()
        .flat_map(|&i| (0..4).map(move |j| i as f32 + j as f32 * scale))
        .collect()
}

#[test]
fn every_layout_and_variant_reads_exactly() {
    let cases = [
        ("original/TCGA-LUAD/slide-orig.h5", "uni_features", false),
        ("clam/slide-clam.h5", "features", true),
        ("trident/slide-trident.h5", "features", true),
        ("stamp/slide-stamp.h5", "feats", true),
        ("stamp/slide-patchemb.h5", "patch_embeddings", false),
        ("variants/contiguous.h5", "features", true),
        ("variants/chunked.h5", "features", true),
        ("variants/gzip.h5", "features", true),
        ("variants/shuffle_gzip.h5", "features", true),
        ("variants/latest.h5", "features", true),
        ("variants/latest_v114.h5", "features", true),
        ("variants/latest_contiguous.h5", "features", true),
        ("variants/float64.h5", "features", true),
    ];
    for (path, key, coords) in cases {
        let file = TileFile::open(fixture(path), None).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            (file.tiles(), file.dim(), file.features_key()),
            (7, 4, key),
            "{path}"
        );
        let all = file.read_all().unwrap();
        assert_eq!(all, expected_rows(&[0, 1, 2, 3, 4, 5, 6], 0.1), "{path}");
        // Selected rows, out of order and across chunk boundaries.
        let rows = [6, 2, 3, 0];
        assert_eq!(
            file.read_rows(&rows).unwrap(),
            expected_rows(&rows, 0.1),
            "{path}"
        );
        assert_eq!(
            file.read_rows(&[5]).unwrap(),
            expected_rows(&[5], 0.1),
            "{path}"
        );
        assert_eq!(file.has_coords(), coords, "{path}");
        if coords {
            let c = file.read_coords(&[1, 4]).unwrap().unwrap();
            assert_eq!(c, vec![[256.0, 515.0], [1024.0, 2051.0]], "{path}");
        }
    }
    let half = TileFile::open(fixture("variants/float16.h5"), None).unwrap();
    assert_eq!(
        half.read_rows(&[3, 1]).unwrap(),
        expected_rows(&[3, 1], 0.25)
    );
}

#[test]
fn explicit_key_and_subset_of_a_big_chunked_file() {
    let file = TileFile::open(fixture("variants/big_chunked.h5"), Some("features")).unwrap();
    assert_eq!((file.tiles(), file.dim()), (1000, 16));
    let rows = [999, 0, 64, 63, 500, 501, 502];
    let got = file.read_rows(&rows).unwrap();
    let want: Vec<f32> = rows
        .iter()
        .flat_map(|&i| (0..16).map(move |j| (i * 16 + j) as f32))
        .collect();
    assert_eq!(got, want);
    assert_eq!(file.read_coords(&[7]).unwrap().unwrap(), vec![[7.0, 14.0]]);
    let err = file.read_rows(&[1000]).unwrap_err().to_string();
    assert!(
        err.contains("row 1000") && err.contains("1000 tiles"),
        "{err}"
    );
    let err = TileFile::open(fixture("variants/big_chunked.h5"), Some("feats")).unwrap_err();
    assert!(matches!(err, DataError::NoFeatures { .. }), "{err}");
}

#[test]
fn bad_files_give_their_errors() {
    let err = |p: &str| {
        TileFile::open(fixture(p), None)
            .and_then(|f| f.read_all())
            .unwrap_err()
    };
    assert!(
        matches!(err("bad/truncated.h5"), DataError::Hdf5 { .. }),
        "{}",
        err("bad/truncated.h5")
    );
    assert!(matches!(err("bad/not_hdf5.h5"), DataError::Hdf5 { .. }));
    match err("bad/no_features.h5") {
        DataError::NoFeatures { found, .. } => assert!(found.contains("embeddings_xyz"), "{found}"),
        other => panic!("{other}"),
    }
    assert!(matches!(
        err("bad/one_dim.h5"),
        DataError::BadDataset { .. }
    ));
    assert!(matches!(err("bad/ints.h5"), DataError::BadDataset { .. }));
    assert!(matches!(err("nowhere.h5"), DataError::Io { .. }));
    for p in ["bad/truncated.h5", "bad/one_dim.h5", "nowhere.h5"] {
        assert!(err(p).to_string().contains(p), "{}", err(p));
    }
    let empty = TileFile::open(fixture("bad/empty_bag.h5"), None).unwrap();
    assert_eq!(empty.tiles(), 0);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn csv_reading_and_each_bad_cell() {
    let dir = tempfile::tempdir().unwrap();
    let cols = CohortColumns::default();
    let ok = write(
        dir.path(),
        "ok.csv",
        "wsi_file_name,project,label,patient_id,rna_a,xrna_b,rna_c\ns1,P,LUAD,p1,1.5,9,2\ns2,P,LUSC,p1,0,9,-3e1\n",
    );
    let t = CohortTable::read(&ok, &cols).unwrap();
    // Prefix match: `xrna_b` is not a gene.
    assert_eq!(t.genes(), ["rna_a", "rna_c"]);
    assert_eq!(t.expression(1), [0.0, -30.0]);
    assert_eq!(t.slides()[1].patient, "p1");
    assert_eq!(t.slides()[1].line, 3);
    assert_eq!(t.labels().unwrap(), ["LUAD", "LUSC"]);

    let cases = [
        (
            "nan.csv",
            "wsi_file_name,label,rna_a\ns1,0,NaN\n",
            "line 2 (slide `s1`), column `rna_a`",
        ),
        (
            "inf.csv",
            "wsi_file_name,label,rna_a\ns1,0,1\ns2,0,inf\n",
            "line 3 (slide `s2`), column `rna_a`",
        ),
        (
            "na.csv",
            "wsi_file_name,label,rna_a,rna_b\ns1,0,1,2\ns2,0,3,n/a\n",
            "line 3 (slide `s2`), column `rna_b`: not a number: `n/a`",
        ),
        (
            "text.csv",
            "wsi_file_name,label,rna_a\ns1,0,high\n",
            "(slide `s1`), column `rna_a`: not a number",
        ),
        (
            "empty.csv",
            "wsi_file_name,label,rna_a,rna_b\ns1,0,,1\n",
            "line 2 (slide `s1`), column `rna_a`: empty cell",
        ),
        (
            "norna.csv",
            "wsi_file_name,label,rna_a,rna_b\ns1,0,,\ns2,0,1,2\ns3,1,,\n",
            "2 row(s) have no expression (every gene cell empty); pass --missing-modality allow",
        ),
        (
            "dup.csv",
            "wsi_file_name,label,rna_a\ns1,0,1\ns1,1,2\n",
            "lines 2 and 3",
        ),
        (
            "noslide.csv",
            "slide,label,rna_a\ns1,0,1\n",
            "no column `wsi_file_name`",
        ),
        (
            "nogenes.csv",
            "wsi_file_name,label,gene_a\ns1,0,1\n",
            "no gene columns",
        ),
        ("ragged.csv", "wsi_file_name,label,rna_a\ns1,0\n", "line 2"),
    ];
    for (name, text, needle) in cases {
        let err = CohortTable::read(write(dir.path(), name, text), &cols)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle) && err.contains(name), "{name}: {err}");
    }
    let t = CohortTable::read(
        write(dir.path(), "nolabel.csv", "wsi_file_name,rna_a\ns1,1\n"),
        &cols,
    )
    .unwrap();
    assert!(matches!(t.labels(), Err(DataError::MissingColumn { .. })));
    assert_eq!(
        t.slides()[0].patient,
        "s1",
        "without a patient column each slide is its own patient"
    );
    let t = CohortTable::read(
        write(
            dir.path(),
            "blank.csv",
            "wsi_file_name,label,rna_a\ns1,,1\n",
        ),
        &cols,
    )
    .unwrap();
    assert!(t.labels().unwrap_err().to_string().contains("line 2"));
    let err = t.check_genes(100, None).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::GeneCount {
                expected: 100,
                got: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_originals_example_csv_reads() {
    let t = CohortTable::read(
        original("original/example_metadata.csv"),
        &CohortColumns::default(),
    )
    .unwrap();
    assert_eq!(t.genes().len(), 100);
    assert!(t.len() > 10);
    assert_eq!(t.slides()[0].project.as_deref(), Some("TCGA-LUAD"));
    // The example has a patient column: the TCGA patient barcode.
    assert_eq!(t.slides()[0].patient, "TCGA-05-4422");
    assert!(t.slides()[0].slide.starts_with(&t.slides()[0].patient));
}

#[test]
fn the_parity_cohort_in_the_originals_layout_opens() {
    let table =
        CohortTable::read(original("parity/cohort.csv"), &CohortColumns::default()).unwrap();
    let cohort = Cohort::open(table, &TileOptions::new(original("parity/features"))).unwrap();
    let summary = CohortSummary::of(&cohort);
    assert_eq!(
        (summary.slides, summary.genes, summary.feature_dim),
        (6, 10, 32)
    );
    assert_eq!((summary.tiles_min, summary.tiles_max), (8, 8));
    assert!(cohort.check_feature_dim(32).is_ok());
    let err = cohort.check_feature_dim(768).unwrap_err().to_string();
    assert!(err.contains("wsi_dim") && err.contains("768"), "{err}");
}

/// A cohort folder with flat and project layouts mixed, some files copied from fixtures.
fn mixed_cohort(dir: &Path, extra_rows: &str, files: &[(&str, &str)]) -> CohortTable {
    let features = dir.join("features");
    std::fs::create_dir_all(features.join("P")).unwrap();
    for (target, source) in files {
        std::fs::copy(fixture(source), features.join(target)).unwrap();
    }
    let csv = format!(
        "wsi_file_name,project,label,patient_id,rna_0\na,P,0,p1,1\nb,Q,1,p2,2\n{extra_rows}"
    );
    CohortTable::read(write(dir, "cohort.csv", &csv), &CohortColumns::default()).unwrap()
}

#[test]
fn cohort_problems_are_all_listed() {
    let dir = tempfile::tempdir().unwrap();
    // a: project layout; b: flat (project Q has no folder).
    let table = mixed_cohort(
        dir.path(),
        "c,P,0,p3,3\nd,P,1,p4,4\ne,P,0,p5,5\nf,P,1,p6,6\n",
        &[
            ("P/a.h5", "clam/slide-clam.h5"),
            ("b.h5", "stamp/slide-stamp.h5"),
            ("P/d.h5", "bad/empty_bag.h5"),
            ("P/e.h5", "variants/big_chunked.h5"),
            ("f.h5", "bad/truncated.h5"),
        ],
    );
    let options = TileOptions::new(dir.path().join("features"));
    let (cohort, problems) = Cohort::scan(table.clone(), &options);
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 4, "{text:#?}");
    assert!(
        matches!(&problems[0], DataError::MissingFiles { missing } if missing.len() == 1 && missing[0].0 == "c")
    );
    assert!(
        text[0].contains("P/c.h5") && text[0].contains("/c.h5"),
        "both places tried: {}",
        text[0]
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, DataError::EmptyBag { slide, .. } if slide == "d"))
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, DataError::Hdf5 { path, .. } if path.ends_with("f.h5")))
    );
    assert!(problems.iter().any(|p| matches!(
        p,
        DataError::FeatureWidth {
            expected: 4,
            got: 16,
            ..
        }
    )));
    assert_eq!(cohort.usable(), [0, 1]);
    assert_eq!(cohort.feature_dim(), 4);
    assert!(matches!(Cohort::open(table, &options), Err(DataError::Problems(p)) if p.len() == 4));

    // Skipping missing files is explicit and counted.
    let dir = tempfile::tempdir().unwrap();
    let table = mixed_cohort(
        dir.path(),
        "c,P,0,p3,3\n",
        &[
            ("P/a.h5", "clam/slide-clam.h5"),
            ("b.h5", "trident/slide-trident.h5"),
        ],
    );
    let err = Cohort::open(
        table.clone(),
        &TileOptions::new(dir.path().join("features")),
    )
    .unwrap_err();
    assert!(matches!(err, DataError::MissingFiles { .. }), "{err}");
    let skip = TileOptions {
        skip_missing: true,
        ..TileOptions::new(dir.path().join("features"))
    };
    let cohort = Cohort::open(table, &skip).unwrap();
    assert_eq!(cohort.skipped(), ["c"]);
    assert_eq!(cohort.usable(), [0, 1]);
}

fn synth(dir: &Path, options: SynthOptions) -> Cohort {
    let written = write_synthetic_cohort(dir, &options).unwrap();
    let table = CohortTable::read(&written.csv, &CohortColumns::default()).unwrap();
    Cohort::open(table, &TileOptions::new(&written.features_dir)).unwrap()
}

#[test]
fn synthetic_cohorts_check_out_contiguous_and_compressed() {
    for compress in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let options = SynthOptions {
            slides: 12,
            tiles: 30,
            dim: 8,
            genes: 6,
            compress,
            ..Default::default()
        };
        let cohort = synth(dir.path(), options);
        let s = CohortSummary::of(&cohort);
        assert_eq!((s.slides, s.genes, s.feature_dim), (12, 6, 8));
        assert!(s.tiles_min >= 15 && s.tiles_max <= 30, "{s:?}");
        assert!(s.patients < 12, "some patients have two slides");
        assert_eq!(s.labels.values().sum::<usize>(), 12);
        let file = cohort.open_file(0).unwrap();
        assert!(file.has_coords());
        let all = file.read_all().unwrap();
        assert_eq!(file.read_rows(&[3]).unwrap(), all[24..32].to_vec());
    }
}

#[test]
fn normalization_is_fitted_on_training_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "wsi_file_name,label,rna_a,rna_b,rna_c\ns1,0,1,5,0\ns2,0,3,5,1\ns3,1,1000,5,2\n";
    let t = CohortTable::read(write(dir.path(), "c.csv", csv), &CohortColumns::default()).unwrap();
    let n = Normalization::fit(&t, &[0, 1], NormalizeMethod::Log2Zscore, None).unwrap();
    let all = n.columns_in(&t).unwrap();
    assert_eq!(all, [0, 1, 2]);
    // log2(x + 1): a = [1, 2] → mean 1.5, population std 0.5; b constant → std 1.
    assert_eq!(n.mean[0], 1.5);
    assert_eq!(n.std[0], 0.5);
    assert_eq!(n.std[1], 1.0);
    assert_eq!(n.transform(&t, 1, &all).unwrap(), vec![1.0, 0.0, 1.0]);
    let held_out = n.transform(&t, 2, &all).unwrap();
    assert!((held_out[0] - ((1001f32).log2() - 1.5) / 0.5).abs() < 1e-5);
    assert!(held_out.iter().all(|v| v.is_finite()));
    let no_log = Normalization::fit(&t, &[0, 1], NormalizeMethod::Zscore, None).unwrap();
    assert_eq!(no_log.mean[0], 2.0);
    let path = dir.path().join("normalization.json");
    n.save(&path).unwrap();
    assert_eq!(Normalization::load(&path).unwrap(), n);
    let neg = CohortTable::read(
        write(dir.path(), "n.csv", "wsi_file_name,rna_a\ns1,-2\n"),
        &CohortColumns::default(),
    )
    .unwrap();
    let err = Normalization::fit(&neg, &[0], NormalizeMethod::Log2Zscore, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2") && err.contains("rna_a"), "{err}");
}

fn patients_table(dir: &Path) -> (CohortTable, Vec<usize>) {
    // 12 patients, 3 with two slides; labels 0/1 alternate by patient.
    let mut csv = String::from("wsi_file_name,label,patient_id,rna_a\n");
    let mut labels = Vec::new();
    for p in 0..12 {
        for k in 0..if p % 4 == 0 { 2 } else { 1 } {
            csv.push_str(&format!("s{p}_{k},{},p{p},1\n", p % 2));
            labels.push(p % 2);
        }
    }
    (
        CohortTable::read(write(dir, "p.csv", &csv), &CohortColumns::default()).unwrap(),
        labels,
    )
}

fn patients_of(t: &CohortTable, slides: &[usize]) -> std::collections::BTreeSet<String> {
    slides
        .iter()
        .map(|&i| t.slides()[i].patient.clone())
        .collect()
}

#[test]
fn splits_never_leak_a_patient() {
    let dir = tempfile::tempdir().unwrap();
    let (t, labels) = patients_table(dir.path());
    let folds = kfold(&t, &labels, 3, 7).unwrap();
    assert_eq!(folds.len(), 3);
    let mut validated = Vec::new();
    for f in &folds {
        assert!(patients_of(&t, &f.train).is_disjoint(&patients_of(&t, &f.val)));
        check_patients(&t, f).unwrap();
        assert_eq!(f.train.len() + f.val.len(), t.len());
        // Stratified: each fold validates on both classes, 2 patients of each.
        for class in 0..2 {
            let n = patients_of(
                &t,
                &f.val
                    .iter()
                    .copied()
                    .filter(|&i| labels[i] == class)
                    .collect::<Vec<_>>(),
            )
            .len();
            assert_eq!(n, 2, "class {class}");
        }
        validated.extend(f.val.iter().copied());
    }
    validated.sort();
    assert_eq!(
        validated,
        (0..t.len()).collect::<Vec<_>>(),
        "each slide validated exactly once"
    );
    assert_eq!(
        folds,
        kfold(&t, &labels, 3, 7).unwrap(),
        "same seed, same folds"
    );
    let err = kfold(&t, &labels, 7, 0).unwrap_err().to_string();
    assert!(err.contains("only 6 patient"), "{err}");

    let s = by_fractions(&t, &labels, 0.25, 0.25, 1).unwrap();
    check_patients(&t, &s).unwrap();
    assert_eq!(patients_of(&t, &s.val).len(), 4);
    assert_eq!(patients_of(&t, &s.test).len(), 4);
    assert_eq!(s.train.len() + s.val.len() + s.test.len(), t.len());

    let splits = write(
        dir.path(),
        "splits.csv",
        "train,val,test\np0,s1_0,p2\np3,,\ns4_0,,\n",
    );
    let read = from_csv(&splits, &t).unwrap();
    let s = &read.split;
    // p0 has two slides; s4_0 alone leaves s4_1 out (unassigned).
    assert_eq!(s.train.len(), 4);
    assert_eq!(s.val.len(), 1);
    assert_eq!(s.test.len(), 1);
    assert_eq!(read.unassigned, t.len() - 6);
    assert!(read.unknown.is_empty());
    let leak = write(dir.path(), "leak.csv", "train,val\ns0_0,s0_1\n");
    let err = from_csv(&leak, &t).unwrap_err().to_string();
    assert!(err.contains("p0"), "{err}");
    // Ids the cohort lacks are counted, not an error (published splits name patients a
    // cohort may lack); the same unknown id on two sides still is one.
    let unknown = write(
        dir.path(),
        "unknown.csv",
        "train,val\nnobody,p3\nnobody,\ngone,\n",
    );
    let read = from_csv(&unknown, &t).unwrap();
    assert_eq!(read.unknown, ["nobody", "gone"]);
    assert_eq!(read.split.val.len(), 1);
    let twice = write(dir.path(), "twice.csv", "train,val\nnobody,\n,nobody\n");
    let err = from_csv(&twice, &t).unwrap_err().to_string();
    assert!(
        err.contains("`nobody`") && err.contains("line 2") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn dataset_and_batcher_pad_and_mask() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = Arc::new(synth(
        dir.path(),
        SynthOptions {
            slides: 4,
            tiles: 20,
            dim: 8,
            genes: 5,
            ..Default::default()
        },
    ));
    let counts = cohort.tile_counts(&cohort.usable());
    let patients = Arc::new(Patients::of(cohort.table()));
    let bags = evaluation_bags(
        &cohort.bag_sources(&cohort.usable(), &patients, Unit::Slide),
        8,
    );
    let expected_bags: usize = counts.iter().map(|&(_, n)| n.div_ceil(8)).sum();
    assert_eq!(bags.len(), expected_bags);
    let labels = cohort.table().labels().unwrap();
    let map = LabelMap::fit(labels.iter().copied());
    let targets = (0..patients.len())
        .map(|p| Target {
            class: map.index(labels[patients.slides(p)[0]]),
            ..Default::default()
        })
        .collect();
    let norm = Normalization::fit(
        cohort.table(),
        &cohort.usable(),
        NormalizeMethod::Log2Zscore,
        None,
    )
    .unwrap();
    let dataset = CohortDataset::new(cohort.clone(), patients, bags, &norm, targets).unwrap();
    // The last bag of slide 0 is partial; batch it with a full bag.
    let n0 = counts[0].1;
    let last0 = n0.div_ceil(8) - 1;
    let items = vec![dataset.get(0).unwrap(), dataset.get(last0).unwrap()];
    let file = cohort.open_file(0).unwrap();
    assert_eq!(
        items[0].features,
        file.read_rows(&(0..8).collect::<Vec<_>>()).unwrap()
    );
    let short = n0 - last0 * 8;
    let batch = BagBatcher.batch(items, &Device::flex());
    assert_eq!(batch.tiles.dims(), [2, 8, 8]);
    assert_eq!(batch.expression.dims(), [2, 5]);
    let mask: Vec<bool> = batch
        .padding
        .clone()
        .map(|m| m.into_data().try_to_vec::<bool>().unwrap())
        .unwrap_or_default();
    if short < 8 {
        let expected: Vec<bool> = (0..16).map(|i| i >= 8 + short).collect();
        assert_eq!(mask, expected);
    } else {
        assert!(batch.padding.is_none());
    }
    assert_eq!(batch.classes.unwrap().dims(), [2]);

    // The loader reads every bag, in order, across workers.
    let dataset = Arc::new(dataset);
    let order: Vec<usize> = (0..dataset.len()).collect();
    let loaded: Vec<BagRef> = BagLoader::new(dataset.clone(), order, 3, 2, 2)
        .flat_map(|b| b.unwrap().into_iter().map(|i| i.bag))
        .collect();
    assert_eq!(loaded, dataset.bags());
}

#[test]
fn check_reports_the_ordinary_median_of_tiles_per_slide() {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("features");
    std::fs::create_dir_all(&features).unwrap();
    let counts = [60, 10, 33, 50, 20, 40];
    let mut csv = String::from("wsi_file_name,label,rna_a\n");
    for (i, &n) in counts.iter().enumerate() {
        write_tile_file(
            &features.join(format!("s{i}.h5")),
            &vec![0.5; n * 3],
            n,
            3,
            None,
            false,
        )
        .unwrap();
        csv.push_str(&format!("s{i},0,1\n"));
    }
    let table = CohortTable::read(
        write(dir.path(), "cohort.csv", &csv),
        &CohortColumns::default(),
    )
    .unwrap();
    let summary = CohortSummary::of(&Cohort::open(table, &TileOptions::new(&features)).unwrap());
    // Sorted: 10 20 33 40 50 60; the middle two are 33 and 40.
    assert_eq!(summary.tiles_median, 36.5);
    assert!(
        summary.to_string().contains("min 10, median 36.5, max 60"),
        "{summary}"
    );
}

#[test]
fn csv_messages_name_the_real_file_line_and_cut_long_cells() {
    let dir = tempfile::tempdir().unwrap();
    let cols = CohortColumns::default();
    let read = |name: &str, text: &str| {
        CohortTable::read(write(dir.path(), name, text), &cols)
            .unwrap_err()
            .to_string()
    };
    // Windows line ends: the bad cell is on file line 6 (the csv crate alone says 5).
    let err = read(
        "crlf.csv",
        "wsi_file_name,label,rna_a\r\ns1,0,1\r\ns2,0,1\r\ns3,0,1\r\ns4,0,1\r\ns5,0,oops\r\n",
    );
    assert!(err.contains("line 6 (slide `s5`)"), "{err}");
    // A quoted label over lines 2–3 and a blank line 4: `s4` is on line 6.
    let err = read(
        "multiline.csv",
        "wsi_file_name,label,rna_a\ns1,\"a\nb\",1\n\ns3,0,1\ns4,0,x\n",
    );
    assert!(err.contains("line 6 (slide `s4`)"), "{err}");
    // A ragged row names its line too.
    let err = read(
        "ragged.csv",
        "wsi_file_name,label,rna_a\r\ns1,0,1\r\ns2,0\r\n",
    );
    assert!(
        err.contains("line 3") && err.contains("2 field(s)"),
        "{err}"
    );
    // A 10⁶-character cell is cut to 80 characters and its length.
    let long = "7".repeat(1_000_000);
    let err = read(
        "long.csv",
        &format!("wsi_file_name,label,rna_a\ns1,0,{long}x\n"),
    );
    assert!(
        err.len() < 340 && err.contains(&format!("`{}… (1000001 characters)`", "7".repeat(80))),
        "{} characters: {}",
        err.len(),
        &err[..err.len().min(300)]
    );
    let err = read(
        "longslide.csv",
        &format!("wsi_file_name,label,rna_a\n{long},0,x\n"),
    );
    assert!(err.len() < 300, "{}", &err[..300]);
}

#[test]
fn empty_header_only_and_semicolon_files_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let (table, _) = patients_table(dir.path());
    let genes = vec!["rna_a".to_string()];
    // Every CSV the tool reads: the cohort, a splits file, the signatures.
    type Read<'a> = Box<dyn Fn(&Path) -> DataError + 'a>;
    let readers: [(&str, &str, Read); 3] = [
        (
            "cohort",
            "wsi_file_name,label,rna_a",
            Box::new(|p: &Path| CohortTable::read(p, &CohortColumns::default()).unwrap_err()),
        ),
        (
            "splits",
            ",train,val",
            Box::new(|p: &Path| from_csv(p, &table).unwrap_err()),
        ),
        (
            "signatures",
            "Oncogenes,Kinases",
            Box::new(|p: &Path| read_signatures(p, &genes, "rna_").unwrap_err()),
        ),
    ];
    for (what, header, read) in &readers {
        let name = format!("{what}-empty.csv");
        let err = read(&write(dir.path(), &name, "")).to_string();
        assert!(err.contains(&name) && err.contains("empty file"), "{err}");
        let err = read(&write(dir.path(), &name, "\n")).to_string();
        assert!(err.contains("empty file"), "{err}");
        let name = format!("{what}-header.csv");
        let err = read(&write(dir.path(), &name, &format!("{header}\n"))).to_string();
        assert!(
            err.contains(&name) && err.contains("has a header (line 1) but no rows"),
            "{err}"
        );
        for (sep, says) in [(";", "`;`"), ("\t", "tabs")] {
            let name = format!("{what}-sep.csv");
            let text = format!("{}\nx{sep}y{sep}z\n", header.replace(',', sep));
            let err = read(&write(dir.path(), &name, &text)).to_string();
            assert!(
                err.contains(&name)
                    && err.contains(&format!("one column containing {says}"))
                    && err.contains("separated by commas"),
                "{err}"
            );
        }
    }
}

#[test]
fn a_repeated_column_name_is_an_error_naming_its_positions() {
    let dir = tempfile::tempdir().unwrap();
    for (name, header, column) in [
        ("genes.csv", "wsi_file_name,rna_0,label,rna_0", "rna_0"),
        ("labels.csv", "wsi_file_name,label,rna_0,label", "label"),
    ] {
        let path = write(dir.path(), name, &format!("{header}\ns1,1,0,2\ns2,3,1,4\n"));
        let err = CohortTable::read(&path, &CohortColumns::default()).unwrap_err();
        assert!(
            matches!(&err, DataError::DuplicateColumn { column: c, positions, .. }
                if c == column && positions == &[2, 4]),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(name)
                && text.contains(&format!(
                    "column `{column}` appears 2 times, at positions 2, 4"
                )),
            "{text}"
        );
    }
    // A splits file with two `train` columns is as ambiguous.
    let (table, _) = patients_table(dir.path());
    let splits = write(dir.path(), "s.csv", "train,val,train\np0,p1,p2\n");
    let err = from_csv(&splits, &table).unwrap_err().to_string();
    assert!(
        err.contains("column `train` appears 2 times, at positions 1, 3"),
        "{err}"
    );
}

#[test]
fn a_patient_twice_on_one_side_of_a_splits_file_is_counted_as_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (table, _) = patients_table(dir.path());
    let path = write(
        dir.path(),
        "twice.csv",
        ",train,val\n0,p0,p1\n1,p2,p1\n2,p0,p3\n3,p0,\n4,p4,\n",
    );
    let read = from_csv(&path, &table).unwrap();
    // p0 three times and p1 twice: two ids, each counted once on its side.
    assert_eq!(read.repeated, ["p1", "p0"]);
    assert_eq!(patients_of(&table, &read.split.train).len(), 3);
    assert_eq!(patients_of(&table, &read.split.val).len(), 2);
    let warnings = read.warnings(&path);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("twice.csv")
            && warnings[0].contains("2 id(s) are listed more than once in one column")
            && warnings[0].contains("p1, p0"),
        "{warnings:?}"
    );
    let once = write(dir.path(), "once.csv", ",train,val\n0,p0,p1\n");
    assert!(from_csv(&once, &table).unwrap().warnings(&once).is_empty());
    // Training reads it through its warnings.
    let data = common::synth(&dir.path().join("synth"), 8, 4, 3, 0, false);
    let settings = med_crossvit::run::TrainSettings::default();
    let prepared =
        med_crossvit::train::prepare(&data, &CohortColumns::default(), &settings).unwrap();
    let patients = prepared.patients.ids().to_vec();
    let text = format!(
        ",train,val\n0,{a},{b}\n1,{c},\n2,{a},\n",
        a = patients[0],
        b = patients[1],
        c = patients[2]
    );
    let settings = med_crossvit::run::TrainSettings {
        splits_csv: Some(write(dir.path(), "train.csv", &text)),
        ..settings
    };
    let mut warnings = Vec::new();
    med_crossvit::train::splits(&prepared, &settings, None, &mut |w| warnings.push(w)).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("1 id(s) are listed more than once")
            && warnings[0].contains(&patients[0]),
        "{warnings:?}"
    );
}

#[test]
fn scale_report_names_the_genes_far_outside_and_clip_bounds_them() {
    let dir = tempfile::tempdir().unwrap();
    // rna_a: one outlier of 30 among four rows; rna_b: 1 … 4; rna_c: one outlier of 5000.
    let csv = "wsi_file_name,label,rna_a,rna_b,rna_c\n\
               s1,0,0,1,0\ns2,0,0,2,0\ns3,1,0,3,0\ns4,1,30,4,5000\n";
    let t = CohortTable::read(write(dir.path(), "c.csv", csv), &CohortColumns::default()).unwrap();
    let rows = [0, 1, 2, 3];
    let none = Normalization::fit(&t, &rows, NormalizeMethod::None, None).unwrap();
    let r = scale_report(&t, &rows, &none).unwrap();
    assert_eq!((r.rows, r.genes, r.min, r.max), (4, 3, 0.0, 5000.0));
    let worst: Vec<(&str, f32)> = r.worst.iter().map(|w| (w.gene.as_str(), w.value)).collect();
    assert_eq!(worst, [("rna_c", 5000.0), ("rna_a", 30.0), ("rna_b", 4.0)]);
    assert_eq!(r.genes_beyond, 2, "30 and 5000 exceed ±10, 4 does not");
    let warning = r.warning().unwrap();
    assert!(
        warning.contains("2 of 3 gene(s) exceed ±10")
            && warning.contains("rna_c 5000, rna_a 30, rna_b 4")
            && warning.contains("--normalize zscore"),
        "{warning}"
    );
    assert!(
        r.to_string()
            .contains("min 0, max 5000 over 4 patient(s) × 3 gene(s)")
    );

    // A z-score of one outlier among n rows is sqrt(n − 1) = sqrt(3); of 1 … 4, ±1.5 /
    // sqrt(1.25), the first row's (-) kept of the two tied extremes.
    let z = Normalization::fit(&t, &rows, NormalizeMethod::Zscore, None).unwrap();
    let r = scale_report(&t, &rows, &z).unwrap();
    assert!((r.max - 3f32.sqrt()).abs() < 1e-5, "{r:?}");
    assert!(
        (r.worst[2].value + 1.5 / 1.25f32.sqrt()).abs() < 1e-5,
        "{r:?}"
    );
    assert_eq!((r.genes_beyond, r.warning()), (0, None));

    // Clipped at 10: the model sees ±10 at most, and nothing is left to warn about.
    let clipped = none.clone().with_clip(Some(10.0));
    let all = clipped.columns_in(&t).unwrap();
    assert_eq!(
        clipped.transform(&t, 3, &all).unwrap(),
        vec![10.0, 4.0, 10.0]
    );
    let r = scale_report(&t, &rows, &clipped).unwrap();
    assert_eq!((r.max, r.clipped, r.genes_beyond), (5000.0, 2, 0));
    assert_eq!(r.warning(), None);
    assert!(
        r.to_string().ends_with("clipped to ±10 (2 value(s))"),
        "{r}"
    );
    // Above the limit, clipping still leaves the value far out.
    let loose = scale_report(&t, &rows, &none.clone().with_clip(Some(100.0))).unwrap();
    assert_eq!(loose.genes_beyond, 2);

    // Saved with the normalization; older files without the field read as no clipping.
    let path = dir.path().join("normalization.json");
    clipped.save(&path).unwrap();
    assert_eq!(Normalization::load(&path).unwrap().clip, Some(10.0));
    none.save(&path).unwrap();
    assert!(!std::fs::read_to_string(&path).unwrap().contains("clip"));
    assert_eq!(Normalization::load(&path).unwrap().clip, None);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["clip"] = serde_json::json!(-1.0);
    std::fs::write(&path, json.to_string()).unwrap();
    let err = Normalization::load(&path).unwrap_err().to_string();
    assert!(err.contains("clip") && err.contains("above 0"), "{err}");

    // The whole-cohort report of `check`: one row per patient, fitted on them all.
    let r = cohort_scale(&t, NormalizeMethod::None, None)
        .unwrap()
        .unwrap();
    assert_eq!((r.rows, r.max, r.genes_beyond), (4, 5000.0, 2));
}

#[test]
fn unimodal_reads_need_no_slide_column_or_no_gene_column() {
    let dir = tempfile::tempdir().unwrap();
    let columns = CohortColumns::default();
    // No slide column: a row is named by its patient, a patient's later rows by their line.
    let path = write(
        dir.path(),
        "rna.csv",
        "patient_id,label,rna_a\nP1,0,1\nP2,1,2\nP1,0,1\n",
    );
    let err = CohortTable::read(&path, &columns).unwrap_err().to_string();
    assert!(err.contains("wsi_file_name"), "{err}");
    let t = CohortTable::read_for(&path, &columns, false, Modalities::Rna).unwrap();
    let slides: Vec<(&str, &str, u64)> = t
        .slides()
        .iter()
        .map(|s| (s.slide.as_str(), s.patient.as_str(), s.line))
        .collect();
    assert_eq!(
        slides,
        [("P1", "P1", 2), ("P2", "P2", 3), ("P1@4", "P1", 4)]
    );
    // Empty slide ids likewise; a row without either id is still an error naming its line.
    let path = write(
        dir.path(),
        "empty.csv",
        "wsi_file_name,patient_id,label,rna_a\ns1,P1,0,1\n,P2,1,2\n",
    );
    let t = CohortTable::read_for(&path, &columns, false, Modalities::Rna).unwrap();
    assert_eq!(t.slides()[1].slide, "P2");
    assert!(CohortTable::read(&path, &columns).is_err());
    let path = write(dir.path(), "none.csv", "wsi_file_name,label,rna_a\n,1,2\n");
    let err = CohortTable::read_for(&path, &columns, false, Modalities::Rna)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("wsi_file_name"),
        "{err}"
    );
    let path = write(dir.path(), "ids.csv", "label,rna_a\n1,2\n");
    assert!(CohortTable::read_for(&path, &columns, false, Modalities::Rna).is_err());

    // Tiles alone: no gene column needed, and gene columns present are not read.
    let path = write(dir.path(), "wsi.csv", "wsi_file_name,label\ns1,0\ns2,1\n");
    let err = CohortTable::read(&path, &columns).unwrap_err().to_string();
    assert!(err.contains("rna_"), "{err}");
    let t = CohortTable::read_for(&path, &columns, false, Modalities::Wsi).unwrap();
    assert_eq!((t.len(), t.genes().len(), t.has_rna(0)), (2, 0, false));
    let path = write(
        dir.path(),
        "wsi_genes.csv",
        "wsi_file_name,label,rna_a\ns1,0,\n",
    );
    let t = CohortTable::read_for(&path, &columns, false, Modalities::Wsi).unwrap();
    assert_eq!(
        t.genes().len(),
        0,
        "an empty gene cell is no missing expression here"
    );
}

/// A write that fails (here into a folder that does not exist) names the file once, and
/// leaves no temporary file.
#[test]
fn a_failed_split_write_names_the_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "cohort.csv",
        "wsi_file_name,label,rna_a\ns1,0,1\ns2,1,2\n",
    );
    let table = CohortTable::read(&csv, &CohortColumns::default()).unwrap();
    let patients = Patients::of(&table);
    let split = Split {
        train: vec![0],
        val: vec![1],
        test: vec![],
    };
    let target = dir.path().join("missing").join("splits.csv");
    let err = write_split_csv(&target, &split, &patients)
        .unwrap_err()
        .to_string();
    let name = target.display().to_string();
    assert_eq!(err.matches(&name).count(), 1, "{err}");
    assert!(!dir.path().join("missing").exists());
}
