//! After the meeting: a short summary, highlights, action items with owner and due date, and open
//! questions, each linked to the segment and speaker it came from. Two summarizers: the built-in
//! extractive one (offline, the default) and an LLM through any OpenAI-compatible endpoint, which
//! falls back to the built-in one when it fails.

mod deadline;
mod extractive;
mod llm;
mod sentences;

pub use llm::{LlmConfig, LlmSummarizer};

use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

/// One final segment of the transcript, as the summarizers read it.
#[derive(Debug, Clone)]
pub struct Line {
    pub segment_id: Uuid,
    pub speaker: String,
    pub start_ms: u64,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct SummaryInput {
    pub title: String,
    /// The meeting's day, to turn "by Thursday" into a date.
    pub day: Option<Date>,
    pub duration_ms: u64,
    pub lines: Vec<Line>,
}

/// A statement from the meeting, and where it was said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub text: String,
    pub speaker: String,
    pub segment_id: Uuid,
    pub start_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionItem {
    pub task: String,
    /// Who will do it, when the meeting said so.
    pub owner: Option<String>,
    /// The deadline as stated ("by Thursday").
    pub due: Option<String>,
    /// The deadline as a date (YYYY-MM-DD), when it could be worked out.
    pub due_date: Option<String>,
    /// Who said it, and where.
    pub speaker: String,
    pub segment_id: Uuid,
    pub start_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingSummary {
    pub summary: String,
    pub highlights: Vec<Point>,
    pub action_items: Vec<ActionItem>,
    pub open_questions: Vec<Point>,
}

/// A summary and what produced it.
#[derive(Debug, Clone)]
pub struct Produced {
    pub summary: MeetingSummary,
    /// `builtin` or `llm:MODEL`.
    pub summarizer: String,
    /// Why the LLM's summary was not used, when it was asked for one.
    pub fallback_reason: Option<String>,
}

/// The configured summarizer.
#[derive(Debug, Clone)]
pub enum Summarizer {
    Builtin,
    Llm(Box<LlmSummarizer>),
}

impl Summarizer {
    pub async fn summarize(&self, input: &SummaryInput) -> Produced {
        match self {
            Self::Builtin => Produced {
                summary: extractive::summarize(input),
                summarizer: "builtin".to_owned(),
                fallback_reason: None,
            },
            Self::Llm(llm) => match llm.summarize(input).await {
                Ok(summary) => Produced {
                    summary,
                    summarizer: format!("llm:{}", llm.model()),
                    fallback_reason: None,
                },
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "the LLM summary failed; using the built-in summarizer"
                    );
                    Produced {
                        summary: extractive::summarize(input),
                        summarizer: "builtin".to_owned(),
                        fallback_reason: Some(format!("{e:#}")),
                    }
                }
            },
        }
    }
}
