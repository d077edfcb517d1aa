//! Bearer tokens: the config holds only their SHA-256 hashes; a request's token is hashed and
//! compared with every configured hash in constant time (no early exit, no length leak: every
//! hash is 32 bytes). What a token may do is a list of flow patterns and signal patterns.

use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

/// A configured token: its name (for logs and metrics), its hash, what it may start and signal.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub hash: [u8; 32],
    pub flows: Vec<Pattern>,
    pub signals: Vec<Pattern>,
}

impl std::fmt::Debug for Token {
    // The hash is not a secret, but it is not useful in a log either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("name", &self.name).field("flows", &self.flows).finish_non_exhaustive()
    }
}

impl Token {
    /// Whether this token may start (and see the runs of) flow `id`.
    pub fn may_run(&self, id: &str) -> bool {
        self.flows.iter().any(|p| p.matches(id))
    }

    /// Whether this token may send signal `name`.
    pub fn may_signal(&self, name: &str) -> bool {
        self.signals.iter().any(|p| p.matches(name))
    }
}

/// A flow id or signal name, or a glob of them: `*` stands for any run of characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// `None` when `s` holds anything but letters, digits, `-`, `_`, `.` and `*`.
    pub fn new(s: &str) -> Option<Pattern> {
        let ok = !s.is_empty() && s.len() <= 200 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.*".contains(c));
        ok.then(|| Pattern(s.to_owned()))
    }

    /// Whole-string match; linear in practice (the classic greedy glob with one backtrack point).
    pub fn matches(&self, text: &str) -> bool {
        let (p, t) = (self.0.as_bytes(), text.as_bytes());
        let (mut i, mut j) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while j < t.len() {
            if i < p.len() && p[i] == b'*' {
                star = Some((i, j));
                i += 1;
            } else if i < p.len() && p[i] == t[j] {
                i += 1;
                j += 1;
            } else if let Some((si, sj)) = star {
                i = si + 1;
                j = sj + 1;
                star = Some((si, sj + 1));
            } else {
                return false;
            }
        }
        p[i..].iter().all(|&c| c == b'*')
    }
}

/// SHA-256 of a token, as the config stores it.
pub fn hash(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// `hash` as 64 lower-case hex digits (`flowcat serve hash-token`).
pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 hex digits (either case) to a hash.
pub fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The token whose hash is that of the request's bearer token, comparing against every
/// configured token (so the time does not say which one, or how close a guess came).
pub fn find<'a>(tokens: &'a [Token], authorization: Option<&[u8]>) -> Option<&'a Token> {
    let presented = bearer(authorization?)?;
    let h = hash(presented);
    let mut found = None;
    for t in tokens {
        if bool::from(t.hash.ct_eq(&h)) {
            found = Some(t);
        }
    }
    found
}

/// The token of `Authorization: Bearer TOKEN` (the scheme in any case, RFC 6750).
fn bearer(header: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(header).ok()?;
    let (scheme, token) = s.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 4096).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, secret: &str, flows: &[&str]) -> Token {
        Token {
            name: name.into(),
            hash: hash(secret),
            flows: flows.iter().map(|f| Pattern::new(f).expect("pattern")).collect(),
            signals: Vec::new(),
        }
    }

    #[test]
    fn globs_match_whole_ids() {
        let p = |s: &str| Pattern::new(s).expect("pattern");
        assert!(p("duo.auth.*").matches("duo.auth.verify_push"));
        assert!(!p("duo.auth.*").matches("duo.admin.delete_user"));
        assert!(p("*").matches("anything.at.all"));
        assert!(p("duo.*.delete_*").matches("duo.admin.delete_user"));
        assert!(!p("duo.auth.verify_push").matches("duo.auth.verify_push_x"));
        assert!(!p("duo.auth").matches("duo"));
        assert!(Pattern::new("../etc").is_none());
        assert!(Pattern::new("a/b").is_none());
    }

    #[test]
    fn the_bearer_token_is_found_by_its_hash() {
        let tokens = [token("a", "alpha-token", &["*"]), token("b", "beta-token", &["x"])];
        assert_eq!(find(&tokens, Some(b"Bearer beta-token")).map(|t| t.name.as_str()), Some("b"));
        assert_eq!(find(&tokens, Some(b"bearer alpha-token")).map(|t| t.name.as_str()), Some("a"));
        assert!(find(&tokens, Some(b"Bearer gamma")).is_none());
        assert!(find(&tokens, Some(b"Basic alpha-token")).is_none());
        assert!(find(&tokens, Some(b"Bearer ")).is_none());
        assert!(find(&tokens, None).is_none());
    }

    #[test]
    fn hashes_read_back() {
        let h = hash("test");
        assert_eq!(hex(&h), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
        assert_eq!(parse_hash(&hex(&h).to_uppercase()), Some(h));
        assert_eq!(parse_hash("abc"), None);
    }
}
