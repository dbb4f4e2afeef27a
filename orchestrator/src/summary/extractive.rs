//! The built-in summarizer: rules over sentences, no model. Action items come from commitments
//! ("I will …"), assignments ("Maria fixes …", "Priya, please …") and accepted requests ("Can
//! you …?" answered "Yes"); highlights are the sentences with decisions, results and numbers;
//! open questions are questions nobody answered, or answered with doubt.

use super::deadline;
use super::sentences::{self, Sentence};
use super::{ActionItem, Line, MeetingSummary, Point, SummaryInput};
use std::collections::{HashMap, HashSet};

const MAX_HIGHLIGHTS: usize = 5;

/// Words that open a clause without changing who does what.
const FILLERS: &[&str] = &[
    "so", "and", "also", "then", "okay", "ok", "yes", "yeah", "yep", "sure", "well", "right",
    "action", "items", "item", "next", "steps", "step", "great", "perfect", "alright", "oh",
];

/// First-person commitments, each followed by the task's verb.
const COMMITMENTS: &[&[&str]] = &[
    &["i", "will"],
    &["i", "can"],
    &["i", "am", "going", "to"],
    &["i", "am", "gonna"],
    &["i", "shall"],
    &["let", "me"],
    &["i", "need", "to"],
    &["i", "have", "to"],
    &["i", "must"],
    &["i", "would", "like", "to"],
];

/// What follows a name when someone is given a task ("Maria will …", "Maria needs to …").
const ASSIGNING: &[&[&str]] = &[
    &["will"],
    &["should"],
    &["needs", "to"],
    &["has", "to"],
    &["must"],
    &["is", "going", "to"],
    &["can"],
    &["to"],
];

/// Opening a request to the listener.
const REQUESTS: &[&[&str]] = &[
    &["please"],
    &["can", "you"],
    &["could", "you"],
    &["would", "you"],
    &["will", "you"],
    &["can", "you", "please"],
    &["could", "you", "please"],
];

/// Words after a modal that make no task ("I will be …", "I can not …", "I think …").
const NOT_TASKS: &[&str] = &[
    "be", "not", "also", "just", "think", "guess", "say", "tell", "see", "imagine", "hope",
];

/// Third-person verbs that report rather than assign ("Maria says …").
const REPORTING: &[&str] = &[
    "is", "was", "has", "does", "says", "said", "thinks", "knows", "seems", "likes", "wants",
];

const AFFIRMATIVE: &[&str] = &[
    "yes",
    "yeah",
    "yep",
    "sure",
    "ok",
    "okay",
    "will",
    "i",
    "absolutely",
    "definitely",
    "of",
    "on",
    "no problem",
    "consider",
    "fine",
    "can",
    "done",
];

/// Words marking decisions (weighted more) and results.
const DECISIONS: &[&str] = &[
    "decided",
    "decide",
    "decision",
    "agreed",
    "agree",
    "approved",
    "approve",
    "approval",
    "concluded",
    "chose",
    "chosen",
];
const RESULTS: &[&str] = &[
    "plan",
    "planned",
    "ship",
    "ships",
    "shipping",
    "release",
    "released",
    "launch",
    "launched",
    "blocker",
    "blocked",
    "deadline",
    "budget",
    "priority",
    "risk",
    "dropped",
    "increased",
    "decreased",
    "reduced",
    "improved",
    "finished",
    "completed",
    "done",
    "migrated",
    "moved",
    "fixed",
    "hired",
    "signed",
    "cancelled",
    "postponed",
    "delayed",
    "revisit",
    "failed",
];
const DOUBT: &[&str] = &[
    "not sure",
    "do not know",
    "no idea",
    "let me check",
    "find out",
    "good question",
    "unclear",
    "tbd",
    "we will see",
    "not yet",
];

/// Participants by first name and by full name, lowercase, to their display names.
struct People(HashMap<String, String>);

impl People {
    fn of(lines: &[Line]) -> Self {
        let mut map = HashMap::new();
        for l in lines {
            let words = sentences::normalise(&l.speaker);
            if let Some(first) = words.first() {
                map.insert(first.clone(), l.speaker.clone());
            }
            map.insert(words.join(" "), l.speaker.clone());
        }
        Self(map)
    }

    /// A name at the start of `words`: the display name and how many words it took.
    fn at(&self, words: &[&str]) -> Option<(String, usize)> {
        (1..=3.min(words.len())).rev().find_map(|n| {
            self.0
                .get(&words[..n].join(" "))
                .map(|name| (name.clone(), n))
        })
    }
}

