//! Just enough ELF64 (little-endian) to find what a program or shared object needs at load
//! time: its loader (`PT_INTERP`), its `DT_NEEDED` libraries, its `DT_RUNPATH`/`DT_RPATH`
//! search paths and its `DT_SONAME`.

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// What the dynamic loader needs to know about one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// The program interpreter (dynamic loader), for executables.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` entries, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH` directories (colon-separated in the file).
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` directories.
    pub runpath: Vec<String>,
    pub soname: Option<String>,
    /// The ELF machine (`e_machine`), to refuse libraries of another architecture.
    pub machine: u16,
}

impl Dynamic {
    /// Whether the file has no loader and needs no libraries (a static executable).
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none() && self.needed.is_empty()
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn cstr_at(b: &[u8], at: usize) -> Option<String> {
    let rest = b.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Why bytes are not an ELF64 little-endian file this reader can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file (no ELF magic)")]
    NoMagic,
    #[error("not a little-endian 64-bit ELF file")]
    NotLittleEndian64,
    #[error("truncated ELF header")]
    TruncatedHeader,
    #[error("program header entries are too small")]
    SmallProgramHeaders,
    #[error("program header offset overflows")]
    ProgramHeaderOverflow,
    #[error("program header table runs past the end of the file")]
    ProgramHeadersPastEnd,
    #[error("PT_INTERP offset too large")]
    InterpreterOffset,
    #[error("PT_INTERP runs past the end")]
    InterpreterPastEnd,
    #[error("PT_DYNAMIC offset too large")]
    DynamicOffset,
    #[error("PT_DYNAMIC runs past the end")]
    DynamicPastEnd,
    #[error("the dynamic section has no DT_STRTAB")]
    NoStringTable,
    #[error("DT_STRTAB is not in any loaded segment")]
    StringTableUnmapped,
    #[error("string offset overflows")]
    StringOffsetOverflow,
    #[error("a dynamic string runs past the end")]
    StringPastEnd,
}

struct Phdr {
    p_type: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// Parses the dynamic section of an ELF64 little-endian file.
pub fn parse(bytes: &[u8]) -> Result<Dynamic, ElfError> {
    if bytes.get(0..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NoMagic);
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(ElfError::NotLittleEndian64);
    }
    let machine = u16_at(bytes, 0x12).ok_or(ElfError::TruncatedHeader)?;
    let phdrs = program_headers(bytes)?;
    let mut d = Dynamic {
        machine,
        ..Dynamic::default()
    };
    if let Some(p) = phdrs.iter().find(|p| p.p_type == PT_INTERP) {
        let at = usize::try_from(p.offset).map_err(|_| ElfError::InterpreterOffset)?;
        d.interpreter = Some(cstr_at(bytes, at).ok_or(ElfError::InterpreterPastEnd)?);
    }
    let Some(dynamic) = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) else {
        return Ok(d);
    };
    let entries = dynamic_entries(bytes, dynamic)?;
    let strtab_vaddr = entries
        .iter()
        .find(|(t, _)| *t == DT_STRTAB)
        .map(|(_, v)| *v)
        .ok_or(ElfError::NoStringTable)?;
    // DT_STRTAB is an address: find the PT_LOAD segment that maps it to a file offset.
    let strtab = phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .find(|p| strtab_vaddr >= p.vaddr && strtab_vaddr < p.vaddr.saturating_add(p.filesz))
        .map(|p| strtab_vaddr - p.vaddr + p.offset)
        .ok_or(ElfError::StringTableUnmapped)?;
    let string = |off: u64| -> Result<String, ElfError> {
        let at = strtab
            .checked_add(off)
            .and_then(|a| usize::try_from(a).ok())
            .ok_or(ElfError::StringOffsetOverflow)?;
        cstr_at(bytes, at).ok_or(ElfError::StringPastEnd)
    };
    let split = |s: String| -> Vec<String> {
        s.split(':')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    for (tag, val) in entries {
        match tag {
            DT_NEEDED => d.needed.push(string(val)?),
            DT_SONAME => d.soname = Some(string(val)?),
            DT_RPATH => d.rpath.extend(split(string(val)?)),
            DT_RUNPATH => d.runpath.extend(split(string(val)?)),
            _ => {}
        }
    }
    Ok(d)
}

/// The program headers the ELF header points at.
fn program_headers(bytes: &[u8]) -> Result<Vec<Phdr>, ElfError> {
    let phoff = usize::try_from(u64_at(bytes, 0x20).ok_or(ElfError::TruncatedHeader)?)
        .map_err(|_| ElfError::TruncatedHeader)?;
    let phentsize = usize::from(u16_at(bytes, 0x36).ok_or(ElfError::TruncatedHeader)?);
    let phnum = usize::from(u16_at(bytes, 0x38).ok_or(ElfError::TruncatedHeader)?);
    if phnum > 0 && phentsize < 0x38 {
        return Err(ElfError::SmallProgramHeaders);
    }
    let mut phdrs = Vec::with_capacity(phnum);
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .ok_or(ElfError::ProgramHeaderOverflow)?;
        let bad = ElfError::ProgramHeadersPastEnd;
        phdrs.push(Phdr {
            p_type: u32_at(bytes, at).ok_or(bad)?,
            offset: u64_at(bytes, at + 0x08).ok_or(bad)?,
            vaddr: u64_at(bytes, at + 0x10).ok_or(bad)?,
            filesz: u64_at(bytes, at + 0x20).ok_or(bad)?,
        });
    }
    Ok(phdrs)
}

/// The dynamic section's entries: (tag, value) pairs of u64 until DT_NULL.
fn dynamic_entries(bytes: &[u8], dynamic: &Phdr) -> Result<Vec<(u64, u64)>, ElfError> {
    let mut entries = Vec::new();
    let start = usize::try_from(dynamic.offset).map_err(|_| ElfError::DynamicOffset)?;
    let count = usize::try_from(dynamic.filesz / 16).unwrap_or(0);
    for i in 0..count {
        let at = start + i * 16;
        let tag = u64_at(bytes, at).ok_or(ElfError::DynamicPastEnd)?;
        let val = u64_at(bytes, at + 8).ok_or(ElfError::DynamicPastEnd)?;
        if tag == DT_NULL {
            break;
        }
        entries.push((tag, val));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_elf() {
        assert!(parse(b"#!/bin/sh\n")
            .unwrap_err()
            .to_string()
            .contains("ELF magic"));
        assert!(parse(b"\x7fELF\x01\x01").is_err());
        assert!(parse(b"\x7fELF\x02\x01\x01")
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }

    #[test]
    fn host_libc_and_a_program() {
        // Every Debian system has these; parsing them checks the whole path.
        let sh = parse(&std::fs::read("/bin/sh").unwrap()).unwrap();
        assert_eq!(
            sh.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert!(sh.needed.contains(&"libc.so.6".to_string()), "{sh:?}");
        let libc = parse(&std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap()).unwrap();
        assert_eq!(libc.soname.as_deref(), Some("libc.so.6"));
        assert!(libc.interpreter.is_some() || libc.needed.iter().any(|n| n.starts_with("ld-")));
    }

    #[test]
    fn a_static_program_has_no_loader() {
        // busybox-static, which scripts/setup installs.
        let bb = parse(&std::fs::read("/bin/busybox").unwrap()).unwrap();
        assert!(bb.is_static(), "{bb:?}");
    }
}
