//! The summary email: a plain-text and an HTML part with the meeting's title, date, duration,
//! participants, summary, highlights, action items, open questions and links.

use crate::summary::{ActionItem, MeetingSummary, Point};
use lettre::message::{Mailbox, Message, MultiPart};

pub struct SummaryEmail<'a> {
    pub title: &'a str,
    /// When it started and how long it took, as shown.
    pub when: String,
    pub duration: String,
    pub participants: Vec<String>,
    pub summary: &'a MeetingSummary,
    /// Where the full transcript and summary can be read.
    pub transcript_link: Option<String>,
    /// Where the recordings are.
    pub recording: Option<String>,
}

fn at(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}", s / 60, s % 60)
}

fn item_line(a: &ActionItem) -> String {
    let mut line = match &a.owner {
        Some(owner) => format!("{owner}: {}", a.task),
        None => a.task.clone(),
    };
    match (&a.due, &a.due_date) {
        (Some(due), Some(date)) => line.push_str(&format!(" (due {due}, {date})")),
        (Some(due), None) => line.push_str(&format!(" (due {due})")),
        _ => {}
    }
    line
}

fn point_line(p: &Point) -> String {
    format!("{} ({}, {})", p.text, p.speaker, at(p.start_ms))
}

impl SummaryEmail<'_> {
    pub fn subject(&self) -> String {
        format!("Meeting summary: {}", self.title)
    }

    fn sections(&self) -> Vec<(&'static str, Vec<String>)> {
        vec![
            (
                "Highlights",
                self.summary.highlights.iter().map(point_line).collect(),
            ),
            (
                "Action items",
                self.summary.action_items.iter().map(item_line).collect(),
            ),
            (
                "Open questions",
                self.summary.open_questions.iter().map(point_line).collect(),
            ),
        ]
    }

    pub fn text(&self) -> String {
        let mut t = format!(
            "{}\n{} · {} · {}\n\nSummary\n{}\n",
            self.title,
            self.when,
            self.duration,
            self.participants.join(", "),
            self.summary.summary
        );
        for (heading, lines) in self.sections() {
            if lines.is_empty() {
                continue;
            }
            t.push_str(&format!("\n{heading}\n"));
            for l in lines {
                t.push_str(&format!("- {l}\n"));
            }
        }
        if let Some(link) = &self.transcript_link {
            t.push_str(&format!("\nFull transcript and summary: {link}\n"));
        }
        if let Some(rec) = &self.recording {
            t.push_str(&format!("Recording: {rec}\n"));
        }
        t
    }

    pub fn html(&self) -> String {
        let e = escape;
        let mut h = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
             <body style=\"font-family:system-ui,sans-serif;line-height:1.5;color:#1a1a1a;max-width:40em\">\
             <h1 style=\"font-size:1.4em\">{}</h1><p style=\"color:#444\">{} · {} · {}</p>\
             <h2 style=\"font-size:1.1em\">Summary</h2><p>{}</p>",
            e(self.title),
            e(self.title),
            e(&self.when),
            e(&self.duration),
            e(&self.participants.join(", ")),
            e(&self.summary.summary)
        );
        for (heading, lines) in self.sections() {
            if lines.is_empty() {
                continue;
            }
            h.push_str(&format!("<h2 style=\"font-size:1.1em\">{heading}</h2><ul>"));
            for l in lines {
                h.push_str(&format!("<li>{}</li>", e(&l)));
            }
            h.push_str("</ul>");
        }
        if let Some(link) = &self.transcript_link {
            h.push_str(&format!(
                "<p><a href=\"{}\">Full transcript and summary</a></p>",
                e(link)
            ));
        }
        if let Some(rec) = &self.recording {
            h.push_str(&format!("<p>Recording: {}</p>", e(rec)));
        }
        h.push_str("</body></html>");
        h
    }

    pub fn message(&self, from: &Mailbox, to: Mailbox) -> anyhow::Result<Message> {
        Ok(Message::builder()
            .from(from.clone())
            .to(to)
            .subject(self.subject())
            .multipart(MultiPart::alternative_plain_html(self.text(), self.html()))?)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_parts_carry_everything_and_the_html_is_escaped() {
        let summary = MeetingSummary {
            summary: "We <agreed> on the plan.".to_owned(),
            highlights: vec![Point {
                text: "Ship on Monday.".to_owned(),
                speaker: "Ana".to_owned(),
                segment_id: uuid::Uuid::new_v4(),
                start_ms: 65_000,
            }],
            action_items: vec![ActionItem {
                task: "Fix the accounts".to_owned(),
                owner: Some("Maria".to_owned()),
                due: Some("by thursday".to_owned()),
                due_date: Some("2026-11-26".to_owned()),
                speaker: "Maria".to_owned(),
                segment_id: uuid::Uuid::new_v4(),
                start_ms: 0,
            }],
            open_questions: vec![],
        };
        let mail = SummaryEmail {
            title: "Stand-up & more",
            when: "2026-11-25 10:00 UTC".to_owned(),
            duration: "15 min".to_owned(),
            participants: vec!["Ana".to_owned(), "Maria".to_owned()],
            summary: &summary,
            transcript_link: Some("http://x/live/abc".to_owned()),
            recording: None,
        };
        let text = mail.text();
        for part in [
            "Stand-up & more",
            "Ana, Maria",
            "15 min",
            "Maria: Fix the accounts (due by thursday, 2026-11-26)",
            "Ship on Monday. (Ana, 01:05)",
            "http://x/live/abc",
        ] {
            assert!(text.contains(part), "{part} in\n{text}");
        }
        assert!(
            !text.contains("Open questions"),
            "empty sections are left out"
        );
        let html = mail.html();
        assert!(
            html.contains("We &lt;agreed&gt; on the plan.") && html.contains("Stand-up &amp; more")
        );
        let from: Mailbox = "Parley <parley@example.com>".parse().expect("from");
        let msg = mail
            .message(&from, "ana@example.com".parse().expect("to"))
            .expect("message");
        let raw = String::from_utf8(msg.formatted()).expect("utf8");
        assert!(raw.contains("Subject: Meeting summary: Stand-up & more"));
        assert!(raw.contains("multipart/alternative"));
    }
}
