//! `report.html` read as a paper, on run folders made by hand (no training): the headline
//! results first, then the data, the per-fold tables and the settings; long settings cut
//! with a note; a `by_modality` of one group left out; the title naming the run folder;
//! heatmap overlays and top-tile crops embedded from `heatmaps.csv` manifests.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use med_crossvit::report::{
    HEATMAPS_HEADER, ReportOptions, TOP_TILES_HEADER, base64, write_report_checked,
    write_report_with,
};

/// Writes a `width` × `height` PNG to `path`, of colour `rgb` varied from pixel to pixel (so
/// that a browser's rendering of it is not uniform); its bytes.
pub(crate) fn png(path: &Path, width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let pixels: Vec<u8> = (0..width * height)
        .flat_map(|i| {
            let (x, y) = ((i % width) as u8, (i / width) as u8);
            [
                rgb[0] ^ x.wrapping_mul(37),
                rgb[1] ^ y.wrapping_mul(53),
                rgb[2],
            ]
        })
        .collect();
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&pixels).unwrap();
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Writes `value` as JSON to `path`.
fn json_file(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, value.to_string()).unwrap();
}

/// The page's image of the PNG `bytes`, as a data URI.
fn data_uri(bytes: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64(bytes))
}

/// Where section `id` opens in the page.
fn opens(html: &str, id: &str) -> usize {
    html.find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id}"))
}

/// The HTML of section `id`.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = opens(html, id);
    let end = start + html[start..].find("</section>").unwrap();
    &html[start..end]
}

/// A finished single classification run in `dir/luad_run`, best epoch 3 of its checkpoint;
/// the bytes of its ROC plot.
fn single_run(dir: &Path) -> (PathBuf, Vec<u8>) {
    let run = dir.join("luad_run");
    json_file(
        &run.join("config.json"),
        &json!({"model": {"depth": 1}, "training": {"task": "classification", "select": "best"}}),
    );
    json_file(
        &run.join("metrics.json"),
        &json!({"auc": 0.75, "auc_ci": [0.625, 0.875], "accuracy": 0.5,
                "by_modality": {"both": {"auc": 0.75}}}),
    );
    std::fs::write(run.join("splits.csv"), "train,val,test\na,b,\nc,,\n").unwrap();
    json_file(
        &run.join("checkpoints/latest.json"),
        &json!({"folder": "epoch_3"}),
    );
    json_file(
        &run.join("checkpoints/epoch_3/state.json"),
        &json!({"best": [3, 0.75, 0.4]}),
    );
    let roc = png(&run.join("roc.png"), 4, 3, [200, 0, 0]);
    png(&run.join("loss.png"), 4, 3, [0, 0, 200]);
    (run, roc)
}

#[test]
fn a_single_run_reads_results_then_data_then_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (run, roc) = single_run(dir.path());
    let written = write_report_checked(&run).unwrap();
    assert_eq!(written.problems, Vec::<String>::new());
    let html = std::fs::read_to_string(&written.path).unwrap();
    let order = [
        "results",
        "data",
        "plots",
        "heatmaps",
        "attention",
        "settings",
    ];
    let at: Vec<usize> = order.iter().map(|id| opens(&html, id)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{order:?} at {at:?}");
    assert!(
        !html.contains("<section id=\"metrics\">"),
        "no per-fold section"
    );
    let results = section(&html, "results");
    for text in [
        "0.750 <span class=\"ci\">[0.625, 0.875]</span>",
        "the checkpoint of the best epoch on val_auc (--select best",
        "epoch 3.",
        "Run: ROC curves (roc.png)",
    ] {
        assert!(results.contains(text), "missing {text:?} in {results}");
    }
    // The ROC plot leads, once: not again among the other plots.
    assert!(results.contains(&data_uri(&roc)));
    assert_eq!(html.matches(&data_uri(&roc)).count(), 1);
    assert!(section(&html, "plots").contains("Run: loss per epoch (loss.png)"));
    // One group of modalities is every patient: no table of it.
    assert!(!html.contains("by_modality"), "one-group by_modality shown");
    assert!(section(&html, "settings").contains("<h3>Training</h3>"));
}

