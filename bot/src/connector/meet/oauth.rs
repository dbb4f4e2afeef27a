//! Google OAuth 2.0: an access token from the refresh token the workspace admin stored
//! (https://developers.google.com/identity/protocols/oauth2/web-server#offline). The Media API
//! needs one of the `meetings.conference.media.*readonly` scopes granted to that token.

use serde::Deserialize;
use std::time::Duration;

/// The scope the bot needs: conference audio, read-only.
pub const AUDIO_SCOPE: &str =
    "https://www.googleapis.com/auth/meetings.conference.media.audio.readonly";

/// The OAuth client and the refresh token of the Google user the bot acts for.
#[derive(Clone, Default)]
pub struct GoogleCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// The token endpoint (Google's unless testing).
    pub token_url: String,
}

impl std::fmt::Debug for GoogleCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleCredentials")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Exchanges the refresh token for an access token.
pub async fn access_token(
    http: &reqwest::Client,
    creds: &GoogleCredentials,
) -> Result<String, String> {
    if creds.client_id.is_empty()
        || creds.client_secret.is_empty()
        || creds.refresh_token.is_empty()
    {
        return Err(
            "Google Meet needs an OAuth client and a refresh token: set GOOGLE_CLIENT_ID, \
             GOOGLE_CLIENT_SECRET and GOOGLE_REFRESH_TOKEN (see the README's platform table)"
                .to_owned(),
        );
    }
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &creds.client_id)
        .append_pair("client_secret", &creds.client_secret)
        .append_pair("refresh_token", &creds.refresh_token)
        .append_pair("grant_type", "refresh_token")
        .finish();
    let response = http
        .post(&creds.token_url)
        .timeout(Duration::from_secs(15))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach Google's token endpoint {}: {e}",
                creds.token_url
            )
        })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("Google's token endpoint broke off: {e}"))?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<TokenError>(&body).map_or_else(
            |_| format!("HTTP {status}"),
            |e| match e.error_description {
                Some(d) => format!("{}: {d}", e.error),
                None => e.error,
            },
        );
        let hint = if detail.starts_with("invalid_grant") {
            " (the refresh token was revoked or expired: authorize the bot's Google account again)"
        } else if detail.starts_with("invalid_client") || detail.starts_with("unauthorized_client")
        {
            " (check GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET)"
        } else {
            ""
        };
        return Err(format!("Google refused the refresh token: {detail}{hint}"));
    }
    let token: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| format!("Google's token endpoint answered something unexpected: {e}"))?;
    if let Some(scope) = token.scope.as_deref()
        && !scope
            .split(' ')
            .any(|s| s.starts_with("https://www.googleapis.com/auth/meetings.conference.media"))
    {
        return Err(format!(
            "the Google token lacks a Meet Media API scope (it has {scope:?}); authorize the bot \
             with {AUDIO_SCOPE}"
        ));
    }
    Ok(token.access_token)
}
