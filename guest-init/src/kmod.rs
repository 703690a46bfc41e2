//! Loading kernel modules, for the one the guest may need: Debian's UML kernel builds IPv6 as
//! a module (`kernel/net/ipv6/ipv6.ko`, which depends on `kernel/lib/crc-ccitt.ko`).
//!
//! There is no modprobe in the image, so dependencies are read the way depmod does, from the
//! `depends=` entry of each module's `.modinfo` ELF section, and the files are found by name
//! anywhere under `/lib/modules/<release>/`. That needs no `modules.dep`, so an image builder
//! only has to copy the `.ko` files. Modules must be uncompressed: reading their `.modinfo`
//! and loading them without an in-kernel decompressor both need the plain ELF file.

use nix::errno::Errno;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Where images keep their modules, one directory per kernel release below.
pub const MODULES_DIR: &str = "/lib/modules";

/// Present once the IPv6 stack is in the kernel, built in or loaded.
const IPV6_SYSCTL: &str = "/proc/sys/net/ipv6";

/// Why a module could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmodError {
    /// The running kernel's release could not be read.
    Release {
        errno: Errno,
    },
    /// The image lacks a module: `module` (without `.ko`), needed for `wanted_for`, or as a
    /// dependency of `needed_by`.
    Missing {
        module: String,
        dir: PathBuf,
        wanted_for: &'static str,
        needed_by: Option<String>,
    },
    /// Only a compressed file of the module is there.
    Compressed {
        path: PathBuf,
    },
    /// The file is not a module we can read dependencies from.
    BadModule {
        path: PathBuf,
        why: String,
    },
    /// Dependencies nest deeper than any real module's (a cycle, most likely).
    TooDeep {
        module: String,
    },
    /// Parameters with a NUL byte cannot be passed to the kernel.
    BadParams {
        path: PathBuf,
    },
    Open {
        path: PathBuf,
        errno: Errno,
    },
    /// The kernel refused to load the module.
    Load {
        path: PathBuf,
        errno: Errno,
    },
}

