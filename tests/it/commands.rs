//! The `med-crossvit` binary, run as a user would.

use crate::support;

use crate::support::{bin, text};

#[test]
fn synth_then_check_json_has_exactly_the_task_summary_and_problems_keys() {
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
            "problems",
            "slides",
            "task",
            "tiles_max",
            "tiles_median",
            "tiles_min",
            "unit"
        ]
    );
    assert_eq!(v["slides"], 9);
    assert_eq!(v["task"], "classification");
    assert_eq!(v["problems"], serde_json::json!([]));
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
    let root = support::manifest_dir().join("tests/fixtures/h5");
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

/// A cohort CSV `text` in `dir` with a copy of a 7 × 4 CLAM tile file for each of `slides`.
fn small_cohort(dir: &std::path::Path, text: &str, slides: &[&str]) -> (String, String) {
    let features = dir.join("features");
    std::fs::create_dir_all(&features).unwrap();
    let source = support::manifest_dir().join("tests/fixtures/h5/clam/slide-clam.h5");
    for s in slides {
        std::fs::copy(&source, features.join(format!("{s}.h5"))).unwrap();
    }
    let csv = dir.join("cohort.csv");
    std::fs::write(&csv, text).unwrap();
    (
        csv.to_str().unwrap().to_string(),
        features.to_str().unwrap().to_string(),
    )
}

