//! Waiting for something to become true, with a deadline, reporting progress while waiting.

use std::time::{Duration, Instant};

use super::report::Reporter;
use crate::error::{Error, Result};

/// One look at something being waited for: `Ok(value)` when done, `Err(what was seen)` when not yet.
pub type Poll<T> = std::result::Result<T, String>;

/// Calls `check` every `interval` until it returns `Ok(Some(value))` or `timeout` passes.
/// `check` returns `Ok(None)` for "not yet" with a description of what it saw, kept for the
/// timeout message; an `Err` stops waiting at once.
pub fn until<T>(
    report: &Reporter,
    step: &str,
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<Poll<T>>,
) -> Result<T> {
    let started = Instant::now();
    loop {
        let last_seen = match check()? {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        if started.elapsed() >= timeout {
            return Err(Error::failed(format!(
                "{what}: still not done after {} s; last seen: {last_seen}",
                timeout.as_secs()
            )));
        }
        report.waiting(step, format!("{what} ({}s, {last_seen})", started.elapsed().as_secs()));
        std::thread::sleep(interval);
    }
}
