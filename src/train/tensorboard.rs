//! TensorBoard event files of a fit: every scalar of `metrics.csv`, one event per epoch
//! (`step` = the epoch), so that `tensorboard --logdir RUN/tensorboard` draws the curves
//! (each fold of a cross-validation as its own run).
//!
//! The format, written by hand (it is small, and no maintained crate writes only it):
//!
//! - the file is a TFRecord stream: per record `length: u64` (little-endian),
//!   `masked_crc32c(length bytes): u32`, the `length` bytes of data,
//!   `masked_crc32c(data): u32`; `masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8`
//!   (wrapping), CRC32C being the Castagnoli polynomial (reflected `0x82F63B78`);
//! - each record's data is a protobuf `Event { double wall_time = 1; int64 step = 2;
//!   string file_version = 3; Summary summary = 5; }`, the first one holding only
//!   `file_version = "brain.Event:2"`;
//! - `Summary { repeated Value value = 1; }`, `Value { string tag = 1; float
//!   simple_value = 2; }`; the tags are the column names of `metrics.csv` (`lr`,
//!   `train_loss`, `val_loss`, `val_auc`, …), an empty cell of the CSV being no value;
//! - the file is named `events.out.tfevents.{seconds since 1970, 10 digits}.{host}`, as
//!   TensorFlow's own writer names it, and TensorBoard reads any file whose name holds
//!   `tfevents`.
//!
//! The file always holds the fit's kept history, each epoch once: `sync` runs after every
//! checkpoint, reads the folder's event file back (checking every CRC), cuts it after the
//! last whole record of an epoch still kept (a run killed while writing, or resumed from an
//! earlier checkpoint, leaves a torn record or later epochs there) and appends the epochs
//! the file lacks. A resumed run thus continues the same file, with no step twice and none
//! missing.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::eval::EpochRow;
use crate::run::{Error, RunError, RunFileError};

/// The start of every event file's name.
pub const EVENT_FILE_PREFIX: &str = "events.out.tfevents.";

/// What the first event of a file says: the version of the event format.
const FILE_VERSION: &str = "brain.Event:2";

/// The CRC32C table (Castagnoli polynomial, reflected), one entry per byte value.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC32C of `bytes` (the checksum TFRecord uses; `crc32c(b"123456789") = 0xE3069283`).
pub fn crc32c(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| {
        CRC32C_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// The masked CRC32C of TFRecord: the CRC rotated right by 15 bits plus `0xa282ead8`.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let c = crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: the framed `data`.
fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// Appends a protobuf varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-delimited protobuf field (wire type 2).
fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// An `Event` holding the file version alone.
fn version_event(wall_time: f64) -> Vec<u8> {
    let mut event = Vec::new();
    varint(&mut event, (1 << 3) | 1);
    event.extend_from_slice(&wall_time.to_le_bytes());
    bytes_field(&mut event, 3, FILE_VERSION.as_bytes());
    event
}

/// An `Event` at `step` with one `simple_value` per `(tag, value)`.
fn scalars_event(wall_time: f64, step: u64, scalars: &[(String, f64)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, v) in scalars {
        let mut value = Vec::new();
        bytes_field(&mut value, 1, tag.as_bytes());
        varint(&mut value, (2 << 3) | 5);
        value.extend_from_slice(&(*v as f32).to_le_bytes());
        bytes_field(&mut summary, 1, &value);
    }
    let mut event = Vec::new();
    varint(&mut event, (1 << 3) | 1);
    event.extend_from_slice(&wall_time.to_le_bytes());
    varint(&mut event, 2 << 3);
    varint(&mut event, step);
    bytes_field(&mut event, 5, &summary);
    event
}

/// Reads a varint at `*at`, moving past it; `None` when the bytes end first.
fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The `step` of an encoded `Event` (0 when it has none, as the version event); `None` when
/// the bytes are not an event this module can read.
fn event_step(event: &[u8]) -> Option<u64> {
    let mut at = 0;
    let mut step = 0;
    while at < event.len() {
        let key = read_varint(event, &mut at)?;
        match key & 7 {
            0 => {
                let v = read_varint(event, &mut at)?;
                if key >> 3 == 2 {
                    step = v;
                }
            }
            1 => at += 8,
            2 => {
                let n = read_varint(event, &mut at)? as usize;
                at = at.checked_add(n)?;
            }
            5 => at += 4,
            _ => return None,
        }
    }
    (at == event.len()).then_some(step)
}

/// The records of an event file, as `(end offset, step)`, up to the first that is torn or
/// fails its CRC.
fn whole_records(bytes: &[u8]) -> Vec<(usize, u64)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 12) {
        let (length, crc) = header.split_at(8);
        if masked_crc32c(length).to_le_bytes() != crc {
            break;
        }
        let n = u64::from_le_bytes(length.try_into().expect("8 bytes")) as usize;
        let Some(end) = (at + 12).checked_add(n).and_then(|e| e.checked_add(4)) else {
            break;
        };
        let Some(data) = bytes.get(at + 12..at + 12 + n) else {
            break;
        };
        if bytes.get(end - 4..end) != Some(&masked_crc32c(data).to_le_bytes()[..]) {
            break;
        }
        let Some(step) = event_step(data) else { break };
        found.push((end, step));
        at = end;
    }
    found
}

