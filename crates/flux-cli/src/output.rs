//! Everything the `flux` command shows: results on stdout (human text or
//! JSON), notes and errors on stderr, spinners while it waits.
//!
//! This is the only module that writes to the terminal. Commands describe
//! what to show; this module decides how.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// How results are shown.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Output {
        Output { json }
    }

    /// Whether results are machine-readable JSON.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Shows a result: `value` as JSON with `--json`, otherwise the text that
    /// `human` writes. `human` runs only when it is needed.
    pub(crate) fn show(&self, value: &impl Serialize, human: impl FnOnce(&mut Text)) {
        if self.json {
            let text = serde_json::to_string_pretty(value)
                .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode result: {e}\"}}"));
            write_stdout(&format!("{text}\n"));
        } else {
            let mut text = Text::default();
            human(&mut text);
            write_stdout(&text.0);
        }
    }

    /// A remark beside the result (a fallback taken, a hint); on stderr so
    /// that it never mixes with JSON on stdout.
    pub(crate) fn note(&self, message: &str) {
        eprintln!("note: {message}");
    }

    /// Reports the error that ends the command.
    pub(crate) fn error(&self, error: &anyhow::Error) {
        let message = error_text(error);
        if self.json {
            let code = match error.downcast_ref::<crate::client::ClientError>() {
                Some(crate::client::ClientError::Api { code, .. }) if !code.is_empty() => {
                    Some(code.as_str())
                }
                _ => None,
            };
            let mut value = serde_json::json!({ "error": message });
            if let Some(code) = code {
                value["code"] = serde_json::json!(code);
            }
            eprintln!("{value}");
        } else {
            eprintln!("error: {message}");
        }
    }

    /// A spinner on stderr, hidden with `--json` or when stderr is not a terminal.
    pub(crate) fn spinner(&self, message: impl Into<String>) -> Spinner {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if self.json || !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(bar)
    }
}

/// The full text of an error: its message followed by its causes, unless a
/// cause already repeats in the message.
fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            let _ = write!(text, ": {cause}");
        }
    }
    text
}

fn write_stdout(text: &str) {
    // A closed pipe (`flux keys list | head -1`) is not an error worth a panic.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// A spinner shown while the command waits; cleared when dropped.
pub(crate) struct Spinner(ProgressBar);

impl Spinner {
    pub(crate) fn set_message(&self, message: impl Into<String>) {
        self.0.set_message(message.into());
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Human-readable text under construction.
#[derive(Default)]
pub(crate) struct Text(String);

impl Text {
    /// One line.
    pub(crate) fn line(&mut self, line: impl AsRef<str>) -> &mut Text {
        self.0.push_str(line.as_ref());
        self.0.push('\n');
        self
    }

    /// An empty line.
    pub(crate) fn blank(&mut self) -> &mut Text {
        self.0.push('\n');
        self
    }

    /// `label  value` pairs with the values aligned.
    pub(crate) fn fields<S: AsRef<str>>(&mut self, pairs: &[(&str, S)]) -> &mut Text {
        let width = pairs
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        for (key, value) in pairs {
            let pad = width - key.chars().count();
            let _ = writeln!(self.0, "{key}{}  {}", " ".repeat(pad), value.as_ref());
        }
        self
    }

    /// A table with a header row; `empty` is shown instead when there are no rows.
    pub(crate) fn table(
        &mut self,
        headers: &[&str],
        rows: &[Vec<String>],
        empty: &str,
    ) -> &mut Text {
        if rows.is_empty() {
            return self.line(empty);
        }
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let render = |cells: Vec<&str>| -> String {
            let last = cells.len().saturating_sub(1);
            let mut line = String::new();
            for (i, cell) in cells.into_iter().enumerate() {
                line.push_str(cell);
                if i < last {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            line
        };
        let header_line = render(headers.to_vec());
        self.line(header_line);
        for row in rows {
            self.line(render(row.iter().map(String::as_str).collect()));
        }
        self
    }
}

/// Chain or wall-clock time in milliseconds since the Unix epoch, as
/// `2026-05-01 12:00:00 UTC`.
pub(crate) fn utc(ms: u64) -> String {
    let secs = ms / 1_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The first characters of a long hex id, for tables.
pub(crate) fn short(id: &str) -> String {
    if id.len() > 16 {
        format!("{}…", &id[..12])
    } else {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_798_761_599_000), "2026-12-31 23:59:59 UTC");
    }

    #[test]
    fn tables_align() {
        let mut text = Text::default();
        text.table(
            &["NAME", "ADDRESS"],
            &[
                vec!["a".into(), "x".into()],
                vec!["long".into(), "y".into()],
            ],
            "none",
        );
        assert_eq!(text.0, "NAME  ADDRESS\na     x\nlong  y\n");
    }
}
