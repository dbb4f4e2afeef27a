//! Deadlines as people state them ("by Thursday", "tomorrow", "on the 20th", "right after this
//! call"), found in a sentence and resolved to a date relative to the meeting's day.

use time::{Date, Duration, Month, Weekday};

/// A deadline: the words that stated it, and the day they mean when the meeting's day is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub stated: String,
    pub date: Option<Date>,
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("monday", Weekday::Monday),
    ("tuesday", Weekday::Tuesday),
    ("wednesday", Weekday::Wednesday),
    ("thursday", Weekday::Thursday),
    ("friday", Weekday::Friday),
    ("saturday", Weekday::Saturday),
    ("sunday", Weekday::Sunday),
];

const MONTHS: [(&str, Month); 12] = [
    ("january", Month::January),
    ("february", Month::February),
    ("march", Month::March),
    ("april", Month::April),
    ("may", Month::May),
    ("june", Month::June),
    ("july", Month::July),
    ("august", Month::August),
    ("september", Month::September),
    ("october", Month::October),
    ("november", Month::November),
    ("december", Month::December),
];

/// Words that introduce a deadline.
const LEADS: [&str; 6] = ["by", "before", "until", "till", "due", "on"];

/// Phrases that are deadlines on their own, with their offset in days from the meeting (-1: the
/// week's Friday).
const RELATIVE: [(&[&str], i64); 15] = [
    (&["right", "after", "this", "call"], 0),
    (&["right", "after", "the", "call"], 0),
    (&["after", "this", "call"], 0),
    (&["after", "the", "meeting"], 0),
    (&["end", "of", "day"], 0),
    (&["end", "of", "the", "day"], 0),
    (&["this", "afternoon"], 0),
    (&["tonight"], 0),
    (&["today"], 0),
    (&["tomorrow"], 1),
    (&["the", "end", "of", "the", "day"], 0),
    (&["end", "of", "the", "week"], -1),
    (&["the", "end", "of", "the", "week"], -1),
    (&["end", "of", "week"], -1),
    (&["next", "week"], 7),
];

/// The first deadline stated in `words` (lowercase, punctuation removed).
pub fn find(words: &[&str], meeting_day: Option<Date>) -> Option<Deadline> {
    for i in 0..words.len() {
        let lead = LEADS.contains(&words[i]);
        let start = if lead { i + 1 } else { i };
        if let Some((len, date)) = absolute(&words[start..], meeting_day) {
            // Bare weekdays and dates count only after a lead word ("on Monday we shipped" is
            // not a deadline, "Monday" alone is usually a report).
            if lead {
                return Some(Deadline {
                    stated: words[i..start + len].join(" "),
                    date,
                });
            }
        }
        for (phrase, days) in RELATIVE {
            if words[start..].starts_with(phrase) {
                let date = meeting_day.map(|d| match days {
                    -1 => next_weekday(d, Weekday::Friday, true),
                    n => d + Duration::days(n),
                });
                return Some(Deadline {
                    stated: words[i..start + phrase.len()].join(" "),
                    date,
                });
            }
        }
    }
    None
}

/// A weekday ("thursday", "monday the 14th", "next friday"), a day of the month ("the 20th"),
/// or a month and day ("march 3rd", "3 march"): how many words it takes, and the date.
fn absolute(words: &[&str], day: Option<Date>) -> Option<(usize, Option<Date>)> {
    let (skip, next) = match words.first() {
        Some(&"next") => (1, true),
        Some(&"this") => (1, false),
        _ => (0, false),
    };
    let rest = &words[skip..];
    if let Some(&(_, wd)) = WEEKDAYS.iter().find(|(n, _)| rest.first() == Some(n)) {
        // "Monday the 14th": the day of the month decides.
        if rest.get(1) == Some(&"the")
            && let Some(n) = rest.get(2).and_then(|w| ordinal(w))
        {
            return Some((skip + 3, day.and_then(|d| next_day_of_month(d, n))));
        }
        let date = day.map(|d| {
            let first = next_weekday(d, wd, false);
            if next && first - d < Duration::days(7) && first.iso_week() == d.iso_week() {
                first + Duration::days(7)
            } else {
                first
            }
        });
        return Some((skip + 1, date));
    }
    if skip > 0 {
        return None;
    }
    if words.first() == Some(&"the")
        && let Some(n) = words.get(1).and_then(|w| ordinal(w))
    {
        return Some((2, day.and_then(|d| next_day_of_month(d, n))));
    }
    if let Some(&(_, month)) = MONTHS.iter().find(|(n, _)| words.first() == Some(n))
        && let Some(n) = words.get(1).and_then(|w| ordinal(w))
    {
        return Some((2, day.and_then(|d| next_date(d, month, n))));
    }
    if let Some(n) = words.first().and_then(|w| ordinal(w))
        && let Some(&(_, month)) = MONTHS.iter().find(|(m, _)| words.get(1) == Some(m))
    {
        return Some((2, day.and_then(|d| next_date(d, month, n))));
    }
    None
}

