//! TensorBoard event files: decoded here by hand (the record framing with its CRCs and the
//! protobuf fields), and read by the `tensorboard` package's own reader, against
//! `metrics.csv`; a resumed run continues its file, with each epoch once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, TinyRun, bin, text};

/// CRC32C computed bit by bit (independently of the library's table).
fn crc32c(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// The masked CRC as TFRecord's documentation writes it.
#[allow(clippy::manual_rotate)]
fn masked(bytes: &[u8]) -> u32 {
    let c = crc32c(bytes);
    ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8)
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// The protobuf fields of `b` as `(field, wire type, bytes or value)`.
fn fields(b: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let key = varint(b, &mut at);
        let (field, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => varint(b, &mut at).to_le_bytes().to_vec(),
            1 => {
                at += 8;
                b[at - 8..at].to_vec()
            }
            2 => {
                let n = varint(b, &mut at) as usize;
                at += n;
                b[at - n..at].to_vec()
            }
            5 => {
                at += 4;
                b[at - 4..at].to_vec()
            }
            other => panic!("wire type {other}"),
        };
        out.push((field, wire, value));
    }
    out
}

/// One decoded event: its step, file version, and scalars.
#[derive(Debug, Default)]
struct Event {
    step: u64,
    version: Option<String>,
    scalars: BTreeMap<String, f32>,
}

/// Every record of an event file, each CRC checked.
fn decode(path: &Path) -> Vec<Event> {
    let b = std::fs::read(path).unwrap();
    let mut at = 0;
    let mut events = Vec::new();
    while at < b.len() {
        let length = &b[at..at + 8];
        let n = u64::from_le_bytes(length.try_into().unwrap()) as usize;
        assert_eq!(
            masked(length).to_le_bytes(),
            b[at + 8..at + 12],
            "length CRC"
        );
        let data = &b[at + 12..at + 12 + n];
        assert_eq!(
            masked(data).to_le_bytes(),
            b[at + 12 + n..at + 16 + n],
            "data CRC"
        );
        at += 16 + n;
        let mut event = Event::default();
        for (field, wire, value) in fields(data) {
            match (field, wire) {
                (1, 1) => assert!(f64::from_le_bytes(value.try_into().unwrap()) > 1e9),
                (2, 0) => event.step = u64::from_le_bytes(value.try_into().unwrap()),
                (3, 2) => event.version = Some(String::from_utf8(value).unwrap()),
                (5, 2) => {
                    for (f, _, v) in fields(&value) {
                        assert_eq!(f, 1, "Summary.value");
                        let parts = fields(&v);
                        let tag = String::from_utf8(parts[0].2.clone()).unwrap();
                        assert_eq!((parts[1].0, parts[1].1), (2, 5), "simple_value");
                        let x = f32::from_le_bytes(parts[1].2.clone().try_into().unwrap());
                        event.scalars.insert(tag, x);
                    }
                }
                other => panic!("unexpected field {other:?}"),
            }
        }
        events.push(event);
    }
    events
}

/// `metrics.csv` as `(epoch, column → value)`, empty cells left out.
fn metrics_csv(path: &Path) -> Vec<(u64, BTreeMap<String, f64>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let values = header[1..]
                .iter()
                .zip(&cells[1..])
                .filter(|(_, c)| !c.is_empty())
                .map(|(h, c)| (h.to_string(), c.parse().unwrap()))
                .collect();
            (cells[0].parse().unwrap(), values)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// The only event file in `dir`.
fn event_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    // events.out.tfevents.{10-digit seconds}.{host}
    let rest = name.strip_prefix("events.out.tfevents.").unwrap();
    let (secs, host) = rest.split_once('.').unwrap();
    assert!(
        secs.len() == 10 && secs.chars().all(|c| c.is_ascii_digit()),
        "{name}"
    );
    assert!(!host.is_empty(), "{name}");
    files[0].clone()
}

