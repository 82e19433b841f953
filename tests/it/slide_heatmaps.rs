//! Heatmaps over whole-slide images, on the pyramidal TIFF of `tests/fixtures/slide/` (made by
//! `tests/fixtures/make_slide_fixtures.py`; every pixel is a known function of its position)
//! and tile files written by h5py in the conventions of TRIDENT, CLAM and STAMP.
//!
//! The tests that read the slide need the `openslide` feature (`make test-slides`, which CI
//! runs with libopenslide installed); without it they report themselves skipped, and the
//! tests of the build without a reader run instead.

use crate::support;

use std::path::PathBuf;

/// The fixture folder.
fn fixtures() -> PathBuf {
    support::manifest_dir().join("tests/fixtures/slide")
}

#[cfg(not(feature = "openslide"))]
#[test]
fn without_the_openslide_feature_slides_are_refused_with_the_way_to_read_them() {
    support::skipped(
        "slide_heatmaps (reading slides)",
        "built without the `openslide` feature",
        "`make test-slides` runs them; CI does",
    );
    let err = med_crossvit::slide::Slide::open(&fixtures().join("slide.tiff")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("slide.tiff"), "{text}");
    assert!(text.contains("--features cli,openslide"), "{text}");
    assert!(text.contains("libopenslide-dev"), "{text}");
    // The command says so before it loads anything.
    #[cfg(feature = "cli")]
    {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let o = support::bin(&[
            "heatmap", "--model", d, "--csv", d, "--slides", d, "--out", d,
        ]);
        let (_, stderr) = support::text(&o);
        assert!(!o.status.success());
        assert!(stderr.contains("--features cli,openslide"), "{stderr}");
    }
}

#[cfg(feature = "openslide")]
mod with_openslide {
    use super::*;

    use std::path::Path;

    use med_crossvit::run::DataSource;

    /// The slide's level-0 pixel at `(x, y)`, as the fixture script draws it.
    fn pixel(x: usize, y: usize) -> [u8; 3] {
        [
            (30 + 18 * (x / 256)) as u8,
            (30 + 25 * (y / 256)) as u8,
            ((x + 2 * y) % 256) as u8,
        ]
    }

    /// The pixel of a level with downsample `d` at `(x, y)`: the rounded mean of its block.
    fn level_pixel(d: usize, x: usize, y: usize) -> [u8; 3] {
        let mut sum = [0usize; 3];
        for j in 0..d {
            for i in 0..d {
                let p = pixel(x * d + i, y * d + j);
                for c in 0..3 {
                    sum[c] += p[c] as usize;
                }
            }
        }
        let n = d * d;
        sum.map(|s| ((2 * s + n) / (2 * n)) as u8)
    }

    /// The tile corners of the fixture's files (level-0 pixels): every 512-pixel cell of the
    /// 3072 × 2048 slide but the last two of the bottom row.
    fn grid() -> Vec<[f64; 2]> {
        let mut cells = Vec::new();
        for y in (0..2048).step_by(512) {
            for x in (0..3072).step_by(512) {
                if !(y == 1536 && x >= 2048) {
                    cells.push([x as f64, y as f64]);
                }
            }
        }
        cells
    }

    /// A synthetic cohort of `files.len()` slides of width-8 features whose tile files are the
    /// named fixture files, and a one-epoch run of a tiny model on it. Returns the cohort, the
    /// run folder and the slide ids.
    fn cohort_with(dir: &Path, files: &[&str]) -> (DataSource, PathBuf, Vec<String>) {
        cohort_for(dir, files, false)
    }

