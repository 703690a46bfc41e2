//! How much of a VM's memory a contract may make the guest use, checked before boot.
//!
//! Everything guest-init writes or mounts for the contract lives in RAM: the root is read-only
//! and there is no swap, and tmpfs pages and inodes cannot be reclaimed. When they fill the
//! memory, the kernel finds nothing to free and nothing it may kill (guest-init is PID 1) and
//! panics with "System is deadlocked on memory" (seen with 20,000 small files in 48 MiB). So
//! the contract's claim is bounded:
//!
//! - [`KERNEL_MIB`] of the VM's memory are the kernel's (UML's image and page array take about
//!   11 MiB of `mem=`; guest-init needs about 1 more);
//! - the contract may claim at most half of the rest ([`claimable_bytes`]), leaving the other
//!   half to the service, the page cache and the kernel's own allocations;
//! - the claim ([`Claim`]) is the contract as guest-init holds it ([`CONTRACT_COPIES`] copies
//!   of its JSON: the text read, the parsed form, `/run/contract/contract.json`), each file in
//!   `files` as whole 4 KiB pages plus [`INODE_BYTES`] for its inode and directory entry (and
//!   each directory it needs; its content's share of the contract's copies is counted with
//!   the file), and every tmpfs mount at its full `size_mib` (one without a size
//!   at [`default_tmpfs_mib`]);
//! - at most [`MAX_FILES`] files.
//!
//! guest-init enforces the same numbers on its side: /run is mounted with `size=` the
//! claimable bytes and `nr_inodes=` [`RUN_INODES`], each tmpfs with its size and an inode
//! limit ([`tmpfs_inodes`]), so a contract that slipped past this check fails with ENOSPC at
//! its field instead of exhausting the kernel.

use crate::types::Contract;
use crate::validate::{Problem, Problems};
use std::collections::BTreeSet;

/// MiB of every VM that the kernel and guest-init themselves need.
pub const KERNEL_MIB: u32 = 12;

/// Most entries `files` may have.
pub const MAX_FILES: usize = 1024;

/// Inodes of /run: the contract's files and their directories, guest-init's own few
/// (contract, extra, resolv.conf, hosts) and the service's pid files and sockets.
pub const RUN_INODES: u64 = MAX_FILES as u64 * 2 + 256;

/// Bytes of kernel memory one file or directory costs beyond its pages (inode, dentry).
pub const INODE_BYTES: u64 = 1024;

/// Copies of the contract's JSON guest-init holds at the same time.
pub const CONTRACT_COPIES: u64 = 4;

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

/// Bytes of a `memory_mib` VM the contract may claim: half of what the kernel leaves.
pub fn claimable_bytes(memory_mib: u32) -> u64 {
    u64::from(memory_mib.saturating_sub(KERNEL_MIB)) * MIB / 2
}

/// The size guest-init gives a tmpfs mount without `size_mib`: a quarter of the claimable
/// memory, at least 1 MiB (the kernel's own default, half the memory, cannot fit).
pub fn default_tmpfs_mib(memory_mib: u32) -> u32 {
    // A quarter of a u32 MiB count fits a u32; saturate rather than trust that silently.
    u32::try_from(claimable_bytes(memory_mib) / MIB / 4)
        .unwrap_or(u32::MAX)
        .max(1)
}

/// The inode limit of a tmpfs of `size_mib`: one per 4 KiB page, at least 64, so empty files
/// cannot fill the kernel's memory with inodes a size limit does not count.
pub fn tmpfs_inodes(size_mib: u32) -> u64 {
    (u64::from(size_mib) * MIB / PAGE).max(64)
}

/// What a contract makes the guest hold in memory, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claim {
    pub contract: u64,
    pub files: u64,
    pub tmpfs: u64,
}

impl Claim {
    pub fn total(&self) -> u64 {
        self.contract
            .saturating_add(self.files)
            .saturating_add(self.tmpfs)
    }
}

