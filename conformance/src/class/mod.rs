//! The class suites (docs/classes/): the same battery run from outside against every image
//! that claims a class, whoever built it. An image is booted with a spec of the class's
//! standard inputs (merged with its manifest as host-launch does), in a network namespace of
//! the run's own, and the battery talks to it with the clients an operator would use. One
//! module per class; [`run`] picks the suite from the manifest's `class`.

pub mod dns;
pub mod family;
pub mod syslog;
pub mod web;

pub use family::{Family, GUEST_V4, GUEST_V6};

use crate::error::Error;
use ::lab::{NetNs, RunningVm, TempDir, Vm};
use appliance::class::ClassName;
use appliance::manifest::Manifest;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to check: the image, its manifest, the kernel.
#[derive(Debug, Clone)]
pub struct Options {
    pub image: PathBuf,
    /// Default `IMAGE.manifest.json`.
    pub manifest: Option<PathBuf>,
    /// Default `$UML_KERNEL` or the project's / Debian's (as the lab crate picks).
    pub kernel: Option<PathBuf>,
    /// The address families to boot the image with, one boot each; empty: all three.
    pub families: Vec<Family>,
}

/// One check of a suite: what was asked, whether the image passed, and what was seen.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// A suite's results for one image.
#[derive(Debug, Clone)]
pub struct ClassReport {
    pub image: String,
    pub class: String,
    pub checks: Vec<Check>,
}

impl ClassReport {
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }

    /// One line per check: `pass|FAIL  name  detail`.
    pub fn table(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut t = format!("class {} suite: {}\n", self.class, self.image);
        for c in &self.checks {
            let status = if c.ok { "pass" } else { "FAIL" };
            t.push_str(&format!(
                "{status}  {:width$}  {}\n",
                c.name,
                c.detail,
                width = width
            ));
        }
        t.push_str(&format!(
            "{} checks, {} failed\n",
            self.checks.len(),
            self.failures().len()
        ));
        t
    }

    pub fn json(&self) -> Value {
        json!({
            "image": self.image,
            "class": self.class,
            "checks": self.checks.iter().map(|c| json!({
                "name": c.name, "ok": c.ok, "detail": c.detail
            })).collect::<Vec<_>>(),
        })
    }
}

/// Collects the checks of a run.
#[derive(Debug, Default)]
pub struct Checks(pub Vec<Check>);

impl Checks {
    pub fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.0.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }
}

/// Runs the suite of the class the image's manifest claims. An error means the suite could
/// not run (no root, no manifest, an unclassed image); a failing image is a report with
/// failures.
pub fn run(o: &Options) -> Result<ClassReport, Error> {
    let manifest_path = o
        .manifest
        .clone()
        .unwrap_or_else(|| appliance::manifest::path_beside(&o.image));
    let text = std::fs::read(&manifest_path).map_err(Error::file(&manifest_path))?;
    let input = |message: String| Error::Input {
        path: manifest_path.clone(),
        message,
    };
    let manifest = appliance::manifest::parse(&text).map_err(|e| input(e.to_string()))?;
    let class = manifest.class.ok_or_else(|| {
        input(
            "the manifest claims no class (\"class\": {\"name\": \"dns\", \"version\": 1}); \
             a class suite checks an image against the class it claims"
                .into(),
        )
    })?;
    appliance::class::check_version(&class).map_err(|p| Error::Unsuited(p.to_string()))?;
    let kernel = o.kernel.clone().unwrap_or_else(::lab::kernel_path);
    // The VM's jail takes absolute paths only.
    let image = std::path::absolute(&o.image).map_err(Error::file(&o.image))?;
    let target = Target {
        image,
        manifest,
        kernel,
    };
    let mut checks = Checks::default();
    let families = if o.families.is_empty() {
        Family::ALL.to_vec()
    } else {
        o.families.clone()
    };
    for family in families {
        let before = checks.0.len();
        match class.name {
            ClassName::Dns => dns::run(&target, family, &mut checks)?,
            ClassName::Web => web::run(&target, family, &mut checks)?,
            ClassName::Syslog => syslog::run(&target, family, &mut checks)?,
        }
        // Each check says which boot it belongs to.
        for c in &mut checks.0[before..] {
            c.detail = format!("[{}] {}", family.name(), c.detail);
        }
    }
    Ok(ClassReport {
        image: o.image.display().to_string(),
        class: class.to_string(),
        checks: checks.0,
    })
}

/// The image under test.
#[derive(Debug)]
pub struct Target {
    pub image: PathBuf,
    pub manifest: Manifest,
    pub kernel: PathBuf,
}

/// A booted image of a class, ready (its `ready` event seen), on a network of its own.
pub struct Booted {
    pub ns: NetNs,
    pub vm: RunningVm,
    /// From the VM's start to its `ready` event.
    pub ready_after: Duration,
    _dir: TempDir,
}

