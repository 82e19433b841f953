//! PNG plots of the loss and metric curves (plotters, with an embedded font so no system
//! font is needed).

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::metrics::{EpochRow, Metrics};
use crate::run::{Error, RunFileError, Task, TrainSettings, files};

/// A picture that could not be drawn or written, as an error naming the PNG (its final
/// name, not the temporary one it is drawn into) with the operating system's reason: "No
/// space left on device", "Permission denied". The plotting library's own text nests that
/// reason in the debug output of its types (`Drawing backend error:
/// ImageError(IoError(Os { code: 28, … }))`); the code is read back from it.
pub(crate) fn plot_error(path: &Path, e: &dyn std::fmt::Display) -> Error {
    let text = e.to_string();
    let source = os_error_in(&text).unwrap_or_else(|| {
        std::io::Error::other(format!("the picture could not be drawn ({text})"))
    });
    RunFileError::io(&final_png(path))(source).into()
}

/// The operating-system error inside `text`: its debug form (`Os { code: N, … }`) or its
/// message (`… (os error N)`, as an encoder's wrapped error carries it).
fn os_error_in(text: &str) -> Option<std::io::Error> {
    let code = |marker: &str| -> Option<i32> {
        let after = &text[text.find(marker)? + marker.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let code = code("Os { code: ").or_else(|| code("(os error "))?;
    Some(std::io::Error::from_raw_os_error(code))
}

/// `x.png` for the temporary `x.tmp.png` a picture is drawn into; other paths as they are.
fn final_png(path: &Path) -> std::path::PathBuf {
    match path.to_str().and_then(|p| p.strip_suffix(".tmp.png")) {
        Some(stem) => format!("{stem}.png").into(),
        None => path.to_path_buf(),
    }
}

/// Draws through `draw` into `x.tmp.png` beside `path` (the encoder picks the format by
/// extension) and renames it onto `path`, so that a killed run never leaves a truncated
/// picture; a failure removes the temporary picture and names `path`.
fn draw_then_rename(
    path: &Path,
    draw: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<(), Error> {
    crate::util::atomic::with_temp(path, &path.with_extension("tmp.png"), draw, |e| {
        RunFileError::io(path)(e).into()
    })
}

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
/// [`RunFileError::Io`] naming the PNG that could not be drawn or written.
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
    draw_then_rename(path, |tmp| draw_chart(tmp, title, y_label, series))
}

/// Draws a line chart of `series` into `path` (see [`line_chart`]).
fn draw_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), Error> {
    register_font();
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
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

/// Writes a Kaplan–Meier plot of patients split into `groups` risk groups (2: at the median
/// risk; 3: at the tertiles; see [`risk_groups`](super::metrics::risk_groups)): each group's
/// curve with its 95 % band, the log-rank p-value in the title, and the number at risk under
/// the time axis.
///
/// # Errors
///
/// [`RunFileError::Io`] naming the PNG that could not be drawn or written.
pub fn km_plot(
    path: &Path,
    time: &[f64],
    event: &[bool],
    risk: &[f64],
    groups: usize,
    what: &str,
) -> Result<(), Error> {
    draw_then_rename(path, |tmp| draw_km(tmp, time, event, risk, groups, what))
}

/// A picture's drawing area.
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A chart of two real axes on a picture.
type XyChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// What a Kaplan–Meier plot draws: the patients' times and events, each one's risk group,
/// the groups' names and the end of the time axis.
struct KmPlot<'a> {
    /// Each patient's time.
    time: &'a [f64],
    /// Whether each patient's time is an event (not a censoring).
    event: &'a [bool],
    /// Each patient's risk group.
    group: Vec<usize>,
    /// The groups' names, lowest risk first.
    names: &'static [&'static str],
    /// The end of the time axis.
    t_max: f64,
}

/// The colours of the risk groups, lowest risk first.
const KM_PALETTE: [RGBColor; 3] = [BLUE, RED, GREEN];

