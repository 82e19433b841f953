//! [`RgbImage`]: 8-bit RGB pixels in rows, the unit the slide reader returns and the heatmap
//! draws on; its PNG writer; and [`Shrink`], the box filter that makes a thumbnail from a
//! level read strip by strip.

use std::path::Path;

use super::SlideError;

/// An 8-bit RGB image, row-major, three bytes a pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl RgbImage {
    /// A `width × height` image filled with `colour`.
    pub fn filled(width: usize, height: usize, colour: [u8; 3]) -> Self {
        let mut pixels = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            pixels.extend_from_slice(&colour);
        }
        Self {
            width,
            height,
            pixels,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixels, row-major, `[r, g, b]` each.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixels, mutable.
    pub fn pixels_mut(&mut self) -> &mut [u8] {
        &mut self.pixels
    }

    /// The pixel at column `x`, row `y`.
    ///
    /// # Panics
    ///
    /// When `(x, y)` lies outside the image (a caller's bug).
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) outside"
        );
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Sets the pixel at column `x`, row `y`.
    ///
    /// # Panics
    ///
    /// When `(x, y)` lies outside the image (a caller's bug).
    pub fn set(&mut self, x: usize, y: usize, colour: [u8; 3]) {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) outside"
        );
        let i = (y * self.width + x) * 3;
        self.pixels[i..i + 3].copy_from_slice(&colour);
    }

    /// Copies `other` into this image with its top-left corner at `(x, y)` (clipped).
    pub fn paste(&mut self, other: &RgbImage, x: usize, y: usize) {
        for row in 0..other.height.min(self.height.saturating_sub(y)) {
            let n = other.width.min(self.width.saturating_sub(x)) * 3;
            let src = row * other.width * 3;
            let dst = ((y + row) * self.width + x) * 3;
            self.pixels[dst..dst + n].copy_from_slice(&other.pixels[src..src + n]);
        }
    }

    /// An image from OpenSlide's premultiplied ARGB words. Transparent pixels (outside the
    /// scanned area of some formats) become white, as on a glass slide.
    pub(crate) fn from_argb(width: usize, height: usize, argb: &[u32]) -> Self {
        let mut pixels = Vec::with_capacity(width * height * 3);
        for &p in argb {
            let a = p >> 24;
            let channel = |shift: u32| {
                let c = (p >> shift) & 0xff;
                match a {
                    0 => 255,
                    255 => c as u8,
                    _ => ((c * 255 + a / 2) / a).min(255) as u8,
                }
            };
            pixels.extend_from_slice(&[channel(16), channel(8), channel(0)]);
        }
        Self {
            width,
            height,
            pixels,
        }
    }

    /// Writes the image as a PNG at `path`, through a temporary file renamed into place.
    ///
    /// # Errors
    ///
    /// [`SlideError::Write`] naming `path`.
    pub fn write_png(&self, path: &Path) -> Result<(), SlideError> {
        let encode = || -> Result<Vec<u8>, png::EncodingError> {
            let mut bytes = Vec::new();
            let mut encoder = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.write_header()?.write_image_data(&self.pixels)?;
            Ok(bytes)
        };
        let bytes = encode().map_err(|e| SlideError::Write {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        crate::util::atomic::write(path, &bytes).map_err(|e| SlideError::Write {
            path: path.to_path_buf(),
            why: e.to_string(),
        })
    }
}

/// Shrinks an image fed row strip by row strip into a `width × height` one: each output pixel
/// is the mean of the input pixels whose centres fall in it (a box filter), so memory is the
/// output's, not the input's. Sums are `u32`: an output pixel would need over 16 million
/// input pixels to overflow one, and thumbnails are read from a level at most 4 times finer.
#[derive(Debug)]
pub(crate) struct Shrink {
    source: (usize, usize),
    width: usize,
    height: usize,
    sums: Vec<u32>,
    counts: Vec<u32>,
    column_of: Vec<usize>,
}

impl Shrink {
    /// A shrinker from `source` (width, height) to `width × height` (each at most the source's).
    pub(crate) fn new(source: (usize, usize), width: usize, height: usize) -> Self {
        let column_of = (0..source.0).map(|x| target(x, source.0, width)).collect();
        Self {
            source,
            width,
            height,
            sums: vec![0; width * height * 3],
            counts: vec![0; width * height],
            column_of,
        }
    }

    /// Adds `strip`, the source rows from `first_row` on.
    pub(crate) fn add(&mut self, first_row: usize, strip: &RgbImage) {
        for row in 0..strip.height {
            let ty = target(first_row + row, self.source.1, self.height);
            let src = &strip.pixels[row * strip.width * 3..(row + 1) * strip.width * 3];
            for (x, px) in src.chunks_exact(3).enumerate() {
                let t = ty * self.width + self.column_of[x];
                self.counts[t] += 1;
                for (sum, &v) in self.sums[t * 3..t * 3 + 3].iter_mut().zip(px) {
                    *sum += u32::from(v);
                }
            }
        }
    }

    /// The shrunk image (means rounded half up; a pixel no source pixel fell in is white).
    pub(crate) fn finish(self) -> RgbImage {
        let mut pixels = Vec::with_capacity(self.width * self.height * 3);
        for (t, &n) in self.counts.iter().enumerate() {
            for c in 0..3 {
                let v = if n == 0 {
                    255
                } else {
                    (2 * u64::from(self.sums[t * 3 + c]) + u64::from(n)) / (2 * u64::from(n))
                };
                pixels.push(v as u8);
            }
        }
        RgbImage {
            width: self.width,
            height: self.height,
            pixels,
        }
    }
}

/// The output index that source index `i` (of `n`) falls in when `n` shrinks to `m`: the one
/// holding the source pixel's centre.
fn target(i: usize, n: usize, m: usize) -> usize {
    (((2 * i + 1) * m) / (2 * n)).min(m.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premultiplied_argb_becomes_rgb_and_transparent_becomes_white() {
        let argb = [0xff10_2030, 0x0000_0000, 0x8040_2000];
        let image = RgbImage::from_argb(3, 1, &argb);
        assert_eq!(image.get(0, 0), [0x10, 0x20, 0x30]);
        assert_eq!(image.get(1, 0), [255, 255, 255]);
        // Half alpha: 0x40 · 255 / 128 = 127.5 → 128 (rounded), 0x20 → 64, 0 → 0.
        assert_eq!(image.get(2, 0), [128, 64, 0]);
    }

    #[test]
    fn shrinking_by_two_in_strips_gives_the_block_means() {
        // 4 × 2 → 2 × 1: the blocks are columns {0, 1} and {2, 3} of both rows.
        let mut rows = RgbImage::filled(4, 1, [0, 0, 0]);
        for x in 0..4 {
            rows.set(x, 0, [x as u8 * 10, 0, 255]);
        }
        let mut second = RgbImage::filled(4, 1, [0, 0, 0]);
        for x in 0..4 {
            second.set(x, 0, [x as u8 * 10 + 1, 100, 255]);
        }
        let mut shrink = Shrink::new((4, 2), 2, 1);
        shrink.add(0, &rows);
        shrink.add(1, &second);
        let out = shrink.finish();
        // (0 + 10 + 1 + 11) / 4 = 5.5 → 6; (20 + 30 + 21 + 31) / 4 = 25.5 → 26; green 50.
        assert_eq!(out.get(0, 0), [6, 50, 255]);
        assert_eq!(out.get(1, 0), [26, 50, 255]);
    }

    #[test]
    fn a_png_reads_back_with_its_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let mut image = RgbImage::filled(3, 2, [1, 2, 3]);
        image.set(2, 1, [200, 100, 50]);
        image.write_png(&path).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(&buf[..info.buffer_size()], image.pixels());
        let missing = dir.path().join("no").join("b.png");
        let err = image.write_png(&missing).unwrap_err();
        assert!(err.to_string().contains("b.png"), "{err}");
    }
}
