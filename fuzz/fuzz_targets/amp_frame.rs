//! Bytes from the daemon's socket → frame decoder → reply parser, as the
//! probe consumes them (frame after frame from one buffer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm2_doctor::probe::{decode_frame, encode_frame, parse_reply};

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while let Ok(Some((args, used))) = decode_frame(buf) {
        assert!(used <= buf.len());
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        assert_eq!(encode_frame(&refs), &buf[..used]);
        if let Some(first) = args.first() {
            let _ = parse_reply(first);
        }
        if used == 0 {
            break;
        }
        buf = &buf[used..];
    }
    // The bytes as a reply argument on their own, too.
    let _ = parse_reply(data);
});
