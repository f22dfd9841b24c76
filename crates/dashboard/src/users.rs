//! Users of the workbench: a TOML file of names, roles, clinics and argon2id password hashes.

use std::path::Path;
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// What a user may see and do (enforced by the server on every route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including narratives and workflow actions.
    SafetyOfficer,
    /// Read-only: aggregates, signals, line listings, workflow history; no narratives. Patients
    /// appear only as the enricher's pseudonymous keys (as for every role: the clinics' patient
    /// references never reach the store), so that a regulator can tell one patient's reports
    /// apart from another's without being able to identify anyone.
    Regulator,
    /// Its own clinic's cases and aggregates only.
    Clinic,
}

impl Role {
    /// The name in the users file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::SafetyOfficer => "safety_officer",
            Role::Regulator => "regulator",
            Role::Clinic => "clinic",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::SafetyOfficer, Role::Regulator, Role::Clinic].into_iter().find(|r| r.name() == name)
    }
}

/// One user as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Sign-in name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The clinic of a clinic user (required for them, absent for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// The users file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Every user.
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
}

/// Why a users-file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        #[allow(missing_docs)]
        path: String,
        #[allow(missing_docs)]
        source: std::io::Error,
    },
    /// The file is not a valid users file.
    #[error("{path}: {reason}")]
    Invalid {
        #[allow(missing_docs)]
        path: String,
        #[allow(missing_docs)]
        reason: String,
    },
    /// A user to add is not acceptable.
    #[error("{field}: {reason}")]
    Field {
        #[allow(missing_docs)]
        field: &'static str,
        #[allow(missing_docs)]
        reason: String,
    },
    /// Hashing failed.
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// The hash of a random password, verified against when the user name is unknown so that a
/// wrong name costs as long as a wrong password.
static DECOY: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    let password = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_str().as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

impl Users {
    /// Reads `path`; a missing file is no users.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let p = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(source) => return Err(UsersError::Io { path: p, source }),
        };
        let users: Users = toml::from_str(&text)
            .map_err(|e| UsersError::Invalid { path: p.clone(), reason: e.to_string() })?;
        for u in &users.users {
            check_user(&u.name, u.role, u.clinic.as_deref()).map_err(|e| UsersError::Invalid {
                path: p.clone(),
                reason: format!("user `{}`: {e}", u.name),
            })?;
        }
        Ok(users)
    }

    /// Writes to `path` (mode 0600 on Unix: it holds password hashes).
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let p = path.display().to_string();
        let text = toml::to_string(self)
            .map_err(|e| UsersError::Invalid { path: p.clone(), reason: e.to_string() })?;
        let io = |source| UsersError::Io { path: p.clone(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Adds `name` (or replaces its role, clinic and password).
    pub fn add(
        &mut self,
        name: &str,
        role: Role,
        clinic: Option<&str>,
        password: &str,
    ) -> Result<(), UsersError> {
        check_user(name, role, clinic)?;
        if password.chars().count() < 12 {
            return Err(UsersError::Field { field: "password", reason: "at least 12 characters".into() });
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| UsersError::Hash(e.to_string()))?
            .to_string();
        let user = User { name: name.into(), role, clinic: clinic.map(str::to_string), password_hash: hash };
        match self.users.iter_mut().find(|u| u.name == name) {
            Some(u) => *u = user,
            None => self.users.push(user),
        }
        Ok(())
    }

    /// The user `name` if `password` is theirs.
    pub fn verify(&self, name: &str, password: &str) -> Option<&User> {
        let user = self.users.iter().find(|u| u.name == name);
        let hash = user.map_or(DECOY.as_str(), |u| u.password_hash.as_str());
        let ok = PasswordHash::new(hash)
            .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        user.filter(|_| ok)
    }

    /// The user `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
}

fn check_user(name: &str, role: Role, clinic: Option<&str>) -> Result<(), UsersError> {
    let plain = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    };
    if !plain(name) {
        return Err(UsersError::Field { field: "name", reason: "1-64 of A-Z a-z 0-9 . _ - @".into() });
    }
    match (role, clinic) {
        (Role::Clinic, None) => {
            Err(UsersError::Field { field: "clinic", reason: "required for a clinic user".into() })
        }
        (Role::Clinic, Some(c)) if !plain(c) => {
            Err(UsersError::Field { field: "clinic", reason: "1-64 of A-Z a-z 0-9 . _ - @".into() })
        }
        (Role::SafetyOfficer | Role::Regulator, Some(_)) => {
            Err(UsersError::Field { field: "clinic", reason: "only clinic users belong to a clinic".into() })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_argon2id_hashes_and_the_file_round_trips() {
        let mut users = Users::default();
        users.add("alice", Role::SafetyOfficer, None, "correct horse battery").expect("add");
        users.add("c1", Role::Clinic, Some("clinic-001"), "another long secret").expect("add");
        assert!(users.users[0].password_hash.starts_with("$argon2id$"));
        assert_eq!(users.verify("alice", "correct horse battery").map(|u| u.role), Some(Role::SafetyOfficer));
        assert!(users.verify("alice", "wrong").is_none());
        assert!(users.verify("nobody", "correct horse battery").is_none());
        let dir = std::env::temp_dir().join(format!("pv-users-{}", std::process::id()));
        let path = dir.join("users.toml");
        users.save(&path).expect("save");
        let back = Users::load(&path).expect("load");
        assert_eq!(back, users);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_users_name_the_field() {
        let mut users = Users::default();
        let err = |r: Result<(), UsersError>| r.expect_err("refused").to_string();
        assert_eq!(
            err(users.add("c1", Role::Clinic, None, "long enough secret")),
            "clinic: required for a clinic user"
        );
        assert_eq!(
            err(users.add("a b", Role::Regulator, None, "long enough secret")),
            "name: 1-64 of A-Z a-z 0-9 . _ - @"
        );
        assert_eq!(err(users.add("r", Role::Regulator, None, "short")), "password: at least 12 characters");
        assert!(
            err(users.add("r", Role::Regulator, Some("x"), "long enough secret")).starts_with("clinic: ")
        );
    }
}
