//! Serving admin requests (core NATS request/reply) next to the command consumer.

use crate::admin::{Reply, Request};
use crate::participant::Participant;
use tracing::{debug, warn};

/// Answers one admin request on its reply subject; a request without one is dropped.
pub(super) async fn answer<P: Participant>(
    participant: P,
    client: async_nats::Client,
    message: async_nats::Message,
) {
    let Some(reply_to) = message.reply.clone() else {
        warn!(subject = %message.subject, "admin message without a reply subject, dropped");
        return;
    };
    let reply = match serde_json::from_slice::<Request>(&message.payload) {
        Err(e) => Reply::Error(format!("invalid admin request: {e}")),
        Ok(request) => {
            debug!(?request, "admin request");
            match participant.admin(request).await {
                Ok(reply) => reply,
                Err(e) => {
                    warn!(error = %e, "admin request failed");
                    let retry = if e.is_transient() { ", try again" } else { "" };
                    Reply::Error(format!("internal error{retry}: {e}"))
                }
            }
        }
    };
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    if let Err(e) = client.publish(reply_to, body.into()).await {
        warn!(error = %e, "admin reply not sent");
    }
}
