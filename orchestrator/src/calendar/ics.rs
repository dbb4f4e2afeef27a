//! iCalendar (RFC 5545) as calendars serve it: unfolded content lines, VEVENTs with their
//! times, recurrence rules, exceptions, overridden instances and cancellations, expanded into
//! the instances that fall in a window, each with the meeting link found in it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rrule::RRuleSet;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IcsError {
    #[error("not an iCalendar file (no BEGIN:VCALENDAR)")]
    NotCalendar,
    #[error("event {uid:?}: {what}")]
    Event { uid: String, what: String },
}

/// A property value with its parameters (`DTSTART;TZID=Europe/Berlin:20261201T100000`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prop {
    pub value: String,
    pub params: HashMap<String, String>,
}

/// One VEVENT as written.
#[derive(Debug, Clone, Default)]
pub struct VEvent {
    pub props: HashMap<String, Vec<Prop>>,
}

impl VEvent {
    fn first(&self, name: &str) -> Option<&Prop> {
        self.props.get(name).and_then(|v| v.first())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.first(name).map(|p| unescape(&p.value))
    }

    pub fn uid(&self) -> String {
        self.text("UID").unwrap_or_default()
    }
}

/// Undoes RFC 5545 line folding: a line starting with a space or tab continues the previous one.
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match raw.chars().next() {
            Some(' ' | '\t') if !lines.is_empty() => {
                if let Some(last) = lines.last_mut() {
                    last.push_str(&raw[1..]);
                }
            }
            _ if raw.is_empty() => {}
            _ => lines.push(raw.to_owned()),
        }
    }
    lines
}

/// `NAME;P1=V1;P2="V:2":VALUE`, with quoted parameter values that may hold `:` and `;`.
fn content_line(line: &str) -> Option<(String, Prop)> {
    let mut in_quotes = false;
    let mut split = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                split = Some(i);
                break;
            }
            _ => {}
        }
    }
    let (head, value) = line.split_at(split?);
    let value = &value[1..];
    let mut parts = head.split(';');
    let name = parts.next()?.trim().to_ascii_uppercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_uppercase(),
                v.trim_matches('"').to_owned(),
            )
        })
        .collect();
    Some((
        name,
        Prop {
            value: value.to_owned(),
            params,
        },
    ))
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// The VEVENTs of a calendar (other components are skipped, VTIMEZONE included: times are
/// resolved through the IANA names their TZID carries).
pub fn parse(text: &str) -> Result<Vec<VEvent>, IcsError> {
    let lines = unfold(text);
    if !lines
        .iter()
        .any(|l| l.eq_ignore_ascii_case("BEGIN:VCALENDAR"))
    {
        return Err(IcsError::NotCalendar);
    }
    let mut events = Vec::new();
    let mut depth_in_event = None::<usize>;
    let mut stack: Vec<String> = Vec::new();
    let mut current = VEvent::default();
    for line in &lines {
        let Some((name, prop)) = content_line(line) else {
            continue;
        };
        match name.as_str() {
            "BEGIN" => {
                stack.push(prop.value.to_ascii_uppercase());
                if prop.value.eq_ignore_ascii_case("VEVENT") && depth_in_event.is_none() {
                    depth_in_event = Some(stack.len());
                    current = VEvent::default();
                }
            }
            "END" => {
                if depth_in_event == Some(stack.len()) {
                    events.push(std::mem::take(&mut current));
                    depth_in_event = None;
                }
                stack.pop();
            }
            // Properties of nested components (VALARM) are not the event's.
            _ if depth_in_event == Some(stack.len()) => {
                current.props.entry(name).or_default().push(prop);
            }
            _ => {}
        }
    }
    Ok(events)
}

/// When an instance happens, in UTC; `all_day` for DATE values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct When {
    pub at: DateTime<Utc>,
    pub all_day: bool,
}

