//! What the proxy may do wrong and how often ([`Faults`]), the per-request
//! draw from the seeded RNG, and the counters of what it did ([`FaultStats`]).

use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::Rng;

/// Fault probabilities, each in `[0, 1]`, for every request the proxy gets.
///
/// The kinds are mutually exclusive: each request suffers at most one, drawn
/// with these probabilities, so their sum must not exceed 1. Build with
/// struct update syntax: `Faults { drop_response: 0.1, ..Faults::none() }`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Close the client connection without forwarding the request.
    pub drop_request: f64,
    /// Forward (the server commits), then close the client connection
    /// without answering: the lost response.
    pub drop_response: f64,
    /// Reset the client connection (TCP RST) without forwarding.
    pub reset: f64,
    /// Answer 500, 502 or 503 (plain text) without forwarding.
    pub status_5xx: f64,
    /// Forward, then send the real status and headers (with the true
    /// `Content-Length`) but only half of the body, and close.
    pub truncate: f64,
    /// Forward, then answer 200 `<html>oops</html>` as `text/html`.
    pub non_json: f64,
    /// Sleep a uniformly drawn number of milliseconds in `min..=max` before
    /// forwarding any request. `(0, 0)` means no delay.
    pub delay_ms: (u64, u64),
}

impl Faults {
    /// No faults, no delay: a transparent proxy.
    pub fn none() -> Faults {
        Faults::default()
    }

    fn weighted(&self) -> [(f64, Fault); 6] {
        [
            (self.reset, Fault::Reset),
            (self.drop_request, Fault::DropRequest),
            (self.status_5xx, Fault::Status5xx),
            (self.drop_response, Fault::DropResponse),
            (self.truncate, Fault::Truncate),
            (self.non_json, Fault::NonJson),
        ]
    }

    /// Checks that every probability is in `[0, 1]`, that they add up to at
    /// most 1, and that the delay range is not reversed.
    pub fn validate(&self) -> Result<()> {
        let weighted = self.weighted();
        if let Some((p, fault)) = weighted
            .iter()
            .find(|(p, _)| !(p.is_finite() && (0.0..=1.0).contains(p)))
        {
            return Err(Error::InvalidInput(format!(
                "fault probability {fault:?} = {p} is not in [0, 1]"
            )));
        }
        let sum: f64 = weighted.iter().map(|(p, _)| p).sum();
        if sum > 1.0 + 1e-9 {
            return Err(Error::InvalidInput(format!(
                "fault probabilities add up to {sum}, more than 1 (at most one fault per request)"
            )));
        }
        if self.delay_ms.0 > self.delay_ms.1 {
            return Err(Error::InvalidInput(format!(
                "delay_ms {:?}: min is above max",
                self.delay_ms
            )));
        }
        Ok(())
    }

    /// Draws this request's fault, if any.
    pub(super) fn pick(&self, rng: &mut StdRng) -> Option<Fault> {
        let roll: f64 = rng.random();
        let mut edge = 0.0;
        for (p, fault) in self.weighted() {
            edge += p;
            if roll < edge {
                return Some(fault);
            }
        }
        None
    }

    /// Draws this request's delay before forwarding.
    pub(super) fn delay(&self, rng: &mut StdRng) -> u64 {
        match self.delay_ms {
            (0, 0) => 0,
            (min, max) => rng.random_range(min..=max),
        }
    }
}

/// What the proxy does with a request body over its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversize {
    /// Answer HTTP 413 Payload Too Large.
    Status413,
    /// Never answer: the client's timeout fires.
    Stall,
}

/// What [`super::FaultProxy::fault_pages`] gives every pull page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageFault {
    /// A `RESPONSE_TOO_LARGE` error (sqld past its 10 MB answer limit).
    TooLarge,
    /// Never answer: the client's timeout fires.
    Stall,
}

/// One kind of injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    Reset,
    DropRequest,
    Status5xx,
    DropResponse,
    Truncate,
    NonJson,
}