pub fn summarize(input: &SummaryInput) -> MeetingSummary {
    let sentences: Vec<Sentence> = input
        .lines
        .iter()
        .enumerate()
        .flat_map(|(i, l)| sentences::split(i, &l.text))
        .collect();
    let people = People::of(&input.lines);
    let mut actions = Vec::new();
    let mut used = HashSet::new();
    for (i, s) in sentences.iter().enumerate() {
        if let Some(item) = action(input, &people, s) {
            actions.push((item, is_recap(&input.lines[s.line])));
            used.insert(i);
        }
    }
    let actions = dedupe(actions);
    let highlights = highlights(input, &sentences, &used);
    let open_questions = open_questions(input, &sentences, &used);
    MeetingSummary {
        summary: overview(input, &highlights, &actions),
        highlights,
        action_items: actions,
        open_questions,
    }
}

fn point(input: &SummaryInput, s: &Sentence) -> Point {
    let line = &input.lines[s.line];
    Point {
        text: s.text.clone(),
        speaker: line.speaker.clone(),
        segment_id: line.segment_id,
        start_ms: line.start_ms,
    }
}

fn skip_fillers<'a>(mut words: &'a [&'a str]) -> &'a [&'a str] {
    while let Some((first, rest)) = words.split_first() {
        if !FILLERS.contains(first) {
            break;
        }
        words = rest;
    }
    words
}

fn starts_with_any(words: &[&str], patterns: &[&[&str]]) -> Option<usize> {
    patterns
        .iter()
        .filter(|p| words.starts_with(p))
        .map(|p| p.len())
        .max()
}

/// The task after a modal: the verb must be a real one.
fn task_after<'a>(words: &'a [&'a str]) -> Option<&'a [&'a str]> {
    let words = match words.first() {
        Some(&("also" | "just" | "then" | "quickly")) => &words[1..],
        _ => words,
    };
    let verb = words.first()?;
    (!NOT_TASKS.contains(verb) && words.len() >= 2).then_some(words)
}

fn action(input: &SummaryInput, people: &People, s: &Sentence) -> Option<ActionItem> {
    let all = s.words();
    let words = skip_fillers(&all);
    let speaker = &input.lines[s.line].speaker;
    let (owner, task, reply): (Option<String>, &[&str], Option<&Line>) =
        if let Some(n) = starts_with_any(words, COMMITMENTS) {
            (Some(speaker.clone()), task_after(&words[n..])?, None)
        } else if let Some((name, n)) = people.at(words) {
            let rest = &words[n..];
            if let Some(m) = starts_with_any(rest, REQUESTS) {
                // "Priya, please write …"
                (Some(name), task_after(&rest[m..])?, None)
            } else if s.question {
                return None;
            } else if let Some(m) = starts_with_any(rest, ASSIGNING) {
                (Some(name), task_after(&rest[m..])?, None)
            } else {
                // "Maria fixes the failed accounts": a present-tense verb after the name.
                let verb = rest.first()?;
                if verb.len() < 4 || !verb.ends_with('s') || REPORTING.contains(verb) {
                    return None;
                }
                (Some(name), rest, None)
            }
        } else if let Some(n) = starts_with_any(words, REQUESTS) {
            // "Can you profile it …?": whoever answers yes takes it on.
            let task = task_after(&words[n..])?;
            let reply = input
                .lines
                .get(s.line + 1)
                .filter(|l| l.speaker != *speaker)?;
            let answer = sentences::normalise(&reply.text);
            let yes = answer
                .first()
                .is_some_and(|w| AFFIRMATIVE.contains(&w.as_str()))
                && !answer.starts_with(&["i".to_owned(), "can".to_owned(), "not".to_owned()]);
            if !yes {
                return None;
            }
            (Some(reply.speaker.clone()), task, Some(reply))
        } else {
            return None;
        };
    let deadline = deadline::find(task, input.day).or_else(|| {
        let reply = reply?;
        let words = sentences::normalise(&reply.text);
        deadline::find(
            &words.iter().map(String::as_str).collect::<Vec<_>>(),
            input.day,
        )
    });
    let mut task_words: Vec<&str> = task.to_vec();
    if let Some(d) = &deadline {
        let stated: Vec<&str> = d.stated.split(' ').collect();
        if task_words.ends_with(&stated) {
            task_words.truncate(task_words.len() - stated.len());
        }
    }
    let line = &input.lines[s.line];
    Some(ActionItem {
        task: capitalise(&task_words.join(" ")),
        owner,
        due: deadline.as_ref().map(|d| d.stated.clone()),
        due_date: deadline.and_then(|d| d.date).map(|d| d.to_string()),
        speaker: line.speaker.clone(),
        segment_id: line.segment_id,
        start_ms: line.start_ms,
    })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A line that goes over what was agreed ("Action items: …", "To recap, …").
fn is_recap(line: &Line) -> bool {
    let words = sentences::normalise(&line.text).join(" ");
    RECAPS.iter().any(|r| words.contains(r))
}

const RECAPS: &[&str] = &[
    "action items",
    "to recap",
    "to sum up",
    "to summarize",
    "next steps",
    "recap",
];

/// The same task said twice (a commitment, then an accepted request's answer or the recap at the
/// end) is one item: the same owner, and the same stated deadline with overlapping words or in a
/// recap, or mostly the same words. The fuller wording stays.
fn dedupe(items: Vec<(ActionItem, bool)>) -> Vec<ActionItem> {
    let mut out: Vec<ActionItem> = Vec::new();
    for (item, recap) in items {
        let same = out.iter_mut().find(|o| {
            let words = overlap(&o.task, &item.task);
            o.owner == item.owner
                && ((o.due.is_some() && o.due == item.due && (recap || words >= 0.3))
                    || words >= 0.5)
        });
        match same {
            Some(o) if item.task.len() > o.task.len() => {
                let due = (o.due.take(), o.due_date.take());
                *o = item;
                if o.due.is_none() {
                    (o.due, o.due_date) = due;
                }
            }
            Some(_) => {}
            None => out.push(item),
        }
    }
    out
}

fn overlap(a: &str, b: &str) -> f64 {
    let a: HashSet<String> = sentences::normalise(a)
        .into_iter()
        .filter(|w| w.len() > 3)
        .collect();
    let b: HashSet<String> = sentences::normalise(b)
        .into_iter()
        .filter(|w| w.len() > 3)
        .collect();
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f64 / union as f64
}

fn score(s: &Sentence) -> f64 {
    let words = s.words();
    let mut score = 0.0;
    if words.iter().any(|w| DECISIONS.contains(w)) {
        score += 3.0;
    } else if words.iter().any(|w| RESULTS.contains(w)) {
        score += 2.0;
    }
    if words.iter().any(|w| w.chars().any(|c| c.is_ascii_digit()))
        || deadline::find(&words, None).is_some()
    {
        score += 1.0;
    }
    // Longer sentences carry more; capped so one ramble does not win by length.
    score + (words.len().min(30) as f64) / 30.0
}

fn highlights(input: &SummaryInput, sentences: &[Sentence], used: &HashSet<usize>) -> Vec<Point> {
    let mut scored: Vec<(f64, usize)> = sentences
        .iter()
        .enumerate()
        .filter(|(i, s)| !used.contains(i) && !s.question && s.words.len() >= 5)
        .map(|(i, s)| (score(s), i))
        .filter(|(score, _)| *score >= 2.0)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut chosen: Vec<usize> = scored
        .iter()
        .take(MAX_HIGHLIGHTS)
        .map(|(_, i)| *i)
        .collect();
    chosen.sort_unstable();
    chosen
        .into_iter()
        .map(|i| point(input, &sentences[i]))
        .collect()
}

fn open_questions(
    input: &SummaryInput,
    sentences: &[Sentence],
    used: &HashSet<usize>,
) -> Vec<Point> {
    sentences
        .iter()
        .enumerate()
        .filter(|(i, s)| s.question && !used.contains(i) && s.words.len() >= 3)
        .filter(|(_, s)| {
            let asker = &input.lines[s.line].speaker;
            match input.lines[s.line + 1..]
                .iter()
                .find(|l| l.speaker != *asker)
            {
                None => true,
                Some(reply) => {
                    let answer = sentences::normalise(&reply.text).join(" ");
                    DOUBT.iter().any(|d| answer.contains(d))
                }
            }
        })
        .map(|(_, s)| point(input, s))
        .collect()
}

fn overview(input: &SummaryInput, highlights: &[Point], actions: &[ActionItem]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for l in &input.lines {
        if !names.contains(&l.speaker.as_str()) {
            names.push(&l.speaker);
        }
    }
    let who = match names.as_slice() {
        [] => "Nobody spoke".to_owned(),
        [one] => format!("{one} spoke"),
        [init @ .., last] => format!("{} and {last} met", init.join(", ")),
    };
    let minutes = input.duration_ms.div_ceil(60_000);
    let mut text = format!("{}: {who} for about {minutes} min.", input.title);
    for h in highlights.iter().take(2) {
        text.push_str(&format!(" {}: \"{}\"", h.speaker, h.text));
    }
    let owners: Vec<&str> = {
        let mut o: Vec<&str> = actions.iter().filter_map(|a| a.owner.as_deref()).collect();
        o.sort_unstable();
        o.dedup();
        o
    };
    match (actions.len(), owners.as_slice()) {
        (0, _) => text.push_str(" No action items were stated."),
        (n, []) => text.push_str(&format!(" {n} action item(s).")),
        (n, owners) => text.push_str(&format!(" {n} action item(s), for {}.", owners.join(", "))),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn input(lines: &[(&str, &str)]) -> SummaryInput {
        SummaryInput {
            title: "Test".to_owned(),
            day: Some(time::macros::date!(2026 - 11 - 25)),
            duration_ms: 60_000,
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, (speaker, text))| Line {
                    segment_id: Uuid::new_v4(),
                    speaker: (*speaker).to_owned(),
                    start_ms: i as u64 * 1000,
                    text: (*text).to_owned(),
                })
                .collect(),
        }
    }

    fn items(s: &MeetingSummary) -> Vec<(Option<&str>, Option<&str>)> {
        s.action_items
            .iter()
            .map(|a| (a.owner.as_deref(), a.due.as_deref()))
            .collect()
    }

    #[test]
    fn commitments_assignments_and_accepted_requests_become_action_items() {
        let meeting = input(&[
            (
                "Ana Lima",
                "Welcome. Can you profile it and send me the results by Friday?",
            ),
            ("Ben Carter", "Yes, I will send the profile by Friday."),
            ("Ana Lima", "Ben, please book the room for tomorrow."),
            (
                "Cleo Diaz",
                "I think it works. Ana will review the budget before March 3rd.",
            ),
            ("Ben Carter", "Could you check the logs?"),
            ("Cleo Diaz", "Sorry, no time this week."),
        ]);
        let s = summarize(&meeting);
        assert_eq!(
            items(&s),
            [
                (Some("Ben Carter"), Some("by friday")),
                (Some("Ben Carter"), Some("tomorrow")),
                (Some("Ana Lima"), Some("before march 3rd")),
            ],
            "{:#?}",
            s.action_items
        );
        assert_eq!(s.action_items[0].task, "Profile it and send me the results");
        assert_eq!(s.action_items[0].due_date.as_deref(), Some("2026-11-27"));
        assert_eq!(
            s.action_items[2].segment_id, meeting.lines[3].segment_id,
            "linked to its segment"
        );
    }

    #[test]
    fn unanswered_or_doubtful_questions_stay_open() {
        let s = summarize(&input(&[
            ("Ana Lima", "Who owns the billing alerts?"),
            ("Ben Carter", "Good question, I am not sure."),
            ("Ana Lima", "Did the release go out?"),
            ("Ben Carter", "It did, on Monday."),
            ("Ben Carter", "What about the Android build?"),
        ]));
        let open: Vec<&str> = s.open_questions.iter().map(|q| q.text.as_str()).collect();
        assert_eq!(
            open,
            [
                "Who owns the billing alerts?",
                "What about the Android build?"
            ]
        );
    }

    #[test]
    fn decisions_and_results_are_highlights() {
        let s = summarize(&input(&[
            ("Ana Lima", "Good morning, everyone."),
            (
                "Ana Lima",
                "We decided to keep the old retry schedule for one more release.",
            ),
            (
                "Ben Carter",
                "The crash rate dropped from 2% to 0.6% after the hotfix.",
            ),
            ("Ben Carter", "Thanks, everyone."),
        ]));
        let texts: Vec<&str> = s.highlights.iter().map(|h| h.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "We decided to keep the old retry schedule for one more release.",
                "The crash rate dropped from 2% to 0.6% after the hotfix."
            ]
        );
        assert!(
            s.summary.starts_with("Test: Ana Lima and Ben Carter met"),
            "{}",
            s.summary
        );
    }
}
