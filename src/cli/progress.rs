//! Training progress: a bar per epoch on a terminal, one plain line per epoch otherwise,
//! each with the time elapsed and the estimated time left of the fit.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use med_crossvit::eval::EpochRow;
use med_crossvit::train::Event;

/// The fit under way: what the time estimates count.
struct Clock {
    start: Instant,
    /// Epochs planned.
    epochs: usize,
    /// Epochs done when the fit (or its resumption) began.
    done_before: usize,
    /// Batches per epoch.
    batches: usize,
    /// The selection metric's name (`val_c_index`).
    monitor: String,
}

impl Clock {
    /// The batches this fit runs.
    fn total(&self) -> usize {
        self.epochs.saturating_sub(self.done_before) * self.batches
    }

    /// `elapsed 1m02s, ETA 3m10s` after `done` batches.
    fn line(&self, done: usize) -> String {
        times_text(self.start, done, self.total())
    }

    /// Batches of this fit done once `batch` of `epoch` (both from 1) is.
    fn done(&self, epoch: usize, batch: usize) -> usize {
        (epoch.saturating_sub(1 + self.done_before)) * self.batches + batch
    }
}

/// The time elapsed since `start` and, once something is done, the time left at the same
/// pace for `done` of `total` units.
fn estimate(start: Instant, done: usize, total: usize) -> (Duration, Option<Duration>) {
    let elapsed = start.elapsed();
    let left = (done > 0).then(|| elapsed.mul_f64(total.saturating_sub(done) as f64 / done as f64));
    (elapsed, left)
}

/// `elapsed 1m02s, ETA 3m10s` (without the ETA before anything is done).
fn times_text(start: Instant, done: usize, total: usize) -> String {
    match estimate(start, done, total) {
        (elapsed, Some(left)) => format!("elapsed {}, ETA {}", clock(elapsed), clock(left)),
        (elapsed, None) => format!("elapsed {}", clock(elapsed)),
    }
}

/// A duration as `12s`, `3m10s` or `1h02m`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The progress of `evaluate`, `predict` and `cohort gdc` (see
/// [`med_crossvit::progress`]): a bar with the time elapsed and left on a terminal, else a
/// line at every tenth of the work.
pub fn steps() -> med_crossvit::progress::Observer {
    let terminal = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    let mut tenth = 0;
    Box::new(move |step| {
        let times = times_text(start, step.done, step.total);
        if terminal {
            let bar = bar.get_or_insert_with(|| {
                let bar = ProgressBar::new(step.total as u64);
                bar.set_style(
                    ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar
            });
            bar.set_position(step.done as u64);
            bar.set_message(format!("{}, {times}", step.what));
            if step.done >= step.total {
                bar.finish_and_clear();
            }
            return;
        }
        let now = (step.done * 10).checked_div(step.total).unwrap_or(10);
        if now > tenth || (step.done == step.total && tenth < 10) {
            tenth = now.max(tenth + 1);
            eprintln!("{} {}/{}, {times}", step.what, step.done, step.total);
        }
    })
}

/// Prints training events.
pub struct Progress {
    bar: Option<ProgressBar>,
    terminal: bool,
    clock: Option<Clock>,
}

impl Progress {
    /// Bars when stderr is a terminal.
    pub fn new() -> Self {
        Self {
            bar: None,
            terminal: std::io::stderr().is_terminal(),
            clock: None,
        }
    }

    /// Handles one event.
    pub fn on(&mut self, event: Event<'_>) {
        match event {
            Event::FitStart {
                label,
                epochs,
                batches,
                train_slides,
                val_slides,
                train_patients,
                val_patients,
                monitor,
                select,
                patience,
                epochs_done,
            } => {
                let stopping = if patience > 0 {
                    format!("stops after {patience} epochs without a better {monitor}")
                } else {
                    "no early stopping".to_string()
                };
                let kept = select.kept(&monitor);
                eprintln!(
                    "{label}: {train_patients} training patients ({train_slides} slides) and \
                     {val_patients} validation patients ({val_slides} slides), {epochs} epochs \
                     of {batches} batches; {stopping}; keeps {kept} (--select {})",
                    select.name()
                );
                self.clock = Some(Clock {
                    start: Instant::now(),
                    epochs,
                    done_before: epochs_done,
                    batches,
                    monitor,
                });
            }
            Event::Batch {
                epoch,
                batch,
                batches,
                loss,
                bags_per_sec,
            } => {
                if self.terminal {
                    let times = self
                        .clock
                        .as_ref()
                        .map(|c| format!(", {}", c.line(c.done(epoch, batch))))
                        .unwrap_or_default();
                    let message = format!("loss {loss:.4}, {bags_per_sec:.0} bags/s{times}");
                    self.batch_bar(epoch, batch, batches, message);
                }
            }
            Event::Epoch { label, row, best } => self.epoch(label, row, best),
            Event::Message(m) => eprintln!("{m}"),
        }
    }

    /// Moves the epoch's bar (made at its first batch) to `batch` of `batches`.
    fn batch_bar(&mut self, epoch: usize, batch: usize, batches: usize, message: String) {
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(batches as u64);
            bar.set_style(
                ProgressStyle::with_template("epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        bar.set_prefix(epoch.to_string());
        bar.set_position(batch as u64);
        bar.set_message(message);
    }

    /// Clears the epoch's bar and prints its line: the losses, the validation metrics, and
    /// whether it is the best so far.
    fn epoch(&mut self, label: &str, row: &EpochRow, best: bool) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let metrics: Vec<String> = row
            .val
            .scalars()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("val_{k} {v:.4}")))
            .collect();
        let (of, monitor, times) = match &self.clock {
            Some(c) => (
                format!("/{}", c.epochs),
                c.monitor.as_str(),
                format!("  [{}]", c.line(c.done(row.epoch, c.batches))),
            ),
            None => (String::new(), "validation", String::new()),
        };
        eprintln!(
            "{label} epoch {:>3}{of}: train_loss {:.4}, {}{}{times}",
            row.epoch,
            row.train_loss,
            metrics.join(", "),
            if best {
                format!("  (best {monitor})")
            } else {
                String::new()
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_clock() {
        assert_eq!(clock(Duration::from_secs(12)), "12s");
        assert_eq!(clock(Duration::from_secs(190)), "3m10s");
        assert_eq!(clock(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn the_estimate_counts_the_batches_left_of_this_fit() {
        // A fit resumed after 2 of 5 epochs of 4 batches: 12 batches to run.
        let c = Clock {
            start: Instant::now() - Duration::from_secs(30),
            epochs: 5,
            done_before: 2,
            batches: 4,
            monitor: "val_auc".into(),
        };
        // Epoch 3, batch 2 done: 2 of 12 batches in ~30 s, so ~150 s left.
        assert_eq!(c.done(3, 2), 2);
        let (_, left) = estimate(c.start, 2, c.total());
        let left = left.unwrap().as_secs_f64();
        assert!((149.0..152.0).contains(&left), "{left}");
    }
}
