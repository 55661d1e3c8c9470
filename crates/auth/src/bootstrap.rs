//! The bootstrap CSV (`authentication.bootstrap_file`), EMQX's format:
//! - `bootstrap_type = "plain"`: header `user_id,password,is_superuser`;
//! - `bootstrap_type = "hash"`: header `user_id,password_hash,salt,is_superuser`, the hash in
//!   hex as described in [`crate::hash`].
//!
//! Columns are found by header name, so their order may differ; `is_superuser` may be missing
//! (false). Fields may be double-quoted (`""` inside for a quote); blank lines are skipped.

use crate::authn::{AuthError, BootstrapType};

/// One row, before hashing.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum BootstrapUser {
    /// A plain password, hashed on import with the configured algorithm.
    Plain {
        user_id: String,
        password: String,
        is_superuser: bool,
    },
    /// A precomputed hash and its salt, for the configured algorithm.
    Hashed {
        user_id: String,
        password_hash: String,
        salt: String,
        is_superuser: bool,
    },
}

impl std::fmt::Debug for BootstrapUser {
    // Never print a password or hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, user_id, su) = match self {
            BootstrapUser::Plain {
                user_id,
                is_superuser,
                ..
            } => ("plain", user_id, is_superuser),
            BootstrapUser::Hashed {
                user_id,
                is_superuser,
                ..
            } => ("hash", user_id, is_superuser),
        };
        write!(f, "BootstrapUser({kind}, {user_id:?}, superuser={su})")
    }
}

/// Parses the whole file.
pub(crate) fn parse(text: &str, kind: BootstrapType) -> Result<Vec<BootstrapUser>, AuthError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let header = split(header.trim_start_matches('\u{feff}'), 1)?;
    let col = |name: &str| header.iter().position(|h| h == name);
    let needed: &[&str] = match kind {
        BootstrapType::Plain => &["user_id", "password"],
        BootstrapType::Hash => &["user_id", "password_hash", "salt"],
    };
    for n in needed {
        if col(n).is_none() {
            return Err(AuthError::Bootstrap(format!(
                "line 1: header must have a {n} column (bootstrap_type = {kind:?})"
            )));
        }
    }
    let (id_col, su_col) = (col("user_id"), col("is_superuser"));
    let mut users = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        let fields = split(line, n)?;
        let get = |c: Option<usize>| -> Result<String, AuthError> {
            c.and_then(|c| fields.get(c).cloned())
                .ok_or_else(|| AuthError::Bootstrap(format!("line {n}: missing field")))
        };
        let user_id = get(id_col)?;
        if user_id.is_empty() {
            return Err(AuthError::Bootstrap(format!("line {n}: empty user_id")));
        }
        let is_superuser = match su_col.and_then(|c| fields.get(c)).map(|s| s.as_str()) {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(AuthError::Bootstrap(format!(
                    "line {n}: is_superuser must be true or false, got {other:?}"
                )))
            }
        };
        users.push(match kind {
            BootstrapType::Plain => BootstrapUser::Plain {
                user_id,
                password: get(col("password"))?,
                is_superuser,
            },
            BootstrapType::Hash => BootstrapUser::Hashed {
                user_id,
                password_hash: get(col("password_hash"))?,
                salt: get(col("salt"))?,
                is_superuser,
            },
        });
    }
    Ok(users)
}

/// Splits one CSV line (RFC 4180 quoting, no embedded newlines).
fn split(line: &str, n: usize) -> Result<Vec<String>, AuthError> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(finish(&mut field, was_quoted));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(AuthError::Bootstrap(format!(
            "line {n}: unterminated quote"
        )));
    }
    out.push(finish(&mut field, was_quoted));
    Ok(out)
}

fn finish(field: &mut String, was_quoted: bool) -> String {
    let f = std::mem::take(field);
    if was_quoted {
        f
    } else {
        f.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_file_with_and_without_superuser() {
        let text = "user_id,password,is_superuser\nalice,pw1,true\n\nbob, pw2 ,false\ncarol,\"p,w\"\"3\",\n";
        let users = parse(text, BootstrapType::Plain).expect("parse");
        assert_eq!(
            users,
            vec![
                BootstrapUser::Plain {
                    user_id: "alice".into(),
                    password: "pw1".into(),
                    is_superuser: true
                },
                BootstrapUser::Plain {
                    user_id: "bob".into(),
                    password: "pw2".into(),
                    is_superuser: false
                },
                BootstrapUser::Plain {
                    user_id: "carol".into(),
                    password: "p,w\"3".into(),
                    is_superuser: false
                },
            ]
        );
    }

    #[test]
    fn hash_file_columns_by_name() {
        let text = "salt,user_id,is_superuser,password_hash\r\nsaltsalt,dev1,false,abcd\r\n";
        let users = parse(text, BootstrapType::Hash).expect("parse");
        assert_eq!(
            users,
            vec![BootstrapUser::Hashed {
                user_id: "dev1".into(),
                password_hash: "abcd".into(),
                salt: "saltsalt".into(),
                is_superuser: false
            }]
        );
    }

    #[test]
    fn wrong_header_or_values_are_errors() {
        let e = parse("user_id,password\nx,y\n", BootstrapType::Hash).expect_err("must fail");
        assert!(e.to_string().contains("password_hash"), "{e}");
        let e = parse(
            "user_id,password,is_superuser\nx,y,maybe\n",
            BootstrapType::Plain,
        )
        .expect_err("must fail");
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse("user_id,password\nx\n", BootstrapType::Plain).expect_err("must fail");
        assert!(e.to_string().contains("missing field"), "{e}");
        let e = parse("user_id,password\n\"x,y\n", BootstrapType::Plain).expect_err("must fail");
        assert!(e.to_string().contains("quote"), "{e}");
        assert_eq!(parse("", BootstrapType::Plain).expect("empty"), vec![]);
    }

    #[test]
    fn debug_hides_passwords() {
        let u = BootstrapUser::Plain {
            user_id: "alice".into(),
            password: "hunter2".into(),
            is_superuser: false,
        };
        assert!(!format!("{u:?}").contains("hunter2"));
    }
}