/// A DATE-TIME (UTC with `Z`, in a TZID zone, or floating: taken as UTC) or a DATE.
fn when(prop: &Prop) -> Option<When> {
    let v = prop.value.trim();
    if prop
        .params
        .get("VALUE")
        .is_some_and(|t| t.eq_ignore_ascii_case("DATE"))
        || v.len() == 8
    {
        let d = NaiveDate::parse_from_str(v, "%Y%m%d").ok()?;
        return Some(When {
            at: Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?),
            all_day: true,
        });
    }
    if let Some(utc) = v.strip_suffix('Z') {
        let t = NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S").ok()?;
        return Some(When {
            at: Utc.from_utc_datetime(&t),
            all_day: false,
        });
    }
    let t = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S").ok()?;
    let at = match prop.params.get("TZID") {
        Some(tzid) => {
            let tz = zone(tzid)?;
            // An ambiguous local time (the hour repeated in autumn) takes its first occurrence;
            // one that does not exist (skipped in spring) is an error in the feed.
            tz.from_local_datetime(&t).earliest()?.with_timezone(&Utc)
        }
        None => Utc.from_utc_datetime(&t),
    };
    Some(When { at, all_day: false })
}

/// The IANA zone a TZID names: as written, behind a vendor prefix
/// (`/mozilla.org/20070129_1/America/New_York`), or as a Windows zone name (Outlook, Exchange).
pub fn zone(tzid: &str) -> Option<chrono_tz::Tz> {
    let tzid = tzid.trim();
    if let Some(tz) = super::windows_zones::iana(tzid) {
        return Some(tz);
    }
    let mut rest = tzid.trim_start_matches('/');
    loop {
        if let Ok(tz) = rest.parse() {
            return Some(tz);
        }
        rest = rest.split_once('/')?.1;
    }
}

/// One occurrence of an event inside the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub uid: String,
    /// The start the recurrence rule gives it (its RECURRENCE-ID), which identifies it even
    /// when it was moved.
    pub original_start: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub title: String,
    pub link: Option<String>,
    pub cancelled: bool,
    /// Attendees' and the organizer's addresses.
    pub people: Vec<String>,
    /// One of a series: `original_start` then tells it from its siblings. A single event keeps
    /// its identity (its UID) when it moves.
    pub recurring: bool,
}

impl Instance {
    /// What identifies this instance across polls and across calendars. An event without a
    /// UID (against RFC 5545) is told apart by its title and start.
    pub fn key(&self) -> String {
        if self.uid.is_empty() {
            format!("-{}|{}", self.title, self.original_start.timestamp_millis())
        } else if self.recurring {
            format!("{}|{}", self.uid, self.original_start.timestamp_millis())
        } else {
            self.uid.clone()
        }
    }
}

fn err(uid: &str, what: impl Into<String>) -> IcsError {
    IcsError::Event {
        uid: uid.to_owned(),
        what: what.into(),
    }
}

/// What reading one feed may cost: a feed is untrusted input, and a rule such as
/// `FREQ=SECONDLY` from the year 1900 would otherwise take hours to reach today.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Recurrences computed for the whole feed, inside the window or before it.
    pub steps: usize,
    /// Instances in the window for the whole feed (each may become a meeting).
    pub instances: usize,
    /// Instances in the window for one event: past this, the event is an error, and the
    /// feed's other events keep their share.
    pub instances_per_event: usize,
    /// Wall time for the whole feed.
    pub time: std::time::Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            steps: 200_000,
            instances: 2_000,
            instances_per_event: 500,
            time: std::time::Duration::from_secs(2),
        }
    }
}

/// What is left of a [`Budget`] while a feed is read.
struct Spending {
    steps: usize,
    instances: usize,
    instances_per_event: usize,
    until: std::time::Instant,
}

impl Spending {
    fn new(budget: &Budget) -> Self {
        Self {
            steps: budget.steps,
            instances: budget.instances,
            instances_per_event: budget.instances_per_event,
            until: std::time::Instant::now() + budget.time,
        }
    }

