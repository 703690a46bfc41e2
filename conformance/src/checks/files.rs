//! The image's files, read from outside with debugfs (no mount, nothing written).

use crate::lab::{debugfs, Lab};
use crate::report::{one_line, Results};

/// What `debugfs stat PATH` says: (type, mode, fast link target).
fn stat(lab: &Lab, path: &str) -> Option<(String, u32, Option<String>)> {
    let text = debugfs(&lab.image, &format!("stat {path}")).ok()?;
    let field = |name: &str| {
        text.split(name)
            .nth(1)
            .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
    };
    let kind = field("Type: ")?;
    let mode = u32::from_str_radix(field("Mode: ")?.trim_start_matches('0'), 8).unwrap_or(0);
    let link = text
        .split("Fast link dest: \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(str::to_string);
    Some((kind, mode, link))
}

pub fn check(lab: &Lab, r: &mut Results) {
    let sb = debugfs(&lab.image, "stats").unwrap_or_default();
    let ext = sb.contains("Filesystem magic number:  0xEF53");
    r.check(
        "C-IMG-1",
        ext,
        if ext {
            "ext2/3/4 superblock".to_string()
        } else {
            format!("no ext superblock: {}", one_line(&sb, 160))
        },
    );
    if !ext {
        for id in ["C-IMG-2", "C-IMG-3", "C-IMG-4", "C-IMG-5", "C-IMG-6"] {
            r.skip(id, "the image is not an ext file system debugfs can read");
        }
        return;
    }
    init_and_dirs(lab, r);
    resolver_links(lab, r);
    mount_points(lab, r);
}

/// `/sbin/init` (executable, or a link not followed) and the system directories.
fn init_and_dirs(lab: &Lab, r: &mut Results) {
    match stat(lab, "/sbin/init") {
        Some((k, mode, _)) if k == "regular" => r.check(
            "C-IMG-2",
            mode & 0o111 != 0,
            format!("/sbin/init: regular, mode {mode:o}"),
        ),
        Some((k, _, link)) => r.check(
            "C-IMG-2",
            k == "symlink",
            format!("/sbin/init: {k} {link:?} (target not followed)"),
        ),
        None => r.check("C-IMG-2", false, "/sbin/init: not in the image"),
    }
    for dir in ["/proc", "/sys", "/dev", "/run", "/tmp"] {
        let s = stat(lab, dir);
        let ok = matches!(&s, Some((k, _, _)) if k == "directory");
        r.check(
            "C-IMG-3",
            ok,
            format!(
                "{dir}: {}",
                s.map(|s| s.0).unwrap_or_else(|| "missing".into())
            ),
        );
    }
}

/// The resolver files are links into /run, where the init writes them.
fn resolver_links(lab: &Lab, r: &mut Results) {
    for (id, path, target) in [
        ("C-IMG-4", "/etc/resolv.conf", "/run/resolv.conf"),
        ("C-IMG-5", "/etc/hosts", "/run/hosts"),
    ] {
        let s = stat(lab, path);
        let ok = matches!(&s, Some((k, _, Some(t))) if k == "symlink" && t == target);
        let seen = match s {
            Some((k, _, link)) => format!(
                "{k}{}",
                link.map(|l| format!(" -> {l}")).unwrap_or_default()
            ),
            None => "missing".into(),
        };
        r.check(id, ok, format!("{path}: {seen}"));
    }
}

/// Every mount point the manifest names is a directory of the image.
fn mount_points(lab: &Lab, r: &mut Results) {
    let points: Vec<&str> = lab
        .manifest
        .disks
        .iter()
        .map(|d| d.mount_point.as_str())
        .chain(lab.manifest.tmpfs.iter().map(|t| t.mount_point.as_str()))
        .collect();
    if points.is_empty() {
        r.skip("C-IMG-6", "the manifest declares no disk or tmpfs");
    }
    for p in points {
        let ok = matches!(stat(lab, p), Some((k, _, _)) if k == "directory");
        r.check(
            "C-IMG-6",
            ok,
            format!(
                "{p}: {}",
                if ok {
                    "directory"
                } else {
                    "not a directory of the image"
                }
            ),
        );
    }
}
