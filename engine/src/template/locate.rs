//! Where a place in a template's text is in the YAML file.
//!
//! A template may read a thousand paths and each gets its own span, so locating must not start
//! from the beginning of the text for each one: that was quadratic (12,000 references took
//! seconds). The locator remembers where it stopped, in the text and in the scalar as written,
//! and moves forward from there. Paths are located in the order handlebars lists them, which is
//! the order of the text except for a helper's `key=value` arguments; for those it goes back to
//! a checkpoint at the start of the current `{{…}}`, not to the start of the text.

use crate::yaml::{Node, Pos, Span, Value};

/// A place in the template text: its byte, the characters before it, its line (0-based) and
/// its column in characters from the start of that line.
#[derive(Clone, Copy, Debug, Default)]
struct TextPos {
    byte: usize,
    chars: usize,
    line: usize,
    col: usize,
}

/// How far the walk through the scalar as written has gone: `produced` characters of the value
/// lie before byte `byte` of the raw text, which is at `at` in the file.
#[derive(Clone, Copy, Debug)]
struct RawPos {
    byte: usize,
    produced: usize,
    at: Pos,
}

/// Maps positions inside the template text to the YAML file.
pub(super) struct Locator<'n> {
    pub span: Span,
    /// The scalar as written, when escapes, doubled quotes or line breaks move characters.
    raw: Option<&'n str>,
    /// The quote that opens `raw`, if any.
    quote: Option<char>,
    /// Characters before the text starts: the opening quote.
    offset: usize,
    /// The template text.
    text: &'n str,
    cur: (TextPos, RawPos),
    mark: (TextPos, RawPos),
}

impl<'n> Locator<'n> {
    pub fn new(node: &'n Node) -> Self {
        let (raw, text) = match &node.value {
            Value::Scalar { raw, text, .. } => (raw.as_deref(), text.as_str()),
            _ => (None, ""),
        };
        let quote = raw.and_then(|r| r.chars().next()).filter(|c| matches!(c, '"' | '\''));
        let offset = crate::yaml::text_offset(node);
        let zero = (TextPos::default(), RawPos { byte: 0, produced: 0, at: node.span.start });
        let mut locator = Locator { span: node.span, raw, quote, offset, text, cur: zero, mark: zero };
        locator.cur = locator.new_start();
        locator.mark = locator.cur;
        locator
    }

    /// Remembers the current place: locating goes back here, not to the start, when asked for
    /// a place before it.
    pub fn checkpoint(&mut self) {
        self.mark = self.cur;
    }

    /// The span of `len` characters at byte `byte` of the template text.
    pub fn at_byte(&mut self, byte: usize, len: usize) -> Span {
        let byte = byte.min(self.text.len());
        if byte < self.cur.0.byte {
            self.cur = if byte >= self.mark.0.byte { self.mark } else { self.new_start() };
        }
        self.advance_text(byte);
        let p = self.cur.0;
        match self.raw {
            None if p.line == 0 => self.span.sub(self.offset + p.col, len),
            None => self.span,
            Some(raw) => {
                let start = self.advance_raw(raw, p.chars);
                Span { start, end: Pos { line: start.line, col: start.col + len.max(1) as u32 } }
            }
        }
    }

    /// `line` is 1-based, `col` 0-based in characters: a handlebars error position.
    pub fn at(&mut self, line: usize, col: usize, len: usize) -> Span {
        let line_start = if line <= 1 {
            0
        } else {
            self.text.match_indices('\n').nth(line - 2).map_or(self.text.len(), |(i, _)| i + 1)
        };
        let rest = &self.text[line_start..];
        let byte = line_start + rest.char_indices().nth(col).map_or(rest.len(), |(i, _)| i);
        self.at_byte(byte, len)
    }

    fn new_start(&self) -> (TextPos, RawPos) {
        let mut at = self.span.start;
        if self.quote.is_some() {
            at.col += 1;
        }
        (TextPos::default(), RawPos { byte: self.quote.map_or(0, char::len_utf8), produced: 0, at })
    }

    fn advance_text(&mut self, byte: usize) {
        let p = &mut self.cur.0;
        for c in self.text[p.byte..byte].chars() {
            p.chars += 1;
            if c == '\n' {
                p.line += 1;
                p.col = 0;
            } else {
                p.col += 1;
            }
        }
        p.byte = byte;
    }

    /// Walks the scalar as written until `target` characters of its value have gone by, and
    /// says where that is. Escapes (`\"`, `\u00e9`), doubled single quotes and the line breaks
    /// and indentation of multi-line and block scalars take room in the file but not in the
    /// value.
    fn advance_raw(&mut self, raw: &str, target: usize) -> Pos {
        // Block scalars start at their first content character: that column is the indentation.
        let indent = self.new_start().1.at.col;
        let quote = self.quote;
        let r = &mut self.cur.1;
        let mut chars = raw[r.byte..].chars().peekable();
        while r.produced < target {
            let Some(c) = chars.next() else { break };
            r.byte += c.len_utf8();
            match (quote, c) {
                (Some('"'), '\\') => {
                    let escaped = chars.next();
                    r.byte += escaped.map_or(0, char::len_utf8);
                    let skip = match escaped {
                        Some('x') => 2,
                        Some('u') => 4,
                        Some('U') => 8,
                        Some('\n') => {
                            r.at = Pos { line: r.at.line + 1, col: 1 };
                            continue;
                        }
                        _ => 0,
                    };
                    for _ in 0..skip {
                        r.byte += chars.next().map_or(0, char::len_utf8);
                    }
                    r.at.col += 2 + skip as u32;
                    r.produced += 1;
                }
                (Some('\''), '\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    r.byte += 1;
                    r.at.col += 2;
                    r.produced += 1;
                }
                (_, '\n') => {
                    r.at = Pos { line: r.at.line + 1, col: 1 };
                    r.produced += 1;
                    // The next line's indentation is not part of the value.
                    while chars.peek() == Some(&' ') && (quote.is_some() || r.at.col < indent) {
                        chars.next();
                        r.byte += 1;
                        r.at.col += 1;
                    }
                }
                _ => {
                    r.at.col += 1;
                    r.produced += 1;
                }
            }
        }
        r.at
    }
}