    /// Takes one step; false once the steps or the time are spent.
    fn step(&mut self) -> bool {
        if self.steps == 0 {
            return false;
        }
        self.steps -= 1;
        // The clock is read every so often, not on every step.
        if self.steps.is_multiple_of(1024) && std::time::Instant::now() >= self.until {
            self.steps = 0;
            return false;
        }
        true
    }
}

/// The instances starting in `[from, to)`: recurrences expanded, EXDATEs removed, overridden
/// instances (same UID with RECURRENCE-ID) in place of the ones they replace. Events that do not
/// parse, or that go past the budget, are reported and skipped, so one bad event does not hide
/// the rest of a calendar.
pub fn instances(
    events: &[VEvent],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    budget: &Budget,
) -> (Vec<Instance>, Vec<IcsError>) {
    let mut spending = Spending::new(budget);
    let mut masters: Vec<&VEvent> = Vec::new();
    let mut overrides: HashMap<(String, DateTime<Utc>), &VEvent> = HashMap::new();
    let mut errors = Vec::new();
    for e in events {
        match e.first("RECURRENCE-ID").map(when) {
            Some(Some(rid)) => {
                overrides.insert((e.uid(), rid.at), e);
            }
            Some(None) => errors.push(err(&e.uid(), "unreadable RECURRENCE-ID")),
            None => masters.push(e),
        }
    }
    let mut out = Vec::new();
    for master in masters {
        match expand(master, &overrides, from, to, &mut spending) {
            Ok(mut found) => out.append(&mut found),
            Err(e) => errors.push(e),
        }
    }
    // An override whose master is missing (a feed that only carries the moved instance).
    for ((uid, rid), e) in &overrides {
        if !out
            .iter()
            .any(|i| &i.uid == uid && &i.original_start == rid)
            && !events
                .iter()
                .any(|m| m.first("RECURRENCE-ID").is_none() && &m.uid() == uid)
        {
            match instance(e, *rid) {
                Ok(i) if i.start >= from && i.start < to => out.push(i),
                Ok(_) => {}
                Err(x) => errors.push(x),
            }
        }
    }
    out.sort_by_key(|i| (i.start, i.uid.clone()));
    (out, errors)
}

fn expand(
    master: &VEvent,
    overrides: &HashMap<(String, DateTime<Utc>), &VEvent>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    spending: &mut Spending,
) -> Result<Vec<Instance>, IcsError> {
    let uid = master.uid();
    let start_prop = master
        .first("DTSTART")
        .ok_or_else(|| err(&uid, "no DTSTART"))?;
    let start = when(start_prop).ok_or_else(|| err(&uid, "unreadable DTSTART"))?;
    let starts: Vec<DateTime<Utc>> = match master.first("RRULE") {
        None => vec![start.at],
        Some(rule) => {
            // Instances that started up to a day before the window may still be in it.
            let after = from - chrono::Duration::days(1);
            let dtstart = rebased_start(start_prop, start, &rule.value, after)
                .unwrap_or_else(|| start_prop.value.clone());
            let mut set = format!(
                "DTSTART{}:{}\nRRULE:{}",
                params_text(start_prop),
                dtstart,
                rule.value
            );
            for ex in master.props.get("EXDATE").into_iter().flatten() {
                for v in ex.value.split(',') {
                    set.push_str(&format!("\nEXDATE{}:{}", params_text(ex), v));
                }
            }
            // Limited: a rule that never yields (the 31st of February) gives up, not spins.
            let parsed = set
                .parse::<RRuleSet>()
                .map_err(|e| err(&uid, format!("recurrence: {e}")))?
                .limit();
            let mut starts = Vec::new();
            for d in &parsed {
                if !spending.step() {
                    return Err(err(&uid, "recurrence: too many occurrences to compute"));
                }
                let d = d.with_timezone(&Utc);
                if d >= to {
                    break;
                }
                if d >= after {
                    if starts.len() == spending.instances_per_event.min(spending.instances) {
                        return Err(err(&uid, "recurrence: too many instances in the window"));
                    }
                    starts.push(d);
                }
            }
            spending.instances -= starts.len();
            starts
        }
    };
    let mut out = Vec::new();
    for original in starts {
        let i = match overrides.get(&(uid.clone(), original)) {
            Some(o) => instance(o, original)?,
            None => {
                let mut i = instance(master, original)?;
                let shift = original - start.at;
                i.start = original;
                i.end = i
                    .end
                    .checked_add_signed(shift)
                    .ok_or_else(|| err(&uid, "an instance ends past the calendar's range"))?;
                i
            }
        };
        if i.start >= from && i.start < to {
            out.push(i);
        }
    }
    Ok(out)
}

