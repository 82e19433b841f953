//! `report.html`: what `train` and `med-crossvit report` write for a cross-validation and a
//! single run, checked as text (sections in order, embedded PNGs, nothing fetched, no
//! script), through `report .` and `report --heatmaps`, and in a real browser (headless
//! Chromium: the page loads without errors, shows every image, and is no wider than a narrow
//! window).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support;

use crate::report_layout::heatmaps_folder;
use crate::support::{bin, text};

const GENES: usize = 4;

/// A cohort of `slides` slides and a tiny model configuration in `dir`.
fn cohort(dir: &Path, slides: usize, survival: bool) -> (PathBuf, PathBuf, PathBuf) {
    let data = support::synth(&dir.join("cohort"), slides, 8, GENES, 7, survival);
    let model = dir.join("tiny.json");
    std::fs::write(
        &model,
        serde_json::to_string(&support::tiny_model(2, GENES)).unwrap(),
    )
    .unwrap();
    (data.csv, data.features_dir, model)
}

/// `train` with the tiny model for one epoch, as a user would; its standard output.
fn train(dir: &Path, survival: bool, out: &Path, extra: &[&str]) -> String {
    let (csv, features, model) = cohort(dir, 24, survival);
    let mut args = vec![
        "train",
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--config",
        model.to_str().unwrap(),
        "--epochs",
        "1",
        "--bag-size",
        "4",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--bootstrap",
        "50",
        "--seed",
        "3",
    ];
    if survival {
        args.extend(["--task", "survival", "--bins", "2"]);
    }
    args.extend(extra);
    let o = bin(&args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    stdout
}

/// A survival cross-validation of 2 folds in `dir/cv`, with fold 0's attention exported into
/// `fold_0/attention`.
fn cross_validation(dir: &Path) -> PathBuf {
    let out = dir.join("cv");
    let stdout = train(dir, true, &out, &["--folds", "2"]);
    let report = out.join("report.html");
    assert!(
        stdout.contains(&format!("report: {}", report.display())),
        "{stdout}"
    );
    assert!(report.is_file());
    let (csv, features) = (dir.join("cohort/cohort.csv"), dir.join("cohort/features"));
    let o = bin(&[
        "predict",
        "--model",
        out.join("fold_0").to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--out",
        dir.join("pred.csv").to_str().unwrap(),
        "--attention",
        out.join("fold_0/attention").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    out
}

/// Runs `med-crossvit report DIR`; the page it wrote.
fn report(dir: &Path) -> String {
    let o = bin(&["report", dir.to_str().unwrap()]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let path = dir.join("report.html");
    assert!(stdout.contains(&path.display().to_string()), "{stdout}");
    std::fs::read_to_string(path).unwrap()
}

/// Standard base64 (with padding) decoded; `None` for anything else.
fn unbase64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

/// A decoded PNG: width, height and 8-bit RGB pixels.
struct Picture {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

fn decode_png(bytes: &[u8]) -> Picture {
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG pixels");
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    Picture {
        width: info.width,
        height: info.height,
        rgb,
    }
}

impl Picture {
    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        self.rgb[(y * self.width + x) as usize]
    }
}

/// The value of attribute `name` in the tag `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(&tag[start..end])
}

/// Every `<img …>` tag of the page.
fn images(html: &str) -> Vec<&str> {
    html.match_indices("<img")
        .map(|(i, _)| &html[i..i + html[i..].find('>').unwrap() + 1])
        .collect()
}

/// Checks the page's images: each a PNG data URI whose bytes decode, with the signature and
/// the IHDR size of its `width` and `height` attributes. Returns their sources.
fn check_images(html: &str) -> Vec<String> {
    let mut sources = Vec::new();
    for tag in images(html) {
        let src = attribute(tag, "src").unwrap_or_else(|| panic!("no src: {}", &tag[..80]));
        let data = src
            .strip_prefix("data:image/png;base64,")
            .unwrap_or_else(|| panic!("not a PNG data URI: {}", &src[..src.len().min(60)]));
        let bytes = unbase64(data).expect("valid base64");
        assert_eq!(
            bytes[..8],
            [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a],
            "PNG signature"
        );
        assert_eq!(&bytes[12..16], b"IHDR");
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        let (w, h) = (word(16), word(20));
        assert_eq!(attribute(tag, "width"), Some(w.to_string().as_str()));
        assert_eq!(attribute(tag, "height"), Some(h.to_string().as_str()));
        let picture = decode_png(&bytes);
        assert_eq!((picture.width, picture.height), (w, h));
        assert!(!attribute(tag, "alt").unwrap_or("").is_empty(), "alt text");
        sources.push(src.to_string());
    }
    sources
}

/// The sections of the report of a cross-validation, in the page's order.
const CV_SECTIONS: [&str; 7] = [
    "results",
    "data",
    "metrics",
    "plots",
    "heatmaps",
    "attention",
    "settings",
];

/// The sections of the report of a single run (its metrics are the headline), in order.
const RUN_SECTIONS: [&str; 6] = [
    "results",
    "data",
    "plots",
    "heatmaps",
    "attention",
    "settings",
];

/// What every report must be: one file that fetches nothing and runs nothing, printable,
/// with `sections` in this order (the headline results first, the settings last).
fn check_self_contained(html: &str, sections: &[&str]) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..100]);
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(!html.to_lowercase().contains("<script"), "a script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "a URL"
    );
    assert!(
        !html.contains("<link") && !html.contains("@import"),
        "a linked resource"
    );
    assert!(html.contains("@media print"), "a print stylesheet");
    assert!(
        html.contains("Content-Security-Policy") && html.contains("default-src 'none'"),
        "nothing may be fetched"
    );
    let at: Vec<usize> = sections
        .iter()
        .map(|id| {
            html.find(&format!("<section id=\"{id}\">"))
                .unwrap_or_else(|| panic!("no section {id}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{sections:?} at {at:?}");
    assert_eq!(html.matches("<section id=").count(), sections.len());
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn a_cross_validation_report_has_every_fold_the_pooled_results_and_the_attended_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let out = cross_validation(dir.path());
    // A metric that a later version adds is shown with its interval; one of the folds'
    // metrics.json is edited to hold one.
    let metrics = out.join("fold_1/metrics.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    m["future_score"] = serde_json::json!(0.123);
    m["future_score_ci"] = serde_json::json!([0.1, 0.2]);
    m["td_auc"] = serde_json::json!([0.61, null, 0.7]);
    std::fs::write(&metrics, m.to_string()).unwrap();
    let html = report(&out);
    check_self_contained(&html, &CV_SECTIONS);
    let mut reader = csv::Reader::from_path(out.join("cv_predictions.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let slides: usize = rows.iter().map(|r| r[2].parse::<usize>().unwrap()).sum();
    assert_eq!(slides, 24);
    let counts = format!(
        "cv_predictions.csv</code>: {} patient(s), {slides} slide(s)",
        rows.len()
    );
    assert!(html.contains(&counts), "missing {counts}");
    for text in [
        "cross-validation, 2 folds",
        "<h3>Training</h3>",
        "<h3>Model</h3>",
        "<h3>Splits</h3>",
        "Pooled out-of-fold predictions",
        "mean ± std of the folds",
        "Validation, per fold",
        "<th scope=\"col\">fold 0</th>",
        "<th scope=\"col\">fold 1</th>",
        "<code>c_index</code>",
        "<code>logrank_p</code>",
        "0.123 <span class=\"ci\">[0.100, 0.200]</span>",
        "[0.610, <span class=\"none\">—</span>, 0.700]",
        "Fold 0: Kaplan–Meier curves of the risk groups (km.png)",
        "Fold 1: loss per epoch (loss.png)",
        "Pooled out-of-fold predictions: Kaplan–Meier",
    ] {
        assert!(html.contains(text), "missing {text:?}");
    }
    // The pooled c-index with its interval, as cv.json has it.
    let cv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cv.json")).unwrap()).unwrap();
    let pooled = &cv["pooled"];
    let cell = format!(
        "{:.3} <span class=\"ci\">[{:.3}, {:.3}]</span>",
        pooled["c_index"].as_f64().unwrap(),
        pooled["c_index_ci"][0].as_f64().unwrap(),
        pooled["c_index_ci"][1].as_f64().unwrap()
    );
    assert!(html.contains(&cell), "missing {cell}");
    // km.png of the pooled predictions, then loss, metric and km of each fold.
    assert_eq!(check_images(&html).len(), 7);

    // Fold 0's attention: every slide exported, its best tile first with its coordinates.
    let attention = out.join("fold_0/attention");
    let mut slides: Vec<PathBuf> = std::fs::read_dir(&attention)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tiles.csv"))
        .collect();
    slides.sort();
    assert_eq!(slides.len(), 24);
    for path in &slides {
        let name = path.file_name().unwrap().to_string_lossy();
        let slide = name.strip_suffix(".tiles.csv").unwrap();
        let start = html
            .find(&format!("<h4>{slide}</h4>"))
            .unwrap_or_else(|| panic!("slide {slide} missing"));
        let table = &html[start..start + html[start..].find("</table>").unwrap()];
        let mut reader = csv::Reader::from_path(path).unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        // The first of the largest scores (ties keep the file's order).
        let score = |r: &csv::StringRecord| r[3].parse::<f64>().unwrap();
        let best = rows.iter().fold(
            &rows[0],
            |best, r| if score(r) > score(best) { r } else { best },
        );
        let first_row = format!(
            "<tr><th scope=\"row\">1</th><td>{}</td><td>{}</td><td>{}</td>",
            &best[0], &best[1], &best[2]
        );
        assert!(
            table.contains(&first_row),
            "{slide}: {first_row} in {table}"
        );
        let listed = table.matches("<tr><th scope=\"row\">").count();
        assert_eq!(listed, rows.len().min(10), "{slide}");
    }
    assert!(html.contains("<code>attention/</code> folder: Cross-validation folder, Fold 1"));
}

#[test]
fn a_single_run_report_has_its_validation_and_test_metrics_and_notes_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let stdout = train(dir.path(), false, &out, &["--test-fraction", "0.25"]);
    assert!(stdout.contains("report: "), "{stdout}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    check_self_contained(&html, &RUN_SECTIONS);
    for text in [
        "single run",
        "classification",
        "<th scope=\"col\">validation</th>",
        "<th scope=\"col\">test</th>",
        "<code>auc</code>",
        "<code>balanced_accuracy</code>",
        "Run: ROC curves (roc.png)",
        "Run: confusion matrix (confusion.png)",
        "Run: loss per epoch (loss.png)",
        "No attention exported: not present.",
    ] {
        assert!(html.contains(text), "missing {text:?}");
    }
    assert!(!html.contains("fold_") && !html.contains("Fold 0"));
    // Patients per split, epochs run and the best epoch (one epoch: the first).
    let split = std::fs::read_to_string(out.join("splits.csv")).unwrap();
    let count = |side: usize| {
        split
            .lines()
            .skip(1)
            .filter(|l| l.split(',').nth(side).is_some_and(|c| !c.is_empty()))
            .count()
    };
    let row = format!(
        "<tr><th scope=\"row\">run</th><td>{}</td><td>{}</td><td>{}</td><td>1</td><td>1</td></tr>",
        count(1),
        count(2),
        count(3)
    );
    assert!(html.contains(&row), "missing {row}");
    let auc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let ci = auc["auc_ci"]
        .as_array()
        .unwrap_or_else(|| panic!("the run has a bootstrap interval: {auc}"));
    assert_eq!(ci.len(), 2, "{auc}");
    let cell = format!(
        "{:.3} <span class=\"ci\">[{:.3}, {:.3}]</span>",
        auc["auc"].as_f64().unwrap(),
        ci[0].as_f64().unwrap(),
        ci[1].as_f64().unwrap()
    );
    assert!(html.contains(&cell), "missing {cell}");
    // loss, metric, roc and confusion.
    assert_eq!(check_images(&html).len(), 4);

    // A missing plot is said to be missing; the report is written again in place.
    std::fs::remove_file(out.join("roc.png")).unwrap();
    let html = report(&out);
    assert!(html.contains("<code>roc.png</code>: not present."), "roc");
    assert_eq!(check_images(&html).len(), 3);
    assert!(!out.join("report.html.tmp").exists());
}

#[test]
fn a_folder_that_is_not_a_run_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("cohort");
    std::fs::create_dir_all(&folder).unwrap();
    let o = bin(&["report", folder.to_str().unwrap()]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} is not a med-crossvit run or model folder",
            folder.display()
        )) && stderr.contains("config.json"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!folder.join("report.html").exists());
    let o = bin(&["report", dir.path().join("nowhere").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("no such folder"), "{}", text(&o).1);
}

#[test]
fn report_dot_inside_the_run_folder_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("luad_run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("config.json"),
        r#"{"training": {"task": "survival"}}"#,
    )
    .unwrap();
    // The child process runs in the run folder; the tests' own working folder is unchanged.
    let o = Command::new(env!("CARGO_BIN_EXE_med-crossvit"))
        .args(["report", "."])
        .current_dir(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("<title>med-crossvit report: luad_run</title>")
            && html.contains("<h1>med-crossvit report: luad_run</h1>"),
        "{}",
        &html[..html.find("</header>").unwrap()]
    );
    assert!(!html.contains("report: .<"), "named `.`");
}

#[test]
fn report_heatmaps_shows_a_folder_elsewhere_and_names_a_bad_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.json"), r#"{"training": {}}"#).unwrap();
    let maps = dir.path().join("maps");
    heatmaps_folder(&maps, "TCGA-XY", "class 1 (p = 0.83)");
    let o = bin(&[
        "report",
        run.to_str().unwrap(),
        "--heatmaps",
        maps.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<h4>TCGA-XY</h4>") && html.contains("Prediction: class 1 (p = 0.83)"));
    assert_eq!(check_images(&html).len(), 4, "the overlay and three crops");

    let manifest = maps.join("heatmaps.csv");
    std::fs::write(&manifest, "slide,png\nTCGA-XY,TCGA-XY.png\n").unwrap();
    let o = bin(&[
        "report",
        run.to_str().unwrap(),
        "--heatmaps",
        maps.to_str().unwrap(),
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: unreadable: {}: the header is `slide,png`",
            manifest.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// The browser.

/// The Chromium binary on PATH, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Runs headless Chromium on `page` with `args`, killed after 120 s; its output.
fn headless(browser: &Path, profile: &Path, args: &[String], page: &Path) -> Output {
    let log = profile.with_extension("log");
    let dom = profile.with_extension("dom");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish in 120 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&dom).unwrap(),
        stderr: std::fs::read(&log).unwrap(),
    }
}

/// Lines of the browser's log that tell of a page that did not load cleanly: a console
/// message (the page has no script, so any is an error or a blocked load), a network error,
/// a blocked resource.
fn load_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("net::ERR")
                || l.contains("Content Security Policy")
                || l.contains("Failed to load")
                || l.contains("Not allowed to load")
        })
        .collect()
}

/// The images of the report, each in a box of its own on a magenta ground: a box whose
/// image did not load stays magenta. One last box holds a broken image, to show the check
/// sees that.
fn image_check_page(sources: &[String]) -> (String, Vec<(u32, u32)>, u32) {
    const PER_ROW: u32 = 4;
    let mut boxes = Vec::new();
    let mut body = String::new();
    let broken = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB".to_string();
    for (i, src) in sources.iter().chain([&broken]).enumerate() {
        let (x, y) = (
            10 + (i as u32 % PER_ROW) * 300,
            10 + (i as u32 / PER_ROW) * 220,
        );
        body.push_str(&format!(
            "<div style=\"left:{x}px;top:{y}px\"><img alt=\"\" src=\"{src}\"></div>\n"
        ));
        boxes.push((x, y));
    }
    let rows = (sources.len() as u32 + 1).div_ceil(PER_ROW);
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>\
         body {{ margin: 0; background: #fff; }} \
         div {{ position: absolute; width: 280px; height: 200px; background: #ff00ff; }} \
         img {{ display: block; width: 280px; height: 200px; }}\
         </style></head><body>\n{body}</body></html>\n"
    );
    (html, boxes, 20 + rows * 220)
}

/// The page's width and the window's in headless Chromium at 720 × 900 pixels, measured by
/// a script added to a copy of `html` (the report itself forbids scripts).
fn widths(browser: &Path, dir: &Path, name: &str, html: &str) -> (u32, u32) {
    let csp = html
        .find("<meta http-equiv=\"Content-Security-Policy\"")
        .unwrap();
    let csp_end = csp + html[csp..].find('>').unwrap() + 1;
    let measured = format!(
        "{}{}",
        &html[..csp],
        html[csp_end..].replace(
            "</body>",
            "<script>document.body.setAttribute('data-width', \
             document.documentElement.scrollWidth + ' ' + window.innerWidth);</script></body>",
        )
    );
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, measured).unwrap();
    let o = headless(
        browser,
        &dir.join(format!("profile-{name}")),
        &[
            "--dump-dom".to_string(),
            "--window-size=720,900".to_string(),
        ],
        &page,
    );
    let dom = text(&o).0;
    let start = dom.find("data-width=\"").expect("the script ran") + 12;
    let value = &dom[start..start + dom[start..].find('"').unwrap()];
    let (page_width, window) = value.split_once(' ').unwrap();
    (page_width.parse().unwrap(), window.parse().unwrap())
}

/// The page never scrolls sideways in a narrow window; a page with a wide block does (the
/// check can fail).
fn check_width(browser: &Path, dir: &Path, html: &str) {
    let (page, window) = widths(browser, dir, "width", html);
    assert_eq!(window, 720);
    assert!(
        page <= window,
        "the page is {page} px wide in a {window} px window"
    );
    let wide = html.replace("<main>", "<main><div style=\"width: 1500px\">wide</div>");
    let (page, window) = widths(browser, dir, "width-control", &wide);
    assert!(
        page > window,
        "the control page is {page} px wide in {window} px"
    );
}

#[test]
fn the_report_renders_in_headless_chromium_with_every_image() {
    let Some(browser) = chromium() else {
        if std::env::var_os("MED_CROSSVIT_REQUIRE_BROWSER").is_some() {
            panic!("chromium not installed, and MED_CROSSVIT_REQUIRE_BROWSER is set");
        }
        support::skipped(
            "the_report_renders_in_headless_chromium_with_every_image",
            "chromium not installed (CI installs it)",
            "install chromium, or set MED_CROSSVIT_REQUIRE_BROWSER=1 to make this an error",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = cross_validation(dir.path());
    // A setting of 5,000 characters without a space, and a slide's heatmap with its crops.
    let config = out.join("config.json");
    let mut settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    settings["notes"] = serde_json::json!("ACGT".repeat(1250));
    std::fs::write(&config, settings.to_string()).unwrap();
    heatmaps_folder(&out.join("heatmaps"), "TCGA-AA", "risk 1.234");
    let html = report(&out);
    assert!(html.contains("(5,000 characters; full value in config.json)"));
    let page = out.join("report.html");
    let page = page.canonicalize().unwrap();

    // The page itself: loads without errors, and all of it (the footer closes it).
    let o = headless(
        &browser,
        &dir.path().join("profile-dom"),
        &["--dump-dom".to_string()],
        &page,
    );
    let (dom, log) = text(&o);
    assert!(o.status.success(), "chromium failed: {log}");
    assert!(load_errors(&log).is_empty(), "{:?}", load_errors(&log));
    assert!(
        dom.contains("<title>med-crossvit report: cv</title>"),
        "{dom:.400}"
    );
    assert!(
        dom.contains("<footer id=\"end\">"),
        "the page did not load to its end"
    );
    // km.png pooled; loss, metric and km of each fold; an overlay and its three crops.
    assert_eq!(images(&dom).len(), 11, "every image in the DOM");
    check_width(&browser, dir.path(), &html);

    // Its screenshot: the window's size, and not blank.
    let shot = dir.path().join("report.png");
    let o = headless(
        &browser,
        &dir.path().join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,3000".to_string(),
        ],
        &page,
    );
    let log = text(&o).1;
    assert!(o.status.success(), "chromium failed: {log}");
    assert!(load_errors(&log).is_empty(), "{:?}", load_errors(&log));
    let picture = decode_png(&std::fs::read(&shot).expect("a screenshot"));
    assert_eq!((picture.width, picture.height), (1200, 3000));
    let ink = picture
        .rgb
        .iter()
        .filter(|p| p.iter().any(|&c| c < 200))
        .count();
    assert!(
        ink > picture.rgb.len() / 100,
        "the page looks blank: {ink} dark pixels"
    );

    // Every image shows: each in a box of its own, none left magenta, none uniform.
    let sources = check_images(&html);
    let (check, boxes, height) = image_check_page(&sources);
    let check_page = dir.path().join("images.html");
    std::fs::write(&check_page, check).unwrap();
    let shot = dir.path().join("images.png");
    let o = headless(
        &browser,
        &dir.path().join("profile-images"),
        &[
            format!("--screenshot={}", shot.display()),
            format!("--window-size=1220,{height}"),
        ],
        &check_page,
    );
    assert!(o.status.success(), "chromium failed: {}", text(&o).1);
    let picture = decode_png(&std::fs::read(&shot).expect("a screenshot"));
    assert_eq!((picture.width, picture.height), (1220, height));
    for (i, &(x0, y0)) in boxes.iter().enumerate() {
        let mut magenta = 0;
        let mut colours = std::collections::HashSet::new();
        let mut pixels = 0;
        for y in y0 + 2..y0 + 198 {
            for x in x0 + 2..x0 + 278 {
                let p = picture.pixel(x, y);
                magenta += usize::from(p == [255, 0, 255]);
                colours.insert(p);
                pixels += 1;
            }
        }
        if i + 1 == boxes.len() {
            assert!(
                magenta > pixels / 2,
                "the broken control image should leave its box magenta"
            );
        } else {
            assert_eq!(magenta, 0, "image {i} did not load");
            assert!(colours.len() > 3, "image {i} is uniform");
        }
    }
}

#[test]
fn report_fails_naming_each_file_of_the_run_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path();
    std::fs::write(
        run.join("config.json"),
        r#"{"model": {"depth": 1}, "training": {"task": "classification"}}"#,
    )
    .unwrap();
    // A metrics.json cut short (a full disk, a killed copy) and a PNG that is not one.
    std::fs::write(run.join("metrics.json"), r#"{"accuracy": 0.75, "auc""#).unwrap();
    std::fs::write(run.join("loss.png"), "not a picture").unwrap();
    let o = bin(&["report", run.to_str().unwrap()]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    let metrics = run.join("metrics.json").display().to_string();
    let loss = run.join("loss.png").display().to_string();
    assert!(
        stderr.contains(&format!("error: unreadable: {metrics}: EOF")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{loss}: not a PNG image")),
        "{stderr}"
    );
    assert!(stderr.contains("2 file(s)"), "{stderr}");
    // The page is written all the same, with the same notes.
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("not a PNG image"), "{html}");

    // Missing files are no error: a run that has not finished.
    std::fs::remove_file(run.join("metrics.json")).unwrap();
    std::fs::remove_file(run.join("loss.png")).unwrap();
    let o = bin(&["report", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o).1);
}
