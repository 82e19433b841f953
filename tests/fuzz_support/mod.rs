//! Fuzzing shared by the harness (`examples/fuzz.rs`, `make fuzz`) and the seeded corpus
//! (`tests/fuzz.rs`): the targets (one parser of user files each, with its seed files), the
//! mutations, and the counting allocator. See `docs/fuzzing.md`.
//!
//! Included by both with `#[path]`, so it is not part of the library's API.
#![allow(dead_code)]

pub mod alloc;
pub mod mutate;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::tensor::Device;
use med_crossvit::MedCrossViTConfig;
use med_crossvit::cohort::gdc::{self, GdcOptions};
use med_crossvit::data::{
    CohortColumns, CohortTable, LabelMap, Normalization, SynthOptions, TileFile, from_csv,
    read_signatures, write_synthetic_cohort, write_tile_file,
};
use med_crossvit::interop::import_torch;
use med_crossvit::run::{ModelBundle, RunConfig, files};

use mutate::{Rng, mutate_bytes, mutate_text};

/// What parsing one input gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Parsed: a short description.
    Ok(String),
    /// A typed error, as displayed.
    Err(String),
    /// A panic: its message and location.
    Panic(String),
    /// Allocation past the budget: the peak and the budget, in bytes.
    OverAlloc {
        /// Peak live bytes above the start of the input.
        peak: usize,
        /// The input's budget.
        budget: usize,
    },
}

impl Outcome {
    /// Whether this is a finding (a panic or an over-allocation).
    pub fn is_finding(&self) -> bool {
        matches!(self, Self::Panic(_) | Self::OverAlloc { .. })
    }

