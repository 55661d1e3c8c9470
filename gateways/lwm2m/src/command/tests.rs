//! Command JSON → CoAP request, and CoAP reply → event JSON (docs/lwm2m.md §4.4–§4.7).

use super::*;
use crate::codec::tests::db;
use switchyard_coap_transport::coap_lite::MessageType;

fn cmd(j: &str) -> Command {
    match parse(j.as_bytes()) {
        Ok(Some(c)) => c,
        other => panic!("{j}: {other:?}"),
    }
}

fn req(j: &str, alt: &str) -> Outgoing {
    build(&cmd(j), alt).unwrap_or_else(|e| panic!("{j}: {e}"))
}

fn uri(p: &Packet) -> (Vec<String>, Vec<String>) {
    (
        wire::uri_path(p).unwrap_or_default(),
        wire::uri_query(p).unwrap_or_default(),
    )
}

fn opt_u(p: &Packet, o: CoapOption) -> Option<u32> {
    wire::uint_option(p, o).and_then(Result::ok)
}

fn reply(c: u8, cf: Option<u16>, payload: &[u8]) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Acknowledgement);
    wire::set_code(&mut p, c);
    if let Some(cf) = cf {
        p.add_option(CoapOption::ContentFormat, wire::uint_bytes(u32::from(cf)));
    }
    p.payload = payload.to_vec();
    p
}

#[test]
fn read_has_no_accept_unless_asked_and_uses_the_alternate_path() {
    let o = req(
        r#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/0"}}"#,
        "/lwm2m",
    );
    assert_eq!(wire::code_of(&o.packet), code::GET);
    assert_eq!(uri(&o.packet).0, vec!["lwm2m", "3", "0", "0"]);
    assert_eq!(opt_u(&o.packet, CoapOption::Accept), None);
    assert!(!o.observe);
    let o = req(
        r#"{"msgType":"read","data":{"path":"/3/0","format":"senml-cbor"}}"#,
        "/",
    );
    assert_eq!(uri(&o.packet).0, vec!["3", "0"]);
    assert_eq!(opt_u(&o.packet, CoapOption::Accept), Some(112));
}

