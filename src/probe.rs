//! A deadline-bound client for the PM2 daemon's RPC socket.
//!
//! PM2's own CLI has no timeout on any RPC call, so a wedged daemon hangs it
//! forever. This probe speaks the same axon/AMP protocol (pm2-internals §4)
//! but every step is bounded: the whole exchange runs on a helper thread and
//! the caller stops waiting at the deadline, whatever the OS call is doing
//! (a unix `connect` to a full accept queue, or a busy Windows pipe, can block
//! without honouring socket timeouts).
//!
//! Only read-only methods are sent, each with exactly one argument: a call
//! with the wrong arity crashes a real daemon.

use crate::home::Endpoint;
use serde::Deserialize;
use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Largest AMP frame (all its arguments together) we accept. `getMonitorData` carries each app's
/// whole environment twice (~10 KB an app), so 16 MiB covers >1,000 apps.
pub const MAX_ARG_BYTES: usize = 16 * 1024 * 1024;
/// Replies with the wrong id we tolerate before calling the peer broken.
const MAX_FOREIGN_FRAMES: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ProbeOutcome {
    /// Nothing at the endpoint (ENOENT).
    Missing,
    /// Something is there but nobody listens (ECONNREFUSED): a stale socket.
    Refused,
    PermissionDenied {
        error: String,
    },
    /// Connected (or still connecting) when the deadline passed.
    Timeout {
        connected: bool,
        waited_ms: u64,
        /// The process that listens on the socket (Linux: its `SO_PEERCRED`),
        /// when the connection was made.
        #[serde(skip_serializing_if = "Option::is_none")]
        server_pid: Option<u32>,
    },
    /// The peer answered with bytes that are not PM2's protocol.
    Protocol {
        error: String,
    },
    /// The daemon answered with an error object.
    DaemonError {
        error: String,
    },
    Failed {
        error: String,
    },
    Answered(DaemonReply),
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DaemonReply {
    pub version: String,
    /// `None` when the daemon answered getVersion but not getMonitorData in time.
    pub apps: Option<Vec<MonitoredApp>>,
    pub elapsed_ms: u64,
    /// The process that listens on the socket (Linux: its `SO_PEERCRED`):
    /// which of several daemons of a home serves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_pid: Option<u32>,
}

/// One element of `getMonitorData`, reduced to what the checks use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct MonitoredApp {
    pub name: Option<String>,
    pub pm_id: Option<u64>,
    /// 0 or absent when the app is not running.
    pub pid: Option<u32>,
    pub pm2_env: MonitoredEnv,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct MonitoredEnv {
    #[serde(deserialize_with = "crate::dump::lenient_string")]
    pub status: Option<String>,
    #[serde(deserialize_with = "crate::dump::lenient_u64")]
    pub restart_time: Option<u64>,
    #[serde(deserialize_with = "crate::dump::lenient_u64")]
    pub unstable_restarts: Option<u64>,
    #[serde(deserialize_with = "crate::dump::lenient_u64")]
    pub created_at: Option<u64>,
    #[serde(deserialize_with = "crate::dump::lenient_u64")]
    pub pm_uptime: Option<u64>,
    #[serde(deserialize_with = "crate::dump::lenient_string")]
    pub exec_mode: Option<String>,
    #[serde(deserialize_with = "crate::dump::lenient_u64")]
    pub max_restarts: Option<u64>,
    #[serde(deserialize_with = "crate::dump::lenient_u64")]
    pub min_uptime: Option<u64>,
    #[serde(deserialize_with = "crate::dump::lenient_u64")]
    pub restart_delay: Option<u64>,
    #[serde(deserialize_with = "crate::dump::lenient_u64")]
    pub exp_backoff_restart_delay: Option<u64>,
    #[serde(deserialize_with = "crate::dump::lenient_string")]
    pub pm_out_log_path: Option<String>,
    #[serde(deserialize_with = "crate::dump::lenient_string")]
    pub pm_err_log_path: Option<String>,
    /// The app's env, reduced like a dump entry's (no values kept).
    #[serde(deserialize_with = "crate::dump::env_shape", skip_serializing)]
    pub env: crate::dump::EnvShape,
}

impl MonitoredApp {
    pub fn live_pid(&self) -> Option<u32> {
        self.pid.filter(|p| *p > 0)
    }
}

/// Encodes one AMP frame (`meta` byte, then per argument a u32 BE length and
/// the bytes).
pub fn encode_frame(args: &[&[u8]]) -> Vec<u8> {
    debug_assert!(args.len() <= 15);
    let mut out = vec![0x10 | (args.len() as u8 & 0x0f)];
    for a in args {
        out.extend_from_slice(&(a.len() as u32).to_be_bytes());
        out.extend_from_slice(a);
    }
    out
}

/// A call of `method` with the single empty-object argument every read-only
/// God method expects.
pub fn encode_call(method: &str, id: &str) -> Vec<u8> {
    // Key order as PM2's client writes it, so captures compare byte for byte.
    let method = serde_json::Value::String(method.to_string());
    let body = format!(r#"{{"type":"call","method":{method},"args":[{{}}]}}"#);
    let mut a0 = b"j:".to_vec();
    a0.extend_from_slice(body.as_bytes());
    let a1 = format!("s:{id}");
    encode_frame(&[&a0, a1.as_bytes()])
}

/// A decoded frame's arguments and the bytes it used.
pub type Frame = (Vec<Vec<u8>>, usize);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame version {0} is not AMP version 1")]
    BadVersion(u8),
    #[error("frame of {0} bytes or more exceeds the {MAX_ARG_BYTES}-byte cap")]
    TooLarge(u64),
}

/// Decodes one frame from the front of `buf`: `Ok(None)` when more bytes are
/// needed, else the arguments and how many bytes they used.
pub fn decode_frame(buf: &[u8]) -> Result<Option<Frame>, FrameError> {
    let Some(&meta) = buf.first() else {
        return Ok(None);
    };
    if meta >> 4 != 1 {
        return Err(FrameError::BadVersion(meta >> 4));
    }
    let argc = usize::from(meta & 0x0f);
    // First the lengths only: nothing is copied until the whole frame is
    // there (copying on every partial read made a slow peer quadratic),
    // and the frame as a whole is capped, not just each argument.
    let mut pos = 1;
    let mut spans = Vec::with_capacity(argc);
    let mut total: u64 = 0;
    for _ in 0..argc {
        let Some(len_bytes) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        total += u64::from(len);
        if total > MAX_ARG_BYTES as u64 {
            return Err(FrameError::TooLarge(total));
        }
        pos += 4;
        spans.push((pos, len as usize));
        pos += len as usize;
    }
    if buf.len() < pos {
        return Ok(None);
    }
    let args = spans
        .into_iter()
        .map(|(at, len)| buf[at..at + len].to_vec())
        .collect();
    Ok(Some((args, pos)))
}

/// Turns a reply frame's first argument into the `args` array or an error.
pub fn parse_reply(arg0: &[u8]) -> Result<Vec<serde_json::Value>, String> {
    let json = arg0
        .strip_prefix(b"j:")
        .ok_or_else(|| "reply is not a JSON argument".to_string())?;
    #[derive(Deserialize)]
    struct Reply {
        args: Option<Vec<serde_json::Value>>,
        error: Option<serde_json::Value>,
    }
    let r: Reply = serde_json::from_slice(json).map_err(|e| format!("reply is not JSON: {e}"))?;
    if let Some(err) = r.error {
        return Err(match err {
            serde_json::Value::String(s) => format!("daemon error: {s}"),
            other => format!("daemon error: {other}"),
        });
    }
    r.args
        .ok_or_else(|| "reply has neither args nor error".to_string())
}

/// The first reply argument read straight into `T`, or `None` for an error
/// reply or one that does not fit. The monitor reply carries every app's
/// whole environment (~5 KB an app): building a JSON tree of it first took
/// longer than the daemon took to answer.
fn first_arg<T: serde::de::DeserializeOwned>(arg0: &[u8]) -> Option<T> {
    struct First<T>(Option<T>);
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit<T>(std::marker::PhantomData<T>);
            impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
                type Value = First<T>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a list of reply arguments")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<First<T>, A::Error> {
                    let first = seq.next_element::<T>()?;
                    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                    Ok(First(first))
                }
            }
            d.deserialize_seq(Visit(std::marker::PhantomData))
        }
    }
    #[derive(Deserialize)]
    struct Reply<T> {
        args: Option<First<T>>,
        #[serde(default)]
        error: Option<serde::de::IgnoredAny>,
    }
    let json = arg0.strip_prefix(b"j:")?;
    let r: Reply<T> = serde_json::from_slice(json).ok()?;
    if r.error.is_some() {
        return None;
    }
    r.args.and_then(|a| a.0)
}

