//! Private servers for fault injection: ClickHouse or an Apache Kafka broker started by
//! `deploy/local/start.sh` (the same script and settings as the shared servers) in a state folder
//! of their own, on free ports, so they can be killed and restarted without touching the shared
//! servers or anything running beside them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ClickHouse (HTTP and native ports).
    ClickHouse,
    /// Apache Kafka in KRaft mode (broker and controller ports).
    Kafka,
}

/// A private server; killed and its state deleted on drop.
#[derive(Debug)]
pub struct OwnServer {
    kind: Kind,
    repo: PathBuf,
    state: PathBuf,
    ports: [u16; 2],
    /// The TLS port (Kafka SASL_SSL, ClickHouse HTTPS) of a secured server.
    secure_port: Option<u16>,
}

/// A port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl OwnServer {
    /// Starts a private server of `kind` with the scripts of the repository at `repo` and waits
    /// until it answers (blocking: run it off the async threads).
    pub fn start(kind: Kind, name: &str, repo: &Path) -> anyhow::Result<OwnServer> {
        Self::start_with(kind, name, repo, false)
    }

    /// Like [`OwnServer::start`], with a secured listener besides the plain one: Kafka SASL_SSL
    /// (SCRAM-SHA-512) or ClickHouse HTTPS, the user `pv` with a generated password, and a
    /// generated CA (see `deploy/local/start.sh`).
    pub fn start_secured(kind: Kind, name: &str, repo: &Path) -> anyhow::Result<OwnServer> {
        Self::start_with(kind, name, repo, true)
    }

    fn start_with(kind: Kind, name: &str, repo: &Path, secured: bool) -> anyhow::Result<OwnServer> {
        let state = std::env::temp_dir().join(format!("pv-own-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
        let secure_port = if secured { Some(free_port()?) } else { None };
        let ports = [free_port()?, free_port()?];
        let server = OwnServer { kind, repo: repo.to_owned(), state, ports, secure_port };
        server.up()?;
        Ok(server)
    }

    /// The secured address: `127.0.0.1:port` (SASL_SSL) for Kafka, `https://localhost:port` for
    /// ClickHouse; `None` unless started with [`OwnServer::start_secured`].
    pub fn secure_address(&self) -> Option<String> {
        let port = self.secure_port?;
        Some(match self.kind {
            Kind::ClickHouse => format!("https://localhost:{port}"),
            Kind::Kafka => format!("127.0.0.1:{port}"),
        })
    }

    /// The generated files of a secured server: `ca.pem`, `kafka-pv.password`,
    /// `clickhouse-pv.password`.
    pub fn tls_file(&self, name: &str) -> PathBuf {
        self.state.join("tls").join(name)
    }

    /// `127.0.0.1:port` for Kafka, `http://127.0.0.1:port` for ClickHouse.
    pub fn address(&self) -> String {
        match self.kind {
            Kind::ClickHouse => format!("http://127.0.0.1:{}", self.ports[0]),
            Kind::Kafka => format!("127.0.0.1:{}", self.ports[0]),
        }
    }

    /// Starts the server (again, with the same data) and waits until it answers; a no-op if it
    /// is up.
    pub fn up(&self) -> anyhow::Result<()> {
        let shared =
            std::env::var("PV_STATE").map(PathBuf::from).unwrap_or_else(|_| self.repo.join(".state"));
        let mut cmd = Command::new(self.repo.join("deploy/local/start.sh"));
        cmd.env("PV_STATE", &self.state)
            .env("KAFKA_LIBS", shared.join("kafka-libs"))
            .env("KAFKA_HEAP", "-Xmx512m -Xms128m");
        if let Some(port) = self.secure_port {
            let var = if self.kind == Kind::Kafka { "KAFKA_SECURE_PORT" } else { "CH_HTTPS_PORT" };
            cmd.env(var, port.to_string());
        }
        match self.kind {
            Kind::ClickHouse => cmd
                .env("PV_START", "clickhouse")
                .env("CH_HTTP_PORT", self.ports[0].to_string())
                .env("CH_TCP_PORT", self.ports[1].to_string()),
            Kind::Kafka => cmd
                .env("PV_START", "kafka")
                .env("KAFKA_PORT", self.ports[0].to_string())
                .env("KAFKA_CONTROLLER_PORT", self.ports[1].to_string()),
        };
        let out = cmd.output().context("running deploy/local/start.sh")?;
        anyhow::ensure!(
            out.status.success(),
            "starting a private {:?} failed:\n{}",
            self.kind,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn pid(&self) -> Option<String> {
        let file = match self.kind {
            Kind::ClickHouse => "clickhouse.pid",
            Kind::Kafka => "kafka.pid",
        };
        std::fs::read_to_string(self.state.join(file)).ok().map(|s| s.trim().to_owned())
    }

    /// Freezes the server (SIGSTOP: it keeps its connections and answers nothing, like a hung
    /// server) or thaws it (SIGCONT).
    pub fn freeze(&self, frozen: bool) -> anyhow::Result<()> {
        let pid = self.pid().context("no pid file: not started")?;
        let signal = if frozen { "-STOP" } else { "-CONT" };
        anyhow::ensure!(Command::new("kill").args([signal, &pid]).status()?.success(), "kill {signal} {pid}");
        Ok(())
    }

    /// Sends `signal` ("KILL", "TERM") to the server and waits until the process is gone.
    pub fn stop(&self, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else { return Ok(()) };
        let _ = Command::new("kill").args([&format!("-{signal}"), &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while alive(&pid) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{:?} (pid {pid}) did not stop on SIG{signal}",
                self.kind
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

/// Whether `pid` runs (a zombie does not: its parent, not us, would have to reap it).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.stop("KILL");
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
