//! The operator's spec of a unit-run appliance (`/etc/host-launch/NAME.json`) with another
//! image, for `upgrade` and `update`: the unit starts whatever that file says, so the image
//! changes there. Written atomically (a temporary file in the same directory with the
//! original's owner and mode, fsync, rename over it, fsync of the directory): systemd's next
//! start and the generator read the old spec or the new one, never half of one. The old bytes
//! are kept beside it as `NAME.json.previous` (not `*.json`: the generator skips it) for a
//! rollback, by `upgrade` itself or by hand.

use crate::error::{Error, IoContext, Result};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the spec's bytes before the change are kept.
pub fn previous(spec: &Path) -> PathBuf {
    let mut name = spec.file_name().unwrap_or_default().to_os_string();
    name.push(".previous");
    spec.with_file_name(name)
}

/// The spec `text` with `image` as its image. A `manifest` it names goes: it described the
/// old image, and the new one's is beside it (as `upgrade` reads it). Keys come out in
/// order, pretty-printed; everything else is kept as it was.
pub fn with_image(text: &[u8], image: &Path) -> Result<Vec<u8>> {
    let mut v = contract::json::parse_value(text)
        .map_err(|e| Error::invalid(format!("the spec is not valid JSON: {e}")))?;
    let Some(o) = v.as_object_mut() else {
        return Err(Error::invalid("the spec is not a JSON object"));
    };
    let image = image.to_str().ok_or_else(|| {
        Error::invalid(format!(
            "image: {} is not UTF-8; give the new image a UTF-8 path",
            image.display()
        ))
    })?;
    o.insert("image".into(), serde_json::Value::String(image.into()));
    o.remove("manifest");
    let mut out =
        serde_json::to_vec_pretty(&v).map_err(|e| Error::host(format!("writing the spec: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// Replaces `path` with `bytes` atomically, keeping its owner and mode.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let meta = std::fs::metadata(path).io_context(|| format!("reading {}", path.display()))?;
    let dir = path
        .parent()
        .ok_or_else(|| Error::host(format!("{}: no directory", path.display())))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(format!(".{}", name.to_string_lossy()));
    let written = write_synced(&tmp, bytes, &meta).and_then(|()| {
        std::fs::rename(&tmp, path).io_context(|| format!("renaming it to {}", path.display()))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", tmp.display())));
    }
    // The rename itself is durable once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .io_context(|| format!("syncing {}", dir.display()))
}

/// A new file with `meta`'s owner and mode holding `bytes`, flushed to the disk.
fn write_synced(tmp: &Path, bytes: &[u8], meta: &std::fs::Metadata) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(meta.mode() & 0o7777)
        .open(tmp)
        .io_context(|| "creating it".to_string())?;
    std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()))
        .io_context(|| "giving it the spec's owner".to_string())?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .io_context(|| "writing it".to_string())
}

/// Points the spec at `image`: the old bytes saved as [`previous`], then the spec replaced;
/// returns the old bytes (for [`replace`] on the way back).
pub fn set_image(spec: &Path, image: &Path) -> Result<Vec<u8>> {
    let before = std::fs::read(spec).io_context(|| format!("reading {}", spec.display()))?;
    let after = with_image(&before, image).map_err(|e| e.context(spec.display()))?;
    let keep = previous(spec);
    std::fs::write(&keep, &before).io_context(|| format!("writing {}", keep.display()))?;
    // A spec that is a symbolic link stays one: the file it points at is replaced.
    let real =
        std::fs::canonicalize(spec).io_context(|| format!("resolving {}", spec.display()))?;
    replace(&real, &after)?;
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_image_changes_the_manifest_goes_the_rest_stays() {
        let text = br#"{"name":"dns1","image":"old.img","manifest":"old.manifest.json",
                        "memory_mib":48,"env":{"A":"1"}}"#;
        let out = with_image(text, Path::new("/srv/new.img")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["image"], "/srv/new.img");
        assert!(v.get("manifest").is_none());
        assert_eq!(
            (v["name"].as_str(), v["memory_mib"].as_u64()),
            (Some("dns1"), Some(48))
        );
        assert_eq!(v["env"]["A"], "1");
        let e = with_image(br#"{"image":"a","image":"b"}"#, Path::new("/n")).unwrap_err();
        assert!(e.message.contains("appears twice"), "{}", e.message);
        assert!(with_image(b"[1]", Path::new("/n")).is_err());
    }

    #[test]
    fn set_image_replaces_in_place_keeping_mode_and_the_old_bytes() {
        let dir = std::env::temp_dir().join(format!("hl-specfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let spec = dir.join("dns1.json");
        let old = b"{\"name\": \"dns1\", \"image\": \"a.img\"}\n";
        std::fs::write(&spec, old).unwrap();
        std::fs::set_permissions(&spec, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = set_image(&spec, Path::new("/i/b.img")).unwrap();
        assert_eq!(before, old);
        assert_eq!(std::fs::read(previous(&spec)).unwrap(), old);
        let now: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&spec).unwrap()).unwrap();
        assert_eq!(now["image"], "/i/b.img");
        let mode = std::fs::metadata(&spec).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        replace(&spec, &before).unwrap();
        assert_eq!(std::fs::read(&spec).unwrap(), old);
        // Nothing else is left in the directory: no temporary file.
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["dns1.json", "dns1.json.previous"]);

        let link = dir.join("dns2.json");
        std::os::unix::fs::symlink(&spec, &link).unwrap();
        set_image(&link, Path::new("/i/c.img")).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let now: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&spec).unwrap()).unwrap();
        assert_eq!(now["image"], "/i/c.img");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
