//! Whether an executable is static: the `rootfs` crate's ELF reader says whether it names a
//! loader (`PT_INTERP`), which a guest image does not have.

use crate::error::{Error, Result};

/// Whether the ELF64 executable in `bytes` has a program interpreter (`PT_INTERP`), i.e. is
/// dynamically linked. Errors if `bytes` is not a well-formed little-endian ELF64 file.
pub fn elf_has_interpreter(bytes: &[u8]) -> Result<bool> {
    ::rootfs::elf::parse(bytes)
        .map(|d| d.interpreter.is_some())
        .map_err(|e| Error::new("parsing ELF", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_and_static_programs() {
        let sh = std::fs::read("/bin/sh").expect("/bin/sh");
        assert!(elf_has_interpreter(&sh).expect("ELF"));
        let busybox = std::fs::read("/bin/busybox").expect("busybox-static");
        assert!(!elf_has_interpreter(&busybox).expect("ELF"));
        assert!(elf_has_interpreter(b"#!/bin/sh\n").is_err());
    }
}
