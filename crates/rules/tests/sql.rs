//! Rule SQL against EMQX's documented examples: parse, then evaluate on a sample event.

use serde_json::{json, Map, Value};
use switchyard_rules::{parse, run, EvalError, Outcome, Pos};

fn ctx(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn publish(payload: &str) -> Map<String, Value> {
    ctx(json!({
        "event": "message.publish", "id": "0005F8F84FFFAFB9F44200000BF40002",
        "clientid": "c_emqx", "username": "u_emqx", "topic": "t/a", "qos": 1,
        "flags": {"retain": false, "dup": false}, "payload": payload,
        "peerhost": "127.0.0.1", "timestamp": 1700000000000u64, "node": "switchyard@127.0.0.1"
    }))
}

fn one(sql: &str, c: &Map<String, Value>) -> Result<Option<Value>, EvalError> {
    let rule = parse(sql).map_err(|e| EvalError::BadArg(e.to_string()))?;
    Ok(match run(&rule, c)? {
        Outcome::Outputs(mut v) if v.len() == 1 => v.pop(),
        Outcome::Outputs(v) => Some(Value::Array(v)),
        Outcome::NoResult => None,
    })
}

#[test]
fn select_star_keeps_payload_raw() {
    let c = publish(r#"{"temp": 25}"#);
    let out = one(r#"SELECT * FROM "t/#""#, &c).ok().flatten();
    assert_eq!(
        out.as_ref().and_then(|o| o.get("payload")),
        Some(&json!(r#"{"temp": 25}"#))
    );
    assert_eq!(
        out.and_then(|o| o.get("clientid").cloned()),
        Some(json!("c_emqx"))
    );
}

#[test]
fn spec_example_where_and_alias() {
    let sql = r#"SELECT clientid, payload.temp AS t FROM "sensors/+/temp" WHERE payload.temp > 30"#;
    let r = parse(sql).ok();
    assert_eq!(r.map(|r| r.from), Some(vec!["sensors/+/temp".to_string()]));
    assert_eq!(
        one(sql, &publish(r#"{"temp": 31}"#)),
        Ok(Some(json!({"clientid": "c_emqx", "t": 31})))
    );
    assert_eq!(one(sql, &publish(r#"{"temp": 30}"#)), Ok(None));
}

#[test]
fn alias_usable_in_where_and_nested_alias() {
    let sql = r#"SELECT payload.x AS x, payload.a AS o.a FROM "t/#" WHERE x = 1"#;
    assert_eq!(
        one(sql, &publish(r#"{"x": 1, "a": "A"}"#)),
        Ok(Some(json!({"x": 1, "o": {"a": "A"}})))
    );
    assert_eq!(one(sql, &publish(r#"{"x": 2}"#)), Ok(None));
}

#[test]
fn unaliased_path_nests_and_arrays_are_one_based() {
    let c = publish(r#"{"a": {"b": 5}, "list": [10, 20, 30], "x-y": 7}"#);
    assert_eq!(
        one(r#"SELECT payload.a.b FROM "t/#""#, &c),
        Ok(Some(json!({"payload": {"a": {"b": 5}}})))
    );
    assert_eq!(
        one(
            r#"SELECT payload.list[1] AS f, payload.list[-1] AS l, payload.list[2..3] AS r, payload.'x-y' AS q FROM "t/#""#,
            &c
        ),
        Ok(Some(json!({"f": 10, "l": 30, "r": [20, 30], "q": 7})))
    );
    assert_eq!(
        one(
            r#"SELECT payload.list[9] AS m, payload.nope.deeper AS n FROM "t/#""#,
            &c
        ),
        Ok(Some(json!({"m": null, "n": null})))
    );
}

#[test]
fn case_when_arithmetic_and_logic() {
    let sql = r#"SELECT CASE WHEN payload.x < 0 THEN 0 WHEN payload.x > 7 THEN 7 ELSE payload.x END AS x,
        payload.x * 2 + 1 AS y, payload.x / 2 AS h, payload.x div 2 AS d, payload.x mod 2 AS m,
        'a' + 'b' AS s, not (payload.x > 3 and false) or false AS b
        FROM "t/#""#;
    assert_eq!(
        one(sql, &publish(r#"{"x": 5}"#)),
        Ok(Some(
            json!({"x": 5, "y": 11, "h": 2.5, "d": 2, "m": 1, "s": "ab", "b": true})
        ))
    );
    assert_eq!(
        one(
            r#"SELECT CASE payload.x WHEN 1 THEN 'one' ELSE 'many' END AS w FROM "t""#,
            &publish(r#"{"x":1}"#)
        ),
        Ok(Some(json!({"w": "one"})))
    );
}

#[test]
fn comparisons_with_undefined_and_numeric_strings() {
    let c = publish(r#"{"n": "10", "s": "abc"}"#);
    let sql = r#"SELECT payload.n > 9 AS a, payload.missing = 1 AS b, payload.missing != 1 AS c,
        payload.missing = payload.other AS d, payload.s <> 'abd' AS e, payload.s in ('x', 'abc') AS f,
        2 not in (1, 3) AS g FROM "t/#""#;
    assert_eq!(
        one(sql, &c),
        Ok(Some(
            json!({"a": true, "b": false, "c": false, "d": true, "e": true, "f": true, "g": true})
        ))
    );
}

#[test]
fn topic_match_operator_and_several_froms() {
    let sql = r#"SELECT topic FROM "t/1", "t/a" WHERE topic =~ 't/+' and not topic =~ 'x/#'"#;
    let r = parse(sql).ok();
    assert_eq!(r.map(|r| r.from.len()), Some(2));
    assert_eq!(one(sql, &publish("x")), Ok(Some(json!({"topic": "t/a"}))));
}

#[test]
fn foreach_do_incase() {
    let payload = r#"{"date": "2020-04-24", "sensors": [
        {"name": "a", "idx": 0}, {"name": "b", "idx": 1}, {"name": "c", "idx": 2}]}"#;
    let sql = r#"FOREACH payload.sensors AS s DO s.name AS name, s.idx AS idx, payload.date AS date
        INCASE s.idx >= 1 FROM "t/#""#;
    assert_eq!(
        one(sql, &publish(payload)),
        Ok(Some(json!([
            {"name": "b", "idx": 1, "date": "2020-04-24"},
            {"name": "c", "idx": 2, "date": "2020-04-24"}
        ])))
    );
    // Without DO: the columns plus the element under its default name.
    let rule = parse(r#"FOREACH payload.sensors FROM "t/#""#).ok();
    let out = rule.map(|r| run(&r, &publish(payload)));
    let Some(Ok(Outcome::Outputs(v))) = out else {
        panic!("foreach failed: {out:?}");
    };
    assert_eq!(v.len(), 3);
    assert_eq!(v[2].get("item"), Some(&json!({"name": "c", "idx": 2})));
    assert_eq!(v[0].get("clientid"), Some(&json!("c_emqx")));
    // Not an array: no result.
    let r = parse(r#"FOREACH payload.date FROM "t/#""#).ok();
    assert_eq!(
        r.map(|r| run(&r, &publish(payload))),
        Some(Ok(Outcome::NoResult))
    );
}

#[test]
fn events_and_comments_across_lines() {
    let sql = "-- connected devices\nSELECT clientid, connected_at\n  FROM \"$events/client_connected\"\n  WHERE username = 'u1' -- only u1\n";
    let c = ctx(json!({"clientid": "c1", "username": "u1", "connected_at": 5}));
    assert_eq!(
        one(sql, &c),
        Ok(Some(json!({"clientid": "c1", "connected_at": 5})))
    );
    assert_eq!(
        parse(sql).ok().map(|r| r.from),
        Some(vec!["$events/client_connected".into()])
    );
}

#[test]
fn keywords_are_case_insensitive() {
    let sql = r#"select payload.x as X from "t/#" where payload.x = 1 AND true"#;
    assert_eq!(one(sql, &publish(r#"{"x":1}"#)), Ok(Some(json!({"X": 1}))));
}

#[test]
fn non_json_payload_with_a_path_is_an_exception() {
    let sql = r#"SELECT payload.x AS x FROM "t/#""#;
    assert_eq!(one(sql, &publish("not json")), Err(EvalError::DecodeJson));
    // Selecting the raw payload of anything (even binary-ish text) is fine.
    assert_eq!(
        one(r#"SELECT payload FROM "t/#""#, &publish("\u{1}\u{2}")),
        Ok(Some(json!({"payload": "\u{1}\u{2}"})))
    );
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = parse("SELECT * FRM \"t/#\"").err();
    assert_eq!(
        e.as_ref().map(|e| e.pos),
        Some(Pos {
            line: 1,
            column: 10
        })
    );
    assert!(e
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("line 1, column 10"));
    let e = parse("SELECT a,\n  b +\n  FROM \"t\"").err();
    assert_eq!(e.map(|e| e.pos), Some(Pos { line: 3, column: 3 }));
    let e = parse("SELECT nosuchfn(1) FROM \"t\"").err();
    assert_eq!(e.as_ref().map(|e| e.pos), Some(Pos { line: 1, column: 8 }));
    assert!(e
        .map(|e| e.message)
        .unwrap_or_default()
        .contains("unknown function"));
    let e = parse("SELECT abs(1, 2) FROM \"t\"").err();
    assert!(e
        .map(|e| e.message)
        .unwrap_or_default()
        .contains("abs takes 1"));
    assert!(parse("SELECT * FROM t").is_err());
    assert!(parse("SELECT * FROM \"t\" WHERE").is_err());
    assert!(parse("SELECT CASE WHEN 1 THEN 2 FROM \"t\"").is_err());
    assert!(parse("").is_err());
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let sql = format!(
        "SELECT {}1{} FROM \"t\"",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert!(parse(&sql).is_err());
    let sql = format!("SELECT {}1 FROM \"t\"", "not ".repeat(10_000));
    assert!(parse(&sql).is_err());
    let sql = format!("SELECT {}1 FROM \"t\"", "- ".repeat(10_000));
    assert!(parse(&sql).is_err());
}

#[test]
fn columns_used_lists_what_the_sql_reads() {
    let cols = |s: &str| {
        parse(s)
            .ok()
            .and_then(|r| r.columns_used())
            .map(|c| c.into_iter().collect::<Vec<_>>())
    };
    assert_eq!(
        cols(r#"SELECT payload.a AS x, upper(topic()) FROM "t" WHERE qos > 0 and x = 1"#),
        Some(vec![
            "payload".into(),
            "qos".into(),
            "topic".into(),
            "x".into()
        ])
    );
    assert_eq!(cols(r#"SELECT *, clientid FROM "t""#), None);
    assert_eq!(cols(r#"FOREACH payload.l FROM "t""#), None);
    assert_eq!(
        cols(r#"FOREACH payload.l AS e DO e.v AS v INCASE e.v > peerhost() FROM "t""#),
        Some(vec!["e".into(), "payload".into(), "peerhost".into()])
    );
}

#[test]
fn hostile_indexes_and_offsets_from_a_payload_do_not_panic() {
    let c = publish(r#"{"l": [1, 2, 3], "i": -9223372036854775808, "j": 9223372036854775807}"#);
    assert_eq!(
        one(
            r#"SELECT payload.l[payload.i] AS a, payload.l[payload.j] AS b,
                      payload.l[payload.i..payload.j] AS r, payload.l[payload.j..payload.i] AS e,
                      nth(payload.i, payload.l) AS n
               FROM "t/#""#,
            &c
        ),
        Ok(Some(
            json!({"a": null, "b": null, "r": [1, 2, 3], "e": [], "n": null})
        ))
    );
    let r = one(
        r#"SELECT format_date('second', -9223372036854775807 - 1, '%Y %:z', 0) AS d FROM "t/#""#,
        &c,
    );
    assert!(r.is_ok(), "{r:?}");
}
