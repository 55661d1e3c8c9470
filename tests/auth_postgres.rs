//! `password_based:postgresql` against a real PostgreSQL started by the test (initdb and
//! postgres on a free port in a temporary directory, as the `postgres` user when run as root,
//! stopped by PID): an EMQX-style `mqtt_user` table with salted SHA-256 and bcrypt rows, a
//! superuser, a NULL salt, injection attempts, the algorithm changed through the REST API (the
//! masked password kept), and the database down then back.
//!
//! PostgreSQL comes from `scripts/install-test-deps.sh` (Debian's `postgresql`); without its
//! binaries the test says so and passes without running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use admin_support::Api;
use common::Broker;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// EMQX's worked example (shared/specs/emqx-auth-api.md §8.3): password `public`.
const SALT: &str = "e3f2a1b0c9d8e7f6a5b4c3d2e1f00112";
const SHA256_PREFIX: &str = "be9f24d729851909030cf545f755db6a67e5d4c17b4c7400b96ff48c6bcf29f4";
const BCRYPT: &str = "$2b$10$abcdefghijklmnopqrstuuqB133muLbebjZ9nczmeCmyhpAaUpSbK";

/// The directory holding initdb, postgres and psql (the newest Debian version first).
fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|b| b.join("initdb").exists() && b.join("postgres").exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the `postgres` user when we are root (PostgreSQL refuses root).
fn as_pg(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

struct Pg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Pg {
    fn init() -> Option<Pg> {
        let bin = pg_bin()?;
        let dir = std::env::temp_dir().join(format!("sy-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let out = as_pg(&bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(dir.join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut pg = Pg {
            bin,
            dir,
            port,
            child: None,
        };
        pg.start();
        Some(pg)
    }

    fn start(&mut self) {
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("sy-pg-{}.log", self.port)))
                .unwrap();
        let child = as_pg(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while self.psql("SELECT 1").is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "PostgreSQL did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server by its PID (postmaster.pid), fast shutdown.
    fn stop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.dir.join("data/postmaster.pid")) {
            if let Some(pid) = text.lines().next() {
                let _ = Command::new("kill").args(["-INT", pid.trim()]).status();
            }
        }
        if let Some(mut c) = self.child.take() {
            let t = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// MQTT 3.1.1 CONNECT; the CONNACK return code and the stream.
async fn connect(addr: SocketAddr, id: &str, user: &str, pw: &str) -> (u8, TcpStream) {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 30];
    for s in [id, user, pw] {
        body.extend((s.len() as u16).to_be_bytes());
        body.extend(s.as_bytes());
    }
    let mut p = vec![0x10];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        p.push(b);
        if n == 0 {
            break;
        }
    }
    p.extend(body);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&p).await.unwrap();
    let mut ack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(15), s.read_exact(&mut ack))
        .await
        .expect("CONNACK in time")
        .unwrap();
    (ack[3], s)
}

async fn subscribe(s: &mut TcpStream, filter: &str) -> u8 {
    let mut body = vec![0, 1];
    body.extend((filter.len() as u16).to_be_bytes());
    body.extend(filter.as_bytes());
    body.push(1);
    let mut p = vec![0x82, body.len() as u8];
    p.extend(body);
    s.write_all(&p).await.unwrap();
    let mut ack = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut ack))
        .await
        .expect("SUBACK in time")
        .unwrap();
    ack[4]
}

async fn nomatch(api: &Api) -> u64 {
    let (_, st) = api
        .get("/api/v5/authentication/password_based:postgresql/status")
        .await;
    st["metrics"]["nomatch"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_mqtt_user_table() {
    let Some(mut pg) = Pg::init() else {
        eprintln!(
            "SKIPPED: PostgreSQL binaries not found under /usr/lib/postgresql \
             (scripts/install-test-deps.sh installs Debian's postgresql)"
        );
        return;
    };
    pg.psql(&format!(
        "CREATE TABLE mqtt_user (id SERIAL PRIMARY KEY, username text NOT NULL UNIQUE, \
         password_hash text NOT NULL, salt text DEFAULT '', is_superuser boolean DEFAULT false); \
         INSERT INTO mqtt_user (username, password_hash, salt, is_superuser) VALUES \
         ('s1', '{SHA256_PREFIX}', '{SALT}', false), ('su', '{SHA256_PREFIX}', '{SALT}', true), \
         ('nullsalt', '{SHA256_PREFIX}', NULL, false), ('b1', '{BCRYPT}', '', false);"
    ))
    .unwrap();
    let broker = Broker::start_with(&format!(
        r#"
[authentication]
allow_anonymous = false

[authentication.cache]
enable = false

[[authentication.authenticators]]
mechanism = "password_based"
backend = "postgresql"
server = "127.0.0.1:{}"
database = "postgres"
username = "postgres"
password = "unused-with-trust"
query = "SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ${{username}} LIMIT 1"
password_hash_algorithm = {{ name = "sha256", salt_position = "prefix" }}
query_timeout = "2s"

[authorization]
no_match = "deny"

[gateway.lwm2m]
enable = false
"#,
        pg.port
    ));
    let mqtt = broker.mqtt_addr();
    let api = Api::ready(&broker).await;

    // Salted SHA-256 row: right and wrong password.
    let (rc, mut s1) = connect(mqtt, "c1", "s1", "public").await;
    assert_eq!(rc, 0);
    assert_eq!(subscribe(&mut s1, "x/#").await, 0x80, "not a superuser");
    assert_eq!(connect(mqtt, "c2", "s1", "publix").await.0, 4);
    // Superuser column.
    let (rc, mut su) = connect(mqtt, "c3", "su", "public").await;
    assert_eq!(rc, 0);
    assert_eq!(subscribe(&mut su, "x/#").await, 1);
    // No row, a NULL salt, injection attempts: ignore (then anonymous off refuses).
    let before = nomatch(&api).await;
    let long = "u".repeat(5000);
    for user in [
        "nobody",
        "nullsalt",
        "' OR 1=1 --",
        "s1' --",
        "s1%00",
        "s1\\",
        long.as_str(),
    ] {
        assert_eq!(connect(mqtt, "c4", user, "public").await.0, 4, "{user}");
    }
    assert_eq!(nomatch(&api).await - before, 7);
    assert_eq!(
        pg.psql("SELECT count(*) FROM mqtt_user").unwrap().trim(),
        "4"
    );

    // The algorithm changed through the API; the password comes back masked and is kept.
    let (s, mut cfg) = api
        .get("/api/v5/authentication/password_based:postgresql")
        .await;
    assert_eq!(s, 200);
    assert_eq!(cfg["password"], json!("******"));
    cfg["password_hash_algorithm"] = json!({"name": "bcrypt"});
    let (s, e) = api
        .send(
            "PUT",
            "/api/v5/authentication/password_based:postgresql",
            Some(cfg),
        )
        .await;
    assert_eq!(s, 204, "{e}");
    assert_eq!(connect(mqtt, "c5", "b1", "public").await.0, 0);
    assert_eq!(connect(mqtt, "c6", "b1", "Public").await.0, 4);

    // Down: ignore (refused here, anonymous off), never a hang; back: accepted again.
    pg.stop();
    let t = Instant::now();
    assert_eq!(connect(mqtt, "c7", "b1", "public").await.0, 4);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let (_, st) = api
        .get("/api/v5/authentication/password_based:postgresql/status")
        .await;
    assert_eq!(st["status"], json!("disconnected"));
    pg.start();
    assert_eq!(connect(mqtt, "c8", "b1", "public").await.0, 0);
}
