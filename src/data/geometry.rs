//! What a tile-feature file says about its tiles' size and the unit of its coordinates, by the
//! convention of the tool that wrote it:
//!
//! - TRIDENT: `coords` in level-0 pixels; attributes on `coords`: `patch_size_level0`, or
//!   `patch_size` at `target_magnification` of a slide scanned at `level0_magnification`.
//! - CLAM: `coords` in level-0 pixels; attributes on `coords`: `patch_size` at `patch_level`,
//!   whose `downsample` (`[x, y]`) gives the level-0 size (without it, the slide's own
//!   downsample of that level is used).
//! - STAMP: `coords` in micrometres (file attribute `unit = "um"`), tile side `tile_size_um`.
//!
//! [`read_tile_geometry`] reads the attributes; [`TileGeometry::from_attributes`] interprets
//! them (and is tested on hand-written sets).

use std::collections::BTreeMap;
use std::path::Path;

use super::DataError;
use super::h5::{COORDS_DATASET, hdf5_error, open_file};
use super::tiles::is_pt;

/// An attribute's value, as far as tile geometry needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A number (any integer or float type), or the first of a 1-element array.
    Number(f64),
    /// Several numbers (e.g. CLAM's `downsample = [x, y]`).
    Numbers(Vec<f64>),
    /// A string.
    Text(String),
}

impl AttrValue {
    /// The value as a number: a number, or the first of several.
    fn number(&self) -> Option<f64> {
        match self {
            Self::Number(v) => Some(*v),
            Self::Numbers(v) => v.first().copied(),
            Self::Text(t) => t.trim().parse().ok(),
        }
    }
}

/// Attributes by name.
pub type Attributes = BTreeMap<String, AttrValue>;

/// The unit of a file's tile coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordUnit {
    /// Level-0 pixels of the slide (TRIDENT, CLAM, the original).
    Level0Pixels,
    /// Micrometres on the slide (STAMP).
    Micrometres,
}

/// A tile's side as a file declares it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TileSide {
    /// In level-0 pixels.
    Level0Pixels(f64),
    /// In pixels of a pyramid level whose downsample the file does not give (the slide's).
    AtLevel {
        /// Side in that level's pixels.
        pixels: f64,
        /// The level.
        level: usize,
    },
    /// In micrometres.
    Micrometres(f64),
}

/// The geometry of a file's tiles: the unit of its coordinates, the side of its tiles (when
/// declared) and where each came from, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct TileGeometry {
    /// The coordinates' unit.
    pub unit: CoordUnit,
    /// The tiles' side, when the file declares it.
    pub side: Option<TileSide>,
    /// Which attributes gave the side, e.g. `patch_size_level0 = 512 (TRIDENT)`; or, without a
    /// side, which tile-size attributes the file has.
    pub source: String,
}

/// A positive finite number, or `None`.
fn positive(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v > 0.0)
}

impl TileGeometry {
    /// Interprets the attributes of the `coords` dataset and of the file.
    ///
    /// # Errors
    ///
    /// A message naming a `unit` attribute that is neither micrometres nor pixels.
    pub fn from_attributes(coords: &Attributes, root: &Attributes) -> Result<Self, String> {
        let get = |name: &str| coords.get(name).or_else(|| root.get(name));
        let number = |name: &str| positive(get(name).and_then(AttrValue::number));
        let unit = match get("unit") {
            Some(AttrValue::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
                "um" | "µm" | "μm" | "micron" | "microns" | "micrometer" | "micrometers"
                | "micrometre" | "micrometres" => CoordUnit::Micrometres,
                "px" | "pixel" | "pixels" => CoordUnit::Level0Pixels,
                other => return Err(format!("attribute `unit` = {other:?} is not `um` or `px`")),
            },
            _ if get("tile_size_um").is_some() => CoordUnit::Micrometres,
            _ => CoordUnit::Level0Pixels,
        };
        if unit == CoordUnit::Micrometres {
            let side = number("tile_size_um");
            let source = match side {
                Some(s) => format!("tile_size_um = {s} (STAMP; coordinates in micrometres)"),
                None => "coordinates in micrometres, no tile_size_um".to_string(),
            };
            return Ok(Self {
                unit,
                side: side.map(TileSide::Micrometres),
                source,
            });
        }
        let (side, source) = pixel_side(number, &|name| get(name).is_some());
        Ok(Self { unit, side, source })
    }
}

/// The side of tiles with level-0 pixel coordinates, by TRIDENT's then CLAM's attributes.
fn pixel_side(
    number: impl Fn(&str) -> Option<f64>,
    has: &dyn Fn(&str) -> bool,
) -> (Option<TileSide>, String) {
    if let Some(s) = number("patch_size_level0") {
        return (
            Some(TileSide::Level0Pixels(s)),
            format!("patch_size_level0 = {s} (TRIDENT)"),
        );
    }
    let Some(patch) = number("patch_size") else {
        return (None, "no tile-size attribute".to_string());
    };
    if let (Some(l0), Some(target)) = (
        number("level0_magnification"),
        number("target_magnification"),
    ) {
        let side = patch * l0 / target;
        return (
            Some(TileSide::Level0Pixels(side)),
            format!(
                "patch_size = {patch} at {target}× of a {l0}× slide = {side} level-0 pixels (TRIDENT)"
            ),
        );
    }
    if let Some(d) = number("downsample") {
        let side = patch * d;
        return (
            Some(TileSide::Level0Pixels(side)),
            format!("patch_size = {patch} × downsample {d} = {side} level-0 pixels (CLAM)"),
        );
    }
    if has("patch_level") {
        let level = number("patch_level").unwrap_or(0.0);
        if level == 0.0 {
            return (
                Some(TileSide::Level0Pixels(patch)),
                format!("patch_size = {patch} at patch_level 0 (CLAM)"),
            );
        }
        return (
            Some(TileSide::AtLevel {
                pixels: patch,
                level: level as usize,
            }),
            format!("patch_size = {patch} at patch_level {level} (CLAM)"),
        );
    }
    (
        None,
        format!("patch_size = {patch} without its level or magnification, which could be any"),
    )
}