#[test]
fn check_runs_the_validation_train_runs_and_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    // Line 3: a negative time; line 5: censorship 2; line 6: both.
    let (csv, features) = small_cohort(
        dir.path(),
        "wsi_file_name,patient_id,survival_months,censorship,rna_a\n\
         a,pa,10,0,1\nb,pb,-2,0,2\nc,pc,20,1,3\nd,pd,5,2,4\ne,pe,-1,3,5\nf,pf,7,0,6\n",
        &["a", "b", "c", "d", "e", "f"],
    );
    let args = ["check", "--csv", &csv, "--features", &features];
    for task in [&[][..], &["--task", "survival"][..]] {
        let o = bin(&[&args[..], task].concat());
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
        assert!(stdout.contains("task          survival"), "{stdout}");
        assert!(!stdout.contains("ok:"), "{stdout}");
        assert!(
            stderr.contains("4 problem(s)") && stderr.contains("bad survival values (4):"),
            "{stderr}"
        );
        for needle in [
            "line 3 (slide `b`), column `survival_months`: survival times cannot be negative",
            "line 5 (slide `d`), column `censorship`: censorship must be 1 (censored) or 0",
            "line 6 (slide `e`), column `survival_months`",
            "line 6 (slide `e`), column `censorship`",
        ] {
            assert!(stderr.contains(needle), "`{needle}` in {stderr}");
        }
        // One hint for the group.
        assert_eq!(stderr.matches("hint:").count(), 1, "{stderr}");
        assert!(stderr.contains("hint: survival times must be finite and 0 or more"));
    }
    let o = bin(&[&args[..], &["--json"]].concat());
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(text(&o).0.trim()).unwrap();
    assert_eq!(v["task"], "survival");
    assert_eq!(v["slides"], 6);
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 4, "{v}");
    assert!(problems.iter().all(|p| p["kind"] == "bad_outcome"), "{v}");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("line 3 (slide `b`)"),
        "{v}"
    );

    // `train` refuses the cohort with the same four problems, not only the first.
    let out = dir.path().join("run");
    let o = bin(&[
        "train",
        "--csv",
        &csv,
        "--features",
        &features,
        "--task",
        "survival",
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("4 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("line 3 (slide `b`)")
            && stderr.contains("line 6 (slide `e`), column `censorship`"),
        "{stderr}"
    );
    assert!(!out.exists());

    // A repeated column name is refused by both, naming its positions.
    let (csv, features) = small_cohort(
        dir.path(),
        "wsi_file_name,label,rna_0,rna_0\na,0,1,2\nb,1,3,4\n",
        &["a", "b"],
    );
    let o = bin(&["check", "--csv", &csv, "--features", &features, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(text(&o).0.trim()).unwrap();
    assert_eq!(v["task"], "unknown");
    assert_eq!(v["problems"][0]["kind"], "duplicate_column");
    assert!(
        v["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("column `rna_0` appears 2 times, at positions 3, 4"),
        "{v}"
    );
}

#[test]
fn check_lists_every_kind_and_counts_what_train_counts() {
    let dir = tempfile::tempdir().unwrap();
    // b has no expression; c has no tile file.
    let (csv, features) = small_cohort(
        dir.path(),
        "wsi_file_name,patient_id,label,rna_a\na,pa,0,1\nb,pb,1,\nc,pc,0,3\nd,pd,1,4\ne,pd,1,4\n",
        &["a", "b", "d", "e"],
    );
    let args = ["check", "--csv", &csv, "--features", &features];
    let o = bin(&args);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rows without expression (1):")
            && stderr.contains("line 3 (slide `b`)")
            && stderr.contains("missing tile-feature files (1):")
            && stderr.contains("slide `c`"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("hint:").count(), 2, "{stderr}");

    // With missing modalities allowed, all 5 slides of 4 patients take part, for both.
    let o = bin(&[&args[..], &["--missing-modality", "allow", "--json"]].concat());
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (v["slides"].as_u64(), v["patients"].as_u64()),
        (Some(5), Some(4)),
        "{v}"
    );
    assert_eq!(v["patients_multi_slide"], 1);
    assert_eq!(v["problems"], serde_json::json!([]));
    // `train` says the same before it stops (here at once, on a gene count it cannot have).
    let out = dir.path().join("run");
    let o = bin(&[
        "train",
        "--csv",
        &csv,
        "--features",
        &features,
        "--missing-modality",
        "allow",
        "--top-genes",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("4 patient(s), 5 slide(s)"), "{stderr}");
}

/// Progress and the summary number folds from 0 as their folders (`fold 0 (1 of 2)`, never
/// `fold 1/2` for `fold_0/`), name the selection metric and the checkpoint kept, and give
/// the time elapsed and left; `--help` names the metric of early stopping and selection.
#[test]
fn progress_numbers_folds_as_their_folders_and_names_the_selection_metric() {
    let dir = tempfile::tempdir().unwrap();
    let run = support::TinyRun::new(dir.path());
    let args = run.args("cv", &run.features, &["--folds", "2", "--patience", "2"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = bin(&args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    for k in 0..2 {
        assert!(
            stderr.contains(&format!("fold {k} ({} of 2): ", k + 1)),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("fold {k} ({} of 2) epoch   1/3: ", k + 1)),
            "{stderr}"
        );
        assert!(dir.path().join(format!("cv/fold_{k}")).is_dir());
    }
    assert!(
        !stderr.contains("fold 1/2") && !stderr.contains("fold 2/2"),
        "{stderr}"
    );
    assert!(stderr.contains("(best val_auc)"), "{stderr}");
    assert!(
        stderr.contains("stops after 2 epochs without a better val_auc; keeps the best epoch on val_auc (--select best)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("elapsed ") && stderr.contains(", ETA "),
        "{stderr}"
    );
    assert!(
        stdout.contains("checkpoint: the best epoch on val_auc (--select best"),
        "{stdout}"
    );
    assert!(
        stdout.contains("val_auc over the folds: best epochs "),
        "{stdout}"
    );
    let cv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cv/cv.json")).unwrap())
            .unwrap();
    assert_eq!(cv["checkpoint"], "best");
    assert_eq!(cv["folds"][0]["fold"], 0);
    let o = bin(&["train", "--help"]);
    let (help, _) = text(&o);
    assert!(help.contains("--select <SELECT>"), "{help}");
    for name in ["val_auc", "val_c_index"] {
        assert!(help.matches(name).count() >= 2, "{name}: {help}");
    }
}

#[test]
fn max_patches_total_is_per_bag_source_in_help_and_readme_alike() {
    let o = bin(&["train", "--help"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let help = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    let at = help.find("--max-patches-total").unwrap();
    let entry = &help[at..at + 260];
    assert!(
        entry.contains("per patient (from the union of its slides) with --unit patient, per slide with --unit slide"),
        "{entry}"
    );
    // The README says the same (bags are drawn per patient by default).
    let readme = std::fs::read_to_string(support::manifest_dir().join("README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.contains("up to `--max-patches-total` tiles per patient per epoch"),
        "README"
    );
    assert!(readme.contains("(per slide with `--unit slide`)"), "README");
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
        let o = support::bin(
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
        support::text(&o)
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

/// `check --modalities rna` validates an expression table as `train --modalities rna` reads
/// it: no features folder, no slide column; without `--modalities rna` the missing features
/// folder is a problem naming the option.
#[test]
fn check_of_expression_alone_needs_no_features_or_slide_ids() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("rna.csv");
    std::fs::write(
        &csv,
        "case_id,survival_months,censorship,a_rnaseq,b_rnaseq\n\
         p1,10,0,1,2\np2,20,1,2,3\np3,5,0,3,1\np4,7,0,4,4\np5,12,1,0,1\np6,3,0,2,2\n\
         p7,9,0,1,1\np8,15,0,5,2\n",
    )
    .unwrap();
    let csv = csv.to_str().unwrap();
    let o = bin(&["check", "--csv", csv, "--modalities", "rna", "--json"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["task"], "survival");
    assert_eq!(
        (v["slides"].as_u64(), v["patients"].as_u64()),
        (Some(8), Some(8))
    );
    assert_eq!(v["problems"], serde_json::json!([]));
    let o = bin(&["check", "--csv", csv, "--modalities", "rna"]);
    let (stdout, _) = text(&o);
    assert!(
        stdout.contains("tiles         none read") && !stdout.contains("feature width"),
        "{stdout}"
    );
    let o = bin(&["check", "--csv", csv, "--json"]);
    let (stdout, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("--features"), "{stdout}");
}

/// `bench` on a small model: the text report has its lines, the JSON object its fields, and
/// the rate is the FLOPs over the median forward pass.
#[test]
fn bench_reports_times_rate_and_memory_in_text_and_json() {
    let small = ["bench", "--preset", "small", "--batch", "2", "--genes", "8"];
    let o = bin(&[&small[..], &["--iters", "1", "--train"]].concat());
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(
            "model: preset small, 8 genes (dense tokenizer, exact attention), batch 2 "
        ),
        "{stdout}"
    );
    for start in [
        "parameters",
        "forward ",
        "training step",
        "  of which",
        "forward FLOPs",
        "peak RSS",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(start)),
            "no `{start}` line in\n{stdout}"
        );
    }
    let params_line = lines.iter().find(|l| l.starts_with("parameters")).unwrap();
    let params: u64 = params_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();

    let o = bin(&[&small[..], &["--iters", "2", "--json"]].concat());
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON object: {stdout}"
    );
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let number = |key: &str| {
        json[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no number `{key}` in {json}"))
    };
    assert_eq!(number("params"), params as f64, "the same model both times");
    let (median, fastest) = (number("forward_ms"), number("forward_min_ms"));
    assert!(fastest > 0.0 && fastest <= median, "{json}");
    let rate = number("flops") / (median * 1e-3) / 1e9;
    assert!(
        number("flops") > 0.0 && (number("gflops") - rate).abs() <= 1e-6 * rate,
        "{json}"
    );
    assert!(number("peak_rss_mb") > 0.0, "{json}");
    // Without --train, no training times.
    assert!(json.get("train_step_ms").is_none(), "{json}");

    // A batch or a count of zero is refused, not taken for 1.
    for (flag, field) in [("--batch", "batch"), ("--iters", "iters")] {
        let o = bin(&["bench", "--preset", "small", "--genes", "8", flag, "0"]);
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("`{field}` must be at least 1"))
                && !stderr.contains("panicked"),
            "{stderr}"
        );
    }

    let o = bin(&["bench", "--preset", "huge", "--iters", "1"]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unknown preset `huge`") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// The metrics.csv rows of a finished run in `dir`, as numbers.
fn history(dir: &std::path::Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

/// The run's config.json.
fn config_of(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

/// `--class-weights` on a cohort whose classes are unbalanced (a third of the class-1 slides
/// kept) is recorded and changes training: the same seed without it gives other losses.
#[test]
fn class_weights_are_recorded_and_change_the_training_loss() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = support::TinyRun::new(dir.path());
    let text_csv = std::fs::read_to_string(&tiny.csv).unwrap();
    let mut lines = text_csv.lines();
    let header = lines.next().unwrap();
    let label = header.split(',').position(|c| c == "label").unwrap();
    let mut ones = 0;
    let kept: Vec<&str> = lines
        .filter(|l| {
            let one = l.split(',').nth(label) == Some("1");
            ones += usize::from(one);
            !one || ones % 3 == 1
        })
        .collect();
    let count = |class: &str| {
        kept.iter()
            .filter(|l| l.split(',').nth(label) == Some(class))
            .count()
    };
    assert!(count("0") >= 2 * count("1") && count("1") >= 2, "{kept:?}");
    std::fs::write(&tiny.csv, format!("{header}\n{}\n", kept.join("\n"))).unwrap();
    let mut runs = Vec::new();
    for (name, extra) in [("plain", &[][..]), ("weighted", &["--class-weights"][..])] {
        let o = bin(&tiny
            .args(name, &tiny.features, extra)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>());
        let (_, stderr) = text(&o);
        assert!(o.status.success(), "{name}: {stderr}");
        let run = dir.path().join(name);
        assert_eq!(
            config_of(&run)["training"]["class_weights"],
            name == "weighted",
            "{name}"
        );
        runs.push(history(&run));
    }
    assert_eq!(runs[0].len(), 3);
    assert_eq!(runs[0].len(), runs[1].len());
    // Column 2 is train_loss.
    let differ = runs[0]
        .iter()
        .zip(&runs[1])
        .any(|(a, b)| (a[2] - b[2]).abs() > 1e-6 * a[2].abs().max(1.0));
    assert!(differ, "class weights changed no loss: {runs:?}");
}

/// Every column-name flag: a cohort whose columns all have other names trains once the
/// flags name them, as the same cohort under the default names does, and the names are
/// recorded; without the flags the missing column is named.
#[test]
fn column_name_flags_read_a_cohort_with_other_column_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::synth(&dir.path().join("cohort"), 16, 8, 5, 7, true);
    let original = std::fs::read_to_string(&data.csv).unwrap();
    let (header, body) = original.split_once('\n').unwrap();
    let renamed: Vec<String> = header
        .split(',')
        .map(|c| match c {
            "wsi_file_name" => "slide".to_string(),
            "project" => "site".to_string(),
            "label" => "subtype".to_string(),
            "patient_id" => "case".to_string(),
            "survival_months" => "os_days".to_string(),
            "censorship" => "alive".to_string(),
            gene => gene.replacen("rna_", "g_", 1),
        })
        .collect();
    assert!(renamed.iter().any(|c| c.starts_with("g_")), "{header}");
    let csv = dir.path().join("renamed.csv");
    std::fs::write(&csv, format!("{}\n{body}", renamed.join(","))).unwrap();
    let features = data.features_dir.to_str().unwrap();
    let train = |csv: &std::path::Path, out: &str, extra: &[&str]| {
        let out = dir.path().join(out);
        let base = [
            "train",
            "--csv",
            csv.to_str().unwrap(),
            "--features",
            features,
            "--out",
            out.to_str().unwrap(),
            "--task",
            "survival",
            "--bins",
            "2",
            "--epochs",
            "1",
            "--bootstrap",
            "0",
        ];
        let o = bin(&[&base[..], &support::TINY_STEP_FLAGS[..], extra].concat());
        (o, out)
    };
    let flags = [
        "--slide-column",
        "slide",
        "--project-column",
        "site",
        "--label-column",
        "subtype",
        "--patient-column",
        "case",
        "--time-column",
        "os_days",
        "--censorship-column",
        "alive",
        "--gene-prefix",
        "g_",
    ];
    let (o, named) = train(&csv, "named", &flags);
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let (o, default) = train(&data.csv, "default", &[]);
    let (_, default_stderr) = text(&o);
    assert!(o.status.success(), "{default_stderr}");
    // The same cohort read the same way: the same patients, splits and first epoch.
    let summary = |s: &str| {
        s.lines()
            .find(|l| l.contains("patient(s)"))
            .map(String::from)
            .unwrap_or_else(|| panic!("{s}"))
    };
    assert_eq!(
        summary(&stderr),
        summary(&default_stderr).replace("by `rna_*` (the default)", "by `g_*`"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(named.join("splits.csv")).unwrap(),
        std::fs::read_to_string(default.join("splits.csv")).unwrap()
    );
    let config = config_of(&named);
    let columns = &config["columns"];
    for (key, value) in [
        ("slide", "slide"),
        ("project", "site"),
        ("label", "subtype"),
        ("patient", "case"),
        ("gene_prefix", "g_"),
    ] {
        assert_eq!(columns[key], value, "{key}: {columns}");
    }
    assert_eq!(config["training"]["survival"]["time_column"], "os_days");
    assert_eq!(config["training"]["survival"]["censorship_column"], "alive");
    assert_eq!(config["model"]["rna_num_genes"], 5);

    // Without the flags, or with a flag naming a column the CSV lacks: the column is named.
    let wrong: Vec<&str> = flags
        .iter()
        .map(|&f| if f == "os_days" { "nosuch" } else { f })
        .collect();
    for (out, extra, needle) in [
        ("bare", &[][..], "no column `wsi_file_name`"),
        ("wrong", &wrong[..], "no column `nosuch`"),
    ] {
        let (o, _) = train(&csv, out, extra);
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}: {stderr}");
        assert!(
            stderr.contains(needle) && !stderr.contains("panicked"),
            "{out}: {stderr}"
        );
    }
}
