//! [`H5Tiles`]: one slide's tile features (and coordinates) in an HDF5 file, as written by
//! the Python original, CLAM, TRIDENT or STAMP (read through [`TileFile`](super::TileFile)).
//!
//! Read with the pure-Rust `hdf5-reader` crate: no system HDF5 library is needed, and every
//! h5py variant (contiguous, chunked, gzip, shuffle, `libver='latest'`) is read. See
//! `docs/hdf5.md` for why.

use std::path::{Path, PathBuf};

use hdf5_reader::{Datatype, H5Type, Hdf5File, OpenOptions, SliceInfo, SliceInfoElem};

use super::DataError;

/// Names of the features dataset, in the order they are looked for: CLAM and TRIDENT, the
/// Python original, STAMP, STAMP's newer name.
pub const FEATURE_DATASETS: [&str; 4] = ["features", "uni_features", "feats", "patch_embeddings"];

/// Decoded-chunk cache per open file.
const CHUNK_CACHE_BYTES: usize = 32 << 20;

/// How many times its size in the file a dataset may decode to. Tile features are floats from
/// a trained network, which deflate compresses by well under 2×; a header claiming more is
/// damaged (or a bomb), and trusting it would let a file of kilobytes allocate gigabytes.
const MAX_EXPANSION: u64 = 8;

/// Name of the tile-coordinates dataset (level-0 pixels, `[tiles, 2]`, x then y).
pub const COORDS_DATASET: &str = "coords";

/// How the features are stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    /// Half floats, with their byte order (hdf5-reader decodes none).
    F16 {
        big_endian: bool,
    },
    F32,
    F64,
}

/// An open tile-feature file: the features dataset `[tiles, dim]` and, when present, the
/// coordinates `[tiles, 2]`.
///
/// Only the rows asked for are read: a bag of 40 tiles out of 20,000 costs 40 rows (or the
/// chunks that hold them), not the whole matrix.
pub(crate) struct H5Tiles {
    path: PathBuf,
    features: hdf5_reader::Dataset,
    key: String,
    element: Element,
    tiles: usize,
    dim: usize,
    coords: Option<hdf5_reader::Dataset>,
}

impl std::fmt::Debug for H5Tiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H5Tiles")
            .field("path", &self.path)
            .field("key", &self.key)
            .field("tiles", &self.tiles)
            .field("dim", &self.dim)
            .field("coords", &self.coords.is_some())
            .finish()
    }
}

