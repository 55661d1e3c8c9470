//! Logging as an operator sees it: the log file of `[log.file]` beside the console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Broker;

#[test]
fn the_log_file_gets_the_console_lines_and_rotates_by_size() {
    let mut broker = Broker::start_with(
        "[log.file]\nenable = true\npath = \"logs/switchyard.log\"\nmax_size = \"1KB\"\n\
         rotation_count = 2\n",
    );
    let path = broker.dir().join("logs/switchyard.log");
    let text = std::fs::read_to_string(&path).expect("the log file exists");
    assert!(text.contains("switchyard started"), "{text}");
    assert!(broker.log_contains("switchyard started"), "the console too");
    assert!(!text.contains('\u{1b}'), "no colour codes in the file: {text}");
    // Start-up alone logs more than 1KB: the file has rotated and no file passes 1KB.
    broker.stop(common::STOP_TIMEOUT);
    let rotated = broker.dir().join("logs/switchyard.log.1");
    assert!(rotated.exists(), "{}", broker.log_excerpt());
    assert!(!broker.dir().join("logs/switchyard.log.3").exists());
    for p in [path, rotated] {
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 1024, "{} has {len} bytes", p.display());
    }
}