/// Something we can read and write whose blocking we bound from outside.
trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

enum Step {
    /// Connected to the listener, whose pid when the OS tells it.
    Connected(Option<u32>),
    Done(ProbeOutcome),
}

fn classify_connect_error(e: &io::Error) -> ProbeOutcome {
    match e.kind() {
        io::ErrorKind::NotFound => ProbeOutcome::Missing,
        io::ErrorKind::ConnectionRefused => ProbeOutcome::Refused,
        io::ErrorKind::PermissionDenied => ProbeOutcome::PermissionDenied {
            error: e.to_string(),
        },
        _ => ProbeOutcome::Failed {
            error: e.to_string(),
        },
    }
}

/// The pid of the process listening on the other end of `s`: the kernel
/// records it when the listener calls `listen(2)`, so it names the daemon
/// that bound the socket, not just any process holding it.
#[cfg(unix)]
fn listener_pid(s: &std::os::unix::net::UnixStream) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        // 0 when the listener's pid namespace is not ours (not visible).
        let cred = getsockopt(s, PeerCredentials).ok()?;
        u32::try_from(cred.pid()).ok().filter(|p| *p != 0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = s;
        None
    }
}

/// A connection, and the pid of the process serving it when known.
fn open(endpoint: &Endpoint, io_timeout: Duration) -> io::Result<(Box<dyn Conn>, Option<u32>)> {
    match endpoint {
        #[cfg(unix)]
        Endpoint::UnixSocket(path) => {
            let s = std::os::unix::net::UnixStream::connect(path)?;
            s.set_read_timeout(Some(io_timeout))?;
            s.set_write_timeout(Some(io_timeout))?;
            let pid = listener_pid(&s);
            Ok((Box::new(s), pid))
        }
        // A missing pipe is error 2 (Missing), a foreign one error 5
        // (PermissionDenied); a busy one (231) is waited for up to the
        // deadline and then left to the caller's clock (Timeout). Reads on
        // the synchronous handle have no timeout of their own: the caller's
        // deadline bounds them, as for a wedged unix socket.
        #[cfg(windows)]
        Endpoint::NamedPipe(name) => Ok((
            Box::new(crate::platform::windows::open_pipe(name, io_timeout)?),
            None,
        )),
        #[allow(unreachable_patterns)]
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{endpoint} cannot be reached on this platform"),
        )),
    }
}

