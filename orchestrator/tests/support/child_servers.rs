//! Servers the tests run as child processes (shared by the test binaries that include this file):
//! waiting for one to listen, and a CalDAV server (Radicale, installed by scripts/test).

use parley_testkit::servers::free_port;
use reqwest::StatusCode;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Waits until `child` listens on `port`, failing with `what` if it exits or takes too long.
pub fn wait_for(port: u16, what: &str, child: &mut Child, within: Duration) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening on port {port}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} is not listening on port {port} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A CalDAV server (Radicale), without authentication, storing in a temporary folder.
pub struct Radicale {
    child: Child,
    _dir: tempfile::TempDir,
    pub base: String,
}

impl Radicale {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port().expect("port");
        let mut child = Command::new("python3")
            .args(["-m", "radicale", "--server-hosts", &format!("127.0.0.1:{port}")])
            .arg("--storage-filesystem-folder")
            .arg(dir.path())
            .args(["--auth-type", "none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start python3 -m radicale (install it: scripts/test, or pip install radicale)");
        wait_for(
            port,
            "radicale (pip install radicale)",
            &mut child,
            Duration::from_secs(20),
        );
        Self {
            child,
            _dir: dir,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Makes a calendar collection (and its owner's collection) and returns its URL.
    pub async fn calendar(&self, http: &reqwest::Client, path: &str) -> String {
        let url = format!("{}{path}", self.base);
        // Radicale makes the owner's collection on login; without logins, it is made here.
        let parent = path
            .trim_end_matches('/')
            .rsplit_once('/')
            .map_or("", |(p, _)| p);
        let method = |m: &[u8]| reqwest::Method::from_bytes(m).expect("method");
        let r = http
            .request(method(b"MKCOL"), format!("{}{parent}/", self.base))
            .send()
            .await
            .expect("MKCOL");
        assert!(r.status().is_success(), "MKCOL {parent}: {}", r.status());
        let r = http
            .request(method(b"MKCALENDAR"), &url)
            .send()
            .await
            .expect("MKCALENDAR");
        assert_eq!(r.status(), StatusCode::CREATED, "MKCALENDAR {path}");
        url
    }

    /// Stores an event (an .ics file) in a calendar, replacing one of the same name.
    pub async fn put(&self, http: &reqwest::Client, calendar: &str, name: &str, ics: String) {
        let r = http
            .put(format!("{calendar}{name}.ics"))
            .header("content-type", "text/calendar; charset=utf-8")
            .body(ics)
            .send()
            .await
            .expect("PUT");
        assert!(r.status().is_success(), "PUT {name}: {}", r.status());
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
