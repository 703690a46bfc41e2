//! Paths the UML command line can carry (the spec's disks and kernel, an image's root).

/// A path UML can take on its command line (no ',', ':' or whitespace, UTF-8, not empty).
pub fn check_uml_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("is empty; give a file path".into());
    }
    if p.contains([',', ':', '=']) || p.contains(char::is_whitespace) || p.contains('\0') {
        return Err(format!(
            "'{p}' contains ',', ':', '=' or whitespace, which the UML command line cannot \
             carry; rename or move the file"
        ));
    }
    Ok(())
}
