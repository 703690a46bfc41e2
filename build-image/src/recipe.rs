//! The recipe: what goes into an appliance image. Parsed strictly (unknown fields are errors,
//! reported with their JSON path), then checked as a whole by [`check`], which reports every
//! problem at once. Pure: no I/O.

use appliance::manifest::Manifest;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The recipe version these types describe.
pub const RECIPE_VERSION: u32 = 1;

/// Everything the builder needs to know to build one appliance image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Always 1 for this version of the recipe format.
    pub recipe_version: u32,
    /// Short name of the image, e.g. `dns`; used as the ext4 volume label (at most 16 bytes).
    pub name: String,
    /// Debian packages the programs and libraries come from. The builder fetches them and
    /// their dependencies from Debian's archive as the lock beside the recipe says
    /// (`RECIPE.lock.json`) and unpacks them into a staging root; nothing comes from the
    /// host's installed packages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Executables to copy, by absolute path in their package (the same path in the image),
    /// each with the shared libraries it needs (`DT_NEEDED`, recursively) and its dynamic
    /// loader, all taken from the unpacked packages.
    pub programs: Vec<String>,
    /// Shared objects the programs load at run time with `dlopen` (plugins such as rsyslog's
    /// `imudp.so`), by absolute path in their package (the same path in the image), with their
    /// own libraries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<String>,
    /// Files the image ships (configuration, content).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
    /// Directories to create (mount points, empty state directories). The mount points of
    /// the manifest's disks and tmpfs are created without being listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirEntry>,
    /// Symbolic links to create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symlinks: Vec<SymlinkEntry>,
    /// Lines of `/etc/passwd` (`name:x:uid:gid:gecos:home:shell`); `root` is always there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Lines of `/etc/group` (`name:x:gid:members`); `root` is always there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Ship the UML kernel's IPv6 modules (`ipv6.ko` and `crc-ccitt.ko`, about 2.7 MB) so
    /// guest-init can load them for IPv6 addresses; default true.
    #[serde(default = "default_true")]
    pub ipv6: bool,
    /// Ship `/sbin/mke2fs` and `/sbin/e2fsck` (and their libraries) so guest-init can format
    /// a blank data disk and check one before mounting it. Default: when the manifest
    /// declares a disk with an ext2/3/4 file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_tools: Option<bool>,
    /// The manifest written beside the image as `<image>.manifest.json`: the default service
    /// (argv, user, capabilities, readiness), the data disks it expects and its ports. Its
    /// format is the appliance crate's (`appliance/schema/manifest-v1.schema.json`).
    pub manifest: Manifest,
}

fn default_true() -> bool {
    true
}

/// A file in the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Absolute path in the image.
    pub path: String,
    /// The file's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A host file to copy instead, absolute or relative to the recipe's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Octal permissions, e.g. `"0644"` (the default).
    #[serde(default = "default_file_mode")]
    pub mode: String,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

fn default_file_mode() -> String {
    "0644".to_string()
}

/// A directory in the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirEntry {
    /// Absolute path in the image.
    pub path: String,
    /// Octal permissions, e.g. `"0755"` (the default).
    #[serde(default = "default_dir_mode")]
    pub mode: String,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

fn default_dir_mode() -> String {
    "0755".to_string()
}

/// A symbolic link in the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SymlinkEntry {
    /// Absolute path of the link in the image.
    pub path: String,
    /// What it points to (not checked: it may point into /run, which exists only at run time).
    pub target: String,
}

/// Parses a recipe from JSON text: syntax, version, shape (with the JSON path of the first
/// problem), then [`check`] (every problem, one per line).
pub fn parse(text: &[u8]) -> Result<Recipe, Problems> {
    let value = contract::json::parse_value(text).map_err(|e| Problems::one(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| Problems::one("(top level): the recipe must be a JSON object"))?;
    match obj.get("recipe_version") {
        None => {
            return Err(Problems::one(
                "recipe_version: missing (this builder reads version 1)",
            ))
        }
        Some(v) if v.as_u64() == Some(u64::from(RECIPE_VERSION)) => {}
        Some(v) => {
            return Err(Problems::one(format!(
                "recipe_version: {v} is not supported; this builder reads version {RECIPE_VERSION}"
            )))
        }
    }
    let recipe: Recipe = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "(top level)".into()
        } else {
            path
        };
        Problems::one(format!("{path}: {}", e.into_inner()))
    })?;
    check(&recipe)?;
    Ok(recipe)
}

