//! Whether a meeting's link sends its bot somewhere users may send it. A Janus link names the
//! signalling server the bot connects to: an attacker's link would have the bot probe ports
//! inside the company's network. The link is checked by the egress guard calendar feeds go
//! through, when the meeting is made and again when its bot is sent (a name may resolve
//! elsewhere by then). Other platforms' servers are the platform's own or configured.

use parley_bot::egress::{EgressError, EgressGuard};
use parley_shared::MeetingLink;
use std::time::Duration;

/// A lookup slower than this lets the bot try: it resolves the name again anyway, and a slow
/// resolver must not hold the dispatcher.
const LOOKUP_BUDGET: Duration = Duration::from_secs(5);

/// `Err` with a reason for the meeting's owner when the link's server is on a network the
/// guard refuses.
pub async fn check_link(egress: &EgressGuard, link: &MeetingLink) -> Result<(), String> {
    let MeetingLink::Janus(janus) = link else {
        return Ok(());
    };
    // The guard speaks http(s); the WebSocket URL has the same host and port.
    let as_http = janus
        .ws
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    let url =
        url::Url::parse(&as_http).map_err(|_| "the Janus link has no valid host".to_owned())?;
    let host = url.host_str().unwrap_or_default().to_owned();
    match tokio::time::timeout(LOOKUP_BUDGET, egress.check_reachable(&url)).await {
        Ok(Err(EgressError::Internal(_) | EgressError::InternalName(_))) => Err(format!(
            "the Janus server {host} is on an internal network, which Parley's bots do not \
             reach for users (an administrator can allow it with PARLEY_EGRESS_ALLOW)"
        )),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "a Janus link's server cannot be checked now; the bot will try");
            Ok(())
        }
        Ok(Ok(())) | Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(s: &str) -> MeetingLink {
        MeetingLink::parse(s).expect("link")
    }

    #[tokio::test]
    async fn janus_servers_on_internal_addresses_are_refused_unless_allowed() {
        let public_only = EgressGuard::new(Vec::new());
        for internal in [
            "janus+ws://127.0.0.1:8188/?room=1",
            "janus+ws://10.0.0.5:8188/?room=1",
            "janus+wss://169.254.169.254/?room=1",
            "janus+ws://[::1]:8188/?room=1",
        ] {
            let refused = check_link(&public_only, &link(internal)).await;
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|r| r.contains("PARLEY_EGRESS_ALLOW")),
                "{internal}: {refused:?}"
            );
        }
        let loopback = EgressGuard::new(vec!["127.0.0.0/8".parse().expect("net")]);
        assert_eq!(
            check_link(&loopback, &link("janus+ws://127.0.0.1:8188/?room=1")).await,
            Ok(())
        );
        // Other platforms' servers are not the link's to choose.
        assert_eq!(
            check_link(&public_only, &link("livekit+wss://10.0.0.5?room=a")).await,
            Ok(())
        );
    }
}
