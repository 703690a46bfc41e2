//! The conformance kit of the host contract, versions 1 and 2 (docs/contract.md): boots an image (built by
//! anyone, with any init) with a battery of contracts on the project's own host side (the
//! `vmm` crate, through the `lab` crate's `Vm` and `NetNs`) and checks from outside what the
//! specification requires of an image. Checks that need to look inside use the probe, a static
//! program the kit hands the image as a contract file and runs as the service.
//!
//! [`class`] holds the class suites (docs/classes/): the battery of the class an image claims,
//! run from outside with the clients an operator uses (`conformance --class IMAGE`).

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

mod checks;
pub mod class;
pub mod cli;
pub mod error;
mod lab;
pub mod report;
pub mod requirements;
mod syslog;

pub use error::Error;
pub use report::{Report, Results, Row, Status};

use std::path::{Path, PathBuf};

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// The root image.
    pub image: PathBuf,
    /// Its manifest; default `IMAGE.manifest.json`.
    pub manifest: Option<PathBuf>,
    /// An operator spec whose `files` the image's own service needs (e.g. build-image/tests/lab/dnsmasq.json).
    pub spec_files: Option<PathBuf>,
    /// The UML kernel; default the one host-launch boots (`vmm::kernel::default_kernel`).
    pub kernel: Option<PathBuf>,
    /// The static probe; default: the installed one, or, run from a checkout, built with
    /// cargo (package conformance-probe).
    pub probe: Option<PathBuf>,
}

/// Runs the whole battery. An error means the kit could not run at all (no root, no image,
/// no probe); a non-conforming image is a report with failures.
pub fn run(o: &Options) -> Result<Report, Error> {
    let mut results = Results::default();
    let manifest_path = o
        .manifest
        .clone()
        .unwrap_or_else(|| appliance::manifest::path_beside(&o.image));
    let text = std::fs::read(&manifest_path).map_err(Error::file(&manifest_path))?;
    let manifest = match appliance::manifest::parse(&text) {
        Ok(m) => {
            results.check(
                "C-MAN-1",
                true,
                format!("{}: manifest v1", manifest_path.display()),
            );
            m
        }
        Err(e) => {
            results.check(
                "C-MAN-1",
                false,
                format!("{}: {e}", manifest_path.display()),
            );
            return Ok(Report {
                image: o.image.display().to_string(),
                rows: results.rows(),
            });
        }
    };
    let probe_path = match &o.probe {
        Some(p) => p.clone(),
        None => default_probe()?,
    };
    let probe = std::fs::read(&probe_path).map_err(Error::file(&probe_path))?;
    let files = match &o.spec_files {
        Some(p) => spec_files(p)?,
        None => Vec::new(),
    };
    let kernel = o.kernel.clone().unwrap_or_else(::lab::kernel_path);
    let lab = lab::Lab::new(&o.image, manifest, kernel, &probe, files)?;
    checks::run_all(&lab, &mut results)?;
    Ok(Report {
        image: o.image.display().to_string(),
        rows: results.rows(),
    })
}

/// The probe's file name in the installed directories (`rootfs::installed`).
pub const PROBE_FILE: &str = "conformance-probe";

/// The probe when none is named: a development build builds its checkout's with cargo; an
/// installed kit takes the installed one (the package's /usr/lib/host-launch).
fn default_probe() -> Result<PathBuf, Error> {
    if rootfs::installed::dev_checkout().is_some() {
        return Ok(::lab::build_static(
            "conformance-probe",
            "conformance-probe",
        )?);
    }
    rootfs::installed::lib_file(PROBE_FILE).ok_or_else(|| {
        Error::Missing(format!(
            "no {PROBE_FILE} in {} or {}: install the package host-launch, or name one with \
             --probe PATH",
            rootfs::installed::LOCAL_LIB_DIR,
            rootfs::installed::LIB_DIR
        ))
    })
}

/// The `files` of an operator spec.
fn spec_files(path: &Path) -> Result<Vec<serde_json::Value>, Error> {
    let text = std::fs::read(path).map_err(Error::file(path))?;
    let input = |message: String| Error::Input {
        path: path.to_path_buf(),
        message,
    };
    let v = contract::json::parse_value(&text).map_err(|e| input(e.to_string()))?;
    match v.get("files") {
        None => Ok(Vec::new()),
        Some(serde_json::Value::Array(a)) => Ok(a.clone()),
        Some(_) => Err(input("files: must be a list of contract files".into())),
    }
}
