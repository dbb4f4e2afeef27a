//! Polls due calendars (any replica; a claim holds a calendar for a lease), turns the instances
//! with a meeting link in the coming days into scheduled meetings, moves them when the event
//! moves, and cancels them when the event is cancelled or disappears. The dispatcher then sends
//! a bot `dispatch_lead` before each start.

use super::ics;
use crate::clock::now_ms;
use crate::store::{Calendar, CalendarMeeting, Store};
use chrono::{TimeZone, Utc};
use parley_bot::egress::{EgressError, EgressGuard, ReadError, read_capped};
use parley_shared::{EmailAddress, MeetingUrl};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct Poller {
    pub store: Store,
    /// Made by `egress` ([`EgressGuard::client`]): it resolves through the guard.
    pub http: reqwest::Client,
    pub egress: EgressGuard,
    /// Attendees outside the organisation's domains are not invitees.
    pub mail_policy: Arc<crate::mail::policy::MailPolicy>,
    /// How often a calendar is read when all is well.
    pub every: Duration,
    /// How far ahead events are scheduled.
    pub horizon: Duration,
}

const LEASE_MS: u64 = 60_000;
/// Feeds larger than this are refused (a calendar is a few hundred kilobytes at most).
const MAX_FEED: usize = 10 * 1024 * 1024;
/// A whole fetch, redirects included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// What a poll did, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub scheduled: usize,
    pub cancelled: usize,
}

impl Poller {
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            match self.store.claim_calendar(now_ms(), LEASE_MS).await {
                Ok(Some(calendar)) => self.poll(&calendar).await,
                Ok(None) => {
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim calendars; retrying");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        }
    }

    async fn poll(self: &Arc<Self>, calendar: &Calendar) {
        let id = calendar.calendar_id;
        // In a task of its own: a panic on one calendar's data is that calendar's error, not
        // the end of every calendar's syncing.
        let this = Arc::clone(self);
        let owned = calendar.clone();
        let outcome = match tokio::spawn(async move { this.fetch_and_sync(&owned).await }).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(calendar_id = %id, error = %e, "reading a calendar failed unexpectedly");
                Err(FetchError::Internal)
            }
        };
        let now = now_ms();
        let result = match &outcome {
            Ok((etag, modified, synced)) => {
                if synced.scheduled + synced.cancelled > 0 {
                    tracing::info!(calendar_id = %id, scheduled = synced.scheduled, cancelled = synced.cancelled, "calendar synced");
                }
                self.store
                    .calendar_polled(
                        id,
                        Ok((etag.as_deref(), modified.as_deref())),
                        now,
                        now + self.every.as_millis() as u64,
                    )
                    .await
            }
            Err(e) => {
                // 30 s doubling to an hour: a broken feed is not hammered.
                let wait = (30_000u64 << calendar.failures.min(7)).min(3_600_000);
                tracing::warn!(calendar_id = %id, error = %e.detail(), retry_in_s = wait / 1000, "cannot read a calendar");
                self.store
                    .calendar_polled(id, Err(&e.to_string()), now, now + wait)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot record a calendar poll");
        }
    }

