//! `metrics [--listen ADDR | --textfile [DIR] [--every SECONDS]]`: every appliance's metrics
//! (`crate::metrics`) printed, served at /metrics, or written for node_exporter.

use crate::error::{Error, IoContext, Result};
use crate::metrics::{self, Digests};
use crate::state;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What `metrics` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: Option<SocketAddr>,
    pub textfile: Option<PathBuf>,
    /// With `textfile`: how often to write again (zero: once).
    pub every: Duration,
}

/// `metrics`: prints the text, or serves it, or writes the textfiles.
pub fn metrics(opts: &Options) -> Result<i32> {
    let mut digests = Digests::default();
    if let Some(addr) = opts.listen {
        let listener = std::net::TcpListener::bind(addr)
            .io_context(|| format!("--listen {addr}: cannot listen there"))?;
        eprintln!("host-launch: serving http://{addr}/metrics");
        metrics::serve::serve(&listener, || snapshot_text(&mut digests))
            .io_context(|| format!("--listen {addr}"))?;
        return Ok(0);
    }
    if let Some(dir) = &opts.textfile {
        return textfiles(dir, opts.every, &mut digests);
    }
    print!("{}", snapshot_text(&mut digests));
    Ok(0)
}

/// Every appliance's text, now.
fn snapshot_text(digests: &mut Digests) -> String {
    let entries = state::list(&state::base_dir());
    metrics::text::encode(&metrics::collect(&entries, digests))
}

/// Writes the textfiles once, or every `every` until killed.
fn textfiles(dir: &std::path::Path, every: Duration, digests: &mut Digests) -> Result<i32> {
    loop {
        let entries = state::list(&state::base_dir());
        let samples = metrics::collect(&entries, digests);
        metrics::textfile::write_all(dir, &samples)
            .map_err(|e| Error::host(format!("--textfile {}: {}", dir.display(), e.message)))?;
        if every.is_zero() {
            return Ok(0);
        }
        std::thread::sleep(every);
    }
}
