//! The page's heatmaps section: for each folder that `med-crossvit heatmap` (or `predict
//! --attention DIR --slides …`) wrote, each slide's overlay over the tissue with the model's
//! prediction, and its most and least attended tiles as image crops with their scores.
//!
//! A heatmaps folder holds a manifest, [`HEATMAPS_CSV`] (header [`HEATMAPS_HEADER`], one row
//! per slide), and for each slide a top-tiles CSV (header [`TOP_TILES_HEADER`]); every path
//! in them is relative to the folder. The images are embedded as data URIs like the rest of
//! the page, wherever the folder is, so the report stays one file that can be sent on; only
//! the first [`HEATMAP_SLIDES`] slides of a folder and [`HEATMAP_CROPS`] crops of each kind
//! are shown, so it stays a size a browser opens at once.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use super::ATTENTION_DIR;
use super::html::{Page, esc, number};
use super::read::Run;
pub use crate::run::{HEATMAPS_CSV, HEATMAPS_DIR, HEATMAPS_HEADER, TOP_TILES_HEADER};

/// Most slides of one heatmaps folder shown (the rest are counted).
pub const HEATMAP_SLIDES: usize = 12;

/// Most crops of each kind (most, least attended) shown per slide.
pub const HEATMAP_CROPS: usize = 8;

impl Run {
    /// The heatmaps section: the folder `heatmaps/` of the run (and of its folds) when there
    /// is one, an `attention/` folder with a manifest, and each folder of `given` (`report
    /// --heatmaps DIR`); each folder once.
    pub(super) fn heatmaps(&self, page: &mut Page, given: &[PathBuf]) {
        page.push("<section id=\"heatmaps\">\n<h2>Heatmaps</h2>\n");
        page.push(&format!(
            "<p class=\"note\">Attention over the slide itself, as <code>med-crossvit \
             heatmap</code> drew it into <code>{HEATMAPS_DIR}/</code> (or <code>predict \
             --attention --slides</code> into <code>{ATTENTION_DIR}/</code>) of the run or into \
             a folder given with <code>report --heatmaps DIR</code>: the overlay, the model's \
             prediction, and the most and least attended tiles at full resolution with their \
             scores. At most {HEATMAP_SLIDES} slides per folder.</p>\n"
        ));
        let mut places = self.heatmap_places();
        places.extend(given.iter().map(|d| (d.display().to_string(), d.clone())));
        let mut seen = Vec::new();
        for (title, dir) in places {
            let key = canonical(&dir);
            if !seen.contains(&key) {
                seen.push(key);
                heatmap_group(page, &title, &dir);
            }
        }
        if seen.is_empty() {
            page.push(&format!(
                "<p>No heatmaps: not present (<code>med-crossvit heatmap … --out \
                 RUN_DIR/{HEATMAPS_DIR}</code>, or <code>report --heatmaps DIR</code>).</p>\n"
            ));
        }
        page.push("</section>\n");
    }
}

impl Run {
    /// The heatmaps folders of the run itself, with their titles: each `heatmaps/` folder
    /// of the run (a cross-validation's and each fold's) that exists, and each `attention/`
    /// folder with a manifest (`predict --attention DIR --slides …` writes there).
    fn heatmap_places(&self) -> Vec<(String, PathBuf)> {
        let mut owners: Vec<(String, PathBuf)> = Vec::new();
        if self.folds.is_some() {
            owners.push(("Cross-validation folder".into(), self.dir.clone()));
        }
        for fold in self.fold_dirs() {
            owners.push((self.group_title(&fold), fold.dir));
        }
        let mut places = Vec::new();
        for (title, dir) in owners {
            let maps = dir.join(HEATMAPS_DIR);
            if maps.is_dir() {
                places.push((title.clone(), maps));
            }
            let attention = dir.join(ATTENTION_DIR);
            if attention.join(HEATMAPS_CSV).is_file() {
                places.push((format!("{title}, {ATTENTION_DIR}/"), attention));
            }
        }
        places
    }
}

/// One slide of a manifest.
struct HeatmapRow {
    /// The slide id.
    slide: String,
    /// The overlay PNG, relative to the folder.
    overlay: String,
    /// The GeoJSON of the tiles, relative to the folder.
    geojson: String,
    /// The top-tiles CSV, relative to the folder; empty when none were asked for.
    top_tiles: String,
    /// The caption of the model's prediction.
    prediction: String,
}