/// Why a path cannot be an entry of the image ([`check_abs_path`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("'{0}' is not an absolute path")]
    NotAbsolute(String),
    #[error("'{0}' contains a NUL byte")]
    Nul(String),
    #[error("'/' cannot be an entry")]
    Root,
    #[error("'{0}' is not normalised (empty, '.' or '..' components)")]
    NotNormalised(String),
}

/// An absolute, normalised path: starts with '/', no empty, `.` or `..` components, no NUL.
pub fn check_abs_path(p: &str) -> Result<(), PathError> {
    if !p.starts_with('/') {
        return Err(PathError::NotAbsolute(p.into()));
    }
    if p.contains('\0') {
        return Err(PathError::Nul(p.into()));
    }
    if p == "/" {
        return Err(PathError::Root);
    }
    let rest = p.trim_start_matches('/').trim_end_matches('/');
    if rest
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(PathError::NotNormalised(p.into()));
    }
    Ok(())
}

/// A mode that is not 3 or 4 octal digits ([`parse_mode`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an octal mode of 3 or 4 digits, e.g. \"0644\"")]
pub struct ModeError(String);

/// Parses an octal mode such as `"0644"` or `"1777"`.
pub fn parse_mode(mode: &str) -> Result<u32, ModeError> {
    let ok = (3..=4).contains(&mode.len()) && mode.chars().all(|c| ('0'..='7').contains(&c));
    if !ok {
        return Err(ModeError(mode.into()));
    }
    // Three or four octal digits always parse; the error cannot happen after the check.
    u32::from_str_radix(mode, 8).map_err(|_| ModeError(mode.into()))
}

/// A name that is not a Debian package name ([`check_package`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a Debian package name")]
pub struct PackageNameError(String);

/// A Debian package name (policy §5.6.1): lowercase letters, digits, `+ - .`, at least two
/// characters, starting with a letter or digit; an `:arch` qualifier is allowed.
pub fn check_package(name: &str) -> Result<(), PackageNameError> {
    let base = name.split_once(':').map_or(name, |(b, _)| b);
    let ok = base.len() >= 2
        && base.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && base
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(PackageNameError(name.into()))
    }
}

/// Why a `users` or `groups` line is refused ([`check_account_line`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountLineError {
    #[error("'{line}' has {found} ':'-separated fields, expected {expected}")]
    Fields {
        line: String,
        found: usize,
        expected: usize,
    },
    #[error("'{0}' is not a user or group name")]
    Name(String),
    #[error("'{field}' in '{line}' is not a numeric id")]
    Id { field: String, line: String },
    #[error("'{field}' in '{line}' is not a numeric group id")]
    GroupId { field: String, line: String },
}

/// The fields of a passwd (7) or group (4) line, checked: a name, a numeric id.
fn check_account_line(line: &str, fields: usize) -> Result<(String, u32), AccountLineError> {
    let parts: Vec<&str> = line.split(':').collect();
    if parts.len() != fields {
        return Err(AccountLineError::Fields {
            line: line.into(),
            found: parts.len(),
            expected: fields,
        });
    }
    let name = parts[0];
    let name_ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !name.starts_with('-');
    if !name_ok {
        return Err(AccountLineError::Name(name.into()));
    }
    let id = parts[2].parse::<u32>().map_err(|_| AccountLineError::Id {
        field: parts[2].into(),
        line: line.into(),
    })?;
    if fields == 7 {
        parts[3]
            .parse::<u32>()
            .map_err(|_| AccountLineError::GroupId {
                field: parts[3].into(),
                line: line.into(),
            })?;
    }
    Ok((name.to_string(), id))
}

/// Every problem of a recipe, one line each, starting with its JSON path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub(crate) fn one(line: impl Into<String>) -> Problems {
        Problems(vec![line.into()])
    }

    fn add(&mut self, at: impl std::fmt::Display, what: impl std::fmt::Display) {
        self.0.push(format!("{at}: {what}"));
    }
}

/// The lines, as a slice (tests and callers index and count them).
impl std::ops::Deref for Problems {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Problems {}

/// Every problem in a parsed recipe, one line each, starting with its JSON path.
pub fn check(r: &Recipe) -> Result<(), Problems> {
    let mut p = Problems::default();
    check_name(&r.name, &mut p);
    for (i, pkg) in r.packages.iter().enumerate() {
        if let Err(e) = check_package(pkg) {
            p.add(format!("packages[{i}]"), e);
        }
    }
    if r.programs.is_empty() {
        p.add("programs", "at least one program is needed (the service)");
    }
    check_entries(r, &mut p);
    check_accounts(&r.users, Account::User, &mut p);
    check_accounts(&r.groups, Account::Group, &mut p);
    check_manifest(r, &mut p);
    if p.is_empty() {
        p.0.extend(check_manifest_as_contract(&r.manifest));
    }
    if p.is_empty() {
        Ok(())
    } else {
        Err(p)
    }
}

fn check_name(name: &str, p: &mut Problems) {
    let ok = !name.is_empty()
        && name.len() <= 16
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        p.add(
            "name",
            format!("'{name}' is not an image name: 1 to 16 letters, digits, '-' or '_'"),
        );
    }
}

