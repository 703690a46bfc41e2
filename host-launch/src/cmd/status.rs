//! `status [NAME]` (alias `inspect`; `--format json`): the details of one appliance, or of
//! all; only reads.

use crate::error::Result;
use crate::events;
use crate::lifecycle::known;
use crate::state::{self, Phase};
use std::io::Write;

pub(crate) fn uptime(ms: u64) -> String {
    let s = state::now_ms().saturating_sub(ms) / 1000;
    format!("{}h{:02}m{:02}s", s / 3600, (s / 60) % 60, s % 60)
}

/// The launcher died without recording an end (its lock is free, its phase is not exited).
fn is_stale(e: &state::Entry) -> bool {
    !e.running && e.state.as_ref().is_some_and(|s| s.phase != Phase::Exited)
}

pub(crate) fn status_word(e: &state::Entry) -> &'static str {
    match (&e.state, e.running) {
        (_, true) => "running",
        (Some(st), false) if st.phase != Phase::Exited => "dead (stale state)",
        (Some(_), false) => "exited",
        (None, false) => "unknown",
    }
}

/// Who started the launcher: `systemd (UNIT)` or `host-launch` (run/start by hand).
pub(crate) fn managed_by(e: &state::Entry) -> String {
    match e.state.as_ref().and_then(|s| s.systemd.as_ref()) {
        Some(s) => format!("systemd ({})", s.unit),
        None => "host-launch".into(),
    }
}

/// `status [NAME]`: details of one appliance, or of all. It only reads: an appliance whose
/// launcher died (SIGKILL, a crash) is shown as such, and what it left (UML's helpers, its
/// TAP device, its network policy) is cleaned by `stop`, `forget` or the next start, which
/// write its state.
pub fn status(name: Option<&str>, json: bool) -> Result<i32> {
    let entries = match name {
        Some(n) => vec![known(n)?],
        None => state::list(&state::base_dir()),
    };
    if json {
        println!("{}", crate::cmd::view::appliances(&entries));
        return Ok(0);
    }
    for e in entries.iter().filter(|e| is_stale(e)) {
        println!(
            "'{0}': its launcher died; `host-launch stop {0}` cleans up what it left",
            e.name
        );
    }
    let mut digests = Digests::default();
    let mut out = std::io::stdout().lock();
    for e in &entries {
        print_entry(&mut out, e, name.is_some(), &mut digests);
    }
    Ok(0)
}

/// One entry as `status` prints it (with its last events when one was asked for).
fn print_entry(out: &mut impl Write, e: &state::Entry, one: bool, digests: &mut Digests) {
    let _ = writeln!(out, "{}: {}", e.name, status_word(e));
    let Some(st) = &e.state else { return };
    print_identity(out, st, digests);
    print_health(out, e, st, one);
}

/// Who runs the appliance, as what, from which image and kernel.
fn print_identity(out: &mut impl Write, st: &state::State, digests: &mut Digests) {
    let _ = writeln!(out, "  phase:    {}", st.phase.as_str());
    match &st.systemd {
        Some(s) => {
            let _ = writeln!(
                out,
                "  managed:  by systemd: {} (invocation {}); use systemctl to start and stop it",
                s.unit, s.invocation_id
            );
        }
        None => {
            let _ = writeln!(out, "  managed:  by host-launch (not systemd)");
        }
    }
    let _ = writeln!(
        out,
        "  pids:     launcher {}, UML {}",
        st.launcher_pid,
        st.uml_pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(out, "  umid:     {}", st.umid);
    if let Some(i) = &st.image {
        let _ = writeln!(out, "  image:    {i}");
        let _ = writeln!(out, "  digest:   {}", digests.of(i));
    }
    if let Some(k) = &st.kernel {
        let _ = writeln!(out, "  kernel:   {k}");
    }
    if let Some(c) = &st.class {
        let _ = writeln!(out, "  class:    {c}");
    }
    if let Some(u) = st.uid {
        let _ = writeln!(out, "  VM uid:   {u} (jailed, no capabilities)");
    }
}

/// What the guest dropped, readiness, network, policy, outcome and the last events.
fn print_health(out: &mut impl Write, e: &state::Entry, st: &state::State, one: bool) {
    let d = &st.dropped;
    let _ = writeln!(
        out,
        "  dropped:  {} status lines over the length bound, {} console bytes and {} event \
         bytes rotated out, {} events not printed",
        d.status_lines, d.console_bytes, d.events_bytes, d.unprinted_events
    );
    if e.running {
        let _ = writeln!(out, "  uptime:   {}", uptime(st.started_at_ms));
    }
    let _ = writeln!(
        out,
        "  ready:    {}{}",
        if st.ready { "yes" } else { "no" },
        st.ready_after_ms
            .map(|ms| format!(" (after {ms} ms)"))
            .unwrap_or_default()
    );
    if let Some(t) = &st.tap {
        let _ = writeln!(
            out,
            "  tap:      {}{}",
            t.name,
            t.netns
                .as_ref()
                .map(|n| format!(" (netns {n})"))
                .unwrap_or_default()
        );
    }
    if let Some(p) = &st.policy {
        let _ = writeln!(out, "  policy:   {}", policy_line(p, &e.name, e.running));
    }
    if let Some(o) = &st.outcome {
        let _ = writeln!(
            out,
            "  outcome:  {o} (exit status {})",
            st.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    if one {
        let _ = writeln!(out, "  last events:");
        for ev in &st.last_events {
            let _ = writeln!(out, "    {}", events::human(ev));
        }
    }
}

/// The installed network policy as the host has it now (`nft`), or why it is not there.
fn policy_line(p: &state::PolicyRecord, name: &str, running: bool) -> String {
    let ns = p
        .netns
        .as_ref()
        .map(|n| format!(" (netns {n})"))
        .unwrap_or_default();
    match crate::launch::nft::summary(&p.table, name, p.netns.as_deref()) {
        Some(s) => format!(
            "nftables table netdev {}{ns}, chains *_{name}: {} rules installed; dropped {} \
             frames from the guest, {} to it (`nft list chain netdev {} from_guest_{name}`)",
            s.table, s.rules, s.dropped_from_guest, s.dropped_to_guest, s.table
        ),
        None if running => format!(
            "nftables table netdev {}{ns}, chains *_{name}: NOT installed (removed by hand?); \
             {} rules were installed at the start",
            p.table, p.rules
        ),
        None => format!(
            "nftables table netdev {}{ns}, chains *_{name}: removed",
            p.table
        ),
    }
}

/// Each image's digest line, hashed once per `status` however many appliances share it.
#[derive(Default)]
struct Digests(std::collections::BTreeMap<String, String>);

impl Digests {
    fn of(&mut self, image: &str) -> String {
        self.0
            .entry(image.to_string())
            .or_insert_with(|| {
                let path = std::path::Path::new(image);
                crate::trust::describe(path, &appliance::manifest::path_beside(path))
            })
            .clone()
    }
}
