//! How a message shows a cell or a list of names: long values cut ([`cut`], [`cut_list`]).
//! A leaf: it imports nothing from the rest of `data/`, so that [`DataError`](super::DataError)
//! can use it.

/// How many characters of a cell a message shows before cutting it (see [`cut`]): enough for
/// a whole TCGA slide id (`TCGA-05-4244-01Z-00-DX1.` and a UUID: 60 characters, 64 with
/// `.svs`), so that real ids are never cut.
pub const SHOWN_CHARS: usize = 80;

/// `value` as a message shows it: whole when it has at most [`SHOWN_CHARS`] characters, else
/// its first [`SHOWN_CHARS`] characters, then `… (N characters)`.
pub fn cut(value: &str) -> String {
    let n = value.chars().count();
    if n <= SHOWN_CHARS {
        return value.to_string();
    }
    let shown: String = value.chars().take(SHOWN_CHARS).collect();
    format!("{shown}… ({n} characters)")
}

/// A list of names as a message shows it: at most `max` of them, each cut (see [`cut`]), then
/// `… (N in all)`.
pub fn cut_list(names: &[String], max: usize) -> String {
    let mut shown: Vec<String> = names.iter().take(max).map(|n| cut(n)).collect();
    if names.len() > max {
        shown.push(format!("… ({} in all)", names.len()));
    }
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_with_their_length() {
        assert_eq!(cut("short"), "short");
        let long = "x".repeat(1_000_000);
        let shown = cut(&long);
        assert_eq!(shown, format!("{}… (1000000 characters)", "x".repeat(80)));
        assert_eq!(cut(&"é".repeat(80)), "é".repeat(80));
        let slide = "TCGA-05-4244-01Z-00-DX1.d4ff32cd-38cf-40ea-8213-45c2b100ac01.svs";
        assert_eq!(cut(slide), slide);
    }
}
