//! Building an image from a recipe: fetch the recipe's Debian packages from the archive (by
//! the lock, [`crate::archive`]) and unpack them into a staging root ([`crate::stage`]), check
//! everything (programs, libraries, files), take the programs and their library closure from
//! that root, add the SBOM and dpkg status entries of the packages used, turn it all into a
//! read-only ext4 image with `mkfs.ext4 -d` (no root, no loop mounts), make it reproducible,
//! and write the manifest and the SBOM beside it (and, with a key, the signature).
//!
//! Nothing is written until every check has passed. The same inputs give a byte-identical
//! image: fixed UUID and directory hash seed, one fixed time for every inode and the
//! superblock (`E2FSPROGS_FAKE_TIME`), owners and times set explicitly with `debugfs`.

use crate::archive::{self, ArchiveError, Cache};
use crate::lock::{self, Lock};
use crate::recipe::{self, Recipe};
use crate::sbom;
use crate::stage::{self, Staged};
use rootfs::closure::{self, Root};
use rootfs::ext4;
pub use rootfs::ext4::{Content, Entry};
pub use rootfs::layout::Layout;
pub use rootfs::{DEFAULT_EPOCH, IPV6_MODULES, UML_MODULES};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The disk tools guest-init runs, and the package of the archive they come from.
pub const DISK_TOOLS: &[&str] = &["/sbin/mke2fs", "/sbin/e2fsck"];
pub const DISK_TOOLS_PACKAGE: &str = "e2fsprogs";

pub use rootfs::Error;

/// How to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// The image to write; the manifest goes to `<output>.manifest.json`.
    pub output: PathBuf,
    /// The static guest-init executable, installed as `/sbin/init`.
    pub init: PathBuf,
    /// The UML kernel's modules for one release (e.g. `/usr/lib/uml/modules/6.1.176`).
    pub modules_dir: PathBuf,
    /// Base of relative `source` paths in the recipe (its directory).
    pub base_dir: PathBuf,
    /// The package cache (downloaded `.deb` files by SHA-256, apt's private state).
    pub cache_dir: PathBuf,
    /// The lock file: read when it exists, written when it does not (or with `update_lock`);
    /// `None` resolves the packages afresh and writes no lock.
    pub lock: Option<PathBuf>,
    /// Resolve the packages in the archive as it is now and rewrite the lock.
    pub update_lock: bool,
    /// Sign the image and manifest with this minisign secret key (`<image>.minisig`).
    pub sign_key: Option<PathBuf>,
    /// The time of every inode and of the file system (seconds since 1970, not 0).
    pub epoch: u64,
    /// The file system UUID (also the directory hash seed); default derived from the name.
    pub uuid: Option<String>,
    /// Also write the image as an OCI image (layout and/or archive); default neither.
    pub oci: crate::oci_out::OciOutput,
}

impl Options {
    /// Options with the defaults: the only release under [`UML_MODULES`] (or `$UML_MODULES`),
    /// `SOURCE_DATE_EPOCH` or [`DEFAULT_EPOCH`].
    pub fn new(output: impl Into<PathBuf>, init: impl Into<PathBuf>) -> Options {
        Options {
            output: output.into(),
            init: init.into(),
            modules_dir: default_modules_dir(),
            base_dir: PathBuf::from("."),
            cache_dir: archive::default_cache_dir(),
            lock: None,
            update_lock: false,
            sign_key: None,
            epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|&e| e > 0)
                .unwrap_or(DEFAULT_EPOCH),
            uuid: None,
            oci: Default::default(),
        }
    }

    /// Where the manifest is written.
    pub fn manifest_path(&self) -> PathBuf {
        appliance::manifest::path_beside(&self.output)
    }
}

/// `$UML_MODULES`, else the newest release directory under [`UML_MODULES`].
pub fn default_modules_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("UML_MODULES").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let mut releases: Vec<PathBuf> = std::fs::read_dir(UML_MODULES)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    releases.sort();
    releases
        .pop()
        .unwrap_or_else(|| Path::new(UML_MODULES).join("6.1.176"))
}

/// The recipe's packages, fetched and unpacked: the image's files come from here.
#[derive(Debug)]
pub struct Sources {
    pub lock: Lock,
    pub staged: Staged,
    /// Where to write the lock once the image is built (a new or updated lock).
    pub write_lock: Option<PathBuf>,
}

