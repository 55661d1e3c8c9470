//! `password_based:postgresql`: a row of the operator's table decides (shared/specs/
//! emqx-auth-api.md §3.4, §7, §8).
//!
//! The `query` template's placeholders become bound parameters (`$1`, `$2`, … as text); no
//! client value is ever spliced into SQL. The first row is read by column name:
//! `password_hash` (else `password`), `salt`, `is_superuser`; the hash is checked with the
//! configured EMQX format (`crate::passwd`). No row → ignore; no hash column → not authorized;
//! wrong password, or no password sent (before any query) → bad username or password; database
//! down, slow or failing → ignore (logged, counted).
//!
//! Connections: `pool_size` clients, each one connection that PostgreSQL serves one query at a
//! time while tokio-postgres pipelines the rest; a broken one is reconnected on next use (at
//! most one connect at a time per slot, bounded by `connect_timeout`). TLS to the database is
//! not supported yet (`ssl.enable = true` is refused).

use super::{loose_bool, Backend, BoxFut, Dur, Health, Outcome, Request, Ssl};
use crate::authn::DenyReason;
use crate::passwd::{PasswdError, PasswordHash};
use crate::template::{Piece, Template, Vars, AUTHN_VARS};
use crate::Grant;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row};

fn pool() -> u32 {
    8
}
fn five() -> Dur {
    Dur::secs(5)
}

/// The body fields of a PostgreSQL authenticator.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PgConfig {
    pub(crate) server: String,
    pub(crate) database: String,
    pub(crate) username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) password: Option<String>,
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) password_hash_algorithm: PasswordHash,
    #[serde(default)]
    pub(crate) disable_prepared_statements: bool,
    #[serde(default = "pool")]
    pub(crate) pool_size: u32,
    #[serde(default)]
    pub(crate) ssl: Ssl,
    /// Deprecated in EMQX, accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) auto_reconnect: Option<bool>,
    /// Switchyard: how long a query (and a connect) may take before the check is ignore.
    #[serde(default = "five")]
    pub(crate) query_timeout: Dur,
}

impl std::fmt::Debug for PgConfig {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("server", &self.server)
            .field("database", &self.database)
            .field("username", &self.username)
            .finish()
    }
}

/// The query with its placeholders replaced by `$n`, and the placeholder of each parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoundQuery {
    pub(crate) sql: String,
    pub(crate) params: Vec<String>,
}

/// Turns `query` into SQL with `$n` parameters. A placeholder in double quotes (`"${x}"`) is a
/// bare one; in single quotes it stays inside the string literal (EMQX does the same: write
/// placeholders bare).
pub(crate) fn bind(query: &str) -> BoundQuery {
    let t = Template::parse(query, AUTHN_VARS);
    let mut sql = String::new();
    let mut params: Vec<String> = Vec::new();
    let pieces = t.pieces();
    for (i, p) in pieces.iter().enumerate() {
        match p {
            Piece::Lit(s) => {
                let mut s = s.as_str();
                // `"${x}"`: drop the quotes around a placeholder.
                if matches!(pieces.get(i + 1), Some(Piece::Var(_))) {
                    if let Some(stripped) = s.strip_suffix('"') {
                        s = stripped;
                    }
                }
                if i > 0 && matches!(pieces.get(i - 1), Some(Piece::Var(_))) {
                    if let Some(stripped) = s.strip_prefix('"') {
                        s = stripped;
                    }
                }
                sql.push_str(s);
            }
            Piece::Var(name) => {
                let n = match params.iter().position(|p| p == name) {
                    Some(n) => n + 1,
                    None => {
                        params.push(name.clone());
                        params.len()
                    }
                };
                sql.push('$');
                sql.push_str(&n.to_string());
            }
        }
    }
    BoundQuery { sql, params }
}

/// One pooled connection.
#[derive(Default)]
struct Slot {
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

/// The PostgreSQL authenticator.
pub(crate) struct Postgres {
    config: tokio_postgres::Config,
    query: BoundQuery,
    hash: PasswordHash,
    prepared: bool,
    timeout: Duration,
    slots: Vec<Slot>,
    next: AtomicUsize,
    health: AtomicU8,
    /// Checks answered ignore because the database failed or was slow.
    pub(crate) failures: AtomicU64,
    /// Checks that ran into `query_timeout`.
    timeouts: AtomicU64,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("query", &self.query)
            .finish()
    }
}

