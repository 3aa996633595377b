//! Running a child program with a deadline: its output is read on threads
//! (a chatty child cannot block us), it is killed by pid when time is up.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq, Eq)]
pub struct Output {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {err}")]
    Spawn {
        program: String,
        err: std::io::Error,
    },
    #[error("{program} did not finish within {secs:.1} s and was killed")]
    Deadline { program: String, secs: f64 },
}

/// Most output kept from a child; the rest is read and dropped.
const CAP: u64 = 16 * 1024 * 1024;

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = (&mut r).take(CAP).read_to_end(&mut buf);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

pub fn run(mut cmd: Command, deadline: Duration) -> Result<Output, RunError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| RunError::Spawn {
            program: program.clone(),
            err,
        })?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Ok(Output {
                    status: status.code(),
                    stdout: out.join().unwrap_or_default(),
                    stderr: err.join().unwrap_or_default(),
                })
            }
            Ok(None) if started.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                // Our own child, by pid.
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::Deadline {
                    program,
                    secs: deadline.as_secs_f64(),
                });
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn output_and_deadline() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo hi; echo err >&2"]);
        let o = run(c, Duration::from_secs(5)).unwrap();
        assert_eq!(
            (o.status, o.stdout.as_str(), o.stderr.as_str()),
            (Some(0), "hi\n", "err\n")
        );
        let mut c = Command::new("sleep");
        c.arg("30");
        let started = Instant::now();
        assert!(matches!(
            run(c, Duration::from_millis(200)),
            Err(RunError::Deadline { .. })
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            run(Command::new("/nonexistent/prog"), Duration::from_secs(1)),
            Err(RunError::Spawn { .. })
        ));
    }
}