impl fmt::Display for KmodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KmodError::Release { errno } => write!(f, "uname failed: {}", crate::errno::text(*errno)),
            KmodError::Missing {
                module,
                dir,
                wanted_for,
                needed_by: None,
            } => write!(
                f,
                "{wanted_for} but the image has no {module}.ko under {}; image builders: include it",
                dir.display()
            ),
            KmodError::Missing {
                module,
                dir,
                wanted_for,
                needed_by: Some(parent),
            } => write!(
                f,
                "{wanted_for}, and {parent}.ko needs {module}.ko, but the image has no \
                 {module}.ko under {}; image builders: include it",
                dir.display()
            ),
            KmodError::Compressed { path } => write!(
                f,
                "{} is compressed; guest-init loads only plain .ko files, so the image must \
                 carry it decompressed",
                path.display()
            ),
            KmodError::BadModule { path, why } => {
                write!(f, "{} is not a usable kernel module: {why}", path.display())
            }
            KmodError::TooDeep { module } => {
                write!(f, "the dependencies of {module}.ko nest too deep (a cycle?)")
            }
            KmodError::BadParams { path } => write!(
                f,
                "parameters for {} contain a NUL byte",
                path.display()
            ),
            KmodError::Open { path, errno } => {
                write!(f, "cannot open {}: {}", path.display(), crate::errno::text(*errno))
            }
            KmodError::Load { path, errno } => {
                write!(
                    f,
                    "the kernel refused to load {}: {}",
                    path.display(),
                    crate::errno::text(*errno)
                )?;
                match *errno {
                    Errno::ENOEXEC => write!(f, " (built for another kernel release?)"),
                    Errno::ENOENT => write!(f, " (unknown symbol: a dependency is not loaded?)"),
                    _ => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for KmodError {}

/// Loads one module file with `finit_module(2)`, which takes the file itself, so nothing is
/// read into our memory. A module that is already loaded (EEXIST) counts as success.
pub fn load_module(path: &Path, params: &str) -> Result<(), KmodError> {
    let params = CString::new(params).map_err(|_| KmodError::BadParams {
        path: path.to_path_buf(),
    })?;
    let file = File::open(path).map_err(|e| KmodError::Open {
        path: path.to_path_buf(),
        errno: io_errno(&e),
    })?;
    // SAFETY: finit_module reads the open fd and the NUL-terminated params string, both of
    // which live until the call returns; flags 0 asks for no special behaviour.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            0 as libc::c_int,
        )
    };
    match rc {
        0 => Ok(()),
        _ => match Errno::last() {
            Errno::EEXIST => Ok(()),
            errno => Err(KmodError::Load {
                path: path.to_path_buf(),
                errno,
            }),
        },
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Makes sure the kernel has IPv6: nothing to do if it is built in or already loaded,
/// otherwise loads `ipv6.ko` and its dependencies from `modules_dir/<release>/`
/// (`modules_dir` is normally [`MODULES_DIR`]).
pub fn ensure_ipv6(modules_dir: &Path) -> Result<(), KmodError> {
    if Path::new(IPV6_SYSCTL).exists() {
        return Ok(());
    }
    let dir = modules_dir.join(kernel_release()?);
    for path in with_dependencies(&dir, "ipv6", "the contract uses IPv6")? {
        // Default parameters: whether to accept router advertisements is a sysctl matter.
        load_module(&path, "")?;
    }
    Ok(())
}

/// The running kernel's release, e.g. `6.1.176`, as `uname -r` prints it.
fn kernel_release() -> Result<String, KmodError> {
    let mut uts = std::mem::MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: uname fills the struct we pass; zeroed, it is valid even where uname fails.
    if unsafe { libc::uname(uts.as_mut_ptr()) } != 0 {
        return Err(KmodError::Release {
            errno: Errno::last(),
        });
    }
    // SAFETY: zero-initialised and then filled by the kernel: every field is initialised.
    let uts = unsafe { uts.assume_init() };
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| c.to_ne_bytes()[0])
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Module names treat '-' and '_' alike (`crc-ccitt` vs `crc_ccitt`).
fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// Module files found under a release directory, by normalised name, with whether the file
/// is a plain `.ko` (false: only a compressed file is there; its path is kept for the error).
type Index = BTreeMap<String, (PathBuf, bool)>;

const COMPRESSED: [&str; 3] = [".ko.xz", ".ko.zst", ".ko.gz"];

/// Walks `dir` for `*.ko` (and compressed) files; a release tree is a few levels deep.
fn index_modules(dir: &Path, depth: u32, index: &mut Index) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        // Symlinked directories are not followed: they could loop.
        if kind.is_dir() {
            if depth < 8 {
                index_modules(&path, depth + 1, index);
            }
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".ko") {
            index.insert(normalise(stem), (path, true));
        } else if let Some(stem) = COMPRESSED.iter().find_map(|s| name.strip_suffix(s)) {
            // A plain file of the same module wins over a compressed one.
            index.entry(normalise(stem)).or_insert((path, false));
        }
    }
}

/// The files to load for `module`, dependencies first.
fn with_dependencies(
    dir: &Path,
    module: &str,
    wanted_for: &'static str,
) -> Result<Vec<PathBuf>, KmodError> {
    let mut index = Index::new();
    index_modules(dir, 0, &mut index);
    let mut order = Vec::new();
    let ctx = Lookup {
        dir,
        index: &index,
        wanted_for,
    };
    ctx.visit(module, None, 0, &mut order)?;
    Ok(order)
}

struct Lookup<'a> {
    dir: &'a Path,
    index: &'a Index,
    wanted_for: &'static str,
}

impl Lookup<'_> {
    /// Depth-first: a module's dependencies go into `order` before the module itself.
    fn visit(
        &self,
        module: &str,
        needed_by: Option<&str>,
        depth: u32,
        order: &mut Vec<PathBuf>,
    ) -> Result<(), KmodError> {
        if depth > 16 {
            return Err(KmodError::TooDeep {
                module: module.to_string(),
            });
        }
        let (path, plain) =
            self.index
                .get(&normalise(module))
                .ok_or_else(|| KmodError::Missing {
                    module: module.to_string(),
                    dir: self.dir.to_path_buf(),
                    wanted_for: self.wanted_for,
                    needed_by: needed_by.map(str::to_string),
                })?;
        if !plain {
            return Err(KmodError::Compressed { path: path.clone() });
        }
        if order.contains(path) {
            return Ok(());
        }
        for dep in module_depends(path)? {
            self.visit(&dep, Some(module), depth + 1, order)?;
        }
        order.push(path.clone());
        Ok(())
    }
}

