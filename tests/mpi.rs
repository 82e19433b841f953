//! Training across MPI processes (the `mpi` feature; `make test-mpi`, run by CI): 2 ranks on
//! loopback end with the single-process run's metrics, also resumed and with 2 devices per
//! rank; a rank that fails on bad input ends the whole job with its message.
//!
//! Needs `mpirun` (Debian: openmpi-bin). Without it the tests say they are skipped, unless
//! `MED_CROSSVIT_REQUIRE_MPI=1` (set by `.ci/run`) makes that a failure.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "it/support/mod.rs"]
mod support;
use support::{TinyRun, bin, text};

fn mpirun() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("mpirun"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("MED_CROSSVIT_REQUIRE_MPI").is_none(),
            "MED_CROSSVIT_REQUIRE_MPI is set but mpirun is not installed"
        );
        support::skipped(
            "the MPI tests",
            "mpirun not installed (CI installs OpenMPI)",
            "install openmpi-bin, or set MED_CROSSVIT_REQUIRE_MPI=1 to make this an error",
        );
    }
    found
}

/// `mpirun` with `ranks` = one argument list per rank (MPMD: `-n 1 … : -n 1 …`), ended after
/// two minutes at most: a hang fails the test instead of stalling it.
fn launch(mpirun: &Path, ranks: &[Vec<String>]) -> Output {
    let mut c = Command::new(mpirun);
    c.args(["--allow-run-as-root", "--oversubscribe"]);
    for (i, args) in ranks.iter().enumerate() {
        if i > 0 {
            c.arg(":");
        }
        c.args(["-n", "1", env!("CARGO_BIN_EXE_med-crossvit")]);
        c.args(args);
    }
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the MPI job did not end within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// The `train` arguments of these tests: [`support::TinyRun`] as a 2-fold cross-validation.
fn cv_args(run: &TinyRun, out: &str, features: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = run.args(out, features, &["--folds", "2"]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn numbers(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .flat_map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn assert_same_run(a: &Path, b: &Path) {
    for fold in ["fold_0", "fold_1"] {
        let (x, y) = (
            numbers(&a.join(fold).join("metrics.csv")),
            numbers(&b.join(fold).join("metrics.csv")),
        );
        assert_eq!(x.len(), y.len());
        assert!(!x.is_empty(), "{fold}: no metrics");
        for (u, v) in x.iter().zip(&y) {
            assert!(
                (u - v).abs() < 1e-4 || (u.is_nan() && v.is_nan()),
                "{fold}: {x:?} vs {y:?}"
            );
        }
    }
    let pooled = |run: &Path| -> serde_json::Value {
        let cv: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("cv.json")).unwrap()).unwrap();
        cv["pooled"].clone()
    };
    let (x, y) = (pooled(a), pooled(b));
    for name in ["accuracy", "balanced_accuracy", "auc"] {
        let (u, v) = (x[name].as_f64().unwrap(), y[name].as_f64().unwrap());
        assert!((u - v).abs() < 1e-4, "{name}: {u} vs {v}");
    }
}

#[test]
fn two_ranks_train_as_one_process() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = TinyRun::new(dir.path());
    let one: Vec<String> = cv_args(&s, "one", &s.features, &[]);
    let o = bin(&one.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o).1);

    let two = cv_args(&s, "two", &s.features, &["--distributed", "mpi"]);
    let o = launch(&mpirun, &[two.clone(), two]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert_same_run(&dir.path().join("one"), &dir.path().join("two"));
    // Rank 0 alone wrote the run: one summary, one report.
    assert_eq!(stdout.matches("results in").count(), 1, "{stdout}");
    assert!(dir.path().join("two/report.html").is_file());

    // 2 ranks × 2 devices each.
    let four = cv_args(
        &s,
        "four",
        &s.features,
        &["--distributed", "mpi", "--devices", "2"],
    );
    let o = launch(&mpirun, &[four.clone(), four]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_same_run(&dir.path().join("one"), &dir.path().join("four"));

    // Interrupted after one epoch, resumed by another MPI job.
    let cut = cv_args(
        &s,
        "cut",
        &s.features,
        &["--distributed", "mpi", "--stop-after-epoch", "1"],
    );
    let o = launch(&mpirun, &[cut.clone(), cut]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(!dir.path().join("cut/cv.json").exists());
    let resume: Vec<String> = [
        "train",
        "--resume",
        dir.path().join("cut").to_str().unwrap(),
        "--distributed",
        "mpi",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = launch(&mpirun, &[resume.clone(), resume]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_same_run(&dir.path().join("one"), &dir.path().join("cut"));
}

#[test]
fn a_failing_rank_ends_the_job_with_its_message() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = TinyRun::new(dir.path());
    // Rank 1 sees a copy of the features with one file missing (a node without it).
    let bad = dir.path().join("bad");
    let project = std::fs::read_dir(&s.features)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    std::fs::create_dir_all(bad.join(&project)).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(s.features.join(&project))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files[1..] {
        std::fs::copy(f, bad.join(&project).join(f.file_name().unwrap())).unwrap();
    }
    let missing = files[0].file_stem().unwrap().to_string_lossy().into_owned();
    let good = cv_args(&s, "job", &s.features, &["--distributed", "mpi"]);
    let broken = cv_args(&s, "job", &bad, &["--distributed", "mpi"]);
    let o = launch(&mpirun, &[good, broken]);
    let (stdout, stderr) = text(&o);
    assert!(!o.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("rank 1 of 2") && stderr.contains(&missing),
        "{stderr}"
    );
    // Nothing was trained: no checkpoint, no results.
    assert!(!dir.path().join("job/cv.json").exists());
}

#[test]
fn ranks_that_start_from_other_weights_are_refused() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = TinyRun::new(dir.path());
    // Another seed on rank 1: other initial weights (as another build or device would give).
    let a = cv_args(
        &s,
        "job",
        &s.features,
        &["--distributed", "mpi", "--seed", "1"],
    );
    let b = cv_args(
        &s,
        "job",
        &s.features,
        &["--distributed", "mpi", "--seed", "2"],
    );
    let o = launch(&mpirun, &[a, b]);
    let (stdout, stderr) = text(&o);
    assert!(!o.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("rank 1 starts from other weights than rank 0"),
        "{stderr}"
    );
}
