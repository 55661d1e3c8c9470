//! The command side of a [`Channel`]: MQTT commands in from the session's outbox, one CoAP
//! request at a time out, replies and notifications back as MQTT events.

use super::{Channel, Inflight, Observed, Outcome, Output};
use crate::command::{self, Command, Op};
use crate::path::Path;
use serde_json::{json, Map, Value};
use std::time::Instant;
use switchyard_bus::Metrics;
use switchyard_coap_transport::coap_lite::Packet;
use switchyard_coap_transport::wire;

/// Deliveries taken from the outbox per wakeup.
const MAX_BATCH: usize = 256;
/// Objects auto-observe never observes (docs/lwm2m.md §4.10).
const AUTO_OBSERVE_SKIP: [u16; 9] = [0, 1, 2, 4, 5, 6, 7, 9, 15];

impl Channel {
    /// Takes queued MQTT commands from the outbox, queues them and sends what may go.
    pub(super) fn pull_commands(&mut self, now: Instant) -> usize {
        if self.base.close.is_some() {
            return 0;
        }
        let Some(session) = self.base.session.as_ref() else {
            return 0;
        };
        let mut taken = Vec::new();
        let mut batch = MAX_BATCH;
        session.outbox.drain(
            now,
            |_| {
                batch = batch.saturating_sub(1);
                batch > 0
            },
            &mut taken,
        );
        let n = taken.len();
        for d in taken {
            self.handle_command(&d.message.payload, now);
        }
        n
    }

    /// One command payload from MQTT.
    pub fn handle_command(&mut self, payload: &[u8], now: Instant) {
        let metrics = self.gw.bus.metrics();
        match command::parse(payload) {
            Ok(None) => {
                // docs/lwm2m.md §4.4: invalid JSON is dropped and counted.
                Metrics::inc(&metrics.messages_dropped);
                tracing::debug!("LwM2M command is not a JSON object; dropped");
            }
            Err(rejected) => {
                // EMQX 5.8.9 crashes on an unknown msgType; we answer 4.00 as 6.x does
                // (docs/lwm2m.md §4.13.3).
                tracing::debug!(reason = rejected.reason, "LwM2M command rejected");
                self.publish_response(&command::rejected_event(&rejected));
            }
            Ok(Some(cmd)) => {
                if self.queue.len() >= self.gw.settings.max_queue {
                    Metrics::inc(&metrics.messages_dropped);
                    tracing::warn!("LwM2M command queue full; command refused");
                    return self.publish_response(&command::bad_request_event(&cmd));
                }
                Metrics::inc(&metrics.messages_sent);
                self.queue.push_back(cmd);
                self.pump(now);
            }
        }
    }

    /// Whether commands may go out now (docs/lwm2m.md §4.9: held in queue mode once the device has
    /// been silent for `qmode_time_window`).
    pub fn awake(&self, now: Instant) -> bool {
        !self.reg.queue_mode()
            || now.saturating_duration_since(self.last_inbound) < self.gw.settings.qmode_time_window
    }

    /// Sends the next queued command if none is outstanding.
    pub(super) fn pump(&mut self, now: Instant) {
        while self.inflight.is_none() && self.base.close.is_none() && self.awake(now) {
            let Some(cmd) = self.queue.pop_front() else {
                return;
            };
            self.send(cmd);
        }
    }

    fn send(&mut self, cmd: Command) {
        let out = match command::build(&cmd, &self.reg.alternate_path) {
            Ok(o) => o,
            Err(reason) => {
                tracing::debug!(reason, "LwM2M command cannot be translated");
                return self.publish_response(&command::bad_request_event(&cmd));
            }
        };
        let cid = self.next_cid;
        self.next_cid += 1;
        // Observe again / cancel: the observation's own token (RFC 7641 §3.6, §4.1).
        let existing = match cmd.op {
            Op::Observe | Op::CancelObserve => self.by_path.get(&cmd.req_path).copied(),
            _ => None,
        };
        let token = match existing.and_then(|id| self.observations.get(&id)) {
            Some(o) => o.token.clone(),
            None => rand::random::<[u8; 8]>().to_vec(),
        };
        self.base.out.push(Output::Request {
            peer: self.peer,
            packet: out.packet,
            observe: out.observe,
            token: token.clone(),
            cid,
        });
        self.inflight = Some(Inflight {
            cid,
            cmd,
            token,
            wait_until: None,
        });
    }

    /// A reply or notification for command `cid`.
    pub fn handle_response(&mut self, cid: u64, p: Packet, now: Instant) {
        self.last_inbound = now;
        if self.inflight.as_ref().is_some_and(|i| i.cid == cid) {
            if let Some(i) = self.inflight.take() {
                self.command_reply(cid, i, &p);
            }
            return self.pump(now);
        }
        self.notification(cid, &p);
    }

