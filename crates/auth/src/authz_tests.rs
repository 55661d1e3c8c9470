//! Authorizer: first match, placeholders, `eq`, CIDR, qos/retain conditions, superusers,
//! no_match, the cache, and the shipped `config/acl.toml`.

use super::*;
use std::time::Instant;

fn rules(text: &str) -> Vec<Rule> {
    parse_rules(text, Path::new("test.toml")).expect("rules")
}

fn authz(text: &str, no_match: Decision) -> Arc<Authorizer> {
    Arc::new(Authorizer::new(
        rules(text),
        AuthzSettings {
            no_match,
            ..AuthzSettings::default()
        },
    ))
}

fn ctx(client_id: &str, username: Option<&str>, ip: &str) -> ClientCtx {
    ClientCtx {
        client_id: client_id.into(),
        username: username.map(Into::into),
        peer_ip: Some(ip.parse().expect("ip")),
        superuser: false,
    }
}

fn publish(topic: &str) -> Action<'_> {
    Action::Publish {
        topic,
        qos: QoS::AtMostOnce,
        retain: false,
    }
}

fn subscribe(filter: &str) -> Action<'_> {
    Action::Subscribe {
        filter,
        qos: QoS::AtMostOnce,
    }
}

use Decision::{Allow, Deny};

#[test]
fn first_match_wins_and_no_match_applies() {
    let a = authz(
        r##"
        [[rule]]
        permission = "deny"
        action = "publish"
        topics = ["a/secret"]
        [[rule]]
        permission = "allow"
        action = "all"
        topics = ["a/#"]
        "##,
        Deny,
    );
    let c = ctx("c1", None, "10.0.0.1");
    assert_eq!(a.check(&c, &publish("a/secret")), Deny);
    assert_eq!(
        a.check(&c, &subscribe("a/secret")),
        Allow,
        "deny rule is publish only"
    );
    assert_eq!(a.check(&c, &publish("a/other")), Allow);
    assert_eq!(a.check(&c, &publish("b")), Deny, "no_match = deny");
    let open = authz("", Allow);
    assert_eq!(
        open.check(&c, &publish("b")),
        Allow,
        "no rules, no_match = allow"
    );
}

#[test]
fn superuser_bypasses() {
    let a = authz(
        r##"
        [[rule]]
        permission = "deny"
        action = "all"
        topics = ["#"]
        "##,
        Deny,
    );
    let mut c = ctx("c1", None, "10.0.0.1");
    assert_eq!(a.check(&c, &publish("x")), Deny);
    c.superuser = true;
    assert_eq!(a.check(&c, &publish("x")), Allow);
    assert_eq!(a.client(c).check(&subscribe("#"), Instant::now()), Allow);
}

#[test]
fn placeholders_render_and_refuse_injection() {
    let a = authz(
        r##"
        [[rule]]
        permission = "allow"
        action = "all"
        topics = ["users/${username}/#", "devices/${clientid}/+"]
        "##,
        Deny,
    );
    let c = ctx("dev1", Some("alice"), "10.0.0.1");
    assert_eq!(a.check(&c, &publish("users/alice/x")), Allow);
    assert_eq!(a.check(&c, &subscribe("users/alice/#")), Allow);
    assert_eq!(a.check(&c, &publish("users/bob/x")), Deny);
    assert_eq!(a.check(&c, &publish("devices/dev1/t")), Allow);
    assert_eq!(a.check(&c, &publish("devices/dev2/t")), Deny);
    // No username: the username rule never matches.
    let anon = ctx("dev1", None, "10.0.0.1");
    assert_eq!(a.check(&anon, &publish("users/${username}/x")), Deny);
    // A client id with wildcards cannot widen the rule.
    let evil = ctx("#", None, "10.0.0.1");
    assert_eq!(a.check(&evil, &publish("devices/x/y")), Deny);
    let evil = ctx("+", Some("+"), "10.0.0.1");
    assert_eq!(a.check(&evil, &subscribe("users/+/#")), Deny);
}