/// The packages a recipe asks for: its `packages`, plus e2fsprogs for the disk tools.
pub fn requested_packages(r: &Recipe) -> Vec<String> {
    let mut packages = r.packages.clone();
    if r.wants_disk_tools() && !packages.iter().any(|p| p == DISK_TOOLS_PACKAGE) {
        packages.push(DISK_TOOLS_PACKAGE.to_string());
    }
    packages
}

/// Reads the lock, or resolves the packages in the archive (no lock, or `update_lock`),
/// fetches every `.deb` (cache or archive, SHA-256 checked) and unpacks them. The error says
/// whether the archive could not be reached; `?` turns it into the builder's [`Error`].
pub fn sources(r: &Recipe, opts: &Options) -> Result<Sources, ArchiveError> {
    let requested = requested_packages(r);
    let cache = Cache::open(&opts.cache_dir)?;
    let (lock, write_lock) = match &opts.lock {
        Some(path) if path.exists() && !opts.update_lock => (read_lock(path, &requested)?, None),
        Some(path) => (cache.resolve(&requested, true)?, Some(path.clone())),
        None => (cache.resolve(&requested, opts.update_lock)?, None),
    };
    let shown = opts
        .lock
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(no lock file)".into());
    let debs = cache.fetch(&lock, &shown)?;
    let staged = stage::unpack(&lock, &debs, &std::env::temp_dir())?;
    Ok(Sources {
        lock,
        staged,
        write_lock,
    })
}

fn read_lock(path: &Path, requested: &[String]) -> Result<Lock, Error> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| Error::one(format!("{shown}: {e}")))?;
    let l = lock::parse(&text)
        .map_err(|p| Error(p.0.into_iter().map(|p| format!("{shown}: {p}")).collect()))?;
    let (mut want, mut have) = (requested.to_vec(), l.requested.clone());
    want.sort();
    have.sort();
    if want != have {
        return Err(Error::one(format!(
            "{shown}: the lock was made for the packages [{}], the recipe asks for [{}]; \
             rebuild with --update-lock",
            have.join(", "),
            want.join(", ")
        )));
    }
    Ok(l)
}

fn fixed_uuid(name: &str) -> String {
    // FNV-1a, twice with different offsets: a stable per-name UUID (version 4 layout).
    let fnv = |seed: u64| {
        name.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let (a, b) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142));
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// The user and group files: root first, then the recipe's lines.
fn account_file(first: &str, lines: &[String]) -> Vec<u8> {
    let mut text = String::from(first);
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    text.into_bytes()
}

/// Checks everything and lists what goes into the image, without writing anything. The
/// programs, plugins and libraries come from the unpacked packages of `src`.
pub fn contents(r: &Recipe, opts: &Options, src: &Sources) -> Result<Contents, Error> {
    let mut problems = Vec::new();
    let mut layout = Layout::default();
    builder_entries(r, &mut layout, &mut problems);
    guest_init(opts, &mut layout, &mut problems);
    if r.ipv6 {
        ipv6_modules(opts, &mut layout, &mut problems);
    }
    program_closure(r, src.staged.root.as_path(), &mut layout, &mut problems);
    let (packages, sbom) = add_package_records(r, opts, src, &mut layout, &mut problems);
    recipe_entries(r, opts, &mut layout, &mut problems);
    mount_points(r, &mut layout, &mut problems);
    layout.add_parents(&mut problems);
    if problems.is_empty() {
        Ok(Contents {
            layout,
            packages,
            sbom,
        })
    } else {
        Err(Error(problems))
    }
}

/// An entry owned by root.
fn root_entry(content: Content, mode: u32, origin: &str) -> Entry {
    Entry {
        content,
        mode,
        uid: 0,
        gid: 0,
        origin: origin.to_string(),
    }
}

