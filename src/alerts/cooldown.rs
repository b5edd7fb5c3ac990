//! One alert per person per window: a face seen in 20 consecutive frames is one event, not 20.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Remembers when each identity last raised an alert.
#[derive(Debug, Clone)]
pub struct Cooldown {
    window: Duration,
    last: HashMap<String, Instant>,
}

/// Entries beyond this trigger a sweep of expired ones, so memory stays bounded by the number of
/// people seen within one window.
const SWEEP_AT: usize = 1024;

impl Cooldown {
    /// `window` = minimum time between two alerts for the same identity (zero disables it).
    pub fn new(window: Duration) -> Self {
        Cooldown {
            window,
            last: HashMap::new(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// True if `identity` may raise an alert at `now` (and records it); false while its window
    /// from the previous alert is still open.
    pub fn admit(&mut self, identity: &str, now: Instant) -> bool {
        if let Some(&last) = self.last.get(identity)
            && now.saturating_duration_since(last) < self.window
        {
            return false;
        }
        if self.last.len() >= SWEEP_AT {
            let window = self.window;
            self.last
                .retain(|_, &mut t| now.saturating_duration_since(t) < window);
        }
        self.last.insert(identity.to_string(), now);
        true
    }

    /// Time left before `identity` may alert again (zero if it may now).
    pub fn remaining(&self, identity: &str, now: Instant) -> Duration {
        self.last
            .get(identity)
            .map(|&t| self.window.saturating_sub(now.saturating_duration_since(t)))
            .unwrap_or(Duration::ZERO)
    }

    /// Number of identities currently remembered.
    pub fn tracked(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_alert_per_identity_per_window() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::from_secs(10));
        assert!(c.admit("a", t0));
        assert!(!c.admit("a", t0 + Duration::from_secs(9)));
        assert!(c.admit("b", t0 + Duration::from_secs(9)));
        assert_eq!(
            c.remaining("a", t0 + Duration::from_secs(4)),
            Duration::from_secs(6)
        );
        assert!(c.admit("a", t0 + Duration::from_secs(10)));
        // A suppressed attempt does not extend the window.
        assert!(!c.admit("a", t0 + Duration::from_secs(15)));
        assert!(c.admit("a", t0 + Duration::from_secs(20)));
    }

    #[test]
    fn memory_stays_bounded_by_the_people_seen_within_one_window() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::from_secs(1));
        for i in 0..10_000u64 {
            assert!(c.admit(&format!("p{i}"), t0 + Duration::from_millis(i * 10)));
        }
        assert!(
            c.tracked() <= SWEEP_AT + 100,
            "{} identities remembered",
            c.tracked()
        );
    }

    #[test]
    fn a_zero_window_never_suppresses() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::ZERO);
        assert!(c.admit("a", t0));
        assert!(c.admit("a", t0));
    }
}
