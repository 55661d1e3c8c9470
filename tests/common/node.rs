//! A broker that can be killed and restarted on the same data directory, for durability
//! tests: SIGKILL (`kill`) or SIGTERM (`stop`), then `start` again and read the new addresses.
// Test support: a failed file write or spawn should fail the test loudly.
#![allow(clippy::unwrap_used)]

use super::{config_toml, parse_ready_file, temp_dir, wait_child, wait_until};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

/// A broker process on a fixed data dir, restartable.
pub struct Node {
    dir: PathBuf,
    child: Option<Child>,
    listeners: BTreeMap<String, SocketAddr>,
    starts: u32,
}

impl Node {
    pub fn new(tag: &str) -> Node {
        // The queue bound must not drop what the test counts (its own test covers dropping).
        Node::with_config(tag, "[mqtt]\nmax_mqueue_len = 100000\n")
    }

    /// A node with `extra` merged into the harness's base config (see [`config_toml`]).
    pub fn with_config(tag: &str, extra: &str) -> Node {
        let dir = temp_dir(tag);
        std::fs::write(dir.join("config.toml"), config_toml(&dir, extra)).unwrap();
        Node {
            dir,
            child: None,
            listeners: BTreeMap::new(),
            starts: 0,
        }
    }

    /// Starts the broker; returns the MQTT TCP address (see [`Node::listener`] for the others).
    pub fn start(&mut self) -> SocketAddr {
        self.starts += 1;
        let ready = self.dir.join(format!("ready-{}.json", self.starts));
        let log =
            std::fs::File::create(self.dir.join(format!("broker-{}.log", self.starts))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let mut found = None;
        assert!(
            wait_until(Duration::from_secs(20), || {
                found = std::fs::read_to_string(&ready)
                    .ok()
                    .and_then(|t| parse_ready_file(&t));
                found.is_some()
            }),
            "broker did not start: {}",
            self.log()
        );
        self.listeners = found.unwrap_or_default();
        self.listener("mqtt:tcp:default")
    }

    /// A listener's address in the current run.
    pub fn listener(&self, name: &str) -> SocketAddr {
        *self
            .listeners
            .get(name)
            .unwrap_or_else(|| panic!("no listener {name} in {:?}", self.listeners))
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = wait_child(&mut c, WAIT);
        }
    }

    /// SIGTERM: a graceful stop that commits what was submitted.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            assert!(
                super::send_signal(c.id(), "TERM"),
                "cannot signal the broker"
            );
            let status = wait_child(&mut c, Duration::from_secs(15));
            assert!(
                status.is_some_and(|s| s.success()),
                "broker did not stop cleanly: {status:?}"
            );
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("broker-{}.log", self.starts)))
            .unwrap_or_default()
    }

    /// The data directory (`node.data_dir`), which outlives restarts.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.join("data").join("switchyard.db")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
