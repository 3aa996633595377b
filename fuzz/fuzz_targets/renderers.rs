//! Label values (home paths, app names from a dump) → the Prometheus
//! escaper: the result must be one line with no unescaped quote.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm2_doctor::report::prometheus::escape;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let out = escape(&text);
    assert!(!out.contains('\n'), "newline survives escaping: {out:?}");
    let mut chars = out.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => assert!(
                matches!(chars.next(), Some('\\' | '"' | 'n')),
                "bad escape in {out:?}"
            ),
            '"' => panic!("unescaped quote in {out:?}"),
            _ => {}
        }
    }
});
