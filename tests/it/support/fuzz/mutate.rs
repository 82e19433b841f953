//! Input mutations: byte-level for every file, token-level on top for text formats.
//!
//! Deterministic for a given [`Rng`] state, so that the seeded corpus in `tests/fuzz.rs`
//! tries the same inputs on every run.

/// A small, fast generator (splitmix64): the mutations need speed and reproducibility, not
/// statistical quality, and the test binary should not depend on `rand`'s version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that break size arithmetic: zero, one, sign bits, all ones, and sizes far past any
/// real file (10^12 elements among them).
const INTERESTING_U64: [u64; 14] = [
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0xFFFF,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
    1 << 40,
    1_000_000_000_000,
    i64::MAX as u64,
    u64::MAX,
];

/// Cells and JSON tokens that parsers tend to mishandle.
const INTERESTING_TOKENS: [&str; 34] = [
    "",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "1e309",
    "-1e309",
    "1e-400",
    "-0",
    "0",
    "-1",
    "1e12",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "0x10",
    "\"",
    "\"\"",
    "\"a,b\"",
    "é",
    "\u{1F9EC}",
    "\u{0}",
    "\r",
    "\n",
    ",",
    " ",
    "null",
    "true",
    "[]",
    "{}",
    "\"\\ud800\"",
    "1.5",
    "rna_X",
];

/// A mutation of `data`: one to four byte-level edits, `others` (other seeds) supplying
/// material to splice in.
pub fn mutate_bytes(rng: &mut Rng, data: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = data.to_vec();
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        edit_bytes(rng, &mut out, others);
    }
    out
}

fn edit_bytes(rng: &mut Rng, out: &mut Vec<u8>, others: &[Vec<u8>]) {
    if out.is_empty() {
        out.extend((0..1 + rng.below(16)).map(|_| rng.next_u64() as u8));
        return;
    }
    let len = out.len();
    match rng.below(11) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let i = rng.below(len);
            out[i] = *rng.pick(&[0u8, 0xFF, 0x7F, 0x80, 1, b'0', b'"', b',', b'\n']);
        }
        2 => {
            let i = rng.below(len);
            out[i] = out[i].wrapping_add(rng.below(33) as u8).wrapping_sub(16);
        }
        3 => overwrite_word(rng, out),
        4 => grow_size_field(rng, out),
        5 => out.truncate(rng.below(len)),
        6 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(256)).min(len);
            out.drain(start..end);
        }
        7 => {
            let at = rng.below(len + 1);
            let chunk: Vec<u8> = if rng.one_in(2) {
                (0..1 + rng.below(64))
                    .map(|_| rng.next_u64() as u8)
                    .collect()
            } else {
                let start = rng.below(len);
                out[start..(start + 1 + rng.below(256)).min(len)].to_vec()
            };
            out.splice(at..at, chunk);
        }
        8 => {
            // Overwrite in place with bytes from elsewhere in the file: keeps offsets valid.
            let from = rng.below(len);
            let to = rng.below(len);
            let n = (1 + rng.below(64)).min(len - from).min(len - to);
            let chunk = out[from..from + n].to_vec();
            out[to..to + n].copy_from_slice(&chunk);
        }
        9 if !others.is_empty() => {
            let other = rng.pick(others);
            if !other.is_empty() {
                let cut = rng.below(len);
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
        }
        _ => {
            let at = rng.below(len);
            let n = 1 + rng.below(8);
            let value = *rng.pick(&[0u8, 0xFF]);
            for b in out.iter_mut().skip(at).take(n) {
                *b = value;
            }
        }
    }
}

/// Writes an interesting value as a 2-, 4- or 8-byte integer, either byte order.
fn overwrite_word(rng: &mut Rng, out: &mut [u8]) {
    let width = *rng.pick(&[2usize, 4, 8]);
    if out.len() < width {
        return;
    }
    let at = rng.below(out.len() - width + 1);
    let mut value = *rng.pick(&INTERESTING_U64);
    if rng.one_in(4) {
        value = value.wrapping_add(out.len() as u64);
    }
    let bytes = if rng.one_in(2) {
        value.to_le_bytes()
    } else {
        value.to_be_bytes()
    };
    let bytes = if rng.one_in(2) || width == 8 {
        &bytes[..width]
    } else {
        &bytes[8 - width..]
    };
    out[at..at + width].copy_from_slice(bytes);
}