#[test]
fn eq_is_literal_and_subscribe_needs_coverage() {
    let a = authz(
        r##"
        [[rule]]
        permission = "deny"
        action = "subscribe"
        topics = ["$SYS/#", "eq #"]
        [[rule]]
        permission = "allow"
        action = "all"
        topics = ["#"]
        [[rule]]
        permission = "allow"
        action = "subscribe"
        topics = ["eq a/+"]
        "##,
        Deny,
    );
    let c = ctx("c1", None, "10.0.0.1");
    assert_eq!(a.check(&c, &subscribe("#")), Deny);
    assert_eq!(
        a.check(&c, &subscribe("a/#")),
        Allow,
        "eq # is only the literal #"
    );
    assert_eq!(a.check(&c, &subscribe("$SYS/brokers")), Deny);
    assert_eq!(
        a.check(&c, &subscribe("$share/g/#")),
        Deny,
        "shared: inner filter"
    );
    assert_eq!(a.check(&c, &publish("#/x")), Allow);
    // "#" does not cover $-topics: no_match = deny here.
    assert_eq!(a.check(&c, &publish("$SYS/x")), Deny);

    let b = authz(
        r##"
        [[rule]]
        permission = "allow"
        action = "subscribe"
        topics = ["a/#", "eq x/+"]
        "##,
        Deny,
    );
    assert_eq!(b.check(&c, &subscribe("a/+/b")), Allow);
    assert_eq!(b.check(&c, &subscribe("#")), Deny);
    assert_eq!(b.check(&c, &subscribe("x/+")), Allow);
    assert_eq!(
        b.check(&c, &subscribe("x/y")),
        Deny,
        "eq matches literally, not as a filter"
    );
}

#[test]
fn who_username_clientid_cidr() {
    let a = authz(
        r##"
        [[rule]]
        permission = "allow"
        username = "alice"
        action = "publish"
        topics = ["u"]
        [[rule]]
        permission = "allow"
        clientid = "c9"
        action = "publish"
        topics = ["c"]
        [[rule]]
        permission = "allow"
        ipaddr = "192.168.0.0/16"
        action = "publish"
        topics = ["ip"]
        [[rule]]
        permission = "allow"
        ipaddr = "::1"
        action = "publish"
        topics = ["ip6"]
        "##,
        Deny,
    );
    let alice = ctx("c1", Some("alice"), "10.0.0.1");
    let c9 = ctx("c9", Some("bob"), "192.168.3.4");
    assert_eq!(a.check(&alice, &publish("u")), Allow);
    assert_eq!(a.check(&c9, &publish("u")), Deny);
    assert_eq!(a.check(&c9, &publish("c")), Allow);
    assert_eq!(a.check(&alice, &publish("c")), Deny);
    assert_eq!(a.check(&c9, &publish("ip")), Allow);
    assert_eq!(a.check(&alice, &publish("ip")), Deny);
    assert_eq!(a.check(&ctx("x", None, "::1"), &publish("ip6")), Allow);
    let mut no_ip = alice.clone();
    no_ip.peer_ip = None;
    assert_eq!(a.check(&no_ip, &publish("ip")), Deny);
}

#[test]
fn qos_and_retain_conditions() {
    let a = authz(
        r##"
        [[rule]]
        permission = "deny"
        action = "publish"
        topics = ["t"]
        retain = true
        [[rule]]
        permission = "deny"
        action = "all"
        topics = ["t"]
        qos = [2]
        [[rule]]
        permission = "allow"
        action = "all"
        topics = ["#"]
        "##,
        Deny,
    );
    let c = ctx("c1", None, "10.0.0.1");
    let pubq = |qos, retain| Action::Publish {
        topic: "t",
        qos,
        retain,
    };
    assert_eq!(a.check(&c, &pubq(QoS::AtMostOnce, true)), Deny);
    assert_eq!(a.check(&c, &pubq(QoS::AtMostOnce, false)), Allow);
    assert_eq!(a.check(&c, &pubq(QoS::ExactlyOnce, false)), Deny);
    let sub = |qos| Action::Subscribe { filter: "t", qos };
    assert_eq!(a.check(&c, &sub(QoS::ExactlyOnce)), Deny);
    assert_eq!(a.check(&c, &sub(QoS::AtLeastOnce)), Allow);
}

#[test]
fn a_will_is_checked_as_a_publish_when_it_is_published_and_a_denial_counted() {
    let a = authz(
        r##"
        [[rule]]
        permission = "deny"
        action = "publish"
        topics = ["will/retained"]
        retain = true
        [[rule]]
        permission = "allow"
        action = "all"
        topics = ["will/#"]
        "##,
        Deny,
    );
    let mut acl = a.client(ctx("c1", None, "10.0.0.1"));
    let will = |topic: &str, retain| {
        let topic = switchyard_core::TopicName::new(topic).expect("topic");
        switchyard_core::Message::new(topic, "gone", QoS::AtLeastOnce, retain)
    };
    let denials = AtomicU64::new(0);
    let now = Instant::now();
    assert!(acl.will_allowed(&will("will/c1", false), now, &denials));
    assert!(acl.will_allowed(&will("will/retained", false), now, &denials));
    assert!(!acl.will_allowed(&will("will/retained", true), now, &denials));
    assert!(!acl.will_allowed(&will("other", false), now, &denials));
    assert_eq!(denials.load(Ordering::Relaxed), 2);
}

