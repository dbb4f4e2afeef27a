//! Transcript formats: JSON, SubRip, WebVTT and plain text, from final segments sorted by time.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One line of a finished transcript: the shape `parley transcribe --format json` and
/// `GET /meetings/{id}/transcript?format=json` both return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    pub speaker: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Transcript {
    pub segments: Vec<TranscriptLine>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptFormat {
    Json,
    Srt,
    Vtt,
    Txt,
}

impl std::str::FromStr for TranscriptFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Self::Json),
            "srt" => Ok(Self::Srt),
            "vtt" | "webvtt" => Ok(Self::Vtt),
            "txt" | "text" => Ok(Self::Txt),
            other => Err(format!(
                "unknown transcript format {other:?} (expected json, srt, vtt or txt)"
            )),
        }
    }
}

impl Transcript {
    /// Sorts by start time, then speaker, so output is stable whatever order finals arrived in.
    pub fn from_lines(mut segments: Vec<TranscriptLine>) -> Self {
        segments.sort_by(|a, b| {
            (a.start_ms, &a.speaker, a.end_ms).cmp(&(b.start_ms, &b.speaker, b.end_ms))
        });
        Self { segments }
    }

    pub fn render(&self, format: TranscriptFormat) -> String {
        match format {
            TranscriptFormat::Json => {
                // Serialising plain strings and integers cannot fail.
                serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
            }
            TranscriptFormat::Srt => self.render_cues(false),
            TranscriptFormat::Vtt => self.render_cues(true),
            TranscriptFormat::Txt => {
                let mut out = String::new();
                for s in &self.segments {
                    let _ = writeln!(
                        out,
                        "[{}] {}: {}",
                        clock(s.start_ms, '.', false),
                        s.speaker,
                        s.text
                    );
                }
                out
            }
        }
    }

    fn render_cues(&self, vtt: bool) -> String {
        let mut out = String::new();
        if vtt {
            out.push_str("WEBVTT\n\n");
        }
        let sep = if vtt { '.' } else { ',' };
        for (i, s) in self.segments.iter().enumerate() {
            if !vtt {
                let _ = writeln!(out, "{}", i + 1);
            }
            let _ = writeln!(
                out,
                "{} --> {}",
                clock(s.start_ms, sep, true),
                clock(s.end_ms, sep, true)
            );
            if vtt {
                let _ = writeln!(
                    out,
                    "<v {}>{}\n",
                    escape_vtt(&s.speaker),
                    escape_vtt(&s.text)
                );
            } else {
                let _ = writeln!(out, "{}: {}\n", s.speaker, s.text);
            }
        }
        out
    }
}

fn clock(ms: u64, sep: char, with_hours: bool) -> String {
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if with_hours || h > 0 {
        format!("{h:02}:{m:02}:{s:02}{sep}{milli:03}")
    } else {
        format!("{m:02}:{s:02}{sep}{milli:03}")
    }
}

/// WebVTT cue text may not contain a raw `-->`, `<` or `&`.
fn escape_vtt(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Transcript {
        Transcript::from_lines(vec![
            TranscriptLine {
                speaker: "Bob".into(),
                start_ms: 3_723_004,
                end_ms: 3_725_000,
                text: "a <b> & c".into(),
            },
            TranscriptLine {
                speaker: "Alice".into(),
                start_ms: 0,
                end_ms: 1200,
                text: "Hello.".into(),
            },
        ])
    }

    #[test]
    fn sorts_and_renders_srt() {
        let srt = sample().render(TranscriptFormat::Srt);
        assert_eq!(
            srt,
            "1\n00:00:00,000 --> 00:00:01,200\nAlice: Hello.\n\n2\n01:02:03,004 --> 01:02:05,000\nBob: a <b> & c\n\n"
        );
    }

    #[test]
    fn renders_vtt_with_voice_tags_escaped() {
        let vtt = sample().render(TranscriptFormat::Vtt);
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.200\n<v Alice>Hello.\n"));
        assert!(vtt.contains("<v Bob>a &lt;b&gt; &amp; c"));
    }

    #[test]
    fn json_has_the_documented_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&sample().render(TranscriptFormat::Json)).expect("json");
        assert_eq!(v["segments"][0]["speaker"], "Alice");
        assert_eq!(v["segments"][0]["end_ms"], 1200);
        assert_eq!(v["segments"][1]["text"], "a <b> & c");
    }

    #[test]
    fn txt_is_one_line_per_segment() {
        assert_eq!(
            sample().render(TranscriptFormat::Txt),
            "[00:00.000] Alice: Hello.\n[01:02:03.004] Bob: a <b> & c\n"
        );
    }
}
