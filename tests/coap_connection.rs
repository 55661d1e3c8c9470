//! CoAP `/mqtt/connection` tokens end to end with libcoap's `coap-client` (Debian libcoap3-bin,
//! `coap-client-notls`) against the real binary: a second create for a client id (a rebooted
//! device) takes over with a new token and the old one is refused with 4.00 "Missing token or
//! clientid in connection mode" (docs/coap.md §3.5); a create without `clientid` is refused the
//! same way, in connection mode and in the default connectionless mode alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::mqtt::Client;
use common::{require_program, run_with_timeout, Broker};
use rumqttc::QoS;

/// EMQX's diagnostic for every connection-mode identity failure (docs/coap.md §3.5).
const MISSING: &str = "Missing token or clientid in connection mode";

fn coap_client() -> Option<&'static str> {
    ["coap-client-notls", "coap-client"]
        .into_iter()
        .find(|p| common::have_program(p))
        .or_else(|| {
            require_program("coap-client-notls");
            None
        })
}

/// The code and payload of the response to one request, from `coap-client -v 6`'s log line
/// `v:1 t:ACK c:4.00 i:… {…} [ … ] :: '<payload>'`.
fn exchange(prog: &str, args: &[&str], addr: SocketAddr, path_query: &str) -> (String, String) {
    let mut cmd = Command::new(prog);
    cmd.args(["-v", "6"])
        .args(args)
        .arg(format!("coap://{addr}{path_query}"));
    let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(20));
    assert!(
        status.is_some(),
        "coap-client timed out: {args:?}\n{out}\n{err}"
    );
    let all = format!("{out}\n{err}");
    // The last response logged (requests show a method name, empty ACKs 0.00, not a code).
    all.lines()
        .filter_map(|l| l.find("v:1 t:").map(|i| &l[i..]))
        .filter_map(|l| {
            let code = l.split(" c:").nth(1)?.split_whitespace().next()?;
            if !code.contains('.') || code == "0.00" {
                return None;
            }
            let payload = l
                .split(":: '")
                .nth(1)
                .map(|s| s.trim_end().trim_end_matches('\'').to_owned())
                .unwrap_or_default();
            Some((code.to_owned(), payload))
        })
        .next_back()
        .unwrap_or_else(|| panic!("no response to {path_query}:\n{all}"))
}

fn create(prog: &str, addr: SocketAddr, client_id: &str) -> String {
    let (code, token) = exchange(
        prog,
        &["-m", "post"],
        addr,
        &format!("/mqtt/connection?clientid={client_id}"),
    );
    assert_eq!(code, "2.01", "create {client_id}: {token}");
    assert!(
        !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()),
        "token {token:?}"
    );
    token
}

fn publish(prog: &str, addr: SocketAddr, query: &str, body: &str) -> (String, String) {
    exchange(
        prog,
        &["-m", "post", "-e", body],
        addr,
        &format!("/ps/takeover/t?{query}"),
    )
}

/// Re-create, then the old token is refused (and publishes nothing), the new one accepted.
async fn takeover_refuses_the_old_token(extra: &str) {
    let Some(prog) = coap_client() else { return };
    let broker = Broker::start_with(extra);
    let addr = broker.listener("coap:udp:default");
    let mut sub = Client::connect(broker.mqtt_addr(), "takeover-sub").await;
    sub.subscribe("takeover/t", QoS::AtLeastOnce).await;
    let old = create(prog, addr, "dev-x");
    assert_eq!(
        publish(prog, addr, &format!("clientid=dev-x&token={old}"), "first"),
        ("2.04".to_owned(), String::new())
    );
    assert_eq!(
        &sub.expect_publish("the first publish").await.payload[..],
        b"first"
    );
    let new = create(prog, addr, "dev-x");
    assert_ne!(old, new, "a takeover hands out a new token");
    let stale = format!("clientid=dev-x&token={old}");
    assert_eq!(
        publish(prog, addr, &stale, "with-old-token"),
        ("4.00".to_owned(), MISSING.to_owned()),
        "publish with the token from before the takeover"
    );
    // The heartbeat and the close with the old token are refused as well.
    assert_eq!(
        exchange(
            prog,
            &["-m", "put"],
            addr,
            &format!("/mqtt/connection?{stale}")
        ),
        ("4.00".to_owned(), MISSING.to_owned())
    );
    assert_eq!(
        exchange(
            prog,
            &["-m", "delete"],
            addr,
            &format!("/mqtt/connection?{stale}")
        ),
        ("4.00".to_owned(), MISSING.to_owned())
    );
    let fresh = format!("clientid=dev-x&token={new}");
    assert_eq!(
        publish(prog, addr, &fresh, "with-new-token"),
        ("2.04".to_owned(), String::new())
    );
    // The refused publish never reached the bus: the next message is the accepted one.
    let p = sub.expect_publish("the publish with the new token").await;
    assert_eq!(&p.payload[..], b"with-new-token");
    assert_eq!(
        exchange(
            prog,
            &["-m", "delete"],
            addr,
            &format!("/mqtt/connection?{fresh}")
        ),
        ("2.02".to_owned(), String::new())
    );
}

/// `POST /mqtt/connection` without `clientid` (or with an empty one) is 4.00, as EMQX answers.
fn create_without_clientid_is_refused(extra: &str) {
    let Some(prog) = coap_client() else { return };
    let broker = Broker::start_with(extra);
    let addr = broker.listener("coap:udp:default");
    for path in [
        "/mqtt/connection",
        "/mqtt/connection?clientid=",
        "/mqtt/connection?username=u&password=p",
    ] {
        assert_eq!(
            exchange(prog, &["-m", "post"], addr, path),
            ("4.00".to_owned(), MISSING.to_owned()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn connectionless_takeover_refuses_the_old_token() {
    takeover_refuses_the_old_token("[gateway.coap]\nack_timeout = \"100ms\"\n").await;
}

#[tokio::test]
async fn connection_mode_takeover_refuses_the_old_token() {
    takeover_refuses_the_old_token(
        "[gateway.coap]\nack_timeout = \"100ms\"\nconnection_required = true\n",
    )
    .await;
}

#[test]
fn connectionless_create_without_clientid_is_refused() {
    create_without_clientid_is_refused("[gateway.coap]\nack_timeout = \"100ms\"\n");
}

#[test]
fn connection_mode_create_without_clientid_is_refused() {
    create_without_clientid_is_refused(
        "[gateway.coap]\nack_timeout = \"100ms\"\nconnection_required = true\n",
    );
}