/// One heatmaps folder: its slides (the first [`HEATMAP_SLIDES`]), or why its manifest
/// cannot be read.
fn heatmap_group(page: &mut Page, title: &str, dir: &Path) {
    let manifest = dir.join(HEATMAPS_CSV);
    page.push(&format!(
        "<div class=\"group\">\n<h3>{}</h3>\n<p class=\"note\">From <code>{}</code>.</p>\n",
        esc(title),
        esc(&canonical(&manifest).display().to_string())
    ));
    let rows = read_table(&manifest, &HEATMAPS_HEADER).map(|records| {
        records
            .into_iter()
            .map(|r| HeatmapRow {
                slide: r[0].to_string(),
                overlay: r[1].to_string(),
                geojson: r[2].to_string(),
                top_tiles: r[3].to_string(),
                prediction: r[4].to_string(),
            })
            .collect::<Vec<_>>()
    });
    match rows {
        Err(why) => {
            page.push(&format!("<p class=\"note\">{}</p>\n", esc(&why)));
            page.problem(why);
        }
        Ok(rows) if rows.is_empty() => page.push("<p class=\"note\">No slides listed.</p>\n"),
        Ok(rows) => {
            for row in rows.iter().take(HEATMAP_SLIDES) {
                slide_heatmap(page, dir, row);
            }
            if rows.len() > HEATMAP_SLIDES {
                page.push(&format!(
                    "<p class=\"note\">{} more slide(s) in <code>{HEATMAPS_CSV}</code> not \
                     shown.</p>\n",
                    rows.len() - HEATMAP_SLIDES
                ));
            }
        }
    }
    page.push("</div>\n");
}

/// One slide: its name, the prediction, the overlay, where its GeoJSON is, its crops.
fn slide_heatmap(page: &mut Page, dir: &Path, row: &HeatmapRow) {
    page.push(&format!(
        "<div class=\"heatmap\">\n<h4>{}</h4>\n<p class=\"prediction\">Prediction: {}</p>\n",
        esc(&row.slide),
        esc(&row.prediction)
    ));
    let alt = format!("Attention heatmap of slide {}", row.slide);
    if let Some(path) = listed_file(page, dir, &row.overlay, "overlay")
        && let Some(img) = page.image(&path, &alt)
    {
        let _ = writeln!(
            page.body,
            "<figure class=\"overlay\">{img}<figcaption>{}: {}</figcaption></figure>",
            esc(&row.slide),
            esc(&row.prediction)
        );
    }
    if !row.geojson.is_empty()
        && let Some(path) = listed_file(page, dir, &row.geojson, "geojson")
    {
        let shown = esc(&canonical(&path).display().to_string());
        if path.is_file() {
            page.push(&format!(
                "<p class=\"note\">Tiles and scores for QuPath (File › Import objects): \
                 <code>{shown}</code>.</p>\n"
            ));
        } else {
            page.push(&format!("<p class=\"note\">{shown}: not present.</p>\n"));
            page.problem(format!("{}: not present", path.display()));
        }
    }
    if row.top_tiles.is_empty() {
        page.push("<p class=\"note\">No top tiles were asked for.</p>\n");
    } else if let Some(path) = listed_file(page, dir, &row.top_tiles, "top_tiles") {
        match read_crops(&path) {
            Ok(crops) => {
                for kind in ["most", "least"] {
                    crop_row(page, dir, &row.slide, kind, &crops);
                }
            }
            Err(why) => {
                page.push(&format!("<p class=\"note\">{}</p>\n", esc(&why)));
                page.problem(why);
            }
        }
    }
    page.push("</div>\n");
}

/// One top tile of a slide, as its top-tiles CSV lists it.
#[derive(Debug)]
struct Crop {
    /// `most` or `least`.
    kind: String,
    /// 1 for the most (or least) attended tile.
    rank: u32,
    /// The tile's row in the feature file.
    tile: String,
    /// Its square in level-0 slide pixels: left, top, side.
    square: [String; 3],
    /// Its attention score.
    score: f64,
    /// Its crop, relative to the folder.
    crop: String,
}

/// The crops of `kind` (the first [`HEATMAP_CROPS`] by rank) in a row, each with its rank,
/// score and tile.
fn crop_row(page: &mut Page, dir: &Path, slide: &str, kind: &str, crops: &[Crop]) {
    let mut chosen: Vec<&Crop> = crops.iter().filter(|c| c.kind == kind).collect();
    if chosen.is_empty() {
        return;
    }
    chosen.sort_by_key(|c| c.rank);
    page.push(&format!(
        "<p class=\"crops-title\">{} attended tiles</p>\n<div class=\"crops\">\n",
        if kind == "most" { "Most" } else { "Least" }
    ));
    for crop in chosen.iter().take(HEATMAP_CROPS) {
        let [x, y, size] = &crop.square;
        let alt = format!(
            "{kind} attended tile {} of {slide}: tile {} at ({x}, {y}), {size} px",
            crop.rank, crop.tile
        );
        if let Some(path) = listed_file(page, dir, &crop.crop, "crop")
            && let Some(img) = page.image(&path, &alt)
        {
            let _ = writeln!(
                page.body,
                "<figure>{img}<figcaption>#{} · score {}<br>tile {} at ({}, {})</figcaption>\
                 </figure>",
                crop.rank,
                number(crop.score),
                esc(&crop.tile),
                esc(x),
                esc(y)
            );
        }
    }
    page.push("</div>\n");
    if chosen.len() > HEATMAP_CROPS {
        page.push(&format!(
            "<p class=\"note\">{} more {kind} attended tile(s) not shown.</p>\n",
            chosen.len() - HEATMAP_CROPS
        ));
    }
}

