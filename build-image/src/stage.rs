//! The staging root: the locked `.deb` files unpacked with `dpkg-deb -X` into a private
//! directory (no maintainer scripts run, no dpkg database written), with which package
//! shipped which path and each package's control record. The image's programs and their
//! library closure are taken from this root (`rootfs::closure` looks up under it).

use crate::lock::{Lock, Locked};
use rootfs::closure;
use rootfs::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unpacked packages. The directory is removed on drop.
#[derive(Debug)]
pub struct Staged {
    pub root: PathBuf,
    /// Path in the root (`/usr/sbin/unbound`) → the package that shipped it.
    pub owners: BTreeMap<String, String>,
    /// Package name → its lock entry.
    pub packages: BTreeMap<String, Locked>,
    /// Package name → its control record (`dpkg-deb -f`).
    pub control: BTreeMap<String, String>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn run(c: &mut Command, what: &str) -> Result<Vec<u8>, Error> {
    let o = c
        .output()
        .map_err(|e| Error::one(format!("{what}: {e} (is dpkg installed?)")))?;
    if !o.status.success() {
        return Err(Error::one(format!(
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(o.stdout)
}

/// Unpacks every locked package (from `debs`, by name) into a new directory under `tmp`.
pub fn unpack(lock: &Lock, debs: &BTreeMap<String, PathBuf>, tmp: &Path) -> Result<Staged, Error> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let root = tmp.join(format!("image-staging.{}.{nanos}", std::process::id()));
    std::fs::create_dir_all(&root)
        .map_err(|e| Error::one(format!("creating {}: {e}", root.display())))?;
    let mut s = Staged {
        root,
        owners: BTreeMap::new(),
        packages: BTreeMap::new(),
        control: BTreeMap::new(),
    };
    for p in &lock.packages {
        let deb = debs
            .get(&p.package)
            .ok_or_else(|| Error::one(format!("package {}: no .deb fetched", p.package)))?;
        let what = format!("unpacking {} ({})", p.package, deb.display());
        let listing = run(
            Command::new("dpkg-deb").arg("-X").arg(deb).arg(&s.root),
            &what,
        )?;
        for line in String::from_utf8_lossy(&listing).lines() {
            let path = line.trim_start_matches('.').trim_end_matches('/');
            if !path.is_empty() {
                s.owners.insert(path.to_string(), p.package.clone());
            }
        }
        let control = run(Command::new("dpkg-deb").arg("-f").arg(deb), &what)?;
        s.control.insert(
            p.package.clone(),
            String::from_utf8_lossy(&control).into_owned(),
        );
        s.packages.insert(p.package.clone(), p.clone());
    }
    Ok(s)
}

impl Staged {
    /// The package that shipped a file of the root (given as a host path under the root).
    pub fn owner_of(&self, host: &Path) -> Option<&str> {
        let rel = host.strip_prefix(&self.root).ok()?;
        let key = format!("/{}", rel.to_string_lossy());
        self.owners.get(&key).map(String::as_str)
    }

    /// `/usr/share/doc/PKG/copyright` in the root (doc directories may be links to another
    /// package's), if the package has one.
    pub fn copyright(&self, package: &str) -> Option<(PathBuf, String)> {
        let guest = format!("/usr/share/doc/{package}/copyright");
        let host = closure::locate(&self.root, &guest).ok()?;
        let bytes = std::fs::read(&host).ok()?;
        // Bounded: a copyright file is text of some kilobytes; a huge one is not parsed.
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 20)]).into_owned();
        Some((host, text))
    }

    /// The dpkg status entry of a package (`/var/lib/dpkg/status.d/<pkg>`, as distroless
    /// images have): its control record with `Status: install ok installed` after `Package`.
    pub fn status_entry(&self, package: &str) -> Option<String> {
        let control = self.control.get(package)?;
        let mut out = String::new();
        for line in control.lines() {
            out.push_str(line);
            out.push('\n');
            if line.starts_with("Package:") {
                out.push_str("Status: install ok installed\n");
            }
        }
        Some(out)
    }
}
