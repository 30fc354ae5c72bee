//! Console output that never panics and fits 80 columns, in a terminal or not.
//!
//! `println!` panics when stdout is a closed pipe (`generate … | head -1`); these helpers ignore
//! write errors so the run goes on and the MP4 is still written. Reports go to stdout, warnings,
//! progress and errors to stderr, always (not only when it is a terminal). Long lines are
//! wrapped at word boundaries with a hanging indent.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The widest line written.
pub const COLUMNS: usize = 80;

/// Width of the labels of [`field`] lines (`"saved:     "`).
const LABEL: usize = 11;

/// Splits `text` into lines of at most [`COLUMNS`] characters: the first starts with `prefix`,
/// the others with `indent` spaces. A word longer than a line keeps its own line.
pub fn wrap(prefix: &str, indent: usize, text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let pad = " ".repeat(indent);
    for (n, paragraph) in text.split('\n').enumerate() {
        let mut line = if n == 0 {
            prefix.to_string()
        } else {
            pad.clone()
        };
        let mut empty = true;
        for word in paragraph.split_whitespace() {
            let width = line.chars().count();
            if !empty && width + 1 + word.chars().count() > COLUMNS {
                lines.push(std::mem::replace(&mut line, pad.clone()));
                empty = true;
            }
            if !empty {
                line.push(' ');
            }
            line.push_str(word);
            empty = false;
        }
        lines.push(line.trim_end().to_string());
    }
    lines
}

fn write_lines(mut out: impl Write, lines: &[String]) {
    for line in lines {
        // A closed pipe or a full disk must not stop the generation.
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}

/// Writes `text` to stdout (wrapped, errors ignored).
pub fn say(text: impl Display) {
    write_lines(std::io::stdout().lock(), &wrap("", 2, &text.to_string()));
}

/// Writes `line` to stdout as it is, unwrapped (errors ignored).
pub fn say_line(line: impl Display) {
    write_lines(std::io::stdout().lock(), &[line.to_string()]);
}

/// Writes `label: value` to stdout with the value aligned after an 11-column label.
pub fn field(label: &str, value: impl Display) {
    let prefix = format!("{:<width$}", format!("{label}:"), width = LABEL);
    write_lines(
        std::io::stdout().lock(),
        &wrap(&prefix, LABEL, &value.to_string()),
    );
}

/// Writes `warning: text` to stderr (wrapped, errors ignored).
pub fn warn(text: impl Display) {
    write_lines(
        std::io::stderr().lock(),
        &wrap("warning: ", 2, &text.to_string()),
    );
}

/// Writes `text` to stderr as it is (wrapped, errors ignored).
pub fn note(text: impl Display) {
    write_lines(std::io::stderr().lock(), &wrap("", 2, &text.to_string()));
}

/// Writes `error: text` to stderr (wrapped, errors ignored).
pub fn error(text: impl Display) {
    write_lines(
        std::io::stderr().lock(),
        &wrap("error: ", 2, &text.to_string()),
    );
}

/// Progress of one video on stderr: a bar in a terminal, one short line per chunk otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: Option<usize>,
    done: usize,
}

impl Progress {
    /// Progress over `total` video frames (`None`: an endless stream, a counter).
    pub fn new(total: Option<usize>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                total.map(|t| t as u64),
                ProgressDrawTarget::stderr(),
            );
            // `wide_bar` takes what the terminal has left: the line fits any width.
            let template = match total {
                Some(_) => "{wide_bar} {pos}/{len} frames {msg}",
                None => "{spinner} {pos} frames (Ctrl-C stops) {msg}",
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
        }
    }

    /// Records chunk `index` with `frames` new frames and its model times.
    pub fn chunk(&mut self, index: usize, frames: usize, denoise: Duration, decode: Duration) {
        self.done += frames;
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done as u64);
                bar.set_message(format!("{denoise:.1?}+{decode:.1?}"));
            }
            None => note(format!(
                "chunk {}: {}{} frames, denoise {denoise:.2?}, decode {decode:.2?}",
                index + 1,
                self.done,
                self.total.map_or(String::new(), |t| format!("/{t}"))
            )),
        }
    }

    /// A warning that does not garble the bar.
    pub fn warn(&self, text: impl Display) {
        match &self.bar {
            Some(bar) => bar.suspend(|| warn(text)),
            None => warn(text),
        }
    }

    /// Ends the bar (before the summary is printed).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish();
        }
    }
}