/// Draws a Kaplan–Meier plot into `path` (see [`km_plot`]).
fn draw_km(
    path: &Path,
    time: &[f64],
    event: &[bool],
    risk: &[f64],
    groups: usize,
    what: &str,
) -> Result<(), Error> {
    use super::metrics::{logrank, risk_groups};
    register_font();
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let plot = KmPlot {
        time,
        event,
        group: risk_groups(risk, groups),
        names: if groups == 3 {
            &["low risk", "intermediate risk", "high risk"]
        } else {
            &["low risk", "high risk"]
        },
        t_max: time.iter().copied().fold(1e-9, f64::max) * 1.02,
    };
    let p = logrank(time, event, &plot.group, groups).map(|(_, p)| p);
    let root = BitMapBackend::new(path, (800, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (upper, lower) = root.split_vertically(460);
    let title = match p {
        Some(p) if p < 1e-4 => {
            format!("Kaplan–Meier by predicted risk, {what} (log-rank p = {p:.1e})")
        }
        Some(p) => format!("Kaplan–Meier by predicted risk, {what} (log-rank p = {p:.4})"),
        None => format!("Kaplan–Meier by predicted risk, {what}"),
    };
    km_curves(&upper, &plot, title, path)?;
    at_risk_table(&lower, &plot, path)?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// The upper part of a Kaplan–Meier plot: each group's curve with its band, and the legend.
fn km_curves(area: &Area<'_>, plot: &KmPlot<'_>, title: String, path: &Path) -> Result<(), Error> {
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(65)
        .build_cartesian_2d(0.0..plot.t_max, 0.0..1.05)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("time")
        .y_desc("survival probability")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| fail(&e))?;
    for g in 0..plot.names.len() {
        km_group_curve(&mut chart, plot, g, path)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| fail(&e))?;
    Ok(())
}

/// The Kaplan–Meier curve of risk group `g` (when it has patients), as steps over its 95 %
/// band, with its legend entry.
fn km_group_curve(
    chart: &mut XyChart<'_, '_>,
    plot: &KmPlot<'_>,
    g: usize,
    path: &Path,
) -> Result<(), Error> {
    use super::metrics::kaplan_meier;
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let (time, event, t_max) = (plot.time, plot.event, plot.t_max);
    let idx: Vec<usize> = (0..time.len()).filter(|&i| plot.group[i] == g).collect();
    if idx.is_empty() {
        return Ok(());
    }
    let t: Vec<f64> = idx.iter().map(|&i| time[i]).collect();
    let e: Vec<bool> = idx.iter().map(|&i| event[i]).collect();
    let km = kaplan_meier(&t, &e);
    let color = KM_PALETTE[g % KM_PALETTE.len()];
    // Steps: each value holds from its time to the next.
    let steps = |values: &[f64]| {
        let mut pts = Vec::with_capacity(values.len() * 2 + 1);
        for (i, &v) in values.iter().enumerate() {
            let end = km.times.get(i + 1).copied().unwrap_or(t_max);
            pts.push((km.times[i], v));
            pts.push((end, v));
        }
        pts
    };
    let mut band = steps(&km.upper);
    band.extend(steps(&km.lower).into_iter().rev());
    chart
        .draw_series(std::iter::once(Polygon::new(
            band,
            color.mix(0.15).filled(),
        )))
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(LineSeries::new(steps(&km.survival), color.stroke_width(2)))
        .map_err(|e| fail(&e))?
        .label(format!("{} ({} patients)", plot.names[g], idx.len()))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

/// The lower part of a Kaplan–Meier plot: the number at risk at six times under the axis,
/// one row per group.
fn at_risk_table(area: &Area<'_>, plot: &KmPlot<'_>, path: &Path) -> Result<(), Error> {
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let (names, t_max) = (plot.names, plot.t_max);
    let mut table = ChartBuilder::on(area)
        .margin_left(15)
        .margin_right(15)
        .caption("number at risk", ("sans-serif", 14))
        .y_label_area_size(65)
        .build_cartesian_2d(0.0..t_max, 0.0..(names.len() as f64))
        .map_err(|e| fail(&e))?;
    let ticks: Vec<f64> = (0..6).map(|k| t_max / 1.02 * k as f64 / 5.0).collect();
    for (g, name) in names.iter().enumerate() {
        let row = names.len() as f64 - g as f64 - 0.5;
        let color = KM_PALETTE[g % KM_PALETTE.len()];
        table
            .draw_series(std::iter::once(Text::new(
                name.to_string(),
                (0.0, row + 0.45),
                ("sans-serif", 12).into_font().color(&color),
            )))
            .map_err(|e| fail(&e))?;
        for &tick in &ticks {
            let n = (0..plot.time.len())
                .filter(|&i| plot.group[i] == g && plot.time[i] >= tick)
                .count();
            table
                .draw_series(std::iter::once(Text::new(
                    n.to_string(),
                    (tick, row),
                    ("sans-serif", 14).into_font().color(&color),
                )))
                .map_err(|e| fail(&e))?;
        }
    }
    Ok(())
}

/// Writes `roc.png` (one-vs-rest ROC curves, each class's AUC, the macro AUC and its
/// interval in the title) and `confusion.png` (counts, true class by row) into `dir`.
///
/// # Errors
///
/// [`RunFileError::Io`] naming the PNG that could not be drawn or written.
pub fn classification_plots(
    dir: &Path,
    truth: &[usize],
    probs: &[Vec<f64>],
    classes: &[String],
    auc: Option<f64>,
    auc_ci: Option<[f64; 2]>,
    what: &str,
) -> Result<(), Error> {
    register_font();
    let title = match (auc, auc_ci) {
        (Some(a), Some([lo, hi])) => format!("ROC, {what}: AUC {a:.3} [{lo:.3}, {hi:.3}]"),
        (Some(a), None) => format!("ROC, {what}: AUC {a:.3}"),
        _ => format!("ROC, {what}"),
    };
    draw_then_rename(&dir.join(files::ROC_PNG), |tmp| {
        draw_roc(tmp, truth, probs, classes, title)
    })?;
    draw_then_rename(&dir.join(files::CONFUSION_PNG), |tmp| {
        draw_confusion(tmp, truth, probs, classes, what)
    })
}

/// Draws the one-vs-rest ROC curves of `probs` against `truth` into `path`: one curve (the
/// second class's) for two classes, one per class for more.
fn draw_roc(
    path: &Path,
    truth: &[usize],
    probs: &[Vec<f64>],
    classes: &[String],
    title: String,
) -> Result<(), Error> {
    use super::metrics::{binary_auc, roc_points};
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let root = BitMapBackend::new(path, (640, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("false positive rate")
        .y_desc("true positive rate")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            BLACK.mix(0.3),
        ))
        .map_err(|e| fail(&e))?;
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN];
    // Two classes: one curve (the second class's); more: one per class.
    let shown: Vec<usize> = if classes.len() == 2 {
        vec![1]
    } else {
        (0..classes.len()).collect()
    };
    for (k, &c) in shown.iter().enumerate() {
        let scores: Vec<f64> = probs.iter().map(|p| p[c]).collect();
        let positive: Vec<bool> = truth.iter().map(|&t| t == c).collect();
        let Some(a) = binary_auc(&scores, &positive) else {
            continue;
        };
        let color = palette[k % palette.len()];
        chart
            .draw_series(LineSeries::new(
                roc_points(&scores, &positive),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label(format!("{} vs rest: {a:.3}", classes[c]))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// Draws the confusion matrix of the most probable classes of `probs` against `truth` into
/// `path`: counts in cells shaded by count, true class 0 in the top row.
fn draw_confusion(
    path: &Path,
    truth: &[usize],
    probs: &[Vec<f64>],
    classes: &[String],
    what: &str,
) -> Result<(), Error> {
    use super::metrics::confusion_matrix;
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let pred: Vec<usize> = probs.iter().map(|p| super::predict::argmax(p)).collect();
    let cm = confusion_matrix(truth, &pred, classes.len());
    let most = cm.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let n = classes.len() as i32;
    let root = BitMapBackend::new(path, (560, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Confusion, {what}"), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
        .map_err(|e| fail(&e))?;
    // Rows from the top: true class 0 first.
    let name = |v: &SegmentValue<i32>, flip: bool| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            let i = if flip { n - 1 - *i } else { *i };
            classes.get(i as usize).cloned().unwrap_or_default()
        }
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted")
        .y_desc("true")
        .x_labels(classes.len())
        .y_labels(classes.len())
        .x_label_formatter(&|v| name(v, false))
        .y_label_formatter(&|v| name(v, true))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| fail(&e))?;
    for (t, row) in cm.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            let (x, y) = (p as i32, n - 1 - t as i32);
            let shade = count as f64 / most;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                    ],
                    BLUE.mix(0.1 + 0.8 * shade).filled(),
                )))
                .map_err(|e| fail(&e))?;
            let style = ("sans-serif", 24)
                .into_font()
                .color(if shade > 0.5 { &WHITE } else { &BLACK })
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ));
            chart
                .draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                    style,
                )))
                .map_err(|e| fail(&e))?;
        }
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// Draws `roc.png` and `confusion.png` of `patients` (those with a class) into `dir`.
pub fn classification_png(
    dir: &Path,
    patients: &[super::predict::PatientPrediction],
    targets: &[crate::data::Target],
    classes: &[String],
    metrics: &Metrics,
    what: &str,
) -> Result<(), Error> {
    let known: Vec<_> = patients
        .iter()
        .filter(|p| targets[p.patient].class.is_some())
        .collect();
    let truth: Vec<usize> = known
        .iter()
        .map(|p| targets[p.patient].class.expect("filtered"))
        .collect();
    let probs: Vec<Vec<f64>> = known.iter().map(|p| p.probs.clone()).collect();
    classification_plots(
        dir,
        &truth,
        &probs,
        classes,
        metrics.auc,
        metrics.auc_ci,
        what,
    )
}

