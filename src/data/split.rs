//! Patient-level splits: stratified k folds, train/val/test fractions, or a splits CSV.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::text::cut;
use super::{CohortTable, DataError, Patients, slide_stem};

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
struct Grouped {
    ids: Vec<String>,
    slides: Vec<Vec<usize>>,
    label: Vec<usize>,
}

fn group_patients(table: &CohortTable, labels: &[usize]) -> Grouped {
    let patients = Patients::of(table);
    let slides: Vec<Vec<usize>> = (0..patients.len())
        .map(|p| patients.slides(p).to_vec())
        .collect();
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
    Grouped {
        ids: patients.ids().to_vec(),
        slides,
        label,
    }
}

/// Patients of each class, shuffled from `seed`, classes in index order.
fn shuffled_by_class(patients: &Grouped, seed: u64) -> Vec<(usize, Vec<usize>)> {
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

fn slides_of(patients: &Grouped, ps: &[usize]) -> Vec<usize> {
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

/// A splits file as read: the split and what of the file did not fit the cohort.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitRead {
    /// The slides on each side.
    pub split: Split,
    /// Slides of the cohort the file does not mention (they belong to no side).
    pub unassigned: usize,
    /// Ids in the file that are neither a slide nor a patient of the cohort, each once, in
    /// file order (a published split names patients a cohort may lack).
    pub unknown: Vec<String>,
    /// Ids listed more than once on one side (harmless, but likely a mistake in the file),
    /// each once, in file order.
    pub repeated: Vec<String>,
}

impl SplitRead {
    /// What of the file did not fit the cohort, as warnings naming `path`: ids the cohort
    /// lacks (left out) and ids listed twice on one side (each counted once).
    pub fn warnings(&self, path: &Path) -> Vec<String> {
        let mut warnings = Vec::new();
        for (ids, what) in [
            (&self.unknown, "are not in the cohort and are left out"),
            (
                &self.repeated,
                "are listed more than once in one column (each is counted once)",
            ),
        ] {
            if !ids.is_empty() {
                warnings.push(format!(
                    "{}: {} id(s) {what}: {}",
                    path.display(),
                    ids.len(),
                    super::text::cut_list(ids, 5)
                ));
            }
        }
        warnings
    }
}

/// Reads a splits CSV (the CLAM/MCAT/SurvPath convention, as pandas writes it): a leading
/// unnamed index column (ignored), then columns `train`, `val` and `test` (any may be absent),
/// ragged (shorter columns padded with empty cells). Each cell is a patient id, standing for
/// all its slides, or a slide id (with or without its image extension).
///
/// # Errors
///
/// [`DataError::Csv`]/[`DataError::Io`] for an unreadable file; [`DataError::EmptyFile`],
/// [`DataError::NoRows`], [`DataError::Delimiter`] or [`DataError::DuplicateColumn`] for an
/// empty file, one with a header and no rows, one not comma-separated, or a column named
/// twice; [`DataError::MissingColumn`] when none of the three columns exists;
/// [`DataError::Split`] naming the lines and columns of a slide or patient placed on two
/// sides. An id listed twice on one side is no error: see [`SplitRead::repeated`].
pub fn from_csv(path: impl AsRef<Path>, table: &CohortTable) -> Result<SplitRead, DataError> {
    let path = path.as_ref();
    let file = super::csvfile::CsvFile::read(path)?;
    let mut reader = file.reader(
        csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All),
    );
    let header = file.header(&mut reader)?;
    let cols: Vec<Option<usize>> = SIDES
        .iter()
        .map(|s| header.iter().position(|h| h == s))
        .collect();
    if cols.iter().all(Option::is_none) {
        return Err(DataError::MissingColumn {
            path: path.to_path_buf(),
            column: "train, val or test".into(),
            available: super::text::cut_list(&header, 20),
        });
    }
    let mut placer = Placer::new(path, table);
    let mut any = false;
    for record in reader.records() {
        let record = record.map_err(|e| file.error(e))?;
        any = true;
        let line = file.line(record.position());
        for (side, col) in cols.iter().enumerate() {
            if let Some(id) = col.and_then(|c| record.get(c)).filter(|c| !c.is_empty()) {
                placer.place(side, id, line)?;
            }
        }
    }
    if !any {
        return Err(file.no_rows());
    }
    placer.finish()
}