#[test]
fn invalid_rules_are_errors() {
    let bad = [
        (
            r##"[[rule]]
permission = "allow"
action = "all"
topics = []"##,
            "topics",
        ),
        (
            r##"[[rule]]
permission = "allow"
action = "all"
topics = ["a"]
username = "u"
clientid = "c""##,
            "at most one",
        ),
        (
            r##"[[rule]]
permission = "allow"
action = "all"
topics = ["a"]
ipaddr = "10.0.0.0/99""##,
            "ipaddr",
        ),
        (
            r##"[[rule]]
permission = "allow"
action = "all"
topics = ["a"]
qos = [3]"##,
            "qos 3",
        ),
        (
            r##"[[rule]]
permission = "maybe"
action = "all"
topics = ["a"]"##,
            "maybe",
        ),
        (
            r##"[[rule]]
permission = "allow"
action = "all"
topic = ["a"]"##,
            "topic",
        ),
        (
            r##"[[rule]]
permission = "allow"
action = "all"
topics = ["eq "]"##,
            "eq",
        ),
    ];
    for (text, needle) in bad {
        let e = parse_rules(text, Path::new("acl.toml")).expect_err("must fail");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    }
}

#[test]
fn missing_file_means_no_rules() {
    let a = Authorizer::load(
        Some(Path::new("/nonexistent/switchyard/acl.toml")),
        AuthzSettings::default(),
    )
    .expect("load");
    assert_eq!(a.rule_count(), 0);
    assert_eq!(a.check(&ctx("c", None, "1.2.3.4"), &publish("x")), Allow);
}

#[test]
fn shipped_acl_file_parses_and_means_what_emqx_means() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/acl.toml");
    let a = Arc::new(Authorizer::load(Some(&path), AuthzSettings::default()).expect("load"));
    assert_eq!(a.rule_count(), 3);
    let local = ctx("c", None, "127.0.0.1");
    let remote = ctx("c", None, "10.1.2.3");
    assert_eq!(a.check(&local, &subscribe("$SYS/#")), Allow);
    assert_eq!(a.check(&local, &subscribe("#")), Allow);
    assert_eq!(a.check(&remote, &subscribe("$SYS/brokers/x")), Deny);
    assert_eq!(a.check(&remote, &subscribe("#")), Deny);
    assert_eq!(a.check(&remote, &subscribe("a/#")), Allow);
    assert_eq!(a.check(&remote, &publish("a/b")), Allow);
}

#[test]
fn cache_serves_until_ttl_and_is_bounded() {
    let a = Arc::new(Authorizer::new(
        rules(
            r##"
            [[rule]]
            permission = "deny"
            action = "publish"
            topics = ["d"]
            "##,
        ),
        AuthzSettings {
            no_match: Allow,
            deny_action: DenyAction::Ignore,
            cache: AclCacheSettings {
                enable: true,
                max_size: 2,
                ttl: Duration::from_secs(10),
            },
        },
    ));
    let t0 = Instant::now();
    let mut acl = a.client(ctx("c", None, "10.0.0.1"));
    assert_eq!(acl.check(&publish("d"), t0), Deny);
    // A rule change drops the cache at once.
    a.set_rules(Vec::new());
    assert_eq!(acl.check(&publish("d"), t0), Allow);
    a.set_rules(rules(
        r##"
        [[rule]]
        permission = "deny"
        action = "publish"
        topics = ["x"]
        "##,
    ));
    assert_eq!(acl.check(&publish("x"), t0), Deny);
    assert_eq!(acl.check(&publish("y"), t0), Allow);
    assert_eq!(acl.check(&publish("z"), t0), Allow);
    assert_eq!(acl.cached(), 2, "bounded by max_size");

    // Within the ttl a cached decision stands even if evaluation would now differ: prove it by
    // swapping the authorizer's rules without bumping (same generation) through a fresh client
    // whose cache is pre-filled.
    let b = Arc::new(Authorizer::new(Vec::new(), a.settings().clone()));
    let mut acl = b.client(ctx("c", None, "10.0.0.1"));
    assert_eq!(acl.check(&publish("t"), t0), Allow);
    let file = b.sources.read()[0].clone();
    if let crate::authz_sources::Body::File(r) = &file.body {
        *r.write() = Arc::new(rules(
            r##"
        [[rule]]
        permission = "deny"
        action = "all"
        topics = ["t"]
        "##,
        ));
    }
    assert_eq!(
        acl.check(&publish("t"), t0 + Duration::from_secs(5)),
        Allow,
        "cached"
    );
    assert_eq!(
        acl.check(&publish("t"), t0 + Duration::from_secs(10)),
        Deny,
        "expired"
    );
}
