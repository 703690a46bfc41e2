//! One snapshot of every appliance: what its state directory records (the launcher's view)
//! and what its processes and TAP device use now (the host's, [`super::procfs`]).

use super::procfs::{self, Tap, Usage};
use crate::state::{self, Dropped, Entry, GuestFigures, ServiceCounts};
use serde::Serialize;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One appliance at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub name: String,
    /// A launcher holds its lock.
    pub running: bool,
    /// `starting`, `booting`, `ready`, `stopping`, `exited`, or `dead` (its launcher died).
    pub state: &'static str,
    pub ready: bool,
    /// The labels: the image's class, digest and the kernel (empty when not known).
    pub class: String,
    pub digest: String,
    pub kernel: String,
    /// Milliseconds since the epoch.
    pub started_at_ms: u64,
    pub uptime_s: Option<u64>,
    /// After the start: guest-init's first event, and the service's readiness.
    pub booted_after_ms: Option<u64>,
    pub ready_after_ms: Option<u64>,
    /// The VM's exit status, once it ended.
    pub exit_code: Option<i32>,
    pub service: ServiceCounts,
    /// The guest's own last figures, while it runs.
    pub guest: Option<GuestFigures>,
    pub dropped: Dropped,
    /// The VM's host processes, while it runs.
    pub usage: Option<Usage>,
    /// Its TAP device, while it runs.
    pub tap_name: Option<String>,
    pub tap: Option<Tap>,
}

/// Each image's digest, hashed once per image file (path, inode, size and time), so a
/// long-running `metrics --listen` or `top` hashes an image again only when it changed.
/// [`Digests::none`] hashes nothing (for `top`, which shows no digest).
#[derive(Debug, Default)]
pub struct Digests {
    skip: bool,
    known: HashMap<String, ((u64, u64, i64), String)>,
}

impl Digests {
    /// Digests that are never computed: every one is "".
    pub fn none() -> Digests {
        Digests {
            skip: true,
            known: HashMap::new(),
        }
    }

    /// The image's `sha256:...` digest (with its manifest), or "" when it cannot be read.
    pub fn of(&mut self, image: &str) -> String {
        if self.skip {
            return String::new();
        }
        let path = Path::new(image);
        let Ok(m) = std::fs::metadata(path) else {
            return String::new();
        };
        let id = (m.ino(), m.size(), m.mtime());
        if let Some((seen, d)) = self.known.get(image) {
            if *seen == id {
                return d.clone();
            }
        }
        let manifest = appliance::manifest::path_beside(path);
        let d = crate::trust::digest(path, &manifest)
            .map(|d| d.to_string())
            .unwrap_or_default();
        self.known.insert(image.to_string(), (id, d.clone()));
        d
    }
}

/// A snapshot of `entries`.
pub fn collect(entries: &[Entry], digests: &mut Digests) -> Vec<Sample> {
    collect_with(entries, digests, true)
}

/// [`collect`], the memory (PSS) only with `pss` (else 0: see `procfs::usage_by_group`).
pub fn collect_with(entries: &[Entry], digests: &mut Digests, pss: bool) -> Vec<Sample> {
    let groups: Vec<u32> = entries
        .iter()
        .filter(|e| e.running)
        .filter_map(uml_pid)
        .collect();
    let usage = procfs::usage_by_group(&groups, pss);
    entries.iter().map(|e| sample(e, &usage, digests)).collect()
}

/// UML's pid while it still runs under this appliance's umid (not a recycled pid).
fn uml_pid(e: &Entry) -> Option<u32> {
    let st = e.state.as_ref()?;
    let pid = st.uml_pid?;
    state::is_uml_with_umid(pid, &st.umid).then_some(pid)
}

fn sample(e: &Entry, usage: &HashMap<u32, Usage>, digests: &mut Digests) -> Sample {
    let st = e.state.as_ref();
    let pid = if e.running { uml_pid(e) } else { None };
    let tap_name = st.and_then(|s| s.tap.as_ref()).map(|t| t.name.clone());
    Sample {
        name: e.name.clone(),
        running: e.running,
        state: state_word(e),
        ready: e.running && st.is_some_and(|s| s.ready),
        class: st.and_then(|s| s.class.clone()).unwrap_or_default(),
        digest: st
            .and_then(|s| s.image.as_deref())
            .map(|i| digests.of(i))
            .unwrap_or_default(),
        kernel: st.and_then(|s| s.kernel.clone()).unwrap_or_default(),
        started_at_ms: st.map_or(0, |s| s.started_at_ms),
        uptime_s: st
            .filter(|_| e.running)
            .map(|s| state::now_ms().saturating_sub(s.started_at_ms) / 1000),
        booted_after_ms: st.and_then(|s| s.booted_after_ms),
        ready_after_ms: st.and_then(|s| s.ready_after_ms),
        exit_code: st.and_then(|s| s.exit_code).filter(|_| !e.running),
        service: st.map(|s| s.service.clone()).unwrap_or_default(),
        guest: st.and_then(|s| s.guest).filter(|_| e.running),
        dropped: st.map(|s| s.dropped.clone()).unwrap_or_default(),
        usage: pid.and_then(|p| usage.get(&p).copied()),
        tap: pid
            .zip(tap_name.as_deref())
            .and_then(|(p, t)| procfs::tap(p, t)),
        tap_name,
    }
}

/// The phase, or `dead` when the launcher died without recording an end.
fn state_word(e: &Entry) -> &'static str {
    match &e.state {
        None => "unknown",
        Some(s) if !e.running && s.phase != state::Phase::Exited => "dead",
        Some(s) => s.phase.as_str(),
    }
}

/// A running appliance's sample for the tests of what reads samples: ready, up 61 s,
/// nothing used yet.
#[cfg(test)]
pub fn test_sample(name: &str) -> Sample {
    Sample {
        name: name.into(),
        running: true,
        state: "ready",
        ready: true,
        class: String::new(),
        digest: String::new(),
        kernel: String::new(),
        started_at_ms: 0,
        uptime_s: Some(61),
        booted_after_ms: None,
        ready_after_ms: None,
        exit_code: None,
        service: ServiceCounts::default(),
        guest: None,
        dropped: Dropped::default(),
        usage: Some(Usage::default()),
        tap_name: None,
        tap: Some(Tap::default()),
    }
}
