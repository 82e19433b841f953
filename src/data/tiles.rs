//! [`TileFile`]: one slide's tile features, from an HDF5 file (the Python original, CLAM,
//! TRIDENT, STAMP) or a CLAM `.pt` file (`torch.save` of a `[tiles, dim]` tensor); and where
//! a slide's file is found.

use std::path::{Path, PathBuf};

use super::DataError;
use super::h5::H5Tiles;
use super::pt::{PtError, PtMatrix};

/// File extensions of whole-slide images that slide ids may carry (`TCGA-….svs`): a slide's
/// feature file is named by the id without it.
pub const SLIDE_EXTENSIONS: [&str; 6] = ["svs", "ndpi", "tif", "tiff", "mrxs", "scn"];

/// The name a slide's feature file has: the slide id without a whole-slide-image extension
/// ([`SLIDE_EXTENSIONS`], any case).
pub fn slide_stem(slide: &str) -> &str {
    match slide.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty() && SLIDE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)) =>
        {
            stem
        }
        _ => slide,
    }
}

/// The places a slide's file may be, in the order they are tried, all HDF5 before any `.pt`
/// (an HDF5 file also carries the tile coordinates):
/// `{dir}/{project}/{stem}.h5` (the original's layout), `{dir}/{stem}.h5` (CLAM, TRIDENT and
/// STAMP write flat folders), `{dir}/h5_files/{stem}.h5` (`dir` is a CLAM output folder), then
/// the same with `.pt` and `pt_files/`. `stem` is [`slide_stem`] of the slide id; the project
/// folder is tried only when the slide has a project.
pub fn candidate_paths(dir: &Path, project: Option<&str>, slide: &str) -> Vec<PathBuf> {
    let stem = slide_stem(slide);
    let mut paths = Vec::with_capacity(6);
    for (ext, folder) in [("h5", "h5_files"), ("pt", "pt_files")] {
        let file = format!("{stem}.{ext}");
        if let Some(project) = project {
            paths.push(dir.join(project).join(&file));
        }
        paths.push(dir.join(&file));
        paths.push(dir.join(folder).join(&file));
    }
    paths
}

/// The first existing candidate path, or all the paths tried.
pub fn locate(dir: &Path, project: Option<&str>, slide: &str) -> Result<PathBuf, Vec<PathBuf>> {
    let candidates = candidate_paths(dir, project, slide);
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or(candidates)
}

/// Whether `path` names a `torch.save` file (`.pt` or `.pth`, any case) rather than HDF5.
pub(crate) fn is_pt(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("pt") || e.eq_ignore_ascii_case("pth"))
}

/// The name under which a `.pt` file's tensor is reported (it has no dataset name).
pub const PT_KEY: &str = "tensor";

enum Source {
    // Boxed: the HDF5 reader's state is ten times the `.pt` reader's.
    H5(Box<H5Tiles>),
    Pt(PtMatrix),
}

/// An open tile-feature file: `[tiles, dim]` features and, for HDF5 files that have them, the
/// tile coordinates. Only the rows asked for are read.
pub struct TileFile {
    path: PathBuf,
    source: Source,
}

impl std::fmt::Debug for TileFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileFile")
            .field("path", &self.path)
            .field("key", &self.features_key())
            .field("tiles", &self.tiles())
            .field("dim", &self.dim())
            .field("coords", &self.has_coords())
            .finish()
    }
}

