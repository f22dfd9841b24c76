//! `pv clinics`: the gateway's clinics file (token hashes). `init` makes a local demo set plus the
//! matching plaintext tokens (owner-only permissions); `list`, `add` and `revoke` manage tokens
//! one at a time, and a running gateway picks the change up without a restart. The file is
//! rewritten atomically (a new file renamed over the old), so the gateway never reads half of it.

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
    /// The clinics that have tokens, and how many each.
    List,
    /// A new token for a clinic (new or not: a second token lets a clinic rotate). Prints the
    /// token once; only its hash is stored.
    Add {
        /// The clinic.
        #[arg(long)]
        clinic: String,
    },
    /// Revoke every token of a clinic.
    Revoke {
        /// The clinic.
        #[arg(long)]
        clinic: String,
    },
}

impl ClinicsCommand {
    pub(crate) fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        match self {
            ClinicsCommand::Init { count, tokens_file } => {
                init(count, &cfg.gateway.clinics_file, &tokens_file)
            }
            ClinicsCommand::List => list(&cfg.gateway.clinics_file),
            ClinicsCommand::Add { clinic } => add(&cfg.gateway.clinics_file, &clinic),
            ClinicsCommand::Revoke { clinic } => revoke(&cfg.gateway.clinics_file, &clinic),
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
        write_private(path, &text)?;
    }
    println!(
        "created {count} clinics: {} (hashes), {} (tokens)",
        clinics_file.display(),
        tokens_file.display()
    );
    Ok(())
}

const HEADER: &str = "# Clinics allowed to submit events; tokens are stored as SHA-256 only.\n";

/// Writes `text` to `path` readable by its owner only (0600), atomically: a new file in the
/// same folder renamed over the old one.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

fn read_entries(path: &Path) -> anyhow::Result<Vec<pv_gateway::auth::ClinicEntry>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: pv_gateway::auth::ClinicsFile =
        toml::from_str(&text).with_context(|| format!("{} is not a clinics file", path.display()))?;
    Ok(file.clinics)
}

fn write_entries(path: &Path, entries: &[pv_gateway::auth::ClinicEntry]) -> anyhow::Result<()> {
    // The gateway's own check: what it would refuse to load is never written.
    pv_gateway::auth::ClinicTokens::from_entries(entries).map_err(anyhow::Error::msg)?;
    let mut text = String::from(HEADER);
    for e in entries {
        let _ = write!(text, "[[clinic]]\nid = \"{}\"\ntoken_sha256 = \"{}\"\n", e.id, e.token_sha256);
    }
    write_private(path, &text)
}

fn list(path: &Path) -> anyhow::Result<()> {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for e in read_entries(path)? {
        *counts.entry(e.id).or_default() += 1;
    }
    for (clinic, n) in &counts {
        println!("{clinic}\t{n} token{}", if *n == 1 { "" } else { "s" });
    }
    Ok(())
}

fn add(path: &Path, clinic: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        pv_events::validate::is_valid_clinic_id(clinic),
        "--clinic `{clinic}`: 1-64 characters of A-Z a-z 0-9 . _ -"
    );
    let token = new_token()?;
    let mut entries = read_entries(path)?;
    entries.push(pv_gateway::auth::ClinicEntry {
        id: clinic.to_owned(),
        token_sha256: hex::encode(pv_gateway::auth::hash_token(&token)),
    });
    write_entries(path, &entries)?;
    println!("token for {clinic} (shown once; give it to the clinic, store nowhere else): {token}");
    Ok(())
}

fn revoke(path: &Path, clinic: &str) -> anyhow::Result<()> {
    let mut entries = read_entries(path)?;
    let before = entries.len();
    entries.retain(|e| e.id != clinic);
    anyhow::ensure!(entries.len() < before, "--clinic {clinic}: no token in {}", path.display());
    write_entries(path, &entries)?;
    println!("revoked {} token(s) of {clinic}", before - entries.len());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn token_files_are_owner_only_and_add_revoke_keep_the_file_loadable() {
        let dir = std::env::temp_dir().join(format!("pv-clinics-test-{}", std::process::id()));
        let (clinics, tokens) = (dir.join("clinics.toml"), dir.join("tokens.toml"));
        init(2, &clinics, &tokens).expect("init");
        for f in [&clinics, &tokens] {
            let mode = std::fs::metadata(f).expect("file").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is owner-only", f.display());
        }
        add(&clinics, "clinic-east").expect("add");
        assert_eq!(read_entries(&clinics).expect("entries").len(), 3);
        revoke(&clinics, "clinic-01").expect("revoke");
        let ids: Vec<String> = read_entries(&clinics).expect("entries").into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["clinic-02", "clinic-east"]);
        assert!(pv_gateway::auth::ClinicTokens::load(&clinics).is_ok(), "the gateway loads it");
        assert!(revoke(&clinics, "clinic-01").is_err(), "nothing left to revoke");
        assert!(add(&clinics, "bad/id").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
