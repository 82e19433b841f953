//! Whole-slide images: finding a slide's file, opening it with OpenSlide, reading a thumbnail
//! level and full-resolution regions.
//!
//! The reader is a hand-written binding of the nine OpenSlide C functions it needs
//! (`src/slide/openslide.rs`), built with the `openslide` cargo feature (Debian:
//! `libopenslide-dev`); see docs/heatmaps.md for why not a binding crate. Without the feature
//! everything here compiles, and [`Slide::open`] says how to get a build that reads slides.
//!
//! Memory stays bounded by what is asked for, not by the slide: a thumbnail is read from the
//! smallest level at least as fine as it, in strips of rows shrunk as they come (a box filter),
//! and a region is read alone.

mod image;
mod openslide;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use image::RgbImage;
pub(crate) use image::Shrink;

use crate::data::{SLIDE_EXTENSIONS, slide_stem};

/// Whether this build reads slides (the `openslide` feature).
pub const READER_BUILT: bool = cfg!(feature = "openslide");

/// The most pixels a thumbnail or region may have (about 1 GB of ARGB at once).
pub const MAX_PIXELS: u64 = 256 << 20;

/// Rows read at once when shrinking a level into a thumbnail: 16 MiB of ARGB for a level
/// 4,096 pixels wide.
const STRIP_PIXELS: usize = 4 << 20;

/// What went wrong with a whole-slide image.
#[derive(Debug, thiserror::Error)]
pub enum SlideError {
    /// This build has no slide reader.
    #[error(
        "cannot read {path}: this build reads no whole-slide images; build with the `openslide` \
         feature (`cargo build --release --features cli,openslide`, which needs libopenslide: \
         `apt-get install libopenslide-dev` on Debian/Ubuntu, `brew install openslide` on macOS)"
    )]
    NotBuilt {
        /// The slide asked for.
        path: PathBuf,
    },
    /// No file in the folder is the slide.
    #[error(
        "no whole-slide image for slide `{slide}` in {dir} (looked for {stem}.{{{exts}}} there \
         and one folder down, as GDC downloads lay them out)",
        exts = SLIDE_EXTENSIONS.join(",")
    )]
    Missing {
        /// The slide id.
        slide: String,
        /// Its file name without the extension.
        stem: String,
        /// The folder searched.
        dir: PathBuf,
    },
    /// Several files could be the slide.
    #[error("slide `{slide}` matches several files in {dir}: {}; keep one", list(.paths))]
    Ambiguous {
        /// The slide id.
        slide: String,
        /// The folder searched.
        dir: PathBuf,
        /// The files that match.
        paths: Vec<PathBuf>,
    },
    /// The folder of slides cannot be listed.
    #[error("cannot list the slide folder {dir}: {source}")]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// OpenSlide cannot open the file.
    #[error("OpenSlide cannot open {path}: {why}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// OpenSlide's message.
        why: String,
    },
    /// Reading pixels failed, or what was asked is not on the slide.
    #[error("cannot read {what} of {path}: {why}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What was read (a level, a region).
        what: String,
        /// Why not.
        why: String,
    },
    /// A slide's tiles cannot be placed on it (no coordinates, no tile size, off the slide).
    #[error("cannot place the tiles of slide `{slide}` ({file}) on {path}: {why}")]
    Tiles {
        /// The slide id.
        slide: String,
        /// Its tile-feature file.
        file: PathBuf,
        /// The slide image.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// An image could not be written.
    #[error("cannot write {path}: {why}")]
    Write {
        /// The file asked for.
        path: PathBuf,
        /// Why not.
        why: String,
    },
}

