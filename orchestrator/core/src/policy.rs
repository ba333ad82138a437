//! Timeouts and retry policies of a definition, and the backoff they compute.
//!
//! Backoff is computed here, inside the pure core, so it reads no clock and draws no random
//! number: the jitter comes from a hash of (saga, step, attempt), which spreads retries of
//! different sagas apart yet gives the same answer every time the same decision is made. The
//! decided retry time is recorded in the `RetryScheduled` event in any case.
//!
//! ```
//! use saga_core::policy::RetryPolicy;
//! use std::time::Duration;
//!
//! let p = RetryPolicy { jitter: 0.0, ..RetryPolicy::default() };
//! assert_eq!(p.backoff(1, 7), Duration::from_millis(200));
//! assert_eq!(p.backoff(2, 7), Duration::from_millis(400));
//! assert_eq!(p.backoff(30, 7), p.max_backoff);
//! ```

use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// How a command is retried after a timeout or a transient failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; `None` retries until it succeeds.
    pub max_attempts: Option<u32>,
    /// Delay before the second attempt.
    #[serde(with = "humantime_serde_compat")]
    pub initial_backoff: Duration,
    /// Upper bound of any delay.
    #[serde(with = "humantime_serde_compat")]
    pub max_backoff: Duration,
    /// Growth of the delay from one attempt to the next.
    pub multiplier: f64,
    /// Fraction of the delay added or removed at random-looking but deterministic: 0 to 1.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: Some(3),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Whether attempt `next` may still be made.
    pub fn allows(&self, next: u32) -> bool {
        self.max_attempts.is_none_or(|max| next <= max)
    }

    /// The delay after failed attempt `attempt` (1-based), jittered by `key`.
    pub fn backoff(&self, attempt: u32, key: u64) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1).min(64)).unwrap_or(64);
        let base = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let capped = base.min(self.max_backoff.as_secs_f64());
        // A number in [-1, 1) from the key: deterministic jitter.
        let unit = (key % 2001) as f64 / 1000.0 - 1.0;
        let jittered = capped * (1.0 + self.jitter.clamp(0.0, 1.0) * unit);
        Duration::from_secs_f64(jittered.clamp(0.0, self.max_backoff.as_secs_f64()))
    }

    /// The key that jitters the delay of `attempt` of `step` in saga `saga`.
    pub fn jitter_key(saga: &uuid::Uuid, step: &str, attempt: u32) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (saga, step, attempt).hash(&mut h);
        h.finish()
    }
}

/// The TOML shape of a retry policy; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub max_attempts: Option<u32>,
    pub initial_backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub multiplier: Option<f64>,
    pub jitter: Option<f64>,
}

impl RawRetry {
    /// The policy these settings describe on top of `base`, or what is wrong with them.
    pub fn resolve(self, base: &RetryPolicy) -> Result<RetryPolicy, String> {
        let p = RetryPolicy {
            max_attempts: match self.max_attempts {
                Some(0) => return Err("retry.max_attempts must be at least 1".into()),
                Some(n) => Some(n),
                None => base.max_attempts,
            },
            initial_backoff: match self.initial_backoff {
                Some(s) => parse_duration("retry.initial_backoff", &s)?,
                None => base.initial_backoff,
            },
            max_backoff: match self.max_backoff {
                Some(s) => parse_duration("retry.max_backoff", &s)?,
                None => base.max_backoff,
            },
            multiplier: self.multiplier.unwrap_or(base.multiplier),
            jitter: self.jitter.unwrap_or(base.jitter),
        };
        if !(1.0..=10.0).contains(&p.multiplier) {
            return Err(format!(
                "retry.multiplier must be between 1 and 10, got {}",
                p.multiplier
            ));
        }
        if !(0.0..=1.0).contains(&p.jitter) {
            return Err(format!(
                "retry.jitter must be between 0 and 1, got {}",
                p.jitter
            ));
        }
        if p.initial_backoff > p.max_backoff {
            return Err("retry.initial_backoff is longer than retry.max_backoff".into());
        }
        Ok(p)
    }
}

/// Parses "250ms", "30s", "5m".
pub(crate) fn parse_duration(what: &str, s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| {
        format!("{what}: `{s}` is not a duration such as \"250ms\", \"30s\" or \"5m\" ({e})")
    })
}

/// Serialises durations as humantime strings in snapshots and API views.
mod humantime_serde_compat {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }
}
