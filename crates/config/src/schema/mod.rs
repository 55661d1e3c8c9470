//! The configuration schema: one serde struct per TOML table, each with
//! `#[serde(deny_unknown_fields, default)]` and a `Default` that is the documented default, so
//! a file may hold only the keys it changes and a misspelt key is an error, never ignored.
//!
//! Naming: every table type ends in `Config`; field names are the TOML keys. Durations are
//! [`Duration`](crate::Duration), sizes [`ByteSize`](crate::ByteSize), and a duration that can
//! be switched off is `Option<Duration>` (`None` = off, written "off").

mod cluster;
mod dtls;
mod gateway;
mod listeners;
mod mqtt;
mod ops;
mod protocols;
mod rules;
mod storage;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::units::{self, Duration};

pub use cluster::{ClusterConfig, ClusterNatsConfig, ClusterNatsTlsConfig};
pub(crate) use dtls::check as dtls_check;
pub use dtls::{
    DtlsListenerConfig, DtlsListenersConfig, DtlsOptions, DtlsView, PskAuthenticationConfig,
    DEFAULT_MAX_HANDSHAKES,
};
pub use gateway::{
    ClientInfoOverrideConfig, CoapGatewayConfig, GatewayConfig, Lwm2mGatewayConfig,
    Lwm2mTranslatorsConfig, Lwm2mUpdateCondition, MqttSnGatewayConfig, PredefinedTopicConfig,
    TranslatorConfig, UdpGatewayListenersConfig, UdpListenerConfig, UdpListenersConfig,
};
pub use gateway::{CoapNotifyType, CoapQosMode};
pub use listeners::{
    HttpListenerConfig, HttpListenersConfig, ListenersConfig, PeerCertAsUsername,
    SslListenerConfig, SslListenersConfig, TcpListenerConfig, TcpListenersConfig, TlsOptions,
    TlsVerify, WsListenerConfig, WsListenersConfig, WssListenerConfig, WssListenersConfig,
};
pub use mqtt::{MqttConfig, SharedSubscriptionStrategy};
pub use ops::{
    AutoSubscribeConfig, AutoSubscribeTopic, DelayedConfig, FlappingDetectConfig, PrometheusConfig,
    RetainerConfig, RewriteAction, RewriteRule,
};
pub use protocols::{ListenerView, ProtocolSection};
pub use rules::{ActionsConfig, ConnectorsConfig, RuleConfig, RuleEngineConfig};
pub use storage::{DurabilityMode, StorageConfig};

/// The whole configuration: the root of `switchyard.toml`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`: this node's identity and where it keeps data.
    pub node: NodeConfig,
    /// `[log]`: log filter and format.
    pub log: LogConfig,
    /// `[mqtt]`: MQTT protocol limits and session/QoS behaviour, shared by all MQTT listeners.
    pub mqtt: MqttConfig,
    /// `[listeners.*]`: the MQTT listeners (TCP, WebSocket, TLS, secure WebSocket).
    pub listeners: ListenersConfig,
    /// `[sys_topics]`: the `$SYS/#` topics the broker publishes about itself.
    pub sys_topics: SysTopicsConfig,
    /// `[gateway.*]`: the UDP protocol gateways (MQTT-SN, CoAP, LwM2M).
    pub gateway: GatewayConfig,
    /// `[dashboard]`: the HTTP admin API and dashboard.
    pub dashboard: DashboardConfig,
    /// `[authentication]`: who may connect.
    pub authentication: AuthenticationConfig,
    /// `[authorization]`: what a connected client may publish and subscribe to.
    pub authorization: AuthorizationConfig,
    /// `[storage]`: durability of persistent sessions and retained messages.
    pub storage: StorageConfig,
    /// `[flapping_detect]`: ban client ids that reconnect in a loop.
    pub flapping_detect: FlappingDetectConfig,
    /// `[retainer]`: limits of the retained-message store.
    pub retainer: RetainerConfig,
    /// `[delayed]`: `$delayed/{seconds}/{topic}` publishes.
    pub delayed: DelayedConfig,
    /// `[auto_subscribe]`: subscriptions every client gets at connect.
    pub auto_subscribe: AutoSubscribeConfig,
    /// `[[rewrite]]`: topic rewrite rules, applied before authorization.
    pub rewrite: Vec<RewriteRule>,
    /// `[prometheus]`: the metrics endpoint.
    pub prometheus: PrometheusConfig,
    /// `[psk_authentication]`: pre-shared keys for the DTLS listeners.
    pub psk_authentication: PskAuthenticationConfig,
    /// `[rule_engine]`: rules over messages and events (EMQX rule SQL).
    pub rule_engine: RuleEngineConfig,
    /// `[connectors.<type>.<name>]`: connections the rules' sinks use.
    pub connectors: ConnectorsConfig,
    /// `[actions.<type>.<name>]`: sinks rules send to (`"http:<name>"`).
    pub actions: ActionsConfig,
    /// `[cluster]`: joining other nodes over NATS.
    pub cluster: ClusterConfig,
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Node name, `name@host`. Default "switchyard@127.0.0.1".
    pub name: String,
    /// Directory for durable data, relative to the working directory unless absolute.
    /// Default "data".
    pub data_dir: PathBuf,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "switchyard@127.0.0.1".to_owned(),
            data_dir: PathBuf::from("data"),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// error | warn | info | debug | trace, or any tracing `EnvFilter` directive such as
    /// "info,switchyard_mqtt=debug". Must not be empty. Default "info".
    pub level: String,
    /// Output format. Default text.
    pub format: LogFormat,
    /// `[log.file]`: the log also written to a file, rotated by size.
    pub file: LogFileConfig,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
            file: LogFileConfig::default(),
        }
    }
}