#[test]
fn a_cross_validation_leads_with_its_pooled_results_and_keeps_two_group_tables() {
    let dir = tempfile::tempdir().unwrap();
    let cv = dir.path().join("cv_run");
    json_file(
        &cv.join("config.json"),
        &json!({"training": {"task": "survival"}, "folds": 2}),
    );
    json_file(
        &cv.join("cv.json"),
        &json!({
            "checkpoint": "last", "selection_metric": "val_c_index",
            "pooled": {"c_index": 0.7, "c_index_ci": [0.6, 0.8]},
            "mean": {"c_index": 0.68}, "std": {"c_index": 0.02},
            "folds": [{"fold": 0, "epoch": 4, "best_epoch": 2}, {"fold": 1, "epoch": 5, "best_epoch": 5}]
        }),
    );
    json_file(
        &cv.join("fold_0/metrics.json"),
        &json!({"c_index": 0.66, "by_modality": {"both": {"c_index": 0.66}}}),
    );
    json_file(
        &cv.join("fold_1/metrics.json"),
        &json!({"c_index": 0.7, "by_modality": {"both": {"c_index": 0.75}, "rna": {"c_index": 0.625}}}),
    );
    let km = png(&cv.join("km.png"), 5, 4, [0, 120, 0]);
    let written = write_report_checked(&cv).unwrap();
    assert_eq!(written.problems, Vec::<String>::new());
    let html = std::fs::read_to_string(&written.path).unwrap();
    let order = ["results", "data", "metrics", "plots", "settings"];
    let at: Vec<usize> = order.iter().map(|id| opens(&html, id)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{order:?} at {at:?}");
    let results = section(&html, "results");
    for text in [
        "0.700 <span class=\"ci\">[0.600, 0.800]</span>",
        "0.680 ± 0.020",
        "the checkpoint of the last epoch (--select last)",
        "at epochs 4, 5 of folds 0 … 1, as <code>cv.json</code> records",
        "Pooled out-of-fold predictions: Kaplan–Meier",
    ] {
        assert!(results.contains(text), "missing {text:?} in {results}");
    }
    assert!(results.contains(&data_uri(&km)));
    let folds = section(&html, "metrics");
    assert!(folds.contains("<th scope=\"col\">fold 1</th>"), "{folds}");
    assert!(
        !folds.contains("<h4><code>by_modality</code> — fold 0</h4>"),
        "{folds}"
    );
    assert!(
        folds.contains("<h4><code>by_modality</code> — fold 1</h4>"),
        "{folds}"
    );
    assert!(folds.contains("<th scope=\"col\">rna</th>") && folds.contains("0.625"));
}

#[test]
fn a_long_setting_is_cut_with_its_length_and_where_the_rest_is() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = single_run(dir.path());
    let groups: Vec<Value> = (0..400)
        .map(|i| json!({"name": format!("PATHWAY_{i}"), "genes": [format!("G{i}"), "TP53"]}))
        .collect();
    let groups = Value::Array(groups);
    json_file(
        &run.join("config.json"),
        &json!({"model": {"depth": 1, "rna_tokenizer": {"kind": "pathways", "groups": groups}},
                "training": {"task": "classification"}}),
    );
    let html = std::fs::read_to_string(write_report_checked(&run).unwrap().path).unwrap();
    let settings = section(&html, "settings");
    let n = serde_json::to_string(&groups).unwrap().chars().count();
    assert!((10_000..100_000).contains(&n), "{n}");
    let note = format!(
        "({},{:03} characters; full value in config.json)",
        n / 1000,
        n % 1000
    );
    assert!(settings.contains(&note), "missing {note}");
    assert!(settings.contains("PATHWAY_0"), "the start is shown");
    assert!(!html.contains("PATHWAY_399"), "the end is cut");
    // The shown part: 200 characters of the JSON (escaped), then the note.
    let row = &settings[settings.find("rna_tokenizer.groups").unwrap()..];
    let code = &row[row.find("<code>").unwrap() + 6..row.find("</code>").unwrap()];
    let shown = code.replace("&quot;", "\"");
    assert_eq!(shown.chars().count(), 200, "{shown}");
    assert!(serde_json::to_string(&groups).unwrap().starts_with(&shown));
    assert!(settings.contains("rna_tokenizer.kind</th><td>pathways</td>"));
}

