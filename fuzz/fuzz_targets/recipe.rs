//! Image recipes (build-image reads them, possibly from a third party).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = build_image::recipe::parse(data);
});
