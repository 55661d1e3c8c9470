//! Channel security without sockets: CONNACK codes for refused credentials, the ACL on
//! PUBLISH, SUBSCRIBE and the will, `deny_action = "disconnect"`, and the publish rate.

use super::*;
use crate::codec::{Connect, LastWill, Publish, Subscribe, SubscriptionOptions};
use std::num::NonZeroU16;
use switchyard_auth::{
    parse_rules, Authenticator, AuthnSettings, Authorizer, AuthzSettings, Decision, DenyAction,
    HashAlgorithm, Security,
};
use switchyard_bus::{BusConfig, Metrics};
use switchyard_core::QoS;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn pkid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

fn bus() -> BusHandle {
    BusHandle::new(BusConfig {
        sys_client_connected: false,
        sys_client_disconnected: false,
        ..Default::default()
    })
}

const RULES: &str = r##"
[[rule]]
permission = "allow"
action = "all"
topics = ["own/${clientid}/#", "users/${username}"]
[[rule]]
permission = "deny"
action = "all"
topics = ["#"]
"##;

fn settings(allow_anonymous: bool, deny_action: DenyAction, rate: u32) -> Arc<MqttSettings> {
    let authn = Authenticator::in_memory(AuthnSettings {
        allow_anonymous,
        algorithm: HashAlgorithm::Pbkdf2Sha256,
        ..AuthnSettings::default()
    });
    authn.add_user("alice", "pw", false).expect("add");
    authn.add_user("root", "rootpw", true).expect("add");
    let rules = parse_rules(RULES, std::path::Path::new("t.toml")).expect("rules");
    let authz = Authorizer::new(
        rules,
        AuthzSettings {
            no_match: Decision::Deny,
            deny_action,
            ..AuthzSettings::default()
        },
    );
    Arc::new(MqttSettings {
        security: Security {
            authn: Arc::new(authn),
            authz: Arc::new(authz),
            ..Security::default()
        },
        max_publish_rate: rate,
        ..MqttSettings::default()
    })
}

struct Client {
    ch: Channel,
}

