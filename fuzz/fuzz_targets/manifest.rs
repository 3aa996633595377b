//! A repair run's `manifest.json` → the journal's typed view.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm2_doctor::repair::journal::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        // What loads serialises and loads back the same.
        let again = serde_json::to_vec(&m).expect("a loaded manifest serialises");
        let back: Manifest = serde_json::from_slice(&again).expect("and loads again");
        assert_eq!(back, m);
    }
});