/// What the builder always writes: guest-init's mount points, /tmp, the resolver links into
/// /run, the account files.
fn builder_entries(r: &Recipe, layout: &mut Layout, problems: &mut Vec<String>) {
    for d in ["/dev", "/proc", "/sys", "/run", "/etc", "/sbin"] {
        layout.dir(
            d,
            0o755,
            "the builder (guest-init's mount points)",
            problems,
        );
    }
    layout.dir("/tmp", 0o1777, "the builder", problems);
    // guest-init writes these under /run (the root is read-only).
    for (link, target) in [
        ("/etc/resolv.conf", "/run/resolv.conf"),
        ("/etc/hosts", "/run/hosts"),
    ] {
        let e = root_entry(Content::Symlink(target.into()), 0o777, "the builder");
        layout.add(link, e, problems);
    }
    for (path, first, lines) in [
        ("/etc/passwd", "root:x:0:0:root:/:/sbin/nologin\n", &r.users),
        ("/etc/group", "root:x:0:\n", &r.groups),
    ] {
        let e = root_entry(
            Content::Bytes(account_file(first, lines)),
            0o644,
            "the builder (users/groups)",
        );
        layout.add(path, e, problems);
    }
}

/// guest-init as /sbin/init: it must be static, the image has no loader for it.
fn guest_init(opts: &Options, layout: &mut Layout, problems: &mut Vec<String>) {
    let init = opts.init.display();
    match std::fs::read(&opts.init) {
        Err(e) => problems.push(format!("--init {init}: cannot read: {e}")),
        Ok(bytes) => match rootfs::elf::parse(&bytes) {
            Ok(d) if d.is_static() => {
                let e = root_entry(
                    Content::Host(opts.init.clone()),
                    0o755,
                    "the builder (guest-init)",
                );
                layout.add("/sbin/init", e, problems);
            }
            Ok(_) => problems.push(format!(
                "--init {init}: guest-init must be statically linked (build it for \
                 x86_64-unknown-linux-musl)"
            )),
            Err(e) => problems.push(format!("--init {init}: {e}")),
        },
    }
}

/// The UML kernel's IPv6 modules, under /lib/modules/<release>.
fn ipv6_modules(opts: &Options, layout: &mut Layout, problems: &mut Vec<String>) {
    let release = opts
        .modules_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for m in IPV6_MODULES {
        let host = opts.modules_dir.join(m);
        if host.is_file() {
            let e = root_entry(Content::Host(host), 0o644, "ipv6");
            layout.add(&format!("/lib/modules/{release}/{m}"), e, problems);
        } else {
            problems.push(format!(
                "ipv6: the kernel module {} does not exist (install user-mode-linux, set \
                 UML_MODULES, or set \"ipv6\": false)",
                host.display()
            ));
        }
    }
}

/// Programs, disk tools and plugins with their libraries, from the unpacked packages.
fn program_closure(r: &Recipe, root: &Path, layout: &mut Layout, problems: &mut Vec<String>) {
    let mut roots: Vec<(String, Root)> = r
        .programs
        .iter()
        .map(|p| (p.clone(), Root::Program))
        .collect();
    if r.wants_disk_tools() {
        roots.extend(DISK_TOOLS.iter().map(|p| (p.to_string(), Root::Program)));
    }
    roots.extend(r.libraries.iter().map(|p| (p.clone(), Root::Plugin)));
    let before = problems.len();
    for (path, _) in &roots {
        if closure::locate(root, path).is_err() {
            problems.push(not_in_packages(r, path));
        }
    }
    if problems.len() == before {
        match closure::resolve(&roots, root) {
            Ok(c) => layout.closure = c,
            Err(p) => problems.extend(p),
        }
    }
    for (path, obj) in &layout.closure.clone() {
        let origin = match &obj.needed_by {
            None => format!("program or library {path}"),
            Some(by) => format!("library of {by}"),
        };
        let mode = if obj.executable { 0o755 } else { 0o644 };
        let e = root_entry(Content::Host(obj.source.clone()), mode, &origin);
        layout.add(path, e, problems);
    }
}

/// A program or library none of the recipe's packages ships, with where to look.
fn not_in_packages(r: &Recipe, path: &str) -> String {
    let hint = if r.packages.is_empty() {
        "; list the Debian package it comes from in `packages`".to_string()
    } else {
        format!(
            "; is it shipped by one of the recipe's packages ({})? `apt-file search \
             {}` tells which package has it",
            r.packages.join(", "),
            Path::new(path)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        )
    };
    format!("{path}: no such file in the recipe's packages as unpacked from the archive{hint}")
}

