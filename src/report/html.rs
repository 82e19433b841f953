//! The page's HTML: escaping, numbers and JSON values as inline text, tables, PNG figures
//! embedded as data URIs, and the page around them with its style.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// [`escape_html`], by its short name.
pub(super) fn esc(text: &str) -> String {
    escape_html(text)
}

/// Standard base64 (RFC 4648, with `=` padding) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |i: u32| char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
        out.push(sextet(0));
        out.push(sextet(1));
        out.push(if chunk.len() > 1 { sextet(2) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(3) } else { '=' });
    }
    out
}

/// The width and height of a PNG file's bytes (from its IHDR chunk); `None` when the bytes
/// are not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    if bytes.len() < 24 || bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let (w, h) = (word(16), word(20));
    (w > 0 && h > 0).then_some((w, h))
}

/// The HTML being written.
#[derive(Default)]
pub(super) struct Page {
    /// The HTML of `<main>` so far.
    pub(super) body: String,
    /// The run's files that could not be read, with the reason.
    pub(super) problems: Vec<String>,
}

impl Page {
    /// Records a file that could not be read (noted on the page by the caller).
    pub(super) fn problem(&mut self, why: String) {
        if !self.problems.contains(&why) {
            self.problems.push(why);
        }
    }

    /// Appends `html` as it is.
    pub(super) fn push(&mut self, html: &str) {
        self.body.push_str(html);
    }

    /// A row of a two-column table: `key` (escaped here) and its value's HTML.
    pub(super) fn kv_row(&mut self, key: &str, value_html: &str) {
        let _ = writeln!(
            self.body,
            "<tr><th scope=\"row\">{}</th><td>{value_html}</td></tr>",
            esc(key)
        );
    }

    /// A two-column table of names and values (numbers as they are written).
    pub(super) fn kv_table(&mut self, rows: &[(String, Value)]) {
        let rows: Vec<(String, String)> = rows
            .iter()
            .map(|(k, v)| {
                let html = match v {
                    Value::Number(n) => esc(&n.to_string()),
                    v => inline_value(v),
                };
                (k.clone(), html)
            })
            .collect();
        self.kv_rows(&rows);
    }

    /// A two-column table of names (escaped here) and values (HTML already).
    pub(super) fn kv_rows(&mut self, rows: &[(String, String)]) {
        self.push("<div class=\"wide\"><table class=\"kv\">\n");
        for (k, html) in rows {
            self.kv_row(k, html);
        }
        self.push("</table></div>\n");
    }

    /// A table; `header` and the cells are HTML already.
    pub(super) fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        // Inside a box of its own that scrolls, so that a table of many folds never widens
        // the page.
        self.push("<div class=\"wide\"><table>\n<thead><tr>");
        for h in header {
            let _ = write!(self.body, "<th scope=\"col\">{h}</th>");
        }
        self.push("</tr></thead>\n<tbody>\n");
        for row in rows {
            self.push("<tr>");
            for (i, cell) in row.iter().enumerate() {
                if i == 0 {
                    let _ = write!(self.body, "<th scope=\"row\">{cell}</th>");
                } else {
                    let _ = write!(self.body, "<td>{cell}</td>");
                }
            }
            self.push("</tr>\n");
        }
        self.push("</tbody>\n</table></div>\n");
    }

    /// A figure of a PNG file embedded as a data URI; a note when it is not a readable PNG.
    pub(super) fn figure(&mut self, path: &Path, caption: &str) {
        if let Some(img) = self.image(path, caption) {
            let _ = writeln!(
                self.body,
                "<figure>{img}<figcaption>{}</figcaption></figure>",
                esc(caption)
            );
        }
    }

    /// An `<img>` of the PNG file `path` embedded as a data URI, with its size and `alt`
    /// text. `None` when the file cannot be read or is not a PNG: then a note on the page
    /// names it, and it is recorded as a problem.
    pub(super) fn image(&mut self, path: &Path, alt: &str) -> Option<String> {
        let why = match std::fs::read(path) {
            Err(e) => e.to_string(),
            Ok(bytes) => match png_size(&bytes) {
                Some((w, h)) => {
                    return Some(format!(
                        "<img src=\"data:image/png;base64,{}\" width=\"{w}\" height=\"{h}\" \
                         alt=\"{}\">",
                        base64(&bytes),
                        esc(alt)
                    ));
                }
                None => "not a PNG image".into(),
            },
        };
        let _ = writeln!(
            self.body,
            "<p class=\"note\">{}: {}.</p>",
            esc(&path.display().to_string()),
            esc(&why)
        );
        self.problem(format!("{}: {why}", path.display()));
        None
    }

    /// The whole page: head, style, the body written and the footer.
    pub(super) fn finish(self, title: &str) -> String {
        let mut html = String::with_capacity(self.body.len() + 4096);
        html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        // Nothing may be fetched and nothing run: images come as data URIs, style inline.
        html.push_str(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             img-src data:; style-src 'unsafe-inline'\">\n",
        );
        html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        let _ = writeln!(html, "<title>{}</title>", esc(title));
        html.push_str(STYLE);
        html.push_str("</head>\n<body>\n<main>\n");
        html.push_str(&self.body);
        html.push_str(
            "</main>\n<footer id=\"end\"><p>Written by <code>med-crossvit report</code>: one \
             file, images embedded, nothing loaded from elsewhere.</p></footer>\n</body>\n\
             </html>\n",
        );
        html
    }
}