    fn command_reply(&mut self, cid: u64, i: Inflight, p: &Packet) {
        let ev = command::response_event(&i.cmd, p, &self.gw.objects);
        self.publish_response(&ev);
        let ok = wire::code_of(p) >> 5 == 2;
        let observing = p.get_observe_value().is_some_and(|v| v.is_ok());
        match i.cmd.op {
            Op::Observe => {
                if let Some(old) = self.by_path.remove(&i.cmd.req_path) {
                    self.observations.remove(&old);
                }
                if ok && observing {
                    let seq = p.get_observe_value().and_then(Result::ok);
                    self.by_path.insert(i.cmd.req_path.clone(), cid);
                    self.observations.insert(
                        cid,
                        Observed {
                            cmd: i.cmd,
                            token: i.token,
                            last_seq: seq,
                        },
                    );
                }
            }
            Op::CancelObserve => {
                if let Some(old) = self.by_path.remove(&i.cmd.req_path) {
                    self.observations.remove(&old);
                }
                if observing {
                    self.base.out.push(Output::Forget {
                        peer: self.peer,
                        token: i.token,
                    });
                }
            }
            _ => {}
        }
    }

    fn notification(&mut self, cid: u64, p: &Packet) {
        let Some(o) = self.observations.get_mut(&cid) else {
            return;
        };
        let seq = p.get_observe_value().and_then(Result::ok);
        if seq.is_some() && seq == o.last_seq {
            // docs/lwm2m.md §4.6: a repeated Observe value is ignored.
            return;
        }
        o.last_seq = seq;
        // Every object's notifications go to the notify topic, object 5 included (EMQX routes
        // object 5 to a hard-coded `{mp}/v1/up/dm`; not copied, docs/lwm2m.md §4.13.7).
        let ev = command::notify_event(&o.cmd, p, seq.unwrap_or(0), &self.gw.objects);
        let ended = wire::code_of(p) >> 5 != 2 || seq.is_none();
        self.publish(&self.gw.settings.notify.clone(), &ev);
        if ended {
            // RFC 7641 §3.2: a notification without Observe or with an error ends it.
            if let Some(o) = self.observations.remove(&cid) {
                self.by_path.remove(&o.cmd.req_path);
            }
        }
    }

    /// The transport's verdict on a command's request.
    pub fn handle_outcome(&mut self, cid: u64, outcome: Outcome, now: Instant) {
        if outcome != Outcome::Timeout {
            self.last_inbound = now;
        }
        let is_inflight = self.inflight.as_ref().is_some_and(|i| i.cid == cid);
        match outcome {
            Outcome::Acked if is_inflight => {
                let wait = self.gw.settings.transport.exchange_lifetime();
                if let Some(i) = self.inflight.as_mut() {
                    i.wait_until = Some(now + wait);
                    let ev = command::transport_event(&i.cmd, "ack");
                    self.publish_response(&ev);
                }
            }
            Outcome::Reset | Outcome::Timeout if is_inflight => {
                if let Some(i) = self.inflight.take() {
                    let name = if outcome == Outcome::Reset {
                        "coap_reset"
                    } else {
                        "coap_timeout"
                    };
                    self.publish_response(&command::transport_event(&i.cmd, name));
                }
                self.pump(now);
            }
            Outcome::Reset | Outcome::Timeout => {
                if let Some(o) = self.observations.remove(&cid) {
                    self.by_path.remove(&o.cmd.req_path);
                }
            }
            Outcome::Acked => {}
        }
    }

    /// docs/lwm2m.md §4.10: an Observe for every listed object instance whose object is defined and
    /// not in the skip list, with `"is_auto_observe": true` echoed.
    pub(super) fn auto_observe(&mut self) {
        let paths: Vec<String> = self
            .reg
            .object_list
            .iter()
            .filter(|p| {
                Path::parse(p).and_then(|p| p.object()).is_some_and(|o| {
                    !AUTO_OBSERVE_SKIP.contains(&o) && self.gw.objects.object(o).is_some()
                })
            })
            .cloned()
            .collect();
        for p in paths {
            let Some(path) = Path::parse(&p) else {
                continue;
            };
            let mut echo = Map::new();
            echo.insert("msgType".into(), json!("observe"));
            echo.insert("is_auto_observe".into(), Value::Bool(true));
            self.queue.push_back(Command {
                echo,
                data: json!({ "path": p }),
                op: Op::Observe,
                req_path: path.to_string(),
                path,
            });
        }
    }
}