/// Paths as one comma-separated string.
fn list(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// The whole-slide images of a folder by stem: `{dir}/{stem}.{ext}` and `{dir}/*/{stem}.{ext}`
/// for each extension of [`SLIDE_EXTENSIONS`] (any case).
#[derive(Debug, Clone)]
pub struct SlideIndex {
    dir: PathBuf,
    by_stem: BTreeMap<String, Vec<PathBuf>>,
}

impl SlideIndex {
    /// Lists `dir` and its subfolders (one level).
    ///
    /// # Errors
    ///
    /// [`SlideError::Folder`] when `dir` cannot be listed.
    pub fn scan(dir: &Path) -> Result<Self, SlideError> {
        let folder = |source| SlideError::Folder {
            dir: dir.to_path_buf(),
            source,
        };
        let mut by_stem: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        let mut add = |path: PathBuf| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let stem = slide_stem(name);
            if stem != name && path.is_file() {
                by_stem.entry(stem.to_string()).or_default().push(path);
            }
        };
        for entry in std::fs::read_dir(dir).map_err(folder)? {
            let path = entry.map_err(folder)?.path();
            if path.is_dir() {
                // Subfolders that cannot be listed hold no slide we could read either.
                for inner in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                    add(inner.path());
                }
            } else {
                add(path);
            }
        }
        for paths in by_stem.values_mut() {
            paths.sort();
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            by_stem,
        })
    }

    /// The file of `slide` (an id with or without its extension).
    ///
    /// # Errors
    ///
    /// [`SlideError::Missing`] when no file matches, [`SlideError::Ambiguous`] when several do.
    pub fn find(&self, slide: &str) -> Result<PathBuf, SlideError> {
        let stem = slide_stem(slide);
        match self.by_stem.get(stem).map(Vec::as_slice) {
            Some([one]) => Ok(one.clone()),
            Some(many) if !many.is_empty() => Err(SlideError::Ambiguous {
                slide: slide.to_string(),
                dir: self.dir.clone(),
                paths: many.to_vec(),
            }),
            _ => Err(SlideError::Missing {
                slide: slide.to_string(),
                stem: stem.to_string(),
                dir: self.dir.clone(),
            }),
        }
    }
}

/// One level of a slide's pyramid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Width in this level's pixels.
    pub width: u64,
    /// Height in this level's pixels.
    pub height: u64,
    /// Level-0 pixels per pixel of this level.
    pub downsample: f64,
}

/// How large a thumbnail to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbnailSize {
    /// At most this many pixels on the long side (never larger than level 0).
    LongSide(u32),
    /// A level of the pyramid as it is.
    Level(usize),
}

/// A thumbnail and how it maps to level-0 pixels.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    /// The pixels.
    pub image: RgbImage,
    /// Thumbnail pixels per level-0 pixel, across and down.
    pub scale: (f64, f64),
    /// The pyramid level it was read from.
    pub level: usize,
}

/// An open whole-slide image.
pub struct Slide {
    path: PathBuf,
    handle: openslide::Handle,
    levels: Vec<Level>,
}

impl std::fmt::Debug for Slide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slide")
            .field("path", &self.path)
            .field("levels", &self.levels)
            .finish()
    }
}

/// The version of the OpenSlide library this build uses (empty without the feature).
pub fn openslide_version() -> String {
    openslide::Handle::version()
}

