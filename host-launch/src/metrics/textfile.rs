//! node_exporter's textfile collector: one file per appliance, `host-launch-NAME.prom`, in its
//! directory (Debian's: [`DEFAULT_DIR`]), each written to a temporary name node_exporter does
//! not read and renamed over the last, so a scrape never sees half a file.

use super::sample::Sample;
use super::text;
use crate::error::{IoContext, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Debian's prometheus-node-exporter reads `--collector.textfile.directory` here.
pub const DEFAULT_DIR: &str = "/var/lib/prometheus/node-exporter";

const PREFIX: &str = "host-launch-";
const SUFFIX: &str = ".prom";

/// Writes one file per sample and removes the files of appliances no longer there.
pub fn write_all(dir: &Path, samples: &[Sample]) -> Result<()> {
    std::fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
    for s in samples {
        write_one(dir, s)?;
    }
    remove_others(dir, samples)
}

fn write_one(dir: &Path, s: &Sample) -> Result<()> {
    let path = dir.join(format!("{PREFIX}{}{SUFFIX}", s.name));
    // Not *.prom: node_exporter reads only those, so it never reads the temporary file.
    let tmp = dir.join(format!(".{PREFIX}{}.tmp.{}", s.name, std::process::id()));
    let body = text::encode(std::slice::from_ref(s));
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        // node_exporter runs as its own user: the figures are for it to read.
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(body.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .io_context(|| format!("writing {}", path.display()))
}

/// Removes `host-launch-*.prom` files whose appliance has no sample (forgotten ones).
fn remove_others(dir: &Path, samples: &[Sample]) -> Result<()> {
    let rd = std::fs::read_dir(dir).io_context(|| format!("reading {}", dir.display()))?;
    for e in rd.flatten() {
        let file = e.file_name();
        let Some(name) = file
            .to_str()
            .and_then(|f| f.strip_prefix(PREFIX))
            .and_then(|f| f.strip_suffix(SUFFIX))
        else {
            continue;
        };
        if !samples.iter().any(|s| s.name == name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sample::test_sample;

    #[test]
    fn one_file_per_appliance_and_gone_ones_removed() {
        let dir = std::env::temp_dir().join(format!("hl-textfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_all(&dir, &[test_sample("d1"), test_sample("d2")]).unwrap();
        std::fs::write(dir.join("node.prom"), "other 1\n").unwrap();
        let d1 = std::fs::read_to_string(dir.join("host-launch-d1.prom")).unwrap();
        assert!(d1.contains("appliance_up{appliance=\"d1\""), "{d1}");
        assert!(!d1.contains("\"d2\""), "{d1}");
        write_all(&dir, &[test_sample("d1")]).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // d2's is gone, another collector's file stays, no temporary file is left.
        assert_eq!(left, ["host-launch-d1.prom", "node.prom"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
