//! Black-box test harness: runs the real `switchyard` binary on ephemeral ports.
//!
//! Every test starts its own broker ([`Broker::start`]) with a config written to a private temp
//! directory in which every listener binds `127.0.0.1:0`, and learns the bound addresses from the
//! `--ready-file` JSON the binary writes once every listener is bound (ARCHITECTURE.md habit 10).
//! The broker's stdout and stderr go to `broker.log` in that directory; the log is printed when
//! the test panics (from `Drop`), so a failing test shows what the broker said.
//!
//! Invariants: nothing here waits without a bound (a hung broker fails the test, it never hangs
//! it); `Drop` always reaps the child (SIGTERM, then SIGKILL after a grace period).
#![allow(dead_code)]

pub mod coap;
pub mod mqtt;
pub mod node;
pub mod raw;

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the broker may take to bind every listener and write its ready file.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM'd broker may take to exit before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Every listener the binary knows (or will know), each moved to an ephemeral loopback port so
/// parallel tests never collide and never touch the well-known ports.
const BASE_CONFIG: &str = r#"
[log]
level = "info"

[listeners.tcp.default]
bind = "127.0.0.1:0"

[listeners.ws.default]
bind = "127.0.0.1:0"

[listeners.ssl.default]
bind = "127.0.0.1:0"

[listeners.wss.default]
bind = "127.0.0.1:0"

[gateway.mqttsn.listeners.udp.default]
bind = "127.0.0.1:0"

[gateway.coap.listeners.udp.default]
bind = "127.0.0.1:0"

[gateway.lwm2m.listeners.udp.default]
bind = "127.0.0.1:0"

[dashboard.listeners.http]
bind = "127.0.0.1:0"
"#;

/// Path of the binary under test: the one cargo built for integration tests, unless
/// `SY_TEST_BIN` names another program with the same interface (e.g.
/// `scripts/reference-broker.py`, which runs mosquitto, to check a test against a reference
/// broker).
pub fn bin() -> String {
    std::env::var("SY_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchyard").to_owned())
}

/// A fresh, empty, unique directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "switchyard-test-{tag}-{}-{n}-{nanos}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The harness's base config (every bind on `127.0.0.1:0`, data under `dir`) with `extra`
/// merged in: a table in `extra` that the base already has gets its keys appended to the base's
/// table (so `[listeners.tcp.default]\nmax_connections = 5` works), other tables are added.
pub fn config_toml(dir: &Path, extra: &str) -> String {
    let data_dir = dir.join("data");
    let base = format!(
        "[node]\ndata_dir = \"{}\"\n{BASE_CONFIG}",
        data_dir.display().to_string().replace('\\', "\\\\")
    );
    merge_toml(&base, extra)
}

