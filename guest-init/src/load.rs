//! Loading the host contract: from the kernel command line (`hostcontract=`), from a config
//! block device (`hostcontract_dev=`), or from both (then they must be identical).
//!
//! Every error names the source it came from, so that the console tells the operator which of
//! the two places to fix.

use contract::{blockdev, budget, cmdline, Contract};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

/// A config device payload larger than this is refused rather than allocated.
pub const MAX_DEVICE_PAYLOAD: usize = blockdev::MAX_PAYLOAD;

/// Where a contract came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The `hostcontract=` token on the kernel command line.
    Cmdline,
    /// The block device named by `hostcontract_dev=`.
    Device(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Cmdline => write!(f, "kernel command line ({}=)", cmdline::PARAM),
            Source::Device(dev) => {
                write!(f, "config device {dev} ({}={dev})", cmdline::DEVICE_PARAM)
            }
        }
    }
}

/// A contract and every source it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub contract: Contract,
    pub sources: Vec<Source>,
}

impl Loaded {
    /// The one-line summary printed once the contract is accepted.
    pub fn summary(&self) -> String {
        let c = &self.contract;
        let service = c.service.name.clone().unwrap_or_else(|| {
            c.service
                .argv
                .first()
                .and_then(|a| a.rsplit('/').next())
                .unwrap_or("?")
                .to_string()
        });
        let from: Vec<String> = self.sources.iter().map(|s| s.to_string()).collect();
        format!(
            "contract loaded: hostname={}, service={service} (from {})",
            c.hostname,
            from.join(" and ")
        )
    }
}

/// What went wrong with one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub source: Source,
    /// The problem, one line each (e.g. one per validation problem).
    pub problems: Vec<String>,
}

/// Why no contract could be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Neither `hostcontract=` nor `hostcontract_dev=` is on the command line.
    NoSource,
    /// The kernel command line could not be read.
    Cmdline(String),
    /// One or both sources could not be read, decoded or validated.
    Sources(Vec<SourceError>),
    /// Both sources are valid but say different things.
    Mismatch { first: Source, second: Source },
}

impl LoadError {
    /// The error as console lines (each is printed as `guest-init: fatal: LINE`).
    pub fn lines(&self) -> Vec<String> {
        match self {
            LoadError::NoSource => vec![format!(
                "no host contract: give {}=... or {}=...",
                cmdline::PARAM,
                cmdline::DEVICE_PARAM
            )],
            LoadError::Cmdline(m) => vec![format!("cannot read the kernel command line: {m}")],
            LoadError::Sources(errors) => {
                let mut lines = Vec::new();
                for e in errors {
                    lines.push(format!("bad host contract from the {}:", e.source));
                    lines.extend(e.problems.iter().map(|l| format!("  {l}")));
                }
                lines
            }
            LoadError::Mismatch { first, second } => vec![format!(
                "the host contracts from the {first} and from the {second} differ; give one, or the same in both"
            )],
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.lines().join("\n"))
    }
}

impl std::error::Error for LoadError {}

/// Mounts /proc (if it is not mounted yet) and returns the kernel command line.
pub fn kernel_cmdline() -> Result<String, LoadError> {
    if !Path::new("/proc/self").exists() {
        match mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        ) {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(e) => return Err(LoadError::Cmdline(format!("cannot mount /proc: {e}"))),
        }
    }
    std::fs::read("/proc/cmdline")
        .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
        .map_err(|e| LoadError::Cmdline(format!("/proc/cmdline: {e}")))
}

/// Loads the contract named by a kernel command line, reading the config device if one is
/// named.
pub fn load(kernel_cmdline: &str) -> Result<Loaded, LoadError> {
    let from_cmdline = cmdline::find(kernel_cmdline, cmdline::PARAM)
        .map(|v| (Source::Cmdline, cmdline::decode(v).map_err(|e| e.lines())));
    let from_device = cmdline::find(kernel_cmdline, cmdline::DEVICE_PARAM)
        .map(device_path)
        .map(|dev| (Source::Device(dev.clone()), read_device(&dev)));
    merge(from_cmdline, from_device)
}

/// The device path for a `hostcontract_dev=` value: absolute as given, or a bare name under
/// /dev (`ubdb` → `/dev/ubdb`).
pub fn device_path(value: &str) -> String {
    if value.starts_with('/') {
        value.to_string()
    } else {
        format!("/dev/{value}")
    }
}

/// Combines what the sources gave: every source error is reported; with two good contracts,
/// they must be equal.
pub fn merge(
    first: Option<(Source, Result<Contract, Vec<String>>)>,
    second: Option<(Source, Result<Contract, Vec<String>>)>,
) -> Result<Loaded, LoadError> {
    let mut good: Vec<(Source, Contract)> = Vec::new();
    let mut errors = Vec::new();
    for (source, result) in [first, second].into_iter().flatten() {
        match result {
            Ok(c) => good.push((source, c)),
            Err(problems) => errors.push(SourceError { source, problems }),
        }
    }
    if !errors.is_empty() {
        return Err(LoadError::Sources(errors));
    }
    let mut good = good.into_iter();
    let Some((first_source, contract)) = good.next() else {
        return Err(LoadError::NoSource);
    };
    let mut sources = vec![first_source.clone()];
    for (source, other) in good {
        if other != contract {
            return Err(LoadError::Mismatch {
                first: first_source,
                second: source,
            });
        }
        sources.push(source);
    }
    Ok(Loaded { contract, sources })
}