    /// [`cohort_with`] for a classification or a survival model.
    fn cohort_for(
        dir: &Path,
        files: &[&str],
        survival: bool,
    ) -> (DataSource, PathBuf, Vec<String>) {
        let _serial = support::serial();
        let data = support::synth(&dir.join("cohort"), files.len().max(6), 8, 6, 11, survival);
        let run = dir.join("run");
        let settings = med_crossvit::run::TrainSettings {
            epochs: 1,
            batch_size: 4,
            bags: med_crossvit::data::BagSettings {
                bag_size: 6,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut request = support::request(data.clone(), settings, run.clone());
        if survival {
            request.settings.task = med_crossvit::run::Task::Survival;
            request.settings.survival.bins = 2;
        }
        let model = dir.join("tiny.json");
        std::fs::write(
            &model,
            serde_json::to_string(&support::tiny_model(2, 6)).unwrap(),
        )
        .unwrap();
        request.model = med_crossvit::run::ModelSpec::File(model);
        med_crossvit::train::train(&request, &burn::tensor::Device::flex(), &mut |_| {}).unwrap();
        let slides = support::slide_ids(&data.csv);
        // Only the named slides stay in the cohort, each with its fixture file.
        let text = std::fs::read_to_string(&data.csv).unwrap();
        let kept: Vec<&str> = text.lines().take(files.len() + 1).collect();
        std::fs::write(&data.csv, kept.join("\n") + "\n").unwrap();
        for (slide, file) in slides.iter().zip(files) {
            let to = data
                .features_dir
                .join(med_crossvit::data::SYNTH_PROJECT)
                .join(format!("{slide}.h5"));
            std::fs::copy(fixtures().join(file), to).unwrap();
        }
        (data, run, slides[..files.len()].to_vec())
    }

    /// A folder holding the fixture slide under each slide id.
    fn slides_folder(dir: &Path, slides: &[String]) -> PathBuf {
        let folder = dir.join("slides");
        std::fs::create_dir_all(&folder).unwrap();
        for s in slides {
            std::fs::copy(
                fixtures().join("slide.tiff"),
                folder.join(format!("{s}.tiff")),
            )
            .unwrap();
        }
        folder
    }

    /// A PNG's size and RGB pixels.
    fn read_png(path: &Path) -> (usize, usize, Vec<u8>) {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
        buf.truncate(info.buffer_size());
        (info.width as usize, info.height as usize, buf)
    }

    use med_crossvit::data::{TileGeometry, read_tile_geometry};
    use med_crossvit::eval::EvaluateRequest;
    use med_crossvit::inference::overlay::{
        Normalize, PlacementOverrides, SlideScale, Style, colour_at, place,
    };
    use med_crossvit::inference::{HeatmapOptions, draw_heatmaps, predict_with_attention};
    use med_crossvit::run::ModelBundle;
    use med_crossvit::slide::{Slide, ThumbnailSize};

    fn options(slides: &Path, top_k: usize) -> HeatmapOptions {
        HeatmapOptions {
            slides: slides.to_path_buf(),
            size: ThumbnailSize::LongSide(768),
            style: Style {
                alpha: 1.0,
                normalize: Normalize::Rank,
                blur: 0.0,
            },
            top_k,
            overrides: PlacementOverrides::default(),
        }
    }

    fn request(data: &DataSource) -> EvaluateRequest {
        EvaluateRequest {
            csv: data.csv.clone(),
            tiles: med_crossvit::data::TileOptions::new(data.features_dir.clone()),
            require_targets: false,
        }
    }

    /// Predicts the cohort with the run and draws its heatmaps into `out`.
    fn draw(
        data: &DataSource,
        run: &Path,
        out: &Path,
        options: &HeatmapOptions,
    ) -> Result<Vec<med_crossvit::inference::SlideHeatmap>, med_crossvit::Error> {
        let _serial = support::serial();
        let device = burn::tensor::Device::flex();
        let bundle = ModelBundle::load(run, &device).unwrap();
        let (evaluation, attention) = predict_with_attention(&bundle, &request(data), &device)?;
        draw_heatmaps(&bundle, &evaluation, &attention, out, options)
    }

    #[test]
    fn the_fixture_slide_reads_as_its_pattern_at_every_level() {
        let slide = Slide::open(&fixtures().join("slide.tiff")).unwrap();
        assert_eq!(slide.dimensions(), (3072, 2048));
        let downsamples: Vec<f64> = slide.levels().iter().map(|l| l.downsample).collect();
        assert_eq!(downsamples, vec![1.0, 4.0, 16.0]);
        // The MPP comes from the TIFF resolution tags: 20,000 pixels a centimetre.
        assert_eq!(slide.mpp(), Some(0.5));
        let region = slide.read_region((300, 700), (5, 4)).unwrap();
        for y in 0..4 {
            for x in 0..5 {
                assert_eq!(region.get(x, y), pixel(300 + x, 700 + y));
            }
        }
        // 192 pixels long: level 2 as it is.
        let thumb = slide.thumbnail(ThumbnailSize::LongSide(192)).unwrap();
        assert_eq!(
            (thumb.level, thumb.image.width(), thumb.image.height()),
            (2, 192, 128)
        );
        for (x, y) in [(0, 0), (17, 5), (191, 127), (100, 64)] {
            assert_eq!(thumb.image.get(x, y), level_pixel(16, x, y), "({x}, {y})");
        }
        // 384 pixels long: level 1 shrunk by 2, within rounding of the 8 × 8 level-0 means.
        let thumb = slide.thumbnail(ThumbnailSize::LongSide(384)).unwrap();
        assert_eq!((thumb.level, thumb.image.width()), (1, 384));
        assert_eq!(thumb.scale, (0.125, 0.125));
        for (x, y) in [(0, 0), (40, 30), (383, 255)] {
            let (got, want) = (thumb.image.get(x, y), level_pixel(8, x, y));
            for c in 0..3 {
                assert!(
                    got[c].abs_diff(want[c]) <= 1,
                    "({x}, {y}): {got:?} vs {want:?}"
                );
            }
        }
        assert!(slide.thumbnail(ThumbnailSize::Level(3)).is_err());
    }

    #[test]
    fn every_tools_convention_places_the_tiles_on_the_same_squares() {
        let slide = Slide::open(&fixtures().join("slide.tiff")).unwrap();
        let scale = SlideScale {
            dimensions: slide.dimensions(),
            mpp: slide.mpp(),
            downsamples: slide.levels().iter().map(|l| l.downsample).collect(),
        };
        for file in ["trident.h5", "trident_mag.h5", "clam.h5", "stamp.h5"] {
            let path = fixtures().join(file);
            let geometry: TileGeometry = read_tile_geometry(&path).unwrap().unwrap();
            let tiles = med_crossvit::data::TileFile::open(&path, None).unwrap();
            let rows: Vec<usize> = (0..tiles.tiles()).collect();
            let coords = tiles.read_coords(&rows).unwrap().unwrap();
            let p = place(&coords, &geometry, &scale, PlacementOverrides::default())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(p.corners, grid(), "{file}");
            assert_eq!(p.side, 512.0, "{file}: {}", p.how);
        }
        // A file without tile-size attributes needs --patch-size.
        let path = fixtures().join("bare.h5");
        let geometry = read_tile_geometry(&path).unwrap().unwrap();
        let err = place(&grid(), &geometry, &scale, PlacementOverrides::default()).unwrap_err();
        assert!(err.contains("--patch-size"), "{err}");
    }

    #[test]
    fn one_call_writes_the_overlay_the_crops_and_the_geojson_where_the_tiles_are() {
        let dir = tempfile::tempdir().unwrap();
        let files = ["trident.h5", "clam.h5", "stamp.h5"];
        let (data, run, slides) = cohort_with(dir.path(), &files);
        let folder = slides_folder(dir.path(), &slides);
        let out = dir.path().join("maps");
        let drawn = draw(&data, &run, &out, &options(&folder, 2)).unwrap();
        assert_eq!(drawn.len(), 3);
        let manifest = std::fs::read_to_string(out.join("heatmaps.csv")).unwrap();
        assert!(manifest.starts_with("slide,overlay,geojson,top_tiles,prediction\n"));
        let mut squares_of_first = None;
        for (slide, d) in slides.iter().zip(&drawn) {
            assert!(manifest.contains(&format!(
                "{slide},{slide}.png,{slide}.geojson,topk/{slide}.csv,"
            )));
            let top = check_top_tiles(&out, slide, 2);
            check_overlay(&d.overlay, top);
            let squares = check_geojson(&d.geojson, top);
            // The same tiles in three conventions: the same squares.
            let first = squares_of_first.get_or_insert_with(|| squares.clone());
            assert_eq!(*first, squares, "{slide}");
        }
    }

    /// The top-tiles CSV lists `k` most and `k` least attended tiles (k = 1 or 2) whose crops
    /// are the slide's pixels there; returns the most attended tile's corner and score.
    fn check_top_tiles(out: &Path, slide: &str, k: usize) -> ([usize; 2], f64) {
        let text = std::fs::read_to_string(out.join(format!("topk/{slide}.csv"))).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("kind,rank,tile,x,y,size,score,crop"));
        let rows: Vec<Vec<String>> = lines
            .map(|l| l.split(',').map(String::from).collect())
            .collect();
        let kinds: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str()))
            .collect();
        let scores: Vec<f64> = rows.iter().map(|r| r[6].parse().unwrap()).collect();
        if k == 2 {
            let want = [("most", "1"), ("most", "2"), ("least", "1"), ("least", "2")];
            assert_eq!(kinds, want);
            assert!(scores[0] >= scores[1] && scores[1] >= scores[3] && scores[3] >= scores[2]);
        } else {
            assert_eq!(kinds, [("most", "1"), ("least", "1")]);
            assert!(scores[0] >= scores[1]);
        }
        for r in &rows {
            let (x, y): (usize, usize) = (r[3].parse().unwrap(), r[4].parse().unwrap());
            assert_eq!(r[5], "512");
            assert!(grid().contains(&[x as f64, y as f64]), "{r:?}");
            let (w, h, px) = read_png(&out.join(&r[7]));
            assert_eq!((w, h), (512, 512));
            for (i, j) in [(0, 0), (511, 0), (0, 511), (255, 300), (511, 511)] {
                let at = (j * w + i) * 3;
                assert_eq!(
                    px[at..at + 3],
                    pixel(x + i, y + j),
                    "{} at ({i}, {j})",
                    r[7]
                );
            }
        }
        let top = [rows[0][3].parse().unwrap(), rows[0][4].parse().unwrap()];
        (top, scores[0])
    }

    /// At alpha 1 on the rank scale, the most attended tile's square on the 768 × 512
    /// overlay (a quarter of level 0) is the top colour, and the cells without tiles are the
    /// slide's level-1 pixels.
    fn check_overlay(path: &Path, (top, _): ([usize; 2], f64)) {
        let (w, h, px) = read_png(path);
        assert_eq!(w, 768);
        assert!(h > 512, "a footer under the 768 × 512 overlay");
        let at = |x: usize, y: usize| {
            let i = (y * w + x) * 3;
            [px[i], px[i + 1], px[i + 2]]
        };
        let (tx, ty) = (top[0] / 4, top[1] / 4);
        for (dx, dy) in [(0, 0), (127, 0), (0, 127), (64, 64), (127, 127)] {
            assert_eq!(
                at(tx + dx, ty + dy),
                colour_at(1.0),
                "({}, {})",
                tx + dx,
                ty + dy
            );
        }
        for (x, y) in [(512, 384), (700, 450), (767, 511)] {
            assert_eq!(at(x, y), level_pixel(4, x, y), "uncovered ({x}, {y})");
        }
    }

    /// The GeoJSON has one closed square per tile, ranks 1..n, the top score at the top
    /// tile; returns the squares sorted.
    fn check_geojson(path: &Path, (top, score): ([usize; 2], f64)) -> Vec<Vec<[f64; 2]>> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(v["type"], "FeatureCollection");
        let features = v["features"].as_array().unwrap();
        assert_eq!(features.len(), grid().len());
        let mut squares = Vec::new();
        let mut ranks = Vec::new();
        for f in features {
            assert_eq!(f["properties"]["objectType"], "detection");
            let ring: Vec<[f64; 2]> = f["geometry"]["coordinates"][0]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
                .collect();
            let [x, y] = ring[0];
            assert_eq!(
                ring,
                vec![
                    [x, y],
                    [x + 512.0, y],
                    [x + 512.0, y + 512.0],
                    [x, y + 512.0],
                    [x, y]
                ]
            );
            let rank = f["properties"]["rank"].as_u64().unwrap();
            if rank == 1 {
                assert_eq!([x as usize, y as usize], top);
                let s = f["properties"]["measurements"]["attention score"]
                    .as_f64()
                    .unwrap();
                assert!((s - score).abs() <= 1e-7 * score, "{s} vs {score}");
            }
            ranks.push(rank);
            squares.push(ring);
        }
        ranks.sort();
        assert_eq!(ranks, (1..=grid().len() as u64).collect::<Vec<_>>());
        let mut corners: Vec<[f64; 2]> = squares.iter().map(|s| s[0]).collect();
        corners.sort_by(|a, b| (a[1], a[0]).partial_cmp(&(b[1], b[0])).unwrap());
        assert_eq!(corners, grid());
        squares.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap());
        squares
    }

    #[test]
    fn a_missing_or_unreadable_slide_is_named_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (data, run, slides) = cohort_with(dir.path(), &["trident.h5", "trident.h5"]);
        // The first slide is there, the second is not.
        let folder = slides_folder(dir.path(), &slides[..1]);
        let out = dir.path().join("maps");
        let err = draw(&data, &run, &out, &options(&folder, 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("no whole-slide image for slide `{}`", slides[1])),
            "{err}"
        );
        assert!(!out.exists(), "nothing written before the checks pass");
        // A file that is no slide.
        std::fs::write(folder.join(format!("{}.svs", slides[1])), b"not a slide").unwrap();
        let err = draw(&data, &run, &out, &options(&folder, 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("OpenSlide cannot open") && err.contains(&slides[1]),
            "{err}"
        );
        assert!(!out.exists());
        // Two files for one slide.
        std::fs::remove_file(folder.join(format!("{}.svs", slides[1]))).unwrap();
        slides_folder(dir.path(), &slides[1..]);
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::copy(
            fixtures().join("slide.tiff"),
            folder.join("sub").join(format!("{}.svs", slides[1])),
        )
        .unwrap();
        let err = draw(&data, &run, &out, &options(&folder, 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("matches several files"), "{err}");
    }

    #[test]
    fn tiles_off_the_slide_without_coordinates_or_size_are_named() {
        for (file, expected) in [
            ("outside.h5", "tile 3 at (3072, 0)"),
            ("no_coords.h5", "has no `coords` dataset"),
            ("bare.h5", "--patch-size"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (data, run, slides) = cohort_with(dir.path(), &[file]);
            let folder = slides_folder(dir.path(), &slides);
            let out = dir.path().join("maps");
            let err = draw(&data, &run, &out, &options(&folder, 1))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&slides[0]) && err.contains(expected),
                "{file}: {err}"
            );
            assert!(!out.exists(), "{file}");
            if file == "bare.h5" {
                let mut given = options(&folder, 0);
                given.overrides.patch_size = Some(512.0);
                let drawn = draw(&data, &run, &out, &given).unwrap();
                assert_eq!(drawn[0].placement, "--patch-size 512");
                assert!(!out.join("topk").exists());
            }
        }
    }

    #[test]
    fn a_survival_model_draws_its_attention_with_the_predicted_risk() {
        let dir = tempfile::tempdir().unwrap();
        let (data, run, slides) = cohort_for(dir.path(), &["trident.h5"], true);
        let folder = slides_folder(dir.path(), &slides);
        let out = dir.path().join("maps");
        let drawn = draw(&data, &run, &out, &options(&folder, 1)).unwrap();
        assert!(
            drawn[0].caption.starts_with("predicted risk -"),
            "{}",
            drawn[0].caption
        );
        let manifest = std::fs::read_to_string(out.join("heatmaps.csv")).unwrap();
        let row = format!(
            "{0},{0}.png,{0}.geojson,topk/{0}.csv,predicted risk -",
            slides[0]
        );
        assert!(manifest.contains(&row), "{manifest}");
        check_top_tiles(&out, &slides[0], 1);
    }

    #[cfg(feature = "cli")]
    #[test]
    fn the_heatmap_command_and_predict_with_slides_write_the_same_maps() {
        let dir = tempfile::tempdir().unwrap();
        let (data, run, slides) = cohort_with(dir.path(), &["trident.h5"]);
        let folder = slides_folder(dir.path(), &slides);
        let maps = dir.path().join("maps");
        let common = [
            "--model",
            run.to_str().unwrap(),
            "--csv",
            data.csv.to_str().unwrap(),
            "--features",
            data.features_dir.to_str().unwrap(),
            "--slides",
            folder.to_str().unwrap(),
            "--max-size",
            "768",
            "--top-k",
            "1",
        ];
        let mut args = vec!["heatmap"];
        args.extend(common);
        args.extend(["--out", maps.to_str().unwrap()]);
        let o = support::bin(&args);
        let (stdout, stderr) = support::text(&o);
        assert!(o.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("patch_size_level0 = 512 (TRIDENT)"),
            "{stdout}"
        );
        let attention = dir.path().join("attention");
        let mut args = vec!["predict"];
        args.extend(common);
        let preds = dir.path().join("p.csv");
        args.extend([
            "--out",
            preds.to_str().unwrap(),
            "--attention",
            attention.to_str().unwrap(),
        ]);
        let o = support::bin(&args);
        assert!(o.status.success(), "{:?}", support::text(&o));
        let stem = &slides[0];
        for name in [
            format!("{stem}.png"),
            format!("{stem}.geojson"),
            format!("topk/{stem}.csv"),
        ] {
            assert_eq!(
                std::fs::read(maps.join(&name)).unwrap(),
                std::fs::read(attention.join(&name)).unwrap(),
                "{name}"
            );
        }
        assert!(attention.join(format!("{stem}.tiles.csv")).exists());
        // Bad values are refused by name before any work.
        let mut args = vec!["heatmap"];
        args.extend(common);
        args.extend(["--out", maps.to_str().unwrap(), "--alpha", "2"]);
        let (_, stderr) = support::text(&support::bin(&args));
        assert!(
            stderr.contains("--alpha: must be between 0 and 1, got 2"),
            "{stderr}"
        );
    }
}
