//! Per-clinic request rate: a token bucket per clinic (`rate_per_clinic` requests a second on
//! average, bursts up to `burst_per_clinic`). A request over it is refused with 429 and a
//! `Retry-After` saying when the next one would be let in. Pure: the caller passes the time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The buckets of every clinic.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` requests a second per clinic, bursts of `burst`; a rate of 0 lets everything in.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self { rate, burst: f64::from(burst.max(1)), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token of `clinic`'s bucket at `now`: `Ok`, or how long until one is there.
    pub fn take(&self, clinic: &str, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let (tokens, at) = buckets.entry(clinic.to_owned()).or_insert((self.burst, now));
        let refilled =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_clinic() {
        let limiter = RateLimiter::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take("a", t0).is_ok());
        }
        let wait = limiter.take("a", t0).expect_err("over the burst");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert!(limiter.take("b", t0).is_ok(), "another clinic has its own bucket");
        assert!(limiter.take("a", t0 + Duration::from_millis(500)).is_ok(), "refilled at the rate");
        assert!(limiter.take("a", t0 + Duration::from_millis(500)).is_err());
        assert!(RateLimiter::new(0.0, 1).take("a", t0).is_ok(), "0: no limit");
    }
}