/// Bytes one file costs: its content in whole pages in /run plus an inode, and its share of
/// guest-init's copies of the contract.
fn file_bytes(f: &crate::File) -> u64 {
    let len = crate::file_content(f).map_or(f.content.len(), |b| b.len()) as u64;
    len.div_ceil(PAGE)
        .saturating_mul(PAGE)
        .saturating_add(INODE_BYTES)
        .saturating_add((f.content.len() as u64).saturating_mul(CONTRACT_COPIES))
}

/// Bytes the files of `files` cost ([`file_bytes`]), and an inode per directory they need.
fn files_bytes(c: &Contract) -> u64 {
    let mut dirs = BTreeSet::new();
    let mut total = 0u64;
    for f in &c.files {
        total = total.saturating_add(file_bytes(f));
        let mut p = f.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            if parent.len() <= "/run".len() || !dirs.insert(parent) {
                break;
            }
            p = parent;
        }
    }
    total.saturating_add(dirs.len() as u64 * INODE_BYTES)
}

/// The claim of `c` in a `memory_mib` VM (which sets the size of tmpfs mounts without one).
pub fn claim(c: &Contract, memory_mib: u32) -> Claim {
    let json = crate::to_json(c).len() as u64;
    let contents = c.files.iter().map(|f| f.content.len() as u64).sum::<u64>();
    Claim {
        contract: json
            .saturating_sub(contents)
            .saturating_mul(CONTRACT_COPIES),
        files: files_bytes(c),
        tmpfs: c
            .mounts
            .tmpfs
            .iter()
            .map(|t| u64::from(t.size_mib.unwrap_or_else(|| default_tmpfs_mib(memory_mib))) * MIB)
            .fold(0, u64::saturating_add),
    }
}

