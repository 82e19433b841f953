//! Where each tile lies on the slide: its square in level-0 pixels, from the file's
//! coordinates and [`TileGeometry`], the user's overrides and the slide's own scale.

use crate::data::{CoordUnit, TileGeometry, TileSide};

/// What the placement needs to know of the slide.
#[derive(Debug, Clone, PartialEq)]
pub struct SlideScale {
    /// Level-0 width and height.
    pub dimensions: (u64, u64),
    /// Micrometres per level-0 pixel, from the slide or `--mpp` (which wins).
    pub mpp: Option<f64>,
    /// Each level's downsample, level 0 first.
    pub downsamples: Vec<f64>,
}

/// Overrides from the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlacementOverrides {
    /// Tile side in level-0 pixels (`--patch-size`), whatever the file declares.
    pub patch_size: Option<f64>,
    /// Micrometres per level-0 pixel (`--mpp`), whatever the slide declares.
    pub mpp: Option<f64>,
}

/// The tiles' squares in level-0 pixels and how they were placed, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// `[x, y]` of each tile's top-left corner, level-0 pixels.
    pub corners: Vec<[f64; 2]>,
    /// The side of every tile, level-0 pixels.
    pub side: f64,
    /// How the side and unit were found (for captions and error messages).
    pub how: String,
}

/// Places tiles: converts micrometres to pixels with the slide's (or `--mpp`'s) scale, takes
/// the side from `--patch-size` or the file, and checks every corner lies on the slide.
///
/// # Errors
///
/// A message (the caller names the slide and file) when the side is unknown, micrometres
/// need an MPP the slide lacks, or a tile lies outside the slide.
pub fn place(
    coords: &[[f64; 2]],
    geometry: &TileGeometry,
    scale: &SlideScale,
    overrides: PlacementOverrides,
) -> Result<Placement, String> {
    let mpp = overrides.mpp.or(scale.mpp);
    let need_mpp = || {
        mpp.ok_or_else(|| {
            format!(
                "the tile file gives micrometres ({}) but the slide declares no microns per \
                 pixel; pass --mpp",
                geometry.source
            )
        })
    };
    let per_unit = match geometry.unit {
        CoordUnit::Level0Pixels => 1.0,
        CoordUnit::Micrometres => 1.0 / need_mpp()?,
    };
    let (side, how) = match (overrides.patch_size, geometry.side) {
        (Some(p), _) => (p, format!("--patch-size {p}")),
        (None, Some(TileSide::Level0Pixels(p))) => (p, geometry.source.clone()),
        (None, Some(TileSide::Micrometres(um))) => {
            let p = um / need_mpp()?;
            (
                p,
                format!("{} at {} µm/pixel", geometry.source, mpp.unwrap_or(0.0)),
            )
        }
        (None, Some(TileSide::AtLevel { pixels, level })) => {
            let d = scale.downsamples.get(level).ok_or_else(|| {
                format!(
                    "{}, but the slide has levels 0 to {}; pass --patch-size",
                    geometry.source,
                    scale.downsamples.len().saturating_sub(1)
                )
            })?;
            (
                pixels * d,
                format!("{} × slide downsample {d}", geometry.source),
            )
        }
        (None, None) => {
            return Err(format!(
                "the tile file does not say how large its tiles are ({}); pass --patch-size \
                 (level-0 pixels), or write the attributes TRIDENT (patch_size_level0), CLAM \
                 (patch_size, patch_level, downsample) or STAMP (unit = \"um\", tile_size_um) do",
                geometry.source
            ));
        }
    };
    if !(side.is_finite() && side > 0.0) {
        return Err(format!("tile side {side} ({how}) is not a positive size"));
    }
    let corners: Vec<[f64; 2]> = coords
        .iter()
        .map(|c| [c[0] * per_unit, c[1] * per_unit])
        .collect();
    check_inside(&corners, coords, scale.dimensions)?;
    Ok(Placement { corners, side, how })
}

/// Every corner lies on the slide.
fn check_inside(
    corners: &[[f64; 2]],
    coords: &[[f64; 2]],
    (w, h): (u64, u64),
) -> Result<(), String> {
    let off = |c: &&[f64; 2]| !(c[0] >= 0.0 && c[1] >= 0.0 && c[0] < w as f64 && c[1] < h as f64);
    match corners.iter().position(|c| off(&c)) {
        None => Ok(()),
        Some(i) => {
            let n = corners.iter().filter(off).count();
            Err(format!(
                "tile {i} at ({}, {}) (level-0 ({:.0}, {:.0})) lies outside the {w} × {h} slide \
                 ({n} tile(s) do); are these features from another slide, or in another unit?",
                coords[i][0], coords[i][1], corners[i][0], corners[i][1]
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(unit: CoordUnit, side: Option<TileSide>) -> TileGeometry {
        TileGeometry {
            unit,
            side,
            source: "test".into(),
        }
    }

    fn scale() -> SlideScale {
        SlideScale {
            dimensions: (1000, 800),
            mpp: Some(0.25),
            downsamples: vec![1.0, 4.0],
        }
    }

    #[test]
    fn micrometres_become_pixels_with_the_slides_or_the_given_mpp() {
        let g = geometry(CoordUnit::Micrometres, Some(TileSide::Micrometres(64.0)));
        let p = place(&[[25.0, 50.0]], &g, &scale(), PlacementOverrides::default()).unwrap();
        // 0.25 µm a pixel: 25 µm = 100 px, 64 µm = 256 px.
        assert_eq!(p.corners, vec![[100.0, 200.0]]);
        assert_eq!(p.side, 256.0);
        let over = PlacementOverrides {
            mpp: Some(0.5),
            ..Default::default()
        };
        let p = place(&[[25.0, 50.0]], &g, &scale(), over).unwrap();
        assert_eq!((p.corners[0], p.side), ([50.0, 100.0], 128.0));
        let no_mpp = SlideScale {
            mpp: None,
            ..scale()
        };
        let err = place(&[[0.0, 0.0]], &g, &no_mpp, PlacementOverrides::default()).unwrap_err();
        assert!(err.contains("--mpp"), "{err}");
    }

    #[test]
    fn a_level_side_uses_the_slides_downsample_and_an_unknown_side_is_an_error() {
        let g = geometry(
            CoordUnit::Level0Pixels,
            Some(TileSide::AtLevel {
                pixels: 64.0,
                level: 1,
            }),
        );
        let p = place(&[[0.0, 0.0]], &g, &scale(), PlacementOverrides::default()).unwrap();
        assert_eq!(p.side, 256.0);
        let none = geometry(CoordUnit::Level0Pixels, None);
        let err = place(
            &[[0.0, 0.0]],
            &none,
            &scale(),
            PlacementOverrides::default(),
        )
        .unwrap_err();
        assert!(err.contains("--patch-size"), "{err}");
        let over = PlacementOverrides {
            patch_size: Some(100.0),
            ..Default::default()
        };
        assert_eq!(
            place(&[[0.0, 0.0]], &none, &scale(), over).unwrap().side,
            100.0
        );
    }

    #[test]
    fn a_tile_off_the_slide_is_named() {
        let g = geometry(CoordUnit::Level0Pixels, Some(TileSide::Level0Pixels(10.0)));
        let err = place(
            &[[0.0, 0.0], [1000.0, 10.0], [-1.0, 0.0]],
            &g,
            &scale(),
            PlacementOverrides::default(),
        )
        .unwrap_err();
        assert!(err.starts_with("tile 1 at (1000, 10)"), "{err}");
        assert!(err.contains("2 tile(s)"), "{err}");
    }
}
