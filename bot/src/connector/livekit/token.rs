//! LiveKit access tokens: the bot mints its own join token from the deployment's API key and
//! secret, as LiveKit servers expect of a backend
//! (https://docs.livekit.io/home/get-started/authentication/).

use base64::Engine as _;
use serde_json::json;

/// A LiveKit access token (an HS256 JWT signed with the API secret) letting `identity` join
/// `room` to subscribe only: visible in the participant list as `name`, publishing nothing.
pub fn access_token(
    api_key: &str,
    api_secret: &str,
    room: &str,
    identity: &str,
    name: &str,
    now_secs: u64,
    ttl_secs: u64,
) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let claims = json!({
        "iss": api_key, "sub": identity, "name": name,
        "nbf": now_secs, "exp": now_secs + ttl_secs,
        "video": {"roomJoin": true, "room": room, "canSubscribe": true,
                  "canPublish": false, "canPublishData": false},
    });
    let payload = b64.encode(claims.to_string());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, api_secret.as_bytes());
    let signature = ring::hmac::sign(&key, format!("{header}.{payload}").as_bytes());
    format!("{header}.{payload}.{}", b64.encode(signature.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_a_signed_subscribe_only_grant() {
        let token = access_token(
            "APIkey",
            "secret",
            "r1",
            "parley-bot",
            "Parley notes",
            1000,
            60,
        );
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["iss"], "APIkey");
        assert_eq!(claims["exp"], 1060);
        assert_eq!(claims["video"]["room"], "r1");
        assert_eq!(claims["video"]["canPublish"], false);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let mac = b64.decode(parts[2]).expect("b64");
        assert!(
            ring::hmac::verify(&key, format!("{}.{}", parts[0], parts[1]).as_bytes(), &mac).is_ok()
        );
    }
}
