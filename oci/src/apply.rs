//! Unpacking an image's layers, in order, into the entries of a root: each layer's files
//! replace the lower layers' at the same path, `.wh.NAME` removes NAME (and what is below it)
//! from the lower layers, `.wh..wh..opq` empties its directory of the lower layers' entries.
//! Every layer is verified as it is read: the blob's digest and size against the manifest, the
//! uncompressed tar's digest against the config's `rootfs.diff_ids`.
//!
//! Hostile input: paths must be UTF-8 without control characters and stay below the root (the
//! ext4 writer stages them on the host and names them in a debugfs script), nothing may sit
//! below a symlink or file, and the whole root is bounded in bytes and entries. Device nodes
//! and FIFOs are left out: guest-init mounts devtmpfs on `/dev`, and the ext4 writer makes none.

use crate::digest::Hashing;
use crate::read::Image;
use crate::Error;
use rootfs::ext4::{Content, Entry};
use rootfs::layout::Layout;
use std::collections::BTreeMap;
use std::io::Read;

/// The most bytes a root may hold (files are held in memory while the root is built).
pub const MAX_ROOT_BYTES: u64 = 2 << 30;
/// The most entries a root may hold.
pub const MAX_ENTRIES: usize = 500_000;

/// The root's entries after all layers.
pub fn layers(img: &Image) -> Result<BTreeMap<String, Entry>, Error> {
    let mut root = BTreeMap::new();
    let mut budget = MAX_ROOT_BYTES;
    for i in 0..img.layers.len() {
        let d = &img.layers[i];
        let gz = d.media_type.ends_with("gzip");
        let what = format!("{}: layers[{i}] ({})", img.reference, d.digest);
        let mut outer = Hashing::new(img.layer_reader(i)?, MAX_ROOT_BYTES);
        let applied = {
            let dec: Box<dyn Read + '_> = if gz {
                Box::new(flate2::read::GzDecoder::new(&mut outer))
            } else {
                Box::new(&mut outer)
            };
            let mut inner = Hashing::new(dec, MAX_ROOT_BYTES);
            let r = apply_tar(&mut root, &mut inner, &mut budget, i);
            r.and_then(|()| inner.finish().map(|(diff, _)| diff))
        };
        // A damaged blob shows first as a tar or gzip error: say it is the digest when it is.
        let (digest, size) = outer.finish().map_err(|e| Error(format!("{what}: {e}")))?;
        if digest != d.digest || size != d.size {
            return Err(Error(format!(
                "{what}: digest mismatch: the blob is {digest} ({size} bytes), the manifest says \
                 {} ({} bytes); the image is corrupt: build or save it again",
                d.digest, d.size
            )));
        }
        let diff = applied.map_err(|e| Error(format!("{what}: {e}")))?;
        let want = &img.config.rootfs.diff_ids[i];
        if &diff != want {
            return Err(Error(format!(
                "{what}: the uncompressed layer is {diff}, the config's rootfs.diff_ids[{i}] says \
                 {want}; the image is corrupt: build or save it again"
            )));
        }
    }
    finish(root)
}

/// Adds missing parent directories and refuses entries below a file or symlink.
pub fn finish(root: BTreeMap<String, Entry>) -> Result<BTreeMap<String, Entry>, Error> {
    let mut plan = Layout {
        entries: root,
        ..Layout::default()
    };
    let mut problems = Vec::new();
    plan.add_parents(&mut problems);
    if !problems.is_empty() {
        return Err(Error(format!(
            "the layers put entries below a file or symlink: {}",
            problems.join("; ")
        )));
    }
    Ok(plan.entries)
}

/// What one layer holds.
#[derive(Default)]
struct Layer {
    entries: BTreeMap<String, Entry>,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
}

/// Applies one layer's tar onto `root`.
pub fn apply_tar(
    root: &mut BTreeMap<String, Entry>,
    tar: impl Read,
    budget: &mut u64,
    index: usize,
) -> Result<(), Error> {
    let layer = read_layer(root, tar, budget, index)?;
    for d in &layer.opaque {
        remove_below(root, d);
    }
    for w in &layer.whiteouts {
        root.remove(w);
        remove_below(root, w);
    }
    for (path, e) in layer.entries {
        if e.content != Content::Dir {
            remove_below(root, &path);
        }
        root.insert(path, e);
    }
    if root.len() > MAX_ENTRIES {
        return Err(Error(format!("more than {MAX_ENTRIES} entries")));
    }
    Ok(())
}

