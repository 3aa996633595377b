//! Terminating processes without ever signalling the wrong one.
//!
//! Every target carries the identity it was proven with: (pid, start time,
//! uid). Right before each signal the process is looked at again and the
//! signal is skipped if any of that changed (the pid was reused), if it is a
//! zombie (already dead), or if it is one of the never-touch processes.
//! All targets get SIGTERM at once, share one grace period, and survivors
//! get SIGKILL: fifty stubborn orphans cost one grace period, not fifty.

use super::journal::SignalRecord;
use crate::process::{ProcState, ProcessControl, Sig};
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub pid: u32,
    pub start_time: u64,
    pub uid: Option<u32>,
    pub cmdline: String,
}

/// Processes that are never signalled, whatever a finding says.
pub struct Guard {
    pub protected: HashSet<u32>,
    /// The uid that owns the PM2 home: only its processes are touched.
    pub owner_uid: Option<u32>,
}

const POLL: Duration = Duration::from_millis(50);
/// How long SIGKILL gets to take effect before we call the process stuck
/// (uninterruptible sleep, or a Windows process that ignores termination).
const KILL_WAIT: Duration = Duration::from_secs(2);
/// The outcome of a process that outlived the forced kill, named after what
/// was sent (Windows has no signals: both steps are `TerminateProcess`).
pub const STILL_ALIVE: &str = if cfg!(windows) {
    "still alive after TerminateProcess"
} else {
    "still alive after SIGKILL"
};

enum Check {
    Same,
    Gone,
    Refuse(String),
}

fn check(ctl: &mut dyn ProcessControl, t: &Target, guard: &Guard) -> Check {
    if guard.protected.contains(&t.pid) {
        return Check::Refuse("protected process (init, pm2-doctor or its ancestors)".into());
    }
    let Some(p) = ctl.inspect(t.pid) else {
        return Check::Gone;
    };
    if p.state == ProcState::Zombie {
        return Check::Gone;
    }
    if p.start_time != t.start_time {
        return Check::Refuse(format!(
            "pid {} now belongs to another process (started {} instead of {}): not signalled",
            t.pid, p.start_time, t.start_time
        ));
    }
    if t.uid.is_some() && p.uid.is_some() && p.uid != t.uid {
        return Check::Refuse(format!("process {} changed owner: not signalled", t.pid));
    }
    if let (Some(owner), Some(uid)) = (guard.owner_uid, p.uid) {
        if owner != uid {
            return Check::Refuse(format!(
                "process {} belongs to uid {uid}, not to the home's owner (uid {owner})",
                t.pid
            ));
        }
    }
    Check::Same
}

/// Terminates every target; returns one record per target, in order.
/// `tick` is called while waiting, for progress display.
pub fn terminate_all(
    ctl: &mut dyn ProcessControl,
    targets: &[Target],
    guard: &Guard,
    grace: Duration,
    tick: &mut dyn FnMut(usize),
) -> Vec<SignalRecord> {
    let mut recs: Vec<SignalRecord> = targets
        .iter()
        .map(|t| SignalRecord {
            pid: t.pid,
            start_time: t.start_time,
            cmdline: t.cmdline.clone(),
            signals: vec![],
            outcome: String::new(),
        })
        .collect();
    let mut waiting: Vec<usize> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        match check(ctl, t, guard) {
            Check::Gone => recs[i].outcome = "already gone".into(),
            Check::Refuse(why) => recs[i].outcome = format!("skipped: {why}"),
            Check::Same => match ctl.signal(t.pid, Sig::Term) {
                Ok(()) => {
                    recs[i].signals.push(Sig::Term);
                    waiting.push(i);
                }
                Err(e) => recs[i].outcome = format!("failed: {e}"),
            },
        }
    }
    let wait_out = |ctl: &mut dyn ProcessControl,
                    recs: &mut [SignalRecord],
                    waiting: &mut Vec<usize>,
                    limit: Duration,
                    done: &str,
                    tick: &mut dyn FnMut(usize)| {
        let start = Instant::now();
        loop {
            waiting.retain(|&i| {
                let t = &targets[i];
                let gone = ctl.is_gone(t.pid, t.start_time);
                if gone {
                    recs[i].outcome = done.to_string();
                }
                !gone
            });
            tick(waiting.len());
            if waiting.is_empty() || start.elapsed() >= limit {
                return;
            }
            std::thread::sleep(POLL);
        }
    };
    wait_out(ctl, &mut recs, &mut waiting, grace, "terminated", tick);
    let mut forced = Vec::new();
    for &i in &waiting {
        let t = &targets[i];
        match check(ctl, t, guard) {
            Check::Gone => recs[i].outcome = "terminated".into(),
            Check::Refuse(why) => recs[i].outcome = format!("skipped SIGKILL: {why}"),
            Check::Same => match ctl.signal(t.pid, Sig::Kill) {
                Ok(()) => {
                    recs[i].signals.push(Sig::Kill);
                    forced.push(i);
                }
                Err(e) => recs[i].outcome = format!("failed: {e}"),
            },
        }
    }
    wait_out(ctl, &mut recs, &mut forced, KILL_WAIT, "killed", tick);
    for i in forced {
        recs[i].outcome = STILL_ALIVE.into();
    }
    recs
}

