//! A deterministic, seeded corpus of mutated user files for every parser (the fast layer of
//! `docs/fuzzing.md`), and the inputs the fuzzing harness once crashed on. Each input must
//! give `Ok` or a typed error: no panic, no hang, and no allocation past 64 MiB + 64 × the
//! bytes read.

#[path = "it/support/fuzz/mod.rs"]
mod fuzz_support;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fuzz_support::{Campaign, Outcome, Target};

#[global_allocator]
static ALLOC: fuzz_support::alloc::Counting = fuzz_support::alloc::Counting;

/// The allocator counts the whole process: one test measures at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Longest an input may take (debug build) before the test is declared hung.
const HANG: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("a working directory"))
}

/// Runs `check` with a watchdog: a hang aborts the test binary, naming `what()`.
fn with_watchdog<R>(label: &str, check: impl FnOnce() -> R) -> R {
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let label = label.to_string();
    let start = Instant::now();
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            if start.elapsed() > HANG {
                eprintln!("hang: {label} ran for more than {HANG:?}");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let result = check();
    done.store(true, Ordering::Relaxed);
    result
}

fn describe(target: &Target, input: &[u8], outcome: &Outcome, dump: &str) -> String {
    let path = std::env::temp_dir().join(dump);
    let _ = std::fs::write(&path, input);
    format!(
        "{}: {outcome:?} (input saved to {})",
        target.name,
        path.display()
    )
}

/// Inputs per target: cheap parsers get more.
fn budget(target: &str) -> usize {
    match target {
        "torch" | "torch-args" | "weights" | "config" => 25,
        "h5" | "pt" => 60,
        _ => 40,
    }
}

#[test]
fn seeded_mutations_never_panic_hang_or_overallocate() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().unwrap();
    let targets = fuzz_support::targets(work.path(), &root());
    let mut findings = Vec::new();
    let mut total = 0;
    for (t, target) in targets.iter().enumerate() {
        let mut campaign = Campaign::new(target, 0x5EED_0000 + t as u64);
        for i in 0..budget(target.name) {
            let (input, outcome) =
                with_watchdog(&format!("{} input {i}", target.name), || campaign.step());
            total += 1;
            if outcome.is_finding() {
                let dump = format!("med-crossvit-fuzz-{}-{i}", target.name);
                findings.push(describe(target, &input, &outcome, &dump));
            }
        }
    }
    assert!(total >= 300, "only {total} inputs");
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}

/// Each target's first seed is a valid file that its parser accepts: mutations of a file that
/// is refused from the start would only ever reach the first check.
#[test]
fn every_targets_first_seed_parses() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().unwrap();
    let targets = fuzz_support::targets(work.path(), &root());
    let refused: Vec<String> = targets
        .iter()
        .filter_map(|t| match t.execute(&t.seeds[0]) {
            Outcome::Ok(_) => None,
            other => Some(format!("{}: {other:?}", t.name)),
        })
        .collect();
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

