//! `pv clinics init`: a local clinics file plus the matching plaintext tokens, for demos and
//! the simulator. Production clinics get tokens one at a time with `pv token`.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;

use crate::PvConfig;

#[derive(Debug, Subcommand)]
pub(crate) enum ClinicsCommand {
    /// Create `count` clinics (clinic-01, clinic-02, ...) with random tokens, unless the files
    /// exist already. Writes the hashes to the gateway's clinics file and the tokens next to it.
    Init {
        /// Number of clinics.
        #[arg(long, default_value_t = 5)]
        count: u32,
        /// Where to write the plaintext tokens (local use only).
        #[arg(long, default_value = ".state/clinic-tokens.toml")]
        tokens_file: PathBuf,
    },
}

impl ClinicsCommand {
    pub(crate) fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        match self {
            ClinicsCommand::Init { count, tokens_file } => {
                init(count, &cfg.gateway.clinics_file, &tokens_file)
            }
        }
    }
}

fn init(count: u32, clinics_file: &Path, tokens_file: &Path) -> anyhow::Result<()> {
    if clinics_file.exists() && tokens_file.exists() {
        println!("clinics exist already: {} and {}", clinics_file.display(), tokens_file.display());
        return Ok(());
    }
    let mut hashes = String::from("# Clinics allowed to submit events; tokens are stored as SHA-256 only.\n");
    let mut tokens = String::from(
        "# LOCAL DEMO ONLY: plaintext clinic tokens for the simulator. Never deploy this file.\n",
    );
    for i in 1..=count {
        let clinic = format!("clinic-{i:02}");
        let token = new_token()?;
        hashes.push_str(&pv_gateway::auth::clinic_entry_toml(&clinic, &token));
        let _ = write!(tokens, "[[clinic]]\nid = \"{clinic}\"\ntoken = \"{token}\"\n");
    }
    for (path, text) in [(clinics_file, hashes), (tokens_file, tokens)] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "created {count} clinics: {} (hashes), {} (tokens)",
        clinics_file.display(),
        tokens_file.display()
    );
    Ok(())
}

/// A new random 256-bit token, hex encoded, from the OS's random source.
pub(crate) fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a token")?;
    Ok(bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}
