//! Secrets sealed at rest with ChaCha20-Poly1305 under the server's secret key
//! (`PARLEY_SECRET_KEY`, 64 hex digits; embedded default: a key file made once in the data dir):
//! calendar passwords and feed addresses, live captions links. A copy of the database alone
//! opens none of them.

use anyhow::{Context, bail};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::path::Path;

pub struct Sealer(LessSafeKey);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

impl Sealer {
    pub fn from_hex(key: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(key.trim()).ok().filter(|b| b.len() == 32).context(
            "PARLEY_SECRET_KEY must be 64 hex digits (32 random bytes, e.g. `openssl rand -hex 32`)",
        )?;
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| anyhow::anyhow!("invalid secret key"))?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// The key in `dir/secret.key`, made (readable by the owner only) on first use.
    pub fn from_data_dir(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("secret.key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return Self::from_hex(&existing);
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let key = hex::encode(bytes);
        write_private(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
        Self::from_hex(&key)
    }

    pub fn seal(&self, plain: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let mut data = plain.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map_err(|_| anyhow::anyhow!("cannot seal"))?;
        Ok(format!("{}{}", hex::encode(nonce), hex::encode(&data)))
    }

    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let bytes = hex::decode(sealed)
            .ok()
            .context("sealed value is not hex")?;
        if bytes.len() < NONCE_LEN {
            bail!("sealed value too short");
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!("bad nonce"))?;
        let mut data = data.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::empty(), &mut data)
            .map_err(|_| anyhow::anyhow!("cannot open a sealed value: wrong PARLEY_SECRET_KEY?"))?;
        Ok(String::from_utf8(plain.to_vec())?)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_key_only() {
        let dir = tempfile::tempdir().expect("dir");
        let a = Sealer::from_data_dir(dir.path()).expect("key");
        let again = Sealer::from_data_dir(dir.path()).expect("same key");
        let sealed = a.seal("hunter2").expect("seal");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            a.seal("hunter2").expect("seal"),
            "a fresh nonce each time"
        );
        assert_eq!(again.open(&sealed).expect("open"), "hunter2");
        let other = Sealer::from_hex(&"ab".repeat(32)).expect("key");
        assert!(other.open(&sealed).is_err());
        assert!(Sealer::from_hex("short").is_err());
    }
}