/// Reads frames until one carries `id`; returns its first argument. Replies
/// for the other ids in `expected` that arrive first are kept in `stash`
/// (PM2 may answer pipelined calls in any order).
fn read_reply(
    conn: &mut dyn Conn,
    buf: &mut Vec<u8>,
    stash: &mut Vec<(Vec<u8>, Vec<u8>)>,
    expected: &[&str],
    id: &str,
) -> Result<Vec<u8>, ProbeOutcome> {
    let want = format!("s:{id}");
    if let Some(i) = stash.iter().position(|(k, _)| k == want.as_bytes()) {
        return Ok(stash.swap_remove(i).1);
    }
    let mut foreign = 0;
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match decode_frame(buf) {
            Err(e) => {
                return Err(ProbeOutcome::Protocol {
                    error: e.to_string(),
                })
            }
            Ok(Some((mut args, used))) => {
                buf.drain(..used);
                let tag = if args.len() >= 2 { args.pop() } else { None };
                let first = args.into_iter().next().unwrap_or_default();
                match tag {
                    Some(t) if t == want.as_bytes() => return Ok(first),
                    Some(t) if expected.iter().any(|e| t == format!("s:{e}").as_bytes()) => {
                        stash.push((t, first));
                    }
                    _ => {
                        foreign += 1;
                        if foreign > MAX_FOREIGN_FRAMES {
                            return Err(ProbeOutcome::Protocol {
                                error: format!("{foreign} replies with an unknown id"),
                            });
                        }
                    }
                }
                continue;
            }
            Ok(None) => {}
        }
        match conn.read(&mut chunk) {
            Ok(0) => {
                return Err(ProbeOutcome::Protocol {
                    error: "connection closed mid-reply".into(),
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ProbeOutcome::Timeout {
                    connected: true,
                    waited_ms: 0,
                    server_pid: None,
                })
            }
            Err(e) => {
                return Err(ProbeOutcome::Protocol {
                    error: format!("read failed: {e}"),
                })
            }
        }
    }
}

