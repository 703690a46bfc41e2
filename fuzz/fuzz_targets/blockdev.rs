//! The config block device image as guest-init reads it: header, CRCs, payload, contract.
#![no_main]
use contract::blockdev;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = blockdev::header_payload_len(data);
    if let Ok(c) = blockdev::decode(data) {
        assert!(contract::validate(&c).is_ok());
        let again = blockdev::decode(&blockdev::encode(&c)).expect("re-encoded image");
        assert_eq!(c, again);
    }
});
