//! Sessions (server-side, expiring when idle and absolutely) with their CSRF tokens, and the
//! sign-in rate limit. Both take the time as an argument: pure, tested with a fake clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};

use crate::users::Role;

/// Milliseconds since the epoch.
pub type Millis = i64;

/// A signed-in user's session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// User name.
    pub user: String,
    /// Their role.
    pub role: Role,
    /// Their clinic (clinic users).
    pub clinic: Option<String>,
    /// The token every state-changing request must carry (form field `csrf` or header
    /// `X-CSRF-Token`).
    pub csrf: String,
    /// Signed in at.
    pub created_ms: Millis,
    /// Last request at.
    pub seen_ms: Millis,
    /// Their previous visit (sign-in) before this session (0: first visit).
    pub previous_visit_ms: Millis,
}

/// 32 random bytes from the operating system, as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Every live session, by token.
#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    absolute: Duration,
    by_token: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Sessions that end after `idle` without a request or `absolute` after sign-in.
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        Self { idle, absolute, by_token: Mutex::new(HashMap::new()) }
    }

    /// Starts a session; returns its token (the cookie value).
    pub fn start(
        &self,
        user: &str,
        role: Role,
        clinic: Option<String>,
        previous_visit_ms: Millis,
        now: Millis,
    ) -> String {
        let token = random_token();
        let session = Session {
            user: user.into(),
            role,
            clinic,
            csrf: random_token(),
            created_ms: now,
            seen_ms: now,
            previous_visit_ms,
        };
        let mut map = self.lock();
        map.retain(|_, s| self.alive(s, now));
        map.insert(token.clone(), session);
        token
    }

    /// The session of `token` if it is alive at `now` (and marks it seen); an expired one is
    /// removed.
    pub fn touch(&self, token: &str, now: Millis) -> Option<Session> {
        let mut map = self.lock();
        let alive = map.get(token).is_some_and(|s| self.alive(s, now));
        if !alive {
            map.remove(token);
            return None;
        }
        let s = map.get_mut(token)?;
        s.seen_ms = now;
        Some(s.clone())
    }

    /// Ends the session of `token`.
    pub fn end(&self, token: &str) {
        self.lock().remove(token);
    }

    fn alive(&self, s: &Session, now: Millis) -> bool {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        now - s.seen_ms <= ms(self.idle) && now - s.created_ms <= ms(self.absolute)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        crate::locked(&self.by_token)
    }
}

/// Failed sign-ins per key (a user name, a client address) in a sliding window.
#[derive(Debug)]
pub struct SignInLimit {
    max_failures: u32,
    window_ms: Millis,
    failures: Mutex<HashMap<String, Vec<Millis>>>,
}

impl SignInLimit {
    /// At most `max_failures` failures per key within `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        Self { max_failures, window_ms, failures: Mutex::new(HashMap::new()) }
    }

    /// Starts an attempt with these keys at `now`: counted as a failure at once (so parallel
    /// attempts cannot all pass the check before any has failed), or refused with how long to
    /// wait (the oldest counted failure leaving the window). A successful attempt is taken back
    /// with [`SignInLimit::succeeded`].
    pub fn begin(&self, keys: &[&str], now: Millis) -> Result<(), Duration> {
        let mut map = self.lock();
        // Forget what left the window, keys with nothing left included (bounded memory).
        map.retain(|_, times| {
            times.retain(|&t| now - t < self.window_ms);
            !times.is_empty()
        });
        let mut wait: Option<Millis> = None;
        for key in keys {
            let times = map.get(*key).map_or(&[][..], Vec::as_slice);
            if times.len() >= self.max_failures as usize {
                let until = times.first().map_or(now, |&t| t + self.window_ms);
                wait = Some(wait.map_or(until - now, |w| w.max(until - now)));
            }
        }
        if let Some(ms) = wait {
            return Err(Duration::from_millis(u64::try_from(ms.max(1000)).unwrap_or(1000)));
        }
        for key in keys {
            map.entry((*key).to_string()).or_default().push(now);
        }
        Ok(())
    }

    /// The attempt begun at `now` with these keys succeeded: it no longer counts.
    pub fn succeeded(&self, keys: &[&str], now: Millis) {
        let mut map = self.lock();
        for key in keys {
            if let Some(times) = map.get_mut(*key) {
                if let Some(i) = times.iter().rposition(|&t| t == now) {
                    times.remove(i);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Millis>>> {
        crate::locked(&self.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_absolutely() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t = s.start("alice", Role::SafetyOfficer, None, 0, 0);
        assert_eq!(t.len(), 64);
        let csrf = s.touch(&t, 50_000).expect("alive").csrf;
        assert_ne!(csrf, t);
        // Kept alive by requests every 50 s ...
        for now in [100_000, 150_000, 200_000, 250_000, 300_000] {
            assert!(s.touch(&t, now).is_some(), "{now}");
        }
        // ... until the absolute limit.
        assert!(s.touch(&t, 300_001).is_none());
        assert!(s.touch(&t, 300_002).is_none(), "removed");
        let u = s.start("bob", Role::Regulator, None, 0, 0);
        assert!(s.touch(&u, 60_001).is_none(), "idle for more than 60 s");
        let v = s.start("carol", Role::Regulator, None, 0, 0);
        s.end(&v);
        assert!(s.touch(&v, 1).is_none(), "signed out");
        assert!(s.touch("guess", 1).is_none());
    }

    #[test]
    fn failures_block_a_key_for_the_window() {
        let l = SignInLimit::new(3, Duration::from_secs(60));
        // Three attempts begun before any ends (in parallel): the fourth is refused.
        for t in [0, 1000, 2000] {
            assert_eq!(l.begin(&["alice", "10.0.0.1"], t), Ok(()));
        }
        assert_eq!(l.begin(&["alice", "10.0.0.9"], 3000), Err(Duration::from_secs(57)));
        assert_eq!(l.begin(&["bob", "10.0.0.1"], 3000), Err(Duration::from_secs(57)), "same address");
        assert_eq!(l.begin(&["bob", "10.0.0.2"], 3000), Ok(()));
        l.succeeded(&["bob", "10.0.0.2"], 3000);
        assert_eq!(l.begin(&["alice", "10.0.0.3"], 60_001), Ok(()), "the first failure left the window");
        // A success takes its own attempt back, nothing else.
        l.succeeded(&["alice", "10.0.0.3"], 60_001);
        assert_eq!(l.begin(&["alice", "10.0.0.4"], 60_002), Ok(()), "two failures left: 1000 and 2000");
        // 997 ms until the failure at 1000 leaves the window; waits are at least a second.
        assert_eq!(l.begin(&["alice", "10.0.0.5"], 60_003), Err(Duration::from_secs(1)));
        let mut keys: Vec<String> = l.lock().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["10.0.0.1", "10.0.0.4", "alice"], "only keys with failures in the window");
        assert_eq!(l.begin(&["carol"], 200_000), Ok(()));
        assert_eq!(l.lock().len(), 1, "everything older than the window is forgotten");
    }
}
