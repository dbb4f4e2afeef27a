//! Posting queued deliveries. Every replica runs workers; a delivery is claimed with a lease, so
//! one whose worker died is sent again (receivers dedupe by `webhook-id`). A 2xx answer delivers
//! it; anything else is tried again, 5 s after the first attempt and doubling up to an hour,
//! until a day has passed: then it fails, its endpoint is disabled and the owner mailed.

use super::signing;
use crate::clock::now_ms;
use crate::mail::Mailer;
use crate::store::{ClaimedDelivery, Settled, Store};
use lettre::Message;
use lettre::message::Mailbox;
use parley_bot::egress::EgressGuard;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How an idle worker waits between looks at the queue.
const POLL: Duration = Duration::from_millis(250);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// The wait after the first failed attempt; it doubles after each.
    pub first: Duration,
    /// How long after it was queued a delivery is given up.
    pub give_up_after: Duration,
    /// How long an endpoint has to answer.
    pub timeout: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(5),
            give_up_after: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Retries {
    /// The wait after the `attempts`th failed attempt.
    fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(20);
        self.first
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF.max(self.first))
    }
}

/// What the workers need.
#[derive(Debug)]
pub struct Context {
    pub store: Store,
    pub egress: EgressGuard,
    /// Through the egress guard, without redirects.
    pub http: reqwest::Client,
    pub retries: Retries,
    pub mailer: Mailer,
    pub from: Mailbox,
}

impl Context {
    pub fn new(
        store: Store,
        egress: EgressGuard,
        retries: Retries,
        mailer: Mailer,
        from: Mailbox,
    ) -> anyhow::Result<Self> {
        let http = egress.client_without_redirects(retries.timeout)?;
        Ok(Self {
            store,
            egress,
            http,
            retries,
            mailer,
            from,
        })
    }
}

/// Sends deliveries until `shutdown` resolves; one being sent is finished first.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    // Longer than an attempt can take, so a live worker's claim is never taken over.
    let lease = ctx.retries.timeout + Duration::from_secs(30);
    loop {
        let wait = match ctx
            .store
            .claim_delivery(now_ms(), lease.as_millis() as u64)
            .await
        {
            Ok(Some(delivery)) => {
                let span = tracing::info_span!("webhook", meeting_id = %delivery.meeting_id, webhook_id = %delivery.webhook_id, delivery = delivery.delivery_id);
                send_and_settle(&ctx, &delivery).instrument(span).await;
                continue;
            }
            Ok(None) => POLL,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim webhook deliveries; retrying");
                Duration::from_secs(2)
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// An attempt's result: the endpoint's status if it answered, and why it did not count.
type Attempt = (Option<u16>, Result<(), String>);

async fn send(ctx: &Context, d: &ClaimedDelivery) -> Attempt {
    let key = match signing::key_of(&d.secret) {
        Ok(key) => key,
        Err(e) => return (None, Err(format!("the endpoint's secret is unusable: {e}"))),
    };
    let url = match url::Url::parse(&d.url) {
        Ok(url) => url,
        Err(_) => return (None, Err("the endpoint's address is not a URL".to_owned())),
    };
    if let Err(e) = ctx.egress.check_url(&url) {
        return (None, Err(e.to_string()));
    }
    let timestamp = now_ms() / 1000;
    let sent = ctx
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "Parley-Webhooks/1")
        .header("webhook-id", &d.delivery_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signing::sign(&key, &d.delivery_id, timestamp, &d.payload),
        )
        .body(d.payload.clone())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), Ok(())),
        Ok(r) => (
            Some(r.status().as_u16()),
            Err(format!("the endpoint answered {}", r.status())),
        ),
        // Without the URL: it may carry the receiver's token.
        Err(e) => (None, Err(e.without_url().to_string())),
    }
}

async fn send_and_settle(ctx: &Context, d: &ClaimedDelivery) {
    let (status, result) = send(ctx, d).await;
    let now = now_ms();
    let store = &ctx.store;
    let settled = match &result {
        Ok(()) => {
            store
                .settle_delivery(&d.delivery_id, Settled::Delivered, status, now)
                .await
        }
        Err(error) => {
            let retry_at = now + ctx.retries.backoff(d.attempts).as_millis() as u64;
            let deadline = d.queued_at + ctx.retries.give_up_after.as_millis() as u64;
            if retry_at <= deadline {
                tracing::info!(
                    attempts = d.attempts,
                    status,
                    error,
                    "webhook not delivered; will retry"
                );
                store
                    .settle_delivery(
                        &d.delivery_id,
                        Settled::Retry {
                            at_ms: retry_at,
                            error,
                        },
                        status,
                        now,
                    )
                    .await
            } else {
                tracing::warn!(
                    attempts = d.attempts,
                    status,
                    error,
                    "webhook not delivered for a day; endpoint disabled"
                );
                match store
                    .settle_delivery(&d.delivery_id, Settled::Failed { error }, status, now)
                    .await
                {
                    Ok(()) => disable(ctx, d, error, now).await,
                    failed => failed,
                }
            }
        }
    };
    // The lease runs out and the delivery is sent again: receivers dedupe by webhook-id.
    if let Err(e) = settled {
        tracing::warn!(error = %e, "cannot record a webhook delivery");
    }
}

async fn disable(
    ctx: &Context,
    d: &ClaimedDelivery,
    error: &str,
    now: u64,
) -> Result<(), crate::store::StoreError> {
    let reason = format!(
        "deliveries failed for {} hours; last: {error}",
        ctx.retries.give_up_after.as_secs() / 3600
    );
    if !ctx
        .store
        .disable_webhook(d.webhook_id, &reason, now)
        .await?
    {
        return Ok(());
    }
    let Some(owner) = ctx.store.user(d.user_id).await? else {
        return Ok(());
    };
    let body = format!(
        "Parley could not deliver events to your webhook {} for {} hours, so it is disabled \
         and its waiting events are given up.\n\nLast error: {error}\n\nFix the endpoint, then \
         redeliver a failed event (POST /webhooks/{}/deliveries/ID/redeliver) to turn it back \
         on, or add the webhook again.\n",
        d.webhook_id,
        ctx.retries.give_up_after.as_secs() / 3600,
        d.webhook_id,
    );
    let message = owner
        .email
        .as_str()
        .parse::<Mailbox>()
        .map_err(anyhow::Error::from)
        .and_then(|to| {
            Message::builder()
                .from(ctx.from.clone())
                .to(to)
                .subject("Your Parley webhook was disabled")
                .body(body)
                .map_err(anyhow::Error::from)
        });
    match message {
        Ok(message) => match ctx.mailer.send(message).await {
            Ok(via) => tracing::info!(via, "webhook owner told it was disabled"),
            Err(e) => tracing::warn!(error = %e, "cannot tell a webhook's owner it was disabled"),
        },
        Err(e) => tracing::warn!(error = %e, "cannot write the webhook-disabled mail"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_wait_to_an_hour() {
        let r = Retries::default();
        let waits: Vec<u64> = [1, 2, 3, 4, 10, 11, 30]
            .map(|a| r.backoff(a).as_secs())
            .into();
        assert_eq!(waits, [5, 10, 20, 40, 2560, 3600, 3600]);
    }
}
