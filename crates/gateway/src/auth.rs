//! Clinic authentication: bearer tokens, stored only as SHA-256 hashes.
//!
//! Tokens are random 256-bit secrets (see `pv token`), so a plain SHA-256 is a safe one-way
//! store: the clinics file never holds a usable credential.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The clinics file: one `[[clinic]]` table per clinic.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicsFile {
    /// The clinics allowed to submit.
    #[serde(default, rename = "clinic")]
    pub clinics: Vec<ClinicEntry>,
}

/// One clinic and the hash of its token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicEntry {
    /// The clinic id its events must carry.
    pub id: String,
    /// Lower-case hex SHA-256 of the bearer token.
    pub token_sha256: String,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    /// The token matches no clinic.
    #[error("unknown or revoked token")]
    Unknown,
}

/// Token hash -> clinic id.
#[derive(Debug, Clone, Default)]
pub struct ClinicTokens {
    by_hash: HashMap<[u8; 32], String>,
}

impl ClinicTokens {
    /// Loads and checks a clinics file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read clinics file {}: {e}", path.display()))?;
        let file: ClinicsFile =
            toml::from_str(&text).map_err(|e| format!("invalid clinics file {}: {e}", path.display()))?;
        Self::from_entries(&file.clinics).map_err(|e| format!("clinics file {}: {e}", path.display()))
    }

    /// Builds the table, refusing malformed hashes, bad clinic ids and duplicate tokens.
    pub fn from_entries(entries: &[ClinicEntry]) -> Result<Self, String> {
        let mut by_hash = HashMap::new();
        for e in entries {
            if !pv_events::validate::is_valid_clinic_id(&e.id) {
                return Err(format!("clinic id `{}` is not 1-64 characters of A-Z a-z 0-9 . _ -", e.id));
            }
            let bytes = hex::decode(&e.token_sha256)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| format!("clinic `{}`: token_sha256 must be 64 hex digits", e.id))?;
            if by_hash.insert(bytes, e.id.clone()).is_some() {
                return Err(format!("clinic `{}`: the same token is listed twice", e.id));
            }
        }
        Ok(Self { by_hash })
    }

    /// The clinic an `Authorization` header value authenticates.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<&str, AuthError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.by_hash.get(&hash_token(token)).map(String::as_str).ok_or(AuthError::Unknown)
    }

    /// Number of clinics.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no clinic is configured.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The clinics-file line for a clinic and token.
pub fn clinic_entry_toml(clinic_id: &str, token: &str) -> String {
    format!("[[clinic]]\nid = \"{clinic_id}\"\ntoken_sha256 = \"{}\"\n", hex::encode(hash_token(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> ClinicTokens {
        let file: ClinicsFile =
            toml::from_str(&(clinic_entry_toml("north", "tok-n") + &clinic_entry_toml("south", "tok-s")))
                .expect("toml");
        ClinicTokens::from_entries(&file.clinics).expect("valid")
    }

    #[test]
    fn a_token_authenticates_its_clinic_only() {
        let t = tokens();
        assert_eq!(t.authenticate(Some("Bearer tok-n")), Ok("north"));
        assert_eq!(t.authenticate(Some("Bearer tok-s")), Ok("south"));
        assert_eq!(t.authenticate(Some("Bearer tok-x")), Err(AuthError::Unknown));
        assert_eq!(t.authenticate(Some("Basic dG9r")), Err(AuthError::Missing));
        assert_eq!(t.authenticate(None), Err(AuthError::Missing));
    }

    #[test]
    fn the_file_holds_no_token() {
        let line = clinic_entry_toml("north", "tok-n");
        assert!(!line.contains("tok-n"));
        // sha256("tok-n"), computed independently with `printf tok-n | sha256sum`.
        assert!(line.contains("99e701939941c42414d78a4c643c2ef55073c4583c9f1cce0048684244fa8fc3"), "{line}");
    }

    #[test]
    fn malformed_entries_are_refused() {
        let bad_hash = ClinicEntry { id: "a".into(), token_sha256: "abc".into() };
        assert!(ClinicTokens::from_entries(&[bad_hash]).is_err());
        let bad_id = ClinicEntry { id: "a/b".into(), token_sha256: hex::encode(hash_token("t")) };
        assert!(ClinicTokens::from_entries(&[bad_id]).is_err());
        let dup = ClinicEntry { id: "a".into(), token_sha256: hex::encode(hash_token("t")) };
        let dup2 = ClinicEntry { id: "b".into(), ..dup.clone() };
        assert!(ClinicTokens::from_entries(&[dup, dup2]).is_err());
    }
}
