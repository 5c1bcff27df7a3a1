//! The progress bar of a run, drawn only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of the rows streamed into a snapshot.
pub(crate) struct RunProgress {
    bar: ProgressBar,
}

impl RunProgress {
    /// Starts a bar of `total` rows; hidden unless `enabled` and stderr is a terminal.
    pub(crate) fn start(enabled: bool, total: u64) -> RunProgress {
        if !enabled || !std::io::stderr().is_terminal() {
            return RunProgress {
                bar: ProgressBar::hidden(),
            };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} publishing [{bar:40}] {pos}/{len} indicators ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        RunProgress { bar }
    }

    /// Counts one row.
    pub(crate) fn advance(&self) {
        self.bar.inc(1);
    }

    /// Removes the bar from the terminal.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
