//! The page's settings section: the sections of `config.json` as tables of their fields,
//! long values cut with a note, so that the page never scrolls sideways.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::run::files;

use super::html::{Page, esc, inline_value};
use super::read::{Run, flatten};

/// Characters of a setting shown before it is cut (the pathway groups of a tokenizer run to
/// thousands).
pub(super) const SETTING_CHARS: usize = 200;

impl Run {
    /// The settings section: the sections of `config.json` as tables of their fields.
    pub(super) fn settings(&self, page: &mut Page) {
        page.push("<section id=\"settings\">\n<h2>Settings</h2>\n");
        page.push(&format!(
            "<p class=\"note\">From <code>{}</code>.</p>\n",
            files::CONFIG
        ));
        let sections = [
            ("training", "Training"),
            ("model", "Model"),
            ("data", "Data source"),
            ("columns", "Cohort columns"),
        ];
        let shown: BTreeSet<&str> = sections.iter().map(|(key, _)| *key).collect();
        page.push("<div class=\"blocks\">\n");
        for (key, title) in sections {
            match self.config.get(key) {
                Some(Value::Object(map)) => settings_block(page, title, &flatten(map)),
                Some(Value::Null) | None => {
                    if key == "data" {
                        page.push(&format!(
                            "<div class=\"block\">\n<h3>{title}</h3>\n<p class=\"note\">Not \
                             recorded (an imported model).</p>\n</div>\n"
                        ));
                    }
                }
                Some(other) => settings_block(page, title, &[(key.to_string(), other.clone())]),
            }
        }
        let rest: Vec<(String, Value)> = self
            .config
            .iter()
            .filter(|(k, v)| !shown.contains(k.as_str()) && !v.is_null())
            .flat_map(|(k, v)| match v {
                Value::Object(map) => flatten(map)
                    .into_iter()
                    .map(|(sub, v)| (format!("{k}.{sub}"), v))
                    .collect(),
                _ => vec![(k.clone(), v.clone())],
            })
            .collect();
        if !rest.is_empty() {
            settings_block(page, "Other", &rest);
        }
        page.push("</div>\n</section>\n");
    }
}

/// One block of settings: its title and a table of its fields, by [`setting_value`].
fn settings_block(page: &mut Page, title: &str, rows: &[(String, Value)]) {
    page.push(&format!("<div class=\"block\">\n<h3>{}</h3>\n", esc(title)));
    let rows: Vec<(String, String)> = rows
        .iter()
        .map(|(k, v)| (k.clone(), setting_value(v)))
        .collect();
    page.kv_rows(&rows);
    page.push("</div>\n");
}

/// A setting as escaped inline HTML: as [`inline_value`] writes it (numbers as they are
/// written), or, when its text (a string's, else its compact JSON) is longer than
/// [`SETTING_CHARS`] characters, its first characters and a note of its length and where
/// the full value is.
pub(super) fn setting_value(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let count = text.chars().count();
    if count <= SETTING_CHARS {
        return match v {
            Value::Number(n) => esc(&n.to_string()),
            v => inline_value(v),
        };
    }
    let cut: String = text.chars().take(SETTING_CHARS).collect();
    format!(
        "<code>{}</code>… <span class=\"note\">({} characters; full value in {})</span>",
        esc(&cut),
        thousands(count),
        files::CONFIG
    )
}

/// `n` with commas between groups of three digits: `14,586`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_settings_are_cut_with_their_length_and_short_ones_kept() {
        assert_eq!(thousands(14586), "14,586");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(0), "0");
        // 300 groups of one gene each: far beyond the limit.
        let groups: Vec<Value> = (0..300)
            .map(|i| serde_json::json!({"name": format!("P{i}"), "genes": [format!("G{i}")]}))
            .collect();
        let value = Value::Array(groups);
        let full = value.to_string();
        let html = setting_value(&value);
        let note = format!(
            "({} characters; full value in config.json)",
            thousands(full.chars().count())
        );
        assert!(html.contains(&note), "{html}");
        let shown = html
            .strip_prefix("<code>")
            .and_then(|h| h.split("</code>").next())
            .unwrap();
        // The first 200 characters, escaped.
        let first: String = full.chars().take(SETTING_CHARS).collect();
        assert_eq!(shown, esc(&first));
        assert!(!html.contains("P299"), "{html}");
        // A long string is cut as well; short values are shown whole.
        let long = Value::String("x<".repeat(150));
        assert!(setting_value(&long).contains("(300 characters;"));
        assert_eq!(setting_value(&serde_json::json!(0.25)), "0.25");
        assert_eq!(setting_value(&serde_json::json!("<b>")), "&lt;b&gt;");
        let exactly = Value::String("y".repeat(SETTING_CHARS));
        assert_eq!(setting_value(&exactly), "y".repeat(SETTING_CHARS));
    }
}