/// Reads a contract from a config device: the header sector first, then exactly the payload
/// it announces. The device is opened read-only and never mounted.
pub fn read_device(path: &str) -> Result<Contract, Vec<String>> {
    let mut file = File::open(path).map_err(|e| vec![format!("cannot open {path}: {e}")])?;
    let mut bytes = vec![0u8; blockdev::SECTOR];
    read_exact(&mut file, &mut bytes, "the header sector")?;
    let len = blockdev::header_payload_len(&bytes).map_err(|e| e.lines())?;
    if len > MAX_DEVICE_PAYLOAD {
        return Err(vec![format!(
            "the header announces {len} bytes of payload; at most {MAX_DEVICE_PAYLOAD} are accepted"
        )]);
    }
    // Reading and parsing it must not exhaust the VM either (contract::budget): refuse before
    // allocating what could never be accepted.
    let memory_mib = crate::mounts::this_vm_memory_mib();
    let fits = budget::claimable_bytes(memory_mib) / budget::CONTRACT_COPIES;
    if len as u64 > fits {
        return Err(vec![format!(
            "the header announces {len} bytes of payload, but a VM of {memory_mib} MiB takes a \
             contract of at most {fits} bytes (contract::budget); give the VM more memory"
        )]);
    }
    bytes.resize(blockdev::SECTOR.saturating_add(len), 0);
    if let Some(payload) = bytes.get_mut(blockdev::SECTOR..) {
        read_exact(&mut file, payload, "the payload")?;
    }
    blockdev::decode(&bytes).map_err(|e| e.lines())
}

fn read_exact(file: &mut File, buf: &mut [u8], what: &str) -> Result<(), Vec<String>> {
    let len = buf.len();
    file.read_exact(buf).map_err(|e| {
        vec![match e.kind() {
            ErrorKind::UnexpectedEof => {
                format!("the device ends before {what} ({len} bytes) is complete")
            }
            _ => format!("cannot read {what}: {e}"),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(hostname: &str) -> Contract {
        contract::parse_json(
            format!(r#"{{"version":1,"hostname":"{hostname}","service":{{"argv":["/bin/x"]}}}}"#)
                .as_bytes(),
        )
        .expect("test contract is valid")
    }

    fn dev() -> Source {
        Source::Device("/dev/ubdb".into())
    }

    #[test]
    fn neither_source_is_an_error() {
        assert_eq!(merge(None, None), Err(LoadError::NoSource));
        assert!(LoadError::NoSource.lines()[0].starts_with("no host contract: give hostcontract="));
    }

    #[test]
    fn one_source_is_enough() {
        let got = merge(None, Some((dev(), Ok(contract("a"))))).expect("loads");
        assert_eq!(got.sources, vec![dev()]);
        assert_eq!(got.contract.hostname, "a");
        let got = merge(Some((Source::Cmdline, Ok(contract("b")))), None).expect("loads");
        assert_eq!(got.sources, vec![Source::Cmdline]);
        assert!(got
            .summary()
            .starts_with("contract loaded: hostname=b, service=x (from kernel"));
    }

    #[test]
    fn identical_sources_load() {
        let got = merge(
            Some((Source::Cmdline, Ok(contract("a")))),
            Some((dev(), Ok(contract("a")))),
        )
        .expect("loads");
        assert_eq!(got.sources, vec![Source::Cmdline, dev()]);
    }

    #[test]
    fn different_sources_name_both() {
        let err = merge(
            Some((Source::Cmdline, Ok(contract("a")))),
            Some((dev(), Ok(contract("b")))),
        )
        .expect_err("mismatch");
        assert_eq!(
            err,
            LoadError::Mismatch {
                first: Source::Cmdline,
                second: dev()
            }
        );
        let line = &err.lines()[0];
        assert!(
            line.contains("kernel command line (hostcontract=)"),
            "{line}"
        );
        assert!(line.contains("config device /dev/ubdb"), "{line}");
    }

    #[test]
    fn every_source_error_is_reported_with_its_lines() {
        let err = merge(
            Some((
                Source::Cmdline,
                Err(vec!["hostname: bad".into(), "version: bad".into()]),
            )),
            Some((dev(), Err(vec!["checksum mismatch".into()]))),
        )
        .expect_err("errors");
        assert_eq!(
            err.lines(),
            vec![
                "bad host contract from the kernel command line (hostcontract=):",
                "  hostname: bad",
                "  version: bad",
                "bad host contract from the config device /dev/ubdb (hostcontract_dev=/dev/ubdb):",
                "  checksum mismatch",
            ]
        );
    }

    #[test]
    fn a_good_source_does_not_hide_a_bad_one() {
        let err = merge(
            Some((Source::Cmdline, Ok(contract("a")))),
            Some((dev(), Err(vec!["unreadable".into()]))),
        )
        .expect_err("error");
        assert!(matches!(err, LoadError::Sources(ref v) if v.len() == 1 && v[0].source == dev()));
    }

    #[test]
    fn device_paths() {
        assert_eq!(device_path("/dev/ubdc"), "/dev/ubdc");
        assert_eq!(device_path("ubdc"), "/dev/ubdc");
    }

    #[test]
    fn load_reads_the_command_line_token() {
        let c = contract("tok");
        let cmdline = format!("root=/dev/ubda ro {} quiet", contract::cmdline::encode(&c));
        let got = load(&cmdline).expect("loads");
        assert_eq!(got.contract, c);
        assert_eq!(got.sources, vec![Source::Cmdline]);
        assert_eq!(load("root=/dev/ubda ro"), Err(LoadError::NoSource));
        let err = load("hostcontract_dev=/nonexistent/dev").expect_err("no device");
        assert!(
            err.lines()[1].contains("cannot open /nonexistent/dev"),
            "{err}"
        );
    }

    #[test]
    fn missing_device_is_reported() {
        let err = read_device("/nonexistent/device").expect_err("missing");
        assert!(
            err[0].contains("cannot open /nonexistent/device"),
            "{err:?}"
        );
    }
}