impl H5Tiles {
    /// Opens `path` and finds its features: the dataset named `key`, or else the first of
    /// [`FEATURE_DATASETS`] present.
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] for a missing file, [`DataError::Hdf5`] for one that is not readable
    /// HDF5, [`DataError::NoFeatures`] when no features dataset is found,
    /// [`DataError::BadDataset`] for features that are not a 2-D floating-point matrix or
    /// coordinates that do not match them.
    pub fn open(path: impl AsRef<Path>, key: Option<&str>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let (file, file_len) = open_file(path)?;
        let h5 = |e: hdf5_reader::error::Error| hdf5_error(path, e);
        let (_, names) = file
            .root_group()
            .and_then(|g| g.member_names())
            .map_err(h5)?;
        let key = features_key(path, &names, key)?;
        let features = file.dataset(&key).map_err(h5)?;
        let bad = |dataset: &str, message: String| DataError::BadDataset {
            path: path.to_path_buf(),
            dataset: dataset.to_string(),
            message,
        };
        let shape = features.shape().to_vec();
        let [tiles, dim] = shape[..] else {
            return Err(bad(
                &key,
                format!("expected a 2-D [tiles, features] matrix, got shape {shape:?}"),
            ));
        };
        if dim == 0 {
            return Err(bad(
                &key,
                format!("a features matrix needs at least one column, got shape {shape:?}"),
            ));
        }
        let element = element_of(features.dtype()).map_err(|m| bad(&key, m))?;
        check_size(&features, &shape, file_len).map_err(|m| bad(&key, m))?;
        let coords = if names.iter().any(|n| n == COORDS_DATASET) {
            let coords = file.dataset(COORDS_DATASET).map_err(h5)?;
            let shape = coords.shape().to_vec();
            if shape.len() != 2 || shape[0] != tiles || shape[1] < 2 {
                return Err(bad(
                    COORDS_DATASET,
                    format!("expected [{tiles}, 2] to match the features, got {shape:?}"),
                ));
            }
            check_size(&coords, &shape, file_len).map_err(|m| bad(COORDS_DATASET, m))?;
            Some(coords)
        } else {
            None
        };
        Ok(Self {
            path: path.to_path_buf(),
            features,
            key,
            element,
            tiles: tiles as usize,
            dim: dim as usize,
            coords,
        })
    }

    /// The name of the features dataset found.
    pub fn features_key(&self) -> &str {
        &self.key
    }

    /// Number of tiles.
    pub fn tiles(&self) -> usize {
        self.tiles
    }

    /// Feature width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether the file has tile coordinates.
    pub fn has_coords(&self) -> bool {
        self.coords.is_some()
    }

    /// The features of `rows` (in that order, repeats allowed), row-major `[rows, dim]`, as
    /// `f32`.
    ///
    /// # Errors
    ///
    /// [`DataError::Hdf5`] when the file cannot be decoded (e.g. truncated);
    /// [`DataError::BadDataset`] for a row index past the end.
    pub fn read_rows(&self, rows: &[usize]) -> Result<Vec<f32>, DataError> {
        self.check_rows(&self.key, rows)?;
        match self.element {
            Element::F32 => self.gather::<f32>(&self.features, rows, self.dim),
            Element::F64 => Ok(self
                .gather::<f64>(&self.features, rows, self.dim)?
                .into_iter()
                .map(|v| v as f32)
                .collect()),
            Element::F16 { big_endian } => {
                // hdf5-reader decodes no half floats: read the raw bytes in the file's order.
                let raw = self.features.read_raw_bytes().map_err(|e| self.h5(e))?;
                if raw.len() != self.tiles * self.dim * 2 {
                    return Err(DataError::BadDataset {
                        path: self.path.clone(),
                        dataset: self.key.clone(),
                        message: format!(
                            "{} bytes of half floats read, expected {} × {} × 2",
                            raw.len(),
                            self.tiles,
                            self.dim
                        ),
                    });
                }
                // Decoded row by row from the raw bytes: no second copy of the whole matrix.
                let width = self.dim * 2;
                Ok(rows
                    .iter()
                    .flat_map(|&r| raw[r * width..(r + 1) * width].chunks_exact(2))
                    .map(|b| {
                        let bytes = [b[0], b[1]];
                        let h = if big_endian {
                            half::f16::from_be_bytes(bytes)
                        } else {
                            half::f16::from_le_bytes(bytes)
                        };
                        h.to_f32()
                    })
                    .collect())
            }
        }
    }

    /// The `(x, y)` coordinates of `rows`, or `None` when the file has none.
    ///
    /// # Errors
    ///
    /// As [`read_rows`](Self::read_rows); [`DataError::BadDataset`] for coordinates that are
    /// not numbers.
    pub fn read_coords(&self, rows: &[usize]) -> Result<Option<Vec<[f64; 2]>>, DataError> {
        let Some(coords) = &self.coords else {
            return Ok(None);
        };
        self.check_rows(COORDS_DATASET, rows)?;
        let width = coords.shape()[1] as usize;
        let values: Vec<f64> = match coords.dtype() {
            Datatype::FixedPoint {
                size: 4,
                signed: true,
                ..
            } => self.coords_as::<i32>(coords, rows, width)?,
            Datatype::FixedPoint {
                size: 8,
                signed: true,
                ..
            } => self.coords_as::<i64>(coords, rows, width)?,
            Datatype::FixedPoint {
                size: 4,
                signed: false,
                ..
            } => self.coords_as::<u32>(coords, rows, width)?,
            Datatype::FixedPoint {
                size: 8,
                signed: false,
                ..
            } => self.coords_as::<u64>(coords, rows, width)?,
            Datatype::FloatingPoint { size: 4, .. } => {
                self.coords_as::<f32>(coords, rows, width)?
            }
            Datatype::FloatingPoint { size: 8, .. } => {
                self.coords_as::<f64>(coords, rows, width)?
            }
            other => {
                return Err(DataError::BadDataset {
                    path: self.path.clone(),
                    dataset: COORDS_DATASET.into(),
                    message: format!("expected numeric coordinates, got {other:?}"),
                });
            }
        };
        Ok(Some(
            values.chunks_exact(width).map(|c| [c[0], c[1]]).collect(),
        ))
    }

    fn coords_as<T: Coordinate>(
        &self,
        coords: &hdf5_reader::Dataset,
        rows: &[usize],
        width: usize,
    ) -> Result<Vec<f64>, DataError> {
        Ok(self
            .gather::<T>(coords, rows, width)?
            .into_iter()
            .map(Coordinate::to_f64)
            .collect())
    }

    fn check_rows(&self, dataset: &str, rows: &[usize]) -> Result<(), DataError> {
        match rows.iter().find(|&&r| r >= self.tiles) {
            Some(r) => Err(DataError::BadDataset {
                path: self.path.clone(),
                dataset: dataset.to_string(),
                message: format!("row {r} asked for, but there are {} tiles", self.tiles),
            }),
            None => Ok(()),
        }
    }

    /// The reader returns what the header describes; a mismatch is a damaged file, reported
    /// rather than sliced past.
    fn check_read_len(
        &self,
        dataset: &hdf5_reader::Dataset,
        got: usize,
        expected: usize,
    ) -> Result<(), DataError> {
        if got == expected {
            return Ok(());
        }
        Err(DataError::BadDataset {
            path: self.path.clone(),
            dataset: dataset.name().trim_start_matches('/').to_string(),
            message: format!("{got} values read, expected {expected}"),
        })
    }

    fn h5(&self, e: hdf5_reader::error::Error) -> DataError {
        DataError::Hdf5 {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Rows of a 2-D dataset `[tiles, width]`, in the order asked. Runs of consecutive rows are
    /// read as one hyperslab; when many rows are wanted, the whole matrix is read once.
    fn gather<T: H5Type + Copy + Default>(
        &self,
        dataset: &hdf5_reader::Dataset,
        rows: &[usize],
        width: usize,
    ) -> Result<Vec<T>, DataError> {
        let mut out = vec![T::default(); rows.len() * width];
        if rows.is_empty() {
            return Ok(out);
        }
        if rows.len() * 4 >= self.tiles {
            let all = dataset.read_array::<T>().map_err(|e| self.h5(e))?;
            let all = all.as_slice().expect("a freshly read array is contiguous");
            self.check_read_len(dataset, all.len(), self.tiles * width)?;
            for (i, &r) in rows.iter().enumerate() {
                out[i * width..(i + 1) * width].copy_from_slice(&all[r * width..(r + 1) * width]);
            }
            return Ok(out);
        }
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| rows[i]);
        let mut start = 0;
        while start < order.len() {
            // A run of rows first..=last, each present (possibly repeated).
            let first = rows[order[start]];
            let mut end = start + 1;
            while end < order.len() && rows[order[end]] <= rows[order[end - 1]] + 1 {
                end += 1;
            }
            let last = rows[order[end - 1]];
            let selection = SliceInfo {
                selections: vec![
                    SliceInfoElem::Slice {
                        start: first as u64,
                        end: last as u64 + 1,
                        step: 1,
                    },
                    SliceInfoElem::Slice {
                        start: 0,
                        end: width as u64,
                        step: 1,
                    },
                ],
            };
            let block = dataset
                .read_slice::<T>(&selection)
                .map_err(|e| self.h5(e))?;
            let block = block
                .as_slice()
                .expect("a freshly read array is contiguous");
            self.check_read_len(dataset, block.len(), (last - first + 1) * width)?;
            for &i in &order[start..end] {
                let r = rows[i] - first;
                out[i * width..(i + 1) * width].copy_from_slice(&block[r * width..(r + 1) * width]);
            }
            start = end;
        }
        Ok(out)
    }
}

