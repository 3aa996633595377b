//! A hostile "daemon" on `rpc.sock`: something listens where PM2's daemon
//! should, and answers pm2-doctor's probe with every kind of wrong. For
//! each, the probe (library API) and `diagnose` (the binary) must return by
//! the deadline, report the peer as broken (never as a healthy daemon), print
//! valid JSON, and keep memory bounded.
//!
//! Each server is a plain `UnixListener` on a thread of this test process;
//! it stops when the test drops it, and every child process is killed by pid
//! if it overstays.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::doctor::BIN;
use common::lab::Lab;
use pm2_doctor::home::Endpoint;
use pm2_doctor::probe::{probe, ProbeOutcome};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The deadline given to the probe and to `diagnose --timeout`.
const DEADLINE: Duration = Duration::from_secs(1);
/// How far past the deadline a run may end (process start, process table,
/// rendering; generous for a debug build on a loaded 2-core machine).
const SLACK: Duration = Duration::from_millis(1500);
/// Peak resident memory allowed for one `diagnose` run.
const MAX_RSS_KIB: u64 = 100 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hostile {
    /// A frame whose first argument claims 4 GiB.
    HugeArgument,
    /// A valid reply, one byte every 300 ms.
    Dribble,
    /// Valid frames carrying an id nobody asked for, without end.
    WrongIdFlood,
    /// A reply whose `j:` argument holds invalid UTF-8.
    InvalidUtf8,
    /// A reply of 100,000 nested arrays.
    DeepNesting,
    /// The right reply, sent after the deadline.
    LateReply,
    /// Half a reply frame, then the connection is dropped.
    ResetMidFrame,
    /// Accepts and closes at once, reading nothing.
    AcceptClose,
    /// Speaks HTTP.
    Http,
    /// One frame of 15 arguments of 16 MiB each (the per-argument cap),
    /// streamed as fast as the socket takes it: 240 MiB in one frame.
    MaxFrame,
}

impl Hostile {
    /// Whether the probe must end by the deadline with "connected, no answer".
    fn times_out(self) -> bool {
        matches!(self, Hostile::Dribble | Hostile::LateReply)
    }

    /// Text the protocol error must contain, when one is due.
    fn error_contains(self) -> &'static [&'static str] {
        match self {
            // A frame whose arguments together pass the cap is refused as
            // soon as its lengths are read.
            Hostile::HugeArgument | Hostile::MaxFrame => &["exceeds"],
            Hostile::WrongIdFlood => &["unknown id"],
            Hostile::InvalidUtf8 | Hostile::DeepNesting => &["not JSON"],
            Hostile::ResetMidFrame | Hostile::AcceptClose => {
                &["closed mid-reply", "read failed", "write failed"]
            }
            Hostile::Http => &["frame version"],
            Hostile::Dribble | Hostile::LateReply => &[],
        }
    }
}

// --- a tiny AMP codec, independent of the one under test -------------------

fn frame(args: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x10 | args.len() as u8];
    for a in args {
        out.extend_from_slice(&(a.len() as u32).to_be_bytes());
        out.extend_from_slice(a);
    }
    out
}

/// The arguments of one whole frame at the front of `buf`, and its length.
fn split_frame(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    let argc = usize::from(*buf.first()? & 0x0f);
    let mut pos = 1;
    let mut args = Vec::new();
    for _ in 0..argc {
        let len = u32::from_be_bytes(buf.get(pos..pos + 4)?.try_into().ok()?) as usize;
        pos += 4;
        args.push(buf.get(pos..pos + len)?.to_vec());
        pos += len;
    }
    Some((args, pos))
}

fn reply(body: &[u8], id: &[u8]) -> Vec<u8> {
    frame(&[body, id])
}