/// The event file in `dir` (the last by name, i.e. the newest), if any.
fn event_file(dir: &Path) -> Result<Option<PathBuf>, RunFileError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RunFileError::io(dir)(e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(EVENT_FILE_PREFIX))
        })
        .collect();
    files.sort();
    Ok(files.pop())
}

/// Seconds since 1970, as a float (an event's `wall_time`).
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The machine's name, for the event file's name (`localhost` when unknown); characters
/// other than letters, digits, `-`, `_` and `.` become `_`.
fn host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "localhost".into());
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect()
}

/// Refuses to start a fit (no epoch done yet) whose TensorBoard folder `dir` already holds
/// an event file: its curves would be taken for this fit's.
///
/// # Errors
///
/// [`RunError::BadOption`] naming the folder and the file; [`RunFileError::Io`] when the
/// folder cannot be read.
pub(crate) fn check_fresh(dir: &Path) -> Result<(), Error> {
    match event_file(dir)? {
        None => Ok(()),
        Some(file) => Err(RunError::BadOption {
            option: "--tensorboard".into(),
            why: format!(
                "{} already holds the TensorBoard events of another run ({}); choose an empty folder",
                dir.display(),
                file.display()
            ),
        }
        .into()),
    }
}

/// [`check_fresh`] on `dir` and on each of its `fold_*` folders: what a new run checks of
/// `--tensorboard DIR` before it writes anything (whether it will have folds or not).
///
/// # Errors
///
/// As [`check_fresh`].
pub(crate) fn check_fresh_tree(dir: &Path) -> Result<(), Error> {
    check_fresh(dir)?;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && entry.file_name().to_string_lossy().starts_with("fold_") {
            check_fresh(&path)?;
        }
    }
    Ok(())
}

/// Brings the event file in `dir` (created with the folder when there is none) to `history`:
/// cut after the last whole record of an epoch in `history`, then the epochs it lacks
/// appended, one event each with `scalars(row)` (see the module documentation).
///
/// # Errors
///
/// [`RunFileError::Io`] naming the folder or file that cannot be read or written.
pub(crate) fn sync(
    dir: &Path,
    history: &[EpochRow],
    scalars: impl Fn(&EpochRow) -> Vec<(String, f64)>,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(RunFileError::io(dir))?;
    let last_epoch = history.last().map_or(0, |r| r.epoch as u64);
    let (path, keep, mut steps_done) = match event_file(dir)? {
        Some(path) => {
            let bytes = std::fs::read(&path).map_err(RunFileError::io(&path))?;
            let records = whole_records(&bytes);
            // The version event (step 0) first, then the epochs still kept.
            let kept: Vec<&(usize, u64)> = records
                .iter()
                .take_while(|(_, step)| *step <= last_epoch)
                .collect();
            let keep = kept.last().map_or(0, |(end, _)| *end);
            let done = kept.iter().map(|(_, s)| *s).max().unwrap_or(0);
            (path, keep, (!kept.is_empty()).then_some(done))
        }
        None => {
            let secs = now() as u64;
            let name = format!("{EVENT_FILE_PREFIX}{secs:010}.{}", host());
            (dir.join(name), 0, None)
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(RunFileError::io(&path))?;
    file.set_len(keep as u64).map_err(RunFileError::io(&path))?;
    file.seek(SeekFrom::End(0))
        .map_err(RunFileError::io(&path))?;
    let mut out = Vec::new();
    if steps_done.is_none() {
        out.extend(record(&version_event(now())));
        steps_done = Some(0);
    }
    let done = steps_done.unwrap_or(0);
    for row in history.iter().filter(|r| r.epoch as u64 > done) {
        out.extend(record(&scalars_event(
            now(),
            row.epoch as u64,
            &scalars(row),
        )));
    }
    file.write_all(&out).map_err(RunFileError::io(&path))?;
    file.sync_data().map_err(RunFileError::io(&path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The check value of CRC-32C (iSCSI) in the catalogue of CRC parameters.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // The masking formula of TFRecord as its documentation writes it, by hand.
        let c: u32 = 0xE306_9283;
        #[allow(clippy::manual_rotate)]
        let masked = ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), masked);
    }

    #[test]
    fn an_event_reads_back_its_step() {
        let e = scalars_event(1.5, 300, &[("lr".into(), 1e-3)]);
        assert_eq!(event_step(&e), Some(300));
        assert_eq!(event_step(&version_event(1.5)), Some(0));
        let stream = [record(&version_event(1.0)), record(&e)].concat();
        let records = whole_records(&stream);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1], (stream.len(), 300));
        // A torn last record is left out, and so is one whose CRC fails.
        assert_eq!(whole_records(&stream[..stream.len() - 1]).len(), 1);
        let mut bad = stream.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        assert_eq!(whole_records(&bad).len(), 1);
    }
}
