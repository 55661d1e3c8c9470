//! The gateway table against the rest of the binary: the config has exactly the table's
//! protocols and listeners with the descriptors' default addresses, validation checks every
//! table entry's binds, the admin API is handed the whole table, and the runner starts, stops
//! and restarts every entry's listeners, stream and datagram alike.

use super::*;
use std::collections::HashSet;
use switchyard_net::ListenerKind;

fn config_for(toml: &str) -> Config {
    switchyard_config::from_toml_str(toml).unwrap_or_else(|e| panic!("{toml}: {e}"))
}

#[test]
fn names_namespaces_and_listener_ids_are_unique() {
    let mut names = HashSet::new();
    let mut namespaces = HashSet::new();
    let mut ids = HashSet::new();
    for d in descriptors() {
        assert!(names.insert(d.name), "name {} twice", d.name);
        assert!(
            namespaces.insert(d.namespace),
            "namespace {} twice",
            d.namespace
        );
        assert!(!d.listeners.is_empty(), "{} has no listener", d.name);
        for l in d.listeners {
            assert!(ids.insert(d.listener_id(l)), "{}", d.listener_id(l));
        }
    }
}

/// The config's protocol sections are the table, in its order, with the same listener kinds
/// and the descriptors' default addresses; WebSocket and TLS keys sit where the kinds need
/// them.
#[test]
fn the_config_has_exactly_the_tables_protocols_and_listeners() {
    let config = Config::default();
    let sections: Vec<&str> = config.protocols().iter().map(|p| p.name).collect();
    let table: Vec<&str> = descriptors().iter().map(|d| d.name).collect();
    assert_eq!(sections, table);
    for d in descriptors() {
        let section = config.protocol(d.name).expect("section");
        let kinds: Vec<&str> = section.listeners.iter().map(|l| l.kind).collect();
        let expected: Vec<&str> = d.listeners.iter().map(|l| l.kind.as_str()).collect();
        assert_eq!(kinds, expected, "{}", d.name);
        for spec in d.listeners {
            let view = section.listener(spec.kind.as_str()).expect("listener");
            assert_eq!(view.bind, spec.default_bind, "{}", view.key);
            assert_eq!(
                view.ws_path.is_some(),
                spec.kind.is_websocket(),
                "{}",
                view.key
            );
            assert_eq!(view.tls.is_some(), spec.kind.is_tls(), "{}", view.key);
            assert_eq!(ListenerKind::parse(view.kind), Some(spec.kind));
        }
    }
}

/// For every listener of every table entry: an address that does not parse is refused naming
/// the listener's key, and so is an address another enabled listener of the same transport
/// already has.
#[test]
fn config_validation_rejects_a_bad_bind_for_every_table_entry() {
    let config = Config::default();
    for d in descriptors() {
        let section = config.protocol(d.name).expect("section");
        for spec in d.listeners {
            let view = section.listener(spec.kind.as_str()).expect("listener");
            let key = &view.key;
            let toml = format!("[{key}]\nbind = \"no-such-address\"\n");
            let err = switchyard_config::from_toml_str(&toml).expect_err(&toml);
            assert!(
                err.issues()
                    .iter()
                    .any(|i| i.key.starts_with(&format!("{key}.bind"))),
                "{toml}: {err}"
            );
            // Another listener of the same port space that is enabled by default.
            let other = config
                .protocols()
                .into_iter()
                .filter(|p| p.enable)
                .flat_map(|p| p.listeners)
                .find(|o| {
                    let stream = ListenerKind::parse(o.kind).is_some_and(|k| k.is_stream());
                    o.enable && o.key != *key && stream == spec.kind.is_stream()
                })
                .expect("another listener on the same transport");
            let mut toml = format!("[{key}]\nbind = \"{}\"\n", other.bind);
            if spec.kind.is_tls() {
                toml.push_str("enable = true\ncertfile = \"c.pem\"\nkeyfile = \"k.pem\"\n");
            }
            if spec.kind == ListenerKind::Dtls {
                toml.push_str("enable = true\n[psk_authentication]\nenable = true\n");
            }
            if section.key.starts_with("gateway.") {
                toml.push_str(&format!("[{}]\nenable = true\n", section.key));
            }
            let err = switchyard_config::from_toml_str(&toml).expect_err(&toml);
            let bind = format!("{key}.bind");
            assert!(
                err.issues().iter().any(|i| i.to_string().contains(&bind)),
                "{toml}: {err}"
            );
        }
    }
}

#[test]
fn the_admin_api_is_handed_the_whole_table() {
    let handed = descriptors();
    assert_eq!(handed.len(), GATEWAYS.len());
    for (d, e) in handed.iter().zip(GATEWAYS) {
        assert!(std::ptr::eq(*d, e.descriptor));
    }
}

/// Every listener of every entry on an ephemeral loopback port, TLS ones off.
fn loopback_config() -> Config {
    let mut toml = String::new();
    for p in Config::default().protocols() {
        for l in p.listeners {
            toml.push_str(&format!("[{}]\nbind = \"127.0.0.1:0\"\n", l.key));
        }
    }
    config_for(&toml)
}

/// The runner starts every entry's enabled listeners (stream and datagram alike) under the
/// descriptor's ids, stops them, and binds the same addresses again on a restart.
#[tokio::test]
async fn the_runner_starts_stops_and_restarts_every_entry() {
    let config = Arc::new(loopback_config());
    let bus = BusHandle::new(switchyard_bus::BusConfig::default());
    let root = CancellationToken::new();
    let tracker = TaskTracker::new();
    let runner = GatewayRunner::new(
        config.clone(),
        bus,
        Security::default(),
        None,
        root.clone(),
        tracker.clone(),
    );
    for d in descriptors() {
        let section = config.protocol(d.name).expect("section");
        let expected: Vec<String> = d
            .listeners
            .iter()
            .filter(|l| section.listener(l.kind.as_str()).is_some_and(|v| v.enable))
            .map(|l| d.listener_id(l))
            .collect();
        let first = runner.start(d.name).await.expect("start");
        let ids: Vec<&String> = first.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, expected.iter().collect::<Vec<_>>(), "{}", d.name);
        assert!(first.iter().all(|(_, a)| a.port() != 0));
        assert!(
            runner.start(d.name).await.expect("again").is_empty(),
            "no-op while running"
        );
        assert!(switchyard_admin::GatewayControl::is_running(
            &runner, d.name
        ));
        assert!(runner.stop(d.name).await, "{} was running", d.name);
        assert!(!runner.stop(d.name).await);
        let again = runner.start(d.name).await.expect("restart");
        assert_eq!(
            again, first,
            "{}: the same addresses after a restart",
            d.name
        );
    }
    assert!(runner.start("nope").await.is_err());
    root.cancel();
    tracker.close();
    tokio::time::timeout(std::time::Duration::from_secs(10), tracker.wait())
        .await
        .expect("every gateway task ends on shutdown");
}
