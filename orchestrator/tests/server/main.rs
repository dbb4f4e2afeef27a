//! The server's tests, in one binary sharing one private Postgres and one private Redis (or
//! `DATABASE_URL`/`REDIS_URL` when given). Each test gets its own database and app on port 0.

mod helpers;

#[path = "../support/child_servers.rs"]
mod child_servers;
#[path = "../support/mail.rs"]
mod mail;

mod account_attacks;
mod accounts;
mod bots;
mod calendar_attacks;
mod calendars;
mod faults;
mod fleet;
mod ingest;
mod live;
mod livekit;
mod logs;
mod mail_servers;
mod meet;
mod meetings;
mod ops;
mod sample_media;
mod schema;
mod security;
mod store;
mod summaries;
mod tenant_limits;
mod zoom;
