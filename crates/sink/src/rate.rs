//! The sink's input rate, measured over windows of a second, without I/O (the loop passes the
//! time in).

use std::time::{Duration, Instant};

/// The shortest window a rate is measured over.
const WINDOW: Duration = Duration::from_secs(1);

/// Messages per second read by the sink.
#[derive(Debug, Clone)]
pub struct InputRate {
    /// Start of the current window.
    since: Instant,
    /// Messages in the current window.
    count: u64,
    /// The rate of the last whole window.
    last: f64,
}

impl InputRate {
    /// No message yet (a rate of 0), measuring from `now`.
    pub fn new(now: Instant) -> Self {
        Self { since: now, count: 0, last: 0.0 }
    }

    /// A message was read at `now`.
    pub fn note(&mut self, now: Instant) {
        self.count += 1;
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= WINDOW {
            self.last = self.count as f64 / elapsed.as_secs_f64();
            self.since = now;
            self.count = 0;
        }
    }

    /// The rate at `now`: that of the last whole window, or of the current one once it has run
    /// longer than a window (so that input which slows down or stops is seen without a message).
    pub fn per_second(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed > WINDOW { self.count as f64 / elapsed.as_secs_f64() } else { self.last }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` messages evenly spread over `span` from `start`; returns the time of the last.
    fn feed(rate: &mut InputRate, start: Instant, n: u32, span: Duration) -> Instant {
        let step = span / n;
        (1..=n).map(|i| start + step * i).inspect(|&t| rate.note(t)).last().unwrap_or(start)
    }

    #[test]
    fn the_rate_is_that_of_the_last_whole_window() {
        let start = Instant::now();
        let mut rate = InputRate::new(start);
        assert_eq!(rate.per_second(start), 0.0, "nothing read yet");
        let t = feed(&mut rate, start, 40_000, Duration::from_secs(1));
        assert!((rate.per_second(t) - 40_000.0).abs() < 1.0, "{}", rate.per_second(t));
        // Half a window at another rate does not change it yet.
        let t = feed(&mut rate, t, 5_000, Duration::from_millis(500));
        assert!((rate.per_second(t) - 40_000.0).abs() < 1.0);
        let t = feed(&mut rate, t, 5_000, Duration::from_millis(500));
        assert!((rate.per_second(t) - 10_000.0).abs() < 1.0, "{}", rate.per_second(t));
    }

    #[test]
    fn input_that_stops_is_seen_without_a_message() {
        let start = Instant::now();
        let mut rate = InputRate::new(start);
        let t = feed(&mut rate, start, 40_000, Duration::from_secs(1));
        // 1,000 more messages, then nothing for 4 s: the open window says 200 per second.
        let t = feed(&mut rate, t, 1_000, Duration::from_millis(100));
        let later = t + Duration::from_millis(4_900);
        assert!((rate.per_second(later) - 200.0).abs() < 1.0, "{}", rate.per_second(later));
    }
}