/// `[log.file]`: the same lines as the console (same level and format), also written to a
/// file that is rotated by size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFileConfig {
    /// Also write the log to `path`. Default false.
    pub enable: bool,
    /// The log file, relative to the working directory unless absolute; its directory is
    /// created. Rotated files are `<path>.1` (the newest) to `<path>.<rotation_count>`.
    /// Default "log/switchyard.log".
    pub path: PathBuf,
    /// The file is rotated before a line would make it larger than this (at least 1KB).
    /// Default 50MB.
    pub max_size: units::ByteSize,
    /// Rotated files kept (1..=128); the oldest is deleted. Default 10.
    pub rotation_count: u32,
}

impl Default for LogFileConfig {
    fn default() -> Self {
        LogFileConfig {
            enable: false,
            path: PathBuf::from("log/switchyard.log"),
            max_size: units::ByteSize(50 * units::ByteSize::MB),
            rotation_count: 10,
        }
    }
}

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[sys_topics]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SysTopicsConfig {
    /// How often to publish the `$SYS` broker statistics; `None` (off) disables them.
    /// Default 1m.
    #[serde(with = "units::off")]
    pub sys_msg_interval: Option<Duration>,
    /// How often to publish the `$SYS` uptime/datetime heartbeat; `None` (off) disables it.
    /// Default 30s.
    #[serde(with = "units::off")]
    pub sys_heartbeat_interval: Option<Duration>,
    /// Publish an event on `$SYS/brokers/<node>/clients/<clientid>/connected`. Default true.
    pub client_connected: bool,
    /// Publish an event on `$SYS/brokers/<node>/clients/<clientid>/disconnected`.
    /// Default true.
    pub client_disconnected: bool,
}

impl Default for SysTopicsConfig {
    fn default() -> Self {
        SysTopicsConfig {
            sys_msg_interval: Some(Duration::from_secs(60)),
            sys_heartbeat_interval: Some(Duration::from_secs(30)),
            client_connected: true,
            client_disconnected: true,
        }
    }
}

/// `[dashboard]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Admin created on first start when `node.data_dir` holds no admin users; it must change
    /// its password at first login. Default "admin".
    pub default_username: String,
    /// Password of that first admin. Default "public".
    pub default_password: String,
    /// How long a login token stays valid. Default 60m.
    pub token_expiry: Duration,
    /// Failed logins allowed per client IP per minute before further attempts get 429.
    /// Default 10.
    pub login_max_failures: u32,
    /// `[dashboard.listeners.*]`
    pub listeners: HttpListenersConfig,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            default_username: "admin".into(),
            default_password: "public".into(),
            token_expiry: Duration::from_secs(3600),
            login_max_failures: 10,
            listeners: HttpListenersConfig::default(),
        }
    }
}