#[test]
fn discover_observe_cancel_delete_execute() {
    let o = req(r#"{"msgType":"discover","data":{"path":"/3/0"}}"#, "/");
    assert_eq!(opt_u(&o.packet, CoapOption::Accept), Some(40));
    let o = req(
        r#"{"msgType":"observe","data":{"path":"/3/0/9?pmin=10"}}"#,
        "/",
    );
    assert!(o.observe);
    assert_eq!(o.packet.get_observe_value().and_then(Result::ok), Some(0));
    assert_eq!(
        uri(&o.packet),
        (
            vec!["3".into(), "0".into(), "9".into()],
            vec!["pmin=10".into()]
        )
    );
    let o = req(
        r#"{"msgType":"cancel-observe","data":{"path":"/3/0/9"}}"#,
        "/",
    );
    assert!(!o.observe);
    assert_eq!(o.packet.get_observe_value().and_then(Result::ok), Some(1));
    let o = req(r#"{"msgType":"delete","data":{"path":"/5/0"}}"#, "/");
    assert_eq!(wire::code_of(&o.packet), code::DELETE);
    let o = req(
        r#"{"msgType":"execute","data":{"path":"/3/0/4","args":"2,7"}}"#,
        "/",
    );
    assert_eq!(wire::code_of(&o.packet), code::POST);
    assert_eq!(o.packet.payload, b"2,7");
    assert_eq!(opt_u(&o.packet, CoapOption::ContentFormat), Some(0));
    let o = req(
        r#"{"msgType":"execute","data":{"path":"/3/0/4","args":"undefined"}}"#,
        "/",
    );
    assert!(o.packet.payload.is_empty());
}

#[test]
fn write_attr_queries_strings_and_numbers() {
    let o = req(
        r#"{"msgType":"write-attr","data":{"path":"/3/0/9","pmin":"1","pmax":60,"lt":"5","bogus":"x"}}"#,
        "/",
    );
    assert_eq!(wire::code_of(&o.packet), code::PUT);
    assert_eq!(uri(&o.packet).1, vec!["pmin=1", "pmax=60", "lt=5"]);
    assert!(o.packet.payload.is_empty());
}

#[test]
fn writes_match_emqx_vectors() {
    // The Float write of docs/lwm2m.md §4.5 (EMQX's test vector): PUT /3/0/13.
    let o = req(
        r#"{"msgType":"write","data":{"basePath":"/3/0/13","content":[{"type":"Float","value":"12345.0"}]}}"#,
        "/",
    );
    assert_eq!(wire::code_of(&o.packet), code::PUT);
    assert_eq!(uri(&o.packet).0, vec!["3", "0", "13"]);
    assert_eq!(
        o.packet.payload,
        vec![0xC8, 0x0D, 0x08, 0x40, 0xC8, 0x1C, 0x80, 0, 0, 0, 0]
    );
    assert_eq!(opt_u(&o.packet, CoapOption::ContentFormat), Some(11542));
    // Batch vector: POST /3/0.
    let o = req(
        r#"{"msgType":"write","data":{"basePath":"/3/0/","content":[{"path":"13","type":"Integer","value":"12345"},{"path":"14","type":"String","value":"87x"}]}}"#,
        "/",
    );
    assert_eq!(wire::code_of(&o.packet), code::POST);
    assert_eq!(uri(&o.packet).0, vec!["3", "0"]);
    assert_eq!(
        o.packet.payload,
        vec![0xC2, 0x0D, 0x30, 0x39, 0xC3, 0x0E, 0x38, 0x37, 0x78]
    );
    // Absolute content paths under the base are accepted too.
    let o2 = req(
        r#"{"msgType":"write","data":{"basePath":"/3/0","content":[{"path":"/3/0/13","type":"Integer","value":12345},{"path":"/14","type":"String","value":"87x"}]}}"#,
        "/",
    );
    assert_eq!(o2.packet.payload, o.packet.payload);
    // Single write: PUT with one TLV resource; 200 is 00 C8, not C8 (docs/lwm2m.md §4.13.4).
    let o = req(
        r#"{"msgType":"write","data":{"path":"/3/0/13","type":"Integer","value":200}}"#,
        "/",
    );
    assert_eq!(wire::code_of(&o.packet), code::PUT);
    assert_eq!(o.packet.payload, vec![0xC2, 0x0D, 0x00, 0xC8]);
    // SenML on request.
    let o = req(
        r#"{"msgType":"write","data":{"path":"/3/0/13","type":"Integer","value":1,"format":"senml-json"}}"#,
        "/",
    );
    assert_eq!(opt_u(&o.packet, CoapOption::ContentFormat), Some(110));
    assert_eq!(o.packet.payload, br#"[{"n":"/3/0/13","v":1}]"#);
}

#[test]
fn create_posts_on_the_object() {
    let o = req(
        r#"{"msgType":"create","data":{"basePath":"/5","content":[{"path":"0/1","type":"String","value":"x"}]}}"#,
        "/",
    );
    assert_eq!(wire::code_of(&o.packet), code::POST);
    assert_eq!(uri(&o.packet).0, vec!["5"]);
    assert_eq!(o.packet.payload, vec![0x03, 0x00, 0xC1, 0x01, b'x']);
    let o = req(
        r#"{"msgType":"create","data":{"basePath":"/5","content":[]}}"#,
        "/",
    );
    assert!(o.packet.payload.is_empty());
    assert!(build(
        &cmd(r#"{"msgType":"create","data":{"basePath":"/5/0","content":[]}}"#),
        "/"
    )
    .is_err());
}

#[test]
fn bad_commands() {
    assert_eq!(parse(b"not json"), Ok(None));
    assert_eq!(parse(b"[1]"), Ok(None));
    let r = parse(br#"{"reqID":7,"msgType":"frobnicate","data":{"path":"/3/0?x=1"}}"#);
    let Err(r) = r else { panic!("{r:?}") };
    assert_eq!(
        rejected_event(&r),
        json!({"reqID":7,"msgType":"frobnicate","data":{"reqPath":"/3/0","code":"4.00","codeMsg":"bad_request"}})
    );
    assert!(parse(br#"{"msgType":"read","data":{"path":"/a/b"}}"#).is_err());
    let r = parse(br#"{"reqID":4,"msgType":"read"}"#);
    let Err(r) = r else { panic!("{r:?}") };
    assert_eq!(
        rejected_event(&r),
        json!({"reqID":4,"msgType":"read","data":{"reqPath":"","code":"4.00","codeMsg":"bad_request"}}),
        "no data: still a reqPath to match on"
    );
    assert!(parse(br#"{"msgType":"read","data":{}}"#).is_err());
    let c = cmd(r#"{"msgType":"write","data":{"path":"/3/0/1","type":"Integer","value":"abc"}}"#);
    assert!(build(&c, "/").is_err());
}

#[test]
fn read_response_json() {
    let db = db();
    let c = cmd(r#"{"requestID":3,"cacheID":3,"msgType":"read","data":{"path":"/3/0/0"}}"#);
    let ev = response_event(&c, &reply(code::CONTENT, Some(0), b"EMQ"), &db);
    assert_eq!(
        ev,
        json!({"requestID":3,"cacheID":3,"msgType":"read","data":{"reqPath":"/3/0/0","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/0","value":"EMQ"}]}})
    );
    // A device error passes through without content.
    let ev = response_event(&c, &reply(0x84, None, b""), &db);
    assert_eq!(
        ev["data"],
        json!({"reqPath":"/3/0/0","code":"4.04","codeMsg":"not_found"})
    );
    // Undecodable payload: 4.00 bad_request.
    let c = cmd(r#"{"msgType":"read","data":{"path":"/3/0"}}"#);
    let ev = response_event(&c, &reply(code::CONTENT, Some(11542), &[0xC8]), &db);
    assert_eq!(
        ev["data"],
        json!({"reqPath":"/3/0","code":"4.00","codeMsg":"bad_request"})
    );
    // An empty text reply for a resource is one empty value, as EMQX reports it (emqxlwm2m
    // reads `content` as a path → value map): "" for a String, 4.00 for a number; an empty
    // reply for an instance has no entries.
    for cf in [Some(0), None] {
        let c = cmd(r#"{"msgType":"read","data":{"path":"/3/0/16"}}"#);
        let ev = response_event(&c, &reply(code::CONTENT, cf, b""), &db);
        assert_eq!(
            ev["data"]["content"],
            json!([{"path":"/3/0/16","value":""}]),
            "{cf:?}"
        );
    }
    let c = cmd(r#"{"msgType":"read","data":{"path":"/3/0/9"}}"#);
    let ev = response_event(&c, &reply(code::CONTENT, Some(0), b""), &db);
    assert_eq!(ev["data"]["code"], json!("4.00"), "an empty Integer");
    let c = cmd(r#"{"msgType":"read","data":{"path":"/3/0"}}"#);
    let ev = response_event(&c, &reply(code::CONTENT, Some(11542), b""), &db);
    assert_eq!(ev["data"]["content"], json!([]));
}

#[test]
fn discover_write_execute_observe_json() {
    let db = db();
    let c = cmd(r#"{"msgType":"discover","data":{"path":"/3/0"}}"#);
    let ev = response_event(
        &c,
        &reply(
            code::CONTENT,
            Some(40),
            b"</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2,</3/0/8>",
        ),
        &db,
    );
    assert_eq!(
        ev["data"]["content"],
        json!(["</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2", "</3/0/8>"])
    );
    let c = cmd(r#"{"msgType":"write","data":{"path":"/3/0/13","type":"Integer","value":1}}"#);
    let ev = response_event(&c, &reply(code::CHANGED, None, b""), &db);
    assert_eq!(
        ev,
        json!({"msgType":"write","data":{"reqPath":"/3/0/13","code":"2.04","codeMsg":"changed"}})
    );
    let c = cmd(r#"{"msgType":"execute","data":{"path":"/3/0/4"}}"#);
    let ev = response_event(&c, &reply(0x81, None, b""), &db);
    assert_eq!(ev["data"]["codeMsg"], json!("unauthorized"));
    let c = cmd(r#"{"reqID":9,"msgType":"observe","data":{"path":"/3/0/9"}}"#);
    let mut r = reply(code::CONTENT, Some(0), b"80");
    r.set_observe_value(0);
    let ev = response_event(&c, &r, &db);
    assert_eq!(ev.get("seqNum"), None);
    assert_eq!(ev["msgType"], json!("observe"));
    assert_eq!(ev["data"]["content"], json!([{"path":"/3/0/9","value":80}]));
    r.set_observe_value(3);
    assert_eq!(response_event(&c, &r, &db)["seqNum"], json!(3));
    let n = notify_event(&c, &r, 3, &db);
    assert_eq!(
        n,
        json!({"reqID":9,"msgType":"notify","seqNum":3,"data":{"reqPath":"/3/0/9","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/9","value":80}]}})
    );
    assert_eq!(
        transport_event(
            &cmd(r#"{"requestID":206,"cacheID":206,"msgType":"read","data":{"path":"/3/0/0"}}"#),
            "ack"
        ),
        json!({"requestID":206,"cacheID":206,"msgType":"ack","data":{"path":"/3/0/0"}})
    );
}
