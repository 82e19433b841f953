//! The `med-crossvit` binary, run as a user would.

mod common;

use common::{bin, text};

#[test]
fn synth_then_check_json_has_exactly_the_summary_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = bin(&[
        "synth",
        "--out",
        out,
        "--slides",
        "9",
        "--tiles",
        "12",
        "--dim",
        "6",
        "--genes",
        "4",
        "--classes",
        "3",
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let csv = format!("{out}/cohort.csv");
    let features = format!("{out}/features");
    let o = bin(&["check", "--csv", &csv, "--features", &features, "--json"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "feature_dim",
            "gene_rule",
            "genes",
            "ignored_columns",
            "labels",
            "patients",
            "patients_multi_slide",
            "slides",
            "tiles_max",
            "tiles_median",
            "tiles_min",
            "unit"
        ]
    );
    assert_eq!(v["slides"], 9);
    assert_eq!(v["feature_dim"], 6);
    assert_eq!(v["genes"], 4);
    assert_eq!(
        v["labels"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| c.as_u64().unwrap())
            .sum::<u64>(),
        9
    );
}

#[test]
fn check_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::manifest_dir().join("tests/fixtures/h5");
    let features = dir.path().join("features");
    std::fs::create_dir_all(&features).unwrap();
    std::fs::copy(root.join("clam/slide-clam.h5"), features.join("a.h5")).unwrap();
    std::fs::copy(root.join("bad/no_features.h5"), features.join("b.h5")).unwrap();
    let csv = dir.path().join("c.csv");
    std::fs::write(
        &csv,
        "wsi_file_name,label,rna_a\na,0,1\nb,1,2\nc,1,3\nd,0,4\n",
    )
    .unwrap();
    let o = bin(&[
        "check",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("slide `c`") && stderr.contains("slide `d`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("b.h5") && stderr.contains("no features dataset"),
        "{stderr}"
    );
    assert!(stdout.contains("slides        1"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    std::fs::write(&csv, "wsi_file_name,label,rna_a\na,0,oops\n").unwrap();
    let o = bin(&[
        "check",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr.contains("line 2 (slide `a`), column `rna_a`"),
        "{stderr}"
    );
}

#[test]
fn synth_task_survival_writes_survival_columns_and_survival_is_its_alias() {
    let dir = tempfile::tempdir().unwrap();
    let header = |args: &[&str], name: &str| {
        let out = dir.path().join(name);
        let out = out.to_str().unwrap();
        let mut all = vec!["synth", "--out", out, "--slides", "4", "--tiles", "4"];
        all.extend_from_slice(args);
        let o = bin(&all);
        assert!(o.status.success(), "{:?}", text(&o));
        std::fs::read_to_string(format!("{out}/cohort.csv")).unwrap()
    };
    let task = header(&["--task", "survival"], "task");
    let first = task.lines().next().unwrap();
    assert!(first.contains(",survival_months,censorship,"), "{first}");
    assert_eq!(header(&["--survival"], "alias"), task);
    let plain = header(&[], "plain");
    assert!(!plain.contains("survival_months"), "{plain}");
    let o = bin(&["synth", "--out", "x", "--task", "regression"]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
}

#[test]
fn check_reports_the_expression_range_after_the_chosen_normalization() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("c.csv");
    std::fs::write(
        &csv,
        "wsi_file_name,patient_id,label,rna_a,rna_b\ns1,P1,0,1,0\ns2,P2,1,2,0\ns3,P3,0,3,600\n",
    )
    .unwrap();
    let features = dir.path().join("features");
    std::fs::create_dir(&features).unwrap();
    let check = |normalize: &[&str]| {
        let o = common::bin(
            &[
                &[
                    "check",
                    "--csv",
                    csv.to_str().unwrap(),
                    "--features",
                    features.to_str().unwrap(),
                    "--missing-modality",
                    "allow",
                ][..],
                normalize,
            ]
            .concat(),
        );
        common::text(&o)
    };
    let (stdout, stderr) = check(&["--normalize", "none"]);
    assert!(
        stdout.contains(
            "expression after `none`: min 0, max 600 over 3 patient(s) × 2 gene(s); \
             largest |x|: rna_b 600, rna_a 3"
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning: expression after `none` normalization")
            && stderr.contains("1 of 2 gene(s) exceed ±10, the largest rna_b 600, rna_a 3"),
        "{stderr}"
    );
    // The default is train's: log2(x + 1) then a z-score, where one outlier among 3 patients
    // is sqrt(2).
    let (stdout, stderr) = check(&[]);
    assert!(
        stdout.contains("expression after `log2-zscore`: min -1.29, max 1.41"),
        "{stdout}"
    );
    assert!(!stderr.contains("warning: expression"), "{stderr}");
}
