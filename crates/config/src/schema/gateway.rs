//! `[gateway.*]`: the UDP protocol gateways (MQTT-SN, CoAP, LwM2M). Each has one UDP listener
//! named `default`; other transports (e.g. `listeners.dtls`) are rejected as unknown keys
//! until they exist.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::listeners::{any_v4, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONN_RATE};
use crate::units;

/// `[gateway]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// `[gateway.mqttsn]`: MQTT-SN 1.2 over UDP.
    pub mqttsn: MqttSnGatewayConfig,
    /// `[gateway.coap]`: CoAP (RFC 7252) over UDP.
    pub coap: CoapGatewayConfig,
    /// `[gateway.lwm2m]`: LwM2M over CoAP over UDP.
    pub lwm2m: Lwm2mGatewayConfig,
}

/// `[gateway.mqttsn]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSnGatewayConfig {
    /// Whether to run the gateway. Default true.
    pub enable: bool,
    /// `[gateway.mqttsn.listeners.*]`; the UDP listener defaults to 0.0.0.0:1884.
    pub listeners: UdpGatewayListenersConfig,
}

impl Default for MqttSnGatewayConfig {
    fn default() -> Self {
        MqttSnGatewayConfig {
            enable: true,
            listeners: UdpGatewayListenersConfig::on_port(1884),
        }
    }
}

/// `[gateway.coap]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoapGatewayConfig {
    /// Whether to run the gateway. Default true.
    pub enable: bool,
    /// `[gateway.coap.listeners.*]`; the UDP listener defaults to 0.0.0.0:5683.
    pub listeners: UdpGatewayListenersConfig,
}

impl Default for CoapGatewayConfig {
    fn default() -> Self {
        CoapGatewayConfig {
            enable: true,
            listeners: UdpGatewayListenersConfig::on_port(5683),
        }
    }
}

/// `[gateway.lwm2m]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lwm2mGatewayConfig {
    /// Whether to run the gateway. Default true.
    pub enable: bool,
    /// `[gateway.lwm2m.listeners.*]`; the UDP listener defaults to 0.0.0.0:5783.
    pub listeners: UdpGatewayListenersConfig,
}

impl Default for Lwm2mGatewayConfig {
    fn default() -> Self {
        Lwm2mGatewayConfig {
            enable: true,
            listeners: UdpGatewayListenersConfig::on_port(5783),
        }
    }
}

/// `[gateway.<name>.listeners]`
///
/// Its `Default` (and that of the types below it) binds port 0, because the real default
/// port depends on the gateway. Loading always layers files over
/// [`Config::default()`](crate::Config::default), where each gateway sets its own port, so a
/// file that sets only `max_connections` keeps the gateway's port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpGatewayListenersConfig {
    /// `[gateway.<name>.listeners.udp.*]`
    pub udp: UdpListenersConfig,
}

impl UdpGatewayListenersConfig {
    /// The listener set with the default UDP listener on `0.0.0.0:<port>`.
    pub fn on_port(port: u16) -> Self {
        UdpGatewayListenersConfig {
            udp: UdpListenersConfig {
                default: UdpListenerConfig {
                    bind: any_v4(port),
                    ..UdpListenerConfig::default()
                },
            },
        }
    }
}

/// `[gateway.<name>.listeners.udp]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpListenersConfig {
    /// `[gateway.<name>.listeners.udp.default]`
    pub default: UdpListenerConfig,
}

/// `[gateway.<name>.listeners.udp.default]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpListenerConfig {
    /// Address to listen on, `IP:port` (port 0 = any free port). Default: the gateway's port
    /// on 0.0.0.0 (mqttsn 1884, coap 5683, lwm2m 5783).
    #[serde(deserialize_with = "units::socket_addr")]
    pub bind: SocketAddr,
    /// Most concurrent clients (by client identity, not source address). Default 1024000.
    pub max_connections: u32,
    /// Most new clients accepted per second; 0 = unlimited. Default 1000.
    pub max_conn_rate: u32,
}

impl Default for UdpListenerConfig {
    /// Port 0: see [`UdpGatewayListenersConfig`] for why the real default lives one level up.
    fn default() -> Self {
        UdpListenerConfig {
            bind: any_v4(0),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_conn_rate: DEFAULT_MAX_CONN_RATE,
        }
    }
}
