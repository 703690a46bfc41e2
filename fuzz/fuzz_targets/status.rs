//! The status channel as host-launch reads it: the guest controls every byte, and what the
//! operator sees of it must be one line without control characters.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let Some(read) = host_launch::events::parse(line) {
            // The typed reading is shown too (guest-init's own console lines): as safe.
            let typed = read.event.human();
            assert!(
                !typed.chars().any(char::is_control),
                "control character shown to the operator: {typed:?}"
            );
            let shown = host_launch::events::human(&read.value);
            assert!(
                !shown.chars().any(char::is_control),
                "control character shown to the operator: {shown:?}"
            );
        }
    }
});
