//! Summaries from an LLM behind any OpenAI-compatible endpoint (`OPENAI_BASE_URL`): the model is
//! asked for JSON in a fixed schema, every answer is validated, long transcripts are summarised
//! in chunks that fit the model's context and then merged. Calls time out and are retried; the
//! caller falls back to the built-in summarizer on failure.

use super::{ActionItem, Line, MeetingSummary, Point, SummaryInput};
use anyhow::{Context, bail};
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::CreateChatCompletionResponse;
use parley_shared::Secret;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Characters per token assumed when fitting text into the context: low, so English never
/// overflows it.
const CHARS_PER_TOKEN: usize = 3;
/// Tokens the instructions take besides the transcript.
const PROMPT_TOKENS: usize = 400;
const MAX_HIGHLIGHTS: usize = 8;
const MAX_ACTIONS: usize = 20;
const MAX_QUESTIONS: usize = 10;
const MAX_TEXT: usize = 2000;

#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    /// The model's context window, in tokens.
    pub context_tokens: usize,
    /// Longest answer asked for, in tokens.
    pub max_output_tokens: u32,
    pub timeout: Duration,
    /// Attempts per call (a timeout, an error or invalid JSON uses one).
    pub attempts: u32,
}

#[derive(Debug, Clone)]
pub struct LlmSummarizer {
    config: LlmConfig,
    client: Client<OpenAIConfig>,
    /// Set once the server turned down `json_schema` output (llama-cpp-python takes the schema
    /// in a `json_object` format instead).
    schema_in_json_object: Arc<AtomicBool>,
}

/// What the model is asked to return; `line` numbers the transcript lines from 1.
#[derive(Debug, Deserialize)]
struct Answer {
    summary: String,
    #[serde(default)]
    highlights: Vec<RawPoint>,
    #[serde(default)]
    action_items: Vec<RawAction>,
    #[serde(default)]
    open_questions: Vec<RawPoint>,
}

#[derive(Debug, Deserialize)]
struct RawPoint {
    text: String,
    line: i64,
}

#[derive(Debug, Deserialize)]
struct RawAction {
    task: String,
    owner: Option<String>,
    due: Option<String>,
    line: i64,
}

const INSTRUCTIONS: &str = "You summarise meeting transcripts. Each transcript line is numbered \
and starts with the speaker's name. Reply with one JSON object and nothing else: \
{\"summary\": a short paragraph, \"highlights\": [{\"text\": a key decision or fact, \"line\": \
its line number}], \"action_items\": [{\"task\": what will be done, \"owner\": the person who will \
do it or null, \"due\": the deadline as stated or null, \"line\": its line number}], \
\"open_questions\": [{\"text\": a question left unanswered, \"line\": its line number}]}. \
Use only what the transcript says.";

/// The answer's JSON schema. Lengths and counts are bounded so a model that rambles (grammar-
/// constrained servers fill a string until it is closed) still ends within the answer's budget.
fn schema(lines: usize) -> serde_json::Value {
    let line = json!({"type": "integer", "minimum": 1, "maximum": lines.max(1)});
    let text = json!({"type": "string", "maxLength": 200});
    let short = json!({"type": ["string", "null"], "maxLength": 60});
    let point = json!({"type": "object", "additionalProperties": false,
        "required": ["text", "line"], "properties": {"text": text, "line": line}});
    let list = |items: serde_json::Value| json!({"type": "array", "items": items, "maxItems": 6});
    json!({
        "type": "object", "additionalProperties": false,
        "required": ["summary", "highlights", "action_items", "open_questions"],
        "properties": {
            "summary": {"type": "string", "maxLength": 800},
            "highlights": list(point.clone()),
            "action_items": list(json!({"type": "object", "additionalProperties": false,
                "required": ["task", "owner", "due", "line"],
                "properties": {"task": text, "owner": short, "due": short, "line": line}})),
            "open_questions": list(point),
        }
    })
}

