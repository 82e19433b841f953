//! Training progress in Python's `sys.stdout` (what a notebook shows; the library's Rust
//! side writes nowhere), and Ctrl-C: each event briefly takes the GIL back to print and to
//! run Python's signal handlers; a `KeyboardInterrupt` there asks the library to stop at its
//! next safe point ([`StopRequest`]) and is raised once the call returns.

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

use med_crossvit::progress::StopRequest;
use med_crossvit::train::Event;

/// What a training call's events do: print (when `verbose`) and watch for Ctrl-C.
pub struct Watch {
    /// Print one line per fit start, epoch and message.
    pub verbose: bool,
    /// Set when a signal handler raised.
    pub stop: StopRequest,
    /// The exception a signal handler raised (a `KeyboardInterrupt`), raised when the call
    /// returns.
    pub interrupted: Option<PyErr>,
}

impl Watch {
    /// A watch that prints when `verbose`.
    pub fn new(verbose: bool) -> Self {
        Self {
            verbose,
            stop: StopRequest::new(),
            interrupted: None,
        }
    }

    /// Handles one event of the library, with the GIL released around it.
    pub fn on(&mut self, event: Event<'_>) {
        let line = if self.verbose { line(&event) } else { None };
        Python::attach(|py| {
            // A signal may be handled while Python code runs in `write` (its handler then
            // raises there) or only at the check after it.
            let printed = match line {
                Some(line) => write(py, &line),
                None => Ok(()),
            };
            let checked = match printed {
                Err(e) if e.is_instance_of::<PyKeyboardInterrupt>(py) => Err(e),
                _ => py.check_signals(),
            };
            if self.interrupted.is_none()
                && let Err(e) = checked
            {
                self.interrupted = Some(e);
                self.stop.request();
            }
        });
    }
}

/// Writes `text` and a newline to `sys.stdout`, and flushes it; a stdout that cannot be
/// written to is ignored (the run goes on).
pub fn print(py: Python<'_>, text: &str) {
    let _ = write(py, text);
}

/// [`print`], with the exception of a failed write.
fn write(py: Python<'_>, text: &str) -> PyResult<()> {
    let stdout = py.import("sys")?.getattr("stdout")?;
    stdout.call_method1("write", (format!("{text}\n"),))?;
    stdout.call_method0("flush")?;
    Ok(())
}

/// The line an event prints: none for each batch (a line per epoch is enough in a notebook).
fn line(event: &Event<'_>) -> Option<String> {
    match event {
        Event::FitStart {
            label,
            epochs,
            batches,
            train_patients,
            val_patients,
            monitor,
            epochs_done,
            ..
        } => Some(format!(
            "{label}: {epochs} epochs of {batches} batches, {train_patients} training and \
             {val_patients} validation patients, best epoch on {monitor}{}",
            if *epochs_done > 0 {
                format!(" (resuming after epoch {epochs_done})")
            } else {
                String::new()
            }
        )),
        Event::Epoch { label, row, best } => {
            let mut text = format!(
                "{label} epoch {}: lr {:.2e} train_loss {:.4}",
                row.epoch, row.lr, row.train_loss
            );
            for (name, value) in row.val.scalars() {
                if let Some(v) = value {
                    text.push_str(&format!(" val_{name} {v:.4}"));
                }
            }
            if *best {
                text.push_str(" (best)");
            }
            Some(text)
        }
        Event::Message(message) => Some(message.clone()),
        Event::Batch { .. } => None,
    }
}
