//! Reading the mails the server writes to its outbox, as their recipients would.

/// The verification link in a mail, with quoted-printable soft breaks and `=` escapes undone.
pub fn verification_link(mail: &str) -> Option<String> {
    let mail = mail.replace("=\r\n", "").replace("=3D", "=");
    let at = mail.find("/verify?token=")?;
    let start = mail[..at].rfind("http")?;
    let end = mail[at..]
        .find(char::is_whitespace)
        .map_or(mail.len(), |n| at + n);
    Some(mail[start..end].to_owned())
}
