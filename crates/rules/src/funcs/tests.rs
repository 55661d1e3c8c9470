//! Every function, on the values EMQX's documentation uses.

use crate::eval::{run, Outcome};
use crate::sql::parse;
use serde_json::{json, Value};

fn v(expr: &str) -> Value {
    let ctx = json!({
        "topic": "t/a/b", "clientid": "c1", "username": "u1", "qos": 1, "id": "abc",
        "peerhost": "10.0.0.1", "flags": {"retain": true, "dup": false},
        "payload": "{\"a\": {\"b\": 2}, \"l\": [1, 2, 3]}"
    });
    let sql = format!("SELECT {expr} AS v FROM \"#\"");
    let rule = match parse(&sql) {
        Ok(r) => r,
        Err(e) => return json!({"parse_error": e.to_string()}),
    };
    match run(&rule, ctx.as_object().unwrap_or(&serde_json::Map::new())) {
        Ok(Outcome::Outputs(o)) => o
            .first()
            .and_then(|o| o.get("v"))
            .cloned()
            .unwrap_or(Value::Null),
        Ok(Outcome::NoResult) => json!("no result"),
        Err(e) => json!({"error": e.to_string()}),
    }
}

fn is_error(x: &Value) -> bool {
    x.get("error").is_some()
}

#[test]
fn maths() {
    let cases: &[(&str, Value)] = &[
        ("abs(-3)", json!(3)),
        ("abs(-1.5)", json!(1.5)),
        ("ceil(1.2)", json!(2)),
        ("floor(1.8)", json!(1)),
        ("round(2.5)", json!(3)),
        ("sqrt(16)", json!(4.0)),
        ("power(2, 10)", json!(1024.0)),
        ("exp(0)", json!(1.0)),
        ("log(1)", json!(0.0)),
        ("log10(100)", json!(2.0)),
        ("log2(8)", json!(3.0)),
        ("fmod(7, 3)", json!(1.0)),
        ("sin(0)", json!(0.0)),
        ("cos(0)", json!(1.0)),
        ("tan(0)", json!(0.0)),
        ("asin(0)", json!(0.0)),
        ("acos(1)", json!(0.0)),
        ("atan(0)", json!(0.0)),
        ("sinh(0)", json!(0.0)),
        ("cosh(0)", json!(1.0)),
        ("tanh(0)", json!(0.0)),
        ("asinh(0)", json!(0.0)),
        ("acosh(1)", json!(0.0)),
        ("atanh(0)", json!(0.0)),
        ("bitnot(0)", json!(-1)),
        ("bitand(12, 10)", json!(8)),
        ("bitor(12, 10)", json!(14)),
        ("bitxor(12, 10)", json!(6)),
        ("bitsl(1, 4)", json!(16)),
        ("bitsr(16, 4)", json!(1)),
        ("bytesize('héllo')", json!(6)),
    ];
    for (e, want) in cases {
        assert_eq!(&v(e), want, "{e}");
    }
    let r = v("random()");
    assert!(r.as_f64().is_some_and(|x| (0.0..1.0).contains(&x)));
    assert!(is_error(&v("sqrt(-1)")));
    assert!(is_error(&v("1 / 0")));
    assert!(is_error(&v("5 div 0")));
    assert!(is_error(&v("bitsl(1, 99)")));
}

