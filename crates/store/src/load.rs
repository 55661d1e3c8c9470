//! Reading the whole store into a [`Snapshot`] at start-up, before any connection is accepted.

use crate::codec::{from_millis, ids_from_text, props_from_json, sub_options};
use rusqlite::{params, Connection, Row};
use std::collections::HashMap;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use switchyard_bus::{Snapshot, StoredDelivery, StoredSession, StoredStage};
use switchyard_core::{ClientId, Message, Origin, QoS, SessionId, SubscriptionFilter, TopicName};

fn message_from(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<Message>> {
    let topic: String = row.get(at)?;
    let payload: Vec<u8> = row.get(at + 1)?;
    let qos: u8 = row.get(at + 2)?;
    let retain: bool = row.get(at + 3)?;
    let props: Option<String> = row.get(at + 4)?;
    let origin: Option<String> = row.get(at + 5)?;
    let received_ms: i64 = row.get(at + 6)?;
    let Ok(topic) = TopicName::new(topic) else {
        return Ok(None);
    };
    let mut m = Message::new(
        topic,
        payload,
        QoS::try_from(qos).unwrap_or(QoS::AtMostOnce),
        retain,
    );
    m.timestamp = from_millis(received_ms);
    // Expiry counts from the original receipt, also across restarts.
    let age = SystemTime::now()
        .duration_since(m.timestamp)
        .unwrap_or_default();
    m.received = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
    m.properties = props.as_deref().and_then(props_from_json).map(Arc::new);
    m.origin = origin.map(|c| Origin {
        session: SessionId(0),
        client_id: ClientId::new(c),
    });
    Ok(Some(m))
}

const MESSAGE_COLUMNS: &str =
    "m.topic, m.payload, m.qos, m.retain, m.props, m.origin, m.received_ms";

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Loads every session and retained message.
pub(crate) fn load(conn: &Connection) -> rusqlite::Result<Snapshot> {
    let max_message_id = conn
        .query_row("SELECT COALESCE(MAX(id), 0) FROM messages", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(u64_of)?;
    let mut snap = Snapshot {
        max_message_id,
        ..Default::default()
    };

    let mut stmt = conn.prepare(&format!(
        "SELECT r.msg, {MESSAGE_COLUMNS} FROM retained r JOIN messages m ON m.id = r.msg"
    ))?;
    let rows = stmt.query_map([], |row| Ok((u64_of(row.get(0)?), message_from(row, 1)?)))?;
    for r in rows {
        if let (id, Some(m)) = r? {
            snap.retained.push((id, m));
        }
    }

    let mut sessions: HashMap<i64, StoredSession> = HashMap::new();
    let mut will_ids: HashMap<i64, (i64, u32)> = HashMap::new();
    let mut stmt = conn.prepare("SELECT sid, ns, client_id, expiry_secs, created_ms, offline_ms, will_msg, will_delay FROM sessions")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, Option<i64>>(5)?,
            row.get::<_, Option<i64>>(6)?,
            row.get::<_, Option<i64>>(7)?,
        ))
    })?;
    for r in rows {
        let (sid, ns, client_id, expiry, created, offline, will, delay) = r?;
        if let Some(w) = will {
            will_ids.insert(sid, (w, u32::try_from(delay.unwrap_or(0)).unwrap_or(0)));
        }
        sessions.insert(
            sid,
            StoredSession {
                session: SessionId(u64_of(sid)),
                namespace: ns,
                client_id,
                expiry_secs: u64_of(expiry),
                created_at: from_millis(created),
                offline_at: offline.map(from_millis),
                will: None,
                subscriptions: Vec::new(),
                queue: Vec::new(),
                incoming: Vec::new(),
            },
        );
    }
    for (sid, (msg, delay)) in will_ids {
        let m = conn
            .query_row(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"),
                params![msg],
                |row| message_from(row, 0),
            )
            .ok()
            .flatten();
        if let (Some(s), Some(m)) = (sessions.get_mut(&sid), m) {
            s.will = Some((m, delay));
        }
    }

    let mut stmt = conn.prepare("SELECT sid, filter, qos, nl, rap, rh, subid FROM subs")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
        ))
    })?;
    for r in rows {
        let (sid, filter, qos, nl, rap, rh, subid) = r?;
        let (Some(s), Ok(sf)) = (
            sessions.get_mut(&sid),
            SubscriptionFilter::parse(&filter, 0),
        ) else {
            continue;
        };
        s.subscriptions
            .push((sf, sub_options(qos, nl, rap, rh, subid)));
    }

    let mut stmt = conn.prepare(&format!(
        "SELECT q.sid, q.seq, q.msg, q.qos, q.retain, q.subids, q.pkid, q.released, {MESSAGE_COLUMNS}
         FROM queue q JOIN messages m ON m.id = q.msg ORDER BY q.sid, q.seq"
    ))?;
    let rows = stmt.query_map([], |row| {
        let pkid: Option<i64> = row.get(6)?;
        let released: bool = row.get(7)?;
        let inflight = pkid
            .and_then(|p| u16::try_from(p).ok())
            .and_then(NonZeroU16::new)
            .map(|p| {
                (
                    p,
                    if released {
                        StoredStage::Released
                    } else {
                        StoredStage::Sent
                    },
                )
            });
        Ok((
            row.get::<_, i64>(0)?,
            u64_of(row.get(1)?),
            u64_of(row.get(2)?),
            row.get::<_, u8>(3)?,
            row.get::<_, bool>(4)?,
            ids_from_text(&row.get::<_, String>(5)?),
            inflight,
            message_from(row, 8)?,
        ))
    })?;
    for r in rows {
        let (sid, seq, message_id, qos, retain, subscription_ids, inflight, message) = r?;
        let (Some(s), Some(message)) = (sessions.get_mut(&sid), message) else {
            continue;
        };
        s.queue.push(StoredDelivery {
            seq,
            message_id,
            message,
            qos,
            retain,
            subscription_ids,
            inflight,
        });
    }

    let mut stmt = conn.prepare("SELECT sid, pkid FROM incoming")?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?;
    for r in rows {
        let (sid, pkid) = r?;
        let pkid = u16::try_from(pkid).ok().and_then(NonZeroU16::new);
        if let (Some(s), Some(p)) = (sessions.get_mut(&sid), pkid) {
            s.incoming.push(p);
        }
    }
    let mut all: Vec<StoredSession> = sessions.into_values().collect();
    all.sort_by_key(|s| s.session);
    snap.sessions = all;
    Ok(snap)
}