/// Checks that the event file in `dir` holds exactly `metrics.csv` of `run`: the version
/// event, then one event per epoch in order, each with every non-empty cell.
fn check_against_csv(dir: &Path, run: &Path) {
    let events = decode(&event_file(dir));
    assert_eq!(events[0].version.as_deref(), Some("brain.Event:2"));
    let rows = metrics_csv(&run.join("metrics.csv"));
    assert_eq!(events.len(), rows.len() + 1, "{}", dir.display());
    for (event, (epoch, values)) in events[1..].iter().zip(&rows) {
        assert_eq!(event.step, *epoch);
        let tags: Vec<&String> = event.scalars.keys().collect();
        assert_eq!(tags, values.keys().collect::<Vec<_>>(), "epoch {epoch}");
        for (tag, v) in values {
            assert!(
                close(f64::from(event.scalars[tag]), *v),
                "{tag} at {epoch}: {} vs {v}",
                event.scalars[tag]
            );
        }
    }
}

#[test]
fn every_fold_writes_metrics_csv_as_events_and_a_resumed_run_continues_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = TinyRun::new(dir.path());
    let extra = dir.path().join("board");
    let args = run.args(
        "cv",
        &run.features,
        &[
            "--folds",
            "2",
            "--stop-after-epoch",
            "1",
            "--tensorboard",
            extra.to_str().unwrap(),
        ],
    );
    let o = bin(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o).1);
    let cv = dir.path().join("cv");
    let fold0 = event_file(&cv.join("tensorboard/fold_0"));
    assert_eq!(decode(&fold0).len(), 2, "the version and epoch 1");
    // A record torn by a crash at the end of the file: cut off when the run goes on.
    let mut bytes = std::fs::read(&fold0).unwrap();
    bytes.extend_from_slice(&[42, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    std::fs::write(&fold0, bytes).unwrap();
    let o = bin(&["train", "--resume", cv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o).1);
    for k in 0..2 {
        let fold = cv.join(format!("fold_{k}"));
        check_against_csv(&cv.join(format!("tensorboard/fold_{k}")), &fold);
        check_against_csv(&extra.join(format!("fold_{k}")), &fold);
    }
    // The same file, continued: its name did not change.
    assert_eq!(event_file(&cv.join("tensorboard/fold_0")), fold0);

    // A new run into a folder holding another run's events is refused.
    let args = run.args(
        "again",
        &run.features,
        &["--tensorboard", extra.join("fold_0").to_str().unwrap()],
    );
    let o = bin(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("already holds the TensorBoard events"),
        "{}",
        text(&o).1
    );
    assert!(
        !dir.path().join("again").exists(),
        "refused before writing anything"
    );
    // The folder above the folds, too: a new run would write its folds' curves there.
    let args = run.args(
        "again",
        &run.features,
        &["--tensorboard", extra.to_str().unwrap()],
    );
    let o = bin(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("fold_0 already holds"),
        "{}",
        text(&o).1
    );
}

#[test]
fn tensorboard_reads_the_same_values_as_metrics_csv() {
    let Some(python) = std::env::var_os("MED_CROSSVIT_PYTHON") else {
        assert!(
            std::env::var_os("MED_CROSSVIT_REQUIRE_TENSORBOARD").is_none(),
            "MED_CROSSVIT_REQUIRE_TENSORBOARD is set but MED_CROSSVIT_PYTHON is not"
        );
        support::skipped(
            "tensorboard::tensorboard_reads_the_same_values_as_metrics_csv",
            "MED_CROSSVIT_PYTHON is not set",
            "set it to a Python with the tensorboard package, or set \
             MED_CROSSVIT_REQUIRE_TENSORBOARD=1 to make this an error",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = TinyRun::new(dir.path());
    let args = run.args("single", &run.features, &[]);
    let o = bin(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o).1);
    let out = dir.path().join("single");
    let script = support::manifest_dir().join("tests/fixtures/read_tensorboard.py");
    let o = Command::new(&python)
        .arg(&script)
        .arg(out.join("tensorboard"))
        .output()
        .expect("MED_CROSSVIT_PYTHON runs");
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let mut seen: BTreeMap<(u64, String), f64> = BTreeMap::new();
    for line in stdout.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let key = (cells[1].parse().unwrap(), cells[0].to_string());
        assert!(
            seen.insert(key, cells[2].parse().unwrap()).is_none(),
            "{line} twice"
        );
    }
    let mut want = BTreeMap::new();
    for (epoch, values) in metrics_csv(&out.join("metrics.csv")) {
        for (tag, v) in values {
            want.insert((epoch, tag), v);
        }
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{stdout}"
    );
    for (key, v) in &want {
        assert!(close(seen[key], *v), "{key:?}: {} vs {v}", seen[key]);
    }
}