impl LlmSummarizer {
    pub fn new(config: LlmConfig) -> Self {
        let mut openai = OpenAIConfig::new().with_api_base(config.base_url.trim_end_matches('/'));
        if let Some(key) = &config.api_key {
            openai = openai.with_api_key(key.expose());
        }
        Self {
            client: Client::with_config(openai),
            config,
            schema_in_json_object: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    pub async fn summarize(&self, input: &SummaryInput) -> anyhow::Result<MeetingSummary> {
        if input.lines.is_empty() {
            bail!("the transcript is empty");
        }
        let numbered: Vec<String> = input
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("[{}] {}: {}", i + 1, l.speaker, l.text))
            .collect();
        let budget = self.transcript_budget()?;
        let chunks = chunk(&numbered, budget);
        let mut parts = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.iter().enumerate() {
            let prompt = format!(
                "Meeting: {}\nPart {} of {} of the transcript:\n{}",
                input.title,
                i + 1,
                chunks.len(),
                chunk
            );
            let answer: Answer = self.ask(&prompt, schema(input.lines.len())).await?;
            parts.push(validate(answer, &input.lines)?);
        }
        if parts.len() == 1 {
            return Ok(parts.remove(0));
        }
        self.merge(input, parts, budget).await
    }

    fn transcript_budget(&self) -> anyhow::Result<usize> {
        let tokens = self
            .config
            .context_tokens
            .checked_sub(self.config.max_output_tokens as usize + PROMPT_TOKENS)
            .filter(|t| *t >= 200)
            .context("the LLM's context is too small for its answer: raise --llm-context-tokens")?;
        Ok(tokens * CHARS_PER_TOKEN)
    }

    /// Joins the parts' lists and asks the model for one summary of the parts' summaries.
    async fn merge(
        &self,
        input: &SummaryInput,
        parts: Vec<MeetingSummary>,
        budget: usize,
    ) -> anyhow::Result<MeetingSummary> {
        let mut summaries: String = parts
            .iter()
            .enumerate()
            .map(|(i, p)| format!("Part {}: {}\n", i + 1, p.summary))
            .collect();
        truncate(&mut summaries, budget);
        #[derive(Deserialize)]
        struct Merged {
            summary: String,
        }
        let merged: Merged = self
            .ask(
                &format!(
                    "Meeting: {}\nSummaries of consecutive parts of the meeting:\n{summaries}\n\
                     Reply with JSON {{\"summary\": one short paragraph for the whole meeting}}.",
                    input.title
                ),
                json!({"type": "object", "additionalProperties": false, "required": ["summary"],
                       "properties": {"summary": {"type": "string", "maxLength": 800}}}),
            )
            .await?;
        let mut out = MeetingSummary {
            summary: checked_text(&merged.summary, "summary")?,
            highlights: Vec::new(),
            action_items: Vec::new(),
            open_questions: Vec::new(),
        };
        for p in parts {
            out.highlights.extend(p.highlights);
            out.action_items.extend(p.action_items);
            out.open_questions.extend(p.open_questions);
        }
        out.highlights.truncate(MAX_HIGHLIGHTS);
        out.action_items.truncate(MAX_ACTIONS);
        out.open_questions.truncate(MAX_QUESTIONS);
        Ok(out)
    }

    /// One call, retried: the reply must be JSON that deserializes into `T`.
    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        prompt: &str,
        schema: serde_json::Value,
    ) -> anyhow::Result<T> {
        let mut last = None;
        for attempt in 1..=self.config.attempts.max(1) {
            match tokio::time::timeout(self.config.timeout, self.call(prompt, schema.clone())).await
            {
                Ok(Ok(text)) => match serde_json::from_str::<T>(strip_fences(&text)) {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        last = Some(anyhow::anyhow!(
                            "the LLM's answer is not valid JSON for the schema: {e}"
                        ))
                    }
                },
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(anyhow::anyhow!(
                        "the LLM did not answer within {:?}",
                        self.config.timeout
                    ))
                }
            }
            if attempt < self.config.attempts {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
    }

    async fn call(&self, prompt: &str, schema: serde_json::Value) -> anyhow::Result<String> {
        let request = |format: serde_json::Value| {
            json!({
                "model": self.config.model,
                "temperature": 0.2,
                "max_tokens": self.config.max_output_tokens,
                "stream": false,
                "response_format": format,
                "messages": [
                    {"role": "system", "content": INSTRUCTIONS},
                    {"role": "user", "content": prompt},
                ],
            })
        };
        let schema_format = || {
            json!({"type": "json_schema", "json_schema":
            {"name": "meeting_summary", "schema": schema, "strict": true}})
        };
        let object_format = || json!({"type": "json_object", "schema": schema});
        let response: Result<CreateChatCompletionResponse, OpenAIError> = if self
            .schema_in_json_object
            .load(Ordering::Relaxed)
        {
            self.client
                .chat()
                .create_byot(request(object_format()))
                .await
        } else {
            match self
                .client
                .chat()
                .create_byot(request(schema_format()))
                .await
            {
                Err(e) if e.to_string().contains("response_format") => {
                    tracing::info!(
                        "the LLM server has no json_schema output; sending the schema with json_object"
                    );
                    self.schema_in_json_object.store(true, Ordering::Relaxed);
                    self.client
                        .chat()
                        .create_byot(request(object_format()))
                        .await
                }
                other => other,
            }
        };
        let response = response.context("the LLM request failed")?;
        response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .filter(|c| !c.trim().is_empty())
            .context("the LLM returned no text")
    }
}

/// Some servers wrap JSON in a Markdown code fence even when asked not to.
fn strip_fences(text: &str) -> &str {
    let t = text.trim();
    t.strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .map_or(t, str::trim)
}

