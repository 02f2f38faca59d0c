//! Secrets: random tokens, password hashing, constant-time comparison.
//! Nothing here logs or formats a secret.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets without leaking where they differ (hashing first
/// also hides the length).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let ha = Sha256::digest(a.as_bytes());
    let hb = Sha256::digest(b.as_bytes());
    ha.ct_eq(&hb).into()
}

/// Compares two SHA-256 digests of secrets without leaking where they
/// differ: [`secrets_equal`] for a caller that already holds both digests.
///
/// Four 64-bit words XOR'd and OR'd together, whatever they hold: the
/// same operations for any input, with no branch on the data until the
/// one answer (`black_box` keeps the compiler from adding one). `subtle`'s
/// byte-at-a-time `ct_eq` did the same in about ten times the instructions,
/// on every API request.
pub fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let mut wx = [0u8; 8];
        let mut wy = [0u8; 8];
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        diff |= u64::from_ne_bytes(wx) ^ u64::from_ne_bytes(wy);
    }
    std::hint::black_box(diff) == 0
}

/// Argon2id cost. The defaults follow OWASP's minimum (19 MiB, 2 passes).
#[derive(Debug, Clone, Copy)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        PasswordCost {
            memory_kib: 19 * 1024,
            iterations: 2,
        }
    }
}

fn argon2(cost: PasswordCost) -> Result<Argon2<'static>, String> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
        .map_err(|e| format!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(cost)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// Verifies against a stored PHC string (its own parameters apply).
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A fixed hash to verify against when the address is unknown, so a failed
/// sign-in costs the same either way.
pub fn decoy_hash(cost: PasswordCost) -> String {
    hash_password("decoy-password-never-matches", cost).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal digests compare equal; a difference in any bit of any byte
    /// (each of the four words, either end of a word) does not.
    #[test]
    fn digests_differing_anywhere_are_unequal() {
        let a: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        assert!(digests_equal(&a, &a));
        for byte in 0..32 {
            for bit in 0..8 {
                let mut b = a;
                b[byte] ^= 1 << bit;
                assert!(!digests_equal(&a, &b), "byte {byte} bit {bit}");
                assert!(!digests_equal(&b, &a), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn passwords_verify_and_tokens_are_distinct() {
        let cost = PasswordCost {
            memory_kib: 1024,
            iterations: 1,
        };
        let h = hash_password("correct horse", cost).unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a phc string"));
        assert_ne!(random_token(), random_token());
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
    }
}