fn split_server(server: &str) -> Result<(String, u16), String> {
    match server.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => Ok((
            h.trim_matches(|c| c == '[' || c == ']').to_owned(),
            p.parse()
                .map_err(|_| format!("server {server:?}: bad port"))?,
        )),
        _ => Ok((server.to_owned(), 5432)),
    }
}

impl Postgres {
    pub(crate) fn new(c: &PgConfig) -> Result<Postgres, String> {
        if c.ssl.enable {
            return Err("ssl to PostgreSQL is not supported yet".into());
        }
        if c.database.is_empty() {
            return Err("database must not be empty".into());
        }
        if c.pool_size == 0 || c.pool_size > 1024 {
            return Err("pool_size must be 1..=1024".into());
        }
        c.password_hash_algorithm.validate()?;
        let (host, port) = split_server(&c.server)?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .dbname(&c.database)
            .user(&c.username)
            .application_name("switchyard")
            .connect_timeout(c.query_timeout.0);
        if let Some(pw) = &c.password {
            config.password(pw);
        }
        Ok(Postgres {
            config,
            query: bind(&c.query),
            hash: c.password_hash_algorithm.clone(),
            prepared: !c.disable_prepared_statements,
            timeout: c.query_timeout.0,
            slots: (0..c.pool_size).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
            health: AtomicU8::new(2),
            failures: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        })
    }

    /// A connected client of the next slot (connecting it if needed).
    async fn client(&self) -> Result<Arc<Client>, String> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (client, conn) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "PostgreSQL connection ended");
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn first_row(&self, vars: &Vars<'_>) -> Result<Option<Row>, String> {
        let client = self.client().await?;
        let values: Vec<String> = self
            .query
            .params
            .iter()
            .map(|p| vars.get(p).into_owned())
            .collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = if self.prepared {
            let stmt = client
                .prepare_typed(&self.query.sql, &vec![Type::TEXT; values.len()])
                .await
                .map_err(|e| e.to_string())?;
            client.query(&stmt, &params).await
        } else {
            let typed: Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> =
                params.iter().map(|p| (*p, Type::TEXT)).collect();
            client.query_typed(&self.query.sql, &typed).await
        };
        Ok(rows.map_err(|e| e.to_string())?.into_iter().next())
    }

    fn judge(&self, row: &Row, password: &[u8]) -> Outcome {
        let stored = text(row, "password_hash").or_else(|| text(row, "password"));
        let Some(Some(stored)) = stored else {
            return Outcome::Error(DenyReason::NotAuthorized);
        };
        let salt = match text(row, "salt") {
            None => Some(String::new()),
            Some(s) => s,
        };
        match self.hash.verify(password, salt.as_deref(), &stored) {
            Ok(true) => Outcome::Ok(Grant {
                superuser: superuser(row),
                ..Grant::default()
            }),
            Ok(false) => Outcome::Error(DenyReason::BadCredentials),
            Err(PasswdError::SaltNotString) => {
                tracing::warn!("PostgreSQL row has a NULL salt; authenticator ignored");
                Outcome::Ignore("null salt")
            }
        }
    }
}

/// The column `name` as text: `None` if there is no such column, `Some(None)` for NULL.
fn text(row: &Row, name: &str) -> Option<Option<String>> {
    let idx = row.columns().iter().position(|c| c.name() == name)?;
    if let Ok(v) = row.try_get::<_, Option<String>>(idx) {
        return Some(v);
    }
    if let Ok(v) = row.try_get::<_, Option<Vec<u8>>>(idx) {
        return Some(v.map(|b| String::from_utf8_lossy(&b).into_owned()));
    }
    Some(None)
}

