//! Drawing tile scores over a slide thumbnail: normalizing the scores, a perceptual colour
//! map, the score layer at thumbnail scale (optionally blurred), the blend, and the footer
//! with a colour bar and a caption.

use plotters::prelude::*;

use super::placement::Placement;
use crate::slide::{RgbImage, Thumbnail};

/// How tile scores become positions on the colour map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Normalize {
    /// By rank within the slide (lowest 0, highest 1; ties share their mean rank), as CLAM's
    /// percentile heatmaps: every slide uses the whole colour map.
    #[default]
    Rank,
    /// Linearly between the slide's 1st and 99th percentile, clipped: robust to a few extreme
    /// tiles.
    Percentile,
    /// Linearly between the smallest and largest score (widened about their middle to at least
    /// [`MIN_RELATIVE_SPAN`](super::super::MIN_RELATIVE_SPAN) of the mean, so an evenly
    /// attended slide stays one colour).
    Raw,
}

impl std::str::FromStr for Normalize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rank" => Ok(Self::Rank),
            "percentile" => Ok(Self::Percentile),
            "raw" => Ok(Self::Raw),
            other => Err(format!("`{other}` is not rank, percentile or raw")),
        }
    }
}

/// How the overlay looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// Weight of the colour over the slide, in [0, 1].
    pub alpha: f64,
    /// Score normalization.
    pub normalize: Normalize,
    /// Gaussian blur of the score layer, its sigma in thumbnail pixels (0: none).
    pub blur: f64,
}

impl Default for Style {
    fn default() -> Self {
        Self {
            alpha: 0.5,
            normalize: Normalize::Rank,
            blur: 0.0,
        }
    }
}

/// Viridis (perceptually uniform, readable in grey and by colour-blind readers) at nine
/// evenly spaced anchors.
const VIRIDIS: [[f64; 3]; 9] = [
    [68.0, 1.0, 84.0],
    [71.0, 44.0, 122.0],
    [59.0, 82.0, 139.0],
    [44.0, 114.0, 142.0],
    [33.0, 145.0, 140.0],
    [39.0, 173.0, 129.0],
    [94.0, 201.0, 98.0],
    [170.0, 220.0, 50.0],
    [253.0, 231.0, 37.0],
];

/// The colour map at `t` ∈ [0, 1] (clamped).
pub fn colour_at(t: f64) -> [u8; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    [0, 1, 2].map(|c| (a[c] + (b[c] - a[c]) * f).round() as u8)
}

/// The scores placed on [0, 1] by `how`, and the labels of the colour bar's two ends.
pub fn normalize(scores: &[f64], how: Normalize) -> (Vec<f64>, [String; 2]) {
    let n = scores.len();
    match how {
        Normalize::Rank => {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
            let mut out = vec![0.5; n];
            let mut i = 0;
            while i < n {
                let mut j = i;
                while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
                    j += 1;
                }
                let mean_rank = (i + j) as f64 / 2.0;
                for &k in &order[i..=j] {
                    out[k] = if n > 1 {
                        mean_rank / (n - 1) as f64
                    } else {
                        0.5
                    };
                }
                i = j + 1;
            }
            (out, ["lowest".into(), "highest attention".into()])
        }
        Normalize::Percentile => {
            let (lo, hi) = (percentile(scores, 0.01), percentile(scores, 0.99));
            linear(scores, lo, hi, "1st percentile", "99th percentile")
        }
        Normalize::Raw => {
            let (lo, hi) = super::super::colour_range(scores);
            linear(scores, lo, hi, "", "")
        }
    }
}

/// Scores mapped linearly from `[lo, hi]` to [0, 1], clipped; labels name the ends.
fn linear(
    scores: &[f64],
    lo: f64,
    hi: f64,
    lo_name: &str,
    hi_name: &str,
) -> (Vec<f64>, [String; 2]) {
    let span = if hi > lo { hi - lo } else { 1.0 };
    let t = scores
        .iter()
        .map(|s| {
            if hi > lo {
                ((s - lo) / span).clamp(0.0, 1.0)
            } else {
                0.5
            }
        })
        .collect();
    let label = |v: f64, name: &str| {
        if name.is_empty() {
            format!("{v:.3e}")
        } else {
            format!("{v:.3e} ({name})")
        }
    };
    (t, [label(lo, lo_name), label(hi, hi_name)])
}

/// The `q` quantile of `scores` (linear between order statistics).
fn percentile(scores: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let x = q * (v.len() - 1) as f64;
    let (i, f) = (x.floor() as usize, x - x.floor());
    v[i] + (v[(i + 1).min(v.len() - 1)] - v[i]) * f
}

/// The columns (or rows) of thumbnail pixels whose centres fall in `[start, start + side)`
/// level-0 pixels at `scale` thumbnail pixels each; at least the pixel holding the tile's
/// centre, so that a tile smaller than a pixel still shows.
fn span(start: f64, side: f64, scale: f64, len: usize) -> std::ops::Range<usize> {
    let first = (start * scale - 0.5).ceil().max(0.0) as usize;
    let end = (((start + side) * scale - 0.5).ceil().max(0.0) as usize).min(len);
    if first < end {
        first..end
    } else {
        let centre = (((start + side / 2.0) * scale) as usize).min(len.saturating_sub(1));
        centre..centre + 1
    }
}

