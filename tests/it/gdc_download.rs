//! `cohort gdc` against the fake GDC download of `tests/fixtures/gdc` and the cohorts an
//! independent reference (`make_gdc_fixture.py`, pandas) built from it by the same rules.

use std::path::{Path, PathBuf};

use med_crossvit::cohort::gdc::{self, GdcError, GdcOptions, GeneId, GeneTypes, ValueColumn};

use crate::support;

use crate::support::{bin, text};

fn fixture() -> PathBuf {
    support::manifest_dir().join("tests/fixtures/gdc")
}

fn options() -> GdcOptions {
    let f = fixture();
    GdcOptions::new(
        f.join("download/gdc_sample_sheet.2026-11-01.tsv"),
        f.join("download/expression"),
        f.join("download/clinical.tsv"),
        f.join("features"),
    )
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// The cohort equals the reference's: the same header and rows, numbers equal to 1e-12
/// relative (the fixture's sums and means are exact in binary), other cells as written.
fn assert_cohort(cohort: &gdc::GdcCohort, expected: &Path) {
    let (header, rows) = read_csv(&expected.join("cohort.csv"));
    assert_eq!(cohort.header, header);
    assert_eq!(cohort.rows.len(), rows.len());
    assert!(!rows.is_empty(), "the reference has rows");
    for (got, want) in cohort.rows.iter().zip(&rows) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (c, (g, w)) in got.iter().zip(want).enumerate() {
            match (g.parse::<f64>(), w.parse::<f64>()) {
                (Ok(g), Ok(w)) => assert!(
                    (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                    "{}: {g} vs {w} ({got:?})",
                    header[c]
                ),
                _ => assert_eq!(g, w, "{}", header[c]),
            }
        }
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(expected.join("report.json")).unwrap())
            .unwrap();
    let ours = serde_json::to_value(&cohort.report).unwrap();
    for (key, value) in report.as_object().unwrap() {
        assert_eq!(&ours[key], value, "report `{key}`");
    }
    assert_eq!(ours["unrecognized_slides"], serde_json::json!([]));
}

#[test]
fn the_default_cohort_is_the_references() {
    let f = fixture();
    let cohort = gdc::build(&GdcOptions {
        labels: Some((f.join("download/labels.csv"), "subtype".into())),
        ..options()
    })
    .unwrap();
    assert_cohort(&cohort, &f.join("expected"));
    assert_eq!(cohort.report.unlabeled, ["TCGA-05-4397"]);
    // By hand (tests/fixtures/gdc/README.md): TCGA-05-4244's CD99 is its two ids' TPMs
    // summed, 12.5 + 0.75 (the `_PAR_Y` copy); TCGA-05-4249's TP53 is its two tumour
    // aliquots' mean, (10 + 20.5) / 2; TCGA-05-4250 is censored at its largest follow-up,
    // 1100 days = 1100 / (365.25 / 12) months.
    let column = |name: &str| cohort.header.iter().position(|h| h == name).unwrap();
    let row = |case: &str| cohort.rows.iter().find(|r| r[0] == case).unwrap();
    assert_eq!(row("TCGA-05-4244")[column("rna_CD99")], "13.25");
    assert_eq!(row("TCGA-05-4249")[column("rna_TP53")], "15.25");
    assert_eq!(row("TCGA-05-4250")[column("censorship")], "1");
    let months: f64 = row("TCGA-05-4250")[column("survival_months")]
        .parse()
        .unwrap();
    assert!((months - 1100.0 / (365.25 / 12.0)).abs() < 1e-12);
    // The lncRNA is not a protein-coding gene; the case with two DX slides has two rows.
    assert!(!cohort.header.contains(&"rna_MALAT1".to_string()));
    assert_eq!(
        cohort
            .rows
            .iter()
            .filter(|r| r[0] == "TCGA-05-4382")
            .count(),
        2
    );
}

#[test]
fn counts_of_all_genes_and_all_slides_and_ensembl_ids_are_the_references() {
    let f = fixture();
    let counts = gdc::build(&GdcOptions {
        value: ValueColumn::Unstranded,
        gene_types: GeneTypes::All,
        all_slides: true,
        ..options()
    })
    .unwrap();
    assert_cohort(&counts, &f.join("expected_counts_all"));
    assert!(counts.header.contains(&"rna_MALAT1".to_string()));
    let ensembl = gdc::build(&GdcOptions {
        gene_id: GeneId::Ensembl,
        ..options()
    })
    .unwrap();
    assert_cohort(&ensembl, &f.join("expected_ensembl"));
    assert!(
        ensembl
            .header
            .iter()
            .any(|h| h.starts_with("rna_ENSG") && h.ends_with("_PAR_Y"))
    );
}

#[test]
fn both_clinical_spellings_give_one_cohort() {
    let f = fixture();
    let old = gdc::build(&options()).unwrap();
    let new = gdc::build(&GdcOptions {
        clinical: f.join("download/clinical_new.tsv"),
        ..options()
    })
    .unwrap();
    assert_eq!(old, new);
}

#[test]
fn bad_downloads_are_named() {
    let f = fixture();
    let bad = f.join("bad");
    let err = |o: GdcOptions| gdc::build(&o).unwrap_err();

    // A gene type no gene has (a typo) is refused, naming the types the files have, rather
    // than leaving every gene out.
    let message = err(GdcOptions {
        gene_types: GeneTypes::Only(vec!["protein_coding".into(), "bogus".into()]),
        ..options()
    })
    .to_string();
    assert!(
        message.contains("gene type(s) asked for: bogus")
            && message.contains("protein_coding")
            && message.contains(".tsv"),
        "{message}"
    );

    let e = err(GdcOptions {
        clinical: bad.join("contradiction_clinical.tsv"),
        ..options()
    });
    assert!(
        matches!(&e, GdcError::Contradiction { case, .. } if case == "TCGA-05-4244"),
        "{e}"
    );
    let message = e.to_string();
    assert!(
        message.contains("contradiction_clinical.tsv")
            && message.contains("`vital_status` is `Dead` on line 2 but `Alive` on line 3"),
        "{message}"
    );

    let message = err(GdcOptions {
        clinical: bad.join("negative_clinical.tsv"),
        ..options()
    })
    .to_string();
    assert!(
        message.contains("negative_clinical.tsv")
            && message.contains("line")
            && message.contains("a time cannot be negative"),
        "{message}"
    );

    let message = err(GdcOptions {
        sample_sheet: bad.join("missing_file_sample_sheet.tsv"),
        ..options()
    })
    .to_string();
    assert!(
        message.contains("missing_file_sample_sheet.tsv") && message.contains("line"),
        "{message}"
    );

    let e = err(GdcOptions {
        sample_sheet: bad.join("mixed_case_sample_sheet.tsv"),
        ..options()
    });
    assert!(matches!(e, GdcError::Inconsistent { .. }), "{e}");

    // A STAR file with another header, put where the sample sheet expects one of its files.
    let dir = tempfile::tempdir().unwrap();
    let expression = dir.path().join("expression");
    copy_dir(&f.join("download/expression"), &expression);
    let victim = std::fs::read_dir(&expression)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let file = std::fs::read_dir(&victim)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(bad.join("bad_header.tsv"), &file).unwrap();
    let e = err(GdcOptions {
        expression_dir: expression,
        ..options()
    });
    let message = e.to_string();
    assert!(
        matches!(e, GdcError::Header { line: 2, .. })
            && message.contains("not a STAR gene-counts file"),
        "{message}"
    );

    let message = err(GdcOptions {
        sample_types: vec!["Primary Tumour".into()],
        ..options()
    })
    .to_string();
    assert!(
        message.contains("unknown sample type `Primary Tumour`"),
        "{message}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn the_command_builds_a_cohort_that_check_accepts_and_training_takes() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cohort.csv");
    let report = dir.path().join("report.json");
    let download = f.join("download");
    let features = f.join("features");
    let o = bin(&[
        "cohort",
        "gdc",
        "--sample-sheet",
        download
            .join("gdc_sample_sheet.2026-11-01.tsv")
            .to_str()
            .unwrap(),
        "--expression",
        download.join("expression").to_str().unwrap(),
        "--clinical",
        download.join("clinical.tsv").to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--out",
        csv.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    // Progress, with the time elapsed and left, ends with every file read.
    let last = stderr
        .lines()
        .rfind(|l| l.starts_with("expression files read "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(last.contains(", elapsed "), "{stderr}");
    let counts = last["expression files read ".len()..]
        .split(',')
        .next()
        .unwrap();
    let (done, total) = counts.split_once('/').unwrap();
    assert_eq!(done, total, "{stderr}");
    for line in [
        "kept           5 case(s), 6 slide(s), 6 gene(s) (GENCODE v36)",
        "rna only       TCGA-05-4384, TCGA-05-4390",
        "no survival    TCGA-05-4395, TCGA-05-4396, TCGA-05-4402",
    ] {
        assert!(stdout.contains(line), "`{line}` in\n{stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["slide_only"], serde_json::json!(["TCGA-05-4389"]));

    let o = bin(&[
        "check",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("task          survival"), "{stdout}");
    assert!(
        stdout.contains("patients      5 (1 with several slides)"),
        "{stdout}"
    );

    // Both events on the training side (two time bins need two event times).
    let splits = dir.path().join("splits.csv");
    std::fs::write(
        &splits,
        ",train,val\n0,TCGA-05-4244,TCGA-05-4397\n1,TCGA-05-4382,\n2,TCGA-05-4249,\n3,TCGA-05-4250,\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let o = bin(&[
        "train",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--task",
        "survival",
        "--splits",
        splits.to_str().unwrap(),
        "--bins",
        "2",
        "--epochs",
        "1",
        "--bag-size",
        "4",
    ]);
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("6 gene column(s) by `rna_*`"), "{stderr}");
    assert!(run.join("model.bpk").is_file());
}

/// `cohort gdc` with bad input, on the command line: each case exits with 1 (2 for a value
/// the parser refuses), names the file or value at fault, writes no cohort and does not
/// panic.
#[test]
fn the_command_names_bad_input_and_writes_nothing() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let download = f.join("download");
    let sheet = download.join("gdc_sample_sheet.2026-11-01.tsv");
    let expression = download.join("expression");
    let clinical = download.join("clinical.tsv");
    let features = f.join("features");
    let labels = download.join("labels.csv");
    let bad_header = f.join("bad/bad_header.tsv");
    let nowhere = dir.path().join("nowhere");
    let out = dir.path().join("cohort.csv");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    // Every required argument, then `changed` put in place of its flag's value (or added).
    let run = |changed: &[(&str, String)]| {
        let mut args: Vec<(&str, String)> = vec![
            ("--sample-sheet", path(&sheet)),
            ("--expression", path(&expression)),
            ("--clinical", path(&clinical)),
            ("--features", path(&features)),
            ("--out", path(&out)),
        ];
        for (flag, value) in changed {
            match args.iter_mut().find(|(f, _)| f == flag) {
                Some(arg) => arg.1 = value.clone(),
                None => args.push((flag, value.clone())),
            }
        }
        let mut line = vec!["cohort".to_string(), "gdc".to_string()];
        for (flag, value) in args {
            line.push(flag.to_string());
            line.push(value);
        }
        bin(&line.iter().map(String::as_str).collect::<Vec<_>>())
    };
    /// The arguments changed, the exit code and what stderr must say.
    type Case<'a> = (Vec<(&'a str, String)>, i32, Vec<String>);
    let cases: Vec<Case> = vec![
        (
            vec![("--sample-sheet", path(&nowhere.join("sheet.tsv")))],
            1,
            vec![path(&nowhere.join("sheet.tsv"))],
        ),
        (
            vec![("--expression", path(&nowhere))],
            1,
            vec![path(&nowhere), "are not in".into()],
        ),
        (
            vec![("--clinical", path(&bad_header))],
            1,
            vec![path(&bad_header), "line 2".into()],
        ),
        (
            vec![("--features", path(&nowhere))],
            1,
            vec![path(&nowhere)],
        ),
        (
            vec![
                ("--labels", path(&labels)),
                ("--label-column", "nosuch".into()),
            ],
            1,
            vec![path(&labels), "no column `nosuch`".into()],
        ),
        (
            vec![("--sample-types", "Bogus".into())],
            1,
            vec!["unknown sample type `Bogus`".into()],
        ),
        (
            vec![("--value", "bogus".into())],
            2,
            vec!["bogus".into(), "--value".into()],
        ),
    ];
    for (changed, code, needles) in cases {
        let o = run(&changed);
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(code), "{changed:?}: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(&needle),
                "{changed:?}: `{needle}` in {stderr}"
            );
        }
        assert!(!stderr.contains("panicked"), "{changed:?}: {stderr}");
        assert!(!out.exists(), "{changed:?}: a cohort was written");
    }
    // The same arguments without a fault do write it.
    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(out.is_file());
}
