//! How every `podnet` command talks (docs/cli.md): data on stdout as aligned plain-text tables (no
//! color), key/value lines or JSON; errors as one line on stderr, `error (<kind>): <message>`;
//! and the exit codes. Commands print through this module only.

use std::io::Write as _;

use podnet::{Error, ErrorKind, Result};
/// `1234567` as `"1,234,567"`, as the plan's own warnings write counts.
pub use podnet_cluster::thousands;
use serde::Serialize;

/// Success.
pub const EXIT_OK: i32 = 0;
/// The operation failed (kernel, I/O, conflict, not found, ...).
pub const EXIT_FAILED: i32 = 1;
/// Invalid input: nothing was changed (usage errors too).
pub const EXIT_INVALID: i32 = 2;
/// The command ran, but a check it performs failed (`sandbox check`, `demo`).
pub const EXIT_CHECK_FAILED: i32 = 3;

/// The exit code of an error kind.
pub fn exit_code(kind: ErrorKind) -> i32 {
    if kind == ErrorKind::InvalidArgument {
        EXIT_INVALID
    } else {
        EXIT_FAILED
    }
}

/// Print an error as one line, `error (<kind>): <message>`, and return its exit code.
pub fn fail(e: &Error) -> i32 {
    error_line(e.kind().as_str(), &e.to_string());
    exit_code(e.kind())
}

/// Print a failure the library reports as text, without a kind (`gc`'s steps, a benchmark), as
/// `error (<label>): <message>`; returns [`EXIT_FAILED`].
pub fn fail_text(label: &str, msg: &str) -> i32 {
    error_line(label, msg);
    EXIT_FAILED
}

/// The exit code of a command's result; an error is printed.
pub fn finish(r: Result<i32>) -> i32 {
    r.unwrap_or_else(|e| fail(&e))
}

/// Print `error (<label>): <message>` on stderr, on one line.
pub fn error_line(label: &str, msg: &str) {
    // A message from the kernel may carry newlines; the contract is one line.
    eprintln!("error ({label}): {}", msg.replace('\n', " "));
}

/// A usage error from the command-line parser: one line, `error (invalid_argument): ...`, with
/// the usage appended, and exit code 2. Help and version print as clap prints them, exit 0.
pub fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind as K;
    if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand) {
        e.exit()
    }
    let text = e.render().to_string();
    // The message is the first paragraph ("...not provided:" continues on indented lines).
    let msg: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
    let msg = msg.join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    // Clap prints the usage for some errors only; always point at the help.
    let usage = text
        .lines()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(|u| format!("; usage: {u}"))
        .unwrap_or_else(|| "; see --help".into());
    error_line(ErrorKind::InvalidArgument.as_str(), &format!("{msg}{usage}"));
    std::process::exit(EXIT_INVALID)
}

/// Write to stdout. A closed pipe (`podnet sandbox list | head -1`) is not an error.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::new(ErrorKind::Io, "write to stdout", e)),
        _ => Ok(()),
    }
}

/// Print one JSON document, pretty and newline-terminated, keys sorted (the operator commands,
/// the demo).
pub fn emit_json<T: Serialize + ?Sized>(v: &T) -> Result<()> {
    let encode = |e| Error::new(ErrorKind::Internal, "encode JSON", e);
    let s = serde_json::to_value(v).and_then(|v| serde_json::to_string_pretty(&v)).map_err(encode)?;
    emit(&format!("{s}\n"))
}

/// Print one JSON document on one line, fields in the order `v` serializes them (`plan --json`,
/// the benchmarks' result lines).
pub fn emit_json_line<T: Serialize + ?Sized>(v: &T) -> Result<()> {
    let s = serde_json::to_string(v).map_err(|e| Error::new(ErrorKind::Internal, "encode JSON", e))?;
    emit(&format!("{s}\n"))
}

/// Print `value` as JSON when `json` is set, else the text `text` makes.
pub fn show<T: Serialize + ?Sized>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        emit_json(value)
    } else {
        emit(&text())
    }
}