    /// A coarse class of the outcome (digits and paths dropped), to tell new behaviour from old.
    pub fn signature(&self) -> String {
        let text = match self {
            Self::Ok(s) => format!("ok {s}"),
            Self::Err(s) => format!("err {s}"),
            Self::Panic(s) => format!("panic {s}"),
            Self::OverAlloc { .. } => "overalloc".into(),
        };
        let mut out = String::new();
        for c in text.chars().take(160) {
            if c.is_ascii_digit() {
                if !out.ends_with('#') {
                    out.push('#');
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}

type Runner = Box<dyn Fn(&Path) -> Result<String, String>>;

/// One parser of user files, the folder its input is written to, and its seeds.
pub struct Target {
    /// Short name (`cohort`, `h5`, ...).
    pub name: &'static str,
    /// The folder holding the input and the fixed files read beside it.
    pub dir: PathBuf,
    /// The input's file name in `dir`.
    pub file: &'static str,
    /// Whether text-level mutations apply.
    pub text: bool,
    /// Valid (or nearly valid) files to mutate.
    pub seeds: Vec<Vec<u8>>,
    /// Bytes of the fixed files read beside the input (counted in the memory budget).
    pub context_bytes: u64,
    run: Runner,
}

impl Target {
    /// The input's path.
    pub fn input_path(&self) -> PathBuf {
        self.dir.join(self.file)
    }

    /// A mutation of a random seed (or of `extra`, inputs found interesting so far).
    pub fn next_input(&self, rng: &mut Rng, extra: &[Vec<u8>]) -> Vec<u8> {
        let from_extra = !extra.is_empty() && rng.one_in(3);
        let base = if from_extra {
            rng.pick(extra)
        } else {
            rng.pick(&self.seeds)
        };
        if self.text && !rng.one_in(4) {
            mutate_text(rng, base, &self.seeds)
        } else {
            mutate_bytes(rng, base, &self.seeds)
        }
    }

    /// Writes `input` to the input path and runs the parser on it, catching panics and
    /// measuring allocation against the budget.
    pub fn execute(&self, input: &[u8]) -> Outcome {
        let path = self.input_path();
        std::fs::write(&path, input).expect("the work folder is writable");
        let budget = alloc::budget_for(input.len() as u64 + self.context_bytes);
        take_panic();
        // Quiet while the parser runs (a panic is a result here, reported by the caller);
        // the previous hook back after, so that the caller's own assertions print.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(record_panic));
        alloc::arm(budget);
        let result = catch_unwind(AssertUnwindSafe(|| (self.run)(&self.dir)));
        let peak = alloc::disarm();
        std::panic::set_hook(previous);
        match result {
            Err(_) => Outcome::Panic(take_panic().unwrap_or_else(|| "panic".into())),
            Ok(_) if peak > budget => Outcome::OverAlloc { peak, budget },
            Ok(Ok(s)) => Outcome::Ok(s),
            Ok(Err(e)) => Outcome::Err(e),
        }
    }
}

static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Records a panic's message and location for [`Target::execute`] to report.
fn record_panic(info: &std::panic::PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_default();
    let location = info
        .location()
        .map(|l| format!("{}:{}", l.file(), l.line()))
        .unwrap_or_default();
    if let Ok(mut slot) = PANIC.lock() {
        *slot = Some(format!("{message} at {location}"));
    }
    // A panic inside std (an index, a capacity overflow) is located by its callers.
    if let Ok(mut slot) = BACKTRACE.lock() {
        *slot = std::backtrace::Backtrace::force_capture().to_string();
    }
}

static BACKTRACE: Mutex<String> = Mutex::new(String::new());

/// The backtrace of the last panic [`Target::execute`] caught.
pub fn last_backtrace() -> String {
    BACKTRACE.lock().map(|s| s.clone()).unwrap_or_default()
}

/// The first frame of `backtrace` in this repository's code outside the fuzzing support: a
/// stable class for a panic raised inside std or a dependency.
pub fn first_project_frame(backtrace: &str) -> Option<String> {
    let lines: Vec<&str> = backtrace.lines().collect();
    lines.iter().enumerate().find_map(|(i, line)| {
        let line = line.trim();
        let is_ours = line.contains("med_crossvit::") && !line.contains("fuzz_support");
        is_ours.then(|| {
            let at = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
            format!(
                "{} {at}",
                line.split_once(": ").map(|p| p.1).unwrap_or(line)
            )
        })
    })
}

fn take_panic() -> Option<String> {
    PANIC.lock().ok().and_then(|mut s| s.take())
}

/// A small loop over one target: mutate, run, keep inputs whose outcome class is new (a cheap
/// stand-in for coverage feedback).
pub struct Campaign<'a> {
    /// The target.
    pub target: &'a Target,
    /// The mutation source.
    pub rng: Rng,
    /// Inputs whose outcome class was new when found.
    pub interesting: Vec<Vec<u8>>,
    seen: HashSet<String>,
    /// Inputs tried.
    pub tried: u64,
}

impl<'a> Campaign<'a> {
    /// A campaign over `target` from `seed`.
    pub fn new(target: &'a Target, seed: u64) -> Self {
        Self {
            target,
            rng: Rng::new(seed),
            interesting: Vec::new(),
            seen: HashSet::new(),
            tried: 0,
        }
    }

    /// Runs one mutated input; the input and its outcome.
    pub fn step(&mut self) -> (Vec<u8>, Outcome) {
        let input = self.target.next_input(&mut self.rng, &self.interesting);
        let outcome = self.target.execute(&input);
        self.tried += 1;
        if self.seen.insert(outcome.signature()) && !outcome.is_finding() && input.len() < 1 << 20 {
            // Bounded, so that memory use of a long campaign stays flat.
            if self.interesting.len() >= 256 {
                let i = self.rng.below(self.interesting.len());
                self.interesting.swap_remove(i);
            }
            self.interesting.push(input.clone());
        }
        (input, outcome)
    }
}

/// Every target, set up in `work` (created), with seeds from the repository at `root`.
pub fn targets(work: &Path, root: &Path) -> Vec<Target> {
    let fixtures = root.join("tests/fixtures");
    let device = Device::flex();
    let columns = CohortColumns::default();

    // A small synthetic cohort: seeds for the CSV and HDF5 targets, and the table the splits
    // and signatures are matched against.
    let synth = work.join("synth");
    let written = write_synthetic_cohort(
        &synth,
        &SynthOptions {
            slides: 8,
            tiles: 12,
            dim: 8,
            genes: 10,
            seed: 1,
            ..Default::default()
        },
    )
    .expect("a synthetic cohort");
    let table = CohortTable::read(&written.csv, &columns).expect("the synthetic cohort reads");
    let genes: Vec<String> = table.genes().to_vec();

    let mut out = Vec::new();
    let dir = |name: &str| {
        let d = work.join(name);
        std::fs::create_dir_all(&d).expect("a work folder");
        d
    };
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));

    // Cohort CSV.
    {
        let seeds = vec![
            read(&written.csv),
            read(&fixtures.join("parity/cohort.csv")),
            read(&fixtures.join("original/example_metadata.csv")),
        ];
        out.push(Target {
            name: "cohort",
            dir: dir("cohort"),
            file: "cohort.csv",
            text: true,
            seeds,
            context_bytes: 0,
            run: Box::new(|dir: &Path| {
                let t = CohortTable::read(dir.join("cohort.csv"), &CohortColumns::default())
                    .map_err(|e| e.to_string())?;
                // The accessors a run uses next, on whatever the parser accepted.
                for i in 0..t.len() {
                    let _ = t.expression(i);
                }
                let _ = t.labels().map_err(|e| e.to_string());
                let _ = t.numeric_column("survival_months");
                let _ = t.check_genes(t.genes().len(), Some(t.genes()));
                Ok(format!("{} slides × {} genes", t.len(), t.genes().len()))
            }),
        });
    }

    // Signatures CSV.
    {
        let bare: Vec<&str> = genes
            .iter()
            .map(|g| g.strip_prefix("rna_").unwrap_or(g))
            .collect();
        let mut seed = String::from("pathway_a,pathway_b,pathway_c\n");
        for i in 0..bare.len().div_ceil(3) {
            let cell = |k: usize| bare.get(i * 3 + k).copied().unwrap_or("");
            seed.push_str(&format!("{},{},{}\n", cell(0), cell(1), cell(2)));
        }
        let uneven = format!(
            "a,b\n{},{}\n{},\nUNKNOWN1,{}\n",
            bare[0], bare[1], bare[2], bare[3]
        );
        let genes = genes.clone();
        out.push(Target {
            name: "signatures",
            dir: dir("signatures"),
            file: "signatures.csv",
            text: true,
            seeds: vec![seed.into_bytes(), uneven.into_bytes()],
            context_bytes: 0,
            run: Box::new(move |dir: &Path| {
                let s = read_signatures(&dir.join("signatures.csv"), &genes, "rna_")
                    .map_err(|e| e.to_string())?;
                Ok(format!("{} groups", s.groups.len()))
            }),
        });
    }

    // Splits CSV (MCAT/CLAM convention).
    {
        // Each patient's slides in one column (train, val, test in turn by patient), so that
        // the seed is a valid patient-level split; the columns are ragged, as published.
        let mut columns: [Vec<&str>; 3] = Default::default();
        let mut patients_seen: Vec<&str> = Vec::new();
        for record in table.slides() {
            let p = match patients_seen.iter().position(|p| *p == record.patient) {
                Some(p) => p,
                None => {
                    patients_seen.push(&record.patient);
                    patients_seen.len() - 1
                }
            };
            columns[p % 3].push(&record.slide);
        }
        let mut seed = String::from("train,val,test\n");
        for row in 0..columns.iter().map(Vec::len).max().unwrap_or(0) {
            let cell = |k: usize| columns[k].get(row).copied().unwrap_or("");
            seed.push_str(&format!("{},{},{}\n", cell(0), cell(1), cell(2)));
        }
        let patients: Vec<&str> = table.slides().iter().map(|s| s.patient.as_str()).collect();
        let by_patient = format!(
            ",train,val\n0,{},{}\n1,{},\n",
            patients[0],
            patients[patients.len() - 1],
            patients[1]
        );
        let table = table.clone();
        let context = std::fs::metadata(&written.csv)
            .map(|m| m.len())
            .unwrap_or(0);
        out.push(Target {
            name: "splits",
            dir: dir("splits"),
            file: "splits.csv",
            text: true,
            seeds: vec![seed.into_bytes(), by_patient.into_bytes()],
            context_bytes: context,
            run: Box::new(move |dir: &Path| {
                let read = from_csv(dir.join("splits.csv"), &table).map_err(|e| e.to_string())?;
                let split = &read.split;
                Ok(format!(
                    "{}/{}/{} ({} unassigned, {} unknown)",
                    split.train.len(),
                    split.val.len(),
                    split.test.len(),
                    read.unassigned,
                    read.unknown.len()
                ))
            }),
        });
    }

    // A saved model folder, as `train` writes it: seeds for its four files.
    let model_dir = work.join("model-seed");
    let config = MedCrossViTConfig {
        depth: 1,
        wsi_num_tiles: 6,
        wsi_enc_depth: 1,
        wsi_enc_heads: 2,
        wsi_enc_mlp_dim: 16,
        wsi_enc_dim_head: 4,
        rna_num_genes: genes.len(),
        rna_enc_depth: 1,
        rna_enc_heads: 2,
        rna_enc_mlp_dim: 16,
        rna_enc_dim_head: 4,
        cross_attn_depth: 1,
        cross_attn_heads: 2,
        cross_attn_dim_head: 4,
        ..MedCrossViTConfig::new(2, 8, 6)
    };
    let model = config.init(&device).expect("a tiny model");
    std::fs::create_dir_all(&model_dir).expect("a model folder");
    model
        .save_weights(model_dir.join(med_crossvit::model::WEIGHTS_FILE))
        .expect("weights save");
    RunConfig::for_model(config.clone())
        .save(&model_dir)
        .expect("config save");
    let rows: Vec<usize> = (0..table.len()).collect();
    Normalization::fit(
        &table,
        &rows,
        med_crossvit::data::NormalizeMethod::Log2Zscore,
        None,
    )
    .expect("a normalization")
    .save(model_dir.join(files::NORMALIZATION))
    .expect("normalization save");
    LabelMap::fit(["LUAD", "LUSC"])
        .save(model_dir.join(files::LABELS))
        .expect("labels save");
    let model_files = [
        files::CONFIG,
        med_crossvit::model::WEIGHTS_FILE,
        files::NORMALIZATION,
        files::LABELS,
    ];
    let model_bytes: u64 = model_files
        .iter()
        .map(|f| {
            std::fs::metadata(model_dir.join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    // The bundle's other three files are copied beside the fuzzed one.
    let bundle_target =
        |name: &'static str, file: &'static str, text: bool, seeds: Vec<Vec<u8>>| {
            let d = dir(name);
            for f in model_files.iter().filter(|f| **f != file) {
                std::fs::copy(model_dir.join(f), d.join(f)).expect("a model file copy");
            }
            let mut seeds = seeds;
            seeds.insert(0, read(&model_dir.join(file)));
            let device = device.clone();
            Target {
                name,
                dir: d,
                file,
                text,
                seeds,
                context_bytes: model_bytes,
                run: Box::new(move |dir: &Path| {
                    if file == files::CONFIG {
                        RunConfig::load(dir).map_err(|e| e.to_string())?;
                    }
                    let bundle = ModelBundle::load(dir, &device).map_err(|e| e.to_string())?;
                    Ok(format!("{} classes", bundle.labels.len()))
                }),
            }
        };
    out.push(bundle_target(
        "config",
        files::CONFIG,
        true,
        vec![read(&fixtures.join("parity/reference_args.json"))],
    ));
    out.push(bundle_target(
        "weights",
        med_crossvit::model::WEIGHTS_FILE,
        false,
        vec![],
    ));
    out.push(bundle_target(
        "normalization",
        files::NORMALIZATION,
        true,
        vec![br#"{"genes":[],"mean":[0.0,1.5],"std":[1.0,2.0]}"#.to_vec()],
    ));
    out.push(bundle_target(
        "labels",
        files::LABELS,
        true,
        vec![br#"{"classes":["0","1"]}"#.to_vec()],
    ));

    // HDF5 tile files: every fixture, plus the crate's own writer, contiguous and chunked.
    {
        let mut seeds = Vec::new();
        let mut h5 = Vec::new();
        collect_files(&fixtures.join("h5"), "h5", &mut h5);
        collect_files(&fixtures.join("parity/features"), "h5", &mut h5);
        h5.sort();
        seeds.extend(h5.iter().map(|p| read(p)));
        let d = dir("h5");
        let features: Vec<f32> = (0..5 * 4).map(|i| i as f32 * 0.25).collect();
        let coords: Vec<i64> = (0..5 * 2).map(|i| i * 256).collect();
        for compress in [false, true] {
            let p = d.join("seed.h5");
            write_tile_file(&p, &features, 5, 4, Some(&coords), compress).expect("a tile file");
            seeds.push(read(&p));
        }
        out.push(Target {
            name: "h5",
            dir: d,
            file: "tiles.h5",
            text: false,
            seeds,
            context_bytes: 0,
            run: Box::new(|dir: &Path| {
                let f = TileFile::open(dir.join("tiles.h5"), None).map_err(|e| e.to_string())?;
                let all = f.read_all().map_err(|e| e.to_string())?;
                if f.tiles() == 0 {
                    return Ok("no tile".into());
                }
                // Both read paths: a few rows (hyperslabs, repeats) and the coordinates.
                let last = f.tiles() - 1;
                let few = [last, 0, last, last / 2];
                f.read_rows(&few[..few.len().min(f.tiles())])
                    .map_err(|e| e.to_string())?;
                let coords = f.read_coords(&[0, last]).map_err(|e| e.to_string())?;
                Ok(format!(
                    "{} × {} ({} values, coords {})",
                    f.tiles(),
                    f.dim(),
                    all.len(),
                    coords.is_some()
                ))
            }),
        });
    }

    // CLAM `.pt` bag files: every fixture written by `torch.save`, valid or not.
    {
        let mut pt = Vec::new();
        collect_files(&fixtures.join("pt"), "pt", &mut pt);
        collect_files(&fixtures.join("mcat/pt_files"), "pt", &mut pt);
        pt.sort();
        out.push(Target {
            name: "pt",
            dir: dir("pt"),
            file: "tiles.pt",
            text: false,
            seeds: pt.iter().map(|p| read(p)).collect(),
            context_bytes: 0,
            run: Box::new(|dir: &Path| {
                let f = TileFile::open(dir.join("tiles.pt"), None).map_err(|e| e.to_string())?;
                let all = f.read_all().map_err(|e| e.to_string())?;
                if f.tiles() == 0 {
                    return Ok("no tile".into());
                }
                let last = f.tiles() - 1;
                let few = [last, 0, last, last / 2];
                let rows = f
                    .read_rows(&few[..few.len().min(f.tiles())])
                    .map_err(|e| e.to_string())?;
                Ok(format!(
                    "{} × {} ({} values, {} read by row)",
                    f.tiles(),
                    f.dim(),
                    all.len(),
                    rows.len()
                ))
            }),
        });
    }

    // A GDC download for `cohort gdc`: its sample sheet, clinical export and one STAR file,
    // each mutated in a copy of the fixture download (whose other files stay intact).
    {
        let gdc = fixtures.join("gdc");
        let download = gdc.join("download");
        let sheet_text = std::fs::read_to_string(download.join("gdc_sample_sheet.2026-11-01.tsv"))
            .expect("the fixture sample sheet");
        // The first tumour expression file of the sheet, renamed `star/star.tsv` for the STAR
        // target.
        let first = sheet_text
            .lines()
            .skip(1)
            .find(|l| l.contains("Gene Expression Quantification") && l.ends_with("Primary Tumor"))
            .expect("a tumour expression row");
        let cells: Vec<&str> = first.split('\t').collect();
        let star = read(&download.join("expression").join(cells[0]).join(cells[1]));
        let star_sheet = format!(
            "{}\nstar\tstar.tsv\t{}\n",
            sheet_text.lines().next().expect("a header"),
            cells[2..].join("\t")
        );
        for (name, file, seed) in [
            ("gdc-sheet", "sheet.tsv", sheet_text.clone().into_bytes()),
            (
                "gdc-clinical",
                "clinical.tsv",
                read(&download.join("clinical.tsv")),
            ),
            ("gdc-star", "expression/star/star.tsv", star.clone()),
        ] {
            let d = dir(name);
            copy_tree(&download.join("expression"), &d.join("expression"));
            std::fs::create_dir_all(d.join("expression/star")).expect("a work folder");
            std::fs::write(d.join("expression/star/star.tsv"), &star).expect("a work file");
            let sheet = if name == "gdc-star" {
                star_sheet.clone()
            } else {
                sheet_text.clone()
            };
            std::fs::write(d.join("sheet.tsv"), sheet).expect("a work file");
            std::fs::copy(download.join("clinical.tsv"), d.join("clinical.tsv"))
                .expect("a work file");
            let features = gdc.join("features");
            out.push(Target {
                name,
                dir: d,
                file,
                text: true,
                seeds: vec![seed],
                context_bytes: 0,
                run: Box::new(move |dir: &Path| {
                    let options = GdcOptions::new(
                        dir.join("sheet.tsv"),
                        dir.join("expression"),
                        dir.join("clinical.tsv"),
                        &features,
                    );
                    let cohort = gdc::build(&options).map_err(|e| e.to_string())?;
                    Ok(format!(
                        "{} slide(s) × {} column(s)",
                        cohort.rows.len(),
                        cohort.header.len()
                    ))
                }),
            });
        }
    }

    // PyTorch checkpoints for `import-torch`, and the arguments file beside them.
    let parity = fixtures.join("parity");
    let pt = read(&parity.join("reference.pt"));
    let args = read(&parity.join("reference_args.json"));
    for (name, file, text, seed, other_name, other) in [
        (
            "torch",
            "reference.pt",
            false,
            pt.clone(),
            "args.json",
            args.clone(),
        ),
        (
            "torch-args",
            "args.json",
            true,
            args.clone(),
            "reference.pt",
            pt.clone(),
        ),
    ] {
        let d = dir(name);
        std::fs::write(d.join(other_name), &other).expect("a work file");
        let device = device.clone();
        out.push(Target {
            name,
            dir: d,
            file,
            text,
            seeds: vec![seed],
            context_bytes: other.len() as u64,
            run: Box::new(move |dir: &Path| {
                // A model folder is never overwritten: each input imports into a fresh one.
                let _ = std::fs::remove_dir_all(dir.join("out"));
                let model = import_torch(
                    &dir.join("reference.pt"),
                    &dir.join("args.json"),
                    None,
                    &dir.join("out"),
                    &device,
                )
                .map_err(|e| e.to_string())?;
                Ok(format!("{} classes", model.config().num_classes))
            }),
        });
    }
    out
}

/// Copies the folder `from` to `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a work folder");
    for entry in std::fs::read_dir(from).expect("a fixture folder").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("a work file");
        }
    }
}

fn collect_files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}