/// `[authentication]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthenticationConfig {
    /// Accept clients that are not in the user database or present no credentials (a known
    /// user with a wrong password is refused regardless). Governs the MQTT listeners with
    /// `enable_authn`, and the UDP gateways with their own `enable_authn`. Default true.
    pub allow_anonymous: bool,
    /// What identifies a user in the built-in database. Default username.
    pub user_id_type: UserIdType,
    /// Hash for stored passwords (existing users keep theirs). Default argon2.
    pub password_hash_algorithm: PasswordHashAlgorithm,
    /// CSV of users added at start when the database lacks them; "" = none. Relative to the
    /// working directory. Default "".
    pub bootstrap_file: PathBuf,
    /// Format of `bootstrap_file`. Default plain.
    pub bootstrap_type: BootstrapType,
    /// `[[authentication.authenticators]]`: the chain, tried in order; each table holds the
    /// body fields of EMQX's `/api/v5/authentication` (`mechanism`, `backend`, …), checked by
    /// `switchyard-auth` at start. Empty (the default): the built-in database alone. A chain
    /// changed through the REST API is kept in the API-state store and takes precedence.
    pub authenticators: Vec<toml::Table>,
    /// `[authentication.cache]`: reuse of the network back-ends' answers.
    pub cache: AuthnCacheConfig,
}

impl Default for AuthenticationConfig {
    fn default() -> Self {
        AuthenticationConfig {
            allow_anonymous: true,
            user_id_type: UserIdType::Username,
            password_hash_algorithm: PasswordHashAlgorithm::Argon2,
            bootstrap_file: PathBuf::new(),
            bootstrap_type: BootstrapType::Plain,
            authenticators: Vec::new(),
            cache: AuthnCacheConfig::default(),
        }
    }
}

/// `[authentication.cache]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthnCacheConfig {
    /// Reuse an HTTP or PostgreSQL authenticator's answer (ok or refused) for the same client
    /// id, username and password. Default true.
    pub enable: bool,
    /// Most answers kept (at least 1024 are). Default 100000.
    pub max_size: u32,
    /// How long an answer is reused. Default 30s.
    pub ttl: Duration,
}

impl Default for AuthnCacheConfig {
    fn default() -> Self {
        AuthnCacheConfig {
            enable: true,
            max_size: 100_000,
            ttl: Duration::from_secs(30),
        }
    }
}

/// `authentication.user_id_type`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserIdType {
    /// The username.
    #[default]
    Username,
    /// The client id.
    Clientid,
}

/// `authentication.password_hash_algorithm`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordHashAlgorithm {
    /// argon2id.
    #[default]
    Argon2,
    /// PBKDF2-HMAC-SHA256, 4096 iterations.
    #[serde(alias = "pbkdf2-sha256")]
    Pbkdf2Sha256,
}

/// `authentication.bootstrap_type`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootstrapType {
    /// Header `user_id,password,is_superuser`, plain passwords.
    #[default]
    Plain,
    /// Header `user_id,password_hash,salt,is_superuser`.
    Hash,
}

/// `[authorization]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationConfig {
    /// Decision when no ACL rule matches. Default allow.
    pub no_match: AuthzDecision,
    /// What to do with a client whose publish/subscribe is denied. Default ignore.
    pub deny_action: DenyAction,
    /// TOML file of `[[rule]]` tables, relative to the working directory; a missing file means
    /// no rules. Default "config/acl.toml".
    pub file: PathBuf,
    /// `[[authorization.sources]]`: the sources asked in order after a client's own `acl`, each
    /// with the body fields of EMQX's `/api/v5/authorization/sources` (`type` = `file` or
    /// `http`, …), checked by `switchyard-auth` at start. Empty (the default): the `file`
    /// source (`file` above) alone. Sources changed through the REST API are kept in the
    /// API-state store and take precedence.
    pub sources: Vec<toml::Table>,
    /// `[authorization.cache]`: per-client cache of ACL decisions.
    pub cache: AuthzCacheConfig,
}

impl Default for AuthorizationConfig {
    fn default() -> Self {
        AuthorizationConfig {
            no_match: AuthzDecision::Allow,
            deny_action: DenyAction::Ignore,
            file: PathBuf::from("config/acl.toml"),
            sources: Vec::new(),
            cache: AuthzCacheConfig::default(),
        }
    }
}

/// `[authorization.cache]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthzCacheConfig {
    /// Cache decisions per client. Default true.
    pub enable: bool,
    /// Most cached decisions per client. Default 32.
    pub max_size: u32,
    /// How long a cached decision holds. Default 1m.
    pub ttl: Duration,
}

impl Default for AuthzCacheConfig {
    fn default() -> Self {
        AuthzCacheConfig {
            enable: true,
            max_size: 32,
            ttl: Duration::from_secs(60),
        }
    }
}

/// `authorization.no_match`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthzDecision {
    /// Permit the operation.
    #[default]
    Allow,
    /// Refuse the operation.
    Deny,
}

/// `authorization.deny_action`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyAction {
    /// Drop the publish / fail the subscription (reason code on MQTT 5) and keep the client.
    #[default]
    Ignore,
    /// Disconnect the client.
    Disconnect,
}