/// The files in `tests/fixtures/fuzz/<target>/` (see its README): each crashed, hung or
/// over-allocated once. Each must now parse or give a typed error.
#[test]
fn past_crash_inputs_are_handled() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().unwrap();
    let targets = fuzz_support::targets(work.path(), &root());
    let mut failures = Vec::new();
    let mut count = 0;
    for target in &targets {
        let dir = root().join("tests/fixtures/fuzz").join(target.name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let input = std::fs::read(&file).unwrap();
            let outcome = with_watchdog(&file.display().to_string(), || target.execute(&input));
            count += 1;
            if outcome.is_finding() {
                failures.push(format!("{}: {outcome:?}", file.display()));
            }
        }
    }
    assert!(count > 0, "no regression input found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `target`'s parser on `input` and requires a typed error (no panic, bounded memory).
fn expect_error(target: &Target, input: &[u8], what: &str) -> String {
    match target.execute(input) {
        Outcome::Err(message) => message,
        other => panic!("{}: {what}: {other:?}", target.name),
    }
}

/// The damaged HDF5 files named in the issue: a header claiming 10^12 tiles (h5py's files,
/// whose version-1 object headers carry no checksum, contiguous, chunked, gzip and half
/// floats), truncations and bit flips of the crate's own files, and the h5py fixtures of the
/// wrong type and rank.
#[test]
fn damaged_tile_files_give_typed_errors() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().unwrap();
    let targets = fuzz_support::targets(work.path(), &root());
    let h5 = targets.iter().find(|t| t.name == "h5").unwrap();
    let fixtures = root().join("tests/fixtures/h5");
    // Their features are [7, 4]: the dataspace holds 7 then 4 as 8-byte integers.
    let pattern: Vec<u8> = [7u64.to_le_bytes(), 4u64.to_le_bytes()].concat();
    for name in [
        "contiguous",
        "chunked",
        "gzip",
        "shuffle_gzip",
        "float16",
        "float64",
    ] {
        let valid = std::fs::read(fixtures.join(format!("variants/{name}.h5"))).unwrap();
        assert!(matches!(h5.execute(&valid), Outcome::Ok(_)), "{name}");
        let at = valid
            .windows(16)
            .position(|w| w == pattern.as_slice())
            .expect("the features' dataspace");
        for (tiles, dim) in [(1_000_000_000_000u64, 4u64), (7, 1 << 40), (u64::MAX, 4)] {
            let mut huge = valid.clone();
            huge[at..at + 8].copy_from_slice(&tiles.to_le_bytes());
            huge[at + 8..at + 16].copy_from_slice(&dim.to_le_bytes());
            expect_error(h5, &huge, &format!("{name}: [{tiles}, {dim}]"));
        }
    }
    let (tiles, dim) = (37usize, 11usize);
    let features: Vec<f32> = (0..tiles * dim).map(|i| i as f32).collect();
    let coords: Vec<i64> = (0..tiles as i64 * 2).collect();
    for compress in [false, true] {
        let path = work.path().join("shape.h5");
        med_crossvit::data::write_tile_file(&path, &features, tiles, dim, Some(&coords), compress)
            .unwrap();
        let valid = std::fs::read(&path).unwrap();
        assert!(matches!(h5.execute(&valid), Outcome::Ok(_)));
        for cut in [8, 100, valid.len() / 2, valid.len() - 1] {
            expect_error(h5, &valid[..cut], "truncated");
        }
        for step in [3usize, 17, 61, 251] {
            let mut flipped = valid.clone();
            for i in (0..flipped.len()).step_by(step) {
                flipped[i] ^= 1 << (i % 8);
            }
            let outcome = h5.execute(&flipped);
            assert!(!outcome.is_finding(), "bit flips every {step}: {outcome:?}");
        }
    }
    for name in ["ints.h5", "one_dim.h5", "truncated.h5", "not_hdf5.h5"] {
        let input = std::fs::read(fixtures.join("bad").join(name)).unwrap();
        expect_error(h5, &input, name);
    }
}

/// `min_weights` is a lower bound: the loaders refuse configs by it, so it must never exceed
/// what a real model holds.
#[test]
fn min_weights_never_exceeds_the_real_count() {
    use burn::module::Module;
    let device = burn::tensor::Device::flex();
    let mut configs = vec![
        med_crossvit::MedCrossViTConfig::small(3, 16, 8),
        med_crossvit::MedCrossViTConfig {
            wsi_pos_embedding: false,
            rna_num_genes: 5,
            ..med_crossvit::MedCrossViTConfig::small(2, 12, 12)
        },
    ];
    let mut per_gene = med_crossvit::MedCrossViTConfig::small(2, 8, 4);
    per_gene.rna_tokenizer = med_crossvit::model::RnaTokenizer::PerGene;
    configs.push(per_gene);
    for config in configs {
        let model = config.init(&device).unwrap();
        let real = model.num_params() as u128;
        let bound = config.min_weights();
        assert!(bound <= real, "{bound} > {real} for {config:?}");
        assert!(bound * 2 >= real, "a loose bound: {bound} for {real}");
    }
}