/// The file a manifest lists in `column` as `relative`, inside `dir`; `None`, with a note
/// and a problem naming the manifest, when it is not a relative path down from the folder
/// (an absolute path, or one through `..`).
fn listed_file(page: &mut Page, dir: &Path, relative: &str, column: &str) -> Option<PathBuf> {
    let path = Path::new(relative);
    let inside = !relative.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if inside {
        return Some(dir.join(path));
    }
    let why = format!(
        "{}: `{column}` is `{relative}`, not a path inside {}",
        dir.join(HEATMAPS_CSV).display(),
        dir.display()
    );
    page.push(&format!("<p class=\"note\">{}</p>\n", esc(&why)));
    page.problem(why);
    None
}

/// `path` made absolute and free of `.` and `..` where it exists (as a reader would look
/// for it), else as it is.
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// The rows of the CSV file `path`, whose header must be `header` exactly.
fn read_table(path: &Path, header: &[&str]) -> Result<Vec<csv::StringRecord>, String> {
    let named = |e: csv::Error| format!("{}: {e}", path.display());
    if !path.is_file() {
        return Err(format!("{}: not present", path.display()));
    }
    let mut reader = csv::ReaderBuilder::new().from_path(path).map_err(named)?;
    let found = reader.headers().map_err(named)?.clone();
    if !found.iter().eq(header.iter().copied()) {
        return Err(format!(
            "{}: the header is `{}`, not `{}`",
            path.display(),
            found.iter().collect::<Vec<_>>().join(","),
            header.join(",")
        ));
    }
    reader.records().map(|r| r.map_err(named)).collect()
}

/// The crops a slide's top-tiles CSV lists ([`TOP_TILES_HEADER`]).
fn read_crops(path: &Path) -> Result<Vec<Crop>, String> {
    let mut crops = Vec::new();
    for record in read_table(path, &TOP_TILES_HEADER)? {
        let line = record.position().map_or(0, |p| p.line());
        let bad =
            |what: &str, value: &str| format!("{}: line {line}: {what} `{value}`", path.display());
        let kind = record[0].trim();
        if kind != "most" && kind != "least" {
            return Err(bad("kind is neither `most` nor `least` but", kind));
        }
        let rank = record[1]
            .trim()
            .parse::<u32>()
            .map_err(|_| bad("rank is not a whole number:", &record[1]))?;
        let score = record[6]
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite())
            .ok_or_else(|| bad("score is not a number:", &record[6]))?;
        crops.push(Crop {
            kind: kind.to_string(),
            rank,
            tile: record[2].to_string(),
            square: [3, 4, 5].map(|i| record[i].trim().to_string()),
            score,
            crop: record[7].to_string(),
        });
    }
    Ok(crops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_need_their_header_exactly_and_crops_their_kinds_ranks_and_scores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "slide,overlay,geojson,top_tiles\na,a.png,a.geojson,\n",
        )
        .unwrap();
        let err = read_table(&path, &HEATMAPS_HEADER).unwrap_err();
        assert!(
            err.contains(&path.display().to_string())
                && err.contains("`slide,overlay,geojson,top_tiles`")
                && err.contains("`slide,overlay,geojson,top_tiles,prediction`"),
            "{err}"
        );
        let missing = dir.path().join("none.csv");
        assert!(
            read_table(&missing, &HEATMAPS_HEADER)
                .unwrap_err()
                .contains("not present")
        );

        let header = TOP_TILES_HEADER.join(",");
        std::fs::write(
            &path,
            format!("{header}\nleast,1,4,0,0,256,0.001,l1.png\nmost,2,3,256,0,256,0.25,m2.png\n"),
        )
        .unwrap();
        let crops = read_crops(&path).unwrap();
        assert_eq!(crops.len(), 2);
        assert_eq!((crops[1].kind.as_str(), crops[1].rank), ("most", 2));
        assert_eq!(
            crops[1].square,
            ["256".to_string(), "0".into(), "256".into()]
        );
        assert_eq!(crops[1].score, 0.25);
        for (row, what) in [
            ("best,1,4,0,0,256,0.5,x.png", "kind is neither"),
            (
                "most,first,4,0,0,256,0.5,x.png",
                "rank is not a whole number: `first`",
            ),
            ("most,1,4,0,0,256,NaN,x.png", "score is not a number: `NaN`"),
        ] {
            std::fs::write(&path, format!("{header}\n{row}\n")).unwrap();
            let err = read_crops(&path).unwrap_err();
            assert!(err.contains(what) && err.contains("line 2"), "{err}");
        }
    }
}
