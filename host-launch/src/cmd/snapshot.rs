//! `snapshot NAME [--to DIR] [--bound SECONDS]`: a point-in-time copy of each data disk of a
//! running appliance. The guest takes part through its request channel (docs/contract.md,
//! "Requests from the host"): `freeze BOUND_MS` on the appliance's request FIFO, then the
//! copy once the guest reports `frozen`, then `thaw`. A guest that does not answer in time
//! (an image without the channel) gets a crash-consistent copy, and the output says so. If
//! this command dies, the guest thaws by itself after the bound.

use crate::disk_copy::{self, Method};
use crate::error::{Error, IoContext, Result};
use crate::lifecycle::known;
use crate::state::Dir;
use contract::validate::MAX_QUIESCE_TIMEOUT_MS;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the guest has to answer a freeze before the copy is taken crash-consistent.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// The most of the events file read while waiting: the launcher caps it; a guest that
/// floods its status channel only loses its own snapshot's consistency.
const MAX_EVENTS_READ: u64 = 1 << 20;

/// One copied disk.
#[derive(Debug)]
pub struct Copied {
    pub from: String,
    pub to: PathBuf,
    pub method: Method,
    pub bytes: u64,
}

/// What a snapshot did.
#[derive(Debug)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub disks: Vec<Copied>,
    /// The guest's own count of the time frozen (its `thawed` event), if it froze.
    pub frozen_ms: Option<u64>,
    /// The host's: from `frozen` seen to `thaw` sent.
    pub host_frozen_ms: Option<u64>,
    /// How long the image's quiesce command ran, if it has one and the guest froze.
    pub quiesce_ms: Option<u64>,
    /// Why the copy is only crash-consistent, if it is.
    pub crash_consistent: Option<String>,
}

/// `snapshot NAME`: prints what was copied, how, and for how long the service was frozen.
pub fn snapshot(name: &str, to: Option<PathBuf>, bound: Duration) -> Result<i32> {
    let s = take(name, to, bound)?;
    println!("snapshot of '{name}': {}", s.describe());
    for c in &s.disks {
        println!(
            "  {} -> {} ({}, {} MiB)",
            c.from,
            c.to.display(),
            c.method.as_str(),
            c.bytes >> 20
        );
    }
    Ok(0)
}

impl Snapshot {
    /// `consistent (quiesce 310 ms, frozen 20 ms in the guest, 11 ms seen by the host)`, or
    /// `crash-consistent: WHY`, with the times when the guest froze.
    pub fn describe(&self) -> String {
        let mut times = Vec::new();
        if let Some(q) = self.quiesce_ms {
            times.push(format!("quiesce {q} ms"));
        }
        if self.host_frozen_ms.is_some() {
            let guest = self.frozen_ms.map(|m| m.to_string());
            times.push(format!(
                "frozen {} ms in the guest, {} ms seen by the host",
                guest.as_deref().unwrap_or("?"),
                self.host_frozen_ms.unwrap_or(0)
            ));
        }
        let times = if times.is_empty() {
            String::new()
        } else {
            format!(" ({})", times.join(", "))
        };
        match &self.crash_consistent {
            Some(why) => format!("crash-consistent{times}: {why}"),
            None => format!("consistent{times}"),
        }
    }
}

/// Takes the snapshot.
pub fn take(name: &str, to: Option<PathBuf>, bound: Duration) -> Result<Snapshot> {
    let e = known(name)?;
    let st =
        e.state.as_ref().filter(|_| e.running).ok_or_else(|| {
            Error::not_found(format!("'{name}' is not running; nothing to snapshot"))
        })?;
    if st.disks.is_empty() {
        return Err(Error::invalid(format!(
            "'{name}' has no data disk to snapshot"
        )));
    }
    let dir = target_dir(name, to)?;
    let mut channel = Channel::open(&e.dir);
    let frozen = channel.as_mut().map(|c| c.freeze(bound));
    let (frozen_at, quiesce_ms, mut crash_consistent) = match frozen {
        None => (None, None, Some(no_channel())),
        Some(Ok(f)) => (
            Some(f.at),
            f.quiesce_ms,
            f.quiesce_error.map(quiesce_failed),
        ),
        Some(Err(why)) => (None, None, Some(why)),
    };
    let copies = copy_disks(&st.disks, &dir);
    let host_frozen_ms = frozen_at.map(|t| ms(t.elapsed()));
    // A thaw also after a late or refused freeze: the guest never stays frozen for nothing.
    let frozen_ms = match channel.as_mut() {
        Some(c) if frozen_at.is_some() => {
            let (ms, by) = c.thaw().unzip();
            // The guest thawed by itself (its bound) while the copy was being taken: the
            // service wrote during the copy, so the copy is torn like a power cut's.
            if by.as_deref().is_some_and(|b| b != "request") && crash_consistent.is_none() {
                crash_consistent = Some(format!(
                    "the guest thawed by itself ({}) before the copy ended; the copy is what a \
                     power cut would leave; give a larger --bound (the copy took {} ms)",
                    by.unwrap_or_default(),
                    host_frozen_ms.unwrap_or(0)
                ));
            }
            ms.flatten()
        }
        Some(c) => {
            let _ = c.fifo.write_all(b"thaw\n");
            None
        }
        None => None,
    };
    let disks = copies?;
    Ok(Snapshot {
        dir,
        disks,
        frozen_ms,
        host_frozen_ms,
        quiesce_ms,
        crash_consistent,
    })
}

