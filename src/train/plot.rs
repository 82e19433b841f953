//! PNG plots of the loss and metric curves (plotters, with an embedded font so no system
//! font is needed).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use super::bundle::files;
use super::checkpoint::EpochRow;
use super::settings::{Task, TrainSettings};
use crate::data::DataError;
use crate::error::Error;

/// Registers the embedded DejaVu Sans as the "sans-serif" family, once.
pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a valid TrueType file shipped by the `dejavu` crate.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Writes `loss.png` (training and validation loss) and `metric.png` (the validation
/// metrics) into `out`.
///
/// # Errors
///
/// [`DataError::Io`] naming the PNG that could not be drawn or written.
pub fn curves(out: &Path, history: &[EpochRow], settings: &TrainSettings) -> Result<(), Error> {
    let loss = vec![
        (
            "train loss",
            history
                .iter()
                .map(|r| (r.epoch as f64, r.train_loss))
                .collect::<Vec<_>>(),
        ),
        (
            "validation loss",
            history
                .iter()
                .map(|r| (r.epoch as f64, r.val.loss))
                .collect(),
        ),
    ];
    line_chart(&out.join(files::LOSS_PNG), "Loss", "loss", &loss)?;
    let names: &[&str] = match settings.task {
        Task::Classification => &["accuracy", "balanced_accuracy", "auc"],
        Task::Survival => &["c_index"],
    };
    let metrics: Vec<(&str, Vec<(f64, f64)>)> = names
        .iter()
        .map(|&name| {
            let points = history
                .iter()
                .filter_map(|r| {
                    let v = r.val.scalar(name)?;
                    Some((r.epoch as f64, v))
                })
                .collect();
            (name, points)
        })
        .collect();
    line_chart(
        &out.join(files::METRIC_PNG),
        "Validation metrics",
        "value",
        &metrics,
    )
}

/// Draws into `name.tmp.png` (the encoder picks the format by extension) and renames it into
/// place, so that a killed run never leaves a truncated picture.
fn line_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), Error> {
    let tmp = path.with_extension("tmp.png");
    draw_chart(&tmp, title, y_label, series)?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e).into())
}

fn draw_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), Error> {
    register_font();
    let fail = |e: &dyn std::fmt::Display| -> Error {
        DataError::io(path, std::io::Error::other(e.to_string())).into()
    };
    let points = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|(_, y)| y.is_finite());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.1).max(1e-3);
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(1.0..x_max.max(2.0), (y_min - pad)..(y_max + pad))
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_label)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| fail(&e))?;
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN];
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = palette[i % palette.len()];
        let pts: Vec<(f64, f64)> = pts.iter().copied().filter(|(_, y)| y.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
