//! Calendars: ICS feeds and CalDAV collections polled for meetings, so bots join on time.

pub mod ics;
pub mod poller;
mod windows_zones;
