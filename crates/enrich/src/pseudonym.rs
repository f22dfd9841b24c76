//! Pseudonymisation: patient key = HMAC-SHA256(secret, clinic_id + "/" + patient_ref).
//!
//! The secret comes from a file or an environment variable, never from code or logs; the same
//! secret always gives the same key, so one patient's events link up across time without the
//! clinic's reference ever leaving the enricher. Clinic ids cannot contain `/`, so the message
//! is unambiguous.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest accepted secret, in bytes (the SHA-256 block size is 64; 32 random bytes is ample).
pub const MIN_SECRET_BYTES: usize = 32;

/// A patient key: the raw 32 HMAC bytes.
pub type PatientKey = [u8; 32];

/// Why the secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Neither the file nor the variable is set.
    #[error("no pseudonymisation secret: set {env} or [enrich] secret_file")]
    Missing {
        /// The variable looked at.
        env: String,
    },
    /// The file cannot be read.
    #[error("cannot read the pseudonymisation secret file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Too short to be a secret.
    #[error("the pseudonymisation secret is {0} bytes; at least {MIN_SECRET_BYTES} are required")]
    TooShort(usize),
}

/// Keys patients with a secret.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser { secret: <redacted> }")
    }
}

impl Pseudonymiser {
    /// A pseudonymiser with `secret` (surrounding whitespace, e.g. a file's newline, is ignored).
    pub fn new(secret: &[u8]) -> Result<Self, SecretError> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(secret.len()));
        }
        // HMAC accepts keys of any length.
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SecretError::TooShort(secret.len()))?;
        Ok(Self { mac })
    }

    /// Reads the secret from `file` if given, else from the environment variable `env`.
    pub fn from_file_or_env(file: Option<&Path>, env: &str) -> Result<Self, SecretError> {
        match file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|source| SecretError::Read { path: path.display().to_string(), source })?;
                Self::new(&bytes)
            }
            None => match std::env::var_os(env) {
                Some(v) => Self::new(v.as_encoded_bytes()),
                None => Err(SecretError::Missing { env: env.to_owned() }),
            },
        }
    }

    /// The key of a clinic's patient.
    pub fn key(&self, clinic_id: &str, patient_ref: &str) -> PatientKey {
        let mut mac = self.mac.clone();
        mac.update(clinic_id.as_bytes());
        mac.update(b"/");
        mac.update(patient_ref.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Lower-case hex of a key (its form in enriched events and tables).
pub fn key_hex(key: &PatientKey) -> String {
    // Into a buffer at once: `hex::encode` builds the string a char at a time (a hot path:
    // every enriched event and changelog record is keyed by it).
    let mut buf = [0u8; 64];
    match hex::encode_to_slice(key, &mut buf).map(|()| std::str::from_utf8(&buf)) {
        Ok(Ok(hex)) => hex.to_owned(),
        _ => hex::encode(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn keys_match_an_independent_hmac_computation() {
        // printf 'clinic-01/01-0001' | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
        let p = Pseudonymiser::new(SECRET).expect("secret");
        assert_eq!(
            key_hex(&p.key("clinic-01", "01-0001")),
            "9617ad615997c4d2ccee44927204d48998d7c44fa22edaeeb0a94dbaa0cabd18"
        );
    }

    #[test]
    fn keys_separate_clinics_and_secrets() {
        let p = Pseudonymiser::new(SECRET).expect("secret");
        assert_eq!(p.key("c1", "p1"), p.key("c1", "p1"));
        assert_ne!(p.key("c1", "p1"), p.key("c2", "p1"));
        // Valid clinic ids hold no '/', so moving characters across the separator changes the key.
        assert_ne!(p.key("c1", "2p"), p.key("c12", "p"));
        let other = Pseudonymiser::new(b"another secret of more than thirty-two bytes").expect("secret");
        assert_ne!(p.key("c1", "p1"), other.key("c1", "p1"));
    }

    #[test]
    fn short_or_missing_secrets_are_refused_and_never_printed() {
        assert!(matches!(Pseudonymiser::new(b"short\n"), Err(SecretError::TooShort(5))));
        let p = Pseudonymiser::new(SECRET).expect("secret");
        assert!(!format!("{p:?}").contains("0123"));
        let err =
            Pseudonymiser::from_file_or_env(None, "PV_TEST_SURELY_UNSET_SECRET_VAR").expect_err("missing");
        assert!(err.to_string().contains("PV_TEST_SURELY_UNSET_SECRET_VAR"));
    }
}
