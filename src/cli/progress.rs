//! Training progress: a bar per epoch on a terminal, one plain line per epoch otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use med_crossvit::train::Event;

/// Prints training events.
pub struct Progress {
    bar: Option<ProgressBar>,
    terminal: bool,
}

impl Progress {
    /// Bars when stderr is a terminal.
    pub fn new() -> Self {
        Self {
            bar: None,
            terminal: std::io::stderr().is_terminal(),
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
            } => {
                eprintln!(
                    "{label}: {train_patients} training patients ({train_slides} slides) and \
                     {val_patients} validation patients ({val_slides} slides), {epochs} epochs \
                     of {batches} batches"
                );
            }
            Event::Batch {
                epoch,
                batch,
                batches,
                loss,
                bags_per_sec,
            } => {
                if !self.terminal {
                    return;
                }
                let bar = self.bar.get_or_insert_with(|| {
                    let bar = ProgressBar::new(batches as u64);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg}",
                        )
                        .expect("a valid template")
                        .progress_chars("=> "),
                    );
                    bar
                });
                bar.set_prefix(epoch.to_string());
                bar.set_position(batch as u64);
                bar.set_message(format!("loss {loss:.4}, {bags_per_sec:.0} bags/s"));
            }
            Event::Epoch { label, row, best } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let metrics: Vec<String> = row
                    .val
                    .scalars()
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| format!("val_{k} {v:.4}")))
                    .collect();
                eprintln!(
                    "{label} epoch {:>3}: train_loss {:.4}, {}{}",
                    row.epoch,
                    row.train_loss,
                    metrics.join(", "),
                    if best { "  (best)" } else { "" }
                );
            }
            Event::Message(m) => eprintln!("{m}"),
        }
    }
}