#[test]
fn conversions_and_type_tests() {
    let cases: &[(&str, Value)] = &[
        ("str(12)", json!("12")),
        ("str(1.5)", json!("1.5")),
        ("str(payload.a)", json!("{\"b\":2}")),
        ("str(payload.nope)", json!("undefined")),
        ("str_utf8(true)", json!("true")),
        ("int('42')", json!(42)),
        ("int(3.9)", json!(3)),
        ("int(true)", json!(1)),
        ("float('1.25')", json!(1.25)),
        ("float(2.71828, 2)", json!(2.72)),
        ("float2str(1.5, 3)", json!("1.500")),
        ("bool('true')", json!(true)),
        ("bool(0)", json!(false)),
        ("map('{\"k\": 1}')", json!({"k": 1})),
        ("bin2hexstr('AB')", json!("4142")),
        ("hexstr2bin('4142')", json!("AB")),
        ("is_null(payload.nope)", json!(true)),
        ("is_not_null(payload.a)", json!(true)),
        ("is_null_var(clientid)", json!(false)),
        ("is_not_null_var(nope)", json!(false)),
        ("is_str('x')", json!(true)),
        ("is_bool(false)", json!(true)),
        ("is_int(3)", json!(true)),
        ("is_float(3.5)", json!(true)),
        ("is_num(3)", json!(true)),
        ("is_map(payload.a)", json!(true)),
        ("is_array(payload.l)", json!(true)),
        ("is_empty(map_new())", json!(true)),
    ];
    for (e, want) in cases {
        assert_eq!(&v(e), want, "{e}");
    }
    assert!(is_error(&v("int('x')")));
    assert!(is_error(&v("bool('maybe')")));
    assert!(is_error(&v("hexstr2bin('4')")));
}

#[test]
fn strings() {
    let cases: &[(&str, Value)] = &[
        ("lower('AbC')", json!("abc")),
        ("upper('abc')", json!("ABC")),
        ("trim('  a ')", json!("a")),
        ("ltrim('  a ')", json!("a ")),
        ("rtrim('  a ')", json!("  a")),
        ("rtrim('axx', 'x')", json!("a")),
        ("reverse('abc')", json!("cba")),
        ("strlen('héllo')", json!(5)),
        ("substr('abcdef', 2)", json!("cdef")),
        ("substr('abcdef', 2, 3)", json!("cde")),
        ("split('a/b/', '/')", json!(["a", "b"])),
        ("split('a/b/', '/', 'notrim')", json!(["a", "b", ""])),
        ("split('a/b/c', '/', 'leading')", json!(["a", "b/c"])),
        ("split('a/b/c', '/', 'trailing')", json!(["a/b", "c"])),
        ("tokens('a, b;c', ', ;')", json!(["a", "b", "c"])),
        ("concat('a', 'b')", json!("ab")),
        ("concat(['a', 'b', 1])", json!("ab1")),
        ("sprintf('~s-~p~n', 'a', 1)", json!("a-1\n")),
        ("pad('a', 3)", json!("a  ")),
        ("pad('a', 3, 'leading', '0')", json!("00a")),
        ("pad('a', 4, 'both', '*')", json!("*a**")),
        ("replace('aXbX', 'X', '-')", json!("a-b-")),
        ("replace('aXbX', 'X', '-', 'leading')", json!("a-bX")),
        ("replace('aXbX', 'X', '-', 'trailing')", json!("aXb-")),
        ("regex_match('abc123', '[0-9]+$')", json!(true)),
        ("regex_match('abc', '^[0-9]+$')", json!(false)),
        ("regex_replace('ab1c2', '[0-9]', '#')", json!("ab#c#")),
        (
            "regex_replace('a1', '([a-z])([0-9])', '\\2\\1')",
            json!("1a"),
        ),
        ("regex_extract('temp=25C', 'temp=([0-9]+)')", json!(["25"])),
        ("ascii('a')", json!(97)),
        ("find('a/b/c', '/')", json!("/b/c")),
        ("find('a/b/c', '/', 'trailing')", json!("/c")),
        ("find('abc', 'x')", json!("")),
        ("join_to_string(['a', 'b'])", json!("a, b")),
        ("join_to_string('-', ['a', 'b'])", json!("a-b")),
        ("unescape('a\\nb')", json!("a\nb")),
        ("rm_prefix('foo/bar', 'foo/')", json!("bar")),
    ];
    for (e, want) in cases {
        assert_eq!(&v(e), want, "{e}");
    }
    assert!(is_error(&v("regex_match('a', '(')")));
    assert!(is_error(&v("sprintf('~s')")));
}