/// The score layer at thumbnail scale: per pixel the mean normalized score of the tiles over
/// it (`NaN` where no tile is), blurred by `sigma` pixels within the covered pixels. `f32`:
/// the layer is as large as the thumbnail, and colours need no more precision.
pub fn score_layer(thumb: &Thumbnail, placement: &Placement, t: &[f64], sigma: f64) -> Vec<f32> {
    let (w, h) = (thumb.image.width(), thumb.image.height());
    let mut sum = vec![0.0f32; w * h];
    let mut count = vec![0.0f32; w * h];
    for (corner, &v) in placement.corners.iter().zip(t) {
        for y in span(corner[1], placement.side, thumb.scale.1, h) {
            for x in span(corner[0], placement.side, thumb.scale.0, w) {
                sum[y * w + x] += v as f32;
                count[y * w + x] += 1.0;
            }
        }
    }
    let covered: Vec<bool> = count.iter().map(|&c| c > 0.0).collect();
    if sigma > 0.0 {
        blur(&mut sum, w, h, sigma);
        blur(&mut count, w, h, sigma);
    }
    for i in 0..w * h {
        sum[i] = if covered[i] && count[i] > 0.0 {
            sum[i] / count[i]
        } else {
            f32::NAN
        };
    }
    sum
}

/// Separable Gaussian blur of a `w × h` layer, in place (edges clamp to zero weight).
fn blur(layer: &mut [f32], w: usize, h: usize, sigma: f64) {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|d| (-((d * d) as f64) / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let pass = |src: &[f32], stride: usize, len: usize, lines: usize, step: usize| {
        let mut out = vec![0.0; src.len()];
        for line in 0..lines {
            for i in 0..len {
                let mut acc = 0.0;
                for (k, weight) in kernel.iter().enumerate() {
                    let j = i as isize + k as isize - radius;
                    if (0..len as isize).contains(&j) {
                        acc += weight * src[line * step + j as usize * stride];
                    }
                }
                out[line * step + i * stride] = acc;
            }
        }
        out
    };
    let across = pass(layer, 1, w, h, w);
    let down = pass(&across, w, h, w, 1);
    layer.copy_from_slice(&down);
}

/// The thumbnail with the score layer blended over it: `(1 − alpha) · slide + alpha · colour`
/// where tiles are, the slide unchanged elsewhere (`NaN`).
pub fn blend(thumb: &RgbImage, layer: &[f32], alpha: f64) -> RgbImage {
    let mut out = thumb.clone();
    let alpha = alpha.clamp(0.0, 1.0);
    for (px, &t) in out.pixels_mut().chunks_exact_mut(3).zip(layer) {
        if !t.is_nan() {
            let c = colour_at(f64::from(t));
            for k in 0..3 {
                px[k] = (f64::from(px[k]) * (1.0 - alpha) + f64::from(c[k]) * alpha).round() as u8;
            }
        }
    }
    out
}

/// Height of the footer under an overlay of width 1,000 pixels or less; wider overlays scale
/// it (and its text) with their width, so the caption stays readable when the picture is
/// shrunk to fit a page.
pub const FOOTER: usize = 64;
/// The narrowest canvas: room for the colour bar and a caption.
const MIN_WIDTH: usize = 480;

/// The footer's scale for a canvas `width` pixels wide: 1 up to 1,000 pixels, then in
/// proportion.
fn footer_scale(width: usize) -> f64 {
    (width as f64 / 1000.0).max(1.0)
}

/// The overlay on a white canvas at its top-left corner, with a footer below it: the colour
/// bar from `labels[0]` to `labels[1]` and the `caption`.
pub fn with_footer(overlay: &RgbImage, labels: &[String; 2], caption: &str) -> RgbImage {
    let width = overlay.width().max(MIN_WIDTH);
    let k = footer_scale(width);
    let px = |v: f64| (v * k).round() as i32;
    let height = overlay.height() + px(FOOTER as f64) as usize;
    let mut canvas = RgbImage::filled(width, height, [255, 255, 255]);
    canvas.paste(overlay, 0, 0);
    let top = overlay.height() as i32;
    let bar = (width as i32).min(px(600.0)) - 2 * px(10.0);
    for x in 0..bar {
        let c = colour_at(f64::from(x) / f64::from(bar - 1));
        for y in px(6.0)..px(18.0) {
            canvas.set((px(10.0) + x) as usize, (top + y) as usize, c);
        }
    }
    crate::eval::plot::register_font();
    let (w, h) = (width as u32, height as u32);
    {
        let root = BitMapBackend::with_buffer(canvas.pixels_mut(), (w, h)).into_drawing_area();
        let small = ("sans-serif", 12.0 * k).into_font().color(&BLACK);
        let right = small.pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Right,
            plotters::style::text_anchor::VPos::Top,
        ));
        // Drawing text cannot fail on an in-memory bitmap but for a missing font, which
        // would leave the labels out and the picture whole.
        let _ = root.draw(&Text::new(
            labels[0].clone(),
            (px(10.0), top + px(20.0)),
            small.clone(),
        ));
        let _ = root.draw(&Text::new(
            labels[1].clone(),
            (px(10.0) + bar, top + px(20.0)),
            right,
        ));
        let caption_font = ("sans-serif", 14.0 * k).into_font().color(&BLACK);
        let _ = root.draw(&Text::new(
            caption.to_string(),
            (px(10.0), top + px(40.0)),
            caption_font,
        ));
        let _ = root.present();
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_share_ties_and_span_zero_to_one() {
        let (t, _) = normalize(&[0.3, 0.1, 0.3, 0.9], Normalize::Rank);
        // Sorted 0.1, 0.3, 0.3, 0.9: ranks 0, 1.5, 1.5, 3 of 3.
        assert_eq!(t, vec![0.5, 0.0, 0.5, 1.0]);
    }

    #[test]
    fn percentile_clips_the_extremes_and_raw_is_linear() {
        let mut scores: Vec<f64> = (0..101).map(f64::from).collect();
        scores[100] = 1e6;
        let (t, labels) = normalize(&scores, Normalize::Percentile);
        // The 1st percentile is 1, the 99th 99: 50 → 49 / 98.
        assert!((t[50] - 49.0 / 98.0).abs() < 1e-12);
        assert_eq!((t[0], t[100]), (0.0, 1.0));
        assert!(labels[1].contains("99th"));
        let (t, _) = normalize(&[1.0, 2.0, 3.0], Normalize::Raw);
        assert_eq!(t, vec![0.0, 0.5, 1.0]);
    }

    #[test]
    fn the_colour_map_runs_from_dark_violet_to_yellow() {
        assert_eq!(colour_at(0.0), [68, 1, 84]);
        assert_eq!(colour_at(1.0), [253, 231, 37]);
        assert_eq!(colour_at(0.5), [33, 145, 140]);
        assert_eq!(colour_at(f64::NAN), [68, 1, 84]);
    }

    fn thumb(w: usize, h: usize, scale: f64) -> Thumbnail {
        Thumbnail {
            image: RgbImage::filled(w, h, [200, 200, 200]),
            scale: (scale, scale),
            level: 0,
        }
    }

    #[test]
    fn tiles_cover_the_pixels_whose_centres_they_hold_and_only_those() {
        // Level-0 tiles of 40 px at a 1/10 scale: 4 × 4 thumbnail pixels each.
        let placement = Placement {
            corners: vec![[0.0, 0.0], [40.0, 0.0]],
            side: 40.0,
            how: String::new(),
        };
        let layer = score_layer(&thumb(10, 6, 0.1), &placement, &[0.0, 1.0], 0.0);
        assert_eq!(layer[0], 0.0);
        assert_eq!(layer[3 * 10 + 3], 0.0);
        assert_eq!(layer[3 * 10 + 4], 1.0);
        assert_eq!(layer[7], 1.0);
        assert!(layer[8].is_nan());
        assert!(layer[4 * 10].is_nan());
        let image = blend(&thumb(10, 6, 0.1).image, &layer, 1.0);
        assert_eq!(image.get(5, 1), [253, 231, 37]);
        assert_eq!(image.get(9, 5), [200, 200, 200]);
        // A blur mixes neighbours but leaves uncovered pixels alone.
        let blurred = score_layer(&thumb(10, 6, 0.1), &placement, &[0.0, 1.0], 1.0);
        let edge = blurred[3];
        assert!(edge > 0.0 && edge < 0.5, "{edge}");
        assert!(blurred[8].is_nan());
    }

    #[test]
    fn a_tile_smaller_than_a_pixel_still_colours_one() {
        let placement = Placement {
            corners: vec![[12.0, 12.0]],
            side: 4.0,
            how: String::new(),
        };
        let layer = score_layer(&thumb(4, 4, 0.1), &placement, &[1.0], 0.0);
        assert_eq!(layer.iter().filter(|v| !v.is_nan()).count(), 1);
        assert_eq!(layer[4 + 1], 1.0);
    }

    #[test]
    fn the_footer_keeps_the_overlay_at_the_top_left() {
        let overlay = RgbImage::filled(100, 50, [1, 2, 3]);
        let labels = ["lowest".to_string(), "highest".to_string()];
        let canvas = with_footer(&overlay, &labels, "slide: class 1 (p = 0.9)");
        assert_eq!((canvas.width(), canvas.height()), (480, 50 + FOOTER));
        assert_eq!(canvas.get(99, 49), [1, 2, 3]);
        assert_eq!(canvas.get(300, 10), [255, 255, 255]);
        assert_eq!(canvas.get(10, 50 + 10), colour_at(0.0));
        // Text was drawn: some dark pixels in the caption's row band.
        let dark = (0..480)
            .flat_map(|x| (50 + 40..50 + 56).map(move |y| (x, y)))
            .filter(|&(x, y)| canvas.get(x, y)[0] < 100)
            .count();
        assert!(dark > 20, "{dark}");
    }
}