/// A freeze after a quiesce command that failed: the file systems are whole, the service's
/// data may not be; a copy is still better than none.
fn quiesce_failed(error: String) -> String {
    format!(
        "the image's quiesce command failed ({error}); the file systems were frozen anyway, so \
         the copy mounts cleanly, but the service's own files are what a power cut would leave"
    )
}

/// What the guest said when it froze.
struct Frozen {
    at: Instant,
    quiesce_ms: Option<u64>,
    quiesce_error: Option<String>,
}

fn no_channel() -> String {
    "the appliance has no request channel (started by an older host-launch); the copy is what \
     a power cut would leave"
        .into()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `DIR/NAME-MILLISECONDS` (default DIR: the current directory, never the state directory,
/// which `forget` removes), made new.
fn target_dir(name: &str, to: Option<PathBuf>) -> Result<PathBuf> {
    let base = to.unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&base).io_context(|| format!("creating {}", base.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dir = base.join(format!("{name}-{stamp}"));
    std::fs::create_dir(&dir).io_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn copy_disks(disks: &[String], dir: &Path) -> Result<Vec<Copied>> {
    let mut out = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let to = dir.join(format!("disk{i}.img"));
        let (method, bytes) =
            disk_copy::copy(Path::new(d), &to).map_err(|e| Error::host(e.to_string()))?;
        out.push(Copied {
            from: d.clone(),
            to,
            method,
            bytes,
        });
    }
    Ok(out)
}

/// The appliance's request FIFO and its events file, read from where they ended.
struct Channel {
    fifo: std::fs::File,
    events: PathBuf,
    read_to: u64,
}

impl Channel {
    /// `None` when the appliance has no FIFO or nothing reads it.
    fn open(dir: &Dir) -> Option<Channel> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let path = dir.requests();
        if !std::fs::symlink_metadata(&path).ok()?.file_type().is_fifo() {
            return None;
        }
        let fifo = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .ok()?;
        let events = dir.events();
        let read_to = std::fs::metadata(&events).map(|m| m.len()).unwrap_or(0);
        Some(Channel {
            fifo,
            events,
            read_to,
        })
    }

    /// Asks the guest to freeze: when it said `frozen`, or why the copy is crash-consistent.
    /// A guest that runs its quiesce command first (`quiescing`) gets that command's timeout
    /// (at most [`MAX_QUIESCE_TIMEOUT_MS`], whatever it says) on top of the answer's.
    fn freeze(&mut self, bound: Duration) -> std::result::Result<Frozen, String> {
        let line = format!("freeze {}\n", ms(bound));
        if let Err(e) = self.fifo.write_all(line.as_bytes()) {
            return Err(format!("the freeze request could not be sent ({e})"));
        }
        let mut answer = self.wait_for(&["frozen", "thawed", "quiescing"], ANSWER_TIMEOUT);
        let mut waited = ANSWER_TIMEOUT;
        if let Some((_, v)) = answer.as_ref().filter(|(e, _)| e == "quiescing") {
            let quiesce = v["timeout_ms"]
                .as_u64()
                .unwrap_or(0)
                .min(MAX_QUIESCE_TIMEOUT_MS);
            waited = ANSWER_TIMEOUT + Duration::from_millis(quiesce);
            answer = self.wait_for(&["frozen", "thawed"], waited);
        }
        match answer {
            Some((event, v)) if event == "frozen" => Ok(Frozen {
                at: Instant::now(),
                quiesce_ms: v["quiesce_ms"].as_u64(),
                quiesce_error: v["quiesce_error"]
                    .as_str()
                    .map(|e| e.chars().filter(|c| !c.is_control()).take(200).collect()),
            }),
            Some((_, v)) => Err(format!(
                "the guest could not freeze ({}); the copy is what a power cut would leave",
                v["by"].as_str().unwrap_or("no reason given")
            )),
            None => Err(format!(
                "the guest did not answer the freeze request within {} s (an image without the \
                 request channel of docs/contract.md); the copy is what a power cut would leave",
                waited.as_secs()
            )),
        }
    }

    /// Asks the guest to thaw: the time it says it was frozen, and why it thawed (`request`,
    /// or `bound` when it had thawed by itself first).
    fn thaw(&mut self) -> Option<(Option<u64>, String)> {
        self.fifo.write_all(b"thaw\n").ok()?;
        let (_, v) = self.wait_for(&["thawed"], Duration::from_secs(2))?;
        let by: String = v["by"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        Some((v["frozen_ms"].as_u64(), by))
    }

    /// Waits for the first of `names` among the events that arrive.
    fn wait_for(
        &mut self,
        names: &[&str],
        timeout: Duration,
    ) -> Option<(String, serde_json::Value)> {
        let deadline = Instant::now() + timeout;
        let mut pending = Vec::new();
        loop {
            pending.extend(self.read_new());
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else {
                    continue;
                };
                let event = v["event"].as_str().unwrap_or_default().to_string();
                if names.contains(&event.as_str()) {
                    return Some((event, v));
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The bytes appended to the events file since the last read (bounded).
    fn read_new(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        let Ok(mut f) = std::fs::File::open(&self.events) else {
            return buf;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.read_to {
            self.read_to = 0; // rotated
        }
        if f.seek(SeekFrom::Start(self.read_to)).is_ok() {
            let _ = f.take(MAX_EVENTS_READ).read_to_end(&mut buf);
        }
        self.read_to += buf.len() as u64;
        buf
    }
}
