//! The slide feature files: their barcodes ([`parse_slide_barcode`]), and the slides kept
//! per case ([`kept_slides`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::error::{GdcError, io};
use super::options::GdcOptions;
use super::output::GdcReport;

/// A slide feature file's barcode parts: the case, the sample type code, whether diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlideBarcode {
    /// The case (patient) barcode: the first three fields (`TCGA-05-4244`).
    pub case: String,
    /// The sample type code (`01`).
    pub sample_code: String,
    /// Whether the slide is diagnostic (its slide field starts with `DX`).
    pub diagnostic: bool,
}

/// Parses a slide barcode such as `TCGA-05-4244-01Z-00-DX1.8F4C…`: `None` when the name has
/// not that shape.
pub fn parse_slide_barcode(stem: &str) -> Option<SlideBarcode> {
    let fields: Vec<&str> = stem.split('-').collect();
    if fields.len() < 6 || fields[..3].iter().any(|f| f.is_empty()) {
        return None;
    }
    let code = fields[3]
        .get(..2)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))?;
    let slide = fields[5].split('.').next().unwrap_or("");
    if slide.is_empty() {
        return None;
    }
    Some(SlideBarcode {
        case: fields[..3].join("-"),
        sample_code: code.to_string(),
        diagnostic: slide.starts_with("DX"),
    })
}

/// The stems of the `.h5` and `.pt` files in `dir`, `dir/h5_files` and `dir/pt_files`.
fn slide_stems(dir: &Path) -> Result<BTreeSet<String>, GdcError> {
    let mut stems = BTreeSet::new();
    for folder in [
        dir.to_path_buf(),
        dir.join("h5_files"),
        dir.join("pt_files"),
    ] {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(_) if folder != dir => continue,
            Err(e) => return Err(io(dir)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io(&folder))?.path();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if path.is_file()
                && matches!(ext.as_deref(), Some("h5" | "pt"))
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                stems.insert(stem.to_string());
            }
        }
    }
    Ok(stems)
}

/// The kept slides of each case among the feature files: those of the sample type `codes`,
/// and diagnostic unless `options.all_slides`. The others are counted in the report's
/// `dropped_slides`; names that are not slide barcodes are listed in its
/// `unrecognized_slides`.
///
/// # Errors
///
/// [`GdcError::Io`] for a features folder that cannot be listed.
pub(super) fn kept_slides(
    options: &GdcOptions,
    codes: &[&str],
    report: &mut GdcReport,
) -> Result<BTreeMap<String, Vec<String>>, GdcError> {
    let mut slides: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for stem in slide_stems(&options.features_dir)? {
        let Some(barcode) = parse_slide_barcode(&stem) else {
            report.unrecognized_slides.push(stem);
            continue;
        };
        let reason = if !codes.contains(&barcode.sample_code.as_str()) {
            Some(format!("sample type {}", barcode.sample_code))
        } else if !barcode.diagnostic && !options.all_slides {
            Some("not diagnostic".to_string())
        } else {
            None
        };
        match reason {
            Some(reason) => *report.dropped_slides.entry(reason).or_default() += 1,
            None => slides.entry(barcode.case).or_default().push(stem),
        }
    }
    Ok(slides)
}
