//! The log file of `[log.file]`: an append-only file rotated by size, for the `fmt` layer that
//! writes the console's lines there too.
//!
//! Owns: the open file, its current size, and the rotation `<path>` → `<path>.1` → … →
//! `<path>.<keep>` (the oldest is deleted).
//! Invariants: one log line (one `write` from the `fmt` layer) is never split across two files;
//! a file is rotated before a line would make it larger than `max_size`, unless it is empty
//! (a line longer than `max_size` gets a file of its own); writing never panics: an I/O error is
//! reported on stderr once (the log cannot log about itself) and the line is dropped, and the
//! file is reopened on the next line.

use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing_subscriber::fmt::MakeWriter;

/// A log file rotated by size.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` after a failed rotation or reopen: retried on the next line.
    file: Option<File>,
    size: u64,
    /// Whether an error has been reported on stderr since the last successful write.
    reported: bool,
}

impl RotatingFile {
    /// Opens (appending to) or creates `path` and its directory; keeps `keep` rotated files of
    /// at most `max_size` bytes each.
    pub fn open(path: &Path, max_size: u64, keep: u32) -> io::Result<RotatingFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            max_size: max_size.max(1),
            keep: keep.max(1),
            inner: Mutex::new(Inner {
                file: Some(file),
                size,
                reported: false,
            }),
        })
    }

    /// `<path>.<n>`.
    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Appends one record (one log line), rotating first when it would not fit.
    pub fn write_record(&self, buf: &[u8]) -> io::Result<()> {
        let mut inner = self.inner.lock();
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        let result = self.write_locked(&mut inner, buf, len);
        match &result {
            Ok(()) => inner.reported = false,
            Err(e) if !inner.reported => {
                inner.reported = true;
                eprintln!(
                    "switchyard: cannot write the log file {}: {e}",
                    self.path.display()
                );
            }
            Err(_) => {}
        }
        result
    }

    fn write_locked(&self, inner: &mut Inner, buf: &[u8], len: u64) -> io::Result<()> {
        if inner.size > 0 && inner.size.saturating_add(len) > self.max_size {
            inner.file = None;
            self.shift()?;
            inner.size = 0;
        }
        let file = match &mut inner.file {
            Some(f) => f,
            None => {
                let f = append(&self.path)?;
                inner.size = f.metadata()?.len();
                inner.file.insert(f)
            }
        };
        file.write_all(buf)?;
        inner.size = inner.size.saturating_add(len);
        Ok(())
    }

    /// `<path>.<keep-1>` → `<path>.<keep>`, …, `<path>` → `<path>.1` (a missing file is
    /// skipped; `<path>.<keep>` is overwritten, which deletes the oldest).
    fn shift(&self) -> io::Result<()> {
        for n in (1..self.keep).rev() {
            rename_if_exists(&self.rotated(n), &self.rotated(n + 1))?;
        }
        rename_if_exists(&self.path, &self.rotated(1))
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The `fmt` layer's writer for a [`RotatingFile`]: each `write` is one record.
#[derive(Debug, Clone)]
pub struct LogFileWriter(pub Arc<RotatingFile>);

/// One line's writer, borrowed from [`LogFileWriter`].
#[derive(Debug)]
pub struct LineWriter<'a>(&'a RotatingFile);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_record(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogFileWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "switchyard-logfile-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rotates_by_size_and_keeps_count() {
        let d = dir("rotate");
        let path = d.join("sub").join("s.log");
        let f = RotatingFile::open(&path, 20, 2).expect("open");
        // Three 8-byte lines fit in 20 bytes twice per file.
        for i in 0..7 {
            f.write_record(format!("line {i:02}\n").as_bytes())
                .expect("write");
        }
        // 7 lines, 2 per file: [0,1] [2,3] [4,5] [6]; only two rotated files are kept.
        assert_eq!(read(&path), "line 06\n");
        assert_eq!(read(&f.rotated(1)), "line 04\nline 05\n");
        assert_eq!(read(&f.rotated(2)), "line 02\nline 03\n");
        assert!(!f.rotated(3).exists());
        for p in [path.clone(), f.rotated(1), f.rotated(2)] {
            let len = std::fs::metadata(&p).expect("meta").len();
            assert!(len <= 20, "{} is {len} bytes", p.display());
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_line_is_never_split_and_a_long_line_gets_its_own_file() {
        let d = dir("long");
        let path = d.join("s.log");
        let f = RotatingFile::open(&path, 10, 3).expect("open");
        f.write_record(b"short\n").expect("write");
        let long = "x".repeat(25) + "\n";
        f.write_record(long.as_bytes()).expect("write");
        f.write_record(b"after\n").expect("write");
        assert_eq!(read(&path), "after\n");
        assert_eq!(read(&f.rotated(1)), long);
        assert_eq!(read(&f.rotated(2)), "short\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let d = dir("reopen");
        let path = d.join("s.log");
        RotatingFile::open(&path, 16, 1)
            .expect("open")
            .write_record(b"0123456789\n")
            .expect("write");
        let f = RotatingFile::open(&path, 16, 1).expect("reopen");
        f.write_record(b"abc\n").expect("write");
        assert_eq!(read(&path), "0123456789\nabc\n");
        // 15 + 4 > 16: rotated, and with keep = 1 the previous .1 is replaced.
        f.write_record(b"def\n").expect("write");
        assert_eq!(read(&path), "def\n");
        assert_eq!(read(&f.rotated(1)), "0123456789\nabc\n");
        f.write_record(&[b'z'; 15]).expect("write");
        assert_eq!(read(&f.rotated(1)), "def\n");
        assert!(!f.rotated(2).exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_fmt_layer_writes_whole_lines_through_make_writer() {
        let d = dir("fmt");
        let path = d.join("s.log");
        let f = Arc::new(RotatingFile::open(&path, 1024, 2).expect("open"));
        let writer = LogFileWriter(f);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(client_id = "c1", "hello file");
        });
        let text = read(&path);
        assert!(text.contains("hello file client_id=\"c1\""), "{text}");
        assert!(text.ends_with('\n'), "{text}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
