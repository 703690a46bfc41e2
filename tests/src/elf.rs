//! Just enough ELF64 parsing to tell whether an executable is static: a dynamically linked
//! one has a `PT_INTERP` program header naming its loader, which a guest image does not have.

use crate::error::{Error, Result};

const PT_INTERP: u32 = 3;

/// Whether the ELF64 executable in `bytes` has a program interpreter (`PT_INTERP`), i.e. is
/// dynamically linked. Errors if `bytes` is not a well-formed little-endian ELF64 file.
pub fn elf_has_interpreter(bytes: &[u8]) -> Result<bool> {
    let bad = |why: &str| Error::new("parsing ELF", why);
    if bytes.get(0..4) != Some(b"\x7fELF".as_slice()) {
        return Err(bad("no ELF magic"));
    }
    if bytes.get(4) != Some(&2) {
        return Err(bad("not a 64-bit ELF file (EI_CLASS is not ELFCLASS64)"));
    }
    if bytes.get(5) != Some(&1) {
        return Err(bad("not a little-endian ELF file"));
    }
    let phoff = u64_at(bytes, 0x20).ok_or_else(|| bad("truncated ELF header"))?;
    let phentsize = u16_at(bytes, 0x36).ok_or_else(|| bad("truncated ELF header"))?;
    let phnum = u16_at(bytes, 0x38).ok_or_else(|| bad("truncated ELF header"))?;
    if phnum > 0 && phentsize < 4 {
        return Err(bad("program header entries are too small"));
    }
    let phoff = usize::try_from(phoff).map_err(|_| bad("program header offset too large"))?;
    for i in 0..usize::from(phnum) {
        let at = i
            .checked_mul(usize::from(phentsize))
            .and_then(|o| o.checked_add(phoff))
            .ok_or_else(|| bad("program header offset overflows"))?;
        let p_type = u32_at(bytes, at)
            .ok_or_else(|| bad("program header table runs past the end of the file"))?;
        if p_type == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header followed by program headers of the given types.
    fn elf(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[0..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 56];
            ph[0..4].copy_from_slice(&t.to_le_bytes());
            b.extend_from_slice(&ph);
        }
        b
    }

    #[test]
    fn synthetic_headers() {
        assert!(!elf_has_interpreter(&elf(&[])).unwrap());
        assert!(!elf_has_interpreter(&elf(&[1, 1, 2])).unwrap());
        assert!(elf_has_interpreter(&elf(&[6, PT_INTERP, 1])).unwrap());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(elf_has_interpreter(b"").is_err());
        assert!(elf_has_interpreter(b"#!/bin/sh\n").is_err());
        let mut truncated = elf(&[1, 3]);
        truncated.truncate(64 + 56 + 2);
        assert!(elf_has_interpreter(&truncated).is_err());
        let mut elf32 = elf(&[]);
        elf32[4] = 1;
        assert!(elf_has_interpreter(&elf32).is_err());
        let mut far = elf(&[1]);
        far[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(elf_has_interpreter(&far).is_err());
    }

    #[test]
    fn this_test_binary_is_dynamic() {
        // Test binaries for the host's gnu target are dynamically linked.
        let me = std::fs::read("/proc/self/exe").unwrap();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(elf_has_interpreter(&me).unwrap());
        }
    }
}
