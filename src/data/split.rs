//! Patient-level splits: stratified k folds, train/val/test fractions, or a splits CSV.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{CohortTable, DataError};

/// Slide indices (into the cohort table) on each side of a split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Training slides.
    pub train: Vec<usize>,
    /// Validation slides.
    pub val: Vec<usize>,
    /// Test slides.
    pub test: Vec<usize>,
}

/// Patients, each with its slides and a stratification label (its most frequent slide label;
/// ties go to the smaller class index).
struct Patients {
    ids: Vec<String>,
    slides: Vec<Vec<usize>>,
    label: Vec<usize>,
}

fn group_patients(table: &CohortTable, labels: &[usize]) -> Patients {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut ids = Vec::new();
    let mut slides: Vec<Vec<usize>> = Vec::new();
    for (i, record) in table.slides().iter().enumerate() {
        let p = *index.entry(record.patient.as_str()).or_insert_with(|| {
            ids.push(record.patient.clone());
            slides.push(Vec::new());
            ids.len() - 1
        });
        slides[p].push(i);
    }
    let label = slides
        .iter()
        .map(|s| {
            let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
            for &i in s {
                *counts.entry(labels[i]).or_default() += 1;
            }
            let best = counts.values().copied().max().unwrap_or(0);
            counts
                .into_iter()
                .find(|&(_, c)| c == best)
                .map(|(l, _)| l)
                .unwrap_or(0)
        })
        .collect();
    Patients { ids, slides, label }
}

