//! Content decoding by Content-Format (docs/lwm2m.md §4.8) and write encoding.

use super::*;
use crate::objects::parse_xml;
use serde_json::json;

pub(crate) fn db() -> ObjectDb {
    let mut db = ObjectDb::default();
    let xml = r#"<LWM2M><Object><Name>Device</Name><ObjectID>3</ObjectID>
      <MultipleInstances>Single</MultipleInstances><Resources>
      <Item ID="0"><Name>Manufacturer</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>String</Type></Item>
      <Item ID="6"><Name>Available Power Sources</Name><Operations>R</Operations><MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory><Type>Integer</Type></Item>
      <Item ID="9"><Name>Battery Level</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>Integer</Type></Item>
      <Item ID="13"><Name>Current Time</Name><Operations>RW</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>Time</Type></Item>
      <Item ID="4"><Name>Reboot</Name><Operations>E</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory><Type></Type></Item>
      </Resources></Object>
      <Object><Name>Switch</Name><ObjectID>3342</ObjectID><MultipleInstances>Multiple</MultipleInstances><Resources>
      <Item ID="5500"><Name>Digital Input State</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory><Type>Boolean</Type></Item>
      <Item ID="5700"><Name>Sensor Value</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory><Type>Float</Type></Item>
      </Resources></Object></LWM2M>"#;
    for o in parse_xml(xml).unwrap_or_default() {
        db.insert(o);
    }
    db
}

fn p(s: &str) -> Path {
    Path::parse(s).unwrap_or_else(|| panic!("path {s}"))
}

#[test]
fn text_booleans_both_spellings_not_inverted() {
    let db = db();
    for (raw, want) in [("1", true), ("0", false), ("true", true), ("false", false)] {
        let v = decode(&p("/3342/0/5500"), None, raw.as_bytes(), &db);
        assert_eq!(v, Ok(vec![("/3342/0/5500".into(), json!(want))]), "{raw}");
    }
    assert!(decode(&p("/3342/0/5500"), None, b"yes", &db).is_err());
}

#[test]
fn text_is_typed_by_the_definition_and_kept_without_one() {
    let db = db();
    let v = decode(&p("/3/0/9"), Some(format::TEXT), b"87", &db);
    assert_eq!(v, Ok(vec![("/3/0/9".into(), json!(87))]));
    let v = decode(&p("/3342/0/5700"), None, b"21.5", &db);
    assert_eq!(v, Ok(vec![("/3342/0/5700".into(), json!(21.5))]));
    let v = decode(&p("/3/0/0"), None, b"EMQ", &db);
    assert_eq!(v, Ok(vec![("/3/0/0".into(), json!("EMQ"))]));
    // No definition: EMQX answers 4.00; the text is kept instead.
    let v = decode(&p("/9723/0/0"), None, b"x", &db);
    assert_eq!(v, Ok(vec![("/9723/0/0".into(), json!("x"))]));
}

#[test]
fn tlv_object_instance_read_gives_full_paths() {
    let db = db();
    let payload = tlv::encode(&[
        Tlv::value(Kind::Resource, 0, b"Open Mobile Alliance".to_vec()),
        Tlv::container(
            Kind::MultipleResource,
            6,
            vec![
                Tlv::value(Kind::ResourceInstance, 0, vec![1]),
                Tlv::value(Kind::ResourceInstance, 1, vec![5]),
            ],
        ),
        Tlv::value(Kind::Resource, 9, tlv::encode_int(-3)),
    ])
    .unwrap_or_default();
    let v = decode(&p("/3/0"), Some(format::TLV), &payload, &db).unwrap_or_default();
    assert_eq!(
        v,
        vec![
            ("/3/0/0".into(), json!("Open Mobile Alliance")),
            ("/3/0/6/0".into(), json!(1)),
            ("/3/0/6/1".into(), json!(5)),
            ("/3/0/9".into(), json!(-3)),
        ]
    );
    // Object-level read: instances.
    let inst = tlv::encode(&[Tlv::container(
        Kind::ObjectInstance,
        0,
        vec![Tlv::value(Kind::Resource, 9, vec![100])],
    )])
    .unwrap_or_default();
    let v = decode(&p("/3"), Some(format::TLV), &inst, &db).unwrap_or_default();
    assert_eq!(v, vec![("/3/0/9".into(), json!(100))]);
    // A multiple resource read on its own path: instances.
    let m = tlv::encode(&[
        Tlv::value(Kind::ResourceInstance, 0, vec![1]),
        Tlv::value(Kind::ResourceInstance, 1, vec![5]),
    ])
    .unwrap_or_default();
    let v = decode(&p("/3/0/6"), Some(format::TLV), &m, &db).unwrap_or_default();
    assert_eq!(
        v,
        vec![("/3/0/6/0".into(), json!(1)), ("/3/0/6/1".into(), json!(5))]
    );
}

#[test]
fn tlv_without_definition_is_opaque() {
    let db = db();
    let payload =
        tlv::encode(&[Tlv::value(Kind::Resource, 1, vec![0xDE, 0xAD])]).unwrap_or_default();
    let v = decode(&p("/59102/0"), Some(format::TLV), &payload, &db);
    assert_eq!(v, Ok(vec![("/59102/0/1".into(), json!("3q0="))]));
    assert!(decode(&p("/3/0"), Some(format::TLV), &[0xC8, 0x00], &db).is_err());
}

