//! Whom the server mails and whose invitations it honours. On an open server anyone can sign up
//! and name any address as a participant: without these limits Parley would mail strangers
//! whatever subject an attacker chose.

use parley_shared::EmailAddress;
use std::time::Duration;

/// The organisation's mail domains (`PARLEY_ALLOWED_EMAIL_DOMAINS`) and per-account quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailPolicy {
    /// Lowercase domains; empty means no domain is trusted on its own.
    domains: Vec<String>,
    pub quotas: Quotas,
}

/// Per-account limits that bound what one account can make the server do for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Meetings an account may create through the API per day.
    pub meetings_per_day: u32,
    /// Participants one meeting may name.
    pub invitees_per_meeting: usize,
    /// Summary mails sent for one owner's meetings per day.
    pub mails_per_day: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            meetings_per_day: 100,
            invitees_per_meeting: 100,
            mails_per_day: 500,
        }
    }
}

/// The window every daily quota counts over.
pub const QUOTA_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl MailPolicy {
    /// `domains` as written in the setting: `example.com, @corp.example`.
    pub fn new(domains: &[String], quotas: Quotas) -> Self {
        let mut domains: Vec<String> = domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        domains.sort();
        domains.dedup();
        Self { domains, quotas }
    }

    fn in_domains(&self, address: &EmailAddress) -> bool {
        let domain = address.as_str().rsplit_once('@').map_or("", |(_, d)| d);
        self.domains.iter().any(|d| d == domain)
    }

    /// Whether a meeting may name this address as a participant (and so, once an account
    /// verifies it, show that account the meeting): any address when no domains are set.
    pub fn may_invite(&self, address: &EmailAddress) -> bool {
        self.domains.is_empty() || self.in_domains(address)
    }

    /// Whether a summary may be mailed to this address: accounts that proved it is theirs,
    /// and the organisation's own domains.
    pub fn may_mail(&self, address: &EmailAddress, verified_account: bool) -> bool {
        verified_account || self.in_domains(address)
    }

    pub fn domains(&self) -> &[String] {
        &self.domains
    }
}

impl Default for MailPolicy {
    fn default() -> Self {
        Self::new(&[], Quotas::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("address")
    }

    #[test]
    fn without_domains_only_verified_accounts_are_mailed() {
        let open = MailPolicy::default();
        assert!(open.may_invite(&address("anyone@example.org")));
        assert!(!open.may_mail(&address("anyone@example.org"), false));
        assert!(open.may_mail(&address("anyone@example.org"), true));
    }

    #[test]
    fn domains_admit_their_addresses_and_no_look_alikes() {
        let corp = MailPolicy::new(&[" @Corp.Example ".to_owned()], Quotas::default());
        assert_eq!(corp.domains(), ["corp.example"]);
        assert!(corp.may_invite(&address("ana@corp.example")));
        assert!(corp.may_mail(&address("ana@corp.example"), false));
        for outside in [
            "eve@evilcorp.example",
            "eve@corp.example.evil",
            "eve@sub.corp.example",
        ] {
            assert!(!corp.may_invite(&address(outside)), "{outside}");
            assert!(!corp.may_mail(&address(outside), false), "{outside}");
        }
        // A verified account outside the domains is still mailed; it cannot be invited.
        assert!(corp.may_mail(&address("eve@evilcorp.example"), true));
    }
}