fn exchange(endpoint: Endpoint, deadline: Duration, tx: mpsc::Sender<Step>) {
    let started = Instant::now();
    let (mut conn, server_pid) = match open(&endpoint, deadline) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Step::Done(classify_connect_error(&e)));
            return;
        }
    };
    let _ = tx.send(Step::Connected(server_pid));
    let pid = std::process::id();
    let (id_version, id_monitor) = (format!("{pid}:0"), format!("{pid}:1"));
    // The monitor call first: the daemon measures every app before it
    // answers it, and answers getVersion meanwhile.
    let mut request = encode_call("getMonitorData", &id_monitor);
    request.extend(encode_call("getVersion", &id_version));
    if let Err(e) = conn.write_all(&request).and_then(|_| conn.flush()) {
        let _ = tx.send(Step::Done(ProbeOutcome::Protocol {
            error: format!("write failed: {e}"),
        }));
        return;
    }
    let mut buf = Vec::new();
    let mut stash = Vec::new();
    let expected = [id_version.as_str(), id_monitor.as_str()];
    let mut read = |id: &str| read_reply(conn.as_mut(), &mut buf, &mut stash, &expected, id);
    let version = match read(&id_version).map(|a| parse_reply(&a)) {
        Err(outcome) => {
            let _ = tx.send(Step::Done(outcome));
            return;
        }
        Ok(Err(e)) => {
            let _ = tx.send(Step::Done(ProbeOutcome::DaemonError { error: e }));
            return;
        }
        Ok(Ok(args)) => match args.first() {
            Some(serde_json::Value::String(v)) => v.clone(),
            other => {
                let _ = tx.send(Step::Done(ProbeOutcome::Protocol {
                    error: format!("getVersion returned {other:?}"),
                }));
                return;
            }
        },
    };
    let apps = read(&id_monitor)
        .ok()
        .and_then(|a| first_arg::<Vec<MonitoredApp>>(&a));
    let _ = tx.send(Step::Done(ProbeOutcome::Answered(DaemonReply {
        version,
        apps,
        elapsed_ms: started.elapsed().as_millis() as u64,
        server_pid,
    })));
}

/// A probe under way on its own thread. Started early and waited for late,
/// so the daemon's reply time overlaps the rest of diagnose's reading.
pub struct Pending {
    rx: Option<mpsc::Receiver<Step>>,
    /// Set when the probe could not even start.
    failed: Option<ProbeOutcome>,
    started: Instant,
    deadline: Duration,
    connect_only: bool,
}

fn spawn(
    name: &str,
    job: impl FnOnce(mpsc::Sender<Step>) + Send + 'static,
    deadline: Duration,
    connect_only: bool,
) -> Pending {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    // Detached on purpose: if the OS call never returns, the thread is
    // abandoned and dies with the process.
    match std::thread::Builder::new()
        .name(name.into())
        .spawn(move || job(tx))
    {
        Ok(_) => Pending {
            rx: Some(rx),
            failed: None,
            started,
            deadline,
            connect_only,
        },
        Err(e) => Pending {
            rx: None,
            failed: Some(ProbeOutcome::Failed {
                error: format!("cannot start probe thread: {e}"),
            }),
            started,
            deadline,
            connect_only,
        },
    }
}

/// Starts asking the daemon behind `endpoint` for its version and process
/// list; [`Pending::wait`] returns by `deadline` after this call.
pub fn start(endpoint: &Endpoint, deadline: Duration) -> Pending {
    let ep = endpoint.clone();
    spawn(
        "pm2-probe",
        move |tx| exchange(ep, deadline, tx),
        deadline,
        false,
    )
}

/// Starts checking whether anything listens at `endpoint`, without sending
/// a byte.
pub fn start_connect_only(endpoint: &Endpoint, deadline: Duration) -> Pending {
    let ep = endpoint.clone();
    let job = move |tx: mpsc::Sender<Step>| {
        let started = Instant::now();
        let outcome = match open(&ep, deadline) {
            Ok((_, server_pid)) => ProbeOutcome::Answered(DaemonReply {
                version: String::new(),
                apps: None,
                elapsed_ms: started.elapsed().as_millis() as u64,
                server_pid,
            }),
            Err(e) => classify_connect_error(&e),
        };
        let _ = tx.send(Step::Done(outcome));
    };
    spawn("pm2-connect", job, deadline, true)
}

