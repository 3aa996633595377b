//! A process environment (`/proc/<pid>/environ`: NUL- or newline-separated
//! `KEY=value`) → PM2 marker extraction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm2_doctor::process::Pm2Env;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let vars: Vec<&str> = text.split(['\0', '\n']).collect();
    let _ = Pm2Env::from_environ(&vars);
});
