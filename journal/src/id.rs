//! Run ids: `r`, the creation time, then randomness, in lower-case Crockford base32, so that ids
//! sort by creation time, are safe in a file name and a URL, and are short enough to type.

/// Crockford's base32 alphabet, lower case: no `i`, `l`, `o`, `u`.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// 9 characters of time (45 bits of Unix milliseconds: until the year 3084).
const TIME_CHARS: usize = 9;
/// 6 characters of randomness (30 bits): two runs started in the same millisecond differ.
const RANDOM_CHARS: usize = 6;
/// The length of an id: `r` and the two parts.
pub(crate) const LEN: usize = 1 + TIME_CHARS + RANDOM_CHARS;

/// The id of a run created at `now_ms`, with `random` for the last part.
pub(crate) fn new(now_ms: u64, random: u64) -> String {
    let mut id = String::with_capacity(LEN);
    id.push('r');
    push_base32(&mut id, now_ms, TIME_CHARS);
    push_base32(&mut id, random, RANDOM_CHARS);
    id
}

/// A fresh id for a run created now.
pub(crate) fn fresh(now_ms: u64) -> String {
    new(now_ms, fastrand::u64(..))
}

/// Whether `id` has the form of a run id: only then is it used in a lock file's name.
pub(crate) fn is_valid(id: &str) -> bool {
    id.len() == LEN && id.starts_with('r') && id.bytes().skip(1).all(|b| ALPHABET.contains(&b))
}

/// The low `chars * 5` bits of `value`, most significant first.
fn push_base32(out: &mut String, value: u64, chars: usize) {
    for i in (0..chars).rev() {
        let digit = (value >> (i * 5)) & 31;
        out.push(char::from(ALPHABET[digit as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_are_safe_in_paths() {
        let a = new(1_700_000_000_000, u64::MAX);
        let b = new(1_700_000_000_001, 0);
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), LEN);
        assert!(is_valid(&a) && is_valid(&b));
        assert_eq!(new(0, 0), "r000000000000000");
        // The year 3000 still fits in 45 bits and still sorts.
        assert!(new(32_503_680_000_000, 0) > b);
        for bad in ["", "r", "r00000000000000/", "x000000000000000", "r00000000000000O", "../r000000000000"] {
            assert!(!is_valid(bad), "{bad}");
        }
        let many: std::collections::HashSet<String> = (0..1000).map(|_| fresh(1)).collect();
        assert!(many.len() > 990);
    }
}
