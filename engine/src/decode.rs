//! A flow file's bytes → its text, or a diagnostic at the first byte that is not UTF-8.
//!
//! Flow files are UTF-8. One saved by an editor in another encoding (Latin-1, Windows-1252,
//! UTF-16) is a mistake in the file like any other: it gets a `file:line:col`, what the byte
//! is, and the fix, as an ordinary diagnostic, in the human and the JSON report alike.

use std::sync::Arc;

use crate::diag::{Diagnostic, Diags, Source};
use crate::yaml::{Pos, Span};

/// Windows-1252's characters for bytes 0x80 to 0x9F, where it differs from Latin-1 (a control
/// character there, shown as itself): Word's curly quotes and dashes are the usual guests.
const CP1252: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘', '’',
    '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

/// The file's text, or a `not-utf8` diagnostic at its first invalid byte. The diagnostic's
/// source holds the file decoded with U+FFFD for each invalid sequence, so that the line is
/// shown with the caret under the replacement character.
pub fn decode(path: String, bytes: Vec<u8>) -> Result<Source, Box<Diagnostic>> {
    let error = match String::from_utf8(bytes) {
        Ok(text) => return Ok(Source { path, text }),
        Err(e) => e,
    };
    let bytes = error.as_bytes();
    let at = error.utf8_error().valid_up_to();
    let start = position(std::str::from_utf8(&bytes[..at]).unwrap_or_default());
    let byte = bytes[at];
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut diags = Diags::new(Arc::new(Source { path, text }));
    diags
        .error(
            "not-utf8",
            Some(Span { start, end: Pos { col: start.col + 1, ..start } }),
            format!("byte 0x{byte:02X} is not UTF-8"),
        )
        .label("not UTF-8")
        .help(format!("{}: save the file as UTF-8", guess(bytes, byte)));
    Err(Box::new(diags.list.swap_remove(0)))
}

/// Where the text after `prefix` starts: lines counted as the YAML parser counts them (a
/// file without `\n` may end its lines with a lone `\r`), columns in characters.
fn position(prefix: &str) -> Pos {
    let brk = if prefix.contains('\n') { '\n' } else { '\r' };
    let line = prefix.matches(brk).count() + 1;
    let line_start = prefix.rfind(brk).map_or(0, |i| i + 1);
    let col = prefix[line_start..].chars().count() + 1;
    Pos { line: line as u32, col: col as u32 }
}

/// What the file probably is, from its byte-order mark or the first invalid byte.
fn guess(bytes: &[u8], byte: u8) -> String {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return "the file is UTF-16 (it starts with a UTF-16 byte-order mark)".to_owned();
    }
    let shown = match byte {
        0x80..=0x9F => CP1252[usize::from(byte - 0x80)],
        _ => char::from(byte),
    };
    if shown.is_control() {
        return "the file is in another encoding than UTF-8".to_owned();
    }
    format!("the file looks like Latin-1/Windows-1252, where 0x{byte:02X} is `{shown}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(bytes: &[u8]) -> String {
        let d = decode("f.yaml".into(), bytes.to_vec()).expect_err("not UTF-8");
        format!("{}: {}; {}", d.location(), d.message, d.help.unwrap_or_default())
    }

    #[test]
    fn the_first_invalid_byte_is_located_over_the_valid_prefix() {
        assert_eq!(
            problem(b"id: x\nname: \"Ren\xe9 \xe9\"\n"),
            "f.yaml:2:11: byte 0xE9 is not UTF-8; the file looks like Latin-1/Windows-1252, where 0xE9 is `é`: save the file as UTF-8"
        );
        // Columns count characters of the valid prefix: `ü` is one.
        assert!(
            problem("a: ü \u{2019}x".bytes().chain([0x92]).collect::<Vec<_>>().as_slice())
                .starts_with("f.yaml:1:8: byte 0x92")
        );
        assert!(problem(b"a: \x93quoted\x94").contains("0x93 is `\u{201c}`"));
        assert!(problem(b"a\rb\r\xff").starts_with("f.yaml:3:1:"));
        assert!(problem(b"\xff\xfei\x00d\x00").contains("UTF-16"));
        assert!(decode("f.yaml".into(), "é".as_bytes().to_vec()).is_ok());
    }

    #[test]
    fn the_line_is_shown_with_the_caret_under_the_bad_byte() {
        let d = decode("f.yaml".into(), b"id: x\nname: caf\xe9 au lait\n".to_vec()).expect_err("not UTF-8");
        let text = d.render(false);
        assert!(text.contains("2 | name: caf\u{fffd} au lait\n  |          ^ not UTF-8\n"), "{text}");
    }
}