/// A DTSTART moved forward by whole recurrence periods to just before `after`, for rules whose
/// periods are fixed lengths of local time and that have no COUNT (a COUNT counts from the
/// real start): the same instances from `after` on, without computing the centuries before.
/// `None` keeps the written start.
fn rebased_start(prop: &Prop, start: When, rule: &str, after: DateTime<Utc>) -> Option<String> {
    let mut unit: Option<i64> = None;
    let mut interval: i64 = 1;
    for part in rule.split(';') {
        let (k, v) = part.split_once('=')?;
        match k.trim().to_ascii_uppercase().as_str() {
            "COUNT" => return None,
            "INTERVAL" => interval = v.trim().parse().ok().filter(|n| *n > 0)?,
            "FREQ" => {
                unit = Some(match v.trim().to_ascii_uppercase().as_str() {
                    "SECONDLY" => 1,
                    "MINUTELY" => 60,
                    "HOURLY" => 3_600,
                    "DAILY" => 86_400,
                    "WEEKLY" => 604_800,
                    _ => return None,
                });
            }
            _ => {}
        }
    }
    let period = unit?.checked_mul(interval)?;
    if start.all_day && period % 86_400 != 0 {
        return None;
    }
    let behind = (after - start.at).num_seconds();
    // Within a couple of days of periods the rule is cheap to compute as written.
    if behind <= period.saturating_mul(2).max(2 * 86_400) {
        return None;
    }
    let shift = chrono::Duration::try_seconds((behind / period - 1) * period)?;
    let v = prop.value.trim();
    if start.all_day {
        let d = NaiveDate::parse_from_str(v, "%Y%m%d").ok()?;
        return Some((d + shift).format("%Y%m%d").to_string());
    }
    let (local, z) = match v.strip_suffix('Z') {
        Some(utc) => (utc, "Z"),
        None => (v, ""),
    };
    // Wall-clock time is shifted, as the rule counts periods in the event's own zone.
    let t = NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M%S").ok()?;
    Some(format!(
        "{}{z}",
        t.checked_add_signed(shift)?.format("%Y%m%dT%H%M%S")
    ))
}

/// The parameters the recurrence library reads, with the TZID as the IANA name it knows.
fn params_text(p: &Prop) -> String {
    p.params
        .iter()
        .filter_map(|(k, v)| match k.as_str() {
            "TZID" => Some(format!(
                ";TZID={}",
                zone(v).map_or(v.as_str(), |tz| tz.name())
            )),
            "VALUE" => Some(format!(";VALUE={v}")),
            _ => None,
        })
        .collect()
}

