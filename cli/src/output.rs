//! How the operator commands talk: aligned plain-text tables (no color) or one JSON document on
//! stdout, errors as one line on stderr, and the exit codes documented in `docs/cli.md`.

use std::io::Write as _;

use podnet::{Error, ErrorKind};

/// Success.
pub const EXIT_OK: i32 = 0;
/// The operation failed (kernel, I/O, conflict, not found, ...).
pub const EXIT_FAILED: i32 = 1;
/// Invalid input: nothing was changed (clap exits with 2 for usage errors too).
pub const EXIT_INVALID: i32 = 2;
/// The command ran, but a check it performs failed (`sandbox check`, `demo`).
pub const EXIT_CHECK_FAILED: i32 = 3;

/// Print an error as one line, `error (<kind>): <message>`, and return its exit code.
pub fn fail(e: &Error) -> i32 {
    // A message from the kernel may carry newlines; the contract is one line.
    let msg = e.to_string().replace('\n', " ");
    eprintln!("error ({}): {msg}", e.kind());
    exit_code(e.kind())
}

/// The exit code of an error kind.
pub fn exit_code(kind: ErrorKind) -> i32 {
    if kind == ErrorKind::InvalidArgument {
        EXIT_INVALID
    } else {
        EXIT_FAILED
    }
}

/// Write to stdout; a closed pipe (`podnet sandbox list | head -1`) is not worth a panic.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Print one JSON document (pretty, newline-terminated).
pub fn emit_json(v: &serde_json::Value) {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    s.push('\n');
    emit(&s);
}

/// An aligned table: upper-case headers, columns separated by two spaces, `-` for empty cells.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: vec![] }
    }

    /// Append a row (missing cells print as `-`).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Render with a trailing newline; the last column is not padded.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let cell = |r: &Vec<String>, i: usize| -> String {
            match r.get(i) {
                Some(s) if !s.is_empty() => s.clone(),
                _ => "-".into(),
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
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 < n {
                    l.push_str(&format!("{c:<w$}  ", w = widths[i]));
                } else {
                    l.push_str(c);
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(self.header.clone());
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
    fn kinds_map_to_exit_codes() {
        assert_eq!(exit_code(ErrorKind::InvalidArgument), 2);
        assert_eq!(exit_code(ErrorKind::NotFound), 1);
        assert_eq!(exit_code(ErrorKind::Conflict), 1);
    }
}
