//! Attention heatmaps: each tile a square at its coordinates, coloured by its score, with a
//! colour bar.

use std::path::Path;

use plotters::prelude::*;

use crate::run::Error;

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

/// The narrowest score range the colours span, as a fraction of the mean score. Scores closer
/// together than this are drawn close together in colour, not stretched to the full colour
/// map: a slide attended evenly has scores that differ only by float rounding (about 1e-7 of
/// the score), and stretching those differences to full contrast would draw noise that reads
/// as regions. 20 % of the mean (about ±10 % around it) is far above rounding and below the
/// factor-of-two differences a trained model's attention shows where it singles tiles out.
pub const MIN_RELATIVE_SPAN: f64 = 0.2;

/// The scores at the two ends of the colour map: the smallest and the largest finite score,
/// widened evenly about their midpoint to at least [`MIN_RELATIVE_SPAN`] of the mean score
/// (to 1 when the mean is 0 or there is no finite score). An evenly attended slide thus puts
/// every tile at the middle of the colour map.
pub fn colour_range(scores: &[f64]) -> (f64, f64) {
    let finite: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    if finite.is_empty() {
        return (0.0, 1.0);
    }
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });
    let mean = finite.iter().sum::<f64>() / finite.len() as f64;
    let floor = MIN_RELATIVE_SPAN * mean.abs();
    let floor = if floor > 0.0 { floor } else { 1.0 };
    if hi - lo >= floor {
        return (lo, hi);
    }
    let mid = lo + (hi - lo) / 2.0;
    (mid - floor / 2.0, mid + floor / 2.0)
}

/// The colour of each score on the heatmap's scale ([`colour_range`]).
pub fn tile_colours(scores: &[f64]) -> Vec<RGBColor> {
    let (lo, hi) = colour_range(scores);
    scores
        .iter()
        .map(|&s| viridis((s - lo) / (hi - lo)))
        .collect()
}

/// Draws `scores` (one per tile, same order as `coords`, level-0 pixels of the top-left
/// corners) into a PNG of [`HEATMAP_SIZE`], titled `title`. Colours span [`colour_range`],
/// shown on the colour bar.
///
/// # Errors
///
/// [`RunFileError::Io`](crate::run::RunFileError::Io) naming the PNG that could not be drawn or
/// written.
pub fn draw_heatmap(
    path: &Path,
    title: &str,
    coords: &[[f64; 2]],
    scores: &[f64],
) -> Result<(), Error> {
    crate::eval::plot::register_font();
    let root = BitMapBackend::new(path, HEATMAP_SIZE).into_drawing_area();
    render(&root, title, coords, scores).map_err(|e| crate::eval::plot::plot_error(path, &e))
}

/// Draws the heatmap onto `root` (of [`HEATMAP_SIZE`]); the error is the backend's, in words.
fn render<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    coords: &[[f64; 2]],
    scores: &[f64],
) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
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
    let (lo, hi) = colour_range(scores);
    let colours = tile_colours(scores);
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
        .draw_series(coords.iter().zip(colours).map(|(c, colour)| {
            Rectangle::new([(c[0], c[1]), (c[0] + side, c[1] + side)], colour.filled())
        }))
        .map_err(|e| fail(&e))?;
    let mut bar = ChartBuilder::on(&bar_area)
        .margin_top(40)
        .margin_bottom(40)
        .margin_right(10)
        .y_label_area_size(70)
        .caption("score", ("sans-serif", 16))
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(|e| fail(&e))?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_label_formatter(&|v| format!("{v:.2e}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| fail(&e))?;
    let steps = 100;
    let span = hi - lo;
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

    /// A 4 × 4 grid of 256-px tiles.
    fn grid() -> Vec<[f64; 2]> {
        (0..16)
            .map(|i| [256.0 * (i % 4) as f64, 256.0 * (i / 4) as f64])
            .collect()
    }

    /// How many pixels of the map (left of the colour bar) have `colour`.
    fn map_pixels(scores: &[f64], colour: RGBColor) -> usize {
        crate::eval::plot::register_font();
        let (w, h) = HEATMAP_SIZE;
        let mut buffer = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buffer, HEATMAP_SIZE).into_drawing_area();
            render(&root, "test", &grid(), scores).unwrap();
        }
        let map_width = (w - 150) as usize;
        buffer
            .chunks(3)
            .enumerate()
            .filter(|(i, p)| {
                i % (w as usize) < map_width
                    && p[0] == colour.0
                    && p[1] == colour.1
                    && p[2] == colour.2
            })
            .count()
    }

    #[test]
    fn an_even_map_is_drawn_in_the_middle_colour_not_stretched() {
        // 1/16 each, with differences of float rounding.
        let even: Vec<f64> = (0..16)
            .map(|i| 0.0625 * (1.0 + 1e-7 * (i % 3) as f64))
            .collect();
        let colours = tile_colours(&even);
        assert!(colours.iter().all(|&c| c == viridis(0.5)), "{colours:?}");
        assert_eq!(viridis(0.5), RGBColor(33, 145, 140));
        let (lo, hi) = colour_range(&even);
        assert!((lo - 0.0625 * 0.9).abs() < 1e-6 && (hi - 0.0625 * 1.1).abs() < 1e-6);
        // Drawn: the tiles cover most of the map in the middle colour, and neither end of
        // the colour map appears on it.
        let middle = map_pixels(&even, viridis(0.5));
        assert!(middle > 200_000, "{middle} pixels in the middle colour");
        assert_eq!(map_pixels(&even, viridis(0.0)), 0);
        assert_eq!(map_pixels(&even, viridis(1.0)), 0);
        // Exactly equal scores, and all zero, draw the same way.
        assert!(tile_colours(&[0.25; 4]).iter().all(|&c| c == viridis(0.5)));
        assert!(tile_colours(&[0.0; 4]).iter().all(|&c| c == viridis(0.5)));
    }

    #[test]
    fn real_differences_span_the_colour_map() {
        // One tile has three times the even share: the scale runs from the smallest to the
        // largest score.
        let mut scores = vec![1.0 / 18.0; 16];
        scores[5] = 3.0 / 18.0;
        assert_eq!(colour_range(&scores), (1.0 / 18.0, 3.0 / 18.0));
        let colours = tile_colours(&scores);
        assert_eq!(colours[5], viridis(1.0));
        assert_eq!(colours[0], viridis(0.0));
        assert!(map_pixels(&scores, viridis(1.0)) > 10_000);
        // Scores 10 % apart (within the 20 % floor) are drawn 10 % apart about the middle.
        let (lo, hi) = colour_range(&[1.0, 1.1]);
        assert!(
            (lo - 0.945).abs() < 1e-12 && (hi - 1.155).abs() < 1e-12,
            "{lo} {hi}"
        );
        // A non-finite score does not wreck the scale of the others.
        assert_eq!(colour_range(&[0.1, f64::NAN, 0.3]), (0.1, 0.3));
    }
}
