//! Deterministic ids in Duo's formats: `DU…`/`DP…` plus 18 upper-case letters or digits, and
//! UUID-shaped txids, drawn from a seeded generator so a test sees the same ids every run.

use serde::{Deserialize, Serialize};

/// A splitmix64 generator; its state is saved with the simulator's state so ids stay unique
/// across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdGen {
    state: u64,
}

impl IdGen {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `prefix` followed by `len` characters of `A-Z0-9`.
    pub fn token(&mut self, prefix: &str, len: usize) -> String {
        const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut out = String::with_capacity(prefix.len() + len);
        out.push_str(prefix);
        for _ in 0..len {
            // 36 does not divide 2^64; the bias is below 2^-58 and irrelevant for ids.
            let index = usize::try_from(self.next_u64() % 36).unwrap_or(0);
            out.push(char::from(ALPHABET[index]));
        }
        out
    }

    /// A user id: `DU` + 18.
    pub fn user_id(&mut self) -> String {
        self.token("DU", 18)
    }

    /// A phone id: `DP` + 18.
    pub fn phone_id(&mut self) -> String {
        self.token("DP", 18)
    }

    /// A txid shaped like a version-4 UUID.
    pub fn txid(&mut self) -> String {
        let hi = self.next_u64();
        let lo = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0x0fff,
            ((lo >> 48) & 0x3fff) | 0x8000,
            lo & 0xffff_ffff_ffff
        )
    }

    /// A lower-case token for enrolment and activation codes.
    pub fn code(&mut self, len: usize) -> String {
        self.token("", len).to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_duo_shapes_and_repeat_for_a_seed() {
        let mut a = IdGen::new(7);
        let mut b = IdGen::new(7);
        let user = a.user_id();
        assert_eq!(user, b.user_id());
        assert_eq!(user.len(), 20);
        assert!(user.starts_with("DU"));
        assert!(user[2..].bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        let txid = a.txid();
        let groups: Vec<usize> = txid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_ne!(a.phone_id(), a.phone_id());
    }
}
