//! Unit tests for duration and size parsing, printing and serde.

use super::*;

fn dur(s: &str) -> Result<Duration, UnitError> {
    s.parse()
}

fn size(s: &str) -> Result<ByteSize, UnitError> {
    s.parse()
}

#[test]
fn duration_units() {
    assert_eq!(dur("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(dur("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(dur("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(dur("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(dur("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(dur(" 30 s "), Ok(Duration::from_secs(30)));
}

#[test]
fn duration_bare_numbers_are_seconds() {
    assert_eq!(dur("0"), Ok(Duration::ZERO));
    assert_eq!(dur("90"), Ok(Duration::from_secs(90)));
    assert_eq!(dur("0ms"), Ok(Duration::ZERO));
}

#[test]
fn duration_rejects_bad_input() {
    assert_eq!(dur(""), Err(UnitError::Empty));
    assert_eq!(dur("  "), Err(UnitError::Empty));
    assert_eq!(dur("s"), Err(UnitError::NoNumber("s".into())));
    assert_eq!(dur("-5s"), Err(UnitError::NoNumber("-5s".into())));
    assert!(matches!(dur("1.5s"), Err(UnitError::UnknownUnit { unit, .. }) if unit == ".5s"));
    assert!(matches!(dur("5x"), Err(UnitError::UnknownUnit { unit, .. }) if unit == "x"));
    // Units are lowercase: "M" could be read as months.
    assert!(matches!(dur("1M"), Err(UnitError::UnknownUnit { .. })));
    // Compound durations are not supported; the message names the leftover suffix.
    let err = dur("1m30s").expect_err("must fail");
    assert!(err.to_string().contains("\"m30s\""), "{err}");
}

#[test]
fn duration_overflow_is_an_error() {
    // u64::MAX seconds does not fit in u64 milliseconds.
    assert_eq!(
        dur("18446744073709551615"),
        Err(UnitError::TooLarge("18446744073709551615".into()))
    );
    assert_eq!(
        dur("99999999999999999999ms"),
        Err(UnitError::TooLarge("99999999999999999999ms".into()))
    );
    assert!(matches!(
        dur("213503982334602d"),
        Err(UnitError::TooLarge(_))
    ));
    // The largest day count that fits.
    assert_eq!(
        dur("213503982334d"),
        Ok(Duration::from_millis(213_503_982_334 * 86_400_000))
    );
}

#[test]
fn duration_display_uses_largest_exact_unit() {
    let cases = [
        (0, "0s"),
        (1, "1ms"),
        (1_500, "1500ms"),
        (30_000, "30s"),
        (90_000, "90s"),
        (60_000, "1m"),
        (300_000, "5m"),
        (7_200_000, "2h"),
        (86_400_000, "1d"),
        (90_000_000, "25h"),
    ];
    for (millis, text) in cases {
        let d = Duration::from_millis(millis);
        assert_eq!(d.to_string(), text);
        assert_eq!(dur(text), Ok(d), "{text} must parse back");
    }
}

#[test]
fn duration_converts_to_std() {
    let d = Duration::from_millis(1_500);
    assert_eq!(d.as_std(), std::time::Duration::from_millis(1_500));
    assert_eq!(std::time::Duration::from(d).as_millis(), 1_500);
    assert_eq!(d.as_secs(), 1);
    assert_eq!(Duration::from_secs(u64::MAX).as_millis(), u64::MAX);
}

#[test]
fn size_units() {
    assert_eq!(size("512B"), Ok(ByteSize(512)));
    assert_eq!(size("64KB"), Ok(ByteSize(65_536)));
    assert_eq!(size("1MB"), Ok(ByteSize(1_048_576)));
    assert_eq!(size("1GB"), Ok(ByteSize(1_073_741_824)));
    assert_eq!(size("1mb"), Ok(ByteSize(1_048_576)));
    assert_eq!(size("2 Kb"), Ok(ByteSize(2048)));
    assert_eq!(size("0"), Ok(ByteSize(0)));
    assert_eq!(size("1000"), Ok(ByteSize(1000)));
}

#[test]
fn size_rejects_bad_input() {
    assert!(matches!(size("1XB"), Err(UnitError::UnknownUnit { unit, .. }) if unit == "XB"));
    assert!(matches!(size("1.5MB"), Err(UnitError::UnknownUnit { .. })));
    assert!(matches!(size("1K"), Err(UnitError::UnknownUnit { .. })));
    assert_eq!(size("MB"), Err(UnitError::NoNumber("MB".into())));
    assert_eq!(size(""), Err(UnitError::Empty));
    assert!(matches!(size("17179869184GB"), Err(UnitError::TooLarge(_))));
    assert_eq!(
        size("17179869183GB"),
        Ok(ByteSize(17_179_869_183 * ByteSize::GB))
    );
}

#[test]
fn size_display_uses_largest_exact_unit() {
    let cases = [
        (0, "0B"),
        (512, "512B"),
        (1000, "1000B"),
        (1024, "1KB"),
        (65_536, "64KB"),
        (1_048_576, "1MB"),
        (1_572_864, "1536KB"),
        (1_073_741_824, "1GB"),
        (u64::MAX, "18446744073709551615B"),
    ];
    for (bytes, text) in cases {
        assert_eq!(ByteSize(bytes).to_string(), text);
        assert_eq!(size(text), Ok(ByteSize(bytes)), "{text} must parse back");
    }
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Probe {
    d: Duration,
    #[serde(with = "off")]
    o: Option<Duration>,
    s: ByteSize,
}

fn probe(text: &str) -> Result<Probe, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn serde_accepts_integers_and_strings() {
    let p = probe("d = 30\no = 60\ns = 1024").expect("integers");
    assert_eq!(
        p,
        Probe {
            d: Duration::from_secs(30),
            o: Some(Duration::from_secs(60)),
            s: ByteSize(1024),
        }
    );
    let p = probe("d = \"2h\"\no = \"500ms\"\ns = \"1MB\"").expect("strings");
    assert_eq!(p.d, Duration::from_secs(7200));
    assert_eq!(p.o, Some(Duration::from_millis(500)));
    assert_eq!(p.s, ByteSize::from_str("1MB").expect("1MB"));
}

#[test]
fn serde_off_words_and_zero() {
    for off_value in [
        "\"off\"",
        "\"infinity\"",
        "\"disabled\"",
        "\"OFF\"",
        "0",
        "\"0s\"",
    ] {
        let p = probe(&format!("d = 0\no = {off_value}\ns = 0")).expect(off_value);
        assert_eq!(p.o, None, "{off_value}");
    }
    // A plain duration keeps zero as zero and rejects the off words.
    assert_eq!(
        probe("d = 0\no = 0\ns = 0").expect("zero").d,
        Duration::ZERO
    );
    let err = probe("d = \"off\"\no = 0\ns = 0").expect_err("must fail");
    assert!(err.contains("invalid duration"), "{err}");
}

#[test]
fn serde_round_trips_canonical_strings() {
    let p = Probe {
        d: Duration::from_secs(300),
        o: None,
        s: ByteSize(65_536),
    };
    let text = toml::to_string(&p).expect("serialize");
    assert_eq!(text, "d = \"5m\"\no = \"off\"\ns = \"64KB\"\n");
    assert_eq!(probe(&text), Ok(p));
}

#[test]
fn serde_errors_say_what_was_expected() {
    let err = probe("d = \"5x\"\no = 0\ns = 0").expect_err("must fail");
    assert!(
        err.contains("unknown unit \"x\"") && err.contains("a duration like"),
        "{err}"
    );
    let err = probe("d = -1\no = 0\ns = 0").expect_err("must fail");
    assert!(err.contains("a duration like"), "{err}");
    let err = probe("d = 0\no = 0\ns = \"1XB\"").expect_err("must fail");
    assert!(
        err.contains("invalid size") && err.contains("a size like"),
        "{err}"
    );
    let err = probe("d = 0\no = 0\ns = true").expect_err("must fail");
    assert!(err.contains("a size like"), "{err}");
}