    /// The validators of the response and what changed; nothing changes on `304 Not Modified`.
    async fn fetch_and_sync(
        &self,
        calendar: &Calendar,
    ) -> Result<(Option<String>, Option<String>, Synced), FetchError> {
        let url = url::Url::parse(&calendar.url).map_err(|_| FetchError::BadUrl)?;
        self.egress.check_url(&url).map_err(FetchError::Egress)?;
        let mut req = self.http.get(url);
        if let Some(user) = &calendar.username {
            req = req.basic_auth(user, calendar.password.as_deref());
        }
        if let Some(etag) = &calendar.etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &calendar.last_modified {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, modified);
        }
        let response = req.send().await.map_err(FetchError::from_http)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok((None, None, Synced::default()));
        }
        if !status.is_success() {
            return Err(FetchError::Status(status));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (etag, modified) = (
            header(reqwest::header::ETAG),
            header(reqwest::header::LAST_MODIFIED),
        );
        let body = read_capped(response, MAX_FEED).await.map_err(|e| match e {
            ReadError::Egress(e) => FetchError::Egress(e),
            ReadError::Http(e) => FetchError::from_http(e),
        })?;
        let text = String::from_utf8_lossy(&body).into_owned();
        let synced = self
            .sync(calendar, text, now_ms())
            .await
            .map_err(FetchError::Other)?;
        Ok((etag, modified, synced))
    }

    /// Makes the calendar's instances in `[now, now + horizon)` into meetings.
    pub async fn sync(
        &self,
        calendar: &Calendar,
        text: String,
        now: u64,
    ) -> anyhow::Result<Synced> {
        let from = Utc
            .timestamp_millis_opt(now as i64)
            .single()
            .unwrap_or_else(Utc::now);
        let to = from + chrono::Duration::from_std(self.horizon)?;
        // Parsing and expanding a feed is CPU work on untrusted data: off the async runtime,
        // within a budget (see `ics::Budget`).
        let (instances, errors) = tokio::task::spawn_blocking(move || {
            let events = ics::parse(&text)?;
            Ok::<_, ics::IcsError>(ics::instances(&events, from, to, &ics::Budget::default()))
        })
        .await
        .map_err(|e| {
            tracing::error!(calendar_id = %calendar.calendar_id, error = %e, "calendar processing failed unexpectedly");
            anyhow::anyhow!("internal error; the server log has details")
        })??;
        for e in &errors {
            tracing::warn!(calendar_id = %calendar.calendar_id, error = %e, "calendar event skipped");
        }
        let mut synced = Synced::default();
        let mut seen = HashSet::new();
        for i in instances {
            let key = i.key();
            let link = i.link.as_deref().and_then(|l| MeetingUrl::parse(l).ok());
            let (Some(url), false) = (link, i.cancelled) else {
                continue;
            };
            let start_ms = u64::try_from(i.start.timestamp_millis()).unwrap_or(0);
            let meeting = CalendarMeeting {
                key,
                owner_id: calendar.user_id,
                title: i.title.chars().take(200).collect(),
                url,
                start_ms,
                invitees: i
                    .people
                    .iter()
                    .filter_map(|p| EmailAddress::parse(p).ok())
                    .filter(|e| self.mail_policy.may_invite(e))
                    .take(self.mail_policy.quotas.invitees_per_meeting)
                    .collect(),
            };
            // The key the meeting is kept under: the instance's, or scoped to this calendar's
            // owner when someone else's meeting has it (see `sync_calendar_meeting`).
            let (_, key) = self.store.sync_calendar_meeting(&meeting, now).await?;
            if !self
                .store
                .set_calendar_instance(calendar.calendar_id, &key, start_ms)
                .await?
            {
                // Removed while being read: what it just scheduled goes with it.
                self.store.drop_calendar_instance(None, &key).await?;
                return Ok(synced);
            }
            seen.insert(key);
            synced.scheduled += 1;
        }
        // Instances shown before and gone now (cancelled, deleted, or moved past the horizon).
        for (key, start) in self.store.calendar_instances(calendar.calendar_id).await? {
            if !seen.contains(&key)
                && start >= now
                && self
                    .store
                    .drop_calendar_instance(Some(calendar.calendar_id), &key)
                    .await?
                    .is_some()
            {
                synced.cancelled += 1;
            }
        }
        Ok(synced)
    }
}

/// Why a calendar could not be read: what its owner is shown (a fixed, human message that
/// tells nothing about what answered inside a network) and, for the log, the details.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the calendar address is not valid")]
    BadUrl,
    #[error("{0}")]
    Egress(EgressError),
    #[error("the calendar server did not answer in time")]
    Timeout,
    #[error("cannot connect to the calendar server")]
    Connect(reqwest::Error),
    #[error(
        "the calendar server redirected too often or to an address this server does not fetch from"
    )]
    Redirect(reqwest::Error),
    #[error("the calendar server answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the calendar could not be read")]
    Http(reqwest::Error),
    #[error("the calendar could not be read: {0:#}")]
    Other(anyhow::Error),
    #[error("the calendar could not be read (internal error; the server log has details)")]
    Internal,
}

/// The errors beneath `e`, nearest first.
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(e.source(), |s| s.source())
}

impl FetchError {
    fn from_http(e: reqwest::Error) -> Self {
        // User URLs may carry secrets: the error is kept without it.
        let e = e.without_url();
        if let Some(refused) = causes(&e).find_map(|s| s.downcast_ref::<EgressError>()) {
            return Self::Egress(refused.clone());
        }
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_redirect() {
            Self::Redirect(e)
        } else if e.is_connect() {
            Self::Connect(e)
        } else {
            Self::Http(e)
        }
    }

    /// For the log: the underlying error too.
    fn detail(&self) -> String {
        match self {
            Self::Connect(e) | Self::Redirect(e) | Self::Http(e) => {
                causes(e).fold(e.to_string(), |text, s| format!("{text}: {s}"))
            }
            other => other.to_string(),
        }
    }
}