impl Slide {
    /// Opens `path` with OpenSlide and reads its pyramid.
    ///
    /// # Errors
    ///
    /// [`SlideError::NotBuilt`] without the `openslide` feature; [`SlideError::Unreadable`]
    /// for a file OpenSlide does not read (or a missing one).
    pub fn open(path: &Path) -> Result<Self, SlideError> {
        if !path.is_file() {
            return Err(SlideError::Unreadable {
                path: path.to_path_buf(),
                why: "no such file".into(),
            });
        }
        let handle = openslide::Handle::open(path)?;
        let unreadable = |why: String| SlideError::Unreadable {
            path: path.to_path_buf(),
            why,
        };
        let count = handle.level_count().map_err(unreadable)?;
        let mut levels = Vec::with_capacity(count);
        for level in 0..count {
            let (width, height) = handle.level_dimensions(level).map_err(unreadable)?;
            let downsample = handle.level_downsample(level).map_err(unreadable)?;
            levels.push(Level {
                width,
                height,
                downsample,
            });
        }
        if levels.first().is_none_or(|l| l.width == 0 || l.height == 0) {
            return Err(unreadable("the slide has no pixels".into()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            handle,
            levels,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Level-0 width and height.
    pub fn dimensions(&self) -> (u64, u64) {
        (self.levels[0].width, self.levels[0].height)
    }

    /// The pyramid, level 0 first.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// A property of the slide (OpenSlide's `openslide.*`, `tiff.*`, vendor keys).
    pub fn property(&self, name: &str) -> Option<String> {
        self.handle.property(name)
    }

    /// Micrometres per level-0 pixel (across): `openslide.mpp-x`, or else the TIFF resolution
    /// tags (`tiff.XResolution` per `tiff.ResolutionUnit` centimetre or inch), which OpenSlide
    /// 3.4 does not turn into `openslide.mpp-x` for generic TIFFs. `None` when neither is
    /// there.
    pub fn mpp(&self) -> Option<f64> {
        let positive = |v: f64| (v.is_finite() && v > 0.0).then_some(v);
        if let Some(mpp) = self.property("openslide.mpp-x") {
            return mpp.trim().parse().ok().and_then(positive);
        }
        let resolution: f64 = self.property("tiff.XResolution")?.trim().parse().ok()?;
        let per_unit = match self.property("tiff.ResolutionUnit")?.trim() {
            "centimeter" => 10_000.0,
            "inch" => 25_400.0,
            _ => return None,
        };
        positive(resolution).map(|r| per_unit / r)
    }

    /// Reads the level-0 square or rectangle at `(x, y)` of `width × height` pixels (parts
    /// outside the slide read as white).
    ///
    /// # Errors
    ///
    /// [`SlideError::Read`] when it is larger than [`MAX_PIXELS`] or OpenSlide fails.
    pub fn read_region(
        &self,
        (x, y): (i64, i64),
        (width, height): (usize, usize),
    ) -> Result<RgbImage, SlideError> {
        let what = format!("the region {width} × {height} at ({x}, {y})");
        self.read_level(0, (x, y), (width, height), &what)
    }

    /// Reads `size` pixels of `level` at level-0 position `at`.
    fn read_level(
        &self,
        level: usize,
        at: (i64, i64),
        (width, height): (usize, usize),
        what: &str,
    ) -> Result<RgbImage, SlideError> {
        let read = |why: String| SlideError::Read {
            path: self.path.clone(),
            what: what.to_string(),
            why,
        };
        if (width as u64) * (height as u64) > MAX_PIXELS {
            return Err(read(format!("more than {MAX_PIXELS} pixels at once")));
        }
        let argb = self
            .handle
            .read_argb(at, level, (width, height))
            .map_err(read)?;
        Ok(RgbImage::from_argb(width, height, &argb))
    }

    /// Reads a thumbnail: a whole level ([`ThumbnailSize::Level`]), or the image at most
    /// `n` pixels on its long side, shrunk from the smallest level at least that fine.
    ///
    /// # Errors
    ///
    /// [`SlideError::Read`] for a level the slide lacks, a thumbnail over [`MAX_PIXELS`], or
    /// a failed read.
    pub fn thumbnail(&self, size: ThumbnailSize) -> Result<Thumbnail, SlideError> {
        let (w0, h0) = self.dimensions();
        let (level, width, height) = match size {
            ThumbnailSize::Level(level) => {
                let l = self.levels.get(level).ok_or_else(|| SlideError::Read {
                    path: self.path.clone(),
                    what: format!("level {level}"),
                    why: format!("the slide has levels 0 to {}", self.levels.len() - 1),
                })?;
                (level, l.width, l.height)
            }
            ThumbnailSize::LongSide(n) => {
                let scale = (f64::from(n.max(1)) / w0.max(h0) as f64).min(1.0);
                let width = ((w0 as f64 * scale).round() as u64).max(1);
                let height = ((h0 as f64 * scale).round() as u64).max(1);
                (self.level_for(1.0 / scale), width, height)
            }
        };
        if width * height > MAX_PIXELS {
            return Err(SlideError::Read {
                path: self.path.clone(),
                what: format!("a {width} × {height} thumbnail"),
                why: format!("more than {MAX_PIXELS} pixels; ask for a smaller size"),
            });
        }
        let image = self.shrink_level(level, width as usize, height as usize)?;
        Ok(Thumbnail {
            image,
            scale: (width as f64 / w0 as f64, height as f64 / h0 as f64),
            level,
        })
    }

    /// The coarsest level whose downsample is at most `downsample` (level 0 at worst).
    fn level_for(&self, downsample: f64) -> usize {
        self.levels
            .iter()
            .rposition(|l| l.downsample <= downsample * (1.0 + 1e-9))
            .unwrap_or(0)
    }

    /// Reads `level` in strips of rows, shrinking each into a `width × height` image.
    fn shrink_level(
        &self,
        level: usize,
        width: usize,
        height: usize,
    ) -> Result<RgbImage, SlideError> {
        let l = self.levels[level];
        let (lw, lh) = (l.width as usize, l.height as usize);
        let rows = (STRIP_PIXELS / lw.max(1)).max(1);
        let mut shrink = Shrink::new((lw, lh), width.min(lw), height.min(lh));
        let mut row = 0;
        while row < lh {
            let n = rows.min(lh - row);
            // Level rows start at level-0 y = row · downsample.
            let y0 = (row as f64 * l.downsample).round() as i64;
            let what = format!("rows {row}–{} of level {level}", row + n);
            let strip = self.read_level(level, (0, y0), (lw, n), &what)?;
            shrink.add(row, &strip);
            row += n;
        }
        Ok(shrink.finish())
    }
}
