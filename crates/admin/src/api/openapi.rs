//! `GET /api-docs/openapi.json`: an OpenAPI 3.0 document listing every route, built from one
//! table so it cannot drift far from the router.

use super::St;
use axum::Json;
use serde_json::{json, Map, Value};

/// (method, path, tag, summary, needs auth)
const ROUTES: &[(&str, &str, &str, &str, bool)] = &[
    ("get", "/status", "status", "Node health for load balancers (text; ?format=json)", false),
    ("post", "/api/v5/login", "dashboard", "Log in: {username, password} → {token, must_change_password}", false),
    ("post", "/api/v5/logout", "dashboard", "End the token", true),
    ("get", "/api/v5/users", "dashboard", "List dashboard admins", true),
    ("post", "/api/v5/users", "dashboard", "Create an admin {username, password, description}", true),
    ("delete", "/api/v5/users/{username}", "dashboard", "Delete an admin", true),
    ("post", "/api/v5/users/{username}/change_pwd", "dashboard", "Change a password {old_pwd, new_pwd}", true),
    ("get", "/api/v5/api_key", "api_key", "List API keys", true),
    ("post", "/api/v5/api_key", "api_key", "Create an API key {name, desc, enable} (secret shown once)", true),
    ("delete", "/api/v5/api_key/{name}", "api_key", "Delete an API key", true),
    ("get", "/api/v5/authentication", "authentication", "The chain of authenticators, in order (secrets as \"******\")", true),
    ("post", "/api/v5/authentication", "authentication", "Append an authenticator {mechanism, backend, …} (409 ALREADY_EXISTS)", true),
    ("put", "/api/v5/authentication/order", "authentication", "Reorder the chain [{id}, …] (every authenticator once; 204)", true),
    ("get", "/api/v5/authentication/{id}", "authentication", "One authenticator", true),
    ("put", "/api/v5/authentication/{id}", "authentication", "Replace an authenticator's config (same mechanism and backend; \"******\" keeps a secret)", true),
    ("delete", "/api/v5/authentication/{id}", "authentication", "Remove an authenticator (204)", true),
    ("put", "/api/v5/authentication/{id}/position/{position}", "authentication", "Move: front | rear | before:{id} | after:{id} (204)", true),
    ("post", "/api/v5/authentication/{id}/move", "authentication", "Move (EMQX 5.0 form) {position} (204)", true),
    ("get", "/api/v5/authentication/{id}/status", "authentication", "Status and metrics {total, success, failed, nomatch}, cache_hits, timeouts", true),
    ("get", "/api/v5/authorization/sources", "authorization", "The authorization sources, in order → {sources: [...]} (the file source's rules as TOML text)", true),
    ("post", "/api/v5/authorization/sources", "authorization", "Add a source {type: file|http, …}, put first (204; 400 duplicated_authz_source_type)", true),
    ("put", "/api/v5/authorization/sources/order", "authorization", "Reorder the sources [{type}, …] (every source once; 204)", true),
    ("get", "/api/v5/authorization/sources/{type}", "authorization", "One source", true),
    ("put", "/api/v5/authorization/sources/{type}", "authorization", "Replace a source's config (same type; 204)", true),
    ("delete", "/api/v5/authorization/sources/{type}", "authorization", "Remove a source (204)", true),
    ("get", "/api/v5/authorization/sources/{type}/status", "authorization", "Status and metrics {total, allow, deny, nomatch, ignore}, timeouts", true),
    ("post", "/api/v5/authorization/sources/{type}/move", "authorization", "Move {position: front|rear|before:{type}|after:{type}} (204)", true),
    ("get", "/api/v5/authorization/settings", "authorization", "{no_match, deny_action, cache: {enable, max_size, ttl, excludes}}", true),
    ("put", "/api/v5/authorization/settings", "authorization", "Change no_match, deny_action and cache (all three; 200 with the settings)", true),
    ("delete", "/api/v5/authorization/cache", "authorization", "Empty every client's authorization cache (204)", true),
    ("get", "/api/v5/authentication/{id}/users", "authentication", "Built-in users (id password_based:built_in_database), paged; filters like_user_id, is_superuser", true),
    ("post", "/api/v5/authentication/{id}/users", "authentication", "Create a user {user_id, password, is_superuser} (201; 409 ALREADY_EXISTS)", true),
    ("get", "/api/v5/authentication/{id}/users/{user_id}", "authentication", "One user {user_id, is_superuser}", true),
    ("put", "/api/v5/authentication/{id}/users/{user_id}", "authentication", "Change a user {password?, is_superuser?}", true),
    ("delete", "/api/v5/authentication/{id}/users/{user_id}", "authentication", "Delete a user (204)", true),
    ("get", "/api/v5/stats", "metrics", "Connection, session, subscription, topic, retained counts (?aggregate=true)", true),
    ("get", "/api/v5/metrics", "metrics", "Message and packet counters (?aggregate=true)", true),
    ("get", "/api/v5/prometheus/stats", "metrics", "Prometheus text format", true),
    ("get", "/api/v5/nodes", "nodes", "Nodes", true),
    ("get", "/api/v5/nodes/{node}", "nodes", "One node", true),
    ("get", "/api/v5/listeners", "listeners", "Bound listeners", true),
    ("get", "/api/v5/clients", "clients", "Clients of every protocol, paged; filters clientid, username, like_clientid, like_username, proto_name, conn_state, ip_address, clean_start, proto_ver", true),
    ("get", "/api/v5/clients/{clientid}", "clients", "One client", true),
    ("delete", "/api/v5/clients/{clientid}", "clients", "Kick a client (204)", true),
    ("get", "/api/v5/clients/{clientid}/subscriptions", "clients", "A client's subscriptions", true),
    ("post", "/api/v5/clients/{clientid}/subscribe", "clients", "Subscribe on the client's behalf {topic, qos, nl, rap, rh}", true),
    ("post", "/api/v5/clients/{clientid}/subscribe/bulk", "clients", "Several subscriptions", true),
    ("post", "/api/v5/clients/{clientid}/unsubscribe", "clients", "Unsubscribe {topic} (204)", true),
    ("get", "/api/v5/subscriptions", "subscriptions", "All subscriptions, paged; filters clientid, topic, qos, share_group, match_topic", true),
    ("get", "/api/v5/topics", "topics", "Route table, paged; filters topic, like_topic", true),
    ("post", "/api/v5/publish", "publish", "Publish {topic, payload, qos, retain, payload_encoding, properties}", true),
    ("post", "/api/v5/publish/bulk", "publish", "Publish several messages", true),
    ("get", "/api/v5/mqtt/retainer/messages", "retainer", "Retained messages, paged (topic may be a filter)", true),
    ("get", "/api/v5/mqtt/retainer/message/{topic}", "retainer", "One retained message with its base64 payload", true),
    ("delete", "/api/v5/mqtt/retainer/message/{topic}", "retainer", "Delete a retained message (204)", true),
    ("get", "/api/v5/protocols", "gateways", "Every protocol this binary carries (its gateway table, MQTT included): name, namespace, proto_name, display_name, gateway (listed under /gateways), listeners", true),
    ("get", "/api/v5/gateways", "gateways", "The protocol gateways of this binary (every protocol but MQTT) with status (?status=)", true),
    ("get", "/api/v5/gateways/{name}", "gateways", "One gateway", true),
    ("put", "/api/v5/gateways/{name}/enable/{enable}", "gateways", "Start or stop the gateway at run time", true),
    ("get", "/api/v5/gateways/{name}/clients", "gateways", "A gateway's clients, paged", true),
    ("get", "/api/v5/gateways/{name}/clients/{clientid}", "gateways", "One gateway client", true),
    ("delete", "/api/v5/gateways/{name}/clients/{clientid}", "gateways", "Kick a gateway client (204)", true),
    ("get", "/api/v5/gateways/{name}/clients/{clientid}/subscriptions", "gateways", "A gateway client's subscriptions", true),
    ("post", "/api/v5/gateways/{name}/clients/{clientid}/subscriptions", "gateways", "Subscribe on its behalf (201)", true),
    ("delete", "/api/v5/gateways/{name}/clients/{clientid}/subscriptions/{topic}", "gateways", "Unsubscribe (204)", true),
    ("post", "/api/v5/gateways/coap/clients/{clientid}/request", "gateways", "Send a CoAP request to a connected client {method: get|post|put|delete, token, timeout: \"10s\", content_type: text/plain|application/json|application/octet-stream (base64), payload, uri} → 200 {id, token, method: \"{ok,content}\", payload}; 404 CLIENT_NOT_FOUND; 504 CLIENT_NOT_RESPONSE", true),
    ("post", "/api/v5/gateways/lwm2m/clients/{clientid}/read", "gateways", "LwM2M read command (?path=/3/0/0) → 204; the result goes to the response topic", true),
    ("post", "/api/v5/gateways/lwm2m/clients/{clientid}/write", "gateways", "LwM2M write command (?path=&type=&value=) → 204", true),
    ("post", "/api/v5/gateways/lwm2m/clients/{clientid}/observe", "gateways", "LwM2M observe / cancel-observe (?path=&enable=true|false) → 204", true),
    ("get", "/api/v5/gateways/lwm2m/clients/{clientid}/lookup", "gateways", "LwM2M read or discover (?path=&action=read|discover), waiting for the device's answer", true),
    ("get", "/api/v5/trace", "trace", "Log traces [{name, type, clientid|topic|ip_address, start_at, end_at, status, log_size}]", true),
    ("post", "/api/v5/trace", "trace", "Create a log trace {name, type: clientid|topic|ip_address, clientid|topic|ip_address, start_at?, end_at?, payload_encode?: text|hex|hidden, formatter?: text|json} (409 ALREADY_EXISTS, DUPLICATE_CONDITION)", true),
    ("delete", "/api/v5/trace", "trace", "Delete every log trace (204)", true),
    ("delete", "/api/v5/trace/{name}", "trace", "Delete a log trace and its file (204)", true),
    ("put", "/api/v5/trace/{name}/stop", "trace", "Stop a log trace (kept for download)", true),
    ("get", "/api/v5/psk", "psk", "DTLS pre-shared key identities {data: [{identity}]} (keys are never returned)", true),
    ("post", "/api/v5/psk", "psk", "Add or replace a pre-shared key {identity, key} (201)", true),
    ("delete", "/api/v5/psk/{identity}", "psk", "Delete a pre-shared key (204; 404 when unknown)", true),
    ("get", "/api/v5/trace/{name}/download", "trace", "The trace's log file (text/plain attachment)", true),
    ("get", "/api/v5/trace/{name}/log", "trace", "Part of the trace's file (?position=&bytes=) → {items, meta: {position, bytes}}", true),
    ("get", "/api/v5/trace/{name}/log_detail", "trace", "The trace file's size per node [{node, size, mtime}]", true),
];

/// The document.
pub async fn document(st: St) -> Json<Value> {
    let mut paths = Map::new();
    for (method, path, tag, summary, auth) in ROUTES.iter().chain(super::rules::ROUTES) {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut op = json!({
            "tags": [tag],
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": { "description": "OK" },
                "400": { "description": "{\"code\":\"BAD_REQUEST\",\"message\":...}" },
                "401": { "description": "missing or bad token / API key" },
                "404": { "description": "{\"code\":\"NOT_FOUND\",\"message\":...}" },
            },
        });
        if !auth {
            op["security"] = json!([]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    Json(json!({
        "openapi": "3.0.3",
        "info": { "title": "Switchyard REST API", "version": st.0.ctx.version,
                  "description": "EMQX-compatible /api/v5 management API. Authenticate with a bearer token from POST /api/v5/login or HTTP Basic API key:secret." },
        "components": { "securitySchemes": {
            "bearerAuth": { "type": "http", "scheme": "bearer" },
            "basicAuth": { "type": "http", "scheme": "basic" },
        }},
        "security": [{ "bearerAuth": [] }, { "basicAuth": [] }],
        "paths": paths,
    }))
}
