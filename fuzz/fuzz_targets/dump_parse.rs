//! `dump.pm2` bytes → the strict parser and the entry validator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm2_doctor::dump::{entry_problems, parse_bytes, DumpParse};
use pm2_doctor::home::FileMeta;

fuzz_target!(|data: &[u8]| {
    let meta = FileMeta {
        size: data.len() as u64,
        mtime: None,
        mode: Some(0o644),
    };
    if let DumpParse::Apps { entries, .. } = parse_bytes(data, meta) {
        for e in &entries {
            let _ = entry_problems(e);
        }
    }
});
