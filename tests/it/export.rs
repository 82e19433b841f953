//! `export`: models written as safetensors and `torch.save` files (docs/export.md), read
//! back by a hand-written safetensors parser and by the crate's own PyTorch reader, and the
//! Python original's reference checkpoint (tests/fixtures/parity) round-tripped through
//! `--keys original`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::Device;
use med_crossvit::inference::predict_cohort;
use med_crossvit::interop::{
    ExportError, ExportFormat, KeyMap, export_model, import_torch, load_checkpoint, native_tensors,
};
use med_crossvit::run::ModelBundle;
use med_crossvit::{MedCrossViTConfig, RunError};

use crate::interop::{assert_parity, imported, logits_csv, parity, parity_request};
use crate::support;

/// A safetensors file parsed by hand: `key → (shape, values)` and the metadata, after
/// checking the layout (padded header, F32 tensors tiling the data in order).
type Parsed = (
    BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    BTreeMap<String, String>,
);

fn parse_safetensors(path: &Path) -> Parsed {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!((8 + n) % 8, 0, "the data starts 8-byte aligned");
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut metadata = BTreeMap::new();
    let mut spans = Vec::new();
    let mut tensors = BTreeMap::new();
    for (key, info) in header {
        if key == "__metadata__" {
            for (k, v) in info.as_object().unwrap() {
                metadata.insert(k.clone(), v.as_str().unwrap().to_string());
            }
            continue;
        }
        assert_eq!(info["dtype"], "F32", "{key}");
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let offsets = info["data_offsets"].as_array().unwrap();
        let (begin, end) = (
            offsets[0].as_u64().unwrap() as usize,
            offsets[1].as_u64().unwrap() as usize,
        );
        assert_eq!(end - begin, 4 * shape.iter().product::<usize>(), "{key}");
        spans.push((begin, end));
        let values = data[begin..end]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        tensors.insert(key, (shape, values));
    }
    spans.sort();
    let mut at = 0;
    for (begin, end) in spans {
        assert_eq!(begin, at, "tensors tile the data without gaps");
        at = end;
    }
    assert_eq!(at, data.len(), "nothing follows the last tensor");
    (tensors, metadata)
}

/// `[rows, cols]` row-major, transposed.
fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = values[r * cols + c];
        }
    }
    t
}

fn values(t: burn::tensor::Tensor<1>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

#[test]
fn a_safetensors_export_holds_the_models_parameters_and_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = imported(dir.path());
    let out = dir.path().join("model.safetensors");
    export_model(
        &bundle,
        ExportFormat::Safetensors,
        KeyMap::Native,
        &out,
        false,
    )
    .unwrap();
    let (tensors, metadata) = parse_safetensors(&out);

    let model = &bundle.model;
    let count: usize = tensors
        .values()
        .map(|(s, _)| s.iter().product::<usize>())
        .sum();
    assert_eq!(count, burn::module::Module::num_params(model));
    // A linear weight, stored [out, in] = our [in, out] transposed.
    let project = model.rna_embedder.project.as_ref().unwrap();
    let (shape, got) = &tensors["rna_embedder.project.weight"];
    assert_eq!(shape, &vec![320, 10]);
    let ours: Vec<f32> = project.weight.val().into_data().iter::<f32>().collect();
    assert_eq!(got, &transposed(&ours, 10, 320));
    // A LayerNorm's gamma is its weight, a parameter tensor keeps its shape.
    let norm = &model.encoder.blocks[1].cross.layers[0]
        .rna_attend_wsi
        .attn
        .norm;
    let key = "encoder.blocks.1.cross.layers.0.rna_attend_wsi.attn.norm.weight";
    assert_eq!(tensors[key].1, values(norm.gamma.val()));
    let (shape, got) = &tensors["wsi_embedder.pos_embedding"];
    assert_eq!(shape, &vec![1, 9, 32]);
    let pos = model.wsi_embedder.pos_embedding.as_ref().unwrap().val();
    assert_eq!(got, &values(pos.reshape([9 * 32])));
    // Every tensor is the model's, under its native key.
    for t in native_tensors(model) {
        assert_eq!(tensors[&t.key], (t.shape, t.values));
    }

    let config = MedCrossViTConfig::from_json(&metadata["med_crossvit_config"]).unwrap();
    assert_eq!(&config, model.config());
    assert_eq!(metadata["med_crossvit_format_version"], "1");
    assert_eq!(metadata["med_crossvit_keys"], "native");
    assert_eq!(metadata["med_crossvit_task"], "classification");
    assert_eq!(metadata["med_crossvit_classes"], r#"["0","1"]"#);
    assert_eq!(metadata["format"], "pt");
    let norm: serde_json::Value =
        serde_json::from_str(&metadata["med_crossvit_normalization"]).unwrap();
    assert_eq!(norm["mean"].as_array().unwrap().len(), 10);
}

#[test]
fn a_torch_export_reads_back_with_the_crates_pytorch_reader() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = imported(dir.path());
    let out = dir.path().join("model.pt");
    export_model(&bundle, ExportFormat::Torch, KeyMap::Native, &out, false).unwrap();
    let checkpoint = load_checkpoint(&out).unwrap();
    let want = native_tensors(&bundle.model);
    let mut keys: Vec<&str> = want.iter().map(|t| t.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(checkpoint.keys(), keys);
    for t in &want {
        assert_eq!(checkpoint.shape(&t.key).unwrap(), t.shape.as_slice());
        assert_eq!(checkpoint.values(&t.key).unwrap(), t.values, "{}", t.key);
    }
}

#[test]
fn the_reference_exported_under_the_originals_keys_is_the_reference_again() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let bundle = imported(dir.path());
    let out = dir.path().join("original.pt");
    export_model(&bundle, ExportFormat::Torch, KeyMap::Original, &out, false).unwrap();
    let exported = load_checkpoint(&out).unwrap();
    let reference = load_checkpoint(&parity("reference.pt")).unwrap();
    assert_eq!(exported.keys(), reference.keys());
    for key in reference.keys() {
        assert_eq!(exported.shape(key).unwrap(), reference.shape(key).unwrap());
        // The original never used its rna_mlp_head, and import does not keep it: the export
        // fills it with the head the original used for both modalities.
        let source = key.replacen("rna_mlp_head", "wsi_mlp_head", 1);
        assert_eq!(
            exported.values(key).unwrap(),
            reference.values(&source).unwrap(),
            "{key}"
        );
    }

    // Imported again, the export gives the original's logits.
    let device = Device::flex();
    let again = dir.path().join("again");
    import_torch(&out, &parity("reference_args.json"), None, &again, &device).unwrap();
    let bundle = ModelBundle::load(&again, &device).unwrap();
    let (evaluation, _) = predict_cohort(&bundle, &parity_request(), &device, None).unwrap();
    let table = evaluation.cohort.table();
    let got: HashMap<String, Vec<f64>> = evaluation
        .predictions
        .slides
        .iter()
        .map(|p| (table.slides()[p.slide].slide.clone(), p.logits.clone()))
        .collect();
    assert_parity(&got);
    assert_eq!(got.len(), logits_csv(&parity("expected_logits.csv")).len());
}

