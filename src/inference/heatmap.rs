//! Attention heatmaps: each tile a square at its coordinates, coloured by its score, with a
//! colour bar.

use std::path::Path;

use plotters::prelude::*;

use crate::data::DataError;
use crate::error::Error;

/// Width and height of a heatmap PNG, in pixels.
pub const HEATMAP_SIZE: (u32, u32) = (1000, 800);

/// A perceptually ordered colour map (viridis, by its five anchor colours) at `t` ∈ [0, 1].
fn viridis(t: f64) -> RGBColor {
    const ANCHORS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * (ANCHORS.len() - 1) as f64;
    let i = (t.floor() as usize).min(ANCHORS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The side of a tile: the smallest positive step between distinct x (or y) coordinates,
/// or 1 when every tile shares a column and a row.
fn tile_side(coords: &[[f64; 2]]) -> f64 {
    let mut best = f64::INFINITY;
    for axis in 0..2 {
        let mut v: Vec<f64> = coords.iter().map(|c| c[axis]).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        for w in v.windows(2) {
            best = best.min(w[1] - w[0]);
        }
    }
    if best.is_finite() { best } else { 1.0 }
}

/// Draws `scores` (one per tile, same order as `coords`, level-0 pixels of the top-left
/// corners) into a PNG of [`HEATMAP_SIZE`], titled `title`.
///
/// # Errors
///
/// [`DataError::Io`] naming the PNG that could not be drawn or written.
pub fn draw_heatmap(
    path: &Path,
    title: &str,
    coords: &[[f64; 2]],
    scores: &[f64],
) -> Result<(), Error> {
    crate::train::plot::register_font();
    let fail = |e: &dyn std::fmt::Display| -> Error {
        DataError::io(path, std::io::Error::other(e.to_string())).into()
    };
    let side = tile_side(coords);
    let (mut x0, mut y0, mut x1, mut y1) = (
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    );
    for c in coords {
        x0 = x0.min(c[0]);
        y0 = y0.min(c[1]);
        x1 = x1.max(c[0] + side);
        y1 = y1.max(c[1] + side);
    }
    let (lo, hi) = scores
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let root = BitMapBackend::new(path, HEATMAP_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (map_area, bar_area) = root.split_horizontally(HEATMAP_SIZE.0 - 150);
    // Image coordinates: y grows downwards, as on the slide.
    let mut chart = ChartBuilder::on(&map_area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y1..y0)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x (level-0 px)")
        .y_desc("y (level-0 px)")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(coords.iter().zip(scores).map(|(c, &s)| {
            Rectangle::new(
                [(c[0], c[1]), (c[0] + side, c[1] + side)],
                viridis((s - lo) / span).filled(),
            )
        }))
        .map_err(|e| fail(&e))?;
    let mut bar = ChartBuilder::on(&bar_area)
        .margin_top(40)
        .margin_bottom(40)
        .margin_right(10)
        .y_label_area_size(70)
        .caption("score", ("sans-serif", 16))
        .build_cartesian_2d(0.0..1.0, lo..lo + span)
        .map_err(|e| fail(&e))?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_label_formatter(&|v| format!("{v:.2e}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| fail(&e))?;
    let steps = 100;
    bar.draw_series((0..steps).map(|i| {
        let a = lo + span * i as f64 / steps as f64;
        let b = lo + span * (i + 1) as f64 / steps as f64;
        Rectangle::new(
            [(0.0, a), (1.0, b)],
            viridis(i as f64 / (steps - 1) as f64).filled(),
        )
    }))
    .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_side_is_the_grid_step() {
        assert_eq!(
            tile_side(&[[0.0, 0.0], [256.0, 0.0], [512.0, 256.0]]),
            256.0
        );
        assert_eq!(tile_side(&[[5.0, 5.0]]), 1.0);
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
    }
}