#[test]
fn maps_arrays_and_null_handling() {
    let cases: &[(&str, Value)] = &[
        ("map_get('b', payload.a)", json!(2)),
        ("map_get('x', payload.a, 'dflt')", json!("dflt")),
        ("map_get('a.b', json_decode(payload))", json!(2)),
        ("mget('b', payload.a)", json!(2)),
        ("map_put('c', 3, payload.a)", json!({"b": 2, "c": 3})),
        ("mput('c', 3, map_new())", json!({"c": 3})),
        ("map_keys(payload.a)", json!(["b"])),
        ("map_values(payload.a)", json!([2])),
        (
            "map_to_entries(payload.a)",
            json!([{"key": "b", "value": 2}]),
        ),
        ("map_size(payload.a)", json!(1)),
        ("nth(2, payload.l)", json!(2)),
        ("nth(9, payload.l)", json!(null)),
        ("length(payload.l)", json!(3)),
        ("sublist(2, payload.l)", json!([1, 2])),
        ("sublist(2, 5, payload.l)", json!([2, 3])),
        ("first(payload.l)", json!(1)),
        ("last(payload.l)", json!(3)),
        ("contains(2, payload.l)", json!(true)),
        ("coalesce(payload.nope, 'x')", json!("x")),
        ("coalesce([null, '', 'y'])", json!("")),
        ("coalesce_ne([null, '', 'y'])", json!("y")),
        ("null()", json!(null)),
    ];
    for (e, want) in cases {
        assert_eq!(&v(e), want, "{e}");
    }
    assert!(is_error(&v("nth(0, payload.l)")));
}

