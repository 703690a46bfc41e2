//! Packages from Debian's archive, never from the host: apt runs with a private state and
//! cache (an empty dpkg status file, its own package lists, no host preferences) on the
//! host's sources and keyring, resolves the closure of the recipe's packages, and downloads
//! the `.deb` files. Each file is checked against the lock's SHA-256 and kept in the cache
//! by that digest (`<cache>/debs/<sha256>.deb`), so a build whose lock is all cached
//! touches neither apt nor the network.
//!
//! The host's dpkg database (`/var/lib/dpkg`) and its installed files are never read.

use crate::lock::{Lock, Locked};
use rootfs::Error;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where downloaded packages and apt's private state are kept unless `IMAGE_BUILDER_CACHE`
/// or `--cache-dir` says otherwise (outside the clone, so CI re-runs do not download again).
pub const DEFAULT_CACHE: &str = "/var/cache/image-builder";

/// `$IMAGE_BUILDER_CACHE`, else [`DEFAULT_CACHE`].
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("IMAGE_BUILDER_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

/// The cache: `debs/` by SHA-256, `apt/` apt's private state and lists.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// Holds the cache's lock (apt's private state is shared by concurrent builds).
/// The file is never read: holding it open holds the lock.
pub(crate) struct Held(#[allow(dead_code)] std::fs::File);

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::one(format!("{what}: {e}"))
}

/// Why the archive step failed: the archive could not be reached (its indexes or a `.deb`
/// could not be fetched; build-image exits 4, as `--outdated` does), or anything else (a
/// package the archive lacks, a changed file, the cache: exit 1).
#[derive(Debug)]
pub enum ArchiveError {
    Unreachable(Error),
    Failed(Error),
}

impl From<Error> for ArchiveError {
    fn from(e: Error) -> ArchiveError {
        ArchiveError::Failed(e)
    }
}

/// Callers that need no kind keep `?` into the image builder's error.
impl From<ArchiveError> for Error {
    fn from(e: ArchiveError) -> Error {
        match e {
            ArchiveError::Unreachable(e) | ArchiveError::Failed(e) => e,
        }
    }
}

impl std::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveError::Unreachable(e) | ArchiveError::Failed(e) => e.fmt(f),
        }
    }
}

/// `$IMAGE_BUILDER_APT_SOURCES`: a sources.list to use instead of the host's sources (a
/// local or loopback mirror, e.g. a test's file: repository); the host's keyring stays.
pub const SOURCES_ENV: &str = "IMAGE_BUILDER_APT_SOURCES";

/// apt's stderr on one line, its control characters escaped (it may quote the archive).
fn apt_said(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    contract::json::printable(&lines.join("; ")).to_string()
}

/// The sources apt reads, for messages.
fn sources_shown() -> String {
    match std::env::var_os(SOURCES_ENV).filter(|s| !s.is_empty()) {
        Some(f) => format!("{SOURCES_ENV}={}", f.to_string_lossy()),
        None => "the host's /etc/apt/sources.list*".into(),
    }
}

fn sources_override() -> Vec<String> {
    match std::env::var_os(SOURCES_ENV).filter(|s| !s.is_empty()) {
        Some(f) => vec![
            format!("Dir::Etc::sourcelist={}", f.to_string_lossy()),
            "Dir::Etc::sourceparts=/nonexistent".into(),
        ],
        None => Vec::new(),
    }
}

