//! The boot sequence: each step in order, reported on the console and the status channel,
//! then supervision, then a clean shutdown. Any fatal error is reported with the contract
//! field at fault and ends in the same clean shutdown, so PID 1 never exits and never hangs.

use crate::freeze::Freezer;
use crate::log::{LogSink, Record, Severity, SinkConfig, Stream};
use crate::mounts::{self, Unmounted};
use crate::service::SpawnOptions;
use crate::status::{Status, STATUS_TTY};
use crate::supervise::{self, End, Observer, Supervisor};
use crate::{console, kmod, load, net, power, runfs, settings};
use contract::checked::{self, Checked};
use contract::status::{Event, PowerOff, Unmount};
use contract::{cmdline, ipconfig, Contract, Disk};
use nix::sys::signal::{sigprocmask, SigmaskHow};
use nix::unistd::Pid;
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::time::{Duration, Instant};

/// A boot step that failed: the contract field at fault (if one is) and what to print.
#[derive(Debug)]
pub struct Fatal {
    pub field: Option<String>,
    pub lines: Vec<String>,
}

impl Fatal {
    fn new(field: Option<&str>, line: impl ToString) -> Fatal {
        Fatal {
            field: field.map(str::to_string),
            lines: vec![line.to_string()],
        }
    }
}

/// Reports to the console, the status channel and (once started) the log sink.
#[derive(Debug)]
pub struct Reporter {
    status: Status,
    sink: RefCell<Option<LogSink>>,
    /// The sink copies lines to the console itself; init messages then go through it only.
    sink_has_console: bool,
    app: String,
    /// guest-init's messages from before the sink started, replayed to the log host once it
    /// does (bounded: boot says little).
    early: RefCell<Vec<Record>>,
    /// Console drops already told to the host, and when last.
    drops_told: Cell<(u64, Option<Instant>)>,
    /// The interfaces' addresses, announced again when the service is ready (`net/announce.rs`).
    announce: RefCell<Vec<net::Announcement>>,
}

/// The status channel hears of console drops at most this often.
const DROPS_EVERY: Duration = Duration::from_secs(1);

/// At most this many early messages are kept for the log host.
const MAX_EARLY: usize = 128;

impl Reporter {
    fn new(status: Status) -> Reporter {
        Reporter {
            status,
            sink: RefCell::new(None),
            sink_has_console: false,
            app: String::from("service"),
            early: RefCell::new(Vec::new()),
            drops_told: Cell::new((0, None)),
            announce: RefCell::new(Vec::new()),
        }
    }

    /// Tells the host (a status warning, which the runtime shows where the service's lines
    /// go) of the console lines dropped since it last heard; `now`: even within
    /// [`DROPS_EVERY`].
    fn tell_drops(&self, now: bool) {
        let dropped = match self.sink.borrow().as_ref() {
            Some(s) => s.stats().console_dropped,
            None => return,
        };
        let (told, when) = self.drops_told.get();
        let due = now || when.is_none_or(|w| w.elapsed() >= DROPS_EVERY);
        if dropped <= told || !due {
            return;
        }
        self.drops_told.set((dropped, Some(Instant::now())));
        self.status.emit(&Event::Warning {
            reason: format!(
                "{} {} ({dropped} in all)",
                dropped - told,
                contract::status::CONSOLE_DROPPED
            ),
        });
    }

    /// A guest-init message for people: console and remote log.
    pub fn say(&self, severity: Severity, text: &str) {
        let sink = self.sink.borrow();
        if !(self.sink_has_console && sink.is_some()) {
            console::say(text);
        }
        match sink.as_ref() {
            Some(s) => s.log(Record::init(severity, text)),
            None => {
                let mut early = self.early.borrow_mut();
                if early.len() < MAX_EARLY {
                    early.push(Record::init(severity, text));
                }
            }
        }
    }

    fn fatal(&self, f: &Fatal) {
        self.status.emit(&Event::Fatal {
            field: f.field.clone(),
            reason: f.lines.join("; "),
        });
        for line in &f.lines {
            self.say(Severity::Error, &format!("fatal: {line}"));
        }
    }

    fn flush_logs(&self) {
        if let Some(s) = self.sink.borrow().as_ref() {
            let _ = s.flush(Duration::from_secs(2));
        }
        self.tell_drops(true);
    }
}

