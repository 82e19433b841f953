//! Crash safety: a training run killed with SIGKILL at any point of writing its run folder,
//! then resumed, ends with the same files as a run never interrupted.
//!
//! The kill points are exact, not timed: the binary stops at a named point when the test-only
//! `MED_CROSSVIT_TEST_PAUSE` variable asks it to (src/train/checkpoint.rs), writes a marker
//! file, and waits to be killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use med_crossvit::train::{PAUSE_MARKER_VAR, PAUSE_VAR};

use crate::support;

const GENES: usize = 4;

/// A child process killed when dropped, so that a failing test leaves none behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    dir: PathBuf,
    args: Vec<String>,
}

impl Setup {
    fn new(dir: &Path) -> Self {
        let data = support::synth(&dir.join("cohort"), 16, 8, GENES, 11, false);
        let model = dir.join("tiny.json");
        let config = serde_json::to_string(&support::tiny_model(2, GENES)).unwrap();
        std::fs::write(&model, config).unwrap();
        let args = [
            "--csv",
            data.csv.to_str().unwrap(),
            "--features",
            data.features_dir.to_str().unwrap(),
            "--config",
            model.to_str().unwrap(),
            "--epochs",
            "3",
            "--test-fraction",
            "0.2",
        ];
        Self {
            dir: dir.to_path_buf(),
            args: args
                .iter()
                .chain(&support::TINY_STEP_FLAGS)
                .map(|s| s.to_string())
                .collect(),
        }
    }

    fn command(&self, args: &[&str], log: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_med-crossvit"));
        c.args(args)
            .stdin(Stdio::null())
            // Files, not pipes: a child paused at a kill point must never block on a full pipe.
            .stdout(std::fs::File::create(self.dir.join(format!("{log}.out"))).unwrap())
            .stderr(std::fs::File::create(self.dir.join(format!("{log}.err"))).unwrap());
        c
    }

    fn log(&self, log: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{log}.err"))).unwrap_or_default()
    }

    fn train(&self, out: &Path) -> Command {
        let mut args = vec!["train", "--out", out.to_str().unwrap()];
        args.extend(self.args.iter().map(String::as_str));
        self.command(&args, "train")
    }

    /// Runs `command` until it stops at `point` (`STAGE@EPOCH`), then kills it with SIGKILL.
    fn kill_at(&self, command: Command, point: &str) {
        self.kill_at_after(command, point, || {});
    }

    /// [`kill_at`](Self::kill_at), running `while_paused` before the kill.
    fn kill_at_after(&self, mut command: Command, point: &str, while_paused: impl FnOnce()) {
        let marker = self.dir.join(format!("paused-{point}"));
        command.env(PAUSE_VAR, point).env(PAUSE_MARKER_VAR, &marker);
        let mut child = Killed(command.spawn().unwrap());
        let start = Instant::now();
        while !marker.exists() {
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!(
                    "exited ({status}) before {point}: {}",
                    self.log("train") + &self.log("resume")
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "never reached {point}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        while_paused();
        child.0.kill().unwrap();
        // Reaped, the process has released its lock on the run folder.
        child.0.wait().unwrap();
    }

    fn resume(&self, run: &Path) -> Command {
        self.command(&["train", "--resume", run.to_str().unwrap()], "resume")
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(tmp_files(&path));
        } else if path.file_name().unwrap().to_string_lossy().contains(".tmp") {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_run_killed_at_every_writing_stage_and_resumed_ends_like_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(dir.path());
    let whole = dir.path().join("whole");
    let status = setup.train(&whole).status().unwrap();
    assert!(status.success(), "{}", setup.log("train"));

    let cut = dir.path().join("cut");
    // Killed after writing config.json and the other run files, before any checkpoint.
    setup.kill_at(setup.train(&cut), "files@0");
    assert!(cut.join("config.json").is_file() && !cut.join("checkpoints").exists());
    // After epoch 1's best weights, before its checkpoint.
    setup.kill_at(setup.resume(&cut), "best@1");
    assert!(cut.join("model.bpk").is_file() && !cut.join("checkpoints/latest.json").exists());
    // Inside epoch 1's checkpoint: weights written, optimizer state not.
    setup.kill_at(setup.resume(&cut), "weights@1");
    assert!(cut.join("checkpoints/epoch-0001/model.bpk").is_file());
    assert!(!cut.join("checkpoints/latest.json").exists());
    // Epoch 2's checkpoint complete, but not yet current.
    // While a process trains the run, a second one refuses and leaves it alone.
    setup.kill_at_after(setup.resume(&cut), "state@2", || {
        let before = snapshot(&cut);
        let second = setup
            .command(&["train", "--resume", cut.to_str().unwrap()], "second")
            .status()
            .unwrap();
        assert_eq!(second.code(), Some(1), "{}", setup.log("second"));
        assert!(setup.log("second").contains("in use by another"));
        assert!(
            snapshot(&cut) == before,
            "the second process changed the run"
        );
    });
    let latest = std::fs::read_to_string(cut.join("checkpoints/latest.json")).unwrap();
    assert!(latest.contains("epoch-0001"), "{latest}");
    assert!(cut.join("checkpoints/epoch-0002/state.json").is_file());
    // The last checkpoint current, metrics.json not yet written.
    setup.kill_at(setup.resume(&cut), "pointer@3");
    assert!(!cut.join("metrics.json").exists());

    let status = setup.resume(&cut).status().unwrap();
    assert!(status.success(), "{}", setup.log("resume"));
    for file in [
        "metrics.csv",
        "metrics.json",
        "test_metrics.json",
        "model.bpk",
        "normalization.json",
        "labels.json",
        "config.json",
    ] {
        let bytes = |d: &Path| std::fs::read(d.join(file)).unwrap();
        assert!(bytes(&whole) == bytes(&cut), "{file} differs");
    }
    assert_eq!(
        std::fs::read_to_string(cut.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        4,
        "a header and one row per epoch"
    );
    assert!(tmp_files(&cut).is_empty(), "{:?}", tmp_files(&cut));
    let checkpoints: Vec<_> = std::fs::read_dir(cut.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        checkpoints.len(),
        2,
        "latest.json and one folder: {checkpoints:?}"
    );
}