/// The sides of a splits file, as its columns are named.
const SIDES: [&str; 3] = ["train", "val", "test"];

/// The slides of a splits file placed on their sides, row by row, each id checked to sit on
/// one side only.
struct Placer<'a> {
    /// The splits file.
    path: &'a Path,
    /// The cohort.
    table: &'a CohortTable,
    /// Each slide id, and each slide id's stem, to its slide.
    by_slide: HashMap<&'a str, usize>,
    /// Each patient id to its slides.
    by_patient: HashMap<&'a str, Vec<usize>>,
    /// Each slide's side and the line that put it there.
    side_of: Vec<Option<(usize, u64)>>,
    /// Ids the cohort lacks, each once, in file order.
    unknown: Vec<String>,
    /// The side and line of each id the cohort lacks.
    seen_unknown: HashMap<String, (usize, u64)>,
    /// Every `(side, id)` listed.
    listed: HashSet<(usize, String)>,
    /// Ids listed twice on one side, each once, in file order.
    repeated: Vec<String>,
}

impl<'a> Placer<'a> {
    /// A placer for the slides of `table`, none placed yet.
    fn new(path: &'a Path, table: &'a CohortTable) -> Self {
        let mut by_slide: HashMap<&str, usize> = HashMap::new();
        for (i, s) in table.slides().iter().enumerate() {
            by_slide.insert(s.slide.as_str(), i);
            by_slide.entry(slide_stem(&s.slide)).or_insert(i);
        }
        let mut by_patient: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, s) in table.slides().iter().enumerate() {
            by_patient.entry(s.patient.as_str()).or_default().push(i);
        }
        Self {
            path,
            table,
            by_slide,
            by_patient,
            side_of: vec![None; table.len()],
            unknown: Vec::new(),
            seen_unknown: HashMap::new(),
            listed: HashSet::new(),
            repeated: Vec::new(),
        }
    }

    /// Places the slides `id` names (a patient's, or one slide) on `side`, from `line`.
    fn place(&mut self, side: usize, id: &str, line: u64) -> Result<(), DataError> {
        if !self.listed.insert((side, id.to_string())) && !self.repeated.iter().any(|r| r == id) {
            self.repeated.push(id.to_string());
        }
        let slides: Vec<usize> = match (self.by_patient.get(id), self.by_slide.get(id)) {
            (Some(v), _) => v.clone(),
            (None, Some(&i)) => vec![i],
            (None, None) => return self.place_unknown(side, id, line),
        };
        for i in slides {
            self.place_slide(i, side, line)?;
        }
        Ok(())
    }

    /// Counts an id the cohort lacks; it still may not sit on two sides.
    fn place_unknown(&mut self, side: usize, id: &str, line: u64) -> Result<(), DataError> {
        match self.seen_unknown.get(id) {
            Some(&(other, first)) if other != side => {
                return Err(two_sides(
                    self.path,
                    id,
                    SIDES[other],
                    first,
                    SIDES[side],
                    line,
                ));
            }
            Some(_) => {}
            None => {
                self.seen_unknown.insert(id.to_string(), (side, line));
                self.unknown.push(id.to_string());
            }
        }
        Ok(())
    }

    /// Places slide `i` on `side`, from `line`.
    fn place_slide(&mut self, i: usize, side: usize, line: u64) -> Result<(), DataError> {
        match self.side_of[i] {
            Some((other, first)) if other != side => {
                let record = &self.table.slides()[i];
                let what = if record.patient == record.slide {
                    format!("slide `{}`", cut(&record.slide))
                } else {
                    format!(
                        "slide `{}` (patient `{}`)",
                        cut(&record.slide),
                        cut(&record.patient)
                    )
                };
                Err(two_sides(
                    self.path,
                    &what,
                    SIDES[other],
                    first,
                    SIDES[side],
                    line,
                ))
            }
            _ => {
                self.side_of[i] = Some((side, line));
                Ok(())
            }
        }
    }

    /// The split made, checked to keep each patient on one side.
    fn finish(self) -> Result<SplitRead, DataError> {
        let mut split = Split::default();
        let mut unassigned = 0;
        for (i, side) in self.side_of.iter().enumerate() {
            match side.map(|(s, _)| s) {
                Some(0) => split.train.push(i),
                Some(1) => split.val.push(i),
                Some(_) => split.test.push(i),
                None => unassigned += 1,
            }
        }
        check_patients(self.table, &split)?;
        Ok(SplitRead {
            split,
            unassigned,
            unknown: self.unknown,
            repeated: self.repeated,
        })
    }
}

