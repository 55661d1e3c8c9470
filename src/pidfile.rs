//! The pid file `<node.data_dir>/switchyard.pid`: written once the node runs, removed when it
//! stops, read by `switchyard ctl stop` to find the process to signal ([`stop`]: SIGTERM, the
//! same graceful shutdown as systemd's stop or Ctrl-C, then wait for the exit).
//!
//! Invariants: the file holds the decimal pid and a newline; it is written atomically (a temp
//! file renamed over it), so a reader never sees half a number; a stale file left by a crash is
//! simply overwritten by the next start.

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The pid file's name inside `node.data_dir`.
pub const PID_FILE: &str = "switchyard.pid";

/// The pid file's path for `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(PID_FILE)
}

/// A written pid file, removed on drop.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid into `data_dir` (which must exist).
    pub fn create(data_dir: &Path) -> anyhow::Result<PidFile> {
        let path = path(data_dir);
        let tmp = path.with_extension("pid.tmp");
        std::fs::write(&tmp, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(PidFile { path })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: a newer process may have replaced it (same data_dir, started after us).
        if read(&self.path).ok().flatten() == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The pid in `path`; `None` when there is no such file.
pub fn read(path: &Path) -> anyhow::Result<Option<u32>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let pid = text
        .trim()
        .parse::<u32>()
        .with_context(|| format!("{}: not a pid: {:?}", path.display(), text.trim()))?;
    Ok(Some(pid))
}

/// What [`stop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The process was signalled and has exited.
    Exited(u32),
    /// No pid file: no node runs on this data directory.
    NotRunning,
    /// The pid file named a process that no longer exists (removed).
    Stale(u32),
}

/// Sends SIGTERM to the node whose pid file is in `data_dir` and waits up to `timeout` for it
/// to exit. Refuses a pid that names another program (a stale file whose pid was reused).
pub fn stop(data_dir: &Path, timeout: Duration) -> anyhow::Result<Stopped> {
    let file = path(data_dir);
    let Some(pid) = read(&file)? else {
        return Ok(Stopped::NotRunning);
    };
    let target = Pid::from_raw(
        i32::try_from(pid)
            .with_context(|| format!("{}: pid {pid} out of range", file.display()))?,
    );
    if let Some(name) = program_name(pid) {
        anyhow::ensure!(
            name == "switchyard",
            "{} names pid {pid}, which is {name:?}, not switchyard: not signalled",
            file.display()
        );
    }
    match kill(target, Signal::SIGTERM) {
        Ok(()) => {}
        Err(Errno::ESRCH) => {
            let _ = std::fs::remove_file(&file);
            return Ok(Stopped::Stale(pid));
        }
        Err(e) => anyhow::bail!("cannot signal pid {pid}: {e}"),
    }
    let deadline = Instant::now() + timeout;
    while kill(target, None).is_ok() && !is_zombie(pid) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "pid {pid} still runs {timeout:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Stopped::Exited(pid))
}

/// Whether `pid` has exited but is not yet reaped by its parent (Linux: state Z in
/// /proc/<pid>/stat, after the parenthesised name).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The program name of `pid` where /proc tells it (Linux).
fn program_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_and_removed() {
        let dir = std::env::temp_dir().join(format!("switchyard-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = PidFile::create(&dir).expect("create");
        assert_eq!(read(&path(&dir)).expect("read"), Some(std::process::id()));
        drop(f);
        assert_eq!(read(&path(&dir)).expect("read"), None);
        assert_eq!(
            stop(&dir, Duration::ZERO).expect("stop"),
            Stopped::NotRunning
        );
        std::fs::write(path(&dir), "12x\n").expect("write");
        assert!(read(&path(&dir)).is_err());
        // This test process is not switchyard: refused, not signalled.
        std::fs::write(path(&dir), format!("{}\n", std::process::id())).expect("write");
        let refused = stop(&dir, Duration::ZERO).expect_err("not switchyard");
        assert!(refused.to_string().contains("not switchyard"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