impl Observer for Reporter {
    fn event(&self, event: Event) {
        self.status.emit(&event);
        if matches!(event, Event::Ready { .. }) {
            for a in self.announce.borrow().iter() {
                for note in a.send() {
                    self.say(Severity::Warning, &format!("network: {note}"));
                }
            }
        }
        // A heartbeat comes every second: drops at the end of a burst are told by the next.
        self.tell_drops(false);
        // Heartbeats are for the host alone: once a second on the console and the remote log
        // would drown the service's own lines.
        if matches!(event, Event::Heartbeat { .. }) {
            return;
        }
        let severity = match event {
            Event::Fatal { .. } => Severity::Error,
            Event::Exited { .. }
            | Event::LivenessFailed { .. }
            | Event::Restarting { .. }
            | Event::StopTimeout { .. }
            | Event::Warning { .. } => Severity::Warning,
            _ => Severity::Notice,
        };
        // A fatal error reads like the boot's own: `fatal: service.argv[0] '/x': ...`.
        let text = match &event {
            Event::Fatal { reason, .. } => format!("fatal: {reason}"),
            _ => event.human(),
        };
        self.say(severity, &text);
    }

    fn output(&self, pid: Pid, stderr: bool, line: &str) {
        let stream = if stderr {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        match self.sink.borrow().as_ref() {
            Some(s) => s.log_service(Record::service(
                stream,
                &self.app,
                u32::try_from(pid.as_raw()).ok(),
                line,
            )),
            None => console::say(&format!("{}: {line}", self.app)),
        }
        self.tell_drops(false);
    }
}

/// What is up once boot succeeded.
struct Up {
    checked: Checked,
    /// The heartbeat interval the host asked for on the kernel command line.
    heartbeat: Option<Duration>,
}

/// PID 1's whole life. Never returns.
pub fn run(started_us: u64) -> ! {
    console::install_logger();
    std::panic::set_hook(Box::new(|info| {
        console::fatal(&format!("internal error: {info}"));
        power::power_off();
    }));
    // Before any thread exists, so every thread inherits the mask and the signals wait in the
    // supervisor's signalfd instead of hitting PID 1's (ignored) default handlers.
    let _ = sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&supervise::handled_signals()),
        None,
    );
    // Ctrl-Alt-Del (UML mconsole `cad`) then reaches PID 1 as SIGINT instead of rebooting.
    disable_cad();
    if let Err(e) = console::setup() {
        ::log::error!("{e}");
        power::power_off();
    }
    ::log::info!("starting, version {}", env!("CARGO_PKG_VERSION"));
    if let Err(e) = mounts::mount_system() {
        ::log::error!("{e}");
        power::power_off();
    }
    if let Err(e) = settings::set_root_readahead() {
        ::log::info!("root read-ahead left as it is: {e}");
    }
    let mut rep = Reporter::new(Status::open(STATUS_TTY, started_us));
    let mut disks: Vec<Disk> = Vec::new();
    let outcome = match bring_up(&mut rep, &mut disks) {
        Ok(up) => {
            let service = &up.checked.contract.service;
            let typed = &up.checked.service;
            let mut sup = match Supervisor::new(
                service,
                typed,
                &rep,
                SpawnOptions::default(),
                up.heartbeat,
            ) {
                Ok(s) => s.with_freezer(
                    Freezer::open(disks.iter().map(|d| d.mount_point.clone()).collect())
                        .with_quiesce(crate::quiesce::Command::of(service)),
                ),
                Err(e) => {
                    rep.fatal(&Fatal::new(
                        None,
                        format!("cannot create the signalfd: {e}"),
                    ));
                    let why = PowerOff::Fatal {
                        field: None,
                        error: None,
                    };
                    shutdown(&rep, &disks, why);
                }
            };
            let end = sup.run();
            end_fields(&end)
        }
        Err(f) => {
            rep.fatal(&f);
            PowerOff::Fatal {
                field: f.field,
                error: None,
            }
        }
    };
    shutdown(&rep, &disks, outcome)
}

fn disable_cad() {
    // SAFETY: reboot(2) with the CAD_OFF command only changes what Ctrl-Alt-Del does.
    unsafe {
        libc::reboot(libc::LINUX_REBOOT_CMD_CAD_OFF);
    }
}

