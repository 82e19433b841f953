//! The page's headline: the results a paper would print first. The metrics with their
//! intervals (pooled over the folds of a cross-validation), the Kaplan–Meier or ROC plot,
//! and which checkpoint they come from.

use crate::run::files;

use super::html::{Page, esc};
use super::read::{Run, TaskKind};
use super::sections::plot_caption;

impl Run {
    /// The results section: which checkpoint, the headline metrics, the headline plot.
    pub(super) fn results(&self, page: &mut Page) {
        page.push("<section id=\"results\">\n<h2>Results</h2>\n");
        page.push(&format!(
            "<p class=\"lead\">{}</p>\n<p class=\"note\">Per patient. A value followed by \
             <code>[low, high]</code> carries its 95 % bootstrap percentile interval.</p>\n",
            self.checkpoint_sentence()
        ));
        self.headline_metrics(page);
        let (title, name) = self.headline_plot();
        let path = self.dir.join(name);
        if path.is_file() {
            page.push("<div class=\"figures\">\n");
            page.figure(&path, &format!("{title}: {}", plot_caption(name)));
            page.push("</div>\n");
        } else {
            page.push(&format!(
                "<p class=\"note\"><code>{name}</code>: not present.</p>\n"
            ));
        }
        page.push("</section>\n");
    }

    /// The headline plot, in the run's own folder: the Kaplan–Meier curves of a survival
    /// run, the ROC curves of a classification (of the pooled predictions in a
    /// cross-validation's folder); with the title of its group.
    pub(super) fn headline_plot(&self) -> (&'static str, &'static str) {
        let title = match self.folds {
            Some(_) => "Pooled out-of-fold predictions",
            None => "Run",
        };
        match self.task {
            TaskKind::Survival => (title, files::KM_PNG),
            TaskKind::Classification => (title, files::ROC_PNG),
        }
    }

    /// A sentence saying what the headline metrics are of: which checkpoint (the best epoch
    /// by the selection metric, or the last), at which epochs, and where that is recorded.
    fn checkpoint_sentence(&self) -> String {
        let (select, metric) = self.selection();
        let which = match select.as_str() {
            "last" => "the checkpoint of the last epoch (--select last)".to_string(),
            _ => format!(
                "the checkpoint of the best epoch on {} (--select best: chosen on the \
                 validation patients reported here)",
                esc(&metric)
            ),
        };
        let epochs: Vec<String> = self
            .kept_epochs(&select)
            .iter()
            .map(u64::to_string)
            .collect();
        let source = if self.cv_value().is_some() {
            files::CV_JSON
        } else {
            files::CONFIG
        };
        match (self.folds, epochs.as_slice()) {
            (Some(k), _) => {
                let at = match epochs.len() {
                    0 => String::new(),
                    _ => format!(", at epochs {} of folds 0 … {}", epochs.join(", "), k - 1),
                };
                format!(
                    "Pooled over the validation predictions of {k} folds, each patient once \
                     (out of fold); each fold's model is {which}{at}, as <code>{source}</code> \
                     records."
                )
            }
            (None, []) => format!("Metrics of {which}, as <code>{source}</code> records."),
            (None, [epoch, ..]) => format!("Metrics of {which}: epoch {epoch}."),
        }
    }
}