/// Finds a small little-endian integer (a likely dimension, count or length field) and makes it
/// huge: the header that claims 10^12 elements in a file of a few kilobytes.
fn grow_size_field(rng: &mut Rng, out: &mut [u8]) {
    let width = *rng.pick(&[4usize, 8]);
    if out.len() < width {
        return;
    }
    let start = rng.below(out.len() - width + 1);
    for i in (start..=out.len() - width).chain(0..start) {
        let word = &out[i..i + width];
        let value = if width == 8 {
            u64::from_le_bytes(word.try_into().expect("8 bytes"))
        } else {
            u32::from_le_bytes(word.try_into().expect("4 bytes")) as u64
        };
        if (2..=65_536).contains(&value) {
            let huge: u64 = if width == 8 {
                *rng.pick(&[1_000_000_000_000, 1 << 40, u64::MAX / 2, value << 20])
            } else {
                *rng.pick(&[0xFFFF_FFFF, 1 << 30, value << 12])
            };
            out[i..i + width].copy_from_slice(&huge.to_le_bytes()[..width]);
            return;
        }
    }
}

/// A mutation of a text file: one to three token- or line-level edits, sometimes followed by a
/// byte-level one.
pub fn mutate_text(rng: &mut Rng, data: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut text = String::from_utf8_lossy(data).into_owned();
    for _ in 0..1 + rng.below(3) {
        edit_text(rng, &mut text, others);
    }
    let mut out = text.into_bytes();
    if rng.one_in(4) {
        edit_bytes(rng, &mut out, others);
    }
    out
}

fn edit_text(rng: &mut Rng, text: &mut String, others: &[Vec<u8>]) {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let n = lines.len();
    match rng.below(12) {
        0 => {
            lines.remove(rng.below(n));
        }
        1 => {
            let i = rng.below(n);
            let line = lines[i].clone();
            for _ in 0..1 + rng.below(3) {
                lines.insert(i, line.clone());
            }
        }
        2 => {
            let (a, b) = (rng.below(n), rng.below(n));
            lines.swap(a, b);
        }
        3..=5 => {
            // Replace one token (cell, number, string) with an interesting one.
            replace_token(rng, text, |rng| rng.pick(&INTERESTING_TOKENS).to_string());
            return;
        }
        6 => {
            replace_token(rng, text, |rng| {
                let digits = 1 + rng.below(40);
                let mut s: String = (0..digits)
                    .map(|_| (b'0' + rng.below(10) as u8) as char)
                    .collect();
                if rng.one_in(3) {
                    s.insert(0, '-');
                }
                if rng.one_in(3) {
                    s.push_str(&format!("e{}", rng.below(700) as i64 - 350));
                }
                s
            });
            return;
        }
        7 => {
            // Delete or duplicate a cell of one line.
            let i = rng.below(n);
            let mut cells: Vec<String> = lines[i].split(',').map(str::to_string).collect();
            let c = rng.below(cells.len());
            if rng.one_in(2) {
                cells.remove(c);
            } else {
                let cell = cells[c].clone();
                cells.insert(c, cell);
            }
            lines[i] = cells.join(",");
        }
        8 => {
            let at = char_boundary(text, rng.below(text.len() + 1));
            text.insert(
                at,
                *rng.pick(&['"', '\'', ',', '\n', '\r', '\\', '{', '[', '\u{FEFF}']),
            );
            return;
        }
        9 => {
            let from = *rng.pick(&[',', ':', '"', '\n']);
            let to = *rng.pick(&[';', '\t', ' ', '"', ',']);
            *text = text.replacen(from, &to.to_string(), 1 + rng.below(8));
            return;
        }
        10 if !others.is_empty() => {
            let other = String::from_utf8_lossy(rng.pick(others).as_slice()).into_owned();
            let other: Vec<&str> = other.split('\n').collect();
            let line = rng.pick(&other).to_string();
            lines.insert(rng.below(n + 1), line);
        }
        _ => {
            // Long lines and many columns: the size a small edit can claim.
            let i = rng.below(n);
            let line = lines[i].clone();
            let repeat = 1 + rng.below(64);
            lines[i] = vec![line; repeat].join(",");
        }
    }
    *text = lines.join("\n");
}

/// Replaces a token delimited by CSV/JSON punctuation or whitespace with `make`'s result.
fn replace_token(rng: &mut Rng, text: &mut String, make: impl FnOnce(&mut Rng) -> String) {
    let is_delim = |c: char| ",:{}[]\n\r\t ".contains(c);
    let bounds: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            match (is_delim(c), start) {
                (true, Some(s)) => {
                    v.push((s, i));
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            v.push((s, text.len()));
        }
        v
    };
    if bounds.is_empty() {
        text.push_str(&make(rng));
        return;
    }
    let (start, end) = *rng.pick(&bounds);
    let token = make(rng);
    // Keep JSON strings strings now and then, so that the parse goes past the token.
    let quoted = text[start..end].starts_with('"') && rng.one_in(2);
    let token = if quoted {
        format!("\"{token}\"")
    } else {
        token
    };
    text.replace_range(start..end, &token);
}

fn char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}
