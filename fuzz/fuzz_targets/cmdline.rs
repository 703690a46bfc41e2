//! The kernel command line as guest-init reads it: finding `hostcontract=` and decoding the
//! token. Anything may come back but a panic; a decoded contract must be valid.
#![no_main]
use contract::cmdline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cmdline::find(text, cmdline::DEVICE_PARAM);
    let token = cmdline::find(text, cmdline::PARAM).unwrap_or(text);
    if let Ok(c) = cmdline::decode(token) {
        assert!(contract::validate(&c).is_ok());
        // What was accepted goes back on the wire and reads the same.
        let again = cmdline::decode(&cmdline::encode(&c)[cmdline::PARAM.len() + 1..])
            .expect("re-encoded token");
        assert_eq!(c, again);
    }
});