fn end_fields(end: &End) -> PowerOff {
    match end {
        End::ServiceEnded(kind) => {
            let (code, signal) = match kind {
                crate::service::ExitKind::Exited(c) => (Some(*c), None),
                crate::service::ExitKind::Signaled(s) => (None, Some(*s)),
            };
            PowerOff::ServiceEnded {
                status: kind.to_string(),
                code,
                signal,
            }
        }
        End::Requested(why) => PowerOff::Requested {
            signal: why.to_string(),
        },
        End::SpawnFailed { field, error } => PowerOff::Fatal {
            field: Some(field.clone()),
            error: Some(error.clone()),
        },
    }
}

/// Steps 2 to 6 of the boot: contract, network, settings, disks, files, logging.
fn bring_up(rep: &mut Reporter, disks: &mut Vec<Disk>) -> Result<Up, Fatal> {
    let cmdline_text = load::kernel_cmdline().map_err(|e| Fatal {
        field: None,
        lines: e.lines(),
    })?;
    let loaded = load::load(&cmdline_text).map_err(|e| Fatal {
        field: Some("contract".into()),
        lines: e.lines(),
    })?;
    let mut contract = loaded.contract.clone();
    let network_from = fill_network_from_ip_param(&mut contract, &cmdline_text)?;
    // A contract from any host must fit this VM (contract::budget) before anything is written.
    let memory_mib = mounts::this_vm_memory_mib();
    contract::budget::check(&contract, memory_mib).map_err(problems_fatal)?;
    // Every value that travels as text is parsed here, once; the steps below take it typed.
    let checked = checked::check(contract).map_err(problems_fatal)?;
    let contract = &checked.contract;
    rep.app = contract.service.app_name();
    let sources: Vec<String> = loaded.sources.iter().map(|s| s.to_string()).collect();
    rep.say(Severity::Notice, &loaded.summary());
    rep.status.emit(&Event::ContractLoaded {
        hostname: contract.hostname.clone(),
        service: rep.app.clone(),
        sources,
        network: network_from.to_string(),
    });
    runfs::write_contract(contract).map_err(|e| Fatal::new(Some(&e.at), &e))?;
    settings::set_hostname(&contract.hostname).map_err(|e| Fatal::new(Some(&e.at), &e))?;
    bring_up_network(rep, &checked)?;
    settings::apply_sysctls(&contract.sysctl).map_err(|e| Fatal::new(Some(&e.at), &e))?;
    for report in mount_disks(contract, disks)? {
        rep.event(Event::DiskMounted {
            device: report.device,
            mount_point: report.mount_point,
            formatted: report.formatted,
            checked: report.checked,
        });
    }
    mounts::mount_tmpfs(&contract.mounts.tmpfs, memory_mib)
        .map_err(|e| Fatal::new(Some(&e.at), &e))?;
    runfs::write_files(&contract.files, &checked.file_modes)
        .map_err(|e| Fatal::new(Some(&e.at), &e))?;
    start_logging(rep, &checked)?;
    let heartbeat = heartbeat_interval(rep, &cmdline_text);
    Ok(Up { checked, heartbeat })
}

/// The heartbeat interval `/proc/cmdline` asks for; a bad value is reported, not fatal: the
/// heartbeat only helps the host watch the guest.
fn heartbeat_interval(rep: &Reporter, cmdline_text: &str) -> Option<Duration> {
    let ms = contract::status::heartbeat_interval_ms(cmdline_text).unwrap_or_else(|e| {
        rep.event(Event::Warning {
            reason: e.to_string(),
        });
        Some(contract::status::HEARTBEAT_INTERVAL_MS)
    });
    ms.map(Duration::from_millis)
}

/// Validation problems as a fatal error naming the first one's field.
fn problems_fatal(p: contract::Problems) -> Fatal {
    Fatal {
        field: p.0.first().map(|p| p.path.clone()),
        lines: p.0.iter().map(|p| p.to_string()).collect(),
    }
}