fn superuser(row: &Row) -> bool {
    let Some(idx) = row
        .columns()
        .iter()
        .position(|c| c.name() == "is_superuser")
    else {
        return false;
    };
    if let Ok(v) = row.try_get::<_, Option<bool>>(idx) {
        return v.unwrap_or(false);
    }
    if let Ok(Some(v)) = row.try_get::<_, Option<i32>>(idx) {
        return v >= 1;
    }
    if let Ok(Some(v)) = row.try_get::<_, Option<i64>>(idx) {
        return v >= 1;
    }
    if let Ok(Some(v)) = row.try_get::<_, Option<i16>>(idx) {
        return v >= 1;
    }
    if let Ok(Some(v)) = row.try_get::<_, Option<String>>(idx) {
        return loose_bool(Some(&serde_json::Value::String(v)));
    }
    false
}

impl Backend for Postgres {
    fn check<'a>(&'a self, req: Request<'a>) -> BoxFut<'a, Outcome> {
        Box::pin(async move {
            let Some(password) = req.creds.password else {
                return Outcome::Error(DenyReason::BadCredentials);
            };
            let vars = super::http::vars_of(&req);
            let row = match tokio::time::timeout(self.timeout, self.first_row(&vars)).await {
                Ok(Ok(row)) => row,
                Ok(Err(error)) => {
                    self.health.store(1, Ordering::Relaxed);
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "PostgreSQL query failed; authenticator ignored");
                    return Outcome::Ignore("query failed");
                }
                Err(_) => {
                    self.health.store(1, Ordering::Relaxed);
                    self.timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        timeout_ms = self.timeout.as_millis() as u64,
                        "PostgreSQL did not answer in time; authenticator ignored"
                    );
                    return Outcome::Ignore("timeout");
                }
            };
            self.health.store(0, Ordering::Relaxed);
            let Some(row) = row else {
                return Outcome::Ignore("no row");
            };
            if self.hash.is_slow() {
                let hash = self.hash.clone();
                let pw = password.to_vec();
                let stored = text(&row, "password_hash").or_else(|| text(&row, "password"));
                let Some(Some(stored)) = stored else {
                    return Outcome::Error(DenyReason::NotAuthorized);
                };
                let salt = text(&row, "salt").unwrap_or(Some(String::new()));
                let su = superuser(&row);
                let verdict = crate::offload::on_hash_pool(move || {
                    hash.verify(&pw, salt.as_deref(), &stored)
                })
                .await;
                return match verdict {
                    Some(Ok(true)) => Outcome::Ok(Grant {
                        superuser: su,
                        ..Grant::default()
                    }),
                    Some(Ok(false)) => Outcome::Error(DenyReason::BadCredentials),
                    Some(Err(_)) | None => Outcome::Ignore("hash not checked"),
                };
            }
            self.judge(&row, password)
        })
    }

    fn check_now(&self, _req: Request<'_>) -> Option<Outcome> {
        None
    }

    fn is_network(&self) -> bool {
        true
    }

    fn health(&self) -> Health {
        match self.health.load(Ordering::Relaxed) {
            0 => Health::Connected,
            1 => Health::Disconnected,
            _ => Health::Connecting,
        }
    }

    fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_parameters() {
        let q = bind("SELECT password_hash, salt FROM mqtt_user WHERE username = ${username} AND (clientid = \"${clientid}\" OR x = ${username}) LIMIT 1");
        assert_eq!(
            q.sql,
            "SELECT password_hash, salt FROM mqtt_user WHERE username = $1 AND (clientid = $2 OR x = $1) LIMIT 1"
        );
        assert_eq!(q.params, vec!["username".to_owned(), "clientid".to_owned()]);
        // Single quotes stay: the placeholder is then inside a literal, as in EMQX.
        let q = bind("SELECT 1 WHERE u = '${username}'");
        assert_eq!(q.sql, "SELECT 1 WHERE u = '$1'");
        // A placeholder not allowed here stays literal text (and is not a parameter).
        let q = bind("SELECT ${topic}");
        assert_eq!(q.sql, "SELECT ${topic}");
        assert!(q.params.is_empty());
    }

    #[test]
    fn servers() {
        assert_eq!(split_server("db:6543"), Ok(("db".into(), 6543)));
        assert_eq!(split_server("db"), Ok(("db".into(), 5432)));
        assert_eq!(split_server("[::1]:5"), Ok(("::1".into(), 5)));
        assert!(split_server("db:x").is_err());
    }
}
