//! Standard Webhooks signatures (https://www.standardwebhooks.com/): the secret is `whsec_` and
//! the base64 of its key; each request carries `webhook-id`, `webhook-timestamp` (Unix seconds)
//! and `webhook-signature: v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), so any
//! Standard Webhooks library verifies it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const PREFIX: &str = "whsec_";
/// Key lengths accepted in a secret the user brings; ours are 32 bytes.
const MIN_KEY: usize = 24;
const MAX_KEY: usize = 64;

/// A fresh secret: 32 random bytes.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)?;
    Ok(format!("{PREFIX}{}", STANDARD.encode(key)))
}

/// The key of a secret in the Standard Webhooks form.
pub fn key_of(secret: &str) -> Result<Vec<u8>, String> {
    let key = secret
        .strip_prefix(PREFIX)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .ok_or_else(|| format!("secret must be \"{PREFIX}\" followed by base64"))?;
    if !(MIN_KEY..=MAX_KEY).contains(&key.len()) {
        return Err(format!(
            "secret must hold {MIN_KEY} to {MAX_KEY} bytes of key (32 is usual)"
        ));
    }
    Ok(key)
}

/// The `webhook-signature` header's value.
pub fn sign(key: &[u8], id: &str, timestamp_s: u64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let content = format!("{id}.{timestamp_s}.{body}");
    let tag = ring::hmac::sign(&key, content.as_bytes());
    format!("v1,{}", STANDARD.encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_specifications_example() {
        // The example in the Standard Webhooks specification.
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_generated_and_checked_in_the_standard_form() {
        let secret = generate_secret().expect("random");
        assert_eq!(key_of(&secret).expect("own secret").len(), 32);
        assert_ne!(secret, generate_secret().expect("random"));
        for bad in [
            "",
            "whsec_",
            "whsec_!!!",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_c2hvcnQ=",
        ] {
            assert!(key_of(bad).is_err(), "{bad}");
        }
    }
}