/// Column alignment in a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Align {
    /// Padded on the right (text).
    #[default]
    Left,
    /// Padded on the left (numbers).
    Right,
}

/// An aligned table: upper-case headers, columns separated by two spaces, a placeholder (`-`
/// unless changed) for empty cells, no trailing blanks.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
    indent: usize,
    blank: &'static str,
}

impl Table {
    /// A table with these column headers, all left-aligned. A table whose headers are all
    /// empty prints no header line.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            align: vec![Align::Left; header.len()],
            rows: vec![],
            indent: 0,
            blank: "-",
        }
    }

    /// A table with these column headers and alignments.
    pub fn aligned(columns: &[(&str, Align)]) -> Table {
        let mut t = Table::new(&columns.iter().map(|(h, _)| *h).collect::<Vec<_>>());
        t.align = columns.iter().map(|(_, a)| *a).collect();
        t
    }

    /// Indent every line by `n` spaces.
    pub fn indent(mut self, n: usize) -> Table {
        self.indent = n;
        self
    }

    /// Print empty cells as `s` instead of `-`.
    pub fn blank(mut self, s: &'static str) -> Table {
        self.blank = s;
        self
    }

    /// Append a row (missing cells print as blanks).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Render with a trailing newline.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let cell = |r: &Vec<String>, i: usize| -> String {
            match r.get(i) {
                Some(s) if !s.is_empty() => s.clone(),
                _ => self.blank.into(),
            }
        };
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(cell(r, i).chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: Vec<String>| {
            let mut l = " ".repeat(self.indent);
            for (i, c) in cells.iter().enumerate() {
                let w = widths[i];
                match self.align[i] {
                    Align::Left => l.push_str(&format!("{c:<w$}")),
                    Align::Right => l.push_str(&format!("{c:>w$}")),
                }
                if i + 1 < n {
                    l.push_str("  ");
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        if self.header.iter().any(|h| !h.is_empty()) {
            line(self.header.clone());
        }
        for r in &self.rows {
            line((0..n).map(|i| cell(r, i)).collect());
        }
        out
    }
}

/// Key/value lines (`name:  value`), aligned, for single-object views such as `node status`.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let v = if v.is_empty() { "-" } else { v.as_str() };
        out.push_str(&format!("{:<w$}  {v}\n", format!("{k}:")));
    }
    out
}

/// Comma-joined display of a list.
pub fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// A duration in milliseconds, two decimals below 10 ms.
pub fn ms(d: std::time::Duration) -> String {
    let m = d.as_secs_f64() * 1e3;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else {
        format!("{m:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_fills_blanks() {
        let mut t = Table::new(&["ID", "IPS", "PORTS"]);
        t.row(vec!["web-1".into(), "10.0.0.2".into(), String::new()]);
        t.row(vec!["w".into(), "10.0.0.3,fd00::3".into(), "tcp 8080->80".into()]);
        assert_eq!(
            t.render(),
            "ID     IPS               PORTS\nweb-1  10.0.0.2          -\nw      10.0.0.3,fd00::3  tcp 8080->80\n"
        );
    }

    #[test]
    fn table_right_aligns_indents_and_hides_empty_headers() {
        let mut t = Table::aligned(&[("NAME", Align::Left), ("N", Align::Right)]).indent(2);
        t.row(vec!["a".into(), "1,000".into()]);
        assert_eq!(t.render(), "  NAME      N\n  a     1,000\n");
        let mut t = Table::aligned(&[("", Align::Left), ("", Align::Right), ("", Align::Left)]).blank("");
        t.row(vec!["Nodes".into(), "5".into(), String::new()]);
        assert_eq!(t.render(), "Nodes  5\n");
    }

    #[test]
    fn kinds_map_to_exit_codes() {
        assert_eq!(exit_code(ErrorKind::InvalidArgument), 2);
        assert_eq!(exit_code(ErrorKind::NotFound), 1);
        assert_eq!(exit_code(ErrorKind::Conflict), 1);
    }

    #[test]
    fn thousands_groups() {
        assert_eq!(thousands(1_048_574), "1,048,574");
        assert_eq!(thousands(999), "999");
    }
}