#[test]
fn hashes_and_codecs() {
    let cases: &[(&str, Value)] = &[
        ("md5('hello')", json!("5d41402abc4b2a76b9719d911017c592")),
        (
            "sha('hello')",
            json!("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"),
        ),
        (
            "sha256('hello')",
            json!("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        ),
        (
            "hash('md5', 'hello')",
            json!("5d41402abc4b2a76b9719d911017c592"),
        ),
        ("base64_encode('hello')", json!("aGVsbG8=")),
        ("base64_decode('aGVsbG8=')", json!("hello")),
        ("json_encode(payload.l)", json!("[1,2,3]")),
        (
            "json_encode(json_decode('{\"k\": [1, 2]}'))",
            json!("{\"k\":[1,2]}"),
        ),
        ("json_decode('[1]')", json!([1])),
    ];
    for (e, want) in cases {
        assert_eq!(&v(e), want, "{e}");
    }
    assert!(is_error(&v("base64_decode('%%%')")));
    assert!(is_error(&v("json_decode('{')")));
    assert!(is_error(&v("hash('crc', 'x')")));
    assert_eq!(v("strlen(uuid_v4())"), json!(36));
    assert_eq!(v("strlen(uuid_v4_no_hyphen())"), json!(32));
}

#[test]
fn time() {
    let cases: &[(&str, Value)] = &[
        (
            "unix_ts_to_rfc3339(1700000000)",
            json!("2023-11-14T22:13:20+00:00"),
        ),
        (
            "unix_ts_to_rfc3339(1700000000123, 'millisecond')",
            json!("2023-11-14T22:13:20.123+00:00"),
        ),
        (
            "rfc3339_to_unix_ts('2023-11-14T22:13:20+00:00')",
            json!(1700000000),
        ),
        (
            "rfc3339_to_unix_ts('2023-11-15T06:13:20.5+08:00', 'millisecond')",
            json!(1700000000500u64),
        ),
        (
            "format_date('second', '+08:00', '%Y-%m-%d %H:%M:%S%:z', 1700000000)",
            json!("2023-11-15 06:13:20+08:00"),
        ),
        (
            "format_date('millisecond', 'Z', '%Y%m%dT%H%M%S.%3N%z', 1700000000123)",
            json!("20231114T221320.123+0000"),
        ),
        ("timezone_to_second('+08:00')", json!(28800)),
        ("timezone_to_offset_seconds('-0130')", json!(-5400)),
        ("unix_ts_to_rfc3339(0)", json!("1970-01-01T00:00:00+00:00")),
        (
            "unix_ts_to_rfc3339(-86400)",
            json!("1969-12-31T00:00:00+00:00"),
        ),
    ];
    for (e, want) in cases {
        assert_eq!(&v(e), want, "{e}");
    }
    let now = v("now_timestamp('millisecond')").as_i64().unwrap_or(0);
    assert!(now > 1_700_000_000_000);
    assert!(v("now_timestamp()").as_i64().unwrap_or(0) > 1_700_000_000);
    assert!(v("now_rfc3339()")
        .as_str()
        .is_some_and(|s| s.ends_with("+00:00")));
    assert!(is_error(&v("now_timestamp('fortnight')")));
    assert!(is_error(&v("rfc3339_to_unix_ts('yesterday')")));
}

#[test]
fn message_helpers() {
    let cases: &[(&str, Value)] = &[
        ("topic()", json!("t/a/b")),
        ("topic(2)", json!("a")),
        ("clientid()", json!("c1")),
        ("username()", json!("u1")),
        ("qos()", json!(1)),
        ("flags()", json!({"retain": true, "dup": false})),
        ("flag('retain')", json!(true)),
        ("peerhost()", json!("10.0.0.1")),
        ("clientip()", json!("10.0.0.1")),
        ("msgid()", json!("abc")),
        ("payload('a.b')", json!(2)),
        ("contains_topic(['t/a/b', 'x'], 't/a/b')", json!(true)),
        ("contains_topic_match(['t/#'], 't/a/b')", json!(true)),
        ("contains_topic_match(['x/+'], 't/a/b')", json!(false)),
    ];
    for (e, want) in cases {
        assert_eq!(&v(e), want, "{e}");
    }
}

#[test]
fn jq_through_jaq() {
    assert_eq!(v("jq('.a.b + 1', payload)"), json!([3]));
    assert_eq!(v("jq('.l[] | select(. > 1)', payload)"), json!([2, 3]));
    assert_eq!(v("jq('.', 1, 5000)"), json!([1]));
    assert!(is_error(&v("jq('.[', payload)")));
    assert_eq!(v("length(jq('repeat(1)', 0))"), json!(10_000));
}

#[test]
fn every_function_in_the_table_is_callable() {
    // A smoke call with plausible arguments: none may panic, whatever it answers.
    for name in super::names() {
        for n in 0..4 {
            if super::check(name, n).is_ok() {
                let args = vec!["'1'"; n].join(", ");
                let _ = v(&format!("{name}({args})"));
            }
        }
    }
}

#[test]
fn hostile_arguments_never_panic() {
    // Every function, every arity it takes (up to 3), every combination of awkward values.
    let vals = [
        "'1'",
        "-9223372036854775807 - 1",
        "9223372036854775807",
        "1.5e300",
        "-1",
        "0",
        "''",
        "payload.l",
        "payload.a",
        "null",
        "'%'",
    ];
    for name in super::names() {
        for n in 0..=3usize {
            if super::check(name, n).is_err() {
                continue;
            }
            let combos = vals.len().pow(n as u32);
            let step = if name == "jq" { 37 } else { 1 };
            for k in (0..combos).step_by(step) {
                let mut idx = k;
                let args: Vec<&str> = (0..n)
                    .map(|_| {
                        let a = vals[idx % vals.len()];
                        idx /= vals.len();
                        a
                    })
                    .collect();
                let e = format!("{name}({})", args.join(", "));
                let r = std::panic::catch_unwind(|| v(&e));
                assert!(r.is_ok(), "{e} panics");
            }
        }
    }
}