/// "20th", "1st", "3rd", "22nd" and plain "20": a day of the month.
fn ordinal(word: &str) -> Option<u8> {
    let digits = word
        .strip_suffix("st")
        .or_else(|| word.strip_suffix("nd"))
        .or_else(|| word.strip_suffix("rd"))
        .or_else(|| word.strip_suffix("th"))
        .unwrap_or(word);
    digits.parse().ok().filter(|n| (1..=31).contains(n))
}

/// The next `wd` after `day` (`day` itself when `inclusive`).
fn next_weekday(day: Date, wd: Weekday, inclusive: bool) -> Date {
    let ahead = (i64::from(wd.number_days_from_monday())
        - i64::from(day.weekday().number_days_from_monday()))
    .rem_euclid(7);
    let ahead = if ahead == 0 && !inclusive { 7 } else { ahead };
    day + Duration::days(ahead)
}

/// The next date on or after `day` whose day of the month is `n`.
fn next_day_of_month(day: Date, n: u8) -> Option<Date> {
    (0..12).find_map(|k| {
        let (y, m) = add_months(day.year(), day.month(), k);
        Date::from_calendar_date(y, m, n).ok().filter(|d| *d >= day)
    })
}

fn next_date(day: Date, month: Month, n: u8) -> Option<Date> {
    [day.year(), day.year() + 1].into_iter().find_map(|y| {
        Date::from_calendar_date(y, month, n)
            .ok()
            .filter(|d| *d >= day)
    })
}

fn add_months(year: i32, month: Month, k: u8) -> (i32, Month) {
    let index = month as u8 - 1 + k;
    (
        year + i32::from(index / 12),
        Month::try_from(index % 12 + 1).unwrap_or(Month::January),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn words(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    // A Wednesday.
    const DAY: Date = date!(2026 - 11 - 25);

    #[track_caller]
    fn check(sentence: &str, stated: &str, date: Option<Date>) {
        let found = find(&words(sentence), Some(DAY)).expect(sentence);
        assert_eq!(found.stated, stated, "{sentence}");
        assert_eq!(found.date, date, "{sentence}");
    }

    #[test]
    fn weekdays_dates_and_relative_phrases_resolve_from_the_meeting_day() {
        check(
            "i will fix those by thursday",
            "by thursday",
            Some(date!(2026 - 11 - 26)),
        );
        check(
            "send it by wednesday",
            "by wednesday",
            Some(date!(2026 - 12 - 02)),
        );
        check(
            "ready by next friday please",
            "by next friday",
            Some(date!(2026 - 12 - 04)),
        );
        check(
            "release on monday the 14th",
            "on monday the 14th",
            Some(date!(2026 - 12 - 14)),
        );
        check(
            "we revisit it on the 20th",
            "on the 20th",
            Some(date!(2026 - 12 - 20)),
        );
        check(
            "done before march 3rd",
            "before march 3rd",
            Some(date!(2027 - 03 - 03)),
        );
        check("i will ping them today", "today", Some(DAY));
        check("we ship tomorrow", "tomorrow", Some(date!(2026 - 11 - 26)));
        check(
            "access right after this call",
            "right after this call",
            Some(DAY),
        );
        check(
            "by the end of the week",
            "by the end of the week",
            Some(date!(2026 - 11 - 27)),
        );
        check(
            "sometime next week",
            "next week",
            Some(date!(2026 - 12 - 02)),
        );
    }

    #[test]
    fn reports_are_not_deadlines() {
        for s in [
            "it moved 4200 accounts in staging",
            "monday was busy",
            "the 2 percent rate dropped",
        ] {
            assert_eq!(find(&words(s), Some(DAY)), None, "{s}");
        }
        assert_eq!(find(&words("by friday"), None).map(|d| d.date), Some(None));
    }
}