#[cfg(test)]
pub mod fake {
    //! A process table that obeys signals, for testing the rules above.
    use super::*;
    use crate::process::ProcInfo;
    use std::collections::BTreeMap;

    #[derive(Default)]
    pub struct FakeControl {
        pub procs: BTreeMap<u32, ProcInfo>,
        /// Pids that ignore SIGTERM.
        pub stubborn: HashSet<u32>,
        /// Pids that survive even SIGKILL (uninterruptible).
        pub unkillable: HashSet<u32>,
        /// Applied to the table on the first inspect of a pid: pid reuse
        /// between diagnosis and signal.
        pub reuse_on_inspect: BTreeMap<u32, ProcInfo>,
        pub sent: Vec<(u32, Sig)>,
    }

    impl ProcessControl for FakeControl {
        fn inspect(&mut self, pid: u32) -> Option<ProcInfo> {
            if let Some(p) = self.reuse_on_inspect.remove(&pid) {
                self.procs.insert(pid, p);
            }
            self.procs.get(&pid).cloned()
        }
        fn signal(&mut self, pid: u32, sig: Sig) -> Result<(), String> {
            self.sent.push((pid, sig));
            let dies = match sig {
                Sig::Term => !self.stubborn.contains(&pid),
                Sig::Kill => !self.unkillable.contains(&pid),
            };
            if dies {
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.state = ProcState::Zombie;
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeControl;
    use super::*;
    use crate::process::ProcInfo;

    fn p(pid: u32, start: u64, uid: u32) -> ProcInfo {
        ProcInfo {
            pid,
            ppid: Some(1),
            start_time: start,
            state: ProcState::Alive,
            sid: Some(pid),
            uid: Some(uid),
            name: "node".into(),
            cmd: vec!["node".into()],
            env: None,
            listen_ports: vec![],
        }
    }

    fn t(pid: u32, start: u64) -> Target {
        Target {
            pid,
            start_time: start,
            uid: Some(1000),
            cmdline: "node".into(),
        }
    }

    fn guard() -> Guard {
        Guard {
            protected: [1, 4242].into_iter().collect(),
            owner_uid: Some(1000),
        }
    }

    #[test]
    fn terminates_then_forces_the_stubborn_in_one_grace_period() {
        let mut ctl = FakeControl::default();
        for pid in 100..150 {
            ctl.procs.insert(pid, p(pid, 10, 1000));
            ctl.stubborn.insert(pid);
        }
        ctl.stubborn.remove(&100);
        let targets: Vec<Target> = (100..150).map(|pid| t(pid, 10)).collect();
        let started = Instant::now();
        let recs = terminate_all(
            &mut ctl,
            &targets,
            &guard(),
            Duration::from_millis(200),
            &mut |_| {},
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "one grace period for all"
        );
        assert_eq!(recs[0].outcome, "terminated");
        assert_eq!(recs[0].signals, vec![Sig::Term]);
        for r in &recs[1..] {
            assert_eq!(r.outcome, "killed");
            assert_eq!(r.signals, vec![Sig::Term, Sig::Kill]);
        }
    }

    #[test]
    fn a_reused_pid_is_never_signalled() {
        let mut ctl = FakeControl::default();
        ctl.procs.insert(200, p(200, 10, 1000));
        // Between diagnosis and repair, pid 200 died and was reused.
        ctl.reuse_on_inspect.insert(200, p(200, 99, 1000));
        let recs = terminate_all(
            &mut ctl,
            &[t(200, 10)],
            &guard(),
            Duration::from_millis(50),
            &mut |_| {},
        );
        assert!(
            recs[0].outcome.contains("another process"),
            "{}",
            recs[0].outcome
        );
        assert!(ctl.sent.is_empty());
    }

    #[test]
    fn zombies_protected_and_foreign_users_are_left_alone() {
        let mut ctl = FakeControl::default();
        let mut z = p(300, 10, 1000);
        z.state = ProcState::Zombie;
        ctl.procs.insert(300, z);
        ctl.procs.insert(4242, p(4242, 10, 1000));
        ctl.procs.insert(301, p(301, 10, 0));
        let recs = terminate_all(
            &mut ctl,
            &[
                t(300, 10),
                t(4242, 10),
                Target {
                    uid: None,
                    ..t(301, 10)
                },
                t(302, 10),
            ],
            &guard(),
            Duration::from_millis(50),
            &mut |_| {},
        );
        assert_eq!(recs[0].outcome, "already gone");
        assert!(recs[1].outcome.starts_with("skipped: protected"));
        assert!(
            recs[2].outcome.contains("not to the home's owner"),
            "{}",
            recs[2].outcome
        );
        assert_eq!(recs[3].outcome, "already gone");
        assert!(ctl.sent.is_empty());
    }

    #[test]
    fn unkillable_processes_are_reported() {
        let mut ctl = FakeControl::default();
        ctl.procs.insert(400, p(400, 10, 1000));
        ctl.stubborn.insert(400);
        ctl.unkillable.insert(400);
        let recs = terminate_all(
            &mut ctl,
            &[t(400, 10)],
            &guard(),
            Duration::from_millis(50),
            &mut |_| {},
        );
        assert_eq!(recs[0].outcome, STILL_ALIVE);
    }
}