/// The page's style: system fonts, tables and a grid of figures on screen; A4 pages,
/// figures and tables kept whole, no navigation in print.
const STYLE: &str = "<style>
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif;
  color: #1b1b1b; background: #fff; margin: 0; line-height: 1.4; overflow-wrap: break-word; }
main { max-width: 1140px; margin: 0 auto; padding: 1.5rem 1.5rem 0; }
footer { max-width: 1140px; margin: 2rem auto 1rem; padding: 0 1.5rem; color: #666;
  font-size: 0.85rem; }
h1 { font-size: 1.7rem; margin: 0 0 0.6rem; }
h2 { font-size: 1.35rem; border-bottom: 2px solid #2a5d8f; padding-bottom: 0.2rem;
  margin-top: 2.2rem; }
h3 { font-size: 1.1rem; margin: 1.4rem 0 0.5rem; }
h4 { font-size: 0.95rem; margin: 1rem 0 0.3rem; }
code { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 0.9em; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 1.2rem; }
nav a { color: #2a5d8f; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.wide { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.4rem 0 0.8rem; font-size: 0.9rem; }
th, td { border: 1px solid #cfd6de; padding: 0.25rem 0.55rem; text-align: left;
  vertical-align: top; }
thead th { background: #eef2f6; }
tbody th { font-weight: normal; background: #f8f9fb; }
td { font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
table.kv th { background: #f8f9fb; font-weight: normal; min-width: 12rem;
  overflow-wrap: anywhere; }
.lead { font-size: 1.05rem; }
.what { color: #666; font-size: 0.85em; }
.ci { color: #444; white-space: nowrap; }
.none { color: #999; }
.note { color: #666; font-size: 0.9rem; }
.blocks { display: flex; flex-wrap: wrap; gap: 0 2rem; align-items: flex-start; }
.block { flex: 0 1 auto; }
.slide table { margin-bottom: 0.2rem; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; flex: 0 1 540px; }
figure img { display: block; width: 100%; height: auto; border: 1px solid #e3e7ec; }
img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #444; margin-top: 0.25rem; }
.heatmap { margin-bottom: 1.6rem; }
.heatmap figure.overlay { max-width: 720px; }
.crops { display: flex; flex-wrap: wrap; gap: 0.5rem; margin: 0.3rem 0; }
.crops figure { flex: 0 0 128px; }
.crops figcaption { font-size: 0.75rem; }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  body { font-size: 9.5pt; }
  main, footer { max-width: none; padding: 0; }
  nav { display: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  section:not(#results) { break-before: page; page-break-before: always; }
  .wide { overflow: visible; }
  .heatmap { break-inside: avoid; page-break-inside: avoid; }
  h3, h4 { break-after: avoid; page-break-after: avoid; }
  .blocks { display: block; column-count: 2; column-gap: 8mm; column-fill: auto; }
  .block { break-inside: avoid; page-break-inside: avoid; margin-bottom: 3mm; }
  table.kv th { min-width: 0; }
  table, figure, tr { break-inside: avoid; page-break-inside: avoid; }
  table { font-size: 8.5pt; }
  figure { flex: 0 1 48%; }
  figure img { border: none; }
  a { color: inherit; text-decoration: none; }
  thead th, tbody th, table.kv th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
</style>
";

/// A measured number as the report shows it: three decimals, or three significant digits in
/// scientific notation for very small or large values.
pub(super) fn number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        "0.000".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// A JSON value as escaped inline HTML: numbers by [`number`], `null` as a dash, lists in
/// brackets (long ones cut), objects as compact JSON (long ones cut).
pub(super) fn inline_value(v: &Value) -> String {
    const MAX_ITEMS: usize = 12;
    const MAX_CHARS: usize = 240;
    match v {
        Value::Null => "<span class=\"none\">—</span>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(f)) => number(f),
            _ => esc(&n.to_string()),
        },
        Value::String(s) => esc(s),
        Value::Array(items) if items.iter().any(Value::is_object) => compact_json(v, MAX_CHARS),
        Value::Array(items) => {
            let mut parts: Vec<String> = items.iter().take(MAX_ITEMS).map(inline_value).collect();
            if items.len() > MAX_ITEMS {
                parts.push(format!("… {} in all", items.len()));
            }
            format!("[{}]", parts.join(", "))
        }
        Value::Object(_) => compact_json(v, MAX_CHARS),
    }
}

/// A value as compact JSON in `<code>`, cut after `max` characters.
fn compact_json(v: &Value, max: usize) -> String {
    let text = v.to_string();
    let count = text.chars().count();
    if count > max {
        let cut: String = text.chars().take(max).collect();
        format!("<code>{}</code>… ({count} characters)", esc(&cut))
    } else {
        format!("<code>{}</code>", esc(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">R&D's</a>"),
            "&lt;a href=&quot;x&quot;&gt;R&amp;D&#39;s&lt;/a&gt;"
        );
    }

    #[test]
    fn png_sizes_come_from_the_header() {
        let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
        bytes.extend(b"IHDR");
        bytes.extend(800u32.to_be_bytes());
        bytes.extend(500u32.to_be_bytes());
        assert_eq!(png_size(&bytes), Some((800, 500)));
        assert_eq!(png_size(b"GIF89a"), None);
        bytes[1] = b'X';
        assert_eq!(png_size(&bytes), None);
    }
}
