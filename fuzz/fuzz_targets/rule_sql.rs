//! The rule SQL parser and evaluator: any text parses or is refused with a position; a parsed
//! rule evaluates on sample events without panicking. The body is
//! `switchyard_rules::fuzzing::rule_sql`, which `cargo test` also runs over fuzz/seeds/rule_sql/.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_rules::fuzzing::rule_sql(data));