/// Line-based merge of two TOML documents made of `[table]` headers and `key = value` lines.
pub fn merge_toml(base: &str, extra: &str) -> String {
    fn sections(doc: &str) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
        for line in doc.lines() {
            let t = line.trim();
            if t.starts_with('[') && !t.starts_with("[[") {
                out.push((t.to_owned(), Vec::new()));
            } else if !t.is_empty() {
                if let Some(last) = out.last_mut() {
                    last.1.push(line.to_owned());
                }
            }
        }
        out
    }
    let mut merged = sections(base);
    for (header, lines) in sections(extra) {
        if let Some(existing) = merged.iter_mut().find(|(h, _)| *h == header) {
            // A key given again overrides the base's value: drop the base's line for it.
            for line in &lines {
                if let Some(key) = line.split('=').next().map(str::trim) {
                    existing
                        .1
                        .retain(|l| l.split('=').next().map(str::trim) != Some(key));
                }
            }
            existing.1.extend(lines);
        } else {
            merged.push((header, lines));
        }
    }
    let mut out = String::new();
    for (header, lines) in merged {
        if !header.is_empty() {
            out.push('\n');
            out.push_str(&header);
            out.push('\n');
        }
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit, at most `timeout`. `None` if it is still running.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` ("TERM", "INT", "KILL") to `pid` with the shell's `kill` builtin (no libc
/// dependency, and no need for procps's /usr/bin/kill on a minimal machine).
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg("kill -s \"$1\" \"$2\"")
        .arg("sh")
        .arg(signal)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Extracts every `"key": "value"` pair from a small JSON document (enough for the ready file,
/// without a JSON dependency).
pub fn json_string_pairs(json: &str) -> Vec<(String, String)> {
    // Tokens: strings, and the punctuation after them.
    let mut tokens: Vec<Result<String, char>> = Vec::new();
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                s.push(e);
                            }
                        }
                        '"' => break,
                        c => s.push(c),
                    }
                }
                tokens.push(Ok(s));
            }
            c if c.is_whitespace() => {}
            c => tokens.push(Err(c)),
        }
    }
    let mut pairs = Vec::new();
    for w in tokens.windows(3) {
        if let [Ok(k), Err(':'), Ok(v)] = w {
            pairs.push((k.clone(), v.clone()));
        }
    }
    pairs
}

/// Parses the ready file: `{"listeners": {"mqtt:tcp:default": "127.0.0.1:40123", ...}}`.
/// `None` until it holds a `listeners` object with at least one address.
pub fn parse_ready_file(text: &str) -> Option<BTreeMap<String, SocketAddr>> {
    if !text.contains("\"listeners\"") {
        return None;
    }
    let map: BTreeMap<String, SocketAddr> = json_string_pairs(text)
        .into_iter()
        .filter_map(|(k, v)| v.parse::<SocketAddr>().ok().map(|a| (k, a)))
        .collect();
    if map.is_empty() {
        None
    } else {
        Some(map)
    }
}

/// A running `switchyard` broker owned by one test.
pub struct Broker {
    child: Option<Child>,
    dir: PathBuf,
    log_path: PathBuf,
    ready_path: PathBuf,
    config_path: PathBuf,
    listeners: BTreeMap<String, SocketAddr>,
    exit_status: Option<ExitStatus>,
}

impl Broker {
    /// Starts a broker with the harness's base config.
    pub fn start() -> Broker {
        Self::start_with("")
    }

    /// Starts a broker with `extra_toml` merged into the base config (see [`config_toml`]).
    pub fn start_with(extra_toml: &str) -> Broker {
        Self::start_with_env(extra_toml, &[])
    }

    /// Like [`start_with`](Self::start_with), with extra environment variables for the binary.
    pub fn start_with_env(extra_toml: &str, env: &[(&str, &str)]) -> Broker {
        match Self::try_start(extra_toml, env) {
            Ok(b) => b,
            Err(msg) => panic!("{msg}"),
        }
    }

    /// Starts a broker; on failure returns a message that includes the broker's log.
    pub fn try_start(extra_toml: &str, env: &[(&str, &str)]) -> Result<Broker, String> {
        let dir = temp_dir("broker");
        let config_path = dir.join("switchyard.toml");
        let ready_path = dir.join("ready.json");
        let log_path = dir.join("broker.log");
        fs::write(&config_path, config_toml(&dir, extra_toml)).expect("write config");
        let log = fs::File::create(&log_path).expect("create log");
        let log2 = log.try_clone().expect("clone log fd");
        let mut cmd = Command::new(bin());
        cmd.arg("--config")
            .arg(&config_path)
            .arg("--ready-file")
            .arg(&ready_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env_remove("RUST_LOG");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot spawn {}: {e}", bin()))?;
        let mut broker = Broker {
            child: Some(child),
            dir,
            log_path,
            ready_path,
            config_path,
            listeners: BTreeMap::new(),
            exit_status: None,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(text) = fs::read_to_string(&broker.ready_path) {
                if let Some(map) = parse_ready_file(&text) {
                    broker.listeners = map;
                    break;
                }
            }
            if let Some(child) = broker.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    broker.exit_status = Some(status);
                    broker.child = None;
                    return Err(format!(
                        "broker exited with {status} before writing its ready file\n{}",
                        broker.log_excerpt()
                    ));
                }
            }
            if Instant::now() >= deadline {
                let msg = format!(
                    "broker did not write its ready file {} within {READY_TIMEOUT:?}\n{}",
                    broker.ready_path.display(),
                    broker.log_excerpt()
                );
                broker.kill();
                return Err(msg);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    /// The MQTT-over-TCP listener's address (`mqtt:tcp:default`).
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.listener("mqtt:tcp:default")
    }

    /// The bound address of listener `name` (`proto:type:name`), panicking with the list of
    /// known listeners if there is none.
    pub fn listener(&self, name: &str) -> SocketAddr {
        match self.listeners.get(name) {
            Some(a) => *a,
            None => panic!(
                "no listener {name:?} in the ready file; have {:?}\n{}",
                self.listeners,
                self.log_excerpt()
            ),
        }
    }

    /// Every listener from the ready file.
    pub fn listeners(&self) -> &BTreeMap<String, SocketAddr> {
        &self.listeners
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker's temp directory (config, ready file, log, data).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file the broker was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything the broker has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the broker's log contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log().contains(needle)
    }

    /// The log framed for a failure message (the last 200 lines at most).
    pub fn log_excerpt(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(200);
        format!(
            "----- broker log ({}; last {} of {} lines) -----\n{}\n----- end of broker log -----",
            self.log_path.display(),
            lines.len() - start,
            lines.len(),
            lines[start..].join("\n")
        )
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                Ok(Some(status)) => {
                    self.exit_status = Some(status);
                    self.child = None;
                    false
                }
                Err(_) => false,
            },
            None => false,
        }
    }

    /// Sends `signal` and waits up to `timeout` for the exit; `None` if still running.
    pub fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exit_status {
            return Some(status);
        }
        let child = self.child.as_mut()?;
        send_signal(child.id(), signal);
        let status = wait_child(child, timeout);
        if status.is_some() {
            self.exit_status = status;
            self.child = None;
        }
        status
    }

    /// Graceful stop: SIGTERM, wait up to `timeout`; `None` if it did not exit in time (the
    /// process is then still running and `Drop` will kill it).
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal_and_wait("TERM", timeout)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.exit_status = wait_child(&mut child, Duration::from_secs(5));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if self.child.is_some() && self.stop(STOP_TIMEOUT).is_none() {
            eprintln!("broker did not exit within {STOP_TIMEOUT:?} of SIGTERM; killing it");
            self.kill();
        }
        if panicking {
            eprintln!("{}", self.log_excerpt());
        } else if std::env::var_os("SY_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `cmd` to completion with a bound on its run time; kills it past `timeout`.
/// Returns (status, stdout, stderr), status `None` on timeout.
pub fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
) -> (Option<ExitStatus>, String, String) {
    let dir = temp_dir("cmd");
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let out = fs::File::create(&out_path).expect("create stdout file");
    let err = fs::File::create(&err_path).expect("create stderr file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    let status = wait_child(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = wait_child(&mut child, Duration::from_secs(5));
    }
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_dir_all(&dir);
    (status, stdout, stderr)
}

/// Whether an external program can be run (`prog --help`-style probe via `which`).
pub fn have_program(prog: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Panics with install instructions unless `prog` is on PATH. External clients are a hard
/// requirement (scripts/install-test-deps.sh installs them); setting
/// `SY_SKIP_EXTERNAL_CLIENTS=1` turns the requirement into a skip (returns false).
pub fn require_program(prog: &str) -> bool {
    if have_program(prog) {
        return true;
    }
    if std::env::var_os("SY_SKIP_EXTERNAL_CLIENTS").is_some() {
        eprintln!("skipping: {prog} not found and SY_SKIP_EXTERNAL_CLIENTS is set");
        return false;
    }
    panic!(
        "{prog} not found on PATH: run scripts/install-test-deps.sh \
         (or set SY_SKIP_EXTERNAL_CLIENTS=1 to skip tests that need it)"
    );
}