/// The `depends=` list of a module file's `.modinfo` section.
fn module_depends(path: &Path) -> Result<Vec<String>, KmodError> {
    let bad = |why: &str| KmodError::BadModule {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    let bytes = std::fs::read(path).map_err(|e| KmodError::Open {
        path: path.to_path_buf(),
        errno: io_errno(&e),
    })?;
    let modinfo = elf_section(&bytes, b".modinfo").map_err(bad)?;
    let depends = modinfo
        .split(|b| *b == 0)
        .find_map(|entry| entry.strip_prefix(b"depends="))
        .unwrap_or_default();
    Ok(String::from_utf8_lossy(depends)
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect())
}

/// Reads little-endian unsigned integers of 2, 4 or 8 bytes at `at`.
fn le(bytes: &[u8], at: usize, width: usize) -> Option<usize> {
    let field = bytes.get(at..at.checked_add(width)?)?;
    let value = field
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    usize::try_from(value).ok()
}

/// The contents of the section called `name` in a little-endian ELF file (32 or 64 bit: UML
/// exists for i386 and x86_64, both little-endian).
fn elf_section<'a>(bytes: &'a [u8], name: &[u8]) -> Result<&'a [u8], &'static str> {
    if bytes.get(0..4) != Some(b"\x7fELF") {
        return Err("not an ELF file");
    }
    if bytes.get(5) != Some(&1) {
        return Err("not a little-endian ELF file");
    }
    // (e_shoff, e_shentsize, e_shnum, e_shstrndx) and (sh_offset, sh_size) offsets and widths.
    let (shoff, shentsize, shnum, shstrndx, off_at, size_at, w) = match bytes.get(4) {
        Some(1) => (0x20, 0x2e, 0x30, 0x32, 0x10, 0x14, 4),
        Some(2) => (0x28, 0x3a, 0x3c, 0x3e, 0x18, 0x20, 8),
        _ => return Err("unknown ELF class"),
    };
    let short = "truncated ELF header";
    let table = le(bytes, shoff, w).ok_or(short)?;
    let entsize = le(bytes, shentsize, 2).ok_or(short)?;
    let count = le(bytes, shnum, 2).ok_or(short)?;
    let strndx = le(bytes, shstrndx, 2).ok_or(short)?;
    let section = |i: usize| -> Option<(usize, &'a [u8])> {
        let hdr = table.checked_add(i.checked_mul(entsize)?)?;
        let name = le(bytes, hdr, 4)?;
        let offset = le(bytes, hdr + off_at, w)?;
        let size = le(bytes, hdr + size_at, w)?;
        Some((name, bytes.get(offset..offset.checked_add(size)?)?))
    };
    let (_, names) = section(strndx).ok_or("bad section name table")?;
    (0..count)
        .filter_map(section)
        .find(|(n, _)| {
            names
                .get(*n..)
                .and_then(|s| s.split(|b| *b == 0).next())
                .is_some_and(|s| s == name)
        })
        .map(|(_, data)| data)
        .ok_or("no .modinfo section")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's UML modules, when the `user-mode-linux` package is installed here.
    const DEBIAN_UML: &str = "/usr/lib/uml/modules/6.1.176";

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kmod-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A minimal 64-bit ELF file with a `.modinfo` section holding `modinfo`.
    fn fake_module(modinfo: &[u8]) -> Vec<u8> {
        let names = b"\0.shstrtab\0.modinfo\0";
        let names_at = 64;
        let info_at = names_at + names.len();
        let table_at = (info_at + modinfo.len() + 7) & !7;
        let mut f = vec![0u8; table_at];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[0x28..0x30].copy_from_slice(&(table_at as u64).to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        f[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        f[names_at..info_at].copy_from_slice(names);
        f[info_at..info_at + modinfo.len()].copy_from_slice(modinfo);
        let header = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        f.extend(header(0, 0, 0));
        f.extend(header(1, names_at, names.len()));
        f.extend(header(11, info_at, modinfo.len()));
        f
    }

    #[test]
    fn reads_depends_from_a_fake_module() {
        let dir = scratch("fake");
        let path = dir.join("a.ko");
        std::fs::write(&path, fake_module(b"license=GPL\0depends=b,c-d\0name=a\0")).unwrap();
        assert_eq!(module_depends(&path).unwrap(), vec!["b", "c-d"]);
        std::fs::write(&path, fake_module(b"name=a\0depends=\0")).unwrap();
        assert_eq!(module_depends(&path).unwrap(), Vec::<String>::new());
        std::fs::write(&path, b"not an elf").unwrap();
        assert!(matches!(
            module_depends(&path),
            Err(KmodError::BadModule { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_elf_does_not_panic() {
        let full = fake_module(b"depends=x\0");
        for n in 0..full.len() {
            let _ = elf_section(&full[..n], b".modinfo");
        }
    }

    #[test]
    fn dependencies_load_first_and_missing_ones_are_named() {
        let dir = scratch("deps");
        std::fs::create_dir_all(dir.join("kernel/net/ipv6")).unwrap();
        std::fs::create_dir_all(dir.join("kernel/lib")).unwrap();
        let ipv6 = dir.join("kernel/net/ipv6/ipv6.ko");
        std::fs::write(&ipv6, fake_module(b"depends=crc-ccitt\0name=ipv6\0")).unwrap();
        let err = with_dependencies(&dir, "ipv6", "the contract uses IPv6").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the contract uses IPv6, and ipv6.ko needs crc-ccitt.ko, but the image has no \
                 crc-ccitt.ko under {}; image builders: include it",
                dir.display()
            )
        );
        let crc = dir.join("kernel/lib/crc_ccitt.ko");
        std::fs::write(&crc, fake_module(b"name=crc_ccitt\0depends=\0")).unwrap();
        let order = with_dependencies(&dir, "ipv6", "the contract uses IPv6").unwrap();
        assert_eq!(order, vec![crc, ipv6]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_and_compressed_modules() {
        let dir = scratch("missing");
        let err = with_dependencies(&dir, "ipv6", "the contract uses IPv6").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the contract uses IPv6 but the image has no ipv6.ko under {}; image builders: \
                 include it",
                dir.display()
            )
        );
        std::fs::write(dir.join("ipv6.ko.xz"), b"").unwrap();
        let err = with_dependencies(&dir, "ipv6", "the contract uses IPv6").unwrap_err();
        assert!(matches!(err, KmodError::Compressed { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debian_uml_ipv6_needs_crc_ccitt() {
        let dir = Path::new(DEBIAN_UML);
        if !dir.exists() {
            eprintln!("SKIPPED: {DEBIAN_UML} is not installed");
            return;
        }
        let order = with_dependencies(dir, "ipv6", "test").unwrap();
        assert_eq!(
            order,
            vec![
                dir.join("kernel/lib/crc-ccitt.ko"),
                dir.join("kernel/net/ipv6/ipv6.ko")
            ]
        );
    }

    #[test]
    fn loading_a_non_module_fails_naming_the_file() {
        // The kernel parses and rejects the empty file (or we lack CAP_SYS_MODULE): either way
        // nothing is loaded, and the error names the file.
        let dir = scratch("load");
        let path = dir.join("empty.ko");
        std::fs::write(&path, b"").unwrap();
        let err = load_module(&path, "").unwrap_err();
        assert!(matches!(err, KmodError::Load { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        let missing = load_module(&dir.join("absent.ko"), "").unwrap_err();
        assert!(matches!(
            missing,
            KmodError::Open {
                errno: Errno::ENOENT,
                ..
            }
        ));
        assert!(matches!(
            load_module(&path, "a\0b"),
            Err(KmodError::BadParams { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn release_is_what_uname_says() {
        let r = kernel_release().unwrap();
        let proc = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(r, proc.trim());
    }
}
