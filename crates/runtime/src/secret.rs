//! Secrets in the configuration: read from a file or an environment variable when the
//! configuration loads, never written in it, never printed.
//!
//! ```toml
//! password = { file = "/run/secrets/clickhouse-password" }   # the file's text, one trailing newline dropped
//! password = { env = "PV_CLICKHOUSE_PASSWORD" }              # the variable's value
//! ```

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

/// A secret value. `Debug` shows where it came from, never the value; there is no `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret {
    value: String,
    source: Source,
}

#[derive(Clone, Default, PartialEq, Eq)]
enum Source {
    /// No secret configured (the empty value).
    #[default]
    None,
    File(PathBuf),
    Env(String),
}

impl Secret {
    /// The value, for handing to a client library. Never log it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether a secret was configured.
    pub fn is_set(&self) -> bool {
        self.source != Source::None
    }

    /// Reads the secret from `path` (one trailing newline dropped).
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, String> {
        let path = path.into();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
        let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        if value.is_empty() {
            return Err(format!("the secret file {} is empty", path.display()));
        }
        Ok(Self { value: value.to_owned(), source: Source::File(path) })
    }

    /// Reads the secret from the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Self, String> {
        let value = std::env::var(name)
            .map_err(|_| format!("the secret's environment variable {name} is not set (or not UTF-8)"))?;
        if value.is_empty() {
            return Err(format!("the secret's environment variable {name} is empty"));
        }
        Ok(Self { value, source: Source::Env(name.to_owned()) })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::None => f.write_str("Secret(none)"),
            Source::File(path) => write!(f, "Secret(redacted, from file {})", path.display()),
            Source::Env(name) => write!(f, "Secret(redacted, from ${name})"),
        }
    }
}

/// Where a secret comes from, as written in the configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRef {
    file: Option<PathBuf>,
    env: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Ref(SecretRef),
    Inline(String),
    Other(serde::de::IgnoredAny),
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Written::deserialize(deserializer)? {
            Written::Inline(value) => {
                drop(value);
                Err(D::Error::custom(
                    "a secret is never written in the configuration: give { file = 'PATH' } or { env = 'NAME' }",
                ))
            }
            Written::Other(_) => {
                Err(D::Error::custom("a secret is { file = 'PATH' } or { env = 'NAME' }, nothing else"))
            }
            Written::Ref(SecretRef { file: Some(path), env: None }) => {
                Secret::from_file(path).map_err(D::Error::custom)
            }
            Written::Ref(SecretRef { file: None, env: Some(name) }) => {
                Secret::from_env(&name).map_err(D::Error::custom)
            }
            Written::Ref(_) => Err(D::Error::custom("a secret has exactly one of `file` or `env`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        password: Secret,
    }

    /// As configuration files are read (errors never quote the text).
    fn parse(text: &str) -> Result<Holder, String> {
        crate::config::parse_toml(text)
    }

    #[test]
    fn secrets_come_from_files_and_variables_and_are_never_printed() {
        let dir = std::env::temp_dir().join(format!("pv-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret-from-file\n").expect("write");
        let held = parse(&format!("password = {{ file = {:?} }}", file.display().to_string())).expect("file");
        assert_eq!(held.password.expose(), "s3cret-from-file", "one trailing newline dropped");
        let shown = format!("{held:?} {held:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("from file"), "{shown}");

        // A variable every test process has (setting one would need `unsafe`).
        let path = std::env::var("PATH").expect("PATH is set");
        let held = parse("password = { env = \"PATH\" }").expect("env");
        assert_eq!(held.password.expose(), path);
        let shown = format!("{held:?}");
        assert!(!shown.contains(&path) && shown.contains("from $PATH"), "{shown}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn inline_missing_and_ambiguous_secrets_are_refused_with_the_field() {
        let err = parse("password = \"hunter2hunter2\"").expect_err("inline");
        assert!(err.contains("never written in the configuration") && err.contains("password"), "{err}");
        assert!(!err.contains("hunter2"), "the refused value is not echoed: {err}");
        let err = parse("password = { env = \"PV_SECRET_TEST_UNSET_VARIABLE\" }").expect_err("unset");
        assert!(err.contains("PV_SECRET_TEST_UNSET_VARIABLE is not set"), "{err}");
        let err = parse("password = { file = \"/nonexistent/pv-secret\" }").expect_err("no file");
        assert!(err.contains("cannot read the secret file /nonexistent/pv-secret"), "{err}");
        let err = parse("password = { file = \"a\", env = \"B\" }").expect_err("both");
        assert!(err.contains("exactly one"), "{err}");
        let err = parse("password = { fil = \"/run/secrets/x\" }").expect_err("typo");
        assert!(err.contains("is { file = 'PATH' } or { env = 'NAME' }, nothing else"), "{err}");
    }
}