#[test]
fn opaque_lwm2m_json_and_senml() {
    let db = db();
    let v = decode(&p("/5/0/0"), Some(format::OPAQUE), &[1, 2, 3], &db);
    assert_eq!(v, Ok(vec![("/5/0/0".into(), json!("AQID"))]));
    let j = br#"{"bn":"/3/0/","e":[{"n":"0","sv":"EMQ"},{"n":"9","v":80},{"n":"6/0","v":1}]}"#;
    let v = decode(&p("/3/0"), Some(format::LWM2M_JSON), j, &db);
    assert_eq!(
        v,
        Ok(vec![
            ("/3/0/0".into(), json!("EMQ")),
            ("/3/0/9".into(), json!(80)),
            ("/3/0/6/0".into(), json!(1)),
        ])
    );
    let s = br#"[{"bn":"/3303/0/","n":"5700","v":21.5},{"n":"5701","vs":"Cel"},{"n":"5850","vb":true},{"n":"1","vd":"AQID"}]"#;
    let v = decode(&p("/3303/0"), Some(format::SENML_JSON), s, &db);
    assert_eq!(
        v,
        Ok(vec![
            ("/3303/0/5700".into(), json!(21.5)),
            ("/3303/0/5701".into(), json!("Cel")),
            ("/3303/0/5850".into(), json!(true)),
            ("/3303/0/1".into(), json!("AQID")),
        ])
    );
}

#[test]
fn senml_cbor_round_trip_through_the_encoder() {
    let db = db();
    let items = vec![
        WriteItem {
            rel: vec![5700],
            value: Typed::Float(21.5),
        },
        WriteItem {
            rel: vec![5701],
            value: Typed::String("Cel".into()),
        },
        WriteItem {
            rel: vec![5850],
            value: Typed::Boolean(false),
        },
        WriteItem {
            rel: vec![1],
            value: Typed::Integer(-7),
        },
        WriteItem {
            rel: vec![2],
            value: Typed::Opaque(vec![1, 2, 3]),
        },
    ];
    let cbor = senml::encode_senml_cbor(&p("/3303/0"), &items);
    let v = decode(&p("/3303/0"), Some(format::SENML_CBOR), &cbor, &db).unwrap_or_default();
    assert_eq!(
        v,
        vec![
            ("/3303/0/5700".into(), json!(21.5)),
            ("/3303/0/5701".into(), json!("Cel")),
            ("/3303/0/5850".into(), json!(false)),
            ("/3303/0/1".into(), json!(-7)),
            ("/3303/0/2".into(), json!("AQID")),
        ]
    );
    let js = senml::encode_senml_json(&p("/3303/0"), &items);
    let v = decode(&p("/3303/0"), Some(format::SENML_JSON), &js, &db).unwrap_or_default();
    assert_eq!(v.len(), 5);
    assert_eq!(v[4], ("/3303/0/2".into(), json!("AQID")));
    assert!(decode(&p("/3"), Some(format::SENML_CBOR), b"\xff\x00", &db).is_err());
}

#[test]
fn typed_values_from_commands() {
    assert_eq!(
        parse_typed("Integer", &json!("12345")),
        Some(Typed::Integer(12345))
    );
    assert_eq!(parse_typed("Integer", &json!(-5)), Some(Typed::Integer(-5)));
    assert_eq!(
        parse_typed("Float", &json!("12345.0")),
        Some(Typed::Float(12345.0))
    );
    assert_eq!(
        parse_typed("Boolean", &json!("true")),
        Some(Typed::Boolean(true))
    );
    assert_eq!(
        parse_typed("Boolean", &json!("0")),
        Some(Typed::Boolean(false))
    );
    assert_eq!(
        parse_typed("Opaque", &json!("AQID")),
        Some(Typed::Opaque(vec![1, 2, 3]))
    );
    assert_eq!(
        parse_typed("Objlnk", &json!("3:0")),
        Some(Typed::Objlnk(3, 0))
    );
    assert_eq!(parse_typed("Integer", &json!("x")), None);
    assert_eq!(parse_typed("Nope", &json!("1")), None);
    assert_eq!(Typed::Boolean(true).text(), b"1");
}

#[test]
fn tlv_write_shapes() {
    let one = |rel: Vec<u16>, v| WriteItem {
        rel,
        value: Typed::Integer(v),
    };
    // Resource base: the resource itself.
    assert_eq!(
        encode_tlv(&p("/3/0/13"), &[one(vec![], 5)]),
        Ok(vec![0xC1, 13, 5])
    );
    // Resource base with instances: a multiple resource.
    assert_eq!(
        encode_tlv(&p("/3/0/6"), &[one(vec![0], 1), one(vec![1], 5)]),
        Ok(vec![0x86, 6, 0x41, 0, 1, 0x41, 1, 5])
    );
    // Object base with I/R paths (create): object instances.
    assert_eq!(
        encode_tlv(&p("/5"), &[one(vec![0, 1], 1)]),
        Ok(vec![0x03, 0, 0xC1, 1, 1])
    );
    assert!(encode_tlv(&p("/3/0"), &[one(vec![1, 2, 3], 1)]).is_err());
}

/// Fuzzing regression (lwm2m_json, fuzz/seeds/lwm2m_json/regress-empty-name): a record with an
/// empty base name and no name decoded to the path "" (the content entry `"path": ""`); like a
/// SenML record, it now names the requested path.
#[test]
fn lwm2m_json_record_without_a_name_is_the_requested_path() {
    let db = db();
    let j = br#"{"bn":"","e":[{"v":"3:0"},{"n":"/3/0/1","sv":"x"}]}"#;
    let v = decode(&p("/3/0/9"), Some(format::LWM2M_JSON), j, &db);
    assert_eq!(
        v,
        Ok(vec![
            ("/3/0/9".into(), json!("3:0")),
            ("/3/0/1".into(), json!("x")),
        ])
    );
}
