//! Password hashing: argon2id (default) and PBKDF2-HMAC-SHA256, each with a per-user salt, and
//! the constant-time comparison of a presented password against a stored hash.
//!
//! Parameters are fixed so that a `bootstrap_type = "hash"` file can be produced elsewhere:
//! - argon2: argon2id v19, m = 19456 KiB, t = 2, p = 1 (the argon2 crate's and OWASP's
//!   defaults), 32-byte output; the salt is the UTF-8 bytes of the salt column (8 bytes or more).
//! - pbkdf2_sha256: PBKDF2-HMAC-SHA256, 4096 iterations (EMQX's default), 32-byte output; the
//!   salt is the UTF-8 bytes of the salt column.
//!
//! Stored hashes are lowercase hex.

use crate::authn::AuthError;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// PBKDF2 iteration count.
pub(crate) const PBKDF2_ITERATIONS: u32 = 4096;
/// Length of every derived key.
const HASH_LEN: usize = 32;
/// Length of a generated salt (alphanumeric characters).
const SALT_LEN: usize = 16;

/// `authentication.password_hash_algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    /// argon2id (memory-hard); the default.
    #[default]
    Argon2,
    /// PBKDF2-HMAC-SHA256.
    #[serde(alias = "pbkdf2-sha256", alias = "pbkdf2")]
    Pbkdf2Sha256,
}

/// A fresh random salt.
pub(crate) fn new_salt() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(SALT_LEN)
        .map(char::from)
        .collect()
}

/// The derived key of `password` with `salt`.
pub(crate) fn derive(
    alg: HashAlgorithm,
    password: &[u8],
    salt: &[u8],
) -> Result<[u8; HASH_LEN], AuthError> {
    let mut out = [0u8; HASH_LEN];
    match alg {
        HashAlgorithm::Argon2 => argon2::Argon2::default()
            .hash_password_into(password, salt, &mut out)
            .map_err(|e| AuthError::Hash(e.to_string()))?,
        HashAlgorithm::Pbkdf2Sha256 => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, PBKDF2_ITERATIONS, &mut out)
        }
    }
    Ok(out)
}

/// Whether `password` hashes to `expected` (constant-time in the hash comparison).
///
/// The hash runs through [`crate::offload`]: never stalling the tokio worker's other tasks.
pub(crate) fn verify(alg: HashAlgorithm, password: &[u8], salt: &[u8], expected: &[u8]) -> bool {
    crate::offload::offload(|| match derive(alg, password, salt) {
        Ok(got) => bool::from(got.as_slice().ct_eq(expected)),
        Err(_) => false,
    })
}

/// Lowercase hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Parses hex (either case); `None` when malformed.
pub(crate) fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some((digit(p[0])? << 4) | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff, 0xab];
        assert_eq!(to_hex(&bytes), "00017f80ffab");
        assert_eq!(from_hex("00017F80ffab").as_deref(), Some(&bytes[..]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn argon2_verifies_only_the_right_password() {
        let salt = new_salt();
        let h = derive(HashAlgorithm::Argon2, b"secret", salt.as_bytes()).expect("hash");
        assert!(verify(
            HashAlgorithm::Argon2,
            b"secret",
            salt.as_bytes(),
            &h
        ));
        assert!(!verify(
            HashAlgorithm::Argon2,
            b"Secret",
            salt.as_bytes(),
            &h
        ));
        assert!(!verify(HashAlgorithm::Argon2, b"secret", b"othersalt", &h));
        // The algorithms are not interchangeable.
        assert!(!verify(
            HashAlgorithm::Pbkdf2Sha256,
            b"secret",
            salt.as_bytes(),
            &h
        ));
    }

    #[test]
    fn argon2_refuses_a_short_salt() {
        assert!(derive(HashAlgorithm::Argon2, b"secret", b"short").is_err());
        assert!(!verify(
            HashAlgorithm::Argon2,
            b"secret",
            b"short",
            &[0; 32]
        ));
    }

    #[test]
    fn pbkdf2_matches_a_known_vector() {
        // Reference: Python's hashlib.pbkdf2_hmac('sha256', b'password', b'salt', 4096, 32).
        let h = derive(HashAlgorithm::Pbkdf2Sha256, b"password", b"salt").expect("hash");
        assert_eq!(
            to_hex(&h),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
        assert!(verify(
            HashAlgorithm::Pbkdf2Sha256,
            b"password",
            b"salt",
            &h
        ));
        assert!(!verify(
            HashAlgorithm::Pbkdf2Sha256,
            b"passwore",
            b"salt",
            &h
        ));
    }

    #[test]
    fn salts_are_random() {
        assert_ne!(new_salt(), new_salt());
        assert_eq!(new_salt().len(), SALT_LEN);
    }
}
