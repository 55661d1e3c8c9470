//! Fuzz harness of the config loader (doc-hidden; not an API): the body of the `config_toml`
//! cargo-fuzz target in `fuzz/`, replayed over its committed seed corpus
//! (`fuzz/seeds/config_toml/`) by the unit test below, so `cargo test` checks it on stable.

use crate::{from_toml_str, to_toml};

/// The config target: any text either loads (and then validates) or is an error; a loaded
/// configuration prints as TOML that loads back to an equal configuration (the crate's
/// invariant `from_toml_str(&to_toml(&c)) == Ok(c)`).
pub fn toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = from_toml_str(&text) else {
        return;
    };
    let printed = to_toml(&config);
    match from_toml_str(&printed) {
        Ok(again) => assert_eq!(again, config, "printed as:\n{printed}"),
        Err(e) => {
            panic!("a loaded configuration prints as TOML that does not load: {e}\n{printed}")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_toml_seed_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/config_toml");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {dir}");
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let run = std::panic::catch_unwind(|| super::toml(&data));
            assert!(run.is_ok(), "seed {} fails its harness", f.display());
        }
    }
}
