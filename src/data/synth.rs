//! Synthetic cohorts in the original's layout, for demos and tests: `cohort.csv` and
//! `features/{project}/{slide}.h5` with `features` and `coords`.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr_free::normal;

use super::DataError;

/// The project (features sub-folder) of synthetic slides.
pub const SYNTH_PROJECT: &str = "TCGA-SYN";

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    /// Number of slides.
    pub slides: usize,
    /// Most tiles per slide; each slide has between half of it and all of it.
    pub tiles: usize,
    /// Feature width.
    pub dim: usize,
    /// Number of genes.
    pub genes: usize,
    /// Number of classes.
    pub classes: usize,
    /// Random seed.
    pub seed: u64,
    /// Also write survival columns (`survival_months`, `censorship`) whose times depend on the
    /// class.
    pub survival: bool,
    /// Store features chunked and gzip-compressed instead of contiguous.
    pub compress: bool,
    /// Fraction of patients without expression (their gene cells empty), and another such
    /// fraction without tile files: a cohort with missing modalities. Default 0.
    pub missing: f64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            slides: 60,
            tiles: 120,
            dim: 64,
            genes: 32,
            classes: 2,
            seed: 0,
            survival: false,
            compress: false,
            missing: 0.0,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthCohort {
    /// The cohort CSV.
    pub csv: PathBuf,
    /// The features directory.
    pub features_dir: PathBuf,
}

/// Normal samples without another dependency (Box–Muller).
mod rand_distr_free {
    use rand::Rng;

