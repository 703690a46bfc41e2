//! Contract JSON: parse, validate, the resource budget, and both encodings of what passed.
#![no_main]
use contract::{blockdev, cmdline};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = contract::parse_json(data) else {
        return;
    };
    let json = contract::to_json(&c);
    let again = contract::parse_json(json.as_bytes()).expect("own JSON parses");
    assert_eq!(c, again);
    assert_eq!(blockdev::decode(&blockdev::encode(&c)).expect("device"), c);
    assert_eq!(
        cmdline::decode(&cmdline::encode(&c)[cmdline::PARAM.len() + 1..]).expect("token"),
        c
    );
    for memory in [24, 32, 64, 65536] {
        let _ = contract::budget::check(&c, memory);
    }
});