fn instance(e: &VEvent, original_start: DateTime<Utc>) -> Result<Instance, IcsError> {
    let uid = e.uid();
    let start = e
        .first("DTSTART")
        .and_then(when)
        .ok_or_else(|| err(&uid, "no readable DTSTART"))?;
    let end = match (e.first("DTEND").and_then(when), e.text("DURATION")) {
        (Some(end), _) => end.at,
        (None, Some(d)) => duration(&d)
            .and_then(|d| start.at.checked_add_signed(d))
            .ok_or_else(|| err(&uid, "unreadable DURATION"))?,
        (None, None) if start.all_day => start
            .at
            .checked_add_signed(chrono::Duration::days(1))
            .ok_or_else(|| err(&uid, "DTSTART out of range"))?,
        (None, None) => start.at,
    };
    let texts: Vec<String> = [
        "LOCATION",
        "URL",
        "CONFERENCE",
        "X-GOOGLE-CONFERENCE",
        "DESCRIPTION",
    ]
    .iter()
    .flat_map(|n| e.props.get(*n).into_iter().flatten())
    .map(|p| unescape(&p.value))
    .collect();
    let people = ["ATTENDEE", "ORGANIZER"]
        .iter()
        .flat_map(|n| e.props.get(*n).into_iter().flatten())
        .filter_map(|p| {
            let v = p.value.trim();
            let addr = v
                .strip_prefix("mailto:")
                .or_else(|| v.strip_prefix("MAILTO:"))?;
            Some(addr.to_ascii_lowercase())
        })
        .collect();
    Ok(Instance {
        uid,
        original_start,
        start: start.at,
        end,
        title: e.text("SUMMARY").unwrap_or_else(|| "Meeting".to_owned()),
        link: texts.iter().find_map(|t| meeting_link(t)),
        cancelled: e
            .text("STATUS")
            .is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED")),
        people,
        recurring: e.first("RRULE").is_some() || e.first("RECURRENCE-ID").is_some(),
    })
}

/// `PT1H30M`, `P1D`, `PT45M`: the forms calendars write.
fn duration(text: &str) -> Option<chrono::Duration> {
    let t = text.trim().strip_prefix('P')?;
    let (date, time) = t.split_once('T').unwrap_or((t, ""));
    let mut total = chrono::Duration::zero();
    let mut num = String::new();
    for (part, units) in [(date, "WD"), (time, "HMS")] {
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            if !units.contains(c) {
                return None;
            }
            let n: i64 = num.parse().ok()?;
            num.clear();
            let part = match c {
                'W' => chrono::Duration::try_weeks(n),
                'D' => chrono::Duration::try_days(n),
                'H' => chrono::Duration::try_hours(n),
                'M' => chrono::Duration::try_minutes(n),
                _ => chrono::Duration::try_seconds(n),
            }?;
            total = total.checked_add(&part)?;
        }
    }
    num.is_empty().then_some(total)
}