/// A [`DataError::Hdf5`] for `path` saying what the reader said.
pub(super) fn hdf5_error(path: &Path, e: hdf5_reader::error::Error) -> DataError {
    DataError::Hdf5 {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Opens `path` as HDF5, with the reader's read limit set from its length; returns the file
/// and its length in bytes.
pub(super) fn open_file(path: &Path) -> Result<(Hdf5File, u64), DataError> {
    if !path.is_file() {
        return Err(DataError::io(
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    // A smaller chunk cache than the reader's default (64 MiB): many files stay open at
    // once in the loader's cache, and a bag's rows span few chunks.
    let file_len = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    // The reader's own limit on any one read, beside the shape checks of `open`.
    let max_read = file_len.saturating_mul(MAX_EXPANSION).max(1 << 20);
    let options = OpenOptions::default()
        .with_chunk_cache_bytes(CHUNK_CACHE_BYTES)
        .with_max_read_bytes(usize::try_from(max_read).unwrap_or(usize::MAX));
    let file = Hdf5File::open_with_options(path, options).map_err(|e| hdf5_error(path, e))?;
    Ok((file, file_len))
}

/// The features dataset among the root's `names`: `key`, or else the first of
/// [`FEATURE_DATASETS`] present.
///
/// # Errors
///
/// [`DataError::NoFeatures`] naming what was looked for and what the file has.
fn features_key(path: &Path, names: &[String], key: Option<&str>) -> Result<String, DataError> {
    let wanted: Vec<&str> = match key {
        Some(key) => vec![key],
        None => FEATURE_DATASETS.to_vec(),
    };
    wanted
        .iter()
        .find(|k| names.iter().any(|n| n == *k))
        .map(|k| k.to_string())
        .ok_or_else(|| DataError::NoFeatures {
            path: path.to_path_buf(),
            tried: wanted.join(", "),
            found: if names.is_empty() {
                "no dataset".into()
            } else {
                names.join(", ")
            },
        })
}

/// How features of `dtype` are stored, or why they cannot be read as features.
fn element_of(dtype: &Datatype) -> Result<Element, String> {
    match dtype {
        Datatype::FloatingPoint {
            size: 2,
            byte_order,
        } => Ok(Element::F16 {
            big_endian: *byte_order == hdf5_reader::ByteOrder::BigEndian,
        }),
        Datatype::FloatingPoint { size: 4, .. } => Ok(Element::F32),
        Datatype::FloatingPoint { size: 8, .. } => Ok(Element::F64),
        other => Err(format!("expected floating-point features, got {other:?}")),
    }
}

/// Checks that a dataset of `shape` can be what the file holds: its decoded bytes within the
/// file's size (within [`MAX_EXPANSION`] times it when chunked, hence possibly compressed),
/// so that nothing is sized by a damaged header. The message says why not.
fn check_size(dataset: &hdf5_reader::Dataset, shape: &[u64], file_len: u64) -> Result<(), String> {
    let element = dataset
        .raw_element_size()
        .map_err(|e| format!("unreadable element type: {e}"))? as u64;
    // An empty dimension makes the product 0 and would let its neighbour claim any size, which
    // row indices and per-tile buffers are then sized by: bound each extent as if at least 1.
    let bytes = shape
        .iter()
        .try_fold(element, |acc, &d| acc.checked_mul(d.max(1)))
        .ok_or_else(|| format!("shape {shape:?} overflows 64-bit sizes: the file is damaged"))?;
    let (limit, why) = if dataset.chunks().is_some() {
        (
            file_len.saturating_mul(MAX_EXPANSION),
            format!("{MAX_EXPANSION}× the file's {file_len} bytes"),
        )
    } else {
        (file_len, format!("the file's {file_len} bytes"))
    };
    if bytes > limit {
        return Err(format!(
            "shape {shape:?} of {element}-byte values needs {bytes} bytes, more than {why}: \
             the file is damaged"
        ));
    }
    Ok(())
}

/// A coordinate element type, widened to `f64` (pixel coordinates are far below 2^53).
trait Coordinate: H5Type + Copy + Default {
    fn to_f64(self) -> f64;
}

macro_rules! coordinate {
    ($($t:ty),*) => {$(
        impl Coordinate for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
coordinate!(i32, i64, u32, u64, f32, f64);