/// Draws the Kaplan–Meier plot of `patients` (those with a target) split by predicted risk.
pub fn km_png(
    path: &Path,
    patients: &[super::predict::PatientPrediction],
    targets: &[crate::data::Target],
    settings: &TrainSettings,
    what: &str,
) -> Result<(), Error> {
    let known: Vec<_> = patients
        .iter()
        .filter(|p| targets[p.patient].time.is_some())
        .collect();
    let time: Vec<f64> = known
        .iter()
        .map(|p| super::predict::time_f64(targets[p.patient].time.unwrap_or(0.0)))
        .collect();
    let event: Vec<bool> = known
        .iter()
        .map(|p| !targets[p.patient].censored.unwrap_or(true))
        .collect();
    let risk: Vec<f64> = known.iter().map(|p| p.risk.unwrap_or(0.0)).collect();
    km_plot(path, &time, &event, &risk, settings.risk_groups, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot(path: &Path) -> Result<(), Error> {
        let time = [1.0, 2.0, 3.0, 4.0];
        let event = [true, false, true, true];
        let risk = [0.1, 0.4, 0.2, 0.3];
        km_plot(path, &time, &event, &risk, 2, "test")
    }

    #[test]
    fn a_picture_that_cannot_be_written_names_the_png_and_the_reason_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no such folder").join("km.png");
        let err = plot(&missing).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        // A full disk: the temporary picture is written to /dev/full.
        #[cfg(unix)]
        if Path::new("/dev/full").exists() {
            let full = dir.path().join("full");
            std::fs::create_dir(&full).unwrap();
            std::os::unix::fs::symlink("/dev/full", full.join("km.tmp.png")).unwrap();
            let err = plot(&full.join("km.png")).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "{}: No space left on device (os error 28)",
                    full.join("km.png").display()
                )
            );
        }
        let written = dir.path().join("km.png");
        plot(&written).unwrap();
        assert!(written.is_file());
    }

    #[test]
    fn the_os_error_is_read_back_from_the_plotting_librarys_text() {
        let text = "Drawing backend error: ImageError(IoError(Os { code: 13, kind: \
                    PermissionDenied, message: \"Permission denied\" }))";
        assert_eq!(
            os_error_in(text).unwrap().to_string(),
            "Permission denied (os error 13)"
        );
        let wrapped = "backend error: Drawing backend error: ImageError(IoError(Custom { kind: \
                       Other, error: \"No space left on device (os error 28)\" }))";
        assert_eq!(
            os_error_in(wrapped).unwrap().to_string(),
            "No space left on device (os error 28)"
        );
        assert!(os_error_in("Font loading error: no font").is_none());
        assert_eq!(
            final_png(Path::new("/r/loss.tmp.png")),
            Path::new("/r/loss.png")
        );
    }
}