#[test]
fn the_title_names_the_run_folder_however_it_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = single_run(dir.path());
    std::fs::create_dir_all(run.join("fold_0")).unwrap();
    for path in [run.join("."), run.join("fold_0").join(".."), run.clone()] {
        let html = std::fs::read_to_string(write_report_checked(&path).unwrap().path).unwrap();
        assert!(
            html.contains("<title>med-crossvit report: luad_run</title>")
                && html.contains("<h1>med-crossvit report: luad_run</h1>"),
            "{}: {}",
            path.display(),
            &html[..html.find("</header>").unwrap()]
        );
        let folder = run.canonicalize().unwrap().display().to_string();
        assert!(html.contains(&format!("<td>{folder}</td>")), "{folder}");
    }
}

/// The images of one slide of a heatmaps folder.
pub(crate) struct SlideImages {
    /// The overlay's bytes.
    pub(crate) overlay: Vec<u8>,
    /// The crops' bytes: `most` 1 and 2, then `least` 1.
    pub(crate) crops: Vec<Vec<u8>>,
}

/// A heatmaps folder `dir` with one slide `slide` and its top tiles, listed in a manifest
/// with `prediction` as the caption (a top-tiles CSV that lists `least` before `most`).
pub(crate) fn heatmaps_folder(dir: &Path, slide: &str, prediction: &str) -> SlideImages {
    let overlay = png(&dir.join(format!("{slide}.png")), 6, 4, [250, 120, 0]);
    std::fs::write(dir.join(format!("{slide}.geojson")), "{}").unwrap();
    let mut crops = Vec::new();
    for (name, rgb) in [
        ("most1", [10, 10, 10]),
        ("most2", [60, 60, 60]),
        ("least1", [220, 220, 220]),
    ] {
        crops.push(png(
            &dir.join(format!("topk/{slide}_{name}.png")),
            3,
            3,
            rgb,
        ));
    }
    let topk = format!(
        "{}\nleast,1,9,0,512,256,0.002,topk/{slide}_least1.png\n\
         most,2,4,256,0,256,0.25,topk/{slide}_most2.png\n\
         most,1,7,512,256,256,0.5,topk/{slide}_most1.png\n",
        TOP_TILES_HEADER.join(",")
    );
    std::fs::write(dir.join(format!("topk/{slide}.csv")), topk).unwrap();
    std::fs::write(
        dir.join("heatmaps.csv"),
        format!(
            "{}\n{slide},{slide}.png,{slide}.geojson,topk/{slide}.csv,\"{prediction}\"\n",
            HEATMAPS_HEADER.join(",")
        ),
    )
    .unwrap();
    SlideImages { overlay, crops }
}

#[test]
fn heatmaps_of_the_run_and_of_a_given_folder_are_embedded_with_their_crops_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = single_run(dir.path());
    let inside = heatmaps_folder(&run.join("heatmaps"), "TCGA-AA", "class 1 (p = 0.83)");
    // `predict --attention DIR --slides …` writes its manifest beside the tile scores.
    let beside = heatmaps_folder(&run.join("attention"), "TCGA-AT", "class 0 (p = 0.6)");
    // A folder elsewhere: one slide with its top tiles, and 13 more without.
    let elsewhere = dir.path().join("elsewhere");
    let outside = heatmaps_folder(&elsewhere, "TCGA-BB", "risk 1.234");
    let mut manifest = std::fs::read_to_string(elsewhere.join("heatmaps.csv")).unwrap();
    for i in 0..13 {
        manifest.push_str(&format!("TCGA-C{i},TCGA-BB.png,,,risk 0.{i}\n"));
    }
    std::fs::write(elsewhere.join("heatmaps.csv"), manifest).unwrap();
    let options = ReportOptions {
        // The run's own folder named again is shown once.
        heatmaps: vec![elsewhere.clone(), run.join("heatmaps")],
    };
    let written = write_report_with(&run, &options).unwrap();
    assert_eq!(written.problems, Vec::<String>::new());
    let html = std::fs::read_to_string(&written.path).unwrap();
    let maps = section(&html, "heatmaps");
    for (slide, prediction, images) in [
        ("TCGA-AA", "class 1 (p = 0.83)", &inside),
        ("TCGA-BB", "risk 1.234", &outside),
        ("TCGA-AT", "class 0 (p = 0.6)", &beside),
    ] {
        assert_eq!(
            maps.matches(&format!("<h4>{slide}</h4>")).count(),
            1,
            "{slide}"
        );
        let start = maps.find(&format!("<h4>{slide}</h4>")).unwrap();
        let block = &maps[start
            ..start
                + maps[start..]
                    .find("<div class=\"heatmap\">")
                    .unwrap_or(maps.len() - start)];
        assert!(
            block.contains(&format!("Prediction: {prediction}")),
            "{block}"
        );
        assert!(
            block.contains(&data_uri(&images.overlay)),
            "{slide}: overlay"
        );
        // The crops: most attended by rank, then least, each with its score and tile.
        let at: Vec<usize> = images
            .crops
            .iter()
            .map(|c| block.find(&data_uri(c)).expect("a crop"))
            .collect();
        assert!(at[0] < at[1] && at[1] < at[2], "{at:?}");
        for caption in [
            "#1 · score 0.500<br>tile 7 at (512, 256)",
            "#2 · score 0.250<br>tile 4 at (256, 0)",
            "#1 · score 0.002<br>tile 9 at (0, 512)",
        ] {
            assert!(block.contains(caption), "{slide}: {caption}");
        }
        assert!(
            block.contains(&format!("{slide}.geojson</code>")),
            "{slide}: geojson"
        );
    }
    assert!(maps.contains("<h3>Run, attention/</h3>"), "{maps}");
    // 14 slides elsewhere: 12 shown, 11 of them without top tiles, 2 counted.
    assert!(maps.contains("<h4>TCGA-C10</h4>") && !maps.contains("<h4>TCGA-C11</h4>"));
    assert!(maps.contains("2 more slide(s)"), "{maps}");
    assert_eq!(maps.matches("No top tiles were asked for.").count(), 11);
    assert!(maps.contains("Prediction: risk 0.10"));
}