/// Every path the recipe puts into the image, to find duplicates.
#[derive(Default)]
struct Claimed(BTreeSet<String>);

impl Claimed {
    fn claim(&mut self, at: String, path: &str, p: &mut Problems) {
        if let Err(e) = check_abs_path(path) {
            p.add(at, e);
        } else if !self.0.insert(path.trim_end_matches('/').to_string()) {
            p.add(at, format!("'{path}' is already in the recipe"));
        }
    }
}

/// The entries: programs, libraries, files, dirs and symlinks, each path once.
fn check_entries(r: &Recipe, p: &mut Problems) {
    let mut claimed = Claimed::default();
    for (i, prog) in r.programs.iter().enumerate() {
        claimed.claim(format!("programs[{i}]"), prog, p);
    }
    for (i, lib) in r.libraries.iter().enumerate() {
        claimed.claim(format!("libraries[{i}]"), lib, p);
    }
    for (i, f) in r.files.iter().enumerate() {
        claimed.claim(format!("files[{i}].path"), &f.path, p);
        check_file(i, f, p);
    }
    for (i, d) in r.dirs.iter().enumerate() {
        claimed.claim(format!("dirs[{i}].path"), &d.path, p);
        if let Err(e) = parse_mode(&d.mode) {
            p.add(format!("dirs[{i}].mode"), e);
        }
    }
    for (i, s) in r.symlinks.iter().enumerate() {
        claimed.claim(format!("symlinks[{i}].path"), &s.path, p);
        if s.target.is_empty() || s.target.contains('\0') {
            p.add(format!("symlinks[{i}].target"), "must be a non-empty path");
        }
    }
}

fn check_file(i: usize, f: &FileEntry, p: &mut Problems) {
    if let Err(e) = parse_mode(&f.mode) {
        p.add(format!("files[{i}].mode"), e);
    }
    match (&f.content, &f.source) {
        (Some(_), None) | (None, Some(_)) => {}
        _ => p.add(
            format!("files[{i}]"),
            "give exactly one of `content` and `source`",
        ),
    }
    if matches!(f.path.as_str(), "/etc/passwd" | "/etc/group" | "/sbin/init") {
        p.add(
            format!("files[{i}].path"),
            format!(
                "{} is written by the builder (use `users`/`groups` for accounts)",
                f.path
            ),
        );
    }
}

/// A `users` (passwd) or `groups` (group) list.
#[derive(Clone, Copy)]
enum Account {
    User,
    Group,
}

impl Account {
    /// The list's name, the word for one entry, the fields of a line.
    fn words(self) -> (&'static str, &'static str, usize) {
        match self {
            Account::User => ("users", "user", 7),
            Account::Group => ("groups", "group", 4),
        }
    }
}

fn check_accounts(lines: &[String], kind: Account, p: &mut Problems) {
    let (list, one, fields) = kind.words();
    let mut names = BTreeSet::from(["root".to_string()]);
    for (i, line) in lines.iter().enumerate() {
        match check_account_line(line, fields) {
            Ok((name, _)) if !names.insert(name.clone()) => p.add(
                format!("{list}[{i}]"),
                format!("{one} '{name}' is defined twice"),
            ),
            Ok(_) => {}
            Err(e) => p.add(format!("{list}[{i}]"), e),
        }
    }
}

/// The manifest: a contract version guest-init speaks, a service the recipe ships, mount
/// points, the class's rules.
fn check_manifest(r: &Recipe, p: &mut Problems) {
    let m = &r.manifest;
    check_contract_version(m, p);
    let shipped =
        |path: &String| r.programs.contains(path) || r.symlinks.iter().any(|s| &s.path == path);
    match m.service.argv.first() {
        None => p.add("manifest.service.argv", "must name the program to run"),
        Some(argv0) if !shipped(argv0) => p.add(
            "manifest.service.argv[0]",
            format!("'{argv0}' is not one of the recipe's programs"),
        ),
        Some(_) => {}
    }
    // A quiesce program the image lacks would fail every snapshot's quiesce.
    let quiesce0 = m.service.quiesce.as_ref().and_then(|q| q.argv.first());
    if let Some(q0) = quiesce0.filter(|q0| !shipped(q0)) {
        p.add(
            "manifest.service.quiesce.argv[0]",
            format!("'{q0}' is not one of the recipe's programs; add it to `programs`"),
        );
    }
    for (i, d) in m.disks.iter().enumerate() {
        if let Err(e) = check_abs_path(&d.mount_point) {
            p.add(format!("manifest.disks[{i}].mount_point"), e);
        }
    }
    for (i, t) in m.tmpfs.iter().enumerate() {
        if let Err(e) = check_abs_path(&t.mount_point) {
            p.add(format!("manifest.tmpfs[{i}].mount_point"), e);
        }
    }
    if let Err(e) = appliance::class::check_manifest(m) {
        p.0.extend(e.0.iter().map(|l| format!("manifest.{l}")));
    }
}

