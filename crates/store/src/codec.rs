//! How message properties, subscription options and times are written to columns. JSON for the
//! optional MQTT 5 properties keeps the schema stable as properties grow.

use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_bus::{RetainHandling, SubOptions};
use switchyard_core::{ByteString, Bytes, Properties, QoS};

pub(crate) fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

pub(crate) fn props_to_json(p: &Properties) -> String {
    json!({
        "pfi": p.payload_format_indicator,
        "exp": p.message_expiry_interval,
        "ct": p.content_type.as_deref(),
        "rt": p.response_topic.as_deref(),
        "cd": p.correlation_data.as_ref().map(|b| b.to_vec()),
        "up": p.user_properties.iter().map(|(k, v)| [k.to_string(), v.to_string()]).collect::<Vec<_>>(),
    })
    .to_string()
}

fn str_field(v: &Value, k: &str) -> Option<ByteString> {
    v.get(k).and_then(Value::as_str).map(ByteString::from)
}

pub(crate) fn props_from_json(s: &str) -> Option<Properties> {
    let v: Value = serde_json::from_str(s).ok()?;
    let bytes = v.get("cd").and_then(Value::as_array).map(|a| {
        Bytes::from(
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| u8::try_from(x).unwrap_or(0))
                .collect::<Vec<u8>>(),
        )
    });
    let user = v
        .get("up")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|pair| {
                    let k = pair.get(0)?.as_str()?;
                    let val = pair.get(1)?.as_str()?;
                    Some((ByteString::from(k), ByteString::from(val)))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Properties {
        payload_format_indicator: v
            .get("pfi")
            .and_then(Value::as_u64)
            .and_then(|x| u8::try_from(x).ok()),
        message_expiry_interval: v
            .get("exp")
            .and_then(Value::as_u64)
            .and_then(|x| u32::try_from(x).ok()),
        content_type: str_field(&v, "ct"),
        response_topic: str_field(&v, "rt"),
        correlation_data: bytes,
        user_properties: user,
    })
}

pub(crate) fn rh_to_i64(rh: RetainHandling) -> i64 {
    match rh {
        RetainHandling::OnSubscribe => 0,
        RetainHandling::OnNewSubscribe => 1,
        RetainHandling::Never => 2,
    }
}

pub(crate) fn sub_options(
    qos: i64,
    nl: bool,
    rap: bool,
    rh: i64,
    subid: Option<i64>,
) -> SubOptions {
    SubOptions {
        qos: QoS::try_from(u8::try_from(qos).unwrap_or(0)).unwrap_or(QoS::AtMostOnce),
        no_local: nl,
        retain_as_published: rap,
        retain_handling: match rh {
            1 => RetainHandling::OnNewSubscribe,
            2 => RetainHandling::Never,
            _ => RetainHandling::OnSubscribe,
        },
        subscription_id: subid.and_then(|s| u32::try_from(s).ok()),
    }
}

pub(crate) fn ids_to_text(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

pub(crate) fn ids_from_text(s: &str) -> Vec<u32> {
    s.split(',').filter_map(|x| x.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip() {
        let p = Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(30),
            content_type: Some("text/plain".into()),
            response_topic: Some("r/t".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\xffab")),
            user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
        };
        assert_eq!(props_from_json(&props_to_json(&p)), Some(p));
        assert_eq!(ids_from_text(&ids_to_text(&[3, 9])), vec![3, 9]);
        assert!(ids_from_text("").is_empty());
    }
}
