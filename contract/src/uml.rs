//! What User-Mode Linux itself imposes on a VM, in one place: the names of its block devices,
//! how many there are, which file paths its command line can carry and how long that command
//! line may be. The host (appliance's merge, vmm's command line) and the guest's contract both
//! speak of `/dev/ubdX`, so these facts live in the lowest crate they share. Pure, like the
//! rest of this crate.
//!
//! Source: `arch/um/drivers/ubd_kern.c` and `arch/um/os-Linux/main.c` of Linux 6.1 (Debian's
//! `linux-source-6.1`, the project's kernel and Debian's `linux.uml`).

use std::fmt;

/// Block devices UML attaches: `ubd0` to `ubd15` (`MAX_DEV` in `ubd_kern.c`; `ubd16=` is
/// refused with "Device number out of range").
pub const MAX_UBD: usize = 16;

/// Size of User-Mode Linux's command line buffer, separators and terminating NUL included.
///
/// Measured with Debian's `linux.uml` 6.1: it aborts with "add_arg: Too many command line
/// arguments!" when the joined argv exceeds 4096 bytes, and the kernel keeps at most
/// `COMMAND_LINE_SIZE - 1` characters. Everything on the command line must therefore fit in
/// `COMMAND_LINE_SIZE - 1` bytes.
pub const COMMAND_LINE_SIZE: usize = 4096;

/// The guest device of ubd number `n`: 0 → `/dev/ubda`, 1 → `/dev/ubdb`, ...
pub fn ubd_device(n: usize) -> String {
    // Only 0..MAX_UBD exist, so one letter always suffices; the modulo keeps it a letter.
    let letter = b'a' + u8::try_from(n % 26).unwrap_or(0);
    format!("/dev/ubd{}", char::from(letter))
}

/// The ubd number of a guest device `/dev/ubdX`, if it names one.
pub fn ubd_number(device: &str) -> Option<usize> {
    let rest = device.strip_prefix("/dev/ubd")?;
    let mut chars = rest.chars();
    let c = chars.next()?;
    if chars.next().is_some() || !c.is_ascii_lowercase() {
        return None;
    }
    Some(usize::from(u8::try_from(c).ok()? - b'a'))
}

/// Why a file path cannot go on UML's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Empty,
    /// The path, holding a character UML splits at.
    Separator(String),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Empty => f.write_str("is empty; give a file path"),
            PathError::Separator(p) => write!(
                f,
                "'{p}' contains ',', ':' or whitespace, which the UML command line cannot \
                 carry; rename or move the file"
            ),
        }
    }
}

impl std::error::Error for PathError {}

/// A file path UML can take as the file of `ubdN=` (the root image, a data disk, the config
/// device): not empty, and none of the characters UML splits at.
///
/// - `,` and `:`: after the first `=` of `ubdN[flags]=`, `ubd_setup_common` cuts the value
///   with `strsep(&str, ",:")` into file, backing (copy-on-write) file and serial, so either
///   character ends the file name.
/// - whitespace: UML joins its argv with spaces into one command line that the kernel splits
///   again at whitespace.
/// - NUL: no argv string can hold one.
///
/// `=` is allowed: the kernel splits a parameter at its first `=` only (`ubd1` / the rest),
///   and `ubd_setup_common` takes everything after the flags' `=` up to `,` or `:` as the
///   file, so `ubd1=/srv/a=b.img` attaches `/srv/a=b.img`.
pub fn check_path(p: &str) -> Result<(), PathError> {
    if p.is_empty() {
        return Err(PathError::Empty);
    }
    if p.contains([',', ':', '\0']) || p.contains(char::is_whitespace) {
        return Err(PathError::Separator(p.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_by_letter() {
        assert_eq!(ubd_device(0), "/dev/ubda");
        assert_eq!(ubd_device(1), "/dev/ubdb");
        assert_eq!(ubd_device(MAX_UBD - 1), "/dev/ubdp");
        for n in 0..MAX_UBD {
            assert_eq!(ubd_number(&ubd_device(n)), Some(n));
        }
    }

    #[test]
    fn only_ubd_devices_have_numbers() {
        assert_eq!(ubd_number("/dev/ubdc"), Some(2));
        assert_eq!(ubd_number("/dev/sda"), None);
        assert_eq!(ubd_number("/dev/ubdbb"), None);
        assert_eq!(ubd_number("/dev/ubdB"), None);
        assert_eq!(ubd_number("/dev/ubd"), None);
    }

    #[test]
    fn paths_with_separators_are_refused() {
        assert_eq!(check_path(""), Err(PathError::Empty));
        for p in ["/a,b", "/a:b", "/a b", "/a\tb", "/a\0b"] {
            assert_eq!(check_path(p), Err(PathError::Separator(p.into())), "{p:?}");
        }
        let m = check_path("/a,b").unwrap_err().to_string();
        assert!(m.contains("'/a,b'") && m.contains("rename or move"), "{m}");
    }

    #[test]
    fn equals_signs_are_taken() {
        assert_eq!(check_path("/srv/a=b.img"), Ok(()));
        assert_eq!(check_path("data/disk.img"), Ok(()));
    }
}
