//! Pid file text (read as PM2's files are: lossy UTF-8) → `parse_pid`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm2_doctor::home::{parse_pid, split_pid_file_name, PidParse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let PidParse::Pid(p) = parse_pid(&text) {
        assert!(p >= 2, "pid {p} accepted from {text:?}");
    }
    let _ = split_pid_file_name(&text);
});
