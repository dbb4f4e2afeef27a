//! Live captions: a meeting's segments fanned out to viewers of its share link.
//!
//! The ingest stores a batch, then appends its segments to the meeting's live log (a Redis stream
//! `parley:live:{meeting}` in production, an in-process ring in embedded mode). Each replica runs
//! one [`hub`] per meeting that has viewers there: it tails the log and broadcasts to the viewers'
//! sockets. A viewer starts from a snapshot of the database, or from the log after the cursor it
//! last saw, so a reconnect has no gap; the page keys lines by segment, so overlap shows once.

mod cursor;
mod hub;
mod log;
mod memory_log;
mod redis_log;
pub mod viewer;

use crate::auth::ShareToken;
pub use cursor::Cursor;
pub use hub::{Hubs, Subscription};
pub use log::{LiveLog, LiveSegment};

/// A log entry as viewers and event streams send it: the segment with its cursor.
pub fn segment_message(cursor: Cursor, json: &str) -> String {
    format!(r#"{{"type":"segment","cursor":"{cursor}","segment":{json}}}"#)
}

/// The link participants open.
pub fn share_link(public_url: &str, token: &ShareToken) -> String {
    format!(
        "{}/live/{}",
        public_url.trim_end_matches('/'),
        token.expose()
    )
}