/// The recipe's own files, directories and symbolic links.
fn recipe_entries(r: &Recipe, opts: &Options, layout: &mut Layout, problems: &mut Vec<String>) {
    for (i, f) in r.files.iter().enumerate() {
        let content = match (&f.content, &f.source) {
            (Some(text), _) => Content::Bytes(text.clone().into_bytes()),
            (None, Some(src)) => {
                let host = opts.base_dir.join(src);
                if !host.is_file() {
                    problems.push(format!(
                        "files[{i}].source: {} is not a readable file",
                        host.display()
                    ));
                }
                Content::Host(host)
            }
            (None, None) => continue,
        };
        let e = Entry {
            content,
            mode: recipe::parse_mode(&f.mode).unwrap_or(0o644),
            uid: f.uid,
            gid: f.gid,
            origin: format!("files[{i}]"),
        };
        layout.add(&f.path, e, problems);
    }
    for (i, d) in r.dirs.iter().enumerate() {
        let e = Entry {
            content: Content::Dir,
            mode: recipe::parse_mode(&d.mode).unwrap_or(0o755),
            uid: d.uid,
            gid: d.gid,
            origin: format!("dirs[{i}]"),
        };
        layout.add(d.path.trim_end_matches('/'), e, problems);
    }
    for (i, s) in r.symlinks.iter().enumerate() {
        let e = root_entry(
            Content::Symlink(s.target.clone()),
            0o777,
            &format!("symlinks[{i}]"),
        );
        layout.add(&s.path, e, problems);
    }
}

/// The manifest's disk and tmpfs mount points: directories, made when the recipe has none.
fn mount_points(r: &Recipe, layout: &mut Layout, problems: &mut Vec<String>) {
    let m = &r.manifest;
    let mounts = m
        .disks
        .iter()
        .map(|d| &d.mount_point)
        .chain(m.tmpfs.iter().map(|t| &t.mount_point));
    for (i, mp) in mounts.enumerate() {
        let mp = mp.trim_end_matches('/');
        match layout.entries.get(mp) {
            Some(e) if e.content != Content::Dir => problems.push(format!(
                "manifest: mount point {mp} is not a directory (made by {})",
                e.origin
            )),
            Some(_) => {}
            None => layout.dir(mp, 0o755, &format!("manifest mount point {i}"), problems),
        }
    }
}

/// The packages the closure took files from, with their licences: the SBOM (in the image at
/// [`sbom::IMAGE_PATH`]), each package's dpkg status entry (`/var/lib/dpkg/status.d/<pkg>`)
/// and its copyright file.
fn add_package_records(
    r: &Recipe,
    opts: &Options,
    src: &Sources,
    layout: &mut Layout,
    problems: &mut Vec<String>,
) -> (Vec<sbom::Package>, String) {
    let mut packages = Vec::new();
    let mut used: BTreeMap<String, ()> = BTreeMap::new();
    for (path, obj) in &layout.closure {
        match src.staged.owner_of(&obj.source) {
            Some(p) => {
                used.insert(p.to_string(), ());
            }
            None => problems.push(format!("{path}: no package of the lock ships it")),
        }
    }
    let file = |content: Content, origin: String| Entry {
        content,
        mode: 0o644,
        uid: 0,
        gid: 0,
        origin,
    };
    for name in used.keys() {
        let Some(locked) = src.staged.packages.get(name) else {
            continue;
        };
        let copyright = src.staged.copyright(name);
        let (license, license_comment) = sbom::license_of(copyright.as_ref().map(|c| c.1.as_str()));
        if let Some((host, _)) = copyright {
            let e = file(Content::Host(host), format!("copyright of {name}"));
            layout.add(&format!("/usr/share/doc/{name}/copyright"), e, problems);
        }
        if let Some(status) = src.staged.status_entry(name) {
            let e = file(
                Content::Bytes(status.into_bytes()),
                format!("dpkg status of {name}"),
            );
            layout.add(&format!("/var/lib/dpkg/status.d/{name}"), e, problems);
        }
        packages.push(sbom::Package {
            locked: locked.clone(),
            license,
            license_comment,
        });
    }
    let seed = archive::hex(&sha2::Sha256::digest(src.lock.to_text().as_bytes())[..8]);
    let doc = sbom::document(&r.name, &packages, opts.epoch, &seed);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    let e = file(
        Content::Bytes(text.clone().into_bytes()),
        "the builder (SBOM)".into(),
    );
    layout.add(sbom::IMAGE_PATH, e, problems);
    (packages, text)
}