/// The correct answers to the probe's two calls (getVersion, getMonitorData).
fn good_replies(ids: &[Vec<u8>]) -> Vec<u8> {
    let mut out = reply(br#"j:{"args":["7.0.4"]}"#, &ids[0]);
    if let Some(id) = ids.get(1) {
        out.extend(reply(br#"j:{"args":[[]]}"#, id));
    }
    out
}

// --- the server -------------------------------------------------------------

struct Server {
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    fn start(path: &Path, mode: Hostile) -> Server {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let accept = std::thread::spawn(move || {
            let mut handlers = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let flag = flag.clone();
                        handlers.push(std::thread::spawn(move || serve(s, mode, &flag)));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
            for h in handlers {
                let _ = h.join();
            }
        });
        Server {
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Sleeps up to `d`, waking early when the test is over.
fn nap(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    !stop.load(Ordering::Relaxed)
}

/// Reads the probe's calls (up to two frames, or what came in 1 s) and
/// returns their id arguments, `getVersion`'s first whatever order the
/// probe sent them in.
fn read_call_ids(s: &mut UnixStream) -> Vec<Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (mut buf, mut ids, mut chunk) = (Vec::new(), Vec::new(), [0u8; 4096]);
    let end = Instant::now() + Duration::from_secs(1);
    while ids.len() < 2 && Instant::now() < end {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        while let Some((args, used)) = split_frame(&buf) {
            buf.drain(..used);
            let is_version = args
                .first()
                .is_some_and(|a| a.windows(10).any(|w| w == b"getVersion"));
            let id = args.last().cloned().unwrap_or_default();
            if is_version {
                ids.insert(0, id);
            } else {
                ids.push(id);
            }
        }
    }
    if ids.is_empty() {
        ids.push(b"s:0:0".to_vec());
    }
    ids
}

/// Holds the connection open (draining it) until the peer or the test ends.
fn hold(mut s: UnixStream, stop: &AtomicBool) {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut chunk = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(20);
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn serve(mut s: UnixStream, mode: Hostile, stop: &AtomicBool) {
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    if mode == Hostile::AcceptClose {
        return;
    }
    let ids = read_call_ids(&mut s);
    match mode {
        Hostile::HugeArgument => {
            let mut f = vec![0x12];
            f.extend_from_slice(&u32::MAX.to_be_bytes());
            f.extend_from_slice(b"j:{\"args\":");
            let _ = s.write_all(&f);
            hold(s, stop);
        }
        Hostile::Dribble => {
            for b in good_replies(&ids) {
                if s.write_all(&[b]).is_err() || !nap(Duration::from_millis(300), stop) {
                    return;
                }
            }
            hold(s, stop);
        }
        Hostile::WrongIdFlood => {
            let end = Instant::now() + Duration::from_secs(10);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                let id = format!("s:not-yours:{n}");
                if s.write_all(&reply(br#"j:{"args":["7.0.4"]}"#, id.as_bytes()))
                    .is_err()
                {
                    return;
                }
                n += 1;
            }
        }
        Hostile::InvalidUtf8 => {
            let _ = s.write_all(&reply(b"j:{\"args\":[\"\xff\xfe\xc0\"]}", &ids[0]));
            hold(s, stop);
        }
        Hostile::DeepNesting => {
            let mut body = b"j:{\"args\":".to_vec();
            body.extend(std::iter::repeat_n(b'[', 100_000));
            body.extend(std::iter::repeat_n(b']', 100_000));
            body.push(b'}');
            let _ = s.write_all(&reply(&body, &ids[0]));
            hold(s, stop);
        }
        Hostile::LateReply => {
            if nap(DEADLINE + Duration::from_millis(500), stop) {
                let _ = s.write_all(&good_replies(&ids));
            }
            hold(s, stop);
        }
        Hostile::ResetMidFrame => {
            let r = good_replies(&ids);
            let _ = s.write_all(&r[..r.len() / 2]);
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        Hostile::Http => {
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        Hostile::MaxFrame => {
            let arg = 16 * 1024 * 1024u32;
            let mut head = vec![0x1f];
            head.extend_from_slice(&arg.to_be_bytes());
            if s.write_all(&head).is_err() {
                return;
            }
            let block = vec![b'x'; 64 * 1024];
            let end = Instant::now() + Duration::from_secs(10);
            'args: for i in 0..15 {
                if i > 0 && s.write_all(&arg.to_be_bytes()).is_err() {
                    break;
                }
                for _ in 0..(arg as usize / block.len()) {
                    if stop.load(Ordering::Relaxed)
                        || Instant::now() > end
                        || s.write_all(&block).is_err()
                    {
                        break 'args;
                    }
                }
            }
        }
        Hostile::AcceptClose => {}
    }
}

// --- the checks ---------------------------------------------------------------

fn new_lab() -> Lab {
    Lab::new("pm2doctor-hostile-daemon-", &[])
}

impl Lab {
    fn sock(&self) -> PathBuf {
        self.path("rpc.sock")
    }
}

fn check_outcome(mode: Hostile, out: &ProbeOutcome) {
    if mode.times_out() {
        assert!(
            matches!(
                out,
                ProbeOutcome::Timeout {
                    connected: true,
                    ..
                }
            ),
            "{mode:?}: {out:?}"
        );
        return;
    }
    let error = match out {
        ProbeOutcome::Protocol { error } | ProbeOutcome::DaemonError { error } => error,
        other => panic!("{mode:?}: expected a protocol error, got {other:?}"),
    };
    assert!(
        mode.error_contains().iter().any(|w| error.contains(w)),
        "{mode:?}: {error}"
    );
}

fn probe_level(mode: Hostile) {
    let lab = new_lab();
    let _server = Server::start(&lab.sock(), mode);
    let started = Instant::now();
    let out = probe(&Endpoint::UnixSocket(lab.sock()), DEADLINE);
    let took = started.elapsed();
    assert!(took < DEADLINE + SLACK, "{mode:?}: probe took {took:?}");
    check_outcome(mode, &out);
}

/// Peak resident set of a finished `/usr/bin/time -f %M -o FILE` run, KiB.
fn time_rss(file: &Path) -> Option<u64> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
}

/// VmHWM of a running process, KiB.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn binary_level(mode: Hostile) {
    binary_level_with(mode, DEADLINE);
}

fn binary_level_with(mode: Hostile, deadline: Duration) {
    let lab = new_lab();
    let _server = Server::start(&lab.sock(), mode);
    // GNU time's `%M` (peak RSS, KiB); BSD time has no -f.
    let time = Path::new("/usr/bin/time");
    let gnu_time = cfg!(target_os = "linux") && time.exists();
    let rss_file = lab.root().join("rss");
    let mut cmd = if gnu_time {
        let mut c = Command::new(time);
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(BIN);
        c
    } else {
        Command::new(BIN)
    };
    cmd.env_clear()
        .env("HOME", lab.root())
        .args(["diagnose", "--format", "json", "--timeout"])
        .arg(deadline.as_secs_f64().to_string())
        .arg("--home")
        .arg(&lab.home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    // Polled as a fallback when GNU time is missing (Linux /proc only).
    let mut polled_peak = None;
    let hard_stop = started + deadline + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if let Some(k) = vm_hwm(pid) {
            polled_peak = polled_peak.max(Some(k));
        }
        if Instant::now() > hard_stop {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{mode:?}: diagnose still running 15 s past its deadline (killed pid {pid})");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    let stdout = out_reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    let peak = if gnu_time {
        time_rss(&rss_file)
    } else {
        polled_peak
    };

    assert!(
        took < deadline + SLACK,
        "{mode:?}: diagnose took {took:?}; stderr: {stderr}"
    );
    let code = status.code();
    assert!(
        matches!(code, Some(4) | Some(12)),
        "{mode:?}: exit {status:?}; stderr: {stderr}"
    );
    if cfg!(target_os = "linux") {
        let peak = peak.expect("peak memory was measured");
        assert!(peak < MAX_RSS_KIB, "{mode:?}: peak RSS {peak} KiB");
    }
    let doc: serde_json::Value = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "{mode:?}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&stdout)
        )
    });
    assert_eq!(doc["exit_code"].as_i64(), code.map(i64::from));
    let check = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "daemon.unresponsive")
        .expect("daemon.unresponsive is run");
    assert_eq!(check["status"], "problem", "{mode:?}: {doc:#}");
    let finding = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "daemon.unresponsive")
        .unwrap_or_else(|| panic!("{mode:?}: no daemon.unresponsive finding: {doc:#}"));
    assert_eq!(finding["severity"], "error");
    let ev = &finding["evidence"];
    if mode.times_out() {
        assert_eq!(ev["connected"], true, "{mode:?}: {finding:#}");
        assert_eq!(doc["daemon"]["rpc"]["state"], "timeout");
    } else {
        let error = ev["error"].as_str().unwrap_or_default();
        assert!(
            mode.error_contains().iter().any(|w| error.contains(w)),
            "{mode:?}: {finding:#}"
        );
    }
    assert_ne!(doc["daemon"]["rpc"]["state"], "answered");
}

macro_rules! hostile_cases {
    ($($name:ident => $mode:expr,)*) => {
        mod probe_api {
            use super::*;
            $(#[test] fn $name() { probe_level($mode) })*
            #[test]
            fn frame_of_fifteen_16_mib_arguments() {
                probe_level(Hostile::MaxFrame)
            }
        }
        mod diagnose_binary {
            use super::*;
            $(#[test] fn $name() { binary_level($mode) })*
        }
    };
}

hostile_cases! {
    four_gib_argument => Hostile::HugeArgument,
    reply_dribbled_a_byte_every_300ms => Hostile::Dribble,
    endless_frames_with_the_wrong_id => Hostile::WrongIdFlood,
    invalid_utf8_in_the_json_argument => Hostile::InvalidUtf8,
    one_hundred_thousand_nested_arrays => Hostile::DeepNesting,
    correct_reply_after_the_deadline => Hostile::LateReply,
    connection_dropped_mid_frame => Hostile::ResetMidFrame,
    accept_and_close => Hostile::AcceptClose,
    http_instead_of_amp => Hostile::Http,
}

/// A frame may carry 15 arguments of up to `MAX_ARG_BYTES` each, so the
/// probe buffers up to 240 MiB for one frame, and `decode_frame` copies every
/// completed argument again on each partial read (quadratic). Memory grows
/// with the deadline: ~87 MiB at 1 s, ~105 MiB at 2 s (the default, release
/// build), ~150 MiB at 30 s.
#[test]
fn a_max_size_frame_keeps_diagnose_under_100_mib() {
    binary_level_with(Hostile::MaxFrame, Duration::from_secs(8));
}

/// The cap that would bound it: a frame whose arguments already add up to
/// well past `MAX_ARG_BYTES` (three full arguments and the start of a fourth:
/// 48 MiB) is refused as soon as that is known, instead of being waited for
/// (and buffered) up to 240 MiB.
#[test]
fn decode_frame_caps_the_whole_frame() {
    use pm2_doctor::probe::{decode_frame, FrameError, MAX_ARG_BYTES};
    let len = (MAX_ARG_BYTES as u32).to_be_bytes();
    let mut buf = vec![0x1f];
    for _ in 0..3 {
        buf.extend_from_slice(&len);
        buf.resize(buf.len() + MAX_ARG_BYTES, b'x');
    }
    buf.extend_from_slice(&len);
    buf.push(b'x');
    assert!(
        matches!(decode_frame(&buf), Err(FrameError::TooLarge(_))),
        "a frame of 15 x {MAX_ARG_BYTES} bytes is waited for"
    );
}