    pub fn normal(rng: &mut impl Rng) -> f32 {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// Writes a synthetic cohort into `out`. The label is learnable from both modalities: the
/// tiles of a class lean weakly towards a class prototype (30% of them informative), and a
/// quarter of the genes are raised or lowered per class, so neither modality alone makes the
/// task trivial. Expression values are counts (log2-normalizable).
/// Every fourth patient has two slides (with the same label, survival and expression: they
/// are the patient's).
///
/// # Errors
///
/// [`DataError::Setting`] for a zero size; [`DataError::Io`] or [`DataError::Hdf5`] naming
/// the file that could not be written.
pub fn write_synthetic_cohort(
    out: &Path,
    options: &SynthOptions,
) -> Result<SynthCohort, DataError> {
    check_options(options)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut gaps = ChaCha8Rng::seed_from_u64(options.seed ^ 0x6d69_7373_696e_6700);
    let features_dir = out.join("features");
    let project_dir = features_dir.join(SYNTH_PROJECT);
    std::fs::create_dir_all(&project_dir).map_err(|e| DataError::io(&project_dir, e))?;

    let (prototypes, effects) = class_patterns(options, &mut rng);

    let csv_path = out.join("cohort.csv");
    let mut csv = csv_header(options);

    let mut slide = 0;
    let mut patient = 0;
    while slide < options.slides {
        let label = rng.random_range(0..options.classes);
        let per_patient = if patient % 4 == 3 { 2 } else { 1 };
        let (time, censored) = survival_time(&mut rng, label, options.classes);
        // Expression is the patient's: every slide row of a patient carries the same values.
        let expression = expression_cells(&effects[label], &mut rng);
        // Missing modalities come from their own generator, so that the cohort is otherwise
        // the one written without them.
        let u: f64 = if options.missing > 0.0 {
            gaps.random()
        } else {
            1.0
        };
        let (no_rna, no_tiles) = (
            u < options.missing,
            u >= options.missing && u < 2.0 * options.missing,
        );
        let expression = if no_rna {
            ",".repeat(options.genes)
        } else {
            expression
        };
        for k in 0..per_patient.min(options.slides - slide) {
            let name = format!("SYN-{patient:04}-{:02}Z-00-DX{}", k + 1, k + 1);
            let n = rng.random_range(options.tiles.div_ceil(2)..=options.tiles);
            let path = project_dir.join(format!("{name}.h5"));
            write_slide(&path, n, &prototypes[label], options, &mut rng)?;
            if no_tiles {
                std::fs::remove_file(&path).map_err(|e| DataError::io(&path, e))?;
            }
            csv.push_str(&format!("{name},{SYNTH_PROJECT},{label},SYN-{patient:04}"));
            if options.survival {
                csv.push_str(&format!(",{time:.2},{}", u8::from(censored)));
            }
            csv.push_str(&expression);
            csv.push('\n');
            slide += 1;
        }
        patient += 1;
    }
    let mut file = std::fs::File::create(&csv_path).map_err(|e| DataError::io(&csv_path, e))?;
    file.write_all(csv.as_bytes())
        .map_err(|e| DataError::io(&csv_path, e))?;
    Ok(SynthCohort {
        csv: csv_path,
        features_dir,
    })
}

/// Checks the sizes (at least 1), the missing fraction (in [0, 0.5]) and the classes (at
/// least 2).
fn check_options(options: &SynthOptions) -> Result<(), DataError> {
    for (setting, value) in [
        ("slides", options.slides),
        ("tiles", options.tiles),
        ("dim", options.dim),
        ("genes", options.genes),
    ] {
        if value == 0 {
            return Err(DataError::Setting {
                setting,
                message: "must be at least 1".into(),
            });
        }
    }
    if !(0.0..=0.5).contains(&options.missing) {
        return Err(DataError::Setting {
            setting: "missing",
            message: format!(
                "must lie in [0, 0.5] (a fraction without expression and another without tiles), got {}",
                options.missing
            ),
        });
    }
    if options.classes < 2 {
        return Err(DataError::Setting {
            setting: "classes",
            message: format!("must be at least 2, got {}", options.classes),
        });
    }
    Ok(())
}

/// Each class's tile-feature prototype (`dim` wide) and expression effect (on every fourth
/// of the `genes`), drawn from `rng` in that order.
fn class_patterns(options: &SynthOptions, rng: &mut ChaCha8Rng) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let prototypes: Vec<Vec<f32>> = (0..options.classes)
        .map(|_| (0..options.dim).map(|_| normal(rng)).collect())
        .collect();
    let effects: Vec<Vec<f32>> = (0..options.classes)
        .map(|_| {
            (0..options.genes)
                .map(|g| if g % 4 == 0 { 0.4 * normal(rng) } else { 0.0 })
                .collect()
        })
        .collect();
    (prototypes, effects)
}

/// The cohort CSV's header line: slide, project, label, patient, the survival columns when
/// asked for, one `rna_{g}` column per gene.
fn csv_header(options: &SynthOptions) -> String {
    let mut csv = String::from("wsi_file_name,project,label,patient_id");
    if options.survival {
        csv.push_str(",survival_months,censorship");
    }
    for g in 0..options.genes {
        csv.push_str(&format!(",rna_{g}"));
    }
    csv.push('\n');
    csv
}

/// A patient's expression cells (each after a comma): counts around e^3, shifted by its
/// class's `effects`.
fn expression_cells(effects: &[f32], rng: &mut ChaCha8Rng) -> String {
    effects
        .iter()
        .map(|effect| {
            let log_count = 3.0 + 0.8 * normal(rng) + effect;
            format!(",{}", log_count.exp().round())
        })
        .collect()
}

/// A survival time (months) shorter for higher classes, censored about a third of the time.
fn survival_time(rng: &mut ChaCha8Rng, label: usize, classes: usize) -> (f32, bool) {
    let scale = 80.0 * (1.0 - 0.8 * label as f32 / (classes - 1) as f32);
    let u: f32 = rng.random::<f32>().max(1e-6);
    let time = (-u.ln() * scale).max(0.5);
    let censored = rng.random::<f32>() < 0.33;
    let time = if censored {
        time * rng.random_range(0.3..1.0)
    } else {
        time
    };
    (time.max(0.5), censored)
}

fn write_slide(
    path: &Path,
    n: usize,
    prototype: &[f32],
    options: &SynthOptions,
    rng: &mut ChaCha8Rng,
) -> Result<(), DataError> {
    let dim = options.dim;
    let mut features = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let signal = if rng.random::<f32>() < 0.3 { 0.25 } else { 0.0 };
        features.extend(prototype.iter().map(|p| normal(rng) + signal * p));
    }
    let cols = (n as f64).sqrt().ceil() as i64;
    let coords: Vec<i64> = (0..n as i64)
        .flat_map(|i| [256 * (i % cols), 256 * (i / cols)])
        .collect();
    write_tile_file(path, &features, n, dim, Some(&coords), options.compress)
}

/// Writes a tile-feature file: `features` `[n, dim]` f32 and optional `coords` `[n, 2]` i64,
/// contiguous, or chunked (64 tiles per chunk) with shuffle and gzip.
///
/// # Errors
///
/// [`DataError::Hdf5`] naming the file.
pub fn write_tile_file(
    path: &Path,
    features: &[f32],
    n: usize,
    dim: usize,
    coords: Option<&[i64]>,
    compress: bool,
) -> Result<(), DataError> {
    let mut builder = hdf5_pure::FileBuilder::new();
    let dataset = builder
        .create_dataset("features")
        .with_f32_data(features)
        .with_shape(&[n as u64, dim as u64]);
    if compress {
        dataset
            .with_chunks(&[64.min(n.max(1)) as u64, dim as u64])
            .with_shuffle()
            .with_deflate(4);
    }
    if let Some(coords) = coords {
        builder
            .create_dataset("coords")
            .with_i64_data(coords)
            .with_shape(&[n as u64, 2]);
    }
    builder.write(path).map_err(|e| DataError::Hdf5 {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