/// The error for `what` (an id, or a slide already described) found on two sides.
fn two_sides(
    path: &Path,
    what: &str,
    first: &str,
    first_line: u64,
    second: &str,
    line: u64,
) -> DataError {
    let what = if what.starts_with("slide `") {
        what.to_string()
    } else {
        format!("`{}`", cut(what))
    };
    DataError::Split(format!(
        "{}: {what} is in `{first}` on line {first_line} and in `{second}` on line {line}",
        path.display()
    ))
}

/// The files of a splits folder: `splits_0.csv` … `splits_{k-1}.csv` (CLAM, MCAT and SurvPath
/// publish their 5-fold splits so), in fold order.
///
/// # Errors
///
/// [`DataError::Io`] for an unreadable folder; [`DataError::Split`] when it holds no
/// `splits_K.csv` or the numbers do not run from 0 without a gap.
pub fn split_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut found: BTreeMap<usize, PathBuf> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        let Some(k) = name
            .to_str()
            .and_then(|n| n.strip_prefix("splits_"))
            .and_then(|n| n.strip_suffix(".csv"))
            .and_then(|k| k.parse::<usize>().ok())
        else {
            continue;
        };
        found.insert(k, entry.path());
    }
    if found.is_empty() {
        return Err(DataError::Split(format!(
            "{} holds no splits_K.csv file (splits_0.csv, splits_1.csv, …)",
            dir.display()
        )));
    }
    if let Some(gap) = (0..found.len()).find(|k| !found.contains_key(k)) {
        return Err(DataError::Split(format!(
            "{}: the splits files must be numbered from 0 without a gap, but splits_{gap}.csv \
             is missing (found {})",
            dir.display(),
            found
                .keys()
                .map(|k| format!("splits_{k}.csv"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(found.into_values().collect())
}

/// Writes `split` as a splits CSV in the format [`from_csv`] reads: an unnamed index column,
/// then `train`, `val` and `test`, each the ids of that side's patients (slide ids when each
/// slide is its own patient), ragged columns padded with empty cells.
///
/// # Errors
///
/// [`DataError::Io`] naming the file.
pub fn write_split_csv(path: &Path, split: &Split, patients: &Patients) -> Result<(), DataError> {
    let sides: Vec<Vec<&str>> = [&split.train, &split.val, &split.test]
        .iter()
        .map(|slides| {
            patients
                .among(slides)
                .into_iter()
                .map(|p| patients.id(p))
                .collect()
        })
        .collect();
    let rows = sides.iter().map(Vec::len).max().unwrap_or(0);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| DataError::io(path, std::io::Error::other(e));
    writer
        .write_record(["", "train", "val", "test"])
        .map_err(io)?;
    for r in 0..rows {
        let index = r.to_string();
        let mut record = vec![index.as_str()];
        record.extend(sides.iter().map(|side| side.get(r).copied().unwrap_or("")));
        writer.write_record(&record).map_err(io)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| DataError::io(path, e.into_error()))?;
    let text = String::from_utf8(bytes).expect("ids read from CSV text are UTF-8");
    crate::util::atomic::write(path, text.as_bytes()).map_err(|e| DataError::io(path, e))
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
                    "patient `{}` has slides in both `{other}` and `{name}`",
                    cut(patient)
                )));
            }
        }
    }
    Ok(())
}