/// When the contract has no network section, the kernel's `ip=` parameter (if any) gives it.
fn fill_network_from_ip_param(c: &mut Contract, cmdline_text: &str) -> Result<&'static str, Fatal> {
    if c.network.is_some() {
        return Ok("contract");
    }
    let Some(value) =
        cmdline::find(cmdline_text, "ip").or_else(|| cmdline::find(cmdline_text, "nfsaddrs"))
    else {
        return Ok("none");
    };
    let parsed = ipconfig::parse(value).and_then(|p| p.to_network());
    match parsed {
        Ok(net) => {
            c.network = net;
            Ok("ip= parameter")
        }
        Err(e) => Err(Fatal::new(Some("ip="), e)),
    }
}

fn bring_up_network(rep: &Reporter, c: &Checked) -> Result<(), Fatal> {
    let empty = checked::Network::default();
    let net = c.network.as_ref().unwrap_or(&empty);
    if net.uses_ipv6() {
        kmod::ensure_ipv6(Path::new(kmod::MODULES_DIR))
            .map_err(|e| Fatal::new(Some("network"), e))?;
    }
    let report = match &c.network {
        Some(net) => net::configure(net).map_err(|e| Fatal::new(e.path(), &e))?,
        None => {
            net::loopback_up().map_err(|e| Fatal::new(e.path(), &e))?;
            net::Report::default()
        }
    };
    runfs::write_resolv_conf(&net::resolv_conf(net)).map_err(|e| Fatal::new(Some(&e.at), &e))?;
    let own = net.own_addresses();
    runfs::write_hosts(&runfs::hosts_text(&c.contract.hostname, &own))
        .map_err(|e| Fatal::new(Some(&e.at), &e))?;
    for note in &report.notes {
        rep.say(Severity::Warning, &format!("network: {note}"));
    }
    rep.announce.replace(report.announce);
    rep.event(Event::NetworkUp {
        links: report.links,
        addresses: report.addresses,
        routes: report.routes,
    });
    Ok(())
}

fn mount_disks(c: &Contract, mounted: &mut Vec<Disk>) -> Result<Vec<mounts::DiskReport>, Fatal> {
    let mut reports = Vec::new();
    for (i, d) in c.mounts.disks.iter().enumerate() {
        let at = format!("mounts.disks[{i}]");
        let report = mounts::mount_disk(&at, d).map_err(|e| Fatal::new(Some(&e.at), &e))?;
        mounted.push(d.clone());
        reports.push(report);
    }
    Ok(reports)
}

fn start_logging(rep: &mut Reporter, checked: &Checked) -> Result<(), Fatal> {
    let c = &checked.contract;
    let console: Box<dyn std::io::Write + Send> =
        match std::fs::OpenOptions::new().write(true).open("/dev/console") {
            Ok(f) => Box::new(f),
            Err(_) => Box::new(std::io::sink()),
        };
    let cfg = SinkConfig::from_checked(checked, console);
    let sink = LogSink::start(cfg).map_err(|e| Fatal::new(Some("logging"), e))?;
    rep.sink_has_console = c.logging.console;
    for rec in rep.early.borrow_mut().drain(..) {
        sink.log_remote_only(rec);
    }
    *rep.sink.borrow_mut() = Some(sink);
    if let Some(r) = &c.logging.remote {
        let remote = format!("{:?} {}:{} {:?}", r.transport, r.host, r.port, r.format);
        rep.event(Event::Logging {
            remote: remote.to_lowercase(),
        });
    }
    Ok(())
}

/// Kills what is left, takes the data disks down cleanly, reports, and powers off.
fn shutdown(rep: &Reporter, disks: &[Disk], why: PowerOff) -> ! {
    let reaped = supervise::kill_and_reap_all(Duration::from_secs(5));
    nix::unistd::sync();
    let unmounted: Vec<Unmount> = mounts::unmount_disks(disks)
        .into_iter()
        .map(|(point, how)| {
            let how = match how {
                Unmounted::Unmounted => "unmounted".to_string(),
                Unmounted::RemountedReadOnly => "remounted read-only".to_string(),
                Unmounted::Failed(e) => format!("failed: {e}"),
            };
            Unmount {
                mount_point: point,
                result: how,
            }
        })
        .collect();
    if !unmounted.is_empty() {
        rep.event(Event::DisksUnmounted { disks: unmounted });
    }
    rep.event(Event::PowerOff {
        why,
        processes_killed: reaped,
    });
    rep.flush_logs();
    power::power_off()
}
