//! The files a UML kernel binary needs in its jail: itself and, when it is dynamically
//! linked (Debian's is), its program interpreter and the libraries that loader maps.
//!
//! The library list comes from the host's own loader (`<interpreter> --list <kernel>`, what
//! `ldd` runs): it resolves exactly as it will when UML starts, search paths, hwcaps
//! subdirectories and all, which a second resolver of ours could get wrong. The kernel binary
//! is the host's, not the guest's, so asking its loader about it trusts nothing new. A
//! statically linked kernel (the project's own, `kernel/`) needs nothing more.

use std::io::Read;
use std::path::{Path, PathBuf};

const PT_INTERP: u32 = 3;

/// The program interpreter (`PT_INTERP`) of an ELF64 little-endian file, `None` when it has
/// none (statically linked).
pub fn interpreter(bytes: &[u8]) -> Result<Option<PathBuf>, String> {
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .and_then(|v| usize::try_from(v).ok())
    };
    if bytes.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1]) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bad = || "its program headers are cut short".to_string();
    let phoff = u64_at(0x20).ok_or_else(bad)?;
    let phentsize = u16_at(0x36).ok_or_else(bad)?;
    let phnum = u16_at(0x38).ok_or_else(bad)?;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph).ok_or_else(bad)? != PT_INTERP {
            continue;
        }
        let off = u64_at(ph + 8).ok_or_else(bad)?;
        let size = u64_at(ph + 32).ok_or_else(bad)?;
        let raw = bytes.get(off..off + size).ok_or_else(bad)?;
        let name = raw.split(|b| *b == 0).next().unwrap_or_default();
        let name = std::str::from_utf8(name).map_err(|_| "its interpreter is not UTF-8")?;
        return Ok(Some(PathBuf::from(name)));
    }
    Ok(None)
}

/// The absolute paths in a loader's `--list` output (`libc.so.6 => /lib/.../libc.so.6 (0x..)`
/// and `/lib64/ld-linux-x86-64.so.2 (0x..)`); the vDSO has no file and is skipped.
pub fn listed_paths(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let target = match line.split_once("=>") {
            Some((_, t)) => t.trim(),
            None => line,
        };
        if target.starts_with("not found") {
            return Err(format!("a library is missing: {line}"));
        }
        let path = target.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            out.push(PathBuf::from(path));
        }
    }
    Ok(out)
}

/// Every file the kernel binary needs to start, itself first.
pub fn runtime_files(kernel: &Path) -> Result<Vec<PathBuf>, String> {
    let mut head = Vec::new();
    std::fs::File::open(kernel)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| format!("reading {}: {e}", kernel.display()))?;
    let mut files = vec![kernel.to_path_buf()];
    let Some(interp) =
        interpreter(&head).map_err(|e| format!("reading {}: {e}", kernel.display()))?
    else {
        return Ok(files);
    };
    let out = std::process::Command::new(&interp)
        .arg("--list")
        .arg(kernel)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running {} --list: {e}", interp.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --list {} failed: {}",
            interp.display(),
            kernel.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    for p in listed_paths(&String::from_utf8_lossy(&out.stdout))? {
        if !files.contains(&p) {
            files.push(p);
        }
    }
    if !files.contains(&interp) {
        files.push(interp);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_output() {
        let text =
            "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 \
                    (0x00007f4b)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f4c)\n";
        assert_eq!(
            listed_paths(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(listed_paths("libfoo.so => not found\n")
            .unwrap_err()
            .contains("libfoo"));
    }

    #[test]
    fn interpreters() {
        assert!(interpreter(b"#!/bin/sh").is_err());
        let sh = std::fs::read("/bin/sh").unwrap();
        let i = interpreter(&sh).unwrap().expect("a dynamic /bin/sh");
        assert!(i.to_string_lossy().contains("ld-linux"), "{i:?}");
        let files = runtime_files(Path::new("/bin/sh")).unwrap();
        assert!(files
            .iter()
            .any(|f| f.to_string_lossy().contains("libc.so")));
    }
}
