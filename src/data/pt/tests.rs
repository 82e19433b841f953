//! The `.pt` reader on the fixtures written by `make_pt_fixtures.py`, and on damaged and
//! hostile files.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use zip::{CompressionMethod, ZipArchive};

use super::pickle::{MAX_PICKLE_OPS, Unpickler};
use super::*;

/// Fixture directory, relative to the crate root (written by its
/// `make_pt_fixtures.py`).
const FIXTURES: &str = "tests/fixtures/pt";

fn fixture(name: &str) -> PathBuf {
    // Read when the test runs: the binary may have been built from another checkout.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join(FIXTURES)
        .join(name)
}

/// A temporary file path unique to this process and `tag`.
fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pt-test-{}-{tag}.pt", std::process::id()))
}

/// `expected.json` has one line per file:
/// `"name.pt": {"shape": [r, c], "values": [[...], ...]}`. Parsed by hand to avoid a
/// dev-dependency; returns (rows, cols, flat values).
fn expected(name: &str) -> (usize, usize, Vec<f32>) {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    let key = format!("\"{name}\":");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&key))
        .unwrap_or_else(|| panic!("{name} not in expected.json"));
    let numbers = |field: &str| -> Vec<f64> {
        let at = line.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
        let rest = line[at..].trim_start();
        let mut depth = 0;
        let mut end = 0;
        for (i, ch) in rest.char_indices() {
            match ch {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = i;
                break;
            }
        }
        rest[..end]
            .split([',', '[', ']'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect()
    };
    let shape = numbers("shape");
    let values = numbers("values").into_iter().map(|v| v as f32).collect();
    (shape[0] as usize, shape[1] as usize, values)
}

#[test]
fn send_sync() {
    fn check<T: Send + Sync>() {}
    check::<PtMatrix>();
    check::<PtError>();
}

#[test]
fn readable_files_match_expected() {
    for (name, dtype) in [
        ("f32.pt", PtDtype::F32),
        ("f16.pt", PtDtype::F16),
        ("bf16.pt", PtDtype::BF16),
        ("f64.pt", PtDtype::F64),
        ("offset.pt", PtDtype::F32),
        ("transposed.pt", PtDtype::F32),
        ("empty.pt", PtDtype::F32),
        ("sliced.pt", PtDtype::F32),
        ("param.pt", PtDtype::F32),
        ("deflated.pt", PtDtype::F32),
    ] {
        let m = PtMatrix::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (rows, cols, values) = expected(name);
        assert_eq!(
            (m.rows(), m.cols(), m.dtype()),
            (rows, cols, dtype),
            "{name}"
        );
        assert_eq!(values.len(), rows * cols, "{name}");
        assert_eq!(m.read_all().unwrap(), values, "{name}");
    }
}

#[test]
fn read_rows_any_order() {
    for name in [
        "f32.pt",
        "f16.pt",
        "bf16.pt",
        "f64.pt",
        "offset.pt",
        "transposed.pt",
        "sliced.pt",
        "deflated.pt",
    ] {
        let m = PtMatrix::open(&fixture(name)).unwrap();
        let (_, cols, values) = expected(name);
        let rows = [3, 1, 1, 4, 0, 2, 3, 4];
        let got = m.read_rows(&rows).unwrap();
        let want: Vec<f32> = rows
            .iter()
            .flat_map(|&r| values[r * cols..(r + 1) * cols].iter().copied())
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(m.read_rows(&[]).unwrap(), Vec::<f32>::new());
    }
}

#[test]
fn out_of_range_row_is_an_error() {
    let m = PtMatrix::open(&fixture("f32.pt")).unwrap();
    match m.read_rows(&[0, 5]) {
        Err(PtError::Format(msg)) => assert!(msg.contains("row 5"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        m.read_rows(&[usize::MAX]),
        Err(PtError::Format(_))
    ));
    let empty = PtMatrix::open(&fixture("empty.pt")).unwrap();
    assert!(matches!(empty.read_rows(&[0]), Err(PtError::Format(_))));
}

#[test]
fn bad_files_give_the_right_error() {
    for name in ["one_d.pt", "three_d.pt", "int64.pt", "dict.pt"] {
        match PtMatrix::open(&fixture(name)) {
            Err(PtError::NotMatrix(msg)) => eprintln!("{name}: {msg}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    match PtMatrix::open(&fixture("legacy.pt")) {
        Err(PtError::Format(msg)) => assert!(msg.contains("legacy"), "{msg}"),
        other => panic!("{other:?}"),
    }
    match PtMatrix::open(&fixture("big_endian.pt")) {
        Err(PtError::Format(msg)) => assert!(msg.contains("big-endian"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        PtMatrix::open(&fixture("expected.json")),
        Err(PtError::Format(_))
    ));
    assert!(matches!(
        PtMatrix::open(&fixture("does-not-exist.pt")),
        Err(PtError::Io(_))
    ));
}

#[test]
fn messages_name_what_was_found() {
    let msg = |name| PtMatrix::open(&fixture(name)).unwrap_err().to_string();
    assert_eq!(msg("one_d.pt"), "a 1-D tensor of shape [7]");
    assert_eq!(msg("three_d.pt"), "a 3-D tensor of shape [2, 3, 4]");
    assert_eq!(msg("int64.pt"), "an int64 tensor of shape [5, 4]");
    assert_eq!(msg("dict.pt"), "a dict (keys 'features'), not a tensor");
}

#[test]
fn threads_share_one_matrix() {
    let m = PtMatrix::open(&fixture("f32.pt")).unwrap();
    let all = m.read_all().unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (m, all) = (&m, &all);
            s.spawn(move || {
                for _ in 0..50 {
                    let r = t % m.rows();
                    let got = m.read_rows(&[r]).unwrap();
                    assert_eq!(got, all[r * m.cols()..(r + 1) * m.cols()]);
                }
            });
        }
    });
}

/// Opens and fully reads `bytes` written to `path`; must never panic.
fn try_bytes(path: &Path, bytes: &[u8]) -> Option<Vec<f32>> {
    std::fs::write(path, bytes).unwrap();
    let m = PtMatrix::open(path).ok()?;
    let _ = m.read_rows(&[m.rows().saturating_sub(1), 0]);
    m.read_all().ok()
}

#[test]
fn truncated_files_never_panic() {
    let bytes = std::fs::read(fixture("f32.pt")).unwrap();
    let path = temp_path("truncated");
    for len in 0..bytes.len() {
        if let Some(values) = try_bytes(&path, &bytes[..len]) {
            // Only the zip's trailing entries may go missing without an error.
            assert_eq!(values.len(), 20, "prefix {len}");
        }
    }
    assert!(try_bytes(&path, &bytes).is_some());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn flipped_bytes_never_panic() {
    // Each case writes a file, so keep the count moderate (about 8000 files).
    let cases: [(&str, &[u8]); 4] = [
        ("f32.pt", &[0x01, 0xff]),
        ("transposed.pt", &[0xff]),
        ("dict.pt", &[0xff]),
        ("deflated.pt", &[0x01, 0xff]),
    ];
    for (name, masks) in cases {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let path = temp_path(&format!("flipped-{name}"));
        let mut copy = bytes.clone();
        for i in 0..bytes.len() {
            for &mask in masks {
                copy[i] = bytes[i] ^ mask;
                try_bytes(&path, &copy);
            }
            copy[i] = bytes[i];
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// The entries of a fixture, in order.
fn entries(name: &str) -> Vec<(String, Vec<u8>)> {
    let mut zip = ZipArchive::new(File::open(fixture(name)).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.name().unwrap().into_owned(), bytes)
        })
        .collect()
}

/// A stored zip of `entries`, with `pickle` in place of the `data.pkl` entry.
fn zip_with_pickle(entries: &[(String, Vec<u8>)], pickle: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let options =
        zip::write::SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        w.start_file(name.as_str(), options).unwrap();
        let bytes = if name.ends_with("/data.pkl") {
            pickle
        } else {
            bytes
        };
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Mutated pickles inside a well-formed zip (the zip's CRC would otherwise catch most
/// flips): every truncation and every byte flipped, through `open` and the reads.
#[test]
fn mutated_pickles_never_panic() {
    for name in ["f32.pt", "transposed.pt", "offset.pt"] {
        let entries = entries(name);
        let pickle = &entries
            .iter()
            .find(|(n, _)| n.ends_with("/data.pkl"))
            .unwrap()
            .1;
        let path = temp_path(&format!("pickle-{name}"));
        let (mut ok, mut failed) = (0, 0);
        let mut check = |p: &[u8]| match try_bytes(&path, &zip_with_pickle(&entries, p)) {
            Some(_) => ok += 1,
            None => failed += 1,
        };
        check(pickle);
        for len in 0..pickle.len() {
            check(&pickle[..len]);
        }
        let mut copy = pickle.clone();
        for i in 0..pickle.len() {
            for mask in [0x01, 0x02, 0x10, 0x80, 0xff] {
                copy[i] = pickle[i] ^ mask;
                check(&copy);
            }
            copy[i] = pickle[i];
        }
        assert!(
            ok > 1 && failed > pickle.len(),
            "{name}: {ok} ok, {failed} failed"
        );
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn hostile_pickles_are_format_errors() {
    let cases: &[&[u8]] = &[
        b"",
        b"\x80\x02",
        b"\x80\x02.",
        b"\x80\x02t.",
        b"\x80\x02X\xff\xff\xff\xff",
        b"\x80\x02\x8a\xff",
        b"\x80\x02K\x01q\x00h\x01.",
        b"\x80\x02I1\n.",
        b"\x80\x02Q.",
        b"\x80\x02(0.",
    ];
    for &case in cases {
        assert!(matches!(
            Unpickler::new(case).load(),
            Err(PtError::Format(_))
        ));
    }
    // Deeply nested tuples are refused, not recursed into.
    let mut deep = b"\x80\x02)".to_vec();
    deep.extend(std::iter::repeat_n(0x85u8, 100_000));
    deep.push(b'.');
    assert!(matches!(
        Unpickler::new(&deep).load(),
        Err(PtError::Format(_))
    ));
    // Endless memo growth stops at the opcode limit.
    let mut big = b"\x80\x02N".to_vec();
    for _ in 0..(MAX_PICKLE_OPS / 2 + 10) {
        big.push(0x94);
        big.push(b'2');
    }
    assert!(matches!(
        Unpickler::new(&big).load(),
        Err(PtError::Format(_))
    ));
}
