//! `upgraded.json` in an appliance's state directory: the record that an `upgrade` put another
//! image in place of the spec's, so that later launches of the same spec boot it too (until
//! the spec names another image). Written by [`crate::cmd::upgrade`], read by [`crate::launch::load`].

use crate::error::{Error, IoContext, Result};
use crate::state::{self, Dir};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `upgraded.json`: the image that replaces the spec's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The spec's own image (absolute) when the upgrade happened: a spec that names another
    /// image since then wins over the pin.
    pub spec_image: String,
    /// The image in use instead.
    pub image: String,
    /// The image it replaced.
    pub previous: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

pub fn read(dir: &Dir) -> Option<Pin> {
    let text = std::fs::read(dir.upgraded()).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The image in place of `spec_image` (absolute) for the appliance `name`, if an upgrade
/// pinned one and the spec still names the image it replaced.
pub fn image_for(name: &str, spec_image: &Path) -> Option<PathBuf> {
    if appliance::spec::check_name(name).is_err() {
        return None; // load reports the bad name
    }
    let dir = Dir::new(&state::base_dir(), name);
    read(&dir)
        .filter(|p| Path::new(&p.spec_image) == spec_image)
        .map(|p| PathBuf::from(p.image))
}

/// Records that `image` replaces `spec_image` (after `previous`); no record when `image` is
/// the spec's own.
pub fn write(dir: &Dir, spec_image: &Path, image: &Path, previous: &Path) -> Result<()> {
    if image == spec_image {
        return match std::fs::remove_file(dir.upgraded()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::host(format!(
                "removing {}: {e}",
                dir.upgraded().display()
            ))),
            _ => Ok(()),
        };
    }
    let pin = Pin {
        spec_image: spec_image.display().to_string(),
        image: image.display().to_string(),
        previous: previous.display().to_string(),
        at_ms: state::now_ms(),
    };
    let tmp = dir.path.join("upgraded.json.tmp");
    let text = serde_json::to_string_pretty(&pin).unwrap_or_default() + "\n";
    std::fs::write(&tmp, text).io_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.upgraded())
        .io_context(|| format!("writing {}", dir.upgraded().display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_round_trip_and_reset() {
        let base = std::env::temp_dir().join(format!("hl-pin-{}", std::process::id()));
        let dir = Dir::new(&base, "p1");
        std::fs::create_dir_all(&dir.path).unwrap();
        write(
            &dir,
            Path::new("/i/v1.img"),
            Path::new("/i/v2.img"),
            Path::new("/i/v1.img"),
        )
        .unwrap();
        let p = read(&dir).unwrap();
        assert_eq!(p.image, "/i/v2.img");
        assert_eq!(p.previous, "/i/v1.img");
        // Back to the spec's own image: no pin.
        write(
            &dir,
            Path::new("/i/v1.img"),
            Path::new("/i/v1.img"),
            Path::new("/i/v2.img"),
        )
        .unwrap();
        assert!(read(&dir).is_none());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
