//! The clinical export (`clinical.tsv`, old or new column names): each case's survival
//! ([`read_survival`]); and the optional table of one label per case ([`read_labels`]).

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

use super::error::{GdcError, io};
use super::table::{Table, missing};

/// A case's survival.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Survival {
    /// Days to death, or to the last follow-up of a case alive then.
    pub(super) days: f64,
    /// Whether the case was alive at its last follow-up.
    pub(super) censored: bool,
}

/// The clinical columns survival is read from: position and name as found.
struct Columns {
    /// The case id.
    case: usize,
    /// The vital status.
    vital: (usize, &'static str),
    /// Days to death.
    death: (usize, &'static str),
    /// Days to the last follow-up.
    follow: (usize, &'static str),
}

impl Columns {
    /// The columns of `table`, by their new or old names.
    fn of(table: &Table) -> Result<Self, GdcError> {
        Ok(Self {
            case: table
                .column(&["case_submitter_id", "cases.submitter_id"])?
                .0,
            vital: table.column(&["vital_status", "demographic.vital_status"])?,
            death: table.column(&["days_to_death", "demographic.days_to_death"])?,
            follow: table
                .column(&["days_to_last_follow_up", "diagnoses.days_to_last_follow_up"])?,
        })
    }
}

/// What a case's clinical rows say, checked to agree.
#[derive(Default)]
struct Facts {
    /// The vital status, and the line it was first read on.
    vital: Option<(u64, String)>,
    /// Days to death, and the line and cell it was first read from.
    death: Option<(u64, f64, String)>,
    /// The latest follow-up, in days.
    follow_up: Option<f64>,
}

impl Facts {
    /// The case's survival: dead with days to death (an event), alive with a follow-up
    /// (censored), else none.
    fn survival(self) -> Option<Survival> {
        let vital = self.vital.map(|(_, v)| v.to_ascii_lowercase());
        match (vital.as_deref(), self.death, self.follow_up) {
            (Some("dead"), Some((_, days, _)), _) => Some(Survival {
                days,
                censored: false,
            }),
            (Some("alive"), _, Some(days)) => Some(Survival {
                days,
                censored: true,
            }),
            _ => None,
        }
    }
}

/// A time cell in days: `None` when missing.
///
/// # Errors
///
/// [`GdcError::BadValue`] for a cell that is not a finite number of 0 or more.
fn days(path: &Path, line: u64, name: &str, value: &str) -> Result<Option<f64>, GdcError> {
    if missing(value) {
        return Ok(None);
    }
    let bad = |reason| GdcError::BadValue {
        path: path.to_path_buf(),
        line,
        column: name.to_string(),
        value: value.to_string(),
        reason,
    };
    let days = crate::data::parse_finite(value).map_err(bad)?;
    if days < 0.0 {
        return Err(bad("a time cannot be negative"));
    }
    Ok(Some(days))
}

/// Survival per case from the clinical export; cases without usable survival map to `None`.
pub(super) fn read_survival(path: &Path) -> Result<BTreeMap<String, Option<Survival>>, GdcError> {
    let table = Table::read(path, b'\t')?;
    let columns = Columns::of(&table)?;
    let mut facts: BTreeMap<String, Facts> = BTreeMap::new();
    for (line, row) in &table.rows {
        let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
        let case = cell(columns.case);
        if missing(case) {
            continue;
        }
        let (death_col, death_name) = columns.death;
        let death = days(path, *line, death_name, cell(death_col))?;
        let follow = days(path, *line, columns.follow.1, cell(columns.follow.0))?;
        let f = facts.entry(case.to_string()).or_default();
        let contradiction =
            |column, first_line, first: &str, second: &str| GdcError::Contradiction {
                path: path.to_path_buf(),
                case: case.to_string(),
                column,
                lines: [first_line, *line],
                values: Box::new([first.to_string(), second.to_string()]),
            };
        let vital = cell(columns.vital.0);
        if !missing(vital) {
            match &f.vital {
                Some((first_line, first)) if !first.eq_ignore_ascii_case(vital) => {
                    return Err(contradiction(columns.vital.1, *first_line, first, vital));
                }
                Some(_) => {}
                None => f.vital = Some((*line, vital.to_string())),
            }
        }
        if let Some(d) = death {
            match &f.death {
                Some((first_line, first, text)) if *first != d => {
                    return Err(contradiction(
                        death_name,
                        *first_line,
                        text,
                        cell(death_col),
                    ));
                }
                Some(_) => {}
                None => f.death = Some((*line, d, cell(death_col).to_string())),
            }
        }
        if let Some(d) = follow {
            f.follow_up = Some(f.follow_up.map_or(d, |m: f64| m.max(d)));
        }
    }
    Ok(facts
        .into_iter()
        .map(|(case, f)| (case, f.survival()))
        .collect())
}

/// One label per case from a CSV or TSV (tab-separated when its header has a tab): the case
/// column is the first of `case_submitter_id`, `cases.submitter_id`, `patient_id`, `case_id`,
/// `bcr_patient_barcode`, `patient`, `case`; TCGA barcodes longer than a case's are cut to
/// its 12 characters.
pub(super) fn read_labels(path: &Path, column: &str) -> Result<HashMap<String, String>, GdcError> {
    // The header line alone tells the separator.
    let mut first = String::new();
    std::io::BufReader::new(std::fs::File::open(path).map_err(io(path))?)
        .read_line(&mut first)
        .map_err(io(path))?;
    let table = Table::read(path, if first.contains('\t') { b'\t' } else { b',' })?;
    let (case_col, _) = table.column(&[
        "case_submitter_id",
        "cases.submitter_id",
        "patient_id",
        "case_id",
        "bcr_patient_barcode",
        "patient",
        "case",
    ])?;
    let label_col = table
        .header
        .iter()
        .position(|h| h == column)
        .ok_or_else(|| GdcError::MissingColumn {
            path: path.to_path_buf(),
            column: format!("`{column}`"),
            available: table.header.join(", "),
        })?;
    let mut labels: HashMap<String, (u64, String)> = HashMap::new();
    for (line, row) in &table.rows {
        let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
        let mut case = cell(case_col).to_string();
        if case.starts_with("TCGA-") && case.len() > 12 {
            case.truncate(12);
        }
        let label = cell(label_col);
        if missing(&case) || missing(label) {
            continue;
        }
        match labels.get(&case) {
            Some((first_line, first)) if first != label => {
                return Err(GdcError::Contradiction {
                    path: path.to_path_buf(),
                    case,
                    column: "label",
                    lines: [*first_line, *line],
                    values: Box::new([first.clone(), label.to_string()]),
                });
            }
            Some(_) => {}
            None => {
                labels.insert(case, (*line, label.to_string()));
            }
        }
    }
    Ok(labels.into_iter().map(|(c, (_, l))| (c, l)).collect())
}