impl std::fmt::Debug for Booted {
    // The harness's RunningVm has no Debug; its network and timing say which boot this is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Booted")
            .field("ns", &self.ns)
            .field("ready_after", &self.ready_after)
            .finish_non_exhaustive()
    }
}

/// Boots `t` with `spec` (an operator spec's JSON without `name`, `image` and `network`,
/// which this adds: the guest's addresses of `family` on `tap0`) merged with the manifest as
/// host-launch merges them; `disks` are the host files of `spec.disks`, in order. Waits for
/// `ready`.
pub fn boot(
    t: &Target,
    mut spec: Value,
    disks: &[PathBuf],
    family: Family,
) -> Result<Booted, Error> {
    let dir = TempDir::new("class-suite")?;
    let ns = NetNs::with_tap("tap0").map_err(|source| Error::NeedsRoot {
        source,
        who: "suite",
    })?;
    spec["name"] = json!("class-suite");
    spec["image"] = json!(t.image);
    spec["network"] = json!({"tap": "tap0", "addresses": family.cidrs()});
    if spec.get("memory_mib").is_none() {
        let mib = t.manifest.min_memory_mib.unwrap_or(64).max(64);
        spec["memory_mib"] = json!(mib);
    }
    let spec = appliance::spec::parse(spec.to_string().as_bytes())
        .map_err(|p| Error::Kit(format!("the suite's spec: {}", p.join("; "))))?;
    if let Some(class) = &t.manifest.class {
        appliance::class::check_spec_inputs(class, &spec)
            .map_err(|p| Error::Kit(format!("the suite's spec lacks the class inputs: {p}")))?;
    }
    let merged = appliance::merge::merge(&spec, &t.manifest).map_err(|p| {
        Error::Kit(format!(
            "the suite's spec does not merge with the manifest: {p}"
        ))
    })?;
    let mut vm = Vm::new(&t.image)
        .kernel(&t.kernel)
        .network(&ns)
        .memory_mib(spec.memory_mib)
        .echo(std::env::var_os("CONFORMANCE_ECHO").is_some());
    let mut attached = merged.disks.clone();
    attached.sort_by_key(|d| contract::uml::ubd_number(&d.device));
    for (i, d) in attached.iter().enumerate() {
        let file = disks.get(d.spec_index).ok_or_else(|| {
            Error::Kit(format!(
                "the suite gave no host file for spec disk {}",
                d.spec_index
            ))
        })?;
        if vm.disk_name(i) != d.device {
            return Err(Error::Unsuited(format!(
                "the image expects its disk on {}, which the suite cannot attach there",
                d.device
            )));
        }
        vm = vm.disk(file, false);
    }
    let vm = vm.contract_device(&merged.contract);
    let started = Instant::now();
    let running = vm.spawn()?;
    running
        .wait_for_event("ready", Duration::from_secs(60))
        .map_err(Error::NotReady)?;
    Ok(Booted {
        ns,
        vm: running,
        ready_after: started.elapsed(),
        _dir: dir,
    })
}

impl Target {
    /// The size of a data disk the suite makes: the manifest's first disk's minimum, at least
    /// `floor` MiB.
    pub fn disk_mib(&self, floor: u64) -> u64 {
        self.manifest
            .disks
            .first()
            .and_then(|d| d.min_size_mib)
            .unwrap_or(16)
            .max(floor)
    }

    /// Stops a booted image as host-launch does, waiting its stop timeout and a boot's
    /// margin; the outcome.
    pub fn stop(&self, vm: RunningVm) -> Result<::lab::VmOutcome, Error> {
        let limit =
            Duration::from_millis(self.manifest.service.stop_timeout_ms) + crate::checks::BOOT;
        Ok(crate::checks::stop(vm, limit)?.0)
    }
}

/// Boots `t` with `disk` as its one data disk (spec `disks[0]`) and records the check `id`:
/// ready, and how long after the VM's start.
pub fn boot_with_disk(
    t: &Target,
    disk: &Path,
    family: Family,
    id: &str,
    c: &mut Checks,
) -> Result<Booted, Error> {
    let booted = boot(
        t,
        json!({"disks": [{"file": disk}]}),
        &[disk.to_path_buf()],
        family,
    )?;
    c.check(
        id,
        true,
        format!(
            "ready {} ms after the VM started",
            booted.ready_after.as_millis()
        ),
    );
    Ok(booted)
}

/// A host tool's path, or an error naming the package that provides it.
pub fn require_tool(tool: &str, package: &str) -> Result<(), Error> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(tool).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(Error::Missing(format!(
            "{tool} is missing: install the Debian package {package} (scripts/setup does)"
        )))
    }
}
