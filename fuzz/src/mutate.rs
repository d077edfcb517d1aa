//! Mutations of flow files: byte edits, line edits, splices from other files, and nestings
//! that repeat a hostile pattern hundreds or thousands of times (the shapes that found the
//! stack overflows and the exponential parses of issue 11).

use fastrand::Rng;

/// Tokens of the flow format, of templates and of JSONPath, inserted at random places.
const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{#if inputs.a}}",
    "{{/if}}",
    "{{else}}",
    "(not ",
    ")",
    "(eq ",
    "[?@",
    "]",
    "[",
    "!",
    "$..*",
    "@.a",
    "- ",
    ": ",
    "{",
    "}",
    "&a ",
    "*a",
    "\r",
    "\n",
    "\r\n",
    "\t",
    "  ",
    "'",
    "\"",
    "---\n",
    "~",
    "null",
    "kind: subflow\n",
    "flow: ",
    "after: [",
    "when: ",
    "{{nodes.",
    "{{inputs.",
    "{{vars.",
    ".",
    "#",
    "|\n",
    ">-\n",
    "extract:\n",
    "$.response[?@.x == 1]",
    "{{len ",
    "{{#each ",
    "{{/each}}",
    "{{lookup ",
    "\u{feff}",
    "é",
];

/// Patterns nested `k` times around a piece of text: prefix^k + text + suffix^k.
const NESTINGS: &[(&str, &str)] = &[
    ("(not ", ")"),
    ("[?@", "]"),
    ("[?!", "]"),
    ("{{#if inputs.a}}", "{{/if}}"),
    ("- ", ""),
    ("[", "]"),
    ("{a: ", "}"),
    ("(", ")"),
    ("!", ""),
    ("{{", "}}"),
];

/// Inputs stop growing at this size, so that the rate stays high; the regression tests cover
/// the largest files.
const MAX_LEN: usize = 1 << 20;

/// Applies one to four mutations to `text`, taking splices from `others`.
pub fn mutate(rng: &mut Rng, text: &str, others: &[String]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..rng.usize(1..=4) {
        match rng.u8(0..10) {
            0 => delete(rng, &mut bytes),
            1 => duplicate(rng, &mut bytes),
            2 | 3 => {
                let token = TOKENS[rng.usize(..TOKENS.len())];
                insert(rng, &mut bytes, token.as_bytes());
            }
            4 => {
                let noise = random_bytes(rng);
                insert(rng, &mut bytes, &noise);
            }
            5 => repeat_line(rng, &mut bytes),
            6 => nest(rng, &mut bytes),
            7 if !others.is_empty() => {
                let other = &others[rng.usize(..others.len())];
                splice(rng, &mut bytes, other.as_bytes());
            }
            8 => swap_lines(rng, &mut bytes),
            _ => {
                let name = long_name(rng);
                insert(rng, &mut bytes, name.as_bytes());
            }
        }
        bytes.truncate(MAX_LEN);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A count with a long tail: mostly small, sometimes thousands.
pub fn heavy(rng: &mut Rng) -> usize {
    match rng.u8(0..4) {
        0 => rng.usize(1..8),
        1 => rng.usize(8..100),
        2 => rng.usize(100..2_000),
        _ => rng.usize(2_000..20_000),
    }
}

fn at(rng: &mut Rng, bytes: &[u8]) -> usize {
    rng.usize(..=bytes.len())
}

fn delete(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let from = at(rng, bytes);
    let to = (from + rng.usize(0..64)).min(bytes.len());
    bytes.drain(from..to);
}

fn duplicate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let from = at(rng, bytes);
    let to = (from + rng.usize(0..256)).min(bytes.len());
    let piece = bytes[from..to].to_vec();
    for _ in 0..heavy(rng).min(MAX_LEN / piece.len().max(1)) {
        insert_at(bytes, to, &piece);
    }
}

fn insert(rng: &mut Rng, bytes: &mut Vec<u8>, piece: &[u8]) {
    let i = at(rng, bytes);
    insert_at(bytes, i, piece);
}

fn insert_at(bytes: &mut Vec<u8>, i: usize, piece: &[u8]) {
    bytes.splice(i..i, piece.iter().copied());
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    (0..rng.usize(1..8)).map(|_| rng.u8(..)).collect()
}

fn line_bounds(rng: &mut Rng, bytes: &[u8]) -> (usize, usize) {
    let i = at(rng, bytes);
    let start = bytes[..i].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let end = bytes[i..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |p| i + p + 1);
    (start, end)
}

fn repeat_line(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let (start, end) = line_bounds(rng, bytes);
    let line = bytes[start..end].to_vec();
    let times = heavy(rng).min(MAX_LEN / line.len().max(1));
    let repeated: Vec<u8> = line.iter().copied().cycle().take(line.len() * times).collect();
    insert_at(bytes, end, &repeated);
}

fn swap_lines(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let (a0, a1) = line_bounds(rng, bytes);
    let line = bytes[a0..a1].to_vec();
    bytes.drain(a0..a1);
    insert(rng, bytes, &line);
}

/// Wraps a short piece of the text in a pattern repeated `heavy` times.
fn nest(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let (prefix, suffix) = NESTINGS[rng.usize(..NESTINGS.len())];
    let k = heavy(rng).min(MAX_LEN / (prefix.len() + suffix.len()));
    let from = at(rng, bytes);
    let to = (from + rng.usize(0..16)).min(bytes.len());
    insert_at(bytes, to, suffix.repeat(k).as_bytes());
    insert_at(bytes, from, prefix.repeat(k).as_bytes());
}

fn splice(rng: &mut Rng, bytes: &mut Vec<u8>, other: &[u8]) {
    let from = rng.usize(..=other.len());
    let to = (from + rng.usize(0..512)).min(other.len());
    insert(rng, bytes, &other[from..to]);
}

fn long_name(rng: &mut Rng) -> String {
    let n = heavy(rng) * 8;
    (0..n).map(|_| rng.alphabetic()).collect()
}
