//! Image recipes (image-builder reads them, possibly from a third party).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = image_builder::recipe::parse(data);
});
