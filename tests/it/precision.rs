//! bf16 products (`--precision`, docs/precision.md): the imported original's logits on the
//! parity cohort within 2e-2 of f32's, the hardware path against the emulation, and the
//! command-line option's checks.

use crate::interop::{imported, parity, parity_request};
use crate::support;

use burn::tensor::Device;
use med_crossvit::inference::predict_cohort;
use med_crossvit::run::ModelBundle;
use med_crossvit::runtime::{Precision, missing_bf16_flags};

/// The per-slide logits of `bundle` on the parity cohort at `precision`.
fn logits(bundle: &ModelBundle, precision: Precision) -> Vec<f64> {
    let request = parity_request();
    let device = Device::flex();
    let (evaluation, _) =
        precision.scope(|| predict_cohort(bundle, &request, &device, None).unwrap());
    evaluation
        .predictions
        .slides
        .iter()
        .flat_map(|p| p.logits.clone())
        .collect()
}

/// The largest difference between two lists of logits.
fn max_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn bf16_logits_of_the_imported_original_are_within_2e_2_of_f32() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let bundle = imported(dir.path());
    let f32_logits = logits(&bundle, Precision::F32);
    assert_eq!(f32_logits.len(), 12, "6 slides, 2 classes");
    let emulated = logits(&bundle, Precision::Bf16Emulated);
    let d = max_difference(&emulated, &f32_logits);
    assert!(d < 2e-2, "emulated bf16 logits {d} from f32's");
    assert!(d > 0.0, "the operands were rounded");
    if missing_bf16_flags().is_empty() {
        let hardware = logits(&bundle, Precision::Bf16);
        let d = max_difference(&hardware, &f32_logits);
        assert!(d < 2e-2, "bf16 logits {d} from f32's");
        // Same rounding of the operands: only the order of the f32 sums differs.
        let e = max_difference(&hardware, &emulated);
        assert!(e < 1e-4, "AVX512_BF16 {e} from the emulation");
    }
    // Outside a scope the products are f32 again.
    assert_eq!(Precision::current(), Precision::F32);
    assert_eq!(logits(&bundle, Precision::F32), f32_logits);
}

#[test]
fn a_scope_sets_the_precision_of_its_threads_only() {
    assert_eq!(Precision::current(), Precision::F32);
    let (inside, workers, nested) = Precision::Bf16Emulated.scope(|| {
        use rayon::prelude::*;
        let workers: Vec<Precision> = (0..64)
            .into_par_iter()
            .map(|_| Precision::current())
            .collect();
        let nested = Precision::F32.scope(Precision::current);
        (Precision::current(), workers, nested)
    });
    assert_eq!(inside, Precision::Bf16Emulated);
    assert!(workers.iter().all(|&p| p == Precision::Bf16Emulated));
    assert_eq!(nested, Precision::F32);
    assert_eq!(Precision::current(), Precision::F32);
}

#[test]
fn precision_names_parse_and_bf16_is_checked_against_the_cpu() {
    assert_eq!("f32".parse(), Ok(Precision::F32));
    assert_eq!("BF16".parse(), Ok(Precision::Bf16));
    assert_eq!("bf16-emulated".parse(), Ok(Precision::Bf16Emulated));
    let e = "fp8".parse::<Precision>().unwrap_err().to_string();
    assert!(e.contains("`fp8`") && e.contains("bf16-emulated"), "{e}");
    assert_eq!(Precision::Bf16Emulated.check(), Ok(Precision::Bf16Emulated));
    match Precision::Bf16.check() {
        Ok(_) => assert!(missing_bf16_flags().is_empty()),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("avx512") && e.contains("bf16-emulated"), "{e}");
        }
    }
}

#[cfg(feature = "cli")]
#[test]
fn bench_and_predict_take_the_precision_option() {
    let o = support::bin(&[
        "bench",
        "--preset",
        "small",
        "--batch",
        "1",
        "--iters",
        "1",
        "--precision",
        "bf16-emulated",
        "--json",
    ]);
    let (out, err) = support::text(&o);
    assert!(o.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["precision"], "bf16-emulated");
    let o = support::bin(&["bench", "--preset", "small", "--precision", "fp8"]);
    let (_, err) = support::text(&o);
    assert!(
        !o.status.success() && err.contains("--precision") && err.contains("fp8"),
        "{err}"
    );
    let o = support::bin(&[
        "bench",
        "--preset",
        "small",
        "--precision",
        "bf16",
        "--device",
        "ndarray",
    ]);
    assert!(!o.status.success());
    let (_, err) = support::text(&o);
    assert!(
        err.contains("--precision") || err.contains("ndarray"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.csv");
    let (csv, features) = (parity("cohort.csv"), parity("features"));
    let o = support::bin(&[
        "predict",
        "--model",
        "/nonexistent-model",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--precision",
        "half",
    ]);
    let (_, err) = support::text(&o);
    assert!(!o.status.success() && err.contains("`half`"), "{err}");
}
