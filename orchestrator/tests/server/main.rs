//! The server's tests, in one binary sharing one private Postgres and one private Redis (or
//! `DATABASE_URL`/`REDIS_URL` when given). Each test gets its own database and app on port 0.
//! Tests that need neither (the demo, the deployment manifests, the Kubernetes launcher against
//! its fake API, summary quality) live here too: each test binary links the whole orchestrator,
//! whisper.cpp and webrtc-rs, so fewer binaries build faster.

mod helpers;

#[path = "../support/child_servers.rs"]
mod child_servers;
#[path = "../support/mail.rs"]
mod mail;
#[path = "../support/s3.rs"]
mod s3;

mod account_attacks;
mod accounts;
mod api_keys;
mod bots;
mod calendar_attacks;
mod calendars;
mod deletion;
mod demo;
mod deploy_manifests;
mod events;
mod faults;
mod fleet;
mod ingest;
mod kubernetes_launcher;
mod live;
mod livekit;
mod logs;
mod mail_servers;
mod mcp;
mod meet;
mod meetings;
mod openapi_fuzzing;
mod ops;
mod sample_media;
mod schema;
mod security;
mod store;
mod summaries;
mod summary_quality;
mod tenant_limits;
mod web_sessions;
mod webhooks;
mod zoom;
