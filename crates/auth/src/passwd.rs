//! EMQX's password hash formats, for rows kept in an external database (PostgreSQL today):
//! `plain`, `md5`, `sha`, `sha256`, `sha512` with the salt as prefix, suffix or not at all,
//! `bcrypt` and `pbkdf2` (shared/specs/emqx-auth-api.md §8).
//!
//! Owns: the `password_hash_algorithm` object and the check of a presented password against a
//! stored hash and salt. Invariants: salt and password are the raw bytes of the stored strings
//! (a hex-looking salt is not decoded); digests are compared in constant time, and
//! case-insensitively except for bcrypt, as EMQX does; a NULL salt with a salted simple
//! algorithm is [`PasswdError::SaltNotString`], which the authenticator turns into ignore.

use hmac::digest::Digest;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Where the salt goes for the simple algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaltPosition {
    /// `salt ‖ password` (EMQX's default).
    #[default]
    Prefix,
    /// `password ‖ salt`.
    Suffix,
    /// No salt.
    Disable,
}

/// The HMAC of `pbkdf2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacFun {
    /// HMAC-SHA-1.
    Sha,
    /// HMAC-SHA-224.
    Sha224,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

impl MacFun {
    fn output_len(self) -> usize {
        match self {
            MacFun::Sha => 20,
            MacFun::Sha224 => 28,
            MacFun::Sha256 => 32,
            MacFun::Sha384 => 48,
            MacFun::Sha512 => 64,
        }
    }
}

/// Longest `dk_length` accepted: more is no safer and costs the broker CPU per login.
const MAX_DK_LENGTH: u32 = 512;
/// Most `pbkdf2` iterations accepted (a typo of a few zeros would stall every login).
const MAX_ITERATIONS: u32 = 10_000_000;

/// `password_hash_algorithm` (verify-only form; bcrypt's `salt_rounds` is accepted and unused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
pub enum PasswordHash {
    /// The password itself.
    Plain {
        /// Salt position.
        #[serde(default)]
        salt_position: SaltPosition,
    },
    /// Lowercase hex of MD5.
    Md5 {
        /// Salt position.
        #[serde(default)]
        salt_position: SaltPosition,
    },
    /// Lowercase hex of SHA-1.
    Sha {
        /// Salt position.
        #[serde(default)]
        salt_position: SaltPosition,
    },
    /// Lowercase hex of SHA-256.
    Sha256 {
        /// Salt position.
        #[serde(default)]
        salt_position: SaltPosition,
    },
    /// Lowercase hex of SHA-512.
    Sha512 {
        /// Salt position.
        #[serde(default)]
        salt_position: SaltPosition,
    },
    /// A modular-crypt bcrypt string (`$2a$`, `$2b$`, `$2x$`, `$2y$`); the salt column is unused.
    Bcrypt {
        /// Cost for new hashes (unused when verifying).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        salt_rounds: Option<u32>,
    },
    /// Lowercase hex of PBKDF2-HMAC.
    Pbkdf2 {
        /// The HMAC's hash.
        mac_fun: MacFun,
        /// Iterations (≥ 1).
        iterations: u32,
        /// Derived key length in bytes; default the MAC's output size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dk_length: Option<u32>,
    },
}

impl Default for PasswordHash {
    /// EMQX's default: salted SHA-256, salt first.
    fn default() -> Self {
        PasswordHash::Sha256 {
            salt_position: SaltPosition::Prefix,
        }
    }
}

/// Why a stored hash cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswdError {
    /// A salted simple algorithm met a NULL salt (EMQX: `salt_not_string`).
    #[error("the row's salt is NULL but the algorithm needs one")]
    SaltNotString,
}