impl Pending {
    /// The outcome, or `Timeout` once the deadline (counted from the start)
    /// has passed, whatever the probe thread is still blocked in.
    pub fn wait(self) -> ProbeOutcome {
        if let Some(failed) = self.failed {
            return failed;
        }
        let Some(rx) = self.rx else {
            return ProbeOutcome::Failed {
                error: "probe was never started".into(),
            };
        };
        let mut connected = false;
        let mut server_pid = None;
        let timeout = |connected: bool, server_pid: Option<u32>| ProbeOutcome::Timeout {
            // A connect-only probe that has not finished has not connected.
            connected: connected && !self.connect_only,
            waited_ms: self.started.elapsed().as_millis() as u64,
            server_pid,
        };
        loop {
            let left = self.deadline.saturating_sub(self.started.elapsed());
            match rx.recv_timeout(left) {
                Ok(Step::Connected(pid)) => {
                    connected = true;
                    server_pid = pid;
                }
                Ok(Step::Done(ProbeOutcome::Timeout { connected: c, .. })) => {
                    return timeout(c || connected, server_pid)
                }
                Ok(Step::Done(outcome)) => return outcome,
                Err(_) => return timeout(connected, server_pid),
            }
        }
    }
}

/// Asks the daemon behind `endpoint` for its version and process list. Never
/// blocks longer than `deadline` (plus scheduling noise).
pub fn probe(endpoint: &Endpoint, deadline: Duration) -> ProbeOutcome {
    start(endpoint, deadline).wait()
}