fn check_contract_version(m: &Manifest, p: &mut Problems) {
    if !contract::speaks(m.contract_version) {
        p.add(
            "manifest.contract_version",
            format!(
                "{} is not a contract version guest-init speaks ({} to {})",
                m.contract_version,
                contract::OLDEST_VERSION,
                contract::VERSION
            ),
        );
    } else if m.contract_version < contract::RLIMITS_SINCE && !m.service.rlimits.is_empty() {
        p.add(
            "manifest.service.rlimits",
            format!(
                "resource limits need contract version {0}; declare \"contract_version\": {0}",
                contract::RLIMITS_SINCE
            ),
        );
    }
}

/// What host-launch would make of the manifest with the simplest spec (one file per declared
/// disk, no network): the contract guest-init gets must be valid, so a manifest that
/// guest-init would refuse (e.g. a tmpfs on /tmp, a bad capability name) fails the build.
fn check_manifest_as_contract(m: &Manifest) -> Vec<String> {
    let disks: Vec<serde_json::Value> = (0..m.disks.len())
        .map(|i| serde_json::json!({ "file": format!("disk{i}.img") }))
        .collect();
    let spec = serde_json::json!({ "name": "image", "image": "image.img", "disks": disks });
    let spec = match appliance::spec::parse(spec.to_string().as_bytes()) {
        Ok(s) => s,
        Err(e) => return e.into_iter().map(|l| format!("manifest: {l}")).collect(),
    };
    let merged = match appliance::merge::merge(&spec, m) {
        Ok(merged) => merged,
        Err(p) => return p.0.iter().map(|p| format!("manifest: {p}")).collect(),
    };
    match contract::validate(&merged.contract) {
        Ok(()) => Vec::new(),
        Err(p) => {
            p.0.iter()
                .map(|p| format!("manifest (as the contract guest-init gets): {p}"))
                .collect()
        }
    }
}

impl Recipe {
    /// Whether the image gets mke2fs and e2fsck: `disk_tools`, or else whether the manifest
    /// declares an ext2/3/4 disk.
    pub fn wants_disk_tools(&self) -> bool {
        self.disk_tools.unwrap_or_else(|| {
            self.manifest
                .disks
                .iter()
                .any(|d| matches!(d.fs_type.as_str(), "ext2" | "ext3" | "ext4"))
        })
    }
}

/// The JSON Schema of recipe v1, generated from the types.
pub fn schema_v1_text() -> String {
    let mut schema = schemars::schema_for!(Recipe);
    schema.schema.metadata().id = Some(SCHEMA_ID.to_string());
    // A schema is plain data; serialising it cannot fail.
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// File name (and `$id`) of the recipe schema in `build-image/schema/`.
pub const SCHEMA_ID: &str = "recipe-v1.schema.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_modes() {
        assert!(check_abs_path("/etc/x").is_ok());
        assert!(check_abs_path("etc/x").is_err());
        assert!(check_abs_path("/etc/../x").is_err());
        assert!(check_abs_path("/").is_err());
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("1777"), Ok(0o1777));
        assert!(parse_mode("644x").is_err());
        assert!(parse_mode("99").is_err());
    }

    #[test]
    fn package_names() {
        assert!(check_package("dnsmasq-base").is_ok());
        assert!(check_package("libc6:amd64").is_ok());
        assert!(check_package("g++").is_ok());
        assert!(check_package("Dnsmasq").is_err());
        assert!(check_package("a").is_err());
        assert!(check_package("-x").is_err());
    }

    #[test]
    fn account_lines() {
        assert!(check_account_line("dns:x:101:101::/:/bin/false", 7).is_ok());
        assert!(check_account_line("dns:x:101:", 4).is_ok());
        assert!(check_account_line("dns:x:abc:", 4).is_err());
        assert!(check_account_line("dns:x:101", 4).is_err());
    }
}