impl Cache {
    /// Opens (creating) the cache directory.
    pub fn open(dir: &Path) -> Result<Cache, Error> {
        for d in [
            "debs",
            "apt/lists/partial",
            "apt/archives/partial",
            "apt/prefs.d",
        ] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| {
                Error::one(format!(
                    "the package cache {}: cannot create it ({e}); set IMAGE_BUILDER_CACHE or \
                     --cache-dir to a writable directory",
                    dir.display()
                ))
            })?;
        }
        let status = dir.join("apt/status");
        if !status.exists() {
            std::fs::write(&status, b"").map_err(io(status.display()))?;
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
    }

    /// A cached `.deb` with this SHA-256, if there is one (and it still has that digest).
    pub fn deb(&self, sha256: &str) -> Option<PathBuf> {
        let p = self.dir.join("debs").join(format!("{sha256}.deb"));
        sha256_file(&p).ok().filter(|h| h == sha256).map(|_| p)
    }

    pub(crate) fn lock(&self) -> Result<Held, Error> {
        let path = self.dir.join("apt/lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(path.display()))?;
        // SAFETY: flock on a file descriptor we own; it stays open while `Held` lives.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if r != 0 {
            return Err(Error::one(format!(
                "locking {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            )));
        }
        Ok(Held(f))
    }

    /// apt's options for the private state: empty status, own lists and archives, no host
    /// preferences; the host's sources, keyring and apt.conf stay in use.
    fn apt_options(&self) -> Vec<String> {
        let a = self.dir.join("apt");
        let d = |p: &str| a.join(p).to_string_lossy().into_owned();
        [
            format!("Dir::State={}", d("")),
            format!("Dir::State::Lists={}", d("lists")),
            format!("Dir::State::status={}", d("status")),
            format!("Dir::State::extended_states={}", d("extended_states")),
            format!("Dir::Cache={}", d("")),
            format!("Dir::Cache::archives={}", d("archives")),
            format!("Dir::Etc::Preferences={}", d("prefs")),
            format!("Dir::Etc::PreferencesParts={}", d("prefs.d")),
            "Debug::NoLocking=1".into(),
            "APT::Sandbox::User=root".into(),
            "APT::Install-Recommends=0".into(),
            "APT::Architectures=amd64".into(),
            "APT::Get::AllowUnauthenticated=0".into(),
        ]
        .into_iter()
        .chain(sources_override())
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    pub(crate) fn apt(
        &self,
        tool: &str,
        args: &[String],
        cwd: Option<&Path>,
    ) -> Result<Output, Error> {
        let mut c = Command::new(tool);
        c.args(self.apt_options()).args(args).env("LC_ALL", "C");
        if let Some(d) = cwd {
            c.current_dir(d);
        }
        c.output()
            .map_err(|e| Error::one(format!("running {tool}: {e} (is apt installed?)")))
    }

    fn has_lists(&self) -> bool {
        std::fs::read_dir(self.dir.join("apt/lists"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
            })
            .unwrap_or(false)
    }

    fn update(&self) -> Result<(), ArchiveError> {
        let o = self.apt("apt-get", &["update".into(), "-qq".into()], None)?;
        if o.status.success() && self.has_lists() {
            // When the lists were last refreshed (apt leaves unchanged lists as they were).
            let stamp = self.dir.join("apt/updated");
            std::fs::write(&stamp, b"").map_err(io(stamp.display()))?;
            return Ok(());
        }
        Err(ArchiveError::Unreachable(Error::one(format!(
            "the archive cannot be reached: apt-get update (private state in {}) failed: {}; \
             check the apt sources ({}) and the network to the archive",
            self.dir.join("apt").display(),
            apt_said(&String::from_utf8_lossy(&o.stderr)),
            sources_shown()
        ))))
    }

    /// Whether the package lists are there and were refreshed less than an hour ago.
    fn fresh_lists(&self) -> bool {
        let age = std::fs::metadata(self.dir.join("apt/updated"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        self.has_lists() && age.is_some_and(|a| a < std::time::Duration::from_secs(3600))
    }

    /// Resolves the closure of `requested` in the archive: a new lock. The package lists are
    /// refreshed first when `refresh` is set (`--update-lock`), or when they are missing or
    /// older than an hour.
    pub fn resolve(&self, requested: &[String], refresh: bool) -> Result<Lock, ArchiveError> {
        if requested.is_empty() {
            return Ok(Lock {
                lock_version: crate::lock::LOCK_VERSION,
                requested: Vec::new(),
                packages: Vec::new(),
            });
        }
        let _held = self.lock()?;
        if refresh || !self.fresh_lists() {
            self.update()?;
        }
        let mut args: Vec<String> = ["install", "-s", "-qq"].map(String::from).to_vec();
        args.extend(requested.iter().cloned());
        let o = self.apt("apt-get", &args, None)?;
        if !o.status.success() {
            return Err(ArchiveError::Failed(Error::one(format!(
                "apt cannot resolve the packages {}: {}",
                requested.join(", "),
                String::from_utf8_lossy(&o.stderr).trim()
            ))));
        }
        let text = String::from_utf8_lossy(&o.stdout);
        let chosen = parse_simulation(&text);
        let mut show: Vec<String> = vec!["show".into()];
        show.extend(chosen.iter().map(|(n, v)| format!("{n}={v}")));
        let o = self.apt("apt-cache", &show, None)?;
        if !o.status.success() {
            return Err(ArchiveError::Failed(Error::one(format!(
                "apt-cache show: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))));
        }
        let mut packages = parse_records(&String::from_utf8_lossy(&o.stdout), &chosen)?;
        packages.sort();
        Ok(Lock {
            lock_version: crate::lock::LOCK_VERSION,
            requested: requested.to_vec(),
            packages,
        })
    }

    /// Every locked `.deb`, from the cache or downloaded (then checked and cached), by
    /// package name. `lock_file` names the lock in messages.
    pub fn fetch(
        &self,
        lock: &Lock,
        lock_file: &str,
    ) -> Result<BTreeMap<String, PathBuf>, ArchiveError> {
        let mut out = BTreeMap::new();
        let mut missing: Vec<&Locked> = Vec::new();
        for p in &lock.packages {
            match self.deb(&p.sha256) {
                Some(d) => {
                    out.insert(p.package.clone(), d);
                }
                None => missing.push(p),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let _held = self.lock()?;
        if !self.has_lists() {
            self.update()?;
        }
        let work = self.dir.join(format!("download.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(io(work.display()))?;
        let result = self.download(&missing, &work, lock_file);
        let _ = std::fs::remove_dir_all(&work);
        out.extend(result?);
        Ok(out)
    }

    fn download(
        &self,
        wanted: &[&Locked],
        work: &Path,
        lock_file: &str,
    ) -> Result<BTreeMap<String, PathBuf>, ArchiveError> {
        let mut args: Vec<String> = vec!["download".into(), "-qq".into()];
        args.extend(
            wanted
                .iter()
                .map(|p| format!("{}:{}={}", p.package, p.architecture, p.version)),
        );
        let mut o = self.apt("apt-get", &args, Some(work))?;
        if !o.status.success() {
            // Stale lists are the usual cause: refresh once, then say which package is gone.
            self.update()?;
            o = self.apt("apt-get", &args, Some(work))?;
        }
        if !o.status.success() {
            return Err(self.gone(wanted, lock_file, &String::from_utf8_lossy(&o.stderr)));
        }
        let mut by_sha: BTreeMap<String, PathBuf> = BTreeMap::new();
        for e in std::fs::read_dir(work).map_err(io(work.display()))? {
            let p = e.map_err(io(work.display()))?.path();
            by_sha.insert(sha256_file(&p).map_err(io(p.display()))?, p);
        }
        let mut out = BTreeMap::new();
        let mut problems = Vec::new();
        for p in wanted {
            let Some(file) = by_sha.get(&p.sha256) else {
                problems.push(format!(
                    "{lock_file}: package {} {}: the archive's .deb does not have the locked \
                     SHA-256 {}; the archive changed the file, so refresh the lock with \
                     --update-lock (and review the change)",
                    p.package, p.version, p.sha256
                ));
                continue;
            };
            let dest = self.dir.join("debs").join(format!("{}.deb", p.sha256));
            std::fs::rename(file, &dest).map_err(io(dest.display()))?;
            out.insert(p.package.clone(), dest);
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(Error(problems).into())
        }
    }

    /// Which locked versions the archive no longer offers, each named with what it has now;
    /// when its lists still offer them all, the download itself failed: unreachable.
    fn gone(&self, wanted: &[&Locked], lock_file: &str, stderr: &str) -> ArchiveError {
        let mut problems = Vec::new();
        for p in wanted {
            let spec = format!("{}:{}={}", p.package, p.architecture, p.version);
            let shown = self.apt("apt-cache", &["show".into(), "-q".into(), spec], None);
            if shown.is_ok_and(|o| o.status.success() && !o.stdout.is_empty()) {
                continue;
            }
            let offered = self
                .apt("apt-cache", &["madison".into(), p.package.clone()], None)
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_string()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            problems.push(format!(
                "{lock_file}: package {} version {} is no longer in the archive (it offers {}); \
                 rebuild with --update-lock to lock what the archive has now",
                p.package,
                p.version,
                if offered.is_empty() {
                    "no version of it".to_string()
                } else {
                    offered.join(", ")
                }
            ));
        }
        if problems.is_empty() {
            return ArchiveError::Unreachable(Error::one(format!(
                "the archive cannot be reached: apt-get download failed: {}; check the apt \
                 sources ({}) and the network to the archive",
                apt_said(stderr),
                sources_shown()
            )));
        }
        ArchiveError::Failed(Error(problems))
    }
}

/// `Inst NAME (VERSION ARCHIVES [ARCH])` lines of `apt-get install -s`: name → version.
fn parse_simulation(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("Inst ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(version) = version.strip_prefix('(') else {
            continue;
        };
        out.insert(name.to_string(), version.to_string());
    }
    out
}

/// The `apt-cache show` records of the chosen versions (the first record of each).
fn parse_records(text: &str, chosen: &BTreeMap<String, String>) -> Result<Vec<Locked>, Error> {
    let mut out: BTreeMap<String, Locked> = BTreeMap::new();
    for para in text.split("\n\n") {
        let field = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
        };
        let (Some(package), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        if chosen.get(&package) != Some(&version) || out.contains_key(&package) {
            continue;
        }
        let source = field("Source")
            .map(|s| s.split_whitespace().next().unwrap_or_default().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| package.clone());
        let (Some(architecture), Some(sha256)) = (field("Architecture"), field("SHA256")) else {
            return Err(Error::one(format!(
                "apt-cache show {package}={version}: no Architecture or SHA256 field"
            )));
        };
        out.insert(
            package.clone(),
            Locked {
                package,
                version,
                architecture,
                source,
                sha256,
            },
        );
    }
    let absent: Vec<String> = chosen
        .keys()
        .filter(|k| !out.contains_key(*k))
        .cloned()
        .collect();
    if !absent.is_empty() {
        return Err(Error::one(format!(
            "apt-cache show gave no record for {}",
            absent.join(", ")
        )));
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_and_records() {
        let sim = "NOTE: x\nInst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []\n\
                   Inst unbound (1.17.1-2+deb12u3 Debian:12.15/oldstable [amd64])\nConf libc6 (2.36)\n";
        let chosen = parse_simulation(sim);
        assert_eq!(chosen.len(), 2);
        assert_eq!(chosen["libc6"], "2.36-9+deb12u14");
        let records =
            "Package: libc6\nSource: glibc\nVersion: 2.36-9+deb12u14\nArchitecture: amd64\n\
                       SHA256: aa\n\nPackage: unbound\nVersion: 1.17.1-2+deb12u3\n\
                       Architecture: amd64\nSHA256: bb\n\nPackage: unbound\nVersion: 1.0\n\
                       Architecture: amd64\nSHA256: cc\n";
        let r = parse_records(records, &chosen).unwrap();
        assert_eq!(r[0].source, "glibc");
        assert_eq!(r[1].source, "unbound");
        assert_eq!(r[1].sha256, "bb");
        let mut more = chosen.clone();
        more.insert("zz".into(), "1".into());
        assert!(parse_records(records, &more).unwrap_err().0[0].contains("zz"));
    }
}
