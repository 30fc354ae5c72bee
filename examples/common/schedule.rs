//! `generate --prompt-schedule FILE`: later prompts of one video, one line each as
//! `LATENT_FRAME<TAB>PROMPT` (`#` comments and blank lines allowed). A `0<TAB>PROMPT` line,
//! first, gives the first prompt instead of `--prompt`. Every malformed line is an error with
//! its line number, found before any model is loaded.

use std::path::Path;

use sf_pipeline::{GenerationRequest, ModelConfigs, PipelineError};

use super::CliError;

/// A parsed schedule file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// The first prompt, from a `0<TAB>PROMPT` line.
    pub first: Option<String>,
    /// `(line number, latent frame, prompt)` of every later prompt, in file order.
    pub entries: Vec<(usize, usize, String)>,
}

impl Schedule {
    /// The `(latent frame, prompt)` pairs of a [`GenerationRequest`].
    pub fn pairs(&self) -> Vec<(usize, String)> {
        self.entries
            .iter()
            .map(|(_, f, p)| (*f, p.clone()))
            .collect()
    }
}

/// Parses the text of a schedule file; the error names the line.
pub fn parse(text: &str) -> Result<Schedule, String> {
    let mut schedule = Schedule::default();
    let mut previous: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((frame, prompt)) = line.split_once('\t') else {
            return Err(format!(
                "line {n}: expected LATENT_FRAME<TAB>PROMPT (a whole number, a tab, the \
                 prompt), found no tab in '{}'",
                line.trim()
            ));
        };
        let frame: usize = frame.trim().parse().map_err(|_| {
            format!(
                "line {n}: '{}' is not a latent frame (a whole number, e.g. 40)",
                frame.trim()
            )
        })?;
        let prompt = prompt.trim();
        if prompt.is_empty() {
            return Err(format!(
                "line {n}: the prompt for latent frame {frame} is empty: describe what the \
                 video shows from there"
            ));
        }
        if let Some(p) = previous
            && frame <= p
        {
            return Err(format!(
                "line {n}: latent frame {frame} does not come after the previous line's {p}: \
                 list the prompts once each, in increasing frame order"
            ));
        }
        previous = Some(frame);
        if frame == 0 {
            schedule.first = Some(prompt.to_string());
        } else {
            schedule.entries.push((n, frame, prompt.to_string()));
        }
    }
    Ok(schedule)
}

/// Reads and parses `path`.
pub fn read(path: &Path) -> Result<Schedule, CliError> {
    let flag = format!("--prompt-schedule {}", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("{flag}: cannot read it: {e}")))?;
    let schedule = parse(&text).map_err(|e| CliError::Usage(format!("{flag}: {e}")))?;
    if schedule.first.is_none() && schedule.entries.is_empty() {
        return Err(CliError::Usage(format!(
            "{flag}: the file holds no prompt: write LATENT_FRAME<TAB>PROMPT lines"
        )));
    }
    Ok(schedule)
}

/// Checks the schedule's entries one by one against the request (without its schedule) and
/// `configs`, so an entry that can never fire is reported with its line.
pub fn check(
    path: &Path,
    schedule: &Schedule,
    request: &GenerationRequest,
    configs: &ModelConfigs,
) -> Result<(), CliError> {
    let mut partial = request.clone();
    partial.prompt_schedule.clear();
    for (line, frame, prompt) in &schedule.entries {
        partial.prompt_schedule.push((*frame, prompt.clone()));
        if let Err(e) = partial.validate(configs) {
            let text = match e {
                PipelineError::Config(m) => m,
                other => other.to_string(),
            };
            let text = text.strip_prefix("prompt schedule: ").unwrap_or(&text);
            return Err(CliError::Usage(format!(
                "--prompt-schedule {}: line {line}: {text}",
                path.display()
            )));
        }
    }
    Ok(())
}
