//! A bundle's config as an appliance: an operator's [`Spec`] (hostname, network, memory,
//! env, files) and an image [`Manifest`] (the service) that `appliance::merge` turns into
//! the host contract, as host-launch does for its specs. Our own images carry their manifest
//! (podman passes the image's annotations into the bundle); for any other image the
//! manifest is made from `process`. Pure: the caller reads files and the network.

use crate::bundle::{Config, Mount, Process};
use crate::error::{Error, Result};
use appliance::manifest::Manifest;
use appliance::merge::Merged;
use appliance::spec::{NetworkSpec, Spec};
use contract::{File, Restart, RestartPolicy, Route, Service, Tmpfs};
use std::collections::BTreeMap;

/// The annotation (also the image config label) holding our images' manifest.
pub const ANNOTATION_MANIFEST: &str = "org.host-contract.manifest.v1";
/// The annotation that sets the VM's memory in MiB (else the memory limit, else the
/// manifest's least, else [`appliance::spec::DEFAULT_MEMORY_MIB`]).
pub const ANNOTATION_MEMORY: &str = "org.host-contract.memory-mib";
/// The stop signal podman passes from the image config.
pub const ANNOTATION_STOP_SIGNAL: &str = "org.opencontainers.image.stopSignal";

/// Where file bind mounts outside /run are written in the guest (the generated root has a
/// symlink at the mount's destination).
pub const FILES_DIR: &str = "/run/uml-runc/files";

/// Bind-mounted files larger than this are refused (podman's are a few hundred bytes).
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// The guest's network as the container's namespace has it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestNet {
    pub addresses: Vec<String>,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    pub routes: Vec<Route>,
}

/// What the caller read for the translation.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The TAP device and the guest's network, when the container has a network.
    pub net: Option<(String, GuestNet)>,
    /// Content of each bind-mounted file, by the mount's index in `mounts`.
    pub files: BTreeMap<usize, Vec<u8>>,
    /// `process.args[0]` as an absolute path in the image (looked up in its `PATH`).
    pub argv0: String,
    /// The data disks the container's volumes give ([`crate::volume`]).
    pub disks: Vec<appliance::spec::DiskSpec>,
}

/// The appliance of a bundle.
#[derive(Debug, Clone)]
pub struct Translated {
    pub merged: Merged,
    pub memory_mib: u32,
    /// Symlinks the generated root gets: (path, target).
    pub symlinks: Vec<(String, String)>,
    /// Directories the generated root must have (tmpfs mount points).
    pub dirs: Vec<String>,
    /// Settings the VM does not apply, said in the runtime's log.
    pub notes: Vec<String>,
    /// Whether the image is one of ours (its manifest came with it).
    pub own_image: bool,
    /// The guest's anti-spoofing rules (its MAC and addresses are the veth's), when it has a
    /// network; see [`crate::net::connect`].
    pub policy: Option<appliance::netpolicy::Policy>,
}

/// How a mount of the bundle reaches the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountUse {
    /// guest-init mounts its own /proc, /sys, /dev, /dev/pts...
    System,
    /// A regular file's content becomes a contract file.
    File,
    Tmpfs,
    /// A directory at a data path of the image: it holds the data disk's image file
    /// ([`crate::volume`]).
    Volume,
}

/// A data disk the image declares (its manifest's `disks`): where the guest mounts it and
/// the least size the service works with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPath {
    pub mount_point: String,
    pub min_size_mib: Option<u64>,
}