/// Whether anything listens at `endpoint`, without sending a byte.
pub fn connect_only(endpoint: &Endpoint, deadline: Duration) -> ProbeOutcome {
    start_connect_only(endpoint, deadline).wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let clean: String = s.chars().filter(char::is_ascii_hexdigit).collect();
        (0..clean.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn first_argument_is_read_typed_or_not_at_all() {
        let apps = |raw: &[u8]| first_arg::<Vec<MonitoredApp>>(raw);
        let one = apps(br#"j:{"args":[[{"name":"a","pid":7,"pm2_env":{"status":"online","env":{"X":"1"}}}],"extra",{"k":[1]}]}"#)
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].pid, Some(7));
        assert_eq!(apps(br#"j:{"args":[[]],"error":null}"#), Some(vec![]));
        assert_eq!(apps(br#"j:{"error":"Unknown method","args":[[]]}"#), None);
        assert_eq!(apps(br#"j:{"args":[]}"#), None);
        assert_eq!(apps(br#"j:{"args":["not a list"]}"#), None);
        assert_eq!(apps(br#"j:{"args":[[{"pid":"seven"}]]}"#), None);
        assert_eq!(apps(br#"s:plain"#), None);
        assert_eq!(apps(b"j:{\"args\":[[{"), None);
    }

    #[test]
    fn encodes_exactly_the_bytes_pm2_sends() {
        // samples/wire_getVersion.hex.txt, captured from a real exchange.
        let want = hex("12 00 00 00 33 6a 3a 7b 22 74 79 70 65 22 3a 22 63 61 6c 6c 22 2c 22 6d 65 74 68 6f 64 22 3a 22 67 65 74 56 65 72 73 69 6f 6e 22 2c 22 61 72 67 73 22 3a 5b 7b 7d 5d 7d 00 00 00 08 73 3a 34 32 34 32 3a 30");
        assert_eq!(encode_call("getVersion", "4242:0"), want);
    }

    #[test]
    fn decodes_a_real_reply() {
        let reply = hex("12 00 00 00 14 6a 3a 7b 22 61 72 67 73 22 3a 5b 22 37 2e 30 2e 34 22 5d 7d 00 00 00 08 73 3a 34 32 34 32 3a 30");
        let (args, used) = decode_frame(&reply).unwrap().unwrap();
        assert_eq!(used, reply.len());
        assert_eq!(args[1], b"s:4242:0");
        assert_eq!(
            parse_reply(&args[0]).unwrap(),
            vec![serde_json::json!("7.0.4")]
        );
        // Every prefix is "need more", never an error or a panic.
        for n in 0..reply.len() {
            assert_eq!(decode_frame(&reply[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn refuses_huge_and_foreign_frames() {
        let mut huge = vec![0x12];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode_frame(&huge), Err(FrameError::TooLarge(_))));
        assert_eq!(
            decode_frame(b"GET / HTTP/1.1"),
            Err(FrameError::BadVersion(4))
        );
    }

    #[test]
    fn daemon_errors_are_reported() {
        let e = parse_reply(br#"j:{"error":"method \"nope\" does not exist"}"#).unwrap_err();
        assert!(e.contains("does not exist"));
        assert!(parse_reply(b"s:hello").is_err());
        assert!(parse_reply(b"j:{not json").is_err());
    }

    #[test]
    fn monitor_data_pid_zero_or_absent_is_not_running() {
        let apps: Vec<MonitoredApp> = serde_json::from_str(
            r#"[{"name":"a","pid":0,"pm_id":0,"pm2_env":{"status":"errored","restart_time":5}},
                {"name":"b","pm_id":1,"pm2_env":{"status":"stopped"}},
                {"name":"c","pid":77,"pm_id":2,"monit":{"memory":1},"pm2_env":{"status":"online","extra":{"deep":1}}}]"#,
        )
        .unwrap();
        assert_eq!(
            apps.iter().map(MonitoredApp::live_pid).collect::<Vec<_>>(),
            vec![None, None, Some(77)]
        );
        assert_eq!(apps[0].pm2_env.restart_time, Some(5));
    }

    #[cfg(unix)]
    #[test]
    fn missing_refused_and_silent_listeners() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("rpc.sock");
        let ep = Endpoint::UnixSocket(sock.clone());
        assert_eq!(
            probe(&ep, Duration::from_millis(500)),
            ProbeOutcome::Missing
        );
        // A socket file nobody listens on: the state a SIGKILLed daemon leaves.
        drop(UnixListener::bind(&sock).unwrap());
        assert_eq!(
            probe(&ep, Duration::from_millis(500)),
            ProbeOutcome::Refused
        );
        std::fs::remove_file(&sock).unwrap();
        // A listener that accepts and never answers: a wedged daemon.
        let l = UnixListener::bind(&sock).unwrap();
        let started = Instant::now();
        let out = probe(&ep, Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_millis(1300));
        assert!(
            matches!(
                out,
                ProbeOutcome::Timeout {
                    connected: true,
                    ..
                }
            ),
            "{out:?}"
        );
        assert!(matches!(
            connect_only(&ep, Duration::from_millis(300)),
            ProbeOutcome::Answered(_)
        ));
        drop(l);
    }

    #[cfg(unix)]
    #[test]
    fn answers_like_a_daemon() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("rpc.sock");
        let l = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let mut calls = Vec::new();
            while calls.len() < 2 {
                let n = s.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..n]);
                while let Some((args, used)) = decode_frame(&buf).unwrap() {
                    buf.drain(..used);
                    calls.push(args);
                }
            }
            let id_of = |method: &str| {
                let c = calls
                    .iter()
                    .find(|c| {
                        let body: serde_json::Value = serde_json::from_slice(&c[0][2..]).unwrap();
                        body["method"] == method
                    })
                    .unwrap_or_else(|| panic!("no {method} call"));
                c[1].clone()
            };
            // A stray frame first, then the slow call's answer before the
            // quick one's: replies are matched by id, not by order.
            s.write_all(&encode_frame(&[b"j:{\"args\":[]}", b"s:other:9"]))
                .unwrap();
            let monitor = br#"j:{"args":[[{"name":"web","pid":4242,"pm_id":0,"pm2_env":{"status":"online","restart_time":3}}]]}"#;
            s.write_all(&encode_frame(&[monitor, &id_of("getMonitorData")]))
                .unwrap();
            s.write_all(&encode_frame(&[
                b"j:{\"args\":[\"7.0.4\"]}",
                &id_of("getVersion"),
            ]))
            .unwrap();
            calls
        });
        let out = probe(&Endpoint::UnixSocket(sock), Duration::from_secs(2));
        let calls = server.join().unwrap();
        for c in &calls {
            let body: serde_json::Value = serde_json::from_slice(&c[0][2..]).unwrap();
            assert_eq!(
                body["args"],
                serde_json::json!([{}]),
                "exactly one argument"
            );
        }
        let ProbeOutcome::Answered(r) = out else {
            panic!("{out:?}")
        };
        assert_eq!(r.version, "7.0.4");
        assert_eq!(r.apps.unwrap()[0].live_pid(), Some(4242));
        // The listener is this test process: the kernel says so.
        #[cfg(target_os = "linux")]
        assert_eq!(r.server_pid, Some(std::process::id()));
    }
}