impl TileFile {
    /// Opens `path`: a `.pt` file as a `torch.save`d tensor, anything else as HDF5, whose
    /// features are the dataset named `key`, or else the first of
    /// [`FEATURE_DATASETS`](super::FEATURE_DATASETS) present (`key` does not apply to `.pt`).
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] for a missing file; for HDF5 [`DataError::Hdf5`],
    /// [`DataError::NoFeatures`] and [`DataError::BadDataset`]; for `.pt`
    /// [`DataError::Torch`] when it is not a readable `torch.save` file and
    /// [`DataError::BadDataset`] when it does not hold a 2-D floating-point tensor.
    pub fn open(path: impl AsRef<Path>, key: Option<&str>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let source = if is_pt(path) {
            if !path.is_file() {
                return Err(DataError::io(
                    path,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            }
            let matrix = PtMatrix::open(path).map_err(|e| pt_error(path, e))?;
            if matrix.cols() == 0 {
                return Err(DataError::BadDataset {
                    path: path.to_path_buf(),
                    dataset: PT_KEY.into(),
                    message: format!(
                        "a features matrix needs at least one column, got shape [{}, 0]",
                        matrix.rows()
                    ),
                });
            }
            Source::Pt(matrix)
        } else {
            Source::H5(Box::new(H5Tiles::open(path, key)?))
        };
        Ok(Self {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name of the features dataset found (`tensor` for a `.pt` file).
    pub fn features_key(&self) -> &str {
        match &self.source {
            Source::H5(h) => h.features_key(),
            Source::Pt(_) => PT_KEY,
        }
    }

    /// Number of tiles.
    pub fn tiles(&self) -> usize {
        match &self.source {
            Source::H5(h) => h.tiles(),
            Source::Pt(p) => p.rows(),
        }
    }

    /// Feature width.
    pub fn dim(&self) -> usize {
        match &self.source {
            Source::H5(h) => h.dim(),
            Source::Pt(p) => p.cols(),
        }
    }

    /// Whether the file has tile coordinates (`.pt` files have none).
    pub fn has_coords(&self) -> bool {
        match &self.source {
            Source::H5(h) => h.has_coords(),
            Source::Pt(_) => false,
        }
    }

    /// The features of `rows` (in that order, repeats allowed), row-major `[rows, dim]`, as
    /// `f32`.
    ///
    /// # Errors
    ///
    /// [`DataError::BadDataset`] for a row index past the end; [`DataError::Hdf5`] or
    /// [`DataError::Torch`] when the file cannot be decoded (e.g. truncated).
    pub fn read_rows(&self, rows: &[usize]) -> Result<Vec<f32>, DataError> {
        match &self.source {
            Source::H5(h) => h.read_rows(rows),
            Source::Pt(p) => {
                if let Some(r) = rows.iter().find(|&&r| r >= p.rows()) {
                    return Err(DataError::BadDataset {
                        path: self.path.clone(),
                        dataset: PT_KEY.into(),
                        message: format!("row {r} asked for, but there are {} tiles", p.rows()),
                    });
                }
                p.read_rows(rows).map_err(|e| pt_error(&self.path, e))
            }
        }
    }

    /// All features, row-major `[tiles, dim]`.
    ///
    /// # Errors
    ///
    /// As [`read_rows`](Self::read_rows).
    pub fn read_all(&self) -> Result<Vec<f32>, DataError> {
        match &self.source {
            Source::Pt(p) => p.read_all().map_err(|e| pt_error(&self.path, e)),
            Source::H5(_) => self.read_rows(&(0..self.tiles()).collect::<Vec<_>>()),
        }
    }

    /// The `(x, y)` coordinates of `rows`, or `None` when the file has none.
    ///
    /// # Errors
    ///
    /// As [`read_rows`](Self::read_rows); [`DataError::BadDataset`] for coordinates that are
    /// not numbers.
    pub fn read_coords(&self, rows: &[usize]) -> Result<Option<Vec<[f64; 2]>>, DataError> {
        match &self.source {
            Source::H5(h) => h.read_coords(rows),
            Source::Pt(_) => Ok(None),
        }
    }
}

fn pt_error(path: &Path, e: PtError) -> DataError {
    match e {
        PtError::Io(source) => DataError::io(path, source),
        PtError::Format(message) => DataError::Torch {
            path: path.to_path_buf(),
            message,
        },
        PtError::NotMatrix(found) => DataError::BadDataset {
            path: path.to_path_buf(),
            dataset: PT_KEY.into(),
            message: format!("expected a 2-D [tiles, features] floating-point tensor, got {found}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slide_ids_lose_their_image_extension_only() {
        assert_eq!(
            slide_stem("TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739-4BD9-B15B-4A70AE287D3E.svs"),
            "TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739-4BD9-B15B-4A70AE287D3E"
        );
        assert_eq!(slide_stem("a.NDPI"), "a");
        assert_eq!(slide_stem("a.b.tiff"), "a.b");
        assert_eq!(slide_stem("slide_7"), "slide_7");
        // A UUID part after the barcode is not an extension.
        assert_eq!(
            slide_stem("TCGA-05-4244-01Z-00-DX1.8F4C"),
            "TCGA-05-4244-01Z-00-DX1.8F4C"
        );
        assert_eq!(slide_stem(".svs"), ".svs");
    }

    #[test]
    fn h5_is_tried_before_pt() {
        let paths = candidate_paths(Path::new("f"), Some("LUAD"), "s.svs");
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "f/LUAD/s.h5",
                "f/s.h5",
                "f/h5_files/s.h5",
                "f/LUAD/s.pt",
                "f/s.pt",
                "f/pt_files/s.pt"
            ]
        );
    }
}