/// Patients of each class, shuffled from `seed`, classes in index order.
fn shuffled_by_class(patients: &Patients, seed: u64) -> Vec<(usize, Vec<usize>)> {
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (p, &l) in patients.label.iter().enumerate() {
        by_class.entry(l).or_default().push(p);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    by_class
        .into_iter()
        .map(|(class, mut ps)| {
            ps.shuffle(&mut rng);
            (class, ps)
        })
        .collect()
}

fn slides_of(patients: &Patients, ps: &[usize]) -> Vec<usize> {
    let mut slides: Vec<usize> = ps
        .iter()
        .flat_map(|&p| patients.slides[p].iter().copied())
        .collect();
    slides.sort_unstable();
    slides
}

/// `k` patient-level folds stratified by label: fold `i` validates on its patients and trains
/// on all others. Every slide of a patient lands in the same fold.
///
/// `labels[i]` is slide `i`'s class (or survival bin for survival tasks).
///
/// # Errors
///
/// [`DataError::Split`] for `k < 2`, or for `k` larger than some class's patient count (a
/// fold would then miss that class).
pub fn kfold(
    table: &CohortTable,
    labels: &[usize],
    k: usize,
    seed: u64,
) -> Result<Vec<Split>, DataError> {
    if k < 2 {
        return Err(DataError::Split(format!(
            "--folds must be at least 2, got {k}"
        )));
    }
    let patients = group_patients(table, labels);
    let classes = shuffled_by_class(&patients, seed);
    if let Some((class, ps)) = classes.iter().find(|(_, ps)| ps.len() < k) {
        return Err(DataError::Split(format!(
            "{k} folds, but class {class} has only {} patient(s): every fold needs at least one",
            ps.len()
        )));
    }
    let mut fold_of = vec![0usize; patients.ids.len()];
    let mut next = 0;
    for (_, ps) in &classes {
        for &p in ps {
            fold_of[p] = next % k;
            next += 1;
        }
    }
    Ok((0..k)
        .map(|fold| {
            let (val, train): (Vec<usize>, Vec<usize>) =
                (0..patients.ids.len()).partition(|&p| fold_of[p] == fold);
            Split {
                train: slides_of(&patients, &train),
                val: slides_of(&patients, &val),
                test: Vec::new(),
            }
        })
        .collect())
}

/// A patient-level split by fractions, stratified by label: in each class, `round(n · val)`
/// patients validate, `round(n · test)` test, the rest train.
///
/// # Errors
///
/// [`DataError::Split`] for fractions outside `[0, 1)` or summing to 1 or more, or when the
/// training side would be empty.
pub fn by_fractions(
    table: &CohortTable,
    labels: &[usize],
    val: f64,
    test: f64,
    seed: u64,
) -> Result<Split, DataError> {
    if !(0.0..1.0).contains(&val) || !(0.0..1.0).contains(&test) || val + test >= 1.0 {
        return Err(DataError::Split(format!(
            "validation ({val}) and test ({test}) fractions must each lie in [0, 1) and sum to less than 1"
        )));
    }
    let patients = group_patients(table, labels);
    let mut sides: [Vec<usize>; 3] = Default::default();
    for (_, ps) in shuffled_by_class(&patients, seed) {
        let n = ps.len() as f64;
        let n_val = (n * val).round() as usize;
        let n_test = ((n * test).round() as usize).min(ps.len() - n_val.min(ps.len()));
        let n_val = n_val.min(ps.len());
        sides[1].extend(&ps[..n_val]);
        sides[2].extend(&ps[n_val..n_val + n_test]);
        sides[0].extend(&ps[n_val + n_test..]);
    }
    if sides[0].is_empty() {
        return Err(DataError::Split(
            "the training side of the split is empty".into(),
        ));
    }
    Ok(Split {
        train: slides_of(&patients, &sides[0]),
        val: slides_of(&patients, &sides[1]),
        test: slides_of(&patients, &sides[2]),
    })
}

/// Reads a splits CSV (the MCAT/CLAM convention): columns `train`, `val` and `test` (any of
/// them may be absent, cells may be empty), each cell a slide id or a patient id; a patient
/// id stands for all its slides. Slides the file does not mention belong to no side; their
/// number is returned beside the split.
///
/// # Errors
///
/// [`DataError::Csv`]/[`DataError::Io`] for an unreadable file, [`DataError::MissingColumn`]
/// when none of the three columns exists, [`DataError::Split`] naming the line and column of
/// an id that is neither a slide nor a patient of the cohort, or of a patient placed on two
/// sides.
pub fn from_csv(path: impl AsRef<Path>, table: &CohortTable) -> Result<(Split, usize), DataError> {
    let path = path.as_ref();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| DataError::Csv {
            path: path.to_path_buf(),
            line: 0,
            message: e.to_string(),
        })?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| DataError::Csv {
            path: path.to_path_buf(),
            line: 1,
            message: e.to_string(),
        })?
        .iter()
        .map(str::to_string)
        .collect();
    let sides = ["train", "val", "test"];
    let cols: Vec<Option<usize>> = sides
        .iter()
        .map(|s| header.iter().position(|h| h == s))
        .collect();
    if cols.iter().all(Option::is_none) {
        return Err(DataError::MissingColumn {
            path: path.to_path_buf(),
            column: "train, val or test".into(),
            available: header.join(", "),
        });
    }
    let by_slide: HashMap<&str, usize> = table
        .slides()
        .iter()
        .enumerate()
        .map(|(i, s)| (s.slide.as_str(), i))
        .collect();
    let mut by_patient: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in table.slides().iter().enumerate() {
        by_patient.entry(s.patient.as_str()).or_default().push(i);
    }
    let mut side_of: Vec<Option<(usize, u64)>> = vec![None; table.len()];
    for record in reader.records() {
        let record = record.map_err(|e| DataError::Csv {
            path: path.to_path_buf(),
            line: e.position().map(|p| p.line()).unwrap_or(0),
            message: e.to_string(),
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        for (side, col) in cols.iter().enumerate() {
            let Some(id) = col.and_then(|c| record.get(c)).filter(|c| !c.is_empty()) else {
                continue;
            };
            let slides: Vec<usize> = match (by_slide.get(id), by_patient.get(id)) {
                (Some(&i), _) => vec![i],
                (None, Some(v)) => v.clone(),
                (None, None) => {
                    return Err(DataError::Split(format!(
                        "{}: line {line}, column `{}`: `{id}` is neither a slide nor a patient of {}",
                        path.display(),
                        sides[side],
                        table.path().display()
                    )));
                }
            };
            for i in slides {
                match side_of[i] {
                    Some((other, first)) if other != side => {
                        return Err(DataError::Split(format!(
                            "{}: slide `{}` (patient `{}`) is in `{}` on line {first} and in `{}` on line {line}",
                            path.display(),
                            table.slides()[i].slide,
                            table.slides()[i].patient,
                            sides[other],
                            sides[side]
                        )));
                    }
                    _ => side_of[i] = Some((side, line)),
                }
            }
        }
    }
    let mut split = Split::default();
    let mut unassigned = 0;
    for (i, side) in side_of.iter().enumerate() {
        match side.map(|(s, _)| s) {
            Some(0) => split.train.push(i),
            Some(1) => split.val.push(i),
            Some(_) => split.test.push(i),
            None => unassigned += 1,
        }
    }
    check_patients(table, &split)?;
    Ok((split, unassigned))
}

/// Checks that no patient has slides on two sides of `split`.
///
/// # Errors
///
/// [`DataError::Split`] naming the patient.
pub fn check_patients(table: &CohortTable, split: &Split) -> Result<(), DataError> {
    let mut side_of: HashMap<&str, &str> = HashMap::new();
    for (name, side) in [
        ("train", &split.train),
        ("val", &split.val),
        ("test", &split.test),
    ] {
        for &i in side {
            let patient = table.slides()[i].patient.as_str();
            if let Some(other) = side_of.insert(patient, name)
                && other != name
            {
                return Err(DataError::Split(format!(
                    "patient `{patient}` has slides in both `{other}` and `{name}`"
                )));
            }
        }
    }
    Ok(())
}
