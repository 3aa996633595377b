//! Waiting with a deadline: a test that waits without one hangs CI instead
//! of failing it.

use std::process::{Child, ExitStatus};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const POLL: Duration = Duration::from_millis(50);

/// Polls `cond` until it holds; fails after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, cond: impl FnMut() -> bool) {
    wait_until_or(what, deadline, POLL, cond, String::new);
}

/// [`wait_until`] polling every `poll`, and on giving up saying what the
/// world looked like (`explain`), so a failure in CI can be understood
/// from its log alone.
pub fn wait_until_or(
    what: &str,
    deadline: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) {
    let started = Instant::now();
    while !cond() {
        if started.elapsed() >= deadline {
            panic!(
                "gave up after {deadline:?} waiting for {what}\n{}",
                explain()
            );
        }
        sleep(poll);
    }
}

/// Polls `child` until it exits or `deadline` passes; on the deadline it is
/// killed by pid (`Child::kill` is SIGKILL to that pid) and reaped.
pub fn wait_bounded(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if started.elapsed() < deadline => sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
