//! `GET /meetings/search?q=WORDS`: the final transcript lines, across the meetings the caller may
//! see, that hold every word (case-insensitive), newest meeting first.

use super::error::ApiQuery;
use super::{ApiError, AppState, AuthUser};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_WORDS: usize = 8;
const MAX_QUERY_CHARS: usize = 200;
const MAX_RESULTS: u32 = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: String,
    limit: Option<u32>,
}

/// The words of a query: split on white space, punctuation at their ends dropped.
fn words(q: &str) -> Result<Vec<String>, ApiError> {
    let words: Vec<String> = q
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_owned())
        .filter(|w| !w.is_empty())
        .collect();
    if q.chars().count() > MAX_QUERY_CHARS || words.is_empty() || words.len() > MAX_WORDS {
        return Err(ApiError::BadRequest(format!(
            "q must be 1 to {MAX_WORDS} words, at most {MAX_QUERY_CHARS} characters"
        )));
    }
    Ok(words)
}

pub async fn search(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let words = words(&query.q)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_RESULTS).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_RESULTS}"
        )));
    }
    let results = state
        .store
        .search_finals(user.0.user_id, &words, limit)
        .await?;
    Ok(Json(json!({ "results": results })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_words_without_their_punctuation() {
        assert_eq!(
            words("  Budget, review! ").ok(),
            Some(vec!["Budget".to_owned(), "review".to_owned()])
        );
        assert_eq!(
            words("100% done_").ok(),
            Some(vec!["100".to_owned(), "done".to_owned()])
        );
        assert!(words(" ... ").is_err());
        assert!(words(&"w ".repeat(9)).is_err());
    }
}
