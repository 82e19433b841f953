//! What a build takes: [`GdcOptions`] and its choices, and the fixed facts of GDC files (the
//! STAR header, the sample type codes, days per month). A leaf: it imports nothing else from
//! `gdc/`.

use std::path::PathBuf;

/// The header of a STAR augmented gene-counts file.
pub const STAR_HEADER: [&str; 9] = [
    "gene_id",
    "gene_name",
    "gene_type",
    "unstranded",
    "stranded_first",
    "stranded_second",
    "tpm_unstranded",
    "fpkm_unstranded",
    "fpkm_uq_unstranded",
];

/// The sample sheet's `Data Type` of expression files.
pub(super) const EXPRESSION_TYPE: &str = "Gene Expression Quantification";

/// Days per month in `survival_months` (365.25 / 12).
pub const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

/// GDC sample type names and their two-digit codes in a TCGA barcode (characters 14–15).
pub const SAMPLE_TYPES: [(&str, &str); 14] = [
    ("Primary Tumor", "01"),
    ("Recurrent Tumor", "02"),
    ("Primary Blood Derived Cancer - Peripheral Blood", "03"),
    ("Recurrent Blood Derived Cancer - Bone Marrow", "04"),
    ("Additional - New Primary", "05"),
    ("Metastatic", "06"),
    ("Additional Metastatic", "07"),
    ("Human Tumor Original Cells", "08"),
    ("Primary Blood Derived Cancer - Bone Marrow", "09"),
    ("Blood Derived Normal", "10"),
    ("Solid Tissue Normal", "11"),
    ("Buccal Cell Normal", "12"),
    ("EBV Immortalized Normal", "13"),
    ("Bone Marrow Normal", "14"),
];

/// Which expression value a cohort takes from the STAR files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ValueColumn {
    /// `tpm_unstranded` (the default).
    #[default]
    Tpm,
    /// `unstranded`: raw counts.
    Unstranded,
    /// `fpkm_unstranded`.
    Fpkm,
    /// `fpkm_uq_unstranded`.
    FpkmUq,
}

impl ValueColumn {
    /// The column's name in the STAR file.
    pub fn column(self) -> &'static str {
        match self {
            Self::Tpm => "tpm_unstranded",
            Self::Unstranded => "unstranded",
            Self::Fpkm => "fpkm_unstranded",
            Self::FpkmUq => "fpkm_uq_unstranded",
        }
    }
}

/// Which genes are kept, by the STAR file's `gene_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeneTypes {
    /// Every gene.
    All,
    /// Genes of these types (`protein_coding`, `lncRNA`, …).
    Only(Vec<String>),
}

/// How gene columns are named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GeneId {
    /// By symbol (`gene_name`); the values of ids sharing a symbol are summed.
    #[default]
    Symbol,
    /// By unversioned Ensembl id (`ENSG00000141510`; a `_PAR_Y` copy keeps its suffix).
    Ensembl,
}

/// What to build a cohort from, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct GdcOptions {
    /// The sample sheet (`gdc_sample_sheet.*.tsv`).
    pub sample_sheet: PathBuf,
    /// The expression download: `{File ID}/{File Name}` (or the files flat).
    pub expression_dir: PathBuf,
    /// The clinical export (`clinical.tsv`).
    pub clinical: PathBuf,
    /// The slide feature files (`{slide}.h5` or `.pt`, flat or in `h5_files/`, `pt_files/`).
    pub features_dir: PathBuf,
    /// The expression value taken. Default TPM.
    pub value: ValueColumn,
    /// The gene types kept. Default `protein_coding`.
    pub gene_types: GeneTypes,
    /// Gene column names. Default symbols.
    pub gene_id: GeneId,
    /// The sample types kept (GDC names). Default `Primary Tumor`.
    pub sample_types: Vec<String>,
    /// Keep frozen-section (`TS`, `BS`) slides too, not only diagnostic (`DX`) ones.
    pub all_slides: bool,
    /// A table of one label per case, and the column holding it.
    pub labels: Option<(PathBuf, String)>,
}

impl GdcOptions {
    /// The defaults for these four inputs.
    pub fn new(
        sample_sheet: impl Into<PathBuf>,
        expression_dir: impl Into<PathBuf>,
        clinical: impl Into<PathBuf>,
        features_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            sample_sheet: sample_sheet.into(),
            expression_dir: expression_dir.into(),
            clinical: clinical.into(),
            features_dir: features_dir.into(),
            value: ValueColumn::Tpm,
            gene_types: GeneTypes::Only(vec!["protein_coding".into()]),
            gene_id: GeneId::Symbol,
            sample_types: vec!["Primary Tumor".into()],
            all_slides: false,
            labels: None,
        }
    }
}
