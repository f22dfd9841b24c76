//! Private servers for the fault-injection tests that stop and restart ClickHouse or the broker:
//! started by `deploy/local/start.sh` (the same script and settings as the shared servers) in a
//! state folder of their own, on free ports, so the shared servers and the tests running beside
//! them are never touched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ClickHouse,
    Kafka,
}

/// A private server; killed and its state deleted on drop.
pub struct OwnServer {
    kind: Kind,
    state: PathBuf,
    ports: [u16; 2],
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl OwnServer {
    /// Starts a private server of `kind` and waits until it answers.
    pub fn start(kind: Kind, name: &str) -> OwnServer {
        let state = std::env::temp_dir().join(format!("pv-own-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).expect("state dir");
        let server = OwnServer { kind, state, ports: [free_port(), free_port()] };
        server.up();
        server
    }

    /// `host:port` for Kafka, `http://host:port` for ClickHouse.
    pub fn address(&self) -> String {
        match self.kind {
            Kind::ClickHouse => format!("http://127.0.0.1:{}", self.ports[0]),
            Kind::Kafka => format!("127.0.0.1:{}", self.ports[0]),
        }
    }

    /// Starts the server again with the same data (idempotent if it is up).
    pub fn up(&self) {
        let shared_state =
            std::env::var("PV_STATE").map(PathBuf::from).unwrap_or_else(|_| repo().join(".state"));
        let mut cmd = Command::new(repo().join("deploy/local/start.sh"));
        cmd.env("PV_STATE", &self.state)
            .env("KAFKA_LIBS", shared_state.join("kafka-libs"))
            .env("KAFKA_HEAP", "-Xmx384m -Xms128m");
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
        let out = cmd.output().expect("running deploy/local/start.sh");
        assert!(
            out.status.success(),
            "starting a private {:?} failed:\n{}",
            self.kind,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pid(&self) -> Option<String> {
        let file = match self.kind {
            Kind::ClickHouse => "clickhouse.pid",
            Kind::Kafka => "kafka.pid",
        };
        std::fs::read_to_string(self.state.join(file)).ok().map(|s| s.trim().to_owned())
    }

    /// Sends `signal` (e.g. "KILL", "TERM") to the server and waits until the process is gone.
    pub fn stop(&self, signal: &str) {
        let Some(pid) = self.pid() else { return };
        let _ = Command::new("kill").args([&format!("-{signal}"), &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while alive(&pid) {
            assert!(Instant::now() < deadline, "{:?} (pid {pid}) did not stop on SIG{signal}", self.kind);
            std::thread::sleep(Duration::from_millis(100));
        }
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
        self.stop("KILL");
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