fn read_layer(
    lower: &BTreeMap<String, Entry>,
    tar: impl Read,
    budget: &mut u64,
    index: usize,
) -> Result<Layer, Error> {
    let bad = |e: std::io::Error| Error(format!("not a readable tar ({e})"));
    let mut ar = tar::Archive::new(tar);
    let mut layer = Layer::default();
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let Some(path) = clean_path(&e.path_bytes())? else {
            continue;
        };
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", &path));
        if base == ".wh..wh..opq" {
            layer.opaque.push(dir.to_string());
            continue;
        }
        if let Some(name) = base.strip_prefix(".wh.") {
            layer.whiteouts.push(format!("{dir}/{name}"));
            continue;
        }
        let h = e.header();
        let mode = h.mode().map_err(bad)? & 0o7777;
        let owner = |v: std::io::Result<u64>| -> Result<u32, Error> {
            let v = v.map_err(bad)?;
            u32::try_from(v).map_err(|_| Error(format!("{path}: owner {v} is out of range")))
        };
        let (uid, gid) = (owner(h.uid())?, owner(h.gid())?);
        let content = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = e.size();
                take(budget, size)?;
                // A capacity hint only (`take` bounded the size); read_to_end grows past it.
                let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                e.read_to_end(&mut data).map_err(bad)?;
                Content::Bytes(data)
            }
            tar::EntryType::Directory => Content::Dir,
            tar::EntryType::Symlink => {
                let t = e.link_name_bytes().unwrap_or_default();
                Content::Symlink(clean_text(&t, &path)?)
            }
            tar::EntryType::Link => {
                let t = e.link_name_bytes().unwrap_or_default();
                let target = clean_path(&t)?.unwrap_or_default();
                let found = layer.entries.get(&target).or_else(|| lower.get(&target));
                match found.map(|f| &f.content) {
                    // A copy in memory (and in the ext4 root): it counts against the budget.
                    Some(Content::Bytes(b)) => {
                        take(budget, b.len() as u64)?;
                        Content::Bytes(b.clone())
                    }
                    _ => {
                        return Err(Error(format!(
                            "{path}: hard link to {target}, which is not a file of this or a \
                             lower layer"
                        )))
                    }
                }
            }
            // Devices and FIFOs: see the module comment. Extended headers are read by `tar`.
            _ => continue,
        };
        let origin = format!("layer {index}");
        layer.entries.insert(
            path,
            Entry {
                content,
                mode,
                uid,
                gid,
                origin,
            },
        );
        if layer.entries.len() > MAX_ENTRIES {
            return Err(Error(format!("more than {MAX_ENTRIES} entries")));
        }
    }
    Ok(layer)
}

/// Takes `size` bytes from what the root may still hold.
fn take(budget: &mut u64, size: u64) -> Result<(), Error> {
    *budget = budget.checked_sub(size).ok_or_else(|| {
        Error(format!(
            "the root holds more than {MAX_ROOT_BYTES} bytes of files"
        ))
    })?;
    Ok(())
}

/// Removes what is below `dir` (not `dir` itself); `""` is the root.
fn remove_below(root: &mut BTreeMap<String, Entry>, dir: &str) {
    let prefix = format!("{dir}/");
    let below: Vec<String> = root
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in below {
        root.remove(&k);
    }
}

/// A tar path as an absolute image path (`./usr/bin/` → `/usr/bin`); `None` for the root.
fn clean_path(raw: &[u8]) -> Result<Option<String>, Error> {
    let text = clean_text(raw, "a path")?;
    let mut parts = Vec::new();
    for p in text.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                return Err(Error(format!(
                    "entry '{}' leaves the root ('..'); the layer is not a valid image layer",
                    text.escape_debug()
                )))
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("/{}", parts.join("/"))))
}

/// UTF-8 without control characters.
fn clean_text(raw: &[u8], what: &str) -> Result<String, Error> {
    let s = std::str::from_utf8(raw).map_err(|_| {
        Error(format!(
            "{what}: '{}' is not UTF-8, which the appliance root does not take",
            String::from_utf8_lossy(raw).escape_debug()
        ))
    })?;
    if s.chars().any(char::is_control) {
        return Err(Error(format!(
            "{what}: '{}' contains control characters, which the appliance root does not take",
            s.escape_debug()
        )));
    }
    Ok(s.to_string())
}