fn kib(bytes: u64) -> String {
    if bytes >= 10 * MIB {
        format!("{} MiB", bytes.div_ceil(MIB))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// Refuses a contract that cannot fit a `memory_mib` VM, naming the field and the numbers.
pub fn check(c: &Contract, memory_mib: u32) -> Result<(), Problems> {
    let mut problems = Vec::new();
    let limit = claimable_bytes(memory_mib);
    let rule = format!(
        "a VM of {memory_mib} MiB lets the contract claim {} (half of what is left after {KERNEL_MIB} MiB for the kernel)",
        kib(limit)
    );
    if c.files.len() > MAX_FILES {
        problems.push(Problem {
            path: "files".into(),
            message: format!(
                "{} files; at most {MAX_FILES} can be written to /run (put many small files in \
                 the image, or in one archive)",
                c.files.len()
            ),
        });
    }
    let claim = claim(c, memory_mib);
    if claim.total() > limit {
        let (part, what, bytes) = largest_part(c, &claim);
        let path = blamed_path(c, memory_mib, limit, &claim, part);
        problems.push(Problem {
            path,
            message: format!(
                "{what} {} of guest memory, and the contract in all {} (contract {}, files {}, \
                 tmpfs {}), but {rule}; give the VM more memory or the contract less",
                kib(bytes),
                kib(claim.total()),
                kib(claim.contract),
                kib(claim.files),
                kib(claim.tmpfs),
            ),
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(problems))
    }
}

/// The part of the claim that makes the difference: the largest, with its words.
fn largest_part(c: &Contract, claim: &Claim) -> (&'static str, String, u64) {
    [
        (
            "files",
            match c.files.len() {
                1 => "1 file takes".to_string(),
                n => format!("{n} files take"),
            },
            claim.files,
        ),
        (
            "mounts.tmpfs",
            "the tmpfs mounts take".to_string(),
            claim.tmpfs,
        ),
        (
            "(contract)",
            "the contract itself takes".to_string(),
            claim.contract,
        ),
    ]
    .into_iter()
    .max_by_key(|(_, _, b)| *b)
    .unwrap_or_default()
}

/// The field to blame for `part`, as precise as the contract allows.
fn blamed_path(c: &Contract, memory_mib: u32, limit: u64, claim: &Claim, part: &str) -> String {
    match part {
        "mounts.tmpfs" => c
            .mounts
            .tmpfs
            .iter()
            .enumerate()
            .max_by_key(|(_, t)| t.size_mib.unwrap_or_else(|| default_tmpfs_mib(memory_mib)))
            .map(|(i, t)| {
                if t.size_mib.is_some() {
                    format!("mounts.tmpfs[{i}].size_mib")
                } else {
                    format!("mounts.tmpfs[{i}]")
                }
            })
            .unwrap_or_else(|| part.to_string()),
        // The contract's bulk besides files is most often `extra`: name it when it is.
        "(contract)" => {
            let extra = c.extra.as_ref().map_or(0, |e| e.to_string().len() as u64);
            if extra.saturating_mul(CONTRACT_COPIES) * 2 > claim.contract {
                "extra".to_string()
            } else {
                part.to_string()
            }
        }
        // One file too big on its own is named; many small ones are `files`.
        "files" => c
            .files
            .iter()
            .enumerate()
            .find(|(_, f)| file_bytes(f) > limit)
            .map_or_else(
                || "files".to_string(),
                |(i, _)| format!("files[{i}].content"),
            ),
        p => p.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{File, FileEncoding, Tmpfs};

    fn base() -> Contract {
        crate::parse_json(br#"{"version":1,"hostname":"h","service":{"argv":["/x"]}}"#)
            .expect("base")
    }

    fn file(i: usize, len: usize) -> File {
        File {
            path: format!("/run/d/f{i}"),
            mode: "0644".into(),
            uid: 0,
            gid: 0,
            content: "x".repeat(len),
            encoding: FileEncoding::Utf8,
        }
    }

    #[test]
    fn the_rule() {
        assert_eq!(claimable_bytes(32), 10 * MIB);
        assert_eq!(claimable_bytes(64), 26 * MIB);
        assert_eq!(claimable_bytes(8), 0);
        assert_eq!(default_tmpfs_mib(64), 6);
        assert_eq!(default_tmpfs_mib(24), 1);
    }

    #[test]
    fn twenty_thousand_small_files_are_refused_by_count_and_size() {
        let mut c = base();
        c.files = (0..20_000).map(|i| file(i, 10)).collect();
        let p = check(&c, 48).unwrap_err();
        assert_eq!(p.0.len(), 2, "{p}");
        assert_eq!(p.0[0].path, "files");
        assert!(
            p.0[0].message.starts_with("20000 files; at most 1024"),
            "{p}"
        );
        assert!(p.0[1].message.contains("a VM of 48 MiB"), "{p}");
    }

    #[test]
    fn big_files_and_tmpfs_are_named() {
        let mut c = base();
        c.files = vec![file(0, usize::try_from(11 * MIB).unwrap())];
        let p = check(&c, 32).unwrap_err();
        assert_eq!(p.0[0].path, "files[0].content", "{p}");
        assert!(check(&c, 128).is_ok());
        let mut c = base();
        c.mounts.tmpfs = vec![
            Tmpfs {
                mount_point: "/a".into(),
                size_mib: Some(2),
                mode: None,
            },
            Tmpfs {
                mount_point: "/b".into(),
                size_mib: Some(30),
                mode: None,
            },
        ];
        let p = check(&c, 64).unwrap_err();
        assert_eq!(p.0[0].path, "mounts.tmpfs[1].size_mib", "{p}");
        assert!(check(&c, 96).is_ok());
    }

    #[test]
    fn a_big_extra_is_named() {
        let mut c = base();
        c.extra = Some(serde_json::json!({"blob": "x".repeat(4 << 20)}));
        let p = check(&c, 32).unwrap_err();
        assert_eq!(p.0[0].path, "extra", "{p}");
        assert!(
            p.0[0]
                .message
                .starts_with("the contract itself takes 17 MiB"),
            "{p}"
        );
    }

    #[test]
    fn the_examples_fit_a_small_vm() {
        for text in [
            &include_bytes!("../examples/full.json")[..],
            include_bytes!("../examples/minimal.json"),
        ] {
            let c = crate::parse_json(text).expect("example");
            check(&c, 32).unwrap_or_else(|p| panic!("{p}"));
        }
    }
}
