//! OCI image layers (host-launch unpacks them from any image an operator names): a tar
//! applied onto a small root with whiteouts, then the parents and the below-a-symlink check;
//! what is accepted has clean paths, no whiteout left and a directory above every entry.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rootfs::ext4::{Content, Entry};
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let mut root = BTreeMap::new();
    let dir = Entry { content: Content::Dir, mode: 0o755, uid: 0, gid: 0, origin: "seed".into() };
    root.insert("/etc".to_string(), dir.clone());
    root.insert("/etc/a".to_string(), Entry { content: Content::Bytes(b"a".to_vec()), ..dir });
    let mut budget = 1 << 24;
    if oci::apply::apply_tar(&mut root, data, &mut budget, 0).is_ok() {
        if let Ok(root) = oci::apply::finish(root) {
            // What the ext4 writer stages and names in its debugfs script: clean absolute
            // paths only, no whiteout left, every parent a directory.
            for path in root.keys() {
                assert!(path.starts_with('/') && !path.ends_with('/'), "{path:?}");
                assert!(!path.chars().any(char::is_control), "{path:?}");
                for part in path[1..].split('/') {
                    assert!(!matches!(part, "" | "." | "..") && !part.starts_with(".wh."), "{path:?}");
                }
                if let Some((parent, _)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
                    assert_eq!(root[parent].content, Content::Dir, "{path:?}");
                }
            }
        }
    }
});
