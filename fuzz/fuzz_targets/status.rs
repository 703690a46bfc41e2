//! The status channel as host-launch reads it: the guest controls every byte. The bytes go
//! through the launcher's bounded line splitter (fed in uneven pieces, as a pipe delivers
//! them), and each line through the event reader; no line may pass the bound, and what the
//! operator sees of it must be one line without control characters.
#![no_main]
use libfuzzer_sys::fuzz_target;

const MAX_LINE: usize = 512;

fuzz_target!(|data: &[u8]| {
    let dropped = std::sync::Arc::new(vmm::channel::Dropped::default());
    let mut split = vmm::channel::LineSplitter::new(MAX_LINE, dropped);
    let mut lines = Vec::new();
    let piece = 1 + data.first().copied().unwrap_or(0) as usize;
    for chunk in data.chunks(piece) {
        split.feed(chunk, &mut |l| lines.push(l.to_vec()));
    }
    split.finish(&mut |l| lines.push(l.to_vec()));
    for line in &lines {
        assert!(line.len() <= MAX_LINE, "a line of {} bytes passed the bound", line.len());
        let line = String::from_utf8_lossy(line);
        if let Some(read) = host_launch::events::parse(&line) {
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