#[test]
fn a_trained_model_under_the_originals_keys_is_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let mut bundle = imported(dir.path());
    let mut config = bundle.model.config().clone();
    config.wsi_pos_embedding = false;
    bundle.model = config.init(&device).unwrap();
    let out = dir.path().join("x.pt");
    match export_model(&bundle, ExportFormat::Torch, KeyMap::Original, &out, false) {
        Err(ExportError::NotOriginal { field, .. }) => assert_eq!(field, "wsi_pos_embedding"),
        other => panic!("{other:?}"),
    }
    assert!(!out.exists());
}

/// Runs `med-crossvit export` with `args`.
fn export(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_med-crossvit"))
        .arg("export")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_command_refuses_by_name_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    imported(dir.path());
    let model = dir.path().join("imported");
    let out = dir.path().join("m.safetensors");
    let fails = |args: &[&std::ffi::OsStr], says: &[&str]| {
        let o = export(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "{args:?} succeeded");
        for s in says {
            assert!(err.contains(s), "`{s}` not in: {err}");
        }
    };
    // Not a run or model folder.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(
        &[empty.as_ref(), "--out".as_ref(), out.as_ref()],
        &["empty", "not a med-crossvit run or model folder"],
    );
    // A format that does not exist, and a file name that implies none.
    fails(
        &[
            model.as_ref(),
            "--out".as_ref(),
            out.as_ref(),
            "--format".as_ref(),
            "onnx".as_ref(),
        ],
        &["onnx", "safetensors", "torch"],
    );
    let onnx = dir.path().join("m.onnx");
    fails(
        &[model.as_ref(), "--out".as_ref(), onnx.as_ref()],
        &["m.onnx", "--format"],
    );
    // An existing file is replaced only with --force.
    let o = export(&[model.as_ref(), "--out".as_ref(), out.as_ref()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let first = std::fs::read(&out).unwrap();
    std::fs::write(&out, b"someone else's").unwrap();
    fails(
        &[model.as_ref(), "--out".as_ref(), out.as_ref()],
        &["m.safetensors", "exists", "--force"],
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"someone else's");
    let o = export(&[
        model.as_ref(),
        "--out".as_ref(),
        out.as_ref(),
        "--force".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same model writes the same bytes.
    assert_eq!(std::fs::read(&out).unwrap(), first);
    // A folder is no output file.
    fails(
        &[
            model.as_ref(),
            "--out".as_ref(),
            empty.as_ref(),
            "--format".as_ref(),
            "torch".as_ref(),
        ],
        &["is a folder"],
    );

    // The library's errors are typed.
    match med_crossvit::interop::export_run(
        &empty,
        None,
        KeyMap::Native,
        &dir.path().join("x.safetensors"),
        false,
        &Device::flex(),
    ) {
        Err(ExportError::Run(e)) => assert!(
            matches!(*e, med_crossvit::Error::Run(RunError::NotARun { .. })),
            "{e:?}"
        ),
        other => panic!("{other:?}"),
    }
}