/// What the proxy has seen and done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests read from clients (complete ones only).
    pub requests: u64,
    /// Requests the upstream answered (including those whose answer was
    /// then dropped, truncated or replaced).
    pub forwarded: u64,
    /// Bytes of the bodies the upstream answered with.
    pub bytes_forwarded: u64,
    /// Forwarding attempts that failed (the client got a 502).
    pub upstream_errors: u64,
    /// Requests refused with 401 by the token check.
    pub rejected: u64,
    /// Requests refused with 400 for lacking the required header
    /// ([`super::FaultProxy::require_header`]).
    pub missing_header: u64,
    /// Requests that got a fault (all kinds below except `delayed`).
    pub faults_injected: u64,
    /// See [`Faults::drop_request`].
    pub drop_request: u64,
    /// See [`Faults::drop_response`]; includes `drop_next_responses`.
    pub drop_response: u64,
    /// See [`Faults::reset`].
    pub reset: u64,
    /// See [`Faults::status_5xx`].
    pub status_5xx: u64,
    /// See [`Faults::truncate`].
    pub truncate: u64,
    /// See [`Faults::non_json`].
    pub non_json: u64,
    /// Requests forwarded after a non-zero delay.
    pub delayed: u64,
    /// Transactions answered as a failed commit (see
    /// [`FaultProxy::fail_next_commits`](super::FaultProxy::fail_next_commits)).
    pub failed_commits: u64,
    /// Requests refused for the token's rights (read-only, or a table it
    /// may not write).
    pub forbidden: u64,
    /// Requests over the body limit (answered 413 or never).
    pub oversize: u64,
    /// Pull page requests given a [`PageFault`].
    pub page_faults: u64,
    /// Statements answered `SQLITE_TOOBIG` past sqld's string limit.
    pub too_big: u64,
    /// Answers replaced by `RESPONSE_TOO_LARGE` past sqld's answer limit.
    pub too_large: u64,
    /// Response bodies the client stopped reading before the end (e.g. its
    /// timeout fired on a throttled link).
    pub abandoned: u64,
}

impl FaultStats {
    pub(super) fn count(&mut self, fault: Fault) {
        self.faults_injected += 1;
        let counter = match fault {
            Fault::Reset => &mut self.reset,
            Fault::DropRequest => &mut self.drop_request,
            Fault::Status5xx => &mut self.status_5xx,
            Fault::DropResponse => &mut self.drop_response,
            Fault::Truncate => &mut self.truncate,
            Fault::NonJson => &mut self.non_json,
        };
        *counter += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn validation_rejects_impossible_settings() {
        assert!(Faults::none().validate().is_ok());
        let bad = [
            Faults {
                reset: 1.5,
                ..Faults::none()
            },
            Faults {
                truncate: f64::NAN,
                ..Faults::none()
            },
            Faults {
                drop_request: 0.6,
                drop_response: 0.6,
                ..Faults::none()
            },
            Faults {
                delay_ms: (10, 5),
                ..Faults::none()
            },
        ];
        for faults in bad {
            assert!(faults.validate().is_err(), "{faults:?}");
        }
    }

    #[test]
    fn picks_follow_the_probabilities() {
        let faults = Faults {
            drop_response: 0.25,
            status_5xx: 0.25,
            ..Faults::none()
        };
        let mut rng = StdRng::seed_from_u64(7);
        let picks: Vec<_> = (0..4000).map(|_| faults.pick(&mut rng)).collect();
        let share = |want: Option<Fault>| {
            picks.iter().filter(|&&p| p == want).count() as f64 / picks.len() as f64
        };
        assert!((share(Some(Fault::DropResponse)) - 0.25).abs() < 0.03);
        assert!((share(Some(Fault::Status5xx)) - 0.25).abs() < 0.03);
        assert!((share(None) - 0.5).abs() < 0.03);
        assert_eq!(share(Some(Fault::Reset)), 0.0);
    }

    #[test]
    fn delays_stay_in_range() {
        let faults = Faults {
            delay_ms: (5, 9),
            ..Faults::none()
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..200).all(|_| (5..=9).contains(&faults.delay(&mut rng))));
        assert_eq!(Faults::none().delay(&mut rng), 0);
    }
}
