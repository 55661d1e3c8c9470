//! Fuzz harness of the rule SQL parser and evaluator (doc-hidden; not an API): the body of the
//! `rule_sql` cargo-fuzz target in `fuzz/`, replayed over its committed seed corpus
//! (`fuzz/seeds/rule_sql/`) by the unit test below, so `cargo test` checks it on stable.

use serde_json::{json, Value};

/// The target: any text either parses or is refused with a position inside the text; a rule
/// that parses evaluates (to outputs, no result, or an error) on a sample event whose payload
/// is the input itself, without panicking. The first line doubles as a template.
pub fn rule_sql(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match crate::sql::parse(&text) {
        Ok(rule) => {
            let ctx = json!({
                "topic": "t/a", "clientid": "c", "qos": 1, "flags": {"retain": false},
                "payload": text.as_ref(),
            });
            if let Value::Object(cols) = ctx {
                let _ = crate::eval::run(&rule, &cols);
                let obj = json!({"payload": "{\"a\": [1, {\"b\": 2}]}", "x": 1});
                if let Value::Object(cols) = obj {
                    let _ = crate::eval::run(&rule, &cols);
                }
            }
        }
        Err(e) => {
            let lines = text.lines().count().max(1) as u32;
            assert!(
                e.pos.line >= 1 && e.pos.line <= lines + 1 && e.pos.column >= 1,
                "error position {:?} outside the text ({lines} lines)",
                e.pos
            );
        }
    }
    let first = text.lines().next().unwrap_or_default();
    let t = crate::template::Template::parse(first);
    let _ = t.render(&json!({"a": {"b": [1, 2]}, "s": "{\"k\": 1}"}), "undefined");
}

#[cfg(test)]
mod tests {
    #[test]
    fn rule_sql_seed_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/rule_sql");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {dir}");
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let run = std::panic::catch_unwind(|| super::rule_sql(&data));
            assert!(run.is_ok(), "seed {} fails its harness", f.display());
        }
    }

    /// A cheap stand-in for the fuzzer on stable: byte-level mutations of the seeds (flips,
    /// cuts, duplicated slices) through the same harness.
    #[test]
    fn mutated_seeds_never_panic() {
        use rand::{Rng, SeedableRng};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/rule_sql");
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read(e.path()).ok())
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let alphabet = b" ()[],.'\"*+-/<>=~!09azAZ_$#\n";
        for _ in 0..3000 {
            let mut d = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(1..6) {
                if d.is_empty() {
                    break;
                }
                let i = rng.gen_range(0..d.len());
                match rng.gen_range(0..4) {
                    0 => d[i] = alphabet[rng.gen_range(0..alphabet.len())],
                    1 => {
                        d.truncate(i);
                    }
                    2 => {
                        let j = rng.gen_range(i..d.len());
                        let slice = d[i..j].to_vec();
                        d.splice(i..i, slice);
                    }
                    _ => {
                        d.remove(i);
                    }
                }
            }
            let run = std::panic::catch_unwind(|| super::rule_sql(&d));
            assert!(
                run.is_ok(),
                "input {:?} panics",
                String::from_utf8_lossy(&d)
            );
        }
    }
}