async fn connect(
    bus: &BusHandle,
    s: &Arc<MqttSettings>,
    v: ProtocolVersion,
    id: &str,
    user: Option<(&str, &str)>,
) -> (Client, u8) {
    let mut ch = Channel::new(
        bus.clone(),
        s.clone(),
        "10.0.0.9:1".parse().expect("addr"),
        now(),
    );
    let mut c = Connect::new(v, id);
    if let Some((u, p)) = user {
        c.username = Some(u.into());
        c.password = Some(bytes::Bytes::copy_from_slice(p.as_bytes()));
    }
    c.will = Some(LastWill {
        topic: format!("own/{id}/will").into(),
        payload: "gone".into(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    if let ConnectDecision::Open(req) = ch.handle_connect(c, now()) {
        let opened = bus.open_session(req).await.expect("open");
        ch.on_session_opened(opened, now());
    }
    let code = match ch.take_outbound().as_slice() {
        [Packet::ConnAck(a)] => a.code,
        other => panic!("{other:?}"),
    };
    (Client { ch }, code)
}

#[tokio::test(start_paused = true)]
async fn connack_codes_for_refused_credentials() {
    let bus = bus();
    let closed = settings(false, DenyAction::Ignore, 0);
    let cases = [
        (ProtocolVersion::V311, None, 0x05),
        (ProtocolVersion::V311, Some(("alice", "bad")), 0x04),
        (ProtocolVersion::V311, Some(("nobody", "x")), 0x04),
        (ProtocolVersion::V311, Some(("alice", "pw")), 0x00),
        (ProtocolVersion::V5, None, 0x87),
        (ProtocolVersion::V5, Some(("alice", "bad")), 0x86),
        (ProtocolVersion::V5, Some(("alice", "pw")), 0x00),
    ];
    let before = Metrics::get(&bus.metrics().auth_failures);
    for (i, (v, user, want)) in cases.into_iter().enumerate() {
        let (c, code) = connect(&bus, &closed, v, &format!("c{i}"), user).await;
        assert_eq!(code, want, "{v:?} {user:?}");
        if want != 0 {
            assert_eq!(c.ch.close_reason(), Some(&CloseReason::NotAuthorized));
        }
    }
    assert_eq!(Metrics::get(&bus.metrics().auth_failures) - before, 5);
    // Anonymous allowed: still a wrong password for a known user is refused.
    let open = settings(true, DenyAction::Ignore, 0);
    let (_, code) = connect(&bus, &open, ProtocolVersion::V311, "a1", None).await;
    assert_eq!(code, 0);
    let (_, code) = connect(
        &bus,
        &open,
        ProtocolVersion::V311,
        "a2",
        Some(("alice", "x")),
    )
    .await;
    assert_eq!(code, 0x04);
    // A listener with enable_authn = false lets anyone in.
    let mut off = (*closed).clone();
    off.enable_authn = false;
    let (_, code) = connect(&bus, &Arc::new(off), ProtocolVersion::V5, "a3", None).await;
    assert_eq!(code, 0);
}

fn publish(c: &mut Client, topic: &str, qos: QoS) -> Vec<Packet> {
    let mut p = Publish::new(topic, "x");
    p.qos = qos;
    p.pkid = (qos != QoS::AtMostOnce).then(|| pkid(7));
    c.ch.handle_packet(Packet::Publish(p), now());
    c.ch.take_outbound()
}

fn subscribe(c: &mut Client, filter: &str) -> Vec<u8> {
    c.ch.handle_packet(
        Packet::Subscribe(Subscribe::new(
            pkid(1),
            vec![(filter.into(), SubscriptionOptions::new(QoS::AtLeastOnce))],
        )),
        now(),
    );
    match c.ch.take_outbound().as_slice() {
        [Packet::SubAck(a)] => a.return_codes.clone(),
        other => panic!("{other:?}"),
    }
}

fn puback_code(out: &[Packet]) -> u8 {
    match out {
        [Packet::PubAck(a) | Packet::PubRec(a)] => a.reason_code,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn acl_on_publish_and_subscribe_with_placeholders() {
    let bus = bus();
    let s = settings(true, DenyAction::Ignore, 0);
    let (mut v5c, _) = connect(&bus, &s, ProtocolVersion::V5, "d5", Some(("alice", "pw"))).await;
    let (mut v3c, _) = connect(&bus, &s, ProtocolVersion::V311, "d3", None).await;
    let (mut root, _) = connect(&bus, &s, ProtocolVersion::V5, "r", Some(("root", "rootpw"))).await;
    let denied_before = Metrics::get(&bus.metrics().authz_denials);
    assert_eq!(subscribe(&mut root, "#"), vec![1], "superuser bypasses");
    assert_eq!(subscribe(&mut v5c, "own/d5/#"), vec![1]);
    assert_eq!(subscribe(&mut v5c, "users/alice"), vec![1]);
    assert_eq!(subscribe(&mut v5c, "own/d3/#"), vec![0x87]);
    assert_eq!(subscribe(&mut v3c, "own/d5/#"), vec![0x80]);
    assert_eq!(
        subscribe(&mut v3c, "users/alice"),
        vec![0x80],
        "anonymous: no username"
    );

    // Allowed: routed (root and d5 subscribe), PUBACK success.
    assert_eq!(
        puback_code(&publish(&mut v5c, "own/d5/t", QoS::AtLeastOnce)),
        0
    );
    // Denied: v5 gets 0x87, v3 a plain ack; nothing is routed.
    assert_eq!(
        puback_code(&publish(&mut v5c, "own/d3/t", QoS::AtLeastOnce)),
        0x87
    );
    assert_eq!(
        puback_code(&publish(&mut v5c, "own/d3/t", QoS::ExactlyOnce)),
        0x87
    );
    assert_eq!(
        puback_code(&publish(&mut v3c, "own/d5/t", QoS::AtLeastOnce)),
        0
    );
    assert!(publish(&mut v3c, "own/d5/t", QoS::AtMostOnce).is_empty());
    root.ch.pull_deliveries(now());
    let topics: Vec<String> = root
        .ch
        .take_outbound()
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p.topic.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(topics, vec!["own/d5/t".to_string()]);
    assert!(v5c.ch.close_reason().is_none() && v3c.ch.close_reason().is_none());
    // Three denied subscribes and four denied publishes, each counted.
    assert_eq!(
        Metrics::get(&bus.metrics().authz_denials) - denied_before,
        7
    );
}

#[tokio::test(start_paused = true)]
async fn deny_action_disconnect_closes() {
    let bus = bus();
    let s = settings(true, DenyAction::Disconnect, 0);
    let (mut c, _) = connect(&bus, &s, ProtocolVersion::V5, "x5", None).await;
    let out = publish(&mut c, "elsewhere", QoS::AtLeastOnce);
    assert!(
        matches!(out.as_slice(), [Packet::Disconnect(d)] if d.reason_code == 0x87),
        "{out:?}"
    );
    assert_eq!(c.ch.close_reason(), Some(&CloseReason::NotAuthorized));
    let (mut c, _) = connect(&bus, &s, ProtocolVersion::V311, "x3", None).await;
    c.ch.handle_packet(
        Packet::Subscribe(Subscribe::new(
            pkid(1),
            vec![(
                "elsewhere".into(),
                SubscriptionOptions::new(QoS::AtMostOnce),
            )],
        )),
        now(),
    );
    assert!(c.ch.take_outbound().is_empty(), "v3: no SUBACK, just close");
    assert_eq!(c.ch.close_reason(), Some(&CloseReason::NotAuthorized));
}

#[tokio::test(start_paused = true)]
async fn will_is_authorized_when_published() {
    let bus = bus();
    let s = settings(true, DenyAction::Ignore, 0);
    let (mut root, _) = connect(&bus, &s, ProtocolVersion::V5, "r", Some(("root", "rootpw"))).await;
    subscribe(&mut root, "#");
    // The will topic own/<id>/will is allowed for its owner.
    let (mut ok, _) = connect(&bus, &s, ProtocolVersion::V311, "w1", None).await;
    ok.ch.finish();
    // The rules change before the second client dies: its will is now denied and dropped.
    let (mut denied, _) = connect(&bus, &s, ProtocolVersion::V311, "w2", None).await;
    s.security.authz.set_rules(Vec::new());
    denied.ch.finish();
    root.ch.pull_deliveries(now());
    let topics: Vec<String> = root
        .ch
        .take_outbound()
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p.topic.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(topics, vec!["own/w1/will".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn publish_rate_limit_disconnects_with_0x96() {
    let bus = bus();
    let s = settings(true, DenyAction::Ignore, 5);
    let (mut c, _) = connect(&bus, &s, ProtocolVersion::V5, "fast", None).await;
    for _ in 0..5 {
        publish(&mut c, "own/fast/t", QoS::AtMostOnce);
    }
    assert!(c.ch.close_reason().is_none(), "the burst is allowed");
    tokio::time::advance(std::time::Duration::from_millis(200)).await;
    publish(&mut c, "own/fast/t", QoS::AtMostOnce);
    assert!(
        c.ch.close_reason().is_none(),
        "one token refilled after 200 ms"
    );
    let out = publish(&mut c, "own/fast/t", QoS::AtMostOnce);
    assert!(
        matches!(out.as_slice(), [Packet::Disconnect(d)] if d.reason_code == 0x96),
        "{out:?}"
    );
    assert!(c.ch.close_reason().is_some());
}
