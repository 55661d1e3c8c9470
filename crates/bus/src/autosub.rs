//! Auto-subscribe: subscriptions every client gets when its session opens, on every protocol
//! (`[auto_subscribe]`, EMQX's feature). Topics are templates rendered for the client with the
//! shared topic template (`${clientid}`, `${username}`); a client for whom a template cannot be
//! rendered (a value that would escape the topic, or no username) does not get that one.

use crate::delivery::SubOptions;
use crate::handle::BusHandle;
use crate::registry::ClientInfo;
use crate::session::Session;
use switchyard_core::{render_topic, SubscriptionFilter, TemplateVars};

/// One auto-subscription: a topic template and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoSubscription {
    /// The topic filter template.
    pub topic: String,
    /// QoS, retain handling, retain-as-published, no-local.
    pub opts: SubOptions,
}

impl BusHandle {
    /// The auto-subscriptions in force.
    pub fn auto_subscriptions(&self) -> Vec<AutoSubscription> {
        self.0.auto_subscribe.read().clone()
    }

    /// Replaces the auto-subscriptions (`PUT /api/v5/mqtt/auto_subscribe`); clients that open a
    /// session from now on get them.
    pub fn set_auto_subscriptions(&self, subs: Vec<AutoSubscription>) {
        *self.0.auto_subscribe.write() = subs;
    }

    /// Subscribes a session that just opened to every auto-subscription it can have.
    pub(crate) fn apply_auto_subscribe(&self, session: &mut Session, info: &ClientInfo) {
        let subs = self.0.auto_subscribe.read().clone();
        let levels = self.0.config.max_topic_levels;
        for sub in subs {
            let vars = TemplateVars {
                clientid: Some(info.client_id.as_str()),
                username: info.username.as_deref(),
                endpoint_name: None,
            };
            let filter = match render_topic(&sub.topic, &vars) {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!(client_id = %info.client_id, topic = sub.topic, error = %e,
                        "auto-subscription skipped");
                    continue;
                }
            };
            let sf = match SubscriptionFilter::parse(&filter, levels) {
                Ok(sf) => sf,
                Err(e) => {
                    tracing::warn!(client_id = %info.client_id, filter, error = %e,
                        "auto-subscription is not a valid filter");
                    continue;
                }
            };
            if let Err(e) = self.subscribe(session, sf, sub.opts) {
                tracing::warn!(client_id = %info.client_id, filter, error = %e,
                    "auto-subscription refused");
            }
        }
    }
}