/// Reads the tile geometry of an HDF5 tile file (`None` for a `.pt` file, which has no
/// attributes or coordinates).
///
/// # Errors
///
/// [`DataError::Io`] or [`DataError::Hdf5`] for a file that cannot be read;
/// [`DataError::BadDataset`] for a `unit` attribute that is not a known unit.
pub fn read_tile_geometry(path: &Path) -> Result<Option<TileGeometry>, DataError> {
    if is_pt(path) {
        return Ok(None);
    }
    let (file, _) = open_file(path)?;
    let h5 = |e| hdf5_error(path, e);
    let root = file.root_group().map_err(h5)?;
    let root_attrs = collect(root.attributes().map_err(h5)?);
    let (_, names) = root.member_names().map_err(h5)?;
    let coords_attrs = if names.iter().any(|n| n == COORDS_DATASET) {
        collect(file.dataset(COORDS_DATASET).map_err(h5)?.attributes())
    } else {
        Attributes::new()
    };
    TileGeometry::from_attributes(&coords_attrs, &root_attrs)
        .map(Some)
        .map_err(|message| DataError::BadDataset {
            path: path.to_path_buf(),
            dataset: COORDS_DATASET.into(),
            message,
        })
}

/// The attributes whose values are numbers or strings (others are left out: they say
/// nothing about geometry).
fn collect(attributes: Vec<hdf5_reader::Attribute>) -> Attributes {
    let mut out = Attributes::new();
    for a in attributes {
        let value = if let Ok(numbers) = a.read_1d::<f64>() {
            match numbers[..] {
                [one] => AttrValue::Number(one),
                _ => AttrValue::Numbers(numbers),
            }
        } else if let Ok(v) = a.read_as_f64() {
            AttrValue::Number(v)
        } else if let Ok(text) = a.read_string() {
            AttrValue::Text(text)
        } else {
            continue;
        };
        out.insert(a.name.clone(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, AttrValue)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn n(v: f64) -> AttrValue {
        AttrValue::Number(v)
    }

    #[test]
    fn each_tools_attributes_give_the_level0_side() {
        let none = Attributes::new();
        let trident = attrs(&[("patch_size", n(256.0)), ("patch_size_level0", n(512.0))]);
        let g = TileGeometry::from_attributes(&trident, &none).unwrap();
        assert_eq!(g.side, Some(TileSide::Level0Pixels(512.0)));
        assert_eq!(g.unit, CoordUnit::Level0Pixels);
        // 224 px at 20× of a 40× slide: 448 level-0 pixels.
        let mag = attrs(&[
            ("patch_size", n(224.0)),
            ("level0_magnification", n(40.0)),
            ("target_magnification", n(20.0)),
        ]);
        let g = TileGeometry::from_attributes(&mag, &none).unwrap();
        assert_eq!(g.side, Some(TileSide::Level0Pixels(448.0)));
        let clam = attrs(&[
            ("patch_size", n(256.0)),
            ("patch_level", n(1.0)),
            ("downsample", AttrValue::Numbers(vec![4.0, 4.0])),
        ]);
        let g = TileGeometry::from_attributes(&clam, &none).unwrap();
        assert_eq!(g.side, Some(TileSide::Level0Pixels(1024.0)));
        let clam_level = attrs(&[("patch_size", n(256.0)), ("patch_level", n(2.0))]);
        let g = TileGeometry::from_attributes(&clam_level, &none).unwrap();
        assert_eq!(
            g.side,
            Some(TileSide::AtLevel {
                pixels: 256.0,
                level: 2
            })
        );
        let clam0 = attrs(&[("patch_size", n(256.0)), ("patch_level", n(0.0))]);
        let g = TileGeometry::from_attributes(&clam0, &none).unwrap();
        assert_eq!(g.side, Some(TileSide::Level0Pixels(256.0)));
    }

    #[test]
    fn stamp_files_are_in_micrometres_and_unknown_sizes_are_said() {
        let stamp = attrs(&[
            ("unit", AttrValue::Text("um".into())),
            ("tile_size_um", n(256.0)),
        ]);
        let g = TileGeometry::from_attributes(&Attributes::new(), &stamp).unwrap();
        assert_eq!(g.unit, CoordUnit::Micrometres);
        assert_eq!(g.side, Some(TileSide::Micrometres(256.0)));
        // A bare patch_size could be at any level: no side, and the reason.
        let bare = attrs(&[("patch_size", n(256.0))]);
        let g = TileGeometry::from_attributes(&bare, &Attributes::new()).unwrap();
        assert_eq!(g.side, None);
        assert!(g.source.contains("patch_size = 256"), "{}", g.source);
        // Magnifications of -1 (unknown) are no magnifications.
        let unknown = attrs(&[
            ("patch_size", n(256.0)),
            ("level0_magnification", n(-1.0)),
            ("target_magnification", n(-1.0)),
        ]);
        assert_eq!(
            TileGeometry::from_attributes(&unknown, &Attributes::new())
                .unwrap()
                .side,
            None
        );
        let odd = attrs(&[("unit", AttrValue::Text("furlong".into()))]);
        let err = TileGeometry::from_attributes(&odd, &Attributes::new()).unwrap_err();
        assert!(err.contains("furlong"), "{err}");
    }
}
