//! Private, throw-away Postgres and Redis servers on loopback, for tests and benchmarks when no
//! `DATABASE_URL`/`REDIS_URL` is given. Each lives in its own temporary folder on a free port and
//! is stopped when dropped, or by a watchdog when the process that started it dies first.

use anyhow::{Context, Result, bail};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback. Another process could take it before we bind it again; the
/// window is a few milliseconds and the server start fails loudly if it happens.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Stops `stop_cmd` once process `pid` is gone, so servers never outlive a killed test run.
fn spawn_watchdog(stop_cmd: &str) -> Result<()> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop_cmd}",
        pid = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the server watchdog")?;
    Ok(())
}

fn is_root() -> bool {
    // `id -u` rather than libc: this crate forbids unsafe code.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn find_pg_bin(name: &str) -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    candidates.sort();
    if let Some(p) = candidates.pop() {
        return Ok(p);
    }
    which(name).with_context(|| {
        format!(
            "{name} not found: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL"
        )
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// A private PostgreSQL cluster. Connect as `postgres` without a password.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    pg_ctl: PathBuf,
    as_postgres_user: bool,
}

impl PrivatePostgres {
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("parley-pg-").tempdir()?;
        let initdb = find_pg_bin("initdb")?;
        let pg_ctl = find_pg_bin("pg_ctl")?;
        // initdb and postgres refuse to run as root: use the distribution's postgres account.
        let as_postgres_user = is_root();
        if as_postgres_user {
            run(
                Command::new("chown").arg("postgres:").arg(dir.path()),
                "chown of the Postgres folder",
            )?;
        }
        let pg = Self {
            port: free_port()?,
            dir,
            pg_ctl,
            as_postgres_user,
        };
        run(
            pg.command(&initdb)
                .arg("-D")
                .arg(pg.data())
                .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
                .arg("--locale=C.UTF-8"),
            "initdb",
        )?;
        pg.start_server()?;
        spawn_watchdog(&format!(
            "{} -m immediate stop; rm -rf {}",
            pg.pg_ctl_line(),
            pg.dir.path().display()
        ))?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &Path) -> Command {
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl_line(&self) -> String {
        let runuser = if self.as_postgres_user {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "{runuser}{} -D {}",
            self.pg_ctl.display(),
            self.data().display()
        )
    }

    fn start_server(&self) -> Result<()> {
        let options = format!(
            // fsync off: nothing here must survive the machine. Commits stay synchronous, so a
            // crashed server (the fault tests stop it as a crash) keeps what it acknowledged.
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off \
             -c max_connections=300",
            self.port,
            self.dir.path().display()
        );
        run(
            self.command(&self.pg_ctl)
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("log"))
                .args(["-w", "-t", "30", "start", "-o", &options]),
            "pg_ctl start",
        )
        .with_context(|| {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            format!("postgres log:\n{log}")
        })
    }

    /// Stops the server as a crash would (no checkpoint), as a killed pod does.
    pub fn stop(&self) -> Result<()> {
        run(
            self.command(&self.pg_ctl).arg("-D").arg(self.data()).args([
                "-m",
                "immediate",
                "-w",
                "stop",
            ]),
            "pg_ctl stop",
        )
    }

    /// Starts it again on the same port after [`stop`](Self::stop).
    pub fn restart(&self) -> Result<()> {
        self.start_server()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of the `postgres` database; create a database per test with [`Self::url_for`].
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A private Redis with an append-only file written on every command, so a restart loses no
/// acknowledged write.
#[derive(Debug)]
pub struct PrivateRedis {
    dir: tempfile::TempDir,
    port: u16,
    server: PathBuf,
}

impl PrivateRedis {
    pub fn start() -> Result<Self> {
        let server = which("redis-server").context(
            "redis-server not found: install it (apt-get install redis-server) or set REDIS_URL",
        )?;
        let redis = Self {
            dir: tempfile::Builder::new().prefix("parley-redis-").tempdir()?,
            port: free_port()?,
            server,
        };
        redis.start_server()?;
        spawn_watchdog(&format!(
            "kill $(cat {pid}) 2>/dev/null; sleep 1; rm -rf {dir}",
            pid = redis.pidfile().display(),
            dir = redis.dir.path().display()
        ))?;
        Ok(redis)
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.path().join("redis.pid")
    }

    fn start_server(&self) -> Result<()> {
        run(
            Command::new(&self.server)
                .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
                .arg("--dir")
                .arg(self.dir.path())
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .args(["--daemonize", "yes", "--pidfile"])
                .arg(self.pidfile())
                .arg("--logfile")
                .arg(self.dir.path().join("log")),
            "redis-server",
        )?;
        wait_for_port(self.port, "redis-server")
    }

    /// Stops the server (SIGTERM, as Kubernetes does) and waits until it is gone.
    pub fn stop(&self) -> Result<()> {
        let pid = std::fs::read_to_string(self.pidfile()).context("redis pid file")?;
        let pid = pid.trim();
        run(Command::new("kill").arg(pid), "kill redis-server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() {
            if Instant::now() > deadline {
                bail!("redis-server {pid} did not stop within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub fn restart(&self) -> Result<()> {
        self.start_server()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn wait_for_port(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} is not listening on port {port} after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