/// What goes into the image (its entries and their library closure), with the packages it
/// takes files from and its SBOM.
#[derive(Debug, Clone)]
pub struct Contents {
    pub layout: Layout,
    /// The packages the closure took files from.
    pub packages: Vec<sbom::Package>,
    /// The SBOM (SPDX 2.3 JSON text).
    pub sbom: String,
}

/// `<image>.spdx.json`, the SBOM beside the image.
pub fn sbom_path(image: &Path) -> PathBuf {
    let mut s = image.as_os_str().to_owned();
    s.push(".spdx.json");
    PathBuf::from(s)
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: PathBuf,
    pub manifest: PathBuf,
    /// The SBOM beside the image.
    pub sbom: PathBuf,
    /// The packages the image took files from.
    pub packages: Vec<sbom::Package>,
    /// The digest of image and manifest together ([`appliance::signed`]).
    pub digest: appliance::signed::ImageDigest,
    /// The signature, when signed.
    pub signature: Option<PathBuf>,
    /// The lock written by this build (new or updated), if any.
    pub lock_written: Option<PathBuf>,
    /// Size of the image file in bytes.
    pub size: u64,
    /// Bytes of file content in it.
    pub content_bytes: u64,
    /// Number of entries (files, directories, symlinks).
    pub entries: usize,
    /// The OCI image's digests, when `oci` named an output.
    pub oci: Option<crate::oci_out::Written>,
}

/// Checks the recipe's packages and everything else, then builds the image and writes the
/// manifest beside it.
pub fn build(r: &Recipe, opts: &Options) -> Result<Built, Error> {
    check_epoch(opts)?;
    let src = sources(r, opts)?;
    build_from(r, opts, &src)
}

/// A zero image time is refused before anything is fetched.
pub fn check_epoch(opts: &Options) -> Result<(), Error> {
    if opts.epoch == 0 {
        return Err(Error::one(
            "the image time (SOURCE_DATE_EPOCH / --epoch) must not be 0",
        ));
    }
    Ok(())
}

/// [`build`] from packages already fetched ([`sources`]).
pub fn build_from(r: &Recipe, opts: &Options, src: &Sources) -> Result<Built, Error> {
    let Contents {
        layout,
        packages,
        sbom: sbom_text,
    } = contents(r, opts, src)?;
    let uuid = opts.uuid.clone().unwrap_or_else(|| fixed_uuid(&r.name));
    let fs = ext4::Filesystem {
        label: r.name.clone(),
        uuid,
        epoch: opts.epoch,
        spare_kib: 0,
    };
    let content_bytes = ext4::write(&layout.entries, &opts.output, &fs)?;
    let oci = crate::oci_out::write(r, &layout.entries, opts.epoch, &opts.oci)?;
    let manifest = opts.manifest_path();
    let mut json = serde_json::to_string_pretty(&r.manifest)
        .map_err(|e| Error::one(format!("encoding the manifest: {e}")))?;
    json.push('\n');
    std::fs::write(&manifest, json)
        .map_err(|e| Error::one(format!("writing {}: {e}", manifest.display())))?;
    let sbom = sbom_path(&opts.output);
    std::fs::write(&sbom, &sbom_text)
        .map_err(|e| Error::one(format!("writing {}: {e}", sbom.display())))?;
    let size = std::fs::metadata(&opts.output)
        .map(|m| m.len())
        .map_err(|e| Error::one(format!("{}: {e}", opts.output.display())))?;
    let (digest, signature) = match &opts.sign_key {
        Some(key) => {
            let (d, p) = crate::sign::sign(&opts.output, &manifest, key)?;
            (d, Some(p))
        }
        None => {
            // A signature of an earlier build beside this path no longer fits: remove it.
            let _ = std::fs::remove_file(crate::sign::signature_path(&opts.output));
            (crate::sign::image_digest(&opts.output, &manifest)?, None)
        }
    };
    if let Some(path) = &src.write_lock {
        std::fs::write(path, src.lock.to_text())
            .map_err(|e| Error::one(format!("writing the lock {}: {e}", path.display())))?;
    }
    Ok(Built {
        image: opts.output.clone(),
        manifest,
        sbom,
        packages,
        digest,
        signature,
        lock_written: src.write_lock.clone(),
        size,
        content_bytes,
        entries: layout.entries.len(),
        oci,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let u = fixed_uuid("dns");
        assert_eq!(u, fixed_uuid("dns"));
        assert_ne!(u, fixed_uuid("web"));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(u.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    }
}