/// The data paths of the bundle's image: its manifest's disks; none for a foreign image.
pub fn data_paths(c: &Config) -> Result<Vec<DataPath>> {
    Ok(own_manifest(c)?
        .map(|m| {
            m.disks
                .iter()
                .map(|d| DataPath {
                    mount_point: d.mount_point.clone(),
                    min_size_mib: d.min_size_mib,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Classifies mount `i`, refusing what cannot reach a VM. `is_file` says whether a source
/// is a regular file (`Some(false)`: it exists and is not); `data_paths` are the image's.
pub fn mount_use(
    i: usize,
    m: &Mount,
    data_paths: &[DataPath],
    is_file: impl Fn(&str) -> Option<bool>,
) -> Result<MountUse> {
    let kind = m.kind.as_deref().unwrap_or("");
    let dest = m.destination.as_str();
    let system = ["/proc", "/sys", "/dev"];
    let under_system = system
        .iter()
        .any(|s| dest == *s || dest.starts_with(&format!("{s}/")));
    if matches!(
        kind,
        "proc" | "sysfs" | "devpts" | "mqueue" | "cgroup" | "cgroup2"
    ) || (under_system && kind != "bind")
    {
        return Ok(MountUse::System);
    }
    if kind == "tmpfs" {
        return Ok(MountUse::Tmpfs);
    }
    let bind = kind == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind");
    let source = m.source.as_deref().unwrap_or("");
    let found = if bind { is_file(source) } else { None };
    if found == Some(true) {
        return Ok(MountUse::File);
    }
    if bind && dest == "/dev/shm" {
        // podman's private shm directory: the guest's /dev is its own.
        return Ok(MountUse::System);
    }
    if found == Some(false) && data_paths.iter().any(|d| d.mount_point == dest) {
        return Ok(MountUse::Volume);
    }
    Err(Error::new(format!(
        "config.json: mounts[{i}]: {kind} mount of {source:?} at {dest:?} cannot reach a VM: a \
         host directory is not shared with the guest; {}",
        volume_fix(data_paths)
    )))
}

/// What to do instead of a directory mount the guest cannot take.
fn volume_fix(data_paths: &[DataPath]) -> String {
    if data_paths.is_empty() {
        return "the image declares no data disk (its manifest's `disks`), so it takes no \
                directory volume; drop the volume, or mount single files (-v FILE:PATH)"
            .into();
    }
    let paths: Vec<&str> = data_paths.iter().map(|d| d.mount_point.as_str()).collect();
    format!(
        "a directory volume becomes the appliance's data disk only at the image's data path \
         ({}), where uml-runc keeps the disk image {} in it; mount it there (-v DIR:{}), or \
         give a block device (--device)",
        paths.join(", "),
        crate::volume::IMAGE_FILE,
        paths[0]
    )
}

/// A bundle translated: contract, memory, what the generated root needs.
pub fn translate(id: &str, c: &Config, inputs: &Inputs) -> Result<Translated> {
    let process = c
        .process
        .as_ref()
        .ok_or_else(|| Error::new("config.json: process: missing; nothing to run"))?;
    let own = own_manifest(c)?;
    let own_image = own.is_some();
    let env = env_map(&process.env)?;
    let mut notes = Vec::new();
    let mut manifest = match own {
        Some(m) => m,
        None => foreign_manifest(c, inputs)?,
    };
    apply_rlimits(process, &mut manifest, &mut notes)?;
    apply_version_3(process, &mut manifest)?;
    if own_image {
        // `podman run IMAGE CMD...` replaces the image's command.
        let args = resolved_args(&process.args, &inputs.argv0);
        if !args.is_empty() && args != manifest.service.argv {
            manifest.service.argv = args;
        }
        apply_user(process, &mut manifest.service);
    }
    check_data_disks(&manifest, &inputs.disks)?;
    let mounted = mounted(c, inputs, &mut manifest)?;
    let memory_mib = memory(c, &manifest)?;
    let spec = spec_of(id, c, inputs, memory_mib, env, mounted.files);
    let merged = appliance::merge::merge(&spec, &manifest)
        .map_err(|p| Error::new(format!("the container as an appliance: {p}")))?;
    let policy = policy(&spec, &manifest, &merged);
    Ok(Translated {
        merged,
        memory_mib,
        symlinks: mounted.symlinks,
        dirs: mounted.dirs,
        notes,
        own_image,
        policy,
    })
}

/// Each data disk the image requires is given by a volume, or the error says how, in
/// podman's terms (the merge would name host-launch's spec fields).
fn check_data_disks(manifest: &Manifest, disks: &[appliance::spec::DiskSpec]) -> Result<()> {
    let missing = manifest.disks.iter().find(|d| {
        d.required
            && !disks
                .iter()
                .any(|g| g.mount_point.as_deref() == Some(d.mount_point.as_str()))
    });
    match missing {
        Some(d) => Err(Error::new(format!(
            "config.json: mounts: the image needs a data disk at {0}, and no volume gives it \
             one; give a directory volume there (podman -v DIR:{0}, a Kubernetes volume \
             mounted at {0}: its disk image is DIR/{1}) or a block device (podman --device \
             DEV:/dev/xvdb, a claim of volumeMode: Block)",
            d.mount_point,
            crate::volume::IMAGE_FILE
        ))),
        None => Ok(()),
    }
}

/// Our image's manifest, when the bundle carries it as an annotation.
fn own_manifest(c: &Config) -> Result<Option<Manifest>> {
    let Some(text) = c.annotations.get(ANNOTATION_MANIFEST) else {
        return Ok(None);
    };
    appliance::manifest::parse(text.as_bytes())
        .map(Some)
        .map_err(|e| {
            Error::new(format!(
                "config.json: annotations.{ANNOTATION_MANIFEST}: the image's manifest: {e}"
            ))
        })
}

/// The manifest of a foreign image: its service from the bundle's process, nothing else.
fn foreign_manifest(c: &Config, inputs: &Inputs) -> Result<Manifest> {
    Ok(Manifest {
        contract_version: contract::VERSION,
        name: None,
        description: None,
        service: foreign_service(c, inputs)?,
        disks: Vec::new(),
        tmpfs: Vec::new(),
        ports: Vec::new(),
        sysctl: BTreeMap::new(),
        extra: None,
        min_memory_mib: None,
        class: None,
    })
}

/// What the bundle's mounts become: contract files (with the links to them), and tmpfs
/// mounts added to the manifest (with their directories).
struct Mounted {
    files: Vec<File>,
    symlinks: Vec<(String, String)>,
    dirs: Vec<String>,
}

fn mounted(c: &Config, inputs: &Inputs, manifest: &mut Manifest) -> Result<Mounted> {
    let mut out = Mounted {
        files: Vec::new(),
        symlinks: Vec::new(),
        dirs: Vec::new(),
    };
    for (i, m) in c.mounts.iter().enumerate() {
        if let Some(content) = inputs.files.get(&i) {
            let (path, link) = file_place(&m.destination);
            if content.len() > MAX_FILE_BYTES {
                return Err(Error::new(format!(
                    "config.json: mounts[{i}]: {} is larger than {MAX_FILE_BYTES} bytes; a bind \
                     mounted file becomes a contract file, which must be small",
                    m.destination
                )));
            }
            out.files.push(contract_file(&path, content));
            if let Some(l) = link {
                out.symlinks.push((m.destination.clone(), l));
            }
        } else if m.kind.as_deref() == Some("tmpfs") && !is_system(&m.destination) {
            manifest.tmpfs.push(tmpfs(i, m)?);
            out.dirs.push(m.destination.clone());
        }
    }
    Ok(out)
}

/// The operator's spec a container amounts to: its name, memory, network, environment,
/// files and sysctls.
fn spec_of(
    id: &str,
    c: &Config,
    inputs: &Inputs,
    memory_mib: u32,
    env: BTreeMap<String, String>,
    files: Vec<File>,
) -> Spec {
    let hostname = c
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| short_id(id));
    let network = inputs.net.as_ref().map(|(tap, n)| NetworkSpec {
        tap: tap.clone(),
        netns: None,
        host_address: None,
        bridge: None,
        guest_interface: "vec0".into(),
        mac: n.mac.clone(),
        addresses: n.addresses.clone(),
        mtu: n.mtu,
        routes: n.routes.clone(),
        dns_servers: Vec::new(),
        search_domains: Vec::new(),
        egress: Vec::new(),
        // Who may reach the container, and what it may reach, is its network's business
        // (podman's networks, a Kubernetes NetworkPolicy): only anti-spoofing applies here.
        reach: appliance::spec::Reach::Open,
    });
    Spec {
        spec_version: appliance::spec::SPEC_VERSION,
        name: short_id(id),
        image: "bundle".into(),
        manifest: None,
        memory_mib,
        disks: inputs.disks.clone(),
        network,
        hostname: Some(hostname),
        syslog: None,
        env,
        extra: None,
        files,
        // `linux.sysctl`: guest-init writes each before the service starts; one the guest
        // kernel lacks fails the boot with its name (the monitor's log says it).
        sysctl: c
            .linux
            .as_ref()
            .map(|l| l.sysctl.clone())
            .unwrap_or_default(),
        stop_timeout_ms: None,
        run_as: None,
        limits: None,
        rlimits: BTreeMap::new(),
        kernel: None,
        liveness: None,
        needs: Vec::new(),
        cpu_weight: None,
    }
}

/// The anti-spoofing part of the network policy, in the table [`crate::net::TABLE`].
fn policy(
    spec: &Spec,
    manifest: &appliance::manifest::Manifest,
    merged: &Merged,
) -> Option<appliance::netpolicy::Policy> {
    let net = spec.network.as_ref()?;
    let checked = contract::checked::check(merged.contract.clone()).ok()?;
    let mut p =
        appliance::netpolicy::derive(&spec.name, net, manifest, checked.network.as_ref()?, None)?;
    p.table = crate::net::TABLE.to_string();
    Some(p)
}

/// A container's ID as an appliance name and hostname: its first 12 characters, lowercase,
/// anything but letters and digits as '-'.
pub fn short_id(id: &str) -> String {
    let s: String = id
        .chars()
        .take(12)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "container".into()
    } else {
        s
    }
}

/// Where guest-init mounts its own file systems (a tmpfs asked for there is already one).
fn is_system(dest: &str) -> bool {
    dest == "/"
        || ["/proc", "/sys", "/dev", "/run", "/tmp"]
            .iter()
            .any(|s| dest == *s || dest.starts_with(&format!("{s}/")))
}

/// Where a bind-mounted file's content goes in the guest, and the symlink to it if it is
/// not under /run (contract files live there).
fn file_place(dest: &str) -> (String, Option<String>) {
    if dest.starts_with("/run/") {
        (dest.to_string(), None)
    } else {
        let p = format!("{FILES_DIR}{dest}");
        (p.clone(), Some(p))
    }
}

fn contract_file(path: &str, content: &[u8]) -> File {
    use base64::Engine;
    let (content, encoding) = match std::str::from_utf8(content) {
        Ok(s) => (s.to_string(), contract::FileEncoding::Utf8),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(content),
            contract::FileEncoding::Base64,
        ),
    };
    File {
        path: path.to_string(),
        mode: "0644".into(),
        uid: 0,
        gid: 0,
        content,
        encoding,
    }
}

/// A tmpfs mount with its `size=` (bytes, or with k/m/g) and `mode=` options.
fn tmpfs(i: usize, m: &Mount) -> Result<Tmpfs> {
    let mut t = Tmpfs {
        mount_point: m.destination.clone(),
        size_mib: None,
        mode: None,
    };
    for o in &m.options {
        if let Some(v) = o.strip_prefix("size=") {
            let bytes = parse_size(v).ok_or_else(|| {
                Error::new(format!(
                    "config.json: mounts[{i}].options: size={v} is not a size (e.g. 64m)"
                ))
            })?;
            t.size_mib = Some(u32::try_from(bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX));
        } else if let Some(v) = o.strip_prefix("mode=") {
            t.mode = Some(v.to_string());
        }
    }
    Ok(t)
}

/// `65536`, `64k`, `64m`, `1g` → bytes.
fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mul) = match v.char_indices().last()? {
        (i, 'k' | 'K') => (&v[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&v[..i], 1 << 20),
        (i, 'g' | 'G') => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// The VM's memory: the annotation, else the container's memory limit, else the manifest's
/// least, else the default.
fn memory(c: &Config, m: &Manifest) -> Result<u32> {
    if let Some(v) = c.annotations.get(ANNOTATION_MEMORY) {
        return v.trim().parse::<u32>().map_err(|_| {
            Error::new(format!(
                "config.json: annotations.{ANNOTATION_MEMORY}: {v:?} is not a number of MiB \
                 (e.g. --annotation {ANNOTATION_MEMORY}=64)"
            ))
        });
    }
    let limit = c
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
        .and_then(|r| r.memory.as_ref())
        .and_then(|m| m.limit)
        .filter(|&l| l > 0);
    if let Some(l) = limit {
        return Ok(u32::try_from(l >> 20).unwrap_or(u32::MAX));
    }
    Ok(m.min_memory_mib
        .unwrap_or(appliance::spec::DEFAULT_MEMORY_MIB)
        .max(appliance::spec::DEFAULT_MEMORY_MIB))
}

/// `["K=V", ...]` → map; a later duplicate wins, as in execve's environment.
fn env_map(env: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (i, e) in env.iter().enumerate() {
        let (k, v) = e.split_once('=').ok_or_else(|| {
            Error::new(format!(
                "config.json: process.env[{i}]: {e:?} is not NAME=VALUE"
            ))
        })?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn resolved_args(args: &[String], argv0: &str) -> Vec<String> {
    let mut a = args.to_vec();
    if let Some(first) = a.first_mut() {
        if !argv0.is_empty() {
            *first = argv0.to_string();
        }
    }
    a
}

/// The service of an image that is not ours: `process` as it is, run once (the container
/// ends when it exits; podman restarts it if asked to).
fn foreign_service(c: &Config, inputs: &Inputs) -> Result<Service> {
    let p = c
        .process
        .as_ref()
        .ok_or_else(|| Error::new("config.json: process: missing"))?;
    if p.args.is_empty() {
        return Err(Error::new(
            "config.json: process.args: empty; the image has no command and none was given",
        ));
    }
    let capabilities = p
        .capabilities
        .as_ref()
        .map(|c| c.effective.clone())
        .unwrap_or_default();
    for (i, cap) in capabilities.iter().enumerate() {
        if contract::names::capability_number(cap).is_none() {
            return Err(Error::new(format!(
                "config.json: process.capabilities.effective[{i}]: {cap:?} is not a capability \
                 guest-init knows; drop it (podman --cap-drop)"
            )));
        }
    }
    let stop_signal = match c.annotations.get(ANNOTATION_STOP_SIGNAL) {
        Some(s) => stop_signal_name(s).ok_or_else(|| {
            Error::new(format!(
                "config.json: annotations.{ANNOTATION_STOP_SIGNAL}: {s:?} is not a signal                  guest-init can stop a service with (e.g. SIGTERM, SIGINT, SIGQUIT)"
            ))
        })?,
        None => "SIGTERM".into(),
    };
    Ok(Service {
        name: None,
        argv: resolved_args(&p.args, &inputs.argv0),
        env: BTreeMap::new(),
        workdir: Some(p.cwd.clone()).filter(|w| !w.is_empty() && w != "/"),
        uid: p.user.uid,
        gid: p.user.gid,
        groups: p.user.additional_gids.clone(),
        capabilities,
        restart: Restart {
            policy: RestartPolicy::Never,
            ..Restart::default()
        },
        stop_signal,
        stop_timeout_ms: 10_000,
        readiness: Default::default(),
        liveness: None,
        rlimits: BTreeMap::new(),
        oom_score_adj: None,
        no_new_privileges: true,
        quiesce: None,
    })
}

/// `podman run --user` for an image of ours: the image builder writes the manifest's
/// `uid:gid` as the OCI config's `User`, so podman's default `process.user` is the manifest's
/// (then the manifest's supplementary groups stay); any other user replaces all three.
fn apply_user(process: &Process, service: &mut Service) {
    let u = &process.user;
    if (u.uid, u.gid) != (service.uid, service.gid) {
        service.uid = u.uid;
        service.gid = u.gid;
        service.groups = u.additional_gids.clone();
    }
}

/// `process.rlimits` become the service's (contract version 2); an image of ours that speaks
/// only version 1 cannot take them, which is said in the runtime's log rather than refused:
/// podman asks for RLIMIT_NOFILE and RLIMIT_NPROC on every container.
fn apply_rlimits(
    process: &Process,
    manifest: &mut Manifest,
    notes: &mut Vec<String>,
) -> Result<()> {
    let mut limits = BTreeMap::new();
    for (i, r) in process.rlimits.iter().enumerate() {
        if !contract::names::RLIMITS.contains(&r.kind.as_str()) {
            return Err(Error::new(format!(
                "config.json: process.rlimits[{i}].type: '{}' is not a resource limit; use one \
                 of {}",
                r.kind,
                contract::names::RLIMITS.join(", ")
            )));
        }
        if limits
            .insert(
                r.kind.clone(),
                contract::Rlimit {
                    soft: r.soft,
                    hard: r.hard,
                },
            )
            .is_some()
        {
            return Err(Error::new(format!(
                "config.json: process.rlimits[{i}].type: '{}' is given twice",
                r.kind
            )));
        }
    }
    if limits.is_empty() {
        return Ok(());
    }
    if manifest.contract_version < contract::RLIMITS_SINCE {
        notes.push(format!(
            "process.rlimits ({}) are not applied inside the guest: the image speaks contract \
             version {}, which has no resource limits (version 2 has)",
            limits.keys().cloned().collect::<Vec<_>>().join(", "),
            manifest.contract_version
        ));
        return Ok(());
    }
    manifest.service.rlimits.extend(limits);
    Ok(())
}

/// `process.oomScoreAdj` and `process.noNewPrivileges` become the service's (contract
/// version 3). An image of ours that speaks an older version cannot take an OOM score:
/// refused, naming the field; its service keeps no_new_privs (on in every version before 3),
/// stricter than a `false` asks, which needs no refusal.
fn apply_version_3(process: &Process, manifest: &mut Manifest) -> Result<()> {
    if manifest.contract_version >= contract::OOM_SCORE_SINCE {
        manifest.service.no_new_privileges = process.no_new_privileges;
    }
    let Some(adj) = process.oom_score_adj else {
        return Ok(());
    };
    let since = contract::OOM_SCORE_SINCE;
    if manifest.contract_version < since {
        return Err(Error::new(format!(
            "config.json: process.oomScoreAdj: the image speaks host contract version {}, which \
             cannot apply it (version {since} can); use an image whose manifest declares \
             contract_version {since}, or leave it out (podman --oom-score-adj)",
            manifest.contract_version
        )));
    }
    if !(-1000..=1000).contains(&adj) {
        return Err(Error::new(format!(
            "config.json: process.oomScoreAdj: {adj} is outside -1000 to 1000"
        )));
    }
    manifest.service.oom_score_adj = Some(adj);
    Ok(())
}

/// The contract's name of a stop signal given as podman does (`15`) or by name (`TERM`).
fn stop_signal_name(s: &str) -> Option<String> {
    let n = match s.trim().parse::<i32>() {
        Ok(n) => n,
        Err(_) => contract::names::signal_number(s.trim())?,
    };
    contract::names::SIGNALS
        .iter()
        .find(|(_, k)| *k == n)
        .map(|(name, _)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Config {
        let mut v = serde_json::json!({
            "ociVersion": "1.0.2",
            "hostname": "abc123",
            "process": {
                "args": ["sh", "-c", "exit 7"],
                "env": ["PATH=/usr/bin:/bin", "A=1"],
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
                "capabilities": {"effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
            },
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/etc/hosts", "type": "bind", "source": "/x/hosts", "options": ["rbind"]},
                {"destination": "/run/.containerenv", "type": "bind", "source": "/x/env", "options": ["rbind"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=65536k"]},
                {"destination": "/var/cache/app", "type": "tmpfs", "source": "tmpfs", "options": ["size=8192k", "mode=1777"]}
            ]
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn inputs() -> Inputs {
        Inputs {
            net: Some((
                "tap0".into(),
                GuestNet {
                    addresses: vec!["10.88.0.5/16".into()],
                    mac: Some("aa:bb:cc:dd:ee:01".into()),
                    mtu: Some(1500),
                    routes: vec![Route {
                        destination: "0.0.0.0/0".into(),
                        gateway: Some("10.88.0.1".into()),
                        interface: None,
                        metric: None,
                    }],
                },
            )),
            files: BTreeMap::from([
                (1, b"127.0.0.1 localhost\n".to_vec()),
                (2, b"engine=\"podman\"\n".to_vec()),
            ]),
            argv0: "/bin/sh".into(),
            disks: Vec::new(),
        }
    }

    #[test]
    fn a_foreign_process_becomes_the_service() {
        let p = translate(
            "abc123def4567890",
            &config(serde_json::json!({})),
            &inputs(),
        )
        .unwrap();
        let c = &p.merged.contract;
        assert!(!p.own_image);
        assert_eq!(c.hostname, "abc123");
        assert_eq!(c.service.argv, ["/bin/sh", "-c", "exit 7"]);
        assert_eq!(c.service.restart.policy, RestartPolicy::Never);
        assert_eq!(c.service.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(
            c.service.capabilities,
            ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]
        );
        let net = c.network.as_ref().unwrap();
        assert_eq!(net.interfaces[0].addresses, ["10.88.0.5/16"]);
        assert_eq!(net.interfaces[0].mac.as_deref(), Some("aa:bb:cc:dd:ee:01"));
        let paths: Vec<&str> = c.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/run/uml-runc/files/etc/hosts", "/run/.containerenv"]
        );
        assert_eq!(
            p.symlinks,
            [(
                "/etc/hosts".to_string(),
                "/run/uml-runc/files/etc/hosts".to_string()
            )]
        );
        assert_eq!(c.mounts.tmpfs.len(), 1, "guest-init has its own /tmp");
        assert_eq!(c.mounts.tmpfs[0].size_mib, Some(8));
        assert_eq!(p.dirs, ["/var/cache/app"]);
        let nofile = contract::Rlimit {
            soft: 1024,
            hard: 1024,
        };
        assert_eq!(c.version, contract::VERSION);
        assert_eq!(c.service.rlimits.get("RLIMIT_NOFILE"), Some(&nofile));
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        assert_eq!(p.memory_mib, appliance::spec::DEFAULT_MEMORY_MIB);
    }

    #[test]
    fn memory_comes_from_the_annotation_or_the_limit() {
        let c = config(serde_json::json!({"annotations": {ANNOTATION_MEMORY: "96"}}));
        assert_eq!(translate("x1", &c, &inputs()).unwrap().memory_mib, 96);
        let c =
            config(serde_json::json!({"linux": {"resources": {"memory": {"limit": 134217728}}}}));
        assert_eq!(translate("x1", &c, &inputs()).unwrap().memory_mib, 128);
        let c = config(serde_json::json!({"annotations": {ANNOTATION_MEMORY: "lots"}}));
        let e = translate("x1", &c, &inputs()).unwrap_err().0;
        assert!(
            e.contains(ANNOTATION_MEMORY) && e.contains("not a number"),
            "{e}"
        );
    }

    #[test]
    fn oom_score_adj_reaches_the_service() {
        let c = config(serde_json::json!({"process": {
            "args": ["sh"], "cwd": "/", "noNewPrivileges": true, "oomScoreAdj": -500}}));
        let p = translate("x1", &c, &inputs()).unwrap();
        assert_eq!(p.merged.contract.service.oom_score_adj, Some(-500));
        assert!(p.merged.contract.service.no_new_privileges);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        let c = config(serde_json::json!({"process": {"args": ["sh"], "cwd": "/"}}));
        let p = translate("x1", &c, &inputs()).unwrap();
        assert!(
            !p.merged.contract.service.no_new_privileges,
            "the spec's default: false"
        );
        let c = config(serde_json::json!({"process": {
            "args": ["sh"], "cwd": "/", "oomScoreAdj": 2000}}));
        let e = translate("x1", &c, &inputs()).unwrap_err().0;
        assert!(e.contains("process.oomScoreAdj: 2000"), "{e}");
    }

    #[test]
    fn sysctls_reach_the_contract_and_bad_names_are_refused() {
        let c = config(serde_json::json!({"linux": {"sysctl": {"net.ipv4.ip_forward": "1"}}}));
        let p = translate("x1", &c, &inputs()).unwrap();
        assert_eq!(
            p.merged.contract.sysctl.get("net.ipv4.ip_forward"),
            Some(&"1".to_string())
        );
        let c = config(serde_json::json!({"linux": {"sysctl": {"../x": "1"}}}));
        let e = translate("x1", &c, &inputs()).unwrap_err().0;
        assert!(e.contains("sysctl"), "{e}");
    }

    #[test]
    fn a_directory_is_a_volume_only_at_a_data_path() {
        let m = Mount {
            destination: "/srv".into(),
            kind: Some("bind".into()),
            source: Some("/srv/data".into()),
            options: vec!["rbind".into()],
        };
        let data = [DataPath {
            mount_point: "/data".into(),
            min_size_mib: Some(8),
        }];
        let e = mount_use(3, &m, &data, |_| Some(false)).unwrap_err().0;
        assert!(
            e.starts_with("config.json: mounts[3]: bind mount of \"/srv/data\" at \"/srv\"")
                && e.contains("only at the image's data path (/data)")
                && e.contains("-v DIR:/data"),
            "{e}"
        );
        let e = mount_use(3, &m, &[], |_| Some(false)).unwrap_err().0;
        assert!(e.contains("declares no data disk"), "{e}");
        assert_eq!(
            mount_use(3, &m, &data, |_| Some(true)).unwrap(),
            MountUse::File
        );
        let at_data = Mount {
            destination: "/data".into(),
            ..m
        };
        assert_eq!(
            mount_use(3, &at_data, &data, |_| Some(false)).unwrap(),
            MountUse::Volume
        );
        // A source that does not exist is no volume.
        assert!(mount_use(3, &at_data, &data, |_| None).is_err());
    }

    #[test]
    fn a_volumes_disk_reaches_the_contract() {
        let manifest = serde_json::json!({
            "contract_version": 3,
            "service": {"argv": ["/bin/sh"]},
            "disks": [{"mount_point": "/data", "format_if_blank": true, "owner_uid": 102,
                "min_size_mib": 8}]
        });
        let c = config(serde_json::json!({
            "annotations": {ANNOTATION_MANIFEST: manifest.to_string()},
            "process": {"args": ["/bin/sh"], "cwd": "/"}
        }));
        assert_eq!(
            data_paths(&c).unwrap(),
            [DataPath {
                mount_point: "/data".into(),
                min_size_mib: Some(8)
            }]
        );
        // Without a disk the image's required /data is missing: said in podman's terms.
        let e = translate("x1", &c, &inputs()).unwrap_err().0;
        assert!(
            e.starts_with("config.json: mounts: the image needs a data disk at /data")
                && e.contains("podman -v DIR:/data")
                && e.contains("--device"),
            "{e}"
        );
        let mut i = inputs();
        i.disks = vec![appliance::spec::DiskSpec {
            file: "/srv/vol/.uml-data.img".into(),
            size_mib: Some(64),
            mount_point: Some("/data".into()),
            fs_type: None,
            options: None,
            format_if_blank: None,
        }];
        let p = translate("x1", &c, &i).unwrap();
        let d = &p.merged.contract.mounts.disks[0];
        assert_eq!(
            (d.device.as_str(), d.mount_point.as_str()),
            ("/dev/ubdb", "/data")
        );
        assert!(
            d.format_if_blank,
            "the manifest's rule: the guest formats it"
        );
        assert_eq!(d.owner_uid, Some(102));
        assert_eq!(p.merged.disks[0].file, "/srv/vol/.uml-data.img");
        assert_eq!(p.merged.config_ubd, 2);
    }

    #[test]
    fn our_manifest_gives_the_service() {
        let manifest = serde_json::json!({
            "contract_version": 1,
            "service": {"argv": ["/usr/sbin/dnsmasq", "-k"], "restart": {"policy": "always"},
                "uid": 101, "gid": 102, "groups": [103]}
        });
        let c = config(serde_json::json!({
            "annotations": {ANNOTATION_MANIFEST: manifest.to_string()},
            "process": {"args": ["/usr/sbin/dnsmasq", "-k"], "cwd": "/", "env": ["PATH=/bin"],
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]}
        }));
        let mut i = inputs();
        i.argv0 = "/usr/sbin/dnsmasq".into();
        let p = translate("x1", &c, &i).unwrap();
        assert!(p.own_image);
        assert_eq!(
            p.merged.contract.service.restart.policy,
            RestartPolicy::Always
        );
        // A version 1 image gets a version 1 contract: podman's rlimits are only logged.
        assert_eq!(p.merged.contract.version, 1);
        assert!(p.merged.contract.service.rlimits.is_empty());
        assert!(
            p.notes[0].contains("RLIMIT_NOFILE") && p.notes[0].contains("version 1"),
            "{:?}",
            p.notes
        );
        let bad = config(
            serde_json::json!({"process": {"args": ["/bin/sh"], "cwd": "/",
            "rlimits": [{"type": "RLIMIT_FILES", "hard": 1, "soft": 1}]}}),
        );
        let e = translate("x1", &bad, &inputs()).unwrap_err().0;
        assert!(
            e.starts_with("config.json: process.rlimits[0].type: 'RLIMIT_FILES'"),
            "{e}"
        );
        // The image's user unless podman was given another (`--user`).
        assert_eq!(
            p.merged.contract.service.uid, 0,
            "podman's process.user 0:0"
        );
        let with_user = |user: serde_json::Value| {
            let c = config(serde_json::json!({
                "annotations": {ANNOTATION_MANIFEST: manifest.to_string()},
                "process": {"args": ["/usr/sbin/dnsmasq", "-k"], "cwd": "/", "user": user}
            }));
            translate("x1", &c, &i).unwrap().merged.contract.service
        };
        let keeps = with_user(serde_json::json!({"uid": 101, "gid": 102}));
        assert_eq!((keeps.uid, keeps.gid, keeps.groups), (101, 102, vec![103]));
        let other = with_user(serde_json::json!({"uid": 1234, "gid": 1235, "additionalGids": [7]}));
        assert_eq!((other.uid, other.gid, other.groups), (1234, 1235, vec![7]));
        let bad = config(serde_json::json!({"annotations": {ANNOTATION_MANIFEST: "{}"}}));
        let e = translate("x1", &bad, &inputs()).unwrap_err().0;
        assert!(e.contains(ANNOTATION_MANIFEST), "{e}");
    }

    #[test]
    fn names_and_sizes() {
        assert_eq!(short_id("ABCdef_0123456789"), "abcdef-01234");
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("x"), None);
        assert_eq!(stop_signal_name("15").as_deref(), Some("SIGTERM"));
        assert_eq!(stop_signal_name("QUIT").as_deref(), Some("SIGQUIT"));
        assert_eq!(stop_signal_name("99"), None);
    }
}