impl PasswordHash {
    /// Checks the configuration's numbers.
    pub fn validate(&self) -> Result<(), String> {
        if let PasswordHash::Pbkdf2 {
            iterations,
            dk_length,
            ..
        } = self
        {
            if *iterations == 0 || *iterations > MAX_ITERATIONS {
                return Err(format!("pbkdf2 iterations must be 1..={MAX_ITERATIONS}"));
            }
            if dk_length.is_some_and(|d| d == 0 || d > MAX_DK_LENGTH) {
                return Err(format!("pbkdf2 dk_length must be 1..={MAX_DK_LENGTH}"));
            }
        }
        Ok(())
    }

    /// Whether checking costs enough CPU to run off the async workers (bcrypt, pbkdf2).
    pub fn is_slow(&self) -> bool {
        matches!(
            self,
            PasswordHash::Bcrypt { .. } | PasswordHash::Pbkdf2 { .. }
        )
    }

    /// Whether `password` matches `stored` with `salt` (`None`: SQL NULL).
    pub fn verify(
        &self,
        password: &[u8],
        salt: Option<&str>,
        stored: &str,
    ) -> Result<bool, PasswdError> {
        let simple = |pos: SaltPosition, digest: fn(&[u8]) -> Vec<u8>, hex: bool| {
            let data = salted(pos, password, salt)?;
            let computed = if hex {
                crate::hash::to_hex(&digest(&data)).into_bytes()
            } else {
                data
            };
            Ok(eq_ignore_case(&computed, stored.as_bytes()))
        };
        match self {
            PasswordHash::Plain { salt_position } => simple(*salt_position, |d| d.to_vec(), false),
            PasswordHash::Md5 { salt_position } => simple(*salt_position, digest::<md5::Md5>, true),
            PasswordHash::Sha { salt_position } => {
                simple(*salt_position, digest::<sha1::Sha1>, true)
            }
            PasswordHash::Sha256 { salt_position } => {
                simple(*salt_position, digest::<sha2::Sha256>, true)
            }
            PasswordHash::Sha512 { salt_position } => {
                simple(*salt_position, digest::<sha2::Sha512>, true)
            }
            PasswordHash::Bcrypt { .. } => Ok(bcrypt::verify(password, stored).unwrap_or(false)),
            PasswordHash::Pbkdf2 {
                mac_fun,
                iterations,
                dk_length,
            } => {
                let len = dk_length.map_or(mac_fun.output_len(), |d| d as usize);
                let salt = salt.unwrap_or("").as_bytes();
                let mut out = vec![0u8; len];
                match mac_fun {
                    MacFun::Sha => {
                        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, *iterations, &mut out)
                    }
                    MacFun::Sha224 => {
                        pbkdf2::pbkdf2_hmac::<sha2::Sha224>(password, salt, *iterations, &mut out)
                    }
                    MacFun::Sha256 => {
                        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, *iterations, &mut out)
                    }
                    MacFun::Sha384 => {
                        pbkdf2::pbkdf2_hmac::<sha2::Sha384>(password, salt, *iterations, &mut out)
                    }
                    MacFun::Sha512 => {
                        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, *iterations, &mut out)
                    }
                }
                let hex = crate::hash::to_hex(&out);
                Ok(eq_ignore_case(hex.as_bytes(), stored.as_bytes()))
            }
        }
    }
}

fn salted(pos: SaltPosition, password: &[u8], salt: Option<&str>) -> Result<Vec<u8>, PasswdError> {
    Ok(match pos {
        SaltPosition::Disable => password.to_vec(),
        SaltPosition::Prefix => {
            let salt = salt.ok_or(PasswdError::SaltNotString)?;
            [salt.as_bytes(), password].concat()
        }
        SaltPosition::Suffix => {
            let salt = salt.ok_or(PasswdError::SaltNotString)?;
            [password, salt.as_bytes()].concat()
        }
    })
}

fn digest<D: Digest>(data: &[u8]) -> Vec<u8> {
    D::digest(data).to_vec()
}

/// Constant-time (for equal lengths) ASCII-case-insensitive equality.
fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    bool::from(a.ct_eq(&b))
}

#[cfg(test)]
#[path = "passwd_tests.rs"]
mod tests;
