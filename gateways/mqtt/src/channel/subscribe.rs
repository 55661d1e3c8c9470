//! SUBSCRIBE and UNSUBSCRIBE (MQTT 3.1.1 §3.8–3.11, MQTT 5 §3.8–3.11): each filter is checked
//! on its own and gets its own return code; one bad filter never fails the others.

use super::codes::{v3, v5};
use super::{Channel, Violation};
use crate::codec::{Packet, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe};
use std::time::Instant;
use switchyard_auth::{Action, Decision};
use switchyard_bus::{BusError, RetainHandling, SubOptions};
use switchyard_core::SubscriptionFilter;

impl Channel {
    pub(crate) fn handle_subscribe(&mut self, s: Subscribe, now: Instant) {
        let v5 = self.version.is_v5();
        let sub_id = s.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut refused = Vec::new();
        for (filter, opts) in s.filters {
            match self.subscribe_one(&filter, opts, sub_id, now) {
                Ok(code) => codes.push(code),
                Err(code) => {
                    tracing::info!(filter = %filter, code, "subscription refused");
                    refused.push(filter.to_string());
                    codes.push(if v5 { code } else { v3::SUBACK_FAILURE });
                }
            }
            if self.close.is_some() {
                return;
            }
        }
        let mut ack = SubAck::new(s.pkid, codes);
        if !refused.is_empty() {
            ack.properties.reason_string =
                self.reason_string(&format!("refused: {}", refused.join(", ")));
        }
        self.outbound.push(Packet::SubAck(ack));
    }

    /// Returns the granted QoS as the return code, or the MQTT 5 failure code.
    fn subscribe_one(
        &mut self,
        filter: &str,
        opts: SubscriptionOptions,
        sub_id: Option<u32>,
        now: Instant,
    ) -> Result<u8, u8> {
        // [[rewrite]] rules apply before authorization (EMQX's order).
        let filter = &*self.settings.security.rewrite.subscribe(filter);
        let sf = SubscriptionFilter::parse(filter, self.settings.max_topic_levels)
            .map_err(|_| v5::TOPIC_FILTER_INVALID)?;
        if sf.filter.has_wildcards() && !self.settings.wildcard_subscription {
            return Err(v5::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED);
        }
        if sf.is_shared() {
            if !self.settings.shared_subscription {
                return Err(v5::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
            }
            if opts.no_local {
                // MQTT-3.8.3-4: no-local on a shared subscription is a protocol error.
                self.violation(Violation::NoLocalOnSharedSubscription);
                return Err(v5::PROTOCOL_ERROR);
            }
        }
        let action = Action::Subscribe {
            filter: sf.filter.as_str(),
            qos: opts.qos,
        };
        if self.authorize(action, now) == Decision::Deny {
            return Err(v5::NOT_AUTHORIZED);
        }
        let granted = opts.qos.min(self.settings.max_qos_allowed);
        let v5 = self.version.is_v5();
        let bus_opts = SubOptions {
            qos: granted,
            no_local: v5 && opts.no_local,
            retain_as_published: v5 && opts.retain_as_published,
            retain_handling: match (v5, opts.retain_handling) {
                (true, 1) => RetainHandling::OnNewSubscribe,
                (true, 2) => RetainHandling::Never,
                _ => RetainHandling::OnSubscribe,
            },
            subscription_id: if v5 { sub_id } else { None },
        };
        let Some(session) = self.session.as_mut() else {
            return Err(v5::UNSPECIFIED_ERROR);
        };
        match self.bus.subscribe(session, sf, bus_opts) {
            Ok(_) => Ok(granted.as_u8()),
            Err(BusError::QuotaExceeded(_)) => Err(v5::QUOTA_EXCEEDED),
            Err(BusError::Topic(_)) => Err(v5::TOPIC_FILTER_INVALID),
            Err(_) => Err(v5::UNSPECIFIED_ERROR),
        }
    }

    pub(crate) fn handle_unsubscribe(&mut self, u: Unsubscribe) {
        let mut codes = Vec::with_capacity(u.filters.len());
        for filter in &u.filters {
            let filter = &*self.settings.security.rewrite.subscribe(filter);
            let code = match SubscriptionFilter::parse(filter, self.settings.max_topic_levels) {
                Err(_) => v5::TOPIC_FILTER_INVALID,
                Ok(sf) => {
                    let removed = match self.session.as_mut() {
                        Some(session) => self.bus.unsubscribe(session, &sf),
                        None => false,
                    };
                    if removed {
                        v5::SUCCESS
                    } else {
                        v5::NO_SUBSCRIPTION_EXISTED
                    }
                }
            };
            codes.push(code);
        }
        // MQTT 3.x UNSUBACK carries no per-filter codes.
        let codes = if self.version.is_v5() {
            codes
        } else {
            Vec::new()
        };
        self.outbound
            .push(Packet::UnsubAck(UnsubAck::new(u.pkid, codes)));
    }
}