#[test]
fn an_unreadable_manifest_or_image_is_a_problem_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = single_run(dir.path());
    let own = run.join("heatmaps");
    heatmaps_folder(&own, "TCGA-AA", "class 0 (p = 0.91)");
    std::fs::remove_file(own.join("topk/TCGA-AA_most2.png")).unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::write(
        wrong.join("heatmaps.csv"),
        "slide,overlay,geojson,top_tiles\nX,X.png,X.geojson,\n",
    )
    .unwrap();
    let escaping = dir.path().join("escaping");
    heatmaps_folder(&escaping, "TCGA-EE", "risk 0.5");
    let manifest = std::fs::read_to_string(escaping.join("heatmaps.csv")).unwrap();
    std::fs::write(
        escaping.join("heatmaps.csv"),
        manifest.replace("TCGA-EE,TCGA-EE.png", "TCGA-EE,../wrong/X.png"),
    )
    .unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let options = ReportOptions {
        heatmaps: vec![wrong.clone(), escaping.clone(), empty.clone()],
    };
    let written = write_report_with(&run, &options).unwrap();
    let problems = written.problems.join("\n");
    let expect = [
        format!(
            "{}: the header is `slide,overlay,geojson,top_tiles`, not \
             `slide,overlay,geojson,top_tiles,prediction`",
            wrong.join("heatmaps.csv").display()
        ),
        format!("{}: ", own.join("topk/TCGA-AA_most2.png").display()),
        format!(
            "{}: `overlay` is `../wrong/X.png`, not a path inside",
            escaping.join("heatmaps.csv").display()
        ),
        format!("{}: not present", empty.join("heatmaps.csv").display()),
    ];
    for e in &expect {
        assert!(problems.contains(e.as_str()), "missing {e} in {problems}");
    }
    assert_eq!(written.problems.len(), expect.len(), "{problems}");
    // The page is written all the same, with what could be read.
    let html = std::fs::read_to_string(&written.path).unwrap();
    let maps = section(&html, "heatmaps");
    assert!(maps.contains("the header is `slide,overlay,geojson,top_tiles`"));
    let (aa, ee) = (
        maps.find("<h4>TCGA-AA</h4>").unwrap(),
        maps.find("<h4>TCGA-EE</h4>").unwrap(),
    );
    assert!(aa < ee, "the run's own folder first");
    let block = &maps[aa..ee];
    assert!(block.contains("#1 · score 0.500"), "{block}");
    assert!(
        !block.contains("#2 · score 0.250"),
        "the missing crop: {block}"
    );
    assert!(block.contains("TCGA-AA_most2.png: No such file"), "{block}");
    assert!(maps.contains("<h4>TCGA-EE</h4>") && maps.contains("Prediction: risk 0.5"));
}
