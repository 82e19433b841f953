//! Model and run folders are user input: each hand-edited `config.json`,
//! `normalization.json`, `labels.json` or checkpoint file that cannot work fails on load with
//! exit code 1, naming the file and the field, and nothing is written.

use serde_json::{Value, json};

use crate::support::folders;

use folders::{Cmd, apply, as_survival, base_run, cohort, copy_dir, edit_json, snapshot, stderr};

#[test]
fn hand_edited_model_folders_fail_on_load_naming_file_and_field_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = cohort(dir.path());
    let base = base_run(dir.path(), &data);
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, Cmd, &str)> = vec![
        (
            "config.json",
            |c| c["training"]["batch_size"] = json!(0),
            Cmd::Evaluate,
            "training.batch_size",
        ),
        (
            "config.json",
            |c| c["training"]["workers"] = json!(0),
            Cmd::Predict,
            "training.workers",
        ),
        (
            "config.json",
            |c| c["training"]["bag_size"] = json!(0),
            Cmd::Predict,
            "training.bag_size",
        ),
        (
            "config.json",
            |c| c["training"]["lr"] = json!(0.0),
            Cmd::Resume,
            "training.lr",
        ),
        (
            "config.json",
            |c| c["training"]["lr"] = json!(-1e-3),
            Cmd::Evaluate,
            "training.lr",
        ),
        (
            "config.json",
            |c| c["training"]["epochs"] = json!(0),
            Cmd::Resume,
            "training.epochs",
        ),
        (
            "config.json",
            |c| c["training"]["val_fraction"] = json!(1.5),
            Cmd::Resume,
            "training.val_fraction",
        ),
        (
            "config.json",
            |c| c["model"]["dropout"] = json!(1.0),
            Cmd::Evaluate,
            "model.dropout",
        ),
        (
            "config.json",
            |c| c["model"]["depth"] = json!(0),
            Cmd::Predict,
            "model.depth",
        ),
        (
            "config.json",
            |c| c["model"]["wsi_num_tiles"] = json!(2),
            Cmd::Evaluate,
            "model.wsi_num_tiles",
        ),
        (
            "config.json",
            |c| c["folds"] = json!(1),
            Cmd::Resume,
            "`folds`",
        ),
        (
            "config.json",
            |c| {
                as_survival(c);
                c["survival_bins"]["edges"] = json!([0.0])
            },
            Cmd::Predict,
            "survival_bins.edges",
        ),
        (
            "config.json",
            |c| {
                as_survival(c);
                c["survival_bins"]["edges"] = json!([0.0, 20.0, 10.0])
            },
            Cmd::Predict,
            "survival_bins.edges",
        ),
        (
            "config.json",
            |c| {
                as_survival(c);
                c["survival_bins"]["edges"] = json!([0.0, 5.0, 10.0, 20.0])
            },
            Cmd::Evaluate,
            "survival_bins.edges",
        ),
        (
            "config.json",
            |c| {
                as_survival(c);
                c["training"]["survival"]["bins"] = json!(3)
            },
            Cmd::Predict,
            "training.survival.bins",
        ),
        (
            "config.json",
            |c| {
                as_survival(c);
                c["survival_bins"] = Value::Null
            },
            Cmd::Predict,
            "`survival_bins`",
        ),
        (
            "normalization.json",
            |n| {
                for k in ["genes", "mean", "std"] {
                    n[k].as_array_mut().unwrap().pop();
                }
            },
            Cmd::Predict,
            "`mean`",
        ),
        (
            "normalization.json",
            |n| {
                n["std"].as_array_mut().unwrap().pop();
            },
            Cmd::Evaluate,
            "`std`",
        ),
        (
            "normalization.json",
            |n| n["std"][1] = json!(-1.0),
            Cmd::Predict,
            "std[1]",
        ),
        (
            "normalization.json",
            |n| n["std"][0] = json!(0.0),
            Cmd::Resume,
            "std[0]",
        ),
        (
            "normalization.json",
            |n| n["log2"] = json!(false),
            Cmd::Resume,
            "`log2`",
        ),
        (
            "config.json",
            |c| c["training"]["batchsize"] = json!(0),
            Cmd::Evaluate,
            "unknown field `batchsize`",
        ),
        (
            "normalization.json",
            |n| n["scale"] = json!(2.0),
            Cmd::Predict,
            "unknown field `scale`",
        ),
        (
            "labels.json",
            |l| l["classes"] = json!(["0"]),
            Cmd::Evaluate,
            "`classes`",
        ),
        (
            "labels.json",
            |l| l["classes"] = json!(["0", "0"]),
            Cmd::Predict,
            "`classes`",
        ),
        (
            "labels.json",
            |l| l["classes"] = json!([]),
            Cmd::Resume,
            "`classes`",
        ),
        (
            "checkpoints/epoch-0001/state.json",
            |s| s["best"][0] = json!(5),
            Cmd::Resume,
            "`best`",
        ),
        (
            "checkpoints/epoch-0001/state.json",
            |s| s["history"] = json!([]),
            Cmd::Resume,
            "`history`",
        ),
        (
            "checkpoints/latest.json",
            |p| p["folder"] = json!("../../elsewhere"),
            Cmd::Resume,
            "`folder`",
        ),
    ];
    // The unedited folder, and its survival variant, work with each command: the failures
    // below come from the edits alone.
    let survival = dir.path().join("survival");
    copy_dir(&base, &survival);
    edit_json(&survival.join("config.json"), as_survival);
    for (model, cmd) in [
        (&base, Cmd::Evaluate),
        (&base, Cmd::Predict),
        (&survival, Cmd::Predict),
    ] {
        let out = dir.path().join(format!("ok-{cmd:?}"));
        let o = apply(cmd, model, &data, &out);
        assert!(
            o.status.success(),
            "{cmd:?} {}: {}",
            model.display(),
            stderr(&o)
        );
        assert!(out.exists());
    }
    let resumed = dir.path().join("resumed");
    copy_dir(&base, &resumed);
    let o = apply(Cmd::Resume, &resumed, &data, &resumed);
    assert!(o.status.success(), "{}", stderr(&o));

    for (i, (file, edit, cmd, field)) in cases.into_iter().enumerate() {
        let folder = dir.path().join(format!("case-{i}"));
        copy_dir(&base, &folder);
        edit_json(&folder.join(file), edit);
        let before = snapshot(&folder);
        let out = dir.path().join(format!("out-{i}"));
        let o = apply(cmd, &folder, &data, &out);
        let err = stderr(&o);
        let what = format!("case {i}: {file} {field} with {cmd:?}");
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        let named = folder.join(file).display().to_string();
        assert!(err.contains(&named) && err.contains(field), "{what}: {err}");
        assert!(!out.exists(), "{what}: output written");
        assert!(
            snapshot(&folder) == before,
            "{what}: the run folder changed"
        );
    }
}