/// Consecutive lines joined into chunks of at most `budget` characters (a longer line is cut).
fn chunk(lines: &[String], budget: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for line in lines {
        let mut line = line.clone();
        truncate(&mut line, budget.saturating_sub(1));
        if !current.is_empty() && current.len() + line.len() + 1 > budget {
            chunks.push(std::mem::take(&mut current));
        }
        current.push_str(&line);
        current.push('\n');
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn checked_text(s: &str, what: &str) -> anyhow::Result<String> {
    let t = s.trim();
    if t.is_empty() {
        bail!("the LLM's {what} is empty");
    }
    let mut t = t.to_owned();
    truncate(&mut t, MAX_TEXT);
    Ok(t)
}

fn line_of(lines: &[Line], n: i64) -> anyhow::Result<&Line> {
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| lines.get(i))
        .with_context(|| format!("the LLM cited line {n}, which the transcript does not have"))
}

/// Checks an answer: the summary must be there; an item that cites a line the transcript does
/// not have, or says nothing, is dropped (small models do that) rather than failing the summary.
fn validate(answer: Answer, lines: &[Line]) -> anyhow::Result<MeetingSummary> {
    let summary = checked_text(&answer.summary, "summary")?;
    let point = |p: RawPoint| -> Option<Point> {
        let line = line_of(lines, p.line).ok()?;
        Some(Point {
            text: checked_text(&p.text, "item").ok()?,
            speaker: line.speaker.clone(),
            segment_id: line.segment_id,
            start_ms: line.start_ms,
        })
    };
    let optional = |s: Option<String>| {
        s.map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s != "null")
    };
    let (n_points, n_actions, n_questions) = (
        answer.highlights.len(),
        answer.action_items.len(),
        answer.open_questions.len(),
    );
    let out = MeetingSummary {
        summary,
        highlights: answer
            .highlights
            .into_iter()
            .filter_map(point)
            .take(MAX_HIGHLIGHTS)
            .collect(),
        action_items: answer
            .action_items
            .into_iter()
            .filter_map(|a| {
                let line = line_of(lines, a.line).ok()?;
                Some(ActionItem {
                    task: checked_text(&a.task, "action item").ok()?,
                    owner: optional(a.owner),
                    due: optional(a.due),
                    due_date: None,
                    speaker: line.speaker.clone(),
                    segment_id: line.segment_id,
                    start_ms: line.start_ms,
                })
            })
            .take(MAX_ACTIONS)
            .collect(),
        open_questions: answer
            .open_questions
            .into_iter()
            .filter_map(point)
            .take(MAX_QUESTIONS)
            .collect(),
    };
    let dropped = n_points + n_actions + n_questions
        - out.highlights.len()
        - out.action_items.len()
        - out.open_questions.len();
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "LLM summary items without a valid line or text were dropped"
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_are_chunked_within_the_budget_and_answers_are_checked() {
        let lines: Vec<String> = (0..10)
            .map(|i| format!("[{i}] Ana: {}", "word ".repeat(20)))
            .collect();
        let chunks = chunk(&lines, 300);
        assert!(
            chunks.len() > 1 && chunks.iter().all(|c| c.len() <= 300),
            "{chunks:?}"
        );
        assert_eq!(chunks.concat().lines().count(), 10, "every line once");

        let transcript = vec![Line {
            segment_id: uuid::Uuid::new_v4(),
            speaker: "Ana".to_owned(),
            start_ms: 0,
            text: "I will send it.".to_owned(),
        }];
        let good: Answer = serde_json::from_str(strip_fences(
            "```json\n{\"summary\":\"Short.\",\"highlights\":[],\"action_items\":[{\"task\":\"Send it\",\"owner\":\"Ana\",\"due\":null,\"line\":1}],\"open_questions\":[]}\n```",
        ))
        .expect("json");
        let s = validate(good, &transcript).expect("valid");
        assert_eq!(s.action_items[0].segment_id, transcript[0].segment_id);
        let empty: Answer = serde_json::from_str(
            r#"{"summary":" ","highlights":[],"action_items":[],"open_questions":[]}"#,
        )
        .expect("json");
        assert!(
            validate(empty, &transcript).is_err(),
            "a summary is required"
        );
        let invented: Answer = serde_json::from_str(
            r#"{"summary":"x","highlights":[{"text":"y","line":7},{"text":"","line":1},{"text":"z","line":1}],"action_items":[],"open_questions":[]}"#,
        )
        .expect("json");
        let kept = validate(invented, &transcript).expect("valid");
        assert_eq!(
            kept.highlights.len(),
            1,
            "items citing missing lines or saying nothing are dropped"
        );
        assert!(
            serde_json::from_str::<Answer>(r#"{"highlights":[]}"#).is_err(),
            "summary is required"
        );
    }
}
