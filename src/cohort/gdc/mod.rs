//! [`build()`]: a GDC portal download into a cohort CSV (`med-crossvit cohort gdc`).
//!
//! Inputs, as the portal delivers them (see `docs/cohorts.md` for the formats and rules):
//! the sample sheet (`gdc_sample_sheet.*.tsv`), the expression download
//! (`{File ID}/{File Name}`, STAR "augmented gene counts" TSVs), the clinical export
//! (`clinical.tsv`, old or new column names) and a folder of slide feature files named by
//! slide barcode. The output has one row per kept slide: `patient_id`, `wsi_file_name`,
//! `survival_months`, `censorship`, an optional `label`, then `rna_{gene}` columns; the
//! [`GdcReport`] lists every case left out and why.
//!
//! One file per kind of input: `sheet.rs` (the sample sheet), `star.rs` (the STAR
//! gene-counts files), `slides.rs` (the slide feature files), `clinical.rs` (survival and
//! labels), over `table.rs` (the portal's tables); `build.rs` joins them into the rows of
//! `output.rs`; `options.rs` and `error.rs` are what every step shares.

mod build;
mod clinical;
mod error;
mod options;
mod output;
mod sheet;
mod slides;
mod star;
mod table;

pub use build::build;
pub use error::GdcError;
pub use options::{
    DAYS_PER_MONTH, GdcOptions, GeneId, GeneTypes, SAMPLE_TYPES, STAR_HEADER, ValueColumn,
};
pub use output::{GdcCohort, GdcReport};
pub use slides::{SlideBarcode, parse_slide_barcode};
pub use star::unversioned;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barcodes_and_ensembl_ids() {
        let b = parse_slide_barcode("TCGA-05-4244-01Z-00-DX1.8F4C1B2A-AAAA").unwrap();
        assert_eq!(
            b,
            SlideBarcode {
                case: "TCGA-05-4244".into(),
                sample_code: "01".into(),
                diagnostic: true
            }
        );
        let ts = parse_slide_barcode("TCGA-05-4244-11A-01-TS1.X").unwrap();
        assert_eq!((ts.sample_code.as_str(), ts.diagnostic), ("11", false));
        assert_eq!(parse_slide_barcode("slide_7"), None);
        assert_eq!(parse_slide_barcode("TCGA-05-4244-XYZ-00-DX1"), None);
        assert_eq!(unversioned("ENSG00000141510.18"), "ENSG00000141510");
        assert_eq!(
            unversioned("ENSG00000002586.20_PAR_Y"),
            "ENSG00000002586_PAR_Y"
        );
        assert_eq!(unversioned("N_unmapped"), "N_unmapped");
    }
}
