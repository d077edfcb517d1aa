//! Diagnostics that point into the user's YAML: a position, a caret, what was expected, a hint.
//!
//! Rendering is ours, not a library's: the format is small, stable for snapshot tests, and the
//! same with or without colour except for the escape codes.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::limits::{self, Limit};
use crate::yaml::Span;

/// A source file as read from disk; diagnostics keep it alive to print the offending line.
#[derive(Debug, PartialEq, Eq)]
pub struct Source {
    /// The path as the user gave it or as found under the catalog, for `file:line:col`.
    pub path: String,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a flow file.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable slug such as `unknown-key`, for editors, CI and the docs.
    pub code: &'static str,
    pub message: String,
    pub source: Arc<Source>,
    pub span: Option<Span>,
    /// Printed under the caret: what was expected there.
    pub label: Option<String>,
    /// "did you mean …" or the fix.
    pub help: Option<String>,
    /// Where each line of the source starts, shared by the file's diagnostics and built the
    /// first time one is rendered: finding the line by scanning the file for each diagnostic
    /// would make rendering quadratic.
    lines: Arc<LineIndex>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col` of the diagnostic.
    pub fn location(&self) -> String {
        match self.span {
            Some(span) => format!("{}:{}:{}", self.source.path, span.start.line, span.start.col),
            None => self.source.path.clone(),
        }
    }

    /// Renders like a compiler: headline, location, the source line with a caret, help.
    pub fn render(&self, colour: bool) -> String {
        let (sev, paint) = match self.severity {
            Severity::Error => ("error", "\x1b[1;31m"),
            Severity::Warning => ("warning", "\x1b[1;33m"),
        };
        let (on, off, bold) = if colour { (paint, "\x1b[0m", "\x1b[1m") } else { ("", "", "") };
        let mut out = format!("{on}{sev}[{}]{off}{bold}: {}{off}\n", self.code, self.message);
        let Some(span) = self.span else {
            let _ = writeln!(out, "  --> {}", self.source.path);
            if let Some(help) = &self.help {
                let _ = writeln!(out, "  = help: {help}");
            }
            return out;
        };
        let line_no = span.start.line.to_string();
        let pad = " ".repeat(line_no.len());
        let _ = writeln!(out, "{pad}--> {}", self.location());
        let _ = writeln!(out, "{pad} |");
        let line = self.lines.line(&self.source.text, span.start.line.saturating_sub(1) as usize);
        if let Some((full, false)) = line.filter(|(full, ascii)| !ascii && full.len() > LONG_TEXT_LINE) {
            // Finding a column in it means counting its characters, once per diagnostic: a file
            // of thousands of mistakes on one such line would take quadratic time to show.
            let _ = writeln!(out, "{line_no} | (a line of {} bytes with non-ASCII text: not shown)", full.len());
        } else if let Some((full, ascii)) = line {
            let (line, shift) = window(full, ascii, span.start.col.saturating_sub(1) as usize);
            let _ = writeln!(out, "{line_no} | {line}");
            let start = (span.start.col.saturating_sub(1) as usize).saturating_sub(shift);
            let chars = if span.end.line == span.start.line && span.end.col > span.start.col {
                (span.end.col - span.start.col) as usize
            } else {
                usize::MAX
            };
            let (indent, width) = caret(&line, start, chars);
            let label = self.label.as_deref().map(|l| format!(" {l}")).unwrap_or_default();
            let _ = writeln!(out, "{pad} | {indent}{on}{}{label}{off}", "^".repeat(width));
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }

    /// The machine-readable form used by `--format json`.
    pub fn to_json(&self) -> serde_json::Value {
        // No position (an empty file): `0` for all four, as `docs/flow-format.md` promises, so
        // that a reader always finds numbers (a real line or column is never 0).
        let (line, col, end_line, end_col) = match self.span {
            Some(s) => (s.start.line, s.start.col, s.end.line, s.end.col),
            None => (0, 0, 0, 0),
        };
        serde_json::json!({
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.source.path,
            "line": line,
            "column": col,
            "end_line": end_line,
            "end_column": end_col,
            "label": self.label,
            "help": self.help,
        })
    }
}

/// The byte offset of each line's start, and whether the line is ASCII, built once per file.
/// Line breaks are counted as the YAML parser counts them: `\r\n`, `\n` and a lone `\r` (old
/// Mac files) each end a line.
#[derive(Debug, Default)]
struct LineIndex(OnceLock<Vec<(usize, bool)>>);

impl LineIndex {
    /// Line `n` (0-based) of `text`, without its line break, and whether it is ASCII.
    fn line<'t>(&self, text: &'t str, n: usize) -> Option<(&'t str, bool)> {
        let lines = self.0.get_or_init(|| line_starts(text));
        let (start, ascii) = *lines.get(n)?;
        let end = lines.get(n + 1).map_or(text.len(), |next| next.0);
        // The index holds a start past the last break; it is a line only if text follows.
        if start >= text.len() && n > 0 {
            return None;
        }
        Some((text[start..end].trim_end_matches(['\r', '\n']), ascii))
    }
}

fn line_starts(text: &str) -> Vec<(usize, bool)> {
    let bytes = text.as_bytes();
    let mut lines = vec![];
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let next = match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' | b'\n' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        lines.push((start, bytes[start..i].is_ascii()));
        start = next;
        i = next;
    }
    lines.push((start, bytes[start..].is_ascii()));
    lines
}

/// Lines this long are shown as a window around the caret, not whole.
const MAX_LINE: usize = 160;

/// A line of non-ASCII text longer than this (in bytes) is not shown under its diagnostics.
const LONG_TEXT_LINE: usize = 16 * 1024;

/// The part of `line` to print around character `at`, and how many characters were cut before.
/// An ASCII line is cut by bytes, without counting its characters: a file may hold thousands of
/// diagnostics on one long line.
fn window(line: &str, ascii: bool, at: usize) -> (String, usize) {
    if ascii && line.len() > MAX_LINE {
        let from = at.saturating_sub(MAX_LINE / 2).min(line.len() - MAX_LINE);
        let lead = if from > 0 { "…" } else { "" };
        let tail = if from + MAX_LINE < line.len() { "…" } else { "" };
        return (format!("{lead}{}{tail}", &line[from..from + MAX_LINE]), from.saturating_sub(lead.chars().count()));
    }
    let len = line.chars().count();
    if len <= MAX_LINE {
        return (line.to_owned(), 0);
    }
    let from = at.saturating_sub(MAX_LINE / 2).min(len.saturating_sub(MAX_LINE));
    let body: String = line.chars().skip(from).take(MAX_LINE).collect();
    let lead = if from > 0 { "…" } else { "" };
    let tail = if from + MAX_LINE < len { "…" } else { "" };
    // The leading `…` takes one column: the caret moves with it.
    (format!("{lead}{body}{tail}"), from.saturating_sub(lead.chars().count()))
}

/// The caret line's indent and how many carets, for `chars` characters from character `start`
/// of `line`, measured in terminal columns: an East Asian wide character or an emoji takes
/// two, a combining mark none. Tabs are kept in the indent so that the caret lines up under
/// tab-indented text. At most a window's width of carets: a span over a megabyte-long line
/// must not print a megabyte of them.
fn caret(line: &str, start: usize, chars: usize) -> (String, usize) {
    use unicode_width::UnicodeWidthChar as _;
    let mut indent = String::new();
    for c in line.chars().take(start) {
        match c {
            '\t' => indent.push('\t'),
            c => indent.extend(std::iter::repeat_n(' ', c.width().unwrap_or(0))),
        }
    }
    let (mut width, mut taken) = (0, 0);
    for c in line.chars().skip(start).take(chars) {
        width += c.width().unwrap_or(1);
        taken += 1;
    }
    // A span past the end of the line (an unclosed template ends at its closing quote) keeps
    // one caret per character it covers there.
    if chars != usize::MAX {
        width += chars - taken;
    }
    (indent, width.clamp(1, MAX_LINE + 2))
}

/// Collects diagnostics for one file; every pass adds to it and none stops at the first.
#[derive(Debug)]
pub struct Diags {
    pub source: Arc<Source>,
    pub list: Vec<Diagnostic>,
    lines: Arc<LineIndex>,
}

impl Diags {
    pub fn new(source: Arc<Source>) -> Self {
        Diags { source, list: Vec::new(), lines: Arc::default() }
    }

    /// Reports that `limit` is crossed at `span`; `how` says how to stay under it.
    pub fn limit(
        &mut self,
        limit: Limit,
        span: Option<Span>,
        message: impl Into<String>,
        how: &str,
    ) -> &mut Diagnostic {
        self.error("limit", span, message).help(limit.help(how))
    }

    /// Starts an error at `span`; finish it with the builder's methods.
    pub fn error(&mut self, code: &'static str, span: Option<Span>, message: impl Into<String>) -> &mut Diagnostic {
        self.push(Severity::Error, code, span, message.into())
    }

    pub fn warning(&mut self, code: &'static str, span: Option<Span>, message: impl Into<String>) -> &mut Diagnostic {
        self.push(Severity::Warning, code, span, message.into())
    }

    fn push(&mut self, severity: Severity, code: &'static str, span: Option<Span>, message: String) -> &mut Diagnostic {
        self.list.push(Diagnostic {
            severity,
            code,
            message,
            source: self.source.clone(),
            span,
            label: None,
            help: None,
            lines: self.lines.clone(),
        });
        let last = self.list.len() - 1;
        &mut self.list[last]
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(Diagnostic::is_error)
    }

    /// The text of a span that lies on one line, and the text of that line before it, for
    /// hints that quote the user's own words.
    pub fn snippet(&self, span: Span) -> Option<(&str, &str)> {
        if span.start.line != span.end.line || span.end.col <= span.start.col {
            return None;
        }
        let (line, _) = self.lines.line(&self.source.text, span.start.line.checked_sub(1)? as usize)?;
        // Counting characters is linear in the line: on a megabyte-long line, once per
        // diagnostic, that would be quadratic. Hints do without the quote there.
        if line.len() > 4 * MAX_LINE {
            return None;
        }
        let byte = |col: u32| line.char_indices().map(|(b, _)| b).chain([line.len()]).nth(col as usize - 1);
        let (from, to) = (byte(span.start.col)?, byte(span.end.col)?);
        Some((&line[..from], &line[from..to]))
    }
}

impl Diagnostic {
    pub fn label(&mut self, label: impl Into<String>) -> &mut Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }

    /// Sets `help` to "did you mean `x`?" when a near name exists.
    pub fn suggest<'a>(&mut self, wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> &mut Self {
        if let Some(near) = did_you_mean(wrong, candidates) {
            self.help = Some(format!("did you mean `{near}`?"));
        }
        self
    }
}

/// How many candidates "did you mean" looks at, and compares with, at most: among thousands of
/// node ids a hint is worth less than the time to find it, and each diagnostic must cost about
/// the same however large the file.
const SUGGEST_SCAN: usize = 1_000;
const SUGGEST_COMPARE: usize = 64;

/// The closest candidate to `wrong`, if it is close enough to be a likely typo.
///
/// Bounded, because Jaro-Winkler is quadratic in the length of the words and a file may hold
/// thousands of names and errors: a word longer than a name may be gets no hint, and only the
/// first few candidates of about its length are compared.
pub fn did_you_mean<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = wrong.chars().count();
    if len > limits::NAME_CHARS.value {
        return None;
    }
    let near = |c: &str| c.len() <= 4 * limits::NAME_CHARS.value && c.chars().count().abs_diff(len) <= len / 2 + 2;
    let wrong_lower = wrong.to_lowercase();
    candidates
        .into_iter()
        .take(SUGGEST_SCAN)
        .filter(|c| near(c))
        .take(SUGGEST_COMPARE)
        .map(|c| (strsim::jaro_winkler(&wrong_lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// How many names an "expected one of" label lists before it says how many more there are.
const ONE_OF_NAMES: usize = 24;

/// "`a`, `b` or `c`", for "expected one of" labels; a long list is cut ("… or 6,990 others"),
/// so that a label costs the same however many nodes a flow has.
pub fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut names = names.into_iter();
    let shown: Vec<String> = names.by_ref().take(ONE_OF_NAMES).map(|n| format!("`{n}`")).collect();
    // Counting the rest is free when the iterator knows its length (a slice of ids).
    let more = match names.size_hint() {
        (lo, Some(hi)) if lo == hi => lo,
        _ => names.count(),
    };
    match shown.as_slice() {
        [] => "nothing".to_owned(),
        [one] => one.clone(),
        _ if more > 0 => format!("{} or {} others", shown.join(", "), limits::group(more)),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::Pos;

    #[test]
    fn renders_a_caret_under_the_span() {
        let source = Arc::new(Source { path: "f.yaml".into(), text: "id: x\nnodes: 3\n".into() });
        let mut diags = Diags::new(source);
        let span = Span { start: Pos { line: 2, col: 8 }, end: Pos { line: 2, col: 9 } };
        diags
            .error("wrong-type", Some(span), "`nodes` must be a list")
            .label("expected a list")
            .help("write `- id: ...`");
        let text = diags.list[0].render(false);
        assert_eq!(
            text,
            "error[wrong-type]: `nodes` must be a list\n --> f.yaml:2:8\n  |\n2 | nodes: 3\n  |        ^ expected a list\n  |\n  = help: write `- id: ...`\n"
        );
    }

    #[test]
    fn long_lines_show_a_window_around_the_caret() {
        let text = format!("nodes: {}x{}\n", "[".repeat(300), "]".repeat(300));
        let source = Arc::new(Source { path: "f.yaml".into(), text });
        let mut diags = Diags::new(source);
        let span = Span { start: Pos { line: 1, col: 308 }, end: Pos { line: 1, col: 309 } };
        diags.error("yaml-syntax", Some(span), "here");
        let text = diags.list[0].render(false);
        let lines: Vec<&str> = text.lines().collect();
        let source_line = lines[3].split_once(" | ").map(|(_, l)| l).unwrap_or_default();
        let caret_line = lines[4].split_once(" | ").map(|(_, l)| l).unwrap_or_default();
        assert!(source_line.chars().count() <= MAX_LINE + 2, "{source_line}");
        let caret = caret_line.chars().position(|c| c == '^').expect("a caret");
        assert_eq!(source_line.chars().nth(caret), Some('x'), "{text}");
    }

    /// The caret sits under the spanned text as a terminal shows it: `名前` takes four columns,
    /// `👋` two, the combining accent of `é` none.
    #[test]
    fn carets_are_measured_in_display_columns() {
        let line = "a: \"名前 👋 e\u{301} {{x}}\"";
        let at = |needle: &str| line[..line.find(needle).expect(needle)].chars().count();
        assert_eq!(caret(line, at("名"), 2), (" ".repeat(4), 4));
        assert_eq!(caret(line, at("👋"), 1), (" ".repeat(9), 2));
        assert_eq!(caret(line, at("{{"), 5), (" ".repeat(14), 5));
        assert_eq!(caret("\t\tx", 2, 1), ("\t\t".to_owned(), 1));
        let source = Arc::new(Source { path: "f.yaml".into(), text: format!("{line}\n") });
        let mut diags = Diags::new(source);
        let col = at("{{") as u32 + 3;
        diags.error("x", Some(Span { start: Pos { line: 1, col }, end: Pos { line: 1, col: col + 1 } }), "here");
        let text = diags.list[0].render(false);
        assert!(text.contains("\n  |                 ^\n"), "{text}");
    }

    #[test]
    fn a_diagnostic_without_a_position_has_zeros_in_json() {
        let mut diags = Diags::new(Arc::new(Source { path: "f.yaml".into(), text: String::new() }));
        diags.error("empty-file", None, "the file is empty");
        let json = diags.list[0].to_json();
        for key in ["line", "column", "end_line", "end_column"] {
            assert_eq!(json[key], 0, "{key}");
        }
    }

    #[test]
    fn suggests_near_names_only() {
        assert_eq!(did_you_mean("methdo", ["method", "path"]), Some("method"));
        assert_eq!(did_you_mean("zzz", ["method", "path"]), None);
        assert_eq!(one_of(["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