/// The first meeting link in a text: Zoom, Google Meet, Teams, or a Janus room.
pub fn meeting_link(text: &str) -> Option<String> {
    const MARKERS: [&str; 6] = [
        "janus+wss://",
        "janus+ws://",
        "https://meet.google.com/",
        "zoom.us/j/",
        "zoom.us/my/",
        "https://teams.microsoft.com/l/meetup-join/",
    ];
    let mut best: Option<(usize, String)> = None;
    for marker in MARKERS {
        let Some(at) = text.find(marker) else {
            continue;
        };
        // A Zoom link starts at its scheme, which may carry a company subdomain.
        let start = if marker.starts_with("zoom") {
            text[..at]
                .rfind("https://")
                .filter(|s| !text[*s..at].contains(char::is_whitespace))?
        } else {
            at
        };
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | ')' | ']'))
            .map_or(text.len(), |n| start + n);
        let link = text[start..end]
            .trim_end_matches(['.', ',', ';'])
            .to_owned();
        if best.as_ref().is_none_or(|(s, _)| start < *s) {
            best = Some((start, link));
        }
    }
    best.map(|(_, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    const FEED: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:standup@example.com\r\nSUMMARY:Stand-up\r\n\
DTSTART;TZID=Europe/Berlin:20261130T093000\r\nDTEND;TZID=Europe/Berlin:20261130T094500\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6\r\nEXDATE;TZID=Europe/Berlin:20261202T093000\r\n\
LOCATION:janus+ws://sfu.example.com:8188/?room=1234\r\n\
ATTENDEE;CN=Ana:mailto:ANA@example.com\r\nORGANIZER:mailto:tom@example.com\r\n\
BEGIN:VALARM\r\nTRIGGER:-PT10M\r\nDESCRIPTION:ignored\r\nEND:VALARM\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:standup@example.com\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261207T093000\r\n\
DTSTART;TZID=Europe/Berlin:20261207T110000\r\nDURATION:PT30M\r\nSUMMARY:Stand-up (moved)\r\n\
LOCATION:janus+ws://sfu.example.com:8188/?room=1234\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:review@example.com\r\nSUMMARY:Design review\r\n\
DTSTART:20261201T150000Z\r\nDTEND:20261201T160000Z\r\n\
DESCRIPTION:Join Zoom Meeting\\nhttps://acme.zoom.us/j/123456789?pwd=abc. Thanks\r\n\
STATUS:CANCELLED\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:meet@example.com\r\nSUMMARY:1:1\r\nDTSTART:20261203T100000Z\r\n\
X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij\r\n\
DESCRIPTION:a long line that is fol\r\n ded in the middle\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn recurrences_exceptions_overrides_and_cancellations_expand_in_the_window() {
        let events = parse(FEED).expect("calendar");
        assert_eq!(events.len(), 4);
        let (found, errors) = instances(
            &events,
            at("2026-11-30T00:00:00Z"),
            at("2026-12-10T00:00:00Z"),
            &Budget::default(),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let summary: Vec<(&str, String, bool)> = found
            .iter()
            .map(|i| (i.title.as_str(), i.start.to_rfc3339(), i.cancelled))
            .collect();
        assert_eq!(
            summary,
            [
                ("Stand-up", "2026-11-30T08:30:00+00:00".to_owned(), false),
                (
                    "Design review",
                    "2026-12-01T15:00:00+00:00".to_owned(),
                    true
                ),
                ("1:1", "2026-12-03T10:00:00+00:00".to_owned(), false),
                (
                    "Stand-up (moved)",
                    "2026-12-07T10:00:00+00:00".to_owned(),
                    false
                ),
                ("Stand-up", "2026-12-09T08:30:00+00:00".to_owned(), false),
            ],
            "Wednesday the 2nd is excepted; Monday the 7th moved to 11:00 Berlin"
        );
        let moved = &found[3];
        assert_eq!(moved.original_start, at("2026-12-07T08:30:00Z"));
        assert_eq!(moved.end - moved.start, chrono::Duration::minutes(30));
        assert_eq!(found[0].end - found[0].start, chrono::Duration::minutes(15));
        assert_eq!(
            found[0].link.as_deref(),
            Some("janus+ws://sfu.example.com:8188/?room=1234")
        );
        assert_eq!(found[0].people, ["ana@example.com", "tom@example.com"]);
        assert_eq!(
            found[1].link.as_deref(),
            Some("https://acme.zoom.us/j/123456789?pwd=abc")
        );
        assert_eq!(
            found[2].link.as_deref(),
            Some("https://meet.google.com/abc-defg-hij")
        );
    }

    #[test]
    fn junk_is_refused_and_one_bad_event_does_not_hide_the_others() {
        assert_eq!(
            parse("hello").expect_err("not a calendar"),
            IcsError::NotCalendar
        );
        let feed = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:bad\nDTSTART:garbage\nEND:VEVENT\n\
BEGIN:VEVENT\nUID:good\nDTSTART:20261201T100000Z\nEND:VEVENT\nEND:VCALENDAR\n";
        let (found, errors) = instances(
            &parse(feed).expect("parse"),
            at("2026-11-01T00:00:00Z"),
            at("2027-01-01T00:00:00Z"),
            &Budget::default(),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].uid, "good");
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn durations_and_links_in_their_usual_forms() {
        assert_eq!(duration("PT1H30M"), Some(chrono::Duration::minutes(90)));
        assert_eq!(duration("P1D"), Some(chrono::Duration::days(1)));
        assert_eq!(
            duration("P1W2DT3S"),
            Some(chrono::Duration::days(9) + chrono::Duration::seconds(3))
        );
        assert_eq!(duration("1H"), None);
        assert_eq!(duration("P999999999999999999W"), None, "overflows");
        assert_eq!(
            meeting_link(
                "Teams: <https://teams.microsoft.com/l/meetup-join/19%3ameeting_x/0?context=y>"
            ),
            Some("https://teams.microsoft.com/l/meetup-join/19%3ameeting_x/0?context=y".to_owned())
        );
        assert_eq!(meeting_link("no link here, see https://example.com"), None);
    }

    /// The instances of `days` days from `from`, with the default budget.
    fn within(events: &[VEvent], from: DateTime<Utc>, days: i64) -> (Vec<Instance>, Vec<IcsError>) {
        instances(
            events,
            from,
            from + chrono::Duration::days(days),
            &Budget::default(),
        )
    }

    fn feed(events: &str) -> Vec<VEvent> {
        parse(&format!("BEGIN:VCALENDAR\r\n{events}END:VCALENDAR\r\n")).expect("calendar")
    }

    fn event(uid: &str, lines: &str) -> String {
        format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\n{lines}LOCATION:https://meet.google.com/abc-defg-hij\r\nEND:VEVENT\r\n"
        )
    }

    #[test]
    fn a_rule_from_centuries_ago_costs_what_one_from_today_costs() {
        let events = feed(&format!(
            "{}{}",
            event(
                "ticker",
                "DTSTART:19000101T000000Z\r\nRRULE:FREQ=SECONDLY;INTERVAL=7\r\n"
            ),
            event(
                "daily",
                "DTSTART;TZID=Europe/Berlin:19500102T093000\r\nRRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR\r\n"
            ),
        ));
        let from = at("2026-12-07T00:00:00Z");
        let started = std::time::Instant::now();
        let (found, errors) = within(&events, from, 14);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        // Every seventh second of two weeks is more than a feed may schedule.
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].to_string().contains("ticker"), "{errors:?}");
        let daily: Vec<_> = found.iter().filter(|i| i.uid == "daily").collect();
        assert_eq!(daily.len(), 10, "weekdays of two weeks");
        assert_eq!(
            daily[0].start,
            at("2026-12-07T08:30:00Z"),
            "09:30 Berlin, kept"
        );
        assert_eq!(daily[0].original_start, daily[0].start);
    }

    #[test]
    fn a_rebased_rule_keeps_its_phase() {
        // Every third day from a day long ago: the instances fall where counting from that
        // day puts them, not where counting from the window would.
        let events = feed(&event(
            "every3",
            "DTSTART:20000101T120000Z\r\nRRULE:FREQ=DAILY;INTERVAL=3\r\n",
        ));
        let from = at("2026-12-01T00:00:00Z");
        let (found, errors) = within(&events, from, 9);
        assert!(errors.is_empty(), "{errors:?}");
        let first = at("2000-01-01T12:00:00Z");
        for i in &found {
            assert_eq!((i.start - first).num_days() % 3, 0, "{}", i.start);
        }
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn values_past_the_calendar_range_are_errors_of_their_event() {
        let events = feed(&format!(
            "{}{}",
            event(
                "huge",
                "DTSTART:20261208T100000Z\r\nDURATION:P999999999999999999W\r\n"
            ),
            event("far", "DTSTART:20261208T100000Z\r\nDURATION:P99999999W\r\n"),
        ));
        let from = at("2026-12-07T00:00:00Z");
        let (found, errors) = within(&events, from, 14);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn vendor_prefixed_and_windows_zone_names_resolve() {
        assert_eq!(
            zone("/mozilla.org/20070129_1/America/New_York"),
            Some(chrono_tz::America::New_York)
        );
        assert_eq!(
            zone("/freeassociation.sourceforge.net/Tzfile/Europe/Paris"),
            Some(chrono_tz::Europe::Paris)
        );
        assert_eq!(
            zone("W. Europe Standard Time"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(zone("Mars/Olympus_Mons"), None);
        let events = feed(&event(
            "outlook",
            "DTSTART;TZID=W. Europe Standard Time:20261208T100000\r\n\
RRULE:FREQ=WEEKLY;COUNT=2\r\n",
        ));
        let from = at("2026-12-07T00:00:00Z");
        let (found, errors) = within(&events, from, 14);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].start, at("2026-12-08T09:00:00Z"));
    }
}
